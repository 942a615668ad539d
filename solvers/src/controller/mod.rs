//! Step-size controllers: given the scaled error of an attempted step, accept
//! or reject it and propose the next step size.
//!
//! The loop ([`crate::integrate`]) owns nothing solver-specific: it hands the
//! controller the RMS-scaled error norm (`≤ 1` is within tolerance) and the
//! error order `k` of the solver's estimate (`embedded order + 1` for an RK
//! pair), and multiplies the step by the factor it gets back.
//!
//! The set is open: besides the built-in constant, PI and PID controllers,
//! any type implementing [`StepController`] can drive a solve through
//! [`Controller::custom`]. Landing on given times (`Options::step_to`) and
//! restarting after discontinuities (`Options::discontinuities`) are done
//! by the loop around whichever controller is used
//! ([`crate::integrate::Adaptive`]).

mod constant;
mod custom;
mod ladder;
mod pi;
mod pid;

pub use constant::ConstantController;
pub use custom::CustomController;
pub use ladder::StepLadder;
pub use pi::{PiController, PiGains};
pub use pid::PidController;

use serde::{Deserialize, Serialize};

use crate::error::SolveError;

/// The outcome of one step attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepDecision {
    /// Whether the step is accepted.
    pub accept: bool,
    /// Factor by which to multiply the step size for the next attempt.
    pub factor: f64,
}

/// A step-size controller: after every attempted step, accept or reject it
/// and scale the step size.
///
/// Implement it to control steps your own way and pass the controller to a
/// solve with [`Controller::custom`]:
///
/// ```
/// use sdeflow_solvers::controller::{Controller, StepController, StepDecision};
/// use sdeflow_solvers::prelude::*;
///
/// /// The I controller `h ← h · clamp(0.8 · err^{−1/k}, 0.5, 2)`.
/// #[derive(Debug, Clone, PartialEq)]
/// struct Cautious;
/// impl StepController for Cautious {
///     fn reset(&mut self) {}
///     fn decide(&mut self, err: f64, k: f64) -> StepDecision {
///         let factor = if err.is_finite() { (0.8 * err.powf(-1.0 / k)).clamp(0.5, 2.0) } else { 0.5 };
///         StepDecision { accept: err <= 1.0, factor }
///     }
/// }
///
/// let decay = Problem::ode(|_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
///                          vec![1.0], (0.0, 1.0));
/// let sol = solve(&decay, Tsit5, Options::default().tol(1e-8).controller(Controller::custom(Cautious)))?;
/// assert!((sol.last()[0] - (-1.0f64).exp()).abs() < 1e-7);
/// # Ok::<(), SolveError>(())
/// ```
pub trait StepController {
    /// Clears the error history (called at the start of every solve).
    fn reset(&mut self);
    /// Decides on a step with scaled error `err` (`≤ 1` is within
    /// tolerance; non-finite: the step blew up) from an estimator of order
    /// `k`. The factor must be finite and `> 0`.
    fn decide(&mut self, err: f64, k: f64) -> StepDecision;
    /// Checks the controller's parameters before a solve (a typed error
    /// saying which one and why); accepts everything by default.
    fn validate(&self) -> Result<(), SolveError> {
        Ok(())
    }
}

/// The controller used by a solve.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum Controller {
    /// Fixed steps of size `Options::dt0`; every step is accepted.
    Constant,
    /// Proportional–integral control (the default).
    Pi(PiController),
    /// Proportional–integral–derivative control.
    Pid(PidController),
    /// A user's controller ([`Controller::custom`]); adaptive, like PI and
    /// PID. Options holding one cannot be serialized (an error saying so),
    /// and are never produced by deserializing.
    #[serde(skip_deserializing, serialize_with = "custom::refuse")]
    Custom(CustomController),
}

impl Clone for Controller {
    fn clone(&self) -> Self {
        match self {
            Controller::Constant => Controller::Constant,
            Controller::Pi(c) => Controller::Pi(*c),
            Controller::Pid(c) => Controller::Pid(*c),
            Controller::Custom(c) => Controller::Custom(c.clone()),
        }
    }

    /// In place for a custom controller of the same type (no new box).
    fn clone_from(&mut self, source: &Self) {
        if let (Controller::Custom(a), Controller::Custom(b)) = (&mut *self, source) {
            a.clone_from(b);
        } else {
            *self = source.clone();
        }
    }
}

impl Default for Controller {
    fn default() -> Self {
        Controller::Pi(PiController::default())
    }
}

impl From<PiController> for Controller {
    fn from(c: PiController) -> Self {
        Controller::Pi(c)
    }
}

impl From<PidController> for Controller {
    fn from(c: PidController) -> Self {
        Controller::Pid(c)
    }
}

impl From<ConstantController> for Controller {
    fn from(_: ConstantController) -> Self {
        Controller::Constant
    }
}

impl From<CustomController> for Controller {
    fn from(c: CustomController) -> Self {
        Controller::Custom(c)
    }
}

impl Controller {
    /// The user's controller `controller`, boxed (see [`CustomController`]
    /// for what its `Clone` and `decide` must do).
    pub fn custom<C>(controller: C) -> Self
    where
        C: StepController + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    {
        Controller::Custom(CustomController::new(controller))
    }

