//! The joint `(W, H̄)` Brownian bridge and Chen's relation, shared by the
//! virtual tree and the Brownian interval.
//!
//! All values are *interval-relative*: an interval `[a, b]` carries its
//! increment `W_{a,b}` and `H̄_{a,b} = (b − a) H_{a,b}`, never values anchored
//! at `t0`, so that no `O(1)` quantities are ever subtracted to get a small one.
//!
//! Split of `[a, b]` (length `T`) at `a + l` (`ρ = T − l`, `D = √(l³ + ρ³)`,
//! `X1, X2 ~ N(0, 1)`): Foster (DPhil thesis 2020, Thm 6.1.4), as in diffrax
//! `_brownian/tree.py` and torchsde `_brownian/brownian_interval.py`;
//! `../shared/reference/sde.md` §8(b):
//!
//! ```text
//! W_L = (l/T) W + (6lρ/T³) H̄ + (√(lρ) D/T²) X1
//! W_R = (ρ/T) W − (6lρ/T³) H̄ − (√(lρ) D/T²) X1
//! H̄_L = (l/T)³ H̄ − (l³ √(lρ)/(2TD)) X1 + (lρ √(lρ)/(2√3 D)) X2
//! H̄_R = (ρ/T)³ H̄ − (ρ³ √(lρ)/(2TD)) X1 − (lρ √(lρ)/(2√3 D)) X2
//! ```
//!
//! (the thesis' `H` formulas multiplied by `l` and `ρ`). Checked symbolically
//! (sympy, while writing this module): the conditional mean and covariance of
//! `(W_L, H_L, W_R, H_R)` given `(W, H̄)` are exactly those of the Gaussian
//! vector with independent halves `W_· ~ N(0, len)`, `H_· ~ N(0, len/12)`,
//! and the formulas satisfy `W_L + W_R = W` and [`chen`] identically. At the
//! midpoint they reduce to Foster's midpoint rule used by the tree
//! ([`midpoint`]): the same normals give the same values.
//!
//! Chen's relation for adjacent `[x, y]`, `[y, z]` (from
//! `∫_x^z W_{x,r} dr = (z − x)(½W_{x,z} + H_{x,z})`):
//! `H̄_{x,z} = H̄_{x,y} + H̄_{y,z} + ½((z − y) W_{x,y} − (y − x) W_{y,z})`.

/// Coefficients of the split of an interval of length `l + ρ` at `l` from
/// its start (the same for every component).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Split {
    wl_w: f64,
    wr_w: f64,
    w_h: f64,
    w_x: f64,
    hl_h: f64,
    hr_h: f64,
    hl_x1: f64,
    hr_x1: f64,
    h_x2: f64,
    /// Standard deviation of the pure bridge (without Lévy area):
    /// `√(lρ/T)`.
    sd: f64,
}

impl Split {
    /// The split at `l` of an interval `[0, l + ρ]` (`l, ρ ≥ 0`).
    #[inline]
    pub(crate) fn new(l: f64, rho: f64) -> Self {
        let t = l + rho;
        // also NaN
        if t.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return Split {
                wl_w: 0.0,
                wr_w: 0.0,
                w_h: 0.0,
                w_x: 0.0,
                hl_h: 0.0,
                hr_h: 0.0,
                hl_x1: 0.0,
                hr_x1: 0.0,
                h_x2: 0.0,
                sd: 0.0,
            };
        }
        let (a, b) = (l / t, rho / t);
        let (l3, r3) = (l * l * l, rho * rho * rho);
        let d = (l3 + r3).sqrt();
        let slr = (l * rho).sqrt();
        let q = slr / (2.0 * t * d);
        Split {
            wl_w: a,
            wr_w: b,
            w_h: 6.0 * a * b / t,
            w_x: slr * d / (t * t),
            hl_h: a * a * a,
            hr_h: b * b * b,
            hl_x1: -l3 * q,
            hr_x1: -r3 * q,
            h_x2: l * rho * slr / (2.0 * 3f64.sqrt() * d),
            sd: (l * (rho / t)).sqrt(),
        }
    }

    /// `(W_L, H̄_L, W_R, H̄_R)` from `(W, H̄)` of the whole and two normals.
    #[inline(always)]
    pub(crate) fn levy(&self, w: f64, hb: f64, x1: f64, x2: f64) -> (f64, f64, f64, f64) {
        let r = self.w_h * hb + self.w_x * x1;
        (
            self.wl_w * w + r,
            self.hl_h * hb + self.hl_x1 * x1 + self.h_x2 * x2,
            self.wr_w * w - r,
            self.hr_h * hb + self.hr_x1 * x1 - self.h_x2 * x2,
        )
    }

    /// `(W_L, W_R)` of the plain Brownian bridge from `W` and one normal.
    #[inline(always)]
    pub(crate) fn plain(&self, w: f64, x: f64) -> (f64, f64) {
        let r = self.sd * x;
        (self.wl_w * w + r, self.wr_w * w - r)
    }
}

