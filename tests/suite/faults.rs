//! Faults and bad input (issue #12): nothing lost, nothing wrong and
//! silent. A panic in a user closure is an error of that solve, gradient
//! or trajectory; errors print short; bad parameters, step sizes and spans
//! are named as such; a backward pass that fails or drifts says so.

use crate::common;
use common::*;
use sdeflow::adjoint::GradError;
use sdeflow::ensemble::EnsembleError;
use sdeflow::prelude::*;

fn panicked(e: &SolveError, closure: &str, text: &str) -> bool {
    matches!(e, SolveError::Panicked { closure: c, message, .. }
        if *c == closure && message.contains(text))
}

/// `problem` solved with defaults by an explicit, the native stiff and
/// diffsol's stiff solver, named.
fn by_three_solvers<F: Drift>(
    problem: &Problem<F>,
) -> [(&'static str, Result<Solution, SolveError>); 3] {
    [
        ("Tsit5", solve(problem, Tsit5, Options::default())),
        ("Bdf", solve(problem, Bdf::default(), Options::default())),
        (
            "DiffsolBdf",
            solve(
                problem,
                sdeflow::stiff::DiffsolBdf::default(),
                Options::default(),
            ),
        ),
    ]
}

/// `y' = −y` from 1 on [0, 1], whose drift panics ("drift refused") after
/// `t = 0.5`: mid-solve, after the shape check at `t0`.
fn late_panic() -> Problem<impl Drift> {
    Problem::ode(
        |t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| {
            assert!(t < 0.5, "drift refused t = {t}");
            dy[0] = -y[0];
        },
        vec![1.0],
        (0.0, 1.0),
    )
}

#[test]
fn panic_in_a_field_is_an_error_of_the_solve() {
    // mid-solve (after the shape check at t0): caught at `solve`
    let late = late_panic();
    for (name, r) in by_three_solvers(&late) {
        let e = r.expect_err(name);
        assert!(
            panicked(&e, "drift or diffusion", "drift refused"),
            "{name}: {e}"
        );
        println!("{name}: {e}");
    }
    // at t0: the shape check names the field and the time
    let always = Problem::ode(
        |_t: f64, _y: &[f64], _p: &[f64], _dy: &mut [f64]| panic!("not implemented yet"),
        vec![1.0],
        (0.0, 1.0),
    );
    let e = solve(&always, Tsit5, Options::default()).expect_err("panics");
    assert!(panicked(&e, "drift", "not implemented"), "{e}");
    assert!(
        matches!(e, SolveError::Panicked { t: Some(0.0), .. }),
        "{e:?}"
    );
    // the diffusion of an SDE
    let sde = Problem::sde(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
        |_t: f64, _y: &[f64], _p: &[f64], _g: &mut [f64]| panic!("no noise model"),
        Noise::Diagonal,
        vec![1.0],
        (0.0, 1.0),
    );
    let e = solve(&sde, EulerMaruyama, Options::default().fixed_step(0.1)).expect_err("panics");
    assert!(panicked(&e, "diffusion", "no noise model"), "{e}");
}

#[test]
fn panic_in_the_loss_or_a_field_is_an_error_of_the_gradient() {
    let p = Problem::ode_field(Generic(LotkaVolterra), LV_Y0.to_vec(), (0.0, 1.0))
        .params(LV_PARAMS.to_vec());
    let opts = Options::default().tol(1e-8).save_at(SaveAt::T1);
    let bad_loss = |_ts: &[f64], _ys: &[f64], _g: &mut [f64]| -> f64 { panic!("loss refused") };
    for adjoint in [
        Adjoint::STORE_ALL,
        Adjoint::Interpolating,
        Adjoint::Backsolve,
    ] {
        let e = grad(&p, Tsit5, &opts, &bad_loss, adjoint).expect_err("loss panics");
        assert!(
            matches!(&e, GradError::Panicked { closure: "loss", message } if message == "loss refused"),
            "{adjoint:?}: {e}"
        );
    }
    // a drift that panics after t0, inside the discrete adjoint's forward pass
    let late = late_panic().with_vjp(|_t, _y, _p, v, oy, _op| oy[0] -= v[0]);
    let e = grad(&late, Tsit5, &opts, &sum_loss, Adjoint::STORE_ALL).expect_err("drift panics");
    assert_says(&e, &["panicked", "drift refused"]);
}

#[test]
fn ensemble_reports_failed_trajectories_and_finishes_the_rest() {
    let gbm = Problem::sde(
        |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| {
            assert!(p[0] != 3.0, "drift refused p = 3");
            dy[0] = p[0] * y[0];
        },
        |_t: f64, y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = 0.2 * y[0],
        Noise::Diagonal,
        vec![1.0],
        (0.0, 1.0),
    )
    .params(vec![0.1]);
    let n = 600; // more than two chunks of 256
    let opts = Options::default().fixed_step(0.05).save_at(SaveAt::T1);
    let ens = |threads: usize| {
        Ensemble::new(&gbm, EulerMaruyama, opts.clone(), n)
            .seed(7)
            .threads(threads)
            .map_problem(|i, _seed, base| {
                assert!(i != 300, "map refused trajectory 300");
                // trajectory 11 gets the parameter its drift refuses
                base.clone().params(vec![if i == 11 { 3.0 } else { 0.1 }])
            })
    };
    for threads in [1, 2] {
        let run = ens(threads)
            .run(|i, sol| {
                assert!(i != 42, "output refused trajectory 42");
                sol.last()[0]
            })
            .expect("the others succeed");
        assert_eq!(run.outputs.len(), n - 3, "{threads} threads");
        let failed: Vec<usize> = run.failures.iter().map(|f| f.index).collect();
        assert_eq!(failed, vec![11, 42, 300], "{threads} threads");
        let says = |k: usize, what: &str| {
            assert!(
                run.failures[k].message.contains(what),
                "{}",
                run.failures[k].message
            )
        };
        says(0, "drift refused p = 3");
        // (at t0, where the shape check names the field)
        says(0, "the drift panicked at t=0");
        says(1, "output refused");
        says(1, "reduction");
        says(2, "map refused");
        says(2, "per-trajectory map");
        // the statistics of the others, with the failures listed
        let summary = ens(threads).statistics(&[]).expect("statistics");
        assert_eq!(summary.succeeded, n - 2);
        assert_eq!(summary.failures.len(), 2);
    }
    // Abort: the first failure, with its error
    let e = ens(1)
        .on_failure(OnFailure::Abort)
        .run(|_, sol| sol.last()[0])
        .expect_err("aborts");
    assert!(
        matches!(
            &e,
            EnsembleError::Trajectory {
                index: 11,
                error: Some(SolveError::Panicked { .. }),
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn debug_of_errors_is_short_and_has_the_hint() {
    // 200 oscillators, every step saved, the step budget used up: a long
    // partial solution
    let blowup = Problem::ode(
        |t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| {
            dy.iter_mut()
                .zip(y)
                .for_each(|(d, v)| *d = (10.0 * t).cos() - v)
        },
        vec![1.0; 200],
        (0.0, 100.0),
    );
    let opts = Options::default().max_steps(50).save_at(SaveAt::Steps);
    let e = solve(&blowup, Tsit5, &opts).expect_err("out of steps");
    let partial = e.partial().expect("a partial solution");
    assert!(partial.ys.len() > 1000, "{}", partial.ys.len());
    let debug = format!("{e:?}");
    println!("Debug ({} chars): {debug}", debug.len());
    // the variant, the message with its hint, the partial solution's size:
    // a few lines, not the states
    assert!(debug.len() < 600, "{} chars", debug.len());
    assert!(debug.contains("raise max_steps"), "the hint: {debug}");
    // `?` into one crate-level error, printed as short
    fn program(p: &Problem<impl Drift + Clone>) -> Result<(), sdeflow::Error> {
        solve(
            p,
            Tsit5,
            Options::default().max_steps(50).save_at(SaveAt::Steps),
        )?;
        Ok(())
    }
    let e = program(&blowup).expect_err("fails");
    assert!(matches!(e, sdeflow::Error::Solve(_)));
    assert!(format!("{e:?}").len() < 600);
    assert!(std::error::Error::source(&e).is_some());
    fn gradient() -> Result<f64, sdeflow::Error> {
        let p =
            Problem::ode_field(Generic(LotkaVolterra), LV_Y0.to_vec(), (0.0, 1.0)).params(vec![]);
        Ok(grad(&p, Tsit5, Options::default(), &sum_loss, Adjoint::STORE_ALL)?.loss)
    }
    let e = gradient().expect_err("no parameters");
    assert!(matches!(e, sdeflow::Error::Grad(_)), "{e:?}");
    fn ensemble() -> Result<f64, sdeflow::Error> {
        let p = Problem::ode(
            |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
            vec![1.0],
            (0.0, 1.0),
        );
        let e = Ensemble::new(&p, Tsit5, Options::default(), 0).statistics(&[])?;
        Ok(e.times[0].mean(0))
    }
    let e = ensemble().expect_err("no trajectories");
    assert!(matches!(e, sdeflow::Error::Ensemble(_)), "{e:?}");
}

#[test]
fn too_short_parameter_slice_is_a_parameter_error() {
    let short = lotka_volterra().params(vec![1.5, 1.0]);
    for (name, r) in by_three_solvers(&short) {
        let e = r.expect_err(name);
        println!("{name}: {e}");
        assert!(
            matches!(&e, SolveError::DimensionMismatch { what, expected: 4, found: Some(2), .. } if what == "parameters"),
            "{name}: {e:?}"
        );
        assert!(!e.to_string().contains("y0"), "{name} blames y0: {e}");
    }
    // none at all, in a diffusion
    let sde = Problem::sde(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
        |_t: f64, y: &[f64], p: &[f64], g: &mut [f64]| g[0] = p[2] * y[0],
        Noise::Diagonal,
        vec![1.0],
        (0.0, 1.0),
    );
    let e = solve(&sde, EulerMaruyama, Options::default().fixed_step(0.1)).expect_err("short");
    assert!(
        matches!(&e, SolveError::DimensionMismatch { what, expected: 3, found: Some(0), .. } if what == "parameters"),
        "{e:?}"
    );
    // a state too short is still the state's error
    let e = solve(&lotka_volterra().y0(vec![1.0]), Tsit5, Options::default()).expect_err("y0");
    assert!(
        matches!(&e, SolveError::DimensionMismatch { what, found: None, .. } if what == "drift output"),
        "{e:?}"
    );
}
/// y0' = −p0·y0 (contracting fast), y1' = p1·y0: y1(T) = p1 ∫ y0 dt.
#[derive(Clone, Copy)]
struct Leak;
impl GenericField for Leak {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = -p[0] * y[0];
        dy[1] = p[1] * y[0];
    }
}

#[test]
fn backsolve_checks_the_reconstructed_initial_state() {
    // the state integrated backwards grows as e^{5 (T − t)} = e^{100}: its
    // error at T (a tolerance, against y0(T) = e^{-100}) comes back as
    // garbage, and so does ∂L/∂p1 = ∫ y0 dt read along it
    let (p0, t1) = (5.0, 20.0);
    let p = Problem::ode_field(Generic(Leak), vec![1.0, 0.0], (0.0, t1)).params(vec![p0, 1.0]);
    let opts = Options::default().tol(1e-8).save_at(SaveAt::T1);
    let exact_dp1 = (1.0 - (-p0 * t1).exp()) / p0;
    let good = grad(&p, Tsit5, &opts, &last_entry_loss, Adjoint::Interpolating).expect("interp");
    // (tolerance 1e-8 on the forward and backward solves: 1e-6 leaves room
    // for their global errors)
    assert!((good.dp[1] - exact_dp1).abs() < 1e-6, "{:?}", good.dp);
    match grad(&p, Tsit5, &opts, &last_entry_loss, Adjoint::Backsolve) {
        Ok(g) => panic!(
            "Backsolve returned dL/dp1 = {:e} (exact {exact_dp1:e}) without a word",
            g.dp[1]
        ),
        Err(e) => {
            println!("{e}");
            assert!(
                matches!(e, GradError::Reconstruction { component: 0, .. }),
                "{e:?}"
            );
            assert!(e.to_string().contains("Interpolating"), "{e}");
        }
    }
    // where backsolve is stable it still answers: Lotka–Volterra on [0, 1]
    let lv = Problem::ode_field(Generic(LotkaVolterra), LV_Y0.to_vec(), (0.0, 1.0))
        .params(LV_PARAMS.to_vec());
    let g = grad(&lv, Tsit5, &opts, &sum_loss, Adjoint::Backsolve).expect("stable backsolve");
    let d = grad(&lv, Tsit5, &opts, &sum_loss, Adjoint::STORE_ALL).expect("discrete");
    // both converge to the exact gradient at tolerance 1e-8
    assert_gradients_agree(&g, &d, 1e-5, 1e-3);
}

/// Two decoupled decays, y_k' = −p_k·y_k.
#[derive(Clone, Copy)]
struct TwoDecays;
impl GenericField for TwoDecays {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = -p[0] * y[0];
        dy[1] = -p[1] * y[1];
    }
}

#[test]
fn continuous_adjoints_keep_per_component_tolerances() {
    // component 0 loose, component 1 (the one the loss reads) tight: the
    // adjoint of component 1 and the parameter integral must be solved at
    // component 1's tolerance, not component 0's
    let t1 = 2.0;
    let p =
        Problem::ode_field(Generic(TwoDecays), vec![1.0, 1.0], (0.0, t1)).params(vec![1.0, 0.5]);
    let opts = Options::default()
        .rtol(vec![1e-2, 1e-10])
        .atol(vec![1e-2, 1e-10])
        .save_at(SaveAt::T1);
    // L = y1(T) = e^{−p1 T}: dL/dp1 = −T e^{−p1 T}, dL/dy1(0) = e^{−p1 T}
    let exact = -t1 * (-0.5 * t1).exp();
    for adjoint in [Adjoint::Interpolating, Adjoint::Backsolve] {
        let g = grad(&p, Tsit5, &opts, &last_entry_loss, adjoint).expect("gradient");
        let err = (g.dp[1] - exact).abs();
        println!("{adjoint:?}: dL/dp1 error {err:e}");
        // tolerance 1e-10 on the component: 1e-7 leaves three orders for the
        // global error; at component 0's 1e-2 it is ~1e-4
        assert!(err < 1e-7, "{adjoint:?}: {err:e}");
        assert!(((g.dy0[1] - (-0.5 * t1).exp()).abs()) < 1e-7, "{adjoint:?}");
    }
}

#[test]
fn backward_failure_is_reported_as_backward() {
    // the drift is fine; its VJP (only the backward pass uses it) is not
    // finite before t = 0.5
    let p = Problem::ode(
        |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| dy[0] = -p[0] * y[0],
        vec![1.0],
        (0.0, 1.0),
    )
    .params(vec![1.0])
    .with_vjp(|t, y, p, v, oy, op| {
        let bad = if t < 0.5 { f64::NAN } else { 0.0 };
        oy[0] += -p[0] * v[0] + bad;
        op[0] += -y[0] * v[0];
    });
    let opts = Options::default().tol(1e-8).save_at(SaveAt::T1);
    for adjoint in [Adjoint::Interpolating, Adjoint::Backsolve] {
        let e = grad(&p, Tsit5, &opts, &sum_loss, adjoint).expect_err("NaN VJP");
        println!("{adjoint:?}: {e}");
        assert!(matches!(e, GradError::Backward(_)), "{adjoint:?}: {e}");
        assert!(!e.to_string().contains("forward"), "{e}");
    }
}

#[test]
fn oversized_dt0_is_clamped_to_the_span() {
    // Robertson to 1e5 with a first step of 1e300, against the test set's
    // reference: the same solve as with dt0 = the span, and as accurate as
    // without dt0
    let p = robertson(&ROBER_P, 1e5);
    let opts = Options::default()
        .rtol(1e-6)
        .atol(1e-10)
        .save_at(SaveAt::T1);
    let run = |name: &str, dt0: Option<f64>| {
        let o = match dt0 {
            Some(h) => opts.clone().dt0(h),
            None => opts.clone(),
        };
        let r = match name {
            "Bdf" => solve(&p, Bdf::default(), &o),
            "Esdirk34" => solve(&p, Esdirk34::default(), &o),
            "DiffsolBdf" => solve(&p, sdeflow::stiff::DiffsolBdf::default(), &o),
            _ => solve(&p, sdeflow::stiff::DiffsolEsdirk34::default(), &o),
        };
        r.unwrap_or_else(|e| panic!("{name}, dt0 = {dt0:?}: {e}"))
            .last()
            .to_vec()
    };
    for name in ["Bdf", "Esdirk34", "DiffsolBdf", "DiffsolEsdirk34"] {
        let huge = run(name, Some(1e300));
        assert_eq!(huge, run(name, Some(1e5)), "{name}");
        // rtol 1e-6 over ~400 steps: 1e-4 relative to the reference on y1
        // and y3 (y2 ~ 7e-8 is below atol's resolution, 1e-10 / 7e-8 ~ 1e-3)
        for k in [0, 2] {
            let rel = (huge[k] - ROBER_1E5[k]).abs() / ROBER_1E5[k];
            assert!(rel < 1e-4, "{name}: y{k} off by {rel:e}");
        }
        println!("{name}: dt0 = 1e300 gives {huge:?}");
    }
    // fixed steps larger than the span: one step to t1
    let d = Problem::ode(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
        vec![1.0],
        (0.0, 0.01),
    );
    let s = solve(&d, Euler, Options::default().fixed_step(1e300)).expect("one step");
    assert_eq!(s.stats.accepted_steps, 1);
    assert_eq!(s.last(), &[0.99]);
}

#[test]
fn bdf_solves_robertson_to_1e11() {
    // the step-size floor is relative to the current t (16 ulp of t), not to
    // the span's end, so the late steps of 1e10 are fine
    for t1 in [1e9, 1e11] {
        let p = robertson(&ROBER_P, t1);
        let opts = Options::default()
            .rtol(1e-8)
            .atol(1e-14)
            .save_at(SaveAt::T1);
        let s = solve(&p, Bdf::default(), opts).unwrap_or_else(|e| panic!("t1 = {t1:e}: {e}"));
        let y = s.last();
        assert!((y.iter().sum::<f64>() - 1.0).abs() < 1e-8, "{y:?}");
        if t1 == 1e11 {
            // rtol 1e-8 over ~1800 steps: 1e-5 relative on y1 (measured
            // 4e-7), 1e-12 on y3 ~ 1; y2 ~ 8e-14 is only ~8 atol, so its
            // relative error is bounded by ~1e-14 / 8e-14 per step: 1e-3
            // (measured 4e-6)
            for (k, bound) in [(0, 1e-5), (1, 1e-3), (2, 1e-12)] {
                let rel = (y[k] - ROBER_1E11[k]).abs() / ROBER_1E11[k];
                assert!(rel < bound, "y{k} off by {rel:e}: {y:?}");
            }
        }
        println!("Robertson to {t1:e}: {y:?}, {:?}", s.stats);
    }
    // the underflow hint does not send a stiff solver's user to a stiff
    // solver only
    let blowup = Problem::ode(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = y[0] * y[0],
        vec![1.0],
        (0.0, 2.0),
    );
    let e = solve(&blowup, Bdf::default(), Options::default().dt_min(1e-8)).expect_err("blows up");
    assert_says(&e, &["with an explicit solver", "blow-up"]);
}

#[test]
fn spans_of_one_ulp_return_cleanly() {
    // y' = −y over one float: y = e^{−ulp}, within a few ulp of 1 − ulp
    for (t0, t1) in [
        (1.0, 1f64.next_up()),
        (1.0, 1f64.next_down()),
        (1e11, 1e11f64.next_up()),
        (0.0, f64::MIN_POSITIVE),
    ] {
        let d = Problem::ode(
            |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
            vec![1.0],
            (t0, t1),
        );
        let exact = (-(t1 - t0)).exp();
        for (name, r) in [
            ("Bdf", solve(&d, Bdf::default(), Options::default())),
            (
                "Bdf dense",
                solve(
                    &d,
                    Bdf::default(),
                    Options::default().save_at(SaveAt::Dense),
                ),
            ),
            ("Tsit5", solve(&d, Tsit5, Options::default())),
            (
                "Esdirk34",
                solve(&d, Esdirk34::default(), Options::default()),
            ),
        ] {
            let s = r.unwrap_or_else(|e| panic!("{name} on ({t0}, {t1}): {e}"));
            assert_eq!(s.t_last(), Some(t1), "{name}");
            // default rtol 1e-3 on a step of relative size ≤ 1.5e-5: the
            // one-step error is far below 1e-9
            assert!((s.last()[0] - exact).abs() < 1e-9, "{name}: {:?}", s.last());
        }
    }
}
