//! Work, accuracy and speed report of sdeflow's ODE solvers, with diffsol as
//! a reference implementation. Plain `fn main` (no criterion).
//!
//! Run with `cargo bench --bench nfe_report` (release build). It prints the
//! tables below and writes them as CSV to `target/bench-report/nfe_report.csv`.
//!
//! # What is measured
//!
//! * **Explicit adaptive solvers** Heun, Bs3, Dopri5, Tsit5 and Vern7 on
//!   Lotka–Volterra (α=1.5, β=1, γ=3, δ=1, y0=(1, 1), t ∈ [0, 10]) and on the
//!   Arenstorf orbit (one period; the reference is the initial state), at
//!   rtol = atol ∈ {1e-4, 1e-6, 1e-8}: drift evaluations (NFE), accepted and
//!   rejected steps, max-abs error of y(t1) against the reference, and wall
//!   time per solve.
//! * **diffsol 0.18's explicit `tsit45`** on the same problems and
//!   tolerances, with its NFE (rhs calls from the operator statistics), steps,
//!   error and time, and the time ratio sdeflow-Tsit5 / diffsol-tsit45.
//! * **Stiff solvers** Bdf, TrBdf2 and Esdirk34 on Van der Pol in Hairer's
//!   scaled form (ε = 1e-6, i.e. μ = 1000, y0 = (2, 0), t ∈ [0, 2], reference
//!   from the Bari/Hairer test set) at rtol = atol ∈ {1e-6, 1e-8}, with an
//!   analytic Jacobian: NFE, Jacobian evaluations, steps, error, time; and
//!   the same diffsol solvers called directly (no sdeflow wrapper), to show
//!   the native implementations' cost (all three run natively in sdeflow's
//!   loop).
//! * **Native stiff solvers vs diffsol** Bdf, Esdirk34 and TrBdf2 (native,
//!   in the generic loop) against diffsol's `bdf`, `esdirk34` and `tr_bdf2`
//!   called directly, on Robertson to t = 1e5 and HIRES (Bari test set), at
//!   rtol ∈ {1e-6, 1e-8}, atol = rtol/100, analytic Jacobians: NFE,
//!   Jacobians, LU factorisations, steps, max relative error against the
//!   reference, time, and the paired time ratio native/diffsol.
//!
//! # What the timings compare (kept fair on purpose)
//!
//! * sdeflow: one `solve(&problem, method, &options)` call with
//!   `SaveAt::T1` (only the final state is stored, nothing per step). This
//!   includes option validation, the initial drift probe, the initial-step
//!   heuristic and the allocation of the workspace.
//! * diffsol: creating the solver (`problem.tsit45()`, which evaluates the
//!   initial derivative and runs diffsol's initial-step heuristic), then
//!   `set_stop_time(t1)` and a loop of `step()` until `TstopReached`.
//!   `solve()` is *not* used, because it stores every step. The
//!   `OdeSolverProblem` is built once outside the timed region, like the
//!   sdeflow `Problem`.
//! * Both evaluate the very same right-hand-side function (statically
//!   dispatched), at the same scalar rtol = atol.
//! * The two libraries use different error norms and step-size controllers,
//!   so their step counts differ: the ratio is the cost *at the same
//!   tolerance*, not at the same accuracy. Compare the errors, and the time
//!   per drift evaluation (`ns/NFE`), too.
//!
//! # Timing
//!
//! Each case is warmed up, then run in batches of about 2 ms until at least
//! 0.3 s have elapsed (and at least 7 batches). The reported time is the
//! median over batches of the time per solve; `±` is half the
//! inter-quartile range of the batches, relative to the median. Tsit5 and
//! tsit45 are timed in alternating batches, and their ratio is the median of
//! the per-pair ratios, so that load from other processes affects both.
//!
//! Like criterion, the report runs every case only once (no timing loop, no
//! CSV) when cargo does not pass `--bench`, e.g. under
//! `cargo test --benches`, or with `--test` or `--quick`. Other arguments
//! are ignored.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use diffsol::op::OpStatistics;
use diffsol::{DiffsolError, NalgebraLU, OdeBuilder, OdeEquations, Op};
use sdeflow::prelude::*;

#[path = "../tests/common/mod.rs"]
mod common;
use common::{HIRES_REF, HIRES_T1, HIRES_Y0, ROBER_1E5, VDP_EPS, VDP_REF, max_abs_diff};

