//! Gradient cost (plain `fn main`, `cargo bench --bench gradients`): an MLP
//! neural ODE (2-50-2, tanh, Tsit5, rtol = atol = 1e-6, t ∈ [0, 1], loss on
//! the state at 10 times): the forward solve against diffsol 0.18's
//! `tsit45` on the same network in the same run (steps, NFE, error against
//! a Vern7 solve at 1e-13, time per solve, per step and per evaluation;
//! goal: forward ≤ diffsol), discrete-adjoint gradient time and its ratio
//! to the forward (goal: ≤ 2.5; pairs timed in alternating batches), and
//! the gradient error against central
//! finite differences of the same solver (fixed steps, so that FD sees the
//! same discrete map); the interpolating and backsolve adjoints' times and
//! differences; the same network on t ∈ [0, 30] with the discrete adjoint
//! storing every state and with budgets of 32 and 8 (recomputation); and a
//! neural SDE (2-16-2 MLP drift and diffusion, reversible Heun) with the
//! reversible, discrete (storing everything, and with a budget of 16) and
//! stochastic adjoints, plus Euler–Heun's discrete adjoint storing
//! everything and with a budget of 16; and the stiff
//! Robertson problem (rate constants as parameters, t ∈ [0, 1e5], loss on
//! y(t1)) through the native `Esdirk34` and `TrBdf2` with the discrete
//! adjoint (implicit-function theorem) and through `Bdf` with the discrete
//! adjoint (its history carried) and the interpolating adjoint (stiff
//! backward solve), gradient/forward time ratio
//! and evaluation counts; and (`batch`) 64 initial states of the 2-50-2 and
//! of a 16-128-128-16 network, an `Ensemble` of 64 solves against one
//! `BatchedMlp` solve. Without `--bench` a tiny version runs once;
//! arguments (`mlp`, `batch`, `long`, `sde`, `stiff`, `fd`) pick sections, e.g.
//! `cargo bench --bench gradients -- stiff`.

use std::hint::black_box;
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "common/timing.rs"]
mod timing;

use common::{ROBER_P, RobertsonP, central_difference, loss_of_solve};
use sdeflow::nn::{Activation, Mlp};
use sdeflow::prelude::*;

/// The discrete adjoint with a budget of 32 stored states.
const DISCRETE: Adjoint = Adjoint::Discrete { checkpoints: 32 };

