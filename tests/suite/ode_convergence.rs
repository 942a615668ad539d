//! Measured convergence orders of the explicit RK methods: fixed steps on a
//! problem with an exact solution, least-squares slope of log(error) vs
//! log(h), asserted within 0.2 of the classical order.

use crate::common;
use common::{Rhs, fitted_slope};
use sdeflow::prelude::*;

/// y' = y cos t, y(0) = 1  ⇒  y = exp(sin t), on [0, 2]; plus a rotating
/// component z' = (−w, v) so that the test is a system.
fn problem() -> Problem<Rhs> {
    Problem::<Rhs>::ode(
        |t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| {
            dy[0] = y[0] * t.cos();
            dy[1] = -y[2];
            dy[2] = y[1];
        },
        vec![1.0, 1.0, 0.0],
        (0.0, 2.0),
    )
}

fn exact(t: f64) -> [f64; 3] {
    [t.sin().exp(), t.cos(), t.sin()]
}

fn measured_order<S: Solver<Problem<Rhs>> + Copy>(solver: S, steps: &[usize]) -> (f64, Vec<f64>) {
    let p = problem();
    let mut hs = Vec::new();
    let mut errs = Vec::new();
    for &n in steps {
        let h = 2.0 / n as f64;
        let sol = solve(
            &p,
            solver,
            Options::default().fixed_step(h).save_at(SaveAt::T1),
        )
        .expect("fixed-step solve");
        assert_eq!(sol.stats.accepted_steps, n);
        let e = common::max_abs_diff(sol.last(), &exact(2.0));
        hs.push(h);
        errs.push(e);
    }
    (fitted_slope(&hs, &errs), errs)
}

fn check<S: Solver<Problem<Rhs>> + Copy>(solver: S, order: f64, steps: &[usize]) {
    let (slope, errs) = measured_order(solver, steps);
    println!(
        "{}: slope {slope:.3} (theory {order}), errors {errs:?}",
        solver.name()
    );
    assert!(
        (slope - order).abs() <= 0.2,
        "{}: measured order {slope:.3}, theory {order}; errors {errs:?}",
        solver.name()
    );
}

/// One test per method: `name: solver, classical order, step counts;`.
macro_rules! order_tests {
    ($($name:ident: $solver:expr, $order:expr, $steps:expr;)*) => {$(
        #[test]
        fn $name() {
            check($solver, $order, &$steps);
        }
    )*};
}

order_tests! {
    euler_is_order_1: Euler, 1.0, [256, 512, 1024, 2048, 4096];
    heun_is_order_2: Heun, 2.0, [64, 128, 256, 512, 1024];
    bs3_is_order_3: Bs3, 3.0, [32, 64, 128, 256, 512];
    dopri5_is_order_5: Dopri5, 5.0, [16, 24, 32, 48, 64];
    tsit5_is_order_5: Tsit5, 5.0, [16, 24, 32, 48, 64];
    vern7_is_order_7: Vern7, 7.0, [8, 10, 12, 16, 20];
}

/// The dense output of each method converges at (at least) its stated
/// interpolant order: the maximum error over a fine grid of interior times
/// falls like h^(q+1) locally, h^q globally — we check the slope is at least
/// the interpolant order minus 0.2.
#[test]
fn dense_output_converges() {
    fn dense_err<S: Solver<Problem<Rhs>> + Copy>(s: S, n: usize) -> f64 {
        let p = problem();
        let sol = solve(
            &p,
            s,
            Options::default()
                .fixed_step(2.0 / n as f64)
                .save_at(SaveAt::Dense),
        )
        .expect("dense solve");
        (1..200)
            .map(|i| {
                let t = 2.0 * i as f64 / 200.0 + 1e-3;
                let y = sol.at(t).expect("inside span");
                common::max_abs_diff(&y, &exact(t))
            })
            .fold(0.0, f64::max)
    }
    /// The slope of the dense errors of `s` at the step counts `levels` is
    /// at least the interpolant order `q` minus 0.2.
    fn check_dense<S: Solver<Problem<Rhs>> + Copy>(s: S, q: f64, levels: [usize; 3]) {
        let name = s.name();
        let errs = levels.map(|n| dense_err(s, n));
        let hs = levels.map(|n| 2.0 / n as f64);
        let slope = fitted_slope(&hs, &errs);
        println!("{name} dense: slope {slope:.2}, errors {errs:?}");
        assert!(
            slope >= q - 0.2,
            "{name}: dense slope {slope} < {q} - 0.2 ({errs:?})"
        );
    }
    check_dense(Bs3, 3.0, [32, 64, 128]);
    check_dense(Dopri5, 4.0, [16, 32, 64]);
    check_dense(Tsit5, 4.0, [16, 32, 64]);
    check_dense(Vern7, 6.0, [8, 16, 32]);
}
