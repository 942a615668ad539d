//! Speed, accuracy and stability report of sdeflow's SDE solvers. Plain
//! `fn main` (no criterion).
//!
//! Run with `cargo bench --bench sde_report` (release build, about 30 s on
//! two cores). It prints the tables below and writes them as CSV to
//! `target/bench-report/sde_report_{em,work_precision,stability}.csv`.
//!
//! # (a) Euler–Maruyama against a hand-written loop
//!
//! Geometric Brownian motion in Itô form, `dX = a X dt + b X dW`, `a = 1`,
//! `b = 0.5`, `X0 = 1`, scalar noise, 1000 fixed steps of `h = 1e-3` over
//! `[0, 1]`, only `X_T` kept. sdeflow is one
//! `solve(&p, EulerMaruyama, Options::default().fixed_step(1e-3).seed(s).save_at(SaveAt::T1))`
//! on a problem driven by `Increments` (fresh increments from Xoshiro256++
//! with ziggurat normals); the hand loop — the floor — is
//! `X += h·aX; X += (√h·z)·bX` with `z` drawn by `rand_distr::StandardNormal`
//! (ziggurat) from `rand::rngs::Xoshiro256PlusPlus::seed_from_u64(s)`, the
//! fastest well-kept pieces, which are also what `Increments` draws from:
//! the same arithmetic on the same random numbers. Before timing, both are checked to agree on `X_T` (to
//! 1e-12 relative), and a second hand loop that steps on sdeflow's time
//! grid (`h_k = t_{k+1} − t_k`, `t_k = k·h`, one `√h_k` per step) is
//! checked to be bit-identical to sdeflow. Every solve uses the next seed.
//! Time per path-step is the median over batches of ~2 ms; the two main
//! variants are timed in alternating batches and their ratio is the median
//! of the per-pair ratios, so that load from other processes affects both.
//! The summary line is
//! `EM vs hand-written loop: ratio R (sdeflow a ns/step, hand b ns/step)`
//! (goal: `R ≤ 1.3`). Rows for the grid-exact hand loop and for EM on a
//! Brownian tree show what the time grid and the tree cost. A second table
//! times the normal generators alone (ns per normal): the counter-based
//! Box–Muller transform sdeflow used before (a copy kept here for the
//! comparison), the counter-based ziggurat that the Brownian tree, the
//! Brownian interval and `NormalStream` use now, and the ziggurat over
//! Xoshiro256++ of `Increments` and the floor.
//!
//! Where the time goes (callgrind instruction counts per path-step, this
//! problem): the hand loop is 52 — a handful of multiply-adds around one
//! Xoshiro256++ word and a ziggurat table look-up (about 30 of the 52) — so
//! every instruction sdeflow adds shows. sdeflow's whole solve is 115
//! (189 before the `Increments` draw was inlined and scalar states ran on
//! arrays): fixed steps run the one loop specialised by generics (the step
//! count known up front, no controller, two steps per iteration so that
//! the state buffers trade places without a swap); with one Brownian
//! motion the increment is a one-element array, and with a scalar state the
//! state and the step's result are too, so their lengths are constants of
//! the loop (no bounds checks, the loops over the state collapse); the
//! `Increments` draw (the ziggurat over Xoshiro256++) is inlined into the
//! loop, its generator state in registers. `√(t_{k+1} − t_k)` is computed
//! every step: caching it mispredicted, as the rounding of the grid makes
//! consecutive steps differ in their last bits (and keeping the grid
//! `t_k = t0 + k·h` keeps the results bit-identical). What remains (about
//! 80 instructions per step besides the normal) is the generic step itself
//! (the noise-type dispatch, the first-step flag, evaluation counting),
//! the per-step finiteness check and budget test, and spills: the
//! ziggurat's rare rejections call `exp` and `ln`, and every float live
//! across those calls is kept in memory, which also puts a store and a
//! reload on the state's dependency chain from one step to the next. A
//! solve's fixed cost (validation, probes, allocation) is about 5
//! instructions per step here.
//!
//! # (b) Work–precision
//!
//! Strong error `E|X_N − X(T)|`, the mean over 200 Brownian paths (seeds
//! `0..200`) of the distance of the solver's `X_T` to the exact solution on
//! the same path, against the work: drift plus diffusion evaluations per
//! path (`Stats::field_evals`, including the loop's two initial probes and,
//! for adaptive runs, the evaluations of rejected steps). Every solve uses
//! the default driver (`VirtualTree`), so for a given seed every step size (and every
//! adaptive step sequence) sees the same path, and `W_T` for the exact
//! solution is read from `BrownianTree::new((0, 1), 1, seed)` — the tree the
//! loop builds. `±` is the standard error of the mean over the paths.
//!
//! * GBM, Itô (`X_T = X0 exp((a − b²/2) T + b W_T)`): EulerMaruyama,
//!   Milstein (derivative-free), Sriw1, Sosri;
//! * the same GBM read as Stratonovich (`X_T = X0 exp(a T + b W_T)`):
//!   EulerHeun, Milstein (derivative-free), ReversibleHeun;
//! * additive noise `dX = (β/√(1+t) − X/(2(1+t))) dt + αβ/√(1+t) dW`,
//!   `X_T = X0/√(1+T) + β(T + αW_T)/√(1+T)`, `α = 0.5`, `β = 0.8`, `X0 = 1`:
//!   Sra1, Sra3, EulerMaruyama.
//!
//! Fixed steps `h = 2^-3 … 2^-9`; the adaptive solvers (Sriw1, Sosri, Sra1,
//! Sra3, ReversibleHeun) also at rtol = atol ∈ {1e-2, …, 1e-5}. The slope
//! table fits `log err = p log h + c` by least squares (the measured strong
//! order `p`) over all seven step sizes and over the finest four, and, for
//! adaptive runs, `log err = q log(evals) + c` (efficiency: `q ≈ −p` for a
//! method of order `p` at fixed steps).
//!
//! How to read it: compare rows at equal `evals/path`. On these linear
//! problems some solvers exceed their general order (the SRA methods show 2
//! on the linear-drift additive problem; reversible Heun shows 1 with scalar,
//! hence commutative, noise), and derivative-free Stratonovich Milstein is
//! EulerHeun exactly (its central difference is exact for a linear
//! diffusion: same errors, more evaluations). GBM has no stiffness and no
//! changing time scale, so adaptive stepping cannot beat fixed steps here;
//! its rows show the price of the error control (rejections, evaluations).
//!
//! # (c) Mean-square stability
//!
//! Linear test equation `dX = λX dt + μX dW` (Itô, scalar noise), which is
//! mean-square stable iff `2λ + μ² < 0`; the Stratonovich solvers get the
//! same dynamics as `dX = (λ − μ²/2) X dt + μX ∘ dW`. For each `(λ, μ)` and
//! fixed-step solver the table gives the largest step `h` for which the
//! scheme is mean-square stable (`E[X_n²] → 0`), by a scan of a log grid
//! (4 points per decade, `1e-4 … 10`) up to the first unstable point, then
//! bisection in `log h`. Pairs: `(−1, 1)`, `(−4, 2)`, `(−10, 3)`, `(−50, 5)`
//! (noise-dominated to mixed) and `(−10, 0.1)` (drift-dominated, where
//! SOSRI's stability-optimised drift stages show). Three columns:
//!
//! * `analytic`: closed forms, `E[X_{n+1}²] = ρ(h) E[X_n²]` with
//!   `ρ = (1 + λh)² + μ²h` (EulerMaruyama),
//!   `(1 + λh)² + μ²h + μ⁴h²/2` (EulerHeun, and exact-derivative Milstein),
//!   `(1 + λh)² + μ²h + μ²(μ + λ√h)² h²/2` (the derivative-free Milstein
//!   used here); ReversibleHeun is never mean-square stable: on this
//!   equation its step is `(y, ŷ) ↦ A (y, ŷ)` with
//!   `A = [[1 + c, c²/2], [2, c − 1]]`, `c = λ_S h + μΔW`, `det A = −1`, so
//!   every product `Π` of steps has `|det Π| = 1`, `‖Π‖_F² ≥ 2`, and the
//!   second moments cannot decay (without noise its parasitic eigenvalue is
//!   `c − √(1 + c²)`, of modulus `> 1` for every `λ_S h < 0`). Lines after
//!   the table give its second-moment radius `ρ(h) > 1` at a few steps.
//! * `2nd moment`: the exact mean-square amplification of the solver's own
//!   step. Each scheme is linear in `X` with coefficients polynomial (degree
//!   ≤ 3) in the step's normals `(ΔW/√h, H/√(h/12))`, so `E[R²]` (for
//!   ReversibleHeun the spectral radius of the 3×3 map
//!   `E[XXᵀ] ↦ E[A XXᵀ Aᵀ]` on `(y, ŷ)`) is computed exactly by
//!   Gauss–Hermite quadrature over the normals, evaluating the step through
//!   the public `Solver` trait — no Monte Carlo noise. It reproduces the
//!   analytic column where one exists.
//! * `MC N=200`: the direct Monte Carlo criterion: `E[X_N²] < E[X_0²] = 1`
//!   at `N = 200` steps, estimated over 2000 paths
//!   (driver `Increments`); a solve that overflows (sdeflow
//!   returns `NonFiniteState`) counts as unstable. `X_N²` is a product
//!   of 200 i.i.d. factors, heavy-tailed, so its sample mean is dominated by
//!   paths that 2000 samples rarely contain: near the true limit the estimate
//!   is far below `E[X_N²]`, and this column over-estimates the stable step,
//!   by a factor that grows with `μ²/|λ|` (`MC/exact`). It is the naive
//!   measurement, shown as a warning; trust the other two. For
//!   ReversibleHeun its finite value only says that the parasitic mode,
//!   which starts tiny, has not yet surfaced after 200 steps.
//!
//! # Test mode
//!
//! Like criterion, the report runs a tiny version (a few paths, single timing
//! runs, no CSV) when cargo does not pass `--bench`, e.g. under
//! `cargo test --benches`, or with `--test` or `--quick`. Other arguments
//! are ignored.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nalgebra::{DMatrix, Matrix3};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand_distr::{Distribution, StandardNormal};
use sdeflow::noise::NormalStream;
use sdeflow::noise::{BrownianPath, BrownianTree};
use sdeflow::prelude::*;
use sdeflow::solver::{Fields, Increment, StepArgs, StepAt, StepNoise, StepOut};

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "common/em.rs"]
mod em;
#[path = "common/timing.rs"]
mod timing;
use common::gbm;
use em::{A, B, H as EM_H, STEPS as EM_STEPS, T, X0, em_difference, hand_em, sdeflow_em};
use timing::{Timer, Timing};

