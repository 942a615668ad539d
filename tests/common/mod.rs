//! Test problems shared by the integration tests, the benches and the
//! examples (sources in `../shared/reference/test_problems.md`).
#![allow(dead_code)]

pub mod kuramoto_sivashinsky;

use sdeflow::prelude::*;

/// Lotka–Volterra parameters (α, β, γ, δ).
pub const LV_PARAMS: [f64; 4] = [1.5, 1.0, 3.0, 1.0];
/// Lotka–Volterra initial state (x, y).
pub const LV_Y0: [f64; 2] = [1.0, 1.0];
/// Lotka–Volterra time span.
pub const LV_TSPAN: (f64, f64) = (0.0, 10.0);

/// The Lotka–Volterra predator–prey model x' = αx − βxy, y' = −γy + δxy,
/// generic over the scalar (exact VJPs by dual numbers).
#[derive(Clone, Copy)]
pub struct LotkaVolterra;
impl GenericField for LotkaVolterra {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = p[0] * y[0] - p[1] * y[0] * y[1];
        dy[1] = -p[2] * y[1] + p[3] * y[0] * y[1];
    }
}

/// A drift as a plain function: a nameable drift type, for helpers generic
/// over the solvers of one problem type (`S: Solver<Problem<Rhs>>`).
pub type Rhs = fn(f64, &[f64], &[f64], &mut [f64]);

/// Lotka–Volterra, α=1.5, β=1, γ=3, δ=1, (1, 1) on [0, 10], as a plain
/// closure (no Jacobian, no VJP).
pub fn lotka_volterra() -> Problem<Rhs> {
    Problem::<Rhs>::ode(
        |t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| LotkaVolterra.eval(t, y, p, dy),
        LV_Y0.to_vec(),
        LV_TSPAN,
    )
    .params(LV_PARAMS.to_vec())
}

/// mpmath Taylor reference (30 digits) of Lotka–Volterra at t = 10.
pub const LV_REF: [f64; 2] = [1.0263447675750893191, 0.90969107813604161755];

/// Mass ratio μ of the Arenstorf orbit (Earth–Moon).
pub const ARENSTORF_MU: f64 = 0.012277471;
/// Arenstorf orbit period.
pub const ARENSTORF_T: f64 = 17.0652165601579625588917206249;
/// Arenstorf initial state.
pub const ARENSTORF_Y0: [f64; 4] = [0.994, 0.0, 0.0, -2.00158510637908252240537862224];

/// The right-hand side of the Arenstorf orbit (restricted three-body
/// problem, HNW I §II.0); the state is (x, y, vx, vy).
#[inline(always)]
pub fn arenstorf_rhs(u: &[f64], du: &mut [f64]) {
    let mu = ARENSTORF_MU;
    let mup = 1.0 - mu;
    let (x, y, vx, vy) = (u[0], u[1], u[2], u[3]);
    let d1 = ((x + mu).powi(2) + y * y).powf(1.5);
    let d2 = ((x - mup).powi(2) + y * y).powf(1.5);
    du[0] = vx;
    du[1] = vy;
    du[2] = x + 2.0 * vy - mup * (x + mu) / d1 - mu * (x - mup) / d2;
    du[3] = y - 2.0 * vx - mup * y / d1 - mu * y / d2;
}

/// The Arenstorf orbit over one period.
pub fn arenstorf() -> Problem<impl Drift + Clone> {
    Problem::ode(
        |_t: f64, u: &[f64], _p: &[f64], du: &mut [f64]| arenstorf_rhs(u, du),
        ARENSTORF_Y0.to_vec(),
        (0.0, ARENSTORF_T),
    )
}

/// Robertson's kinetics (Bari test set `rober`) with the rate constants as
/// parameters (exact Jacobians and VJPs by dual numbers); y1 + y2 + y3 is
/// conserved.
#[derive(Clone, Copy)]
pub struct RobertsonP;
impl GenericField for RobertsonP {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = -p[0] * y[0] + p[2] * y[1] * y[2];
        dy[1] = p[0] * y[0] - p[2] * y[1] * y[2] - p[1] * y[1] * y[1];
        dy[2] = p[1] * y[1] * y[1];
    }
}
/// Robertson's rate constants (k1, k2, k3).
pub const ROBER_P: [f64; 3] = [0.04, 3e7, 1e4];
/// Robertson at t = 1e5: diffsol's BDF at rtol = 1e-13, atol = 1e-18; the
/// native Esdirk34 at the same tolerances agrees to 8e-11 (relative, every
/// component), BDF at rtol = 1e-12 to 5e-11. (test_problems.md holds no
/// value at 1e5; the test set's is at 1e11.)
pub const ROBER_1E5: [f64; 3] = [
    1.78659211422263833e-2,
    7.27475146848882968e-8,
    9.82134006110270019e-1,
];