#[path = "common/explicit.rs"]
mod explicit;
use explicit::{
    Arenstorf, Case, DMat, DiffsolOutcome, LotkaVolterra, MAX_STEPS, diffsol_case, sdeflow_problem,
    step_to_end,
};

type Lu = NalgebraLU<f64>;

/// Name of the Van der Pol case in the report.
const VDP_NAME: &str = "Van der Pol μ=1000";
/// End of the Van der Pol span.
const VDP_T1: f64 = 2.0;

/// Van der Pol, Hairer's scaled form: y1' = y2, y2' = ((1 − y1²) y2 − y1)/ε.
#[inline(always)]
fn vdp_rhs(y: &[f64], dy: &mut [f64]) {
    dy[0] = y[1];
    dy[1] = ((1.0 - y[0] * y[0]) * y[1] - y[0]) / VDP_EPS;
}

/// Its Jacobian, column-major: `jac[i + 2 j] = ∂f_i/∂y_j`.
#[inline(always)]
fn vdp_jacobian(y: &[f64], jac: &mut [f64]) {
    jac[0] = 0.0;
    jac[1] = (-2.0 * y[0] * y[1] - 1.0) / VDP_EPS;
    jac[2] = 1.0;
    jac[3] = (1.0 - y[0] * y[0]) / VDP_EPS;
}

/// The sdeflow Van der Pol problem, with its analytic Jacobian.
fn vdp_problem() -> Problem<impl Drift> {
    Problem::ode(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| vdp_rhs(y, dy),
        vec![2.0, 0.0],
        (0.0, VDP_T1),
    )
    .with_jacobian(|_t: f64, y: &[f64], _p: &[f64], jac: &mut [f64]| vdp_jacobian(y, jac))
}

#[path = "common/timing.rs"]
mod timing;
use timing::{Timer as Config, Timing, csv_cells, measure, measure_pair};

// Rows of the report
// ---------------------------------------------------------------------------

/// One line of the report.
#[derive(Debug, Clone)]
struct Row {
    section: &'static str,
    problem: &'static str,
    solver: &'static str,
    implementation: &'static str,
    tol: f64,
    /// Absolute tolerance when it differs from `tol`.
    atol: Option<f64>,
    nfe: usize,
    jac: Option<usize>,
    /// LU factorisations (stiff solvers).
    lu: Option<usize>,
    accepted: usize,
    rejected: usize,
    err: f64,
    /// Whether `err` is the max absolute error or the max relative error.
    relative: bool,
    time: Option<Timing>,
    /// sdeflow time / diffsol time of the same method and case.
    ratio: Option<f64>,
    /// `ok`, or why the solve failed.
    status: String,
}

impl Row {
    /// The row of `solver` (by `implementation`) on `problem` at `tol`,
    /// before anything is measured.
    fn new(
        section: &'static str,
        problem: &'static str,
        solver: &'static str,
        implementation: &'static str,
        tol: f64,
    ) -> Row {
        Row {
            section,
            problem,
            solver,
            implementation,
            tol,
            atol: None,
            nfe: 0,
            jac: None,
            lu: None,
            accepted: 0,
            rejected: 0,
            err: f64::NAN,
            relative: false,
            time: None,
            ratio: None,
            status: "ok".into(),
        }
    }

    /// The row of a solve that failed, and why.
    fn failed(
        section: &'static str,
        problem: &'static str,
        solver: &'static str,
        implementation: &'static str,
        tol: f64,
        why: String,
    ) -> Row {
        Row {
            status: why,
            ..Row::new(section, problem, solver, implementation, tol)
        }
    }

    /// With the work of an sdeflow solve (Jacobians and LU factorisations
    /// counted if `stiff`).
    fn with_stats(self, s: &Stats, stiff: bool) -> Row {
        Row {
            nfe: s.drift_evals,
            jac: stiff.then_some(s.jacobian_evals),
            lu: stiff.then_some(s.lu_factorizations),
            accepted: s.accepted_steps,
            rejected: s.rejected_steps,
            ..self
        }
    }