/// How hard to work.
#[derive(Debug, Clone, Copy)]
struct Config {
    /// How to time (in test mode: a few paths, single timing runs).
    timer: Timer,
    /// Brownian paths per strong-error estimate.
    paths: usize,
    /// Paths of the Monte Carlo stability estimate.
    mc_paths: usize,
    /// Steps of the Monte Carlo stability estimate.
    mc_steps: usize,
    /// Bisection steps of the Monte Carlo stability search.
    mc_bisect: usize,
}

// ---------------------------------------------------------------------------
// Problems
// ---------------------------------------------------------------------------

/// Additive-noise problem: `α`.
const ALPHA: f64 = 0.5;
/// Additive-noise problem: `β`.
const BETA: f64 = 0.8;

/// `dX = (β/√(1+t) − X/(2(1+t))) dt + αβ/√(1+t) dW` (additive noise).
fn additive() -> Problem<impl Drift + Sync, impl Diffusion + Sync> {
    Problem::sde(
        |t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| {
            dy[0] = BETA / (1.0 + t).sqrt() - y[0] / (2.0 * (1.0 + t));
        },
        |t: f64, _y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = ALPHA * BETA / (1.0 + t).sqrt(),
        Noise::Additive,
        vec![X0],
        (0.0, T),
    )
}

/// `W_T` of the path a `VirtualTree`-driven solve with this seed sees.
fn w_end(seed: u64) -> f64 {
    let mut tree = BrownianTree::new((0.0, T), 1, seed);
    let mut w = [0.0];
    tree.increment(0.0, T, &mut w);
    w[0]
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/// `f(0), …, f(n−1)` computed on all available cores (in order).
fn par_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(n.max(1));
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let chunk = n.div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                s.spawn(move || {
                    (k * chunk..((k + 1) * chunk).min(n))
                        .map(f)
                        .collect::<Vec<T>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a worker thread panicked"))
            .collect::<Vec<T>>()
    })
}

/// Least-squares slope of `log y` against `log x`.
fn fitted_slope(xs: &[f64], ys: &[f64]) -> f64 {
    let lx: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
    let ly: Vec<f64> = ys.iter().map(|y| y.ln()).collect();
    let n = lx.len() as f64;
    let (mx, my) = (lx.iter().sum::<f64>() / n, ly.iter().sum::<f64>() / n);
    let sxy: f64 = lx.iter().zip(&ly).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = lx.iter().map(|x| (x - mx).powi(2)).sum();
    sxy / sxx
}

fn fmt_opt(x: Option<f64>, prec: usize) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{v:.prec$}"))
}

