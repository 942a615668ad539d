//! A step-size controller written by the user (`Controller::custom`)
//! drives `solve`, ensembles and `grad` — including the checkpointed
//! discrete adjoint, whose replays from snapshots must take the same steps
//! — exactly as the built-in ones do; its invalid output and options
//! holding it are refused with typed errors.

use sdeflow::control::{StepController, StepDecision};
use sdeflow::observe::{StepObserver, StepReport, integrate_observed};
use sdeflow::prelude::*;

use crate::common;
use common::{central_difference, gbm, last_entry_loss};

/// The I controller `h ← h · clamp(safety · err^{−1/k}, qmin, qmax)`, no
/// growth right after a rejection: its own safety factor and limits, and
/// state (`after_reject`) that a replay must restore.
#[derive(Debug, Clone, PartialEq)]
struct Cautious {
    safety: f64,
    qmin: f64,
    qmax: f64,
    after_reject: bool,
}

impl Cautious {
    fn new(safety: f64) -> Self {
        Cautious {
            safety,
            qmin: 0.3,
            qmax: 3.0,
            after_reject: false,
        }
    }

    /// The factor this controller gives `err` (order `k`), in the state
    /// `after_reject`; what the test replays independently.
    fn factor(&self, err: f64, k: f64, after_reject: bool) -> f64 {
        if !err.is_finite() {
            return self.qmin;
        }
        let f = if err == 0.0 {
            self.qmax
        } else {
            (self.safety * err.powf(-1.0 / k)).clamp(self.qmin, self.qmax)
        };
        if err <= 1.0 && after_reject {
            f.min(1.0)
        } else {
            f
        }
    }
}

impl StepController for Cautious {
    fn reset(&mut self) {
        self.after_reject = false;
    }

    fn decide(&mut self, err: f64, k: f64) -> StepDecision {
        let factor = self.factor(err, k, self.after_reject);
        let accept = err <= 1.0;
        self.after_reject = !accept;
        StepDecision { accept, factor }
    }

    fn validate(&self) -> Result<(), SolveError> {
        if self.safety > 0.0 && self.safety <= 1.0 {
            Ok(())
        } else {
            Err(SolveError::InvalidInput {
                what: "Cautious safety".into(),
                reason: format!("{} must be in (0, 1]", self.safety),
            })
        }
    }
}

/// `y' = -p0 y + p1 sin(t) y`: exact gradients by the discrete adjoint.
#[derive(Clone, Copy)]
struct Wobble;
impl GenericField for Wobble {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = -p[0] * y[0] + p[1] * t.sin() * y[0];
    }
}

fn wobble(p: &[f64]) -> Problem<Generic<Wobble>> {
    Problem::ode_field(Generic(Wobble), vec![1.0], (0.0, 10.0)).params(p.to_vec())
}

/// `y(10)` exactly: `exp(-10 p0 + p1 (1 - cos 10))`.
fn wobble_exact(p: &[f64]) -> f64 {
    (-10.0 * p[0] + p[1] * (1.0 - 10f64.cos())).exp()
}

const P: [f64; 2] = [0.3, 0.8];

/// Every attempt's start, size, error norm and verdict.
struct Attempts(Vec<(f64, f64, f64, bool)>);
impl StepObserver for Attempts {
    fn accepted(&mut self, _: usize, _: f64, _: f64, _: &[f64], _: &[f64]) {}
    fn attempted(&mut self, r: &StepReport<'_>) {
        let e = r.err_norm.expect("adaptive steps have an error norm");
        self.0.push((r.t, r.h, e, r.accepted));
    }
}

