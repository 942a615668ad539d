//! Exponential integrators report (issue #13). Plain `fn main` (no
//! criterion): `cargo bench --bench expint` (release build); without
//! `--bench` (`cargo test --benches`) every case runs once, untimed.
//!
//! # 1. Against the floor: ETDRK4 on Kuramoto–Sivashinsky
//!
//! Kuramoto–Sivashinsky in the Kassam–Trefethen setup
//! (`tests/common/kuramoto_sivashinsky.rs`) at `N = 128` and `N = 1024`
//! modes, `h = 1/4`, `t ∈ [0, 30]` (120 steps): `solve` with `Etdrk4`
//! (`SaveAt::T1`, its setup included) against a hand-written Rust loop of
//! the same scheme ([`HandEtdrk4`]: the six diagonal coefficient vectors
//! precomputed, complex buffers, the same rustfft plans' kind, no
//! allocation in the loop). The two are timed in alternating batches
//! (`common/timing.rs`, `measure_pair`); the ratio is the median of the
//! per-pair ratios. Two figures: the time per step of the whole solve
//! (the solver's setup — its φ operators, its cache — included, which the
//! hand loop does before timing), and the marginal time per step, the
//! difference between solves of 240 and 120 steps over 120, which is the
//! per-step cost the goal (≤ 1.3) is about. Both results are compared with a reference
//! (`Krogstad` at `h = 1/256`) as the max-abs error of `u(x, 30)` on the
//! grid.
//!
//! With `EXPINT_FLOOR_ONLY` set, the report stops after this table.
//!
//! # 2. At matched error: exponential against explicit and implicit
//!
//! Two problems with a stiff linear part:
//!
//! * **KS**, `N = 128`, `t ∈ [0, 30]` (eigenvalues of `L` down to −6.6e4),
//!   error as above;
//! * **stiff semilinear**: `y' = diag(λ) y + N(t, y)`, 32 components,
//!   `λ_i = −10^{4i/31}` (−1 … −1e4), `N_i = sin(y_{i+1}) − y_i³/3 +
//!   cos(t)` (cyclic), `y0 = 1`, `t ∈ [0, 2]`; `N` is written generically,
//!   so the implicit methods get its exact Jacobian; reference `Krogstad`
//!   at `h = 2/2^16` (checked against `Bdf` at tol 1e-12).
//!
//! Methods: `Etdrk4` at `h = T/2^k`, the adaptive `Etdrk32`, `Tsit5`, `Bdf`
//! and `Esdirk34` at rtol = atol = 1e-3 … 1e-9. For each target error
//! (1e-3, 1e-5, 1e-7) each method's cheapest run (by a first untimed run)
//! whose error is at most the target is timed (median per solve); the
//! table prints NFE, time, the error reached, and the time relative to the
//! fastest exponential method's at that target. `Etdrk32` runs its
//! default controller, the step ladder it suggests ([`StepLadder`], 4
//! rungs per octave around the default PI controller); `Etdrk32PI` is
//! `Etdrk32` under a plain PI controller chosen explicitly (what the
//! default was before the method suggested the ladder).
//!
//! # 3. Etdrk32's per-step-size φ cost
//!
//! The adaptive method needs its φ operators for each new step size
//! (`solvers/src/expint/ops.rs`). For both problems above at rtol = atol
//! = 1e-4, 1e-6, 1e-8: steps (accepted + rejected), NFE, time per solve
//! and error of `Etdrk32` under an explicitly chosen PI controller, under
//! the step ladder chosen explicitly, and with the options' default
//! controller (which the method replaces by the ladder it suggests,
//! `Solver::suggested_controller`): the ladder's step sizes repeat, so
//! the operators kept for recent step sizes (an LRU of 8) are swapped back
//! in instead of recomputed.
//! With `EXPINT_PHI_ONLY` set, the report runs this section only.

use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustfft::num_complex::Complex64;
use rustfft::{Fft, FftPlanner};
use sdeflow::control::{Controller, PiController, StepLadder};
use sdeflow::expint::{Diagonal, Etdrk4, Etdrk32, Krogstad, Semilinear, phi_all};
use sdeflow::prelude::*;

