//! The φ-functions of a complex argument: what the diagonal of a Fourier
//! operator in complex form needs (`L_k = i c k − ν k²`, dispersive and
//! diffusive terms), `../shared/reference/exponential.md` §1.
//!
//! The same two branches as the real [`super::phi::phi_all`]:
//!
//! * `|z| < 2`: `φ_0 = e^z` and, for `k ≥ 1`, the Taylor series
//!   `Σ_{j<30} z^j/(j+k)!` by Horner (complex multiply–adds; the first
//!   omitted term is below `2^30/30! ≈ 4e−24` of `1/k!`);
//! * `|z| ≥ 2`: `φ_0 = e^z`, `φ_1 = (e^z − 1)/z` with `e^z − 1` computed
//!   without cancellation as `expm1(x) cos y − 2 sin²(y/2) + i e^x sin y`
//!   (`z = x + iy`; this keeps the digits near the zeros `2πim` of
//!   `e^z − 1`), and the recurrence `φ_{k+1} = (φ_k − 1/k!)/z` upwards.
//!
//! Measured against double-double references in this module's tests
//! (Taylor series for `|z| ≤ 8`, the direct formula
//! `(e^z − Σ_{j<k} z^j/j!)/z^k` with a double-double `e^z` beyond): within
//! 1e−14 relative for `φ_0 … φ_5` over `1e−8 ≤ |z| ≤ 1e3` on rays at
//! eleven angles in the closed left half-plane and on the imaginary axis,
//! and in the right half-plane up to `Re z = 30`. `Re z > 709` overflows
//! (`e^z` does).
//!
//! The exponential solvers take a real linear part; a complex diagonal `L`
//! is solved in the real form of a real field's Fourier coefficients
//! (`examples/kuramoto_sivashinsky.rs`) — these functions are for users'
//! complex-arithmetic loops and for a complex linear part later.

use nalgebra::Complex;

use super::phi::{TAYLOR_TERMS, inv_factorial};

/// `e^z − 1` without cancellation near the zeros of `e^z − 1`.
fn exp_m1(z: Complex<f64>) -> Complex<f64> {
    let (x, y) = (z.re, z.im);
    let s = (0.5 * y).sin();
    Complex::new(x.exp_m1() * y.cos() - 2.0 * s * s, x.exp() * y.sin())
}

/// Writes `φ_0(z), …, φ_{m−1}(z)` of a complex `z` into `out`
/// (`m = out.len()`; module docs for the method and its accuracy).
///
/// ```
/// use nalgebra::Complex;
/// use sdeflow_solvers::expint::phi_complex::phi_all_complex;
/// let z = Complex::new(-1.0, 2.0);
/// let mut phi = [Complex::new(0.0, 0.0); 3];
/// phi_all_complex(z, &mut phi);
/// let want = (z.exp() - 1.0) / z;
/// assert!((phi[1] - want).norm() < 1e-15 * want.norm());
/// ```
pub fn phi_all_complex(z: Complex<f64>, out: &mut [Complex<f64>]) {
    let m = out.len();
    if m == 0 {
        return;
    }
    out[0] = z.exp();
    if z.norm() < 2.0 {
        for (k, o) in out.iter_mut().enumerate().skip(1) {
            let mut acc = Complex::new(inv_factorial(TAYLOR_TERMS - 1 + k), 0.0);
            for j in (0..TAYLOR_TERMS - 1).rev() {
                acc = acc * z + inv_factorial(j + k);
            }
            *o = acc;
        }
        return;
    }
    if m > 1 {
        out[1] = exp_m1(z) / z;
    }
    for k in 1..m.saturating_sub(1) {
        out[k + 1] = (out[k] - inv_factorial(k)) / z;
    }
}

