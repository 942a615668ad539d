//! PI step-size control in the form of Hairer–Wanner (HNW II §IV.2,
//! Gustafsson 1991) as used by DOPRI5 and OrdinaryDiffEq's `PIController`:
//!
//! `h_new = h · clamp(safety · err_n^{−β1} · err_{n−1}^{β2}, qmin, qmax)`
//!
//! with the default `β1 = 0.7/k`, `β2 = 0.4/k` (`k` the error order), no
//! growth right after a rejected step, and `err_{n−1}` floored at 1e-4.

use serde::{Deserialize, Serialize};

use super::{StepController, StepDecision, check_factor, limited_decision, safety_and_limits};
use crate::error::SolveError;

/// A PI controller.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PiController {
    /// Exponent on the current error; `None`: `0.7 / k`.
    pub beta1: Option<f64>,
    /// Exponent on the previous error; `None`: `0.4 / k`.
    pub beta2: Option<f64>,
    /// Safety factor (default 0.9).
    pub safety: f64,
    /// Smallest step factor (default 0.2).
    pub qmin: f64,
    /// Largest step factor (default 10).
    pub qmax: f64,
    #[serde(skip)]
    err_prev: f64,
    #[serde(skip)]
    last_rejected: bool,
}

impl Default for PiController {
    fn default() -> Self {
        PiController {
            beta1: None,
            beta2: None,
            safety: 0.9,
            qmin: 0.2,
            qmax: 10.0,
            err_prev: 1e-4,
            last_rejected: false,
        }
    }
}

impl PiController {
    /// A PI controller with explicit exponents.
    pub fn new(beta1: f64, beta2: f64) -> Self {
        PiController {
            beta1: Some(beta1),
            beta2: Some(beta2),
            ..Default::default()
        }
    }

    safety_and_limits!(qmin, qmax);

    /// The I controller `h_new = h · safety · err^{−1/k}` (no memory).
    pub fn integral() -> Self {
        PiController {
            beta2: Some(0.0),
            ..Default::default()
        }
    }
}

impl StepController for PiController {
    fn validate(&self) -> Result<(), SolveError> {
        check_factor("safety", self.safety, 1e-3, 1.0)?;
        check_factor("qmin", self.qmin, 1e-6, 1.0)?;
        check_factor("qmax", self.qmax, 1.0, 1e6)?;
        if let Some(b) = self.beta1 {
            check_factor("beta1", b, 0.0, 10.0)?;
        }
        if let Some(b) = self.beta2 {
            check_factor("beta2", b, -10.0, 10.0)?;
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.err_prev = 1e-4;
        self.last_rejected = false;
    }

    #[inline]
    fn decide(&mut self, err: f64, k: f64) -> StepDecision {
        let beta1 = self.beta1.unwrap_or(0.7 / k);
        let beta2 = self.beta2.unwrap_or(0.4 / k);
        let (safety, qmax, err_prev) = (self.safety, self.qmax, self.err_prev);
        let limits = (self.qmin, qmax, safety);
        let decision = limited_decision(&mut self.last_rejected, err, limits, |accept| {
            if !accept {
                safety * err.powf(-beta1)
            } else if err == 0.0 {
                qmax
            } else {
                // one exp instead of two powf: safety · err^−β1 · err_prev^β2
                safety * (beta2 * err_prev.ln() - beta1 * err.ln()).exp()
            }
        });
        if decision.accept {
            self.err_prev = err.max(1e-4);
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn larger_error_gives_smaller_step() {
        let mut c = PiController::default();
        let a = c.decide(0.1, 5.0).factor;
        c.reset();
        let b = c.decide(0.9, 5.0).factor;
        assert!(a > b, "{a} <= {b}");
    }

    #[test]
    fn no_growth_after_rejection() {
        let mut c = PiController::default();
        assert!(!c.decide(4.0, 5.0).accept);
        let d = c.decide(1e-6, 5.0);
        assert!(d.accept && d.factor <= 1.0);
    }
}
