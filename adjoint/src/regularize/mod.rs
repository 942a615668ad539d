//! Solver-heuristic regularizers for neural differential equations
//! (`../shared/reference/regularizers.md`): penalties built from what the
//! adaptive solver computes anyway — its local error estimate — so that
//! training asks the dynamics to be cheap to solve.
//!
//! - **Global** (ERNODE; Pal, Ma, Shah, Rackauckas, ICML 2021,
//!   arXiv 2105.03918): `R = Σ_j P_j` over the accepted steps `j` of the
//!   solve ([`Aggregate::Sum`], the paper's definition) or `R = Σ_j P_j / N`
//!   ([`Aggregate::Mean`], RegNeuralDE.jl's MNIST code), with
//!   `P_j = E_j |h_j|` ([`ErrorEstimate`]: `E_j` the scaled RMS norm of
//!   the step's error estimate that the controller judged).
//!   [`regularized_gradient`] returns `L + λR` and its exact gradient *of
//!   the computed discrete solution*: the discrete adjoint sends each step's
//!   `∂(λR)/∂err` through the step VJP's error cotangent
//!   (`sdeflow_solvers::step_vjp::StepBars::err`), with the accepted step
//!   sizes held fixed (as for the loss: the controller is not
//!   differentiated; the paper's pass-through AD also differentiates
//!   `h_j`). The value of `R` for a plain solve, without a gradient, is what
//!   [`ErrorEstimateObserver`] accumulates from the loop's step reports.
//! - **Stiffness** (SRNODE, same paper): `P_j = S_j`, the explicit RK
//!   stiffness estimate from the two stages of the step that share a time,
//!   over the method's stability size ([`Stiffness`],
//!   [`Global::stiffness`]); its gradient flows through the stage pair's
//!   cotangents in the step VJP
//!   (`sdeflow_solvers::step_vjp::StepVjp::step_vjp_stage_pair`), its
//!   value over a plain solve is what [`StiffnessObserver`] accumulates.
//! - **Local** (Pal, Edelman, Rackauckas, ICML 2023, arXiv 2303.02262):
//!   [`local`] — one step from a random time of the solve, for ODEs and
//!   SDEs (error estimate) and ODEs (stiffness).
//!
//! The error estimate works with every method whose step VJP takes an
//! error cotangent: the explicit Runge–Kutta pairs (Tsit5, Dopri5, Bs3,
//! Vern7, Heun) and the SDE methods with an error estimate (SRIW1, SOSRI,
//! SRA1, SRA3). The stiffness estimate needs two stages at one time:
//! Tsit5, Dopri5, Vern7.

mod error_estimate;
pub mod local;
mod stiffness;
mod sweep;

pub use error_estimate::{ErrorEstimate, ErrorEstimateObserver};
pub use local::{Local, RegTime};
pub use stiffness::{Stiffness, StiffnessObserver};
pub(crate) use sweep::PenaltySweep;

use sdeflow_solvers::brownian::Driver;
use sdeflow_solvers::error::SolveError;
use sdeflow_solvers::field::{DiffusionVjp, DriftVjp};
use sdeflow_solvers::options::{Options, Tolerance};
use sdeflow_solvers::problem::Problem;
use sdeflow_solvers::step_vjp::{StagePair, StagePairBars, StepVjp};

use crate::loss::Loss;
use crate::{Adjoint, GradError, Gradient};

/// One accepted step as a penalty sees it.
#[derive(Debug, Clone, Copy)]
pub struct PenaltyStep<'a> {
    /// Start of the step.
    pub t: f64,
    /// Step size (signed).
    pub h: f64,
    /// The state at `t`.
    pub y: &'a [f64],
    /// The state at `t + h`.
    pub y_new: &'a [f64],
    /// The method's local error estimate of the step.
    pub err: &'a [f64],
    /// The solve's relative tolerance.
    pub rtol: &'a Tolerance,
    /// The solve's absolute tolerance.
    pub atol: &'a Tolerance,
}

/// Where a penalty writes its derivatives.
#[derive(Debug)]
pub struct PenaltyBars<'a> {
    /// `∂P/∂err` (overwritten).
    pub err: &'a mut [f64],
    /// `∂P/∂y` is added here.
    pub y: &'a mut [f64],
    /// `∂P/∂y_new` is added here.
    pub y_new: &'a mut [f64],
}

/// A penalty `P_j` of one accepted step, function of the step's start,
/// result and error estimate, with its derivatives.
pub trait StepPenalty: Sync {
    /// What it penalises (for messages).
    fn name(&self) -> &'static str;

    /// Returns `P` of `step` and writes its derivatives into `bars`.
    fn eval(&self, step: &PenaltyStep<'_>, bars: PenaltyBars<'_>) -> f64;

    /// Whether `P` is a function of the step's stiffness stage pair
    /// ([`StepPenalty::eval_pair`]) rather than of its result and error
    /// estimate ([`StepPenalty::eval`]). Default: no.
    fn reads_stage_pair(&self) -> bool {
        false
    }