/// The user's controller sets every step: each attempt's size is the one
/// before times the factor the controller gives that attempt's error (bar
/// the last, cut to end at `t1`), its verdicts are the solve's, and it
/// takes the number of steps its safety factor predicts relative to the
/// default PI controller.
#[test]
fn the_users_controller_sets_every_step() {
    let p = wobble(&P);
    let ctl = Cautious::new(0.5);
    let opts = Options::default()
        .tol(1e-8)
        .controller(Controller::custom(ctl.clone()));
    let mut seen = Attempts(Vec::new());
    let sol = integrate_observed(&p, &Tsit5, &opts, &mut seen).expect("solve");
    let a = &seen.0;
    assert_eq!(a.len(), sol.stats.accepted_steps + sol.stats.rejected_steps);
    // Tsit5's error estimate has order k = 5 (embedded order 4, plus one)
    let k = 5.0;
    let mut after_reject = false;
    let mut checked = 0;
    for w in a.windows(2) {
        let ((t, h, e, acc), (_, h_next, _, _)) = (w[0], w[1]);
        assert_eq!(acc, e <= 1.0, "verdict at t={t}");
        let f = ctl.factor(e, k, after_reject);
        after_reject = !acc;
        // the next attempt starts where this one did (rejected) or ended
        // (accepted); the last one may be cut to end at t1
        if (w[1].0 + h_next - 10.0).abs() > 1e-12 {
            assert!(
                (h_next - h * f).abs() <= 1e-12 * h.abs(),
                "at t={t}: next step {h_next} vs {h} · {f}"
            );
            checked += 1;
        }
    }
    assert!(checked + 2 >= a.len(), "{checked} of {} checked", a.len());
    let err = (sol.last()[0] - wobble_exact(&P)).abs();
    let pi = solve(&p, Tsit5, Options::default().tol(1e-8)).expect("PI");
    let err_pi = (pi.last()[0] - wobble_exact(&P)).abs();
    println!(
        "custom: {} steps ({} rejected), error {err:.1e}; PI: {} steps ({} rejected), error \
         {err_pi:.1e}",
        sol.stats.accepted_steps,
        sol.stats.rejected_steps,
        pi.stats.accepted_steps,
        pi.stats.rejected_steps
    );
    // at a steady step size the controllers' factors are 1: this one's at
    // err = 0.5^5 = 0.031, PI's (0.9 · err^{-0.3/k}) at err = 0.9^{k/0.3}
    // = 0.17; as err ∝ h^5, its steps are (0.17/0.031)^{1/5} = 1.41 times
    // shorter, so ~1.41 times as many; allow 1.2–1.6 for the start-up
    let ratio = sol.stats.accepted_steps as f64 / pi.stats.accepted_steps as f64;
    assert!((1.2..1.6).contains(&ratio), "step ratio {ratio}");
    // and the solution is within the tolerance (10 · tol over the span)
    assert!(err < 1e-7, "error {err:e}");
}

/// An ensemble of adaptive SDE solves under the user's controller: the same
/// results on one and two threads, and other steps than under PI.
#[test]
fn ensembles_use_the_users_controller_on_any_number_of_threads() {
    let p = gbm(1.0, 0.5);
    let opts = |c: Controller| {
        Options::default()
            .tol(1e-3)
            .save_at(SaveAt::T1)
            .controller(c)
    };
    let custom = opts(Controller::custom(Cautious::new(0.5)));
    let run = |o: &Options, threads: usize| {
        let r = Ensemble::new(&p, Sriw1, o.clone(), 64)
            .seed(11)
            .threads(threads)
            .run(|_, s| (s.last()[0], s.stats.accepted_steps, s.stats.rejected_steps))
            .expect("ensemble");
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        r.outputs
    };
    let one = run(&custom, 1);
    assert_eq!(one, run(&custom, 2), "1 vs 2 threads");
    let pi = run(&opts(Controller::default()), 2);
    let steps = |r: &[(usize, (f64, usize, usize))]| r.iter().map(|o| o.1.1).sum::<usize>();
    assert!(
        steps(&one) > steps(&pi),
        "custom {} vs PI {} steps",
        steps(&one),
        steps(&pi)
    );
}

