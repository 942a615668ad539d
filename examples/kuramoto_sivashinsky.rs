//! # Kuramoto–Sivashinsky with ETDRK4
//!
//! `cargo run --release --example kuramoto_sivashinsky`
//!
//! `u_t = −u_xx − u_xxxx − ½(u²)_x` on `[0, 32π]`, periodic, in the setup
//! of Kassam & Trefethen, "Fourth-order time-stepping for stiff PDEs", SIAM
//! J. Sci. Comput. 26 (2005): `u0 = cos(x/16)(1 + sin(x/16))`, `N = 128`
//! Fourier modes, `h = 1/4`, `t ∈ [0, 150]`. The Fourier form
//! `v' = (k² − k⁴) v + N(v)` (`tests/common/kuramoto_sivashinsky.rs`: the
//! complex coefficients as interleaved real and imaginary parts, a real
//! diagonal `L`, no dealiasing, the nonlinear term through rustfft with
//! plans and buffers made once) has eigenvalues down to `−(N/32)⁴ ≈ −6.6e4`
//! at `N = 128`.
//!
//! The example
//!
//! 1. solves with `Etdrk4` at `h = 1/4` (600 steps) and compares `u` at
//!    `t = 30` and `t = 150` with an ETDRK4 solve at `h = 1/128` (the flow
//!    is chaotic: the error at `t = 150` is O(1) at `h = 1/4`, about
//!    `1e−2` at `h = 1/32`; at `t = 30` it is about `5e−5`);
//! 2. shows that classical RK4 blows up at the same step (a typed
//!    `NonFiniteState` error, not a panic), and what step RK4 needs instead
//!    (`h = 1/100`, below the stability limit `≈ 0.0124` of
//!    `../shared/reference/exponential.md`) with its drift evaluations;
//! 3. writes the space–time plot of `u(x, t)` as an SVG heat map to
//!    `target/tour/kuramoto_sivashinsky.svg`.
//!
//! It runs in well under a second in release mode. The tour does not call it
//! (the tour's sections are ODE/SDE classics on a few components); it is its
//! own example.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use plotters::prelude::*;
use sdeflow::expint::Etdrk4;
use sdeflow::ode::ExplicitRk;
use sdeflow::ode::tableau::OwnedTableau;
use sdeflow::prelude::*;

#[path = "../tests/common/kuramoto_sivashinsky.rs"]
mod kuramoto_sivashinsky;
use kuramoto_sivashinsky::{KS_H, KS_LENGTH, KS_T1, Spectral, kuramoto_sivashinsky};

/// Number of Fourier modes (grid points).
const N: usize = 128;

/// The time of the early comparison (before chaos amplifies errors).
const T_EARLY: f64 = 30.0;

/// The largest absolute difference.
fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Every how many steps a row of the heat map is taken.
const ROW_EVERY: usize = 4;

type ExampleResult<T> = Result<T, Box<dyn Error>>;

