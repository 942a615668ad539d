//! The fault tests of issue #12 (`tests/suite/faults.rs` of core v2),
//! written against v1's API (commit 51c1bf7), to show which faults v1
//! already handled and which it did not.
//!
//! Each `#[test]` has the name of the v2 test and checks the same problem
//! and input for what the v2 test asserts, in v1's terms. Every sub-check
//! runs under `catch_unwind` so that all of them are reported; a test fails
//! if any sub-check failed. The report line of a sub-check says
//! `ASSERTION` (v1 answered, but not what v2 asserts) or `LIBRARY PANIC`
//! (the call into sdeflow panicked instead of returning: in a program this
//! kills the process). Where v1 has no type or entry point for what v2
//! asserts (`SolveError::Panicked`, `GradError::Reconstruction`,
//! `GradError::Backward`, `sdeflow::Error`, a separate `DiffsolBdf`), the
//! closest observable property is checked and the comment says so.

use std::panic::{AssertUnwindSafe, catch_unwind};

use sdeflow::GradError;
use sdeflow::ensemble::EnsembleError;
use sdeflow::prelude::*;

// ---------------------------------------------------------------- helpers

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic>".into()
    }
}

/// Calls into the library; a panic out of it is re-raised as a `LIBRARY
/// PANIC`, so that the report tells it from a failed assertion.
fn call<T>(what: &str, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => panic!(
            "LIBRARY PANIC (would kill the process) in {what}: {}",
            panic_text(&*p)
        ),
    }
}

/// Sub-checks of one test: each is run, its outcome printed and kept.
struct Checks {
    failed: Vec<String>,
}

impl Checks {
    fn new() -> Self {
        Checks { failed: Vec::new() }
    }
    fn run(&mut self, label: &str, f: impl FnOnce()) {
        let start = std::time::Instant::now();
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(()) => println!("  [pass] {label} ({:.2?})", start.elapsed()),
            Err(p) => {
                let mut text = panic_text(&*p);
                if !text.starts_with("LIBRARY PANIC") && !text.starts_with("TIMEOUT") {
                    text = format!("ASSERTION: {text}");
                }
                if text.len() > 400 {
                    text = format!("{}... ({} chars)", &text[..400], text.len());
                }
                println!("  [FAIL] {label} ({:.2?}): {text}", start.elapsed());
                self.failed.push(format!("{label}: {text}"));
            }
        }
    }
    fn finish(self) {
        assert!(
            self.failed.is_empty(),
            "{} sub-check(s) failed on v1:\n{}",
            self.failed.len(),
            self.failed.join("\n")
        );
    }
}

/// Lotka–Volterra, generic (exact VJPs by dual numbers).
#[derive(Clone, Copy)]
struct LotkaVolterra;
impl GenericField for LotkaVolterra {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = p[0] * y[0] - p[1] * y[0] * y[1];
        dy[1] = -p[2] * y[1] + p[3] * y[0] * y[1];
    }
}
const LV_PARAMS: [f64; 4] = [1.5, 1.0, 3.0, 1.0];
const LV_Y0: [f64; 2] = [1.0, 1.0];

/// Lotka–Volterra as a plain closure on [0, 10].
fn lotka_volterra() -> Problem<impl Drift + Clone> {
    Problem::ode(
        |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| {
            dy[0] = p[0] * y[0] - p[1] * y[0] * y[1];
            dy[1] = -p[2] * y[1] + p[3] * y[0] * y[1];
        },
        LV_Y0.to_vec(),
        (0.0, 10.0),
    )
    .params(LV_PARAMS.to_vec())
}

#[derive(Clone, Copy)]
struct RobertsonP;
impl GenericField for RobertsonP {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = -p[0] * y[0] + p[2] * y[1] * y[2];
        dy[1] = p[0] * y[0] - p[2] * y[1] * y[2] - p[1] * y[1] * y[1];
        dy[2] = p[1] * y[1] * y[1];
    }
}
const ROBER_P: [f64; 3] = [0.04, 3e7, 1e4];
const ROBER_1E5: [f64; 3] = [
    1.78659211422263833e-2,
    7.27475146848882968e-8,
    9.82134006110270019e-1,
];
const ROBER_1E11: [f64; 3] = [
    0.2083340149701255e-7,
    0.8333360770334713e-13,
    0.9999999791665050,
];
fn robertson(p: &[f64], t1: f64) -> Problem<Generic<RobertsonP>> {
    Problem::ode(Generic(RobertsonP), vec![1.0, 0.0, 0.0], (0.0, t1)).params(p.to_vec())
}

