//! Step control beyond a uniform grid or a free controller: times every
//! step must land on (`Options::step_to`, diffrax's `step_ts`), and fixed
//! steps on a given non-uniform grid (`Options::grid`, a sampler's time
//! grid), through `solve`, `grad` and the adjoints' replays; bad step times
//! are typed errors.

use sdeflow::prelude::*;

use crate::common;
use common::last_entry_loss;

/// `y' = -p0 y`, exact `y0 e^{-p0 t}`.
#[derive(Clone, Copy)]
struct Decay;
impl GenericField for Decay {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = -p[0] * y[0];
    }
}

fn decay() -> Problem<Generic<Decay>> {
    Problem::ode_field(Generic(Decay), vec![1.0], (0.0, 1.0)).params(vec![1.3])
}

#[test]
fn adaptive_steps_land_on_every_stop_time() {
    let stops = vec![0.123, 0.5, 0.5000001, 0.77];
    let opts = Options::default().rtol(1e-9).atol(1e-12);
    let free = solve(&decay(), Tsit5, &opts).expect("free solve");
    let sol = solve(&decay(), Tsit5, opts.clone().step_to(stops.clone())).expect("solve");
    for s in &stops {
        assert!(sol.ts.contains(s), "no step ends at {s}: {:?}", sol.ts);
        assert!(
            !free.ts.contains(s),
            "the free solve lands on {s} by chance"
        );
    }
    let exact = (-1.3f64).exp();
    let (e_free, e_stops) = (
        (free.last()[0] - exact).abs(),
        (sol.last()[0] - exact).abs(),
    );
    println!(
        "free: {} steps, error {e_free:.1e}; with stops: {} steps, error {e_stops:.1e}",
        free.stats.accepted_steps, sol.stats.accepted_steps
    );
    // clipping only shortens steps: no less accurate than the tolerance
    assert!(e_stops < 1e-8, "error {e_stops:e}");
    // a step cut short by a stop does not shrink the next one: a stop 1e-7
    // after another costs one tiny step, not a cascade of regrowing steps
    assert!(
        sol.stats.accepted_steps <= free.stats.accepted_steps + stops.len() + 2,
        "{} steps with stops vs {} without",
        sol.stats.accepted_steps,
        free.stats.accepted_steps
    );
}

#[test]
fn a_given_grid_is_stepped_exactly() {
    let grid = vec![0.1, 0.25, 0.3, 0.6, 0.95];
    let opts = Options::default().grid(grid.clone());
    let sol = solve(&decay(), Euler, &opts).expect("grid solve");
    let mut ts = vec![0.0];
    ts.extend_from_slice(&grid);
    ts.push(1.0);
    assert_eq!(sol.ts, ts, "the steps are the grid");
    // Euler on y' = -p y: y_{k+1} = (1 - p h_k) y_k, to rounding
    let mut y = 1.0;
    for w in ts.windows(2) {
        y *= 1.0 - 1.3 * (w[1] - w[0]);
    }
    assert!(
        (sol.last()[0] - y).abs() < 1e-15,
        "{} vs {y}",
        sol.last()[0]
    );
    // the discrete adjoint replays the grid from its snapshots:
    // dL/dy0 = Π (1 - p h_k), dL/dp = Σ_k -h_k Π_{j≠k} (1 - p h_j)
    for checkpoints in [2, usize::MAX] {
        let g = grad(
            &decay(),
            Euler,
            opts.clone().save_at(SaveAt::T1),
            &last_entry_loss,
            Adjoint::Discrete { checkpoints },
        )
        .expect("grad on a grid");
        assert!((g.dy0[0] - y).abs() < 1e-15, "dL/dy0 {} vs {y}", g.dy0[0]);
        let dp: f64 = ts
            .windows(2)
            .map(|w| -(w[1] - w[0]) * y / (1.0 - 1.3 * (w[1] - w[0])))
            .sum();
        assert!(
            (g.dp[0] - dp).abs() < 1e-14,
            "budget {checkpoints}: dL/dp {} vs {dp}",
            g.dp[0]
        );
    }
}

