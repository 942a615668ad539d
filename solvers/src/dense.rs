//! Dense output: a piecewise polynomial over the accepted steps.
//!
//! On a step from `t_n` of size `h` the solution is
//! `y(t_n + θh) = y_n + h Σ_i b_i(θ) k_i`, with stage-like vectors `k_i` kept
//! per step and weights `b_i(θ) = Σ_k P[i][k] θ^k` shared by all steps (they
//! belong to the method). Explicit RK methods keep their stages; the SDE
//! solvers keep `(y_{n+1} − y_n)/h` (linear interpolation); `Bdf` keeps the
//! backward differences of its history (its own interpolating polynomial);
//! the diffsol references keep samples of diffsol's interpolant inside the
//! step, read by Lagrange weights ([`lagrange_table`]).

use serde::{Deserialize, Serialize};

use crate::error::SolveError;

/// Lagrange weight polynomials for interpolation through samples at the
/// nodes `0 = θ_0 < θ_1 < … < θ_m = 1` of a step, over the vectors
/// `k_j = (y(θ_j) − y_n)/h`, `j = 1..m`: `y(θ) = y_n + h Σ_j L_j(θ) k_j`
/// (exact because `Σ_j L_j ≡ 1`). Returns the `m × (m + 1)` table.
pub fn lagrange_table(nodes: &[f64]) -> Vec<f64> {
    let m = nodes.len() - 1;
    let ncoef = m + 1;
    let mut table = vec![0.0; m * ncoef];
    for j in 1..=m {
        // Π_{i≠j} (θ − θ_i) / (θ_j − θ_i), multiplied out in ascending powers
        let mut poly = vec![0.0; ncoef];
        poly[0] = 1.0;
        let mut deg = 0;
        for (i, &xi) in nodes.iter().enumerate() {
            if i == j {
                continue;
            }
            let scale = 1.0 / (nodes[j] - xi);
            for k in (0..=deg + 1).rev() {
                let shifted = if k > 0 { poly[k - 1] } else { 0.0 };
                poly[k] = (shifted - xi * poly[k]) * scale;
            }
            deg += 1;
        }
        table[(j - 1) * ncoef..j * ncoef].copy_from_slice(&poly);
    }
    table
}

/// Evaluates the weights `b_i(θ)` of a flat polynomial table
/// (`poly[i * ncoef + k]`) into `w`.
#[inline]
pub fn poly_weights(poly: &[f64], ncoef: usize, theta: f64, w: &mut [f64]) {
    for (i, wi) in w.iter_mut().enumerate() {
        let row = &poly[i * ncoef..(i + 1) * ncoef];
        // Horner
        let mut acc = 0.0;
        for &c in row.iter().rev() {
            acc = acc * theta + c;
        }
        *wi = acc;
    }
}

/// `out = y0 + h Σ_i w_i k_i` with `ks` flat (`n` per vector).
#[inline]
pub fn combine(y0: &[f64], h: f64, w: &[f64], ks: &[f64], out: &mut [f64]) {
    let n = y0.len();
    out.copy_from_slice(y0);
    for (i, &wi) in w.iter().enumerate() {
        if wi == 0.0 {
            continue;
        }
        let k = &ks[i * n..(i + 1) * n];
        let hw = h * wi;
        for (o, &kv) in out.iter_mut().zip(k) {
            *o += hw * kv;
        }
    }
}

/// Interpolation data of a whole solve.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DenseOutput {
    /// State dimension.
    pub n: usize,
    /// Vectors kept per step.
    pub nk: usize,
    /// Coefficients per weight polynomial.
    pub ncoef: usize,
    /// Weight polynomials, `nk × ncoef`, ascending powers of θ.
    pub poly: Vec<f64>,
    /// Start time of each step.
    pub t0s: Vec<f64>,
    /// Size of each step (negative when integrating backwards).
    pub hs: Vec<f64>,
    /// State at the start of each step, `n` per step.
    pub y0s: Vec<f64>,
    /// Kept vectors, `nk · n` per step.
    pub ks: Vec<f64>,
}