fn sum_loss(_ts: &[f64], ys: &[f64], g: &mut [f64]) -> f64 {
    g.iter_mut().for_each(|v| *v = 1.0);
    ys.iter().sum()
}
fn last_entry_loss(_ts: &[f64], ys: &[f64], g: &mut [f64]) -> f64 {
    g.iter_mut().for_each(|v| *v = 0.0);
    let k = ys.len() - 1;
    g[k] = 1.0;
    ys[k]
}
fn assert_gradients_agree(a: &Gradient, b: &Gradient, rel: f64, floor: f64) {
    let pairs = a.dp.iter().zip(&b.dp).chain(a.dy0.iter().zip(&b.dy0));
    for (x, y) in pairs {
        assert!((x - y).abs() <= rel * x.abs().max(floor), "{x} vs {y}");
    }
}
fn assert_says(e: &impl std::fmt::Display, words: &[&str]) {
    let text = e.to_string();
    for w in words {
        assert!(text.contains(w), "no {w:?} in: {text}");
    }
}

/// v2's `Adjoint::STORE_ALL`.
const STORE_ALL: Adjoint = Adjoint::Discrete {
    checkpoints: usize::MAX,
};

/// v2's "a typed `Panicked { closure, message }` error": v1 has no such
/// variant; the closest is an `Err` whose text names the panic and carries
/// the closure's message.
fn says_panicked(e: &SolveError, text: &str) -> bool {
    let s = e.to_string();
    s.contains("panicked") && s.contains(text)
}

/// `y' = −y` from 1 on [0, 1], whose drift panics after `t = 0.5`.
fn late_panic() -> Problem<impl Drift + Clone> {
    Problem::ode(
        |t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| {
            assert!(t < 0.5, "drift refused t = {t}");
            dy[0] = -y[0];
        },
        vec![1.0],
        (0.0, 1.0),
    )
}

// ------------------------------------------------------------------ tests

#[test]
fn panic_in_a_field_is_an_error_of_the_solve() {
    let mut c = Checks::new();
    // v2 runs Tsit5, the native Bdf and diffsol's Bdf; v1's only Bdf is
    // diffsol's, so it stands for both.
    c.run("late drift panic, Tsit5", || {
        let r = call("solve Tsit5", || {
            solve(&late_panic(), Tsit5, Options::default())
        });
        let e = r.expect_err("Tsit5");
        assert!(says_panicked(&e, "drift refused"), "Tsit5: {e}");
    });
    c.run("late drift panic, Bdf (diffsol)", || {
        let r = call("solve Bdf", || {
            solve(&late_panic(), Bdf::default(), Options::default())
        });
        let e = r.expect_err("Bdf");
        assert!(says_panicked(&e, "drift refused"), "Bdf: {e}");
    });
    c.run("drift panics at t0, Tsit5", || {
        let always = Problem::ode(
            |_t: f64, _y: &[f64], _p: &[f64], _dy: &mut [f64]| panic!("not implemented yet"),
            vec![1.0],
            (0.0, 1.0),
        );
        let e = call("solve", || solve(&always, Tsit5, Options::default())).expect_err("panics");
        assert!(says_panicked(&e, "not implemented"), "{e}");
        // v2: t = Some(0.0) in the error
        assert!(e.to_string().contains("t=0"), "no time in: {e}");
        assert!(e.to_string().contains("drift"), "{e}");
    });
    c.run("diffusion panics, EulerMaruyama", || {
        let sde = Problem::sde(
            |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
            |_t: f64, _y: &[f64], _p: &[f64], _g: &mut [f64]| panic!("no noise model"),
            Noise::Diagonal,
            vec![1.0],
            (0.0, 1.0),
        );
        let e = call("solve", || {
            solve(&sde, EulerMaruyama, Options::default().fixed_step(0.1))
        })
        .expect_err("panics");
        assert!(says_panicked(&e, "no noise model"), "{e}");
        assert!(e.to_string().contains("diffusion"), "{e}");
    });
    c.finish();
}

