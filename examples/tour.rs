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
//! 5. **summary** of every run.
//!
//! Later sections (SDEs, gradients, ensembles) plug in as further functions
//! called from [`main`], each pushing its rows into the same [`Tour`].

use std::error::Error;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use sdeflow::prelude::*;

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
    /// rtol = atol of the solve.
    tol: f64,
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
    let written = output_section(&tour)?;
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
                tol,
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
            tol,
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
        tol,
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

/// Section 4: writes the CSV files and SVG plots into `target/tour/`.
fn output_section(tour: &Tour) -> TourResult<Vec<PathBuf>> {
    header("4. Output (CSV and SVG)");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("tour");
    fs::create_dir_all(&dir)?;
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
// 5. Summary
// ---------------------------------------------------------------------------

/// Section 5: one line per run.
fn summary_section(tour: &Tour) {
    header("5. Summary");
    println!(
        "{:<20} {:<20} {:>6} {:>7} {:>6} {:>5} {:>7} {:>10}  (measure)",
        "problem", "solver", "tol", "NFE", "steps", "rej", "J evals", "error"
    );
    println!("{}", "-".repeat(102));
    for r in &tour.runs {
        println!(
            "{:<20} {:<20} {:>6.0e} {:>7} {:>6} {:>5} {:>7} {:>10.3e}  ({})",
            r.problem,
            r.solver,
            r.tol,
            r.stats.drift_evals,
            r.stats.accepted_steps,
            r.stats.rejected_steps,
            r.stats.jacobian_evals,
            r.error,
            r.measure
        );
    }
}
