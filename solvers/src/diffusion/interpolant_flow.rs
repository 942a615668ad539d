//! Sampling a stochastic interpolant: the probability-flow ODE `Ẋ = b(t, X)`
//! and the SDE family with tunable diffusion `ε(t) ≥ 0`,
//! forward `dX = (b + ε s) dt + √(2ε) dW` (`t: 0 → 1`) and backward
//! `dX = (b − ε s) dt + √(2ε) dW̄` (`t: 1 → 0`), all with the marginals
//! of the interpolant (Albergo, Boffi & Vanden-Eijnden, arXiv 2303.08797,
//! Theorems 2.8–2.9; repo `SDEIntegrator`; `../shared/reference/diffusion.md`
//! §6).
//!
//! The models are fields ([`Drift`]: closures `|t, x, p, out|`, generic
//! fields for gradients, networks) for the velocity `b` and the score `s`;
//! a velocity `v = E[∂_t I | x_t]` and a score combine into
//! `b = v − γ γ̇ s` ([`VelocityFromVs`]). The problems are ordinary
//! [`Problem`]s: any ODE solver (Tsit5, Vern7) runs the flow, and any SDE
//! solver for additive noise runs the SDE family ([`crate::sde::EulerMaruyama`],
//! the order-1.5 [`crate::sde::Sra1`]); the noise comes from the problem's
//! driver, so a sample is reproducible on a seed and the discrete adjoint
//! differentiates through it (fields with VJPs give [`DriftVjp`]).

use super::interpolant::{Interpolant, check_span};
use crate::brownian::VirtualTree;
use crate::error::SolveError;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::noise::Noise;
use crate::problem::Problem;
use std::cell::RefCell;

thread_local! {
    /// Scratch buffers for fields that combine two model outputs (a stack,
    /// so nested combinations get their own): allocated on a thread's first
    /// evaluation, reused after.
    static SCRATCH: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a scratch buffer of length `n` from the thread's pool.
fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
    let mut buf = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    buf.resize(n, 0.0);
    let r = f(&mut buf);
    SCRATCH.with(|s| s.borrow_mut().push(buf));
    r
}

/// `out += c · m(t, y, p)` for a model `m` (its output in a scratch
/// buffer; `c = 0` evaluates nothing).
fn add_scaled<M: Drift>(m: &M, c: f64, at: (f64, &[f64], &[f64]), out: &mut [f64]) {
    if c == 0.0 {
        return;
    }
    let (t, y, p) = at;
    with_scratch(y.len(), |s| {
        m.drift(t, y, p, s);
        for (o, si) in out.iter_mut().zip(s.iter()) {
            *o += c * si;
        }
    });
}

/// `out += c · (vᵀ ∂m/∂(y, p))` for a model `m` whose VJP adds
/// `vᵀ ∂m`: the accumulators are divided by `c`, the VJP added, and the
/// sum multiplied back (no buffer; `c = 0` adds nothing).
fn scaled_vjp<M: DriftVjp>(
    m: &M,
    c: f64,
    at: (f64, &[f64], &[f64]),
    v: &[f64],
    oy: &mut [f64],
    op: &mut [f64],
) {
    if c == 0.0 {
        return;
    }
    let (t, y, p) = at;
    oy.iter_mut().chain(op.iter_mut()).for_each(|o| *o /= c);
    m.drift_vjp(t, y, p, v, oy, op);
    oy.iter_mut().chain(op.iter_mut()).for_each(|o| *o *= c);
}

/// The velocity `b = v − γ γ̇ s` of an interpolant from a model `v` of
/// `E[∂_t I | x_t = x]` and a score model `s` (repo `BFromVS`).
#[derive(Debug, Clone)]
pub struct VelocityFromVs<V, S, I> {
    /// The model of `v`.
    pub v: V,
    /// The score model.
    pub s: S,
    /// The interpolant (for `γ γ̇`).
    pub interpolant: I,
}

impl<V: Drift, S: Drift, I: Interpolant> Drift for VelocityFromVs<V, S, I> {
    fn drift(&self, t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
        let gg = self.interpolant.coefficients(t).gamma_gamma_dot;
        self.v.drift(t, y, p, dy);
        add_scaled(&self.s, -gg, (t, y, p), dy);
    }

