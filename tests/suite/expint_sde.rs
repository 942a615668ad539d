//! Stochastic exponential Euler (`sdeflow::expint::StochasticExpEuler`,
//! issue #13 part 3) on `dX = (L X + N) dt + G dW`, diagonal `L`, additive
//! noise, driven by the convolutions of `ConvolutionNoise`.
//!
//! * The driver: convolutions over `[a, c]` compose exactly from `[a, b]`
//!   and `[b, c]` whatever the query order (what rejected steps and
//!   replays need).
//! * The linear OU SDE (`N = 0`): pathwise the same end state at every step
//!   size (exact transition on a fixed path), and mean and covariance
//!   within Monte Carlo bounds at `h |λ| = 100`.
//! * Strong order 1 on a nonlinear problem, each level on the same paths
//!   as a fine reference (fitted slope of the mean end error).
//! * Gradients (discrete adjoint) in `X0`, a parameter of `N` and one of
//!   `G` against central finite differences of the same-seed solve, 1e-6
//!   relative.
//! * Bad input: a growing `L`, a driver built for another `L`, a
//!   parameter-dependent or dense `L` — typed errors.

use crate::common;
use common::{assert_order, assert_says, central_difference};
use nalgebra::DMatrix;
use sdeflow::expint::{
    ConvolutionNoise, Dense, Diagonal, ParamDiagonal, Semilinear, StochasticExpEuler,
};
use sdeflow::noise::{BrownianPath, Driver};
use sdeflow::prelude::*;

#[test]
fn convolutions_compose_exactly_across_query_orders() {
    let gammas = [100.0, 2.0];
    let noise = ConvolutionNoise::new(&gammas).unwrap();
    let mut path = noise.path((0.0, 1.0), 2, 5).unwrap();
    let (mut dw, mut xi) = ([0.0f64; 2], [0.0f64; 4]);
    let (mut dw1, mut xi1) = ([0.0f64; 2], [0.0f64; 4]);
    let (mut dw2, mut xi2) = ([0.0f64; 2], [0.0f64; 4]);
    // the whole, then a "rejected" shorter query, then the two parts
    path.increment_with_modes(0.1, 0.7, &mut dw, &mut xi);
    path.increment_with_modes(0.1, 0.3, &mut dw1, &mut xi1);
    path.increment_with_modes(0.3, 0.7, &mut dw2, &mut xi2);
    for j in 0..2 {
        assert!((dw[j] - dw1[j] - dw2[j]).abs() < 1e-12, "ΔW_{j}");
        for (k, &g) in gammas.iter().enumerate() {
            // ξ(a, c) = e^{−γ (c − b)} ξ(a, b) + ξ(b, c)
            let composed = (-g * 0.4f64).exp() * xi1[j * 2 + k] + xi2[j * 2 + k];
            assert!(
                (xi[j * 2 + k] - composed).abs() < 1e-12,
                "ξ_{k} of W_{j}: {} vs {composed}",
                xi[j * 2 + k]
            );
        }
    }
    // a second path object of the same seed answers the same
    let mut again = noise.path((0.0, 1.0), 2, 5).unwrap();
    again.increment_with_modes(0.1, 0.3, &mut dw2, &mut xi2);
    assert_eq!((dw1, xi1), (dw2, xi2));
}

/// `dX = L X dt + G dW`, `L = diag(λ)`, a 2 × 2 `G` (general noise).
fn ou(
    lam: [f64; 2],
    x0: [f64; 2],
    t1: f64,
) -> Problem<
    Semilinear<Diagonal, impl Drift + Clone + use<>>,
    impl Diffusion + Clone + use<>,
    ConvolutionNoise,
> {
    let n = |_t: f64, _x: &[f64], _p: &[f64], out: &mut [f64]| out.fill(0.0);
    let g = |_t: f64, _x: &[f64], _p: &[f64], g: &mut [f64]| g.copy_from_slice(&G_OU);
    Problem::sde_field(
        Semilinear::new(Diagonal(lam.to_vec()), n),
        g,
        Noise::General(2),
        x0.to_vec(),
        (0.0, t1),
    )
    .driver(ConvolutionNoise::for_diagonal(&lam).expect("rates of L"))
}

/// `G = [[1, 0.5], [0, 0.8]]`, column-major.
const G_OU: [f64; 4] = [1.0, 0.0, 0.5, 0.8];

#[test]
fn the_ou_transition_is_exact_on_a_fixed_path_at_every_step_size() {
    let prob = ou([-100.0, -0.7], [1.0, -2.0], 1.0);
    let end = |h: f64| {
        let o = Options::default()
            .fixed_step(h)
            .seed(11)
            .save_at(SaveAt::T1);
        solve(&prob, StochasticExpEuler, o).unwrap().last().to_vec()
    };
    let coarse = end(1.0);
    for h in [0.5, 1.0 / 16.0, 1.0 / 128.0] {
        let fine = end(h);
        let d = common::max_abs_diff(&coarse, &fine);
        println!("OU end state at h = 1 vs h = {h}: {d:.2e}");
        assert!(d < 1e-10, "h = {h}: {coarse:?} vs {fine:?}");
    }
}

