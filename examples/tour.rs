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

use plotters::coord::Shift;
use plotters::coord::ranged1d::AsRangedCoord;
use plotters::prelude::*;
use sdeflow::ensemble::Ensemble;
use sdeflow::noise::{BrownianPath, BrownianTree};
use sdeflow::prelude::*;
use statrs::distribution::{ContinuousCDF, Normal};

#[path = "../tests/common/mod.rs"]
mod common;
use common::{
    ARENSTORF_MU, ARENSTORF_T, ARENSTORF_Y0, LV_PARAMS, LV_REF, LV_TSPAN, LV_Y0, LotkaVolterra,
    VDP_EPS, VDP_REF, VDP_TSPAN, VDP_Y0, arenstorf, fitted_slope, lotka_volterra, max_abs_diff,
    van_der_pol, van_der_pol_drift, van_der_pol_jacobian,
};

/// The result type of every section.
type TourResult<T> = Result<T, Box<dyn Error>>;

/// Number of points of the uniform Lotka–Volterra output grid.
const LV_GRID: usize = 400;

/// Number of points of the uniform Arenstorf output grid.
const ARENSTORF_GRID: usize = 2000;

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

impl Tour {
    /// Records one row of the summary table: `error` (what `measure` says)
    /// of the solve of `problem` by `solver` at `tol` (`None`: fixed steps).
    fn record(
        &mut self,
        problem: &'static str,
        solver: impl Into<String>,
        tol: Option<f64>,
        stats: Stats,
        (error, measure): (f64, &'static str),
    ) {
        self.runs.push(Run {
            problem,
            solver: solver.into(),
            tol,
            stats,
            error,
            measure,
        });
    }
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
    println!("{} files written:", written.len());
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

/// A dense solve of `problem` by `solver` at rtol = atol = `tol`, for the
/// output grids and plots of section 4.
fn dense_solve<F: Drift>(
    problem: &Problem<F>,
    solver: impl Method<Problem<F>>,
    tol: f64,
) -> TourResult<Solution> {
    Ok(solve(
        problem,
        solver,
        Options::default().tol(tol).save_at(SaveAt::Dense),
    )?)
}

// ---------------------------------------------------------------------------
// 1. Lotka–Volterra
// ---------------------------------------------------------------------------

/// The conserved quantity V = δx − γ ln x + βy − α ln y of Lotka–Volterra.
fn lv_invariant(y: &[f64]) -> f64 {
    let [alpha, beta, gamma, delta] = LV_PARAMS;
    delta * y[0] - gamma * y[0].ln() + beta * y[1] - alpha * y[1].ln()
}

/// Section 1: Lotka–Volterra with Tsit5 and Vern7 at two tolerances.
fn lotka_volterra_section(tour: &mut Tour) -> TourResult<()> {
    header("1. Lotka–Volterra (α=1.5, β=1, γ=3, δ=1, y0=(1,1), t ∈ [0,10])");
    let problem = lotka_volterra();
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
            let measure = (error, "|y(10)-ref|inf");
            tour.record("Lotka–Volterra", name, Some(tol), sol.stats, measure);
        }
    }
    let dense = dense_solve(&problem, Tsit5, 1e-8)?;
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

/// Section 2: the Arenstorf orbit with Tsit5 (1e-8) and Vern7 (1e-10).
fn arenstorf_section(tour: &mut Tour) -> TourResult<()> {
    header("2. Arenstorf orbit (one period, T = 17.0652165601579625…)");
    let problem = arenstorf();
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
        let measure = (dpos.max(dvel), "|y(T)-y(0)|inf");
        tour.record("Arenstorf", name, Some(tol), sol.stats, measure);
    }
    tour.arenstorf = Some(dense_solve(&problem, Vern7, 1e-10)?);
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. Van der Pol, μ = 1000
// ---------------------------------------------------------------------------

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
    let measure = (worst, "max rel. error");
    tour.record("Van der Pol μ=1000", label, Some(tol), sol.stats, measure);
}