fn write_csv(name: &str, content: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-report");
    let path = dir.join(name);
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, content)) {
        Ok(()) => println!("CSV written to {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}

// ---------------------------------------------------------------------------
// (a) Timing: Euler–Maruyama against a hand-written loop
// ---------------------------------------------------------------------------

/// [`timing::measure`] under this report's configuration.
fn measure<R>(f: impl FnMut() -> R, cfg: &Config) -> Timing {
    timing::measure(f, &cfg.timer)
}

/// [`timing::measure_pair`] under this report's configuration.
fn measure_pair<R1, R2>(
    a: impl FnMut() -> R1,
    b: impl FnMut() -> R2,
    cfg: &Config,
) -> (Timing, Timing, f64) {
    timing::measure_pair(a, b, &cfg.timer)
}

/// The same scheme on sdeflow's fixed-step time grid: `t_k = t0 + k·h`
/// (the last step ends exactly at `t1`), step `t_{k+1} − t_k`, increment
/// `√(t_{k+1} − t_k) · z`. Bit-identical to sdeflow's solve.
#[inline(never)]
fn hand_em_grid(a: f64, b: f64, x0: f64, t1: f64, h: f64, seed: u64) -> f64 {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let (t0, span) = (0.0, t1);
    let (mut x, mut t, mut k) = (x0, t0, 0usize);
    loop {
        let last = (k + 1) as f64 * h >= span * (1.0 - 1e-12);
        let t_next = if last { t1 } else { t0 + (k + 1) as f64 * h };
        let hk = t_next - t;
        let z: f64 = StandardNormal.sample(&mut rng);
        let dw = hk.abs().sqrt() * hk.signum() * z;
        let f = a * x;
        let g = b * x;
        x += hk * f;
        x += dw * g;
        t = t_next;
        k += 1;
        if last {
            return x;
        }
    }
}

/// `f` on the seeds 1, 2, 3, … in turn, one per call.
fn next_seed<R>(mut f: impl FnMut(u64) -> R) -> impl FnMut() -> R {
    let mut seed = 0u64;
    move || {
        seed = seed.wrapping_add(1);
        f(seed)
    }
}

/// Result of part (a).
struct EmReport {
    /// `(label, timing per solve)` of every variant.
    rows: Vec<(&'static str, Timing)>,
    /// Paired ratio sdeflow / hand loop.
    ratio: f64,
    /// The summary line.
    summary: String,
    /// `(label, timing per NORMALS normals)` of each normal generator.
    normals: Vec<(&'static str, Timing)>,
}

fn em_vs_hand(cfg: &Config) -> EmReport {
    let (a, b) = black_box((A, B));
    let p_tree = gbm(a, b);
    let p = gbm(a, b).driver(Increments);
    // correctness first: same scheme, same normals
    let (mut worst, mut worst_grid) = (0.0f64, 0.0f64);
    for seed in 0..16u64 {
        let ours = sdeflow_em(&p, seed);
        let hand = hand_em(a, b, X0, EM_H, EM_STEPS, seed);
        let grid = hand_em_grid(a, b, X0, T, EM_H, seed);
        worst = worst.max(em_difference(ours, hand, seed));
        worst_grid = worst_grid.max((ours - grid).abs() / grid.abs());
    }
    println!(
        "check: sdeflow EM vs hand loop: X_T agree to {worst:.1e} (relative, 16 seeds); vs the \
         hand loop on sdeflow's time grid: {}",
        if worst_grid == 0.0 {
            "bit-identical".to_string()
        } else {
            format!("max relative difference {worst_grid:.1e} (expected bit-identical)")
        }
    );

    let (ours, hand, ratio) = measure_pair(
        next_seed(|seed| sdeflow_em(black_box(&p), seed)),
        next_seed(|seed| {
            let (a, b) = black_box((a, b));
            hand_em(a, b, X0, EM_H, EM_STEPS, seed)
        }),
        cfg,
    );
    let grid = measure(
        next_seed(|seed| {
            let (a, b) = black_box((a, b));
            hand_em_grid(a, b, X0, T, EM_H, seed)
        }),
        cfg,
    );
    let tree = measure(next_seed(|seed| sdeflow_em(black_box(&p_tree), seed)), cfg);
    let per_step = |t: Timing| t.median * 1e9 / EM_STEPS as f64;
    let summary = format!(
        "EM vs hand-written loop: ratio {ratio:.2} (sdeflow {:.2} ns/step, hand {:.2} ns/step)",
        per_step(ours),
        per_step(hand)
    );
    let normals = vec![
        (
            "Box–Muller, counter-based (before)",
            measure(next_seed(box_muller_normals), cfg),
        ),
        (
            "ziggurat, counter-based (tree, NormalStream)",
            measure(next_seed(counter_ziggurat_normals), cfg),
        ),
        (
            "ziggurat, Xoshiro256++ (Increments, floor)",
            measure(next_seed(xoshiro_ziggurat_normals), cfg),
        ),
    ];
    EmReport {
        normals,
        rows: vec![
            ("floor: hand loop (ziggurat, Xoshiro256++)", hand),
            ("hand loop on sdeflow's time grid", grid),
            ("sdeflow EulerMaruyama (Auto: increments)", ours),
            ("sdeflow EulerMaruyama (Brownian tree)", tree),
        ],
        ratio,
        summary,
    }
}

fn print_em(r: &EmReport) {
    println!(
        "{:<44} {:>10} {:>8} {:>10}",
        "variant", "ns/step", "±", "runs"
    );
    for (label, t) in &r.rows {
        let spread = if t.spread.is_finite() {
            format!("{:.1}%", 100.0 * t.spread)
        } else {
            "-".into()
        };
        println!(
            "{label:<44} {:>10.2} {spread:>8} {:>10}",
            t.median * 1e9 / EM_STEPS as f64,
            t.runs
        );
    }
    println!("{}", r.summary);
    println!(
        "goal: ratio ≤ 1.30; measured {:.2} ({})",
        r.ratio,
        if r.ratio <= 1.3 {
            "within the goal"
        } else {
            "not yet within the goal"
        }
    );
    println!();
    println!("{:<44} {:>10} {:>8}", "normal generator", "ns/normal", "±");
    for (label, t) in &r.normals {
        println!(
            "{label:<44} {:>10.2} {:>7.1}%",
            t.median * 1e9 / NORMALS as f64,
            100.0 * t.spread
        );
    }
}

/// Normals per timed call of the generator table.
const NORMALS: usize = 1000;

/// The counter-based Box–Muller generator sdeflow used before the ziggurat
/// (SplitMix64 uniforms of `(key, k)`, a pair of normals per `ln`, `sqrt`,
/// `sin_cos`), kept for the generator table: `NORMALS` normals summed.
#[inline(never)]
fn box_muller_normals(key: u64) -> f64 {
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let uniform = |k: u64| {
        let bits = mix(key.wrapping_add(k.wrapping_mul(GOLDEN))) >> 11;
        (bits as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    };
    let mut sum = 0.0;
    for k in 0..(NORMALS / 2) as u64 {
        let r = (-2.0 * uniform(2 * k).ln()).sqrt();
        let (sn, cs) = (std::f64::consts::TAU * uniform(2 * k + 1)).sin_cos();
        sum += r * cs + r * sn;
    }
    sum
}

/// `NORMALS` counter-based ziggurat normals (sdeflow's `NormalStream`, the
/// generator of the Brownian tree's nodes), summed.
#[inline(never)]
fn counter_ziggurat_normals(seed: u64) -> f64 {
    let mut s = NormalStream::new(seed);
    (0..NORMALS).map(|_| s.next_normal()).sum()
}

/// `NORMALS` ziggurat normals over Xoshiro256++ (`Increments`, the floor),
/// summed.
#[inline(never)]
fn xoshiro_ziggurat_normals(seed: u64) -> f64 {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..NORMALS)
        .map(|_| -> f64 { StandardNormal.sample(&mut rng) })
        .sum()
}

fn em_csv(r: &EmReport) -> String {
    let mut s = String::from("variant,ns_per_step,rel_half_iqr,timed_solves,steps_per_solve\n");
    for (label, t) in &r.rows {
        let _ = writeln!(
            s,
            "\"{label}\",{:.4},{:.4},{},{EM_STEPS}",
            t.median * 1e9 / EM_STEPS as f64,
            t.spread,
            t.runs
        );
    }
    let _ = writeln!(s, "\"ratio sdeflow/hand (paired)\",{:.4},,,", r.ratio);
    s
}

// ---------------------------------------------------------------------------
// (b) Work–precision
// ---------------------------------------------------------------------------

/// Step sizes `2^-k` of the fixed-step runs.
const FIXED_EXPONENTS: [i32; 7] = [3, 4, 5, 6, 7, 8, 9];
/// Tolerances of the adaptive runs.
const TOLS: [f64; 4] = [1e-2, 1e-3, 1e-4, 1e-5];

/// Fixed step `2^-k` or adaptive at a tolerance.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Fixed(i32),
    Adaptive(f64),
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Fixed(k) => write!(f, "h=2^-{k}"),
            Mode::Adaptive(tol) => write!(f, "tol={tol:.0e}"),
        }
    }
}

/// One line of the work–precision table (means over the paths).
#[derive(Debug, Clone)]
struct WpRow {
    problem: &'static str,
    solver: &'static str,
    mode: Mode,
    evals: f64,
    drift: f64,
    diffusion: f64,
    accepted: f64,
    rejected: f64,
    err: f64,
    err_se: f64,
    paths: usize,
    failures: usize,
}

/// Runs `solver` on every path with `opts` (seed set per path) and
/// averages the error against `exact[seed]` and the work.
fn wp_row<F, G, S>(
    problem: (&'static str, &Problem<F, G>),
    solver: (&'static str, S),
    mode: Mode,
    exact: &[f64],
) -> WpRow
where
    F: Drift + Sync,
    G: Diffusion + Sync,
    S: Solver<Problem<F, G>> + Copy + Sync,
{
    let opts = match mode {
        Mode::Fixed(k) => Options::default().fixed_step(2f64.powi(-k)),
        Mode::Adaptive(tol) => Options::default().tol(tol),
    }
    .save_at(SaveAt::T1);
    let (name, p) = problem;
    let results = par_map(exact.len(), |i| {
        let sol = solve(p, solver.1, opts.clone().seed(i as u64)).ok()?;
        Some(((sol.last()[0] - exact[i]).abs(), sol.stats))
    });
    let ok: Vec<_> = results.iter().flatten().collect();
    let n = ok.len().max(1) as f64;
    let mean = |f: &dyn Fn(&Stats) -> usize| ok.iter().map(|(_, s)| f(s) as f64).sum::<f64>() / n;
    let err = ok.iter().map(|(e, _)| e).sum::<f64>() / n;
    let var = ok.iter().map(|(e, _)| (e - err).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    WpRow {
        problem: name,
        solver: solver.0,
        mode,
        evals: mean(&|s: &Stats| s.field_evals()),
        drift: mean(&|s: &Stats| s.drift_evals),
        diffusion: mean(&|s: &Stats| s.diffusion_evals),
        accepted: mean(&|s: &Stats| s.accepted_steps),
        rejected: mean(&|s: &Stats| s.rejected_steps),
        err: if ok.is_empty() { f64::NAN } else { err },
        err_se: (var / n).sqrt(),
        paths: exact.len(),
        failures: results.len() - ok.len(),
    }
}

const WP_HEADER: &str = "problem         solver          mode        evals/path   acc/path  rej/path   strong err    ± s.e.   failed";

fn print_wp(r: &WpRow) {
    println!(
        "{:<15} {:<15} {:<10} {:>11.1} {:>10.1} {:>9.1}   {:>10.3e} {:>9.1e}   {}",
        r.problem,
        r.solver,
        r.mode.to_string(),
        r.evals,
        r.accepted,
        r.rejected,
        r.err,
        r.err_se,
        if r.failures > 0 {
            format!("{}/{}", r.failures, r.paths)
        } else {
            String::new()
        }
    );
}

/// The work–precision table: its rows, and `(problem, solver, theoretical
/// strong order)` of each solver run.
#[derive(Default)]
struct WpTable {
    rows: Vec<WpRow>,
    theory: Vec<(&'static str, &'static str, Theory)>,
}

impl WpTable {
    /// Runs on `problem`, whose exact `X(T)` on each path is in `exact`.
    fn on<'a, F, G>(
        &'a mut self,
        problem: (&'static str, &'a Problem<F, G>),
        exact: &'a [f64],
    ) -> WpRuns<'a, F, G> {
        WpRuns {
            table: self,
            problem,
            exact,
        }
    }
}

/// The work–precision runs on one problem.
struct WpRuns<'a, F, G> {
    table: &'a mut WpTable,
    problem: (&'static str, &'a Problem<F, G>),
    exact: &'a [f64],
}

impl<F: Drift + Sync, G: Diffusion + Sync> WpRuns<'_, F, G> {
    /// Fixed-step rows (and adaptive ones if `adaptive`) of one solver of
    /// strong order `theory` on this problem.
    fn solver<S: Solver<Problem<F, G>> + Copy + Sync>(
        &mut self,
        solver: (&'static str, S),
        adaptive: bool,
        theory: Theory,
    ) {
        self.table.theory.push((self.problem.0, solver.0, theory));
        let modes = FIXED_EXPONENTS
            .iter()
            .map(|&k| Mode::Fixed(k))
            .chain(TOLS.iter().filter(|_| adaptive).map(|&t| Mode::Adaptive(t)));
        for mode in modes {
            let row = wp_row(self.problem, solver, mode, self.exact);
            print_wp(&row);
            self.table.rows.push(row);
        }
    }
}

/// The strong order a solver has on a test problem, and why (the noise
/// structure that gives it, where that differs from the general order).
#[derive(Debug, Clone, Copy)]
struct Theory {
    order: f64,
    why: &'static str,
}

/// `Theory { order, why }`.
const fn theory(order: f64, why: &'static str) -> Theory {
    Theory { order, why }
}

/// Fitted slopes of one (problem, solver).
struct Slopes {
    problem: &'static str,
    solver: &'static str,
    theory: Theory,
    all: f64,
    fine: f64,
    adaptive: Option<f64>,
}

fn slopes(rows: &[WpRow], problem: &'static str, solver: &'static str, theory: Theory) -> Slopes {
    let mine = || {
        rows.iter()
            .filter(move |r| r.problem == problem && r.solver == solver && r.err > 0.0)
    };
    let fixed: Vec<(f64, f64)> = mine()
        .filter_map(|r| match r.mode {
            Mode::Fixed(k) => Some((2f64.powi(-k), r.err)),
            Mode::Adaptive(_) => None,
        })
        .collect();
    let fit = |pts: &[(f64, f64)]| {
        let (x, y): (Vec<f64>, Vec<f64>) = pts.iter().copied().unzip();
        fitted_slope(&x, &y)
    };
    let adaptive: Vec<(f64, f64)> = mine()
        .filter(|r| matches!(r.mode, Mode::Adaptive(_)))
        .map(|r| (r.evals, r.err))
        .collect();
    Slopes {
        problem,
        solver,
        theory,
        all: fit(&fixed),
        fine: fit(&fixed[fixed.len().saturating_sub(4)..]),
        adaptive: (adaptive.len() >= 2).then(|| fit(&adaptive)),
    }
}

fn work_precision(cfg: &Config) -> (Vec<WpRow>, Vec<Slopes>) {
    let ws: Vec<f64> = (0..cfg.paths as u64).map(w_end).collect();
    let ex_ito: Vec<f64> = ws
        .iter()
        .map(|w| X0 * ((A - 0.5 * B * B) * T + B * w).exp())
        .collect();
    let ex_strat: Vec<f64> = ws.iter().map(|w| X0 * (A * T + B * w).exp()).collect();
    let ex_add: Vec<f64> = ws
        .iter()
        .map(|w| X0 / (1.0 + T).sqrt() + BETA * (T + ALPHA * w) / (1.0 + T).sqrt())
        .collect();
    let ito = gbm(A, B);
    let strat = gbm(A, B).interpretation(Interpretation::Stratonovich);
    let add = additive();
    let (gi, gs, ad) = (
        ("GBM Itô", &ito),
        ("GBM Strat.", &strat),
        ("additive", &add),
    );

    let mut table = WpTable::default();
    println!("{WP_HEADER}");
    // theory: the strong order that applies to each test problem (GBM has
    // scalar, hence commutative, noise; the additive problem has additive
    // noise and a drift affine in X), with the reason where it differs
    // from the general order
    let general = "general";
    let milstein = ("Milstein", Milstein::derivative_free());
    let mut runs = table.on(gi, &ex_ito);
    runs.solver(
        ("EulerMaruyama", EulerMaruyama),
        false,
        theory(0.5, general),
    );
    runs.solver(milstein, false, theory(1.0, general));
    runs.solver(("Sriw1", Sriw1), true, theory(1.5, general));
    runs.solver(("Sosri", Sosri), true, theory(1.5, general));
    let mut runs = table.on(gs, &ex_strat);
    let commutative = "scalar noise is commutative (0.5 in general)";
    runs.solver(("EulerHeun", EulerHeun), false, theory(1.0, commutative));
    runs.solver(milstein, false, theory(1.0, general));
    runs.solver(
        ("ReversibleHeun", ReversibleHeun),
        true,
        theory(1.0, commutative),
    );
    let mut runs = table.on(ad, &ex_add);
    // the strong Taylor terms between orders 1.5 and 2 vanish for additive
    // noise except the one with the drift's second derivative, g²·∂²f/∂x²
    // (Kloeden & Platen 1992, ch. 10), zero for an affine drift
    let sra = "additive noise, drift affine in X (1.5 in general)";
    runs.solver(("Sra1", Sra1), true, theory(2.0, sra));
    runs.solver(("Sra3", Sra3), true, theory(2.0, sra));
    runs.solver(
        ("EulerMaruyama", EulerMaruyama),
        false,
        theory(1.0, "additive noise (0.5 in general)"),
    );
    let WpTable { rows, theory } = table;
    let s = theory
        .iter()
        .map(|&(p, sv, th)| slopes(&rows, p, sv, th))
        .collect();
    (rows, s)
}

fn print_slopes(slopes: &[Slopes]) {
    println!(
        "{:<15} {:<15} {:>7} {:>12} {:>14} {:>22}   why this order",
        "problem", "solver", "theory", "slope (all)", "slope (fine 4)", "adaptive: err ∝ evals^q"
    );
    for s in slopes {
        println!(
            "{:<15} {:<15} {:>7.1} {:>12.2} {:>14.2} {:>22}   {}",
            s.problem,
            s.solver,
            s.theory.order,
            s.all,
            s.fine,
            fmt_opt(s.adaptive, 2),
            s.theory.why
        );
    }
}

fn wp_csv(rows: &[WpRow], slopes: &[Slopes]) -> String {
    let mut s = String::from(
        "problem,solver,mode,h_or_tol,field_evals_mean,drift_evals_mean,diffusion_evals_mean,\
         accepted_mean,rejected_mean,strong_error_mean,strong_error_se,paths,failures,\
         fitted_strong_order_all,fitted_strong_order_fine4,adaptive_err_vs_evals_slope\n",
    );
    for r in rows {
        let (mode, x) = match r.mode {
            Mode::Fixed(k) => ("fixed", 2f64.powi(-k)),
            Mode::Adaptive(tol) => ("adaptive", tol),
        };
        let sl = slopes
            .iter()
            .find(|s| s.problem == r.problem && s.solver == r.solver);
        let _ = writeln!(
            s,
            "{},{},{mode},{x:e},{:.2},{:.2},{:.2},{:.2},{:.2},{:e},{:e},{},{},{},{},{}",
            r.problem,
            r.solver,
            r.evals,
            r.drift,
            r.diffusion,
            r.accepted,
            r.rejected,
            r.err,
            r.err_se,
            r.paths,
            r.failures,
            fmt_opt(sl.map(|s| s.all), 4),
            fmt_opt(sl.map(|s| s.fine), 4),
            fmt_opt(sl.and_then(|s| s.adaptive), 4),
        );
    }
    s
}

// ---------------------------------------------------------------------------
// (c) Mean-square stability
// ---------------------------------------------------------------------------

/// `(λ, μ)` of the linear test equations.
const LAMBDA_MU: [(f64, f64); 5] = [
    (-1.0, 1.0),
    (-4.0, 2.0),
    (-10.0, 3.0),
    (-50.0, 5.0),
    (-10.0, 0.1),
];
/// Range of the step-size search.
const H_LO: f64 = 1e-4;
const H_HI: f64 = 10.0;
/// Grid points per decade of the scan.
const PER_DECADE: usize = 4;

/// The largest mean-square stable step found by a search.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Limit {
    /// Unstable at the smallest step tried.
    Below(f64),
    /// Stable (at least) up to this step.
    At(f64),
    /// Stable at every step of the grid.
    Above(f64),
}

