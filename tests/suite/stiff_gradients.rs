//! Gradients through the stiff solvers against central finite differences
//! of tight-tolerance solves, on Robertson (the rate constants k1..k3, loss
//! on y(T) at T = 1e2 and 1e5) and HIRES (four rate constants, loss on
//! y(321.8122)): the native `Esdirk34` and `TrBdf2` by the discrete adjoint
//! (each implicit step reversed by the implicit-function theorem, one
//! transposed linear solve per implicit stage), and `Bdf` by the discrete
//! adjoint (its history as carried state, each step reversed by the
//! implicit-function theorem) and by the interpolating adjoint with a stiff
//! backward solve (native `Esdirk34` on the adjoint system); backsolve and
//! the SDE adjoints are refused before any work (a test).
//!
//! Tolerances. The gradient solves run at rtol = 1e-10, atol = 1e-14
//! (Robertson) and rtol = 1e-12, atol = 1e-14 (HIRES); the finite
//! differences difference two solves at rtol = 1e-12 (atol 1e-16 / 1e-14)
//! with a relative parameter step of 1e-4 (Robertson: truncation ~1e-8,
//! solve error / step ~1e-8) and 1e-6 (HIRES, whose loss is strongly
//! nonlinear in the first rate: a step of 1e-4 is off by 2e-3, 1e-5 by
//! 2e-5; solve error / step ~1e-6), below the 1e-5 the test asserts. HIRES
//! is also checked against an independent method, the explicit Vern7's
//! discrete adjoint (to 1e-6). The stiff solvers' Newton tolerances are set to the
//! solve's (a looser Newton iteration would put its error into the solution
//! the FD differences).
//!
//! `Bdf`'s gradient solves run at the same tolerances as the native ones'
//! (rtol = 1e-10, atol = 1e-14 on Robertson; rtol = 1e-12, atol = 1e-14 on
//! HIRES), which govern its forward and backward solves; the finite
//! differences are the same (`Esdirk34` solves at rtol 1e-12, independent of
//! the adjoint). Measured: Robertson within 2.5e-8 (discrete) and 2.0e-8
//! (interpolating), HIRES within 2.3e-7 (both; the FD's own error); at
//! rtol 1e-6 the interpolating Robertson error is 2.6e-5 (T = 1e2), so the
//! 1e-5 assertion discriminates. That the discrete one is the gradient of
//! `Bdf`'s own steps is checked on a fixed grid against FD of those steps.

use crate::common;
use common::{
    HIRES_P, HiresP, ROBER_P, RobertsonP, central_difference, hires, loss_of_solve, robertson,
};
use sdeflow::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

use sdeflow::adjoint::GradError;
use sdeflow::stiff::NewtonOptions;

/// `L = Σ w_i y_i(T)`.
fn weighted(w: &'static [f64]) -> impl Fn(&[f64], &[f64], &mut [f64]) -> f64 {
    move |_ts: &[f64], ys: &[f64], g: &mut [f64]| {
        g.copy_from_slice(w);
        ys.iter().zip(w).map(|(y, w)| y * w).sum()
    }
}

/// A gradient check: the problem at parameters `p`, the loss weights `w`,
/// the relative finite-difference step, the options of the differentiated
/// solves and of the tight reference solves (both saving at `T1`), and the
/// tight reference solver.
struct Case<P> {
    /// Names the problem in the messages.
    name: String,
    problem: P,
    p: &'static [f64],
    w: &'static [f64],
    fd_step: f64,
    opts: Options,
    tight_opts: Options,
    tight: Esdirk34,
}

impl<F: GenericField, P: Fn(&[f64]) -> Problem<Generic<F>>> Case<P> {
    /// Relative error of `grad`'s dL/dp by `solver` (labelled `solver_name`)
    /// and `adjoint` against central FD of tight solves.
    fn check<S>(&self, solver_name: &str, solver: S, adjoint: Adjoint) -> f64
    where
        S: Differentiable<Generic<F>, NoDiffusion, VirtualTree> + Copy,
    {
        let label = format!("{} {solver_name}", self.name);
        let (problem, p) = (&self.problem, self.p);
        let loss = weighted(self.w);
        let g = grad(&problem(p), solver, &self.opts, &loss, adjoint)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let fwd = solve(&problem(p), solver, &self.opts).expect("forward");
        let l_at = |q: &[f64]| loss_of_solve(&problem(q), self.tight, &self.tight_opts, &loss);
        let mut worst = 0.0f64;
        for j in 0..p.len() {
            let fd = central_difference(l_at, p, j, self.fd_step * p[j]);
            let rel = (g.dp[j] - fd).abs() / fd.abs();
            println!(
                "{label}: dL/dp[{j}] adjoint {:.10e} FD {fd:.10e} rel {rel:.1e}",
                g.dp[j]
            );
            worst = worst.max(rel);
        }
        println!(
            "{label}: {} steps, forward {} drift evals; backward {} drift evals, {} VJPs",
            fwd.stats.accepted_steps, fwd.stats.drift_evals, g.backward_drift_evals, g.vjps
        );
        worst
    }
}

