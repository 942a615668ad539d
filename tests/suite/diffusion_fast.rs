//! DPM-Solver-fast (`DpmSolverFast`): the budget spent exactly, the model
//! evaluated at the reference's times, its steps equal to DPM-Solver-3 and
//! -2 on the uniform-λ grid, its measured orders (3 when the orders end in
//! 2, 2 when they end in 1), gradients against central differences, and
//! its settings' errors.

use std::cell::RefCell;
use std::rc::Rc;

use crate::common::fitted_slope;
use crate::diffusion::{BoxedModel, T_END};
use crate::diffusion_gradients::check_against_fd;
use sdeflow::diffusion::*;
use sdeflow::prelude::*;

const T: f64 = 1.0;

/// The probability flow of N((0.5, −1), diag(0.09, 2)) from `x_t` over
/// `span`, recording the times the model is evaluated at.
fn gaussian_flow(
    x_t: Vec<f64>,
    span: (f64, f64),
) -> (DiffusionOde<BoxedModel, VpLinear>, Rc<RefCell<Vec<f64>>>) {
    let s = VpLinear::default();
    let g = DiagonalGaussian::new(vec![0.5, -1.0], vec![0.09, 2.0]).expect("valid");
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    let model: BoxedModel = Box::new(move |t, x, _p, out| {
        log.borrow_mut().push(t);
        g.noise(&s, t, x, out);
    });
    (
        probability_flow(model, Parametrisation::Noise, s, x_t, span),
        seen,
    )
}

const X_T: [f64; 8] = [-2.0, 1.5, -0.5, -0.3, 1.0, 0.8, 2.5, -1.9];

/// Every budget is spent exactly, in `steps()` steps; on a grid other than
/// uniform λ the model is evaluated at exactly the `nfe`-step grid's times
/// (the reference's outer points at the cumulative orders, intermediate
/// points the grid's inner points), each once.
#[test]
fn the_budget_is_spent_at_the_grid_times() {
    let s = VpLinear::default();
    for grid in [
        TimeGrid::TimeQuadratic,
        TimeGrid::UniformT,
        TimeGrid::Karras { rho: 7.0 },
        TimeGrid::UniformLambda,
    ] {
        for order in 1..=3 {
            for nfe in [1, 2, 3, 4, 5, 9, 10, 11, 20] {
                let fast = DpmSolverFast::new(nfe, grid).with_order(order);
                let (prob, seen) = gaussian_flow(X_T.to_vec(), (T, T_END));
                let sol =
                    solve(&prob, fast, fast.options(&s, T, T_END).expect("grid")).expect("solves");
                let what = format!("{grid:?}, order {order}, nfe {nfe}");
                assert_eq!(sol.stats.drift_evals, nfe, "{what}");
                assert_eq!(sol.stats.accepted_steps, fast.steps(), "{what}");
                if grid == TimeGrid::UniformLambda {
                    continue;
                }
                let want = grid.times(&s, T, T_END, nfe).expect("grid");
                let mut got = seen.borrow().clone();
                got.sort_by(|a, b| b.total_cmp(a));
                assert_eq!(got.len(), nfe, "{what}");
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-12 * w,
                        "{what}: evaluated at {got:?}, grid {want:?}"
                    );
                }
            }
        }
    }
}

/// On the uniform-λ grid with `nfe = 3m + 2` the steps are `m` of
/// DPM-Solver-3 and one of DPM-Solver-2 (`r1 = ⅓, ⅔` and `½`): the same
/// result, to rounding, as DPM-Solver-3 over the first `m` outer steps
/// followed by one DPM-Solver-2 step.
#[test]
fn on_the_lambda_grid_the_steps_are_dpm_solver_3_then_2() {
    let s = VpLinear::default();
    let m = 5;
    let fast = DpmSolverFast::new(3 * m + 2, TimeGrid::UniformLambda);
    let (prob, _) = gaussian_flow(X_T.to_vec(), (T, T_END));
    let got = solve(&prob, fast, fast.options(&s, T, T_END).expect("grid")).expect("solves");
    let ts = TimeGrid::UniformLambda
        .times(&s, T, T_END, m + 1)
        .expect("grid");
    let (first, _) = gaussian_flow(X_T.to_vec(), (T, ts[m]));
    let mid = solve(
        &first,
        DpmSolver3,
        Options::default().grid(ts[1..m].to_vec()),
    )
    .expect("DPM-Solver-3");
    let (last, _) = gaussian_flow(mid.last().to_vec(), (ts[m], T_END));
    let want = solve(
        &last,
        DpmSolver2,
        Options::default().fixed_step(ts[m] - T_END),
    )
    .expect("DPM-Solver-2");
    for (a, b) in got.last().iter().zip(want.last()) {
        assert!(
            (a - b).abs() < 1e-12,
            "{:?} vs {:?}",
            got.last(),
            want.last()
        );
    }
}

