//! Reverse-SDE samplers report (issue #14, part 4). Plain `fn main` (no
//! criterion): `cargo bench --bench diffusion_sde` (release build); without
//! `--bench` (`cargo test --benches`) every case runs once, untimed.
//!
//! SDE-DPM-Solver++(2M) against reverse-SDE Euler–Maruyama, DDPM ancestral
//! and SDE-DPM-Solver-1 at NFE 20, 30 and 50 (uniform-λ grids of the VP
//! linear schedule from `T = 1` to `t_end = 1e-3`, one model evaluation per
//! step), on Gaussian mixtures with exact noise predictions
//! (`sdeflow::diffusion::GaussianMixture`) in `d = 2` and `d = 16`. Each
//! run samples `n` points at once (the batch in one state, prior noise
//! `N(0, I)`, i.i.d. increments from the `Increments` driver, fixed seeds)
//! and reports the distance of the sample mean to the exact marginal's,
//! `‖m̂ − m‖₂`, the relative covariance error `‖Ĉ − C‖_F/‖C‖_F`, the sliced
//! Wasserstein-2 distance to `n` exact mixture samples (50 directions), and
//! the time per sample (median over batches, `common/timing.rs`). The
//! Monte Carlo floor of each metric (two independent exact sample sets)
//! is printed above each table: differences below it are noise.

use std::time::Duration;

#[path = "common/timing.rs"]
mod timing;

use sdeflow::diffusion::*;
use sdeflow::noise::{Increments, NormalStream};
use sdeflow::prelude::*;
use timing::{Timer, measure};

const T: f64 = 1.0;
const T_END: f64 = 1e-3;
const PROJECTIONS: usize = 50;

type Boxed = Box<dyn Fn(f64, &[f64], &[f64], &mut [f64]) + Send + Sync>;
type Sde = DiffusionSde<Boxed, VpLinear, Increments>;

fn mixture(d: usize) -> GaussianMixture {
    if d == 2 {
        return GaussianMixture::new(
            &[0.3, 0.7],
            &[1.0, -0.5, -0.8, 0.6],
            &[0.05, 0.2, 0.3, 0.02],
        )
        .expect("valid mixture");
    }
    // four components on the corners of a tilted square in the first two
    // coordinates, spread along the others
    let k = 4;
    let (mut means, mut vars) = (vec![0.0; k * d], vec![0.0; k * d]);
    for c in 0..k {
        let a = std::f64::consts::FRAC_PI_2 * c as f64 + 0.3;
        for i in 0..d {
            means[c * d + i] = match i {
                0 => 1.5 * a.cos(),
                1 => 1.5 * a.sin(),
                _ => 0.4 * ((i + c) as f64).sin(),
            };
            vars[c * d + i] = 0.02 + 0.1 * ((i * (c + 1)) % 5) as f64 / 4.0;
        }
    }
    GaussianMixture::new(&[0.1, 0.2, 0.3, 0.4], &means, &vars).expect("valid mixture")
}

fn problem(gmm: &GaussianMixture, n: usize, seed: u64) -> Sde {
    let s = VpLinear::default();
    let g = gmm.clone();
    let model: Boxed = Box::new(move |t, x, _p, out| g.noise(&s, t, x, out));
    let mut z = NormalStream::new(seed);
    let x_t: Vec<f64> = (0..n * gmm.dim()).map(|_| z.next_normal()).collect();
    reverse_sde(model, Parametrisation::Noise, s, x_t, (T, T_END)).driver(Increments)
}

/// `(‖m̂ − m‖₂, ‖Ĉ − C‖_F/‖C‖_F)` of the samples `x` against `(m, c)`.
fn moment_errors(x: &[f64], d: usize, m: &[f64], c: &[f64]) -> (f64, f64) {
    let n = (x.len() / d) as f64;
    let mut mean = vec![0.0; d];
    for xj in x.chunks_exact(d) {
        for i in 0..d {
            mean[i] += xj[i] / n;
        }
    }
    let mut cov = vec![0.0; d * d];
    for xj in x.chunks_exact(d) {
        for i in 0..d {
            for k in 0..d {
                cov[i * d + k] += (xj[i] - mean[i]) * (xj[k] - mean[k]) / n;
            }
        }
    }
    let dm = m
        .iter()
        .zip(&mean)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    let cn = c.iter().map(|v| v * v).sum::<f64>().sqrt();
    let dc = c
        .iter()
        .zip(&cov)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        .sqrt()
        / cn;
    (dm, dc)
}

