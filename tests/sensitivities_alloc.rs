//! Forward sensitivities do not allocate per step: with `SaveAt::T1` and
//! fixed steps the heap allocations of `sensitivities` do not depend on the
//! number of steps (the dual-number buffers of the sensitivity fields are
//! allocated once); with adaptive steps only the list
//! of the plain solve's step ends grows, by doubling (logarithmically in the
//! number of steps).
//! (The allocator counts per thread, so the test harness's own
//! allocations do not enter the counts.)

// A counting global allocator has to implement the unsafe `GlobalAlloc`
// trait; it only forwards to `System`.
#![allow(unsafe_code)]

#[path = "common/counting.rs"]
mod counting;

use sdeflow::prelude::*;

/// The allocations of `f` (on this thread) and its steps.
fn count(f: impl Fn() -> Sensitivities) -> (usize, usize) {
    let (allocs, sens) = counting::count(&f);
    (allocs, sens.stats().accepted_steps)
}

#[test]
fn allocations_do_not_grow_with_steps() {
    let lv = |t1: f64| {
        Problem::ode_field(
            generic_field!(|_t, y, p, dy| {
                dy[0] = p[0] * y[0] - p[1] * y[0] * y[1];
                dy[1] = -p[2] * y[1] + p[3] * y[0] * y[1];
            }),
            vec![1.0, 1.0],
            (0.0, t1),
        )
        .params(vec![1.5, 1.0, 3.0, 1.0])
    };
    let gbm = |t1: f64| {
        Problem::sde_field(
            generic_field!(|_t, y, p, dy| dy[0] = p[0] * y[0]),
            generic_field!(|_t, y, p, g| g[0] = p[1] * y[0]),
            Noise::Diagonal,
            vec![1.0],
            (0.0, t1),
        )
        .params(vec![0.1, 0.2])
    };
    let fixed = Options::default().fixed_step(0.01).save_at(SaveAt::T1);
    let [short, long] = [1.0, 10.0]
        .map(|t1| count(|| sensitivities(&lv(t1), Tsit5, &fixed, Wrt::ParamsAndY0).expect("ode")));
    assert!(long.1 >= 10 * short.1 - 1, "{short:?} {long:?}");
    assert_eq!(short.0, long.0, "Tsit5, fixed steps: {short:?} vs {long:?}");
    let [short, long] = [1.0, 10.0].map(|t1| {
        count(|| sensitivities(&gbm(t1), EulerMaruyama, &fixed, Wrt::Params).expect("sde"))
    });
    assert!(long.1 >= 10 * short.1 - 1, "{short:?} {long:?}");
    assert_eq!(short.0, long.0, "EulerMaruyama: {short:?} vs {long:?}");
    // adaptive: the step ends of the plain solve are a Vec that doubles
    let adaptive = Options::default().tol(1e-8).save_at(SaveAt::T1);
    let [short, long] = [10.0, 1000.0].map(|t1| {
        count(|| sensitivities(&lv(t1), Tsit5, &adaptive, Wrt::Params).expect("adaptive"))
    });
    assert!(long.1 > 50 * short.1, "{short:?} {long:?}");
    let doublings = (long.1 as f64).log2().ceil() as usize;
    assert!(
        long.0 <= short.0 + doublings,
        "Tsit5, adaptive: {short:?} vs {long:?} (allocations, steps)"
    );
}
