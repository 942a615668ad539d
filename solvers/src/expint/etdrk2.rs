//! ETDRK2 (Cox & Matthews, J. Comput. Phys. 176 (2002), eq. (22)):
//! `a = e^{z} y_n + h φ_1(z) N_n`,
//! `y_{n+1} = a + h φ_2(z) (N(t_n + h, a) − N_n)`, `z = hL`
//! (`../shared/reference/exponential.md` §2). Order 2, with ETD1 (`a`)
//! embedded: the error estimate `h φ_2(z)(N(a) − N_n)` is of order 2, so
//! it runs adaptively with any controller.

use super::tableau::{Coef, ExpStage, ExpTableau, t};

/// The coefficients of ETDRK2, with ETD1 embedded.
pub static ETDRK2: ExpTableau = ExpTableau {
    name: "Etdrk2",
    order: 2,
    embedded_order: Some(1),
    stages: &[ExpStage {
        c: 1.0,
        base: 0,
        base_scale: 1.0,
        coefs: &[Coef {
            stage: 0,
            terms: &[t(1.0, 1, 1.0)],
        }],
    }],
    b: &[
        Coef {
            stage: 0,
            terms: &[t(1.0, 1, 1.0), t(1.0, 2, -1.0)],
        },
        Coef {
            stage: 1,
            terms: &[t(1.0, 2, 1.0)],
        },
    ],
    b_err: &[
        Coef {
            stage: 0,
            terms: &[t(1.0, 2, -1.0)],
        },
        Coef {
            stage: 1,
            terms: &[t(1.0, 2, 1.0)],
        },
    ],
};
