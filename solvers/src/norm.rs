//! The scaled error norm of step-size control (HNW I eq. (4.11)):
//! `sc_i = atol_i + rtol_i · max(|y_i|, |ŷ_i|)`,
//! `err = sqrt((1/n) Σ (e_i / sc_i)²)`. A step is within tolerance iff
//! `err ≤ 1`.

use crate::options::Tolerance;

/// RMS norm of `e` scaled by the tolerances at `y` and `y_new`; non-finite
/// when any input is.
#[inline]
pub fn scaled_rms(e: &[f64], y: &[f64], y_new: &[f64], rtol: &Tolerance, atol: &Tolerance) -> f64 {
    let n = e.len();
    let mut acc = 0.0;
    // checked in the same pass: f64::max in the scale would hide a NaN
    let mut finite = true;
    match (rtol, atol) {
        (Tolerance::Scalar(r), Tolerance::Scalar(a)) => {
            for i in 0..n {
                let sc = a + r * y[i].abs().max(y_new[i].abs());
                let q = e[i] / sc;
                acc += q * q;
                finite &= y_new[i].is_finite();
            }
        }
        _ => {
            for i in 0..n {
                let sc = atol.get(i) + rtol.get(i) * y[i].abs().max(y_new[i].abs());
                let q = e[i] / sc;
                acc += q * q;
                finite &= y_new[i].is_finite();
            }
        }
    }
    let r = (acc / n as f64).sqrt();
    if finite { r } else { f64::INFINITY }
}

/// RMS norm of `v / (atol + rtol |y|)` (used by the initial-step heuristic,
/// and by `Bdf`'s Newton iteration and order choice).
pub fn weighted_rms(v: &[f64], y: &[f64], rtol: &Tolerance, atol: &Tolerance) -> f64 {
    // Σ (v_i / (atol_i + rtol_i |y_i|))² with the tolerances of component i
    #[inline(always)]
    fn sum_sq(v: &[f64], y: &[f64], tol: impl Fn(usize) -> (f64, f64)) -> f64 {
        (0..v.len())
            .map(|i| {
                let (r, a) = tol(i);
                let q = v[i] / (a + r * y[i].abs());
                q * q
            })
            .sum()
    }
    let acc = match (rtol, atol) {
        // the common case without a match per component (same arithmetic)
        (Tolerance::Scalar(r), Tolerance::Scalar(a)) => sum_sq(v, y, |_| (*r, *a)),
        _ => sum_sq(v, y, |i| (rtol.get(i), atol.get(i))),
    };
    (acc / v.len() as f64).sqrt()
}