    /// This controller with a method's recommended PI `gains` in the fields
    /// of a PI controller left unset ([`PiController::tuned_for`]); any
    /// other controller as it is.
    pub fn tuned_for(&self, gains: Option<PiGains>) -> Controller {
        match self {
            Controller::Pi(c) => Controller::Pi(c.tuned_for(gains)),
            other => other.clone(),
        }
    }

    /// The controller a solve by a method runs: the method's suggestion
    /// ([`crate::solver::Solver::suggested_controller`]) when this is the
    /// default controller, else this one tuned by the method's PI `gains`
    /// ([`Controller::tuned_for`]).
    pub fn for_method(&self, suggested: Option<Controller>, gains: Option<PiGains>) -> Controller {
        match suggested {
            Some(c) if *self == Controller::default() => c,
            _ => self.tuned_for(gains),
        }
    }

    /// Whether this controller adapts the step (needs an error estimate).
    pub fn is_adaptive(&self) -> bool {
        !matches!(self, Controller::Constant)
    }
}

impl StepController for Controller {
    fn reset(&mut self) {
        match self {
            Controller::Constant => {}
            Controller::Pi(c) => c.reset(),
            Controller::Pid(c) => c.reset(),
            Controller::Custom(c) => c.reset(),
        }
    }

    #[inline]
    fn decide(&mut self, err: f64, k: f64) -> StepDecision {
        match self {
            Controller::Constant => ConstantController.decide(err, k),
            Controller::Pi(c) => c.decide(err, k),
            Controller::Pid(c) => c.decide(err, k),
            Controller::Custom(c) => c.decide(err, k),
        }
    }

    fn validate(&self) -> Result<(), SolveError> {
        match self {
            Controller::Constant => Ok(()),
            Controller::Pi(c) => c.validate(),
            Controller::Pid(c) => c.validate(),
            Controller::Custom(c) => c.validate(),
        }
    }
}

/// The step decision of the PI and PID controllers, whose state is
/// `last_rejected`: a non-finite `err` (the step blew up) is rejected with
/// the factor `min`; an `err ≤ 1` is accepted with `raw(true)` clamped to
/// `[min, max]`, and not above 1 right after a rejection; a larger one is
/// rejected with `raw(false)` clamped to `[min, safety]`. The caller updates
/// its error history on acceptance.
#[inline]
fn limited_decision(
    last_rejected: &mut bool,
    err: f64,
    (min, max, safety): (f64, f64, f64),
    raw: impl FnOnce(bool) -> f64,
) -> StepDecision {
    if !err.is_finite() {
        *last_rejected = true;
        return StepDecision {
            accept: false,
            factor: min,
        };
    }
    if err <= 1.0 {
        let mut factor = raw(true).clamp(min, max);
        if *last_rejected {
            factor = factor.min(1.0);
        }
        *last_rejected = false;
        StepDecision {
            accept: true,
            factor,
        }
    } else {
        *last_rejected = true;
        StepDecision {
            accept: false,
            factor: raw(false).clamp(min, safety),
        }
    }
}

/// The builder methods `with_safety` and `with_limits` of a controller whose
/// step-factor limits are the fields `$min` and `$max`.
macro_rules! safety_and_limits {
    ($min:ident, $max:ident $(, $wrap:ident)?) => {
        /// Sets the safety factor.
        pub fn with_safety(mut self, safety: f64) -> Self {
            self.safety = $($wrap)?(safety);
            self
        }

        /// Sets the smallest and largest step factors.
        pub fn with_limits(mut self, $min: f64, $max: f64) -> Self {
            self.$min = $min;
            self.$max = $max;
            self
        }
    };
}
use safety_and_limits;

pub(crate) fn check_factor(name: &str, v: f64, lo: f64, hi: f64) -> Result<(), SolveError> {
    if v.is_finite() && v >= lo && v <= hi {
        Ok(())
    } else {
        Err(SolveError::invalid(
            format!("controller {name}"),
            format!("{v} must be finite and in [{lo}, {hi}]"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_controllers_reject_nonfinite_and_shrink() {
        for mut c in [
            Controller::Pi(PiController::default()),
            Controller::Pid(PidController::default()),
        ] {
            c.reset();
            let d = c.decide(f64::NAN, 5.0);
            assert!(!d.accept);
            assert!(d.factor < 1.0 && d.factor > 0.0);
            let d = c.decide(f64::INFINITY, 5.0);
            assert!(!d.accept && d.factor < 1.0);
            c.reset();
            let d = c.decide(0.0, 5.0);
            assert!(d.accept && d.factor > 1.0);
        }
    }

    #[test]
    fn constant_always_accepts_same_step() {
        let mut c = Controller::Constant;
        assert_eq!(
            c.decide(1e9, 1.0),
            StepDecision {
                accept: true,
                factor: 1.0
            }
        );
    }

    #[test]
    fn bad_parameters_are_rejected() {
        let mut pi = PiController::default();
        pi.safety = Some(1.5);
        assert!(Controller::Pi(pi).validate().is_err());
        let mut pid = PidController::default();
        pid.factor_min = f64::NAN;
        assert!(Controller::Pid(pid).validate().is_err());
    }
}
