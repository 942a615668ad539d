//! Extending sdeflow with a method of one's own: explicit RK tableaus built
//! at run time (parsed from text here, as if read from a file) — no
//! `'static` data, no leak — solved with fixed and adaptive steps, saved
//! every way (`SaveAt::T1/Steps/Times/Dense`, through the Hermite interpolant
//! a run-time tableau gets when it brings none), differentiated with `grad`
//! (discrete adjoint) and checked against central finite differences of
//! `solve`; malformed tableaus are typed errors.

use crate::common;
use common::{fitted_slope, max_abs_diff};
use sdeflow::ode::ExplicitRk;
use sdeflow::ode::tableau::{OwnedTableau, TSIT5, Tableau, TableauBuilder};
use sdeflow::prelude::*;

/// Kutta's 3/8 rule (1901), four stages, order 4, no embedded method.
const KUTTA_38: &str = "
    0   |
    1/3 | 1/3
    2/3 | -1/3 1
    1   | 1 -1 1
    ----+-------------------
        | 1/8 3/8 3/8 1/8
";

/// Classical RK4 made FSAL by a fifth stage `f(t + h, y_{n+1})`, with the
/// embedded third-order weights `b̂ = (1/6, 1/3, 1/3, 0, 1/6)` that use it:
/// an adaptive 4(3) pair at four drift evaluations per step.
const RK4_FSAL_43: &str = "
    0   |
    1/2 | 1/2
    1/2 | 0 1/2
    1   | 0 0 1
    1   | 1/6 1/3 1/3 1/6
    ----+-------------------
        | 1/6 1/3 1/3 1/6 0
        | 1/6 1/3 1/3 0 1/6
";

fn number(s: &str) -> Result<f64, String> {
    match s.split_once('/') {
        Some((p, q)) => {
            let p: f64 = p.parse().map_err(|e| format!("{s}: {e}"))?;
            let q: f64 = q.parse().map_err(|e| format!("{s}: {e}"))?;
            Ok(p / q)
        }
        None => s.parse().map_err(|e| format!("{s}: {e}")),
    }
}

fn numbers(s: &str) -> Result<Vec<f64>, String> {
    s.split_whitespace().map(number).collect()
}

/// A tableau as read from text, before any check of its numbers.
#[derive(Clone)]
struct Parsed {
    c: Vec<f64>,
    a: Vec<Vec<f64>>,
    b: Vec<f64>,
    b_hat: Option<Vec<f64>>,
}

/// Parses a Butcher tableau written as text: stage rows `c | a_i1 ...`, a
/// separator line starting with `-`, then `| b` and optionally `| b̂`.
/// Only the text is checked here; the numbers are `TableauBuilder::build`'s
/// business.
fn parse(text: &str) -> Result<Parsed, String> {
    let (mut c, mut a, mut weights) = (Vec::new(), Vec::new(), Vec::new());
    let mut below = false;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with('-') {
            below = true;
            continue;
        }
        let (left, right) = line
            .split_once('|')
            .ok_or_else(|| format!("no '|' in {line:?}"))?;
        if below {
            weights.push(numbers(right)?);
        } else {
            c.push(number(left.trim())?);
            a.push(numbers(right)?);
        }
    }
    let mut weights = weights.into_iter();
    let b = weights.next().ok_or("no weights")?;
    Ok(Parsed {
        c,
        a,
        b,
        b_hat: weights.next(),
    })
}

fn builder(name: &'static str, text: &str, order: u32) -> TableauBuilder {
    let t = parse(text).expect("tableau text");
    OwnedTableau::builder(name, t.c, t.a, t.b, order)
}

fn kutta_38() -> OwnedTableau {
    builder("Kutta 3/8", KUTTA_38, 4)
        .build()
        .expect("Kutta's 3/8 rule is valid")
}

fn rk4_fsal_43() -> OwnedTableau {
    let t = parse(RK4_FSAL_43).expect("tableau text");
    OwnedTableau::builder("RK4 FSAL 4(3)", t.c, t.a, t.b, 4)
        .embedded(t.b_hat.expect("b̂"), 3)
        .fsal(true)
        .build()
        .expect("the FSAL 4(3) pair is valid")
}

