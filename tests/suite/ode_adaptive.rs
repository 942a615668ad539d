//! Adaptive explicit solves: accuracy on problems with reference solutions,
//! tolerance proportionality, NFE accounting, save policies, backwards
//! integration and the controllers.

use crate::common;
use common::*;
use sdeflow::prelude::*;

#[test]
fn tsit5_returns_arenstorf_orbit_to_its_start() {
    let sol = solve_tol(&arenstorf(), Tsit5, 1e-8, SaveAt::T1);
    let y = sol.last();
    let pos = (y[0] - ARENSTORF_Y0[0]).hypot(y[1] - ARENSTORF_Y0[1]);
    let vel = (y[2] - ARENSTORF_Y0[2]).hypot(y[3] - ARENSTORF_Y0[3]);
    println!(
        "Arenstorf Tsit5 1e-8: |Δq| = {pos:e}, |Δv| = {vel:e}, {:?}",
        sol.stats
    );
    assert!(pos < 1e-5, "position error {pos:e}");
    // velocity is far more sensitive near the close approach at t = T
    assert!(vel < 1e-4, "velocity error {vel:e}");
    // Vern7 at a tight tolerance closes the full state within 1e-5
    let sol = solve_tol(&arenstorf(), Vern7, 1e-10, SaveAt::T1);
    let err = max_abs_diff(sol.last(), &ARENSTORF_Y0);
    assert!(err < 1e-6, "Vern7 1e-10 state error {err:e}");
}

#[test]
fn every_adaptive_method_meets_its_tolerance_on_lotka_volterra() {
    fn run<S: Solver<Problem<Rhs>> + Copy>(s: S, tol: f64) -> (f64, Stats) {
        let sol = solve(&lotka_volterra(), s, Options::default().tol(tol)).expect("solve");
        (max_abs_diff(sol.last(), &LV_REF), sol.stats)
    }
    for tol in [1e-4, 1e-6, 1e-8] {
        // global error on this orbit stays within ~100x the local tolerance
        for (name, (err, stats)) in [
            ("Bs3", run(Bs3, tol)),
            ("Dopri5", run(Dopri5, tol)),
            ("Tsit5", run(Tsit5, tol)),
            ("Vern7", run(Vern7, tol)),
        ] {
            println!("{name} tol {tol:e}: err {err:e}, {stats:?}");
            assert!(err < 100.0 * tol, "{name} tol {tol:e}: err {err:e}");
        }
    }
    // Heun only at loose tolerance (it needs ~1e5 steps at 1e-6)
    let (err, _) = run(Heun, 1e-4);
    assert!(err < 1e-2, "Heun err {err:e}");
}

#[test]
fn error_is_proportional_to_tolerance() {
    // Error-per-step control of an order-5 solution by an order-4 estimate
    // gives a global error ∝ tol^(5/4) in the asymptotic regime: the fitted
    // slope of log(err) vs log(tol) must lie in [0.8, 1.5].
    let tols = [1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10];
    for (name, errs) in [
        (
            "Tsit5",
            tols.map(|tol| {
                let sol =
                    solve(&lotka_volterra(), Tsit5, Options::default().tol(tol)).expect("solve");
                max_abs_diff(sol.last(), &LV_REF)
            }),
        ),
        (
            "Dopri5",
            tols.map(|tol| {
                let sol =
                    solve(&lotka_volterra(), Dopri5, Options::default().tol(tol)).expect("solve");
                max_abs_diff(sol.last(), &LV_REF)
            }),
        ),
    ] {
        let slope = fitted_slope(&tols, &errs);
        println!("{name}: error ~ tol^{slope:.2}: {errs:?}");
        assert!(
            (0.8..=1.5).contains(&slope),
            "{name}: slope {slope}, errors {errs:?}"
        );
    }
}

#[test]
fn fsal_nfe_accounting_matches_hairer() {
    // DP5/Tsit5: 1 (f0) + 1 (initial step) + 6 per attempted step
    for (sol, per) in [
        (
            solve(&lotka_volterra(), Tsit5, Options::default().tol(1e-6)).expect("solve"),
            6,
        ),
        (
            solve(&lotka_volterra(), Dopri5, Options::default().tol(1e-6)).expect("solve"),
            6,
        ),
        (
            solve(&lotka_volterra(), Bs3, Options::default().tol(1e-6)).expect("solve"),
            3,
        ),
    ] {
        let s = sol.stats;
        assert_eq!(s.drift_evals, 2 + per * s.steps(), "{}: {s:?}", sol.solver);
    }
    // with a user dt0 there is no initial-step evaluation
    let sol = solve(
        &lotka_volterra(),
        Tsit5,
        Options::default().tol(1e-6).dt0(0.01),
    )
    .expect("solve");
    assert_eq!(sol.stats.drift_evals, 1 + 6 * sol.stats.steps());
    // Vern7 (10 stages, not FSAL): 9 new stages per attempt, plus k1 at each
    // new step after the first (a rejected step reuses its k1)
    let sol = solve(&lotka_volterra(), Vern7, Options::default().tol(1e-6)).expect("solve");
    let s = sol.stats;
    assert_eq!(
        s.drift_evals,
        2 + 9 * s.steps() + (s.accepted_steps - 1),
        "{s:?}"
    );
}

