//! Forward-mode sensitivities (`sensitivities`): `dy/dp` and `dy/dy0` at the
//! saved times checked against the discrete adjoint `grad` (the same
//! derivative of the same computed solution, in reverse mode) and against
//! central finite differences of `solve`, for explicit Runge–Kutta methods
//! (adaptive and fixed steps) on Lotka–Volterra and for explicit SDE
//! solvers on the same Brownian path (scalar, diagonal and general noise);
//! and the typed errors of bad inputs. Against `grad` the two modes agree
//! to rounding (1e-12 relative: measured ~1e-15); against finite
//! differences to the FD error (1e-6: measured ≤ 2e-8).

use crate::common;
use common::{LV_PARAMS, LV_Y0, LotkaVolterra as Lv, sde2};
use sdeflow::adjoint::{Differentiable, Explicit, TangentDiffusion, TangentDrift, TangentProblem};
use sdeflow::field::{DiffusionVjp, DriftVjp};
use sdeflow::prelude::*;
use sdeflow::solver::Solver;

/// Deterministic, irregular weights: `L = Σ_k Σ_i w(k, i) y_i(t_k)` mixes
/// every entry of every saved state, so an error in one does not cancel.
fn weight(k: usize, i: usize) -> f64 {
    (1.0 + 3.0 * k as f64 + 7.0 * i as f64).sin()
}

/// The linear loss with weights [`weight`] on every saved state.
fn weighted(ts: &[f64], ys: &[f64], g: &mut [f64]) -> f64 {
    let n = ys.len() / ts.len();
    let mut l = 0.0;
    for (j, (gj, y)) in g.iter_mut().zip(ys).enumerate() {
        *gj = weight(j / n, j % n);
        l += *gj * y;
    }
    l
}

/// `dL/dp` and `dL/dy0` of [`weighted`] from the sensitivities.
fn loss_gradient(sens: &Sensitivities) -> (Vec<f64>, Vec<f64>) {
    let (n, np) = (sens.dim(), sens.n_params());
    let mut dp = vec![0.0; np];
    let mut dy0 = vec![0.0; n];
    for k in 0..sens.len() {
        let (sp, s0) = (sens.dy_dp(k), sens.dy_dy0(k));
        for i in 0..n {
            let w = weight(k, i);
            (0..np).for_each(|j| dp[j] += w * sp[(i, j)]);
            (0..s0.ncols()).for_each(|j| dy0[j] += w * s0[(i, j)]);
        }
    }
    (dp, dy0)
}

/// Asserts `a` and `b` agree to `rtol` relative to the largest entry of `b`
/// (floored at 1e-3).
fn assert_close(what: &str, a: &[f64], b: &[f64], rtol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    for (j, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= rtol * scale,
            "{what}, entry {j}: {x} vs {y} (scale {scale:e})"
        );
    }
}

/// Sensitivities along parameters and initial state against `grad`'s
/// discrete adjoint of [`weighted`] (to `rtol`), and the states against
/// those of `solve` (same steps: the same count, the same values).
fn agrees_with_grad<'a, F, G, S>(
    what: &str,
    problem: &'a Problem<F, G>,
    solver: S,
    opts: &Options,
    rtol: f64,
) -> Sensitivities
where
    F: TangentDrift + DriftVjp,
    G: TangentDiffusion + DiffusionVjp,
    S: Explicit
        + Solver<Problem<F, G>>
        + Solver<TangentProblem<'a, F, G, VirtualTree>>
        + Differentiable<F, G, VirtualTree>
        + Copy,
{
    let sens = sensitivities(problem, solver, opts, Wrt::ParamsAndY0).expect("sensitivities");
    let g = grad(problem, solver, opts, &weighted, Adjoint::STORE_ALL).expect("grad");
    let (dp, dy0) = loss_gradient(&sens);
    assert_close(&format!("{what}: dL/dp"), &dp, &g.dp, rtol);
    assert_close(&format!("{what}: dL/dy0"), &dy0, &g.dy0, rtol);
    // the sensitivity solve took the plain solve's steps
    let plain = &g.solution;
    assert_eq!(sens.ts(), &plain.ts[..], "{what}: saved times");
    assert_eq!(
        sens.stats().accepted_steps,
        plain.stats.accepted_steps,
        "{what}: accepted steps"
    );
    for k in 0..sens.len() {
        assert_eq!(sens.y(k), plain.y(k), "{what}: y({k}), bit for bit");
    }
    sens
}

