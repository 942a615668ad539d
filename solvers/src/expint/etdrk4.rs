//! ETDRK4 (Cox & Matthews, J. Comput. Phys. 176 (2002); coefficients in
//! the form of Kassam & Trefethen, "Fourth-order time-stepping for stiff
//! PDEs", SIAM J. Sci. Comput. 26 (2005)). With `z = hL`:
//!
//! * `a = e^{z/2} y_n + (h/2) φ_1(z/2) N_n`,
//! * `b = e^{z/2} y_n + (h/2) φ_1(z/2) N(a, t_n + h/2)`,
//! * `c = e^{z/2} a + (h/2) φ_1(z/2) (2 N(b, t_n + h/2) − N_n)`,
//! * `y_{n+1} = e^{z} y_n + h [f_1 N_n + 2 f_2 (N(a) + N(b)) + f_3 N(c, t_n + h)]`,
//!
//! `f_1 = φ_1 − 3φ_2 + 4φ_3`, `f_2 = φ_2 − 2φ_3`, `f_3 = 4φ_3 − φ_2`
//! (`../shared/reference/exponential.md` §2). Order 4 classically; its
//! stiff order can drop to 2–3 (Hochbruck & Ostermann, Acta Numerica 2010,
//! §2.3): the third stage starts from `a` (its base in the tableau).

use super::tableau::{Coef, ETDRK4_WEIGHTS, ExpStage, ExpTableau, HALF_ETD1, t};

/// The coefficients of ETDRK4.
pub static ETDRK4: ExpTableau = ExpTableau {
    name: "Etdrk4",
    order: 4,
    embedded_order: None,
    stages: &[
        HALF_ETD1,
        ExpStage {
            c: 0.5,
            base: 0,
            base_scale: 0.5,
            coefs: &[Coef {
                stage: 1,
                terms: &[t(0.5, 1, 0.5)],
            }],
        },
        ExpStage {
            c: 1.0,
            base: 1,
            base_scale: 0.5,
            coefs: &[
                Coef {
                    stage: 0,
                    terms: &[t(0.5, 1, -0.5)],
                },
                Coef {
                    stage: 2,
                    terms: &[t(0.5, 1, 1.0)],
                },
            ],
        },
    ],
    b: &ETDRK4_WEIGHTS,
    b_err: &[],
};