#[test]
fn save_policies_agree() {
    let times: Vec<f64> = (0..=20).map(|i| 0.5 * i as f64).collect();
    let opts = Options::default().tol(1e-9);
    let at_times = solve(
        &lotka_volterra(),
        Tsit5,
        opts.clone().save_at(SaveAt::Times(times.clone())),
    )
    .expect("solve");
    let dense = solve(
        &lotka_volterra(),
        Tsit5,
        opts.clone().save_at(SaveAt::Dense),
    )
    .expect("solve");
    let steps = solve(&lotka_volterra(), Tsit5, opts.clone()).expect("solve");
    let t1 = solve(&lotka_volterra(), Tsit5, opts.save_at(SaveAt::T1)).expect("solve");
    assert_eq!(at_times.ts, times);
    for (i, &t) in times.iter().enumerate() {
        let d = dense.at(t).expect("dense");
        assert!(max_abs_diff(&d, at_times.y(i)) < 1e-12, "t={t}");
    }
    // the same steps are taken whatever is saved
    assert_eq!(dense.ts, steps.ts);
    assert_eq!(t1.len(), 1);
    assert_eq!(t1.last(), steps.last());
    assert_eq!(t1.stats, steps.stats);
    // saving at times costs no extra evaluation for Tsit5
    assert_eq!(at_times.stats, steps.stats);
    // dense output matches a tight solve between steps
    let tight = solve_tol(
        &lotka_volterra(),
        Vern7,
        1e-12,
        SaveAt::Times(vec![3.3, 7.77]),
    );
    for (i, t) in [3.3, 7.77].into_iter().enumerate() {
        let e = max_abs_diff(&dense.at(t).expect("dense"), tight.y(i));
        assert!(e < 1e-7, "dense error {e:e} at {t}");
    }
    assert!(dense.at(10.5).is_err());
    assert!(
        steps.at(1.0).is_err(),
        "no dense output without SaveAt::Dense"
    );
}

#[test]
fn vern7_dense_uses_extra_stages_only_when_asked() {
    let opts = Options::default().tol(1e-8);
    let plain = solve(&lotka_volterra(), Vern7, opts.clone()).expect("solve");
    let dense = solve(&lotka_volterra(), Vern7, opts.save_at(SaveAt::Dense)).expect("solve");
    assert_eq!(plain.stats.steps(), dense.stats.steps());
    assert_eq!(
        dense.stats.drift_evals,
        plain.stats.drift_evals + 6 * plain.stats.accepted_steps
    );
    let r = solve_tol(&lotka_volterra(), Vern7, 1e-12, SaveAt::Times(vec![4.321]));
    let e = max_abs_diff(&dense.at(4.321).expect("dense"), r.y(0));
    assert!(e < 1e-6, "Vern7 dense error {e:e}");
}

#[test]
fn backwards_integration_returns_to_the_start() {
    let fwd = solve_tol(&lotka_volterra(), Tsit5, 1e-10, SaveAt::T1);
    let back = lotka_volterra().y0(fwd.last().to_vec()).tspan((10.0, 0.0));
    for save in [
        SaveAt::T1,
        SaveAt::Dense,
        SaveAt::Times(vec![10.0, 5.0, 0.0]),
    ] {
        let sol = solve_tol(&back, Tsit5, 1e-10, save.clone());
        assert_eq!(sol.t_last(), Some(0.0));
        let e = max_abs_diff(sol.last(), &[1.0, 1.0]);
        assert!(e < 1e-7, "{save:?}: {e:e}");
        if let SaveAt::Dense = save {
            let mid = sol.at(5.0).expect("dense backwards");
            let f5 = solve_tol(&lotka_volterra(), Tsit5, 1e-10, SaveAt::Times(vec![5.0]));
            assert!(max_abs_diff(&mid, f5.y(0)) < 1e-6);
        }
    }
}

#[test]
fn all_controllers_reach_the_tolerance() {
    for c in [
        Controller::default(),
        Controller::Pi(PiController::integral()),
        Controller::Pid(PidController::default()),
        Controller::Pid(PidController::new(0.4, 0.3, 0.0)),
        Controller::Pid(PidController::new(1.0 / 18.0, 1.0 / 9.0, 1.0 / 18.0)),
    ] {
        let sol = solve(
            &lotka_volterra(),
            Tsit5,
            Options::default().tol(1e-7).controller(c.clone()),
        )
        .expect("solve");
        let e = max_abs_diff(sol.last(), &LV_REF);
        assert!(e < 1e-5, "{c:?}: {e:e}");
    }
}

#[test]
fn step_bounds_are_respected() {
    let sol = solve(
        &lotka_volterra(),
        Tsit5,
        Options::default().tol(1e-4).dt_max(0.05),
    )
    .expect("solve");
    for w in sol.ts.windows(2) {
        assert!(w[1] - w[0] <= 0.05 + 1e-15);
    }
    assert!(sol.stats.accepted_steps >= 200);
}

#[test]
fn per_component_tolerances_are_used() {
    // loosening the tolerance of one component only reduces the work
    let tight = solve(&lotka_volterra(), Tsit5, Options::default().tol(1e-9)).expect("solve");
    let mixed = solve(
        &lotka_volterra(),
        Tsit5,
        Options::default()
            .rtol(vec![1e-9, 1e-3])
            .atol(vec![1e-9, 1e-3]),
    )
    .expect("solve");
    assert!(mixed.stats.drift_evals < tight.stats.drift_evals);
}
