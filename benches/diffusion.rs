//! Diffusion samplers on the closed-form Gaussian-mixture test bed (issue
//! #14): every ODE sampler at NFE 5, 10, 15, 20, 50 and 100 in d = 2, 16
//! and 64, scored by
//!
//! - the per-sample error against Tsit5 at rtol 1e-10 from the same initial
//!   noise (RMS over coordinates, mean over the batch), and
//! - the sliced Wasserstein distance (64 random directions, sorted 1-D W2)
//!   of the samples to as many exact draws from the mixture; the Tsit5
//!   samples' own distance is the floor that sampling noise sets;
//!
//! each on a uniform-λ (log-SNR) grid unless its name says otherwise
//! ("t²": time-quadratic, DEIS's and DPM-Solver's choice for some data);
//! DPM-Solver-v3 (orders 2, 3) with its empirical model statistics
//! estimated from the model (`Ems::estimate`, 1024 noise draws independent
//! of the sampled batch; the estimation's cost is printed, not counted in
//! the sampler's NFE; its steps' coefficients cost a quadrature per
//! element of one sample per step, independent of the batch, which is why
//! its µs per sample is 4–10x the others' at these small batches); then adaptive DPM-Solver-12/23 at rtol 1e-2, 1e-3,
//! 1e-4 with their NFE and achieved error. Issue #14's claim (a third-order
//! sampler at 10–20 NFE beats PF-Euler at five times its NFE) is printed
//! per dimension with a paired-bootstrap 95 % interval of the error ratio
//! (the per-sample errors are heavy-tailed: a sample near the separatrix
//! between two components can end in the other one, an O(1) error for
//! any sampler at any NFE, so a few hundred samples fix the ratio only
//! to ±10–90 %), re-measured on a larger batch of the same mixture
//! (2·10^4 samples at d = 2 and 16, 5000 at d = 64: the tables' candidate,
//! chosen on the tables' batch, and every third-order sampler at 10–20
//! NFE again), and re-checked on
//! five further draws of the bed (other means, variances and noise, 200
//! samples each). Plain `fn main` (no criterion). `cargo bench --bench
//! diffusion` writes `target/bench-report/diffusion.csv` and
//! `diffusion.svg` (error against NFE, a panel per dimension).
//!
//! Last, batched sampling with a network (issue #14's speed goal): 10^4
//! two-dimensional samples, a 2-64-64-2 tanh `nn::Mlp` as the noise
//! prediction evaluated on the whole batch (one GEMM per layer), 20 steps
//! of DPM-Solver++(2M) on a uniform-λ grid — sdeflow's sampler against the
//! same scheme written as a hand loop over the same batched network
//! (times paired in alternating batches; results checked equal first).
//! `cargo bench --bench diffusion -- network` runs this part alone.
//!
//! The test bed: a VP-linear schedule from T = 1 to 1e-3, data from a
//! mixture of four Gaussians with diagonal covariances (weights 0.1–0.4,
//! means and variances drawn once from a fixed seed), whose exact noise
//! prediction is the model (`GaussianMixture::noise`,
//! `../shared/reference/diffusion.md` §7); the batch is one state.

use std::path::{Path, PathBuf};
use std::time::Instant;

use plotters::prelude::*;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use sdeflow::diffusion::*;
use sdeflow::nn::{Activation, Mlp};
use sdeflow::ode::Tsit5;
use sdeflow::prelude::*;

#[path = "common/timing.rs"]
mod timing;
use timing::{Timer, measure_pair};

const T: f64 = 1.0;
const T_END: f64 = 1e-3;
const NFES: [usize; 6] = [5, 10, 15, 20, 50, 100];
const DIRECTIONS: usize = 64;
/// Further draws of the bed on which the third-order claim is re-checked.
const DRAWS: u64 = 5;

type Model = Box<dyn Fn(f64, &[f64], &[f64], &mut [f64])>;
type Prob = DiffusionOde<Model, VpLinear>;
type Run = fn(&Prob, Options) -> Result<Solution, SolveError>;
type RunRef<'a> = dyn Fn(&Prob, Options) -> Result<Solution, SolveError> + 'a;

/// How a sampler is run at a budget of model evaluations.
#[derive(Clone, Copy)]
enum How {
    /// `run` with the most steps of `grid` whose evaluations fit.
    Steps(TimeGrid, Run),
    /// DPM-Solver-fast on `grid`, spending the budget exactly.
    Fast(TimeGrid),
}

