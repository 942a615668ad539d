//! Hochbruck & Ostermann's five-stage exponential Runge–Kutta method of
//! stiff order 4 (Hochbruck & Ostermann, "Explicit exponential Runge–Kutta
//! methods for semilinear parabolic problems", SIAM J. Numer. Anal. 43
//! (2005), eq. (5.8); Acta Numerica 19 (2010), §2.3; as in the Expint
//! package of Berland, Skaflestad & Wright). With `φ_{j,i} = φ_j(c_i hL)`
//! and nodes `c = (0, ½, ½, 1, ½)`:
//!
//! ```text
//! a_21 = ½ φ_{1,2}
//! a_31 = ½ φ_{1,3} − φ_{2,3}            a_32 = φ_{2,3}
//! a_41 = φ_{1,4} − 2 φ_{2,4}            a_42 = a_43 = φ_{2,4}
//! a_52 = a_53 = ½ φ_{2,5} − φ_{3,4} + ¼ φ_{2,4} − ½ φ_{3,5}
//! a_54 = ¼ φ_{2,5} − a_52               a_51 = ½ φ_{1,5} − 2 a_52 − a_54
//! b_1 = φ_1 − 3φ_2 + 4φ_3,  b_2 = b_3 = 0,  b_4 = 4φ_3 − φ_2,  b_5 = 4φ_2 − 8φ_3
//! ```
//!
//! Each stage starts from `y_n`. One more evaluation of `N` per step than
//! ETDRK4 and Krogstad, for stiff order 4: measured 3.99 on HO 2005's own
//! parabolic test problem (`tests/suite/expint_stiff_order.rs`: 63-point
//! Dirichlet Laplacian, `h|λ|` up to 1700; Krogstad 3.98, ETDRK4 2.60).
//! The coefficients above were checked term by term against eq. (5.8)
//! (each `φ_{j,i}` at `c_i hL`). The manufactured problem of
//! `tests/suite/expint.rs` measures about 3 for it because that problem is
//! outside the theory's setting: its forcing `y*' − L y*` grows with `|λ|`
//! (amplitudes 1), or its errors are divided by amplitudes `1/|λ_i|`,
//! i.e. measured in the graph norm `‖L e‖`, where one order is lost.

use super::tableau::{Coef, ExpStage, ExpTableau, F1, F3, HALF_ETD1, KROGSTAD_STAGE_2, t};

/// `a_52 = a_53` as terms.
const A52: [super::tableau::Term; 4] = [
    t(0.5, 2, 0.5),
    t(1.0, 3, -1.0),
    t(1.0, 2, 0.25),
    t(0.5, 3, -0.5),
];

/// The coefficients of Hochbruck & Ostermann's method.
pub static HOCHBRUCK_OSTERMANN: ExpTableau = ExpTableau {
    name: "HochbruckOstermann",
    order: 4,
    embedded_order: None,
    stages: &[
        HALF_ETD1,
        KROGSTAD_STAGE_2,
        ExpStage {
            c: 1.0,
            base: 0,
            base_scale: 1.0,
            coefs: &[
                Coef {
                    stage: 0,
                    terms: &[t(1.0, 1, 1.0), t(1.0, 2, -2.0)],
                },
                Coef {
                    stage: 1,
                    terms: &[t(1.0, 2, 1.0)],
                },
                Coef {
                    stage: 2,
                    terms: &[t(1.0, 2, 1.0)],
                },
            ],
        },
        ExpStage {
            c: 0.5,
            base: 0,
            base_scale: 0.5,
            coefs: &[
                // a_51 = ½φ_{1,5} − 2a_52 − a_54 = ½φ_{1,5} − a_52 − ¼φ_{2,5}
                Coef {
                    stage: 0,
                    terms: &[
                        t(0.5, 1, 0.5),
                        t(0.5, 2, -0.5),
                        t(1.0, 3, 1.0),
                        t(1.0, 2, -0.25),
                        t(0.5, 3, 0.5),
                        t(0.5, 2, -0.25),
                    ],
                },
                Coef {
                    stage: 1,
                    terms: &A52,
                },
                Coef {
                    stage: 2,
                    terms: &A52,
                },
                // a_54 = ¼φ_{2,5} − a_52
                Coef {
                    stage: 3,
                    terms: &[
                        t(0.5, 2, 0.25),
                        t(0.5, 2, -0.5),
                        t(1.0, 3, 1.0),
                        t(1.0, 2, -0.25),
                        t(0.5, 3, 0.5),
                    ],
                },
            ],
        },
    ],
    b: &[
        Coef {
            stage: 0,
            terms: &F1,
        },
        Coef {
            stage: 3,
            terms: &F3,
        },
        Coef {
            stage: 4,
            terms: &[t(1.0, 2, 4.0), t(1.0, 3, -8.0)],
        },
    ],
    b_err: &[],
};
