//! Criterion benchmarks of SDE solves: the overhead of sdeflow's
//! integration loop over a hand-written Euler–Maruyama loop.
//!
//! The problem is geometric Brownian motion in Itô form,
//! `dX = a X dt + b X dW` with `a = 1`, `b = 0.5`, `X0 = 1` on `[0, 1]`,
//! scalar noise. Measured, in one group `sde`:
//!
//! * `em_gbm_1000_steps/sdeflow`: one complete
//!   `solve(&p, EulerMaruyama, Options::default().fixed_step(1e-3).seed(s).save_at(SaveAt::T1))`
//!   (1000 steps; the problem is driven by `Increments`, which draws the
//!   increments as ziggurat normals over Xoshiro256++, no Brownian tree). It
//!   includes the option validation, the probes of both fields and the
//!   workspace allocation of the solve.
//! * `em_gbm_1000_steps/hand_loop`: the floor, the same scheme written as a
//!   plain Rust loop, `X += h·aX; X += (√h·z)·bX`, drawing `z` with
//!   `rand_distr::StandardNormal` (ziggurat) from
//!   `rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed)` — the fastest
//!   well-kept pieces, and the generator `Increments` draws from — so both
//!   do the same arithmetic on the same random numbers. Before timing, the
//!   bench checks that the two agree on `X_T` for a few seeds (to 1e-12
//!   relative; they differ only because sdeflow computes each step as
//!   `t_{k+1} − t_k` on the grid `t_k = k·h`, which rounds differently from
//!   `h`), and panics otherwise.
//! * `sriw1_gbm_adaptive_1e-3`: one adaptive SRIW1 solve of the same GBM at
//!   rtol = atol = 1e-3 on a virtual Brownian tree (the default driver),
//!   for reference (its step and evaluation counts are printed first).
//!
//! Every iteration uses the next seed (the same sequence for both EM
//! variants), so the timings average over paths. The EM benches report a
//! throughput in path-steps (`elem/s`); after the group the bench prints
//! `EM vs hand-written loop: ratio R (sdeflow a ns/step, hand b ns/step)`,
//! from the medians of criterion's own samples (goal: R ≤ 1.3). The
//! `sde_report` bench measures the same ratio with paired batches, and adds
//! work–precision and stability tables.
//!
//! Run with `cargo bench --bench sde` (about 20 s).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use sdeflow::prelude::*;

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "common/em.rs"]
mod em;
use common::gbm;
use em::{A, B, H, STEPS, X0, em_difference, hand_em, sdeflow_em};

/// Samples per benchmark.
const SAMPLE_SIZE: usize = 30;

/// Panics unless sdeflow and the hand loop agree on `X_T` for a few seeds.
fn check_same_result<F: Drift, G: Diffusion, D: Driver>(p: &Problem<F, G, D>) {
    let mut worst = 0.0f64;
    let mut identical = 0;
    let seeds = 0..8u64;
    for seed in seeds.clone() {
        let ours = sdeflow_em(p, seed);
        let hand = hand_em(A, B, X0, H, STEPS, seed);
        worst = worst.max(em_difference(ours, hand, seed));
        identical += usize::from(ours.to_bits() == hand.to_bits());
    }
    println!(
        "check: sdeflow EM and the hand loop agree on X_T for {} seeds (max relative difference \
         {worst:.1e}, {identical} bit-identical)",
        seeds.count()
    );
}

/// `(iterations, elapsed)` of every call criterion made to a routine.
type Samples = Vec<(u64, Duration)>;

/// Median time per path-step (ns) over the last `SAMPLE_SIZE` calls (the
/// measurement samples; the earlier ones are criterion's warm-up).
fn ns_per_step(samples: &Samples) -> Option<f64> {
    let start = samples.len().saturating_sub(SAMPLE_SIZE);
    let mut per: Vec<f64> = samples[start..]
        .iter()
        .map(|(iters, d)| d.as_secs_f64() * 1e9 / (*iters as f64 * STEPS as f64))
        .collect();
    if per.is_empty() {
        return None;
    }
    per.sort_by(f64::total_cmp);
    let mid = per.len() / 2;
    Some(if per.len() % 2 == 1 {
        per[mid]
    } else {
        0.5 * (per[mid - 1] + per[mid])
    })
}

/// Benchmarks `em` (one EM solve of `STEPS` steps for a seed) as `name`,
/// with the next seed (0, 1, 2, …) at every call; returns criterion's calls.
fn bench_em(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    mut em: impl FnMut(u64) -> f64,
) -> Samples {
    let mut samples: Samples = Vec::new();
    let mut seed = 0u64;
    group.bench_function(name, |bench| {
        bench.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(em(seed));
                seed = seed.wrapping_add(1);
            }
            let elapsed = start.elapsed();
            samples.push((iters, elapsed));
            elapsed
        })
    });
    samples
}

fn sde_benches(c: &mut Criterion) {
    // EM on the fastest driver (fresh i.i.d. increments); the adaptive Sriw1
    // solve below on the default virtual tree
    let p_tree = gbm(black_box(A), black_box(B));
    let p = gbm(black_box(A), black_box(B)).driver(Increments);
    check_same_result(&p);

    let mut group = c.benchmark_group("sde");
    group
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    group.throughput(Throughput::Elements(STEPS as u64));
    let ours = bench_em(&mut group, "em_gbm_1000_steps/sdeflow", |seed| {
        sdeflow_em(black_box(&p), seed)
    });
    let hand = bench_em(&mut group, "em_gbm_1000_steps/hand_loop", |seed| {
        let (a, b) = black_box((A, B));
        hand_em(a, b, X0, H, STEPS, seed)
    });

    let adaptive = |seed: u64| Options::default().tol(1e-3).seed(seed).save_at(SaveAt::T1);
    let sol = solve(&p_tree, Sriw1, adaptive(0)).expect("Sriw1 solves GBM");
    println!(
        "Sriw1 adaptive at tol 1e-3, seed 0: {} accepted + {} rejected steps, {} drift + {} \
         diffusion evaluations",
        sol.stats.accepted_steps,
        sol.stats.rejected_steps,
        sol.stats.drift_evals,
        sol.stats.diffusion_evals
    );
    group.throughput(Throughput::Elements(1));
    let mut seed = 0u64;
    group.bench_function("sriw1_gbm_adaptive_1e-3", |bench| {
        bench.iter(|| {
            seed = seed.wrapping_add(1);
            solve(black_box(&p_tree), Sriw1, adaptive(seed)).expect("Sriw1 solves GBM")
        })
    });
    group.finish();

    match (ns_per_step(&ours), ns_per_step(&hand)) {
        (Some(a), Some(b)) => println!(
            "\nEM vs hand-written loop: ratio {:.2} (sdeflow {a:.2} ns/step, hand {b:.2} ns/step; \
             medians of {} criterion samples{})",
            a / b,
            ours.len().min(SAMPLE_SIZE),
            if ours.len() < SAMPLE_SIZE {
                ", test mode: single runs"
            } else {
                ""
            }
        ),
        _ => println!("\nEM vs hand-written loop: no samples (benchmarks filtered out)"),
    }
}

criterion_group!(benches, sde_benches);
criterion_main!(benches);