    /// With the work of a diffsol solve: the right-hand side's calls (and,
    /// if `stiff`, its Jacobian evaluations) between `before` and `after`,
    /// and the steps (and LU factorisations) of `out`.
    fn with_diffsol(
        self,
        (before, after): (&OpStatistics, &OpStatistics),
        out: &DiffsolOutcome,
        stiff: bool,
    ) -> Row {
        Row {
            nfe: after.number_of_calls - before.number_of_calls,
            jac: stiff.then(|| after.number_of_matrix_evals - before.number_of_matrix_evals),
            lu: stiff.then_some(out.lu),
            accepted: out.accepted,
            rejected: out.rejected,
            ..self
        }
    }

    fn ok(&self) -> bool {
        self.status == "ok"
    }

    fn time_str(&self) -> String {
        self.time.map_or_else(|| "-".into(), |t| fmt_time(t.median))
    }
}

fn fmt_time(secs: f64) -> String {
    if secs < 1e-6 {
        format!("{:.0} ns", secs * 1e9)
    } else if secs < 1e-3 {
        format!("{:.3} µs", secs * 1e6)
    } else if secs < 1.0 {
        format!("{:.3} ms", secs * 1e3)
    } else {
        format!("{secs:.3} s")
    }
}

/// A problem to run sdeflow solvers on, with what the rows need to know.
struct Bench<'a, F> {
    section: &'static str,
    name: &'static str,
    problem: &'a Problem<F>,
    reference: &'a [f64],
    cfg: Config,
}

impl<F: Drift> Bench<'_, F> {
    /// One solve with `method` at rtol = atol = `tol` (its work and error),
    /// then its timing.
    fn row<S: Method<Problem<F>> + Copy>(&self, method: S, solver: &'static str, tol: f64) -> Row {
        let (section, problem) = (self.section, self.problem);
        let opts = Options::default()
            .tol(tol)
            .save_at(SaveAt::T1)
            .max_steps(MAX_STEPS);
        let sol = match solve(problem, method, &opts) {
            Ok(sol) => sol,
            Err(e) => {
                let why = format!("failed: {e}");
                return Row::failed(section, self.name, solver, "sdeflow", tol, why);
            }
        };
        let time = measure(|| solve(black_box(problem), method, &opts), &self.cfg);
        Row {
            err: max_abs_diff(sol.last(), self.reference),
            time: Some(time),
            ..Row::new(section, self.name, solver, "sdeflow", tol)
        }
        .with_stats(&sol.stats, section == "stiff")
    }
}

/// sdeflow Tsit5 and diffsol tsit45 on case `C` (the problem of `bench`)
/// at `tol`, timed in alternating batches. Returns (Tsit5 row, tsit45 row).
fn tsit5_vs_tsit45<C: Case, F: Drift>(bench: &Bench<'_, F>, tol: f64) -> (Row, Row) {
    let cfg = &bench.cfg;
    // Tsit5's work and error; its time comes from the pair below
    let single = Bench {
        cfg: Config {
            quick: true,
            ..*cfg
        },
        ..*bench
    };
    let mut ours = single.row(Tsit5, "Tsit5", tol);
    let theirs = match diffsol_tsit45::<C>(bench.problem, &mut ours, tol, cfg) {
        Ok(row) => row,
        Err(e) => {
            let why = format!("failed: {e}");
            Row::failed("explicit", C::NAME, "tsit45", "diffsol", tol, why)
        }
    };
    if ours.ok() && !theirs.ok() {
        // no pair: time Tsit5 alone
        let opts = Options::default()
            .tol(tol)
            .save_at(SaveAt::T1)
            .max_steps(MAX_STEPS);
        ours.time = Some(measure(
            || solve(black_box(bench.problem), Tsit5, &opts),
            cfg,
        ));
    }
    (ours, theirs)
}

/// diffsol tsit45 on case `C`: its row, timed in pairs with sdeflow's Tsit5
/// (whose row `ours` gets the paired time and the ratio).
fn diffsol_tsit45<C: Case>(
    problem: &Problem<impl Drift>,
    ours: &mut Row,
    tol: f64,
    cfg: &Config,
) -> Result<Row, DiffsolError> {
    let run = diffsol_case::<C>(tol)?;
    let out = run()?;
    let mut row = Row {
        err: max_abs_diff(&out.y, C::REFERENCE),
        nfe: out.nfe,
        accepted: out.accepted,
        rejected: out.rejected,
        ..Row::new("explicit", C::NAME, "tsit45", "diffsol", tol)
    };
    if ours.ok() {
        let opts = Options::default()
            .tol(tol)
            .save_at(SaveAt::T1)
            .max_steps(MAX_STEPS);
        let (ta, tb, ratio) = measure_pair(
            || solve(black_box(problem), Tsit5, &opts),
            || run().map(|o| o.y),
            cfg,
        );
        ours.time = Some(ta);
        ours.ratio = Some(ratio);
        row.time = Some(tb);
    } else {
        row.time = Some(measure(|| run().map(|o| o.y), cfg));
    }
    Ok(row)
}