impl Limit {
    fn label(self) -> String {
        match self {
            Limit::Below(h) => format!("none (<{h:.0e})"),
            Limit::At(h) => format!("{h:.5}"),
            Limit::Above(h) => format!(">= {h}"),
        }
    }
    fn value(self) -> Option<f64> {
        match self {
            Limit::At(h) => Some(h),
            _ => None,
        }
    }
}

/// Scans `h = H_LO · 10^(k/PER_DECADE)` up to the first unstable `h`, then
/// bisects (in `log h`, `bisect` times) between it and the last stable one.
fn largest_stable(mut stable: impl FnMut(f64) -> bool, bisect: usize) -> Limit {
    let k_max = (PER_DECADE as f64 * (H_HI / H_LO).log10()).round() as i32;
    let grid = |k: i32| H_LO * 10f64.powf(k as f64 / PER_DECADE as f64);
    let Some(k) = (0..=k_max).find(|&k| !stable(grid(k))) else {
        return Limit::Above(H_HI);
    };
    if k == 0 {
        return Limit::Below(H_LO);
    }
    let (mut lo, mut hi) = (grid(k - 1).ln(), grid(k).ln());
    for _ in 0..bisect {
        let mid = 0.5 * (lo + hi);
        if stable(mid.exp()) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Limit::At(lo.exp())
}

/// The field `y ↦ c y` (scalar), as drift and as diffusion: a nameable
/// type, for the helpers generic over the solvers of [`Lin`].
#[derive(Debug, Clone, Copy)]
struct Scale(f64);

impl Drift for Scale {
    fn drift(&self, _t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]) {
        dy[0] = self.0 * y[0];
    }
}

