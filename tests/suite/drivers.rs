//! Noise drivers owned by the problem: `solve` and the gradients see the
//! same path for the same problem and seed, with fixed or adaptive steps and
//! with every driver; the solution keeps the path it was driven by; drivers
//! that cannot re-query their path are refused, up front and by name, where
//! re-querying is needed; sampled paths drive solves exactly.

use proptest::prelude::*;
use sdeflow::noise::{BrownianPath, BrownianTree, PiecewiseLinearPath};
use sdeflow::prelude::*;

use crate::common;
use common::{
    Diff2, Drift2, SDE2_P as P, SDE2_Y0 as Y0, central_difference, loss_of_solve, sde2 as problem,
    tracking_loss as loss,
};

/// Central differences of the loss of `solve` calls (the same options and
/// seed, so the same path when `solve` and `grad` agree on it), against the
/// adjoint's `(dp, dy0)`, to a relative `tol`.
fn check_against_solve<D: Driver>(
    with_driver: impl Fn(
        Problem<Generic<Drift2>, Generic<Diff2>>,
    ) -> Problem<Generic<Drift2>, Generic<Diff2>, D>,
    solver: impl Method<Problem<Generic<Drift2>, Generic<Diff2>, D>> + Copy,
    opts: &Options,
    grad: &Gradient,
    tol: f64,
) {
    let loss_at =
        |p: &[f64], y0: &[f64]| loss_of_solve(&with_driver(problem(p, y0)), solver, opts, &loss);
    // central differences in (p, y0)
    let np = P.len();
    let x: Vec<f64> = P.iter().chain(&Y0).copied().collect();
    let adj: Vec<f64> = grad.dp.iter().chain(&grad.dy0).copied().collect();
    for (j, &a) in adj.iter().enumerate() {
        let fd = central_difference(|x| loss_at(&x[..np], &x[np..]), &x, j, 1e-6);
        assert!(
            (a - fd).abs() <= tol * fd.abs().max(1e-2),
            "component {j}: adjoint {a} vs central FD of solve {fd}"
        );
    }
    // and the loss the gradient reports is the loss of that very solve
    let l = loss_at(&P, &Y0);
    assert_eq!(grad.loss, l, "grad's loss {} vs solve's {l}", grad.loss);
}

/// `grad` by `solver` and `adjoint` of the problem `with_driver` makes,
/// against [`check_against_solve`] to 1e-6 (`what` names the case).
fn grad_matches_solve<D: Driver, S>(
    with_driver: impl Fn(
        Problem<Generic<Drift2>, Generic<Diff2>>,
    ) -> Problem<Generic<Drift2>, Generic<Diff2>, D>,
    (solver, adjoint): (S, Adjoint),
    opts: &Options,
    what: &str,
) where
    S: Solver<Problem<Generic<Drift2>, Generic<Diff2>, D>>
        + Differentiable<Generic<Drift2>, Generic<Diff2>, D>
        + Copy,
{
    let g = grad(&with_driver(problem(&P, &Y0)), solver, opts, &loss, adjoint).expect(what);
    check_against_solve(with_driver, solver, opts, &g, 1e-6);
}

/// With the default driver, the discrete adjoint of a fixed-step solve is
/// the gradient of exactly the loss `solve` computes for that seed (v1 forced
/// a tree in `grad` while fixed-step `solve` drew direct increments: two
/// different paths for one seed).
#[test]
fn grad_differentiates_the_loss_solve_computes_default_driver() {
    let opts = |seed| Options::default().fixed_step(0.02).seed(seed);
    let (em, sri) = (
        (EulerMaruyama, Adjoint::STORE_ALL),
        (Sriw1, Adjoint::STORE_ALL),
    );
    grad_matches_solve(|p| p, em, &opts(3), "gradient");
    grad_matches_solve(|p| p, sri, &opts(4), "gradient");
    // an adaptive solve: the same tree, so the same accepted steps and the
    // same loss to the bit (finite differences of an adaptive solve jump
    // where the accepted step sequence changes, so only the loss is
    // compared here)
    let opts = Options::default().tol(1e-3).seed(9);
    let p = problem(&P, &Y0);
    let g = grad(&p, Sriw1, &opts, &loss, Adjoint::STORE_ALL).expect("gradient");
    let sol = solve(&p, Sriw1, &opts).expect("solve");
    let mut gy = vec![0.0; sol.ys.len()];
    assert_eq!(g.loss, loss(&sol.ts, &sol.ys, &mut gy));
    assert_eq!(g.solution.ts, sol.ts);
}