fn lotka_volterra(p: &[f64], y0: &[f64], t1: f64) -> Problem<Generic<Lv>> {
    Problem::ode_field(Generic(Lv), y0.to_vec(), (0.0, t1)).params(p.to_vec())
}

#[test]
fn explicit_rk_matches_grad_adaptive_and_fixed() {
    let prob = lotka_volterra(&LV_PARAMS, &LV_Y0, 10.0);
    let adaptive = Options::default().tol(1e-8).save_at(SaveAt::T1);
    let fixed = Options::default().fixed_step(0.01).save_at(SaveAt::T1);
    for opts in [&adaptive, &fixed] {
        agrees_with_grad("Tsit5", &prob, Tsit5, opts, 1e-12);
        agrees_with_grad("Vern7", &prob, Vern7, opts, 1e-12);
        agrees_with_grad("Dopri5", &prob, Dopri5, opts, 1e-12);
    }
    // backwards in time, adaptive
    let back = lotka_volterra(&LV_PARAMS, &LV_Y0, 10.0).tspan((5.0, 0.0));
    let opts = Options::default().tol(1e-8);
    agrees_with_grad("Tsit5 backwards", &back, Tsit5, &opts, 1e-12);
}

#[test]
fn several_saved_times_match_grad_entry_by_entry() {
    let prob = lotka_volterra(&LV_PARAMS, &LV_Y0, 10.0);
    // saved at step ends (Steps) and between them (Times, by the interpolant)
    let steps = Options::default().tol(1e-7);
    let sens = agrees_with_grad("Tsit5, every step", &prob, Tsit5, &steps, 1e-12);
    assert!(sens.len() > 20, "{} saved times", sens.len());
    let times = vec![1.0, 2.5, 4.0, 7.3, 10.0];
    let opts = Options::default()
        .tol(1e-8)
        .save_at(SaveAt::Times(times.clone()));
    let sens = agrees_with_grad("Vern7, interpolated", &prob, Vern7, &opts, 1e-12);
    assert_eq!(sens.ts(), &times[..]);
    // every entry of dy/dp at every saved time, against a loss on that entry
    for k in 0..times.len() {
        for i in 0..2 {
            let pick = |ts: &[f64], ys: &[f64], g: &mut [f64]| {
                g.iter_mut().for_each(|v| *v = 0.0);
                g[2 * k + i] = 1.0;
                let _ = ts;
                ys[2 * k + i]
            };
            let g = grad(&prob, Vern7, &opts, &pick, Adjoint::STORE_ALL).expect("grad");
            let pairs = [("p", sens.dy_dp(k), &g.dp), ("y0", sens.dy_dy0(k), &g.dy0)];
            for (wrt, jac, reverse) in pairs {
                let row: Vec<f64> = (0..jac.ncols()).map(|j| jac[(i, j)]).collect();
                let what = format!("dy_{i}/d{wrt} at t = {}", times[k]);
                assert_close(&what, &row, reverse, 1e-12);
            }
        }
    }
}

/// Central differences (step `h` relative to each input) of `y(t_k)` by
/// `solve`, against `dy/dp` and `dy/dy0` of `sens`, to `rtol` relative to
/// the largest entry of each matrix.
fn agrees_with_fd(
    sens: &Sensitivities,
    solve_at: &dyn Fn(&[f64], &[f64]) -> Solution,
    p: &[f64],
    y0: &[f64],
    h: f64,
    rtol: f64,
) {
    let n = y0.len();
    for (j, (wrt_p, axis)) in (0..p.len())
        .map(|j| (true, j))
        .chain((0..n).map(|j| (false, j)))
        .enumerate()
    {
        let (mut pp, mut pm, mut yp, mut ym) = (p.to_vec(), p.to_vec(), y0.to_vec(), y0.to_vec());
        let step = if wrt_p {
            let s = h * p[axis].abs().max(1.0);
            pp[axis] += s;
            pm[axis] -= s;
            s
        } else {
            let s = h * y0[axis].abs().max(1.0);
            yp[axis] += s;
            ym[axis] -= s;
            s
        };
        let (up, down) = (solve_at(&pp, &yp), solve_at(&pm, &ym));
        assert_eq!(up.len(), sens.len());
        for k in 0..sens.len() {
            let fd: Vec<f64> = (0..n)
                .map(|i| (up.y(k)[i] - down.y(k)[i]) / (2.0 * step))
                .collect();
            let col: Vec<f64> = (0..n)
                .map(|i| {
                    if wrt_p {
                        sens.dy_dp(k)[(i, axis)]
                    } else {
                        sens.dy_dy0(k)[(i, axis)]
                    }
                })
                .collect();
            assert_close(&format!("direction {j}, saved time {k}"), &col, &fd, rtol);
        }
    }
}