    /// Returns `P` of the step's stiffness stage pair `pair` for a method
    /// of stability size `rho`, and adds its derivatives times `scale` to
    /// `bars`: for a penalty that [`StepPenalty::reads_stage_pair`]. The
    /// default (a penalty that does not) returns 0 and adds nothing.
    fn eval_pair(
        &self,
        _pair: &StagePair<'_>,
        _rho: f64,
        _bars: StagePairBars<'_>,
        _scale: f64,
    ) -> f64 {
        0.0
    }
}

/// How the per-step penalties of a solve are combined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Aggregate {
    /// `R = Σ_j P_j` (the paper's definition).
    #[default]
    Sum,
    /// `R = Σ_j P_j / N` over the `N` accepted steps (`N` a constant of the
    /// gradient, like the step sizes).
    Mean,
}

/// A global regularizer: `λ · R`, `R` the [`Aggregate`] of the penalty
/// `P` over the accepted steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Global<P> {
    /// The per-step penalty.
    pub penalty: P,
    /// The weight `λ` (finite, ≥ 0).
    pub weight: f64,
    /// Sum or mean over the steps.
    pub aggregate: Aggregate,
}

impl Global<ErrorEstimate> {
    /// ERNODE's `λ · Σ_j E_j |h_j|`.
    pub fn error_estimate(weight: f64) -> Self {
        Global {
            penalty: ErrorEstimate,
            weight,
            aggregate: Aggregate::Sum,
        }
    }
}

impl<P> Global<P> {
    /// The same regularizer with aggregation `aggregate`.
    pub fn aggregate(mut self, aggregate: Aggregate) -> Self {
        self.aggregate = aggregate;
        self
    }
}

/// A gradient of `L + λR`.
#[derive(Debug, Clone)]
pub struct Regularized {
    /// `L + λR` in `gradient.loss`, its derivatives, the solution and the
    /// work.
    pub gradient: Gradient,
    /// The task loss `L`.
    pub task: f64,
    /// The regularizer `R` (unweighted).
    pub regularizer: f64,
}

/// Checks a regularization weight: finite and not negative.
pub(crate) fn check_weight(weight: f64) -> Result<(), GradError> {
    if weight.is_finite() && weight >= 0.0 {
        return Ok(());
    }
    Err(GradError::Solve(SolveError::InvalidInput {
        what: "regularization weight".into(),
        reason: format!("{weight} is not a finite number ≥ 0; give λ ≥ 0 (0 switches it off)"),
    }))
}

/// `L + λR` and its exact discrete gradient, for `loss` on the solve of
/// `problem` with `solver` by the discrete adjoint (`adjoint` must be
/// [`Adjoint::Discrete`]) and the global regularizer `reg` (see the module
/// docs). Each reversed step is retaken once more to read its error
/// estimate (`s` drift evaluations for an `s`-stage method; like the step
/// VJPs' own evaluations, not counted in `backward_drift_evals`).
///
/// ```
/// use sdeflow_adjoint::Adjoint;
/// use sdeflow_adjoint::regularize::{Global, regularized_gradient};
/// use sdeflow_solvers::dual::{DualNum, Generic, GenericField};
/// use sdeflow_solvers::erk::Tsit5;
/// use sdeflow_solvers::options::{Options, SaveAt};
/// use sdeflow_solvers::problem::Problem;
///
/// struct Decay;
/// impl GenericField for Decay {
///     fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
///         dy[0] = -p[0] * y[0];
///     }
/// }
/// let ode = Problem::ode_field(Generic(Decay), vec![1.0], (0.0, 1.0)).params(vec![3.0]);
/// let opts = Options::default().tol(1e-6).save_at(SaveAt::T1);
/// let loss = |_ts: &[f64], ys: &[f64], g: &mut [f64]| { g[0] = 2.0 * ys[0]; ys[0] * ys[0] };
/// let reg = Global::error_estimate(10.0);
/// let r = regularized_gradient(&ode, &Tsit5, &opts, &loss, Adjoint::STORE_ALL, &reg).unwrap();
/// assert!(r.regularizer > 0.0);
/// assert_eq!(r.gradient.loss, r.task + 10.0 * r.regularizer);
/// ```
pub fn regularized_gradient<F, G, D, S, L, P>(
    problem: &Problem<F, G, D>,
    solver: &S,
    options: &Options,
    loss: &L,
    adjoint: Adjoint,
    reg: &Global<P>,
) -> Result<Regularized, GradError>
where
    F: DriftVjp,
    G: DiffusionVjp,
    D: Driver,
    S: StepVjp<Problem<F, G, D>>,
    L: Loss + ?Sized,
    P: StepPenalty,
{
    check_weight(reg.weight)?;
    let (gradient, task, regularizer) = crate::discrete::discrete_gradient_penalized(
        problem,
        solver,
        options,
        loss,
        adjoint,
        Some((&reg.penalty, reg.weight, reg.aggregate)),
    )?;
    Ok(Regularized {
        gradient,
        task,
        regularizer,
    })
}
