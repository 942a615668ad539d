//! Kuramoto–Sivashinsky in Kassam–Trefethen's setup (`N = 128`,
//! `tests/common/kuramoto_sivashinsky.rs`) over `t ∈ [0, 30]`: ETDRK4 at
//! their step `h = 1/4` against a Krogstad reference at `h = 1/256`, its
//! measured order on this stiff problem (`../shared/reference/exponential.md`:
//! about 3, order reduction), and classical RK4 blowing up at `h = 1/4` with
//! a typed error.

use crate::common;
use common::assert_order;
use common::kuramoto_sivashinsky::{Spectral, kuramoto_sivashinsky};
use sdeflow::expint::{Etdrk4, Krogstad};
use sdeflow::ode::ExplicitRk;
use sdeflow::ode::tableau::OwnedTableau;
use sdeflow::prelude::*;

const N: usize = 128;
const T: f64 = 30.0;

fn grid(y: &[f64]) -> Vec<f64> {
    let mut u = vec![0.0; N];
    Spectral::new(N).to_grid(y, &mut u);
    u
}

fn max_err(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn at(method: impl Method<Problem<common::kuramoto_sivashinsky::KsField>>, h: f64) -> Vec<f64> {
    let p = kuramoto_sivashinsky(N, T);
    let sol = solve(
        &p,
        method,
        Options::default().fixed_step(h).save_at(SaveAt::T1),
    )
    .expect("KS solve");
    grid(sol.last())
}

#[test]
fn etdrk4_at_a_quarter_step_is_accurate_and_converges_at_order_about_three() {
    let reference = at(Krogstad, 1.0 / 256.0);
    let hs = [0.25, 0.125, 0.0625, 0.03125];
    let errs: Vec<f64> = hs
        .iter()
        .map(|&h| max_err(&at(Etdrk4, h), &reference))
        .collect();
    // measured 5.3e-5 at h = 1/4 (max |u| ≈ 2.5)
    assert!(errs[0] < 2e-4, "ETDRK4 at h = 1/4: error {:e}", errs[0]);
    // measured slopes 3.5, 2.6, 3.3 between halvings (order reduction on
    // KS, as the reference file says): the fit within 0.6 of 3
    assert_order("ETDRK4 on Kuramoto–Sivashinsky", &hs, &errs, 3.0, 0.6);
}

#[test]
fn classical_rk4_blows_up_at_the_quarter_step_with_a_typed_error() {
    let rk4 = OwnedTableau::builder(
        "RK4",
        vec![0.0, 0.5, 0.5, 1.0],
        vec![vec![], vec![0.5], vec![0.0, 0.5], vec![0.0, 0.0, 1.0]],
        vec![1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
        4,
    )
    .build()
    .expect("RK4 tableau");
    let p = kuramoto_sivashinsky(N, T);
    let r = solve(
        &p,
        ExplicitRk::new(&rk4),
        Options::default().fixed_step(0.25).save_at(SaveAt::T1),
    );
    assert!(
        matches!(r, Err(SolveError::NonFiniteState { .. })),
        "expected NonFiniteState, got {:?}",
        r.map(|s| s.last()[0])
    );
}
