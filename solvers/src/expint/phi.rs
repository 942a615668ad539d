//! The φ-functions of exponential integrators, scalar and matrix.
//!
//! `φ_0(z) = e^z`, `φ_{k+1}(z) = (φ_k(z) − 1/k!)/z`, `φ_k(0) = 1/k!`, so
//! `φ_k(z) = Σ_{j≥0} z^j/(j+k)!` and, for `k ≥ 1`,
//! `φ_k(z) = (1/(k−1)!) ∫_0^1 e^{(1−θ)z} θ^{k−1} dθ`
//! (`../shared/reference/exponential.md` §1; Hochbruck & Ostermann,
//! "Exponential integrators", Acta Numerica 19 (2010), §2).
//!
//! * Scalar, real `z` ([`phi_all`]): the Taylor series (Horner, 30 terms)
//!   for `|z| < 2`, where the recurrence would cancel catastrophically (the
//!   direct `φ_3` loses about nine digits at `z = 1e−3`); for `|z| ≥ 2`,
//!   `φ_0 = exp(z)`, `φ_1 = expm1(z)/z` and the recurrence upwards, which
//!   there loses at most a few ulps for `k ≤ 5` (measured against
//!   double-double references in this module's tests: within 1e−14
//!   relative for `1e−8 ≤ |z| ≤ 1e3`, `z` real negative, and positive up
//!   to 30). `z > 709` overflows (`e^z` does).
//! * Derivatives ([`phi_derivatives`]): `φ_0' = φ_0` and, from the integral
//!   form, `φ_k'(z) = φ_k(z) − k φ_{k+1}(z)` for `k ≥ 1` (exact at
//!   `z = 0`: `1/k! − k/(k+1)! = 1/(k+1)!`; for large `|z|` the difference
//!   cancels to about `|z|·ε` relative). The step VJPs use them for the
//!   gradient in a parameter-dependent diagonal `L`.
//! * Dense matrices ([`phi_matrices`]): the augmented-matrix exponential
//!   (Saad 1992; Sidje, Expokit, ACM TOMS 24 (1998); Al-Mohy & Higham
//!   2011): the exponential of the `(m+1)n × (m+1)n` block matrix
//!   `[[A, I, 0, …], [0, 0, I, …], …, [0, …, 0]]` has first block row
//!   `[φ_0(A), φ_1(A), …, φ_m(A)]`; the exponential is nalgebra's
//!   (Padé 13 with scaling and squaring, Higham 2005).
//! * Fréchet derivatives ([`phi_frechet`]): the top-right block of
//!   `φ_k([[A, W], [0, A]])` is `Dφ_k(A)[W]`; with `A = Xᵀ` it is the
//!   adjoint of `E ↦ Dφ_k(X)[E]` applied to `W`, which the step VJPs of a
//!   parameter-dependent dense `L` need.
//!
//! Complex arguments (a Fourier operator's complex diagonal): see
//! `phi_complex.rs`.

use nalgebra::DMatrix;

/// Number of Taylor terms of the series branch (`|z| < 2`):
/// `2^30/30! ≈ 4e−24` bounds the truncation.
pub(super) const TAYLOR_TERMS: usize = 30;

/// `1/k!` for `k < INV_FACTORIALS.len()`, each by the same divisions
/// `((1/1)/2)/…/k` as a fold would take, once at compile time (the series
/// reads `T + m` of them per evaluation).
const INV_FACTORIALS: [f64; TAYLOR_TERMS + 16] = {
    let mut t = [1.0; TAYLOR_TERMS + 16];
    let mut k = 1;
    while k < t.len() {
        t[k] = t[k - 1] / k as f64;
        k += 1;
    }
    t
};

/// `1/k!`.
pub(super) fn inv_factorial(k: usize) -> f64 {
    INV_FACTORIALS
        .get(k)
        .copied()
        .unwrap_or_else(|| (1..=k).fold(1.0, |acc, j| acc / j as f64))
}

