//! Work–precision report: time to an achieved error of sdeflow's Tsit5,
//! Vern7 and Dopri5 against diffsol 0.18's explicit `tsit45` (the only
//! explicit method diffsol 0.18 has). Plain `fn main` (no criterion).
//!
//! Run with `cargo bench --bench work_precision` (release build). It prints
//! a table per problem, the time ratio sdeflow/diffsol at equal achieved
//! error, and writes `target/bench-report/work_precision.csv` and the plot
//! `target/bench-report/work_precision.svg` (log error against log time).
//!
//! # What is measured
//!
//! * Problems: Lotka–Volterra (α=1.5, β=1, γ=3, δ=1, y0=(1, 1), t ∈ [0, 10];
//!   30-digit reference), the Arenstorf orbit over one period and Kepler's
//!   problem with e = 0.6 over two periods (both return exactly to their
//!   initial state; `/work/shared/reference/test_problems.md`).
//! * rtol = atol ∈ {1e-4, 1e-5, …, 1e-10}: drift evaluations (NFE),
//!   accepted and rejected steps, the achieved error — the max-abs norm of
//!   y(t1) − reference — and the median time per solve.
//! * A neural ODE (MLP 2-50-2 tanh, the network of `benches/gradients.rs`,
//!   t ∈ [0, 1], rtol = atol = 1e-6): steps and NFE of Tsit5 and tsit45.
//!
//! # Timing
//!
//! For one problem and tolerance, all methods are timed in rounds: a batch
//! of about 2 ms of each per round, the first method rotating, until each
//! had at least its budget (0.5 s) and at least 7 rounds; the time is the
//! median over rounds. sdeflow: one `solve` with `SaveAt::T1`; diffsol:
//! building the solver (initial derivative and initial step) and `step()` to
//! the stop time; both evaluate the same right-hand-side function.
//!
//! # Time at equal error
//!
//! The honest comparison is at equal achieved error, not at equal tolerance:
//! for every diffsol point, sdeflow's log time is interpolated linearly in
//! log error between its two points that bracket diffsol's error (no
//! extrapolation); the ratio sdeflow/diffsol of the times at that error is
//! printed (below 1: sdeflow is faster at that accuracy).
//!
//! Extra sdeflow controllers can be compared with
//! `WP_CONTROLLERS="g1,g2,safety,qmin,qmax;…"` (a PI controller with
//! `β1 = g1/k`, `β2 = g2/k`, `k` the error order); they are run for Tsit5
//! and Vern7 and shown as `Tsit5[g1,g2,…]`.
//!
//! Without `--bench` (e.g. `cargo test --benches`) every case runs once and
//! nothing is written.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use plotters::prelude::*;
use sdeflow::control::{Controller, PiController};
use sdeflow::nn::{Activation, Mlp};
use sdeflow::prelude::*;

#[path = "../tests/common/mod.rs"]
mod common;
use common::max_abs_diff;

#[path = "common/timing.rs"]
mod timing;
use timing::{Timer, Timing, csv_cells, measure_many};

#[path = "common/explicit.rs"]
mod explicit;
use explicit::{
    Arenstorf, Case, Kepler, LotkaVolterra, MAX_STEPS, diffsol_case, diffsol_tsit45,
    sdeflow_problem,
};

/// The name of diffsol's method in the report.
const DIFFSOL: &str = "diffsol tsit45";

/// The tolerances rtol = atol of the report.
const TOLS: [f64; 7] = [1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10];

/// One solve of one method at one tolerance.
#[derive(Debug, Clone)]
struct Point {
    tol: f64,
    nfe: usize,
    accepted: usize,
    rejected: usize,
    /// max-abs error of y(t1).
    err: f64,
    time: Option<Timing>,
}

/// A method's points on one problem.
#[derive(Debug, Clone)]
struct Series {
    problem: &'static str,
    method: String,
    points: Vec<Point>,
}

