//! Stiff solvers (the native Bdf, Esdirk34 and TrBdf2, all in the one
//! integration loop): Van der Pol μ = 1000 against the published test-set
//! reference, Robertson's mass conservation, the three Jacobian sources, and
//! backwards integration; the native methods' measured orders, Robertson
//! (to 1e5 and 1e11), HIRES and Van der Pol against reference values (with
//! the work of diffsol's versions of the same methods printed beside),
//! Newton failures, dense output and observers, BDF's fixed steps and
//! snapshot replays, and the ESDIRK step VJP against finite differences.

use crate::common;
use common::{
    HIRES_P, HIRES_REF, ROBER_1E5, ROBER_1E11, ROBER_P, RobertsonP, VDP_REF, VDP_TSPAN, VDP_Y0,
    VanDerPol, assert_order, hires, max_abs_diff, robertson, van_der_pol, van_der_pol_drift,
    van_der_pol_jacobian,
};
use sdeflow::field::DriftVjp;
use sdeflow::observe::{StepObserver, integrate_observed};
use sdeflow::prelude::*;
use sdeflow::solver::{Fields, StepAt, StepNoise, StepOut};
use sdeflow::solver::{StepBars, StepVjp, VjpArgs};
use sdeflow::stiff::{
    DiffsolBdf, DiffsolEsdirk34, DiffsolTrBdf2, ESDIRK34, Esdirk, NewtonOptions, TRBDF2,
};

/// Van der Pol as a plain drift (Jacobians by finite differences), and with
/// its analytic Jacobian.
fn van_der_pol_without_and_with_jacobian()
-> (Problem<impl Drift + Clone>, Problem<impl Drift + Clone>) {
    let base = Problem::ode(van_der_pol_drift, VDP_Y0.to_vec(), VDP_TSPAN).params(vec![1e-6]);
    let analytic = base.clone().with_jacobian(van_der_pol_jacobian);
    (base, analytic)
}

