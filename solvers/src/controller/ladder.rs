//! A geometric ladder of step sizes around any adaptive controller: the
//! inner controller's factor is rounded down to a power of
//! `2^{1/rungs}`, so the step sizes of a solve stay on the ladder
//! `h_0 · 2^{j/rungs}` and repeat.
//!
//! What it is for: a method whose per-step-size set-up is costly — the
//! exponential integrators' φ operators ([`crate::expint`], recomputed for
//! every new `h` and kept for the last few, `expint/ops.rs`) — reuses its
//! set-up whenever the step returns to a rung, instead of computing it on
//! every step of an adaptive solve.
//!
//! What it does to the control: every accepted or retried step is at most
//! one rung (`2^{1/rungs}`, 19% for the default 4 rungs per octave) smaller
//! than the inner controller proposed, never larger, so the error per step
//! stays within the inner controller's target and rejections do not
//! increase; the price is more steps, on average about
//! `(2^{1/rungs} − 1)/(ln 2 / rungs) − 1` (9% for 4 rungs) when the proposals
//! fall uniformly between rungs. The fraction of a rung that the rounding
//! drops is carried to the next decision, so a run of small increases
//! adds up to a rung: without it a proposal within one rung above the
//! current step kept the step for good, and a PI controller, whose factor
//! at a constant error is `safety · err^{−0.1}` (k = 3), held the error at
//! a few percent of the tolerance (1.9x the steps of plain PI on the stiff
//! manufactured problem of `tests/suite/expint.rs`). The loop's own adjustments
//! (the last step clipped to the end, landing on `step_to` times) leave the
//! ladder for that step; the next factor continues from there.

use super::{PiController, StepController, StepDecision};
use crate::error::SolveError;

/// The ladder controller (module docs): `inner`'s factors rounded down to
/// powers of `2^{1/rungs}`.
///
/// ```
/// use sdeflow_solvers::controller::{Controller, StepLadder};
/// use sdeflow_solvers::expint::{Diagonal, Etdrk32, Semilinear};
/// use sdeflow_solvers::prelude::*;
/// let f = Semilinear::new(Diagonal(vec![-1e3, -1.0]), |t: f64, y: &[f64], _p: &[f64], n: &mut [f64]| {
///     n[0] = y[1].sin();
///     n[1] = t.cos();
/// });
/// let problem = Problem::ode_field(f, vec![1.0, 0.0], (0.0, 2.0));
/// let opts = Options::default().tol(1e-8).controller(Controller::custom(StepLadder::default()));
/// let sol = solve(&problem, Etdrk32, opts)?;
/// assert!(sol.stats.accepted_steps > 0);
/// # Ok::<(), SolveError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLadder<C = PiController> {
    /// The controller whose factors are rounded.
    pub inner: C,
    /// Rungs per doubling of the step (1 to 64; default 4).
    pub rungs: u32,
    /// The part of a rung the rounding dropped, carried to the next
    /// decision (module docs).
    carry: f64,
}

impl Default for StepLadder<PiController> {
    fn default() -> Self {
        StepLadder {
            inner: PiController::default(),
            rungs: 4,
            carry: 0.0,
        }
    }
}

impl<C> StepLadder<C> {
    /// The ladder of `rungs` per octave around `inner`.
    pub fn new(inner: C, rungs: u32) -> Self {
        StepLadder {
            inner,
            rungs,
            carry: 0.0,
        }
    }
}

impl<C: StepController> StepController for StepLadder<C> {
    fn reset(&mut self) {
        self.carry = 0.0;
        self.inner.reset()
    }

    #[inline]
    fn decide(&mut self, err: f64, k: f64) -> StepDecision {
        let d = self.inner.decide(err, k);
        if !(d.factor.is_finite() && d.factor > 0.0) {
            return d;
        }
        let q = f64::from(self.rungs);
        // the rungs the inner controller asks for, with what earlier
        // roundings dropped; a factor on a rung stays there despite
        // round-off in log2
        let want = q * d.factor.log2() + self.carry;
        let j = (want + 1e-9).floor();
        self.carry = (want - j).max(0.0);
        let factor = if j == 0.0 { 1.0 } else { (j / q).exp2() };
        StepDecision { factor, ..d }
    }

    fn validate(&self) -> Result<(), SolveError> {
        if !(1..=64).contains(&self.rungs) {
            return Err(SolveError::invalid(
                "StepLadder rungs",
                format!(
                    "{}; give 1 to 64 rungs per doubling of the step",
                    self.rungs
                ),
            ));
        }
        self.inner.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_round_down_to_rungs_and_one_stays_one() {
        let mut c = StepLadder::default();
        c.reset();
        let rung = 2f64.powf(0.25);
        for (err, accept) in [(0.5, true), (0.9, true), (3.0, false), (1e-6, true)] {
            let inner = {
                let mut p = PiController::default();
                p.reset();
                p.decide(err, 3.0)
            };
            let d = c.decide(err, 3.0);
            c.reset();
            assert_eq!(d.accept, accept);
            assert!(
                d.factor <= inner.factor && d.factor * rung > inner.factor,
                "{err}"
            );
            let j = 4.0 * d.factor.log2();
            assert!((j - j.round()).abs() < 1e-12, "{err}: {}", d.factor);
        }
        assert!(
            StepLadder::new(PiController::default(), 0)
                .validate()
                .is_err()
        );
    }
}