#[test]
fn panic_in_the_loss_or_a_field_is_an_error_of_the_gradient() {
    let mut c = Checks::new();
    let p = Problem::ode(Generic(LotkaVolterra), LV_Y0.to_vec(), (0.0, 1.0))
        .params(LV_PARAMS.to_vec());
    let opts = Options::default().tol(1e-8).save_at(SaveAt::T1);
    let bad_loss = |_ts: &[f64], _ys: &[f64], _g: &mut [f64]| -> f64 { panic!("loss refused") };
    for adjoint in [STORE_ALL, Adjoint::Interpolating, Adjoint::Backsolve] {
        c.run(&format!("panicking loss, {adjoint:?}"), || {
            let r = call("grad", || grad(&p, Tsit5, &opts, &bad_loss, adjoint));
            let e = r.expect_err("loss panics");
            // v2: GradError::Panicked { closure: "loss", message: "loss refused" }
            assert_says(&e, &["panicked", "loss refused"]);
        });
    }
    c.run("late drift panic in the discrete adjoint's forward pass", || {
        let late = late_panic().with_vjp(
            |_t: f64, _y: &[f64], _p: &[f64], v: &[f64], oy: &mut [f64], _op: &mut [f64]| {
                oy[0] -= v[0]
            },
        );
        let r = call("grad", || grad(&late, Tsit5, &opts, &sum_loss, STORE_ALL));
        let e = r.expect_err("drift panics");
        assert_says(&e, &["panicked", "drift refused"]);
    });
    c.finish();
}