impl Diffusion for Scale {
    fn diffusion(&self, _t: f64, y: &[f64], _p: &[f64], g: &mut [f64]) {
        g[0] = self.0 * y[0];
    }
}

/// The linear test SDEs' type.
type Lin = Problem<Scale, Scale>;

/// [`Lin`] driven by fresh increments (the Monte Carlo runs).
type LinIncrements = Problem<Scale, Scale, Increments>;

/// `dX = l X dt + μ X dW` on `[0, t1]` (scalar noise).
fn linear(l: f64, mu: f64, t1: f64, strat: bool) -> Lin {
    let p = Problem::sde_field(Scale(l), Scale(mu), Noise::Scalar, vec![1.0], (0.0, t1));
    if strat {
        p.interpretation(Interpretation::Stratonovich)
    } else {
        p
    }
}

/// Drift coefficient giving the Itô dynamics `(λ, μ)` in the solver's
/// interpretation.
fn drift_coefficient(lambda: f64, mu: f64, strat: bool) -> f64 {
    if strat {
        lambda - 0.5 * mu * mu
    } else {
        lambda
    }
}

/// Monte Carlo: is `E[X_N²] < 1` at `N = cfg.mc_steps` steps of size `h`
/// over `cfg.mc_paths` paths? An overflowing solve counts as unstable.
fn mc_stable<S: Solver<LinIncrements> + Copy + Sync>(
    solver: S,
    lambda: f64,
    mu: f64,
    strat: bool,
    h: f64,
    cfg: &Config,
) -> bool {
    let p = linear(
        drift_coefficient(lambda, mu, strat),
        mu,
        cfg.mc_steps as f64 * h,
        strat,
    )
    .driver(Increments);
    let opts = Options::default()
        .fixed_step(h)
        .save_at(SaveAt::T1)
        .max_steps(10 * cfg.mc_steps);
    let squares = par_map(cfg.mc_paths, |i| {
        solve(&p, solver, opts.clone().seed(i as u64))
            .map_or(f64::INFINITY, |sol| sol.last()[0].powi(2))
    });
    let mean = squares.iter().sum::<f64>() / squares.len() as f64;
    mean < 1.0
}