#[test]
fn adaptive_gradient_with_stops_matches_finite_differences() {
    let opts = Options::default()
        .rtol(1e-10)
        .atol(1e-12)
        .step_to(vec![0.2, 0.4, 0.9])
        .save_at(SaveAt::T1);
    let g = grad(
        &decay(),
        Tsit5,
        &opts,
        &last_entry_loss,
        Adjoint::Discrete { checkpoints: 3 },
    )
    .expect("grad");
    let at = |p: f64| {
        solve(&decay().params(vec![p]), Tsit5, &opts)
            .expect("solve")
            .last()[0]
    };
    let d = 1e-6;
    let fd = (at(1.3 + d) - at(1.3 - d)) / (2.0 * d);
    // the discrete adjoint differentiates the computed solution; FD of
    // tolerance-1e-10 solves agrees to ~1e-8 relative
    assert!(
        (g.dp[0] - fd).abs() < 1e-7 * fd.abs(),
        "{} vs {fd}",
        g.dp[0]
    );
}

#[test]
fn bad_step_times_are_typed_errors() {
    let p = decay();
    for (why, opts) in [
        ("outside", Options::default().step_to(vec![1.5])),
        ("at t0", Options::default().step_to(vec![0.0])),
        ("at t1", Options::default().step_to(vec![1.0])),
        ("not increasing", Options::default().step_to(vec![0.5, 0.4])),
        ("repeated", Options::default().step_to(vec![0.5, 0.5])),
        ("NaN", Options::default().step_to(vec![f64::NAN])),
        (
            "dt0 and times",
            Options::default().fixed_step(0.1).step_to(vec![0.5]),
        ),
    ] {
        match solve(&p, Tsit5, &opts) {
            Err(SolveError::InvalidInput { what, .. }) => {
                assert!(what.starts_with("step_to"), "{why}: {what}")
            }
            other => panic!("{why}: expected InvalidInput, got {other:?}"),
        }
    }
    // a reversed span steps to times in its own direction
    let back = Problem::ode_field(Generic(Decay), vec![1.0], (1.0, 0.0)).params(vec![1.3]);
    let sol = solve(&back, Euler, Options::default().grid(vec![0.7, 0.2])).expect("reversed");
    assert_eq!(sol.ts, vec![1.0, 0.7, 0.2, 0.0]);
}

/// The default controller takes each method's recommended PI gains: the
/// explicit pairs of order ≥ 5 step exactly as with `β1 = 1/k`,
/// `β2 = 0.3/k`, safety 0.85 given by hand, Bs3 as with Gustafsson's
/// `0.7/k`, `0.4/k`, safety 0.9; a controller given by hand is used as is.
#[test]
fn default_controller_takes_the_methods_pi_gains() {
    use sdeflow::control::{PiController, PiGains};
    let p = common::lotka_volterra();
    let base = Options::default().tol(1e-7).save_at(SaveAt::T1);
    let by_hand = |g: PiGains, k: f64| {
        base.clone()
            .controller(PiController::new(g.g1 / k, g.g2 / k).with_safety(g.safety))
    };
    let steps = |sol: Solution| (sol.stats.accepted_steps, sol.stats.rejected_steps);
    let rk = PiGains::EXPLICIT_RK;
    let run = |opts: &Options| -> [(usize, usize); 4] {
        [
            steps(solve(&p, Tsit5, opts).expect("Tsit5")),
            steps(solve(&p, Dopri5, opts).expect("Dopri5")),
            steps(solve(&p, Vern7, opts).expect("Vern7")),
            steps(solve(&p, Bs3, opts).expect("Bs3")),
        ]
    };
    let default = run(&base);
    assert_eq!(
        default[0],
        steps(solve(&p, Tsit5, by_hand(rk, 5.0)).unwrap())
    );
    assert_eq!(
        default[1],
        steps(solve(&p, Dopri5, by_hand(rk, 5.0)).unwrap())
    );
    assert_eq!(
        default[2],
        steps(solve(&p, Vern7, by_hand(rk, 7.0)).unwrap())
    );
    let gus = PiGains::GUSTAFSSON;
    assert_eq!(
        default[3],
        steps(solve(&p, Bs3, by_hand(gus, 3.0)).unwrap())
    );
    // Gustafsson's gains by hand are not overridden, and step differently
    let tsit5_gus = steps(solve(&p, Tsit5, by_hand(gus, 5.0)).unwrap());
    assert_ne!(default[0], tsit5_gus);
}
