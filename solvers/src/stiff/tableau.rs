//! Coefficient tables of the ESDIRK methods, with their sources.
//!
//! An ESDIRK (explicit-first-stage, singly diagonally implicit Runge–Kutta)
//! method has `a_11 = 0` (the first stage is `f(t_n, y_n)`), the same
//! diagonal `a_ii = γ` in every later stage, and — for both methods here —
//! is *stiffly accurate*: `b` is the last row of `A`, so `y_{n+1}` is the last
//! stage value and `f(y_{n+1})` is the next step's first stage (FSAL).
//!
//! * [`ESDIRK34`]: ESDIRK3(4) of Jørgensen, Kristensen & Thomsen, "A family
//!   of ESDIRK integration methods", arXiv:1803.01613 (2018), with the
//!   coefficients as diffsol 0.18 writes them (`Tableau::esdirk34`,
//!   `diffsol/src/ode_solver/tableau.rs`): order 3, 4 stages, L-stable, with
//!   an embedded order-4 solution `b̂` for the error estimate.
//! * [`TRBDF2`]: TR-BDF2 of Bank, Coughran, Fichtner, Grosse, Rose & Smith
//!   (IEEE Trans. CAD 4, 1985) as analysed by Hosea & Shampine, "Analysis and
//!   implementation of TR-BDF2", Appl. Numer. Math. 20 (1996): a trapezoidal
//!   stage to `t + γh`, `γ = 2 − √2`, then BDF2, written as a 3-stage ESDIRK
//!   with `d = γ/2`, `w = √2/4`; order 2, L-stable, with Hosea & Shampine's
//!   third-order companion `b̂ = ((1 − w)/3, (3w + 1)/3, d/3)` for the error
//!   estimate (the same numbers as diffsol's `Tableau::tr_bdf2`).
//!
//! The error estimate is `h Σ (b_i − b̂_i) k_i`; [`EsdirkTableau::d`] holds
//! `b − b̂`. The checks at the bottom verify the order conditions, the
//! stiff accuracy and the L-stability of both tables.

/// The coefficients of an ESDIRK method with an embedded error estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EsdirkTableau {
    /// The method's name.
    pub name: &'static str,
    /// Order of the solution `b`.
    pub order: u32,
    /// Order of the embedded solution `b̂`.
    pub embedded_order: u32,
    /// The diagonal `γ = a_ii` of the implicit stages.
    pub gamma: f64,
    /// Rows `1..s` of `A` (row 0 is zero: the explicit first stage); row
    /// `i` has `i + 1` entries, the last one being `γ`.
    pub a: &'static [&'static [f64]],
    /// Weights of the solution (equal to the last row of `A`: stiffly
    /// accurate).
    pub b: &'static [f64],
    /// Nodes (`c_0 = 0`, `c_{s−1} = 1`).
    pub c: &'static [f64],
    /// `b − b̂`: the weights of the error estimate.
    pub d: &'static [f64],
    /// Where the coefficients come from.
    pub source: &'static str,
}

impl EsdirkTableau {
    /// Number of stages.
    pub const fn stages(&self) -> usize {
        self.c.len()
    }

    /// Order `k` of the local error estimate (`min(order, embedded) + 1`),
    /// as the step-size controller uses it.
    pub fn error_order(&self) -> f64 {
        f64::from(self.order.min(self.embedded_order)) + 1.0
    }
}

const G34: f64 = 0.435_866_521_508_459;

/// The weights of ESDIRK3(4), also its last stage's row (stiffly accurate).
const B34: &[f64] = &[
    0.102_399_400_619_911,
    -0.376_878_452_255_556_1,
    0.838_612_530_127_186_1,
    G34,
];