#[path = "../tests/common/kuramoto_sivashinsky.rs"]
mod kuramoto_sivashinsky;
use kuramoto_sivashinsky::{
    KS_H, KsField, Spectral, ks_linear, ks_wavenumbers, kuramoto_sivashinsky,
};

#[path = "common/timing.rs"]
mod timing;
use timing::{Timer, Timing, measure, measure_pair};

/// The span of the KS runs.
const KS_T: f64 = 30.0;

/// The largest absolute difference.
fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

// ---------------------------------------------------------------------------
// 1. the floor

/// ETDRK4 for Kuramoto–Sivashinsky written by hand (Kassam–Trefethen's
/// loop): complex coefficients `v`, diagonal coefficients precomputed.
struct HandEtdrk4 {
    n: usize,
    fwd: Arc<dyn Fft<f64>>,
    inv: Arc<dyn Fft<f64>>,
    /// `−k/2`.
    g: Vec<f64>,
    e: Vec<f64>,
    e2: Vec<f64>,
    q: Vec<f64>,
    f1: Vec<f64>,
    f2: Vec<f64>,
    f3: Vec<f64>,
    v0: Vec<Complex64>,
    v: Vec<Complex64>,
    nv: Vec<Complex64>,
    a: Vec<Complex64>,
    na: Vec<Complex64>,
    b: Vec<Complex64>,
    nb: Vec<Complex64>,
    c: Vec<Complex64>,
    nc: Vec<Complex64>,
    scratch: Vec<Complex64>,
}

impl HandEtdrk4 {
    fn new(n: usize, h: f64, y0: &[f64]) -> Self {
        let mut planner = FftPlanner::new();
        let (fwd, inv) = (planner.plan_fft_forward(n), planner.plan_fft_inverse(n));
        let scratch_len = fwd
            .get_inplace_scratch_len()
            .max(inv.get_inplace_scratch_len());
        let lam = ks_linear(n);
        let mut p = [0.0; 4];
        let mut p2 = [0.0; 2];
        let (mut e, mut e2, mut q, mut f1, mut f2, mut f3) = (
            vec![0.0; n],
            vec![0.0; n],
            vec![0.0; n],
            vec![0.0; n],
            vec![0.0; n],
            vec![0.0; n],
        );
        for j in 0..n {
            let z = h * lam[j];
            phi_all(z, &mut p);
            phi_all(z / 2.0, &mut p2);
            e[j] = p[0];
            e2[j] = p2[0];
            q[j] = 0.5 * h * p2[1];
            f1[j] = h * (p[1] - 3.0 * p[2] + 4.0 * p[3]);
            f2[j] = h * (p[2] - 2.0 * p[3]);
            f3[j] = h * (4.0 * p[3] - p[2]);
        }
        let zero = vec![Complex64::new(0.0, 0.0); n];
        let v0: Vec<Complex64> = y0
            .chunks_exact(2)
            .map(|c| Complex64::new(c[0], c[1]))
            .collect();
        HandEtdrk4 {
            n,
            fwd,
            inv,
            g: ks_wavenumbers(n).iter().map(|k| -0.5 * k).collect(),
            e,
            e2,
            q,
            f1,
            f2,
            f3,
            v: v0.clone(),
            v0,
            nv: zero.clone(),
            a: zero.clone(),
            na: zero.clone(),
            b: zero.clone(),
            nb: zero.clone(),
            c: zero.clone(),
            nc: zero,
            scratch: vec![Complex64::new(0.0, 0.0); scratch_len],
        }
    }