#[test]
fn ode_matches_central_differences_of_solve() {
    let times = vec![2.0, 5.0, 10.0];
    // fixed steps: the discrete map is smooth in (p, y0), FD step 1e-6
    let fixed = Options::default()
        .fixed_step(0.01)
        .save_at(SaveAt::Times(times.clone()));
    // tight adaptive: FD step 1e-5 is well above the jitter of the step
    // choice (~ tol / h = 1e-8)
    let tight = Options::default()
        .tol(1e-13)
        .save_at(SaveAt::Times(times.clone()));
    for (opts, h) in [(&fixed, 1e-6), (&tight, 1e-5)] {
        let prob = lotka_volterra(&LV_PARAMS, &LV_Y0, 10.0);
        let sens = sensitivities(&prob, Vern7, opts, Wrt::ParamsAndY0).expect("sensitivities");
        let solve_at = |p: &[f64], y0: &[f64]| {
            solve(&lotka_volterra(p, y0, 10.0), Vern7, opts).expect("solve")
        };
        agrees_with_fd(&sens, &solve_at, &LV_PARAMS, &LV_Y0, h, 1e-6);
    }
}

/// Geometric Brownian motion `dy = p0 y dt + p1 y dW` (scalar noise).
fn gbm(
    p: &[f64],
    y0: &[f64],
) -> Problem<impl TangentDrift + DriftVjp + Clone, impl TangentDiffusion + DiffusionVjp + Clone> {
    Problem::sde_field(
        generic_field!(|_t, y, p, dy| dy[0] = p[0] * y[0]),
        generic_field!(|_t, y, p, g| g[0] = p[1] * y[0]),
        Noise::Scalar,
        y0.to_vec(),
        (0.0, 1.0),
    )
    .params(p.to_vec())
}

/// A 2-d SDE with general noise (two Brownian motions mixing both
/// components).
fn mixed(
    p: &[f64],
    y0: &[f64],
) -> Problem<impl TangentDrift + DriftVjp + Clone, impl TangentDiffusion + DiffusionVjp + Clone> {
    Problem::sde_field(
        generic_field!(|_t, y, p, dy| {
            dy[0] = -p[0] * y[0] + y[1];
            dy[1] = -y[0] * y[1] * p[1];
        }),
        generic_field!(|_t, y, p, g| {
            g[0] = p[2] * y[0];
            g[1] = p[2] * y[1].sin();
            g[2] = (y[0] * 0.5).cos() * 0.1;
            g[3] = p[2] * y[0] * y[1];
        }),
        Noise::General(2),
        y0.to_vec(),
        (0.0, 1.0),
    )
    .params(p.to_vec())
}

#[test]
fn sde_solvers_match_grad_on_the_same_path() {
    // every step end saved (the default)
    let opts = Options::default().fixed_step(0.01).seed(11);
    let gbm_p = gbm(&[0.3, 0.4], &[1.0]);
    agrees_with_grad("GBM, EulerMaruyama", &gbm_p, EulerMaruyama, &opts, 1e-12);
    agrees_with_grad(
        "GBM, Milstein",
        &gbm_p,
        Milstein::derivative_free(),
        &opts,
        1e-12,
    );
    agrees_with_grad("GBM, Sriw1", &gbm_p, Sriw1, &opts, 1e-12);
    // adaptive SDE steps: the plain solve's accepted steps, on its path
    let adaptive = Options::default().tol(1e-3).seed(11);
    let sens = agrees_with_grad("GBM, Sriw1 adaptive", &gbm_p, Sriw1, &adaptive, 1e-12);
    assert!(sens.plain_stats().is_some_and(|s| s.rejected_steps > 0));
    let strat = gbm(&[0.3, 0.4], &[1.0]).interpretation(Interpretation::Stratonovich);
    agrees_with_grad("GBM, EulerHeun", &strat, EulerHeun, &opts, 1e-12);
    agrees_with_grad("GBM, ReversibleHeun", &strat, ReversibleHeun, &opts, 1e-12);
    // diagonal noise: the sensitivity system has general noise
    let diag = sde2(&common::SDE2_P, &common::SDE2_Y0);
    agrees_with_grad(
        "diagonal, EulerMaruyama",
        &diag,
        EulerMaruyama,
        &opts,
        1e-12,
    );
    let diag_s = diag.clone().interpretation(Interpretation::Stratonovich);
    agrees_with_grad("diagonal, EulerHeun", &diag_s, EulerHeun, &opts, 1e-12);
    let general = mixed(&[0.7, 0.4, 0.3], &[0.5, 1.0]);
    agrees_with_grad(
        "general, EulerMaruyama",
        &general,
        EulerMaruyama,
        &opts,
        1e-12,
    );
}