/// Median time per call of `f` over batches filling about `budget` seconds.
fn time(budget: f64, mut f: impl FnMut()) -> f64 {
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < budget || samples.len() < 5 {
        let t = Instant::now();
        f();
        samples.push(t.elapsed().as_secs_f64());
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

/// `max |a − b| / max |b|`.
fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
        / b.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// Times the gradient `grad_by(adjoint)` of each `(name, adjoint)` and
/// prints it against the forward time `fwd` and, as the largest relative
/// difference of `dL/dp`, against the discrete adjoint's `discrete`; `pad`
/// spaces follow "adjoint" in the label.
fn compare_adjoints(
    budget: f64,
    fwd: f64,
    discrete: &[f64],
    adjoints: &[(&str, Adjoint)],
    pad: usize,
    grad_by: impl Fn(Adjoint) -> Gradient,
) {
    for &(name, adjoint) in adjoints {
        let mut diff = 0.0f64;
        let t = time(budget, || {
            diff = max_rel_diff(&grad_by(adjoint).dp, discrete);
        });
        println!(
            "{name:<14} adjoint{:pad$}: {:10.2} µs  ratio {:.2}; max rel. difference to discrete {diff:.1e}",
            "",
            t * 1e6,
            t / fwd
        );
    }
}

/// Times the discrete adjoint `grad_by(adjoint)` at each checkpoint budget
/// `(name, checkpoints)` and prints, after `label(name)`, its time, its
/// ratio to the forward time `fwd` and its peak of stored `states`.
fn compare_budgets(
    budget: f64,
    fwd: f64,
    budgets: &[(&str, usize)],
    (label, states): (impl Fn(&str) -> String, &str),
    grad_by: impl Fn(Adjoint) -> Gradient,
) {
    for &(name, checkpoints) in budgets {
        let mut peak = 0;
        let t = time(budget, || {
            peak = grad_by(Adjoint::Discrete { checkpoints }).peak_stored_states;
        });
        println!(
            "{}: {:10.2} µs  ratio {:.2}; peak {states} {peak}",
            label(name),
            t * 1e6,
            t / fwd
        );
    }
}

/// The largest relative difference of `dp` to central differences of
/// `loss_at` at `params` (step `1e-6 max(|p_j|, 1)`), over every `stride`-th
/// parameter, the differences' magnitudes floored at `floor`.
fn worst_fd_difference(
    loss_at: impl Fn(&[f64]) -> f64,
    params: &[f64],
    dp: &[f64],
    stride: usize,
    floor: f64,
) -> f64 {
    let mut worst: f64 = 0.0;
    for j in (0..params.len()).step_by(stride) {
        let h = 1e-6 * params[j].abs().max(1.0);
        let fd = central_difference(&loss_at, params, j, h);
        worst = worst.max((dp[j] - fd).abs() / fd.abs().max(floor));
    }
    worst
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let budget = if full { 1.0 } else { 0.01 };
    // `cargo bench --bench gradients -- stiff`: only the sections named by
    // an argument (`mlp`, `batch`, `long`, `sde`, `stiff`, `fd`); all without one
    let sections: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |name: &str| sections.is_empty() || sections.iter().any(|s| s == name);
    let mlp = Mlp::new(&[2, 50, 2], Activation::Tanh);
    let params = mlp.init_params(7, 1.0);
    let times: Vec<f64> = (1..=10).map(|i| 0.1 * i as f64).collect();
    let problem =
        Problem::ode_field(mlp.clone(), vec![0.5, -0.3], (0.0, 1.0)).params(params.clone());
    let loss = |ts: &[f64], ys: &[f64], g: &mut [f64]| {
        let mut v = 0.0;
        for i in 0..ts.len() {
            for k in 0..2 {
                let d = ys[2 * i + k] - 0.2 * ts[i];
                v += d * d;
                g[2 * i + k] = 2.0 * d;
            }
        }
        v
    };
    if run("mlp") {
        mlp_section(budget, (&mlp, &params), &times, &loss);
    }
    if run("batch") {
        batch_section(budget, &mlp, &params);
    }
    if run("long") {
        long_horizon(budget, &mlp, &params);
    }
    if run("sde") {
        sde_section(budget);
    }
    if run("stiff") {
        stiff_section(budget);
    }
    if run("fd") {
        // accuracy against central finite differences of the same fixed-step map
        let fixed = Options::default()
            .fixed_step(0.02)
            .save_at(SaveAt::Times(times));
        let gf = grad(&problem, Tsit5, &fixed, &loss, DISCRETE).expect("grad");
        let loss_at =
            |p: &[f64]| loss_of_solve(&problem.clone().params(p.to_vec()), Tsit5, &fixed, &loss);
        let stride = if full { 1 } else { 37 };
        let worst = worst_fd_difference(loss_at, &params, &gf.dp, stride, 1e-6);
        println!("worst relative difference to central FD (fixed h = 0.02): {worst:.1e}");
    }
}

/// The timer of alternating batches for a section timed within `budget`
/// seconds per case (one run per case in the quick mode).
fn pair_timer(budget: f64) -> timing::Timer {
    timing::Timer {
        quick: budget < 0.1,
        budget: Duration::from_secs_f64(budget),
        batch: Duration::from_millis(20),
        min_batches: 7,
    }
}

/// `max |a − b|`.
fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// The neural ODE section: forward solve, discrete-adjoint gradient and
/// their ratio; diffsol's `tsit45` on the same network in the same run,
/// with work (steps, NFE), error and time per step and per evaluation of
/// both; the interpolating and backsolve adjoints.
fn mlp_section(budget: f64, (mlp, params): (&Mlp, &[f64]), times: &[f64], loss: &dyn Loss) {
    use diffsol::{NalgebraMat, OdeBuilder, OdeSolverMethod, OdeSolverStopReason, Vector};
    use std::cell::Cell;
    let problem =
        Problem::ode_field(mlp.clone(), vec![0.5, -0.3], (0.0, 1.0)).params(params.to_vec());
    let adaptive = &Options::default()
        .tol(1e-6)
        .save_at(SaveAt::Times(times.to_vec()));
    let cfg = pair_timer(budget);
    let g = grad(&problem, Tsit5, adaptive, loss, DISCRETE).expect("grad");
    let (bwd, fwd, ratio) = timing::measure_pair(
        || grad(&problem, Tsit5, adaptive, loss, DISCRETE).expect("grad"),
        || solve(&problem, Tsit5, adaptive).expect("solve"),
        &cfg,
    );
    // diffsol on the same closure; the counter costs one add per evaluation
    let evals = Cell::new(0usize);
    let dproblem = OdeBuilder::<NalgebraMat<f64>>::new()
        .rtol(1e-6)
        .atol([1e-6])
        .p(params.to_vec())
        .rhs(|y: &[f64], p: &[f64], _t: f64, dy: &mut [f64]| {
            evals.set(evals.get() + 1);
            mlp.forward(y, p, dy)
        })
        .init(
            |_p: &[f64], _t: f64, y: &mut [f64]| y.copy_from_slice(&[0.5, -0.3]),
            2,
        )
        .build()
        .expect("diffsol builds the neural ODE");
    let dsolve = || {
        let mut solver = dproblem.tsit45().expect("diffsol creates tsit45");
        solver.set_stop_time(1.0).expect("t1 is ahead of t0");
        let mut ys = Vec::with_capacity(2 * times.len());
        let mut next = 0;
        loop {
            let reason = solver.step().expect("tsit45 steps the neural ODE");
            let t = solver.state().t;
            while next < times.len() && times[next] <= t {
                let y = solver
                    .interpolate(times[next])
                    .expect("interpolates inside the step");
                ys.extend(y.clone_as_vec());
                next += 1;
            }
            if let OdeSolverStopReason::TstopReached = reason {
                return (ys, solver.get_statistics().number_of_steps);
            }
        }
    };
    evals.set(0);
    let (dys, dsteps) = dsolve();
    let devals = evals.get();
    let (fwd2, dfwd, fwd_ratio) = timing::measure_pair(
        || solve(&problem, Tsit5, adaptive).expect("solve"),
        dsolve,
        &cfg,
    );
    let sol = solve(&problem, Tsit5, adaptive).expect("solve");
    let exact = solve(&problem, Vern7, adaptive.clone().tol(1e-13)).expect("reference");
    println!(
        "MLP 2-50-2 neural ODE ({} parameters), rtol = atol = 1e-6, 10 save times",
        params.len()
    );
    let row = |name: &str, t: f64, steps: usize, nfe: usize, err: f64| {
        println!(
            "{name:<22} : {:8.2} µs  {steps} steps, {nfe} RHS evaluations, {:.2} µs/step, \
             {:.0} ns/evaluation; max error {err:.1e}",
            t * 1e6,
            t * 1e6 / steps as f64,
            t * 1e9 / nfe as f64
        );
    };
    let (steps, nfe) = (
        sol.stats.accepted_steps + sol.stats.rejected_steps,
        sol.stats.drift_evals,
    );
    row(
        "sdeflow Tsit5 forward",
        fwd2.median,
        steps,
        nfe,
        max_abs_diff(&sol.ys, &exact.ys),
    );
    row(
        "diffsol tsit45 forward",
        dfwd.median,
        dsteps,
        devals,
        max_abs_diff(&dys, &exact.ys),
    );
    println!("forward / diffsol time : {fwd_ratio:.2} (goal <= 1)");
    println!("forward solve          : {:10.2} µs", fwd.median * 1e6);
    println!(
        "discrete-adjoint grad  : {:10.2} µs  ({} VJPs)",
        bwd.median * 1e6,
        g.vjps
    );
    println!("gradient / forward time: {ratio:.2} (goal <= 2.5)");
    let adjoints = [
        ("interpolating", Adjoint::Interpolating),
        ("backsolve", Adjoint::Backsolve),
    ];
    compare_adjoints(budget, fwd.median, &g.dp, &adjoints, 2, |adjoint| {
        grad(&problem, Tsit5, adaptive, loss, adjoint).expect("grad")
    });
}

/// `B` copies of a neural ODE from different initial states: an
/// `Ensemble` of `B` independent solves (one thread) against one solve of
/// the `BatchedMlp` field (one matrix product per layer and evaluation,
/// one step-size sequence for the batch), at rtol = atol = 1e-6 and with
/// fixed steps, with their work and largest error; for the 2-50-2 network
/// of the other sections (tanh-bound: its layers are too thin for a
/// blocked product) and a 16-128-128-16 one (product-bound).
fn batch_section(budget: f64, mlp: &Mlp, params: &[f64]) {
    const B: usize = 64;
    batch_rows(budget, B, mlp, params);
    let wide = Mlp::new(&[16, 128, 128, 16], Activation::Tanh);
    batch_rows(budget, B, &wide, &wide.init_params(5, 1.0));
}

/// The rows of [`batch_section`] for `b` samples of `mlp`.
fn batch_rows(budget: f64, b: usize, mlp: &Mlp, params: &[f64]) {
    use sdeflow::ensemble::Ensemble;
    use sdeflow::nn::BatchedMlp;
    let n = mlp.input_dim();
    println!(
        "\n--- {b} initial states of a {} neural ODE, t in [0, 1], one thread ---",
        if n == 2 { "2-50-2" } else { "16-128-128-16" }
    );
    let starts: Vec<f64> = (0..n * b).map(|i| (0.7 * i as f64).sin()).collect();
    let single =
        Problem::ode_field(mlp.clone(), starts[..n].to_vec(), (0.0, 1.0)).params(params.to_vec());
    let batched = Problem::ode_field(BatchedMlp::new(mlp.clone(), b), starts.clone(), (0.0, 1.0))
        .params(params.to_vec());
    let exact = solve(
        &batched,
        Vern7,
        Options::default().tol(1e-13).save_at(SaveAt::T1),
    )
    .expect("reference");
    let cfg = pair_timer(budget);
    for (name, opts) in [
        (
            "rtol 1e-6",
            Options::default().tol(1e-6).save_at(SaveAt::T1),
        ),
        (
            "h = 0.05 ",
            Options::default().fixed_step(0.05).save_at(SaveAt::T1),
        ),
    ] {
        let ensemble = Ensemble::new(&single, Tsit5, opts.clone(), b)
            .serial()
            .map_problem(|i, _, p| p.clone().y0(starts[n * i..n * (i + 1)].to_vec()));
        let run = || {
            ensemble
                .run(|_, sol| sol.last().to_vec())
                .expect("ensemble")
        };
        let (t_ens, t_bat, ratio) = timing::measure_pair(
            run,
            || solve(&batched, Tsit5, &opts).expect("batched solve"),
            &cfg,
        );
        let ens = run();
        let ens_last: Vec<f64> = ens.outputs.iter().flat_map(|(_, y)| y.clone()).collect();
        let bat = solve(&batched, Tsit5, &opts).expect("batched solve");
        println!(
            "{name}: {b} solves {:8.1} µs ({} steps, {} evaluations, max error {:.1e}); \
             one batched solve {:8.1} µs ({} steps, {} batched evaluations, max error {:.1e}); \
             time ratio {ratio:.2}",
            t_ens.median * 1e6,
            ens.stats.accepted_steps + ens.stats.rejected_steps,
            ens.stats.drift_evals,
            max_abs_diff(&ens_last, exact.last()),
            t_bat.median * 1e6,
            bat.stats.accepted_steps + bat.stats.rejected_steps,
            bat.stats.drift_evals,
            max_abs_diff(bat.last(), exact.last()),
        );
    }
}

/// Gradients through the stiff solvers: Robertson on [0, 1e5], rtol 1e-8,
/// atol 1e-12, loss on y(1e5): the native `Esdirk34`, `TrBdf2` and `Bdf`
/// by the discrete adjoint (budget 32), `Bdf` also by the interpolating
/// adjoint (its backward solve native `Esdirk34`); time ratio and
/// evaluation counts.
fn stiff_section(budget: f64) {
    println!("\n--- stiff: Robertson (k1..k3), t in [0, 1e5], rtol 1e-8, atol 1e-12 ---");
    let p = Problem::ode_field(Generic(RobertsonP), vec![1.0, 0.0, 0.0], (0.0, 1e5))
        .params(ROBER_P.to_vec());
    let opts = Options::default()
        .rtol(1e-8)
        .atol(1e-12)
        .max_steps(1_000_000)
        .save_at(SaveAt::T1);
    let loss = |_ts: &[f64], ys: &[f64], g: &mut [f64]| {
        let w = [1.0, 1e4, 0.5];
        g.copy_from_slice(&w);
        ys.iter().zip(&w).map(|(y, w)| y * w).sum::<f64>()
    };
    let rows = StiffRows {
        p: &p,
        opts: &opts,
        loss: &loss,
        budget,
    };
    rows.row("Esdirk34 discrete", Esdirk34::default(), DISCRETE);
    rows.row("TrBdf2 discrete", TrBdf2::default(), DISCRETE);
    rows.row("Bdf discrete", Bdf::default(), DISCRETE);
    rows.row("Bdf interpolating", Bdf::default(), Adjoint::Interpolating);
}

/// The rows of the stiff section: Robertson's problem, options and loss,
/// and the timing budget.
struct StiffRows<'a> {
    p: &'a Problem<Generic<RobertsonP>>,
    opts: &'a Options,
    loss: &'a dyn Loss,
    budget: f64,
}

impl StiffRows<'_> {
    /// The forward solve by `solver` and the gradient by `adjoint`: their
    /// work, times and ratio, and `dL/dk`, labelled `name`.
    fn row<S: Differentiable<Generic<RobertsonP>, NoDiffusion, VirtualTree> + Copy>(
        &self,
        name: &str,
        solver: S,
        adjoint: Adjoint,
    ) {
        let StiffRows {
            p,
            opts,
            loss,
            budget,
        } = *self;
        let sol = solve(p, solver, opts).expect("forward");
        // report a failed gradient instead of ending the bench (TrBdf2's
        // discrete adjoint with default Newton options fails here: a step
        // recomputed from a checkpoint does not converge)
        let g = match grad(p, solver, opts, loss, adjoint) {
            Ok(g) => g,
            Err(e) => {
                println!("{name:<24} gradient failed: {e}");
                return;
            }
        };
        // gradient and forward in alternating batches: the ratio is the
        // median of per-pair ratios, robust to background load
        let cfg = timing::Timer {
            quick: budget < 0.1,
            budget: Duration::from_secs_f64(budget),
            batch: Duration::from_millis(20),
            min_batches: 7,
        };
        let (bwd, fwd, ratio) = timing::measure_pair(
            || grad(p, solver, opts, loss, adjoint).expect("gradient"),
            || solve(p, solver, opts).expect("forward"),
            &cfg,
        );
        let spread = bwd.spread.max(fwd.spread);
        let spread = if spread.is_finite() {
            format!(" (±{:.0}%)", 100.0 * spread)
        } else {
            String::new()
        };
        println!(
            "{name:<24} {} steps, forward {:.2} ms, gradient {:.2} ms{spread}, ratio {:.2}; dL/dk = {:.6e} {:.6e} {:.6e}",
            sol.stats.accepted_steps,
            fwd.median * 1e3,
            bwd.median * 1e3,
            ratio,
            g.dp[0],
            g.dp[1],
            g.dp[2]
        );
        println!(
            "{:<24} forward {} drift evals, {} Jacobians; backward {} drift evals, {} VJPs",
            "", sol.stats.drift_evals, sol.stats.jacobian_evals, g.backward_drift_evals, g.vjps
        );
    }
}

