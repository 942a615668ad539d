//! Exponential Runge–Kutta methods as data: coefficients that are linear
//! combinations of φ-functions (Hochbruck & Ostermann, "Exponential
//! integrators", Acta Numerica 19 (2010), §2.3; `../shared/reference/exponential.md` §2).
//!
//! With `z = hL` and `N_j = N(t + c_j h, U_j)`, stage `0` is `U_0 = y` and
//! stage `i ≥ 1` is
//!
//! `U_i = φ_0(d_i z) U_{β_i} + h Σ_j a_ij(z) N_j`,
//!
//! where the base `β_i` is `0` (the usual form, `d_i = c_i`) or an earlier
//! stage (Cox–Matthews ETDRK4's third stage starts from its first); the
//! step is `y_{n+1} = e^z y + h Σ_j b_j(z) N_j`, and the error estimate,
//! where the method has one, `err = h Σ_j e_j(z) N_j`. Each coefficient
//! `a_ij`, `b_j`, `e_j` is `Σ w φ_k(c z)` over a list of [`Term`]s.

/// `w φ_k(c z)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Term {
    /// The argument's scale `c` (`φ_k(c hL)`).
    pub scale: f64,
    /// The φ-function's index.
    pub k: usize,
    /// The weight.
    pub w: f64,
}

/// `w φ_k(c z)`, for the tables.
pub const fn t(scale: f64, k: usize, w: f64) -> Term {
    Term { scale, k, w }
}

/// `φ_1 − 3φ_2 + 4φ_3`: the weight of `N_n` in ETDRK3, ETDRK4, Krogstad's
/// and Hochbruck–Ostermann's outputs (Kassam–Trefethen's `f_1`).
pub const F1: [Term; 3] = [t(1.0, 1, 1.0), t(1.0, 2, -3.0), t(1.0, 3, 4.0)];
/// `2φ_2 − 4φ_3` (`2 f_2`).
pub const TWO_F2: [Term; 2] = [t(1.0, 2, 2.0), t(1.0, 3, -4.0)];
/// `4φ_3 − φ_2` (`f_3`).
pub const F3: [Term; 2] = [t(1.0, 2, -1.0), t(1.0, 3, 4.0)];

/// The output weights `f_1 N_n + 2f_2 (N(U_1) + N(U_2)) + f_3 N(U_3)` of
/// ETDRK4 and Krogstad's method (Kassam–Trefethen's form).
pub const ETDRK4_WEIGHTS: [Coef; 4] = [
    Coef {
        stage: 0,
        terms: &F1,
    },
    Coef {
        stage: 1,
        terms: &TWO_F2,
    },
    Coef {
        stage: 2,
        terms: &TWO_F2,
    },
    Coef {
        stage: 3,
        terms: &F3,
    },
];

/// The half step of exponential Euler from `y_n`:
/// `U = e^{z/2} y_n + (h/2) φ_1(z/2) N_n` at `t_n + h/2` (the first stage
/// of ETDRK3, ETDRK4, Krogstad's and Hochbruck–Ostermann's methods).
pub const HALF_ETD1: ExpStage = ExpStage {
    c: 0.5,
    base: 0,
    base_scale: 0.5,
    coefs: &[Coef {
        stage: 0,
        terms: &[t(0.5, 1, 0.5)],
    }],
};

/// Krogstad's second stage (also Hochbruck–Ostermann's):
/// `e^{z/2} y_n + h[(½φ_1(z/2) − φ_2(z/2)) N_n + φ_2(z/2) N(U_1)]`.
pub const KROGSTAD_STAGE_2: ExpStage = ExpStage {
    c: 0.5,
    base: 0,
    base_scale: 0.5,
    coefs: &[
        Coef {
            stage: 0,
            terms: &[t(0.5, 1, 0.5), t(0.5, 2, -1.0)],
        },
        Coef {
            stage: 1,
            terms: &[t(0.5, 2, 1.0)],
        },
    ],
};

/// The coefficient `Σ terms` of `h N_stage` in a stage or the output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coef {
    /// Which stage's `N`.
    pub stage: usize,
    /// Its terms.
    pub terms: &'static [Term],
}

/// One stage `i ≥ 1`: `U_i = φ_0(d_i z) U_{β_i} + h Σ_j a_ij(z) N_j`, its
/// `N` evaluated at `t + c_i h`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExpStage {
    /// The node `c_i`.
    pub c: f64,
    /// The base stage `β_i` (`0`: the step's start).
    pub base: usize,
    /// The scale `d_i` of the exponential applied to the base.
    pub base_scale: f64,
    /// The coefficients `a_ij`.
    pub coefs: &'static [Coef],
}

