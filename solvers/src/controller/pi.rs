//! PI step-size control in the form of Hairer–Wanner (HNW II §IV.2,
//! Gustafsson 1991) as used by DOPRI5 and OrdinaryDiffEq's `PIController`:
//!
//! `h_new = h · clamp(safety · err_n^{−β1} · err_{n−1}^{β2}, qmin, qmax)`
//!
//! with the default `β1 = 0.7/k`, `β2 = 0.4/k` (`k` the error order), no
//! growth right after a rejected step, and `err_{n−1}` floored at 1e-4.
//!
//! A method may recommend other gains for the fields left unset
//! ([`PiGains`], like OrdinaryDiffEq's per-method `beta1_default`,
//! `beta2_default`): the explicit Runge–Kutta pairs use
//! [`PiGains::EXPLICIT_RK`], `β1 = 1/k`, `β2 = 0.3/k`, safety 0.85, tuned on
//! the work–precision report (`benches/work_precision.rs`).

use serde::{Deserialize, Serialize};

use super::{StepController, StepDecision, check_factor, limited_decision, safety_and_limits};
use crate::error::SolveError;

/// The gains a method recommends for the default PI controller:
/// `β1 = g1/k`, `β2 = g2/k` and the safety factor (`qmin`, `qmax` stay
/// 0.2 and 10). [`PiController::tuned_for`] gives them to the fields of a
/// controller that are left unset (`beta1`, `beta2`, `safety` = `None`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PiGains {
    /// `β1 · k`.
    pub g1: f64,
    /// `β2 · k`.
    pub g2: f64,
    /// The safety factor.
    pub safety: f64,
}

impl PiGains {
    /// The gains of [`PiController::default`] (Gustafsson 1991; HNW II
    /// §IV.2; OrdinaryDiffEq's default): `β1 = 0.7/k`, `β2 = 0.4/k`,
    /// safety 0.9.
    pub const GUSTAFSSON: PiGains = PiGains {
        g1: 0.7,
        g2: 0.4,
        safety: 0.9,
    };

    /// The gains of the explicit Runge–Kutta pairs of order ≥ 5 (Dopri5,
    /// Tsit5, Vern7; Bs3 did 1% worse with them than with the default):
    /// `β1 = 1/k`,
    /// `β2 = 0.3/k`, safety 0.85. Gustafsson's gains hold the error of a
    /// steady step sequence at `0.9^{k/0.3}` of the tolerance (0.17 for
    /// Tsit5, 0.09 for Vern7), and grow the step slowly from a small first
    /// step; these hold it near `0.85^{k/0.7}` (0.31, 0.20) with the same
    /// damping of stability-limited steps. On the work–precision report
    /// (Lotka–Volterra, Arenstorf, Kepler, rtol 1e-4..1e-10) they take
    /// 8% (Tsit5) and 7% (Vern7) fewer drift evaluations at equal achieved
    /// error, and 4 instead of 7 steps on the neural ODE of
    /// `benches/gradients.rs` at rtol 1e-6.
    pub const EXPLICIT_RK: PiGains = PiGains {
        g1: 1.0,
        g2: 0.3,
        safety: 0.85,
    };
}

/// A PI controller.
///
/// A field left `None` takes the value the method recommends
/// ([`crate::solver::Solver::pi_gains`], handed over by the loop through
/// [`PiController::tuned_for`]), or Gustafsson's ([`PiGains::GUSTAFSSON`])
/// when the method recommends none; a field you set is used as given,
/// whatever its value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PiController {
    /// Exponent on the current error; `None`: the method's `g1 / k`
    /// (`0.7 / k` by default).
    pub beta1: Option<f64>,
    /// Exponent on the previous error; `None`: the method's `g2 / k`
    /// (`0.4 / k` by default).
    pub beta2: Option<f64>,
    /// Safety factor; `None`: the method's (0.9 by default).
    pub safety: Option<f64>,
    /// Smallest step factor (default 0.2).
    pub qmin: f64,
    /// Largest step factor (default 10).
    pub qmax: f64,
    /// The gains this controller keeps whatever the method recommends
    /// ([`PiController::integral`]'s `(1, 0)`), or `None`.
    #[serde(skip)]
    own_gains: Option<(f64, f64)>,
    /// What unset fields take: the method's recommendation.
    #[serde(skip)]
    recommended: PiGains,
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
            safety: None,
            qmin: 0.2,
            qmax: 10.0,
            own_gains: None,
            recommended: PiGains::GUSTAFSSON,
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

    safety_and_limits!(qmin, qmax, Some);

    /// This controller with the method's recommended `gains` for the
    /// fields left unset (`beta1`, `beta2`, `safety` = `None`); with
    /// `None`, Gustafsson's. The loop calls it with `Solver::pi_gains`, so
    /// a field you set is used as given — also when you set it to the
    /// default value.
    pub fn tuned_for(self, gains: Option<PiGains>) -> Self {
        PiController {
            recommended: gains.unwrap_or(PiGains::GUSTAFSSON),
            ..self
        }
    }

    /// The I controller `h_new = h · 0.9 · err^{−1/k}` (no memory), whatever
    /// the method recommends.
    pub fn integral() -> Self {
        PiController {
            own_gains: Some((1.0, 0.0)),
            safety: Some(PiGains::GUSTAFSSON.safety),
            ..Default::default()
        }
    }

    /// The safety factor in use: the one set, or the method's.
    fn safety_factor(&self) -> f64 {
        self.safety.unwrap_or(self.recommended.safety)
    }
}

