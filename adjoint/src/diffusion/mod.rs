//! The continuous adjoint of a diffusion model's probability-flow ODE
//! (AdjointDPM: Pan, Liew, Tan, Feng, Yan, "AdjointDPM: adjoint sensitivity
//! method for gradient backpropagation of diffusion probabilistic models",
//! ICLR 2024, arXiv:2307.10711; AdjointDEIS: Blasingame & Liu, "AdjointDEIS:
//! efficient gradients for diffusion models", NeurIPS 2024). Formulas:
//! `../shared/reference/diffusion.md` §5.
//!
//! The gradient of a loss `L(x_0)` of a sample with respect to the initial
//! noise `x_T` and the model's parameters `θ` (a conditioning input is a
//! slice of the parameters) is that of the *continuous* flow map, computed
//! from the adjoint ODE solved backwards from `t_end` to `T` on the
//! sampler's time grid. Unlike the discrete adjoint ([`crate::grad`] with
//! [`crate::Adjoint::Discrete`]), which is exact for the computed sample, it
//! converges to the flow's gradient as the grid refines, at the order of its
//! backward integrator, and needs no step VJP of the sampler (any sampler
//! may produce the sample).
//!
//! # The reparametrised ODE and its adjoint
//!
//! With `y = x/α` and `ρ = σ/α = e^{−λ}`, the probability-flow ODE of a
//! noise prediction `ε̂` is `dy/dρ = ε̂(αy, t(ρ))` (DDIM's ODE; no stiff
//! linear term remains). Its adjoint, with `a_y = ∂L/∂y = α ∂L/∂x`, is
//! `da_y/dρ = −α (∂ε̂/∂x)ᵀ a_y`, `da_θ/dρ = −(∂ε̂/∂θ)ᵀ a_y`, from
//! `a_y = α_0 ∂L/∂x_0`, `a_θ = 0` at `ρ_0` up to `ρ_T`; then
//! `∂L/∂x_T = a_y(ρ_T)/α_T` and `∂L/∂θ = a_θ(ρ_T)`. The three right-hand
//! sides share one VJP of the model per evaluation point.
//!
//! Two backward integrators:
//!
//! - [`DiffusionAdjoint::Exponential`]: in `λ`, where
//!   `dz/dλ = e^{−λ} F(z, λ)` for `z = (y, a_y, a_θ)` and
//!   `F = (ε̂, −α Jᵀa_y, −(∂ε̂/∂θ)ᵀa_y)`, the weight `e^{−λ}` integrated
//!   exactly and `F` frozen at the step's start (order 1, the
//!   first-order step of AdjointDEIS) or extrapolated linearly through the
//!   previous point (order 2, the exponential Adams–Bashforth step of
//!   DPM-Solver++(2M) applied to the adjoint): [`ExpOrder`]. The forward
//!   states come from integrating `y` backwards with the same step
//!   ([`StateSource::Backsolve`], memory independent of the steps) or from
//!   the sampler's saved states ([`StateSource::Stored`], `N + 1` states
//!   kept, one model evaluation per step fewer);
//! - [`DiffusionAdjoint::Rho`]: the augmented system in `ρ` by an explicit
//!   Runge–Kutta method ([`RhoMethod`]: Euler, midpoint, RK4) on the grid's
//!   `ρ` values, re-solving `y` backwards, as AdjointDPM's code does with
//!   torchdiffeq's `odeint_adjoint`.
//!
//! The frozen exponential step *is* Euler in `ρ` (`∫e^{−λ}dλ = Δρ`), so the
//! two forms agree at first order on the same grid.

mod exponential;
mod rho;

use sdeflow_solvers::Method;
use sdeflow_solvers::diffusion::{DiffusionOde, FlowVjp, ModelVjp, NoiseSchedule};
use sdeflow_solvers::error::SolveError;
use sdeflow_solvers::options::{Options, SaveAt};
use sdeflow_solvers::solve;

use crate::{GradError, Gradient, Loss};

/// The order of the exponential adjoint step in `λ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpOrder {
    /// `F` frozen at the step's start (order 1): one VJP per step.
    First,
    /// `F` extrapolated linearly through the previous grid point (order 2,
    /// multistep; the first backward step is frozen): one VJP per step.
    Second,
}