/// A PI controller given as gains over the error order.
#[derive(Debug, Clone, Copy)]
struct Gains {
    g1: f64,
    g2: f64,
    safety: f64,
    qmin: f64,
    qmax: f64,
}

impl Gains {
    fn controller(self, k: f64) -> Controller {
        PiController::new(self.g1 / k, self.g2 / k)
            .with_safety(self.safety)
            .with_limits(self.qmin, self.qmax)
            .into()
    }

    fn label(self) -> String {
        format!(
            "[{},{},{},{},{}]",
            self.g1, self.g2, self.safety, self.qmin, self.qmax
        )
    }
}

/// The controllers of `WP_CONTROLLERS` (see the module docs).
fn extra_controllers() -> Vec<Gains> {
    let Ok(spec) = std::env::var("WP_CONTROLLERS") else {
        return Vec::new();
    };
    spec.split(';')
        .filter(|s| !s.trim().is_empty())
        .filter_map(|s| {
            let v: Vec<f64> = s.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            match v[..] {
                [g1, g2, safety, qmin, qmax] => Some(Gains {
                    g1,
                    g2,
                    safety,
                    qmin,
                    qmax,
                }),
                _ => {
                    eprintln!("WP_CONTROLLERS: `{s}` is not g1,g2,safety,qmin,qmax; skipped");
                    None
                }
            }
        })
        .collect()
}

/// A method to run: its name and one solve returning (work, y(t1)).
type Run<'a> = Box<dyn Fn() -> Option<(Work, Vec<f64>)> + 'a>;

/// The work of a solve: NFE, accepted and rejected steps.
struct Work {
    nfe: usize,
    accepted: usize,
    rejected: usize,
}

fn sdeflow_run<'a, F: Drift, S: Method<Problem<F>> + Copy + 'a>(
    problem: &'a Problem<F>,
    method: S,
    tol: f64,
    controller: Option<Controller>,
) -> Run<'a> {
    let mut opts = Options::default()
        .tol(tol)
        .save_at(SaveAt::T1)
        .max_steps(MAX_STEPS);
    if let Some(c) = controller {
        opts = opts.controller(c);
    }
    Box::new(move || {
        let sol = solve(black_box(problem), method, &opts).ok()?;
        let s = &sol.stats;
        Some((
            Work {
                nfe: s.drift_evals,
                accepted: s.accepted_steps,
                rejected: s.rejected_steps,
            },
            sol.last().to_vec(),
        ))
    })
}

/// All methods on case `C` at every tolerance.
fn case_series<C: Case>(cfg: &Timer, extra: &[Gains]) -> Vec<Series> {
    let problem = sdeflow_problem::<C>();
    let mut names = vec![
        "Tsit5".to_string(),
        "Vern7".into(),
        "Dopri5".into(),
        DIFFSOL.into(),
    ];
    for g in extra {
        names.push(format!("Tsit5{}", g.label()));
        names.push(format!("Vern7{}", g.label()));
    }
    let mut series: Vec<Series> = names
        .into_iter()
        .map(|method| Series {
            problem: C::NAME,
            method,
            points: Vec::new(),
        })
        .collect();
    for tol in TOLS {
        let diffsol = diffsol_case::<C>(tol).ok();
        let mut runs: Vec<Run<'_>> = vec![
            sdeflow_run(&problem, Tsit5, tol, None),
            sdeflow_run(&problem, Vern7, tol, None),
            sdeflow_run(&problem, Dopri5, tol, None),
            Box::new(|| {
                let out = diffsol.as_ref()?().ok()?;
                Some((
                    Work {
                        nfe: out.nfe,
                        accepted: out.accepted,
                        rejected: out.rejected,
                    },
                    out.y,
                ))
            }),
        ];
        for g in extra {
            runs.push(sdeflow_run(&problem, Tsit5, tol, Some(g.controller(5.0))));
            runs.push(sdeflow_run(&problem, Vern7, tol, Some(g.controller(7.0))));
        }
        let firsts: Vec<_> = runs.iter().map(|r| r()).collect();
        // time the methods that worked, in rounds
        let ok: Vec<usize> = (0..runs.len()).filter(|&i| firsts[i].is_some()).collect();
        let mut closures: Vec<Box<dyn FnMut() + '_>> = ok
            .iter()
            .map(|&i| {
                let r = &runs[i];
                Box::new(move || {
                    black_box(r());
                }) as Box<dyn FnMut()>
            })
            .collect();
        let times = measure_many(&mut closures, cfg);
        for (s, first) in series.iter_mut().zip(&firsts) {
            if let Some((st, y)) = first {
                s.points.push(Point {
                    tol,
                    nfe: st.nfe,
                    accepted: st.accepted,
                    rejected: st.rejected,
                    err: max_abs_diff(y, C::REFERENCE),
                    time: None,
                });
            }
        }
        for (&i, t) in ok.iter().zip(times) {
            if let Some(p) = series[i].points.last_mut() {
                p.time = Some(t);
            }
        }
    }
    series
}

