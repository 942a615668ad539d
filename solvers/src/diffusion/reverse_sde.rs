//! The reverse SDE of a diffusion model as a problem family
//! ([`DiffusionSde`]), and the one [`Solver`] implementation the
//! reverse-SDE samplers share.
//!
//! The forward process `dx = f x dt + g dW` with `f = d log α/dt` and
//! `g² = dσ²/dt − 2 f σ² = −2 σ² dλ/dt` has the reverse-time SDE (Song et
//! al., "Score-based generative modeling through stochastic differential
//! equations", ICLR 2021, Eq. 6; `../shared/reference/diffusion.md` §4)
//! `dx = [f x − g² ∇log p_t] dt + g dW̄`, run from `T` down to `t_end`.
//! With `∇log p_t = −ε̂/σ` its drift is `f x − 2 σ λ̇ ε̂`: the
//! probability-flow velocity `f x − σ λ̇ ε̂` with the noise term doubled.
//! The noise is additive (`g` depends on `t` only), one Brownian motion per
//! state entry, drawn from the problem's noise driver (a virtual Brownian
//! tree unless [`crate::problem::Problem::driver`] says otherwise): a
//! sample is reproducible on a seed, and the discrete adjoint replays the
//! same increments.
//!
//! A reverse-SDE sampler is a [`Sampler`] whose [`Sampler::INCREMENT`]
//! asks for noise; its steps read the normalised draws in
//! [`super::Advance::noise`].

use super::model::{Model, Parametrisation, ProbabilityFlow};
use super::model_vjp::{FlowVjp, ModelVjp};
use super::sampler::{Sampler, SamplerCache, check_span, sampler_solver};
use super::schedule::NoiseSchedule;
use crate::brownian::{Driver, VirtualTree};
use crate::error::SolveError;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::noise::Noise;
use crate::problem::Problem;
use crate::solver::{DenseTable, Increment, Solver, StepArgsOf, StepStatus, StepTakenOf};

/// The drift `f x − 2 σ λ̇ ε̂(x, t)` of the reverse SDE of a model: a
/// [`ProbabilityFlow`] (model, parametrisation, schedule) read as the
/// reverse SDE's drift.
#[derive(Debug, Clone)]
pub struct ReverseSde<M, S> {
    /// The model and schedule.
    pub flow: ProbabilityFlow<M, S>,
}

/// The diffusion `g(t) = σ_t √(−2 dλ/dt)` of a schedule's forward SDE
/// (VP: `√β(t)`), the same for every state entry: the noise of the
/// reverse SDE ([`Noise::Additive`]).
#[derive(Debug, Clone, Copy)]
pub struct ReverseNoise<S> {
    /// The noise schedule.
    pub schedule: S,
}

/// The reverse-SDE family: a [`Problem`] whose drift is a [`ReverseSde`]
/// and whose diffusion is the schedule's [`ReverseNoise`], integrated from
/// the noise time `T` down to `t_end` by the reverse-SDE samplers
/// ([`super::ReverseEulerMaruyama`], [`super::DdpmAncestral`],
/// [`super::SdeDpmSolver1`], [`super::SdeDpmSolverPP2M`],
/// [`super::LangevinPc`], [`super::DdimEta`], [`super::EdmChurn`]).
pub type DiffusionSde<M, S, D = VirtualTree> = Problem<ReverseSde<M, S>, ReverseNoise<S>, D>;

/// `g(t)²` of the schedule: `−2 σ_t² dλ/dt`.
#[inline]
pub(crate) fn g_squared<S: NoiseSchedule + ?Sized>(sched: &S, t: f64) -> f64 {
    let s = sched.sigma(t);
    -2.0 * s * s * sched.d_lambda(t)
}

impl<M: Model, S: NoiseSchedule> Drift for ReverseSde<M, S> {
    #[inline]
    fn drift(&self, t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
        let sched = &self.flow.schedule;
        self.flow.model.predict(t, y, p, dy);
        self.flow
            .parametrisation
            .convert(Parametrisation::Noise, sched, t, y, dy);
        let (fx, ce) = reverse_coefficients(sched, t);
        for (o, &x) in dy.iter_mut().zip(y) {
            *o = fx * x + ce * *o;
        }
    }
}

/// The coefficients `(f, −2 σ λ̇)` of `x` and `ε̂` in the reverse drift.
#[inline]
fn reverse_coefficients<S: NoiseSchedule + ?Sized>(sched: &S, t: f64) -> (f64, f64) {
    (
        sched.d_log_alpha(t),
        -2.0 * sched.sigma(t) * sched.d_lambda(t),
    )
}

/// The reverse drift of a model with a VJP has one, and exposes the flow
/// to the samplers' step VJPs. With `u` the probability-flow velocity the
/// reverse drift is `2u − f x`, so its VJP is twice the flow's minus `f v`
/// (two model VJPs, allocation-free; the samplers' own step VJPs do not
/// use it).
impl<M: ModelVjp, S: NoiseSchedule> DriftVjp for ReverseSde<M, S> {
    fn drift_vjp(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], oy: &mut [f64], op: &mut [f64]) {
        self.flow.drift_vjp(t, y, p, v, oy, op);
        self.flow.drift_vjp(t, y, p, v, oy, op);
        let f = self.flow.schedule.d_log_alpha(t);
        for (o, &vi) in oy.iter_mut().zip(v) {
            *o -= f * vi;
        }
    }

    fn probability_flow(&self) -> Option<&dyn FlowVjp> {
        Some(&self.flow)
    }
}