/// Max error against the exact Gaussian map to `t_end` with a budget of
/// `nfe`.
fn error(nfe: usize, grid: TimeGrid, t_end: f64) -> f64 {
    let s = VpLinear::default();
    let fast = DpmSolverFast::new(nfe, grid);
    let (prob, _) = gaussian_flow(X_T.to_vec(), (T, t_end));
    let sol = solve(&prob, fast, fast.options(&s, T, t_end).expect("grid")).expect("solves");
    let g = DiagonalGaussian::new(vec![0.5, -1.0], vec![0.09, 2.0]).expect("valid");
    let mut exact = [0.0; 8];
    g.flow_map(&s, T, t_end, &X_T, &mut exact);
    sol.last()
        .iter()
        .zip(&exact)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

/// Orders fitted over five budgets (steps `K` = 8…128): with the orders
/// ending in 2 (`nfe = 3K − 1`) at least 2.8 (measured 3.06 on uniform λ,
/// 3.08 on t²); ending in 1 (`nfe = 3K − 2`) the last step's `O(h²)` local
/// error makes it second order (within 0.3 of 2; measured 1.97, 2.01), and
/// `Sampler::order` says so.
#[test]
fn measured_orders_follow_the_last_step() {
    let ks = [8usize, 16, 32, 64, 128];
    let hs: Vec<f64> = ks.iter().map(|&k| 1.0 / k as f64).collect();
    let t_end: f64 = std::env::var("TEND")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.3);
    for grid in [TimeGrid::UniformLambda, TimeGrid::TimeQuadratic] {
        let fit = |nfe: &dyn Fn(usize) -> usize| {
            let errs: Vec<f64> = ks.iter().map(|&k| error(nfe(k), grid, t_end)).collect();
            let slope = fitted_slope(&hs, &errs);
            println!("{grid:?}: order {slope:.3}; errors {errs:?}");
            slope
        };
        let ends_in_2 = fit(&|k| 3 * k - 1);
        assert!(
            ends_in_2 >= 2.8,
            "{grid:?}, ending in order 2: {ends_in_2:.3}"
        );
        assert_eq!(Sampler::order(&DpmSolverFast::new(3 * 8 - 1, grid)), 3.0);
        let ends_in_1 = fit(&|k| 3 * k - 2);
        assert!(
            (ends_in_1 - 2.0).abs() <= 0.3,
            "{grid:?}, ending in order 1: {ends_in_1:.3}"
        );
        assert_eq!(Sampler::order(&DpmSolverFast::new(3 * 8 - 2, grid)), 2.0);
    }
}

/// The step VJP reads each step's own order: the step index is kept in
/// the carried state (`Sampler::reads_step_index`; without it every
/// step's VJP took order 3 — 2 % off).
#[test]
fn gradients_match_finite_differences() {
    // orders 3, 3, 3, 2 and 3, 3, 3, 2, 1 on the uniform-λ grid (whose
    // `steps()` outer steps are the test's grid)
    check_against_fd(DpmSolverFast::new(11, TimeGrid::UniformLambda), 4);
    check_against_fd(DpmSolverFast::new(12, TimeGrid::UniformLambda), 5);
    check_against_fd(
        DpmSolverFast::new(7, TimeGrid::UniformLambda).with_order(2),
        4,
    );
}

#[test]
fn bad_settings_are_typed_errors() {
    let s = VpLinear::default();
    let (prob, _) = gaussian_flow(X_T.to_vec(), (T, T_END));
    let grid = TimeGrid::UniformLambda
        .options(&s, T, T_END, 4)
        .expect("grid");
    for (fast, what) in [
        (DpmSolverFast::new(0, TimeGrid::UniformLambda), "nfe"),
        (
            DpmSolverFast::new(10, TimeGrid::UniformLambda).with_order(4),
            "order",
        ),
        (
            DpmSolverFast::new(10, TimeGrid::UniformLambda).with_order(0),
            "order",
        ),
    ] {
        let e = solve(&prob, fast, grid.clone()).unwrap_err();
        assert!(matches!(e, SolveError::InvalidInput { .. }), "{e}");
        assert!(e.to_string().contains(what), "{e}");
        assert!(fast.options(&s, T, T_END).is_err());
    }
}
