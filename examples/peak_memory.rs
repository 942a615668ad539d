//! Peak resident memory of a long solve and of its gradient, each in a
//! fresh process: `cargo run --release --example peak_memory -- forward`
//! and `... -- gradient` (add a step count, default 1 000 000, and a
//! checkpoint budget, default 32). Prints the process's peak RSS (`VmHWM`
//! from `/proc/self/status`, Linux) after Tsit5 takes that many fixed steps
//! on a 32-dimensional linear ODE, or after the discrete-adjoint gradient of
//! the same solve with that budget.
//!
//! The discrete adjoint keeps at most `budget` snapshots per level of
//! recomputation and regenerates the steps between them, so its peak does
//! not grow with the number of steps.

use sdeflow::prelude::*;

#[path = "../tests/common/mod.rs"]
mod common;
use common::{Ring, sum_loss as loss};

const N: usize = 32;

/// Peak resident set size in kB, if the platform reports it.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map_or("forward", String::as_str);
    let steps: usize = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let budget: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(32);
    let problem =
        Problem::ode_field(Generic(Ring), vec![0.1; N], (0.0, 1.0)).params(vec![0.5, 0.2]);
    let opts = Options::default()
        .fixed_step(1.0 / steps as f64)
        .max_steps(steps + 1)
        .save_at(SaveAt::T1);
    let before = peak_rss_kb();
    let (value, nfe) = match what {
        "forward" => {
            let sol = solve(&problem, Tsit5, &opts).expect("forward solve");
            (sol.last().iter().sum::<f64>(), sol.stats.drift_evals)
        }
        "gradient" => {
            let g = grad(
                &problem,
                Tsit5,
                &opts,
                &loss,
                Adjoint::Discrete {
                    checkpoints: budget,
                },
            )
            .expect("gradient");
            (
                g.loss,
                g.solution.stats.drift_evals + g.backward_drift_evals,
            )
        }
        other => {
            eprintln!("unknown mode {other}: use forward or gradient");
            std::process::exit(2);
        }
    };
    match (before, peak_rss_kb()) {
        (Some(b), Some(p)) => println!(
            "{what}: {steps} Tsit5 steps (budget {budget}), value {value:.12e}, {nfe} drift \
             evaluations; peak RSS {p} kB ({b} kB before the solve)"
        ),
        _ => println!("{what}: peak RSS not available on this platform"),
    }
}