fn rel_err(y: &[f64], r: &[f64]) -> f64 {
    y.iter()
        .zip(r)
        .map(|(a, b)| ((a - b) / b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn bdf_matches_the_van_der_pol_reference() {
    let p = van_der_pol();
    let sol = solve(&p, Bdf::default(), Options::default().tol(1e-8)).expect("bdf");
    let e = rel_err(sol.last(), &VDP_REF);
    println!("VdP Bdf (duals): rel err {e:e}, {:?}", sol.stats);
    assert!(e < 1e-5, "relative error {e:e}");
    assert!(sol.stats.jacobian_evals > 0);
}

#[test]
fn jacobian_sources_agree() {
    let (base, analytic) = van_der_pol_without_and_with_jacobian();
    let opts = Options::default().tol(1e-8);
    let fd = solve(&base, Bdf::default(), &opts).expect("finite differences");
    let an = solve(&analytic, Bdf::default(), &opts).expect("analytic");
    let forced = solve(&analytic, Bdf::finite_differences(), &opts).expect("forced FD");
    for (name, s) in [("fd", &fd), ("analytic", &an), ("forced fd", &forced)] {
        let e = rel_err(s.last(), &VDP_REF);
        println!("VdP Bdf {name}: rel err {e:e}, {:?}", s.stats);
        assert!(e < 1e-5, "{name}: {e:e}");
    }
    // finite differences cost drift evaluations, an analytic Jacobian does
    // not
    assert!(fd.stats.drift_evals > an.stats.drift_evals);
    assert_jacobian_costs(&an, &[&fd, &forced]);
}

#[test]
fn one_step_stiff_solvers_solve_van_der_pol() {
    let p = van_der_pol();
    for (name, sol, tol) in [
        (
            "Esdirk34",
            solve(&p, Esdirk34::default(), Options::default().tol(1e-8)),
            1e-5,
        ),
        (
            "TrBdf2",
            solve(&p, TrBdf2::default(), Options::default().tol(1e-8)),
            1e-4,
        ),
    ] {
        let sol = sol.expect(name);
        let e = rel_err(sol.last(), &VDP_REF);
        println!("VdP {name}: rel err {e:e}, {:?}", sol.stats);
        assert!(e < tol, "{name}: {e:e}");
    }
}

#[test]
fn robertson_conserves_mass() {
    // y1 + y2 + y3 = 1 is conserved
    let p = robertson(&ROBER_P, 1e5);
    for (name, sol) in [
        (
            "Bdf",
            solve(
                &p,
                Bdf::default(),
                Options::default().rtol(1e-8).atol(1e-10),
            ),
        ),
        (
            "Esdirk34",
            solve(
                &p,
                Esdirk34::default(),
                Options::default().rtol(1e-8).atol(1e-10),
            ),
        ),
    ] {
        let sol = sol.expect(name);
        let worst = sol
            .iter()
            .map(|(_, y)| (y.iter().sum::<f64>() - 1.0).abs())
            .fold(0.0, f64::max);
        println!(
            "Robertson {name}: max |Σy − 1| = {worst:e}, y(1e5) = {:?}, {:?}",
            sol.last(),
            sol.stats
        );
        assert!(worst < 1e-8, "{name}: {worst:e}");
        // self-consistency against a much tighter BDF run (the probe's value)
        assert!((sol.last()[0] - 0.017865921143176814).abs() < 1e-6);
    }
}

/// Van der Pol solved tightly (diffsol's BDF at tol 1e-12, an implementation
/// independent of the native solvers) at interior times: the reference for
/// dense output between steps.
struct VdpDenseCheck {
    grid: Vec<f64>,
    tight: Solution,
}

impl VdpDenseCheck {
    fn new() -> Self {
        let grid: Vec<f64> = (1..200).map(|i| 0.01 * i as f64 + 0.003).collect();
        let tight = solve(
            &van_der_pol(),
            DiffsolBdf::default(),
            Options::default()
                .tol(1e-12)
                .save_at(SaveAt::Times(grid.clone())),
        )
        .expect("tight");
        VdpDenseCheck { grid, tight }
    }

    /// The worst relative error (over both components) of the dense output
    /// of `dense` on the grid, away from the fast transients (where
    /// |y2| ≥ 10).
    fn worst(&self, dense: &Solution) -> f64 {
        let mut worst: f64 = 0.0;
        for (i, &t) in self.grid.iter().enumerate() {
            let d = dense.at(t).expect("inside");
            let r = self.tight.y(i);
            if r[1].abs() < 10.0 {
                let e = ((d[0] - r[0]) / r[0])
                    .abs()
                    .max(((d[1] - r[1]) / r[1]).abs());
                worst = worst.max(e);
            }
        }
        worst
    }
}

#[test]
fn stiff_save_policies_and_dense_output() {
    let p = van_der_pol();
    let opts = Options::default().tol(1e-8);
    let times = vec![0.0, 0.5, 1.0, 1.5, 2.0];
    let at = solve(
        &p,
        Bdf::default(),
        opts.clone().save_at(SaveAt::Times(times.clone())),
    )
    .expect("times");
    let dense = solve(&p, Bdf::default(), opts.clone().save_at(SaveAt::Dense)).expect("dense");
    let t1 = solve(&p, Bdf::default(), opts.save_at(SaveAt::T1)).expect("t1");
    assert_eq!(at.ts, times);
    assert_eq!(t1.len(), 1);
    for (i, &t) in times.iter().enumerate() {
        let d = dense.at(t).expect("inside");
        let e = max_abs_diff(&d, at.y(i));
        assert!(e < 1e-5, "t={t}: {e:e}");
    }
    // between steps, dense output is as accurate as the solve: compare with
    // a much tighter solve at many interior times (relative error 1e-5 at
    // tolerance 1e-8, excluding the fast transients where y2 is ~1e3)
    let worst = VdpDenseCheck::new().worst(&dense);
    println!("VdP Bdf dense output: worst relative error {worst:e}");
    assert!(worst < 1e-5, "dense output relative error {worst:e}");
}

#[test]
fn stiff_solvers_integrate_backwards() {
    // y' = -50 (y - cos t) has y = y_p(t) + C e^{-50 t} with the particular
    // solution y_p = (2500 cos t + 50 sin t)/2501. Backwards from t = 1 to
    // t = 0.9 the e^{-50 t} mode grows by e^5 ≈ 148, so the backward solve
    // must be accurate to be within 1e-6 of the exact value.
    let f = |t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -50.0 * (y[0] - t.cos());
    let yp = |t: f64| (2500.0 * t.cos() + 50.0 * t.sin()) / 2501.0;
    let y1 = 0.3;
    let exact = yp(0.9) + (y1 - yp(1.0)) * (-50.0f64 * (0.9 - 1.0)).exp();
    for (name, sol) in [
        (
            "Bdf",
            solve(
                &Problem::ode(f, vec![y1], (1.0, 0.9)),
                Bdf::default(),
                Options::default().tol(1e-10),
            ),
        ),
        (
            "Esdirk34",
            solve(
                &Problem::ode(f, vec![y1], (1.0, 0.9)),
                Esdirk34::default(),
                Options::default().tol(1e-10),
            ),
        ),
    ] {
        let sol = sol.expect(name);
        assert_eq!(sol.t_last(), Some(0.9), "{name}");
        assert!(
            sol.ts.windows(2).all(|w| w[1] < w[0]),
            "{name}: times must decrease"
        );
        let e = (sol.last()[0] - exact).abs();
        assert!(
            e < 1e-6 * exact.abs().max(1.0),
            "{name}: {} vs exact {exact} ({e:e})",
            sol.last()[0]
        );
    }
}

// ---------------------------------------------------------------------------
// Native ESDIRK methods
// ---------------------------------------------------------------------------

/// Newton settings converging the stages far below the discretisation error.
fn tight_newton() -> NewtonOptions {
    NewtonOptions::default().tolerances(1e-13, 1e-13)
}

#[test]
fn native_esdirk_orders_with_fixed_steps() {
    // smooth, non-autonomous, with an exact solution: an oscillator and
    // y3' = cos(t) y3 (y3 = e^{sin t}) on [0, 2]
    let f = |t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| {
        dy[0] = y[1];
        dy[1] = -y[0];
        dy[2] = t.cos() * y[2];
    };
    let t1 = 2.0;
    let exact = [t1.cos(), -t1.sin(), t1.sin().exp()];
    let p = Problem::ode(f, vec![1.0, 0.0, 1.0], (0.0, t1));
    for (name, solver, order) in [
        ("Esdirk34", Esdirk::new(&ESDIRK34), 3.0),
        ("TrBdf2", Esdirk::new(&TRBDF2), 2.0),
    ] {
        let solver = solver.newton(tight_newton());
        let mut hs = Vec::new();
        let mut errs = Vec::new();
        for k in 3..=7 {
            let h = t1 / f64::from(1 << k);
            let sol = solve(
                &p,
                solver,
                Options::default().fixed_step(h).save_at(SaveAt::T1),
            )
            .expect(name);
            hs.push(h);
            errs.push(max_abs_diff(sol.last(), &exact));
        }
        assert_order(name, &hs, &errs, order, 0.3);
    }
}

fn stats_line(s: &Stats) -> String {
    format!(
        "NFE {:>6}  Jac {:>3}  LU {:>4}  steps {:>5}+{:<3}  Newton it {:>6} fail {:>3}",
        s.drift_evals,
        s.jacobian_evals,
        s.lu_factorizations,
        s.accepted_steps,
        s.rejected_steps,
        s.nonlinear_iterations,
        s.nonlinear_failures
    )
}

#[test]
fn native_esdirk_solve_robertson_and_hires() {
    let rober = robertson(&ROBER_P, 1e5);
    let hires = hires(&HIRES_P);
    let (rtol, atol) = (1e-8, 1e-10);
    // (HIRES's components are 1e-4 .. 1e-2 at the end: atol is below them)
    let opts = Options::default().rtol(rtol).atol(atol).save_at(SaveAt::T1);
    // achieved relative error (max over components), and the bound asserted
    for (problem, reference, name, ours_tol, diffsol_line) in [
        ("Robertson", &ROBER_1E5[..], "Esdirk34", 2e-6, 0),
        ("Robertson", &ROBER_1E5[..], "TrBdf2", 2e-5, 1),
        ("HIRES", &HIRES_REF[..], "Esdirk34", 2e-5, 0),
        ("HIRES", &HIRES_REF[..], "TrBdf2", 1e-4, 1),
    ] {
        let (ours, theirs) = match (problem, diffsol_line) {
            ("Robertson", 0) => (
                solve(&rober, Esdirk34::default().tolerances(rtol, atol), &opts),
                solve(&rober, DiffsolEsdirk34::default(), &opts),
            ),
            ("Robertson", _) => (
                solve(&rober, TrBdf2::default().tolerances(rtol, atol), &opts),
                solve(&rober, DiffsolTrBdf2::default(), &opts),
            ),
            (_, 0) => (
                solve(&hires, Esdirk34::default().tolerances(rtol, atol), &opts),
                solve(&hires, DiffsolEsdirk34::default(), &opts),
            ),
            _ => (
                solve(&hires, TrBdf2::default().tolerances(rtol, atol), &opts),
                solve(&hires, DiffsolTrBdf2::default(), &opts),
            ),
        };
        let ours = ours.expect(name);
        let theirs = theirs.expect("diffsol");
        let rel = |y: &[f64]| {
            y.iter()
                .zip(reference)
                .map(|(a, r)| ((a - r) / r).abs())
                .fold(0.0, f64::max)
        };
        let (e_ours, e_theirs) = (rel(ours.last()), rel(theirs.last()));
        println!(
            "{problem:<9} {name:<8} native : rel err {e_ours:.2e}  {}",
            stats_line(&ours.stats)
        );
        println!(
            "{problem:<9} {name:<8} diffsol: rel err {e_theirs:.2e}  {}",
            stats_line(&theirs.stats)
        );
        assert!(e_ours < ours_tol, "{problem} {name}: {e_ours:e}");
        assert!(ours.stats.nonlinear_iterations > 0 && ours.stats.lu_factorizations > 0);
    }
}

#[test]
fn native_jacobian_sources_agree() {
    let (base, analytic) = van_der_pol_without_and_with_jacobian();
    let opts = Options::default().tol(1e-8).save_at(SaveAt::T1);
    let s = Esdirk34::default().tolerances(1e-8, 1e-8);
    let fd = solve(&base, s, &opts).expect("finite differences");
    let an = solve(&analytic, s, &opts).expect("analytic");
    let forced = solve(
        &analytic,
        Esdirk34 {
            jacobian: sdeflow::stiff::JacobianSource::FiniteDifferences,
            ..s
        },
        &opts,
    )
    .expect("forced FD");
    for (name, s) in [("fd", &fd), ("analytic", &an), ("forced fd", &forced)] {
        let e = rel_err(s.last(), &VDP_REF);
        println!(
            "VdP Esdirk34 {name}: rel err {e:e}, {}",
            stats_line(&s.stats)
        );
        assert!(e < 1e-5, "{name}: {e:e}");
    }
    assert_jacobian_costs(&an, &[&fd, &forced]);
}

/// Besides the Newton iterations, the drift is evaluated for the probe and
/// the initial-step heuristic, and n + 1 = 3 times per Jacobian by finite
/// differences (Van der Pol, n = 2); an analytic Jacobian (`an`) costs none.
fn assert_jacobian_costs(an: &Solution, by_differences: &[&Solution]) {
    assert_eq!(an.stats.drift_evals, an.stats.nonlinear_iterations + 2);
    for s in by_differences {
        assert_eq!(
            s.stats.drift_evals,
            s.stats.nonlinear_iterations + 2 + 3 * s.stats.jacobian_evals
        );
    }
}

#[test]
fn newton_failure_is_a_typed_error() {
    // the drift is NaN beyond y = 1.5: every stage that crosses it fails its
    // Newton iteration, the step shrinks until it underflows
    let f = |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| {
        dy[0] = if y[0] < 1.5 { 1.0 } else { f64::NAN };
    };
    let p = Problem::ode(f, vec![1.0], (0.0, 1.0));
    for (name, r) in [
        (
            "Esdirk34",
            solve(&p, Esdirk34::default(), Options::default()),
        ),
        ("TrBdf2", solve(&p, TrBdf2::default(), Options::default())),
        ("Bdf", solve(&p, Bdf::default(), Options::default())),
    ] {
        match r {
            Err(SolveError::StepSizeUnderflow { t, partial, .. }) => {
                println!(
                    "{name}: underflow at t = {t}, {}",
                    stats_line(&partial.stats)
                );
                assert!(t > 0.45 && t <= 0.5, "{name}: t = {t}");
                assert!(partial.stats.nonlinear_failures > 0);
                assert!(partial.last()[0] < 1.5 && partial.last()[0].is_finite());
            }
            other => panic!("{name}: expected a step-size underflow, got {other:?}"),
        }
    }
}

#[derive(Default)]
struct Count {
    steps: usize,
    t_last: f64,
}
impl StepObserver for Count {
    fn accepted(&mut self, index: usize, _t: f64, t_next: f64, _y: &[f64], _y_next: &[f64]) {
        assert_eq!(index, self.steps);
        self.steps += 1;
        self.t_last = t_next;
    }
}

/// `y0' = −50 (y0 − cos t)`, `y1' = cos(t) y1` from (1, 1): a stiff-ish,
/// smooth problem with an exact solution.
fn forced_decay() -> (Problem<impl Drift + Clone>, impl Fn(f64) -> [f64; 2]) {
    let f = |t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| {
        dy[0] = -50.0 * (y[0] - t.cos());
        dy[1] = t.cos() * y[1];
    };
    // the particular solution of y' = -50(y - cos t), plus the decaying mode
    let yp = |t: f64| (2500.0 * t.cos() + 50.0 * t.sin()) / 2501.0;
    let exact = move |t: f64| [yp(t) + (1.0 - yp(0.0)) * (-50.0 * t).exp(), t.sin().exp()];
    (Problem::ode(f, vec![1.0, 1.0], (0.0, 3.0)), exact)
}

/// On [`forced_decay`] at tol 1e-8, the dense output of `solver` between
/// the steps (599 interior times) is as accurate as the steps themselves
/// (bound: twice the worst error at the steps); returns the solution.
fn dense_is_as_accurate_as_the_steps<F: Drift, S: Method<Problem<F>>>(
    name: &str,
    (p, exact): (&Problem<F>, &dyn Fn(f64) -> [f64; 2]),
    solver: S,
) -> Solution {
    let sol = solve(
        p,
        solver,
        Options::default().tol(1e-8).save_at(SaveAt::Dense),
    )
    .expect(name);
    let at_ends = sol
        .iter()
        .map(|(t, y)| max_abs_diff(y, &exact(t)))
        .fold(0.0, f64::max);
    let between = (1..600)
        .map(|i| {
            let t = 0.005 * i as f64 + 0.0007;
            max_abs_diff(&sol.at(t).expect("inside"), &exact(t))
        })
        .fold(0.0, f64::max);
    println!(
        "{name} dense output: worst error between steps {between:.2e}, at the steps \
         {at_ends:.2e} ({} steps)",
        sol.stats.accepted_steps
    );
    assert!(
        between <= 2.0 * at_ends,
        "{name}: {between:e} vs {at_ends:e}"
    );
    sol
}

/// An observer sees every accepted step of `solver` on Van der Pol at tol
/// 1e-6, and `dt_max = 0.01` bounds them.
fn observers_see_every_step_within_dt_max<S: Solver<OdeProblem<Generic<VanDerPol>>>>(solver: &S) {
    let mut count = Count::default();
    let sol = integrate_observed(
        &van_der_pol(),
        solver,
        &Options::default().tol(1e-6).dt_max(0.01),
        &mut count,
    )
    .expect("observed");
    assert_eq!(count.steps, sol.stats.accepted_steps);
    assert_eq!(count.t_last, 2.0);
    assert!(sol.ts.windows(2).all(|w| w[1] - w[0] <= 0.01 + 1e-15));
    assert!(sol.stats.accepted_steps >= 200);
}

#[test]
fn native_esdirk_dense_output_observers_and_dt_max() {
    // a smooth problem with an exact solution: between the steps the cubic
    // Hermite dense output is as accurate as the steps themselves
    for (name, solver) in [
        ("Esdirk34", Esdirk::new(&ESDIRK34)),
        ("TrBdf2", Esdirk::new(&TRBDF2)),
    ] {
        let solver = solver.newton(NewtonOptions::default().tolerances(1e-8, 1e-8));
        let (p, exact) = forced_decay();
        dense_is_as_accurate_as_the_steps(name, (&p, &exact), solver);
    }
    // Van der Pol: the dense output against a tight solve, away from the
    // jumps (where |y2| > 10). The error is the solution's own at the steps
    // (the problem above shows the interpolant adds none): it peaks before
    // the jump at t ≈ 0.8, 3.6e-5 for Esdirk34 and 2.2e-4 for TrBdf2 at
    // rtol 1e-8 (Bdf: 4.2e-6).
    let p = van_der_pol();
    let check = VdpDenseCheck::new();
    for (name, dense, bound) in [
        (
            "Esdirk34",
            solve(
                &p,
                Esdirk34::default(),
                Options::default().tol(1e-8).save_at(SaveAt::Dense),
            ),
            1e-4,
        ),
        (
            "TrBdf2",
            solve(
                &p,
                TrBdf2::default(),
                Options::default().tol(1e-8).save_at(SaveAt::Dense),
            ),
            1e-3,
        ),
    ] {
        let worst = check.worst(&dense.expect(name));
        println!("VdP {name} dense output: worst relative error {worst:e}");
        assert!(
            worst < bound,
            "{name}: dense output relative error {worst:e}"
        );
    }
    observers_see_every_step_within_dt_max(&Esdirk34::default());
}

// ---------------------------------------------------------------------------
// The step VJP
// ---------------------------------------------------------------------------

/// A linear test problem y' = A(p) y, written generically (exact Jacobian).
struct Linear;
impl GenericField for Linear {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = -p[0] * y[0] + p[1] * y[1];
        dy[1] = p[1] * y[0] - p[2] * y[1] + p[3] * y[2];
        dy[2] = -p[3] * y[1] - D::from(0.5) * p[0] * y[2];
    }
}

/// `L = ȳ·y_new + ē·err` of the converged step and its gradient from the
/// step VJP, against central differences in y and p.
fn check_step_vjp<F: DriftVjp>(
    name: &str,
    solver: Esdirk,
    field: &F,
    p: &[f64],
    (t, h): (f64, f64),
    y: &[f64],
    (ybar, ebar): (&[f64], &[f64]),
    frozen_filter: Option<&[f64]>,
) {
    let n = y.len();
    let mut c = solver.vjp_cache(n, p.len());
    let mut stats = Stats::default();
    // the converged step; with `frozen_filter` (the matrix M of the filter-on
    // solver, column-major), err = M⁻¹ ê with ê from the filter-off solver
    let loss = |c: &mut sdeflow_solvers::stiff::EsdirkVjpCache, y: &[f64], p: &[f64]| -> f64 {
        let mut yn = vec![0.0; n];
        let mut err = vec![0.0; n];
        let mut st = Stats::default();
        solver
            .converged_step(
                c,
                field,
                p,
                StepAt { t, h, y },
                StepOut {
                    y_new: &mut yn,
                    err: &mut err,
                },
                &mut st,
            )
            .expect("converged step");
        if let Some(m) = frozen_filter {
            let mm = nalgebra::DMatrix::from_column_slice(n, n, m);
            let e = mm
                .lu()
                .solve(&nalgebra::DVector::from_column_slice(&err))
                .expect("M invertible");
            err.copy_from_slice(e.as_slice());
        }
        ybar.iter().zip(&yn).map(|(a, b)| a * b).sum::<f64>()
            + ebar.iter().zip(&err).map(|(a, b)| a * b).sum::<f64>()
    };
    let mut lam = ybar.to_vec();
    let mut pbar = vec![0.0; p.len()];
    let vjp_solver = if frozen_filter.is_some() {
        solver.filter_error(true)
    } else {
        solver
    };
    let fields = Fields {
        drift: field,
        diffusion: &NoDiffusion,
        p,
        noise: None,
    };
    let args = VjpArgs {
        fields: &fields,
        at: StepAt { t, h, y },
        carried: &[],
        noise: &StepNoise::NONE,
        bars: StepBars {
            y: &mut lam,
            carried: &mut [],
            err: Some(ebar),
            interp: &[],
            p: &mut pbar,
        },
        stats: &mut stats,
    };
    StepVjp::<Problem<F>>::step_vjp(&vjp_solver, &mut c, args).expect("step vjp");
    let mut worst: f64 = 0.0;
    let mut scale: f64 = 0.0;
    for j in 0..n + p.len() {
        let (mut yp, mut pp) = (y.to_vec(), p.to_vec());
        let base = if j < n { y[j] } else { p[j - n] };
        let d = 1e-5 * base.abs().max(if j < n { 1e-6 } else { 1e-3 });
        let mut at = |v: f64| {
            if j < n {
                yp[j] = v;
            } else {
                pp[j - n] = v;
            }
            loss(&mut c, &yp, &pp)
        };
        let fd = (at(base + d) - at(base - d)) / (2.0 * d);
        let ad = if j < n { lam[j] } else { pbar[j - n] };
        // relative to the component, with the gradient's size as a floor
        worst = worst.max((ad - fd).abs() / ad.abs().max(fd.abs()).max(1e-300));
        scale = scale.max(ad.abs());
        assert!(
            (ad - fd).abs() <= 1e-6 * ad.abs().max(fd.abs()) + 1e-9 * scale.max(1e-300),
            "{name}: component {j}: VJP {ad:e} vs central FD {fd:e}"
        );
    }
    println!("{name}: worst relative difference VJP vs central FD {worst:.2e}");
}

/// [`check_step_vjp`] of `solver` on `field` with parameters `p`, from `y`
/// over a step `h`, for the cotangents `ybar` on the new state, `ebar` on
/// the error estimate, and both; with `filter`, the filter matrix
/// `M = I − hγ J(t, y)` frozen at the unperturbed point.
fn check_step_vjp_bars<F: DriftVjp>(
    name: &str,
    (solver, filter): (Esdirk, bool),
    (field, p): (&F, &[f64]),
    (h, y): (f64, &[f64]),
    (ybar, ebar): ([f64; 3], [f64; 3]),
) {
    let n = y.len();
    let mut jac = vec![0.0; n * n];
    assert!(field.jacobian(0.0, y, p, &mut jac));
    let mut m = vec![0.0; n * n];
    for k in 0..n * n {
        m[k] = -h * solver.tableau().gamma * jac[k];
    }
    for i in 0..n {
        m[i * n + i] += 1.0;
    }
    for (what, ybar, ebar) in [
        ("y", ybar, [0.0; 3]),
        ("err", [0.0; 3], ebar),
        ("both", ybar, ebar),
    ] {
        check_step_vjp(
            &format!("{name} {what}"),
            solver,
            field,
            p,
            (0.0, h),
            y,
            (&ybar, &ebar),
            filter.then_some(&m[..]),
        );
    }
}

#[test]
fn esdirk_step_vjp_matches_finite_differences() {
    let lin_p = [1.3, 0.4, 60.0, 2.0];
    let lin_y = [1.0, -0.5, 0.25];
    let rob_y = [0.97, 3.1e-5, 0.03];
    for tab in [&ESDIRK34, &TRBDF2] {
        for filter in [false, true] {
            let solver = (Esdirk::new(tab).filter_error(false), filter);
            let tag = format!("{} filter={filter}", tab.name);
            // linear, exact Jacobian by duals
            let (ybar, ebar) = ([1.0, -2.0, 0.5], [300.0, 100.0, -200.0]);
            let linear = (&Generic(Linear), &lin_p[..]);
            check_step_vjp_bars(
                &format!("{tag} linear"),
                solver,
                linear,
                (0.05, &lin_y),
                (ybar, ebar),
            );
            // Robertson in its stiff regime (hγ‖J‖ ≈ 10)
            let (ybar, ebar) = ([1.0, 1e3, -0.5], [1e4, 1e7, -1e4]);
            let rober = (&Generic(RobertsonP), &ROBER_P[..]);
            check_step_vjp_bars(
                &format!("{tag} Robertson"),
                solver,
                rober,
                (0.01, &rob_y),
                (ybar, ebar),
            );
        }
    }
}

#[test]
fn esdirk_step_vjp_without_a_jacobian_assembles_it_from_vjps() {
    // a hand-written VJP and no Jacobian: the transposed solves assemble
    // ∂f/∂y from n VJPs with unit vectors
    let p = Problem::ode(
        |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| {
            dy[0] = -p[0] * y[0] * y[0] + y[1];
            dy[1] = -p[1] * y[1];
        },
        vec![1.0, 2.0],
        (0.0, 1.0),
    )
    .params(vec![5.0, 40.0])
    .with_vjp(
        |_t: f64, y: &[f64], p: &[f64], v: &[f64], oy: &mut [f64], op: &mut [f64]| {
            oy[0] += -2.0 * p[0] * y[0] * v[0];
            oy[1] += v[0] - p[1] * v[1];
            op[0] += -y[0] * y[0] * v[0];
            op[1] += -y[1] * v[1];
        },
    );
    let mut jac = [0.0; 4];
    assert!(!p.drift.jacobian(0.0, &[1.0, 2.0], &[5.0, 40.0], &mut jac));
    for tab in [&ESDIRK34, &TRBDF2] {
        check_step_vjp(
            &format!("{} hand-written VJP", tab.name),
            Esdirk::new(tab).filter_error(false),
            &p.drift,
            &p.params,
            (0.1, 0.05),
            &[1.0, 2.0],
            (&[0.7, -1.1], &[20.0, 5.0]),
            None,
        );
    }
}

/// A fixed-step implicit solve whose stage equation has no solution cannot
/// shrink its step: a typed error, not a frozen state reported as success.
/// (`y' = 1/(1 − y)`, `y(0) = 0`: the first implicit stage of size `h`
/// solves `Y(1 − Y) = hγ + …`, with no real root once `hγ > 1/4`.)
#[test]
fn fixed_step_newton_failure_is_an_error() {
    let p = Problem::ode(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = 1.0 / (1.0 - y[0]),
        vec![0.0],
        (0.0, 20.0),
    );
    for (name, r) in [
        (
            "Esdirk34",
            solve(&p, Esdirk34::default(), Options::default().fixed_step(10.0)),
        ),
        (
            "TrBdf2",
            solve(&p, TrBdf2::default(), Options::default().fixed_step(10.0)),
        ),
        (
            "Bdf",
            solve(&p, Bdf::default(), Options::default().fixed_step(10.0)),
        ),
    ] {
        assert!(
            matches!(r, Err(SolveError::NonlinearSolve { .. })),
            "{name}: {r:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Native BDF against the references, with diffsol's BDF beside it
// ---------------------------------------------------------------------------

/// Solves `problem` with the native `Bdf` and with `DiffsolBdf` under
/// `opts`, prints both lines, and checks the native solve against the
/// reference and against diffsol's BDF (see
/// [`native_bdf_solves_the_reference_problems`] for the bounds).
fn bdf_vs_diffsol<F: Drift>(label: &str, problem: &Problem<F>, reference: &[f64], opts: &Options) {
    let ours = solve(problem, Bdf::default(), opts).expect("native Bdf");
    let theirs = solve(problem, DiffsolBdf::default(), opts).expect("DiffsolBdf");
    let (e_ours, e_theirs) = (
        rel_err(ours.last(), reference),
        rel_err(theirs.last(), reference),
    );
    println!(
        "{label:<26} native : rel err {e_ours:.2e}  {}",
        stats_line(&ours.stats)
    );
    println!(
        "{label:<26} diffsol: rel err {e_theirs:.2e}  {}",
        stats_line(&theirs.stats)
    );
    let rtol = opts.rtol.get(0);
    let (s, d) = (&ours.stats, &theirs.stats);
    assert!(e_ours < 1e3 * rtol, "{label}: native error {e_ours:e}");
    assert!(
        e_ours <= 2.0 * e_theirs,
        "{label}: native error {e_ours:e} vs diffsol's {e_theirs:e}"
    );
    assert!(
        s.drift_evals as f64 <= 1.5 * d.drift_evals as f64,
        "{label}: NFE {} vs diffsol's {}",
        s.drift_evals,
        d.drift_evals
    );
    assert!(
        s.lu_factorizations <= 3 * d.lu_factorizations,
        "{label}: LU {} vs diffsol's {}",
        s.lu_factorizations,
        d.lu_factorizations
    );
    assert!(s.jacobian_evals > 0 && s.nonlinear_iterations > 0);
}

#[test]
fn native_bdf_solves_the_reference_problems() {
    // Robertson (to 1e5 and 1e11), HIRES and Van der Pol μ = 1e3 at rtol
    // 1e-6 and 1e-8 (atol = rtol/100; rtol = atol for Van der Pol, as its
    // reference is used elsewhere), each against its reference and against
    // diffsol's BDF at the same tolerances. Asserted: the native relative
    // error (max over the components) below 1e3·rtol (measured: at most
    // 1.2e2·rtol, HIRES at 1e-6, whose components are 1e-4…1e-2 against
    // atol 1e-8) and at most twice diffsol's (measured 0.17–0.8 of it); its
    // drift evaluations at most 1.5× diffsol's (measured 0.72–1.12×) and
    // its LU factorisations at most 3× (measured 0.99–2.2×: the loop's PI
    // controller changes the step a little at every step, where diffsol's
    // holds it until it can double it).
    let rober = robertson(&ROBER_P, 1e5);
    let rober_long = robertson(&ROBER_P, 1e11);
    let hires = hires(&HIRES_P);
    let vdp = van_der_pol();
    for rtol in [1e-6, 1e-8] {
        let atol = rtol * 1e-2;
        let opts = Options::default().rtol(rtol).atol(atol).save_at(SaveAt::T1);
        let tag = format!("rtol {rtol:.0e}");
        bdf_vs_diffsol(&format!("Robertson 1e5 {tag}"), &rober, &ROBER_1E5, &opts);
        bdf_vs_diffsol(&format!("HIRES {tag}"), &hires, &HIRES_REF, &opts);
        let vdp_opts = Options::default().tol(rtol).save_at(SaveAt::T1);
        bdf_vs_diffsol(&format!("VdP mu=1e3 {tag}"), &vdp, &VDP_REF, &vdp_opts);
        // Robertson to 1e11: y2 ~ 1e-13 at the end, so atol must be far
        // below it for a relative error to mean anything (dt_min: the
        // diffsol wrapper's default floor scales with t1, far above the
        // first steps' 1e-13)
        let long = Options::default()
            .rtol(rtol)
            .atol(1e-20)
            .dt_min(1e-30)
            .save_at(SaveAt::T1);
        bdf_vs_diffsol(
            &format!("Robertson 1e11 {tag}"),
            &rober_long,
            &ROBER_1E11,
            &long,
        );
    }
}

#[test]
fn native_bdf_dense_output_observers_and_dt_max() {
    // the dense output is BDF's own interpolant (the polynomial through
    // the last k + 1 solution values)
    let (p, exact) = forced_decay();
    let sol = dense_is_as_accurate_as_the_steps("Bdf", (&p, &exact), Bdf::default());
    // and it passes through the saved steps (to rounding: y_n + h·(D_1/h)
    // at the last step's end)
    for (t, y) in sol.iter() {
        let d = max_abs_diff(&sol.at(t).expect("inside"), y);
        assert!(d <= 4.0 * f64::EPSILON, "t = {t}: {d:e}");
    }
    // Van der Pol against a tight solve, away from the jumps: the error is
    // the solution's own at rtol 1e-8 (measured 4.2e-6; Esdirk34 3.6e-5)
    let vdp = van_der_pol();
    let dense = solve(
        &vdp,
        Bdf::default(),
        Options::default().tol(1e-8).save_at(SaveAt::Dense),
    )
    .expect("VdP dense");
    let worst = VdpDenseCheck::new().worst(&dense);
    println!("VdP Bdf dense output: worst relative error {worst:e}");
    assert!(worst < 1e-5, "{worst:e}");
    observers_see_every_step_within_dt_max(&Bdf::default());
}

/// Stop times (`Options::step_to`) are step ends of both BDFs, which
/// meet the tolerance there: the native one clips its steps to them in the
/// loop (its history rescaled to the clipped step), diffsol's sets each as
/// its stop time in turn.
#[test]
fn bdfs_land_on_stop_times() {
    let (p, exact) = forced_decay();
    let stops = vec![0.37, 1.0, 2.5];
    let opts = Options::default()
        .tol(1e-8)
        .step_to(stops.clone())
        .save_at(SaveAt::Steps);
    for (name, sol) in [
        ("Bdf", solve(&p, Bdf::default(), &opts).expect("Bdf")),
        (
            "DiffsolBdf",
            solve(&p, DiffsolBdf::default(), &opts).expect("DiffsolBdf"),
        ),
    ] {
        for &s in &stops {
            let i = sol
                .ts
                .iter()
                .position(|&t| t == s)
                .unwrap_or_else(|| panic!("{name}: no step ends at {s}"));
            // the global error bound of the reference problems, 1e3·tol
            // (`native_bdf_solves_the_reference_problems`)
            let e = max_abs_diff(sol.y(i), &exact(s));
            println!("{name}: error at the stop {s}: {e:.1e}");
            assert!(e < 1e-5, "{name} at {s}: {e:e}");
        }
        assert_eq!(sol.ts.last(), Some(&3.0), "{name}");
    }
}

#[test]
fn native_bdf_fixed_steps_converge() {
    // fixed steps: the history is at one spacing and the order rises as the
    // estimates allow. The first steps run at order 1 from the same h, so
    // the global error is O(h²) at best, whatever the highest order: BDF1
    // converges at order 1 and higher maxima at order 2 (slopes fitted
    // over h = 3/2^5 … 3/2^9, asserted within 0.3)
    let (p, exact) = forced_decay();
    let want = exact(3.0);
    for (max_order, order) in [(1, 1.0), (2, 2.0), (5, 2.0)] {
        let mut hs = Vec::new();
        let mut errs = Vec::new();
        for k in 5..=9 {
            let h = 3.0 / f64::from(1 << k);
            let sol = solve(
                &p,
                Bdf::default().max_order(max_order),
                Options::default()
                    .tol(1e-12)
                    .fixed_step(h)
                    .save_at(SaveAt::T1),
            )
            .expect("fixed steps");
            hs.push(h);
            errs.push(max_abs_diff(sol.last(), &want));
        }
        let what = format!("Bdf max order {max_order}, fixed steps");
        assert_order(&what, &hs, &errs, order, 0.3);
    }
    // a bad max_order is a typed error
    let e = solve(&p, Bdf::default().max_order(6), Options::default()).expect_err("max order 6");
    assert!(e.to_string().contains("max_order"), "{e}");
}

#[test]
fn native_bdf_replays_from_a_snapshot_bit_for_bit() {
    // the checkpointed adjoints restore the solver's workspace (the BDF
    // history, order and Jacobian) and need the same steps again
    use sdeflow_solvers::integrate::Run;
    let p = robertson(&ROBER_P, 1e3);
    let opts = Options::default()
        .rtol(1e-6)
        .atol(1e-10)
        .save_at(SaveAt::T1);
    let solver = Bdf::default();
    let mut run = Run::new(&p, &solver, &opts, None, false).expect("run");
    let mut snaps = Vec::new();
    let mut path = Vec::new();
    loop {
        if run.accepted() % 37 == 5 {
            snaps.push((path.len(), run.snapshot()));
        }
        let a = run.step(&mut sdeflow::observe::NoObserver).expect("step");
        path.push((run.t(), run.y().to_vec()));
        if a.last {
            break;
        }
    }
    assert!(snaps.len() >= 3, "{} steps", path.len());
    let mut replay = Run::new(&p, &solver, &opts, None, false).expect("replay");
    for (at, snap) in &snaps {
        replay.restore(snap);
        for (t, y) in &path[*at..(*at + 20).min(path.len())] {
            replay
                .step(&mut sdeflow::observe::NoObserver)
                .expect("replayed step");
            assert_eq!(
                (replay.t(), replay.y()),
                (*t, &y[..]),
                "replay from step {at}"
            );
        }
    }
}
