//! Losses on the saved states of a solve.

use sdeflow_solvers::solution::Solution;

use crate::GradError;

/// A loss `L(ts, ys)` on the saved times and states (`ys` flat, `n` per
/// time) that also writes `∂L/∂ys` (same shape) into `grad`. Any closure
/// `|ts, ys, grad| -> f64` is a loss, so fitting data at many times works.
pub trait Loss {
    /// Returns `L` and writes `∂L/∂ys` into `grad` (zeroed by the caller).
    fn eval(&self, ts: &[f64], ys: &[f64], grad: &mut [f64]) -> f64;
}

impl<F: Fn(&[f64], &[f64], &mut [f64]) -> f64> Loss for F {
    fn eval(&self, ts: &[f64], ys: &[f64], grad: &mut [f64]) -> f64 {
        self(ts, ys, grad)
    }
}

/// Evaluates `loss` on the saved states of `sol`: the value and `∂L/∂ys`,
/// or an error if either is not finite.
pub(crate) fn evaluate<L: Loss + ?Sized>(
    loss: &L,
    sol: &Solution,
) -> Result<(f64, Vec<f64>), GradError> {
    let mut gy = vec![0.0; sol.ys.len()];
    let value = loss.eval(&sol.ts, &sol.ys, &mut gy);
    if !value.is_finite() || gy.iter().any(|g| !g.is_finite()) {
        return Err(GradError::Loss(format!(
            "the loss or its gradient is not finite (L = {value})"
        )));
    }
    Ok((value, gy))
}