    /// `out = g · fft(real(ifft(src))²)`.
    fn nonlinear(&mut self, src: Src, out: Dst) {
        let n = self.n;
        let (s, o) = match (src, out) {
            (Src::V, Dst::Nv) => (&self.v, &mut self.nv),
            (Src::A, Dst::Na) => (&self.a, &mut self.na),
            (Src::B, Dst::Nb) => (&self.b, &mut self.nb),
            (Src::C, Dst::Nc) => (&self.c, &mut self.nc),
            _ => unreachable!("the pairs above are the only ones used"),
        };
        o.copy_from_slice(s);
        self.inv.process_with_scratch(o, &mut self.scratch);
        let scale = 1.0 / (n as f64 * n as f64);
        for z in o.iter_mut() {
            *z = Complex64::new(z.re * z.re * scale, 0.0);
        }
        self.fwd.process_with_scratch(o, &mut self.scratch);
        for (z, &g) in o.iter_mut().zip(&self.g) {
            *z = Complex64::new(-g * z.im, g * z.re);
        }
    }

    fn step(&mut self) {
        self.nonlinear(Src::V, Dst::Nv);
        for j in 0..self.n {
            self.a[j] = self.v[j] * self.e2[j] + self.nv[j] * self.q[j];
        }
        self.nonlinear(Src::A, Dst::Na);
        for j in 0..self.n {
            self.b[j] = self.v[j] * self.e2[j] + self.na[j] * self.q[j];
        }
        self.nonlinear(Src::B, Dst::Nb);
        for j in 0..self.n {
            self.c[j] = self.a[j] * self.e2[j] + (self.nb[j] * 2.0 - self.nv[j]) * self.q[j];
        }
        self.nonlinear(Src::C, Dst::Nc);
        for j in 0..self.n {
            self.v[j] = self.v[j] * self.e[j]
                + self.nv[j] * self.f1[j]
                + (self.na[j] + self.nb[j]) * (2.0 * self.f2[j])
                + self.nc[j] * self.f3[j];
        }
    }

    /// `steps` steps from the initial state; the final coefficients.
    fn run(&mut self, steps: usize) -> &[Complex64] {
        self.v.copy_from_slice(&self.v0);
        for _ in 0..steps {
            self.step();
        }
        &self.v
    }
}

#[derive(Clone, Copy)]
enum Src {
    V,
    A,
    B,
    C,
}

#[derive(Clone, Copy)]
enum Dst {
    Nv,
    Na,
    Nb,
    Nc,
}

/// The floor comparison at `n` modes.
fn floor_case(n: usize, cfg: &Timer) {
    let problem = kuramoto_sivashinsky(n, KS_T);
    let spectral = Spectral::new(n);
    let steps = (KS_T / KS_H).round() as usize;
    let grid = |y: &[f64]| {
        let mut u = vec![0.0; n];
        spectral.to_grid(y, &mut u);
        u
    };
    let reference = solve(
        &problem,
        Krogstad,
        Options::default()
            .fixed_step(1.0 / 256.0)
            .save_at(SaveAt::T1),
    )
    .expect("reference solve");
    let u_ref = grid(reference.last());
    let opts = Options::default().fixed_step(KS_H).save_at(SaveAt::T1);
    let sol = solve(&problem, Etdrk4, &opts).expect("Etdrk4 solve");
    let err_solver = max_abs_diff(&grid(sol.last()), &u_ref);
    let mut hand = HandEtdrk4::new(n, KS_H, &problem.y0);
    let y_hand: Vec<f64> = hand.run(steps).iter().flat_map(|z| [z.re, z.im]).collect();
    let err_hand = max_abs_diff(&grid(&y_hand), &u_ref);
    // whole solves of `steps` and of `2 steps` steps: the per-step time with
    // the setup (the solver's operators, its cache) included, and the
    // marginal time per step (the difference over the extra steps)
    let long = kuramoto_sivashinsky(n, 2.0 * KS_T);
    let mut time_pair = |p: &Problem<_>, k: usize| {
        measure_pair(
            || {
                solve(black_box(p), Etdrk4, &opts)
                    .expect("Etdrk4 solve")
                    .stats
                    .drift_evals
            },
            || hand.run(black_box(k)).len(),
            cfg,
        )
    };
    let (ts, th, ratio) = time_pair(&problem, steps);
    let (ts2, th2, _) = time_pair(&long, 2 * steps);
    let per = |t: Timing| t.median * 1e6 / steps as f64;
    let (ms, mh) = (
        (ts2.median - ts.median) * 1e6 / steps as f64,
        (th2.median - th.median) * 1e6 / steps as f64,
    );
    let marginal = ms / mh;
    println!(
        "{n:>6} {:>10.2} {:>10.2} {:>7.2} {:>10.2} {:>10.2} {:>7.2} {:>11.3e} {:>11.3e}{}",
        per(ts),
        per(th),
        ratio,
        ms,
        mh,
        marginal,
        err_solver,
        err_hand,
        if marginal <= 1.3 { "" } else { "  (above 1.3)" }
    );
}