/// The stiff solvers of sdeflow and of diffsol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StiffKind {
    Bdf,
    TrBdf2,
    Esdirk34,
}

impl StiffKind {
    fn name(self) -> &'static str {
        match self {
            StiffKind::Bdf => "Bdf",
            StiffKind::TrBdf2 => "TrBdf2",
            StiffKind::Esdirk34 => "Esdirk34",
        }
    }
}

/// diffsol's own solver on Van der Pol, called directly, with the options
/// sdeflow's wrapper sets (so the two do the same work).
fn diffsol_vdp(kind: StiffKind, tol: f64, cfg: &Config) -> Result<Row, DiffsolError> {
    let mut dproblem = OdeBuilder::<DMat>::new()
        .rtol(tol)
        .atol([tol])
        .rhs_implicit(
            |y: &[f64], _p: &[f64], _t: f64, dy: &mut [f64]| vdp_rhs(y, dy),
            |y: &[f64], _p: &[f64], _t: f64, v: &[f64], jv: &mut [f64]| {
                let mut jac = [0.0; 4];
                vdp_jacobian(y, &mut jac);
                jv[0] = jac[0] * v[0] + jac[2] * v[1];
                jv[1] = jac[1] * v[0] + jac[3] * v[1];
            },
        )
        .init(
            |_p: &[f64], _t: f64, y: &mut [f64]| {
                y[0] = 2.0;
                y[1] = 0.0;
            },
            2,
        )
        .build()?;
    // as in solvers/src/stiff.rs
    dproblem.ode_options.min_timestep = 16.0 * f64::EPSILON * VDP_T1;
    dproblem.ode_options.max_nonlinear_solver_failures = usize::MAX / 2;
    dproblem.ode_options.max_error_test_failures = 60;
    let dproblem = dproblem;
    let run = || match kind {
        StiffKind::Bdf => step_to_end(dproblem.bdf::<Lu>()?, VDP_T1),
        StiffKind::TrBdf2 => step_to_end(dproblem.tr_bdf2::<Lu>()?, VDP_T1),
        StiffKind::Esdirk34 => step_to_end(dproblem.esdirk34::<Lu>()?, VDP_T1),
    };
    let before = dproblem.eqn.rhs().statistics();
    let out = run()?;
    let after = dproblem.eqn.rhs().statistics();
    let time = measure(|| run().map(|o| o.y), cfg);
    Ok(Row {
        err: max_abs_diff(&out.y, &VDP_REF),
        time: Some(time),
        ..Row::new("stiff", VDP_NAME, kind.name(), "diffsol", tol)
    }
    .with_diffsol((&before, &after), &out, true))
}

// ---------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------

const TOLS: [f64; 3] = [1e-4, 1e-6, 1e-8];
const STIFF_TOLS: [f64; 2] = [1e-6, 1e-8];

/// Explicit rows of case `C`: every sdeflow solver, then diffsol tsit45.
fn explicit_rows<C: Case>(cfg: &Config, rows: &mut Vec<Row>) {
    let problem = sdeflow_problem::<C>();
    let bench = Bench {
        section: "explicit",
        name: C::NAME,
        problem: &problem,
        reference: C::REFERENCE,
        cfg: *cfg,
    };
    let mut push = |row: Row| {
        print_row(&row);
        rows.push(row);
    };
    for tol in TOLS {
        push(bench.row(Heun, "Heun", tol));
        push(bench.row(Bs3, "Bs3", tol));
        push(bench.row(Dopri5, "Dopri5", tol));
        let (ours, theirs) = tsit5_vs_tsit45::<C, _>(&bench, tol);
        push(ours);
        push(bench.row(Vern7, "Vern7", tol));
        push(theirs);
    }
}

