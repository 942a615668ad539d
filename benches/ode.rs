//! Criterion benchmarks of whole ODE solves (wall time per solve).
//!
//! Measured, in one group `ode` so that criterion reports them side by side:
//!
//! * `tsit5_lotka_volterra_1e-6`: sdeflow Tsit5 on Lotka–Volterra (α=1.5,
//!   β=1, γ=3, δ=1, y0=(1, 1), t ∈ [0, 10]) at rtol = atol = 1e-6;
//! * `vern7_lotka_volterra_1e-8`: Vern7, same problem, 1e-8;
//! * `dopri5_lotka_volterra_1e-6`: Dopri5, same problem, 1e-6;
//! * `bdf_van_der_pol_1e-6`: Bdf on Van der Pol in Hairer's scaled form
//!   (ε = 1e-6, i.e. μ = 1000, y0 = (2, 0), t ∈ [0, 2]) at 1e-6, with an
//!   analytic Jacobian;
//! * `diffsol_tsit45_lotka_volterra_1e-6`: diffsol 0.18's explicit `tsit45`
//!   on Lotka–Volterra at 1e-6, for comparison with the first one.
//!
//! Each iteration is one complete solve. sdeflow solves use `SaveAt::T1`
//! (only the final state is kept). The diffsol solve creates the solver
//! from a problem built once outside the timed loop, then steps with
//! `set_stop_time` and `step()` (its `solve` would store every step). Both
//! evaluate the same right-hand-side function. For work counts (NFE, steps)
//! and errors see the `nfe_report` bench.
//!
//! Run with `cargo bench --bench ode`; sample sizes are kept small so the
//! whole group finishes in well under two minutes.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use diffsol::{NalgebraMat, OdeBuilder, OdeSolverMethod, OdeSolverStopReason, Vector};
use sdeflow::prelude::*;

/// Lotka–Volterra right-hand side, shared by sdeflow and diffsol.
#[inline(always)]
fn lv_rhs(y: &[f64], p: &[f64], dy: &mut [f64]) {
    dy[0] = p[0] * y[0] - p[1] * y[0] * y[1];
    dy[1] = -p[2] * y[1] + p[3] * y[0] * y[1];
}

const LV_PARAMS: [f64; 4] = [1.5, 1.0, 3.0, 1.0];
const LV_T1: f64 = 10.0;

fn lotka_volterra() -> Problem<impl Drift> {
    Problem::ode(
        |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| lv_rhs(y, p, dy),
        vec![1.0, 1.0],
        (0.0, LV_T1),
    )
    .params(LV_PARAMS.to_vec())
}

/// Van der Pol stiffness parameter ε (μ = 1000).
const VDP_EPS: f64 = 1e-6;

fn van_der_pol() -> Problem<impl Drift> {
    Problem::ode(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| {
            dy[0] = y[1];
            dy[1] = ((1.0 - y[0] * y[0]) * y[1] - y[0]) / VDP_EPS;
        },
        vec![2.0, 0.0],
        (0.0, 2.0),
    )
    .with_jacobian(|_t: f64, y: &[f64], _p: &[f64], jac: &mut [f64]| {
        jac[0] = 0.0;
        jac[1] = (-2.0 * y[0] * y[1] - 1.0) / VDP_EPS;
        jac[2] = 1.0;
        jac[3] = (1.0 - y[0] * y[0]) / VDP_EPS;
    })
}

fn t1_options(tol: f64) -> Options {
    Options::default().tol(tol).save_at(SaveAt::T1)
}

fn ode_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("ode");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    let lv = lotka_volterra();
    let opts6 = t1_options(1e-6);
    let opts8 = t1_options(1e-8);
    group.bench_function("tsit5_lotka_volterra_1e-6", |b| {
        b.iter(|| solve(black_box(&lv), Tsit5, &opts6).expect("Tsit5 solves Lotka–Volterra"))
    });
    group.bench_function("vern7_lotka_volterra_1e-8", |b| {
        b.iter(|| solve(black_box(&lv), Vern7, &opts8).expect("Vern7 solves Lotka–Volterra"))
    });
    group.bench_function("dopri5_lotka_volterra_1e-6", |b| {
        b.iter(|| solve(black_box(&lv), Dopri5, &opts6).expect("Dopri5 solves Lotka–Volterra"))
    });

    let vdp = van_der_pol();
    group.bench_function("bdf_van_der_pol_1e-6", |b| {
        b.iter(|| solve(black_box(&vdp), Bdf::default(), &opts6).expect("Bdf solves Van der Pol"))
    });

    let dproblem = OdeBuilder::<NalgebraMat<f64>>::new()
        .rtol(1e-6)
        .atol([1e-6])
        .p(LV_PARAMS)
        .rhs(|y: &[f64], p: &[f64], _t: f64, dy: &mut [f64]| lv_rhs(y, p, dy))
        .init(
            |_p: &[f64], _t: f64, y: &mut [f64]| {
                y[0] = 1.0;
                y[1] = 1.0;
            },
            2,
        )
        .build()
        .expect("diffsol builds Lotka–Volterra");
    group.bench_function("diffsol_tsit45_lotka_volterra_1e-6", |b| {
        b.iter(|| {
            let mut solver = black_box(&dproblem)
                .tsit45()
                .expect("diffsol creates tsit45");
            solver.set_stop_time(LV_T1).expect("t1 is ahead of t0");
            while let OdeSolverStopReason::InternalTimestep =
                solver.step().expect("tsit45 steps Lotka–Volterra")
            {}
            solver.state().y.clone_as_vec()
        })
    });
    group.finish();
}

criterion_group!(benches, ode_benches);
criterion_main!(benches);
