//! A neural SDE on spiral data, trained with and without the SDE error-
//! estimate regularizers (`../shared/reference/regularizers.md`: ERNODE's
//! global R_E with SOSRI's error estimate, Pal et al. 2021; the local R_E
//! of Pal et al. 2023): `cargo run --release --example neural_sde_spiral`.
//!
//! Data: the damped spiral `z' = A z`, `A = [[-0.1, 1], [-1, -0.1]]`, from
//! `(2, 0)`, observed every 0.25 on [0, 5]; the task is to forecast one
//! time unit ahead: from each observation `z(t_k)` to `z(t_k + 1)` (17
//! pairs). Model: the linear-noise stable neural SDE of Oh, Lim, Kim (ICLR
//! 2024; `nn::StableSde::linear_noise`, 1 + 2 → 16 → 2 drift, 1 → 16 → 2
//! noise, tanh), Itô, solved on [0, 1] by SOSRI (adaptive, train tol 1e-2).
//! Loss: the squared error of the state at 1 on one Brownian path per pair,
//! averaged over the pairs (the regularizers' SDE forms take a loss on
//! `SaveAt::T1`); gradients by the discrete adjoint per pair. Adam, 300
//! iterations.
//!
//! Prints, per regularizer (none, global R_E, local R_E), the mean ± spread
//! (half the range) over 3 seeds of the prediction NFE (mean drift
//! evaluations of one SOSRI solve at tol 1e-3, over the pairs and 4 fresh
//! paths each), the MSE of those forecasts, the training time per iteration, the training NFE,
//! and the ratios of prediction NFE and time per iteration to the
//! unregularized run; writes `target/neural_sde_spiral.svg` (prediction NFE
//! against MSE).

use std::time::Instant;

use plotters::prelude::*;
use sdeflow::adjoint::regularize::local::local_gradient;
use sdeflow::adjoint::regularize::{Global, Local, RegTime, regularized_gradient};
use sdeflow::nn::{Activation, StableSde};
use sdeflow::prelude::*;
use sdeflow::train::{Adam, Optimizer};

const SEEDS: [u64; 3] = [1, 2, 3];
const REGS: [&str; 3] = ["none", "global R_E", "local R_E"];
const ITERS: usize = 300;
const TEST_PATHS: u64 = 4;
/// Observations per forecast horizon (1 time unit).
const AHEAD: usize = 4;

/// The spiral's states every 0.25 on [0, 5] (interleaved).
fn spiral() -> Result<Vec<f64>, SolveError> {
    let times: Vec<f64> = (1..=20).map(|i| 0.25 * i as f64).collect();
    let truth = Problem::ode(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| {
            dy[0] = -0.1 * y[0] + y[1];
            dy[1] = -y[0] - 0.1 * y[1];
        },
        vec![2.0, 0.0],
        (0.0, 5.0),
    );
    let opts = Options::default()
        .tol(1e-10)
        .save_at(SaveAt::Times(times.clone()));
    let mut ys = vec![2.0, 0.0];
    ys.extend(solve(&truth, Tsit5, &opts)?.ys);
    Ok(ys)
}

/// What one training run measured.
struct Outcome {
    nfe: f64,
    mse: f64,
    secs_per_iter: f64,
    train_nfe: f64,
}

/// Weights of global and local R_E, or those of `REG_WEIGHTS_SDE`
/// ("λ_global,λ_local"), for tuning.
fn weights() -> [f64; 2] {
    let parsed: Vec<f64> = std::env::var("REG_WEIGHTS_SDE")
        .unwrap_or_default()
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .collect();
    match parsed[..] {
        [a, b] => [a, b],
        _ => [5.0, 50.0],
    }
}