/// Logistic growth driving exponential growth:
/// `u' = r u (1 − u)`, `v' = k u v`, with the closed form
/// `E = 1 − u0 + u0 e^{rt}`, `u = u0 e^{rt} / E`, `v = v0 E^{k/r}`.
#[derive(Clone, Copy)]
struct Growth;
impl GenericField for Growth {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = p[0] * y[0] * (D::one() - y[0]);
        dy[1] = p[1] * y[0] * y[1];
    }
}

const P: [f64; 2] = [1.3, 0.7];
const Y0: [f64; 2] = [0.2, 0.5];
const T1: f64 = 2.0;

fn exact(t: f64) -> [f64; 2] {
    let (r, k) = (P[0], P[1]);
    let e = 1.0 - Y0[0] + Y0[0] * (r * t).exp();
    [Y0[0] * (r * t).exp() / e, Y0[1] * e.powf(k / r)]
}

fn problem_with(p: &[f64], y0: &[f64]) -> Problem<Generic<Growth>> {
    Problem::ode_field(Generic(Growth), y0.to_vec(), (0.0, T1)).params(p.to_vec())
}

fn problem() -> Problem<Generic<Growth>> {
    problem_with(&P, &Y0)
}

/// Errors at `T1` of fixed-step solves with `n` steps, and the fitted order.
fn measured_order(tab: &OwnedTableau, steps: &[usize]) -> (f64, Vec<f64>) {
    let prob = problem();
    let (mut hs, mut errs) = (Vec::new(), Vec::new());
    for &n in steps {
        let h = T1 / n as f64;
        let opts = Options::default().fixed_step(h).save_at(SaveAt::T1);
        let sol = solve(&prob, ExplicitRk::new(tab), opts).expect("fixed-step solve");
        assert_eq!(sol.stats.accepted_steps, n);
        hs.push(h);
        errs.push(max_abs_diff(sol.last(), &exact(T1)));
    }
    (fitted_slope(&hs, &errs), errs)
}

#[test]
fn runtime_tableaus_converge_at_their_order() {
    for tab in [kutta_38(), rk4_fsal_43()] {
        let (slope, errs) = measured_order(&tab, &[10, 20, 40, 80, 160]);
        println!("{}: slope {slope:.3}, errors {errs:?}", tab.name());
        assert!(
            (slope - 4.0).abs() <= 0.2,
            "{}: measured order {slope:.3}, theory 4; errors {errs:?}",
            tab.name()
        );
        // and the error itself: 80 steps of h = 0.025
        assert!(
            errs[3] < 1e-7,
            "{}: error {:e} at h = 0.025",
            tab.name(),
            errs[3]
        );
    }
}

#[test]
fn the_embedded_pair_runs_adaptively_and_fsal_saves_a_stage() {
    let tab = rk4_fsal_43();
    let prob = problem();
    let mut errs = Vec::new();
    for tol in [1e-5, 1e-8] {
        let opts = Options::default().tol(tol).save_at(SaveAt::T1);
        let sol = solve(&prob, ExplicitRk::new(&tab), opts).expect("adaptive solve");
        let err = max_abs_diff(sol.last(), &exact(T1));
        let st = sol.stats;
        println!(
            "tol {tol:e}: error {err:.3e}, {} accepted, {} rejected, {} drift evaluations",
            st.accepted_steps, st.rejected_steps, st.drift_evals
        );
        assert!(err < 100.0 * tol, "tol {tol:e}: error {err:e}");
        // 4 evaluations per attempted step (the fifth stage is the next
        // step's first), plus the start-up ones (f0, initial step guess)
        let attempted = st.accepted_steps + st.rejected_steps;
        assert!(st.drift_evals <= 4 * attempted + 3, "{st:?}");
        errs.push(err);
    }
    assert!(
        errs[1] < errs[0] / 100.0,
        "tighter tolerance, smaller error: {errs:?}"
    );
    // the error-free 3/8 rule cannot choose its steps: a typed error
    let opts = Options::default().tol(1e-6).save_at(SaveAt::T1);
    let tab38 = kutta_38();
    match solve(&prob, ExplicitRk::new(&tab38), opts) {
        Err(SolveError::NeedsStepSize { solver }) => assert_eq!(solver, "Kutta 3/8"),
        other => panic!("expected NeedsStepSize, got {other:?}"),
    }
}

