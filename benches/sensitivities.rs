//! Forward sensitivities against the discrete adjoint (plain `fn main`,
//! `cargo bench --bench sensitivities`): Lotka–Volterra (P = 4 parameters,
//! Tsit5, rtol = atol = 1e-8, t ∈ [0, 10]), the gradient of
//! `L = y_0(10) + y_1(10)` by `grad` (discrete adjoint storing every step)
//! and by `sensitivities` (`dy/dp` at t = 10, contracted with `dL/dy`),
//! timed in alternating batches against each other and against the plain
//! solve; with their drift-evaluation counts, the error of `y(10)` against
//! the reference and the difference of the two gradients. Without
//! `--bench` each case runs once.

use std::time::Duration;

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "common/timing.rs"]
mod timing;

use common::{LV_PARAMS, LV_REF, LV_TSPAN, LV_Y0, LotkaVolterra};
use sdeflow::prelude::*;
use timing::{Timer, measure_pair};

/// `L = y_0 + y_1` at the last saved time.
fn loss(_ts: &[f64], ys: &[f64], g: &mut [f64]) -> f64 {
    let n = ys.len();
    g.iter_mut().for_each(|v| *v = 0.0);
    g[n - 2] = 1.0;
    g[n - 1] = 1.0;
    ys[n - 2] + ys[n - 1]
}

/// The problem: Lotka–Volterra with its four parameters.
type Lv = Problem<Generic<LotkaVolterra>>;

// One function per case, never inlined, so that `valgrind --tool=callgrind`
// counts each one's instructions (inclusive cost of `case_*`; in the run
// without `--bench` each case runs once in the report and once or twice in
// the timing: sensitivities 3 times, grad and solve twice).

#[inline(never)]
fn case_sensitivities(prob: &Lv, opts: &Options) -> Sensitivities {
    sensitivities(prob, Tsit5, opts, Wrt::Params).expect("sensitivities")
}

#[inline(never)]
fn case_grad(prob: &Lv, opts: &Options) -> Gradient {
    grad(prob, Tsit5, opts, &loss, Adjoint::STORE_ALL).expect("grad")
}

#[inline(never)]
fn case_solve(prob: &Lv, opts: &Options) -> Solution {
    solve(prob, Tsit5, opts).expect("solve")
}

fn main() {
    let cfg = Timer::from_args(Duration::from_secs(3), 20);
    let prob = Problem::ode_field(Generic(LotkaVolterra), LV_Y0.to_vec(), LV_TSPAN)
        .params(LV_PARAMS.to_vec());
    let opts = Options::default().tol(1e-8).save_at(SaveAt::T1);
    let run_sens = || case_sensitivities(&prob, &opts);
    let run_grad = || case_grad(&prob, &opts);
    let run_solve = || case_solve(&prob, &opts);

    let (sens, g, sol) = (run_sens(), run_grad(), run_solve());
    let j = sens.dy_dp(0);
    let fwd: Vec<f64> = (0..4).map(|k| j[(0, k)] + j[(1, k)]).collect();
    let scale = g.dp.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = fwd
        .iter()
        .zip(&g.dp)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
        / scale;
    let err = (sol.last()[0] - LV_REF[0])
        .abs()
        .max((sol.last()[1] - LV_REF[1]).abs());
    let plain_evals = sens.plain_stats().map_or(0, |s| s.drift_evals);
    println!("Lotka–Volterra, P = 4, Tsit5 rtol = atol = 1e-8, L = y0(10) + y1(10)");
    println!(
        "  solve:         {} drift evals, {} steps, |y(10) − ref| = {err:.1e}",
        sol.stats.drift_evals, sol.stats.accepted_steps
    );
    println!(
        "  sensitivities: {} augmented evals (each 1 plain + 4 dual) + {plain_evals} of the \
         step-choosing solve",
        sens.stats().drift_evals
    );
    println!(
        "  grad:          {} forward drift evals + {} VJPs + {} recomputations",
        g.solution.stats.drift_evals, g.vjps, g.backward_drift_evals
    );
    println!("  max |dL/dp forward − reverse| / max |dL/dp| = {diff:.1e}");

    let (ts, tg, ratio) = measure_pair(run_sens, run_grad, &cfg);
    println!(
        "  sensitivities {:.1} µs (±{:.0} %), grad {:.1} µs (±{:.0} %): ratio {ratio:.2}",
        ts.median * 1e6,
        ts.spread * 100.0,
        tg.median * 1e6,
        tg.spread * 100.0
    );
    let (ts, tp, ratio) = measure_pair(run_sens, run_solve, &cfg);
    println!(
        "  sensitivities {:.1} µs, solve {:.1} µs: ratio {ratio:.2}",
        ts.median * 1e6,
        tp.median * 1e6
    );
}