fn main() -> ExampleResult<()> {
    let problem = kuramoto_sivashinsky(N, KS_T1);
    let spectral = Spectral::new(N);

    // 1. ETDRK4 at h = 1/4, every step saved (for the plot)
    let start = Instant::now();
    let sol = solve(&problem, Etdrk4, Options::default().fixed_step(KS_H))?;
    let elapsed = start.elapsed();
    let steps = sol.stats.accepted_steps;
    println!("Kuramoto–Sivashinsky, N = {N}, t ∈ [0, {KS_T1}]");
    println!(
        "  Etdrk4, h = {KS_H}: {steps} steps, {} drift evaluations, {:.1} ms ({:.2} µs per step)",
        sol.stats.drift_evals,
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / steps as f64
    );
    // the reference: ETDRK4 at h = 1/128 (its error is about 1e−4 at
    // t = 150 by the decay of the errors at h = 1/8 … 1/32)
    let h_ref = 1.0 / 128.0;
    let start = Instant::now();
    let reference = solve(
        &problem,
        Etdrk4,
        Options::default()
            .fixed_step(h_ref)
            .save_at(SaveAt::Times(vec![T_EARLY, KS_T1])),
    )?;
    let ref_ms = start.elapsed().as_secs_f64() * 1e3;
    let early = (T_EARLY / KS_H).round() as usize;
    let grid_of = |y: &[f64]| {
        let mut u = vec![0.0; N];
        spectral.to_grid(y, &mut u);
        u
    };
    let u_ref_early = grid_of(&reference.ys[..2 * N]);
    let u_ref = grid_of(reference.last());
    let err_early = max_abs_diff(
        &grid_of(&sol.ys[early * 2 * N..(early + 1) * 2 * N]),
        &u_ref_early,
    );
    let err = max_abs_diff(&grid_of(sol.last()), &u_ref);
    let scale = u_ref.iter().map(|v| v.abs()).fold(0.0, f64::max);
    println!(
        "  max |u − u_ref| at t = {T_EARLY}: {err_early:.2e}; at t = {KS_T1}: {err:.2e} (max |u_ref| = \
         {scale:.2}; reference: Etdrk4 at h = 1/128, {ref_ms:.0} ms)"
    );
    println!(
        "  (the flow is chaotic: errors of ~1e−5 at t = 30 grow to O(1) by t = 150; at h = 1/32 \
         the error at t = 150 is about 1e−2)"
    );

    // 2. classical RK4 at the same step, and at one it survives
    let rk4 = classical_rk4()?;
    match solve(
        &problem,
        ExplicitRk::new(&rk4),
        Options::default().fixed_step(KS_H).save_at(SaveAt::T1),
    ) {
        Ok(s) => println!(
            "  RK4, h = {KS_H}: unexpectedly finished (max |v| = {:.2e})",
            s.last().iter().map(|v| v.abs()).fold(0.0, f64::max)
        ),
        Err(e) => println!("  RK4, h = {KS_H}: {e:?}"),
    }
    let h_rk = 0.01;
    let start = Instant::now();
    let rk = solve(
        &problem,
        ExplicitRk::new(&rk4),
        Options::default()
            .fixed_step(h_rk)
            .save_at(SaveAt::T1)
            .max_steps(1_000_000),
    )?;
    let mut u_rk = vec![0.0; N];
    spectral.to_grid(rk.last(), &mut u_rk);
    let err_rk = max_abs_diff(&u_rk, &u_ref);
    println!(
        "  RK4, h = {h_rk}: {} drift evaluations ({:.0}x Etdrk4's), {:.1} ms, max error {err_rk:.2e}",
        rk.stats.drift_evals,
        rk.stats.drift_evals as f64 / sol.stats.drift_evals as f64,
        start.elapsed().as_secs_f64() * 1e3
    );

    // 3. the space–time plot
    let mut rows = Vec::new();
    for (i, (&t, y)) in sol.ts.iter().zip(sol.ys.chunks_exact(2 * N)).enumerate() {
        if i % ROW_EVERY == 0 {
            let mut row = vec![0.0; N];
            spectral.to_grid(y, &mut row);
            rows.push((t, row));
        }
    }
    let path = out_dir()?.join("kuramoto_sivashinsky.svg");
    heat_map(&path, &rows)?;
    println!("  wrote {}", path.display());
    Ok(())
}

/// Classical fourth-order Runge–Kutta (Kutta 1901) as a run-time tableau.
fn classical_rk4() -> Result<OwnedTableau, SolveError> {
    OwnedTableau::builder(
        "RK4",
        vec![0.0, 0.5, 0.5, 1.0],
        vec![vec![], vec![0.5], vec![0.0, 0.5], vec![0.0, 0.0, 1.0]],
        vec![1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
        4,
    )
    .build()
}

/// The output directory `target/tour/` of the workspace (created if needed).
fn out_dir() -> ExampleResult<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("tour");
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A blue–white–red colour for `v` in `[−1, 1]`.
fn colour(v: f64) -> RGBColor {
    let v = v.clamp(-1.0, 1.0);
    let (lo, hi) = ((40.0, 70.0, 170.0), (190.0, 30.0, 40.0));
    let mix = |a: f64, b: f64, s: f64| (a + (b - a) * s).round() as u8;
    if v < 0.0 {
        let s = 1.0 + v; // 0 at −1, 1 at 0
        RGBColor(
            mix(lo.0, 250.0, s),
            mix(lo.1, 250.0, s),
            mix(lo.2, 250.0, s),
        )
    } else {
        RGBColor(
            mix(250.0, hi.0, v),
            mix(250.0, hi.1, v),
            mix(250.0, hi.2, v),
        )
    }
}

/// The heat map of `u(x, t)`: `x` across, `t` upwards, one rectangle per
/// grid point and saved time.
fn heat_map(path: &Path, rows: &[(f64, Vec<f64>)]) -> ExampleResult<()> {
    let umax = rows
        .iter()
        .flat_map(|(_, r)| r.iter())
        .map(|v| v.abs())
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let root = SVGBackend::new(path, (640, 720)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Kuramoto–Sivashinsky, ETDRK4 at h = 1/4 (N = 128)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..KS_LENGTH, 0.0..KS_T1)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("x")
        .y_desc("t")
        .draw()?;
    let dx = KS_LENGTH / N as f64;
    for (r, (t, row)) in rows.iter().enumerate() {
        let t_next = rows.get(r + 1).map_or(KS_T1, |(t1, _)| *t1);
        chart.draw_series(row.iter().enumerate().map(|(j, &v)| {
            let x = j as f64 * dx;
            Rectangle::new([(x, *t), (x + dx, t_next)], colour(v / umax).filled())
        }))?;
    }
    root.present()?;
    Ok(())
}
