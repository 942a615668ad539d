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
//! cotangents, summed. Adam (written out) on the parameters.

use sdeflow::nn::{Activation, Mlp, Offset};
use sdeflow::prelude::*;

const THETA: f64 = 2.0;
const MU: f64 = 1.0;
const SIGMA: f64 = 0.5;
const PATHS: u64 = 64;
const TIMES: [f64; 5] = [0.2, 0.4, 0.6, 0.8, 1.0];

/// Adam with the usual defaults.
struct Adam {
    lr: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl Adam {
    fn step(&mut self, x: &mut [f64], g: &[f64]) {
        let (b1, b2, eps) = (0.9, 0.999, 1e-8);
        self.t += 1;
        for i in 0..x.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g[i] * g[i];
            let mh = self.m[i] / (1.0 - b1.powi(self.t));
            let vh = self.v[i] / (1.0 - b2.powi(self.t));
            x[i] -= self.lr * mh / (vh.sqrt() + eps);
        }
    }
}

/// Exact mean and variance of the target at `t`.
fn target(t: f64) -> (f64, f64) {
    let mean = MU * (1.0 - (-THETA * t).exp());
    let var = SIGMA * SIGMA * (1.0 - (-2.0 * THETA * t).exp()) / (2.0 * THETA);
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
    let mut adam = Adam {
        lr: 0.02,
        m: vec![0.0; 2 * k],
        v: vec![0.0; 2 * k],
        t: 0,
    };
    let mut first = None;
    let mut last = 0.0;
    for it in 0..300 {
        let problem = Problem::sde(
            drift.clone(),
            diffusion.clone(),
            Noise::Diagonal,
            vec![0.0],
            (0.0, 1.0),
        )
        .params(params.clone())
        .interpretation(Interpretation::Stratonovich);
        // forward: the batch and its moments
        let paths: Vec<Vec<f64>> = (0..PATHS)
            .map(|s| {
                solve(&problem, ReversibleHeun, opts.clone().seed(s))
                    .map(|sol| save_idx.iter().map(|&i| sol.y(i)[0]).collect())
            })
            .collect::<Result<_, _>>()?;
        let m = PATHS as f64;
        let mut loss = 0.0;
        // ∂L/∂x_{s,k} for each path s and time k
        let mut cot = vec![vec![0.0; TIMES.len()]; PATHS as usize];
        for (j, &t) in TIMES.iter().enumerate() {
            let mean = paths.iter().map(|p| p[j]).sum::<f64>() / m;
            let var = paths.iter().map(|p| (p[j] - mean).powi(2)).sum::<f64>() / (m - 1.0);
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
        adam.step(&mut params, &g);
    }
    let f = first.unwrap_or(last);
    println!(
        "moment loss {f:.3e} -> {last:.3e} ({:.0}x smaller)",
        f / last
    );
    // the fitted model on 2000 fresh paths
    let problem = Problem::sde(drift, diffusion, Noise::Diagonal, vec![0.0], (0.0, 1.0))
        .params(params)
        .interpretation(Interpretation::Stratonovich);
    let fresh: Vec<Vec<f64>> = (10_000..12_000u64)
        .map(|s| {
            solve(&problem, ReversibleHeun, opts.clone().seed(s))
                .map(|sol| save_idx.iter().map(|&i| sol.y(i)[0]).collect())
        })
        .collect::<Result<_, _>>()?;
    println!("   t   mean (fitted / target)   variance (fitted / target), 2000 fresh paths");
    for (j, &t) in TIMES.iter().enumerate() {
        let n = fresh.len() as f64;
        let mean = fresh.iter().map(|p| p[j]).sum::<f64>() / n;
        let var = fresh.iter().map(|p| (p[j] - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let (tm, tv) = target(t);
        println!("  {t:.1}   {mean:.4} / {tm:.4}          {var:.4} / {tv:.4}");
    }
    Ok(())
}