/// Probabilists' Gauss–Hermite rule with `n` nodes (weights sum to 1):
/// exact for `E[p(Z)]`, `Z ~ N(0, 1)`, `p` of degree `≤ 2n − 1`
/// (Golub–Welsch).
fn gauss_hermite(n: usize) -> Vec<(f64, f64)> {
    let mut jacobi = DMatrix::<f64>::zeros(n, n);
    for k in 1..n {
        let b = (k as f64).sqrt();
        jacobi[(k, k - 1)] = b;
        jacobi[(k - 1, k)] = b;
    }
    let eig = jacobi.symmetric_eigen();
    let mut rule: Vec<(f64, f64)> = (0..n)
        .map(|i| (eig.eigenvalues[i], eig.eigenvectors[(0, i)].powi(2)))
        .collect();
    rule.sort_by(|a, b| a.0.total_cmp(&b.0));
    rule
}

/// One step of `solver` of size `h` from `y`, with `ΔW = √h z1` and Lévy
/// area `H = √(h/12) z2`, driven through the `Solver` trait as the loop
/// drives it. A solver that carries an auxiliary state `ŷ` (reversible
/// Heun) starts from `ŷ = problem.y0`; `y_hat` reads `ŷ` after the step
/// from the cache. Returns `(y_new, ŷ_new)` (`ŷ_new` is `None` for
/// one-step solvers).
fn one_step<F: Drift, G: Diffusion, S: Solver<Problem<F, G>>>(
    solver: &S,
    p: &Problem<F, G>,
    h: f64,
    y: f64,
    (z1, z2): (f64, f64),
    y_hat: impl Fn(&S::Cache) -> Option<f64>,
) -> (f64, Option<f64>) {
    let fields = Fields::new(p);
    let mut cache = solver.init(p);
    let mut stats = Stats::default();
    // the loop starts a solve with f and g evaluated at y0 (= ŷ0)
    let (mut f0, mut g0) = ([0.0], [0.0]);
    p.drift.drift(0.0, &p.y0, &p.params, &mut f0);
    p.diffusion.diffusion(0.0, &p.y0, &p.params, &mut g0);
    solver.start(&mut cache, &f0, &g0);
    let dw = [h.sqrt() * z1];
    let levy = [(h / 12.0).sqrt() * z2];
    let noise = StepNoise {
        dw: &dw,
        levy_h: if S::INCREMENT == Increment::DwLevyArea {
            &levy
        } else {
            &[]
        },
        modes: &[],
    };
    let (mut y_new, mut err) = ([0.0], [0.0]);
    let args = StepArgs {
        fields: &fields,
        at: StepAt { t: 0.0, h, y: &[y] },
        noise: &noise,
        out: StepOut {
            y_new: &mut y_new,
            err: &mut err,
        },
        stats: &mut stats,
    };
    let _ = solver.step(&mut cache, args);
    solver.accept(&mut cache);
    (y_new[0], y_hat(&cache))
}