/// Section 3: stiff Van der Pol (μ = 1000) with Bdf and exact Jacobians.
fn van_der_pol_section(tour: &mut Tour) -> TourResult<()> {
    header("3. Van der Pol, μ = 1000 (VDPOL, ε = 1e-6, y0 = (2, 0), t ∈ [0, 2])");
    println!("reference y(2) = {VDP_REF:?} (Bari/Hairer test set)");
    let tol = 1e-8;
    let sol = solve(&van_der_pol(), Bdf::default(), Options::default().tol(tol))?;
    report_van_der_pol(tour, "Bdf (dual-number J)", tol, &sol);
    println!(
        "{:<22} (exact Jacobians by dual numbers: each one is n = 2 Jacobian–vector products)",
        ""
    );

    // The same problem with a hand-written Jacobian, as a cross-check.
    let analytic = Problem::ode(van_der_pol_drift, VDP_Y0.to_vec(), VDP_TSPAN)
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

/// The smallest and the largest of some positive values (for log scales).
fn positive_extent(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    values
        .into_iter()
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

/// The output directory `target/tour/` of the workspace (created if needed).
fn tour_dir() -> TourResult<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("tour");
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// An SVG canvas of `size` pixels writing to `path`, filled white.
fn svg_canvas(path: &Path, size: (u32, u32)) -> TourResult<DrawingArea<SVGBackend<'_>, Shift>> {
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    Ok(root)
}

/// A chart over the coordinate specifications `X` × `Y` on an SVG canvas.
type Chart<'a, 'b, X, Y> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<<X as AsRangedCoord>::CoordDescType, <Y as AsRangedCoord>::CoordDescType>,
>;

/// A chart on `area` over `x` × `y` with the tour's caption font, margin
/// and label areas (`y_labels` pixels wide for the y axis).
fn new_chart<'a, 'b, X: AsRangedCoord, Y: AsRangedCoord>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
    y_labels: u32,
    x: X,
    y: Y,
) -> TourResult<Chart<'a, 'b, X, Y>> {
    Ok(ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(y_labels)
        .build_cartesian_2d(x, y)?)
}

/// Draws the legend of `chart` at `position`, on a translucent white box.
fn legend<'a, 'b: 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    position: SeriesLabelPosition,
) -> TourResult<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// A legend key: a line `len` pixels long in `style`.
fn line_key<S: Into<ShapeStyle> + Copy>(
    style: S,
    len: i32,
) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + len, y)], style)
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
    println!("this section: {} files in {}", written.len(), dir.display());
    Ok(written)
}