impl DenseOutput {
    /// Empty interpolation data for vectors of weights `poly` (`nk × ncoef`).
    pub fn new(n: usize, nk: usize, ncoef: usize, poly: Vec<f64>) -> Self {
        debug_assert_eq!(poly.len(), nk * ncoef);
        DenseOutput {
            n,
            nk,
            ncoef,
            poly,
            t0s: Vec::new(),
            hs: Vec::new(),
            y0s: Vec::new(),
            ks: Vec::new(),
        }
    }

    /// Appends one step; `ks` holds `nk · n` values.
    pub fn push(&mut self, t0: f64, h: f64, y0: &[f64], ks: &[f64]) {
        self.t0s.push(t0);
        self.hs.push(h);
        self.y0s.extend_from_slice(y0);
        self.ks.extend_from_slice(ks);
    }

    /// Number of steps held.
    pub fn steps(&self) -> usize {
        self.t0s.len()
    }

    /// Writes `y(t)` into `out`.
    pub fn eval(&self, t: f64, out: &mut [f64]) -> Result<(), SolveError> {
        let m = self.steps();
        if m == 0 {
            return Err(SolveError::Interpolation {
                reason: "no steps were taken".into(),
            });
        }
        let dir = self.hs[0].signum();
        let start = self.t0s[0];
        let end = self.t0s[m - 1] + self.hs[m - 1];
        let tol = 1e-12 * (start.abs().max(end.abs()).max(1.0));
        if t.is_nan() || (t - start) * dir < -tol || (t - end) * dir > tol {
            return Err(SolveError::Interpolation {
                reason: format!("t={t} is outside the solved span [{start}, {end}]"),
            });
        }
        // last step whose start is at or before t (in the direction of integration)
        let idx = self.t0s.partition_point(|&s| (s - t) * dir <= 0.0);
        let i = idx.saturating_sub(1).min(m - 1);
        let h = self.hs[i];
        let theta = ((t - self.t0s[i]) / h).clamp(0.0, 1.0);
        let mut small = [0.0; 32];
        let mut large = Vec::new();
        let w: &mut [f64] = if self.nk <= small.len() {
            &mut small[..self.nk]
        } else {
            large.resize(self.nk, 0.0);
            &mut large
        };
        poly_weights(&self.poly, self.ncoef, theta, w);
        let n = self.n;
        combine(
            &self.y0s[i * n..(i + 1) * n],
            h,
            w,
            &self.ks[i * self.nk * n..(i + 1) * self.nk * n],
            out,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lagrange_reproduces_quartics() {
        let nodes = [0.0, 0.25, 0.5, 0.75, 1.0];
        let table = lagrange_table(&nodes);
        let y = |t: f64| 1.0 + t - 2.0 * t.powi(3) + 0.5 * t.powi(4);
        let (t0, h) = (0.5, 2.0);
        let ks: Vec<f64> = nodes[1..]
            .iter()
            .map(|&th| (y(t0 + th * h) - y(t0)) / h)
            .collect();
        let mut d = DenseOutput::new(1, 4, 5, table);
        d.push(t0, h, &[y(t0)], &ks);
        let mut out = [0.0];
        for t in [0.5, 0.7, 1.1, 2.3, 2.5] {
            d.eval(t, &mut out).unwrap();
            assert!((out[0] - y(t)).abs() < 1e-12, "{t}: {} vs {}", out[0], y(t));
        }
    }

    #[test]
    fn evaluation_outside_the_span_is_an_error() {
        let mut d = DenseOutput::new(1, 1, 2, vec![0.0, 1.0]);
        d.push(1.0, 2.0, &[0.0], &[1.0]);
        let mut out = [0.0];
        d.eval(2.0, &mut out).unwrap();
        assert!((out[0] - 1.0).abs() < 1e-15);
        assert!(d.eval(3.5, &mut out).is_err());
        assert!(d.eval(f64::NAN, &mut out).is_err());
    }
}
