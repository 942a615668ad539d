//! Automatic initial step size (Hairer, Nørsett, Wanner I §II.4, "Starting
//! step size"; DOPRI5's `HINIT`). Costs one drift evaluation besides `f0`.

use crate::field::{Diffusion, Drift};
use crate::norm::weighted_rms;
use crate::options::Options;
use crate::solution::Stats;
use crate::solver::{Fields, StepAt};

/// Proposes `|h0|` for a method of order `order` from `(t0, y0) = (at.t,
/// at.y)` with `f0 = f(t0, y0)`, over the span `at.h = t1 − t0`. `scratch`
/// holds `2n` values.
pub fn initial_step<F: Drift, G: Diffusion>(
    fields: &Fields<'_, F, G>,
    at: StepAt<'_>,
    f0: &[f64],
    order: f64,
    opts: &Options,
    scratch: &mut [f64],
    stats: &mut Stats,
) -> f64 {
    let StepAt {
        t: t0,
        h: span,
        y: y0,
    } = at;
    let n = y0.len();
    let dir = span.signum();
    let span = span.abs();
    let d0 = weighted_rms(y0, y0, &opts.rtol, &opts.atol);
    let d1 = weighted_rms(f0, y0, &opts.rtol, &opts.atol);
    let mut h0 = if d0 < 1e-5 || d1 < 1e-5 {
        1e-6
    } else {
        0.01 * d0 / d1
    };
    h0 = h0.min(span).min(opts.dt_max);
    let (y1, f1) = scratch.split_at_mut(n);
    for i in 0..n {
        y1[i] = y0[i] + dir * h0 * f0[i];
    }
    fields.f(t0 + dir * h0, y1, &mut f1[..n], stats);
    for i in 0..n {
        y1[i] = f1[i] - f0[i];
    }
    let d2 = weighted_rms(y1, y0, &opts.rtol, &opts.atol) / h0;
    let dmax = d1.max(d2);
    let h1 = if !dmax.is_finite() {
        h0 * 1e-3
    } else if dmax <= 1e-15 {
        (h0 * 1e-3).max(1e-6)
    } else {
        (0.01 / dmax).powf(1.0 / order)
    };
    let h = (100.0 * h0).min(h1).min(span).min(opts.dt_max);
    if h.is_finite() && h > 0.0 {
        h
    } else {
        1e-6f64.min(span)
    }
}