impl StepController for PiController {
    fn validate(&self) -> Result<(), SolveError> {
        check_factor("safety", self.safety_factor(), 1e-3, 1.0)?;
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
        let (g1, g2) = self
            .own_gains
            .unwrap_or((self.recommended.g1, self.recommended.g2));
        let beta1 = self.beta1.unwrap_or(g1 / k);
        let beta2 = self.beta2.unwrap_or(g2 / k);
        let (safety, qmax, err_prev) = (self.safety_factor(), self.qmax, self.err_prev);
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
    fn method_gains_fill_only_the_unset_fields() {
        let rk = Some(PiGains::EXPLICIT_RK);
        let tuned = PiController::default().tuned_for(rk);
        assert_eq!(tuned.safety_factor(), 0.85);
        // β1 = 1/k: from err = 0.5 at k = 5 with no history (err_prev
        // 1e-4): 0.85 · 0.5^−0.2 · 1e-4^0.06
        let mut c = tuned;
        let f = c.decide(0.5, 5.0).factor;
        let want = 0.85 * 0.5f64.powf(-0.2) * 1e-4f64.powf(0.06);
        assert!((f - want).abs() < 1e-12, "{f} vs {want}");
        // a safety set to the default value stays: only the gains are
        // the method's
        let mut mine = PiController::default().with_safety(0.9).tuned_for(rk);
        let f = mine.decide(0.5, 5.0).factor;
        let want = 0.9 * 0.5f64.powf(-0.2) * 1e-4f64.powf(0.06);
        assert!((f - want).abs() < 1e-12, "{f} vs {want}");
        // exponents set: the method's safety only
        let mut mine = PiController::new(0.1, 0.05).tuned_for(rk);
        let f = mine.decide(0.5, 5.0).factor;
        let want = 0.85 * 0.5f64.powf(-0.1) * 1e-4f64.powf(0.05);
        assert!((f - want).abs() < 1e-12, "{f} vs {want}");
        // everything set: as given
        let mine = PiController::new(0.1, 0.05).with_safety(0.8);
        let (mut a, mut b) = (mine, mine.tuned_for(rk));
        assert_eq!(a.decide(0.5, 5.0), b.decide(0.5, 5.0));
        assert_eq!(
            PiController::default().tuned_for(None),
            PiController::default()
        );
    }

    #[test]
    fn integral_is_the_textbook_controller() {
        let mut c = PiController::integral();
        for err in [0.3, 0.01, 0.7] {
            let f = c.decide(err, 5.0).factor;
            let want = 0.9 * err.powf(-0.2);
            assert!((f - want).abs() < 1e-12, "{f} vs {want}");
        }
        // a method's gains do not replace it
        let (mut a, mut b) = (
            PiController::integral(),
            PiController::integral().tuned_for(Some(PiGains::EXPLICIT_RK)),
        );
        for err in [0.3, 0.01, 0.7] {
            assert_eq!(a.decide(err, 5.0), b.decide(err, 5.0));
        }
    }

    #[test]
    fn no_growth_after_rejection() {
        let mut c = PiController::default();
        assert!(!c.decide(4.0, 5.0).accept);
        let d = c.decide(1e-6, 5.0);
        assert!(d.accept && d.factor <= 1.0);
    }
}