/// Where the backward pass of [`DiffusionAdjoint::Exponential`] reads the
/// forward states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateSource {
    /// Integrates `y = x/α` backwards from the sample alongside the adjoint
    /// with the same step: one extra model evaluation per step, memory
    /// independent of the number of steps (the state and, at order 2, the
    /// previous right-hand side).
    Backsolve,
    /// Reads the sampler's states at the grid times (saved by the forward
    /// pass): `N + 1` states kept, no model evaluation in the backward pass.
    Stored,
}

/// An explicit Runge–Kutta method for [`DiffusionAdjoint::Rho`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RhoMethod {
    /// Forward Euler (order 1; AdjointDPM's default).
    Euler,
    /// The explicit midpoint rule (order 2).
    Midpoint,
    /// The classical fourth-order Runge–Kutta method.
    Rk4,
}

/// A continuous adjoint of the probability-flow ODE (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffusionAdjoint {
    /// Exponential-integrator steps in `λ` on the grid.
    Exponential {
        /// Order 1 (frozen) or 2 (multistep).
        order: ExpOrder,
        /// Where the forward states come from.
        states: StateSource,
    },
    /// The augmented system in `ρ = e^{−λ}` by an explicit Runge–Kutta
    /// method on the grid's `ρ` values, `y` re-solved backwards (one model
    /// evaluation and one VJP per stage).
    Rho(RhoMethod),
}