fn train(reg: usize, seed: u64, obs: &[f64]) -> Result<Outcome, Box<dyn std::error::Error>> {
    let model = StableSde::linear_noise(2, &[16], Activation::Tanh);
    let mut theta = model.init_params(seed, 0.5);
    let pairs = obs.len() / 2 - AHEAD;
    let problem = |p: &[f64], k: usize| {
        Problem::sde_field(
            model.clone(),
            model.clone(),
            Noise::Diagonal,
            obs[2 * k..2 * k + 2].to_vec(),
            (0.0, 1.0),
        )
        .params(p.to_vec())
        .interpretation(Interpretation::Ito)
    };
    let [w_global, w_local] = weights();
    let train_opts = Options::default().tol(1e-2).save_at(SaveAt::T1);
    let mut adam = Adam::new(0.01)?;
    let mut train_nfe = 0usize;
    let mut g = vec![0.0; theta.len()];
    // the local step's size: the mean accepted step of the last solve (the
    // initial-step heuristic's dt is too small for its error estimate to
    // steer anything, as in `regularized_node`)
    let mut mean_step = 0.1;
    let start = Instant::now();
    for it in 0..ITERS {
        g.iter_mut().for_each(|v| *v = 0.0);
        for k in 0..pairs {
            let target = &obs[2 * (k + AHEAD)..2 * (k + AHEAD) + 2];
            let sq = |_ts: &[f64], ys: &[f64], gy: &mut [f64]| {
                let (d0, d1) = (ys[0] - target[0], ys[1] - target[1]);
                gy[0] = d0;
                gy[1] = d1;
                0.5 * (d0 * d0 + d1 * d1)
            };
            let prob = problem(&theta, k);
            let path = (seed * 1_000_003 + it as u64) * 64 + k as u64;
            let opts = train_opts.clone().seed(path);
            let (dp, extra) = match reg {
                0 => (grad(&prob, Sosri, &opts, &sq, Adjoint::STORE_ALL)?, 0),
                1 => {
                    let r = regularized_gradient(
                        &prob,
                        &Sosri,
                        &opts,
                        &sq,
                        Adjoint::STORE_ALL,
                        &Global::error_estimate(w_global),
                    )?;
                    // each reversed step is retaken once to read its error
                    // estimate (SOSRI: 4 drift evaluations)
                    let retake = 4 * r.gradient.solution.stats.accepted_steps;
                    (r.gradient, retake)
                }
                _ => {
                    let reg = Local::error_estimate(w_local, RegTime::Unbiased { seed: path })
                        .with_dt(mean_step);
                    let r = local_gradient(&prob, Sosri, &opts, &sq, Adjoint::STORE_ALL, &reg)?;
                    let e = r.drift_evals;
                    (r.gradient, e)
                }
            };
            mean_step = 1.0 / dp.solution.stats.accepted_steps.max(1) as f64;
            train_nfe += dp.solution.stats.drift_evals + dp.backward_drift_evals + dp.vjps + extra;
            for (a, b) in g.iter_mut().zip(&dp.dp) {
                *a += b / pairs as f64;
            }
        }
        adam.step(&mut theta, &g)?;
    }
    let secs = start.elapsed().as_secs_f64() / ITERS as f64;
    // prediction: fresh paths at a tighter tolerance
    let pred = Options::default().tol(1e-3).save_at(SaveAt::T1);
    let (mut nfe, mut err) = (0.0, 0.0);
    let count = (pairs as u64 * TEST_PATHS) as f64;
    for k in 0..pairs {
        let target = &obs[2 * (k + AHEAD)..2 * (k + AHEAD) + 2];
        for s in 0..TEST_PATHS {
            let sol = solve(
                &problem(&theta, k),
                Sosri,
                pred.clone().seed(10_000_000 + 64 * s + k as u64),
            )?;
            nfe += sol.stats.drift_evals as f64 / count;
            let z = sol.y(sol.ts.len() - 1);
            err += ((z[0] - target[0]).powi(2) + (z[1] - target[1]).powi(2)) / count;
        }
    }
    Ok(Outcome {
        nfe,
        mse: err,
        secs_per_iter: secs,
        train_nfe: train_nfe as f64,
    })
}

/// Mean and half-range.
fn stat(xs: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = xs.clone().count() as f64;
    let mean = xs.clone().sum::<f64>() / n;
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |a, x| {
        (a.0.min(x), a.1.max(x))
    });
    (mean, 0.5 * (hi - lo))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let obs = spiral()?;
    println!(
        "== neural SDE (LNSDE) on the spiral: SOSRI, {ITERS} iterations × 17 \
         pairs, train tol 1e-2, predict tol 1e-3; weights {:?} ==",
        weights()
    );
    println!(
        "{:<11} | {:>15} | {:>19} | {:>12} | {:>10} | {:>9} | {:>10}",
        "regularizer", "predict NFE", "MSE", "ms / iter", "train NFE", "NFE ratio", "time ratio"
    );
    let mut points = Vec::new();
    let (mut base_nfe, mut base_ms) = (0.0, 0.0);
    for (r, name) in REGS.iter().enumerate() {
        let runs: Vec<Outcome> = SEEDS
            .iter()
            .map(|&s| train(r, s, &obs))
            .collect::<Result<_, _>>()?;
        let nfe = stat(runs.iter().map(|o| o.nfe));
        let mse = stat(runs.iter().map(|o| o.mse));
        let ms = stat(runs.iter().map(|o| 1e3 * o.secs_per_iter));
        let tn = stat(runs.iter().map(|o| o.train_nfe));
        if r == 0 {
            (base_nfe, base_ms) = (nfe.0, ms.0);
        }
        println!(
            "{name:<11} | {:>7.1} ± {:<5.1} | {:>8.2e} ± {:<8.1e} | {:>5.2} ± {:<4.2} | {:>10.0} | {:>9.2} | {:>10.2}",
            nfe.0,
            nfe.1,
            mse.0,
            mse.1,
            ms.0,
            ms.1,
            tn.0,
            nfe.0 / base_nfe,
            ms.0 / base_ms
        );
        points.extend(runs.iter().map(|o| (r, o.nfe, o.mse)));
    }
    plot(&points, "target/neural_sde_spiral.svg")?;
    println!("\nwrote target/neural_sde_spiral.svg");
    Ok(())
}

/// Prediction NFE against MSE, one colour per regularizer.
fn plot(points: &[(usize, f64, f64)], path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (640, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (x0, x1) = points
        .iter()
        .fold((f64::INFINITY, 0.0f64), |a, p| (a.0.min(p.1), a.1.max(p.1)));
    let (y0, y1) = points
        .iter()
        .fold((f64::INFINITY, 0.0f64), |a, p| (a.0.min(p.2), a.1.max(p.2)));
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "neural SDE spiral: prediction NFE vs MSE",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.9 * x0..1.1 * x1, 0.9 * y0..1.1 * y1)?;
    chart
        .configure_mesh()
        .x_desc("prediction NFE (mean over paths)")
        .y_desc("MSE")
        .draw()?;
    let colors = [BLACK, RED, GREEN];
    for (r, name) in REGS.iter().enumerate() {
        let c = colors[r];
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| p.0 == r)
                    .map(|p| Circle::new((p.1, p.2), 4, c.filled())),
            )?
            .label(*name)
            .legend(move |(x, y)| Circle::new((x, y), 4, c.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