/// ESDIRK3(4) (Jørgensen, Kristensen & Thomsen 2018), diffsol's coefficients.
pub const ESDIRK34: EsdirkTableau = EsdirkTableau {
    name: "Esdirk34",
    order: 3,
    embedded_order: 4,
    gamma: G34,
    a: &[
        &[G34, G34],
        &[0.140_737_774_724_706_2, -0.108_365_551_381_320_8, G34],
        B34,
    ],
    b: B34,
    c: &[0.0, 0.871_733_043_016_918, 0.468_238_744_851_844_4, 1.0],
    d: &[
        -0.054_625_497_240_413_94,
        -0.494_208_893_625_994_96,
        0.221_934_499_735_064_66,
        0.326_899_891_131_344_27,
    ],
    source: "Jørgensen, Kristensen & Thomsen, arXiv:1803.01613 (2018), as in diffsol 0.18",
};

/// `γ = 2 − √2`.
const GTR: f64 = 0.585_786_437_626_904_9;
/// `d = γ/2 = 1 − √2/2`.
const DTR: f64 = 0.292_893_218_813_452_5;
/// `w = √2/4`.
const WTR: f64 = 0.353_553_390_593_273_8;

/// TR-BDF2 (Bank et al. 1985; Hosea & Shampine 1996) as an ESDIRK.
pub const TRBDF2: EsdirkTableau = EsdirkTableau {
    name: "TrBdf2",
    order: 2,
    embedded_order: 3,
    gamma: DTR,
    a: &[&[DTR, DTR], &[WTR, WTR, DTR]],
    b: &[WTR, WTR, DTR],
    c: &[0.0, GTR, 1.0],
    // b − b̂ with b̂ = ((1 − w)/3, (3w + 1)/3, d/3):
    // ((4w − 1)/3, −1/3, 2d/3)
    d: &[
        0.138_071_187_457_698_36,
        -0.333_333_333_333_333_3,
        0.195_262_145_875_635,
    ],
    source: "Bank et al. (1985); Hosea & Shampine, Appl. Numer. Math. 20 (1996)",
};

#[cfg(test)]
mod tests {
    use super::*;

    /// `A` as a full `s × s` matrix.
    fn full_a(t: &EsdirkTableau) -> Vec<Vec<f64>> {
        let s = t.stages();
        let mut a = vec![vec![0.0; s]; s];
        for (i, row) in t.a.iter().enumerate() {
            a[i + 1][..row.len()].copy_from_slice(row);
        }
        a
    }

    /// Order conditions up to order 4 for weights `w`.
    fn order_residuals(t: &EsdirkTableau, w: &[f64]) -> [f64; 8] {
        let a = full_a(t);
        let c = t.c;
        let s = t.stages();
        let dot = |u: &[f64], v: &[f64]| u.iter().zip(v).map(|(x, y)| x * y).sum::<f64>();
        let av = |v: &[f64]| -> Vec<f64> { (0..s).map(|i| dot(&a[i], v)).collect() };
        let c2: Vec<f64> = c.iter().map(|x| x * x).collect();
        let c3: Vec<f64> = c.iter().map(|x| x * x * x).collect();
        let ac = av(c);
        let ac2 = av(&c2);
        let aac = av(&ac);
        let cac: Vec<f64> = c.iter().zip(&ac).map(|(x, y)| x * y).collect();
        [
            dot(w, &[1.0; 8][..s]) - 1.0,
            dot(w, c) - 0.5,
            dot(w, &c2) - 1.0 / 3.0,
            dot(w, &ac) - 1.0 / 6.0,
            dot(w, &c3) - 0.25,
            dot(w, &cac) - 1.0 / 8.0,
            dot(w, &ac2) - 1.0 / 12.0,
            dot(w, &aac) - 1.0 / 24.0,
        ]
    }

    /// Number of order conditions of orders 1..=p among the eight above.
    fn conditions(p: u32) -> usize {
        [0, 1, 2, 4, 8][p as usize]
    }

