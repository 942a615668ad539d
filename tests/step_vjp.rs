//! The step-VJP protocol checked against finite differences of the method's
//! own step: for every ODE solver with a step VJP (explicit Runge–Kutta and
//! the native implicit ESDIRK methods), random states, step
//! sizes and cotangents of the new state and of the error estimate, the
//! VJP's `(ȳ, p̄)` equals central differences of
//! `ȳ_new · y_new(y, p) + ē · err(y, p)` over one step.

use proptest::prelude::*;
use sdeflow::prelude::*;
use sdeflow::solver::{Fields, StepAt, StepNoise, StepOut, StepStatus};
use sdeflow::step_vjp::{OdeStepVjp, StepBars};
use sdeflow::stiff::Esdirk;

/// A nonlinear two-state drift with three parameters, exact VJPs by duals.
#[derive(Clone, Copy)]
struct Nonlinear;
impl GenericField for Nonlinear {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = p[0] * y[1] - y[0] * y[0] * y[1] + t.sin() * p[2];
        dy[1] = -p[1] * y[0] + (y[0] * p[2]).tanh() - y[1] * y[1] * D::from(0.1);
    }
}

fn problem(y0: &[f64], p: &[f64]) -> Problem<Generic<Nonlinear>> {
    Problem::ode(Generic(Nonlinear), y0.to_vec(), (0.0, 1.0)).params(p.to_vec())
}

/// `(y_new, err)` of one step of `solver` from `(t, y)` of size `h`.
fn one_step<S: Solver<Problem<Generic<Nonlinear>>>>(
    solver: &S,
    t: f64,
    h: f64,
    y: &[f64],
    p: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let prob = problem(y, p);
    let fields = Fields::new(&prob);
    let mut cache = solver.init(&prob);
    let mut stats = Stats::default();
    let mut f0 = vec![0.0; 2];
    fields.f(t, y, &mut f0, &mut stats);
    solver.start(&mut cache, &f0, &[]);
    let (mut y_new, mut err) = (vec![0.0; 2], vec![0.0; 2]);
    let status = solver.step(
        &mut cache,
        &fields,
        StepAt { t, h, y },
        &StepNoise::NONE,
        StepOut {
            y_new: &mut y_new,
            err: &mut err,
        },
        &mut stats,
    );
    assert_eq!(status, StepStatus::Taken);
    (y_new, err)
}

/// `(y_new, err)` of one step of the implicit method with its stages
/// converged to round-off (`Esdirk::converged_step`: the map its VJP
/// differentiates; the loop's step stops Newton at its tolerance).
fn converged_step(solver: &Esdirk, t: f64, h: f64, y: &[f64], p: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let prob = problem(y, p);
    let mut c = solver.vjp_cache(2, 3);
    let (mut y_new, mut err) = (vec![0.0; 2], vec![0.0; 2]);
    solver
        .converged_step(
            &mut c,
            &prob.drift,
            p,
            StepAt { t, h, y },
            StepOut {
                y_new: &mut y_new,
                err: &mut err,
            },
            &mut Stats::default(),
        )
        .expect("converged step");
    (y_new, err)
}