/// Every driver: the gradient and `solve` see one path.
#[test]
fn grad_differentiates_the_loss_solve_computes_every_driver() {
    let opts = Options::default().fixed_step(0.02).seed(11);
    // direct increments: the discrete adjoint records them
    let em = (EulerMaruyama, Adjoint::STORE_ALL);
    grad_matches_solve(|p| p.driver(Increments), em, &opts, "increments");
    // a fixed grid: also the checkpointed adjoint (it re-queries the path)
    let grid = FixedGrid::new(0.02);
    let em = (EulerMaruyama, Adjoint::Discrete { checkpoints: 4 });
    grad_matches_solve(|p| p.driver(grid), em, &opts, "grid");
    // the cached Brownian interval: the checkpointed adjoint re-queries the
    // path the forward solve kept (queried at the same points, so the same
    // values), and reversible Heun's adjoint walks it backwards
    grad_matches_solve(|p| p.driver(CachedInterval), em, &opts, "interval");
    let strat_interval = |p: Problem<Generic<Drift2>, Generic<Diff2>>| {
        p.interpretation(Interpretation::Stratonovich)
            .driver(CachedInterval)
    };
    let rev = (ReversibleHeun, Adjoint::Reversible);
    grad_matches_solve(strat_interval, rev, &opts, "reversible on an interval");
    // reversible Heun's reversible adjoint walks the grid path backwards
    let strat = |p: Problem<Generic<Drift2>, Generic<Diff2>>| {
        p.interpretation(Interpretation::Stratonovich).driver(grid)
    };
    grad_matches_solve(strat, rev, &opts, "reversible on a grid");
}

/// Drivers that draw each increment once are refused, by name, where the
/// path must be re-queried; nothing is solved first.
#[test]
fn drivers_that_cannot_requery_are_refused_up_front() {
    let opts = Options::default().fixed_step(0.02).seed(1);
    let strat = problem(&P, &Y0)
        .interpretation(Interpretation::Stratonovich)
        .driver(Increments);
    for adjoint in [Adjoint::Reversible, Adjoint::Stochastic] {
        let e = grad(
            &strat,
            ReversibleHeun,
            opts.clone().save_at(SaveAt::T1),
            &loss,
            adjoint,
        )
        .expect_err("cannot walk Increments backwards");
        let msg = e.to_string();
        assert!(
            msg.contains("Increments") && msg.contains("VirtualTree"),
            "{adjoint:?}: {msg}"
        );
    }
    let e = grad(
        &problem(&P, &Y0).driver(Increments),
        EulerMaruyama,
        &opts,
        &loss,
        Adjoint::Discrete { checkpoints: 4 },
    )
    .expect_err("checkpointing recomputes steps on the path");
    assert!(e.to_string().contains("Increments"), "{e}");
    // adaptive steps re-query after a rejection
    let e = solve(
        &problem(&P, &Y0).driver(Increments),
        Sriw1,
        Options::default().tol(1e-3),
    )
    .expect_err("adaptive on increments");
    assert!(
        matches!(&e, SolveError::InvalidInput { what, .. } if what == "driver"),
        "{e}"
    );
}

/// dX = dW (zero drift, unit additive noise), X(0) = 0 on [0, 1]: with
/// any solver the solution is the path.
fn brownian_motion() -> Problem<impl Drift + Clone, impl Diffusion + Clone> {
    Problem::sde(
        |_t: f64, _y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = 0.0,
        |_t: f64, _y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = 1.0,
        Noise::Additive,
        vec![0.0],
        (0.0, 1.0),
    )
}

