//! Solver options: tolerances, step bounds, step budget, save policy,
//! controller and seed. Validated up front, with a reason for each rejection.

use serde::{Deserialize, Serialize};

use crate::controller::{Controller, StepController};
use crate::error::SolveError;

/// A tolerance: one value for every component, or one per component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Tolerance {
    /// The same tolerance for every component.
    Scalar(f64),
    /// One tolerance per component (length must equal the state dimension).
    Vector(Vec<f64>),
}

impl Tolerance {
    /// The tolerance of component `i`.
    #[inline(always)]
    pub fn get(&self, i: usize) -> f64 {
        match self {
            Tolerance::Scalar(v) => *v,
            Tolerance::Vector(v) => v[i],
        }
    }

    fn validate(&self, name: &str, n: usize) -> Result<(), SolveError> {
        let check = |v: f64, what: String| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(SolveError::invalid(
                    what,
                    format!("{v} must be a finite number > 0 (e.g. 1e-6)"),
                ))
            }
        };
        match self {
            Tolerance::Scalar(v) => check(*v, name.to_string()),
            Tolerance::Vector(v) => {
                if v.len() != n {
                    return Err(SolveError::DimensionMismatch {
                        what: name.to_string(),
                        expected: n,
                        found: Some(v.len()),
                        hint: "give one tolerance per state component, or a scalar".into(),
                    });
                }
                v.iter()
                    .enumerate()
                    .try_for_each(|(i, &x)| check(x, format!("{name}[{i}]")))
            }
        }
    }
}

impl From<f64> for Tolerance {
    fn from(v: f64) -> Self {
        Tolerance::Scalar(v)
    }
}

impl From<Vec<f64>> for Tolerance {
    fn from(v: Vec<f64>) -> Self {
        Tolerance::Vector(v)
    }
}

impl<const N: usize> From<[f64; N]> for Tolerance {
    fn from(v: [f64; N]) -> Self {
        Tolerance::Vector(v.to_vec())
    }
}

impl<const N: usize> From<&[f64; N]> for Tolerance {
    fn from(v: &[f64; N]) -> Self {
        Tolerance::Vector(v.to_vec())
    }
}

impl From<&[f64]> for Tolerance {
    fn from(v: &[f64]) -> Self {
        Tolerance::Vector(v.to_vec())
    }
}

/// Which states a solve keeps.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum SaveAt {
    /// Only the final state `y(t1)` (the cheapest; no allocation per step).
    T1,
    /// The states at the given times (inside the span, in the direction of
    /// integration), by the solver's interpolant.
    Times(Vec<f64>),
    /// The initial state and the state after every accepted step (the default).
    #[default]
    Steps,
    /// Every step plus the interpolant's data, so that [`crate::solution::Solution::at`]
    /// evaluates the solution at any time in the span.
    Dense,
}