/// The largest relative difference between the VJP and central FD.
fn check<S: Solver<Problem<Generic<Nonlinear>>> + OdeStepVjp>(
    solver: S,
    step: impl Fn(&S, f64, f64, &[f64], &[f64]) -> (Vec<f64>, Vec<f64>),
    t: f64,
    h: f64,
    y: &[f64],
    p: &[f64],
    yb: &[f64],
    eb: &[f64],
) -> f64 {
    let prob = problem(y, p);
    let mut cache = solver.vjp_cache(&prob.drift, 2, 3);
    let (mut y_bar, mut p_bar) = (yb.to_vec(), vec![0.0; 3]);
    let mut stats = Stats::default();
    solver
        .step_vjp(
            &mut cache,
            &prob.drift,
            p,
            StepAt { t, h, y },
            StepBars {
                y: &mut y_bar,
                err: Some(eb),
                interp: &[],
                p: &mut p_bar,
            },
            &mut stats,
        )
        .expect("step VJP");
    let l = |y: &[f64], p: &[f64]| {
        let (yn, e) = step(&solver, t, h, y, p);
        (0..2).map(|k| yb[k] * yn[k] + eb[k] * e[k]).sum::<f64>()
    };
    let mut worst = 0.0f64;
    let eps = 1e-6;
    for j in 0..5 {
        let (mut yp, mut ym, mut pp, mut pm) = (y.to_vec(), y.to_vec(), p.to_vec(), p.to_vec());
        if j < 2 {
            yp[j] += eps;
            ym[j] -= eps;
        } else {
            pp[j - 2] += eps;
            pm[j - 2] -= eps;
        }
        let fd = (l(&yp, &pp) - l(&ym, &pm)) / (2.0 * eps);
        let adj = if j < 2 { y_bar[j] } else { p_bar[j - 2] };
        worst = worst.max((adj - fd).abs() / fd.abs().max(1.0));
    }
    worst
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Central differences with step 1e-6 leave round-off of about
    /// ε·Σ|coefficients|·|cotangents|/1e-6 — up to ~5e-7 for Vern7, whose
    /// stage coefficients reach ~1e2, with error cotangents up to 50 — and
    /// ~1e-9 of truncation: 1e-6 relative is a bound that a missing or
    /// wrong term (e.g. dropping the error cotangent) fails by orders of
    /// magnitude.
    #[test]
    fn erk_step_vjp_matches_finite_differences(
        y in proptest::collection::vec(-1.5f64..1.5, 2),
        p in proptest::collection::vec(0.2f64..2.0, 3),
        yb in proptest::collection::vec(-1.0f64..1.0, 2),
        eb in proptest::collection::vec(-50.0f64..50.0, 2),
        t in 0.0f64..2.0,
        h in 0.01f64..0.3,
    ) {
        for (name, err) in [
            ("Euler", check(Euler, one_step, t, h, &y, &p, &yb, &eb)),
            ("Heun", check(Heun, one_step, t, h, &y, &p, &yb, &eb)),
            ("Bs3", check(Bs3, one_step, t, h, &y, &p, &yb, &eb)),
            ("Dopri5", check(Dopri5, one_step, t, h, &y, &p, &yb, &eb)),
            ("Tsit5", check(Tsit5, one_step, t, h, &y, &p, &yb, &eb)),
            ("Vern7", check(Vern7, one_step, t, h, &y, &p, &yb, &eb)),
        ] {
            prop_assert!(err < 1e-6, "{name}: VJP vs FD relative error {err:e}");
        }
        // the implicit methods, on their step with the stages converged to
        // round-off (the VJP is that of the converged step); their error
        // estimate is filtered by (I − hγJ(y))⁻¹, a matrix the VJP holds
        // constant, so the err cotangent is checked in tests/stiff.rs with
        // the filter off, and is zero here
        let zero = [0.0; 2];
        // steps short enough for Newton to converge from the predictor on
        // this nonlinear drift (at h ≈ 0.25 a stage equation can have no
        // solution Newton reaches; the step and its VJP then both fail)
        let h = 0.2 * h;
        let implicit = |s: &Esdirk, t: f64, h: f64, y: &[f64], p: &[f64]| converged_step(s, t, h, y, p);
        for (name, err) in [
            ("Esdirk34", check(Esdirk34::default().esdirk(), implicit, t, h, &y, &p, &yb, &zero)),
            ("TrBdf2", check(TrBdf2::default().esdirk(), implicit, t, h, &y, &p, &yb, &zero)),
        ] {
            prop_assert!(err < 1e-6, "{name}: VJP vs FD relative error {err:e}");
        }
    }
}
