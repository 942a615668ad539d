//! Property tests: no panic on any finite input, and dense output consistent
//! with the saved steps.

use proptest::prelude::*;
use sdeflow::prelude::*;

fn field(t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
    // polynomial field that may blow up for some inputs
    dy[0] = p[0] * y[0] - p[1] * y[0] * y[1] + t.sin();
    dy[1] = -p[2] * y[1] + p[3] * y[0] * y[1] * y[1];
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![-1e3..1e3f64, -1e-3..1e-3f64, Just(0.0)]
}

/// A state of 2 and parameters of 4 finite values: the inputs of the
/// fields below.
fn state_and_params() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
    (
        prop::collection::vec(finite(), 2),
        prop::collection::vec(finite(), 4),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_panic_on_any_finite_input(
        (y0, p) in state_and_params(),
        t0 in -10.0..10.0f64,
        len in prop_oneof![-5.0..-1e-6f64, 1e-6..5.0f64],
        rtol in prop_oneof![1e-12..1e-1f64, any::<f64>()],
        atol in prop_oneof![1e-12..1e-1f64, any::<f64>()],
        which in 0usize..5,
    ) {
        let prob = Problem::ode(field, y0, (t0, t0 + len)).params(p);
        let opts = Options::default().rtol(rtol).atol(atol).max_steps(500).save_at(SaveAt::Dense);
        let result = match which {
            0 => solve(&prob, Tsit5, &opts),
            1 => solve(&prob, Vern7, &opts),
            2 => solve(&prob, Bs3, &opts),
            3 => solve(&prob, Dopri5, &opts),
            _ => solve(&prob, Bdf::default(), &opts),
        };
        match result {
            Ok(sol) => {
                prop_assert_eq!(sol.status, Status::Success);
                prop_assert_eq!(sol.t_last(), Some(t0 + len));
                prop_assert!(sol.last().iter().all(|v| v.is_finite()));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn dense_output_passes_through_the_saved_steps(
        y0 in prop::collection::vec(0.1..2.0f64, 2),
        t1 in 0.5..5.0f64,
        tol in 1e-10..1e-3f64,
    ) {
        let prob = Problem::ode(field, y0, (0.0, t1)).params(vec![1.5, 1.0, 3.0, 0.1]);
        let opts = Options::default().tol(tol).save_at(SaveAt::Dense).max_steps(5000);
        if let Ok(sol) = solve(&prob, Tsit5, &opts) {
            for (t, y) in sol.iter() {
                let d = sol.at(t).expect("t inside the span");
                for (a, b) in d.iter().zip(y) {
                    prop_assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "t={} {} vs {}", t, a, b);
                }
            }
        }
    }
}

fn sde_drift(t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
    dy[0] = p[0] * y[0] - y[0] * y[1] + t.cos();
    dy[1] = -p[1] * y[1] + y[0] * y[0];
}

fn sde_diffusion(_t: f64, y: &[f64], p: &[f64], g: &mut [f64]) {
    g[0] = p[2] * y[0];
    g[1] = p[3] * (1.0 + y[1] * y[1]).sqrt();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any finite input gives a solution or a typed error, never a panic,
    /// for every SDE solver.
    #[test]
    fn sde_solvers_never_panic(
        (y0, p) in state_and_params(),
        len in 1e-6..3.0f64,
        tol in prop_oneof![1e-8..1e-1f64, any::<f64>()],
        seed in any::<u64>(),
        which in 0usize..7,
    ) {
        let prob = Problem::sde(sde_drift, sde_diffusion, Noise::Diagonal, y0, (0.0, len)).params(p);
        let adaptive = Options::default().tol(tol).seed(seed).max_steps(400);
        let fixed = Options::default().fixed_step(len / 50.0).seed(seed);
        let strat = prob.clone().interpretation(Interpretation::Stratonovich);
        let result = match which {
            0 => solve(&prob, EulerMaruyama, &fixed),
            1 => solve(&prob, Milstein::default(), &fixed),
            2 => solve(&prob, Sriw1, &adaptive),
            3 => solve(&prob, Sosri, &adaptive),
            4 => solve(&strat, EulerHeun, &fixed),
            5 => solve(&strat, ReversibleHeun, &adaptive),
            _ => solve(&strat, Milstein::default(), &fixed),
        };
        if let Ok(sol) = result {
            prop_assert_eq!(sol.t_last(), Some(len));
            prop_assert!(sol.last().iter().all(|v| v.is_finite()));
        }
    }

    /// The same seed gives bit-identical SDE solutions; a solve does not
    /// depend on anything but its inputs.
    #[test]
    fn sde_solves_are_deterministic(seed in any::<u64>(), tol in 1e-5..1e-2f64) {
        let prob = Problem::sde(sde_drift, sde_diffusion, Noise::Diagonal, vec![0.5, 0.2], (0.0, 1.0))
            .params(vec![-1.0, 2.0, 0.3, 0.2]);
        let opts = Options::default().tol(tol).seed(seed);
        let a = solve(&prob, Sriw1, &opts);
        let b = solve(&prob, Sriw1, &opts);
        match (a, b) {
            (Ok(a), Ok(b)) => {
                prop_assert_eq!(a.ts, b.ts);
                prop_assert_eq!(a.ys, b.ys);
                prop_assert_eq!(a.stats, b.stats);
            }
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            _ => prop_assert!(false, "one solve failed and the other did not"),
        }
    }
}
