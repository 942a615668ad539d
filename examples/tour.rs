//! # A tour of sdeflow
//!
//! The project's "main job": `cargo run --release --example tour`.
//!
//! Each section solves a classic problem, prints the work done (drift
//! evaluations, Jacobian evaluations, accepted and rejected steps) and the
//! error against a published reference or an invariant, and records one row
//! of the final summary table:
//!
//! 1. **Lotka–Volterra** (non-stiff, with a conserved quantity) with `Tsit5`
//!    and `Vern7` at two tolerances;
//! 2. **the Arenstorf orbit** (restricted three-body problem, periodic and
//!    very sensitive) over one period;
//! 3. **Van der Pol with μ = 1000** (very stiff, Hairer's scaled form) with
//!    `Bdf` and an exact dual-number Jacobian;
//! 4. **output**: CSV files and SVG plots under `target/tour/` (located from
//!    `CARGO_MANIFEST_DIR`, so the tour runs from any directory);
//! 5. **stochastic differential equations**: geometric Brownian motion with
//!    fixed-step `EulerMaruyama` and adaptive `Sriw1` on one Brownian path
//!    against the exact solution on that path, an Ornstein–Uhlenbeck process
//!    with `Sra1`, and a strong-convergence study (`EulerMaruyama`,
//!    `Milstein`, `Sriw1`) with fitted orders; writes its own CSV and SVG
//!    files into `target/tour/`;
//! 6. **a Monte Carlo ensemble** of 10^5 GBM paths: mean and 5–95 % band
//!    against the exact lognormal ones (plot and CSV), and the statistics on
//!    one and on two threads compared bit for bit;
//! 7. **gradients**: `dL/dp` and `dL/dy0` of a Lotka–Volterra data misfit
//!    with the discrete adjoint (checkpointed), the interpolating and the
//!    backsolve continuous adjoints, against central finite differences;
//! 8. **summary** of every run.

use std::error::Error;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use sdeflow::brownian::{BrownianPath, BrownianTree};
use sdeflow::ensemble::Ensemble;
use sdeflow::prelude::*;
use statrs::distribution::{ContinuousCDF, Normal};

/// The result type of every section.
type TourResult<T> = Result<T, Box<dyn Error>>;

/// Lotka–Volterra parameters (α, β, γ, δ).
const LV_PARAMS: [f64; 4] = [1.5, 1.0, 3.0, 1.0];
/// Lotka–Volterra initial state (x, y).
const LV_Y0: [f64; 2] = [1.0, 1.0];
/// Lotka–Volterra time span.
const LV_TSPAN: (f64, f64) = (0.0, 10.0);
/// mpmath Taylor reference (30 digits) of Lotka–Volterra at t = 10.
const LV_REF: [f64; 2] = [1.0263447675750893191, 0.90969107813604161755];
/// Number of points of the uniform Lotka–Volterra output grid.
const LV_GRID: usize = 400;

/// Mass ratio μ of the Arenstorf orbit (Earth–Moon).
const ARENSTORF_MU: f64 = 0.012277471;
/// Period of the Arenstorf orbit.
const ARENSTORF_T: f64 = 17.0652165601579625588917206249;
/// Initial state (x, y, vx, vy) of the Arenstorf orbit.
const ARENSTORF_Y0: [f64; 4] = [0.994, 0.0, 0.0, -2.00158510637908252240537862224];
/// Number of points of the uniform Arenstorf output grid.
const ARENSTORF_GRID: usize = 2000;

/// ε = 1/μ² of the scaled Van der Pol oscillator with μ = 1000.
const VDP_EPS: f64 = 1e-6;
/// Van der Pol initial state (y1, y2).
const VDP_Y0: [f64; 2] = [2.0, 0.0];
/// Van der Pol time span.
const VDP_TSPAN: (f64, f64) = (0.0, 2.0);
/// Reference y(2) of VDPOL from the Bari/Hairer test set for IVP solvers.
const VDP_REF: [f64; 2] = [1.706167732170483, -0.8928097010247975];

/// One solve, as it appears in the summary table.
#[derive(Debug, Clone)]
struct Run {
    /// Problem name.
    problem: &'static str,
    /// Solver name (with a variant note where useful).
    solver: String,
    /// rtol = atol of the solve (`None` for fixed steps; the step size is
    /// then part of [`Run::solver`]).
    tol: Option<f64>,
    /// Work statistics of the solve.
    stats: Stats,
    /// The error figure of the run.
    error: f64,
    /// What [`Run::error`] measures.
    measure: &'static str,
}

/// Everything the tour collects: the summary rows and the data to write.
#[derive(Debug, Default)]
struct Tour {
    /// Summary rows, in the order of the runs.
    runs: Vec<Run>,
    /// Lotka–Volterra dense solution (for the uniform grid and the plot).
    lotka_volterra: Option<Solution>,
    /// Arenstorf dense solution (for the uniform grid and the orbit plot).
    arenstorf: Option<Solution>,
    /// Van der Pol solution at the solver steps.
    van_der_pol: Option<Solution>,
}

/// Runs every section in turn.
fn main() -> TourResult<()> {
    let mut tour = Tour::default();
    lotka_volterra_section(&mut tour)?;
    arenstorf_section(&mut tour)?;
    van_der_pol_section(&mut tour)?;
    let mut written = output_section(&tour)?;
    written.extend(sde_section(&mut tour)?);
    written.extend(ensemble_section()?);
    gradient_section()?;
    summary_section(&tour);
    println!();
    println!("Files written:");
    for path in &written {
        println!("  {}", path.display());
    }
    Ok(())
}

/// Prints a section header.
fn header(title: &str) {
    println!();
    println!("{title}");
    println!("{}", "=".repeat(title.chars().count()));
}

/// Max-norm distance between two vectors.
fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// `n` equally spaced times from `t0` to `t1`, both included.
fn uniform_grid(t0: f64, t1: f64, n: usize) -> Vec<f64> {
    let last = n.saturating_sub(1).max(1) as f64;
    (0..n)
        .map(|i| {
            if i + 1 == n {
                t1
            } else {
                t0 + (t1 - t0) * i as f64 / last
            }
        })
        .collect()
}

/// Samples a dense solution at the given times: one state per time.
fn sample(sol: &Solution, times: &[f64]) -> TourResult<Vec<Vec<f64>>> {
    times
        .iter()
        .map(|&t| sol.at(t).map_err(Into::into))
        .collect()
}

/// Prints the work of one solve on one line.
fn print_work(label: &str, stats: &Stats) {
    println!(
        "{label:<22} NFE {:>6}   accepted {:>5}   rejected {:>4}",
        stats.drift_evals, stats.accepted_steps, stats.rejected_steps
    );
}

// ---------------------------------------------------------------------------
// 1. Lotka–Volterra
// ---------------------------------------------------------------------------

/// The Lotka–Volterra predator–prey model x' = αx − βxy, y' = −γy + δxy.
fn lotka_volterra_problem() -> Problem<impl Drift> {
    Problem::ode(
        |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| {
            dy[0] = p[0] * y[0] - p[1] * y[0] * y[1];
            dy[1] = -p[2] * y[1] + p[3] * y[0] * y[1];
        },
        LV_Y0.to_vec(),
        LV_TSPAN,
    )
    .params(LV_PARAMS.to_vec())
}

/// The conserved quantity V = δx − γ ln x + βy − α ln y of Lotka–Volterra.
fn lv_invariant(y: &[f64]) -> f64 {
    let [alpha, beta, gamma, delta] = LV_PARAMS;
    delta * y[0] - gamma * y[0].ln() + beta * y[1] - alpha * y[1].ln()
}