fn stiff_rows(cfg: &Config, rows: &mut Vec<Row>) {
    let problem = vdp_problem();
    let bench = Bench {
        section: "stiff",
        name: VDP_NAME,
        problem: &problem,
        reference: &VDP_REF,
        cfg: *cfg,
    };
    for tol in STIFF_TOLS {
        for kind in [StiffKind::Bdf, StiffKind::TrBdf2, StiffKind::Esdirk34] {
            let name = kind.name();
            let mut ours = match kind {
                // native: Newton and order choice in the solve's tolerances
                StiffKind::Bdf => bench.row(Bdf::default(), name, tol),
                // native: Newton measured in the solve's tolerances
                StiffKind::TrBdf2 => bench.row(TrBdf2::default().tolerances(tol, tol), name, tol),
                StiffKind::Esdirk34 => {
                    bench.row(Esdirk34::default().tolerances(tol, tol), name, tol)
                }
            };
            let theirs = diffsol_vdp(kind, tol, cfg).unwrap_or_else(|e| {
                Row::failed(
                    "stiff",
                    VDP_NAME,
                    name,
                    "diffsol",
                    tol,
                    format!("failed: {e}"),
                )
            });
            if let (Some(a), Some(b)) = (ours.time, theirs.time) {
                ours.ratio = Some(a.median / b.median);
            }
            print_row(&ours);
            print_row(&theirs);
            rows.push(ours);
            rows.push(theirs);
        }
    }
}

// ---------------------------------------------------------------------------
// Native stiff solvers vs diffsol on Robertson and HIRES
// ---------------------------------------------------------------------------

/// A stiff case with an analytic Jacobian and a reference end state.
trait StiffCase {
    const NAME: &'static str;
    const T1: f64;
    const Y0: &'static [f64];
    /// The reference `y(T1)`.
    const REFERENCE: &'static [f64];
    fn rhs(y: &[f64], dy: &mut [f64]);
    /// Column-major `∂f/∂y`.
    fn jacobian(y: &[f64], jac: &mut [f64]);
}

/// Robertson's kinetics (Bari test set `rober`) to t = 1e5.
struct Robertson;

impl StiffCase for Robertson {
    const NAME: &'static str = "Robertson t=1e5";
    const T1: f64 = 1e5;
    const Y0: &'static [f64] = &[1.0, 0.0, 0.0];
    const REFERENCE: &'static [f64] = &ROBER_1E5;
    #[inline(always)]
    fn rhs(y: &[f64], dy: &mut [f64]) {
        dy[0] = -0.04 * y[0] + 1e4 * y[1] * y[2];
        dy[1] = 0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] * y[1];
        dy[2] = 3e7 * y[1] * y[1];
    }
    #[inline(always)]
    fn jacobian(y: &[f64], j: &mut [f64]) {
        j[0] = -0.04;
        j[1] = 0.04;
        j[2] = 0.0;
        j[3] = 1e4 * y[2];
        j[4] = -1e4 * y[2] - 6e7 * y[1];
        j[5] = 6e7 * y[1];
        j[6] = 1e4 * y[1];
        j[7] = -1e4 * y[1];
        j[8] = 0.0;
    }
}

/// HIRES (Bari test set `hires`) on [0, 321.8122].
struct Hires;

impl StiffCase for Hires {
    const NAME: &'static str = "HIRES";
    const T1: f64 = HIRES_T1;
    const Y0: &'static [f64] = &HIRES_Y0;
    const REFERENCE: &'static [f64] = &HIRES_REF;
    #[inline(always)]
    fn rhs(y: &[f64], f: &mut [f64]) {
        f[0] = -1.71 * y[0] + 0.43 * y[1] + 8.32 * y[2] + 0.0007;
        f[1] = 1.71 * y[0] - 8.75 * y[1];
        f[2] = -10.03 * y[2] + 0.43 * y[3] + 0.035 * y[4];
        f[3] = 8.32 * y[1] + 1.71 * y[2] - 1.12 * y[3];
        f[4] = -1.745 * y[4] + 0.43 * y[5] + 0.43 * y[6];
        f[5] = -280.0 * y[5] * y[7] + 0.69 * y[3] + 1.71 * y[4] - 0.43 * y[5] + 0.69 * y[6];
        f[6] = 280.0 * y[5] * y[7] - 1.81 * y[6];
        f[7] = -280.0 * y[5] * y[7] + 1.81 * y[6];
    }
    fn jacobian(y: &[f64], jac: &mut [f64]) {
        // row i: its nonzero entries (j, ∂f_i/∂y_j)
        let rows: [&[(usize, f64)]; 8] = [
            &[(0, -1.71), (1, 0.43), (2, 8.32)],
            &[(0, 1.71), (1, -8.75)],
            &[(2, -10.03), (3, 0.43), (4, 0.035)],
            &[(1, 8.32), (2, 1.71), (3, -1.12)],
            &[(4, -1.745), (5, 0.43), (6, 0.43)],
            &[
                (3, 0.69),
                (4, 1.71),
                (5, -0.43 - 280.0 * y[7]),
                (6, 0.69),
                (7, -280.0 * y[5]),
            ],
            &[(5, 280.0 * y[7]), (6, -1.81), (7, 280.0 * y[5])],
            &[(5, -280.0 * y[7]), (6, 1.81), (7, -280.0 * y[5])],
        ];
        jac.iter_mut().for_each(|v| *v = 0.0);
        for (i, row) in rows.iter().enumerate() {
            for &(j, v) in *row {
                jac[i + 8 * j] = v;
            }
        }
    }
}