/// The same network on a long horizon (t ∈ [0, 30]), loss on the state at
/// t = 30: enough steps that a checkpoint budget of 32 recomputes states.
fn long_horizon(budget: f64, mlp: &Mlp, params: &[f64]) {
    let problem =
        Problem::ode_field(mlp.clone(), vec![0.5, -0.3], (0.0, 30.0)).params(params.to_vec());
    let loss = |_ts: &[f64], ys: &[f64], g: &mut [f64]| {
        g[0] = 1.0;
        g[1] = 1.0;
        ys[0] + ys[1]
    };
    let opts = Options::default().tol(1e-6).save_at(SaveAt::T1);
    let fwd = time(budget, || {
        black_box(solve(&problem, Tsit5, &opts).expect("solve"));
    });
    println!();
    let steps = solve(&problem, Tsit5, &opts)
        .expect("solve")
        .stats
        .accepted_steps;
    println!("same network on t in [0, 30] ({steps} steps), loss at t = 30");
    println!("forward solve          : {:10.2} µs", fwd * 1e6);
    let budgets = [
        ("store all", usize::MAX),
        ("budget 32", 32),
        ("budget 8", 8),
    ];
    let label = |name: &str| format!("discrete, {name:<10}   ");
    compare_budgets(budget, fwd, &budgets, (label, "stored states"), |adjoint| {
        grad(&problem, Tsit5, &opts, &loss, adjoint).expect("grad")
    });
}