/// Exact mean-square amplification of a one-step solver on
/// `dX = l X dt + μ X dW`: `E[R²]` with `X_{n+1} = R X_n`.
fn ms_factor<S: Solver<Lin>>(
    solver: &S,
    l: f64,
    mu: f64,
    strat: bool,
    h: f64,
    rule: &[(f64, f64)],
) -> f64 {
    let p = linear(l, mu, h, strat);
    let z2s: &[(f64, f64)] = if S::INCREMENT == Increment::DwLevyArea {
        rule
    } else {
        &[(0.0, 1.0)]
    };
    let mut m = 0.0;
    for &(z1, w1) in rule {
        for &(z2, w2) in z2s {
            let (r, _) = one_step(solver, &p, h, 1.0, (z1, z2), |_| None);
            m += w1 * w2 * r * r;
        }
    }
    m
}

/// Spectral radius of reversible Heun's second-moment map on `(y, ŷ)`:
/// `S ↦ E[A S Aᵀ]` on symmetric 2×2 `S`, with the transfer matrix `A` of
/// one step read column by column from the solver's step.
fn reversible_heun_radius(l: f64, mu: f64, h: f64, rule: &[(f64, f64)]) -> f64 {
    let p0 = linear(l, mu, h, true).y0(vec![0.0]);
    let p1 = linear(l, mu, h, true);
    let y_hat = |c: &<ReversibleHeun as Solver<Lin>>::Cache| Some(c.y_hat()[0]);
    let mut m = Matrix3::<f64>::zeros();
    let basis = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for &(z, w) in rule {
        // columns: (y, ŷ) = (1, 0) and (0, 1)
        let (a00, a10) = one_step(&ReversibleHeun, &p0, h, 1.0, (z, 0.0), y_hat);
        let (a01, a11) = one_step(&ReversibleHeun, &p1, h, 0.0, (z, 0.0), y_hat);
        let a = [
            [a00, a01],
            [
                a10.expect("ŷ of reversible Heun"),
                a11.expect("ŷ of reversible Heun"),
            ],
        ];
        for (col, s) in basis.iter().enumerate() {
            // S = [[s11, s12], [s12, s22]]
            let sm = [[s[0], s[1]], [s[1], s[2]]];
            let mut out = [[0.0; 2]; 2];
            for i in 0..2 {
                for j in 0..2 {
                    for k in 0..2 {
                        for q in 0..2 {
                            out[i][j] += a[i][k] * sm[k][q] * a[j][q];
                        }
                    }
                }
            }
            m[(0, col)] += w * out[0][0];
            m[(1, col)] += w * out[0][1];
            m[(2, col)] += w * out[1][1];
        }
    }
    m.complex_eigenvalues()
        .iter()
        .map(|c| c.norm())
        .fold(0.0, f64::max)
}

/// Closed-form mean-square amplification, where there is one.
fn analytic_factor(solver: &str, lambda: f64, mu: f64, h: f64) -> Option<f64> {
    let base = (1.0 + lambda * h).powi(2) + mu * mu * h;
    match solver {
        "EulerMaruyama" => Some(base),
        "EulerHeun" => Some(base + 0.5 * mu.powi(4) * h * h),
        "Milstein" => Some(base + 0.5 * (mu * (mu + lambda * h.sqrt()) * h).powi(2)),
        "ReversibleHeun" => Some(f64::INFINITY),
        _ => None,
    }
}

/// One line of the stability table.
#[derive(Debug, Clone)]
struct StabRow {
    lambda: f64,
    mu: f64,
    solver: &'static str,
    form: &'static str,
    analytic: Option<Limit>,
    exact: Limit,
    mc: Limit,
}

