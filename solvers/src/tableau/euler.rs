//! Forward Euler (Euler 1768): one stage, order 1, no error estimate.

use super::{ButcherTableau, DenseTableau};

/// Forward Euler.
pub const EULER: ButcherTableau = ButcherTableau {
    name: "Euler",
    c: &[0.0],
    a: &[&[]],
    b: &[1.0],
    b_err: None,
    order: 1,
    embedded_order: None,
    fsal: false,
    dense: DenseTableau::without_extra_stages(
        // linear interpolation
        &[&[0.0, 1.0]],
        1,
    ),
};
