//! Exponential Euler (ETD1): `y_{n+1} = e^{hL} y_n + h φ_1(hL) N(t_n, y_n)`.
//! Order 1; exact when `N` is constant. Cox & Matthews, "Exponential time
//! differencing for stiff systems", J. Comput. Phys. 176 (2002);
//! `../shared/reference/exponential.md` §2.

use super::tableau::{Coef, ExpTableau, t};

/// The coefficients of exponential Euler.
pub static ETD1: ExpTableau = ExpTableau {
    name: "Etd1",
    order: 1,
    embedded_order: None,
    stages: &[],
    b: &[Coef {
        stage: 0,
        terms: &[t(1.0, 1, 1.0)],
    }],
    b_err: &[],
};