#[test]
fn ensemble_reports_failed_trajectories_and_finishes_the_rest() {
    let mut c = Checks::new();
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
    let n = 600;
    let opts = Options::default().fixed_step(0.05).save_at(SaveAt::T1);
    let ens = |threads: usize| {
        Ensemble::new(&gbm, EulerMaruyama, opts.clone(), n)
            .seed(7)
            .threads(threads)
            .map_problem(|i, _seed, base| {
                assert!(i != 300, "map refused trajectory 300");
                base.clone().params(vec![if i == 11 { 3.0 } else { 0.1 }])
            })
    };
    for threads in [1, 2] {
        c.run(&format!("run with failing drift/output/map, {threads} threads"), || {
            let run = call("Ensemble::run", || {
                ens(threads).run(|i, sol| {
                    assert!(i != 42, "output refused trajectory 42");
                    sol.last()[0]
                })
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
            says(0, "the drift panicked at t=0");
            says(1, "output refused");
            says(1, "reduction");
            says(2, "map refused");
            says(2, "per-trajectory map");
        });
        c.run(&format!("statistics with failing drift/map, {threads} threads"), || {
            let summary = call("Ensemble::statistics", || ens(threads).statistics(&[]))
                .expect("statistics");
            assert_eq!(summary.succeeded, n - 2);
            assert_eq!(summary.failures.len(), 2);
        });
    }
    c.run("Abort: the first failure with its error", || {
        let e = call("Ensemble::run (Abort)", || {
            ens(1)
                .on_failure(OnFailure::Abort)
                .run(|_, sol| sol.last()[0])
        })
        .expect_err("aborts");
        // v2: error: Some(SolveError::Panicked { .. }); v1 has no such
        // variant: the closest is an error that carries the drift's message
        assert!(
            matches!(
                &e,
                EnsembleError::Trajectory { index: 11, error: Some(se), .. }
                    if says_panicked(se, "drift refused")
            ),
            "{e}"
        );
    });
    c.finish();
}

#[test]
fn debug_of_errors_is_short_and_has_the_hint() {
    let mut c = Checks::new();
    let blowup = Problem::ode(
        |t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| {
            dy.iter_mut()
                .zip(y)
                .for_each(|(d, v)| *d = (10.0 * t).cos() - v)
        },
        vec![1.0; 200],
        (0.0, 100.0),
    );
    c.run("Debug of MaxStepsReached is short and has the hint", || {
        let opts = Options::default().max_steps(50).save_at(SaveAt::Steps);
        let e = call("solve", || solve(&blowup, Tsit5, &opts)).expect_err("out of steps");
        let partial = e.partial().expect("a partial solution");
        assert!(partial.ys.len() > 1000, "{}", partial.ys.len());
        let debug = format!("{e:?}");
        println!("    Debug is {} chars", debug.len());
        assert!(debug.len() < 600, "Debug is {} chars", debug.len());
        assert!(debug.contains("raise max_steps"), "the hint is not in Debug");
    });
    // v2: `?` into one crate-level `sdeflow::Error`. v1 has none (that part
    // of the v2 test does not compile on v1); the closest a program can do
    // is `?` into `Box<dyn Error>`, whose Debug is the SolveError's.
    c.run("`?` into a program-level error prints short (Box<dyn Error>)", || {
        fn program(
            p: &Problem<impl Drift + Clone>,
        ) -> Result<(), Box<dyn std::error::Error>> {
            solve(
                p,
                Tsit5,
                Options::default().max_steps(50).save_at(SaveAt::Steps),
            )?;
            Ok(())
        }
        let e = call("solve", || program(&blowup)).expect_err("fails");
        let len = format!("{e:?}").len();
        assert!(len < 600, "Debug is {len} chars");
    });
    c.run("gradient without parameters is an error (GradError)", || {
        let p = Problem::ode(Generic(LotkaVolterra), LV_Y0.to_vec(), (0.0, 1.0)).params(vec![]);
        let r = call("grad", || {
            grad(&p, Tsit5, Options::default(), &sum_loss, STORE_ALL)
        });
        let e = r.expect_err("no parameters");
        println!("    gradient error: {e}");
        assert!(format!("{e:?}").len() < 600);
    });
    c.run("ensemble of 0 trajectories is an error (EnsembleError)", || {
        let p = Problem::ode(
            |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
            vec![1.0],
            (0.0, 1.0),
        );
        let r = call("statistics", || {
            Ensemble::new(&p, Tsit5, Options::default(), 0).statistics(&[])
        });
        let e = r.expect_err("no trajectories");
        println!("    ensemble error: {e}");
    });
    c.finish();
}

#[test]
fn too_short_parameter_slice_is_a_parameter_error() {
    let mut c = Checks::new();
    let short = lotka_volterra().params(vec![1.5, 1.0]);
    for (name, r) in [
        ("Tsit5", call("solve", || solve(&short, Tsit5, Options::default()))),
        (
            "Bdf (diffsol)",
            call("solve", || solve(&short, Bdf::default(), Options::default())),
        ),
    ] {
        c.run(&format!("2 of 4 parameters, {name}"), || {
            let e = r.expect_err(name);
            println!("    {name}: {e}");
            assert!(
                matches!(&e, SolveError::DimensionMismatch { what, expected: 4, found: Some(2), .. } if what == "parameters"),
                "{name}: {e:?}"
            );
            assert!(!e.to_string().contains("y0"), "{name} blames y0: {e}");
        });
    }
    c.run("no parameters in a diffusion", || {
        let sde = Problem::sde(
            |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
            |_t: f64, y: &[f64], p: &[f64], g: &mut [f64]| g[0] = p[2] * y[0],
            Noise::Diagonal,
            vec![1.0],
            (0.0, 1.0),
        );
        let e = call("solve", || {
            solve(&sde, EulerMaruyama, Options::default().fixed_step(0.1))
        })
        .expect_err("short");
        assert!(
            matches!(&e, SolveError::DimensionMismatch { what, expected: 3, found: Some(0), .. } if what == "parameters"),
            "{e:?}"
        );
    });
    c.run("a state too short is the state's error", || {
        let e = call("solve", || {
            solve(&lotka_volterra().y0(vec![1.0]), Tsit5, Options::default())
        })
        .expect_err("y0");
        assert!(
            matches!(&e, SolveError::DimensionMismatch { what, found: None, .. } if what == "drift output"),
            "{e:?}"
        );
    });
    c.finish();
}

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
    let mut c = Checks::new();
    let (p0, t1) = (5.0, 20.0);
    let p = Problem::ode(Generic(Leak), vec![1.0, 0.0], (0.0, t1)).params(vec![p0, 1.0]);
    let opts = Options::default().tol(1e-8).save_at(SaveAt::T1);
    let exact_dp1 = (1.0 - (-p0 * t1).exp()) / p0;
    c.run("Interpolating is right on the leak", || {
        let good = call("grad", || {
            grad(&p, Tsit5, &opts, &last_entry_loss, Adjoint::Interpolating)
        })
        .expect("interp");
        assert!((good.dp[1] - exact_dp1).abs() < 1e-6, "{:?}", good.dp);
    });
    c.run("Backsolve on the leak reports its reconstruction error", || {
        match call("grad", || {
            grad(&p, Tsit5, &opts, &last_entry_loss, Adjoint::Backsolve)
        }) {
            Ok(g) => panic!(
                "Backsolve returned dL/dp1 = {:e} (exact {exact_dp1:e}) without a word",
                g.dp[1]
            ),
            // v2: GradError::Reconstruction { component: 0, .. } naming
            // Interpolating; v1 has no such variant
            Err(e) => {
                println!("    {e}");
                assert!(e.to_string().contains("Interpolating"), "{e}");
            }
        }
    });
    c.run("stable Backsolve (Lotka–Volterra) still answers", || {
        let lv = Problem::ode(Generic(LotkaVolterra), LV_Y0.to_vec(), (0.0, 1.0))
            .params(LV_PARAMS.to_vec());
        let g = call("grad", || {
            grad(&lv, Tsit5, &opts, &sum_loss, Adjoint::Backsolve)
        })
        .expect("stable backsolve");
        let d = call("grad", || grad(&lv, Tsit5, &opts, &sum_loss, STORE_ALL)).expect("discrete");
        assert_gradients_agree(&g, &d, 1e-5, 1e-3);
    });
    c.finish();
}

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
    let mut c = Checks::new();
    let t1 = 2.0;
    let p = Problem::ode(Generic(TwoDecays), vec![1.0, 1.0], (0.0, t1)).params(vec![1.0, 0.5]);
    let opts = Options::default()
        .rtol(vec![1e-2, 1e-10])
        .atol(vec![1e-2, 1e-10])
        .save_at(SaveAt::T1);
    let exact = -t1 * (-0.5 * t1).exp();
    for adjoint in [Adjoint::Interpolating, Adjoint::Backsolve] {
        c.run(&format!("{adjoint:?}"), || {
            let g = call("grad", || grad(&p, Tsit5, &opts, &last_entry_loss, adjoint))
                .expect("gradient");
            let err = (g.dp[1] - exact).abs();
            println!("    {adjoint:?}: dL/dp1 error {err:e}");
            assert!(err < 1e-7, "{adjoint:?}: dL/dp1 error {err:e}");
            assert!(
                ((g.dy0[1] - (-0.5 * t1).exp()).abs()) < 1e-7,
                "{adjoint:?}: dL/dy1(0) error {:e}",
                (g.dy0[1] - (-0.5 * t1).exp()).abs()
            );
        });
    }
    c.finish();
}

