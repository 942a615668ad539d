//! Ensemble throughput and overhead (plain `fn main`, run with
//! `cargo bench --bench ensemble`).
//!
//! - Throughput: 10^5 Euler–Maruyama paths of 1000 steps on GBM (fixed
//!   steps, `SaveAt::T1`, statistics of X_T), on 1 and 2 threads, in
//!   path-steps per second, the speedup `T(1) / T(2)` (goal: ≥ 1.8) and
//!   the parallel efficiency `T(1) / (2 · T(2))` (goal: ≥ 90 % on 2 cores).
//!   1 and 2 threads run alternately, `ROUNDS` times each, and the fastest
//!   run of each counts, so that load from other processes on a shared
//!   machine affects both alike.
//! - Overhead: the same ensemble on one thread against a plain loop over
//!   `solve` with the same per-trajectory seeds, reducing X_T with the same
//!   Welford accumulator (goal: within 10 %).
//!
//! With `--test` or without `--bench` (as under `cargo test --benches`) a
//! tiny version runs once.

use std::hint::black_box;
use std::time::Instant;

use sdeflow::ensemble::Ensemble;
use sdeflow::prelude::*;
use sdeflow::statistics::Moments;

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "common/em.rs"]
mod em;
use common::gbm;
use em::{A, B};

/// Alternating 1- and 2-thread runs of the full bench.
const ROUNDS: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let (paths, steps) = if full {
        (100_000usize, 1000usize)
    } else {
        (200, 100)
    };
    let gbm = gbm(A, B).driver(Increments);
    let opts = Options::default()
        .fixed_step(1.0 / steps as f64)
        .save_at(SaveAt::T1);
    let path_steps = (paths * steps) as f64;

    let time = |f: &dyn Fn() -> f64| {
        let start = Instant::now();
        let v = f();
        (start.elapsed().as_secs_f64(), v)
    };

    // plain loop over solve, same seeds, same reduction
    let base = Ensemble::new(&gbm, EulerMaruyama, opts.clone(), paths).seed(1);
    let (t_plain, m_plain) = time(&|| {
        let mut m = Moments::default();
        for i in 0..paths {
            let mut o = opts.clone();
            o.seed = base.trajectory_seed(i);
            let sol = solve(&gbm, EulerMaruyama, &o).expect("solve");
            m.push(sol.last()[0]);
        }
        black_box(m.mean)
    });
    let run = |threads: usize| {
        time(&|| {
            let s = Ensemble::new(&gbm, EulerMaruyama, opts.clone(), paths)
                .seed(1)
                .threads(threads)
                .progress(false)
                .statistics(&[])
                .expect("ensemble");
            black_box(s.times[0].mean(0))
        })
    };
    let rounds = if full { ROUNDS } else { 1 };
    let (mut t1, mut t2) = (f64::INFINITY, f64::INFINITY);
    let (mut m1, mut m2) = (0.0, 0.0);
    for _ in 0..rounds {
        let (t, m) = run(1);
        (t1, m1) = (t1.min(t), m);
        let (t, m) = run(2);
        (t2, m2) = (t2.min(t), m);
    }
    assert_eq!(
        m1.to_bits(),
        m2.to_bits(),
        "1 and 2 threads must agree bit for bit"
    );
    assert!(
        (m1 - m_plain).abs() < 1e-9 * m1.abs(),
        "ensemble and plain loop disagree"
    );

    println!("ensemble of {paths} EM paths x {steps} steps on GBM");
    println!(
        "plain loop over solve : {:8.3} s  {:6.1} M path-steps/s",
        t_plain,
        path_steps / t_plain / 1e6
    );
    println!(
        "ensemble, 1 thread    : {:8.3} s  {:6.1} M path-steps/s",
        t1,
        path_steps / t1 / 1e6
    );
    println!(
        "ensemble, 2 threads   : {:8.3} s  {:6.1} M path-steps/s",
        t2,
        path_steps / t2 / 1e6
    );
    println!(
        "speedup 1 -> 2 threads: {:.2}x (goal >= 1.8x); parallel efficiency {:.1} % (goal >= 90 %)",
        t1 / t2,
        100.0 * t1 / (2.0 * t2)
    );
    println!(
        "ensemble overhead vs plain loop (1 thread): {:+.1} % (goal within 10 %)",
        100.0 * (t1 / t_plain - 1.0)
    );
    println!("E[X_1] = {m1:.5} (exact {:.5})", 1f64.exp());
}