/// The samplers compared: name and how each is run.
fn samplers() -> Vec<(&'static str, How)> {
    let fast = [
        ("DPM-Solver-fast", How::Fast(TimeGrid::UniformLambda)),
        ("DPM-Solver-fast (t²)", How::Fast(TimeGrid::TimeQuadratic)),
    ];
    let stepped = stepped_samplers()
        .into_iter()
        .map(|(name, grid, run)| (name, How::Steps(grid, run)));
    stepped.chain(fast).collect()
}

/// The samplers run on a number of steps: name, time grid, and the call.
fn stepped_samplers() -> Vec<(&'static str, TimeGrid, Run)> {
    let (lam, quad) = (TimeGrid::UniformLambda, TimeGrid::TimeQuadratic);
    vec![
        ("PF-Euler (uniform t)", TimeGrid::UniformT, |p, o| {
            solve(p, PfEuler, o)
        }),
        ("PF-Euler (uniform λ)", lam, |p, o| solve(p, PfEuler, o)),
        ("DDIM", lam, |p, o| solve(p, Ddim, o)),
        ("DPM-Solver-2", lam, |p, o| solve(p, DpmSolver2, o)),
        ("DPM-Solver-3", lam, |p, o| solve(p, DpmSolver3, o)),
        ("DPM-Solver++2S", lam, |p, o| solve(p, DpmSolverPP2S, o)),
        ("DPM-Solver++2M", lam, |p, o| {
            solve(p, DpmSolverPP2M::default(), o)
        }),
        ("DPM-Solver++3M", lam, |p, o| {
            solve(p, DpmSolverPP3M::default(), o)
        }),
        ("DPM-Solver(2M)", lam, |p, o| {
            solve(p, DpmSolver2M::default(), o)
        }),
        ("DPM-Solver(3M)", lam, |p, o| {
            solve(p, DpmSolver3M::default(), o)
        }),
        ("DPM-Solver-3 (t²)", quad, |p, o| solve(p, DpmSolver3, o)),
        ("DPM-Solver(3M) (t²)", quad, |p, o| {
            solve(p, DpmSolver3M::default(), o)
        }),
        ("DPM-Solver++3M (t²)", quad, |p, o| {
            solve(p, DpmSolverPP3M::default(), o)
        }),
        ("UniPC 3 (t²)", quad, |p, o| solve(p, UniPc::new(3), o)),
        ("tAB-DEIS 3 (t²)", quad, |p, o| solve(p, Deis::t_ab(3), o)),
        ("PLMS", lam, |p, o| solve(p, Plms, o)),
        ("iPNDM", lam, |p, o| solve(p, IPndm, o)),
        ("LMS 4", lam, |p, o| solve(p, Lms::default(), o)),
        ("UniPC 3", lam, |p, o| solve(p, UniPc::new(3), o)),
    ]
}

/// One dimension's test bed: the mixture, the initial noise, the Tsit5
/// reference and exact data draws.
struct Bed {
    d: usize,
    batch: usize,
    gmm: GaussianMixture,
    x_t: Vec<f64>,
    reference: Vec<f64>,
    exact: Vec<f64>,
}

impl Bed {
    fn new(d: usize, batch: usize) -> Bed {
        Bed::drawn(d, batch, 0)
    }