    fn check_dims(&self, n: usize, n_params: usize) -> Result<(), SolveError> {
        self.v.check_dims(n, n_params)?;
        self.s.check_dims(n, n_params)
    }
}

impl<V: DriftVjp, S: DriftVjp, I: Interpolant> DriftVjp for VelocityFromVs<V, S, I> {
    fn drift_vjp(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], oy: &mut [f64], op: &mut [f64]) {
        let gg = self.interpolant.coefficients(t).gamma_gamma_dot;
        scaled_vjp(&self.s, -gg, (t, y, p), v, oy, op);
        self.v.drift_vjp(t, y, p, v, oy, op);
    }
}

/// The diffusion coefficient `ε(t) ≥ 0` of the interpolant SDE family:
/// a constant ([`f64`]) or any `Fn(f64) -> f64`.
pub trait Diffusivity {
    /// `ε(t)`.
    fn epsilon(&self, t: f64) -> f64;
}

impl Diffusivity for f64 {
    fn epsilon(&self, _t: f64) -> f64 {
        *self
    }
}

impl<F: Fn(f64) -> f64> Diffusivity for F {
    fn epsilon(&self, t: f64) -> f64 {
        self(t)
    }
}

/// `ε(t)` as the fields use it: negative values (possible between the
/// probes of the constructor's check) count as 0.
#[inline]
fn eps_at<E: Diffusivity + ?Sized>(e: &E, t: f64) -> f64 {
    e.epsilon(t).max(0.0)
}

/// Which SDE of the family: forward in time (`t: 0 → 1`, drift
/// `b + ε s`, generation from the base) or backward (`t: 1 → 0`, drift
/// `b − ε s`, from data to the base). The SDE solvers run forward in
/// time, so the backward SDE is solved in the reversed time `τ = 1 − t`:
/// `dX = −(b − ε s)(1 − τ) dτ + √(2ε(1 − τ)) dW_τ`, the same law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdeDirection {
    /// `dX = (b + ε s) dt + √(2ε) dW`, run from `t0` up to `t1 > t0`.
    Forward,
    /// `dX = (b − ε s) dt + √(2ε) dW̄`, run from `t0` down to `t1 < t0`
    /// (the solution's times are `τ = 1 − t`).
    Backward,
}

/// The drift `b + ε(t) s` of the forward interpolant SDE, or
/// `−(b − ε s)(1 − τ)` of the backward one in the reversed time `τ`.
#[derive(Debug, Clone)]
pub struct InterpolantDrift<B, S, E> {
    /// The velocity model `b`.
    pub b: B,
    /// The score model `s`.
    pub s: S,
    /// The diffusion coefficient `ε(t)`.
    pub epsilon: E,
    /// Backward: the time is `τ = 1 − t`.
    reversed: bool,
}

/// The interpolant's time `t` at the problem's time (`1 − τ` reversed).
#[inline]
fn time(reversed: bool, tau: f64) -> f64 {
    if reversed { 1.0 - tau } else { tau }
}

impl<B: Drift, S: Drift, E: Diffusivity> Drift for InterpolantDrift<B, S, E> {
    fn drift(&self, tau: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
        // forward b + ε s; reversed −(b − ε s) = −b + ε s
        let t = time(self.reversed, tau);
        self.b.drift(t, y, p, dy);
        if self.reversed {
            dy.iter_mut().for_each(|v| *v = -*v);
        }
        add_scaled(&self.s, eps_at(&self.epsilon, t), (t, y, p), dy);
    }

    fn check_dims(&self, n: usize, n_params: usize) -> Result<(), SolveError> {
        self.b.check_dims(n, n_params)?;
        self.s.check_dims(n, n_params)
    }
}

impl<B: DriftVjp, S: DriftVjp, E: Diffusivity> DriftVjp for InterpolantDrift<B, S, E> {
    fn drift_vjp(&self, tau: f64, y: &[f64], p: &[f64], v: &[f64], oy: &mut [f64], op: &mut [f64]) {
        let t = time(self.reversed, tau);
        scaled_vjp(&self.s, eps_at(&self.epsilon, t), (t, y, p), v, oy, op);
        if self.reversed {
            scaled_vjp(&self.b, -1.0, (t, y, p), v, oy, op);
        } else {
            self.b.drift_vjp(t, y, p, v, oy, op);
        }
    }
}

