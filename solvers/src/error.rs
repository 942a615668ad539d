//! Typed errors of a solve: what happened, where, and what to try.

use std::fmt;

use crate::solution::Solution;

/// Why a solve failed. Every variant says where (time, step) when that is
/// known, and its `Display` text suggests what to change.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SolveError {
    /// A user-supplied value is invalid (NaN, infinite, out of range, ...).
    InvalidInput {
        /// Which input (e.g. `"y0[1]"`, `"rtol"`).
        what: String,
        /// Why it is rejected and what to use instead.
        reason: String,
    },
    /// The length of some input does not match the state dimension.
    DimensionMismatch {
        /// Which input has the wrong length.
        what: String,
        /// The length that was expected.
        expected: usize,
        /// The length that was found (`None` when a field indexed past the
        /// end of a buffer, so its length is unknown).
        found: Option<usize>,
        /// What to check.
        hint: String,
    },
    /// A vector field returned NaN or an infinite value.
    NonFiniteDerivative {
        /// Which field: `"drift"` or `"diffusion"`.
        field: &'static str,
        /// Time of the evaluation.
        t: f64,
        /// Index of the first non-finite component.
        component: usize,
        /// Number of accepted steps before the failure.
        step: usize,
    },
    /// The state became NaN or infinite during a step (the fields were
    /// finite where evaluated): the solution blows up, or the step is too
    /// large for stability.
    NonFiniteState {
        /// Start of the step that produced the non-finite state.
        t: f64,
        /// Index of the first non-finite component.
        component: usize,
        /// Number of accepted steps before the failure.
        step: usize,
    },
    /// The controller asked for a step smaller than the allowed minimum.
    StepSizeUnderflow {
        /// Time at which the step was attempted.
        t: f64,
        /// The step size that was too small.
        dt: f64,
        /// Number of accepted steps before the failure.
        step: usize,
        /// The solution up to `t`.
        partial: Box<Solution>,
    },
    /// `max_steps` accepted + rejected steps were taken before reaching `t1`.
    MaxStepsReached {
        /// Time reached.
        t: f64,
        /// The step budget that was used up.
        max_steps: usize,
        /// The solution up to `t`.
        partial: Box<Solution>,
    },
    /// The solver cannot integrate this kind of problem (noise type,
    /// interpretation, missing diffusion, ...).
    Unsupported {
        /// The solver's name.
        solver: &'static str,
        /// What is not supported.
        what: String,
        /// Solvers that do support it.
        alternatives: String,
    },
    /// The solver needs a step size (`dt0`) it cannot choose itself.
    NeedsStepSize {
        /// The solver's name.
        solver: &'static str,
    },
    /// `Solution::at` was asked for a time outside the solved span or the
    /// solution holds no dense output.
    Interpolation {
        /// What went wrong.
        reason: String,
    },
    /// The Newton iteration of an implicit step could not be solved where
    /// it must be (the stages recomputed by a step VJP; forward steps
    /// instead reject the step and shrink it).
    NonlinearSolve {
        /// The solver's name.
        solver: &'static str,
        /// Start of the step.
        t: f64,
        /// Size of the step.
        h: f64,
        /// What failed.
        reason: String,
    },
    /// The stiff backend (diffsol) reported an error.
    Backend {
        /// The solver's name.
        solver: &'static str,
        /// Time reached before the failure.
        t: f64,
        /// The backend's message.
        message: String,
    },
}

impl SolveError {
    /// The partial solution carried by a failure in the middle of a solve
    /// (`MaxStepsReached`, `StepSizeUnderflow`).
    pub fn partial(&self) -> Option<&Solution> {
        match self {
            SolveError::StepSizeUnderflow { partial, .. }
            | SolveError::MaxStepsReached { partial, .. } => Some(partial),
            _ => None,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        SolveError::InvalidInput {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for SolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SolveError::InvalidInput { what, reason } => write!(f, "invalid {what}: {reason}"),
            SolveError::DimensionMismatch {
                what,
                expected,
                found,
                hint,
            } => match found {
                Some(found) => write!(
                    f,
                    "dimension mismatch in {what}: expected {expected}, found {found}; {hint}"
                ),
                None => write!(
                    f,
                    "dimension mismatch in {what}: expected {expected} components, but it \
                     indexed past them; {hint}"
                ),
            },
            SolveError::NonFiniteState { t, component, step } => write!(
                f,
                "the solution became non-finite in component {component} in the step from \
                 t={t} (after {step} accepted steps): it blows up, or the step is too large \
                 for stability; try an adaptive solver, a smaller step, or a shorter span"
            ),
            SolveError::NonFiniteDerivative {
                field,
                t,
                component,
                step,
            } => write!(
                f,
                "the {field} returned a non-finite value in component {component} at t={t} \
                 (after {step} accepted steps); check the field for division by zero or \
                 overflow, or shorten the time span"
            ),
            SolveError::StepSizeUnderflow { t, dt, step, .. } => write!(
                f,
                "step size underflow at t={t} (dt={dt:e}, after {step} accepted steps): the \
                 problem may be stiff or singular there; try Bdf, TrBdf2 or Esdirk34, loosen \
                 rtol/atol, or lower dt_min"
            ),
            SolveError::MaxStepsReached { t, max_steps, .. } => write!(
                f,
                "reached max_steps={max_steps} at t={t} before the end of the span; raise \
                 max_steps, loosen the tolerances, or use a stiff solver (Bdf) if the steps \
                 are tiny"
            ),
            SolveError::Unsupported {
                solver,
                what,
                alternatives,
            } => write!(
                f,
                "{solver} does not support {what}; solvers that do: {alternatives}"
            ),
            SolveError::NeedsStepSize { solver } => write!(
                f,
                "{solver} has no error estimate, so it cannot choose its steps: set \
                 Options::fixed_step(h) (or dt0), or use an adaptive solver (Tsit5 for \
                 ODEs; Sriw1, Sosri, Sra1 or ReversibleHeun for SDEs)"
            ),
            SolveError::Interpolation { reason } => write!(f, "cannot interpolate: {reason}"),
            SolveError::NonlinearSolve {
                solver,
                t,
                h,
                reason,
            } => write!(
                f,
                "{solver}: the implicit stages of the step from t={t} of size h={h:e} could \
                 not be solved ({reason}); check the field for singularities there, or use \
                 smaller steps"
            ),
            SolveError::Backend { solver, t, message } => {
                write!(f, "{solver} failed at t={t}: {message}")
            }
        }
    }
}

impl std::error::Error for SolveError {}
