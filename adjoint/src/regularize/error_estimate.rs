//! The error-estimate regularizer of ERNODE (Pal, Ma, Shah, Rackauckas,
//! "Opening the Blackbox: Accelerating Neural Differential Equations by
//! Regularizing Internal Solver Heuristics", ICML 2021;
//! `../shared/reference/regularizers.md` §1): per accepted step
//! `P_j = E_j · |h_j|`, where `E_j` is the scaled RMS norm of the method's
//! local error estimate `e_j` that the step-size controller compares with 1
//! (`sdeflow_solvers::norm::scaled_rms`, HNW I eq. (4.11)):
//!
//! `E_j = sqrt((1/n) Σ_i (e_i / sc_i)²)`, `sc_i = atol_i + rtol_i · max(|y_i|, |ŷ_i|)`,
//!
//! with `y` the step's start and `ŷ` its result. [`ErrorEstimate`] is the
//! penalty with its exact derivative (through `e`, and through `y` and `ŷ`
//! in the scale); [`ErrorEstimateObserver`] accumulates the same sum over a
//! plain solve's accepted steps from the loop's step reports.

use sdeflow_solvers::integrate::{StepObserver, StepReport};
use sdeflow_solvers::norm::scaled_rms;

use super::{PenaltyBars, PenaltyStep, StepPenalty};

/// `P = E · |h|`, the scaled RMS norm of the step's error estimate times
/// the step size (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorEstimate;

impl StepPenalty for ErrorEstimate {
    fn name(&self) -> &'static str {
        "error estimate (E·|h|)"
    }

    fn eval(&self, step: &PenaltyStep<'_>, bars: PenaltyBars<'_>) -> f64 {
        let PenaltyStep {
            h,
            y,
            y_new,
            err,
            rtol,
            atol,
            ..
        } = *step;
        let n = y.len();
        let e_norm = scaled_rms(err, y, y_new, rtol, atol);
        bars.err.iter_mut().for_each(|v| *v = 0.0);
        if !e_norm.is_finite() {
            // the solve would have failed before
            return f64::NAN;
        }
        if e_norm == 0.0 {
            // a minimum of the norm: zero subgradient
            return 0.0;
        }
        let ah = h.abs();
        // ∂E/∂e_i = q_i / (n E sc_i), ∂E/∂sc_i = −q_i² / (n E sc_i)
        let inv = ah / (n as f64 * e_norm);
        for i in 0..n {
            let (ay, ayn) = (y[i].abs(), y_new[i].abs());
            let sc = atol.get(i) + rtol.get(i) * ay.max(ayn);
            let q = err[i] / sc;
            bars.err[i] = inv * q / sc;
            let d_sc = -inv * q * q / sc * rtol.get(i);
            if ay >= ayn {
                bars.y[i] += d_sc * y[i].signum();
            } else {
                bars.y_new[i] += d_sc * y_new[i].signum();
            }
        }
        e_norm * ah
    }
}

/// Accumulates `Σ_j E_j |h_j|` over the accepted steps of a solve from the
/// loop's step reports (`integrate_observed`): the value of the global
/// error-estimate regularizer of an adaptive solve, without a gradient.
/// Steps without a controller decision (fixed steps) have no `E_j` and are
/// not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ErrorEstimateObserver {
    /// `Σ_j E_j |h_j|` so far.
    pub sum: f64,
    /// Accepted steps that carried an error norm.
    pub steps: usize,
}

impl ErrorEstimateObserver {
    /// The mean `Σ_j E_j |h_j| / steps` (0 without steps).
    pub fn mean(&self) -> f64 {
        if self.steps == 0 {
            0.0
        } else {
            self.sum / self.steps as f64
        }
    }
}

impl StepObserver for ErrorEstimateObserver {
    fn accepted(&mut self, _: usize, _: f64, _: f64, _: &[f64], _: &[f64]) {}

    fn attempted(&mut self, report: &StepReport<'_>) {
        if let (true, Some(e)) = (report.accepted, report.err_norm) {
            self.sum += e * report.h.abs();
            self.steps += 1;
        }
    }
}
