//! Discontinuities of the fields in time (`Options::discontinuities`,
//! DifferentialEquations.jl's `d_discontinuities`, diffrax's `jump_ts`):
//! adaptive steps end at the last float before each time and restart the
//! method at the first float after it, whichever side the field puts the
//! time itself on. Accuracy and work against the exact solution, the
//! restart's part in it, gradients (checkpointed replays restart alike)
//! and typed errors.

use sdeflow::prelude::*;
use sdeflow::stiff::DiffsolBdf;

use crate::common;
use common::{central_difference, last_entry_loss};

/// `y' = -p0 y + p1 [t on the right of 1]`: the drift jumps by `p1` at
/// `t = 1`, which belongs to the right piece (`t >= 1`) or the left one
/// (`t > 1`).
#[derive(Clone, Copy)]
struct Switch {
    one_is_right: bool,
}
impl GenericField for Switch {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, y: &[D], p: &[D], dy: &mut [D]) {
        let on = if self.one_is_right {
            t.re() >= 1.0
        } else {
            t.re() > 1.0
        };
        for k in 0..y.len() {
            dy[k] = -p[0] * y[k] + p[1] * if on { 1.0 } else { 0.0 };
        }
    }
}

const P: [f64; 2] = [1.0, 5.0];

fn switch(one_is_right: bool, p: &[f64]) -> Problem<Generic<Switch>> {
    Problem::ode_field(Generic(Switch { one_is_right }), vec![1.0], (0.0, 3.0)).params(p.to_vec())
}

/// `y(3)` from `y(0) = 1`: `a/k + (e^{-k} − a/k) e^{-2k}`.
fn exact(p: &[f64]) -> f64 {
    let (k, a) = (p[0], p[1]);
    a / k + ((-k).exp() - a / k) * (-2.0 * k).exp()
}

/// `dy(3)/dp` and `dy(3)/dy0 = e^{−3k}` of [`exact`].
fn exact_gradient(p: &[f64]) -> ([f64; 2], f64) {
    let (k, a) = (p[0], p[1]);
    let (e2, e3) = ((-2.0 * k).exp(), (-3.0 * k).exp());
    let dp = [
        -a / (k * k) - 3.0 * e3 + a / (k * k) * e2 + 2.0 * a / k * e2,
        (1.0 - e2) / k,
    ];
    (dp, e3)
}

/// With the discontinuity declared, Tsit5 meets the tolerance with
/// (almost) no rejected step, on either convention for `t = 1`; without it
/// the controller locates the jump by trial and error. Landing just before
/// the jump without the restart (`step_to`) does not help: the next step
/// then starts from the first-same-as-last stage of the left piece.
#[test]
fn declared_discontinuities_cost_no_rejections() {
    let tol = 1e-8;
    let base = Options::default().tol(tol);
    let below = 1f64.next_down();
    for one_is_right in [true, false] {
        let p = switch(one_is_right, &P);
        let run = |o: Options| {
            let s = solve(&p, Tsit5, o).expect("solve");
            let e = (s.last()[0] - exact(&P)).abs();
            (s, e)
        };
        let (free, e_free) = run(base.clone());
        let (clip, e_clip) = run(base.clone().step_to(vec![below]));
        let (jump, e_jump) = run(base.clone().discontinuities(vec![1.0]));
        for (name, s, e) in [
            ("free", &free, e_free),
            ("step_to(1⁻)", &clip, e_clip),
            ("discontinuities", &jump, e_jump),
        ] {
            println!(
                "t = 1 on the {}: {name}: {} steps, {} rejected, {} drift evaluations, error \
                 {e:.1e}",
                if one_is_right { "right" } else { "left" },
                s.stats.accepted_steps,
                s.stats.rejected_steps,
                s.stats.drift_evals
            );
        }
        // the steps end just before the jump and start just after it
        let i = jump
            .ts
            .iter()
            .position(|&t| t == below)
            .expect("a step ends at 1⁻");
        assert!(jump.ts[i + 1] > 1.0);
        // the solution meets the tolerance (local errors ≤ tol, damped by
        // the decay) with at most the start-up's rejection
        assert!(e_jump < tol, "error {e_jump:e}");
        assert!(jump.stats.rejected_steps <= 2, "{:?}", jump.stats);
        // without the declaration, each side of the jump costs rejections
        assert!(free.stats.rejected_steps >= 10, "{:?}", free.stats);
        assert!(jump.stats.drift_evals * 3 < free.stats.drift_evals * 2);
        // landing at 1⁻ without restarting: the first step after it uses
        // the left piece's drift as its first stage, and is out by
        // h·b1·p1 until the controller shrinks it
        assert!(clip.stats.rejected_steps >= 10, "{:?}", clip.stats);
        assert!(e_clip > tol, "error without the restart {e_clip:e}");
    }
}