/// Robertson on [0, t1], loss `y1 + 1e4 y2 + 0.5 y3`, differentiated at
/// rtol 1e-10, atol 1e-14 against Esdirk34 at rtol 1e-12, atol 1e-16.
fn robertson_case(t1: f64) -> Case<impl Fn(&[f64]) -> Problem<Generic<RobertsonP>>> {
    let tolerances = |rtol, atol| {
        Options::default()
            .rtol(rtol)
            .atol(atol)
            .max_steps(1_000_000)
            .save_at(SaveAt::T1)
    };
    Case {
        name: format!("Robertson T={t1:e}"),
        problem: move |p: &[f64]| robertson(p, t1),
        p: &ROBER_P,
        w: &[1.0, 1e4, 0.5],
        fd_step: 1e-4,
        opts: tolerances(1e-10, 1e-14),
        tight_opts: tolerances(1e-12, 1e-16),
        tight: Esdirk34::default().newton(newton(1e-14, 1e-18)),
    }
}

/// HIRES, loss `Σ y_i`, differentiated at rtol 1e-12, atol 1e-14 against
/// Esdirk34 at the same tolerances with a tighter Newton iteration.
fn hires_case() -> Case<impl Fn(&[f64]) -> Problem<Generic<HiresP>>> {
    let opts = Options::default()
        .rtol(1e-12)
        .atol(1e-14)
        .max_steps(1_000_000)
        .save_at(SaveAt::T1);
    Case {
        name: "HIRES".into(),
        problem: hires,
        p: &HIRES_P,
        w: &[1.0; 8],
        fd_step: 1e-6,
        opts: opts.clone(),
        tight_opts: opts,
        tight: Esdirk34::default().newton(newton(1e-14, 1e-16)),
    }
}

const DISCRETE: Adjoint = Adjoint::Discrete { checkpoints: 64 };

fn newton(rtol: f64, atol: f64) -> NewtonOptions {
    NewtonOptions::default().tolerances(rtol, atol)
}

#[test]
fn robertson_gradients_through_esdirk34_and_trbdf2_match_finite_differences() {
    for t1 in [1e2, 1e5] {
        let case = robertson_case(t1);
        let solver = Esdirk34::default().newton(newton(1e-12, 1e-16));
        let e = case.check("Esdirk34", solver, DISCRETE);
        assert!(
            e < 1e-5,
            "Robertson T={t1:e} Esdirk34: relative error {e:e}"
        );
        let solver = TrBdf2::default().newton(newton(1e-12, 1e-16));
        let e = case.check("TrBdf2", solver, DISCRETE);
        assert!(e < 1e-5, "Robertson T={t1:e} TrBdf2: relative error {e:e}");
    }
}

#[test]
fn hires_gradients_through_esdirk34_match_finite_differences() {
    let solver = Esdirk34::default().newton(newton(1e-12, 1e-14));
    let e = hires_case().check("Esdirk34", solver, DISCRETE);
    assert!(e < 1e-5, "HIRES Esdirk34: relative error {e:e}");
    // an independent method: the explicit Vern7's discrete adjoint on the
    // same problem (non-stiff enough for it at this tolerance)
    fn discrete<S: Differentiable<Generic<HiresP>, NoDiffusion, VirtualTree>>(
        name: &str,
        solver: S,
    ) -> Gradient {
        let opts = Options::default()
            .rtol(1e-11)
            .atol(1e-13)
            .max_steps(10_000_000)
            .save_at(SaveAt::T1);
        let loss = weighted(&[1.0; 8]);
        let adjoint = Adjoint::Discrete { checkpoints: 64 };
        grad(&hires(&HIRES_P), solver, &opts, &loss, adjoint).expect(name)
    }
    let (stiff, explicit) = (discrete("Esdirk34", solver), discrete("Vern7", Vern7));
    for (a, b) in stiff.dp.iter().zip(&explicit.dp) {
        assert!((a - b).abs() <= 1e-6 * b.abs(), "Esdirk34 {a} vs Vern7 {b}");
    }
}

/// The discrete adjoint of a stiff solver refuses losses on interpolated
/// values before any work.
#[test]
fn stiff_discrete_adjoint_wants_step_ends() {
    fn refused<S: Differentiable<Generic<RobertsonP>, NoDiffusion, VirtualTree>>(solver: S) {
        let e = grad(
            &robertson(&ROBER_P, 1.0),
            solver,
            Options::default().save_at(SaveAt::Times(vec![0.5])),
            &weighted(&[1.0, 1.0, 1.0]),
            Adjoint::Discrete { checkpoints: 8 },
        )
        .expect_err("interpolated values");
        assert!(e.to_string().contains("SaveAt::Steps"), "{e}");
    }
    refused(Esdirk34::default());
    refused(Bdf::default());
}

