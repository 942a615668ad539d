//! Heun's method (explicit trapezoidal rule) with forward Euler embedded:
//! the 2(1) pair of diffrax's `Heun` (Süli & Mayers, *An Introduction to
//! Numerical Analysis*, §12). The interpolant is the natural quadratic
//! continuous extension `b_1(θ) = θ − θ²/2`, `b_2(θ) = θ²/2` (order 2).

use super::{ButcherTableau, DenseTableau};

/// Heun 2(1).
pub const HEUN: ButcherTableau = ButcherTableau {
    name: "Heun",
    c: &[0.0, 1.0],
    a: &[&[], &[1.0]],
    b: &[0.5, 0.5],
    // b − b̂ with b̂ = [1, 0] (forward Euler)
    b_err: Some(&[-0.5, 0.5]),
    order: 2,
    embedded_order: Some(1),
    fsal: false,
    dense: DenseTableau::without_extra_stages(&[&[0.0, 1.0, -0.5], &[0.0, 0.0, 0.5]], 2),
};
