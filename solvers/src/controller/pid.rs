//! PID step-size control (Söderlind, "Digital filters in adaptive
//! time-stepping", ACM TOMS 29 (2003); parametrised as diffrax's
//! `PIDController`):
//!
//! `h_new = h · safety · ε_n^{β1} ε_{n−1}^{β2} ε_{n−2}^{β3}`, `ε = 1/err`,
//! `β1 = (P+I+D)/k`, `β2 = −(P+2D)/k`, `β3 = D/k`,
//!
//! clipped to `[factor_min, factor_max]`, no growth right after a rejection,
//! the history advanced on accepted steps only. `P = D = 0, I = 1` is the I
//! controller; diffrax suggests `(P, I) = (0.1, 0.3)` for SDEs and
//! `(0.4, 0.3)` for moderately stiff problems.

use serde::{Deserialize, Serialize};

use super::{StepController, StepDecision, check_factor, limited_decision, safety_and_limits};
use crate::error::SolveError;

/// A PID controller.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PidController {
    /// Proportional coefficient (default 0.2).
    pub pcoeff: f64,
    /// Integral coefficient (default 0.4).
    pub icoeff: f64,
    /// Derivative coefficient (default 0).
    pub dcoeff: f64,
    /// Safety factor (default 0.9).
    pub safety: f64,
    /// Smallest step factor (default 0.2).
    pub factor_min: f64,
    /// Largest step factor (default 10).
    pub factor_max: f64,
    #[serde(skip)]
    inv_prev: [f64; 2],
    #[serde(skip)]
    last_rejected: bool,
}

impl Default for PidController {
    fn default() -> Self {
        PidController {
            pcoeff: 0.2,
            icoeff: 0.4,
            dcoeff: 0.0,
            safety: 0.9,
            factor_min: 0.2,
            factor_max: 10.0,
            inv_prev: [1.0, 1.0],
            last_rejected: false,
        }
    }
}

impl PidController {
    /// A PID controller with the given coefficients and default limits.
    pub fn new(pcoeff: f64, icoeff: f64, dcoeff: f64) -> Self {
        PidController {
            pcoeff,
            icoeff,
            dcoeff,
            ..Default::default()
        }
    }

    safety_and_limits!(factor_min, factor_max);
}

impl StepController for PidController {
    fn validate(&self) -> Result<(), SolveError> {
        check_factor("pcoeff", self.pcoeff, -10.0, 10.0)?;
        check_factor("icoeff", self.icoeff, 1e-6, 10.0)?;
        check_factor("dcoeff", self.dcoeff, -10.0, 10.0)?;
        check_factor("safety", self.safety, 1e-3, 1.0)?;
        check_factor("factor_min", self.factor_min, 1e-6, 1.0)?;
        check_factor("factor_max", self.factor_max, 1.0, 1e6)
    }

    fn reset(&mut self) {
        self.inv_prev = [1.0, 1.0];
        self.last_rejected = false;
    }

    #[inline]
    fn decide(&mut self, err: f64, k: f64) -> StepDecision {
        let (p, i, d) = (self.pcoeff, self.icoeff, self.dcoeff);
        let beta1 = (p + i + d) / k;
        let beta2 = -(p + 2.0 * d) / k;
        let beta3 = d / k;
        let inv = if err == 0.0 { f64::MAX } else { 1.0 / err };
        let raw = self.safety
            * inv.powf(beta1)
            * self.inv_prev[0].powf(beta2)
            * self.inv_prev[1].powf(beta3);
        let limits = (self.factor_min, self.factor_max, self.safety);
        let decision = limited_decision(&mut self.last_rejected, err, limits, |_| raw);
        if decision.accept {
            self.inv_prev = [inv.min(1e4), self.inv_prev[0]];
        }
        decision
    }
}