fn run<X: Method<Sde> + Copy>(
    name: &str,
    x: X,
    prob: &Sde,
    steps: usize,
    ctx: &Ctx,
    timer: &Timer,
) {
    let s = VpLinear::default();
    let opts = TimeGrid::UniformLambda
        .options(&s, T, T_END, steps)
        .expect("a uniform-λ grid")
        .seed(7);
    let sol = solve(prob, x, opts.clone()).expect("sampling");
    let out = sol.last();
    let (dm, dc) = moment_errors(out, ctx.d, &ctx.m, &ctx.c);
    let sw = sliced_wasserstein(out, &ctx.exact, ctx.d, PROJECTIONS, 1).expect("sliced W2");
    let t = measure(|| solve(prob, x, opts.clone()).expect("sampling"), timer);
    println!(
        "{name:<26} {:>4} {dm:>10.3e} {dc:>10.3e} {sw:>10.3e} {:>12.3}",
        sol.stats.drift_evals,
        1e6 * t.median / ctx.n as f64
    );
}

struct Ctx {
    d: usize,
    n: usize,
    m: Vec<f64>,
    c: Vec<f64>,
    exact: Vec<f64>,
}

fn main() {
    let timer = Timer::from_args(Duration::from_millis(300), 5);
    if timer.quick {
        println!(
            "diffusion_sde: test mode (no `--bench`): every case runs once, times are single runs"
        );
    }
    let s = VpLinear::default();
    for d in [2, 16] {
        let n = if timer.quick { 500 } else { 4000 };
        let gmm = mixture(d);
        let (m, c) = gmm.marginal_moments(&s, T_END);
        let exact = gmm.sample_marginal(&s, T_END, n, 11);
        let other = gmm.sample_marginal(&s, T_END, n, 12);
        let (fm, fc) = moment_errors(&other, d, &m, &c);
        let fsw = sliced_wasserstein(&other, &exact, d, PROJECTIONS, 1).expect("sliced W2");
        println!(
            "\n== reverse-SDE samplers, GMM d = {d}, n = {n} samples, VP linear, uniform λ, \
             t_end = {T_END} =="
        );
        println!(
            "Monte Carlo floor (exact samples): |m̂−m| {fm:.3e}, |Ĉ−C|/|C| {fc:.3e}, SW2 {fsw:.3e}"
        );
        println!(
            "{:<26} {:>4} {:>10} {:>10} {:>10} {:>12}",
            "sampler", "NFE", "|m̂−m|", "|Ĉ−C|/|C|", "SW2", "µs/sample"
        );
        let ctx = Ctx { d, n, m, c, exact };
        let prob = problem(&gmm, n, 3);
        for steps in [20, 30, 50] {
            run(
                "SDE-DPM-Solver++(2M)",
                SdeDpmSolverPP2M::default(),
                &prob,
                steps,
                &ctx,
                &timer,
            );
            let heun = SdeDpmSolverPP2M {
                solver_type: SdeSolverType::Heun,
            };
            run(
                "SDE-DPM-Solver++(2M) heun",
                heun,
                &prob,
                steps,
                &ctx,
                &timer,
            );
            run(
                "SDE-DPM-Solver-1",
                SdeDpmSolver1,
                &prob,
                steps,
                &ctx,
                &timer,
            );
            run(
                "DDPM ancestral",
                DdpmAncestral::default(),
                &prob,
                steps,
                &ctx,
                &timer,
            );
            run(
                "reverse-SDE EM",
                ReverseEulerMaruyama,
                &prob,
                steps,
                &ctx,
                &timer,
            );
        }
    }
}