/// Robertson at t = 1e11: the reference of the Bari test set for IVP
/// solvers (`rober`, computed by RADAU5 at tight tolerances).
pub const ROBER_1E11: [f64; 3] = [
    0.2083340149701255e-7,
    0.8333360770334713e-13,
    0.9999999791665050,
];

/// Robertson from (1, 0, 0) on [0, t1] with the rate constants `p`.
pub fn robertson(p: &[f64], t1: f64) -> Problem<Generic<RobertsonP>> {
    Problem::ode_field(Generic(RobertsonP), vec![1.0, 0.0, 0.0], (0.0, t1)).params(p.to_vec())
}

/// HIRES (Bari test set `hires`, Schäfer 1975; Hairer & Wanner II §IV.10)
/// with four of its rate constants as parameters: p = (1.71, 0.43, 8.32,
/// 280) ([`HIRES_P`]).
#[derive(Clone, Copy)]
pub struct HiresP;
impl GenericField for HiresP {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], f: &mut [D]) {
        let c = |v: f64| D::from(v);
        let (a, b, k, r) = (p[0], p[1], p[2], p[3]);
        f[0] = -a * y[0] + b * y[1] + k * y[2] + c(0.0007);
        f[1] = a * y[0] - c(8.75) * y[1];
        f[2] = c(-10.03) * y[2] + b * y[3] + c(0.035) * y[4];
        f[3] = k * y[1] + a * y[2] - c(1.12) * y[3];
        f[4] = c(-1.745) * y[4] + b * y[5] + b * y[6];
        f[5] = -r * y[5] * y[7] + c(0.69) * y[3] + a * y[4] - b * y[5] + c(0.69) * y[6];
        f[6] = r * y[5] * y[7] - c(1.81) * y[6];
        f[7] = -r * y[5] * y[7] + c(1.81) * y[6];
    }
}
/// HIRES's rate constants (the parameters of [`HiresP`]).
pub const HIRES_P: [f64; 4] = [1.71, 0.43, 8.32, 280.0];
/// End of the HIRES span.
pub const HIRES_T1: f64 = 321.8122;
/// HIRES initial state.
pub const HIRES_Y0: [f64; 8] = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0057];
/// The test set's reference y(321.8122) (RADAU5 at rtol = atol = 1.1e-18 on
/// a Cray C90, `hiressol` of the Bari test set).
pub const HIRES_REF: [f64; 8] = [
    0.7371312573325668e-3,
    0.1442485726316185e-3,
    0.5888729740967575e-4,
    0.1175651343283149e-2,
    0.2386356198831331e-2,
    0.6238968252742796e-2,
    0.2849998395185769e-2,
    0.2850001604814231e-2,
];

/// HIRES on [0, 321.8122] with the rate constants `p`.
pub fn hires(p: &[f64]) -> Problem<Generic<HiresP>> {
    Problem::ode_field(Generic(HiresP), HIRES_Y0.to_vec(), (0.0, HIRES_T1)).params(p.to_vec())
}

/// Van der Pol in Hairer's scaled form (test set VDPOL):
/// y1' = y2, y2' = ((1 − y1²) y2 − y1)/ε with ε = `p[0]`, written generically
/// over the scalar so that [`Generic`] differentiates it exactly.
#[derive(Debug, Clone, Copy)]
pub struct VanDerPol;
impl GenericField for VanDerPol {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = y[1];
        dy[1] = ((D::from(1.0) - y[0] * y[0]) * y[1] - y[0]) / p[0];
    }
}
/// ε = 1/μ² of Van der Pol with μ = 1000.
pub const VDP_EPS: f64 = 1e-6;
/// Van der Pol initial state (y1, y2).
pub const VDP_Y0: [f64; 2] = [2.0, 0.0];
/// Van der Pol time span.
pub const VDP_TSPAN: (f64, f64) = (0.0, 2.0);
/// Reference y(2) of VDPOL from the Bari/Hairer test set for IVP solvers
/// (RADAU5 at 1.1e-18).
pub const VDP_REF: [f64; 2] = [1.706167732170483, -0.8928097010247975];