/// Builder methods that set one field each: `field: Type;` defines
/// `pub fn field(mut self, field: Type) -> Self`, `name => field: Type;`
/// the same method under another name. Doc comments are kept.
macro_rules! setters {
    () => {};
    ($(#[$doc:meta])* $name:ident => $field:ident: $ty:ty; $($rest:tt)*) => {
        $(#[$doc])*
        pub fn $name(mut self, $field: $ty) -> Self {
            self.$field = $field;
            self
        }
        $crate::options::setters! { $($rest)* }
    };
    ($(#[$doc:meta])* $field:ident: $ty:ty; $($rest:tt)*) => {
        $crate::options::setters! { $(#[$doc])* $field => $field: $ty; $($rest)* }
    };
}
pub(crate) use setters;

/// Options of a solve. Build with the chained setters:
///
/// ```
/// use sdeflow_solvers::options::{Options, SaveAt};
/// let opts = Options::default().rtol(1e-8).atol(1e-10).save_at(SaveAt::T1);
/// assert_eq!(opts.max_steps, 100_000);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// Relative tolerance (default 1e-3).
    pub rtol: Tolerance,
    /// Absolute tolerance (default 1e-6).
    pub atol: Tolerance,
    /// Initial step size; for fixed-step solvers or [`Controller::Constant`]
    /// the step size. `None`: chosen automatically (Hairer–Wanner). A value
    /// larger than the span (or `dt_max`) is clamped to it
    /// ([`Options::step_size`]).
    pub dt0: Option<f64>,
    /// Smallest allowed step magnitude (default 0: only the floating-point
    /// limit `16 ε |t|`); a smaller proposal is a step-size underflow.
    pub dt_min: f64,
    /// Largest allowed step magnitude (default ∞).
    pub dt_max: f64,
    /// Budget of attempted (accepted + rejected) steps (default 100 000).
    pub max_steps: usize,
    /// Seed of the Brownian path of SDE solves (default 0): with the
    /// problem's driver ([`crate::problem::Problem::driver`]) it fixes the path.
    pub seed: u64,
    /// What to save.
    pub save_at: SaveAt,
    /// Step-size controller (default: PI; a user's own through
    /// [`Controller::custom`]).
    pub controller: Controller,
    /// Times inside the span that must be step ends (default none), in the
    /// direction of integration (diffrax's `step_ts`): adaptive steps are
    /// clipped to land on them; with the constant controller and no `dt0`
    /// they are the fixed grid itself (`t0`, these times, `t1`), e.g. a
    /// sampler's time grid. Fixed steps of `dt0` (a method without an
    /// error estimate) would step past them and are refused with them.
    #[serde(default)]
    pub step_to: Vec<f64>,
    /// Times inside the span at which the drift or the diffusion jumps
    /// (is discontinuous in `t`), in the direction of integration (default
    /// none; DifferentialEquations.jl's `d_discontinuities`, diffrax's
    /// `jump_ts`). Adaptive steps end at the last float before each such
    /// time `τ`, and the next step starts at the first float after it with
    /// the method restarted there: first-same-as-last stages and other
    /// values carried from the step before are dropped, the drift (and
    /// diffusion) are evaluated afresh at `τ⁺`, and the controller keeps its
    /// history. The fields are never evaluated at `τ` itself, so it does
    /// not matter which side `τ` belongs to in them (`t < τ` or `t <= τ`);
    /// the two-ulp gap around `τ` is not integrated (an SDE's Brownian
    /// increment over it is dropped). Needs adaptive steps; solvers that
    /// carry a second state across steps (`ReversibleHeun`) cannot restart
    /// and refuse it.
    #[serde(default)]
    pub discontinuities: Vec<f64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rtol: Tolerance::Scalar(1e-3),
            atol: Tolerance::Scalar(1e-6),
            dt0: None,
            dt_min: 0.0,
            dt_max: f64::INFINITY,
            max_steps: 100_000,
            seed: 0,
            save_at: SaveAt::Steps,
            controller: Controller::default(),
            step_to: Vec::new(),
            discontinuities: Vec::new(),
        }
    }
}

impl AsRef<Options> for Options {
    fn as_ref(&self) -> &Options {
        self
    }
}

impl Options {
    /// Sets the relative tolerance (a scalar or a `Vec` per component).
    pub fn rtol(mut self, rtol: impl Into<Tolerance>) -> Self {
        self.rtol = rtol.into();
        self
    }
    /// Sets the absolute tolerance (a scalar or a `Vec` per component).
    pub fn atol(mut self, atol: impl Into<Tolerance>) -> Self {
        self.atol = atol.into();
        self
    }
    /// Sets both tolerances to the same scalar.
    pub fn tol(self, tol: f64) -> Self {
        self.rtol(tol).atol(tol)
    }
    /// Sets the initial (or fixed) step size.
    pub fn dt0(mut self, dt0: f64) -> Self {
        self.dt0 = Some(dt0);
        self
    }
    /// Fixed steps of size `dt`: sets `dt0` and the constant controller.
    pub fn fixed_step(mut self, dt: f64) -> Self {
        self.dt0 = Some(dt);
        self.controller = Controller::Constant;
        self
    }
    setters! {
        /// Sets the smallest allowed step.
        dt_min: f64;
        /// Sets the largest allowed step.
        dt_max: f64;
        /// Sets the budget of attempted steps.
        max_steps: usize;
        /// Sets the seed of the Brownian path.
        seed: u64;
        /// Sets what to save.
        save_at: SaveAt;
    }
    /// Makes every time of `times` (inside the span, in the direction of
    /// integration) a step end: see [`Options::step_to`].
    pub fn step_to(mut self, times: Vec<f64>) -> Self {
        self.step_to = times;
        self
    }
    /// Fixed steps on the grid `t0, times…, t1` (non-uniform steps, e.g. a
    /// sampler's schedule): sets `step_to` and the constant controller, and
    /// clears `dt0`.
    pub fn grid(mut self, times: Vec<f64>) -> Self {
        self.step_to = times;
        self.dt0 = None;
        self.controller = Controller::Constant;
        self
    }
    /// Makes the steps stop just before and restart just after every time
    /// of `times` (inside the span, in the direction of integration), where
    /// the fields jump: see [`Options::discontinuities`].
    pub fn discontinuities(mut self, times: Vec<f64>) -> Self {
        self.discontinuities = times;
        self
    }
    /// Sets the step-size controller: a built-in one, or a user's own
    /// through [`Controller::custom`].
    pub fn controller(mut self, controller: impl Into<Controller>) -> Self {
        self.controller = controller.into();
        self
    }

    /// The size of the first (or every fixed) step: `|dt0|` bounded by
    /// `dt_max` and by the length of `tspan`, so that an oversized `dt0`
    /// means one step over the whole span, never a step past it (`None`
    /// when `dt0` is not set).
    pub fn step_size(&self, (t0, t1): (f64, f64)) -> Option<f64> {
        self.dt0
            .map(|dt| dt.abs().min(self.dt_max).min((t1 - t0).abs()))
    }

    /// Checks every option against a problem of dimension `n` on `tspan`.
    pub fn validate(&self, n: usize, tspan: (f64, f64)) -> Result<(), SolveError> {
        self.rtol.validate("rtol", n)?;
        self.atol.validate("atol", n)?;
        if let Some(dt0) = self.dt0
            && !(dt0.is_finite() && dt0 != 0.0)
        {
            return Err(SolveError::invalid(
                "dt0",
                format!("{dt0} must be finite and non-zero (its sign is ignored)"),
            ));
        }
        if !(self.dt_min.is_finite() && self.dt_min >= 0.0) {
            return Err(SolveError::invalid(
                "dt_min",
                format!("{} must be finite and >= 0", self.dt_min),
            ));
        }
        if self.dt_max.is_nan() || self.dt_max <= 0.0 {
            return Err(SolveError::invalid(
                "dt_max",
                format!(
                    "{} must be > 0 (use f64::INFINITY for no bound)",
                    self.dt_max
                ),
            ));
        }
        if self.dt_max < self.dt_min {
            return Err(SolveError::invalid(
                "dt_max",
                format!("{} is smaller than dt_min = {}", self.dt_max, self.dt_min),
            ));
        }
        if self.max_steps == 0 {
            return Err(SolveError::invalid(
                "max_steps",
                "0 allows no step; use >= 1",
            ));
        }
        if let SaveAt::Times(times) = &self.save_at {
            let (t0, t1) = tspan;
            let dir = (t1 - t0).signum();
            let (lo, hi) = if t0 < t1 { (t0, t1) } else { (t1, t0) };
            for (i, &t) in times.iter().enumerate() {
                if !t.is_finite() || t < lo || t > hi {
                    return Err(SolveError::invalid(
                        format!("save_at times[{i}]"),
                        format!("{t} is outside the span ({t0}, {t1})"),
                    ));
                }
                if i > 0 && (t - times[i - 1]) * dir < 0.0 {
                    return Err(SolveError::invalid(
                        format!("save_at times[{i}]"),
                        format!(
                            "{t} comes before times[{}] = {} in the direction of integration; \
                             sort the times from t0 to t1",
                            i - 1,
                            times[i - 1]
                        ),
                    ));
                }
            }
        }
        step_times("step_to", &self.step_to, tspan)?;
        if !self.step_to.is_empty() && !self.controller.is_adaptive() && self.dt0.is_some() {
            return Err(SolveError::invalid(
                "step_to",
                "fixed steps take either a step size (dt0) or step times, not both: use \
                 Options::grid(times) for a non-uniform grid, or an adaptive controller",
            ));
        }
        step_times("discontinuities", &self.discontinuities, tspan)?;
        if !self.discontinuities.is_empty() && !self.controller.is_adaptive() {
            return Err(Self::fixed_discontinuities());
        }
        self.controller.validate()
    }

    /// The error of discontinuities given to fixed steps.
    pub(crate) fn fixed_discontinuities() -> SolveError {
        SolveError::invalid(
            "discontinuities",
            "fixed steps cannot stop and restart at discontinuities: use an adaptive \
             controller (and a solver with an error estimate), or put the times into the \
             fixed grid (Options::grid)",
        )
    }
}

/// Checks the step times `times` of the option `name`: finite, strictly
/// inside the span `(t0, t1)`, strictly monotone towards `t1`.
fn step_times(name: &str, times: &[f64], (t0, t1): (f64, f64)) -> Result<(), SolveError> {
    let dir = (t1 - t0).signum();
    for (i, &t) in times.iter().enumerate() {
        let prev = if i == 0 { t0 } else { times[i - 1] };
        if t == t0 || t == t1 {
            return Err(SolveError::invalid(
                format!("{name}[{i}]"),
                format!(
                    "{t} is an end of the span ({t0}, {t1}); {name} takes the times strictly \
                     inside it (the ends are step ends anyway): leave it out"
                ),
            ));
        }
        if !(t.is_finite() && (t - prev) * dir > 0.0 && (t1 - t) * dir > 0.0) {
            return Err(SolveError::invalid(
                format!("{name}[{i}]"),
                format!(
                    "{t} must be finite, strictly inside the span ({t0}, {t1}) and strictly \
                     after the time before it ({prev}) in the direction of integration"
                ),
            ));
        }
    }
    Ok(())
}