/// Lotka–Volterra plot: x(t), y(t) on the left, the phase portrait on the
/// right.
fn plot_lotka_volterra(path: &Path, ts: &[f64], states: &[Vec<f64>]) -> TourResult<()> {
    let root = svg_canvas(path, (1100, 450))?;
    let (left, right) = root.split_horizontally(650);

    // Head room above the peaks for the legend.
    let yr = padded_range(states.iter().flat_map(|s| s.iter().copied()), 0.05);
    let yr = yr.start..yr.end + 0.2 * (yr.end - yr.start);
    let populations = "Lotka–Volterra: populations";
    let mut chart = new_chart(&left, populations, 50, LV_TSPAN.0..LV_TSPAN.1, yr)?;
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
            .legend(line_key(color, 20));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;

    let xr = padded_range(states.iter().map(|s| s[0]), 0.05);
    let pr = padded_range(states.iter().map(|s| s[1]), 0.05);
    let mut phase = new_chart(&right, "phase portrait", 50, xr, pr)?;
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
    let root = svg_canvas(path, (700, 600))?;
    let xr = padded_range(states.iter().map(|s| s[0]), 0.05);
    let yr = padded_range(states.iter().map(|s| s[1]), 0.05);
    let mut chart = new_chart(&root, "Arenstorf orbit (one period)", 50, xr, yr)?;
    chart.configure_mesh().x_desc("x").y_desc("y").draw()?;
    chart
        .draw_series(LineSeries::new(
            states.iter().map(|s| (s[0], s[1])),
            BLUE.stroke_width(2),
        ))?
        .label("satellite")
        .legend(line_key(BLUE, 20));
    for (name, x, radius, key_radius, color) in [
        ("Earth", -ARENSTORF_MU, 7, 5, GREEN),
        ("Moon", 1.0 - ARENSTORF_MU, 4, 4, BLACK),
    ] {
        chart
            .draw_series(std::iter::once(Circle::new(
                (x, 0.0),
                radius,
                color.filled(),
            )))?
            .label(name)
            .legend(move |(x, y)| Circle::new((x + 10, y), key_radius, color.filled()));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present()?;
    Ok(())
}

/// Van der Pol plot: y1(t) above, y2(t) below, at the solver steps (line
/// plus one dot per step).
fn plot_van_der_pol(path: &Path, sol: &Solution) -> TourResult<()> {
    let root = svg_canvas(path, (900, 700))?;
    let (top, bottom) = root.split_vertically(350);
    for (k, area) in [(0, &top), (1, &bottom)] {
        let yr = padded_range(sol.component(k), 0.08);
        let caption = format!("Van der Pol, μ = 1000 (Bdf steps): y{}", k + 1);
        let mut chart = new_chart(area, &caption, 60, VDP_TSPAN.0..VDP_TSPAN.1, yr)?;
        chart
            .configure_mesh()
            .x_desc("t")
            .y_desc(format!("y{}", k + 1))
            .draw()?;
        chart.draw_series(LineSeries::new(
            sol.iter().map(|(t, y)| (t, y[k])),
            BLUE.stroke_width(2),
        ))?;
        chart.draw_series(
            sol.iter()
                .map(|(t, y)| Circle::new((t, y[k]), 1, RED.filled())),
        )?;
    }
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
/// A field as a plain function: a nameable type, for the helpers generic
/// over the solvers of [`gbm_problem`].
type Rhs = fn(f64, &[f64], &[f64], &mut [f64]);

fn gbm_problem() -> Problem<Rhs, Rhs> {
    Problem::<Rhs, Rhs>::sde(
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

/// One SDE on one Brownian path, solved by fixed-step Euler–Maruyama and by
/// an adaptive solver: what section 5 (a) and (b) print, record and plot.
#[derive(Debug)]
struct OnePath {
    /// Its name in the summary table.
    problem: &'static str,
    /// Stem of its CSV and SVG files.
    file: &'static str,
    /// Title of its plot.
    title: &'static str,
    /// The value at the end of the span, as printed (`X(1)`).
    end: &'static str,
    /// What the reference is (`exact`, `reference`): its CSV column and
    /// plot label.
    reference: &'static str,
    /// Its short form in the printed errors (`exact`, `ref`).
    reference_short: &'static str,
    /// What the summary table's error measures.
    measure: &'static str,
    /// Printed after the reference value at the end.
    note: String,
    /// The Euler–Maruyama step.
    h: f64,
    /// The seed of the Brownian path.
    seed: u64,
    /// A dashed horizontal line `(y, label)` on the plot.
    level: Option<(f64, String)>,
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
    /// Legend label of the Euler–Maruyama path.
    em_label: String,
    /// Legend label of the adaptive path.
    adaptive_label: String,
    /// CSV column of the adaptive path (the solver's name in lower case).
    adaptive_column: String,
}

/// Solves `problem` on the path of `spec.seed` by Euler–Maruyama with step
/// `spec.h` and by the adaptive `solver` (named `name`) at [`SDE_TOL`],
/// prints both against `reference` (the exact or reference solution at the
/// given times on that path), records both runs, and returns the paths.
fn one_path<F: Drift, G: Diffusion, S: Solver<Problem<F, G>> + Copy>(
    tour: &mut Tour,
    spec: &OnePath,
    problem: &Problem<F, G>,
    (name, solver): (&'static str, S),
    reference: impl Fn(&[f64]) -> Vec<f64>,
) -> TourResult<SdePaths> {
    let OnePath { end, h, seed, .. } = *spec;
    // The default driver (VirtualTree): the fixed-step solve queries the same
    // Brownian tree as the adaptive one (`.driver(Increments)` would draw the
    // increments of a fixed-step solve directly: a different path).
    let em = solve(
        problem,
        EulerMaruyama,
        Options::default().fixed_step(h).seed(seed),
    )?;
    let adaptive = solve(
        problem,
        solver,
        Options::default()
            .tol(SDE_TOL)
            .seed(seed)
            .save_at(SaveAt::Dense),
    )?;
    let ref_grid = reference(&em.ts);
    let ref_steps = reference(&adaptive.ts);
    let x_ref = ref_grid.last().copied().unwrap_or(f64::NAN);
    println!("    {} {end} = {x_ref:.10}{}", spec.reference, spec.note);
    let em_label = format!("EulerMaruyama h={h:.0e}");
    let adaptive_label = format!("{name} tol={SDE_TOL:.0e}");
    for (label, sol, at_steps, tol) in [
        (&em_label, &em, &ref_grid, None),
        (&adaptive_label, &adaptive, &ref_steps, Some(SDE_TOL)),
    ] {
        let error = (sol.last()[0] - x_ref).abs();
        let max_error = max_error_at_steps(sol, at_steps);
        print_sde_work(label, &sol.stats);
        println!(
            "{:<24} {end} = {:.10}   |{end} − {}| = {error:.3e}   max over steps = {max_error:.3e}",
            "",
            sol.last()[0],
            spec.reference_short
        );
        let solver = if tol.is_some() {
            name.to_string()
        } else {
            em_label.clone()
        };
        tour.record(spec.problem, solver, tol, sol.stats, (error, spec.measure));
    }
    Ok(SdePaths {
        adaptive: sample(&adaptive, &em.ts)?.iter().map(|y| y[0]).collect(),
        adaptive_steps: adaptive.iter().map(|(t, y)| (t, y[0])).collect(),
        reference_at_steps: ref_steps,
        em: em.component(0),
        reference: ref_grid,
        ts: em.ts,
        adaptive_label: format!("{adaptive_label} (steps)"),
        adaptive_column: name.to_lowercase(),
        em_label,
    })
}

/// Mean strong error `E|X_N − X(T)|` of fixed-step GBM solves over
/// [`STRONG_PATHS`] seeds at each step size, and the work of one solve at the
/// finest step (the same for every path).
fn gbm_strong_errors<S: Solver<Problem<Rhs, Rhs>> + Copy>(
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
    let gbm = OnePath {
        problem: "GBM (one path)",
        file: "gbm_paths",
        title: "GBM, one path",
        end: "X(1)",
        reference: "exact",
        reference_short: "exact",
        measure: "|X(1)-exact|",
        note: String::new(),
        h: GBM_H,
        seed: GBM_SEED,
        level: None,
    };
    let gbm_paths = one_path(tour, &gbm, &gbm_problem(), ("Sriw1", Sriw1), |ts| {
        gbm_exact(GBM_SEED, ts)
    })?;
    // Dense output of an SDE solve is linear between steps: at times between
    // steps it misses the Brownian wiggles the steps skipped over.
    let sri_interp_error = max_abs_diff(&gbm_paths.adaptive, &gbm_paths.reference);
    println!(
        "{:<24} its dense output (linear between steps) on the EM grid: max error = \
         {sri_interp_error:.3e}",
        ""
    );

    // (b) Ornstein–Uhlenbeck, additive noise
    let [theta, mu, sigma] = OU_PARAMS;
    println!();
    println!(
        "(b) Ornstein–Uhlenbeck dX = θ(μ − X) dt + σ dW, θ = {theta}, μ = {mu}, σ = {sigma}, \
         X0 = {OU_X0}, t ∈ [0, {OU_T}], additive noise, seed {OU_SEED}"
    );
    // The reference: the exact transition over substeps of 1e-4 on the
    // same Brownian tree (see `ou_reference`), on the grid and at the steps.
    let ou = OnePath {
        problem: "Ornstein–Uhlenbeck",
        file: "ou_paths",
        title: "Ornstein–Uhlenbeck, one path",
        end: "X(5)",
        reference: "reference",
        reference_short: "ref",
        measure: "|X(5)-ref|",
        note: format!(
            " (exact transition over substeps ≤ {OU_REF_H:.0e} on the same path); stationary \
             law N(μ, σ²/(2θ)) = N({mu}, {:.4}²)",
            sigma / (2.0 * theta).sqrt()
        ),
        h: OU_H,
        seed: OU_SEED,
        level: Some((mu, format!("μ = {mu}"))),
    };
    let ou_paths = one_path(tour, &ou, &ou_problem(), ("Sra1", Sra1), |ts| {
        ou_reference(OU_SEED, ts)
    })?;

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
        let measure = (errs.last().copied().unwrap_or(f64::NAN), "mean |X_N-X(1)|");
        let solver = format!("{name} h=2^-{finest}");
        tour.record("GBM (100 paths)", solver, None, *stats, measure);
    }

    // CSV and SVG
    for (spec, paths) in [(&gbm, &gbm_paths), (&ou, &ou_paths)] {
        let csv = dir.join(format!("{}.csv", spec.file));
        let rows: Vec<[f64; 3]> = (0..paths.ts.len())
            .map(|i| [paths.reference[i], paths.em[i], paths.adaptive[i]])
            .collect();
        let columns = [
            "t",
            spec.reference,
            "euler_maruyama",
            &paths.adaptive_column,
        ];
        write_csv(
            &csv,
            &columns,
            paths.ts.iter().copied().zip(rows.iter().map(|r| &r[..])),
        )?;
        written.push(csv);
        let svg = dir.join(format!("{}.svg", spec.file));
        plot_sde_paths(&svg, spec, paths)?;
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
    println!("this section: {} files in {}", written.len(), dir.display());
    Ok(written)
}

/// Points `(t, |y − r|)` of the errors at each step, without the exact
/// zeros (at `t0`; they are off the log scale).
fn step_errors(steps: impl Iterator<Item = (f64, f64)>, reference: &[f64]) -> Vec<(f64, f64)> {
    steps
        .zip(reference)
        .map(|((t, y), r)| (t, (y - r).abs()))
        .filter(|p| p.1 > 0.0)
        .collect()
}

/// One-path SDE plot: the reference, Euler–Maruyama, the adaptive solution
/// (a line through its steps, one dot per step) and an optional dashed
/// horizontal `level` on the left; the errors against the reference at each
/// solver's steps on the right.
fn plot_sde_paths(path: &Path, spec: &OnePath, paths: &SdePaths) -> TourResult<()> {
    let (reference, em_label, adaptive_label) =
        (spec.reference, &paths.em_label, &paths.adaptive_label);
    let root = svg_canvas(path, (1100, 450))?;
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
    let mut chart = new_chart(&left, spec.title, 50, t0..t1, yr)?;
    chart.configure_mesh().x_desc("t").y_desc("X").draw()?;
    let series = [
        (reference, &paths.reference, BLACK),
        (em_label.as_str(), &paths.em, BLUE),
    ];
    for (label, ys, color) in series {
        chart
            .draw_series(LineSeries::new(
                paths.ts.iter().copied().zip(ys.iter().copied()),
                color.stroke_width(if color == BLACK { 2 } else { 1 }),
            ))?
            .label(label)
            .legend(line_key(color, 20));
    }
    chart
        .draw_series(LineSeries::new(
            paths.adaptive_steps.iter().copied(),
            RED.stroke_width(1),
        ))?
        .label(adaptive_label)
        .legend(line_key(RED, 20));
    chart.draw_series(
        paths
            .adaptive_steps
            .iter()
            .map(|&p| Circle::new(p, 2, RED.filled())),
    )?;
    if let Some((y, label)) = &spec.level {
        chart
            .draw_series(DashedLineSeries::new(
                [(t0, *y), (t1, *y)],
                8,
                6,
                BLACK.mix(0.5).stroke_width(1),
            ))?
            .label(label)
            .legend(line_key(BLACK.mix(0.5), 8));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;

    // Errors at each solver's own steps (zero at t0 is left out of the log
    // scale); the linear interpolant between adaptive steps is not compared.
    let em_steps = paths.ts.iter().copied().zip(paths.em.iter().copied());
    let em_err = step_errors(em_steps, &paths.reference);
    let ad_steps = paths.adaptive_steps.iter().copied();
    let ad_err = step_errors(ad_steps, &paths.reference_at_steps);
    let (lo, hi) = positive_extent(em_err.iter().chain(&ad_err).map(|p| p.1));
    let (lo, hi) = if lo < hi { (lo, hi) } else { (1e-8, 1.0) };
    let caption = format!("|X − {reference}| at each solver's steps");
    let mut errors = new_chart(
        &right,
        &caption,
        60,
        t0..t1,
        (lo / 2.0..hi * 30.0).log_scale(),
    )?;
    errors
        .configure_mesh()
        .x_desc("t")
        .y_label_formatter(&|e| format!("{e:.0e}"))
        .light_line_style(TRANSPARENT)
        .draw()?;
    for (label, err, color) in [(em_label, &em_err, BLUE), (adaptive_label, &ad_err, RED)] {
        errors
            .draw_series(LineSeries::new(err.iter().copied(), color))?
            .label(label)
            .legend(line_key(color, 20));
    }
    errors.draw_series(ad_err.iter().map(|&p| Circle::new(p, 2, RED.filled())))?;
    legend(&mut errors, SeriesLabelPosition::UpperLeft)?;
    root.present()?;
    Ok(())
}

/// Log–log plot of the strong errors against the step size: one line per
/// solver `(name, theoretical order, errors)`, each with a dashed reference
/// line of its theoretical slope through its error at the finest step.
fn plot_strong_order(path: &Path, hs: &[f64], lines: &[(&str, f64, &[f64])]) -> TourResult<()> {
    let root = svg_canvas(path, (750, 550))?;
    let (h_min, h_max) = positive_extent(hs.iter().copied());
    let (e_min, e_max) = positive_extent(lines.iter().flat_map(|l| l.2.iter().copied()));
    let mut chart = new_chart(
        &root,
        "Strong error on GBM (mean |X_N − X(1)| over 100 paths)",
        70,
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
            .legend(line_key(color, 20));
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
                .legend(line_key(color.mix(0.6), 8));
        }
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
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
    let (one, t1) = run(1)?;
    let (two, t2) = run(2)?;
    println!(
        "Sriw1, h = 0.01, {} paths, {} failed; wall time of the whole ensemble:",
        ENSEMBLE_PATHS,
        two.failures.len()
    );
    let per_path = |t: f64| t / ENSEMBLE_PATHS as f64 * 1e6;
    println!("  1 thread:  {t1:.2} s ({:.1} µs per path)", per_path(t1));
    println!(
        "  2 threads: {t2:.2} s ({:.1} µs per path; {:.2}x the 1-thread speed)",
        per_path(t2),
        t1 / t2
    );
    println!(
        "1 thread and 2 threads give bit-identical statistics: {}",
        if one == two { "yes" } else { "NO" }
    );
    if one != two {
        return Err("the ensemble statistics depend on the thread count".into());
    }
    println!("      t   mean ± s.e.        exact mean   5 %     (exact)    95 %    (exact)");
    for ts in two.times.iter().step_by(5) {
        let t = ts.t;
        println!(
            "   {:4.2}   {:.4} ± {:.4}   {:.4}     {:.4}  ({:.4})   {:.4}  ({:.4})",
            t,
            ts.mean(0),
            ts.std_error(0),
            gbm_mean(t),
            ts.quantile(0.05, 0).unwrap_or(f64::NAN),
            gbm_quantile(t, 0.05),
            ts.quantile(0.95, 0).unwrap_or(f64::NAN),
            gbm_quantile(t, 0.95)
        );
    }
    let mut worst_mean_z: f64 = 0.0;
    for ts in two.times.iter().skip(1) {
        worst_mean_z = worst_mean_z.max((ts.mean(0) - gbm_mean(ts.t)).abs() / ts.std_error(0));
    }
    println!("largest |mean − exact| over the save times: {worst_mean_z:.2} standard errors");
    let dir = tour_dir()?;
    let csv = dir.join("ensemble_gbm.csv");
    two.write_csv(&csv)?;
    let svg = dir.join("ensemble_gbm.svg");
    plot_ensemble(&svg, &two)?;
    Ok(vec![csv, svg])
}

/// The exact mean `X0 e^{at}` of GBM at `t`.
fn gbm_mean(t: f64) -> f64 {
    GBM_X0 * (GBM_A * t).exp()
}

/// The exact `tau`-quantile of GBM at `t` (a lognormal law).
fn gbm_quantile(t: f64, tau: f64) -> f64 {
    let z = Normal::standard().inverse_cdf(tau);
    GBM_X0 * ((GBM_A - 0.5 * GBM_B * GBM_B) * t + GBM_B * t.sqrt() * z).exp()
}

/// Mean and 5–95 % band of the ensemble against the exact ones.
fn plot_ensemble(path: &Path, s: &sdeflow::statistics::EnsembleSummary) -> TourResult<()> {
    let root = svg_canvas(path, (900, 500))?;
    let (Some(upper), Some(lower)) = (s.quantile_path(0.95, 0), s.quantile_path(0.05, 0)) else {
        return Err("the ensemble plot needs the 5 % and 95 % quantiles".into());
    };
    let ymax = upper.iter().map(|&(_, q)| q).fold(0.0, f64::max) * 1.1;
    let caption = "GBM ensemble, 10^5 paths: mean and 5–95 % band";
    let mut chart = new_chart(&root, caption, 50, 0.0..GBM_T, 0.0..ymax)?;
    chart.configure_mesh().x_desc("t").y_desc("X").draw()?;
    let band: Vec<(f64, f64)> = upper.into_iter().chain(lower.into_iter().rev()).collect();
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
        .legend(line_key(BLUE.stroke_width(2), 20));
    let fine: Vec<f64> = (0..=100).map(|i| i as f64 * GBM_T / 100.0).collect();
    chart
        .draw_series(LineSeries::new(
            fine.iter().map(|&t| (t, gbm_mean(t))),
            RED.stroke_width(1),
        ))?
        .label("exact mean")
        .legend(line_key(RED, 20));
    for tau in [0.05, 0.95] {
        let series = chart.draw_series(DashedLineSeries::new(
            fine.iter().map(|&t| (t, gbm_quantile(t, tau))),
            6,
            4,
            RED.stroke_width(1),
        ))?;
        // one legend entry for the pair of exact quantile lines
        if tau == 0.05 {
            series
                .label("exact 5 % and 95 % quantiles")
                .legend(|(x, y)| {
                    // a dashed key: two dashes, relative to (x, y)
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (7, 0)], RED)
                        + PathElement::new(vec![(12, 0), (20, 0)], RED)
                });
        }
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present()?;
    Ok(())
}

/// Section 7: gradients of a data misfit through the Lotka–Volterra solve.
fn gradient_section() -> TourResult<()> {
    header("7. Gradients through the solver");
    let times: Vec<f64> = (1..=10).map(|i| i as f64).collect();
    let opts = Options::default().tol(1e-8).save_at(SaveAt::Times(times));
    let base = Problem::ode_field(Generic(LotkaVolterra), LV_Y0.to_vec(), LV_TSPAN);
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
