//! Lawson–Euler (integrating-factor Euler): `y_{n+1} = e^{hL}(y_n + h N(t_n, y_n))`.
//! Order 1; not exact for constant `N`, and poorer than ETD1 for stiff
//! forcing. Lawson, "Generalized Runge–Kutta processes for stable systems
//! with large Lipschitz constants", SIAM J. Numer. Anal. 4 (1967);
//! `../shared/reference/exponential.md` §2.

use super::tableau::{Coef, ExpTableau, t};

/// The coefficients of Lawson–Euler (`b_1 = φ_0(hL) = e^{hL}`).
pub static LAWSON_EULER: ExpTableau = ExpTableau {
    name: "LawsonEuler",
    order: 1,
    embedded_order: None,
    stages: &[],
    b: &[Coef {
        stage: 0,
        terms: &[t(1.0, 0, 1.0)],
    }],
    b_err: &[],
};