// ---------------------------------------------------------------------------
// 2. matched error

/// The nonlinearity of the stiff semilinear problem (module docs).
#[derive(Clone, Copy)]
struct StiffN;

impl GenericField for StiffN {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, y: &[D], _p: &[D], out: &mut [D]) {
        let n = y.len();
        for i in 0..n {
            out[i] = y[(i + 1) % n].sin() - y[i] * y[i] * y[i] / 3.0 + t.cos();
        }
    }
}

/// Dimension of the stiff semilinear problem.
const STIFF_N: usize = 32;

fn stiff_problem() -> Problem<Semilinear<Diagonal, Generic<StiffN>>> {
    let lam: Vec<f64> = (0..STIFF_N)
        .map(|i| -(10f64.powf(4.0 * i as f64 / (STIFF_N - 1) as f64)))
        .collect();
    Problem::ode_field(
        Semilinear::new(Diagonal(lam), Generic(StiffN)),
        vec![1.0; STIFF_N],
        (0.0, 2.0),
    )
}

/// One run: a method at one setting, its work and error.
struct Point {
    method: &'static str,
    setting: String,
    nfe: usize,
    err: f64,
    /// Wall time of the first (untimed-loop) run, seconds.
    first: f64,
    run: Box<dyn Fn() -> usize>,
}

/// Every method's runs on `problem` (`err_of` maps a final state to the
/// error).
fn points<F: Drift + 'static>(
    problem: &Rc<Problem<Semilinear<Diagonal, F>>>,
    span: f64,
    err_of: &dyn Fn(&[f64]) -> f64,
) -> Vec<Point>
where
    Semilinear<Diagonal, F>: Drift,
{
    let tols = [1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9];
    let mut out = Vec::new();
    let mut add = |method: &'static str, setting: String, opts: Options, which: u8| {
        let p = Rc::clone(problem);
        let run = move || -> Result<Solution, SolveError> {
            match which {
                0 => solve(&*p, Etdrk4, &opts),
                1 => solve(&*p, Etdrk32, &opts),
                2 => solve(&*p, Tsit5, &opts),
                3 => solve(&*p, Bdf::default(), &opts),
                5 => solve(&*p, Etdrk32, plain_pi(&opts)),
                _ => solve(&*p, Esdirk34::default(), &opts),
            }
        };
        let start = Instant::now();
        let Ok(sol) = run() else {
            println!("  ({method} {setting}: failed, skipped)");
            return;
        };
        let first = start.elapsed().as_secs_f64();
        out.push(Point {
            method,
            setting,
            nfe: sol.stats.drift_evals,
            err: err_of(sol.last()),
            first,
            run: Box::new(move || run().map_or(0, |s| s.stats.drift_evals)),
        });
    };
    for k in 2..=11 {
        let steps = 1usize << k;
        let h = span / steps as f64;
        let opts = Options::default()
            .fixed_step(h)
            .save_at(SaveAt::T1)
            .max_steps(1 << 20);
        add("Etdrk4", format!("h = {span}/{steps}"), opts, 0);
    }
    for (name, which) in [
        ("Etdrk32", 1),
        ("Etdrk32PI", 5),
        ("Tsit5", 2),
        ("Bdf", 3),
        ("Esdirk34", 4),
    ] {
        for &tol in &tols {
            let opts = Options::default()
                .tol(tol)
                .save_at(SaveAt::T1)
                .max_steps(1 << 20);
            add(name, format!("tol = {tol:.0e}"), opts, which);
        }
    }
    out
}