/// The neural SDE: forward time and each SDE adjoint's time and accuracy.
fn sde_section(budget: f64) {
    use sdeflow::nn::Offset;
    let net = Mlp::new(&[2, 16, 2], Activation::Tanh);
    let k = net.num_params();
    // drift and diffusion: the same network on two halves of the parameters
    let [drift, diffusion] = [0, k].map(|offset| Offset {
        field: net.clone(),
        offset,
        len: k,
    });
    let mut params = net.init_params(3, 0.5);
    params.extend(net.init_params(4, 0.3));
    let problem = Problem::sde_field(
        drift,
        diffusion,
        Noise::Diagonal,
        vec![0.2, -0.1],
        (0.0, 1.0),
    )
    .params(params.clone())
    .interpretation(Interpretation::Stratonovich);
    let opts = Options::default()
        .fixed_step(0.01)
        .seed(3)
        .save_at(SaveAt::T1);
    let loss = |_ts: &[f64], ys: &[f64], g: &mut [f64]| {
        g[0] = 2.0 * ys[0];
        g[1] = 1.0;
        ys[0] * ys[0] + ys[1]
    };
    let fwd = time(budget, || {
        black_box(solve(&problem, ReversibleHeun, &opts).expect("solve"));
    });
    println!();
    println!(
        "neural SDE (2-16-2 drift and diffusion, {} parameters), reversible Heun, h = 0.01",
        2 * k
    );
    println!("forward solve          : {:10.2} µs", fwd * 1e6);
    // the exact gradient: the discrete adjoint storing every step
    let discrete = Adjoint::STORE_ALL;
    let exact = grad(&problem, ReversibleHeun, &opts, &loss, discrete).expect("discrete");
    let adjoints = [
        ("reversible", Adjoint::Reversible),
        ("discrete", discrete),
        ("stochastic", Adjoint::Stochastic),
    ];
    compare_adjoints(budget, fwd, &exact.dp, &adjoints, 3, |adjoint| {
        grad(&problem, ReversibleHeun, &opts, &loss, adjoint).expect("grad")
    });
    // reversible Heun's discrete adjoint with a budget of 16 (its carried
    // state is in the checkpoints), and that of another Stratonovich
    // solver (Euler–Heun), storing every step and with a budget of 16
    let budgets = [("store all", usize::MAX), ("budget 16", 16)];
    let label = |name: &str| format!("reversible Heun discrete, {name:<9}");
    compare_budgets(budget, fwd, &budgets[1..], (label, "records"), |adjoint| {
        grad(&problem, ReversibleHeun, &opts, &loss, adjoint).expect("grad")
    });
    let fwd_eh = time(budget, || {
        black_box(solve(&problem, EulerHeun, &opts).expect("solve"));
    });
    println!("Euler–Heun forward     : {:10.2} µs", fwd_eh * 1e6);
    let label = |name: &str| format!("Euler–Heun discrete, {name:<9}");
    compare_budgets(budget, fwd_eh, &budgets, (label, "records"), |adjoint| {
        grad(&problem, EulerHeun, &opts, &loss, adjoint).expect("grad")
    });
    // the exact gradient against central finite differences on the same path
    let loss_at = |p: &[f64]| {
        let sol = solve(&problem.clone().params(p.to_vec()), ReversibleHeun, &opts).expect("solve");
        let mut g = vec![0.0; 2];
        loss(&sol.ts, &sol.ys, &mut g)
    };
    let worst = worst_fd_difference(loss_at, &params, &exact.dp, 7, 1e-4);
    println!("worst relative difference of the exact gradient to central FD: {worst:.1e}");
}