/// Max relative error against the reference.
fn max_rel_diff(a: &[f64], r: &[f64]) -> f64 {
    a.iter()
        .zip(r)
        .map(|(x, y)| ((x - y) / y).abs())
        .fold(0.0, f64::max)
}

/// Native Bdf / Esdirk34 / TrBdf2 and diffsol's bdf / esdirk34 / tr_bdf2
/// (called directly) on case `C` at rtol = `tol`, atol = `tol`/100, both
/// with the analytic Jacobian; the native solvers measure Newton
/// convergence in the same tolerances. Returns (native row, diffsol row).
fn native_vs_diffsol<C: StiffCase>(kind: StiffKind, tol: f64, cfg: &Config) -> (Row, Row) {
    let (rtol, atol) = (tol, tol * 1e-2);
    let n = C::Y0.len();
    let problem = Problem::ode(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| C::rhs(y, dy),
        C::Y0.to_vec(),
        (0.0, C::T1),
    )
    .with_jacobian(|_t: f64, y: &[f64], _p: &[f64], jac: &mut [f64]| C::jacobian(y, jac));
    let opts = Options::default()
        .rtol(rtol)
        .atol(atol)
        .save_at(SaveAt::T1)
        .max_steps(MAX_STEPS);
    let name = kind.name();
    let native = |problem: &Problem<_>| match kind {
        StiffKind::Bdf => solve(problem, Bdf::default(), &opts),
        StiffKind::TrBdf2 => solve(problem, TrBdf2::default().tolerances(rtol, atol), &opts),
        StiffKind::Esdirk34 => solve(problem, Esdirk34::default().tolerances(rtol, atol), &opts),
    };
    let mut ours = match native(&problem) {
        Ok(sol) => Row {
            atol: Some(atol),
            err: max_rel_diff(sol.last(), C::REFERENCE),
            relative: true,
            ..Row::new("stiff-ref", C::NAME, name, "native", rtol)
        }
        .with_stats(&sol.stats, true),
        Err(e) => Row::failed(
            "stiff-ref",
            C::NAME,
            name,
            "native",
            rtol,
            format!("failed: {e}"),
        ),
    };
    let theirs = (|| -> Result<Row, DiffsolError> {
        let y0 = C::Y0.to_vec();
        let mut dproblem = OdeBuilder::<DMat>::new()
            .rtol(rtol)
            .atol(vec![atol; n])
            .rhs_implicit(
                |y: &[f64], _p: &[f64], _t: f64, dy: &mut [f64]| C::rhs(y, dy),
                move |y: &[f64], _p: &[f64], _t: f64, v: &[f64], jv: &mut [f64]| {
                    let mut jac = [0.0; 64];
                    C::jacobian(y, &mut jac[..n * n]);
                    for i in 0..n {
                        jv[i] = (0..n).map(|j| jac[i + n * j] * v[j]).sum();
                    }
                },
            )
            .init(
                move |_p: &[f64], _t: f64, y: &mut [f64]| y.copy_from_slice(&y0),
                n,
            )
            .build()?;
        dproblem.ode_options.min_timestep = 16.0 * f64::EPSILON * C::T1;
        dproblem.ode_options.max_nonlinear_solver_failures = usize::MAX / 2;
        dproblem.ode_options.max_error_test_failures = 60;
        let dproblem = dproblem;
        let run = || match kind {
            StiffKind::Bdf => step_to_end(dproblem.bdf::<Lu>()?, C::T1),
            StiffKind::TrBdf2 => step_to_end(dproblem.tr_bdf2::<Lu>()?, C::T1),
            StiffKind::Esdirk34 => step_to_end(dproblem.esdirk34::<Lu>()?, C::T1),
        };
        let before = dproblem.eqn.rhs().statistics();
        let out = run()?;
        let after = dproblem.eqn.rhs().statistics();
        let (ta, tb, ratio) =
            measure_pair(|| native(black_box(&problem)), || run().map(|o| o.y), cfg);
        if ours.ok() {
            ours.time = Some(ta);
            ours.ratio = Some(ratio);
        }
        Ok(Row {
            atol: Some(atol),
            err: max_rel_diff(&out.y, C::REFERENCE),
            relative: true,
            time: Some(tb),
            ..Row::new("stiff-ref", C::NAME, name, "diffsol", rtol)
        }
        .with_diffsol((&before, &after), &out, true))
    })()
    .unwrap_or_else(|e| {
        Row::failed(
            "stiff-ref",
            C::NAME,
            name,
            "diffsol",
            rtol,
            format!("failed: {e}"),
        )
    });
    if ours.ok() && ours.time.is_none() {
        ours.time = Some(measure(|| native(black_box(&problem)), cfg));
    }
    (ours, theirs)
}

