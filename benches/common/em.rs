//! Euler–Maruyama on geometric Brownian motion (`tests/common::gbm`), by
//! sdeflow and by a hand-written loop on the same normals: what the `sde`
//! and `sde_report` benches time against each other.
//!
//! The hand loop is the floor: the fastest well-kept pieces, independent of
//! sdeflow — Xoshiro256++ (`rand::rngs::Xoshiro256PlusPlus`, seeded by
//! `seed_from_u64`) and ziggurat normals (`rand_distr::StandardNormal`).
//! sdeflow's `Increments` driver draws from the same generator, so the two
//! compute the same scheme on the same normals and their results can be
//! checked against each other before timing.
#![allow(dead_code)]

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand_distr::{Distribution, StandardNormal};
use sdeflow::prelude::*;

/// GBM drift coefficient `a`.
pub const A: f64 = 1.0;
/// GBM diffusion coefficient `b`.
pub const B: f64 = 0.5;
/// Initial state (that of `tests/common::gbm`).
pub const X0: f64 = 1.0;
/// End of the span `[0, T]` (that of `tests/common::gbm`).
pub const T: f64 = 1.0;
/// Step size of the timed fixed-step solves.
pub const H: f64 = 1e-3;
/// Number of steps over `[0, T]`.
pub const STEPS: usize = 1000;

/// Euler–Maruyama for `dX = aX dt + bX dW` by hand: constant `h`, `√h`
/// computed once, ziggurat normals over Xoshiro256++ seeded by `seed` (the
/// generator of sdeflow's `Increments` driver, which draws `√h · z`), in
/// the operation order of sdeflow's step (`y + h·f`, then `+ (1·ΔW)·g`).
#[inline(never)]
pub fn hand_em(a: f64, b: f64, x0: f64, h: f64, steps: usize, seed: u64) -> f64 {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let sqrt_h = h.sqrt();
    let mut x = x0;
    for _ in 0..steps {
        let f = a * x;
        let g = b * x;
        let z: f64 = StandardNormal.sample(&mut rng);
        let dw = sqrt_h * z;
        x += h * f;
        x += dw * g;
    }
    x
}

/// One sdeflow EM solve of `p` with the fixed step [`H`]; returns `X_T`.
#[inline(never)]
pub fn sdeflow_em<F: Drift, G: Diffusion, D: Driver>(p: &Problem<F, G, D>, seed: u64) -> f64 {
    let sol = solve(
        p,
        EulerMaruyama,
        Options::default()
            .fixed_step(H)
            .seed(seed)
            .save_at(SaveAt::T1),
    )
    .expect("EulerMaruyama solves GBM");
    sol.last()[0]
}

/// The relative difference of sdeflow's `X_T` (`ours`) to the hand loop's
/// (`hand`) for `seed`; panics above 1e-12, where the two no longer compute
/// the same scheme on the same normals.
pub fn em_difference(ours: f64, hand: f64, seed: u64) -> f64 {
    let rel = (ours - hand).abs() / hand.abs();
    assert!(
        ours.is_finite() && rel <= 1e-12,
        "sdeflow EM and the hand-written loop disagree for seed {seed}: X_T = {ours:e} vs \
         {hand:e} (relative difference {rel:e} > 1e-12); they no longer compute the same \
         scheme on the same normals, so the timings are not comparable"
    );
    rel
}
