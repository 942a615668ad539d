//! Typed errors of a solve: what happened, where, and what to try.

use std::fmt;

use crate::solution::Solution;

/// Why a solve failed. Every variant says where (time, step) when that is
/// known, and its `Display` text suggests what to change. Its `Debug` is
/// the `Display` text (with the variant's name and, for a failure in the
/// middle of a solve, the size of the partial solution), so that
/// `fn main() -> Result<(), SolveError>` prints a short message with its
/// hint rather than the saved states.
#[derive(Clone)]
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
    /// A user closure (or code it called) panicked; the panic was caught and
    /// the solve abandoned.
    Panicked {
        /// Which closure, as far as it is known (`"drift"`, `"diffusion"`,
        /// `"per-trajectory map"`, `"output"`, or `"a field"` when the
        /// panic came from inside the solve's loop).
        closure: &'static str,
        /// The time of the evaluation, when known (the shape check at
        /// `t0`).
        t: Option<f64>,
        /// The panic's message.
        message: String,
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
                "step size underflow at t={t} (dt={dt:e}, below dt_min or 16 ulp of t, after \
                 {step} accepted steps): the problem may be stiff there (with an explicit \
                 solver, try Bdf, TrBdf2 or Esdirk34) or singular (a blow-up, or a \
                 discontinuity: declare it in Options::discontinuities); loosen rtol/atol, \
                 or lower dt_min"
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
            SolveError::Panicked {
                closure,
                t,
                message,
            } => {
                write!(f, "the {closure} panicked")?;
                if let Some(t) = t {
                    write!(f, " at t={t}")?;
                }
                write!(
                    f,
                    ": \"{message}\"; the solve was abandoned. Fix the closure, or make it \
                     write NaN instead of panicking (the solve then stops with a typed error \
                     at the time it happens)"
                )
            }
        }
    }
}

impl fmt::Debug for SolveError {
    /// The variant's name and the `Display` text; a partial solution is
    /// summarised, not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            SolveError::InvalidInput { .. } => "InvalidInput",
            SolveError::DimensionMismatch { .. } => "DimensionMismatch",
            SolveError::NonFiniteDerivative { .. } => "NonFiniteDerivative",
            SolveError::NonFiniteState { .. } => "NonFiniteState",
            SolveError::StepSizeUnderflow { .. } => "StepSizeUnderflow",
            SolveError::MaxStepsReached { .. } => "MaxStepsReached",
            SolveError::Unsupported { .. } => "Unsupported",
            SolveError::NeedsStepSize { .. } => "NeedsStepSize",
            SolveError::Interpolation { .. } => "Interpolation",
            SolveError::NonlinearSolve { .. } => "NonlinearSolve",
            SolveError::Backend { .. } => "Backend",
            SolveError::Panicked { .. } => "Panicked",
        };
        write!(f, "{name}: {self}")?;
        if let Some(p) = self.partial() {
            write!(
                f,
                " [partial solution: {} saved states; SolveError::partial()]",
                p.len()
            )?;
        }
        Ok(())
    }
}

/// The message of a caught panic's payload (`panic!` with a string literal
/// or a formatted message; anything else is named as such).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

/// Runs `f`, turning a panic into [`SolveError::Panicked`] naming
/// `closure`. Meant for entry points (once per solve, not per evaluation).
pub fn catch_panic<R>(
    closure: &'static str,
    f: impl FnOnce() -> Result<R, SolveError>,
) -> Result<R, SolveError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(SolveError::Panicked {
            closure,
            t: None,
            message: panic_message(&*payload),
        })
    })
}

thread_local! {
    /// Set while [`quietly`] runs on this thread.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, catching a panic, without the panic hook's report (for the
/// panics a diagnosis provokes on purpose). The first call wraps the
/// current hook in one that stays silent while a `quietly` runs on its
/// thread and otherwise calls the hook it wraps.
pub(crate) fn quietly<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    static WRAP: std::sync::Once = std::sync::Once::new();
    WRAP.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info)
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    out
}

impl std::error::Error for SolveError {}