/// Van der Pol with μ = 1000, exact Jacobians by dual numbers.
pub fn van_der_pol() -> Problem<Generic<VanDerPol>> {
    Problem::ode_field(Generic(VanDerPol), VDP_Y0.to_vec(), VDP_TSPAN).params(vec![VDP_EPS])
}

/// [`VanDerPol`] as a plain drift function (no Jacobian).
pub fn van_der_pol_drift(t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
    VanDerPol.eval(t, y, p, dy)
}

/// The analytic Jacobian of [`VanDerPol`], column-major.
pub fn van_der_pol_jacobian(_t: f64, y: &[f64], p: &[f64], jac: &mut [f64]) {
    let eps = p[0];
    jac[0] = 0.0; // ∂f1/∂y1
    jac[1] = (-2.0 * y[0] * y[1] - 1.0) / eps; // ∂f2/∂y1
    jac[2] = 1.0; // ∂f1/∂y2
    jac[3] = (1.0 - y[0] * y[0]) / eps; // ∂f2/∂y2
}

/// Geometric Brownian motion dX = aX dt + bX dW (scalar noise, Itô unless
/// re-interpreted) from 1 on [0, 1]; `a`, `b` are runtime values (a bench
/// passes them through `black_box` so that nothing constant-folds them).
pub fn gbm(a: f64, b: f64) -> Problem<impl Drift + Clone + Sync, impl Diffusion + Clone + Sync> {
    Problem::sde(
        move |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = a * y[0],
        move |_t: f64, y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = b * y[0],
        Noise::Scalar,
        vec![1.0],
        (0.0, 1.0),
    )
}

/// The SDE dX = −X dt + 0.1 dW (diagonal noise), X(0) = 1 on [0, 1]: what
/// an ODE solver must refuse.
pub fn small_sde() -> Problem<impl Drift, impl Diffusion> {
    Problem::sde(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
        |_t: f64, _y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = 0.1,
        Noise::Diagonal,
        vec![1.0],
        (0.0, 1.0),
    )
}

/// The linear ring `dy_i = −p0 y_i + p1 y_{(i+1) mod n}`, of any dimension,
/// generic over the scalar: the drift of the memory measurements.
#[derive(Clone, Copy)]
pub struct Ring;
impl GenericField for Ring {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        for i in 0..y.len() {
            dy[i] = -p[0] * y[i] + p[1] * y[(i + 1) % y.len()];
        }
    }
}

/// The diagonal diffusion `g_i = p2 y_i` (noise proportional to the state,
/// after a drift with parameters `p0`, `p1` such as [`Ring`]).
#[derive(Clone, Copy)]
pub struct Proportional;
impl GenericField for Proportional {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], g: &mut [D]) {
        for i in 0..y.len() {
            g[i] = p[2] * y[i];
        }
    }
}

/// `L = Σ ys` over every saved state, with its gradient (all ones).
pub fn sum_loss(_ts: &[f64], ys: &[f64], g: &mut [f64]) -> f64 {
    g.iter_mut().for_each(|v| *v = 1.0);
    ys.iter().sum()
}

/// Max-norm distance.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Least-squares slope of log(err) against log(h).
pub fn fitted_slope(hs: &[f64], errs: &[f64]) -> f64 {
    let xs: Vec<f64> = hs.iter().map(|h| h.ln()).collect();
    let ys: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    sxy / sxx
}

/// Fits the order of convergence to the errors `errs` at the steps `hs`,
/// prints it (`what` names the case) and asserts it within `tol` of
/// `order`; returns it.
pub fn assert_order(what: &str, hs: &[f64], errs: &[f64], order: f64, tol: f64) -> f64 {
    let slope = fitted_slope(hs, errs);
    println!("{what}: order {slope:.3} (theory {order}); errors {errs:?} at h = {hs:?}");
    assert!(
        (slope - order).abs() <= tol,
        "{what}: measured order {slope:.3}, theory {order}; errors {errs:?}"
    );
    slope
}