#[test]
fn a_runtime_copy_of_tsit5_solves_bit_for_bit_like_tsit5() {
    let owned = OwnedTableau::try_from(&TSIT5).expect("TSIT5 validates");
    let prob = problem();
    for save_at in [
        SaveAt::Steps,
        SaveAt::Times(vec![0.3, 1.1, 1.7]),
        SaveAt::Dense,
    ] {
        let opts = Options::default().tol(1e-7).save_at(save_at);
        let a = solve(&prob, Tsit5, &opts).expect("Tsit5");
        let b = solve(&prob, ExplicitRk::new(&owned), &opts).expect("owned Tsit5");
        assert_eq!(a.ts, b.ts);
        assert_eq!(a.ys, b.ys);
        assert_eq!(a.stats, b.stats);
        assert_eq!(b.solver, "Tsit5");
        if opts.save_at == SaveAt::Dense {
            assert_eq!(a.at(0.77).expect("at"), b.at(0.77).expect("at"));
        }
    }
}

#[test]
fn runtime_tableaus_without_an_interpolant_save_every_way() {
    for tab in [kutta_38(), rk4_fsal_43()] {
        // the Hermite interpolant: an extra stage f(t+h, y_{n+1}) for the
        // 3/8 rule, the FSAL stage for the pair
        assert_eq!(tab.dense_order(), 3);
        assert_eq!(tab.extra_c().len(), usize::from(!tab.fsal()));
        let prob = problem();
        let fixed = || Options::default().fixed_step(0.05);
        let rk = ExplicitRk::new(&tab);
        let t1 = solve(&prob, rk, fixed().save_at(SaveAt::T1)).expect("T1");
        let steps = solve(&prob, rk, fixed().save_at(SaveAt::Steps)).expect("Steps");
        assert_eq!(steps.len(), 41);
        assert_eq!(steps.last(), t1.last());
        let times = vec![0.0, 0.123, 0.5, 1.01, 1.999];
        let at = solve(&prob, rk, fixed().save_at(SaveAt::Times(times.clone()))).expect("Times");
        assert_eq!(at.ts, times);
        let dense = solve(&prob, rk, fixed().save_at(SaveAt::Dense)).expect("Dense");
        for (i, &t) in times.iter().enumerate() {
            let e = max_abs_diff(at.y(i), &exact(t));
            assert!(e < 1e-6, "{} at t={t}: error {e:e}", tab.name());
            let d = dense.at(t).expect("dense output");
            assert!(max_abs_diff(&d, at.y(i)) < 1e-14, "{} at t={t}", tab.name());
        }
        // interpolated steps cost the extra stage; others do not
        let extra = usize::from(!tab.fsal());
        assert_eq!(
            dense.stats.drift_evals,
            steps.stats.drift_evals + extra * 40,
            "{}",
            tab.name()
        );
    }
}

/// `L = Σ_k |y(t_k) − target(t_k)|²` over step ends and interior points.
fn loss(ts: &[f64], ys: &[f64], g: &mut [f64]) -> f64 {
    let mut l = 0.0;
    for (i, &t) in ts.iter().enumerate() {
        let target = [0.5 + 0.1 * t, 0.6 + 0.2 * t.sin()];
        for k in 0..2 {
            let d = ys[2 * i + k] - target[k];
            l += d * d;
            g[2 * i + k] = 2.0 * d;
        }
    }
    l
}