/// `φ_k(z)` alone, for a complex `z`.
///
/// ```
/// use nalgebra::Complex;
/// use sdeflow_solvers::expint::phi_complex::phi_complex;
/// let p = phi_complex(1, Complex::new(0.0, 2.0 * std::f64::consts::PI));
/// assert!(p.norm() < 1e-16); // e^{2πi} = 1
/// ```
pub fn phi_complex(k: usize, z: Complex<f64>) -> Complex<f64> {
    let mut buf = [Complex::new(0.0, 0.0); 8];
    if k < buf.len() {
        phi_all_complex(z, &mut buf[..=k]);
        buf[k]
    } else {
        let mut v = vec![Complex::new(0.0, 0.0); k + 1];
        phi_all_complex(z, &mut v);
        v[k]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brownian::dd::Dd;
    use crate::expint::phi::phi;

    /// A complex number in double-double.
    #[derive(Clone, Copy, Debug)]
    struct Cdd(Dd, Dd);

    impl Cdd {
        fn new(re: f64, im: f64) -> Cdd {
            Cdd(Dd::new(re), Dd::new(im))
        }
        fn add(self, o: Cdd) -> Cdd {
            Cdd(self.0 + o.0, self.1 + o.1)
        }
        fn sub(self, o: Cdd) -> Cdd {
            Cdd(self.0 - o.0, self.1 - o.1)
        }
        fn mul(self, o: Cdd) -> Cdd {
            Cdd(self.0 * o.0 - self.1 * o.1, self.0 * o.1 + self.1 * o.0)
        }
        fn scale(self, s: Dd) -> Cdd {
            Cdd(self.0 * s, self.1 * s)
        }
        fn div(self, o: Cdd) -> Cdd {
            let d = o.0 * o.0 + o.1 * o.1;
            Cdd(
                (self.0 * o.0 + self.1 * o.1) / d,
                (self.1 * o.0 - self.0 * o.1) / d,
            )
        }
        fn f(self) -> Complex<f64> {
            Complex::new(self.0.to_f64(), self.1.to_f64())
        }
    }

    /// `2π` in double-double.
    fn two_pi() -> Dd {
        Dd {
            hi: std::f64::consts::TAU,
            lo: 2.4492935982947064e-16,
        }
    }

    /// A Taylor series `Σ sign^j x^j / j!` from `j = start` with step 2
    /// (cos: start 0, sin: start 1), alternating, for `|x| ≤ π`.
    fn trig_series(x: Dd, start: usize) -> Dd {
        let mut term = if start == 0 { Dd::new(1.0) } else { x };
        let mut sum = term;
        let x2 = x * x;
        let mut j = start;
        for _ in 0..60 {
            term = -(term * x2 / Dd::new(((j + 1) * (j + 2)) as f64));
            j += 2;
            sum = sum + term;
        }
        sum
    }

    /// `e^x` for real `x` in double-double (`|x| ≤ 700`): the positive
    /// series, inverted for negative `x`.
    fn exp_real(x: f64) -> Dd {
        let a = x.abs();
        let mut term = Dd::new(1.0);
        let mut sum = term;
        for j in 1..5000 {
            term = term * Dd::new(a) / Dd::new(j as f64);
            sum = sum + term;
            if term.hi < 1e-40 * sum.hi {
                break;
            }
        }
        if x < 0.0 { Dd::new(1.0) / sum } else { sum }
    }

    /// `e^z` in double-double: the real part's exponential and the
    /// imaginary part reduced modulo `2π` (double-double) to `[−π, π]`.
    fn exp_dd(z: Complex<f64>) -> Cdd {
        let m = (z.im / std::f64::consts::TAU).round();
        let y = Dd::new(z.im) - two_pi() * Dd::new(m);
        let r = if z.re < -700.0 {
            Dd::new(0.0)
        } else {
            exp_real(z.re)
        };
        Cdd(r * trig_series(y, 0), r * trig_series(y, 1))
    }

    /// `φ_k(z)` in double-double: the Taylor series for `|z| ≤ 8` (its
    /// terms at most `e^{|z| − Re z} ≤ e^16 ≈ 1e7` times the result: about
    /// 1e−25 relative), the direct formula beyond (its polynomial part
    /// `|z|^{k−1}/(k−1)!` stays within a few digits of the result for
    /// `k ≤ 5`).
    fn phi_ref(k: usize, z: Complex<f64>) -> Complex<f64> {
        let zd = Cdd::new(z.re, z.im);
        if z.norm() <= 8.0 {
            let mut fact = Dd::new(1.0);
            for j in 1..=k {
                fact = fact * Dd::new(j as f64);
            }
            let mut term = Cdd(Dd::new(1.0) / fact, Dd::new(0.0));
            let mut sum = term;
            for j in 1..600 {
                term = term.mul(zd).scale(Dd::new(1.0) / Dd::new((j + k) as f64));
                sum = sum.add(term);
            }
            sum.f()
        } else {
            let mut poly = Cdd::new(0.0, 0.0);
            let mut term = Cdd::new(1.0, 0.0);
            let mut zk = Cdd::new(1.0, 0.0);
            for j in 0..k {
                if j > 0 {
                    term = term.mul(zd).scale(Dd::new(1.0) / Dd::new(j as f64));
                }
                poly = poly.add(term);
                zk = zk.mul(zd);
            }
            exp_dd(z).sub(poly).div(zk).f()
        }
    }

    /// Rays at eleven angles in the closed left half-plane (from the
    /// imaginary axis to the negative real axis, both halves) and two in
    /// the right half-plane, `|z|` from 1e−8 to 1e3 at ten points per
    /// decade (right half-plane: `Re z ≤ 30`).
    fn grid() -> Vec<Complex<f64>> {
        let pi = std::f64::consts::PI;
        let mut angles: Vec<f64> = (0..=5).map(|j| pi / 2.0 + j as f64 * pi / 10.0).collect();
        angles.extend((1..=5).map(|j| -pi / 2.0 - j as f64 * pi / 10.0));
        angles.push(-pi / 2.0);
        angles.extend([pi / 4.0, -pi / 3.0]);
        let mut zs = Vec::new();
        for e in 0..=110 {
            let mag = 10f64.powf(-8.0 + e as f64 / 10.0);
            for &a in &angles {
                let z = Complex::from_polar(mag, a);
                if z.re <= 30.0 {
                    zs.push(z);
                }
            }
        }
        zs
    }

    #[test]
    fn complex_phis_match_double_double_to_1e_14() {
        let mut worst: f64 = 0.0;
        let mut out = [Complex::new(0.0, 0.0); 6];
        let zs = grid();
        for &z in &zs {
            phi_all_complex(z, &mut out);
            for (k, &got) in out.iter().enumerate() {
                if k == 0 && z.re < -700.0 {
                    continue; // e^z underflows
                }
                let want = phi_ref(k, z);
                let rel = (got - want).norm() / want.norm();
                worst = worst.max(rel);
                assert!(rel < 1e-14, "φ_{k}({z}) = {got}, reference {want}: {rel:e}");
            }
        }
        println!(
            "complex φ_0..φ_5 on {} points: worst relative error {worst:e}",
            zs.len()
        );
    }

    #[test]
    fn the_reference_agrees_with_closed_forms_and_the_real_phis() {
        // e^{iπ/3} and the real axis: independent checks of the reference
        let z = Complex::new(0.0, std::f64::consts::PI / 3.0);
        let e = phi_ref(0, z);
        assert!((e - Complex::new(0.5, 3f64.sqrt() / 2.0)).norm() < 4e-16);
        let big = Complex::new(0.0, 500.0);
        let e = exp_dd(big).f();
        assert!((e - Complex::new(500f64.cos(), 500f64.sin())).norm() < 1e-13);
        for x in [-900.0, -40.0, -3.0, -1e-3, 0.5, 20.0] {
            for k in 0..5 {
                let (a, b) = (phi_ref(k, Complex::new(x, 0.0)).re, phi(k, x));
                assert!((a - b).abs() <= 1e-14 * b.abs(), "φ_{k}({x}): {a} vs {b}");
            }
        }
    }

    #[test]
    fn zeros_of_phi_1_and_the_real_axis() {
        for m in [1.0, 3.0, 100.0] {
            let z = Complex::new(0.0, std::f64::consts::TAU * m);
            // φ_1(2πim) = 0 up to the rounding of 2πm
            assert!(phi_complex(1, z).norm() < 1e-15 * m, "m = {m}");
        }
        for x in [-700.0, -5.0, -1.0, -1e-6, 1e-6, 1.5, 25.0] {
            for k in 0..6 {
                let c = phi_complex(k, Complex::new(x, 0.0));
                let r = phi(k, x);
                assert!(
                    (c.re - r).abs() <= 4e-16 * r.abs() && c.im == 0.0,
                    "φ_{k}({x}): {c} vs {r}"
                );
            }
        }
    }
}
