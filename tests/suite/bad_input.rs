//! Every bad input gets a typed error (never a panic), for the explicit loop
//! and for the stiff backend.

use crate::common;
use common::lotka_volterra;
use sdeflow::prelude::*;

fn decay() -> Problem<impl Drift + Clone> {
    Problem::ode(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
        vec![1.0],
        (0.0, 1.0),
    )
}

/// Runs the same check against an explicit and a stiff solver.
fn both<F: Drift>(p: &Problem<F>, o: &Options, check: impl Fn(&SolveError) -> bool) {
    for (name, r) in [
        ("Tsit5", solve(p, Tsit5, o)),
        ("Bdf", solve(p, Bdf::default(), o)),
    ] {
        match r {
            Ok(_) => panic!("{name}: expected an error"),
            Err(e) => {
                assert!(check(&e), "{name}: unexpected error {e:?}");
                // every error has a message that says something
                assert!(e.to_string().len() > 20, "{name}: {e}");
            }
        }
    }
}

fn invalid(what: &str) -> impl Fn(&SolveError) -> bool + '_ {
    move |e| matches!(e, SolveError::InvalidInput { what: w, .. } if w.contains(what))
}

#[test]
fn non_finite_initial_state() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        both(
            &decay().y0(vec![bad]),
            &Options::default(),
            invalid("y0[0]"),
        );
    }
}

#[test]
fn non_finite_parameters() {
    both(
        &lotka_volterra().params(vec![1.5, f64::NAN, 3.0, 1.0]),
        &Options::default(),
        invalid("params[1]"),
    );
}

#[test]
fn bad_tolerances() {
    for bad in [0.0, -1e-6, f64::NAN, f64::INFINITY] {
        both(&decay(), &Options::default().rtol(bad), invalid("rtol"));
        both(&decay(), &Options::default().atol(bad), invalid("atol"));
    }
    both(
        &decay(),
        &Options::default().atol(vec![1e-6, 1e-6]),
        |e| matches!(e, SolveError::DimensionMismatch { what, expected: 1, found: Some(2), .. } if what == "atol"),
    );
    both(
        &lotka_volterra(),
        &Options::default().rtol(vec![1e-6, -1.0]),
        invalid("rtol[1]"),
    );
}

#[test]
fn empty_or_non_finite_span() {
    both(
        &decay().tspan((1.0, 1.0)),
        &Options::default(),
        invalid("tspan"),
    );
    both(
        &decay().tspan((0.0, f64::NAN)),
        &Options::default(),
        invalid("tspan"),
    );
    both(
        &decay().tspan((f64::NEG_INFINITY, 0.0)),
        &Options::default(),
        invalid("tspan"),
    );
    both(
        &decay().y0(Vec::<f64>::new()),
        &Options::default(),
        invalid("y0"),
    );
}

#[test]
fn bad_step_options() {
    both(&decay(), &Options::default().dt0(0.0), invalid("dt0"));
    both(&decay(), &Options::default().dt0(f64::NAN), invalid("dt0"));
    both(&decay(), &Options::default().dt_max(0.0), invalid("dt_max"));
    both(
        &decay(),
        &Options::default().dt_min(-1.0),
        invalid("dt_min"),
    );
    both(
        &decay(),
        &Options::default().dt_min(1.0).dt_max(0.5),
        invalid("dt_max"),
    );
    both(
        &decay(),
        &Options::default().max_steps(0),
        invalid("max_steps"),
    );
    both(
        &decay(),
        &Options::default().save_at(SaveAt::Times(vec![0.5, 2.0])),
        invalid("save_at"),
    );
    both(
        &decay(),
        &Options::default().save_at(SaveAt::Times(vec![0.5, 0.2])),
        invalid("save_at"),
    );
    // fixed steps of dt0 do not land on step_to's times: refused, not
    // ignored (a method without an error estimate under the adaptive
    // controller; with the constant controller `validate` refuses it)
    let e = solve(
        &decay(),
        Euler,
        Options::default().dt0(0.1).step_to(vec![0.25]),
    )
    .expect_err("step_to with fixed steps");
    assert!(
        matches!(&e, SolveError::InvalidInput { what, .. } if what == "step_to")
            && e.to_string().contains("Options::grid"),
        "{e}"
    );
    // an end of the span in step_to: refused, saying to leave it out
    let e = solve(&decay(), Tsit5, Options::default().step_to(vec![0.5, 1.0]))
        .expect_err("t1 in step_to");
    assert!(
        matches!(&e, SolveError::InvalidInput { what, .. } if what == "step_to[1]")
            && e.to_string().contains("leave it out"),
        "{e}"
    );
    let mut pi = PiController::default();
    pi.qmax = 0.5;
    let e = solve(&decay(), Tsit5, Options::default().controller(pi)).expect_err("qmax < 1");
    assert!(matches!(e, SolveError::InvalidInput { .. }));
}