/// The work `of` (time or NFE) of series `s` at error `err`, interpolated in
/// log–log between the two points of `s` whose errors bracket it (none when
/// no pair does).
fn work_at_error(s: &Series, err: f64, of: impl Fn(&Point) -> Option<f64>) -> Option<f64> {
    let pts: Vec<(f64, f64)> = s
        .points
        .iter()
        .filter_map(|p| Some((p.err.ln(), of(p)?.ln())))
        .filter(|(e, w)| e.is_finite() && w.is_finite())
        .collect();
    let x = err.ln();
    pts.windows(2).find_map(|w| {
        let ((e0, w0), (e1, w1)) = (w[0], w[1]);
        if x < e0.min(e1) || x > e0.max(e1) {
            return None;
        }
        let f = if e1 == e0 { 0.0 } else { (x - e0) / (e1 - e0) };
        Some((w0 + f * (w1 - w0)).exp())
    })
}

/// A point's median time.
fn time_of(p: &Point) -> Option<f64> {
    Some(p.time?.median)
}

/// A point's NFE.
fn nfe_of(p: &Point) -> Option<f64> {
    Some(p.nfe as f64)
}

fn fmt_time(secs: f64) -> String {
    if secs < 1e-3 {
        format!("{:.2} µs", secs * 1e6)
    } else {
        format!("{:.3} ms", secs * 1e3)
    }
}

fn print_series(all: &[Series]) {
    println!(
        "{:<16} {:<28} {:>6} {:>8} {:>7} {:>6} {:>10} {:>11} {:>6}",
        "problem", "method", "rtol", "NFE", "acc", "rej", "max|err|", "time", "±"
    );
    for s in all {
        for p in &s.points {
            let (t, sp) = p.time.map_or(("-".into(), "-".into()), |t| {
                let sp = if t.spread.is_finite() {
                    format!("{:.1}%", 100.0 * t.spread)
                } else {
                    "-".into()
                };
                (fmt_time(t.median), sp)
            });
            println!(
                "{:<16} {:<28} {:>6.0e} {:>8} {:>7} {:>6} {:>10.2e} {:>11} {:>6}",
                s.problem, s.method, p.tol, p.nfe, p.accepted, p.rejected, p.err, t, sp
            );
        }
    }
}

