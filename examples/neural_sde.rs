//! Fit a small neural SDE to the law of a known SDE by matching moments:
//! `cargo run --release --example neural_sde`.
//!
//! Target: the Ornstein–Uhlenbeck process `dX = θ(μ − X) dt + σ dW`
//! (θ = 2, μ = 1, σ = 0.5, X0 = 0), whose mean and variance are known in
//! closed form. Model: `dX = f_φ(X) dt + g_ψ(X) ∘ dW` with two small MLPs
//! (1-16-1, tanh) sharing one parameter vector. Loss: squared errors of the
//! batch mean and variance at 5 times, over 64 Brownian paths. Gradients:
//! reversible Heun's exact adjoint (`grad`, `Adjoint::Reversible`, memory
//! independent of the number of steps), per path with the batch-moment
//! cotangents, summed. Adam (`sdeflow::train::Adam`) on the
//! parameters.

use sdeflow::nn::{Activation, Mlp, Offset};
use sdeflow::prelude::*;

const THETA: f64 = 2.0;
const MU: f64 = 1.0;
const SIGMA: f64 = 0.5;
const PATHS: u64 = 64;
const TIMES: [f64; 5] = [0.2, 0.4, 0.6, 0.8, 1.0];

use sdeflow::train::{Adam, Optimizer};

/// Exact mean and variance of the target at `t`.
fn target(t: f64) -> (f64, f64) {
    let mean = MU * (1.0 - (-THETA * t).exp());
    let var = SIGMA * SIGMA * (1.0 - (-2.0 * THETA * t).exp()) / (2.0 * THETA);
    (mean, var)
}

/// Sample mean and (unbiased) variance of `X` at save time `j` over paths.
fn moments(paths: &[Vec<f64>], j: usize) -> (f64, f64) {
    let n = paths.len() as f64;
    let mean = paths.iter().map(|p| p[j]).sum::<f64>() / n;
    let var = paths.iter().map(|p| (p[j] - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let net = Mlp::new(&[1, 16, 1], Activation::Tanh);
    let k = net.num_params();
    let drift = Offset {
        field: net.clone(),
        offset: 0,
        len: k,
    };
    let diffusion = Offset {
        field: net.clone(),
        offset: k,
        len: k,
    };
    let mut params = net.init_params(1, 0.5);
    params.extend(net.init_params(2, 0.5));
    let opts = Options::default().fixed_step(0.02).save_at(SaveAt::Steps);
    let save_idx: Vec<usize> = TIMES.iter().map(|t| (t / 0.02).round() as usize).collect();
    let mut adam = Adam::new(0.02)?;
    // the model with parameters `params`
    let model = |params: Vec<f64>| {
        Problem::sde_field(
            drift.clone(),
            diffusion.clone(),
            Noise::Diagonal,
            vec![0.0],
            (0.0, 1.0),
        )
        .params(params)
        .interpretation(Interpretation::Stratonovich)
    };
    // X at the save times on the paths of `seeds`
    let paths_of = |problem: &Problem<_, _>, seeds: std::ops::Range<u64>| {
        seeds
            .map(|s| {
                solve(problem, ReversibleHeun, opts.clone().seed(s))
                    .map(|sol| save_idx.iter().map(|&i| sol.y(i)[0]).collect())
            })
            .collect::<Result<Vec<Vec<f64>>, _>>()
    };
    let mut first = None;
    let mut last = 0.0;
    for it in 0..300 {
        let problem = model(params.clone());
        // forward: the batch and its moments
        let paths = paths_of(&problem, 0..PATHS)?;
        let m = PATHS as f64;
        let mut loss = 0.0;
        // ∂L/∂x_{s,k} for each path s and time k
        let mut cot = vec![vec![0.0; TIMES.len()]; PATHS as usize];
        for (j, &t) in TIMES.iter().enumerate() {
            let (mean, var) = moments(&paths, j);
            let (tm, tv) = target(t);
            loss += (mean - tm).powi(2) + (var - tv).powi(2);
            for (s, p) in paths.iter().enumerate() {
                cot[s][j] =
                    2.0 * (mean - tm) / m + 2.0 * (var - tv) * 2.0 * (p[j] - mean) / (m - 1.0);
            }
        }
        first.get_or_insert(loss);
        last = loss;
        // backward: per path with its cotangents, summed
        let mut g = vec![0.0; 2 * k];
        for s in 0..PATHS {
            let c = &cot[s as usize];
            let per_path = |_ts: &[f64], ys: &[f64], gy: &mut [f64]| {
                let mut v = 0.0;
                for (j, &i) in save_idx.iter().enumerate() {
                    gy[i] = c[j];
                    v += c[j] * ys[i];
                }
                v
            };
            let gr = grad(
                &problem,
                ReversibleHeun,
                opts.clone().seed(s),
                &per_path,
                Adjoint::Reversible,
            )?;
            for (a, b) in g.iter_mut().zip(&gr.dp) {
                *a += b;
            }
        }
        if it % 50 == 0 {
            println!("iteration {it:3}: moment loss {loss:.3e}");
        }
        adam.step(&mut params, &g)?;
    }
    let f = first.unwrap_or(last);
    println!(
        "moment loss {f:.3e} -> {last:.3e} ({:.0}x smaller)",
        f / last
    );
    // the fitted model on 2000 fresh paths
    let fresh = paths_of(&model(params), 10_000..12_000)?;
    println!("   t   mean (fitted / target)   variance (fitted / target), 2000 fresh paths");
    for (j, &t) in TIMES.iter().enumerate() {
        let (mean, var) = moments(&fresh, j);
        let (tm, tv) = target(t);
        println!("  {t:.1}   {mean:.4} / {tm:.4}          {var:.4} / {tv:.4}");
    }
    Ok(())
}