/// ... and takes a loss on `SaveAt::Times` whose times are step ends
/// (`Options::step_to`): on Robertson to t = 100 at rtol 1e-6, the
/// gradient equals (to 1e-12) that of the same loss read off
/// `SaveAt::Steps` of the same steps, for each stiff solver, stored and
/// checkpointed.
#[test]
fn stiff_discrete_adjoint_takes_save_times_that_are_step_ends() {
    let obs = [1e-3, 0.1, 10.0, 100.0];
    let opts = Options::default()
        .rtol(1e-6)
        .atol(1e-10)
        .step_to(obs[..3].to_vec());
    fn check<S>(name: &str, solver: S, opts: &Options, obs: &[f64])
    where
        S: Differentiable<Generic<RobertsonP>, NoDiffusion, VirtualTree> + Copy,
    {
        let prob = robertson(&ROBER_P, 100.0);
        let at_times = opts.clone().save_at(SaveAt::Times(obs.to_vec()));
        let stepped = opts.clone().save_at(SaveAt::Steps);
        let of = |o: &Options, loss: &dyn sdeflow::adjoint::Loss, a| {
            grad(&prob, solver, o, loss, a).unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let times = of(&at_times, &common::sum_of_squares, DISCRETE);
        let steps = of(&stepped, &common::sum_of_squares_at(obs), DISCRETE);
        assert!(steps.solution.ts.len() > 10, "{name}");
        assert_eq!(times.loss, steps.loss, "{name}");
        common::assert_gradients_agree(&times, &steps, 1e-12, 1.0);
        let few = Adjoint::Discrete { checkpoints: 3 };
        let checkpointed = of(&at_times, &common::sum_of_squares, few);
        common::assert_gradients_agree(&checkpointed, &times, 1e-12, 1.0);
    }
    check("Esdirk34", Esdirk34::default(), &opts, &obs);
    check("TrBdf2", TrBdf2::default(), &opts, &obs);
    check("Bdf", Bdf::default(), &opts, &obs);
}

/// `Bdf`'s two adjoints: the discrete one (its history carried, each step
/// reversed by the implicit-function theorem) and the interpolating one.
const BDF_ADJOINTS: [(&str, Adjoint); 2] = [
    ("Bdf discrete", DISCRETE),
    ("Bdf interpolating", Adjoint::Interpolating),
];

#[test]
fn robertson_gradients_through_bdf_match_finite_differences() {
    for t1 in [1e2, 1e5] {
        for (name, adjoint) in BDF_ADJOINTS {
            let e = robertson_case(t1).check(name, Bdf::default(), adjoint);
            assert!(e < 1e-5, "Robertson T={t1:e} {name}: relative error {e:e}");
        }
    }
}

#[test]
fn hires_gradients_through_bdf_match_finite_differences() {
    for (name, adjoint) in BDF_ADJOINTS {
        let e = hires_case().check(name, Bdf::default(), adjoint);
        assert!(e < 1e-5, "HIRES {name}: relative error {e:e}");
    }
}

/// The discrete adjoint through `Bdf` is the exact gradient of its
/// discrete map: on a fixed, strongly non-uniform grid (every step a new
/// spacing, so each step rescales the history, and the order rising as
/// the estimates allow), a loss on every step's state agrees with central
/// differences of the same solves. Robertson to t = 10 over 80 steps
/// growing geometrically from 1e-5; rtol 1e-13, atol 1e-18 (the Newton
/// iteration's norm: the map differentiated is that of the converged
/// equations); FD step 1e-6 relative (truncation ~1e-12 relative, solve
/// noise ~1e-13/1e-6). Asserted to 1e-6 relative (measured 4e-8).
#[test]
fn bdf_discrete_adjoint_is_the_gradient_of_its_steps() {
    let t1 = 10.0;
    let steps = 80;
    let ratio = (t1 / 1e-5f64).powf(1.0 / (steps - 1) as f64);
    // the interior times (the grid is t0, these, t1)
    let grid: Vec<f64> = (0..steps - 1).map(|i| 1e-5 * ratio.powi(i)).collect();
    let opts = Options::default()
        .rtol(1e-13)
        .atol(1e-18)
        .grid(grid)
        .save_at(SaveAt::Steps);
    let w = [1.0, 1e4, 0.5];
    let loss = move |_ts: &[f64], ys: &[f64], g: &mut [f64]| {
        let mut v = 0.0;
        for (i, (y, g)) in ys.iter().zip(g.iter_mut()).enumerate() {
            *g = w[i % 3];
            v += w[i % 3] * y;
        }
        v
    };
    let p = robertson(&ROBER_P, t1);
    let g = grad(&p, Bdf::default(), &opts, &loss, DISCRETE).expect("discrete");
    let l_at = |q: &[f64]| loss_of_solve(&robertson(q, t1), Bdf::default(), &opts, &loss);
    let mut worst: f64 = 0.0;
    for j in 0..3 {
        let fd = central_difference(l_at, &ROBER_P, j, 1e-6 * ROBER_P[j]);
        let rel = (g.dp[j] - fd).abs() / fd.abs();
        println!(
            "Bdf grid: dL/dp[{j}] discrete {:.10e} FD {fd:.10e} rel {rel:.1e}",
            g.dp[j]
        );
        worst = worst.max(rel);
    }
    assert!(worst < 1e-6, "Bdf discrete vs FD of its map: {worst:e}");
    // the interpolating adjoint differentiates the ODE, not these steps:
    // on this coarse grid it is off the map's gradient by the
    // discretisation error (measured 1.5e-3 in dL/dk1), which the check
    // above would see
    let interp = grad(&p, Bdf::default(), &opts, &loss, Adjoint::Interpolating).expect("interp");
    let off = (interp.dp[0] - g.dp[0]).abs() / g.dp[0].abs();
    println!(
        "Bdf grid: interpolating {:?}, {off:.1e} off in dL/dk1",
        interp.dp
    );
    assert!(off > 1e-4, "{off:e}");
    // the initial state too: dL/dy0 against central FD in y0
    for k in 0..3 {
        let at = |d: f64| {
            let mut q = robertson(&ROBER_P, t1);
            q.y0[k] += d;
            loss_of_solve(&q, Bdf::default(), &opts, &loss)
        };
        // y2 lives at ~1e-5 and enters quadratically (3e7 y2²): a step of
        // 1e-6 there is off by ~4e-6 relative, 1e-9 by far less
        let d = if k == 1 { 1e-9 } else { 1e-6 };
        let fd = (at(d) - at(-d)) / (2.0 * d);
        println!(
            "Bdf grid: dL/dy0[{k}] discrete {:.10e} FD {fd:.10e}",
            g.dy0[k]
        );
        assert!(
            (g.dy0[k] - fd).abs() <= 1e-6 * fd.abs().max(1.0),
            "dy0[{k}]: {} vs {fd}",
            g.dy0[k]
        );
    }
}

/// Robertson counting its drift evaluations (VJPs and Jacobians included:
/// every one evaluates the field).
#[derive(Clone, Copy)]
struct CountedRobertson<'a>(&'a AtomicUsize);
impl GenericField for CountedRobertson<'_> {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, y: &[D], p: &[D], dy: &mut [D]) {
        self.0.fetch_add(1, Ordering::Relaxed);
        RobertsonP.eval(t, y, p, dy);
    }
}