#[test]
fn the_ou_law_is_exact_at_h_lambda_100() {
    // One step of h = 1 with λ = (−100, −0.7): h|λ_1| = 100. The end law is
    // N(e^{hL} x0, Q) with Q_ij = (GGᵀ)_ij (1 − e^{(λ_i + λ_j)h})/(−λ_i − λ_j).
    let (lam, x0, h) = ([-100.0, -0.7], [1.0, -2.0], 1.0);
    let prob = ou(lam, x0, h);
    let paths = 4000;
    let mut xs = Vec::with_capacity(paths);
    for s in 0..paths as u64 {
        let o = Options::default()
            .fixed_step(h)
            .seed(1000 + s)
            .save_at(SaveAt::T1);
        let sol = solve(&prob, StochasticExpEuler, o).unwrap();
        xs.push([sol.last()[0], sol.last()[1]]);
    }
    let gm = DMatrix::from_column_slice(2, 2, &G_OU);
    let ggt = &gm * gm.transpose();
    let q = |i: usize, j: usize| {
        let a = lam[i] + lam[j];
        ggt[(i, j)] * ((a * h).exp() - 1.0) / a
    };
    let mean: Vec<f64> = (0..2).map(|i| (lam[i] * h).exp() * x0[i]).collect();
    let np = paths as f64;
    let m: Vec<f64> = (0..2)
        .map(|i| xs.iter().map(|x| x[i]).sum::<f64>() / np)
        .collect();
    let c = |i: usize, j: usize| {
        xs.iter()
            .map(|x| (x[i] - m[i]) * (x[j] - m[j]))
            .sum::<f64>()
            / (np - 1.0)
    };
    // 5 standard errors (two-sided, ~6e-7 each; 5 checks): mean SE √(Q_ii/n);
    // covariance SE √((Q_ii Q_jj + Q_ij²)/n) for Gaussian samples
    for i in 0..2 {
        let se = (q(i, i) / np).sqrt();
        println!("mean[{i}] {} vs {} (SE {se:.2e})", m[i], mean[i]);
        assert!((m[i] - mean[i]).abs() < 5.0 * se, "mean[{i}]");
        for j in i..2 {
            let se = ((q(i, i) * q(j, j) + q(i, j).powi(2)) / np).sqrt();
            println!("cov[{i}{j}] {} vs {} (SE {se:.2e})", c(i, j), q(i, j));
            assert!((c(i, j) - q(i, j)).abs() < 5.0 * se, "cov[{i}{j}]");
        }
    }
}

/// `N(t, x, p)_i = p0 sin(x_{i+1}) − 0.1 x_i³ + cos t`; `G = (p1, p1 x-free 0.3)`.
#[derive(Clone, Copy)]
pub(crate) struct Nl;
impl GenericField for Nl {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, x: &[D], p: &[D], out: &mut [D]) {
        let n = x.len();
        for i in 0..n {
            out[i] = p[0] * x[(i + 1) % n].sin() - x[i] * x[i] * x[i] * 0.1 + t.cos();
        }
    }
}

/// Additive diagonal `G = (p1, 0.3 + 0.5 sin t)`.
#[derive(Clone, Copy)]
pub(crate) struct Gadd;
impl GenericField for Gadd {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, _x: &[D], p: &[D], g: &mut [D]) {
        g[0] = p[1];
        g[1] = t.sin() * 0.5 + 0.3;
    }
}

const LAM: [f64; 2] = [-2.0, -20.0];
const P: [f64; 2] = [0.8, 0.6];
const X0: [f64; 2] = [0.5, -0.4];

fn nonlinear(
    p: &[f64],
    x0: &[f64],
) -> Problem<Semilinear<Diagonal, Generic<Nl>>, Generic<Gadd>, ConvolutionNoise> {
    Problem::sde_field(
        Semilinear::new(Diagonal(LAM.to_vec()), Generic(Nl)),
        Generic(Gadd),
        Noise::Additive,
        x0.to_vec(),
        (0.0, 1.0),
    )
    .params(p.to_vec())
    .driver(ConvolutionNoise::for_diagonal(&LAM).expect("rates of L"))
}

#[test]
fn strong_order_one_on_a_nonlinear_additive_problem() {
    // Mean over 16 paths of |X_h(1) − X_ref(1)|, the reference the same
    // method at h = 2^-13 on the same path; five levels h = 2^-3 … 2^-7.
    let prob = nonlinear(&P, &X0);
    let hs: Vec<f64> = (3..8).map(|k| 0.5f64.powi(k)).collect();
    let paths = 16u64;
    let mut errs = vec![0.0; hs.len()];
    for s in 0..paths {
        let end = |h: f64| {
            let o = Options::default()
                .fixed_step(h)
                .seed(40 + s)
                .save_at(SaveAt::T1);
            solve(&prob, StochasticExpEuler, o).unwrap().last().to_vec()
        };
        let reference = end(0.5f64.powi(13));
        for (e, &h) in errs.iter_mut().zip(&hs) {
            *e += common::max_abs_diff(&end(h), &reference) / paths as f64;
        }
    }
    // theory 1; margin 0.2 for 16 paths
    assert_order("StochasticExpEuler strong", &hs, &errs, 1.0, 0.2);
}