/// Prints the matched-error table of `pts`.
fn matched_table(title: &str, pts: &[Point], cfg: &Timer) {
    println!("\n== {title}: cheapest run per method reaching each target error ==");
    println!(
        "{:>8} {:>10} {:>14} {:>8} {:>12} {:>11} {:>9}",
        "target", "method", "setting", "NFE", "time [ms]", "error", "vs exp"
    );
    for target in [1e-3, 1e-5, 1e-7] {
        let mut rows: Vec<(&Point, f64)> = Vec::new();
        for m in ["Etdrk4", "Etdrk32", "Etdrk32PI", "Tsit5", "Bdf", "Esdirk34"] {
            let best = pts
                .iter()
                .filter(|p| p.method == m && p.err <= target)
                .min_by(|a, b| a.first.total_cmp(&b.first));
            if let Some(p) = best {
                let t = measure(|| (p.run)(), cfg);
                rows.push((p, t.median));
            }
        }
        let exp_best = rows
            .iter()
            .filter(|(p, _)| p.method.starts_with("Etdrk"))
            .map(|(_, t)| *t)
            .fold(f64::INFINITY, f64::min);
        for (p, t) in &rows {
            println!(
                "{:>8.0e} {:>10} {:>14} {:>8} {:>12.3} {:>11.2e} {:>8.1}x",
                target,
                p.method,
                p.setting,
                p.nfe,
                t * 1e3,
                p.err,
                t / exp_best
            );
        }
        for m in ["Etdrk4", "Etdrk32", "Etdrk32PI", "Tsit5", "Bdf", "Esdirk34"] {
            if !rows.iter().any(|(p, _)| p.method == m) {
                println!("{target:>8.0e} {m:>10}   (no run reached it)");
            }
        }
    }
}

/// `opts` under the step ladder (4 rungs per octave around the default PI
/// controller).
fn ladder(opts: &Options) -> Options {
    opts.clone()
        .controller(Controller::custom(StepLadder::default()))
}

/// `opts` under a plain PI controller chosen explicitly (a custom one, so
/// the method does not replace it by the ladder it suggests).
fn plain_pi(opts: &Options) -> Options {
    opts.clone()
        .controller(Controller::custom(PiController::default()))
}

/// Section 3: Etdrk32 under PI, under the ladder and with the default
/// controller on `problem`.
fn phi_cost_table<F: Drift + 'static>(
    title: &str,
    problem: &Problem<Semilinear<Diagonal, F>>,
    err_of: &dyn Fn(&[f64]) -> f64,
    cfg: &Timer,
) where
    Semilinear<Diagonal, F>: Drift,
{
    println!("\n== Etdrk32's φ cost: {title} ==");
    println!(
        "{:>7} {:>10} {:>8} {:>8} {:>12} {:>11} {:>9}",
        "tol", "control", "steps", "NFE", "time [ms]", "error", "vs PI"
    );
    for tol in [1e-4, 1e-6, 1e-8] {
        let base = Options::default()
            .tol(tol)
            .save_at(SaveAt::T1)
            .max_steps(1 << 20);
        let mut t_pi = f64::NAN;
        for (name, opts) in [
            ("PI", plain_pi(&base)),
            ("ladder", ladder(&base)),
            ("default", base.clone()),
        ] {
            let sol = solve(problem, Etdrk32, &opts).expect("Etdrk32");
            let t = measure(
                || solve(problem, Etdrk32, &opts).map_or(0, |s| s.stats.drift_evals),
                cfg,
            )
            .median;
            if name == "PI" {
                t_pi = t;
            }
            println!(
                "{:>7.0e} {:>10} {:>8} {:>8} {:>12.3} {:>11.2e} {:>8.2}x",
                tol,
                name,
                sol.stats.accepted_steps + sol.stats.rejected_steps,
                sol.stats.drift_evals,
                t * 1e3,
                err_of(sol.last()),
                t / t_pi
            );
        }
    }
}