/// The drift of a nonlinear two-state SDE with diagonal noise (parameters
/// `p[0]`, `p[1]`; the diffusion [`Diff2`] uses `p[2]`, `p[3]`).
#[derive(Clone, Copy)]
pub struct Drift2;
impl GenericField for Drift2 {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = p[0] * y[1] - y[0] * y[0] * y[0] * 0.1;
        dy[1] = -p[1] * y[0] + (y[1] * 0.5).sin();
    }
}
/// Its diffusion.
#[derive(Clone, Copy)]
pub struct Diff2;
impl GenericField for Diff2 {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], g: &mut [D]) {
        g[0] = p[2] * (D::from(1.0) + y[0] * y[0]).sqrt();
        g[1] = p[3] * y[1].cos();
    }
}

/// The parameters of [`Drift2`] and [`Diff2`] in the SDE gradient tests.
pub const SDE2_P: [f64; 4] = [1.2, 0.8, 0.3, 0.2];
/// The initial state of the SDE gradient tests.
pub const SDE2_Y0: [f64; 2] = [0.4, -0.2];

/// The two-state Itô SDE of [`Drift2`] and [`Diff2`] with diagonal noise on
/// [0, 1], from `y0` with parameters `p`.
pub fn sde2(p: &[f64], y0: &[f64]) -> Problem<Generic<Drift2>, Generic<Diff2>> {
    diagonal_sde(Drift2, Diff2, p, y0)
}

/// The Itô SDE with drift `f` and diagonal diffusion `g` (both written over
/// the scalar) on [0, 1], from `y0` with parameters `p`.
pub fn diagonal_sde<F: GenericField, G: GenericField>(
    f: F,
    g: G,
    p: &[f64],
    y0: &[f64],
) -> Problem<Generic<F>, Generic<G>> {
    Problem::sde_field(
        Generic(f),
        Generic(g),
        Noise::Diagonal,
        y0.to_vec(),
        (0.0, 1.0),
    )
    .params(p.to_vec())
}

/// `Σ_i Σ_k (y_k(t_i) − 0.3 t_i)²` over the saved states of a two-state
/// solve, with its gradient: the loss of the SDE gradient tests.
pub fn tracking_loss(ts: &[f64], ys: &[f64], g: &mut [f64]) -> f64 {
    let mut l = 0.0;
    for (i, &t) in ts.iter().enumerate() {
        for k in 0..2 {
            let d = ys[2 * i + k] - 0.3 * t;
            l += d * d;
            g[2 * i + k] = 2.0 * d;
        }
    }
    l
}

/// `Σ y²` over all the saved values.
pub fn sum_of_squares(_ts: &[f64], ys: &[f64], g: &mut [f64]) -> f64 {
    for (g, y) in g.iter_mut().zip(ys) {
        *g = 2.0 * y;
    }
    ys.iter().map(|y| y * y).sum()
}

/// `Σ y²` over the values saved at the times `obs` only: on
/// `SaveAt::Steps` of steps that end on `obs`, the same loss as
/// [`sum_of_squares`] on `SaveAt::Times(obs)`.
pub fn sum_of_squares_at(obs: &[f64]) -> impl Fn(&[f64], &[f64], &mut [f64]) -> f64 + '_ {
    move |ts: &[f64], ys: &[f64], g: &mut [f64]| {
        let n = ys.len() / ts.len();
        let mut v = 0.0;
        for (i, t) in ts.iter().enumerate() {
            let read = f64::from(u8::from(obs.contains(t)));
            for k in n * i..n * (i + 1) {
                v += read * ys[k] * ys[k];
                g[k] = read * 2.0 * ys[k];
            }
        }
        v
    }
}

/// The last entry of the saved values (the last component of the last
/// state) as a loss.
pub fn last_entry_loss(_ts: &[f64], ys: &[f64], g: &mut [f64]) -> f64 {
    g.iter_mut().for_each(|v| *v = 0.0);
    let k = ys.len() - 1;
    g[k] = 1.0;
    ys[k]
}