/// `Bdf` takes the discrete and the interpolating adjoints; backsolve and
/// the SDE adjoints are refused with a typed error naming what to use,
/// before any evaluation of the field.
#[test]
fn bdf_refuses_other_adjoints_before_any_work() {
    let evals = AtomicUsize::new(0);
    let p = Problem::ode_field(
        Generic(CountedRobertson(&evals)),
        vec![1.0, 0.0, 0.0],
        (0.0, 1.0),
    )
    .params(ROBER_P.to_vec());
    let loss = weighted(&[1.0, 1e4, 0.5]);
    let opts = Options::default().save_at(SaveAt::T1);
    for adjoint in [Adjoint::Backsolve, Adjoint::Reversible, Adjoint::Stochastic] {
        let e = grad(&p, Bdf::default(), &opts, &loss, adjoint).expect_err("refused");
        assert!(matches!(e, GradError::Unsupported(_)), "{adjoint:?}: {e}");
        assert!(
            e.to_string().contains("Adjoint::Discrete"),
            "{adjoint:?}: {e}"
        );
        println!("{adjoint:?}: {e}");
    }
    assert_eq!(evals.load(Ordering::Relaxed), 0, "work before the refusal");
    // and the ones it takes run, to the same gradient (default tolerances:
    // both within ~1e-3 of the exact one, so within 1e-2 of each other)
    let d = grad(&p, Bdf::default(), &opts, &loss, DISCRETE).expect("discrete");
    let i = grad(&p, Bdf::default(), &opts, &loss, Adjoint::Interpolating).expect("interpolating");
    assert!(evals.load(Ordering::Relaxed) > 0);
    println!(
        "default tolerances: discrete {:?}, interpolating {:?}",
        d.dp, i.dp
    );
    for (a, b) in d.dp.iter().zip(&i.dp) {
        assert!((a - b).abs() <= 1e-2 * b.abs(), "{a} vs {b}");
    }
}
