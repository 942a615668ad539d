//! What a new user writes: problems from closures with no type
//! annotations, gradients through fields written with `generic_field!`,
//! and the loss helpers, each checked against an exact value or central
//! finite differences.

use sdeflow::adjoint::{GradError, Plus, SquaredError, Terminal, Weighted};
use sdeflow::prelude::*;

/// Central difference of `f` at `x` along coordinate `k` with step `h`.
fn central(f: &dyn Fn(&[f64]) -> f64, x: &[f64], k: usize, h: f64) -> f64 {
    let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
    xp[k] += h;
    xm[k] -= h;
    (f(&xp) - f(&xm)) / (2.0 * h)
}

/// Asserts that the gradient `got` of `f` at `x` matches central
/// differences with step 1e-5 to `rtol` (relative, floored at 1).
fn assert_matches_fd(got: &[f64], f: &dyn Fn(&[f64]) -> f64, x: &[f64], rtol: f64) {
    for (k, g) in got.iter().enumerate() {
        let fd = central(f, x, k, 1e-5);
        assert!(
            (g - fd).abs() < rtol * fd.abs().max(1.0),
            "input {k}: {g} vs FD {fd}"
        );
    }
}

#[test]
fn ode_from_an_annotation_free_closure_solves() {
    // y' = -p y: y(1) = y0 e^{-p}
    let decay =
        Problem::ode(|_t, y, p, dy| dy[0] = -p[0] * y[0], vec![2.0], (0.0, 1.0)).params(vec![0.7]);
    let sol = solve(&decay, Tsit5, Options::default().tol(1e-10)).expect("solve");
    let exact = 2.0 * (-0.7f64).exp();
    // rtol = atol = 1e-10 over one unit of time: global error well below 1e-8
    assert!(
        (sol.last()[0] - exact).abs() < 1e-8,
        "{} vs {exact}",
        sol.last()[0]
    );
}

#[test]
fn sde_from_annotation_free_closures_solves() {
    // additive noise with zero amplitude: the SDE is the ODE y' = -y
    let sde = Problem::sde(
        |_t, y, _p, dy| dy[0] = -y[0],
        |_t, _y, _p, g| g[0] = 0.0,
        Noise::Diagonal,
        vec![1.0],
        (0.0, 1.0),
    );
    let sol = solve(&sde, EulerMaruyama, Options::default().fixed_step(1e-3)).expect("solve");
    // Euler with h = 1e-3: global error ≈ h/2 · e^{-1} ≈ 1.8e-4
    assert!((sol.last()[0] - (-1.0f64).exp()).abs() < 3e-4);
}

#[test]
fn ode_gradient_through_an_annotation_free_vjp_closure() {
    // the same drift with a hand-written VJP, both closures unannotated
    let decay = Problem::ode(|_t, y, p, dy| dy[0] = -p[0] * y[0], vec![2.0], (0.0, 1.0))
        .with_vjp(|_t, y, p, v, oy, op| {
            oy[0] -= v[0] * p[0];
            op[0] -= v[0] * y[0];
        })
        .params(vec![0.7]);
    let opts = Options::default().tol(1e-11).save_at(SaveAt::T1);
    let g = grad(&decay, Tsit5, &opts, &Terminal::new(0), Adjoint::STORE_ALL).expect("grad");
    // L = y0 e^{-p}: dL/dp = -y0 e^{-p}, dL/dy0 = e^{-p}; the discrete
    // adjoint is exact for the discrete solution, which is within 1e-9
    let e = (-0.7f64).exp();
    assert!(
        (g.dp[0] + 2.0 * e).abs() < 1e-9,
        "{} vs {}",
        g.dp[0],
        -2.0 * e
    );
    assert!((g.dy0[0] - e).abs() < 1e-9, "{} vs {e}", g.dy0[0]);
}