    /// The bed of draw `draw` (0 is the one of the tables): another
    /// mixture and another batch of noise from the same recipe.
    fn drawn(d: usize, batch: usize, draw: u64) -> Bed {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0xD1F + d as u64 + 1000 * draw);
        let gmm = GaussianMixture::random(d, &mut rng).expect("valid mixture");
        let (k, means, vars) = (gmm.components(), gmm.means(), gmm.vars());
        let weights: Vec<f64> = gmm.log_weights().iter().map(|l| l.exp()).collect();
        let x_t: Vec<f64> = (0..batch * d)
            .map(|_| rng.sample::<f64, _>(StandardNormal))
            .collect();
        // exact draws: a component by its weight, then its Gaussian
        let mut exact = Vec::with_capacity(batch * d);
        for _ in 0..batch {
            let u: f64 = rng.random();
            let mut c = 0;
            let mut acc = weights[0];
            while u > acc && c + 1 < k {
                c += 1;
                acc += weights[c];
            }
            for i in 0..d {
                let z: f64 = rng.sample(StandardNormal);
                exact.push(means[c * d + i] + vars[c * d + i].sqrt() * z);
            }
        }
        let mut bed = Bed {
            d,
            batch,
            gmm,
            x_t,
            reference: Vec::new(),
            exact,
        };
        bed.reference = solve(
            &bed.problem(),
            Tsit5,
            Options::default()
                .rtol(1e-10)
                .atol(1e-12)
                .save_at(SaveAt::T1),
        )
        .expect("Tsit5 reference")
        .last()
        .to_vec();
        bed
    }

    fn problem(&self) -> Prob {
        self.problem_from(self.x_t.clone())
    }

    /// The probability-flow problem of this bed from the noise `x_t`.
    fn problem_from(&self, x_t: Vec<f64>) -> Prob {
        let s = VpLinear::default();
        let gmm = self.gmm.clone();
        let model: Model = Box::new(move |t, x, _p, out| gmm.noise(&s, t, x, out));
        probability_flow(model, Parametrisation::Noise, s, x_t, (T, T_END))
    }

    /// DPM-Solver-v3's statistics estimated from the model (`Ems::estimate`,
    /// 251 points) on `samples` noise draws independent of the sampled
    /// batch, and a line with their cost.
    fn estimate_ems(&self, samples: usize) -> (Ems, String) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0xE35 + self.d as u64);
        let x_t: Vec<f64> = (0..samples * self.d)
            .map(|_| rng.sample::<f64, _>(StandardNormal))
            .collect();
        let est = Ems::estimate(&self.problem_from(x_t), &EmsOptions::new(self.d))
            .expect("EMS estimation on the test bed");
        let line = format!("d = {}, {} points, {}", self.d, est.ems.points(), est.stats);
        (est.ems, line)
    }

    /// Per sample, the RMS (over coordinates) difference to the reference.
    fn errors(&self, x: &[f64]) -> Vec<f64> {
        x.chunks(self.d)
            .zip(self.reference.chunks(self.d))
            .map(|(a, b)| {
                let sq: f64 = a.iter().zip(b).map(|(a, b)| (a - b).powi(2)).sum();
                (sq / self.d as f64).sqrt()
            })
            .collect()
    }

    /// Mean over the batch of the RMS (over coordinates) difference to the
    /// reference.
    fn error(&self, x: &[f64]) -> f64 {
        mean(&self.errors(x))
    }

    /// Sliced W2 between `x` and the exact draws (the test bed's
    /// [`sliced_wasserstein`], fixed directions).
    fn sliced_wasserstein(&self, x: &[f64]) -> f64 {
        sliced_wasserstein(x, &self.exact, self.d, DIRECTIONS, 0x5EED).expect("equal sample sets")
    }
}

/// One sampler at one NFE budget: the most steps whose evaluations fit it.
#[derive(Clone)]
struct Point {
    nfe: usize,
    err: f64,
    /// Per-sample errors (`err` is their mean).
    errs: Vec<f64>,
    sw: f64,
    us_per_sample: f64,
}

/// Timed runs after the first (the tables'; none where only errors are
/// read).
const TABLE_REPEATS: usize = 2;

fn at_budget(
    bed: &Bed,
    grid: TimeGrid,
    run: &RunRef<'_>,
    budget: usize,
    repeats: usize,
) -> Option<Point> {
    let s = VpLinear::default();
    let prob = bed.problem();
    let attempt = |steps: usize| -> Option<(Solution, f64)> {
        let opts = grid.options(&s, T, T_END, steps).ok()?;
        let started = Instant::now();
        let sol = run(&prob, opts).ok()?;
        Some((sol, started.elapsed().as_secs_f64()))
    };
    let (probe, _) = attempt(10)?;
    let per_step = probe.stats.drift_evals as f64 / 10.0;
    let mut steps = ((budget as f64 / per_step).floor() as usize).max(1);
    loop {
        let first = attempt(steps)?;
        if first.0.stats.drift_evals <= budget || steps == 1 {
            if first.0.stats.drift_evals > budget {
                return None;
            }
            return Some(timed(bed, first, &|| attempt(steps), repeats));
        }
        steps -= 1;
    }
}