fn main() {
    let cfg = Timer::from_args(Duration::from_millis(500), 7);
    if cfg.quick {
        println!("expint: test mode (no `--bench`): every case runs once, times are single runs");
    }
    if std::env::var_os("EXPINT_PHI_ONLY").is_some() {
        phi_only(&cfg);
        return;
    }
    println!(
        "== ETDRK4 on Kuramoto–Sivashinsky, h = 1/4, t ∈ [0, {KS_T}]: solve vs a hand-written loop =="
    );
    println!(
        "{:>6} {:>10} {:>10} {:>7} {:>10} {:>10} {:>7} {:>11} {:>11}",
        "N", "solve", "hand", "ratio", "solve+", "hand+", "ratio+", "err solve", "err hand"
    );
    println!(
        "       (µs per step over a whole solve of {} steps; + marginal µs per step, from solves \
         of {} and {} steps)",
        (KS_T / KS_H) as usize,
        (KS_T / KS_H) as usize,
        2 * (KS_T / KS_H) as usize
    );
    for n in [128, 1024] {
        floor_case(n, &cfg);
    }
    if std::env::var_os("EXPINT_FLOOR_ONLY").is_some() {
        return;
    }

    // KS at N = 128
    let (ks, ks_err) = ks_with_error(128);
    let ks = Rc::new(ks);
    let pts = points(&ks, KS_T, &ks_err);
    matched_table(
        "Kuramoto–Sivashinsky, N = 128, t ∈ [0, 30], max-abs error of u(x, 30)",
        &pts,
        &cfg,
    );

    // the stiff semilinear ODE
    let stiff = Rc::new(stiff_problem());
    let reference = solve(
        &*stiff,
        Krogstad,
        Options::default()
            .fixed_step(2.0 / 65536.0)
            .save_at(SaveAt::T1),
    )
    .expect("stiff reference");
    let y_ref = reference.last().to_vec();
    let bdf_ref = solve(
        &*stiff,
        Bdf::default(),
        Options::default().tol(1e-12).save_at(SaveAt::T1),
    )
    .expect("Bdf check of the reference");
    println!(
        "\nstiff semilinear reference (Krogstad, h = 2/65536) vs Bdf at tol 1e-12: {:.1e}",
        max_abs_diff(&y_ref, bdf_ref.last())
    );
    let pts = points(&stiff, 2.0, &|y| max_abs_diff(y, &y_ref));
    matched_table(
        "stiff semilinear, 32 components, λ = −1 … −1e4, t ∈ [0, 2], max-abs error of y(2)",
        &pts,
        &cfg,
    );
    phi_only(&cfg);
}

/// Section 3 alone (`EXPINT_PHI_ONLY`): the references, then the tables.
fn phi_only(cfg: &Timer) {
    let (ks, ks_err) = ks_with_error(128);
    phi_cost_table("Kuramoto–Sivashinsky, N = 128", &ks, &ks_err, cfg);
    let stiff = stiff_problem();
    let reference = solve(
        &stiff,
        Krogstad,
        Options::default()
            .fixed_step(2.0 / 65536.0)
            .save_at(SaveAt::T1),
    )
    .expect("stiff reference");
    let y_ref = reference.last().to_vec();
    phi_cost_table(
        "stiff semilinear, 32 components",
        &stiff,
        &|y| max_abs_diff(y, &y_ref),
        cfg,
    );
}

/// Kuramoto–Sivashinsky with `n` modes on `[0, KS_T]`, and the max-abs
/// error of a final state's `u(x, KS_T)` against `Krogstad` at `h = 1/256`.
fn ks_with_error(n: usize) -> (Problem<KsField>, impl Fn(&[f64]) -> f64) {
    let ks = kuramoto_sivashinsky(n, KS_T);
    let spectral = Spectral::new(n);
    let grid = move |y: &[f64]| {
        let mut u = vec![0.0; n];
        spectral.to_grid(y, &mut u);
        u
    };
    let reference = solve(
        &ks,
        Krogstad,
        Options::default()
            .fixed_step(1.0 / 256.0)
            .save_at(SaveAt::T1),
    )
    .expect("KS reference");
    let u_ref = grid(reference.last());
    (ks, move |y: &[f64]| max_abs_diff(&grid(y), &u_ref))
}
