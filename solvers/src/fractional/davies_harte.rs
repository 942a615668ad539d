//! Exact fBM sampling on a uniform grid by circulant embedding (Davies and
//! Harte, "Tests for Hurst effect", Biometrika 74, 1987; Wood and Chan,
//! "Simulation of stationary Gaussian processes in [0,1]^d", J. Comput.
//! Graph. Stat. 3, 1994; `../shared/reference/fbm.md` §2).
//!
//! The increments of the standard (type I) fBM on the grid `kΔ` are
//! stationary (fractional Gaussian noise, autocovariance
//! `Δ^{2H} ρ(k)`, `ρ(k) = ½(|k+1|^{2H} − 2|k|^{2H} + |k−1|^{2H})`). Their
//! `N × N` Toeplitz covariance is embedded in a circulant of length `2M`
//! (`M ≥ N`, a power of two) whose eigenvalues `λ` are one FFT of its first
//! row. When all `λ ≥ 0` the circulant is a covariance, and
//! `Y = FFT(√(λ/2M) · w)` with `w` complex with independent standard normal
//! real and imaginary parts has `Re Y` and `Im Y` independent with that
//! covariance: two exact fGn samples per FFT, `O(M log M)`.
//!
//! Positivity: proved for `H ≤ ½` (Craigmile, J. Time Ser. Anal. 24, 2003)
//! and observed for `H > ½`; it is checked numerically. Eigenvalues below
//! zero by no more than `1e-12` of the largest are round-off and set to
//! zero; if one is more negative, `M` is doubled (padding, up to
//! [`DaviesHarte::MAX_PADDING`] doublings), and if that does not help the
//! constructor returns [`FbmError::NotPositive`].
//!
//! Only type I. The Riemann–Liouville process (type II) has non-stationary
//! increments: the covariance of its grid values (or of its increments) is
//! not Toeplitz, so there is nothing to embed in a circulant.
//! [`DaviesHarte::for_type`] returns [`FbmError::Unsupported`] for it. Its
//! grid values are a causal convolution of white noise with the kernel
//! `(t−s)^{H−½}/Γ(H+½)`, but each grid cell contributes a whole vector of
//! correlated weights `∫_cell (t_k−s)^{H−½} dW_s` (one per later `t_k`), so
//! a discrete convolution of `N` normals is not exact either: the hybrid
//! scheme of Bennedsen, Lunde and Pakkanen ("Hybrid scheme for Brownian
//! semistationary processes", Finance Stoch. 21, 2017) is exactly that
//! approximation (exact near the diagonal, a step kernel beyond), `O(N log
//! N)` by FFT but with a covariance error. We know of no exact
//! FFT-speed sampler of the Riemann–Liouville process; sample it exactly
//! with [`super::CholeskyFbm`] (any grid, `O(N²)` per path after an
//! `O(N³)` factorisation), or approximately through
//! [`super::MarkovApprox`].
//!
//! The embedding (eigenvalues and FFT plan) is computed once per grid and
//! reused by every path, with the FFT's scratch; a pair of paths costs
//! `4M` normals written straight into the FFT buffer (scaled by `√λ` on the
//! way), one in-place complex FFT of length `2M`, and the cumulative sums:
//! no allocation. Per point that is about 2 normals and `O(log N)` FFT work
//! (`benches/fbm.rs` times it against a minimal hand-written loop, and
//! `benches/external/fbm_reference` against stochastic-rs).

use std::fmt;
use std::sync::Arc;

use rustfft::num_complex::Complex64;
use rustfft::{Fft, FftPlanner};

use super::covariance::FbmType;
use super::error::{FbmError, check_hurst};
use crate::brownian::rng::{NormalStream, derive};

/// Key tag of the normals of a Davies–Harte pair.
const TAG: u64 = 0xDA71;

/// Eigenvalues below `−ROUNDOFF · λ_max` are not round-off.
const ROUNDOFF: f64 = 1e-12;