#[test]
fn backward_failure_is_reported_as_backward() {
    let mut c = Checks::new();
    let p = Problem::ode(
        |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| dy[0] = -p[0] * y[0],
        vec![1.0],
        (0.0, 1.0),
    )
    .params(vec![1.0])
    .with_vjp(
        |t: f64, y: &[f64], p: &[f64], v: &[f64], oy: &mut [f64], op: &mut [f64]| {
            let bad = if t < 0.5 { f64::NAN } else { 0.0 };
            oy[0] += -p[0] * v[0] + bad;
            op[0] += -y[0] * v[0];
        },
    );
    let opts = Options::default().tol(1e-8).save_at(SaveAt::T1);
    for adjoint in [Adjoint::Interpolating, Adjoint::Backsolve] {
        c.run(&format!("{adjoint:?}"), || {
            let e = call("grad", || grad(&p, Tsit5, &opts, &sum_loss, adjoint))
                .expect_err("NaN VJP");
            println!("    {adjoint:?}: {e}");
            // v2: GradError::Backward(_); v1 has no such variant: the
            // closest is that it is not reported as the forward solve's
            assert!(!matches!(e, GradError::Solve(_)), "{adjoint:?}: {e}");
            assert!(!e.to_string().contains("forward"), "{e}");
        });
    }
    c.finish();
}

