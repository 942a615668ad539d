//! Dormand–Prince 5(4) (J. R. Dormand, P. J. Prince, "A family of embedded
//! Runge–Kutta formulae", J. Comput. Appl. Math. 6 (1980) 19–26; Hairer,
//! Nørsett, Wanner, *Solving ODEs I*, Table II.5.2). Seven stages, FSAL,
//! order 5 propagated, embedded order 4. Dense output: Hairer's 4th-order
//! continuous extension of DOPRI5 (`CONTD5`, HNW I §II.6, with Shampine's
//! weights `d`), rewritten as weights on the stages:
//! `y(θ) = y_n + θ(r2 + (1−θ)(r3 + θ(r4 + (1−θ) r5)))` with
//! `r2 = hΣb_i k_i`, `r3 = h k_1 − r2`, `r4 = r2 − h k_7 − r3`,
//! `r5 = hΣd_i k_i`.

use super::{ButcherTableau, DenseTableau};

const B: [f64; 7] = [
    35.0 / 384.0,
    0.0,
    500.0 / 1113.0,
    125.0 / 192.0,
    -2187.0 / 6784.0,
    11.0 / 84.0,
    0.0,
];

const D: [f64; 7] = [
    -12715105075.0 / 11282082432.0,
    0.0,
    87487479700.0 / 32700410799.0,
    -10690763975.0 / 1880347072.0,
    701980252875.0 / 199316789632.0,
    -1453857185.0 / 822651844.0,
    69997945.0 / 29380423.0,
];

/// Weights `[θ^0 .. θ^4]` of stage `i` from Hairer's nested form.
const fn dense_row(i: usize) -> [f64; 5] {
    let e1 = if i == 0 { 1.0 } else { 0.0 };
    let e7 = if i == 6 { 1.0 } else { 0.0 };
    let r2 = B[i];
    let r3 = e1 - r2;
    let r4 = r2 - e7 - r3;
    let r5 = D[i];
    // θ r2 + (θ − θ²) r3 + (θ² − θ³) r4 + (θ² − 2θ³ + θ⁴) r5
    [0.0, r2 + r3, -r3 + r4 + r5, -r4 - 2.0 * r5, r5]
}

const DENSE: [[f64; 5]; 7] = [
    dense_row(0),
    dense_row(1),
    dense_row(2),
    dense_row(3),
    dense_row(4),
    dense_row(5),
    dense_row(6),
];

/// Dormand–Prince 5(4).
pub const DP5: ButcherTableau = ButcherTableau {
    name: "Dopri5",
    c: &[0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0],
    a: &[
        &[],
        &[1.0 / 5.0],
        &[3.0 / 40.0, 9.0 / 40.0],
        &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
        &[
            19372.0 / 6561.0,
            -25360.0 / 2187.0,
            64448.0 / 6561.0,
            -212.0 / 729.0,
        ],
        &[
            9017.0 / 3168.0,
            -355.0 / 33.0,
            46732.0 / 5247.0,
            49.0 / 176.0,
            -5103.0 / 18656.0,
        ],
        &[B[0], B[1], B[2], B[3], B[4], B[5]],
    ],
    b: &B,
    b_err: Some(&[
        71.0 / 57600.0,
        0.0,
        -71.0 / 16695.0,
        71.0 / 1920.0,
        -17253.0 / 339200.0,
        22.0 / 525.0,
        -1.0 / 40.0,
    ]),
    order: 5,
    embedded_order: Some(4),
    fsal: true,
    dense: DenseTableau::without_extra_stages(
        &[
            &DENSE[0], &DENSE[1], &DENSE[2], &DENSE[3], &DENSE[4], &DENSE[5], &DENSE[6],
        ],
        4,
    ),
};
