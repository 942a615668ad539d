//! Bogacki–Shampine 3(2) (P. Bogacki, L. F. Shampine, "A 3(2) pair of
//! Runge–Kutta formulas", Appl. Math. Lett. 2 (1989) 321–325; diffrax
//! `bosh3.py`, OrdinaryDiffEq `BS3`). Four stages, FSAL, order 3 propagated,
//! embedded order 2. Dense output: the cubic Hermite interpolant through
//! `(y_n, f_n)` and `(y_{n+1}, f_{n+1})`, free thanks to FSAL, written as
//! weights on the stages (`y_{n+1} − y_n = h Σ b_i k_i`, `f_n = k_1`,
//! `f_{n+1} = k_4`).

use super::{ButcherTableau, DenseTableau};

/// Bogacki–Shampine 3(2).
pub const BS3: ButcherTableau = ButcherTableau {
    name: "Bs3",
    c: &[0.0, 0.5, 0.75, 1.0],
    a: &[
        &[],
        &[0.5],
        &[0.0, 0.75],
        &[2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0],
    ],
    b: &[2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0, 0.0],
    b_err: Some(&[-5.0 / 72.0, 1.0 / 12.0, 1.0 / 9.0, -1.0 / 8.0]),
    order: 3,
    embedded_order: Some(2),
    fsal: true,
    dense: DenseTableau::without_extra_stages(
        &[
            &[0.0, 1.0, -4.0 / 3.0, 5.0 / 9.0],
            &[0.0, 0.0, 1.0, -2.0 / 3.0],
            &[0.0, 0.0, 4.0 / 3.0, -8.0 / 9.0],
            &[0.0, 0.0, -1.0, 1.0],
        ],
        3,
    ),
};