/// Section 1: Lotka–Volterra with Tsit5 and Vern7 at two tolerances.
fn lotka_volterra_section(tour: &mut Tour) -> TourResult<()> {
    header("1. Lotka–Volterra (α=1.5, β=1, γ=3, δ=1, y0=(1,1), t ∈ [0,10])");
    let problem = lotka_volterra_problem();
    let v0 = lv_invariant(&LV_Y0);
    println!("reference y(10) = {LV_REF:?}, V(0) = {v0}");
    for tol in [1e-6, 1e-8] {
        for (name, sol) in [
            (
                "Tsit5",
                solve(&problem, Tsit5, Options::default().tol(tol))?,
            ),
            (
                "Vern7",
                solve(&problem, Vern7, Options::default().tol(tol))?,
            ),
        ] {
            let error = max_abs_diff(sol.last(), &LV_REF);
            let drift_final = (lv_invariant(sol.last()) - v0).abs();
            let drift_max = sol
                .iter()
                .map(|(_, y)| (lv_invariant(y) - v0).abs())
                .fold(0.0, f64::max);
            print_work(&format!("{name} tol={tol:.0e}"), &sol.stats);
            println!(
                "{:<22} |y(10) − ref|∞ = {error:.3e}   |V(10) − V(0)| = {drift_final:.3e}   \
                 max over steps |V(t) − V(0)| = {drift_max:.3e}",
                ""
            );
            tour.runs.push(Run {
                problem: "Lotka–Volterra",
                solver: name.to_string(),
                tol: Some(tol),
                stats: sol.stats,
                error,
                measure: "|y(10)-ref|inf",
            });
        }
    }
    // A dense solve for the uniform output grid of section 4.
    let dense = solve(
        &problem,
        Tsit5,
        Options::default().tol(1e-8).save_at(SaveAt::Dense),
    )?;
    let grid = uniform_grid(LV_TSPAN.0, LV_TSPAN.1, LV_GRID);
    let drift_grid = sample(&dense, &grid)?
        .iter()
        .map(|y| (lv_invariant(y) - v0).abs())
        .fold(0.0, f64::max);
    println!(
        "dense Tsit5 tol=1e-8: {} steps, max |V(t) − V(0)| on the {LV_GRID}-point grid = \
         {drift_grid:.3e}",
        dense.stats.accepted_steps
    );
    tour.lotka_volterra = Some(dense);
    Ok(())
}

// ---------------------------------------------------------------------------
// 2. Arenstorf orbit
// ---------------------------------------------------------------------------

/// The Arenstorf orbit (restricted three-body problem, HNW I §II.0) over one
/// period; the state is (x, y, vx, vy).
fn arenstorf_problem() -> Problem<impl Drift> {
    Problem::ode(
        |_t: f64, u: &[f64], _p: &[f64], du: &mut [f64]| {
            let mu = ARENSTORF_MU;
            let mup = 1.0 - mu;
            let (x, y, vx, vy) = (u[0], u[1], u[2], u[3]);
            let d1 = ((x + mu).powi(2) + y * y).powf(1.5);
            let d2 = ((x - mup).powi(2) + y * y).powf(1.5);
            du[0] = vx;
            du[1] = vy;
            du[2] = x + 2.0 * vy - mup * (x + mu) / d1 - mu * (x - mup) / d2;
            du[3] = y - 2.0 * vx - mup * y / d1 - mu * y / d2;
        },
        ARENSTORF_Y0.to_vec(),
        (0.0, ARENSTORF_T),
    )
}

/// Section 2: the Arenstorf orbit with Tsit5 (1e-8) and Vern7 (1e-10).
fn arenstorf_section(tour: &mut Tour) -> TourResult<()> {
    header("2. Arenstorf orbit (one period, T = 17.0652165601579625…)");
    let problem = arenstorf_problem();
    let runs = [
        (
            "Tsit5",
            1e-8,
            solve(&problem, Tsit5, Options::default().tol(1e-8))?,
        ),
        (
            "Vern7",
            1e-10,
            solve(&problem, Vern7, Options::default().tol(1e-10))?,
        ),
    ];
    for (name, tol, sol) in runs {
        let end = sol.last();
        let dpos = max_abs_diff(&end[..2], &ARENSTORF_Y0[..2]);
        let dvel = max_abs_diff(&end[2..], &ARENSTORF_Y0[2..]);
        print_work(&format!("{name} tol={tol:.0e}"), &sol.stats);
        println!(
            "{:<22} |pos(T) − pos(0)|∞ = {dpos:.3e}   |vel(T) − vel(0)|∞ = {dvel:.3e}",
            ""
        );
        tour.runs.push(Run {
            problem: "Arenstorf",
            solver: name.to_string(),
            tol: Some(tol),
            stats: sol.stats,
            error: dpos.max(dvel),
            measure: "|y(T)-y(0)|inf",
        });
    }
    // A dense solve for the orbit plot and the CSV of section 4.
    let dense = solve(
        &problem,
        Vern7,
        Options::default().tol(1e-10).save_at(SaveAt::Dense),
    )?;
    tour.arenstorf = Some(dense);
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. Van der Pol, μ = 1000
// ---------------------------------------------------------------------------

/// Van der Pol in Hairer's scaled form (test set VDPOL):
/// y1' = y2, y2' = ((1 − y1²) y2 − y1)/ε with ε = `p[0]`. Written generically
/// over the scalar so that [`Generic`] differentiates it exactly.
#[derive(Debug, Clone, Copy)]
struct VanDerPol;

impl GenericField for VanDerPol {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = y[1];
        dy[1] = ((D::from(1.0) - y[0] * y[0]) * y[1] - y[0]) / p[0];
    }
}

/// The analytic Jacobian of [`VanDerPol`], column-major.
fn van_der_pol_jacobian(_t: f64, y: &[f64], p: &[f64], jac: &mut [f64]) {
    let eps = p[0];
    jac[0] = 0.0; // ∂f1/∂y1
    jac[1] = (-2.0 * y[0] * y[1] - 1.0) / eps; // ∂f2/∂y1
    jac[2] = 1.0; // ∂f1/∂y2
    jac[3] = (1.0 - y[0] * y[0]) / eps; // ∂f2/∂y2
}

/// Component-wise relative error |y_i − ref_i| / |ref_i|.
fn relative_errors(y: &[f64], reference: &[f64]) -> Vec<f64> {
    y.iter()
        .zip(reference)
        .map(|(a, r)| ((a - r) / r).abs())
        .collect()
}

/// Prints and records one Van der Pol run.
fn report_van_der_pol(tour: &mut Tour, label: &str, tol: f64, sol: &Solution) {
    let rel = relative_errors(sol.last(), &VDP_REF);
    let worst = rel.iter().copied().fold(0.0, f64::max);
    println!(
        "{label:<22} NFE {:>6}   Jacobian evals {:>6}   accepted {:>5}   rejected {:>4}   \
         Newton its {:>5}",
        sol.stats.drift_evals,
        sol.stats.jacobian_evals,
        sol.stats.accepted_steps,
        sol.stats.rejected_steps,
        sol.stats.nonlinear_iterations
    );
    println!(
        "{:<22} y(2) = [{:.16}, {:.16}]   rel. error = [{:.3e}, {:.3e}]",
        "",
        sol.last()[0],
        sol.last()[1],
        rel[0],
        rel[1]
    );
    tour.runs.push(Run {
        problem: "Van der Pol μ=1000",
        solver: label.to_string(),
        tol: Some(tol),
        stats: sol.stats,
        error: worst,
        measure: "max rel. error",
    });
}