fn native_stiff_rows(cfg: &Config, rows: &mut Vec<Row>) {
    for tol in [1e-6, 1e-8] {
        for kind in [StiffKind::Bdf, StiffKind::Esdirk34, StiffKind::TrBdf2] {
            for (ours, theirs) in [
                native_vs_diffsol::<Robertson>(kind, tol, cfg),
                native_vs_diffsol::<Hires>(kind, tol, cfg),
            ] {
                print_row(&ours);
                print_row(&theirs);
                rows.push(ours);
                rows.push(theirs);
            }
        }
    }
}

const HEADER: &str = "problem              solver    impl      rtol     NFE    Jac    LU      acc     rej   max|err|   time/solve    ±      ns/NFE  sdeflow/diffsol";

fn print_row(r: &Row) {
    if !r.ok() {
        println!(
            "{:<20} {:<9} {:<8} {:>6.0e}  {}",
            r.problem, r.solver, r.implementation, r.tol, r.status
        );
        return;
    }
    let jac = r.jac.map_or_else(|| "-".into(), |j| j.to_string());
    let lu = r.lu.map_or_else(|| "-".into(), |j| j.to_string());
    let err = format!("{:.2e}{}", r.err, if r.relative { "r" } else { "" });
    let (spread, per_nfe) = match r.time {
        Some(t) if t.spread.is_finite() => (
            format!("{:.1}%", 100.0 * t.spread),
            format!("{:.1}", t.median * 1e9 / r.nfe as f64),
        ),
        Some(t) => ("-".into(), format!("{:.1}", t.median * 1e9 / r.nfe as f64)),
        None => ("-".into(), "-".into()),
    };
    let ratio = r.ratio.map_or_else(String::new, |x| format!("{x:.2}"));
    println!(
        "{:<20} {:<9} {:<8} {:>6.0e} {:>7} {:>6} {:>5} {:>8} {:>7}   {:<10} {:>11} {:>6} {:>9}  {:>6}",
        r.problem,
        r.solver,
        r.implementation,
        r.tol,
        r.nfe,
        jac,
        lu,
        r.accepted,
        r.rejected,
        err,
        r.time_str(),
        spread,
        per_nfe,
        ratio
    );
}

/// `Tsit5 vs diffsol tsit45 on … : time ratio …` for one case.
fn ratio_line(ours: &Row, theirs: &Row) -> Option<String> {
    let (a, b, r) = (ours.time?, theirs.time?, ours.ratio?);
    Some(format!(
        "Tsit5 vs diffsol tsit45 on {} at rtol={:.0e}: time ratio {:.2} (sdeflow {}, diffsol {}; \
         NFE {} vs {}; steps {}+{} vs {}+{} rejected; error {:.1e} vs {:.1e})",
        ours.problem,
        ours.tol,
        r,
        fmt_time(a.median),
        fmt_time(b.median),
        ours.nfe,
        theirs.nfe,
        ours.accepted,
        ours.rejected,
        theirs.accepted,
        theirs.rejected,
        ours.err,
        theirs.err,
    ))
}