/// An exact sampler of the standard fBM at `Δ, 2Δ, …, NΔ` by circulant
/// embedding, with the embedding cached for all paths.
///
/// ```
/// use sdeflow_solvers::fractional::DaviesHarte;
/// let mut fbm = DaviesHarte::new(0.3, 1024, 1.0 / 1024.0)?;
/// let (mut a, mut b) = (vec![0.0; 1024], vec![0.0; 1024]);
/// fbm.sample_pair(7, &mut a, &mut b)?; // two independent paths
/// # Ok::<(), sdeflow_solvers::fractional::FbmError>(())
/// ```
#[derive(Clone)]
pub struct DaviesHarte {
    hurst: f64,
    n: usize,
    dt: f64,
    /// `√(λ_j / 2M)`.
    scale: Vec<f64>,
    fft: Arc<dyn Fft<f64>>,
    buf: Vec<Complex64>,
    scratch: Vec<Complex64>,
}

impl fmt::Debug for DaviesHarte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DaviesHarte")
            .field("hurst", &self.hurst)
            .field("n", &self.n)
            .field("dt", &self.dt)
            .field("circulant_len", &self.scale.len())
            .finish()
    }
}

/// The autocovariance `ρ(k)` of unit-spacing fractional Gaussian noise.
pub fn fgn_autocovariance(hurst: f64, k: usize) -> f64 {
    let p = 2.0 * hurst;
    let k = k as f64;
    0.5 * ((k + 1.0).powf(p) - 2.0 * k.powf(p) + (k - 1.0).abs().powf(p))
}

impl DaviesHarte {
    /// At most this many doublings of the embedding beyond the smallest
    /// power of two `≥ N`.
    pub const MAX_PADDING: u32 = 6;

    /// The embedding for `kind` (only [`FbmType::MandelbrotVanNess`]; see
    /// the module docs): [`DaviesHarte::new`] for type I, and
    /// [`FbmError::Unsupported`] for the Riemann–Liouville process, whose
    /// increments are not stationary.
    ///
    /// ```
    /// use sdeflow_solvers::fractional::{DaviesHarte, FbmError, FbmType};
    /// let e = DaviesHarte::for_type(FbmType::RiemannLiouville, 0.3, 64, 0.1);
    /// assert!(matches!(e, Err(FbmError::Unsupported { .. })));
    /// ```
    pub fn for_type(kind: FbmType, hurst: f64, n: usize, dt: f64) -> Result<Self, FbmError> {
        match kind {
            FbmType::MandelbrotVanNess => Self::new(hurst, n, dt),
            FbmType::RiemannLiouville => Err(FbmError::Unsupported {
                what: "Davies–Harte sampling of the Riemann–Liouville (type II) process".into(),
                why: "its increments are not stationary, so their covariance is not Toeplitz and \
                      has no circulant embedding (and no exact FFT-speed sampler is known)"
                    .into(),
                instead: "sample it exactly with CholeskyFbm::new(FbmType::RiemannLiouville, …), \
                          or approximately with the Markov approximation (MarkovApprox)"
                    .into(),
            }),
        }
    }

    /// The embedding for `n` points of spacing `dt` and Hurst index
    /// `hurst` (standard, type I fBM).
    pub fn new(hurst: f64, n: usize, dt: f64) -> Result<Self, FbmError> {
        let hurst = check_hurst(hurst)?;
        if n == 0 || n > 1 << 30 {
            return Err(FbmError::invalid(
                "Davies–Harte grid length",
                format!("{n} points; give 1 ≤ N ≤ 2^30"),
            ));
        }
        if !(dt.is_finite() && dt > 0.0) {
            return Err(FbmError::invalid(
                "Davies–Harte spacing",
                format!("dt = {dt}; give a finite dt > 0"),
            ));
        }
        let mut planner = FftPlanner::new();
        let mut m = n.next_power_of_two();
        let mut worst = 0.0;
        for _ in 0..=Self::MAX_PADDING {
            let len = 2 * m;
            let mut c: Vec<Complex64> = (0..len)
                .map(|j| {
                    let k = if j <= m { j } else { len - j };
                    Complex64::new(fgn_autocovariance(hurst, k), 0.0)
                })
                .collect();
            let fft = planner.plan_fft_forward(len);
            fft.process(&mut c);
            let max = c.iter().map(|v| v.re).fold(0.0, f64::max);
            let min = c.iter().map(|v| v.re).fold(f64::INFINITY, f64::min);
            if min >= -ROUNDOFF * max {
                // spacing: fGn of spacing dt is dt^H times unit fGn
                let s = dt.powf(hurst) / (len as f64).sqrt();
                let scale = c.iter().map(|v| v.re.max(0.0).sqrt() * s).collect();
                let scratch = vec![Complex64::new(0.0, 0.0); fft.get_inplace_scratch_len()];
                return Ok(DaviesHarte {
                    hurst,
                    n,
                    dt,
                    scale,
                    fft,
                    buf: vec![Complex64::new(0.0, 0.0); len],
                    scratch,
                });
            }
            worst = min / max;
            m *= 2;
        }
        Err(FbmError::NotPositive {
            what: format!("the circulant embedding of fGn (H = {hurst}, N = {n})"),
            min_relative: worst,
            size: m,
            hint: "sample this grid with CholeskyFbm".into(),
        })
    }

