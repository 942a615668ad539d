//! Special functions of the fractional family, written once over the scalar
//! so that forward-mode duals differentiate them in the Hurst index:
//! `ln Γ` (Lanczos), the regularised incomplete gamma functions `P(a, x)`
//! (series) and `Q(a, x) eˣ` (continued fraction, converged, evaluated in
//! log space so that it neither overflows nor cancels for large `x`), and a
//! double-exponential (tanh–sinh) quadrature for the integrals that have no
//! closed form (the Riemann–Liouville covariance) and for tests.
//!
//! Sources: Lanczos' approximation with `g = 7`, nine coefficients
//! (Press et al., *Numerical Recipes*, 3rd ed., §6.1); the series and the
//! modified-Lentz continued fraction for the incomplete gamma function
//! (*Numerical Recipes* §6.2, `gser`/`gcf`), both iterated to convergence —
//! not the five-term fraction of the MA-fBM reference code
//! (`../shared/reference/fbm.md` §5); tanh–sinh quadrature (Takahasi and
//! Mori, "Double exponential formulas for numerical integration", Publ.
//! RIMS 9, 1974).

use num_dual::DualNum;

/// Lanczos coefficients, `g = 7`.
const LANCZOS: [f64; 9] = [
    0.999_999_999_999_809_93,
    676.520_368_121_885_1,
    -1_259.139_216_722_402_8,
    771.323_428_777_653_13,
    -176.615_029_162_140_59,
    12.507_343_278_686_905,
    -0.138_571_095_265_720_12,
    9.984_369_578_019_571_6e-6,
    1.505_632_735_149_311_6e-7,
];

/// `ln Γ(x)` for `x > 0` (relative error ~1e-15; below `1/2` through
/// `Γ(x) = Γ(x + 1)/x`).
pub(crate) fn ln_gamma<D: DualNum<Primitive = f64> + Copy>(x: D) -> D {
    if x.re() < 0.5 {
        return ln_gamma(x + 1.0) - x.ln();
    }
    let z = x - 1.0;
    let mut a = D::from(LANCZOS[0]);
    for (i, &p) in LANCZOS.iter().enumerate().skip(1) {
        a += (z + i as f64).recip() * p;
    }
    let t = z + 7.5;
    (z + 0.5) * t.ln() - t + a.ln() + 0.5 * (2.0 * std::f64::consts::PI).ln()
}

/// `Γ(x)` for `x > 0`.
pub(crate) fn gamma<D: DualNum<Primitive = f64> + Copy>(x: D) -> D {
    ln_gamma(x).exp()
}

/// Relative tolerance of the series and the continued fraction.
const EPS: f64 = 1e-16;
/// Iterations after the value converged, so that the derivative parts of a
/// dual (which converge at the same geometric rate, times a logarithm) have
/// too.
const EXTRA: usize = 4;
/// Iteration cap (never reached for `x` up to 1e6: the series needs about
/// `x` terms only below `a + 1`, the fraction `O(√x)` above).
const MAX_ITER: usize = 100_000;

/// `Σ_{n≥0} xⁿ / (a (a+1) ⋯ (a+n))` — the series of `γ(a, x) eˣ x^{-a}`.
fn series<D: DualNum<Primitive = f64> + Copy>(a: D, x: f64) -> D {
    let mut ap = a;
    let mut del = a.recip();
    let mut sum = del;
    let mut extra = 0;
    for _ in 0..MAX_ITER {
        ap += 1.0;
        del = del * x / ap;
        sum += del;
        if del.re().abs() < sum.re().abs() * EPS {
            extra += 1;
            if extra > EXTRA {
                break;
            }
        }
    }
    sum
}

/// The continued fraction of `Γ(a, x) eˣ x^{-a}` (modified Lentz), for
/// `x ≥ a + 1`.
fn fraction<D: DualNum<Primitive = f64> + Copy>(a: D, x: f64) -> D {
    const TINY: f64 = 1e-300;
    let mut b = -a + (x + 1.0);
    let mut c = D::from(1.0 / TINY);
    let mut d = b.recip();
    let mut h = d;
    let mut extra = 0;
    for i in 1..MAX_ITER {
        let i = i as f64;
        let an = (a - i) * i;
        b += 2.0;
        d = an * d + b;
        if d.re().abs() < TINY {
            d = D::from(TINY);
        }
        c = b + an / c;
        if c.re().abs() < TINY {
            c = D::from(TINY);
        }
        d = d.recip();
        let del = d * c;
        h *= del;
        if (del.re() - 1.0).abs() < EPS {
            extra += 1;
            if extra > EXTRA {
                break;
            }
        }
    }
    h
}

/// The regularised lower incomplete gamma function `P(a, x)`, `a ≥ 1/2`,
/// `x ≥ 0`.
pub(crate) fn gamma_p<D: DualNum<Primitive = f64> + Copy>(a: D, x: f64) -> D {
    if x <= 0.0 {
        return D::from(0.0);
    }
    if x < a.re() + 1.0 {
        (a * x.ln() - x - ln_gamma(a)).exp() * series(a, x)
    } else {
        -(a * x.ln() - x - ln_gamma(a)).exp() * fraction(a, x) + 1.0
    }
}

/// `Q(a, x) eˣ` (the regularised upper incomplete gamma function scaled by
/// `eˣ`), `a ≥ 1/2`, `x ≥ 0`: never overflows (it behaves as
/// `x^{a-1}/Γ(a)` for large `x`).
pub(crate) fn gamma_q_scaled<D: DualNum<Primitive = f64> + Copy>(a: D, x: f64) -> D {
    if x < a.re() + 1.0 {
        (-gamma_p(a, x) + 1.0) * x.exp()
    } else {
        (a * x.ln() - ln_gamma(a)).exp() * fraction(a, x)
    }
}

