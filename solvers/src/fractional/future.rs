//! Features of the future observations for a variational posterior's
//! control.
//!
//! For a linear Gaussian Markov model (the Markov approximation of an
//! fBM-driven OU process in `(X, Y_1..Y_K)`, `../shared/reference/fbm.md`
//! §3.3) with Gaussian observations, the exact posterior's optimal control
//! is affine in the Markov state, `u*(t, s) = Bᵀ(q(t) − P(t) s)`: the
//! gains `P(t)` do not depend on the data, and the offset `q(t)` (the
//! backward information filter) is a linear functional of *all* the
//! observations after `t`, whose kernel decays in `t_j − t` like sums of
//! exponentials. A control that reads only the next observation cannot
//! represent it (Daems et al., "Variational inference for SDEs driven by
//! fractional noise", ICLR 2024, condition their posterior on the data by
//! an encoder; latent SDEs, Li et al. AISTATS 2020, read a backward
//! encoding of the whole sequence, `torchsde/examples/latent_sde.py`).
//!
//! [`future_observation_features`] gives, at each time `t` of a grid and
//! for each rate `r` of a fixed set, the data-only exponential sums
//!
//! `F_r(t) = Σ_{t_j > t} e^{−r (t_j − t)} y_j`,  `N_r(t) = Σ_{t_j > t} e^{−r (t_j − t)}`,
//!
//! computed by one backward recursion (`O((grid + observations) · rates)`).
//! They use neither the model's parameters nor a filter, so a control fed
//! with them (and the state) is still fitted by the ELBO alone; a family
//! affine in `F_r` and the state spans `u*` as far as the rates span the
//! kernel's time scales.

use super::error::FbmError;

/// The exponential sums of the observations after each grid time, row by
/// grid time: row `i` holds `F_{r_m}(grid[i])` at `2m` and
/// `N_{r_m}(grid[i])` at `2m + 1`, `m` over `rates` (see the module docs),
/// so the result has `grid.len() · 2 · rates.len()` entries. An
/// observation at exactly `grid[i]` is not after it.
///
/// `grid` and `times` must be non-decreasing and finite, `values` as long
/// as `times`, and the rates finite and non-negative; otherwise a typed
/// error says which input is wrong.
///
/// ```
/// use sdeflow_solvers::fractional::future_observation_features;
/// // observations 2 at t = 1 and 3 at t = 2; one rate r = ln 2
/// let r = std::f64::consts::LN_2;
/// let f = future_observation_features(&[0.0, 1.0, 2.0], &[1.0, 2.0], &[2.0, 3.0], &[r])?;
/// // at t = 0: F = 2/2 + 3/4, N = 1/2 + 1/4; at t = 1: F = 3/2, N = 1/2; at t = 2: none
/// let want = [1.75, 0.75, 1.5, 0.5, 0.0, 0.0];
/// assert!(f.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12));
/// # Ok::<(), sdeflow_solvers::fractional::FbmError>(())
/// ```
pub fn future_observation_features(
    grid: &[f64],
    times: &[f64],
    values: &[f64],
    rates: &[f64],
) -> Result<Vec<f64>, FbmError> {
    let invalid = |what: &str, reason: String| FbmError::InvalidInput {
        what: format!("future_observation_features {what}"),
        reason,
    };
    if times.len() != values.len() {
        return Err(FbmError::DimensionMismatch {
            what: "future_observation_features values (one per observation time)".into(),
            expected: times.len(),
            found: values.len(),
        });
    }
    for (name, xs) in [("grid", grid), ("observation times", times)] {
        if let Some(i) = (0..xs.len()).find(|&i| !xs[i].is_finite() || (i > 0 && xs[i] < xs[i - 1]))
        {
            return Err(invalid(
                name,
                format!(
                    "entry {i} ({}) is not finite or smaller than the one before; give finite, \
                     non-decreasing times",
                    xs[i]
                ),
            ));
        }
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(invalid(
            "values",
            format!("observation {i} is {}; drop or impute it", values[i]),
        ));
    }
    if let Some(&r) = rates.iter().find(|r| !(r.is_finite() && **r >= 0.0)) {
        return Err(invalid(
            "rates",
            format!("rate {r} is not finite and non-negative; give decay rates r ≥ 0"),
        ));
    }
    let nm = rates.len();
    let mut out = vec![0.0; grid.len() * 2 * nm];
    // the sums at time `at` over the observations after the current grid
    // time; walking the grid backwards, observations are added as `at`
    // passes them (decayed to `at` first)
    let mut sums = vec![0.0; 2 * nm];
    let mut at = f64::INFINITY;
    let mut j = times.len();
    for i in (0..grid.len()).rev() {
        let t = grid[i];
        while j > 0 && times[j - 1] > t {
            j -= 1;
            decay(&mut sums, rates, at - times[j]);
            at = times[j];
            for s in sums.chunks_exact_mut(2) {
                s[0] += values[j];
                s[1] += 1.0;
            }
        }
        decay(&mut sums, rates, at - t);
        at = t;
        out[i * 2 * nm..(i + 1) * 2 * nm].copy_from_slice(&sums);
    }
    Ok(out)
}

/// Moves the sums back by `dt ≥ 0` (nothing when they are still empty,
/// `dt` infinite).
fn decay(sums: &mut [f64], rates: &[f64], dt: f64) {
    if !dt.is_finite() || dt == 0.0 {
        return;
    }
    for (s, r) in sums.chunks_exact_mut(2).zip(rates) {
        let e = (-r * dt).exp();
        s[0] *= e;
        s[1] *= e;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recursion against the direct double sum on a grid that is not
    /// the observations' (observations between, on and after grid points).
    #[test]
    fn future_features_match_direct_sums() {
        let grid: Vec<f64> = (0..=40).map(|i| 0.05 * i as f64).collect();
        let times: Vec<f64> = (1..=13)
            .map(|j| 0.15 * j as f64 + 0.01 * (j % 3) as f64)
            .collect();
        let values: Vec<f64> = times.iter().map(|t| (3.0 * t).sin() + 0.2).collect();
        let rates = [0.0, 0.3, 2.0, 40.0];
        let f = future_observation_features(&grid, &times, &values, &rates).unwrap();
        for (i, &t) in grid.iter().enumerate() {
            for (m, r) in rates.iter().enumerate() {
                let (mut fs, mut ns) = (0.0, 0.0);
                for (tj, yj) in times.iter().zip(&values) {
                    if *tj > t {
                        fs += (-r * (tj - t)).exp() * yj;
                        ns += (-r * (tj - t)).exp();
                    }
                }
                let row = &f[i * 2 * rates.len()..];
                assert!(
                    (row[2 * m] - fs).abs() < 1e-12 * (1.0 + fs.abs()),
                    "F at {t}, r {r}"
                );
                assert!(
                    (row[2 * m + 1] - ns).abs() < 1e-12 * (1.0 + ns),
                    "N at {t}, r {r}"
                );
            }
        }
    }

    #[test]
    fn future_features_reject_bad_input() {
        let ok = [0.0, 1.0];
        assert!(matches!(
            future_observation_features(&ok, &ok, &[1.0], &[1.0]),
            Err(FbmError::DimensionMismatch { .. })
        ));
        assert!(future_observation_features(&[1.0, 0.0], &ok, &ok, &[1.0]).is_err());
        assert!(future_observation_features(&ok, &ok, &[f64::NAN, 0.0], &[1.0]).is_err());
        assert!(future_observation_features(&ok, &ok, &ok, &[-1.0]).is_err());
    }
}