#[test]
fn grad_through_runtime_tableaus_matches_central_differences() {
    // step ends (multiples of h = 0.02) and interior points, whose
    // interpolant (and extra stage) the adjoint differentiates too
    let save = [
        SaveAt::T1,
        SaveAt::Times(vec![0.25, 0.5, 1.0, 1.337, 1.9, 2.0]),
    ];
    for tab in [kutta_38(), rk4_fsal_43()] {
        for save_at in save.clone() {
            let opts = Options::default().fixed_step(0.02).save_at(save_at);
            let rk = ExplicitRk::new(&tab);
            let loss_of = |p: &[f64], y0: &[f64]| {
                let sol = solve(&problem_with(p, y0), rk, &opts).expect("solve");
                let mut g = vec![0.0; sol.ys.len()];
                loss(&sol.ts, &sol.ys, &mut g)
            };
            let g = grad(&problem(), rk, &opts, &loss, Adjoint::STORE_ALL).expect("grad");
            assert!((g.loss - loss_of(&P, &Y0)).abs() < 1e-14);
            let h = 1e-6;
            for j in 0..4 {
                let (adj, fd) = if j < 2 {
                    let (mut a, mut b) = (P, P);
                    a[j] += h;
                    b[j] -= h;
                    (g.dp[j], (loss_of(&a, &Y0) - loss_of(&b, &Y0)) / (2.0 * h))
                } else {
                    let (mut a, mut b) = (Y0, Y0);
                    a[j - 2] += h;
                    b[j - 2] -= h;
                    (
                        g.dy0[j - 2],
                        (loss_of(&P, &a) - loss_of(&P, &b)) / (2.0 * h),
                    )
                };
                let rel = (adj - fd).abs() / fd.abs();
                println!(
                    "{} {:?} θ{j}: adjoint {adj:.12e}, FD {fd:.12e}, rel {rel:.1e}",
                    tab.name(),
                    opts.save_at
                );
                assert!(fd.abs() > 1e-3, "a gradient worth checking: {fd}");
                assert!(rel < 1e-6, "{} θ{j}: relative error {rel:e}", tab.name());
            }
        }
    }
}

#[test]
fn malformed_runtime_tableaus_are_typed_errors_not_panics() {
    let good = parse(KUTTA_38).expect("tableau text");
    let with = |edit: &dyn Fn(&mut Parsed)| {
        let mut t = good.clone();
        edit(&mut t);
        OwnedTableau::builder("bad", t.c, t.a, t.b, 4)
    };
    let cases: Vec<(TableauBuilder, &str)> = vec![
        (with(&|t| t.a[2].push(0.0)), "a[2]"),
        (with(&|t| t.a.truncate(3)), "rows"),
        (with(&|t| t.c[1] = 0.3), "c[1]"),
        (with(&|t| t.b[0] = 0.2), "sums to"),
        (with(&|t| t.b.push(0.0)), "b"),
        (with(&|t| t.a[3][1] = f64::NAN), "finite"),
        (with(&|t| t.a[3][0] = f64::INFINITY), "finite"),
        (with(&|_| {}).fsal(true), "fsal"),
        (with(&|_| {}).embedded(vec![0.25; 4], 5), "embedded order"),
        (
            with(&|_| {}).embedded(vec![0.5, 0.5], 1),
            "embedded weights",
        ),
        (
            with(&|_| {}).extra_stages(vec![1.0], vec![vec![0.125, 0.375, 0.375, 0.125]]),
            "extra stages",
        ),
        (
            with(&|_| {}).interpolant(vec![vec![0.0, 0.25]; 4], 1),
            "interpolant weight",
        ),
        (with(&|_| {}).tolerance(-1.0), "tolerance"),
        (builder("bad", KUTTA_38, 5), "order-5"),
        (
            OwnedTableau::builder("bad", vec![], vec![], vec![], 1),
            "stage",
        ),
    ];
    for (b, needle) in cases {
        match b.build() {
            Err(e @ SolveError::InvalidInput { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
                assert!(
                    msg.contains("\"bad\""),
                    "the error names the tableau: {msg}"
                );
            }
            other => panic!("{needle}: expected InvalidInput, got {other:?}"),
        }
    }
}