/// `∫_0^1 f(x, 1 − x) dx` by tanh–sinh quadrature, refined until two levels
/// agree to `tol` (relative) or 12 levels; `f` receives both `x` and `1 − x`
/// to full relative precision, so integrable endpoint singularities
/// (`x^a`, `ln x`) are handled.
pub(crate) fn tanh_sinh(f: impl Fn(f64, f64) -> f64, tol: f64) -> f64 {
    tanh_sinh_levels(f, tol, 12)
}

/// [`tanh_sinh`] with at most `levels` refinements (each doubles the
/// `≈ 18` nodes of the first).
pub(crate) fn tanh_sinh_levels(f: impl Fn(f64, f64) -> f64, tol: f64, levels: usize) -> f64 {
    use std::f64::consts::FRAC_PI_2;
    // u in [−U, U]: x ~ e^{−π sinh U}, below 1e-60
    const U: f64 = 4.5;
    let node = |u: f64| -> f64 {
        let s = 2.0 * FRAC_PI_2 * u.sinh();
        let (x, y) = if s >= 0.0 {
            let e = (-s).exp();
            (1.0 / (1.0 + e), e / (1.0 + e))
        } else {
            let e = s.exp();
            (e / (1.0 + e), 1.0 / (1.0 + e))
        };
        let w = 2.0 * FRAC_PI_2 * u.cosh() * x * y;
        if w == 0.0 || x == 0.0 || y == 0.0 {
            0.0
        } else {
            w * f(x, y)
        }
    };
    let mut h = 0.5;
    let n = (U / h) as i64;
    let mut sum: f64 = (-n..=n).map(|k| node(k as f64 * h)).sum();
    let mut est = sum * h;
    for _ in 0..levels {
        h *= 0.5;
        let n = (U / h) as i64;
        let odd: f64 = (-n..=n)
            .filter(|k| k % 2 != 0)
            .map(|k| node(k as f64 * h))
            .sum();
        sum += odd;
        let new = sum * h;
        let done = (new - est).abs() <= tol * new.abs();
        est = new;
        if done {
            break;
        }
    }
    est
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_dual::Dual64;

    #[test]
    fn ln_gamma_matches_known_values() {
        // Γ(1/2) = √π, Γ(1) = Γ(2) = 1, Γ(5) = 24, Γ(3/2) = √π/2
        let pi: f64 = std::f64::consts::PI;
        for (x, g) in [
            (0.5, pi.sqrt()),
            (1.0, 1.0),
            (2.0, 1.0),
            (5.0, 24.0),
            (1.5, 0.5 * pi.sqrt()),
        ] {
            let v = gamma(x);
            assert!((v - g).abs() < 1e-14 * g, "Γ({x}) = {v}, expected {g}");
        }
        // the derivative is the digamma function: ψ(1) = −γ_E
        let d = ln_gamma(Dual64::new(1.0, 1.0));
        assert!((d.eps + 0.577_215_664_901_532_9).abs() < 1e-13, "{}", d.eps);
    }

    #[test]
    fn incomplete_gamma_matches_statrs_and_is_consistent() {
        for a in [0.6, 0.8, 1.0, 1.2, 1.4, 1.9, 2.4] {
            for x in [1e-6, 0.01, 0.3, 1.0, 1.9, 2.5, 5.0, 10.0, 40.0, 300.0] {
                let p: f64 = gamma_p(a, x);
                let p_ref = statrs::function::gamma::gamma_lr(a, x);
                assert!(
                    (p - p_ref).abs() < 1e-13,
                    "P({a}, {x}) = {p}, statrs {p_ref}"
                );
                if x < 30.0 {
                    let q: f64 = gamma_q_scaled(a, x);
                    let q_ref = statrs::function::gamma::gamma_ur(a, x) * x.exp();
                    assert!(
                        (q - q_ref).abs() < 1e-12 * q_ref.max(1e-300) + 1e-300,
                        "Q({a}, {x}) e^x = {q}, statrs {q_ref}"
                    );
                }
            }
        }
        // large x: Q(a, x) e^x → x^{a−1}/Γ(a) (1 + (a−1)/x + …)
        let (a, x) = (1.3, 1e4);
        let q: f64 = gamma_q_scaled(a, x);
        let asym = x.powf(a - 1.0) / gamma(a) * (1.0 + (a - 1.0) / x);
        assert!((q / asym - 1.0).abs() < 1e-7, "{q} vs {asym}");
    }

    #[test]
    fn tanh_sinh_integrates_endpoint_singularities() {
        // ∫ x^{−0.4} = 1/0.6; ∫ ln x = −1; ∫ x^{0.3}(1−x)^{−0.5} = B(1.3, 0.5)
        let v = tanh_sinh(|x, _| x.powf(-0.4), 1e-14);
        assert!((v - 1.0 / 0.6).abs() < 1e-12, "{v}");
        let v = tanh_sinh(|x, _| x.ln(), 1e-14);
        assert!((v + 1.0).abs() < 1e-12, "{v}");
        let beta = gamma(1.3) * gamma(0.5) / gamma(1.8);
        let v = tanh_sinh(|x, y| x.powf(0.3) * y.powf(-0.5), 1e-14);
        assert!((v - beta).abs() < 1e-12, "{v} vs {beta}");
    }
}