impl<S: NoiseSchedule> Diffusion for ReverseNoise<S> {
    #[inline]
    fn diffusion(&self, t: f64, _y: &[f64], _p: &[f64], g: &mut [f64]) {
        g.fill(g_squared(&self.schedule, t).max(0.0).sqrt());
    }
}

/// `g` depends on `t` only: its VJP adds nothing.
impl<S: NoiseSchedule> DiffusionVjp for ReverseNoise<S> {
    fn diffusion_vjp(&self, _: f64, _: &[f64], _: &[f64], _: &[f64], _: &mut [f64], _: &mut [f64]) {
    }
}

/// The reverse SDE of `model` (predicting `parametrisation`) under
/// `schedule`, from the noise `x_T` at `tspan.0` down to `tspan.1`
/// (additive noise, one Brownian motion per entry, from the default
/// driver; the options' seed fixes the sample).
///
/// ```
/// use sdeflow_solvers::diffusion::{reverse_sde, Parametrisation, SdeDpmSolverPP2M, TimeGrid, VpLinear};
/// use sdeflow_solvers::solve;
/// // the exact noise prediction of data N(0, 1): ε̂ = σ x
/// let s = VpLinear::default();
/// let problem = reverse_sde(
///     move |t: f64, x: &[f64], _p: &[f64], out: &mut [f64]| {
///         let sig = sdeflow_solvers::diffusion::NoiseSchedule::sigma(&s, t);
///         for (o, &xv) in out.iter_mut().zip(x) { *o = sig * xv; }
///     },
///     Parametrisation::Noise, s, vec![0.7, -1.3], (1.0, 1e-3),
/// );
/// let opts = TimeGrid::UniformLambda.options(&s, 1.0, 1e-3, 20)?.seed(7);
/// let a = solve(&problem, SdeDpmSolverPP2M::default(), opts.clone())?;
/// let b = solve(&problem, SdeDpmSolverPP2M::default(), opts)?;
/// assert_eq!(a.last(), b.last()); // the same seed, the same sample
/// assert_eq!(a.stats.drift_evals, 20);
/// # Ok::<(), sdeflow_solvers::error::SolveError>(())
/// ```
pub fn reverse_sde<M, S>(
    model: M,
    parametrisation: Parametrisation,
    schedule: S,
    x_t: impl Into<Vec<f64>>,
    tspan: (f64, f64),
) -> DiffusionSde<M, S>
where
    M: Fn(f64, &[f64], &[f64], &mut [f64]),
    S: NoiseSchedule + Clone,
{
    reverse_sde_field(
        ProbabilityFlow::new(model, parametrisation, schedule),
        x_t,
        tspan,
    )
}

/// [`reverse_sde`] of any model ([`Model`]: a closure, a
/// [`crate::dual::Generic`] model, [`super::ModelWithVjp`], a network), given
/// as its [`ProbabilityFlow`].
pub fn reverse_sde_field<M: Model, S: NoiseSchedule + Clone>(
    flow: ProbabilityFlow<M, S>,
    x_t: impl Into<Vec<f64>>,
    tspan: (f64, f64),
) -> DiffusionSde<M, S> {
    let noise = ReverseNoise {
        schedule: flow.schedule.clone(),
    };
    Problem::sde_field(ReverseSde { flow }, noise, Noise::Additive, x_t, tspan)
}

// The loop's first drift is the reverse drift `f x − 2σλ̇ε̂ = 2u − f x` at
// `(T, x_T)`: the first step turns it into the prediction without a model
// evaluation.
sampler_solver!(
    DiffusionSde, increment: X::INCREMENT, flow: |drift| &drift.flow,
    reverse_drift: true, check: check_sde
);

/// What a sampler needs of a reverse-SDE problem: to draw noise, additive
/// noise, a span it can run, its own settings.
fn check_sde<X: Sampler, M: Model, S: NoiseSchedule, D: Driver>(
    sampler: &X,
    problem: &DiffusionSde<M, S, D>,
) -> Result<(), SolveError> {
    let name = Sampler::name(sampler);
    if X::INCREMENT == Increment::None {
        return Err(SolveError::Unsupported {
            solver: name,
            what: "the reverse SDE (it samples the probability-flow ODE and draws no noise)".into(),
            alternatives: "ReverseEulerMaruyama, DdpmAncestral, SdeDpmSolver1, \
                           SdeDpmSolverPP2M, LangevinPc, DdimEta, EdmChurn; or build the \
                           problem with diffusion::probability_flow"
                .into(),
        });
    }
    if problem.noise != Some(Noise::Additive) {
        return Err(SolveError::Unsupported {
            solver: name,
            what: format!(
                "{:?} noise (the reverse SDE has additive noise, one Brownian motion per \
                 entry)",
                problem.noise
            ),
            alternatives: "build the problem with diffusion::reverse_sde".into(),
        });
    }
    check_span(name, problem.tspan, &problem.drift.flow.schedule, false)?;
    sampler.check_settings()?;
    sampler.check_problem(problem.dim(), &problem.drift.flow.schedule, problem.tspan)
}