#[test]
fn gradients_match_finite_differences() {
    let opts = Options::default()
        .fixed_step(0.05)
        .seed(9)
        .save_at(SaveAt::T1);
    let loss = |_ts: &[f64], ys: &[f64], g: &mut [f64]| {
        let k = ys.len() - 2;
        g.fill(0.0);
        g[k] = 1.0;
        g[k + 1] = -2.0;
        ys[k] - 2.0 * ys[k + 1] + 0.0 * ys[k] * ys[k]
    };
    let g = grad(
        &nonlinear(&P, &X0),
        StochasticExpEuler,
        opts.clone(),
        &loss,
        Adjoint::Discrete { checkpoints: 4 },
    )
    .expect("grad");
    let f = |p: &[f64], x0: &[f64]| {
        common::loss_of_solve(&nonlinear(p, x0), StochasticExpEuler, &opts, &loss)
    };
    for j in 0..2 {
        let fd = central_difference(|a| f(a, &X0), &P, j, 1e-6);
        println!("dp[{j}] {} vs FD {fd}", g.dp[j]);
        assert!((g.dp[j] - fd).abs() < 1e-6 * fd.abs().max(1e-3), "dp[{j}]");
        let fd = central_difference(|a| f(&P, a), &X0, j, 1e-6);
        println!("dx0[{j}] {} vs FD {fd}", g.dy0[j]);
        assert!(
            (g.dy0[j] - fd).abs() < 1e-6 * fd.abs().max(1e-3),
            "dx0[{j}]"
        );
    }
}

#[derive(Clone, Copy)]
struct PL;
impl GenericField for PL {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, _x: &[D], p: &[D], out: &mut [D]) {
        out[0] = -p[0];
        out[1] = -p[0] * 2.0;
    }
}

#[test]
fn bad_linear_parts_and_drivers_are_typed_errors() {
    let o = || Options::default().fixed_step(0.1);
    let n = |_t: f64, _x: &[f64], _p: &[f64], out: &mut [f64]| out.fill(0.0);
    let g = |_t: f64, _x: &[f64], _p: &[f64], g: &mut [f64]| g.fill(0.3);
    let sde = |lin| {
        Problem::sde_field(
            Semilinear::new(lin, n),
            g,
            Noise::Additive,
            vec![1.0, 1.0],
            (0.0, 1.0),
        )
    };
    // a growing entry
    assert!(ConvolutionNoise::for_diagonal(&[-1.0, 2.0]).is_err());
    let e = solve(
        &sde(Diagonal(vec![-1.0, 2.0])).driver(ConvolutionNoise::new(&[1.0]).unwrap()),
        StochasticExpEuler,
        o(),
    )
    .unwrap_err();
    assert_says(&e, &["L[1]", "non-positive"]);
    // a driver built for another L
    let e = solve(
        &sde(Diagonal(vec![-1.0, -3.0])).driver(ConvolutionNoise::for_diagonal(&[-1.0]).unwrap()),
        StochasticExpEuler,
        o(),
    )
    .unwrap_err();
    assert_says(&e, &["driver", "for_diagonal"]);
    // non-finite and zero rates
    assert!(ConvolutionNoise::new(&[f64::NAN]).is_err());
    assert!(ConvolutionNoise::for_diagonal(&[0.0, 0.0]).is_err());
    // a parameter-dependent L, a dense L
    let param = Problem::sde_field(
        Semilinear::new(ParamDiagonal(PL), n),
        g,
        Noise::Additive,
        vec![1.0, 1.0],
        (0.0, 1.0),
    )
    .params(vec![1.0])
    .driver(ConvolutionNoise::for_diagonal(&[-1.0, -2.0]).unwrap());
    let e = solve(&param, StochasticExpEuler, o()).unwrap_err();
    assert_says(
        &e,
        &[
            "StochasticExpEuler",
            "parameter-dependent",
            "CovarianceNoise",
        ],
    );
    let dense = Problem::sde_field(
        Semilinear::new(Dense(DMatrix::from_element(2, 2, -1.0)), n),
        g,
        Noise::Additive,
        vec![1.0, 1.0],
        (0.0, 1.0),
    )
    .driver(ConvolutionNoise::new(&[1.0]).unwrap());
    let e = solve(&dense, StochasticExpEuler, o()).unwrap_err();
    assert_says(&e, &["dense"]);
    // an ODE given the convolution driver
    let ode = Problem::ode_field(
        Semilinear::new(Diagonal(vec![-1.0, -1.0]), n),
        vec![1.0, 1.0],
        (0.0, 1.0),
    )
    .driver(ConvolutionNoise::new(&[1.0]).unwrap());
    let e = solve(&ode, StochasticExpEuler, o()).unwrap_err();
    assert_says(&e, &["ODE"]);
}