fn stab_row<S: Solver<Lin> + Solver<LinIncrements> + Copy + Sync>(
    solver: (&'static str, S),
    (lambda, mu): (f64, f64),
    strat: bool,
    rule: &[(f64, f64)],
    cfg: &Config,
) -> StabRow {
    let (name, s) = solver;
    let l = drift_coefficient(lambda, mu, strat);
    let analytic = analytic_factor(name, lambda, mu, 1.0).map(|_| {
        largest_stable(
            |h| analytic_factor(name, lambda, mu, h).is_some_and(|r| r < 1.0),
            50,
        )
    });
    let exact = largest_stable(
        |h| {
            let rho = if name == "ReversibleHeun" {
                reversible_heun_radius(l, mu, h, rule)
            } else {
                ms_factor(&s, l, mu, strat, h, rule)
            };
            rho < 1.0
        },
        50,
    );
    let mc = largest_stable(|h| mc_stable(s, lambda, mu, strat, h, cfg), cfg.mc_bisect);
    StabRow {
        lambda,
        mu,
        solver: name,
        form: if strat { "Strat." } else { "Itô" },
        analytic,
        exact,
        mc,
    }
}

fn print_stab(r: &StabRow) {
    let ratio = match (r.mc.value(), r.exact.value()) {
        (Some(a), Some(b)) => format!("{:.2}", a / b),
        _ => "-".into(),
    };
    println!(
        "{:>6} {:>4}   {:<15} {:<6} {:>14} {:>14} {:>14} {:>10}",
        r.lambda,
        r.mu,
        r.solver,
        r.form,
        r.analytic.map_or_else(|| "-".into(), |l| l.label()),
        r.exact.label(),
        r.mc.label(),
        ratio
    );
}

fn stability(cfg: &Config) -> Vec<StabRow> {
    let rule = gauss_hermite(16);
    // the rule integrates polynomials of degree ≤ 31 exactly
    let moment = |k: i32| rule.iter().map(|(z, w)| w * z.powi(k)).sum::<f64>();
    let (m0, m4, m8) = (moment(0), moment(4), moment(8));
    assert!(
        (m0 - 1.0).abs() < 1e-12 && (m4 - 3.0).abs() < 1e-11 && (m8 - 105.0).abs() < 1e-9,
        "Gauss–Hermite rule is wrong: E[1] = {m0}, E[Z^4] = {m4}, E[Z^8] = {m8}"
    );
    println!(
        "{:>6} {:>4}   {:<15} {:<6} {:>14} {:>14} {:>14} {:>10}",
        "λ", "μ", "solver", "form", "analytic", "2nd moment", "MC N=200", "MC/exact"
    );
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for &lm in &LAMBDA_MU {
        let (lambda, mu) = lm;
        let l = drift_coefficient(lambda, mu, true);
        let rho: Vec<String> = [1e-4, 1e-3, 1e-2, 1e-1]
            .iter()
            .map(|&h| format!("{:.6}", reversible_heun_radius(l, mu, h, &rule)))
            .collect();
        notes.push(format!(
            "ReversibleHeun, λ = {lambda}, μ = {mu}: second-moment radius ρ(h) at h = 1e-4, \
             1e-3, 1e-2, 1e-1: {}",
            rho.join(", ")
        ));
        let mut push = |row: StabRow| {
            print_stab(&row);
            rows.push(row);
        };
        push(stab_row(
            ("EulerMaruyama", EulerMaruyama),
            lm,
            false,
            &rule,
            cfg,
        ));
        push(stab_row(
            ("Milstein", Milstein::derivative_free()),
            lm,
            false,
            &rule,
            cfg,
        ));
        push(stab_row(("Sriw1", Sriw1), lm, false, &rule, cfg));
        push(stab_row(("Sosri", Sosri), lm, false, &rule, cfg));
        push(stab_row(("EulerHeun", EulerHeun), lm, true, &rule, cfg));
        push(stab_row(
            ("ReversibleHeun", ReversibleHeun),
            lm,
            true,
            &rule,
            cfg,
        ));
    }
    for note in notes {
        println!("{note}");
    }
    rows
}

fn stab_csv(rows: &[StabRow], cfg: &Config) -> String {
    let mut s = String::from(
        "lambda,mu,solver,interpretation,h_max_analytic,h_max_exact_second_moment,\
         h_max_monte_carlo,mc_paths,mc_steps,status_analytic,status_exact,status_mc\n",
    );
    let val = |l: Option<Limit>| {
        l.and_then(Limit::value)
            .map_or_else(String::new, |v| format!("{v:e}"))
    };
    let status = |l: Option<Limit>| {
        l.map_or_else(
            || "n/a".into(),
            |l| match l {
                Limit::Below(h) => format!("unstable at {h:e}"),
                Limit::At(_) => "found".into(),
                Limit::Above(h) => format!("stable up to {h:e}"),
            },
        )
    };
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            r.lambda,
            r.mu,
            r.solver,
            if r.form == "Itô" {
                "Ito"
            } else {
                "Stratonovich"
            },
            val(r.analytic),
            val(Some(r.exact)),
            val(Some(r.mc)),
            cfg.mc_paths,
            cfg.mc_steps,
            status(r.analytic),
            status(Some(r.exact)),
            status(Some(r.mc)),
        );
    }
    s
}

// ---------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing.
    let timer = Timer::from_args(Duration::from_millis(500), 9);
    let quick = timer.quick;
    let cfg = Config {
        timer,
        paths: if quick { 4 } else { 200 },
        mc_paths: if quick { 20 } else { 2000 },
        mc_steps: 200,
        mc_bisect: if quick { 2 } else { 8 },
    };
    let started = Instant::now();
    if quick {
        println!(
            "sde_report: test mode (no `--bench`): a few paths, single timing runs, no CSV; the \
             numbers are not meaningful"
        );
    }

    println!();
    println!(
        "== (a) Euler–Maruyama on GBM (a=1, b=0.5, X0=1), 1000 fixed steps of 1e-3, scalar \
         noise; time per path-step (median over batches) =="
    );
    let em = em_vs_hand(&cfg);
    print_em(&em);

    println!();
    println!(
        "== (b) Work–precision: strong error E|X_N − X(T)| over {} Brownian-tree paths vs drift + \
         diffusion evaluations per path ==",
        cfg.paths
    );
    let t = Instant::now();
    let (wp, sl) = work_precision(&cfg);
    println!();
    println!(
        "-- fitted strong orders (least squares of log err on log h; adaptive: on log evals) --"
    );
    print_slopes(&sl);
    println!("(work–precision took {:.1} s)", t.elapsed().as_secs_f64());

    println!();
    println!(
        "== (c) Mean-square stability on dX = λX dt + μX dW: largest stable step h (Stratonovich \
         solvers get drift λ − μ²/2); MC: E[X_N²] < 1 over {} paths of {} steps ==",
        cfg.mc_paths, cfg.mc_steps
    );
    let t = Instant::now();
    let stab = stability(&cfg);
    println!(
        "How to read the MC column: it is the naive Monte Carlo test (E[X_N²] < 1 estimated \
         from {} paths of {} steps). X_N² is a product of {} random factors with a heavy right \
         tail, so a finite sample rarely contains the paths that dominate its mean: near the \
         true limit the estimate falls below E[X_N²], and the MC step over-states the stable \
         step (by the factor MC/exact, which grows with μ²/|λ|). It is shown as a warning \
         about that measurement; the analytic and exact 2nd-moment columns are the limits.",
        cfg.mc_paths, cfg.mc_steps, cfg.mc_steps
    );
    println!("(stability took {:.1} s)", t.elapsed().as_secs_f64());

    if !quick {
        println!();
        write_csv("sde_report_em.csv", &em_csv(&em));
        write_csv("sde_report_work_precision.csv", &wp_csv(&wp, &sl));
        write_csv("sde_report_stability.csv", &stab_csv(&stab, &cfg));
    }
    println!("report took {:.1} s", started.elapsed().as_secs_f64());
    println!("\nSUMMARY: {}", em.summary);
    let failed: usize = wp.iter().map(|r| r.failures).sum();
    if failed > 0 {
        println!("{failed} solve(s) of the work–precision runs failed; see the `failed` column");
    }
}