/// Writes `φ_0(z), …, φ_{m−1}(z)` into `out` (`m = out.len()`, any `m`;
/// accurate to about 1e−15 relative for `m ≤ 6`).
///
/// ```
/// use sdeflow_solvers::expint::phi::phi_all;
/// let mut phi = [0.0; 4];
/// phi_all(-2.0, &mut phi);
/// let e = (-2.0f64).exp();
/// assert!((phi[1] - (e - 1.0) / -2.0).abs() < 1e-15);
/// phi_all(1e-9, &mut phi);
/// assert!((phi[3] - (1.0 / 6.0 + 1e-9 / 24.0)).abs() < 1e-15);
/// ```
pub fn phi_all(z: f64, out: &mut [f64]) {
    let m = out.len();
    if m == 0 {
        return;
    }
    if z.abs() < 2.0 {
        out[0] = z.exp();
        for (k, o) in out.iter_mut().enumerate().skip(1) {
            // Σ_{j<T} z^j/(j+k)! by Horner, from the innermost term
            let mut acc = inv_factorial(TAYLOR_TERMS - 1 + k);
            for j in (0..TAYLOR_TERMS - 1).rev() {
                acc = acc * z + inv_factorial(j + k);
            }
            *o = acc;
        }
        return;
    }
    out[0] = z.exp();
    if m > 1 {
        out[1] = z.exp_m1() / z;
    }
    let mut fact = 1.0; // 1/k!
    for k in 1..m.saturating_sub(1) {
        fact /= k as f64;
        out[k + 1] = (out[k] - fact) / z;
    }
}

/// `φ_k(z)` alone.
///
/// ```
/// use sdeflow_solvers::expint::phi::phi;
/// assert!((phi(2, 0.0) - 0.5).abs() < 1e-16);
/// ```
pub fn phi(k: usize, z: f64) -> f64 {
    let mut buf = [0.0; 8];
    if k < buf.len() {
        phi_all(z, &mut buf[..=k]);
        buf[k]
    } else {
        let mut v = vec![0.0; k + 1];
        phi_all(z, &mut v);
        v[k]
    }
}

/// Writes `φ_0'(z), …, φ_{m−1}'(z)` into `out` (`m = out.len()`), from
/// `φ_k' = φ_k − k φ_{k+1}` (`φ_0' = φ_0`); `scratch` holds `m + 1`
/// values.
///
/// ```
/// use sdeflow_solvers::expint::phi::phi_derivatives;
/// let (mut d, mut s) = ([0.0; 3], [0.0; 4]);
/// phi_derivatives(0.0, &mut d, &mut s);
/// assert!((d[1] - 0.5).abs() < 1e-16 && (d[2] - 1.0 / 6.0).abs() < 1e-16);
/// ```
pub fn phi_derivatives(z: f64, out: &mut [f64], scratch: &mut [f64]) {
    let m = out.len();
    let phis = &mut scratch[..m + 1];
    phi_all(z, phis);
    for (k, o) in out.iter_mut().enumerate() {
        *o = if k == 0 {
            phis[0]
        } else {
            phis[k] - k as f64 * phis[k + 1]
        };
    }
}

/// `φ_0(A), …, φ_m(A)` of the square matrix `a`, by the exponential of the
/// augmented block matrix (module docs). Allocates; called when the step
/// size changes.
pub fn phi_matrices(a: &DMatrix<f64>, m: usize) -> Vec<DMatrix<f64>> {
    let n = a.nrows();
    let big = (m + 1) * n;
    let mut aug = DMatrix::<f64>::zeros(big, big);
    aug.view_mut((0, 0), (n, n)).copy_from(a);
    for b in 0..m {
        for i in 0..n {
            aug[(b * n + i, (b + 1) * n + i)] = 1.0;
        }
    }
    let e = aug.exp();
    (0..=m)
        .map(|k| e.view((0, k * n), (n, n)).into_owned())
        .collect()
}