/// An exponential Runge–Kutta method (module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExpTableau {
    /// The method's name.
    pub name: &'static str,
    /// Classical (non-stiff) order.
    pub order: u32,
    /// Order of the embedded solution, where there is one.
    pub embedded_order: Option<u32>,
    /// Stages `1..s` (stage `0` is the step's start).
    pub stages: &'static [ExpStage],
    /// The output's coefficients `b_j`.
    pub b: &'static [Coef],
    /// The error estimate's coefficients `e_j` (empty: none).
    pub b_err: &'static [Coef],
}

impl ExpTableau {
    /// Number of stages (including stage `0`).
    pub fn stages(&self) -> usize {
        self.stages.len() + 1
    }

    /// Every distinct scale `c` the coefficients use, and the highest φ
    /// index.
    pub fn scales_and_kmax(&self) -> (Vec<f64>, usize) {
        let mut scales = vec![1.0];
        let mut kmax = 0;
        let mut see = |term: &Term| {
            if !scales.contains(&term.scale) {
                scales.push(term.scale);
            }
            kmax = kmax.max(term.k);
        };
        for st in self.stages {
            see(&t(st.base_scale, 0, 1.0));
            st.coefs.iter().flat_map(|c| c.terms).for_each(&mut see);
        }
        self.b
            .iter()
            .chain(self.b_err)
            .flat_map(|c| c.terms)
            .for_each(&mut see);
        (scales, kmax)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expint::phi::phi;
    use crate::expint::{
        ETD1, ETDRK2, ETDRK4, ETDRK32, HOCHBRUCK_OSTERMANN, KROGSTAD, LAWSON_EULER,
    };

    fn value(terms: &[Term], z: f64) -> f64 {
        terms.iter().map(|t| t.w * phi(t.k, t.scale * z)).sum()
    }

    /// The stiff order conditions of Hochbruck & Ostermann (2005, Table 1)
    /// that every method here meets exactly, for scalar `z`: the output's
    /// weights sum to `φ_1(z)` and each stage's row to `c_i φ_1(c_i z)`
    /// (with its base's exponential folded in), and `Σ b_j c_j = φ_2(z)`
    /// and `Σ b_j c_j²/2 = φ_3(z)` up to the method's order.
    #[test]
    fn tables_meet_their_order_conditions() {
        for tab in [
            &ETD1,
            &LAWSON_EULER,
            &ETDRK2,
            &ETDRK32,
            &ETDRK4,
            &KROGSTAD,
            &HOCHBRUCK_OSTERMANN,
        ] {
            let c: Vec<f64> = std::iter::once(0.0)
                .chain(tab.stages.iter().map(|s| s.c))
                .collect();
            for &z in &[-30.0, -2.0, -0.1, 0.0, 0.7] {
                // rows: U_i with y = 1 and N = 1 (a constant forcing) must
                // be e^{c z} + c φ_1(c z) z... i.e. the exact flow of y' = zy/h + 1
                let mut u = vec![1.0];
                for st in tab.stages {
                    let mut v = phi(0, st.base_scale * z) * u[st.base];
                    for cf in st.coefs {
                        v += value(cf.terms, z);
                    }
                    let exact = phi(0, st.c * z) + st.c * phi(1, st.c * z);
                    if tab.name != "LawsonEuler" {
                        assert!(
                            (v - exact).abs() < 1e-13,
                            "{} stage c = {}: {v} vs {exact}",
                            tab.name,
                            st.c
                        );
                    }
                    u.push(v);
                }
                let sum_b: f64 = tab.b.iter().map(|cf| value(cf.terms, z)).sum();
                if tab.name != "LawsonEuler" {
                    assert!((sum_b - phi(1, z)).abs() < 1e-13, "{}: Σb", tab.name);
                }
                if tab.order >= 2 {
                    let s: f64 = tab
                        .b
                        .iter()
                        .map(|cf| c[cf.stage] * value(cf.terms, z))
                        .sum();
                    assert!((s - phi(2, z)).abs() < 1e-13, "{}: Σbc", tab.name);
                }
                if tab.order >= 3 {
                    let s: f64 = tab
                        .b
                        .iter()
                        .map(|cf| 0.5 * c[cf.stage].powi(2) * value(cf.terms, z))
                        .sum();
                    assert!((s - phi(3, z)).abs() < 1e-13, "{}: Σbc²/2", tab.name);
                }
                if !tab.b_err.is_empty() {
                    let e: f64 = tab.b_err.iter().map(|cf| value(cf.terms, z)).sum();
                    assert!(
                        e.abs() < 1e-13,
                        "{}: the error weights must sum to 0",
                        tab.name
                    );
                }
            }
        }
    }
}