/// The point of a run `first` (solution, seconds), its time the best of
/// it and `repeats` more runs by `again`.
fn timed(
    bed: &Bed,
    first: (Solution, f64),
    again: &dyn Fn() -> Option<(Solution, f64)>,
    repeats: usize,
) -> Point {
    let (sol, secs) = first;
    let secs = (0..repeats)
        .filter_map(|_| again())
        .map(|r| r.1)
        .fold(secs, f64::min);
    let errs = bed.errors(sol.last());
    Point {
        nfe: sol.stats.drift_evals,
        err: mean(&errs),
        errs,
        sw: bed.sliced_wasserstein(sol.last()),
        us_per_sample: secs * 1e6 / bed.batch as f64,
    }
}

/// A sampler of [`samplers`] at `budget`, timed over `1 + repeats` runs.
fn point(bed: &Bed, how: How, budget: usize, repeats: usize) -> Option<Point> {
    match how {
        How::Steps(grid, run) => at_budget(bed, grid, &run, budget, repeats),
        How::Fast(grid) => {
            let fast = DpmSolverFast::new(budget, grid);
            let prob = bed.problem();
            let attempt = || -> Option<(Solution, f64)> {
                let opts = fast.options(&VpLinear::default(), T, T_END).ok()?;
                let started = Instant::now();
                let sol = solve(&prob, fast, opts).ok()?;
                Some((sol, started.elapsed().as_secs_f64()))
            };
            Some(timed(bed, attempt()?, &attempt, repeats))
        }
    }
}

struct Series {
    d: usize,
    name: &'static str,
    points: Vec<Option<Point>>,
}

fn print_table(d: usize, series: &[Series], floor: f64, what: &str, cell: fn(&Point) -> f64) {
    println!("\n-- d = {d}: {what} --");
    print!("{:<24}", "sampler \\ NFE budget");
    for n in NFES {
        print!("{n:>15}");
    }
    println!();
    for s in series.iter().filter(|s| s.d == d) {
        print!("{:<24}", s.name);
        for p in &s.points {
            match p {
                Some(p) => print!("{:>15}", format!("{:.2e} ({:>3})", cell(p), p.nfe)),
                None => print!("{:>15}", "—"),
            }
        }
        println!();
    }
    if floor > 0.0 {
        println!("(floor: Tsit5 reference samples {floor:.3e} — exact-sample noise at this batch)");
    }
}

/// The third-order samplers issue #14's claim names: DPM-Solver-3
/// singlestep (on a number of steps, and as DPM-Solver-fast spending the
/// budget exactly) and multistep (noise prediction), DPM-Solver++(3M).
const THIRD_ORDER: [&str; 8] = [
    "DPM-Solver-3",
    "DPM-Solver-fast",
    "DPM-Solver(3M)",
    "DPM-Solver++3M",
    "DPM-Solver-3 (t²)",
    "DPM-Solver-fast (t²)",
    "DPM-Solver(3M) (t²)",
    "DPM-Solver++3M (t²)",
];
/// DPM-Solver-v3 with estimated statistics (reported beside the claim).
const V3: [&str; 2] = ["DPM-Solver-v3 3 (EMS)", "DPM-Solver-v3 3 (EMS, t²)"];

/// PF-Euler's best run (uniform t or uniform λ, by mean error) on one bed
/// at each NFE asked for, run once (untimed) and kept.
struct EulerRuns<'b> {
    bed: &'b Bed,
    at: std::collections::BTreeMap<usize, Option<Point>>,
}

impl<'b> EulerRuns<'b> {
    fn new(bed: &'b Bed) -> Self {
        EulerRuns {
            bed,
            at: std::collections::BTreeMap::new(),
        }
    }