/// The continuous-adjoint gradient of `loss` on the sample that `sampler`
/// draws from `problem` on the grid `times` (from the noise time `T`,
/// `times[0]`, down to `t_end`, the last entry; e.g. from
/// [`sdeflow_solvers::diffusion::TimeGrid::times`]), by `adjoint`, with
/// the same grid for the backward pass. The loss sees the sample alone
/// (`ts = [t_end]`, `ys = x_0`). Returns `dL/dθ` (`dp`), `dL/dx_T`
/// (`dy0`), the forward solution (the final state, or every grid state for
/// [`StateSource::Stored`]), the backward VJPs (`vjps`), model evaluations
/// (`backward_drift_evals`) and the forward-trajectory vectors held at once
/// by the backward pass (`peak_stored_states`: `N + 1` stored states, or
/// the state and the right-hand sides an integrator keeps when solving
/// backwards).
///
/// ```
/// use sdeflow_adjoint::diffusion::{diffusion_gradient, DiffusionAdjoint, ExpOrder, RhoMethod, StateSource};
/// use sdeflow_solvers::diffusion::{ModelWithVjp, NoiseSchedule, Ddim, Parametrisation,
///     ProbabilityFlow, TimeGrid, VpLinear};
/// use sdeflow_solvers::problem::Problem;
/// // data N(θ, 1): ε̂ = σ (x − αθ), so x_0 = x_T + θ(α_0 − α_T) exactly
/// let s = VpLinear::default();
/// let model = ModelWithVjp {
///     model: move |t: f64, x: &[f64], p: &[f64], out: &mut [f64]| {
///         out[0] = s.sigma(t) * (x[0] - s.alpha(t) * p[0]);
///     },
///     vjp: move |t: f64, _x: &[f64], _p: &[f64], v: &[f64], ox: &mut [f64], op: &mut [f64]| {
///         ox[0] += s.sigma(t) * v[0];
///         op[0] -= s.sigma(t) * s.alpha(t) * v[0];
///     },
/// };
/// let flow = ProbabilityFlow::new(model, Parametrisation::Noise, s);
/// let problem = Problem::ode_field(flow, vec![0.4], (1.0, 1e-3)).params(vec![0.5]);
/// let times = TimeGrid::UniformLambda.times(&s, 1.0, 1e-3, 200)?;
/// // L = x_0: dL/dx_T = 1, dL/dθ = α_0 − α_T
/// let loss = |_ts: &[f64], x0: &[f64], g: &mut [f64]| {
///     g[0] = 1.0;
///     x0[0]
/// };
/// let rk4 = diffusion_gradient(&problem, Ddim, &times, &loss, DiffusionAdjoint::Rho(RhoMethod::Rk4))?;
/// assert!((rk4.dy0[0] - 1.0).abs() < 1e-6);
/// assert!((rk4.dp[0] - (s.alpha(1e-3) - s.alpha(1.0))).abs() < 1e-6);
/// // the second-order exponential form: one VJP per step, but a large error
/// // constant in `dL/dx_T` (the adjoint decays by 1/α_T ≈ 150 here)
/// let adjoint = DiffusionAdjoint::Exponential { order: ExpOrder::Second, states: StateSource::Backsolve };
/// let exp2 = diffusion_gradient(&problem, Ddim, &times, &loss, adjoint)?;
/// assert!((exp2.dy0[0] - 1.0).abs() < 3e-2);
/// assert!((exp2.dp[0] - (s.alpha(1e-3) - s.alpha(1.0))).abs() < 1e-3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn diffusion_gradient<M, S, X, L>(
    problem: &DiffusionOde<M, S>,
    sampler: X,
    times: &[f64],
    loss: &L,
    adjoint: DiffusionAdjoint,
) -> Result<Gradient, GradError>
where
    M: ModelVjp,
    S: NoiseSchedule,
    X: Method<DiffusionOde<M, S>>,
    L: Loss + ?Sized,
{
    let flow = &problem.drift;
    check_times(&flow.schedule, problem.tspan, times)?;
    let steps = times.len() - 1;
    let stored = matches!(
        adjoint,
        DiffusionAdjoint::Exponential {
            states: StateSource::Stored,
            ..
        }
    );
    let save_at = if stored { SaveAt::Steps } else { SaveAt::T1 };
    let options = if steps == 1 {
        Options::default().fixed_step(times[0] - times[1])
    } else {
        Options::default().grid(times[1..steps].to_vec())
    }
    .save_at(save_at);
    let solution = solve(problem, sampler, options)?;
    if stored && solution.len() != steps + 1 {
        return Err(GradError::Unsupported(format!(
            "the sampler saved {} states on a grid of {} times; StateSource::Stored needs a \
             sampler that steps exactly through the grid (a fixed-grid sampler), or use \
             StateSource::Backsolve",
            solution.len(),
            steps + 1
        )));
    }
    let n = solution.n;
    let x0 = solution.last().to_vec();
    let t_end = [times[steps]];
    let (l, dl_dx0) = run_loss(loss, &t_end, &x0)?;
    let p = &problem.params;
    let run = std::panic::AssertUnwindSafe(|| match adjoint {
        DiffusionAdjoint::Exponential { order, states } => {
            let stored_states = match states {
                StateSource::Stored => Some(&solution.ys[..]),
                StateSource::Backsolve => None,
            };
            exponential::backward(flow, p, times, &x0, &dl_dx0, order, stored_states)
        }
        DiffusionAdjoint::Rho(method) => rho::backward(flow, p, times, &x0, &dl_dx0, method),
    });
    let back = std::panic::catch_unwind(run).map_err(|payload| GradError::Panicked {
        closure: "model or its VJP",
        message: sdeflow_solvers::error::panic_message(&*payload),
    })?;
    let (dy0, dp) = (back.a_x, back.a_p);
    if let Some(i) = dy0.iter().chain(&dp).position(|v| !v.is_finite()) {
        return Err(GradError::Backward(SolveError::InvalidInput {
            what: "continuous diffusion adjoint".into(),
            reason: format!(
                "entry {i} of the gradient [dL/dx_T, dL/dθ] is not finite: the model or its \
                 VJP returned a non-finite value on the backward pass; check the model near \
                 t_end (σ → 0) or end the grid at a larger time"
            ),
        }));
    }
    debug_assert_eq!(dy0.len(), n);
    Ok(Gradient {
        loss: l,
        dp,
        dy0,
        solution,
        vjps: back.vjps,
        backward_drift_evals: back.model_evals,
        peak_stored_states: back.peak_stored,
    })
}

/// What a backward pass returns.
struct Backward {
    a_x: Vec<f64>,
    a_p: Vec<f64>,
    vjps: usize,
    model_evals: usize,
    peak_stored: usize,
}