/// The solution keeps its path: `W` at the saved times is the tree's, and
/// the increments it reports are the ones the solve integrated (an EM
/// solve on additive noise is `y + h f + ΔW`, so the path can be read off
/// the states).
#[test]
fn solution_keeps_the_path_it_was_driven_by() {
    let ou = brownian_motion();
    for adaptive in [false, true] {
        let opts = if adaptive {
            Options::default().tol(1e-3).seed(5)
        } else {
            Options::default().fixed_step(0.05).seed(5)
        };
        // zero drift, unit additive noise: y(t) = W(t) exactly, with any solver
        let sol = solve(&ou, Sra1, &opts).expect("solve");
        let w = sol.brownian_at_saved().expect("kept path");
        let mut tree = BrownianTree::new((0.0, 1.0), 1, 5);
        for (k, &t) in sol.ts.iter().enumerate() {
            let mut wt = [0.0];
            if t > 0.0 {
                tree.increment(0.0, t, &mut wt);
            }
            assert!(
                (w[k] - wt[0]).abs() <= 1e-14,
                "W({t}): kept {} vs tree {}",
                w[k],
                wt[0]
            );
            assert!(
                (sol.ys[k] - w[k]).abs() <= 1e-12,
                "y({t}) = {} but W({t}) = {}",
                sol.ys[k],
                w[k]
            );
        }
        let (mut dw, mut h) = ([0.0], [0.0]);
        sol.brownian_increment(0.25, 0.75, &mut dw, Some(&mut h))
            .expect("increment");
        let mut wt = [0.0];
        tree.increment(0.25, 0.75, &mut wt);
        assert_eq!(dw[0], wt[0]);
        // wrong buffer length: typed error, no panic
        assert!(matches!(
            sol.brownian_increment(0.0, 1.0, &mut [0.0; 2], None),
            Err(SolveError::DimensionMismatch { .. })
        ));
    }
    // direct increments keep nothing, and say what to do instead
    let sol = solve(
        &ou.clone().driver(Increments),
        EulerMaruyama,
        Options::default().fixed_step(0.1),
    )
    .expect("solve");
    let e = sol.brownian_at_saved().expect_err("nothing kept");
    assert!(e.to_string().contains("VirtualTree"), "{e}");
    // an ODE keeps no path either
    let ode = Problem::ode(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
        vec![1.0],
        (0.0, 1.0),
    );
    assert!(
        solve(&ode, Tsit5, Options::default())
            .expect("ode")
            .brownian
            .is_none()
    );
}

/// A sampled path drives EM exactly: with zero drift and unit additive
/// noise the solution is the path itself at the step ends, including steps
/// that do not fall on the samples (the path is linear between samples).
#[test]
fn sampled_path_drives_a_solve() {
    let ts = vec![0.0, 0.3, 0.5, 1.0];
    let w = vec![1.0, 1.6, 0.9, 2.0]; // W(0) = 1: anchored at the first sample
    let driver = SampledPath::new(ts, w, 1).expect("valid samples");
    let p = brownian_motion().driver(driver.clone());
    let sol = solve(&p, EulerMaruyama, Options::default().fixed_step(0.1)).expect("solve");
    let linear = |t: f64| -> f64 {
        if t <= 0.3 {
            0.6 * t / 0.3
        } else if t <= 0.5 {
            0.6 - 0.7 * (t - 0.3) / 0.2
        } else {
            -0.1 + 1.1 * (t - 0.5) / 0.5
        }
    };
    for (k, &t) in sol.ts.iter().enumerate() {
        assert!(
            (sol.ys[k] - linear(t)).abs() < 1e-12,
            "y({t}) = {} vs path {}",
            sol.ys[k],
            linear(t)
        );
    }
    // the sampled path must cover the span and have the problem's dimension
    let short = p.clone().tspan((0.0, 2.0));
    assert!(matches!(
        solve(&short, EulerMaruyama, Options::default().fixed_step(0.1)),
        Err(SolveError::InvalidInput { .. })
    ));
    let diag = Problem::sde(
        |_t: f64, _y: &[f64], _p: &[f64], dy: &mut [f64]| dy.fill(0.0),
        |_t: f64, _y: &[f64], _p: &[f64], g: &mut [f64]| g.fill(1.0),
        Noise::Diagonal,
        vec![0.0, 0.0],
        (0.0, 1.0),
    )
    .driver(driver);
    assert!(matches!(
        solve(&diag, EulerMaruyama, Options::default().fixed_step(0.1)),
        Err(SolveError::DimensionMismatch { .. })
    ));
    // bad samples: typed errors
    assert!(SampledPath::new(vec![0.0], vec![0.0], 1).is_err());
    assert!(SampledPath::new(vec![0.0, 0.0], vec![0.0, 1.0], 1).is_err());
    assert!(SampledPath::new(vec![0.0, 1.0], vec![0.0, f64::NAN], 1).is_err());
    assert!(SampledPath::new(vec![0.0, 1.0], vec![0.0], 1).is_err());
    assert!(matches!(
        solve(
            &Problem::sde(
                |_t: f64, _y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = 0.0,
                |_t: f64, _y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = 1.0,
                Noise::Additive,
                vec![0.0],
                (0.0, 1.0),
            )
            .driver(FixedGrid::new(0.0)),
            EulerMaruyama,
            Options::default().fixed_step(0.1)
        ),
        Err(SolveError::InvalidInput { .. })
    ));
}