/// For every diffsol point: each sdeflow method's time and NFE at diffsol's
/// error, as ratios sdeflow/diffsol; and per method the geometric means of
/// those ratios over the points where both exist.
fn equal_error_lines(all: &[Series]) -> Vec<String> {
    let mut lines = Vec::new();
    let Some(theirs) = all.iter().find(|s| s.method == DIFFSOL) else {
        return lines;
    };
    let ours: Vec<&Series> = all.iter().filter(|s| s.method != DIFFSOL).collect();
    // per method: (Σ ln time ratio, Σ ln NFE ratio, count)
    let mut logs = vec![(0.0, 0.0, 0usize); ours.len()];
    for p in &theirs.points {
        let Some(tt) = time_of(p) else { continue };
        let mut line = format!(
            "{:<16} tsit45 rtol {:.0e}: err {:.2e}, {} NFE, {}; sdeflow/diffsol time (NFE) at that error:",
            theirs.problem,
            p.tol,
            p.err,
            p.nfe,
            fmt_time(tt)
        );
        for (s, acc) in ours.iter().zip(&mut logs) {
            let t = work_at_error(s, p.err, time_of).map(|t| t / tt);
            let n = work_at_error(s, p.err, nfe_of).map(|n| n / p.nfe as f64);
            match (t, n) {
                (Some(t), Some(n)) => {
                    let _ = write!(line, " {} {t:.2} ({n:.2})", s.method);
                    acc.0 += t.ln();
                    acc.1 += n.ln();
                    acc.2 += 1;
                }
                _ => {
                    let _ = write!(line, " {} n/a", s.method);
                }
            }
        }
        lines.push(line);
    }
    let mut summary = format!("{:<16} geometric mean time (NFE) ratio:", theirs.problem);
    for (s, (lt, ln, k)) in ours.iter().zip(logs) {
        if k > 0 {
            let k = k as f64;
            let _ = write!(
                summary,
                " {} {:.2} ({:.2})",
                s.method,
                (lt / k).exp(),
                (ln / k).exp()
            );
        }
    }
    lines.push(summary);
    lines
}

fn csv(all: &[Series]) -> String {
    let mut s = String::from(
        "problem,method,rtol,atol,nfe,accepted_steps,rejected_steps,max_abs_error,\
         time_median_us,time_rel_half_iqr,timed_runs\n",
    );
    for se in all {
        for p in &se.points {
            let (t, sp, runs) = csv_cells(p.time);
            let cells = [
                se.problem.to_string(),
                se.method.clone(),
                format!("{:e}", p.tol),
                format!("{:e}", p.tol),
                p.nfe.to_string(),
                p.accepted.to_string(),
                p.rejected.to_string(),
                format!("{:e}", p.err),
                t,
                sp,
                runs.to_string(),
            ];
            s.push_str(&cells.join(","));
            s.push('\n');
        }
    }
    s
}