/// `L` and `∂L/∂x_0` of the loss on the sample, checked finite.
fn run_loss<L: Loss + ?Sized>(
    loss: &L,
    t_end: &[f64],
    x0: &[f64],
) -> Result<(f64, Vec<f64>), GradError> {
    loss.check(t_end, x0.len()).map_err(GradError::Loss)?;
    let mut g = vec![0.0; x0.len()];
    let eval = std::panic::AssertUnwindSafe(|| loss.eval(t_end, x0, &mut g));
    let l = std::panic::catch_unwind(eval).map_err(|payload| GradError::Panicked {
        closure: "loss",
        message: sdeflow_solvers::error::panic_message(&*payload),
    })?;
    if !l.is_finite() {
        return Err(GradError::Loss(format!(
            "the loss returned {l} on the sample; it must be finite"
        )));
    }
    if let Some(i) = g.iter().position(|v| !v.is_finite()) {
        return Err(GradError::Loss(format!(
            "∂L/∂x_0[{i}] = {} is not finite",
            g[i]
        )));
    }
    Ok((l, g))
}

/// The grid must run from the problem's `T` down to its `t_end`, strictly
/// decreasing, at times of finite `λ`.
fn check_times<S: NoiseSchedule>(
    schedule: &S,
    tspan: (f64, f64),
    times: &[f64],
) -> Result<(), GradError> {
    let bad = |reason: String| {
        GradError::Solve(SolveError::InvalidInput {
            what: "continuous diffusion adjoint times".into(),
            reason,
        })
    };
    if times.len() < 2 {
        return Err(bad(format!(
            "{} time(s); the grid needs T and t_end at least (TimeGrid::times gives one)",
            times.len()
        )));
    }
    let last = times.len() - 1;
    if times[0] != tspan.0 || times[last] != tspan.1 {
        return Err(bad(format!(
            "the grid runs from {} to {}, the problem from {} to {}; give the problem's span",
            times[0], times[last], tspan.0, tspan.1
        )));
    }
    for (i, &t) in times.iter().enumerate() {
        schedule
            .check_time(&format!("continuous diffusion adjoint times[{i}]"), t)
            .map_err(GradError::Solve)?;
        if i > 0 && t.partial_cmp(&times[i - 1]) != Some(std::cmp::Ordering::Less) {
            return Err(bad(format!(
                "times[{i}] = {t} does not decrease from times[{}] = {}: the grid runs from \
                 noise (T) to data (t_end)",
                i - 1,
                times[i - 1]
            )));
        }
    }
    Ok(())
}

/// The augmented state `z = (y, a_y, a_θ)` at the sample (`t_end`, the
/// last grid time): `y = x_0/α`, `a_y = α ∂L/∂x_0`, `a_θ = 0`.
fn initial_state(
    flow: &dyn FlowVjp,
    times: &[f64],
    x0: &[f64],
    dl_dx0: &[f64],
    np: usize,
) -> Vec<f64> {
    let n = x0.len();
    let a_end = flow.schedule().alpha(times[times.len() - 1]);
    let mut z = vec![0.0; 2 * n + np];
    for k in 0..n {
        z[k] = x0[k] / a_end;
        z[n + k] = a_end * dl_dx0[k];
    }
    z
}

/// One evaluation point of the backward pass: writes
/// `F = (ε̂, −α Jᵀa_y, −(∂ε̂/∂θ)ᵀa_y)` at `(t, x)` into `f` (the `ε̂` part
/// only when `with_eps`); `scratch` is the length of `x`.
#[allow(clippy::too_many_arguments)]
fn rhs(
    flow: &dyn FlowVjp,
    t: f64,
    x: &[f64],
    p: &[f64],
    a_y: &[f64],
    with_eps: bool,
    scratch: &mut [f64],
    f: &mut [f64],
) {
    use sdeflow_solvers::diffusion::Parametrisation::Noise;
    let n = x.len();
    let (eps, rest) = f.split_at_mut(n);
    let (ga, gp) = rest.split_at_mut(n);
    if with_eps {
        flow.predict_in(Noise, t, x, p, eps);
    }
    ga.fill(0.0);
    gp.fill(0.0);
    flow.predict_vjp(Noise, t, x, p, a_y, scratch, ga, gp);
    let alpha = flow.schedule().alpha(t);
    ga.iter_mut().for_each(|v| *v *= -alpha);
    gp.iter_mut().for_each(|v| *v = -*v);
}