#[test]
fn sde_matches_central_differences_on_the_same_path() {
    let opts = Options::default()
        .fixed_step(0.01)
        .seed(4)
        .save_at(SaveAt::Times(vec![0.5, 1.0]));
    let (p, y0) = (common::SDE2_P, common::SDE2_Y0);
    let prob = sde2(&p, &y0);
    let sens = sensitivities(&prob, EulerMaruyama, &opts, Wrt::ParamsAndY0).expect("sens");
    let solve_at =
        |p: &[f64], y0: &[f64]| solve(&sde2(p, y0), EulerMaruyama, &opts).expect("solve");
    agrees_with_fd(&sens, &solve_at, &p, &y0, 1e-6, 1e-6);
    let gp = [0.3, 0.4];
    let sens =
        sensitivities(&gbm(&gp, &[1.0]), EulerMaruyama, &opts, Wrt::ParamsAndY0).expect("sens");
    let solve_at = |p: &[f64], y0: &[f64]| solve(&gbm(p, y0), EulerMaruyama, &opts).expect("solve");
    agrees_with_fd(&sens, &solve_at, &gp, &[1.0], 1e-6, 1e-6);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let opts = Options::default().tol(1e-6);
    // nothing to differentiate
    let none = Problem::ode_field(
        generic_field!(|_t, y, _p, dy| dy[0] = -y[0]),
        vec![1.0],
        (0.0, 1e-3),
    );
    let err = sensitivities(&none, Tsit5, &opts, Wrt::Params).expect_err("no parameters");
    assert!(
        matches!(err, SolveError::InvalidInput { ref what, .. } if what == "params"),
        "{err}"
    );
    // ... but the initial state can be
    let sens = sensitivities(&none, Tsit5, &opts, Wrt::Y0).expect("dy/dy0");
    // (one adaptive step over the whole span)
    assert_eq!(sens.plain_stats().map(|s| s.accepted_steps), Some(1));
    assert_eq!(sens.n_params(), 0);
    assert!((sens.dy_dy0(sens.len() - 1)[(0, 0)] - sens.y(sens.len() - 1)[0]).abs() < 1e-12);
    // a non-finite parameter
    let nan = lotka_volterra(&[1.5, f64::NAN, 3.0, 1.0], &LV_Y0, 1.0);
    let err = sensitivities(&nan, Tsit5, &opts, Wrt::Params).expect_err("NaN");
    assert!(
        matches!(err, SolveError::InvalidInput { ref what, .. } if what == "params[1]"),
        "{err}"
    );
    // a field that reads more parameters than given
    let short = lotka_volterra(&[1.5, 1.0, 3.0], &LV_Y0, 1.0);
    let err = sensitivities(&short, Tsit5, &opts, Wrt::Params).expect_err("short");
    assert!(
        matches!(
            err,
            SolveError::DimensionMismatch {
                expected: 4,
                found: Some(3),
                ..
            }
        ),
        "{err}"
    );
    // tolerances of the wrong length (for the problem's own dimension)
    let prob = lotka_volterra(&LV_PARAMS, &LV_Y0, 1.0);
    let err = sensitivities(
        &prob,
        Tsit5,
        Options::default().rtol(vec![1e-6; 3]),
        Wrt::Params,
    )
    .expect_err("rtol");
    assert!(
        matches!(
            err,
            SolveError::DimensionMismatch {
                expected: 2,
                found: Some(3),
                ..
            }
        ),
        "{err}"
    );
    // Milstein cannot take the general noise of a diagonal problem's
    // sensitivity system, nor differentiate exactly: refused up front
    let fixed = Options::default().fixed_step(0.01);
    let diag = sde2(&common::SDE2_P, &common::SDE2_Y0);
    let err = sensitivities(&diag, Milstein::default(), &fixed, Wrt::Params).expect_err("general");
    assert!(matches!(err, SolveError::Unsupported { .. }), "{err}");
    let err = sensitivities(
        &gbm(&[0.3, 0.4], &[1.0]),
        Milstein::exact(),
        &fixed,
        Wrt::Params,
    )
    .expect_err("exact");
    assert!(matches!(err, SolveError::Unsupported { .. }), "{err}");
}
