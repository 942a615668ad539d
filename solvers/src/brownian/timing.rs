//! Release-mode timings of the Brownian paths (printed, never asserted):
//! `cargo test -p sdeflow-solvers --release --lib brownian::timing -- --ignored --nocapture`.

use super::{BrownianInterval, BrownianPath, BrownianTree};
use std::hint::black_box;
use std::time::Instant;

/// Sequential steps of `1/n` over `[0, 1]`, every fifth step first rejected
/// and re-queried at half the length (as an adaptive solver does), then the
/// same intervals backwards (as an adjoint does). Returns ns per query for
/// the forward and the backward pass.
pub(crate) fn sequential_ns<P: BrownianPath>(path: &mut P, n: usize, levy: bool) -> (f64, f64) {
    let m = path.dim();
    let (mut dw, mut h) = (vec![0.0; m], vec![0.0; m]);
    let mut q = |p: &mut P, s: f64, t: f64| {
        if levy {
            p.increment_with_levy_area(s, t, &mut dw, &mut h);
        } else {
            p.increment(s, t, &mut dw);
        }
        black_box(&dw);
    };
    let dt = 1.0 / n as f64;
    let mut ts = Vec::with_capacity(n + 1);
    let start = Instant::now();
    let mut queries = 0usize;
    let mut s = 0.0;
    for k in 0..n {
        if k % 5 == 4 {
            q(path, s, s + 2.0 * dt);
            queries += 1;
        }
        let t = if k + 1 == n { 1.0 } else { s + dt };
        q(path, s, t);
        queries += 1;
        ts.push(s);
        s = t;
    }
    ts.push(1.0);
    let fwd = start.elapsed().as_nanos() as f64 / queries as f64;
    let start = Instant::now();
    for k in (0..n).rev() {
        q(path, ts[k + 1], ts[k]);
    }
    let back = start.elapsed().as_nanos() as f64 / n as f64;
    (fwd, back)
}

/// The fastest of `reps` runs of [`sequential_ns`] on fresh paths.
pub(crate) fn best_of<P: BrownianPath>(
    reps: usize,
    make: impl Fn() -> P,
    n: usize,
    levy: bool,
) -> (f64, f64) {
    let (mut f, mut b) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..reps {
        let mut p = make();
        let (x, y) = sequential_ns(&mut p, n, levy);
        f = f.min(x);
        b = b.min(y);
    }
    (f, b)
}

#[test]
#[ignore = "timing report; run in release mode with --ignored --nocapture"]
fn brownian_timing() {
    for levy in [false, true] {
        for n in [1_000usize, 100_000] {
            let reps = if n > 10_000 { 5 } else { 200 };
            let tree = || {
                let t = BrownianTree::new((0.0, 1.0), 1, 3);
                if levy { t } else { t.without_levy_area() }
            };
            let interval = || {
                let t = BrownianInterval::new((0.0, 1.0), 1, 3);
                if levy { t } else { t.without_levy_area() }
            };
            let (f, b) = best_of(reps, tree, n, levy);
            let (fi, bi) = best_of(reps, interval, n, levy);
            let mut p = interval();
            sequential_ns(&mut p, n, levy);
            let queries = n + n / 5;
            println!(
                "{n} steps, Lévy area {levy}: tree {f:.0} ns/query forward (every fifth step rejected), {b:.0} backward; \
                 interval {fi:.0} / {bi:.0} ns/query, {:.2} draws of normals per query (both passes), {:.2} nodes per forward query",
                p.draws() as f64 / (queries + n) as f64,
                p.node_count() as f64 / queries as f64,
            );
        }
    }
}

#[test]
#[ignore = "scaling report"]
fn interval_scaling() {
    for n in [1_000usize, 10_000, 100_000, 1_000_000] {
        for cache in [256usize, 4096] {
            let mut p = BrownianInterval::new((0.0, 1.0), 1, 3).with_cache_size(cache);
            let dt = 1.0 / n as f64;
            let mut dw = [0.0];
            let ts: Vec<f64> = (0..=n).map(|k| k as f64 * dt).collect();
            let start = Instant::now();
            for k in 0..n {
                p.increment(ts[k], ts[k + 1], &mut dw);
            }
            let ns = start.elapsed().as_nanos() as f64 / n as f64;
            let (d0, n0) = (p.draws(), p.node_count());
            let start = Instant::now();
            for k in (0..n).rev() {
                p.increment(ts[k + 1], ts[k], &mut dw);
            }
            assert_eq!(p.node_count(), n0);
            let nb = start.elapsed().as_nanos() as f64 / n as f64;
            println!(
                "n {n}, cache {cache}: {:.2} nodes/step, {:.2} draws/step forward, {:.2} backward; {ns:.0} / {nb:.0} ns",
                p.node_count() as f64 / n as f64,
                d0 as f64 / n as f64,
                (p.draws() - d0) as f64 / n as f64
            );
        }
    }
}