#[test]
fn ode_gradient_through_generic_field_matches_the_exact_one() {
    // logistic growth y' = p0 y (1 - y / p1): y(t) = p1 / (1 + (p1/y0 - 1) e^{-p0 t})
    let logistic = Problem::ode_field(
        generic_field!(|_t, y, p, dy| dy[0] = p[0] * y[0] * (D::from(1.0) - y[0] / p[1])),
        vec![0.5],
        (0.0, 2.0),
    )
    .params(vec![1.3, 4.0]);
    let opts = Options::default().tol(1e-11).save_at(SaveAt::T1);
    let g = grad(
        &logistic,
        Vern7,
        &opts,
        &Terminal::new(0),
        Adjoint::STORE_ALL,
    )
    .expect("grad");
    let exact = |x: &[f64]| {
        let (y0, r, k) = (x[0], x[1], x[2]);
        k / (1.0 + (k / y0 - 1.0) * (-r * 2.0).exp())
    };
    let x = [0.5, 1.3, 4.0];
    // the exact solution's derivatives by central differences with h = 1e-5:
    // truncation O(h²) ≈ 1e-10 relative, rounding ≈ 1e-16/1e-5 = 1e-11
    let want = [
        central(&exact, &x, 0, 1e-5),
        central(&exact, &x, 1, 1e-5),
        central(&exact, &x, 2, 1e-5),
    ];
    let got = [g.dy0[0], g.dp[0], g.dp[1]];
    for (a, b) in got.iter().zip(&want) {
        // tol 1e-11 on a smooth problem: the solution and its derivatives
        // agree with the exact ones to about 1e-8
        assert!(
            (a - b).abs() < 1e-7 * b.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
}

/// Geometric Brownian motion with closure-syntax fields, solved on a fixed
/// grid with a fixed seed: the loss is a smooth function of `(y0, p)` for
/// the one path, so central differences check the pathwise gradient.
fn gbm(
    y0: f64,
    p: &[f64],
) -> Problem<impl sdeflow::field::DriftVjp, impl sdeflow::field::DiffusionVjp> {
    Problem::sde_field(
        generic_field!(|_t, y, p, dy| dy[0] = p[0] * y[0]),
        generic_field!(|_t, y, p, g| g[0] = p[1] * y[0] * (y[0] * y[0] * 0.1 + 1.0).sqrt()),
        Noise::Diagonal,
        vec![y0],
        (0.0, 1.0),
    )
    .params(p.to_vec())
}

#[test]
fn sde_gradient_through_generic_field_matches_central_differences() {
    let opts = Options::default()
        .fixed_step(1e-2)
        .seed(11)
        .save_at(SaveAt::T1);
    let (y0, p) = (1.0, [0.3, 0.4]);
    let loss = Terminal::new(0);
    let g = grad(
        &gbm(y0, &p),
        EulerMaruyama,
        &opts,
        &loss,
        Adjoint::STORE_ALL,
    )
    .expect("grad");
    let value = |x: &[f64]| -> f64 {
        let sol = solve(&gbm(x[0], &x[1..]), EulerMaruyama, opts.clone()).expect("solve");
        sol.last()[0]
    };
    let x = [y0, p[0], p[1]];
    // the discrete solution is a smooth function of x for the fixed path:
    // h = 1e-5 gives truncation ≈ 1e-10 and rounding ≈ 1e-11
    assert_matches_fd(&[g.dy0[0], g.dp[0], g.dp[1]], &value, &x, 1e-7);
}

/// A two-component ODE saved at a few times, for the loss helpers.
fn oscillator(x: &[f64]) -> Problem<impl sdeflow::field::DriftVjp> {
    Problem::ode_field(
        generic_field!(|_t, y, p, dy| {
            dy[0] = y[1];
            dy[1] = -p[0] * y[0] - p[1] * y[1];
        }),
        vec![x[0], x[1]],
        (0.0, 3.0),
    )
    .params(vec![x[2], x[3]])
}

#[test]
fn loss_helpers_derive_their_gradient() {
    let times = vec![0.5, 1.0, 2.0, 3.0];
    let opts = Options::default()
        .tol(1e-11)
        .save_at(SaveAt::Times(times.clone()));
    let data1: Vec<f64> = times.iter().map(|t: &f64| (1.7 * t).sin()).collect();
    let data_all: Vec<f64> = times.iter().flat_map(|t| [t.cos(), -t.sin()]).collect();
    let loss = Terminal::new(1)
        + 0.25 * SquaredError::component(0, times.clone(), data1)
        + 2.0 * SquaredError::new(times.clone(), data_all);
    let x = [1.0, 0.0, 2.0, 0.3];
    let g = grad(&oscillator(&x), Vern7, &opts, &loss, Adjoint::STORE_ALL).expect("grad");
    let value = |x: &[f64]| -> f64 {
        let sol = solve(&oscillator(x), Vern7, opts.clone()).expect("solve");
        let mut gy = vec![0.0; sol.ys.len()];
        loss.eval(&sol.ts, &sol.ys, &mut gy)
    };
    assert!((value(&x) - g.loss).abs() < 1e-12 * g.loss.abs().max(1.0));
    // tol 1e-11: the computed solution is smooth in x to ~1e-9 relative,
    // so FD with h = 1e-5 agrees with the discrete adjoint to ~1e-6
    assert_matches_fd(&[g.dy0[0], g.dy0[1], g.dp[0], g.dp[1]], &value, &x, 1e-6);
}

#[test]
fn loss_helpers_gradients_match_finite_differences_in_ys() {
    // the helpers' ∂L/∂ys against central differences of their own values
    let ts = [0.5, 1.0, 2.0];
    let ys = [0.3, -1.2, 0.8, 0.1, -0.4, 2.2];
    let loss: Plus<Weighted<Terminal>, SquaredError> =
        -1.5 * Terminal::new(0) + SquaredError::component(1, ts, [0.0, 0.5, 1.0]);
    let mut g = [0.0; 6];
    loss.eval(&ts, &ys, &mut g);
    for k in 0..6 {
        let f = |y: &[f64]| loss.eval(&ts, y, &mut [0.0; 6]);
        // a quadratic: central differences are exact up to rounding
        let fd = central(&f, &ys, k, 1e-4);
        assert!((g[k] - fd).abs() < 1e-9, "entry {k}: {} vs {fd}", g[k]);
    }
}

#[test]
fn a_loss_that_does_not_fit_the_solution_is_refused() {
    let decay = Problem::ode_field(
        generic_field!(|_t, y, p, dy| dy[0] = -p[0] * y[0]),
        vec![1.0],
        (0.0, 1.0),
    )
    .params(vec![1.0]);
    let opts = Options::default().save_at(SaveAt::T1);
    let cases: [(&dyn Loss, &str); 3] = [
        (&Terminal::new(3), "component 3"),
        (&SquaredError::new([0.5, 1.0], [1.0, 1.0]), "SaveAt::Times"),
        (
            &SquaredError::component(0, [1.0], [1.0, 2.0]),
            "data values",
        ),
    ];
    for (loss, says) in cases {
        match grad(&decay, Tsit5, &opts, loss, Adjoint::STORE_ALL) {
            Err(GradError::Loss(why)) => assert!(why.contains(says), "{why}"),
            other => panic!("expected a loss error saying {says:?}, got {other:?}"),
        }
    }
}

#[test]
fn generic_field_captures_listed_values() {
    let (k, w) = (3.0, [0.5, 2.0]);
    let f = generic_field!([k: f64, w: [f64; 2]] |_t, y, _p, dy| dy[0] = y[0] * k * w[1] + w[0]);
    let p = Problem::ode_field(f, vec![1.0], (0.0, 1.0));
    let mut dy = [0.0];
    p.drift.drift(0.0, &[2.0], &[], &mut dy);
    assert_eq!(dy[0], 2.0 * 3.0 * 2.0 + 0.5);
}