/// One panel per problem: log10 error (x) against log10 time per solve (y).
fn plot(path: &Path, problems: &[Vec<Series>]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (480 * problems.len() as u32, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, problems.len()));
    for (area, series) in panels.iter().zip(problems) {
        let pts = |s: &Series| -> Vec<(f64, f64)> {
            s.points
                .iter()
                .filter_map(|p| Some((p.err, p.time?.median * 1e6)))
                .filter(|(e, t)| *e > 0.0 && *t > 0.0)
                .collect()
        };
        let all: Vec<(f64, f64)> = series.iter().flat_map(pts).collect();
        if all.is_empty() {
            continue;
        }
        let fold = |f: fn(f64, f64) -> f64, init: f64, sel: fn(&(f64, f64)) -> f64| {
            all.iter().map(sel).fold(init, f)
        };
        let (e0, e1) = (
            fold(f64::min, f64::INFINITY, |p| p.0),
            fold(f64::max, 0.0, |p| p.0),
        );
        let (t0, t1) = (
            fold(f64::min, f64::INFINITY, |p| p.1),
            fold(f64::max, 0.0, |p| p.1),
        );
        let mut chart = ChartBuilder::on(area)
            .caption(series[0].problem, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (e0 / 2.0..e1 * 2.0).log_scale(),
                (t0 / 1.5..t1 * 1.5).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("max-abs error at t1")
            .y_desc("time per solve (µs)")
            .x_label_formatter(&|x| format!("{x:.0e}"))
            .draw()?;
        for (i, s) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let p = pts(s);
            chart
                .draw_series(LineSeries::new(p.clone(), color.stroke_width(2)))?
                .label(s.method.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
            chart.draw_series(p.into_iter().map(|xy| Circle::new(xy, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// The neural ODE of `benches/gradients.rs` (MLP 2-50-2 tanh, seed 7,
/// y0 = (0.5, −0.3), t ∈ [0, 1]) at rtol = atol = 1e-6: steps and NFE of
/// sdeflow's Tsit5 and diffsol's tsit45, and their distance from a Vern7
/// solution at rtol = atol = 1e-13.
fn neural_ode_line() -> String {
    let mlp = Mlp::new(&[2, 50, 2], Activation::Tanh);
    let params = mlp.init_params(7, 1.0);
    let y0 = [0.5, -0.3];
    let problem = Problem::ode_field(mlp.clone(), y0.to_vec(), (0.0, 1.0)).params(params.clone());
    let opts = Options::default().tol(1e-6).save_at(SaveAt::T1);
    let reference = solve(
        &problem,
        Vern7,
        Options::default().tol(1e-13).save_at(SaveAt::T1),
    )
    .map(|s| s.last().to_vec());
    let ours = solve(&problem, Tsit5, &opts);
    let theirs = diffsol_tsit45(
        move |y: &[f64], p: &[f64], t: f64, dy: &mut [f64]| mlp.drift(t, y, p, dy),
        &y0,
        &params,
        1.0,
        1e-6,
    )
    .and_then(|run| run());
    match (reference, ours, theirs) {
        (Ok(r), Ok(a), Ok(b)) => format!(
            "neural ODE 2-50-2 tanh, rtol=atol=1e-6 on [0, 1]: sdeflow Tsit5 {} steps ({} rejected), \
             {} NFE, err {:.2e}; diffsol tsit45 {} steps ({} rejected), {} NFE, err {:.2e} \
             (max-abs against Vern7 at 1e-13)",
            a.stats.accepted_steps,
            a.stats.rejected_steps,
            a.stats.drift_evals,
            max_abs_diff(a.last(), &r),
            b.accepted,
            b.rejected,
            b.nfe,
            max_abs_diff(&b.y, &r),
        ),
        (r, a, b) => format!(
            "neural ODE: failed ({:?} / {:?} / {:?})",
            r.err(),
            a.err(),
            b.err().map(|e| e.to_string())
        ),
    }
}

fn main() {
    let cfg = Timer::from_args(Duration::from_millis(500), 7);
    let started = Instant::now();
    if cfg.quick {
        println!("work_precision: test mode (no `--bench`): every case runs once");
    }
    let extra = extra_controllers();
    let problems = vec![
        case_series::<LotkaVolterra>(&cfg, &extra),
        case_series::<Arenstorf>(&cfg, &extra),
        case_series::<Kepler>(&cfg, &extra),
    ];
    println!(
        "\n== Work–precision: rtol = atol, error = max-abs of y(t1) − reference, time = median per solve =="
    );
    for p in &problems {
        print_series(p);
    }
    println!(
        "\n== Time at equal achieved error (sdeflow interpolated in log–log; < 1: sdeflow faster) =="
    );
    for p in &problems {
        for line in equal_error_lines(p) {
            println!("{line}");
        }
    }
    println!("\n{}", neural_ode_line());
    if !cfg.quick {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-report");
        let all: Vec<Series> = problems.iter().flatten().cloned().collect();
        let csv_path = dir.join("work_precision.csv");
        let svg_path = dir.join("work_precision.svg");
        let written = std::fs::create_dir_all(&dir)
            .map_err(Into::into)
            .and_then(|()| std::fs::write(&csv_path, csv(&all)).map_err(Into::into))
            .and_then(|()| plot(&svg_path, &problems));
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