#[test]
fn dimension_mismatch_between_y0_and_field() {
    // the field writes two components, y0 has three
    let p = lotka_volterra().y0(vec![1.0, 1.0, 1.0]);
    both(&p, &Options::default(), |e| {
        matches!(
            e,
            SolveError::DimensionMismatch {
                expected: 3,
                found: Some(2),
                ..
            }
        )
    });
    // the field reads/writes past y0's single component: caught, not a panic
    let p = lotka_volterra().y0(vec![1.0]);
    both(&p, &Options::default(), |e| {
        matches!(
            e,
            SolveError::DimensionMismatch {
                expected: 1,
                found: None,
                ..
            }
        )
    });
}

#[test]
fn non_finite_derivative_at_start_and_during_solve() {
    let nan_at_start = Problem::ode(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = (y[0] - 2.0).sqrt(),
        vec![1.0],
        (0.0, 1.0),
    );
    both(
        &nan_at_start,
        &Options::default(),
        |e| matches!(e, SolveError::NonFiniteDerivative { t, .. } if *t == 0.0),
    );
    // y' = 1/(1 - t): non-finite at t = 1 inside the span (explicit loop:
    // reported at the time the step fails)
    let pole = Problem::ode(
        |t: f64, _y: &[f64], _p: &[f64], dy: &mut [f64]| {
            dy[0] = if t >= 1.0 { f64::NAN } else { 1.0 / (1.0 - t) }
        },
        vec![0.0],
        (0.0, 2.0),
    );
    let e = solve(&pole, Tsit5, Options::default()).expect_err("pole");
    match e {
        SolveError::NonFiniteDerivative { t, .. } | SolveError::NonFiniteState { t, .. } => {
            assert!((t - 1.0).abs() < 1e-3, "t = {t}")
        }
        SolveError::StepSizeUnderflow { t, .. } => assert!((t - 1.0).abs() < 1e-3, "t = {t}"),
        other => panic!("unexpected {other:?}"),
    }
    // fixed steps: the first non-finite state is reported with its time
    let e = solve(&pole, Euler, Options::default().fixed_step(0.25)).expect_err("pole");
    assert!(
        matches!(e, SolveError::NonFiniteState { t, .. } if (t - 1.0).abs() < 1e-12),
        "{e:?}"
    );
}

#[test]
fn step_size_underflow_returns_the_partial_solution() {
    // y' = y², y(0) = 1 blows up at t = 1
    let blowup = Problem::ode(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = y[0] * y[0],
        vec![1.0],
        (0.0, 2.0),
    );
    for (name, r) in [
        (
            "Tsit5",
            solve(&blowup, Tsit5, Options::default().dt_min(1e-8)),
        ),
        (
            "Bdf",
            solve(&blowup, Bdf::default(), Options::default().dt_min(1e-8)),
        ),
    ] {
        let e = r.expect_err(name);
        match &e {
            SolveError::StepSizeUnderflow { t, partial, .. } => {
                assert!((t - 1.0).abs() < 1e-2, "{name}: t = {t}");
                assert_eq!(partial.status, Status::Incomplete);
                assert!(partial.t_last().is_some_and(|tl| tl < 1.0));
                assert!(
                    e.to_string().contains("Bdf"),
                    "suggests a stiff solver: {e}"
                );
            }
            other => panic!("{name}: unexpected {other:?}"),
        }
    }
}