/// The noise `√(2ε(t))` of the interpolant SDE, the same for every entry
/// ([`Noise::Additive`]).
#[derive(Debug, Clone)]
pub struct InterpolantNoise<E> {
    /// The diffusion coefficient `ε(t)`.
    pub epsilon: E,
    /// Backward: the time is `τ = 1 − t`.
    reversed: bool,
}

impl<E: Diffusivity> Diffusion for InterpolantNoise<E> {
    fn diffusion(&self, tau: f64, _y: &[f64], _p: &[f64], g: &mut [f64]) {
        let t = time(self.reversed, tau);
        g.fill((2.0 * eps_at(&self.epsilon, t)).sqrt());
    }
}

/// `√(2ε)` depends on `t` only: its VJP adds nothing.
impl<E: Diffusivity> DiffusionVjp for InterpolantNoise<E> {
    fn diffusion_vjp(&self, _: f64, _: &[f64], _: &[f64], _: &[f64], _: &mut [f64], _: &mut [f64]) {
    }
}

/// The interpolant SDE family as a problem: drift [`InterpolantDrift`],
/// additive noise [`InterpolantNoise`], noise from the driver `D`.
pub type InterpolantSde<B, S, E, D = VirtualTree> =
    Problem<InterpolantDrift<B, S, E>, InterpolantNoise<E>, D>;

/// Checks an initial state: non-empty and finite.
fn check_state(x: &[f64]) -> Result<(), SolveError> {
    if x.is_empty() {
        return Err(SolveError::invalid(
            "interpolant initial state",
            "it is empty; give the samples, flattened (sample after sample)",
        ));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(SolveError::invalid(
            format!("interpolant initial state[{i}]"),
            format!("{} is not finite; every initial value must be", x[i]),
        ));
    }
    Ok(())
}

/// The probability-flow ODE `Ẋ = b(t, X)` of an interpolant's velocity
/// model `b` (a closure `|t, x, p, out|`, a [`crate::dual::Generic`] field,
/// a network), from `x0` at `tspan.0` to `tspan.1`, both in `[0, 1]`
/// (base at 0, data at 1; a batch of samples is one state, flattened).
/// Any ODE solver runs it.
///
/// ```
/// use sdeflow_solvers::diffusion::interpolant_ode;
/// use sdeflow_solvers::{erk::Tsit5, options::Options, solve};
/// // the linear one-sided interpolant of data N(2, 1) from N(0, 1):
/// // x_t ~ N(2t, (1 − t)² + t²), b(t, x) = 2 + (2t − 1)(x − 2t)/((1 − t)² + t²)
/// let b = |t: f64, x: &[f64], _p: &[f64], out: &mut [f64]| {
///     for (o, &xv) in out.iter_mut().zip(x) {
///         *o = 2.0 + (2.0 * t - 1.0) * (xv - 2.0 * t) / ((1.0 - t).powi(2) + t * t);
///     }
/// };
/// let problem = interpolant_ode(b, vec![0.3], (0.0, 1.0))?;
/// let sol = solve(&problem, Tsit5, Options::default().rtol(1e-10).atol(1e-10))?;
/// assert!((sol.last()[0] - 2.3).abs() < 1e-8); // x_1 = μ + x_0
/// # Ok::<(), sdeflow_solvers::error::SolveError>(())
/// ```
pub fn interpolant_ode<B: Drift>(
    b: B,
    x0: impl Into<Vec<f64>>,
    tspan: (f64, f64),
) -> Result<Problem<B>, SolveError> {
    check_span(tspan)?;
    let x0 = x0.into();
    check_state(&x0)?;
    Ok(Problem::ode_field(b, x0, tspan))
}