/// The fixed grid's path drives a fixed-step solve on its grid exactly: a
/// nonlinear EM solve equals the EM recursion computed by hand from the
/// kept path's increments, and `W(1)` over seeds has the law of Brownian
/// motion.
#[test]
fn fixed_grid_drives_fixed_steps_on_its_grid() {
    let h = 1.0 / 64.0;
    let p = Problem::sde(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0] * y[0] * y[0],
        |_t: f64, _y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = 0.5,
        Noise::Additive,
        vec![1.0],
        (0.0, 1.0),
    )
    .driver(FixedGrid::new(h));
    let sol = solve(&p, EulerMaruyama, Options::default().fixed_step(h).seed(2)).expect("fixed");
    let w = sol.brownian_at_saved().expect("kept path");
    assert_eq!(sol.ts.len(), 65);
    let mut y = 1.0;
    for k in 0..64 {
        y = y + h * (-y * y * y) + 0.5 * (w[k + 1] - w[k]);
        assert!(
            (sol.ys[k + 1] - y).abs() < 1e-12,
            "step {k}: {} vs {y}",
            sol.ys[k + 1]
        );
    }
    // the same seed, the same path; W(1) over seeds: mean 0, variance 1
    // (2000 seeds: the sample variance has standard error sqrt(2/2000) ≈
    // 0.032; 5 standard errors)
    let again = solve(&p, EulerMaruyama, Options::default().fixed_step(h).seed(2)).expect("again");
    assert_eq!(again.ys, sol.ys);
    let n = 2000;
    let w1: Vec<f64> = (0..n)
        .map(|s| {
            let sol =
                solve(&p, EulerMaruyama, Options::default().fixed_step(h).seed(s)).expect("solve");
            let w = sol.brownian_at_saved().expect("kept path");
            w[w.len() - 1]
        })
        .collect();
    let mean = w1.iter().sum::<f64>() / n as f64;
    let var = w1.iter().map(|w| (w - mean) * (w - mean)).sum::<f64>() / (n - 1) as f64;
    assert!(mean.abs() < 5.0 / (n as f64).sqrt(), "mean {mean}");
    assert!(
        (var - 1.0).abs() < 5.0 * (2.0 / n as f64).sqrt(),
        "variance {var}"
    );
}

/// `W` of the piecewise-linear path through `(ts, ws)` (flat outside), by
/// direct interpolation: an independent reference.
fn linear_w(ts: &[f64], ws: &[f64], t: f64) -> f64 {
    if t <= ts[0] {
        return 0.0;
    }
    if t >= ts[ts.len() - 1] {
        return ws[ws.len() - 1] - ws[0];
    }
    let k = ts
        .windows(2)
        .position(|c| c[0] <= t && t <= c[1])
        .expect("inside");
    let th = (t - ts[k]) / (ts[k + 1] - ts[k]);
    ws[k] + th * (ws[k + 1] - ws[k]) - ws[0]
}

