//! Krogstad's fourth-order exponential Runge–Kutta method (Krogstad,
//! "Generalized integrating factor methods for stiff PDEs", J. Comput.
//! Phys. 203 (2005); in the notation of Hochbruck & Ostermann, "Exponential
//! integrators", Acta Numerica 19 (2010), §2.3, with `φ_{j,i} = φ_j(c_i hL)`):
//!
//! ```text
//! c_2 = 1/2:  a_21 = ½ φ_{1,2}
//! c_3 = 1/2:  a_31 = ½ φ_{1,3} − φ_{2,3}    a_32 = φ_{2,3}
//! c_4 = 1:    a_41 = φ_{1,4} − 2 φ_{2,4}    a_42 = 0    a_43 = 2 φ_{2,4}
//! b_1 = φ_1 − 3φ_2 + 4φ_3,  b_2 = b_3 = 2φ_2 − 4φ_3,  b_4 = 4φ_3 − φ_2
//! ```
//!
//! Classical order 4; stiff order 3 in general (Hochbruck & Ostermann,
//! SIAM J. Numer. Anal. 43 (2005), §5: the order-3 condition 5 holds
//! because `ψ_{2,2} + ψ_{2,3} = 0` with `c_2 = c_3`; the order-4 ones only
//! in a weakened form), above ETDRK4's stiff order 2. For stiff order 4 use
//! [`super::HochbruckOstermann`]. Measured orders: `tests/suite/expint.rs`.
//! Each stage starts from `y_n`.

use super::tableau::{Coef, ETDRK4_WEIGHTS, ExpStage, ExpTableau, HALF_ETD1, KROGSTAD_STAGE_2, t};

/// The coefficients of Krogstad's method.
pub static KROGSTAD: ExpTableau = ExpTableau {
    name: "Krogstad",
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
                    stage: 2,
                    terms: &[t(1.0, 2, 2.0)],
                },
            ],
        },
    ],
    b: &ETDRK4_WEIGHTS,
    b_err: &[],
};