/// Section 3: stiff Van der Pol (μ = 1000) with Bdf and exact Jacobians.
fn van_der_pol_section(tour: &mut Tour) -> TourResult<()> {
    header("3. Van der Pol, μ = 1000 (VDPOL, ε = 1e-6, y0 = (2, 0), t ∈ [0, 2])");
    println!("reference y(2) = {VDP_REF:?} (Bari/Hairer test set)");
    let tol = 1e-8;
    let generic =
        Problem::ode(Generic(VanDerPol), VDP_Y0.to_vec(), VDP_TSPAN).params(vec![VDP_EPS]);
    let sol = solve(&generic, Bdf::default(), Options::default().tol(tol))?;
    report_van_der_pol(tour, "Bdf (dual-number J)", tol, &sol);
    println!(
        "{:<22} (exact Jacobians by dual numbers: each one is n = 2 Jacobian–vector products)",
        ""
    );

    // The same problem with a hand-written Jacobian, as a cross-check.
    let analytic = Problem::ode(
        |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| {
            dy[0] = y[1];
            dy[1] = ((1.0 - y[0] * y[0]) * y[1] - y[0]) / p[0];
        },
        VDP_Y0.to_vec(),
        VDP_TSPAN,
    )
    .params(vec![VDP_EPS])
    .with_jacobian(van_der_pol_jacobian);
    let sol_analytic = solve(&analytic, Bdf::default(), Options::default().tol(tol))?;
    report_van_der_pol(tour, "Bdf (analytic J)", tol, &sol_analytic);

    tour.van_der_pol = Some(sol);
    Ok(())
}

// ---------------------------------------------------------------------------
// 4. Output: CSV and SVG
// ---------------------------------------------------------------------------

/// Formats a number for CSV without losing digits: plain notation for
/// moderate magnitudes, scientific notation (`4.85e-12`) for tiny or huge ones.
fn csv_number(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || (1e-4..1e15).contains(&a) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// Writes a CSV with the given header and rows `(t, state)`.
fn write_csv<'a>(
    path: &Path,
    columns: &[&str],
    rows: impl IntoIterator<Item = (f64, &'a [f64])>,
) -> TourResult<()> {
    let mut w = BufWriter::new(File::create(path)?);
    writeln!(w, "{}", columns.join(","))?;
    for (t, y) in rows {
        write!(w, "{}", csv_number(t))?;
        for &v in y {
            write!(w, ",{}", csv_number(v))?;
        }
        writeln!(w)?;
    }
    w.flush()?;
    Ok(())
}

/// The range `[min, max]` of some values, widened by `pad` of its length.
fn padded_range(values: impl IntoIterator<Item = f64>, pad: f64) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .into_iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() || !hi.is_finite() {
        return 0.0..1.0;
    }
    let d = (hi - lo).max(1e-12) * pad;
    (lo - d)..(hi + d)
}

/// The output directory `target/tour/` of the workspace (created if needed).
fn tour_dir() -> TourResult<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("tour");
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Section 4: writes the CSV files and SVG plots into `target/tour/`.
fn output_section(tour: &Tour) -> TourResult<Vec<PathBuf>> {
    header("4. Output (CSV and SVG)");
    let dir = tour_dir()?;
    let mut written = Vec::new();

    if let Some(sol) = &tour.lotka_volterra {
        let grid = uniform_grid(LV_TSPAN.0, LV_TSPAN.1, LV_GRID);
        let states = sample(sol, &grid)?;
        let csv = dir.join("lotka_volterra.csv");
        write_csv(
            &csv,
            &["t", "x", "y"],
            grid.iter().copied().zip(states.iter().map(Vec::as_slice)),
        )?;
        written.push(csv);
        let svg = dir.join("lotka_volterra.svg");
        plot_lotka_volterra(&svg, &grid, &states)?;
        written.push(svg);
    }
    if let Some(sol) = &tour.arenstorf {
        let grid = uniform_grid(0.0, ARENSTORF_T, ARENSTORF_GRID);
        let states = sample(sol, &grid)?;
        let csv = dir.join("arenstorf.csv");
        write_csv(
            &csv,
            &["t", "x", "y", "vx", "vy"],
            grid.iter().copied().zip(states.iter().map(Vec::as_slice)),
        )?;
        written.push(csv);
        let svg = dir.join("arenstorf.svg");
        plot_arenstorf(&svg, &states)?;
        written.push(svg);
    }
    if let Some(sol) = &tour.van_der_pol {
        let csv = dir.join("van_der_pol.csv");
        write_csv(&csv, &["t", "y1", "y2"], sol.iter())?;
        written.push(csv);
        let svg = dir.join("van_der_pol.svg");
        plot_van_der_pol(&svg, sol)?;
        written.push(svg);
    }
    println!("{} files in {}", written.len(), dir.display());
    Ok(written)
}