/// Asserts that the gradients `a` and `b` (`dp` and `dy0`) agree to `rel`
/// relative, entries below `floor` in size to `rel · floor`.
pub fn assert_gradients_agree(a: &Gradient, b: &Gradient, rel: f64, floor: f64) {
    let pairs = a.dp.iter().zip(&b.dp).chain(a.dy0.iter().zip(&b.dy0));
    for (x, y) in pairs {
        assert!((x - y).abs() <= rel * x.abs().max(floor), "{x} vs {y}");
    }
}

/// Asserts that the message of the error `e` says each of `words`.
pub fn assert_says(e: &impl std::fmt::Display, words: &[&str]) {
    let text = e.to_string();
    for w in words {
        assert!(text.contains(w), "no {w:?} in: {text}");
    }
}

/// Asserts `|got[j] − want[j]| < rel · |want[j]|` for every `j` (`what`
/// names the comparison).
pub fn assert_close(what: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (j, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() < rel * w.abs(), "{what} [{j}]: {g} vs {w}");
    }
}

/// The central difference `(f(x + h e_j) − f(x − h e_j)) / 2h` of `f` at
/// `x` along axis `j`.
pub fn central_difference(f: impl Fn(&[f64]) -> f64, x: &[f64], j: usize, h: f64) -> f64 {
    let (mut a, mut b) = (x.to_vec(), x.to_vec());
    a[j] += h;
    b[j] -= h;
    (f(&a) - f(&b)) / (2.0 * h)
}

/// The central-difference gradient (step `h`) of `value(x0, p)` in the
/// shape of `g`: its `dp` and `dy0` replaced, the rest copied.
pub fn fd_gradient_like(
    g: &Gradient,
    x0: &[f64],
    p: &[f64],
    h: f64,
    value: impl Fn(&[f64], &[f64]) -> f64,
) -> Gradient {
    Gradient {
        dp: (0..p.len())
            .map(|j| central_difference(|q| value(x0, q), p, j, h))
            .collect(),
        dy0: (0..x0.len())
            .map(|j| central_difference(|y| value(y, p), x0, j, h))
            .collect(),
        ..g.clone()
    }
}

/// Checks the gradient `g` of a solve's loss against central differences
/// (step 1e-5) of `value(y0, p)` at `(x0, p)`: prints both under `what`
/// and asserts agreement to 1e-6 relative above `floor`
/// ([`assert_gradients_agree`]). Returns the differences.
pub fn assert_matches_fd(
    what: &str,
    g: &Gradient,
    x0: &[f64],
    p: &[f64],
    floor: f64,
    value: impl Fn(&[f64], &[f64]) -> f64,
) -> Gradient {
    let fd = fd_gradient_like(g, x0, p, 1e-5, value);
    println!(
        "{what}: adjoint dp {:?} dy0 {:?}; FD dp {:?} dy0 {:?}",
        g.dp, g.dy0, fd.dp, fd.dy0
    );
    assert_gradients_agree(g, &fd, 1e-6, floor);
    fd
}

/// Asserts that the errors `errs` of ever finer solves fall strictly and
/// that the last is below `bound` (`what` names the case in the messages).
pub fn assert_converges(what: &str, errs: &[f64], bound: f64) {
    assert!(errs.windows(2).all(|w| w[0] > w[1]), "{what}: {errs:?}");
    assert!(errs[errs.len() - 1] < bound, "{what}: {errs:?}");
}

/// The value of `loss` on the solution of `problem` by `method` with
/// `options` (a solve that must succeed).
pub fn loss_of_solve<F: Drift, G: Diffusion, D: Driver>(
    problem: &Problem<F, G, D>,
    method: impl Method<Problem<F, G, D>>,
    options: &Options,
    loss: &dyn Loss,
) -> f64 {
    let sol = solve(problem, method, options).expect("solve");
    let mut g = vec![0.0; sol.ys.len()];
    loss.eval(&sol.ts, &sol.ys, &mut g)
}

/// The solution of `problem` by `method` at rtol = atol = `tol`, saved at
/// `save_at` (a solve that must succeed).
pub fn solve_tol<F: Drift, G: Diffusion, D: Driver>(
    problem: &Problem<F, G, D>,
    method: impl Method<Problem<F, G, D>>,
    tol: f64,
    save_at: SaveAt,
) -> Solution {
    solve(
        problem,
        method,
        Options::default().tol(tol).save_at(save_at),
    )
    .expect("solve")
}