/// `Bdf` restarts as it starts: at order 1 from the first float after each
/// jump, its history (the differences of the left piece's solution, which
/// would extrapolate across the jump) reset from the state and the drift
/// evaluated there. It lands on 1⁻ and 2⁻, meets the tolerance, and costs
/// fewer rejections and drift evaluations than locating the jumps by trial.
#[test]
fn bdf_restarts_at_order_one_after_each_jump() {
    let p = switch(true, &P);
    let tol = 1e-8;
    let o = Options::default().tol(tol);
    let jump = solve(
        &p,
        Bdf::default(),
        o.clone().discontinuities(vec![1.0, 2.0]),
    )
    .expect("jump");
    let free = solve(&p, Bdf::default(), &o).expect("free");
    let e_jump = (jump.last()[0] - exact(&P)).abs();
    let e_free = (free.last()[0] - exact(&P)).abs();
    println!(
        "Bdf: discontinuities {:?}, error {e_jump:.1e}\nfree {:?}, error {e_free:.1e}",
        jump.stats, free.stats
    );
    for tau in [1.0f64, 2.0] {
        let i = jump
            .ts
            .iter()
            .position(|&t| t == tau.next_down())
            .expect("a step ends at τ⁻");
        assert!(jump.ts[i + 1] > tau, "after {tau}: {}", jump.ts[i + 1]);
    }
    // global error: local errors ≤ tol, damped by the decay (rate 1), the
    // same bound as the ESDIRK test's below
    assert!(e_jump < 1e-6, "error {e_jump:e}");
    assert!(jump.stats.rejected_steps < free.stats.rejected_steps);
    assert!(jump.stats.drift_evals < free.stats.drift_evals);
}

/// The restart costs one drift evaluation per discontinuity, and a stiff
/// solver restarts too (its Jacobian re-evaluated after the jump).
#[test]
fn the_restart_is_one_drift_evaluation_and_works_for_stiff_solvers() {
    let p = switch(true, &P);
    let two = Options::default().tol(1e-8).discontinuities(vec![1.0, 2.0]);
    let s = solve(&p, Esdirk34::default(), &two).expect("ESDIRK");
    let free = solve(&p, Esdirk34::default(), Options::default().tol(1e-8)).expect("free");
    println!("ESDIRK: {:?}\nfree: {:?}", s.stats, free.stats);
    assert!(s.stats.rejected_steps < free.stats.rejected_steps);
    assert!((s.last()[0] - exact(&P)).abs() < 1e-6);
    // a problem without a jump at 2: declaring one there costs the same
    // steps as a stop at 2⁻, plus one drift evaluation (the restart)...
    // unless the first-same-as-last stage made the restart free; Tsit5
    // carries one, so the count differs by exactly one
    let smooth = Problem::ode(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
        vec![1.0],
        (0.0, 3.0),
    );
    let o = Options::default().tol(1e-8);
    let a = solve(&smooth, Tsit5, o.clone().discontinuities(vec![2.0])).expect("restart");
    let b = solve(&smooth, Tsit5, o.step_to(vec![2f64.next_down()])).expect("stop");
    assert_eq!(a.stats.accepted_steps, b.stats.accepted_steps);
    assert_eq!(a.stats.drift_evals, b.stats.drift_evals + 1);
}

/// A reversed span stops at the first float above the time and restarts
/// at the one below it.
#[test]
fn reversed_spans_restart_below_the_time() {
    let y3 = exact(&P);
    let back = Problem::ode_field(Generic(Switch { one_is_right: true }), vec![y3], (3.0, 0.0))
        .params(P.to_vec());
    let sol = solve(
        &back,
        Tsit5,
        Options::default().tol(1e-10).discontinuities(vec![1.0]),
    )
    .expect("backwards");
    let above = 1f64.next_up();
    let i = sol
        .ts
        .iter()
        .position(|&t| t == above)
        .expect("a step ends at 1⁺");
    assert!(sol.ts[i + 1] < 1.0);
    // backwards the decay grows errors by up to e^3 ≈ 20
    assert!((sol.last()[0] - 1.0).abs() < 1e-8, "{}", sol.last()[0]);
    assert!(sol.stats.rejected_steps <= 2, "{:?}", sol.stats);
}