/// `grad` under the user's controller: with fewer checkpoints than steps,
/// the replays from snapshots (controller state included) take the same
/// steps, so the gradient equals the store-all one; both agree with central
/// differences of `solve` and with the exact gradient.
#[test]
fn checkpointed_gradients_replay_the_users_controller() {
    let opts = Options::default()
        .tol(1e-10)
        .save_at(SaveAt::T1)
        .controller(Controller::custom(Cautious::new(0.5)));
    let all = grad(
        &wobble(&P),
        Tsit5,
        &opts,
        &last_entry_loss,
        Adjoint::STORE_ALL,
    )
    .expect("all");
    let steps = all.solution.stats.accepted_steps;
    let budget = 4;
    let few = grad(
        &wobble(&P),
        Tsit5,
        &opts,
        &last_entry_loss,
        Adjoint::Discrete {
            checkpoints: budget,
        },
    )
    .expect("checkpointed");
    assert!(steps > 10 * budget, "{steps} steps");
    assert!(
        few.backward_drift_evals > all.backward_drift_evals,
        "the checkpointed gradient replays steps"
    );
    // the same steps, the same arithmetic: equal to rounding
    common::assert_gradients_agree(&all, &few, 1e-12, 0.0);
    let at = |p: &[f64]| solve(&wobble(p), Tsit5, &opts).expect("solve").last()[0];
    let fd: Vec<f64> = (0..2)
        .map(|j| central_difference(at, &P, j, 1e-5))
        .collect();
    // FD of tolerance-1e-10 solves: ~1e-10 / 1e-5 noise, relative 1e-6
    common::assert_close("dp vs FD", &few.dp, &fd, 1e-6);
    let y = wobble_exact(&P);
    let exact = [-10.0 * y, (1.0 - 10f64.cos()) * y];
    common::assert_close("dp vs exact", &few.dp, &exact, 1e-7);
}

/// The SDE discrete adjoint replays the user's controller too (rejected
/// steps re-query the Brownian path): checkpointed equals store-all.
#[test]
fn sde_gradients_replay_the_users_controller() {
    let p = common::sde2(&common::SDE2_P, &common::SDE2_Y0);
    let opts = Options::default()
        .tol(1e-3)
        .seed(5)
        .save_at(SaveAt::T1)
        .controller(Controller::custom(Cautious::new(0.7)));
    let g = |adjoint| grad(&p, Sriw1, &opts, &common::tracking_loss, adjoint).expect("grad");
    let all = g(Adjoint::STORE_ALL);
    let few = g(Adjoint::Discrete { checkpoints: 3 });
    assert!(all.solution.stats.accepted_steps > 9);
    assert!(
        all.solution.stats.rejected_steps > 0,
        "no rejection replayed"
    );
    common::assert_gradients_agree(&all, &few, 1e-12, 1e-3);
}

/// A factor that is not finite and positive, and parameters the
/// controller's own `validate` refuses, are typed errors naming the
/// controller; options holding a custom controller compare by value and
/// refuse to be serialized, with a message saying why.
#[test]
fn invalid_custom_controllers_are_typed_errors() {
    #[derive(Debug, Clone, PartialEq)]
    struct Broken;
    impl StepController for Broken {
        fn reset(&mut self) {}
        fn decide(&mut self, _: f64, _: f64) -> StepDecision {
            StepDecision {
                accept: true,
                factor: f64::NAN,
            }
        }
    }
    let p = wobble(&P);
    match solve(
        &p,
        Tsit5,
        Options::default().controller(Controller::custom(Broken)),
    ) {
        Err(SolveError::InvalidInput { what, reason }) => {
            assert_eq!(what, "step controller");
            assert!(reason.contains("not finite and > 0"), "{reason}");
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    let bad = Options::default().controller(Controller::custom(Cautious::new(1.5)));
    match solve(&p, Tsit5, &bad) {
        Err(SolveError::InvalidInput { what, .. }) => assert_eq!(what, "Cautious safety"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }

    let opts = Options::default().controller(Controller::custom(Cautious::new(0.5)));
    assert_eq!(opts, opts.clone());
    assert_ne!(
        opts,
        Options::default().controller(Controller::custom(Cautious::new(0.6)))
    );
    assert_ne!(opts, Options::default());
    let e = serde_json::to_string(&opts).expect_err("a custom controller is not serializable");
    assert!(e.to_string().contains("custom step controller"), "{e}");
    let pi = Options::default().controller(PiController::default());
    let json = serde_json::to_string(&pi.controller).expect("a PI controller serializes");
    let back: Controller = serde_json::from_str(&json).expect("and reads back");
    assert_eq!(back, pi.controller);
}