/// Lotka–Volterra plot: x(t), y(t) on the left, the phase portrait on the
/// right.
fn plot_lotka_volterra(path: &Path, ts: &[f64], states: &[Vec<f64>]) -> TourResult<()> {
    let root = SVGBackend::new(path, (1100, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(650);

    // Head room above the peaks for the legend.
    let yr = padded_range(states.iter().flat_map(|s| s.iter().copied()), 0.05);
    let yr = yr.start..yr.end + 0.2 * (yr.end - yr.start);
    let mut chart = ChartBuilder::on(&left)
        .caption("Lotka–Volterra: populations", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(LV_TSPAN.0..LV_TSPAN.1, yr)?;
    chart
        .configure_mesh()
        .x_desc("t")
        .y_desc("population")
        .draw()?;
    for (j, name, color) in [(0, "x (prey)", BLUE), (1, "y (predator)", RED)] {
        chart
            .draw_series(LineSeries::new(
                ts.iter().zip(states).map(|(&t, s)| (t, s[j])),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let xr = padded_range(states.iter().map(|s| s[0]), 0.05);
    let pr = padded_range(states.iter().map(|s| s[1]), 0.05);
    let mut phase = ChartBuilder::on(&right)
        .caption("phase portrait", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(xr, pr)?;
    phase.configure_mesh().x_desc("x").y_desc("y").draw()?;
    phase.draw_series(LineSeries::new(
        states.iter().map(|s| (s[0], s[1])),
        BLACK.stroke_width(2),
    ))?;
    phase.draw_series(std::iter::once(Circle::new(
        (LV_Y0[0], LV_Y0[1]),
        4,
        GREEN.filled(),
    )))?;
    root.present()?;
    Ok(())
}

/// Arenstorf plot: the orbit in the x–y plane, with the Earth and the Moon.
fn plot_arenstorf(path: &Path, states: &[Vec<f64>]) -> TourResult<()> {
    let root = SVGBackend::new(path, (700, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let xr = padded_range(states.iter().map(|s| s[0]), 0.05);
    let yr = padded_range(states.iter().map(|s| s[1]), 0.05);
    let mut chart = ChartBuilder::on(&root)
        .caption("Arenstorf orbit (one period)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(xr, yr)?;
    chart.configure_mesh().x_desc("x").y_desc("y").draw()?;
    chart
        .draw_series(LineSeries::new(
            states.iter().map(|s| (s[0], s[1])),
            BLUE.stroke_width(2),
        ))?
        .label("satellite")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(std::iter::once(Circle::new(
            (-ARENSTORF_MU, 0.0),
            7,
            GREEN.filled(),
        )))?
        .label("Earth")
        .legend(|(x, y)| Circle::new((x + 10, y), 5, GREEN.filled()));
    chart
        .draw_series(std::iter::once(Circle::new(
            (1.0 - ARENSTORF_MU, 0.0),
            4,
            BLACK.filled(),
        )))?
        .label("Moon")
        .legend(|(x, y)| Circle::new((x + 10, y), 4, BLACK.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Van der Pol plot: y1(t) at the solver steps (line plus one dot per step).
fn plot_van_der_pol(path: &Path, sol: &Solution) -> TourResult<()> {
    let root = SVGBackend::new(path, (900, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let yr = padded_range(sol.component(0), 0.08);
    let mut chart = ChartBuilder::on(&root)
        .caption("Van der Pol, μ = 1000 (Bdf steps)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(VDP_TSPAN.0..VDP_TSPAN.1, yr)?;
    chart.configure_mesh().x_desc("t").y_desc("y1").draw()?;
    chart.draw_series(LineSeries::new(
        sol.iter().map(|(t, y)| (t, y[0])),
        BLUE.stroke_width(2),
    ))?;
    chart.draw_series(
        sol.iter()
            .map(|(t, y)| Circle::new((t, y[0]), 1, RED.filled())),
    )?;
    root.present()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// 5. Stochastic differential equations
// ---------------------------------------------------------------------------

/// GBM drift coefficient `a` in dX = aX dt + bX dW.
const GBM_A: f64 = 1.0;
/// GBM diffusion coefficient `b`.
const GBM_B: f64 = 0.5;
/// GBM initial value.
const GBM_X0: f64 = 1.0;
/// GBM end time (the span is `[0, GBM_T]`).
const GBM_T: f64 = 1.0;
/// Seed of the Brownian path of the single GBM solves.
const GBM_SEED: u64 = 2026;
/// Step of the fixed-step Euler–Maruyama GBM solve.
const GBM_H: f64 = 1e-3;
/// Tolerance (rtol = atol) of the adaptive SDE solves.
const SDE_TOL: f64 = 1e-3;

/// Ornstein–Uhlenbeck parameters (θ, μ, σ) of dX = θ(μ − X) dt + σ dW.
const OU_PARAMS: [f64; 3] = [2.0, 1.0, 0.5];
/// Ornstein–Uhlenbeck initial value.
const OU_X0: f64 = 0.0;
/// Ornstein–Uhlenbeck end time (ten relaxation times 1/θ).
const OU_T: f64 = 5.0;
/// Seed of the Ornstein–Uhlenbeck Brownian path.
const OU_SEED: u64 = 7;
/// Step of the fixed-step Euler–Maruyama Ornstein–Uhlenbeck solve.
const OU_H: f64 = 1e-2;
/// Largest substep of the Ornstein–Uhlenbeck reference ([`ou_reference`]).
const OU_REF_H: f64 = 1e-4;

/// Number of Brownian paths of the strong-convergence study.
const STRONG_PATHS: u64 = 100;
/// The study's step sizes are `2^-k` for these `k`.
const STRONG_LEVELS: [i32; 6] = [3, 4, 5, 6, 7, 8];

/// Geometric Brownian motion dX = aX dt + bX dW (Itô, scalar noise), with
/// `p = (a, b)`.
fn gbm_problem() -> Problem<impl Drift, impl Diffusion> {
    Problem::sde(
        |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| dy[0] = p[0] * y[0],
        |_t: f64, y: &[f64], p: &[f64], g: &mut [f64]| g[0] = p[1] * y[0],
        Noise::Scalar,
        vec![GBM_X0],
        (0.0, GBM_T),
    )
    .params(vec![GBM_A, GBM_B])
}

/// The exact GBM solution X_t = X0 exp((a − b²/2) t + b W_t) on the Brownian
/// path of `seed`, at each of `times`. The tree is the one every solve of a
/// problem with the default driver (`VirtualTree`) builds over the span of
/// the problem, so this is the path those solves see.
fn gbm_exact(seed: u64, times: &[f64]) -> Vec<f64> {
    let mut tree = BrownianTree::new((0.0, GBM_T), 1, seed);
    let mut w = [0.0];
    times
        .iter()
        .map(|&t| {
            tree.increment(0.0, t, &mut w);
            GBM_X0 * ((GBM_A - 0.5 * GBM_B * GBM_B) * t + GBM_B * w[0]).exp()
        })
        .collect()
}

/// The Ornstein–Uhlenbeck process dX = θ(μ − X) dt + σ dW, additive noise,
/// with `p = (θ, μ, σ)`.
fn ou_problem() -> Problem<impl Drift, impl Diffusion> {
    Problem::sde(
        |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| dy[0] = p[0] * (p[1] - y[0]),
        |_t: f64, _y: &[f64], p: &[f64], g: &mut [f64]| g[0] = p[2],
        Noise::Additive,
        vec![OU_X0],
        (0.0, OU_T),
    )
    .params(OU_PARAMS.to_vec())
}

/// The Ornstein–Uhlenbeck solution on the Brownian path of `seed` at the
/// increasing `times`, by the exact transition over substeps of at most
/// [`OU_REF_H`]:
/// `X_{t+h} = μ + (X_t − μ) e^{−θh} + σ ∫_t^{t+h} e^{−θ(t+h−s)} dW_s`, where
/// the integral is `ΔW − θ h (ΔW/2 + H) + O(h^{5/2})` with `ΔW` and the
/// space–time Lévy area `H` of the substep from the same Brownian tree the
/// solves use (`∫ (t+h−s) dW_s = ∫ (W_s − W_t) ds = h (ΔW/2 + H)`).
/// Accurate to about 1e-8 on `[0, 5]`, at any time, on or off a grid.
fn ou_reference(seed: u64, times: &[f64]) -> Vec<f64> {
    let [theta, mu, sigma] = OU_PARAMS;
    let mut tree = BrownianTree::new((0.0, OU_T), 1, seed);
    let (mut dw, mut levy) = ([0.0], [0.0]);
    let (mut t, mut x) = (0.0, OU_X0);
    times
        .iter()
        .map(|&target| {
            while t < target {
                let t_next = if target - t <= OU_REF_H {
                    target
                } else {
                    t + OU_REF_H
                };
                let h = t_next - t;
                tree.increment_with_levy_area(t, t_next, &mut dw, &mut levy);
                let noise = dw[0] - theta * h * (0.5 * dw[0] + levy[0]);
                x = mu + (x - mu) * (-theta * h).exp() + sigma * noise;
                t = t_next;
            }
            x
        })
        .collect()
}

/// Prints the work of one SDE solve: drift and diffusion evaluations apart.
fn print_sde_work(label: &str, stats: &Stats) {
    println!(
        "{label:<24} drift evals {:>6}   diffusion evals {:>6}   accepted {:>5}   rejected {:>4}",
        stats.drift_evals, stats.diffusion_evals, stats.accepted_steps, stats.rejected_steps
    );
}

/// Largest `|X − reference|` over the saved steps of a scalar solution
/// (`reference` holds one value per saved time).
fn max_error_at_steps(sol: &Solution, reference: &[f64]) -> f64 {
    sol.iter()
        .zip(reference)
        .map(|((_, y), r)| (y[0] - r).abs())
        .fold(0.0, f64::max)
}

/// Least-squares slope of `ln err` against `ln h`.
fn fitted_slope(hs: &[f64], errs: &[f64]) -> f64 {
    let xs: Vec<f64> = hs.iter().map(|h| h.ln()).collect();
    let ys: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    sxy / sxx
}

/// One path of a fixed-step and an adaptive solve of the same SDE, sampled
/// on the fixed-step grid, with a reference on that grid.
#[derive(Debug)]
struct SdePaths {
    /// The fixed-step grid (the Euler–Maruyama step times).
    ts: Vec<f64>,
    /// The exact or reference solution at `ts`.
    reference: Vec<f64>,
    /// Euler–Maruyama at `ts`.
    em: Vec<f64>,
    /// The adaptive solution, interpolated (linearly) at `ts`.
    adaptive: Vec<f64>,
    /// The adaptive solver's own steps `(t, X)`.
    adaptive_steps: Vec<(f64, f64)>,
    /// The exact or reference solution at the adaptive solver's steps.
    reference_at_steps: Vec<f64>,
}

/// Mean strong error `E|X_N − X(T)|` of fixed-step GBM solves over
/// [`STRONG_PATHS`] seeds at each step size, and the work of one solve at the
/// finest step (the same for every path).
fn gbm_strong_errors<S: Solver + Copy>(
    solver: S,
    hs: &[f64],
    exact: &[f64],
) -> TourResult<(Vec<f64>, Stats)> {
    let problem = gbm_problem();
    let mut errors = Vec::with_capacity(hs.len());
    let mut finest = Stats::default();
    for &h in hs {
        let mut sum = 0.0;
        for (seed, x_exact) in (0..STRONG_PATHS).zip(exact) {
            let opts = Options::default()
                .fixed_step(h)
                .seed(seed)
                .save_at(SaveAt::T1);
            let sol = solve(&problem, solver, &opts)?;
            sum += (sol.last()[0] - x_exact).abs();
            finest = sol.stats;
        }
        errors.push(sum / STRONG_PATHS as f64);
    }
    Ok((errors, finest))
}

/// Section 5: GBM on one path (exact vs EulerMaruyama vs adaptive Sriw1),
/// Ornstein–Uhlenbeck with Sra1, and a strong-convergence study. Writes
/// `gbm_paths`, `ou_paths` and `sde_strong_order` (CSV and SVG).
fn sde_section(tour: &mut Tour) -> TourResult<Vec<PathBuf>> {
    header("5. Stochastic differential equations (Itô)");
    let dir = tour_dir()?;
    let mut written = Vec::new();

    // (a) geometric Brownian motion on one Brownian path
    println!(
        "(a) GBM dX = aX dt + bX dW, a = {GBM_A}, b = {GBM_B}, X0 = {GBM_X0}, t ∈ [0, {GBM_T}], \
         scalar noise, seed {GBM_SEED}"
    );
    println!("    exact on the path: X_t = X0 exp((a − b²/2) t + b W_t), W from the Brownian tree");
    let gbm = gbm_problem();
    // The default driver (VirtualTree): the fixed-step solve queries the same
    // Brownian tree as the adaptive one (`.driver(Increments)` would draw the
    // increments of a fixed-step solve directly: a different path).
    let em = solve(
        &gbm,
        EulerMaruyama,
        Options::default().fixed_step(GBM_H).seed(GBM_SEED),
    )?;
    let sri = solve(
        &gbm,
        Sriw1,
        Options::default()
            .tol(SDE_TOL)
            .seed(GBM_SEED)
            .save_at(SaveAt::Dense),
    )?;
    let exact_grid = gbm_exact(GBM_SEED, &em.ts);
    let x_exact = exact_grid.last().copied().unwrap_or(f64::NAN);
    let em_error = (em.last()[0] - x_exact).abs();
    let sri_error = (sri.last()[0] - x_exact).abs();
    let sri_exact_at_steps = gbm_exact(GBM_SEED, &sri.ts);
    let sri_max_step_error = max_error_at_steps(&sri, &sri_exact_at_steps);
    let em_max_error = max_error_at_steps(&em, &exact_grid);
    println!("    exact X(1) = {x_exact:.10}");
    print_sde_work(&format!("EulerMaruyama h={GBM_H:.0e}"), &em.stats);
    println!(
        "{:<24} X(1) = {:.10}   |X(1) − exact| = {em_error:.3e}   max over steps = {em_max_error:.3e}",
        "",
        em.last()[0]
    );
    print_sde_work(&format!("Sriw1 tol={SDE_TOL:.0e}"), &sri.stats);
    println!(
        "{:<24} X(1) = {:.10}   |X(1) − exact| = {sri_error:.3e}   max over steps = \
         {sri_max_step_error:.3e}",
        "",
        sri.last()[0]
    );
    tour.runs.push(Run {
        problem: "GBM (one path)",
        solver: format!("EulerMaruyama h={GBM_H:.0e}"),
        tol: None,
        stats: em.stats,
        error: em_error,
        measure: "|X(1)-exact|",
    });
    tour.runs.push(Run {
        problem: "GBM (one path)",
        solver: "Sriw1".to_string(),
        tol: Some(SDE_TOL),
        stats: sri.stats,
        error: sri_error,
        measure: "|X(1)-exact|",
    });
    // Dense output of an SDE solve is linear between steps: at times between
    // steps it misses the Brownian wiggles the steps skipped over.
    let sri_on_grid: Vec<f64> = sample(&sri, &em.ts)?.iter().map(|y| y[0]).collect();
    let sri_interp_error = sri_on_grid
        .iter()
        .zip(&exact_grid)
        .map(|(y, x)| (y - x).abs())
        .fold(0.0, f64::max);
    println!(
        "{:<24} its dense output (linear between steps) on the EM grid: max error = \
         {sri_interp_error:.3e}",
        ""
    );
    let gbm_paths = SdePaths {
        adaptive: sri_on_grid,
        adaptive_steps: sri.iter().map(|(t, y)| (t, y[0])).collect(),
        reference_at_steps: sri_exact_at_steps,
        em: em.component(0),
        reference: exact_grid,
        ts: em.ts,
    };

    // (b) Ornstein–Uhlenbeck, additive noise
    let [theta, mu, sigma] = OU_PARAMS;
    println!();
    println!(
        "(b) Ornstein–Uhlenbeck dX = θ(μ − X) dt + σ dW, θ = {theta}, μ = {mu}, σ = {sigma}, \
         X0 = {OU_X0}, t ∈ [0, {OU_T}], additive noise, seed {OU_SEED}"
    );
    let ou = ou_problem();
    let ou_em = solve(
        &ou,
        EulerMaruyama,
        Options::default().fixed_step(OU_H).seed(OU_SEED),
    )?;
    let ou_sra = solve(
        &ou,
        Sra1,
        Options::default()
            .tol(SDE_TOL)
            .seed(OU_SEED)
            .save_at(SaveAt::Dense),
    )?;
    // The reference: the exact transition over substeps of 1e-4 on the
    // same Brownian tree (see `ou_reference`), on the grid and at the steps.
    let ou_ref_grid = ou_reference(OU_SEED, &ou_em.ts);
    let ou_ref_steps = ou_reference(OU_SEED, &ou_sra.ts);
    let x_ref = ou_ref_grid.last().copied().unwrap_or(f64::NAN);
    let ou_em_error = (ou_em.last()[0] - x_ref).abs();
    let ou_sra_error = (ou_sra.last()[0] - x_ref).abs();
    let ou_em_max_error = max_error_at_steps(&ou_em, &ou_ref_grid);
    let ou_sra_max_error = max_error_at_steps(&ou_sra, &ou_ref_steps);
    println!(
        "    reference X(5) = {x_ref:.10} (exact transition over substeps ≤ {OU_REF_H:.0e} on \
         the same path); stationary law N(μ, σ²/(2θ)) = N({mu}, {:.4}²)",
        sigma / (2.0 * theta).sqrt()
    );
    print_sde_work(&format!("EulerMaruyama h={OU_H:.0e}"), &ou_em.stats);
    println!(
        "{:<24} X(5) = {:.10}   |X(5) − ref| = {ou_em_error:.3e}   max over steps = \
         {ou_em_max_error:.3e}",
        "",
        ou_em.last()[0]
    );
    print_sde_work(&format!("Sra1 tol={SDE_TOL:.0e}"), &ou_sra.stats);
    println!(
        "{:<24} X(5) = {:.10}   |X(5) − ref| = {ou_sra_error:.3e}   max over steps = \
         {ou_sra_max_error:.3e}",
        "",
        ou_sra.last()[0]
    );
    tour.runs.push(Run {
        problem: "Ornstein–Uhlenbeck",
        solver: format!("EulerMaruyama h={OU_H:.0e}"),
        tol: None,
        stats: ou_em.stats,
        error: ou_em_error,
        measure: "|X(5)-ref|",
    });
    tour.runs.push(Run {
        problem: "Ornstein–Uhlenbeck",
        solver: "Sra1".to_string(),
        tol: Some(SDE_TOL),
        stats: ou_sra.stats,
        error: ou_sra_error,
        measure: "|X(5)-ref|",
    });
    let ou_paths = SdePaths {
        adaptive: sample(&ou_sra, &ou_em.ts)?.iter().map(|y| y[0]).collect(),
        adaptive_steps: ou_sra.iter().map(|(t, y)| (t, y[0])).collect(),
        reference_at_steps: ou_ref_steps,
        em: ou_em.component(0),
        reference: ou_ref_grid,
        ts: ou_em.ts,
    };

    // (c) strong convergence on GBM
    println!();
    println!(
        "(c) strong convergence on GBM: mean |X_N − X(1)| over {STRONG_PATHS} paths, \
         h = 2^-{}..2^-{}, each path the same at every h",
        STRONG_LEVELS[0],
        STRONG_LEVELS[STRONG_LEVELS.len() - 1]
    );
    let hs: Vec<f64> = STRONG_LEVELS.iter().map(|&k| 2f64.powi(-k)).collect();
    let exact_t: Vec<f64> = (0..STRONG_PATHS)
        .map(|seed| gbm_exact(seed, &[GBM_T])[0])
        .collect();
    let (em_errs, em_stats) = gbm_strong_errors(EulerMaruyama, &hs, &exact_t)?;
    let (mil_errs, mil_stats) = gbm_strong_errors(Milstein::derivative_free(), &hs, &exact_t)?;
    let (sri_errs, sri_stats) = gbm_strong_errors(Sriw1, &hs, &exact_t)?;
    let studies = [
        ("EulerMaruyama", 0.5, em_errs, em_stats),
        ("Milstein", 1.0, mil_errs, mil_stats),
        ("Sriw1", 1.5, sri_errs, sri_stats),
    ];
    println!(
        "    {:>9} {:>14} {:>14} {:>14}",
        "h", studies[0].0, studies[1].0, studies[2].0
    );
    for (i, &k) in STRONG_LEVELS.iter().enumerate() {
        println!(
            "    {:>9} {:>14.4e} {:>14.4e} {:>14.4e}",
            format!("2^-{k}"),
            studies[0].2[i],
            studies[1].2[i],
            studies[2].2[i]
        );
    }
    let finest = STRONG_LEVELS[STRONG_LEVELS.len() - 1];
    for (name, order, errs, stats) in &studies {
        let slope = fitted_slope(&hs, errs);
        // the coarsest steps may be outside the asymptotic regime
        let fine = hs.len().saturating_sub(4);
        let slope_fine = fitted_slope(&hs[fine..], &errs[fine..]);
        println!(
            "    {name:<14} fitted strong order {slope:.3} (2^-{}..2^-{finest}: {slope_fine:.3}; \
             theory {order}); at h = 2^-{finest}: {} drift + {} diffusion evals per path",
            STRONG_LEVELS[fine], stats.drift_evals, stats.diffusion_evals
        );
        tour.runs.push(Run {
            problem: "GBM (100 paths)",
            solver: format!("{name} h=2^-{finest}"),
            tol: None,
            stats: *stats,
            error: errs.last().copied().unwrap_or(f64::NAN),
            measure: "mean |X_N-X(1)|",
        });
    }

    // CSV and SVG
    let mu_label = format!("μ = {mu}");
    let plots = [
        (
            "gbm_paths",
            &gbm_paths,
            "GBM, one path",
            ["exact", "euler_maruyama", "sriw1"],
            format!("EulerMaruyama h={GBM_H:.0e}"),
            format!("Sriw1 tol={SDE_TOL:.0e} (steps)"),
            None,
        ),
        (
            "ou_paths",
            &ou_paths,
            "Ornstein–Uhlenbeck, one path",
            ["reference", "euler_maruyama", "sra1"],
            format!("EulerMaruyama h={OU_H:.0e}"),
            format!("Sra1 tol={SDE_TOL:.0e} (steps)"),
            Some((mu, mu_label.as_str())),
        ),
    ];
    for (name, paths, title, [reference, em_col, adaptive_col], em_label, adaptive_label, level) in
        plots
    {
        let csv = dir.join(format!("{name}.csv"));
        let rows: Vec<[f64; 3]> = (0..paths.ts.len())
            .map(|i| [paths.reference[i], paths.em[i], paths.adaptive[i]])
            .collect();
        write_csv(
            &csv,
            &["t", reference, em_col, adaptive_col],
            paths.ts.iter().copied().zip(rows.iter().map(|r| &r[..])),
        )?;
        written.push(csv);
        let svg = dir.join(format!("{name}.svg"));
        plot_sde_paths(
            &svg,
            title,
            paths,
            reference,
            &em_label,
            &adaptive_label,
            level,
        )?;
        written.push(svg);
    }
    let csv = dir.join("sde_strong_order.csv");
    let rows: Vec<[f64; 3]> = (0..hs.len())
        .map(|i| [studies[0].2[i], studies[1].2[i], studies[2].2[i]])
        .collect();
    write_csv(
        &csv,
        &["h", "euler_maruyama", "milstein", "sriw1"],
        hs.iter().copied().zip(rows.iter().map(|r| &r[..])),
    )?;
    written.push(csv);
    let svg = dir.join("sde_strong_order.svg");
    let lines: Vec<(&str, f64, &[f64])> = studies
        .iter()
        .map(|(name, order, errs, _)| (*name, *order, errs.as_slice()))
        .collect();
    plot_strong_order(&svg, &hs, &lines)?;
    written.push(svg);
    println!();
    println!("{} files in {}", written.len(), dir.display());
    Ok(written)
}

/// One-path SDE plot: the reference, Euler–Maruyama, the adaptive solution
/// (a line through its steps, one dot per step) and an optional dashed
/// horizontal `level` on the left; the errors against the reference at each
/// solver's steps on the right.
fn plot_sde_paths(
    path: &Path,
    title: &str,
    paths: &SdePaths,
    reference: &str,
    em_label: &str,
    adaptive_label: &str,
    level: Option<(f64, &str)>,
) -> TourResult<()> {
    let root = SVGBackend::new(path, (1100, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(650);
    let (t0, t1) = (
        paths.ts.first().copied().unwrap_or(0.0),
        paths.ts.last().copied().unwrap_or(1.0),
    );

    // Head room above the path for the legend.
    let yr = padded_range(
        paths
            .reference
            .iter()
            .chain(&paths.em)
            .chain(&paths.adaptive)
            .copied(),
        0.05,
    );
    let yr = yr.start..yr.end + 0.25 * (yr.end - yr.start);
    let mut chart = ChartBuilder::on(&left)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(t0..t1, yr)?;
    chart.configure_mesh().x_desc("t").y_desc("X").draw()?;
    let series = [
        (reference, &paths.reference, BLACK),
        (em_label, &paths.em, BLUE),
    ];
    for (label, ys, color) in series {
        chart
            .draw_series(LineSeries::new(
                paths.ts.iter().copied().zip(ys.iter().copied()),
                color.stroke_width(if color == BLACK { 2 } else { 1 }),
            ))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .draw_series(LineSeries::new(
            paths.adaptive_steps.iter().copied(),
            RED.stroke_width(1),
        ))?
        .label(adaptive_label)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart.draw_series(
        paths
            .adaptive_steps
            .iter()
            .map(|&p| Circle::new(p, 2, RED.filled())),
    )?;
    if let Some((y, label)) = level {
        chart
            .draw_series(DashedLineSeries::new(
                [(t0, y), (t1, y)],
                8,
                6,
                BLACK.mix(0.5).stroke_width(1),
            ))?
            .label(label)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], BLACK.mix(0.5)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    // Errors at each solver's own steps (zero at t0 is left out of the log
    // scale); the linear interpolant between adaptive steps is not compared.
    let em_err: Vec<(f64, f64)> = paths
        .ts
        .iter()
        .zip(paths.em.iter().zip(&paths.reference))
        .map(|(&t, (y, r))| (t, (y - r).abs()))
        .filter(|p| p.1 > 0.0)
        .collect();
    let ad_err: Vec<(f64, f64)> = paths
        .adaptive_steps
        .iter()
        .zip(&paths.reference_at_steps)
        .map(|(&(t, y), r)| (t, (y - r).abs()))
        .filter(|p| p.1 > 0.0)
        .collect();
    let (lo, hi) = em_err
        .iter()
        .chain(&ad_err)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    let (lo, hi) = if lo < hi { (lo, hi) } else { (1e-8, 1.0) };
    let mut errors = ChartBuilder::on(&right)
        .caption(
            format!("|X − {reference}| at each solver's steps"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(t0..t1, (lo / 2.0..hi * 30.0).log_scale())?;
    errors
        .configure_mesh()
        .x_desc("t")
        .y_label_formatter(&|e| format!("{e:.0e}"))
        .light_line_style(TRANSPARENT)
        .draw()?;
    errors
        .draw_series(LineSeries::new(em_err.iter().copied(), BLUE))?
        .label(em_label)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    errors
        .draw_series(LineSeries::new(ad_err.iter().copied(), RED))?
        .label(adaptive_label)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    errors.draw_series(ad_err.iter().map(|&p| Circle::new(p, 2, RED.filled())))?;
    errors
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Log–log plot of the strong errors against the step size: one line per
/// solver `(name, theoretical order, errors)`, each with a dashed reference
/// line of its theoretical slope through its error at the finest step.
fn plot_strong_order(path: &Path, hs: &[f64], lines: &[(&str, f64, &[f64])]) -> TourResult<()> {
    let root = SVGBackend::new(path, (750, 550)).into_drawing_area();
    root.fill(&WHITE)?;
    let (h_min, h_max) = hs.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &h| {
        (lo.min(h), hi.max(h))
    });
    let (e_min, e_max) = lines
        .iter()
        .flat_map(|l| l.2.iter().copied())
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), e| {
            (lo.min(e), hi.max(e))
        });
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Strong error on GBM (mean |X_N − X(1)| over 100 paths)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (h_min / 1.3..h_max * 1.3).log_scale().base(2.0),
            (e_min / 3.0..e_max * 3.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("h")
        .y_desc("strong error")
        .x_label_formatter(&|h| format!("2^{}", h.log2().round()))
        .y_label_formatter(&|e| format!("{e:.0e}"))
        .light_line_style(TRANSPARENT)
        .draw()?;
    let colors = [BLUE, RED, RGBColor(0, 150, 0)];
    for (&(name, order, errs), color) in lines.iter().zip(colors) {
        let pts: Vec<(f64, f64)> = hs.iter().copied().zip(errs.iter().copied()).collect();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(format!("{name} (theory {order})"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        // reference slope through the finest point
        if let Some(&(h_ref, e_ref)) = pts.iter().min_by(|a, b| a.0.total_cmp(&b.0)) {
            chart
                .draw_series(DashedLineSeries::new(
                    hs.iter().map(|&h| (h, e_ref * (h / h_ref).powf(order))),
                    6,
                    4,
                    color.mix(0.6).stroke_width(1),
                ))?
                .label(format!("slope {order} (dashed)"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], color.mix(0.6)));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// 6. Summary
// ---------------------------------------------------------------------------

/// Section 6: one line per run (`f` = drift, `g` = diffusion evaluations;
/// a tolerance of `-` marks a fixed-step run).
fn summary_section(tour: &Tour) {
    header("8. Summary");
    println!(
        "{:<20} {:<22} {:>6} {:>7} {:>7} {:>6} {:>5} {:>7} {:>10}  (measure)",
        "problem", "solver", "tol", "NFE f", "NFE g", "steps", "rej", "J evals", "error"
    );
    println!("{}", "-".repeat(114));
    for r in &tour.runs {
        let tol = r
            .tol
            .map_or_else(|| "-".to_string(), |t| format!("{t:.0e}"));
        println!(
            "{:<20} {:<22} {:>6} {:>7} {:>7} {:>6} {:>5} {:>7} {:>10.3e}  ({})",
            r.problem,
            r.solver,
            tol,
            r.stats.drift_evals,
            r.stats.diffusion_evals,
            r.stats.accepted_steps,
            r.stats.rejected_steps,
            r.stats.jacobian_evals,
            r.error,
            r.measure
        );
    }
}

/// Paths in the ensemble section.
const ENSEMBLE_PATHS: usize = 100_000;

/// Section 6: a Monte Carlo ensemble of 10^5 GBM paths — mean and 5–95 %
/// band against the exact lognormal ones, and the same statistics, to the
/// bit, on one and on two threads.
fn ensemble_section() -> TourResult<Vec<PathBuf>> {
    header("6. Monte Carlo ensemble: 10^5 GBM paths");
    // fixed steps, only the law matters: fresh i.i.d. increments are fastest
    let gbm = gbm_problem().driver(Increments);
    let times: Vec<f64> = (0..=20).map(|i| i as f64 * GBM_T / 20.0).collect();
    let opts = Options::default()
        .fixed_step(0.01)
        .save_at(SaveAt::Times(times.clone()));
    let taus = [0.05, 0.5, 0.95];
    let run = |threads: usize| -> TourResult<(sdeflow::statistics::EnsembleSummary, f64)> {
        let start = std::time::Instant::now();
        let s = Ensemble::new(&gbm, Sriw1, opts.clone(), ENSEMBLE_PATHS)
            .seed(GBM_SEED)
            .threads(threads)
            .statistics(&taus)?;
        Ok((s, start.elapsed().as_secs_f64()))
    };
    let (two, t2) = run(2)?;
    let (one, t1) = run(1)?;
    println!(
        "Sriw1, h = 0.01, {} paths: {:.2} s on 2 threads, {:.2} s on 1 thread; {} failed",
        ENSEMBLE_PATHS,
        t2,
        t1,
        two.failures.len()
    );
    println!(
        "1 thread and 2 threads give bit-identical statistics: {}",
        if one == two { "yes" } else { "NO" }
    );
    if one != two {
        return Err("the ensemble statistics depend on the thread count".into());
    }
    let z = Normal::standard();
    println!("      t   mean ± s.e.        exact mean   5 %     (exact)    95 %    (exact)");
    let mut worst_mean_z: f64 = 0.0;
    for ts in two.times.iter().step_by(5) {
        let t = ts.t;
        let exact_mean = GBM_X0 * (GBM_A * t).exp();
        let q = |tau: f64| {
            GBM_X0
                * ((GBM_A - 0.5 * GBM_B * GBM_B) * t + GBM_B * t.sqrt() * z.inverse_cdf(tau)).exp()
        };
        println!(
            "   {:4.2}   {:.4} ± {:.4}   {:.4}     {:.4}  ({:.4})   {:.4}  ({:.4})",
            t,
            ts.mean(0),
            ts.std_error(0),
            exact_mean,
            ts.quantiles[0][0],
            q(0.05),
            ts.quantiles[2][0],
            q(0.95)
        );
    }
    for ts in two.times.iter().skip(1) {
        let exact_mean = GBM_X0 * (GBM_A * ts.t).exp();
        worst_mean_z = worst_mean_z.max((ts.mean(0) - exact_mean).abs() / ts.std_error(0));
    }
    println!("largest |mean − exact| over the save times: {worst_mean_z:.2} standard errors");
    let dir = tour_dir()?;
    let csv = dir.join("ensemble_gbm.csv");
    two.write_csv(&csv)?;
    let svg = dir.join("ensemble_gbm.svg");
    plot_ensemble(&svg, &two)?;
    Ok(vec![csv, svg])
}

/// Mean and 5–95 % band of the ensemble against the exact ones.
fn plot_ensemble(path: &Path, s: &sdeflow::statistics::EnsembleSummary) -> TourResult<()> {
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let z = Normal::standard();
    let exact_q = |t: f64, tau: f64| {
        GBM_X0 * ((GBM_A - 0.5 * GBM_B * GBM_B) * t + GBM_B * t.sqrt() * z.inverse_cdf(tau)).exp()
    };
    let ymax = s
        .times
        .iter()
        .map(|ts| ts.quantiles[2][0])
        .fold(0.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "GBM ensemble, 10^5 paths: mean and 5–95 % band",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..GBM_T, 0.0..ymax)?;
    chart.configure_mesh().x_desc("t").y_desc("X").draw()?;
    let band: Vec<(f64, f64)> = s
        .times
        .iter()
        .map(|ts| (ts.t, ts.quantiles[2][0]))
        .chain(s.times.iter().rev().map(|ts| (ts.t, ts.quantiles[0][0])))
        .collect();
    chart
        .draw_series(std::iter::once(Polygon::new(band, BLUE.mix(0.2).filled())))?
        .label("ensemble 5–95 %")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], BLUE.mix(0.2).filled()));
    chart
        .draw_series(LineSeries::new(
            s.times.iter().map(|ts| (ts.t, ts.mean(0))),
            BLUE.stroke_width(2),
        ))?
        .label("ensemble mean")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    let fine: Vec<f64> = (0..=100).map(|i| i as f64 * GBM_T / 100.0).collect();
    chart
        .draw_series(LineSeries::new(
            fine.iter().map(|&t| (t, GBM_X0 * (GBM_A * t).exp())),
            RED.stroke_width(1),
        ))?
        .label("exact mean")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    for tau in [0.05, 0.95] {
        chart.draw_series(DashedLineSeries::new(
            fine.iter().map(|&t| (t, exact_q(t, tau))),
            6,
            4,
            RED.stroke_width(1),
        ))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Lotka–Volterra generic over the scalar, for exact VJPs.
#[derive(Clone, Copy)]
struct LvGeneric;

impl GenericField for LvGeneric {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = p[0] * y[0] - p[1] * y[0] * y[1];
        dy[1] = -p[2] * y[1] + p[3] * y[0] * y[1];
    }
}

/// Section 7: gradients of a data misfit through the Lotka–Volterra solve.
fn gradient_section() -> TourResult<()> {
    header("7. Gradients through the solver");
    let times: Vec<f64> = (1..=10).map(|i| i as f64).collect();
    let opts = Options::default().tol(1e-8).save_at(SaveAt::Times(times));
    let base = Problem::ode(Generic(LvGeneric), LV_Y0.to_vec(), LV_TSPAN);
    let loss = |ts: &[f64], ys: &[f64], g: &mut [f64]| {
        let mut l = 0.0;
        for (i, &t) in ts.iter().enumerate() {
            let target = [1.0 + 0.5 * (0.7 * t).sin(), 1.0 + 0.5 * (0.7 * t).cos()];
            for k in 0..2 {
                let d = ys[2 * i + k] - target[k];
                l += d * d;
                g[2 * i + k] = 2.0 * d;
            }
        }
        l
    };
    let problem = base.clone().params(LV_PARAMS.to_vec());
    println!("L = Σ_k |y(t_k) − target(t_k)|², t_k = 1..10, Tsit5 at rtol = atol = 1e-8");
    println!(
        "{:<28} {:>12} {:>12} {:>12} {:>12} {:>10}",
        "adjoint", "dL/dα", "dL/dβ", "dL/dγ", "dL/dδ", "time"
    );
    for (name, adjoint) in [
        (
            "Discrete { checkpoints: 16 }",
            Adjoint::Discrete { checkpoints: 16 },
        ),
        ("Interpolating", Adjoint::Interpolating),
        ("Backsolve", Adjoint::Backsolve),
    ] {
        let start = std::time::Instant::now();
        let g = grad(&problem, Tsit5, &opts, &loss, adjoint)?;
        let dt = start.elapsed().as_secs_f64();
        println!(
            "{:<28} {:>12.6} {:>12.6} {:>12.6} {:>12.6} {:>8.2} ms",
            name,
            g.dp[0],
            g.dp[1],
            g.dp[2],
            g.dp[3],
            dt * 1e3
        );
    }
    // central finite differences (adaptive steps: accurate to ~1e-5 only)
    let loss_at = |p: &[f64]| -> TourResult<f64> {
        let sol = solve(&base.clone().params(p.to_vec()), Tsit5, &opts)?;
        let mut g = vec![0.0; sol.ys.len()];
        Ok(loss(&sol.ts, &sol.ys, &mut g))
    };
    let mut fd = [0.0; 4];
    for j in 0..4 {
        let h = 1e-5;
        let (mut a, mut b) = (LV_PARAMS, LV_PARAMS);
        a[j] += h;
        b[j] -= h;
        fd[j] = (loss_at(&a)? - loss_at(&b)?) / (2.0 * h);
    }
    println!(
        "{:<28} {:>12.6} {:>12.6} {:>12.6} {:>12.6}",
        "central differences", fd[0], fd[1], fd[2], fd[3]
    );
    println!("(the discrete adjoint is exact for the computed solution; the continuous ones");
    println!(" and the differences agree with it to about the tolerance)");
    Ok(())
}