/// Foster's midpoint rule for an interval of length `t`:
/// `(W_L, H̄_L, W_R, H̄_R)` with `Z = (√t/4) x1`, `N = √(t/12) x2`.
/// `sqrt_t = √t`.
#[inline(always)]
pub(crate) fn midpoint(
    t: f64,
    sqrt_t: f64,
    w: f64,
    hb: f64,
    x1: f64,
    x2: f64,
) -> (f64, f64, f64, f64) {
    let z = 0.25 * sqrt_t * x1;
    let nn = sqrt_t * FRAC_1_SQRT_12 * x2;
    let m = 1.5 / t * hb;
    let q = 0.25 * t;
    let hm = 0.125 * hb - q * z;
    (0.5 * w + m + z, hm + q * nn, 0.5 * w - m - z, hm - q * nn)
}

/// `1/√12`.
pub(crate) const FRAC_1_SQRT_12: f64 = 0.288_675_134_594_812_9;

/// Chen's relation: `(W, H̄)` of `[x, z]` from `[x, y]` (length `a`) and
/// `[y, z]` (length `b`).
#[inline(always)]
pub(crate) fn chen(w1: f64, h1: f64, a: f64, w2: f64, h2: f64, b: f64) -> (f64, f64) {
    (w1 + w2, h1 + h2 + 0.5 * (b * w1 - a * w2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_general_split_is_the_midpoint_rule_at_the_midpoint() {
        let t = 0.37;
        let s = Split::new(t / 2.0, t / 2.0);
        let (w, hb, x1, x2) = (0.4, -0.03, 1.3, -0.7);
        let a = s.levy(w, hb, x1, x2);
        let b = midpoint(t, t.sqrt(), w, hb, x1, x2);
        for (u, v) in [(a.0, b.0), (a.1, b.1), (a.2, b.2), (a.3, b.3)] {
            assert!((u - v).abs() < 1e-15, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn splits_add_up_and_chain() {
        for (l, rho) in [(0.3, 0.9), (1e-9, 2.0), (2.0, 1e-12), (0.5, 0.5)] {
            let s = Split::new(l, rho);
            let (w, hb, x1, x2) = (0.8, 0.11, -0.4, 1.7);
            let (wl, hl, wr, hr) = s.levy(w, hb, x1, x2);
            assert!((wl + wr - w).abs() < 1e-15);
            let (cw, ch) = chen(wl, hl, l, wr, hr, rho);
            assert!(
                (cw - w).abs() < 1e-15 && (ch - hb).abs() < 1e-15,
                "{l} {rho}"
            );
            let (pl, pr) = s.plain(w, x1);
            assert!((pl + pr - w).abs() < 1e-15);
        }
        // a degenerate interval splits into zeros
        let s = Split::new(0.0, 0.0);
        assert_eq!(s.levy(0.0, 0.0, 1.0, 1.0), (0.0, 0.0, 0.0, 0.0));
    }
}
