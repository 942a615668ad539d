//! Losses on the saved states of a solve.

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