    /// Stability function `R(z)` for real `z` and weights `w`.
    fn stability(t: &EsdirkTableau, w: &[f64], z: f64) -> f64 {
        let a = full_a(t);
        let s = t.stages();
        // (I − zA) x = 1, lower triangular
        let mut x = vec![0.0; s];
        for i in 0..s {
            let mut r = 1.0;
            for j in 0..i {
                r += z * a[i][j] * x[j];
            }
            x[i] = r / (1.0 - z * a[i][i]);
        }
        1.0 + z * w.iter().zip(&x).map(|(b, x)| b * x).sum::<f64>()
    }

    #[test]
    fn tables_are_consistent_esdirks() {
        for t in [&ESDIRK34, &TRBDF2] {
            let s = t.stages();
            assert_eq!(t.a.len(), s - 1, "{}", t.name);
            assert_eq!(t.b.len(), s);
            assert_eq!(t.d.len(), s);
            assert_eq!(t.c[0], 0.0);
            assert_eq!(t.c[s - 1], 1.0);
            for (i, row) in t.a.iter().enumerate() {
                assert_eq!(row.len(), i + 2, "{} row {}", t.name, i + 1);
                assert_eq!(row[i + 1], t.gamma, "{}: diagonal", t.name);
                let sum: f64 = row.iter().sum();
                assert!((sum - t.c[i + 1]).abs() < 1e-14, "{}: row sum", t.name);
            }
            // stiffly accurate
            assert_eq!(t.a[s - 2], t.b, "{}", t.name);
            // the estimate weights sum to zero (b and b̂ are both consistent)
            assert!(t.d.iter().sum::<f64>().abs() < 1e-14, "{}", t.name);
        }
    }

    #[test]
    fn order_conditions_hold() {
        for t in [&ESDIRK34, &TRBDF2] {
            let r = order_residuals(t, t.b);
            for (k, v) in r.iter().take(conditions(t.order)).enumerate() {
                assert!(v.abs() < 1e-14, "{} b condition {k}: {v:e}", t.name);
            }
            let bh: Vec<f64> = t.b.iter().zip(t.d).map(|(b, d)| b - d).collect();
            let r = order_residuals(t, &bh);
            for (k, v) in r.iter().take(conditions(t.embedded_order)).enumerate() {
                assert!(v.abs() < 1e-14, "{} b̂ condition {k}: {v:e}", t.name);
            }
            // and the solution is not of the embedded order (the estimate
            // measures its error)
            let r = order_residuals(t, t.b);
            assert!(
                r[conditions(t.order)..conditions(t.order + 1)]
                    .iter()
                    .any(|v| v.abs() > 1e-6),
                "{}",
                t.name
            );
        }
    }

    #[test]
    fn methods_are_l_stable() {
        for t in [&ESDIRK34, &TRBDF2] {
            for z in [-1e-2, -1.0, -10.0, -1e3, -1e6] {
                let r = stability(t, t.b, z);
                assert!(r.abs() <= 1.0, "{} R({z}) = {r}", t.name);
            }
            // R(z) = O(1/z) as z → −∞ (|R(−10⁶)| ≈ 2.9e-6 and 4.8e-6 in
            // exact arithmetic; larger |z| cancels catastrophically in f64)
            assert!(stability(t, t.b, -1e6).abs() < 1e-5, "{}", t.name);
        }
    }

    #[test]
    fn trbdf2_matches_its_formulas() {
        let sqrt2 = 2.0f64.sqrt();
        let g = 2.0 - sqrt2;
        let (d, w) = (g / 2.0, sqrt2 / 4.0);
        assert!((GTR - g).abs() < 1e-16);
        assert!((DTR - d).abs() < 1e-16);
        assert!((WTR - w).abs() < 1e-16);
        let bh = [(1.0 - w) / 3.0, (3.0 * w + 1.0) / 3.0, d / 3.0];
        for i in 0..3 {
            assert!((TRBDF2.d[i] - (TRBDF2.b[i] - bh[i])).abs() < 1e-16);
        }
    }
}