/// The discrete gradient of `last_entry_loss` through the jumps of
/// `switch(true, P)` by `solver` with 3 checkpoints, checked against the one
/// that stores every step (their replays restart where the forward solve
/// did: equal to 1e-12), on a solve of more than `min_steps` steps.
fn checkpointed_gradient<S>(solver: S, opts: &Options, min_steps: usize) -> Gradient
where
    S: Differentiable<Generic<Switch>, NoDiffusion, VirtualTree> + Copy,
{
    let p = switch(true, &P);
    let all = grad(&p, solver, opts, &last_entry_loss, Adjoint::STORE_ALL).expect("all");
    let few = Adjoint::Discrete { checkpoints: 3 };
    let few = grad(&p, solver, opts, &last_entry_loss, few).expect("checkpointed");
    assert!(all.solution.stats.accepted_steps > min_steps);
    common::assert_gradients_agree(&all, &few, 1e-12, 0.0);
    few
}

/// The discrete adjoint through the jump: checkpointed replays restart
/// where the forward solve did (equal to storing every step), and the
/// gradient agrees with central differences of `solve` and with the exact
/// one.
#[test]
fn gradients_through_a_discontinuity() {
    let opts = Options::default()
        .tol(1e-10)
        .save_at(SaveAt::T1)
        .discontinuities(vec![1.0]);
    let few = checkpointed_gradient(Tsit5, &opts, 20);
    let (exact_dp, e3) = exact_gradient(&P);
    let at = |q: &[f64]| solve(&switch(true, q), Tsit5, &opts).expect("solve").last()[0];
    let fd: Vec<f64> = (0..2)
        .map(|j| central_difference(at, &P, j, 1e-5))
        .collect();
    // FD of tolerance-1e-10 solves: noise ~1e-10/1e-5
    common::assert_close("dp vs FD", &few.dp, &fd, 1e-6);
    common::assert_close("dp vs exact", &few.dp, &exact_dp, 1e-7);
    assert!((few.dy0[0] - e3).abs() < 1e-8, "{} vs {e3}", few.dy0[0]);
    // the continuous adjoints integrate the adjoint system, which jumps
    // where the drift does, backwards from saved time to saved time, each
    // piece with the step times and discontinuities inside it (declaring
    // more discontinuities than there are is harmless)
    let opts = Options::default()
        .tol(1e-10)
        .save_at(SaveAt::Times(vec![2.5, 3.0]))
        .step_to(vec![0.25, 2.75])
        .discontinuities(vec![0.5, 1.0, 2.0]);
    let p = switch(true, &P);
    for adjoint in [Adjoint::Backsolve, Adjoint::Interpolating] {
        let g = grad(&p, Tsit5, &opts, &last_entry_loss, adjoint).expect("continuous");
        common::assert_close(&format!("{adjoint:?}"), &g.dp, &exact_dp, 1e-6);
    }
}

/// `Bdf` through the jump: its discrete adjoint carries the history's
/// cotangent back to each restart and through the restart's start (the
/// history made from `f(τ⁺, y)`) into `y`, so checkpointed replays agree
/// with storing every step, and both adjoints agree with the exact
/// gradient.
#[test]
fn bdf_gradients_through_a_discontinuity() {
    let opts = Options::default()
        .tol(1e-10)
        .save_at(SaveAt::T1)
        .discontinuities(vec![1.0, 2.0]);
    let few = checkpointed_gradient(Bdf::default(), &opts, 50);
    let p = switch(true, &P);
    let (exact_dp, e3) = exact_gradient(&P);
    let interp = grad(
        &p,
        Bdf::default(),
        &opts,
        &last_entry_loss,
        Adjoint::Interpolating,
    )
    .expect("interpolating");
    println!(
        "Bdf through the jumps: discrete {:?} / {:?}, interpolating {:?}, exact {exact_dp:?}, \
         {e3}",
        few.dp, few.dy0, interp.dp
    );
    // solves at tol 1e-10: the gradients of the discrete map and of the
    // adjoint system are within 4e-9 relative of the exact one (measured);
    // without the restarts' start VJP (the history's cotangent at τ⁺ lost)
    // the discrete one is off by 1e-6 in dp and 6e-6 in dy0 (measured),
    // which these bounds see
    common::assert_close("Bdf discrete dp vs exact", &few.dp, &exact_dp, 1e-7);
    common::assert_close("Bdf interpolating dp vs exact", &interp.dp, &exact_dp, 1e-7);
    assert!((few.dy0[0] - e3).abs() < 1e-8, "{} vs {e3}", few.dy0[0]);
}