proptest! {
    /// A piecewise-linear path answers any interval, in any order, inside
    /// and outside its samples: increments equal direct interpolation,
    /// the space–time Lévy area equals a midpoint Riemann sum of its
    /// definition (4000 cells: error ≲ 1e-6 for these slopes), additivity
    /// holds, and re-queries give the same values.
    #[test]
    fn piecewise_linear_path_is_consistent(
        ws in proptest::collection::vec(-3.0f64..3.0, 6),
        qs in proptest::collection::vec((-0.3f64..1.3, -0.3f64..1.3, -0.3f64..1.3), 1..12),
    ) {
        let ts = vec![0.0, 0.1, 0.35, 0.5, 0.8, 1.0];
        let mut path = PiecewiseLinearPath::new(ts.clone(), ws.clone(), 1).expect("valid");
        for (a, b, c) in qs {
            let mut v = [a, b, c];
            v.sort_by(f64::total_cmp);
            let [s, t, u] = v;
            let (mut st, mut tu, mut su, mut again) = ([0.0], [0.0], [0.0], [0.0]);
            path.increment(t, u, &mut tu);
            path.increment(s, u, &mut su);
            path.increment(s, t, &mut st);
            path.increment(t, u, &mut again);
            let direct = linear_w(&ts, &ws, u) - linear_w(&ts, &ws, s);
            prop_assert!((su[0] - direct).abs() < 1e-12, "W({s},{u}) {} vs {direct}", su[0]);
            prop_assert!((su[0] - st[0] - tu[0]).abs() < 1e-12);
            prop_assert_eq!(again[0], tu[0]);
            // the space–time Lévy area, against its definition
            // H = (1/L) ∫ (W_r − W_s − (r − s)/L · W_{s,u}) dr
            let (mut d1, mut h1, mut d2, mut h2) = ([0.0], [0.0], [0.0], [0.0]);
            path.increment_with_levy_area(s, u, &mut d1, &mut h1);
            path.increment_with_levy_area(u, s, &mut d2, &mut h2);
            let len = u - s;
            if len > 1e-3 {
                let cells = 4000;
                let riemann: f64 = (0..cells)
                    .map(|i| {
                        let r = s + (i as f64 + 0.5) * len / cells as f64;
                        linear_w(&ts, &ws, r) - linear_w(&ts, &ws, s) - (r - s) / len * direct
                    })
                    .sum::<f64>()
                    / cells as f64;
                prop_assert!((h1[0] - riemann).abs() < 1e-5, "H {} vs {riemann}", h1[0]);
            }
            prop_assert!((d1[0] + d2[0]).abs() < 1e-15 && (h1[0] - h2[0]).abs() < 1e-15);
        }
    }
}

/// Observers see every attempted step with its size, error norm and
/// verdict: as many reports as accepted plus rejected steps, rejected ones
/// with a norm above 1 and accepted ones at or below it (the PI controller's
/// rule), sizes that add up to the span over the accepted steps.
#[test]
fn observers_see_every_attempted_step() {
    use sdeflow::observe::{StepObserver, StepReport, integrate_observed};
    /// What a report says, kept past the call (its vectors are borrowed).
    #[derive(Debug)]
    struct Seen {
        h: f64,
        err_norm: Option<f64>,
        accepted: bool,
        has_err: bool,
    }
    struct Reports(Vec<Seen>);
    impl StepObserver for Reports {
        fn accepted(&mut self, _: usize, _: f64, _: f64, _: &[f64], _: &[f64]) {}
        fn attempted(&mut self, report: &StepReport<'_>) {
            assert_eq!(report.y.len(), report.y_new.len());
            self.0.push(Seen {
                h: report.h,
                err_norm: report.err_norm,
                accepted: report.accepted,
                has_err: report.err.is_some_and(|e| e.len() == report.y.len()),
            });
        }
    }
    let p = problem(&P, &Y0);
    for (opts, adaptive) in [
        (Options::default().tol(1e-4).seed(3), true),
        (Options::default().fixed_step(0.05).seed(3), false),
    ] {
        let mut seen = Reports(Vec::new());
        let sol = integrate_observed(&p, &Sriw1, &opts, &mut seen).expect("solve");
        let r = &seen.0;
        assert_eq!(r.len(), sol.stats.accepted_steps + sol.stats.rejected_steps);
        let accepted: Vec<&Seen> = r.iter().filter(|s| s.accepted).collect();
        assert_eq!(accepted.len(), sol.stats.accepted_steps);
        let span: f64 = accepted.iter().map(|s| s.h).sum();
        assert!((span - 1.0).abs() < 1e-12, "accepted steps cover {span}");
        for s in r {
            match (adaptive, s.err_norm) {
                (true, Some(e)) => {
                    assert_eq!(s.accepted, e <= 1.0, "{s:?}");
                    assert!(s.has_err, "{s:?}");
                }
                (false, None) => assert!(s.accepted && !s.has_err, "{s:?}"),
                _ => panic!("unexpected report {s:?}"),
            }
        }
        if adaptive {
            assert!(sol.stats.rejected_steps > 0, "expected some rejections");
        }
    }
}

