//! Exact fBM sampling on any grid by the Cholesky factor of the covariance
//! (`../shared/reference/fbm.md` §2; e.g. Dieker, "Simulation of fractional
//! Brownian motion", MSc thesis, Twente 2004, §2.1.2).
//!
//! The `N × N` covariance of `(B(t_1), …, B(t_N))` is factored once,
//! `C = L Lᵀ` (`O(N³)`), and each path is `B = L z` with `z` standard
//! normals (`O(N²)`). Works for both types ([`FbmType`]), any Hurst index
//! and any grid of positive, increasing times; the price is the cubic
//! set-up, so for long uniform grids of type I prefer
//! [`super::DaviesHarte`] (`O(N log N)` per path).

use nalgebra::{DMatrix, DVector};

use super::covariance::{FbmType, covariance};
use super::error::{FbmError, check_hurst, check_times};
use crate::brownian::rng::{derive, normals};

/// Key tag of the normals of a Cholesky path.
const TAG: u64 = 0xC401;

/// An exact sampler of `(B(t_1), …, B(t_N))` by the Cholesky factor of its
/// covariance: standard fBM for [`FbmType::MandelbrotVanNess`], the
/// Riemann–Liouville process with the `1/Γ(H+½)` normalisation for
/// [`FbmType::RiemannLiouville`].
///
/// ```
/// use sdeflow_solvers::fractional::{CholeskyFbm, FbmType};
/// let mut fbm = CholeskyFbm::new(FbmType::MandelbrotVanNess, 0.7, &[0.5, 1.0, 2.0])?;
/// let mut path = [0.0; 3];
/// fbm.sample(42, &mut path)?;
/// let mut again = [0.0; 3];
/// fbm.sample(42, &mut again)?;
/// assert_eq!(path, again);
/// # Ok::<(), sdeflow_solvers::fractional::FbmError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CholeskyFbm {
    kind: FbmType,
    hurst: f64,
    times: Vec<f64>,
    /// Lower Cholesky factor of the covariance.
    factor: DMatrix<f64>,
    z: DVector<f64>,
}

impl CholeskyFbm {
    /// Factors the covariance of `kind` with Hurst index `hurst` at the
    /// times `times` (finite, positive, strictly increasing).
    pub fn new(kind: FbmType, hurst: f64, times: &[f64]) -> Result<Self, FbmError> {
        let hurst = check_hurst(hurst)?;
        check_times(times)?;
        let n = times.len();
        let cov = DMatrix::from_fn(n, n, |i, j| covariance(kind, hurst, times[i], times[j]));
        let max_diag = (0..n).map(|i| cov[(i, i)]).fold(0.0, f64::max);
        let factor = cov
            .cholesky()
            .ok_or_else(|| FbmError::NotPositive {
                what: format!("the {n}×{n} fBM covariance (H = {hurst})"),
                min_relative: f64::NAN,
                size: n,
                hint: format!(
                    "the grid is too fine or too long for the covariance to be factored in \
                     double precision (largest variance {max_diag:e}); use fewer or farther \
                     apart times, or Davies–Harte for a uniform grid"
                ),
            })?
            .l();
        Ok(CholeskyFbm {
            kind,
            hurst,
            times: times.to_vec(),
            factor,
            z: DVector::zeros(n),
        })
    }

    /// The type of fBM sampled.
    pub fn kind(&self) -> FbmType {
        self.kind
    }

    /// The Hurst index.
    pub fn hurst(&self) -> f64 {
        self.hurst
    }

    /// The sample times.
    pub fn times(&self) -> &[f64] {
        &self.times
    }

    /// Writes the path of `seed` into `out` (one value per time): a pure
    /// function of `seed`.
    pub fn sample(&mut self, seed: u64, out: &mut [f64]) -> Result<(), FbmError> {
        let n = self.times.len();
        if out.len() != n {
            return Err(FbmError::DimensionMismatch {
                what: "Cholesky fBM output".into(),
                expected: n,
                found: out.len(),
            });
        }
        normals(derive(seed, TAG), self.z.as_mut_slice());
        // B = L z (lower triangular)
        for i in 0..n {
            let mut acc = 0.0;
            for j in 0..=i {
                acc += self.factor[(i, j)] * self.z[j];
            }
            out[i] = acc;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hurst_one_half_is_brownian_motion_for_both_types() {
        // the factor of min(s, t) is the cumulative sum of √Δt: the path is
        // Brownian motion built from the same normals
        let ts = [0.1, 0.25, 0.7, 1.3];
        let mut z = [0.0; 4];
        normals(derive(5, TAG), &mut z);
        let mut bm = [0.0; 4];
        let (mut acc, mut prev) = (0.0, 0.0f64);
        for (k, &t) in ts.iter().enumerate() {
            acc += (t - prev).sqrt() * z[k];
            prev = t;
            bm[k] = acc;
        }
        for kind in [FbmType::MandelbrotVanNess, FbmType::RiemannLiouville] {
            let mut ch = CholeskyFbm::new(kind, 0.5, &ts).expect("valid grid");
            let mut out = [0.0; 4];
            ch.sample(5, &mut out).expect("length matches");
            for k in 0..4 {
                assert!(
                    (out[k] - bm[k]).abs() < 1e-12,
                    "{kind:?}: {out:?} vs {bm:?}"
                );
            }
        }
    }
}