/// The Fréchet derivative `Dφ_k(A)[W]` (the top-right block of
/// `φ_k([[A, W], [0, A]])`). With `a = Xᵀ` it is the adjoint of the
/// derivative of `φ_k` at `X`: `⟨W, Dφ_k(X)[E]⟩ = ⟨Dφ_k(Xᵀ)[W], E⟩` for
/// every `E` (Frobenius inner product).
pub fn phi_frechet(a: &DMatrix<f64>, w: &DMatrix<f64>, k: usize) -> DMatrix<f64> {
    let n = a.nrows();
    let mut block = DMatrix::<f64>::zeros(2 * n, 2 * n);
    block.view_mut((0, 0), (n, n)).copy_from(a);
    block.view_mut((n, n), (n, n)).copy_from(a);
    block.view_mut((0, n), (n, n)).copy_from(w);
    let phis = phi_matrices(&block, k);
    phis[k].view((0, n), (n, n)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Double-double (about 32 digits): Knuth's two-sum and the fused
    /// multiply-add two-product, enough for reference φ values.
    #[derive(Clone, Copy, Debug)]
    struct Dd(f64, f64);

    fn two_sum(a: f64, b: f64) -> Dd {
        let s = a + b;
        let bb = s - a;
        Dd(s, (a - (s - bb)) + (b - bb))
    }

    impl Dd {
        fn add(self, o: Dd) -> Dd {
            let s = two_sum(self.0, o.0);
            let lo = s.1 + self.1 + o.1;
            two_sum(s.0, lo)
        }
        fn mul(self, o: Dd) -> Dd {
            let p = self.0 * o.0;
            let e = self.0.mul_add(o.0, -p) + self.0 * o.1 + self.1 * o.0;
            two_sum(p, e)
        }
        fn div(self, o: Dd) -> Dd {
            let q1 = self.0 / o.0;
            let r = self.add(o.mul(Dd(-q1, 0.0)));
            let q2 = r.0 / o.0;
            let r2 = r.add(o.mul(Dd(-q2, 0.0)));
            let q3 = r2.0 / o.0;
            two_sum(q1, q2).add(Dd(q3, 0.0))
        }
        fn f(self) -> f64 {
            self.0 + self.1
        }
    }

    /// `e^x` in double-double for `0 ≤ x ≤ 700`: the Taylor series (all
    /// terms positive, no cancellation).
    fn exp_pos(x: f64) -> Dd {
        let xd = Dd(x, 0.0);
        let mut term = Dd(1.0, 0.0);
        let mut sum = term;
        for j in 1..5000 {
            term = term.mul(xd).div(Dd(j as f64, 0.0));
            sum = sum.add(term);
            if term.0 < 1e-40 * sum.0 {
                break;
            }
        }
        sum
    }

    /// `φ_k(z)` in double-double: the Taylor series for `−1 ≤ z ≤ 30`
    /// (alternating only for `|z| ≤ 1`); for `z < −1` the direct formula
    /// `(e^z − Σ_{j<k} z^j/j!)/z^k` with `e^z = 1/e^{|z|}` in
    /// double-double (taken as 0 below −700, where it is under 1e−300 of
    /// the polynomial part), whose terms do not cancel for `k ≤ 6`.
    fn phi_ref(k: usize, z: f64) -> f64 {
        let zd = Dd(z, 0.0);
        if z >= -1.0 {
            assert!(z <= 30.0);
            // term_j = z^j / (j+k)!
            let mut fact = Dd(1.0, 0.0);
            for j in 1..=k {
                fact = fact.mul(Dd(j as f64, 0.0));
            }
            let mut term = Dd(1.0, 0.0).div(fact);
            let mut sum = term;
            for j in 1..400 {
                term = term.mul(zd).div(Dd((j + k) as f64, 0.0));
                sum = sum.add(term);
                if term.0.abs() < 1e-40 * sum.0.abs() && j > 2 * z.abs() as usize {
                    break;
                }
            }
            sum.f()
        } else {
            let ez = if z < -700.0 {
                Dd(0.0, 0.0)
            } else {
                Dd(1.0, 0.0).div(exp_pos(-z))
            };
            let mut poly = Dd(0.0, 0.0);
            let mut term = Dd(1.0, 0.0);
            for j in 0..k {
                if j > 0 {
                    term = term.mul(zd).div(Dd(j as f64, 0.0));
                }
                poly = poly.add(term);
            }
            let mut zk = Dd(1.0, 0.0);
            for _ in 0..k {
                zk = zk.mul(zd);
            }
            ez.add(Dd(-poly.0, -poly.1)).div(zk).f()
        }
    }

    fn grid() -> Vec<f64> {
        let mut zs = Vec::new();
        for e in 0..=110 {
            // 1e-8 .. 1e3, 10 points per decade, both signs
            let mag = 10f64.powf(-8.0 + e as f64 / 10.0);
            zs.push(-mag);
            if mag <= 30.0 {
                zs.push(mag);
            }
        }
        zs
    }

    #[test]
    fn scalar_phis_match_double_double_to_1e_14() {
        let mut worst: f64 = 0.0;
        let mut out = [0.0; 6];
        for z in grid() {
            phi_all(z, &mut out);
            for (k, &got) in out.iter().enumerate() {
                if k == 0 && z < -700.0 {
                    // e^z is subnormal or zero there
                    continue;
                }
                let want = phi_ref(k, z);
                let rel = ((got - want) / want).abs();
                worst = worst.max(rel);
                assert!(rel < 1e-14, "φ_{k}({z}) = {got}, reference {want}: {rel:e}");
            }
        }
        println!("worst relative error of φ_0..φ_5 over the grid: {worst:e}");
    }

    #[test]
    fn derivatives_match_central_differences_of_the_reference() {
        let (mut d, mut s) = ([0.0; 5], [0.0; 6]);
        for &z in &[-600.0, -50.0, -3.0, -0.7, -1e-5, 0.0, 0.3, 2.0] {
            phi_derivatives(z, &mut d, &mut s);
            for (k, &got) in d.iter().enumerate() {
                let h = 1e-5;
                let fd = (phi_ref(k, z + h) - phi_ref(k, z - h)) / (2.0 * h);
                let tol = 1e-7 * fd.abs().max(1e-300);
                assert!((got - fd).abs() < tol, "φ_{k}'({z}) = {got}, FD {fd}");
            }
        }
    }

    /// A fixed orthogonal matrix (a product of two Householder reflections).
    fn orthogonal(n: usize) -> DMatrix<f64> {
        let mut q = DMatrix::<f64>::identity(n, n);
        for s in 0..2 {
            let v = DMatrix::from_fn(n, 1, |i, _| ((i + 1 + 3 * s) as f64).sin());
            let nv = v.norm_squared();
            q = &q * (DMatrix::identity(n, n) - (&v * v.transpose()) * (2.0 / nv));
        }
        q
    }

    #[test]
    fn dense_phis_match_the_scalar_ones_through_a_similarity() {
        let n = 4;
        let q = orthogonal(n);
        let mut worst: f64 = 0.0;
        for scale in [1e-8f64, 1e-3, 0.5, 3.0, 40.0, 1e3] {
            let lam = [-scale, -0.3 * scale, -0.05 * scale, 0.02 * scale.min(30.0)];
            let d = DMatrix::from_diagonal(&nalgebra::DVector::from_row_slice(&lam));
            let a = &q * d * q.transpose();
            let phis = phi_matrices(&a, 4);
            for (k, pk) in phis.iter().enumerate() {
                let diag = nalgebra::DVector::from_iterator(n, lam.iter().map(|&z| phi(k, z)));
                let want = &q * DMatrix::from_diagonal(&diag) * q.transpose();
                let rel = (pk - &want).norm() / want.norm();
                worst = worst.max(rel);
                assert!(
                    rel < 1e-12,
                    "φ_{k} at scale {scale}: relative error {rel:e}"
                );
            }
        }
        println!("dense φ via the augmented exponential: worst relative error {worst:e}");
    }

    #[test]
    fn frechet_adjoint_matches_finite_differences() {
        let n = 3;
        let x = DMatrix::from_fn(n, n, |i, j| {
            if i == j {
                -2.0 - i as f64
            } else {
                0.3 * (i as f64 - j as f64)
            }
        });
        let w = DMatrix::from_fn(n, n, |i, j| ((i * 3 + j) as f64).cos());
        let e = DMatrix::from_fn(n, n, |i, j| ((i + 2 * j) as f64).sin());
        for k in 0..4 {
            let g = phi_frechet(&x.transpose(), &w, k);
            let lhs = g.dot(&e);
            let h = 1e-5;
            let fp = &phi_matrices(&(&x + &e * h), k)[k];
            let fm = &phi_matrices(&(&x - &e * h), k)[k];
            let rhs = w.dot(&((fp - fm) / (2.0 * h)));
            assert!(
                (lhs - rhs).abs() < 1e-8 * rhs.abs(),
                "k = {k}: {lhs} vs {rhs}"
            );
        }
    }
}
