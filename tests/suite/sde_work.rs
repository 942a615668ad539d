//! The work table of `docs/sde.md`: drift and diffusion evaluations of each
//! SDE solver on `N` fixed steps, counted by the solution's statistics
//! (`c + k N`: `k` per step and `c` once), printed and asserted.

use sdeflow::prelude::*;

/// dX = -X dt + 0.5 X dW (diagonal noise), or dX = -X dt + 0.5 dW
/// (additive noise).
fn problem(additive: bool, strat: bool) -> Problem<impl Drift, impl Diffusion> {
    let noise = if additive {
        Noise::Additive
    } else {
        Noise::Diagonal
    };
    let interpretation = if strat {
        Interpretation::Stratonovich
    } else {
        Interpretation::Ito
    };
    Problem::sde(
        |_t, y, _p, dy| dy[0] = -y[0],
        move |_t, y, _p, g| g[0] = if additive { 0.5 } else { 0.5 * y[0] },
        noise,
        vec![1.0],
        (0.0, 1.0),
    )
    .interpretation(interpretation)
}

/// `((drift per step, once), (diffusion per step, once))` of `$solver`,
/// from solves with 100 and 200 fixed steps.
macro_rules! work {
    ($solver:expr, $additive:expr, $strat:expr) => {{
        let stats = |n: usize| {
            let opts = Options::default()
                .fixed_step(1.0 / n as f64)
                .save_at(SaveAt::T1);
            let s = solve(&problem($additive, $strat), $solver, opts)
                .expect("solve")
                .stats;
            (s.drift_evals as i64, s.diffusion_evals as i64)
        };
        let ((f1, g1), (f2, g2)) = (stats(100), stats(200));
        let (kf, kg) = ((f2 - f1) / 100, (g2 - g1) / 100);
        let w = ((kf, f1 - 100 * kf), (kg, g1 - 100 * kg));
        println!(
            "{:<28} drift {} N + {}, diffusion {} N + {}",
            stringify!($solver),
            w.0.0,
            w.0.1,
            w.1.0,
            w.1.1
        );
        w
    }};
    ($solver:expr, $additive:expr) => {
        work!($solver, $additive, false)
    };
}

/// `((drift per step, once), (diffusion per step, once))`.
type Work = ((i64, i64), (i64, i64));

/// Compares after printing every row, so one run shows the whole table.
fn check(got: Work, want: Work) {
    CHECKS.with(|c| c.borrow_mut().push((got, want)));
}

thread_local! {
    static CHECKS: std::cell::RefCell<Vec<(Work, Work)>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[test]
fn evaluations_per_fixed_step_match_the_table() {
    // (per step, once) for drift and diffusion, as docs/sde.md states them
    check(work!(EulerMaruyama, false), ((1, 0), (1, 0)));
    check(work!(EulerHeun, false, true), ((1, 0), (2, 0)));
    check(work!(Milstein::default(), false), ((1, 0), (2, 0)));
    check(work!(Milstein::default(), false, true), ((1, 0), (3, 0)));
    check(work!(Sriw1, false), ((2, 0), (4, 0)));
    check(work!(Sosri, false), ((4, 0), (4, 0)));
    check(work!(Sra1, true), ((2, 0), (2, 1)));
    check(work!(Sra3, true), ((3, 0), (2, 1)));
    check(work!(ReversibleHeun, false, true), ((1, 1), (1, 1)));
    CHECKS.with(|c| {
        for (i, (got, want)) in c.borrow().iter().enumerate() {
            assert_eq!(got, want, "row {i}");
        }
    });
}

/// `(drift, diffusion, N, A)` of an adaptive solve (`N` accepted steps,
/// `A` attempts).
macro_rules! adaptive {
    ($solver:expr, $additive:expr, $strat:expr) => {{
        let opts = Options::default().tol(1e-4).save_at(SaveAt::T1).seed(3);
        let s = solve(&problem($additive, $strat), $solver, opts)
            .expect("solve")
            .stats;
        let (n, a) = (s.accepted_steps, s.accepted_steps + s.rejected_steps);
        println!(
            "{:<16} adaptive: drift {}, diffusion {}, N {n}, A {a}",
            stringify!($solver),
            s.drift_evals,
            s.diffusion_evals
        );
        (s.drift_evals, s.diffusion_evals, n, a)
    }};
}

#[test]
fn evaluations_of_adaptive_solves_match_the_table() {
    let (f, g, n, a) = adaptive!(Sriw1, false, false);
    assert!(
        a > n,
        "the test wants rejected steps: tighten the tolerance"
    );
    assert_eq!((f, g), (1 + n + a, n + 3 * a), "Sriw1");
    let (f, g, n, a) = adaptive!(Sra1, true, false);
    assert_eq!((f, g), (1 + n + a, 1 + 2 * a), "Sra1");
    let (f, g, _, a) = adaptive!(ReversibleHeun, false, true);
    assert_eq!((f, g), (2 + a, 1 + a), "ReversibleHeun");
}