    /// The Hurst index.
    pub fn hurst(&self) -> f64 {
        self.hurst
    }

    /// Number of grid points `N`.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the grid is empty (never: `N ≥ 1`).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The grid spacing `Δ`.
    pub fn dt(&self) -> f64 {
        self.dt
    }

    /// Length `2M` of the circulant embedding (after any padding).
    pub fn circulant_len(&self) -> usize {
        self.scale.len()
    }

    /// Checks an output buffer's length.
    fn check_len(&self, out: &[f64]) -> Result<(), FbmError> {
        if out.len() == self.n {
            Ok(())
        } else {
            Err(FbmError::DimensionMismatch {
                what: "Davies–Harte output".into(),
                expected: self.n,
                found: out.len(),
            })
        }
    }

    /// `buf = FFT(√(λ/2M) · w)` for the normals `w` of `seed`: two fGn
    /// samples in its real and imaginary parts.
    fn transform(&mut self, seed: u64) {
        // the normals go straight into the buffer (one pass, no staging)
        let mut w = NormalStream::new(derive(seed, TAG));
        for (v, &s) in self.buf.iter_mut().zip(&self.scale) {
            let re = w.next_normal();
            let im = w.next_normal();
            *v = Complex64::new(re * s, im * s);
        }
        self.fft
            .process_with_scratch(&mut self.buf, &mut self.scratch);
    }

    /// Writes two independent paths `B(Δ), …, B(NΔ)` of `seed` into `a`
    /// and `b` (each of length `N`): a pure function of `seed`.
    pub fn sample_pair(&mut self, seed: u64, a: &mut [f64], b: &mut [f64]) -> Result<(), FbmError> {
        self.check_len(a)?;
        self.check_len(b)?;
        self.transform(seed);
        // cumulative sums of the increments
        let (mut sa, mut sb) = (0.0, 0.0);
        for ((x, y), v) in a.iter_mut().zip(b.iter_mut()).zip(&self.buf[..self.n]) {
            sa += v.re;
            sb += v.im;
            *x = sa;
            *y = sb;
        }
        Ok(())
    }

    /// Writes the path of `seed` (the first of [`DaviesHarte::sample_pair`]'s
    /// pair) into `out` (length `N`).
    pub fn sample(&mut self, seed: u64, out: &mut [f64]) -> Result<(), FbmError> {
        self.check_len(out)?;
        self.transform(seed);
        let mut s = 0.0;
        for (x, v) in out.iter_mut().zip(&self.buf[..self.n]) {
            s += v.re;
            *x = s;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hurst_one_half_embeds_white_noise() {
        // ρ(k) = δ_k0: every eigenvalue of the circulant is 1, so the
        // increments are independent N(0, Δ)
        let dh = DaviesHarte::new(0.5, 100, 0.01).expect("valid");
        assert_eq!(dh.circulant_len(), 256);
        let want = 0.1 / 256f64.sqrt();
        assert!(dh.scale.iter().all(|s| (s - want).abs() < 1e-15 * want));
        // the smallest power of two at least N, for any H tried here
        for h in [0.1, 0.3, 0.7, 0.9] {
            assert_eq!(
                DaviesHarte::new(h, 1000, 1e-3)
                    .expect("positive")
                    .circulant_len(),
                2048
            );
        }
    }
}