fn csv(rows: &[Row]) -> String {
    let mut s = String::from(
        "section,problem,solver,implementation,rtol,atol,nfe,jacobian_evals,lu_factorizations,\
         accepted_steps,rejected_steps,max_error,error_kind,time_median_us,time_rel_half_iqr,timed_runs,\
         time_ratio_sdeflow_over_diffsol,status\n",
    );
    for r in rows {
        let (t, sp, runs) = csv_cells(r.time);
        let _ = writeln!(
            s,
            "{},{},{},{},{:e},{:e},{},{},{},{},{},{:e},{},{},{},{},{},\"{}\"",
            r.section,
            r.problem,
            r.solver,
            r.implementation,
            r.tol,
            r.atol.unwrap_or(r.tol),
            r.nfe,
            r.jac.map_or_else(String::new, |j| j.to_string()),
            r.lu.map_or_else(String::new, |j| j.to_string()),
            r.accepted,
            r.rejected,
            r.err,
            if r.relative { "max_rel" } else { "max_abs" },
            t,
            sp,
            runs,
            r.ratio.map_or_else(String::new, |x| format!("{x:.4}")),
            r.status.replace('"', "'"),
        );
    }
    s
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing.
    let cfg = Config::from_args(Duration::from_millis(300), 7);
    let quick = cfg.quick;
    let started = Instant::now();
    if quick {
        println!(
            "nfe_report: test mode (no `--bench`): every case runs once, times are single runs"
        );
    }

    let mut rows = Vec::new();
    println!();
    println!(
        "== Explicit adaptive solvers: rtol = atol, sdeflow with SaveAt::T1, diffsol tsit45 by \
         set_stop_time + step(); time = median per solve =="
    );
    println!("{HEADER}");
    explicit_rows::<LotkaVolterra>(&cfg, &mut rows);
    explicit_rows::<Arenstorf>(&cfg, &mut rows);

    println!();
    println!(
        "== Stiff solvers on Van der Pol (ε = 1e-6, μ = 1000, y0 = (2, 0), t ∈ [0, 2]), analytic \
         Jacobian; rejected = error-test + Newton failures; last column: sdeflow/diffsol-direct \
         time =="
    );
    println!("{HEADER}");
    stiff_rows(&cfg, &mut rows);

    println!();
    println!(
        "== Native Bdf / Esdirk34 / TrBdf2 (generic loop) vs diffsol's bdf / esdirk34 / tr_bdf2 \
         called directly, on Robertson (t = 1e5) and HIRES, rtol = tol, atol = tol/100, analytic \
         Jacobians; max|err| is relative (r); last column: native/diffsol time (paired) =="
    );
    println!("{HEADER}");
    native_stiff_rows(&cfg, &mut rows);

    println!();
    println!("== sdeflow Tsit5 / diffsol tsit45 (same problem and tolerance; paired timing) ==");
    let mut summary = None;
    for ours in rows.iter().filter(|r| r.solver == "Tsit5") {
        let theirs = rows
            .iter()
            .find(|r| r.solver == "tsit45" && r.problem == ours.problem && r.tol == ours.tol);
        match theirs.and_then(|t| ratio_line(ours, t)) {
            Some(line) => {
                println!("{line}");
                if ours.problem == LotkaVolterra::NAME && ours.tol == 1e-6 {
                    summary = Some(line);
                }
            }
            None => println!(
                "Tsit5 vs diffsol tsit45 on {} at rtol={:.0e}: no ratio ({} / {})",
                ours.problem,
                ours.tol,
                ours.status,
                theirs.map_or("missing", |t| t.status.as_str())
            ),
        }
    }

    if !quick {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-report");
        let path = dir.join("nfe_report.csv");
        match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, csv(&rows))) {
            Ok(()) => println!("\nCSV written to {}", path.display()),
            Err(e) => eprintln!("\ncould not write {}: {e}", path.display()),
        }
    }
    println!("report took {:.1} s", started.elapsed().as_secs_f64());
    match summary {
        Some(line) => println!("\nSUMMARY: {line}"),
        None => println!("\nSUMMARY: no Tsit5/tsit45 ratio on Lotka–Volterra at rtol=1e-6"),
    }
    let failed = rows.iter().filter(|r| !r.ok()).count();
    if failed > 0 {
        println!("{failed} case(s) failed; see the status column");
    }
}