#[test]
fn max_steps_returns_the_partial_solution() {
    for (name, r) in [
        (
            "Tsit5",
            solve(&lotka_volterra(), Tsit5, Options::default().max_steps(10)),
        ),
        (
            "Bdf",
            solve(
                &lotka_volterra(),
                Bdf::default(),
                Options::default().max_steps(10),
            ),
        ),
    ] {
        match r {
            Err(SolveError::MaxStepsReached {
                t,
                max_steps: 10,
                partial,
            }) => {
                assert!(t > 0.0 && t < 10.0, "{name}: {t}");
                assert_eq!(partial.t_last(), Some(t));
                assert!(partial.stats.steps() <= 10);
                assert_eq!(partial.status, Status::Incomplete);
            }
            other => panic!("{name}: unexpected {other:?}"),
        }
    }
}

#[test]
fn fixed_step_solver_without_step_size() {
    let e = solve(&decay(), Euler, Options::default()).expect_err("Euler needs dt0");
    assert!(matches!(e, SolveError::NeedsStepSize { solver: "Euler" }));
    let e = solve(
        &decay(),
        Tsit5,
        Options::default().controller(Controller::Constant),
    )
    .expect_err("constant needs dt0");
    assert!(matches!(e, SolveError::NeedsStepSize { .. }));
}

/// An SDE given to an ODE solver does not compile (doc tests on `Solver`
/// and `Method`); a problem whose diffusion is `NoDiffusion` but that
/// declares noise is caught at run time.
#[test]
fn sde_given_to_an_ode_solver() {
    let p = Problem::sde_field(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
        NoDiffusion,
        Noise::Diagonal,
        vec![1.0],
        (0.0, 1.0),
    );
    both(&p, &Options::default(), |e| {
        matches!(e, SolveError::Unsupported { .. })
    });
}

#[test]
fn interpolation_errors() {
    let sol = solve(&decay(), Tsit5, Options::default().save_at(SaveAt::Dense)).expect("solve");
    assert!(sol.at(1.5).is_err());
    assert!(sol.at(f64::NAN).is_err());
    let mut out = [0.0; 2];
    assert!(matches!(
        sol.at_into(0.5, &mut out),
        Err(SolveError::DimensionMismatch { .. })
    ));
    assert!(sol.at(0.5).is_ok());
}

#[test]
fn network_shape_mismatches_name_what_to_fix() {
    use sdeflow::nn::{Activation, Mlp, Offset};
    let mlp = Mlp::new(&[2, 8, 2], Activation::Tanh);
    let params = mlp.init_params(1, 0.5);
    let check = |e: SolveError, what: &str, hint: &str| match e {
        SolveError::DimensionMismatch {
            what: w, hint: h, ..
        } => {
            assert_eq!(w, what);
            assert!(h.contains(hint), "{h}");
        }
        other => panic!("expected DimensionMismatch on {what}, got {other:?}"),
    };
    // too few parameters: named as such, not as a panic in the field
    let short = Problem::ode_field(mlp.clone(), vec![0.1, 0.2], (0.0, 1.0))
        .params(params[..params.len() - 1].to_vec());
    let e = solve(&short, Tsit5, Options::default()).expect_err("short params");
    check(e, "parameters", "init_params");
    // the stiff path checks too
    let e = solve(&short, Bdf::default(), Options::default()).expect_err("short params, Bdf");
    check(e, "parameters", "init_params");
    // a state of the wrong length
    let wide =
        Problem::ode_field(mlp.clone(), vec![0.1, 0.2, 0.3], (0.0, 1.0)).params(params.clone());
    let e = solve(&wide, Tsit5, Options::default()).expect_err("wide state");
    check(e, "network input", "3 components");
    // an Offset reading past the parameter vector
    let sde = Problem::sde_field(
        Offset {
            field: mlp.clone(),
            offset: 0,
            len: params.len(),
        },
        Offset {
            field: mlp.clone(),
            offset: params.len(),
            len: params.len(),
        },
        Noise::Diagonal,
        vec![0.1, 0.2],
        (0.0, 1.0),
    )
    .params(params.clone());
    let e = solve(&sde, EulerMaruyama, Options::default().fixed_step(0.1)).expect_err("offset");
    check(e, "parameters", "at least");
    // a diffusion network whose output does not fit general noise (2 × 2)
    let general = Problem::sde_field(
        mlp.clone(),
        mlp.clone(),
        Noise::General(2),
        vec![0.1, 0.2],
        (0.0, 1.0),
    )
    .params(params);
    let e =
        solve(&general, EulerMaruyama, Options::default().fixed_step(0.1)).expect_err("general");
    check(e, "network output", "needs 4");
}