    fn at(&mut self, nfe: usize) -> Option<Point> {
        let bed = self.bed;
        self.at
            .entry(nfe)
            .or_insert_with(|| {
                samplers()
                    .into_iter()
                    .filter(|(n, _)| n.starts_with("PF-Euler"))
                    .filter_map(|(_, how)| point(bed, how, nfe, 0))
                    .min_by(|a, b| a.err.total_cmp(&b.err))
            })
            .clone()
    }
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// The 95 % interval of `mean(euler) / mean(third)` by a paired bootstrap
/// over the samples (2000 resamples, fixed seed): the per-sample errors
/// are heavy-tailed (a sample near a separatrix between components can
/// end in the other one, an O(1) error, for any sampler at any NFE), so
/// the ratio of means is uncertain at these batches.
fn ratio_interval(euler: &[f64], third: &[f64]) -> (f64, f64) {
    let n = euler.len();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0xB007);
    let mut ratios: Vec<f64> = (0..2000)
        .map(|_| {
            let (mut e, mut t) = (0.0, 0.0);
            for _ in 0..n {
                let i = rng.random_range(0..n);
                e += euler[i];
                t += third[i];
            }
            e / t
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    (ratios[50], ratios[1949])
}

/// Issue #14's claim at one dimension: the third-order run compared, and
/// PF-Euler's best at five times its NFE.
struct Claim {
    name: &'static str,
    third: Point,
    euler: Point,
}

impl Claim {
    /// Euler's mean error over the third-order run's: the claim holds
    /// when it is > 1.
    fn margin(&self) -> f64 {
        self.euler.err / self.third.err
    }

    /// `name at NFE n: error e; PF-Euler at NFE 5n: e' (x margin, 95 %
    /// interval)`.
    fn describe(&self) -> String {
        let (lo, hi) = ratio_interval(&self.euler.errs, &self.third.errs);
        format!(
            "{} at NFE {}: error {:.2e}; PF-Euler at NFE {}: {:.2e} (x{:.2}, 95 % interval {lo:.2}–{hi:.2})",
            self.name,
            self.third.nfe,
            self.third.err,
            5 * self.third.nfe,
            self.euler.err,
            self.margin()
        )
    }
}

/// Issue #14's claim for the runs of `names` in `series` (dimension of
/// `euler`'s bed): the run at NFE 10–20 whose error is furthest below
/// PF-Euler's best at five times its NFE.
fn best_margin(series: &[Series], names: &[&str], euler: &mut EulerRuns<'_>) -> Option<Claim> {
    let d = euler.bed.d;
    let mut best: Option<Claim> = None;
    for s in series
        .iter()
        .filter(|s| s.d == d && names.contains(&s.name))
    {
        for p in s
            .points
            .iter()
            .flatten()
            .filter(|p| (10..=20).contains(&p.nfe))
        {
            let Some(e) = euler.at(5 * p.nfe) else {
                continue;
            };
            let claim = Claim {
                name: s.name,
                third: p.clone(),
                euler: e,
            };
            if best.as_ref().is_none_or(|b| claim.margin() > b.margin()) {
                best = Some(claim);
            }
        }
    }
    best
}

fn verdict(margin: f64) -> &'static str {
    if margin > 1.0 {
        "PF-Euler does not reach it with 5x the NFE"
    } else {
        "NOT MET"
    }
}

/// The claim's line for dimension `d`.
fn claim_line(d: usize, claim: Option<&Claim>) -> String {
    match claim {
        Some(c) => format!("d = {d}: {} — {}", c.describe(), verdict(c.margin())),
        None => format!("d = {d}: no third-order run at NFE 10–20"),
    }
}

/// The [`THIRD_ORDER`] samplers on `bed` at budgets 10, 15 and 20
/// (untimed).
fn third_order_series(bed: &Bed) -> Vec<Series> {
    samplers()
        .into_iter()
        .filter(|(n, _)| THIRD_ORDER.contains(n))
        .map(|(name, how)| Series {
            d: bed.d,
            name,
            points: [10, 15, 20]
                .iter()
                .map(|&n| point(bed, how, n, 0))
                .collect(),
        })
        .collect()
}

/// The claim for dimension `d` re-measured on `batch` samples of the same
/// mixture (the tables' samples are its first ones): the tables'
/// candidate `table` (sampler and NFE chosen on the tables' batch), and
/// every third-order sampler at budgets 10–20 again with the best margin
/// on the larger batch.
fn claim_on_larger_batch(d: usize, table: Option<&Claim>, batch: usize) -> String {
    let large = Bed::new(d, batch);
    let again = third_order_series(&large);
    let mut euler = EulerRuns::new(&large);
    let mut lines = Vec::new();
    if let Some(c) = table {
        let third = again
            .iter()
            .filter(|s| s.name == c.name)
            .flat_map(|s| s.points.iter().flatten())
            .find(|p| p.nfe == c.third.nfe)
            .cloned();
        let line = match (third, euler.at(5 * c.third.nfe)) {
            (Some(third), Some(euler)) => {
                let c = Claim {
                    name: c.name,
                    third,
                    euler,
                };
                format!(
                    "the tables' candidate: {} — {}",
                    c.describe(),
                    verdict(c.margin())
                )
            }
            _ => format!(
                "the tables' candidate ({}) did not run at NFE {}",
                c.name, c.third.nfe
            ),
        };
        lines.push(line);
    }
    if let Some(c) = best_margin(&again, &THIRD_ORDER, &mut euler) {
        lines.push(format!(
            "best on this batch: {} — {}",
            c.describe(),
            verdict(c.margin())
        ));
    }
    format!("d = {d} ({batch} samples):\n  {}", lines.join("\n  "))
}

/// Issue #14's claim on further draws of the bed (other means, variances
/// and noise; `batch` samples): per draw, the [`THIRD_ORDER`] run at NFE
/// 10–20 furthest below PF-Euler at five times its NFE ([`best_margin`]).
fn claim_over_draws(d: usize, batch: usize, draws: u64) -> String {
    let mut held = 0;
    let mut cells = Vec::new();
    for draw in 1..=draws {
        let bed = Bed::drawn(d, batch, draw);
        let series = third_order_series(&bed);
        match best_margin(&series, &THIRD_ORDER, &mut EulerRuns::new(&bed)) {
            Some(c) => {
                held += usize::from(c.margin() > 1.0);
                cells.push(format!("draw {draw}: {}", c.describe()));
            }
            None => cells.push(format!("draw {draw}: no third-order run at NFE 10–20")),
        }
    }
    format!(
        "d = {d} ({batch} samples per draw): holds on {held} of {draws} draws\n  {}",
        cells.join("\n  ")
    )
}

fn plot(path: &Path, dims: &[usize], series: &[Series]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (520 * dims.len() as u32, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, dims.len()));
    for (area, &d) in panels.iter().zip(dims) {
        let pts = |s: &Series| -> Vec<(f64, f64)> {
            s.points
                .iter()
                .flatten()
                .filter(|p| p.err > 0.0)
                .map(|p| (p.nfe as f64, p.err))
                .collect()
        };
        let mine: Vec<&Series> = series.iter().filter(|s| s.d == d).collect();
        let all: Vec<(f64, f64)> = mine.iter().flat_map(|s| pts(s)).collect();
        if all.is_empty() {
            continue;
        }
        let e0 = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let e1 = all.iter().map(|p| p.1).fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(format!("Gaussian mixture, d = {d}"), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (2.0..150.0f64).log_scale(),
                (e0 / 2.0..e1 * 2.0).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("NFE")
            .y_desc("per-sample error vs Tsit5 1e-10")
            .y_label_formatter(&|y| format!("{y:.0e}"))
            .draw()?;
        for (i, s) in mine.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let p = pts(s);
            chart
                .draw_series(LineSeries::new(p.clone(), color.stroke_width(2)))?
                .label(s.name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
            chart.draw_series(p.into_iter().map(|xy| Circle::new(xy, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerLeft)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn csv(series: &[Series]) -> String {
    let mut out = String::from("d,sampler,nfe_budget,nfe,error,sliced_w2,us_per_sample\n");
    for s in series {
        for (budget, p) in NFES.iter().zip(&s.points) {
            if let Some(p) = p {
                out.push_str(&format!(
                    "{},{},{},{},{:e},{:e},{:.3}\n",
                    s.d, s.name, budget, p.nfe, p.err, p.sw, p.us_per_sample
                ));
            }
        }
    }
    out
}

/// DPM-Solver++(2M) by hand (Lu et al. 2022, multistep data prediction,
/// second order from the second step): `x ← (σ_t/σ_s) x − α_t (e^{−h} − 1)
/// D`, `D = m0 + (m0 − m1)/(2 r)`, `m = (x − σ ε)/α`, over the batched
/// network. `ts` is the grid; the schedule's α, σ are read once per step.
fn hand_pp2m(mlp: &Mlp, params: &[f64], x_t: &[f64], ts: &[f64], out: &mut [f64]) {
    let s = VpLinear::default();
    let n = x_t.len();
    out.copy_from_slice(x_t);
    let (mut eps, mut m0, mut m1) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut lam_prev = f64::NAN;
    for (k, w) in ts.windows(2).enumerate() {
        let (a_s, s_s, a_t, s_t) = (s.alpha(w[0]), s.sigma(w[0]), s.alpha(w[1]), s.sigma(w[1]));
        let (lam_s, lam_t) = ((a_s / s_s).ln(), (a_t / s_t).ln());
        let h = lam_t - lam_s;
        let (rs, k1) = (s_t / s_s, a_t * (-h).exp_m1());
        mlp.forward_batch(out, params, &mut eps)
            .expect("batch shape");
        for i in 0..n {
            m0[i] = (out[i] - s_s * eps[i]) / a_s;
        }
        if k == 0 {
            for i in 0..n {
                out[i] = rs * out[i] - k1 * m0[i];
            }
        } else {
            let c = 1.0 / (2.0 * (lam_s - lam_prev) / h);
            for i in 0..n {
                out[i] = rs * out[i] - k1 * (m0[i] + c * (m0[i] - m1[i]));
            }
        }
        std::mem::swap(&mut m0, &mut m1);
        lam_prev = lam_s;
    }
}

/// The batched-network line: sdeflow's DPM-Solver++(2M) vs [`hand_pp2m`].
fn batched_network_line(quick: bool) -> String {
    let (samples, steps) = (if quick { 200 } else { 10_000 }, 20);
    let mlp = Mlp::new(&[2, 64, 64, 2], Activation::Tanh);
    let params = mlp.init_params(7, 1.0);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    let x_t: Vec<f64> = (0..2 * samples)
        .map(|_| rng.sample(StandardNormal))
        .collect();
    let s = VpLinear::default();
    let grid = TimeGrid::UniformLambda;
    let ts = grid.times(&s, T, T_END, steps).expect("grid");
    let opts = grid
        .options(&s, T, T_END, steps)
        .expect("grid")
        .save_at(SaveAt::T1);
    let (net, p) = (mlp.clone(), params.clone());
    let model = move |_t: f64, x: &[f64], _p: &[f64], out: &mut [f64]| {
        net.forward_batch(x, &p, out).expect("batch shape")
    };
    let prob = probability_flow(model, Parametrisation::Noise, s, x_t.clone(), (T, T_END));
    let ours = || solve(&prob, DpmSolverPP2M::default(), &opts).expect("sampler");
    let mut hand_out = vec![0.0; x_t.len()];
    let sol = ours();
    hand_pp2m(&mlp, &params, &x_t, &ts, &mut hand_out);
    let diff = sol
        .last()
        .iter()
        .zip(&hand_out)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let cfg = Timer {
        quick,
        budget: std::time::Duration::from_secs(3),
        batch: std::time::Duration::from_millis(2),
        min_batches: 7,
    };
    let (a, b, ratio) = measure_pair(
        ours,
        || hand_pp2m(&mlp, &params, &x_t, &ts, &mut hand_out),
        &cfg,
    );
    format!(
        "{samples} samples, 2-64-64-2 tanh MLP, DPM-Solver++(2M) {steps} steps (NFE {}): sdeflow \
         {:.3} µs/sample, hand loop {:.3} µs/sample, ratio {ratio:.2} (goal ≤ 1.3); results \
         agree to {diff:.1e}",
        sol.stats.drift_evals,
        a.median * 1e6 / samples as f64,
        b.median * 1e6 / samples as f64,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--quick");
    let started = Instant::now();
    // `cargo bench --bench diffusion -- network`: the network line only
    if args.iter().any(|a| a == "network") {
        println!("{}", batched_network_line(quick));
        return;
    }
    // (dimension, the tables' batch, the batch the claim is re-measured on)
    let dims: Vec<(usize, usize, usize)> = if quick {
        println!("diffusion: test mode (no `--bench`): d = 2 only, a small batch");
        vec![(2, 64, 256)]
    } else {
        vec![(2, 1000, 20_000), (16, 500, 20_000), (64, 250, 5_000)]
    };
    let mut series = Vec::new();
    let mut lines = Vec::new();
    let mut ems_lines = Vec::new();
    let mut larger = Vec::new();
    for &(d, batch, large) in &dims {
        let bed = Bed::new(d, batch);
        let floor = bed.sliced_wasserstein(&bed.reference);
        for (name, how) in samplers() {
            let points = NFES
                .iter()
                .map(|&n| point(&bed, how, n, TABLE_REPEATS))
                .collect();
            series.push(Series { d, name, points });
        }
        // DPM-Solver-v3: statistics estimated from the model on its own
        // batch of noise (not the one sampled), then sampled with them
        let (ems, ems_line) = bed.estimate_ems(if quick { 128 } else { 1024 });
        ems_lines.push(ems_line);
        for (name, grid, order) in [
            ("DPM-Solver-v3 3 (EMS)", TimeGrid::UniformLambda, 3),
            ("DPM-Solver-v3 2 (EMS)", TimeGrid::UniformLambda, 2),
            ("DPM-Solver-v3 3 (EMS, t²)", TimeGrid::TimeQuadratic, 3),
        ] {
            let run = |p: &Prob, o: Options| solve(p, DpmSolverV3::new(&ems, order), o);
            let points = NFES
                .iter()
                .map(|&n| at_budget(&bed, grid, &run, n, TABLE_REPEATS))
                .collect();
            series.push(Series { d, name, points });
        }
        print_table(
            d,
            &series,
            0.0,
            &format!("per-sample error (NFE used) over {batch} samples"),
            |p| p.err,
        );
        print_table(
            d,
            &series,
            floor,
            "sliced W2 to exact mixture draws (NFE used)",
            |p| p.sw,
        );
        print_table(d, &series, 0.0, "µs per sample (NFE used)", |p| {
            p.us_per_sample
        });
        let mut euler = EulerRuns::new(&bed);
        let third = best_margin(&series, &THIRD_ORDER, &mut euler);
        lines.push(claim_line(d, third.as_ref()));
        lines.push(claim_line(
            d,
            best_margin(&series, &V3, &mut euler).as_ref(),
        ));
        larger.push(claim_on_larger_batch(d, third.as_ref(), large));
        println!("\n-- d = {d}: adaptive DPM-Solver (atol = rtol / 10) --");
        let prob = bed.problem();
        for (name, solver) in [
            ("DPM-Solver-12", AdaptiveDpmSolver::dpm_solver_12()),
            ("DPM-Solver-23", AdaptiveDpmSolver::dpm_solver_23()),
        ] {
            for rtol in [1e-2, 1e-3, 1e-4] {
                let opts = Options::default()
                    .rtol(rtol)
                    .atol(rtol / 10.0)
                    .save_at(SaveAt::T1);
                match solve(&prob, solver, opts) {
                    Ok(sol) => println!(
                        "{name:<14} rtol {rtol:.0e}: NFE {:>4} ({} steps, {} rejected), error {:.2e}, sliced W2 {:.3e}",
                        sol.stats.drift_evals,
                        sol.stats.accepted_steps,
                        sol.stats.rejected_steps,
                        bed.error(sol.last()),
                        bed.sliced_wasserstein(sol.last())
                    ),
                    Err(e) => println!("{name:<14} rtol {rtol:.0e}: failed: {e}"),
                }
            }
        }
    }
    println!("\n== DPM-Solver-v3's statistics, estimated from the model ==");
    for l in &ems_lines {
        println!("{l}");
    }
    println!(
        "\n== Third-order samplers (DPM-Solver-3 / ++3M, then DPM-Solver-v3) at 10–20 NFE \
         against probability-flow Euler at 5x =="
    );
    for l in &lines {
        println!("{l}");
    }
    println!(
        "\n== The third-order claim re-measured on a larger batch of the same mixture \
         (the tables' samples are its first ones): the tables' candidate, and the best \
         third-order run at 10–20 NFE on the larger batch =="
    );
    for l in &larger {
        println!("{l}");
    }
    if !quick {
        println!(
            "\n== The same claim on {DRAWS} further draws of the bed per dimension \
             (ratio: PF-Euler's error at 5x the NFE / the third-order one's) =="
        );
        for &(d, batch, _) in &dims {
            println!("{}", claim_over_draws(d, batch.min(200), DRAWS));
        }
    }
    println!("\n== Batched sampling with a network, against the hand loop ==");
    println!("{}", batched_network_line(quick));
    if !quick {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-report");
        let (csv_path, svg_path) = (dir.join("diffusion.csv"), dir.join("diffusion.svg"));
        let ds: Vec<usize> = dims.iter().map(|x| x.0).collect();
        let written = std::fs::create_dir_all(&dir)
            .map_err(Into::into)
            .and_then(|()| std::fs::write(&csv_path, csv(&series)).map_err(Into::into))
            .and_then(|()| plot(&svg_path, &ds, &series));
        match written {
            Ok(()) => println!(
                "\nwritten: {} and {}",
                csv_path.display(),
                svg_path.display()
            ),
            Err(e) => eprintln!("\ncould not write the report: {e}"),
        }
    }
    println!("report took {:.1} s", started.elapsed().as_secs_f64());
}
