//! Exact covariances of the two fractional Brownian motions
//! (`../shared/reference/fbm.md` §1, §5).
//!
//! - Type I, Mandelbrot–Van Ness (standard fBM, stationary increments):
//!   `Cov(B(s), B(t)) = ½ (s^{2H} + t^{2H} − |t − s|^{2H})`.
//! - Type II, Riemann–Liouville, `B(t) = Γ(H+½)^{-1} ∫_0^t (t−u)^{H−½} dW_u`:
//!   `Cov(B(s), B(t)) = Γ(H+½)^{-2} ∫_0^s v^{H−½} (v + t − s)^{H−½} dv`
//!   for `s ≤ t` (closed form with ₂F₁ in S. C. Lim, J. Phys. A 34 (2001)
//!   1301; here evaluated by tanh–sinh quadrature, which handles the
//!   endpoint singularity).

use super::special::{gamma, tanh_sinh};

/// Which fractional Brownian motion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FbmType {
    /// Type I, Mandelbrot–Van Ness: the standard fBM (stationary
    /// increments, infinite past).
    MandelbrotVanNess,
    /// Type II, Riemann–Liouville: no past, non-stationary increments.
    RiemannLiouville,
}

/// `Cov(B_H(s), B_H(t))` of the standard (type I) fBM, `s, t ≥ 0`.
pub fn fbm_covariance(hurst: f64, s: f64, t: f64) -> f64 {
    let p = 2.0 * hurst;
    0.5 * (s.abs().powf(p) + t.abs().powf(p) - (t - s).abs().powf(p))
}

/// `Cov(B(s), B(t))` of the Riemann–Liouville (type II) fBM with the
/// `1/Γ(H+½)` normalisation, `s, t ≥ 0`; `Var B(t) = t^{2H} / (2H Γ(H+½)²)`.
pub fn riemann_liouville_covariance(hurst: f64, s: f64, t: f64) -> f64 {
    let (lo, hi) = if s <= t { (s, t) } else { (t, s) };
    if lo <= 0.0 {
        return 0.0;
    }
    let a = hurst - 0.5;
    let g = gamma(hurst + 0.5);
    let scale = lo.powf(2.0 * hurst) / (g * g);
    let delta = (hi - lo) / lo;
    if delta == 0.0 {
        return scale / (2.0 * hurst);
    }
    // ∫_0^1 x^a (x + δ)^a dx
    scale * tanh_sinh(|x, _| x.powf(a) * (x + delta).powf(a), 1e-13)
}

/// `V_H = Γ(2−2H) cos(πH) / (πH(1−2H)) = 1 / (Γ(2H+1) sin(πH))`: the
/// variance at `t = 1` of the Mandelbrot–Van Ness integral with the
/// `1/Γ(H+½)` normalisation (what the Markov approximation's type I
/// approximates); divide by `√V_H` for the standard fBM. `V_½ = 1`.
pub fn mvn_variance_constant(hurst: f64) -> f64 {
    1.0 / (gamma(2.0 * hurst + 1.0) * (std::f64::consts::PI * hurst).sin())
}

/// The covariance of the process a [`FbmType`] names, in the normalisation
/// the samplers use: standard fBM for type I, the `1/Γ(H+½)` normalisation
/// for type II.
pub fn covariance(kind: FbmType, hurst: f64, s: f64, t: f64) -> f64 {
    match kind {
        FbmType::MandelbrotVanNess => fbm_covariance(hurst, s, t),
        FbmType::RiemannLiouville => riemann_liouville_covariance(hurst, s, t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ₂F₁(a, 1; c; z) by its series (|z| ≤ ½ here: converges as 2^{-n}).
    fn hyp2f1_b1(a: f64, c: f64, z: f64) -> f64 {
        let (mut term, mut sum) = (1.0, 1.0);
        for n in 0..200 {
            let n = n as f64;
            term *= (a + n) * (1.0 + n) / ((c + n) * (n + 1.0)) * z;
            sum += term;
        }
        sum
    }

    #[test]
    fn riemann_liouville_covariance_matches_lims_closed_form() {
        for h in [0.1, 0.3, 0.5, 0.7, 0.9] {
            let g = gamma(h + 0.5);
            for (s, t) in [(0.3f64, 1.0f64), (0.1, 2.0), (0.5, 1.0), (1e-3, 1.0)] {
                // Lim (2001): s^{H+½} t^{H−½} ₂F₁(½−H, 1; H+3/2; s/t) / ((H+½) Γ(H+½)²)
                let exact = s.powf(h + 0.5) * t.powf(h - 0.5) * hyp2f1_b1(0.5 - h, h + 1.5, s / t)
                    / ((h + 0.5) * g * g);
                let v = riemann_liouville_covariance(h, s, t);
                assert!(
                    (v - exact).abs() < 1e-11 * exact.abs(),
                    "H {h} ({s}, {t}): {v} vs {exact} (Lim)"
                );
            }
            // the variance; near the diagonal the covariance falls below it
            // as δ^{2H} (Hölder continuity), and stays under the
            // Cauchy–Schwarz bound
            let var = 1.0 / (2.0 * h * g * g);
            assert!((riemann_liouville_covariance(h, 1.0, 1.0) - var).abs() < 1e-14);
            for delta in [1e-12, 1e-6, 1e-2] {
                let near = riemann_liouville_covariance(h, 1.0, 1.0 + delta);
                let bound =
                    (var * riemann_liouville_covariance(h, 1.0 + delta, 1.0 + delta)).sqrt();
                assert!(
                    near <= bound * (1.0 + 1e-12) && near > 0.0,
                    "H {h}, δ {delta}: {near} vs bound {bound}"
                );
                let drop = 1.0 - near / var;
                assert!(
                    drop < 2.0 * delta.powf(2.0 * h) + delta,
                    "H {h} δ {delta}: drop {drop}"
                );
            }
        }
        // H = ½: Brownian motion, min(s, t)
        assert!((riemann_liouville_covariance(0.5, 0.3, 0.8) - 0.3).abs() < 1e-13);
    }

    #[test]
    fn mvn_constant_matches_the_reference_values() {
        for (h, v) in [
            (0.1, 3.52448),
            (0.3, 1.38338),
            (0.7, 0.99509),
            (0.9, 1.93026),
        ] {
            assert!((mvn_variance_constant(h) - v).abs() < 1e-5, "V_{h}");
            // the two forms of fbm.md agree
            let pi = std::f64::consts::PI;
            let alt = gamma(2.0 - 2.0 * h) * (pi * h).cos() / (pi * h * (1.0 - 2.0 * h));
            assert!((mvn_variance_constant(h) - alt).abs() < 1e-12);
        }
        assert!((mvn_variance_constant(0.5) - 1.0).abs() < 1e-14);
    }
}