/// An SDE whose drift jumps: the restart re-evaluates the diffusion too,
/// and the checkpointed SDE adjoint replays it (rejections, restarts and
/// the Brownian path) exactly.
#[test]
fn sde_gradients_through_a_discontinuity() {
    let half = |p: &[f64]| {
        let mut q = common::diagonal_sde(
            Switch { one_is_right: true },
            common::Proportional,
            p,
            &[1.0, 0.5],
        );
        q.tspan = (0.0, 2.0);
        q
    };
    let p = [1.0, 2.0, 0.3];
    let opts = Options::default()
        .tol(1e-4)
        .seed(9)
        .discontinuities(vec![1.0]);
    let q = half(&p);
    let sol = solve(&q, Sriw1, &opts).expect("solve");
    let i = sol
        .ts
        .iter()
        .position(|&t| t == 1f64.next_down())
        .expect("a step ends at 1⁻");
    assert!(sol.ts[i + 1] > 1.0);
    assert!(sol.stats.rejected_steps > 0, "no rejection replayed");
    let opts = opts.save_at(SaveAt::T1);
    let g = |adjoint| grad(&q, Sriw1, &opts, &common::sum_loss, adjoint).expect("grad");
    let all = g(Adjoint::STORE_ALL);
    let few = g(Adjoint::Discrete { checkpoints: 3 });
    assert_eq!(all.loss, few.loss);
    common::assert_gradients_agree(&all, &few, 1e-12, 1e-3);
    // (central differences of adaptive SDE solves are no reference: a
    // perturbation of 1e-6 in p changes which steps are rejected, which
    // moves the loss by more than the gradient does)
}

/// Bad times, fixed steps and solvers that cannot restart are typed
/// errors.
#[test]
fn bad_discontinuities_are_typed_errors() {
    let p = switch(true, &P);
    for (why, opts) in [
        ("outside", Options::default().discontinuities(vec![3.5])),
        ("at t0", Options::default().discontinuities(vec![0.0])),
        ("at t1", Options::default().discontinuities(vec![3.0])),
        (
            "not increasing",
            Options::default().discontinuities(vec![2.0, 1.0]),
        ),
        ("NaN", Options::default().discontinuities(vec![f64::NAN])),
    ] {
        match solve(&p, Tsit5, &opts) {
            Err(SolveError::InvalidInput { what, .. }) => {
                assert!(what.starts_with("discontinuities["), "{why}: {what}")
            }
            other => panic!("{why}: expected InvalidInput, got {other:?}"),
        }
    }
    // fixed steps cannot restart: the constant controller, or a solver
    // without an error estimate
    let fixed = Options::default()
        .fixed_step(0.1)
        .discontinuities(vec![1.0]);
    let euler = Options::default().dt0(0.1).discontinuities(vec![1.0]);
    for (why, r) in [
        ("constant", solve(&p, Tsit5, &fixed)),
        ("Euler", solve(&p, Euler, &euler)),
    ] {
        match r {
            Err(SolveError::InvalidInput { what, reason }) => {
                assert_eq!(what, "discontinuities", "{why}");
                assert!(reason.contains("adaptive"), "{why}: {reason}");
            }
            other => panic!("{why}: expected InvalidInput, got {other:?}"),
        }
    }
    // reversible Heun carries ŷ across steps; DiffsolBdf runs in diffsol's
    // engine, which has no restart
    let sde = common::gbm(1.0, 0.5);
    let o = Options::default().discontinuities(vec![0.5]);
    assert!(matches!(
        solve(&sde, ReversibleHeun, &o),
        Err(SolveError::Unsupported { .. })
    ));
    assert!(matches!(
        solve(
            &p,
            DiffsolBdf::default(),
            Options::default().discontinuities(vec![1.0])
        ),
        Err(SolveError::Unsupported { .. })
    ));
}