/// Each attempt's report carries its Brownian increment (and Lévy area
/// where the solver draws it): over the accepted steps the increments add
/// up to `W(t1) − W(t0)` of the solution's path, for one Brownian motion
/// (the fixed-step loop's one-element buffer) and for two, fixed or
/// adaptive; an ODE's reports carry none.
#[test]
fn reports_carry_the_steps_noise() {
    use sdeflow::observe::{StepObserver, StepReport, integrate_observed};
    /// The sum of the accepted increments, and the lengths seen.
    struct Sum {
        dw: Vec<f64>,
        levy_len: Option<usize>,
    }
    impl StepObserver for Sum {
        fn accepted(&mut self, _: usize, _: f64, _: f64, _: &[f64], _: &[f64]) {}
        fn attempted(&mut self, r: &StepReport<'_>) {
            assert_eq!(r.noise.dw.len(), self.dw.len());
            self.levy_len = Some(r.noise.levy_h.len());
            if r.accepted {
                for (s, d) in self.dw.iter_mut().zip(r.noise.dw) {
                    *s += d;
                }
            }
        }
    }
    /// Checks the sum against the path of `sol`, on `[0, 1]`.
    fn check(sum: &Sum, sol: &Solution, levy: usize) {
        let mut w = vec![0.0; sum.dw.len()];
        sol.brownian_increment(0.0, 1.0, &mut w, None)
            .expect("the path is kept");
        for (s, w) in sum.dw.iter().zip(&w) {
            // the tree's increments over adjacent steps add up to its
            // increment over the span, to rounding
            assert!((s - w).abs() < 1e-12, "sum {s} vs W(1) - W(0) = {w}");
        }
        assert_eq!(sum.levy_len, Some(levy));
    }
    let two = problem(&P, &Y0);
    let one = common::gbm(1.0, 0.5);
    let fixed = Options::default().fixed_step(0.01).seed(4);
    let adaptive = Options::default().tol(1e-3).seed(4);
    let new = |m: usize| Sum {
        dw: vec![0.0; m],
        levy_len: None,
    };
    let mut s = new(2);
    let sol = integrate_observed(&two, &EulerMaruyama, &fixed, &mut s).expect("EM, m = 2");
    check(&s, &sol, 0);
    let mut s = new(2);
    let sol = integrate_observed(&two, &Sriw1, &adaptive, &mut s).expect("SRIW1, m = 2");
    assert!(sol.stats.rejected_steps > 0);
    check(&s, &sol, 2);
    let mut s = new(1);
    let sol = integrate_observed(&one, &Sriw1, &fixed, &mut s).expect("SRIW1, m = 1");
    check(&s, &sol, 1);
    let ode = Problem::ode(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
        vec![1.0],
        (0.0, 1.0),
    );
    let mut s = new(0);
    integrate_observed(&ode, &Tsit5, &Options::default(), &mut s).expect("ODE");
    assert_eq!(s.levy_len, Some(0));
}