/// Checks `ε` on 1001 uniform probes of the span: finite and `≥ 0`.
fn check_epsilon<E: Diffusivity>(e: &E, tspan: (f64, f64)) -> Result<(), SolveError> {
    const PROBES: usize = 1000;
    for k in 0..=PROBES {
        let t = tspan.0 + (tspan.1 - tspan.0) * k as f64 / PROBES as f64;
        let v = e.epsilon(t);
        if !(v.is_finite() && v >= 0.0) {
            return Err(SolveError::InvalidInput {
                what: "interpolant SDE ε(t)".into(),
                reason: format!(
                    "ε({t}) = {v}; the diffusion coefficient must be finite and ≥ 0 on the \
                     span (0 gives the probability-flow ODE)"
                ),
            });
        }
    }
    Ok(())
}

/// The interpolant SDE with velocity model `b`, score model `s` and
/// diffusion coefficient `epsilon` (`ε(t) ≥ 0`: a constant or a closure
/// `|t| ...`), from `x0` at `tspan.0` to `tspan.1` in `[0, 1]`:
/// [`SdeDirection::Forward`] runs `dX = (b + ε s) dt + √(2ε) dW` up
/// (`tspan.1 > tspan.0`), [`SdeDirection::Backward`] runs
/// `dX = (b − ε s) dt + √(2ε) dW̄` down (as a forward SDE in `τ = 1 − t`:
/// the problem's span and the solution's times are in `τ`). Additive noise, one Brownian
/// motion per entry from the problem's driver (the options' seed fixes the
/// sample). The score's Lipschitz constant near the data end is about
/// `1/(β² v_min + α²)` for data of smallest variance `v_min` (like `1/α²`
/// for data on a thin set), so an explicit step needs `h ε ≲` its inverse:
/// take small steps there, an `ε(t)` that vanishes there (e.g.
/// `ε = c (1 − t)²` for the linear path), or stop short of `t = 1`.
/// Solvers: any SDE solver for additive Itô noise —
/// [`crate::sde::EulerMaruyama`] (the repo's EM step), the order-1.5
/// [`crate::sde::Sra1`] as the higher-order one.
///
/// ```
/// use sdeflow_solvers::diffusion::{interpolant_sde, SdeDirection};
/// use sdeflow_solvers::{options::Options, sde::EulerMaruyama, solve};
/// // data N(0, 1) from base N(0, 1), linear one-sided: b = (2t − 1) x/C, s = −x/C
/// let c = |t: f64| (1.0 - t).powi(2) + t * t;
/// let b = move |t: f64, x: &[f64], _p: &[f64], o: &mut [f64]| o[0] = (2.0 * t - 1.0) * x[0] / c(t);
/// let s = move |t: f64, x: &[f64], _p: &[f64], o: &mut [f64]| o[0] = -x[0] / c(t);
/// let eps = |t: f64| 0.5 * (1.0 - t).powi(2);
/// let problem = interpolant_sde(b, s, eps, SdeDirection::Forward, vec![0.4], (0.0, 1.0))?;
/// let opts = Options::default().fixed_step(0.01).seed(3);
/// let a = solve(&problem, EulerMaruyama, opts.clone())?;
/// assert_eq!(a.last(), solve(&problem, EulerMaruyama, opts)?.last()); // reproducible
/// # Ok::<(), sdeflow_solvers::error::SolveError>(())
/// ```
pub fn interpolant_sde<B: Drift, S: Drift, E: Diffusivity + Clone>(
    b: B,
    s: S,
    epsilon: E,
    direction: SdeDirection,
    x0: impl Into<Vec<f64>>,
    tspan: (f64, f64),
) -> Result<InterpolantSde<B, S, E>, SolveError> {
    check_span(tspan)?;
    let x0 = x0.into();
    check_state(&x0)?;
    let reversed = direction == SdeDirection::Backward;
    if (tspan.1 > tspan.0) == reversed {
        return Err(SolveError::InvalidInput {
            what: "interpolant SDE tspan".into(),
            reason: format!(
                "{direction:?} runs {} in time, but the span is {tspan:?}; swap its ends or \
                 the direction",
                if reversed { "down" } else { "up" }
            ),
        });
    }
    check_epsilon(&epsilon, tspan)?;
    let noise = InterpolantNoise {
        epsilon: epsilon.clone(),
        reversed,
    };
    let drift = InterpolantDrift {
        b,
        s,
        epsilon,
        reversed,
    };
    let span = (time(reversed, tspan.0), time(reversed, tspan.1));
    Ok(Problem::sde_field(drift, noise, Noise::Additive, x0, span))
}