#[test]
fn oversized_dt0_is_clamped_to_the_span() {
    let mut c = Checks::new();
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
        let r = call("solve", || match name {
            "Bdf" => solve(&p, Bdf::default(), &o),
            _ => solve(&p, Esdirk34::default(), &o),
        });
        r.unwrap_or_else(|e| panic!("{name}, dt0 = {dt0:?}: {e}"))
            .last()
            .to_vec()
    };
    // v2 runs the native Bdf and Esdirk34 and diffsol's; v1's Bdf and
    // Esdirk34 are diffsol's
    for name in ["Bdf", "Esdirk34"] {
        c.run(&format!("{name} (diffsol), Robertson to 1e5, dt0 = 1e300"), || {
            let huge = run(name, Some(1e300));
            assert_eq!(huge, run(name, Some(1e5)), "{name}");
            for k in [0, 2] {
                let rel = (huge[k] - ROBER_1E5[k]).abs() / ROBER_1E5[k];
                assert!(rel < 1e-4, "{name}: y{k} off by {rel:e}");
            }
            println!("    {name}: dt0 = 1e300 gives {huge:?}");
        });
    }
    c.run("Euler, fixed step 1e300 on a span of 0.01", || {
        let d = Problem::ode(
            |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
            vec![1.0],
            (0.0, 0.01),
        );
        let s = call("solve", || {
            solve(&d, Euler, Options::default().fixed_step(1e300))
        })
        .expect("one step");
        assert_eq!(s.stats.accepted_steps, 1);
        assert_eq!(s.last(), &[0.99]);
    });
    c.finish();
}

#[test]
fn bdf_solves_robertson_to_1e11() {
    let mut c = Checks::new();
    for t1 in [1e9, 1e11] {
        c.run(&format!("Bdf (diffsol), Robertson to {t1:e}"), || {
            let p = robertson(&ROBER_P, t1);
            let opts = Options::default()
                .rtol(1e-8)
                .atol(1e-14)
                .save_at(SaveAt::T1);
            // at most 180 s (a watchdog thread; the solve is left running
            // if it times out)
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let r = catch_unwind(AssertUnwindSafe(|| solve(&p, Bdf::default(), opts)));
                let _ = tx.send(r.map_err(|e| panic_text(&*e)));
            });
            let start = std::time::Instant::now();
            let s = match rx.recv_timeout(std::time::Duration::from_secs(180)) {
                Err(_) => panic!("TIMEOUT: no answer after {:.0?}", start.elapsed()),
                Ok(Err(text)) => panic!("LIBRARY PANIC (would kill the process) in solve: {text}"),
                Ok(Ok(r)) => r,
            }
            .unwrap_or_else(|e| panic!("t1 = {t1:e} ({:.1?}): {e}", start.elapsed()));
            println!("    took {:.2?}", start.elapsed());
            let y = s.last();
            assert!((y.iter().sum::<f64>() - 1.0).abs() < 1e-8, "{y:?}");
            if t1 == 1e11 {
                for (k, bound) in [(0, 1e-5), (1, 1e-3), (2, 1e-12)] {
                    let rel = (y[k] - ROBER_1E11[k]).abs() / ROBER_1E11[k];
                    assert!(rel < bound, "y{k} off by {rel:e}: {y:?}");
                }
            }
            println!("    Robertson to {t1:e}: {y:?}, {:?}", s.stats);
        });
    }
    c.run("underflow hint of a stiff solver on a blow-up", || {
        let blowup = Problem::ode(
            |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = y[0] * y[0],
            vec![1.0],
            (0.0, 2.0),
        );
        let e = call("solve", || {
            solve(&blowup, Bdf::default(), Options::default().dt_min(1e-8))
        })
        .expect_err("blows up");
        println!("    {e}");
        assert_says(&e, &["with an explicit solver", "blow-up"]);
    });
    c.finish();
}

#[test]
fn spans_of_one_ulp_return_cleanly() {
    let mut c = Checks::new();
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
        for name in ["Bdf", "Bdf dense", "Tsit5", "Esdirk34"] {
            c.run(&format!("{name} on ({t0:e}, {t1:e})"), || {
                let r = call("solve", || match name {
                    "Bdf" => solve(&d, Bdf::default(), Options::default()),
                    "Bdf dense" => solve(
                        &d,
                        Bdf::default(),
                        Options::default().save_at(SaveAt::Dense),
                    ),
                    "Tsit5" => solve(&d, Tsit5, Options::default()),
                    _ => solve(&d, Esdirk34::default(), Options::default()),
                });
                let s = r.unwrap_or_else(|e| panic!("{name} on ({t0}, {t1}): {e}"));
                assert_eq!(s.t_last(), Some(t1), "{name}");
                assert!((s.last()[0] - exact).abs() < 1e-9, "{name}: {:?}", s.last());
            });
        }
    }
    c.finish();
}
