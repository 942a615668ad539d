//! The Brownian tree and the Brownian interval: consistency for any query
//! order (property tests), and the law of the path (Monte Carlo moments with
//! 5-standard-error bounds).

use proptest::prelude::*;
use sdeflow::noise::{BrownianIncrements, BrownianInterval, BrownianPath, BrownianTree};
use std::collections::HashMap;

fn inc(tree: &mut BrownianTree, s: f64, t: f64) -> Vec<f64> {
    let mut dw = vec![0.0; tree.dim()];
    tree.increment(s, t, &mut dw);
    dw
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// W(s,u) = W(s,t) + W(t,u) whatever the order of the queries, and a
    /// fresh tree with the same seed answers identically.
    #[test]
    fn increments_are_additive_in_any_order(
        seed in any::<u64>(),
        mut pts in prop::collection::vec(0.0..1.0f64, 3),
        order in 0usize..6,
        t0 in -5.0..5.0f64,
        len in 0.1..10.0f64,
    ) {
        pts.sort_by(|a, b| a.total_cmp(b));
        let [s, t, u] = [t0 + len * pts[0], t0 + len * pts[1], t0 + len * pts[2]];
        let mut tree = BrownianTree::new((t0, t0 + len), 3, seed);
        let queries = [(s, u), (s, t), (t, u)];
        let perm = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]][order];
        let mut got = [vec![], vec![], vec![]];
        for &q in &perm {
            got[q] = inc(&mut tree, queries[q].0, queries[q].1);
        }
        for i in 0..3 {
            prop_assert!((got[0][i] - got[1][i] - got[2][i]).abs() <= 1e-12, "{:?}", got);
        }
        // same seed, fresh tree, other order: the same numbers
        let mut again = BrownianTree::new((t0, t0 + len), 3, seed);
        for q in [2, 0, 1] {
            let v = inc(&mut again, queries[q].0, queries[q].1);
            for i in 0..3 {
                prop_assert!((v[i] - got[q][i]).abs() <= 1e-14);
            }
        }
        // reversing an interval negates the increment
        let back = inc(&mut again, u, s);
        for i in 0..3 {
            prop_assert!((back[i] + got[0][i]).abs() <= 1e-14);
        }
    }

    /// The space–time Lévy area chains consistently too:
    /// H̄_{s,u} = H̄_{s,t} + H̄_{t,u} − ½((t−s) W_{t,u} − (u−t) W_{s,t}).
    #[test]
    fn levy_area_chains(seed in any::<u64>(), mut pts in prop::collection::vec(0.0..1.0f64, 3)) {
        pts.sort_by(|a, b| a.total_cmp(b));
        let [s, t, u] = [pts[0], pts[1], pts[2]];
        prop_assume!(t - s > 1e-9 && u - t > 1e-9);
        let mut tree = BrownianTree::new((0.0, 1.0), 1, seed);
        let (mut w1, mut h1, mut w2, mut h2, mut w, mut h) = ([0.0], [0.0], [0.0], [0.0], [0.0], [0.0]);
        tree.increment_with_levy_area(s, t, &mut w1, &mut h1);
        tree.increment_with_levy_area(t, u, &mut w2, &mut h2);
        tree.increment_with_levy_area(s, u, &mut w, &mut h);
        let lhs = (u - s) * h[0];
        let rhs = (t - s) * h1[0] + (u - t) * h2[0] - 0.5 * ((t - s) * w2[0] - (u - t) * w1[0]);
        prop_assert!((lhs - rhs).abs() < 1e-12, "{} vs {}", lhs, rhs);
    }
}

/// Sample mean and variance.
fn moments(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

const PATHS: u64 = 20_000;

/// `K` samples per path on the paths of the seeds `0..PATHS`, as `K`
/// columns of `PATHS` values.
fn per_path<const K: usize>(sample: impl Fn(u64) -> [f64; K]) -> [Vec<f64>; K] {
    let mut columns: [Vec<f64>; K] = std::array::from_fn(|_| Vec::with_capacity(PATHS as usize));
    for seed in 0..PATHS {
        for (column, x) in columns.iter_mut().zip(sample(seed)) {
            column.push(x);
        }
    }
    columns
}

/// Asserts that each named pair of samples has a correlation (by `corr`)
/// below 5 standard errors (`1/√N`).
fn assert_uncorrelated(
    pairs: &[(&str, &Vec<f64>, &Vec<f64>)],
    corr: impl Fn(&[f64], &[f64]) -> f64,
) {
    let bound = 5.0 / (PATHS as f64).sqrt();
    for &(name, a, b) in pairs {
        let c = corr(a, b);
        assert!(c.abs() < bound, "corr({name}) = {c}");
    }
}

/// Asserts that the sample variance of `xs` is `var` to 5 standard errors
/// (`sqrt(2/N)` relative).
fn assert_variance(name: &str, xs: &[f64], var: f64) {
    let (_, v) = moments(xs);
    let se = (2.0 / PATHS as f64).sqrt();
    assert!((v / var - 1.0).abs() < 5.0 * se, "{name}: var {v} vs {var}");
}

#[test]
fn increments_have_the_brownian_law() {
    // Var W(s,t) = t − s; Cov(W(0,a), W(0,b)) = min(a, b). With N = 2e4
    // paths the standard error of a variance estimate is σ²·sqrt(2/N) = 1%
    // of it; we allow 5 standard errors.
    let (s, t) = (0.13, 0.58);
    let mut incs = Vec::new();
    let mut prod = Vec::new();
    for seed in 0..PATHS {
        let mut tree = BrownianTree::new((0.0, 1.0), 1, seed);
        incs.push(inc(&mut tree, s, t)[0]);
        let a = inc(&mut tree, 0.0, 0.3)[0];
        let b = inc(&mut tree, 0.0, 0.7)[0];
        prod.push(a * b);
    }
    let se = (2.0 / PATHS as f64).sqrt();
    let (mean, var) = moments(&incs);
    assert!(
        mean.abs() < 5.0 * ((t - s) / PATHS as f64).sqrt(),
        "mean {mean}"
    );
    assert!(
        (var / (t - s) - 1.0).abs() < 5.0 * se,
        "var {var} vs {}",
        t - s
    );
    // E[W_a W_b] = 0.3; Var(W_a W_b) = 0.3·0.7 + 0.3² = 0.3
    let (c, _) = moments(&prod);
    assert!(
        (c - 0.3).abs() < 5.0 * (0.3 / PATHS as f64).sqrt(),
        "cov {c}"
    );
}

#[test]
fn bridge_and_levy_area_moments() {
    // Brownian bridge: W(0.5) = ½W(1) + N(0, 1/4), so the regression of W(0.5)
    // on W(1) has slope 1/2 and residual variance 1/4. H_{0,1} ~ N(0, 1/12),
    // independent of W(1); on a sub-interval Var H_{s,t} = (t−s)/12.
    let [w1, wh, h, hs] = per_path(|seed| {
        let mut tree = BrownianTree::new((0.0, 1.0), 1, seed);
        let (mut a, mut b) = ([0.0], [0.0]);
        tree.increment_with_levy_area(0.0, 1.0, &mut a, &mut b);
        let (w1, h) = (a[0], b[0]);
        let wh = inc(&mut tree, 0.0, 0.5)[0];
        tree.increment_with_levy_area(0.21, 0.37, &mut a, &mut b);
        [w1, wh, h, b[0]]
    });
    let se = (2.0 / PATHS as f64).sqrt();
    let slope =
        w1.iter().zip(&wh).map(|(a, b)| a * b).sum::<f64>() / w1.iter().map(|a| a * a).sum::<f64>();
    assert!(
        (slope - 0.5).abs() < 5.0 * (0.25 / PATHS as f64).sqrt(),
        "slope {slope}"
    );
    let resid: Vec<f64> = w1.iter().zip(&wh).map(|(a, b)| b - 0.5 * a).collect();
    let (_, rv) = moments(&resid);
    assert!((rv / 0.25 - 1.0).abs() < 5.0 * se, "bridge variance {rv}");
    let (hm, hv) = moments(&h);
    assert!(
        hm.abs() < 5.0 * (1.0 / 12.0 / PATHS as f64).sqrt(),
        "H mean {hm}"
    );
    assert!((hv * 12.0 - 1.0).abs() < 5.0 * se, "Var H {hv}");
    let corr =
        w1.iter().zip(&h).map(|(a, b)| a * b).sum::<f64>() / PATHS as f64 / (1.0f64 / 12.0).sqrt();
    assert!(
        corr.abs() < 5.0 / (PATHS as f64).sqrt(),
        "corr(W, H) {corr}"
    );
    let (_, hsv) = moments(&hs);
    assert!(
        (hsv / (0.16 / 12.0) - 1.0).abs() < 5.0 * se,
        "Var H sub {hsv}"
    );
}

#[test]
fn tiny_tree_intervals_have_the_brownian_law() {
    // Two adjacent intervals of 1e-9 of the span straddling the tree's
    // midpoint (where origin-anchored values cancel worst; each spans about
    // a thousand leaves): Var ΔW = len, Var H = len/12, uncorrelated within
    // and across the intervals. N = 2e4; 5 standard errors.
    let (l1, l2) = (0.4e-9, 0.6e-9);
    let (s, t, u) = (0.5 - l1, 0.5, 0.5 + l2);
    let [w1, h1, w2, h2] = per_path(|seed| {
        let mut tree = BrownianTree::new((0.0, 1.0), 1, seed);
        let (a, b) = wh(&mut tree, s, t);
        let (c, d) = wh(&mut tree, t, u);
        [a[0], b[0], c[0], d[0]]
    });
    for (name, xs, var) in [
        ("W1", &w1, t - s),
        ("H1", &h1, (t - s) / 12.0),
        ("W2", &w2, u - t),
        ("H2", &h2, (u - t) / 12.0),
    ] {
        assert_variance(name, xs, var);
    }
    // uncentred: the means are 0
    let corr = |a: &[f64], b: &[f64]| {
        let (_, va) = moments(a);
        let (_, vb) = moments(b);
        a.iter().zip(b.iter()).map(|(x, y)| x * y).sum::<f64>() / PATHS as f64 / (va * vb).sqrt()
    };
    let pairs = [
        ("W1, H1", &w1, &h1),
        ("W1, W2", &w1, &w2),
        ("H1, H2", &h1, &h2),
    ];
    assert_uncorrelated(&pairs, corr);
}

#[test]
fn fixed_step_increments_have_the_right_variance() {
    let mut w = BrownianIncrements::new(2, 11);
    let h = 0.01;
    let mut xs = Vec::new();
    let mut dw = [0.0; 2];
    for _ in 0..PATHS {
        w.increment(0.0, h, &mut dw);
        xs.extend_from_slice(&dw);
    }
    let (_, v) = moments(&xs);
    assert!(
        (v / h - 1.0).abs() < 5.0 * (2.0 / xs.len() as f64).sqrt(),
        "{v}"
    );
}

/// The inputs of a query-order test: a seed, `pool` points in `[0, 1)`,
/// and 1 to `max_queries − 1` queries `(i, j)` between them and the `extra`
/// points the test adds to the pool.
fn query_sequences(
    pool: usize,
    extra: usize,
    max_queries: usize,
) -> impl Strategy<Value = (u64, Vec<f64>, Vec<(usize, usize)>)> {
    let n = pool + extra;
    (
        any::<u64>(),
        prop::collection::vec(0.0..1.0f64, pool),
        prop::collection::vec((0..n, 0..n), 1..max_queries),
    )
}

/// One query on a fresh tree: the reference for a query made after others.
fn fresh(seed: u64, tspan: (f64, f64), m: usize, s: f64, t: f64) -> (Vec<f64>, Vec<f64>) {
    wh(&mut BrownianTree::new(tspan, m, seed), s, t)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// The tree caches points, their partial sums and its last descent: an
    /// answer must not depend on what was asked before. Endpoints come from
    /// a small pool (so they repeat, as in stepping, rejections and
    /// backward passes), with neighbours closer than a leaf.
    #[test]
    fn tree_answers_do_not_depend_on_the_query_history(
        (seed, pool, queries) in query_sequences(6, 2, 25),
    ) {
        let tspan = (-1.0, 2.0);
        let mut pts: Vec<f64> = pool.iter().map(|x| -1.0 + 3.0 * x).collect();
        pts.push(pts[0] + 1e-13); // in the same leaf as pts[0] or the next
        pts.push(0.5); // a dyadic point of the tree
        let mut tree = BrownianTree::new(tspan, 2, seed);
        let (mut dw, mut h) = ([0.0; 2], [0.0; 2]);
        for (a, b) in queries {
            let (s, t) = (pts[a], pts[b]);
            tree.increment_with_levy_area(s, t, &mut dw, &mut h);
            let (rw, rh) = fresh(seed, tspan, 2, s, t);
            prop_assert_eq!(&dw[..], &rw[..], "W over [{}, {}]", s, t);
            prop_assert_eq!(&h[..], &rh[..], "H over [{}, {}]", s, t);
        }
    }

    /// Chen's relation at every scale, down to intervals of 1e-12 of the
    /// span around a dyadic point (where the origin-anchored formula failed):
    /// for s < t < u, with H̄ = (length) · H,
    /// H̄_{s,u} = H̄_{s,t} + H̄_{t,u} + ½((u − t) W_{s,t} − (t − s) W_{t,u}),
    /// to 1e-12 of the standard deviation of H̄_{s,u}.
    #[test]
    fn levy_area_chains_at_every_scale(
        seed in any::<u64>(),
        a in 1e-3..1.0f64,
        b in 1e-3..1.0f64,
        scale in prop::sample::select(vec![1e-1, 1e-4, 1e-8, 1e-10, 1e-12]),
    ) {
        let t = 0.5;
        let (s, u) = (t - a * scale, t + b * scale);
        let mut tree = BrownianTree::new((0.0, 1.0), 1, seed);
        let (mut w1, mut h1, mut w2, mut h2, mut w, mut h) =
            ([0.0], [0.0], [0.0], [0.0], [0.0], [0.0]);
        tree.increment_with_levy_area(s, t, &mut w1, &mut h1);
        tree.increment_with_levy_area(t, u, &mut w2, &mut h2);
        tree.increment_with_levy_area(s, u, &mut w, &mut h);
        let lhs = (u - s) * h[0];
        let rhs = (t - s) * h1[0] + (u - t) * h2[0] + 0.5 * ((u - t) * w1[0] - (t - s) * w2[0]);
        let sd = (u - s) * ((u - s) / 12.0).sqrt();
        prop_assert!((lhs - rhs).abs() <= 1e-12 * sd, "{} vs {} (sd {})", lhs, rhs, sd);
        prop_assert!((w[0] - w1[0] - w2[0]).abs() <= 1e-14 * (u - s).sqrt());
    }
}

/// `(W, H)` of one query.
fn wh<P: BrownianPath>(p: &mut P, s: f64, t: f64) -> (Vec<f64>, Vec<f64>) {
    let m = p.dim();
    let (mut dw, mut h) = (vec![0.0; m], vec![0.0; m]);
    p.increment_with_levy_area(s, t, &mut dw, &mut h);
    (dw, h)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any sequence of queries, in any order and direction: an interval
    /// asked again gets the same numbers (exactly, also after its values
    /// were evicted from a small cache and recomputed), a reversed one the
    /// negated increment, and at the end increments over the pool add up
    /// and the Lévy area chains, to round-off.
    #[test]
    fn interval_is_consistent_under_any_query_order(
        (seed, pool, queries) in query_sequences(7, 2, 40),
        t0 in -3.0..3.0f64,
        len in 0.01..10.0f64,
    ) {
        let mut pts: Vec<f64> = pool.iter().map(|x| t0 + len * x).collect();
        pts.push(t0);
        pts.push(pts[0] + 1e-9 * len); // a close neighbour
        let tspan = (t0, t0 + len);
        let mut big = BrownianInterval::new(tspan, 2, seed);
        let mut small = BrownianInterval::new(tspan, 2, seed).with_cache_size(8);
        let mut seen: HashMap<(usize, usize), (Vec<f64>, Vec<f64>)> = HashMap::new();
        for (i, j) in queries {
            let (s, t) = (pts[i], pts[j]);
            let a = wh(&mut big, s, t);
            let b = wh(&mut small, s, t);
            prop_assert_eq!(&a, &b, "cache sizes disagree on [{}, {}]", s, t);
            let key = (i.min(j), i.max(j));
            let (w, h) = if i <= j {
                a.clone()
            } else {
                (a.0.iter().map(|x| -x).collect(), a.1.clone())
            };
            if let Some(prev) = seen.get(&key) {
                prop_assert_eq!(&prev.0, &w, "W over [{}, {}] changed", s, t);
                prop_assert_eq!(&prev.1, &h, "H over [{}, {}] changed", s, t);
            } else {
                seen.insert(key, (w, h));
            }
        }
        let mut sorted = pts.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        sorted.dedup();
        for x in 0..sorted.len() {
            for y in x + 1..sorted.len() {
                for z in y + 1..sorted.len() {
                    let (s, t, u) = (sorted[x], sorted[y], sorted[z]);
                    let (w1, h1) = wh(&mut big, s, t);
                    let (w2, h2) = wh(&mut big, t, u);
                    let (w, h) = wh(&mut big, s, u);
                    for c in 0..2 {
                        prop_assert!((w[c] - w1[c] - w2[c]).abs() <= 1e-13 * (u - s).sqrt());
                        let lhs = (u - s) * h[c];
                        let rhs = (t - s) * h1[c] + (u - t) * h2[c]
                            + 0.5 * ((u - t) * w1[c] - (t - s) * w2[c]);
                        let sd = (u - s) * ((u - s) / 12.0).sqrt();
                        prop_assert!((lhs - rhs).abs() <= 1e-12 * sd, "{} vs {}", lhs, rhs);
                    }
                }
            }
        }
    }
}

#[test]
fn interval_increments_have_the_brownian_law() {
    // Ten sequential steps of 0.1 per path (as a fixed-step solver queries),
    // then the whole span. Var ΔW = h, Var H = h/12, steps and (W, H)
    // uncorrelated; N = 2e4 paths: the standard error of a variance estimate
    // is 1% of it, of a correlation 0.7%; bounds are 5 standard errors.
    let [w3, h3, w7, h7, w1] = per_path(|seed| {
        let mut p = BrownianInterval::new((0.0, 1.0), 1, seed);
        let mut x = [0.0; 5];
        for k in 0..10 {
            let (w, h) = wh(&mut p, 0.1 * k as f64, 0.1 * (k + 1) as f64);
            if k == 3 {
                (x[0], x[1]) = (w[0], h[0]);
            }
            if k == 7 {
                (x[2], x[3]) = (w[0], h[0]);
            }
        }
        x[4] = wh(&mut p, 0.0, 1.0).0[0];
        x
    });
    let corr = |a: &[f64], b: &[f64]| {
        let (ma, va) = moments(a);
        let (mb, vb) = moments(b);
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - ma) * (y - mb))
            .sum::<f64>()
            / (PATHS as f64 - 1.0)
            / (va * vb).sqrt()
    };
    for (name, xs, var) in [
        ("W step 3", &w3, 0.1),
        ("W step 7", &w7, 0.1),
        ("H step 3", &h3, 0.1 / 12.0),
        ("H step 7", &h7, 0.1 / 12.0),
        ("W(1)", &w1, 1.0),
    ] {
        let (m, _) = moments(xs);
        assert!(
            m.abs() < 5.0 * (var / PATHS as f64).sqrt(),
            "{name}: mean {m}"
        );
        assert_variance(name, xs, var);
    }
    let pairs = [
        ("W3, H3", &w3, &h3),
        ("W3, W7", &w3, &w7),
        ("H3, H7", &h3, &h7),
        ("W3, H7", &w3, &h7),
    ];
    assert_uncorrelated(&pairs, corr);
}

/// Least-squares coefficients of `y` on the columns `xs` (no intercept),
/// and the residual variance.
fn regress(y: &[f64], xs: &[&[f64]]) -> (Vec<f64>, f64) {
    let k = xs.len();
    let mut a = vec![vec![0.0; k + 1]; k];
    for r in 0..k {
        for c in 0..k {
            a[r][c] = xs[r].iter().zip(xs[c]).map(|(p, q)| p * q).sum();
        }
        a[r][k] = xs[r].iter().zip(y).map(|(p, q)| p * q).sum();
    }
    // Gauss–Jordan on the k × k normal equations
    for p in 0..k {
        let piv = a[p][p];
        for c in p..=k {
            a[p][c] /= piv;
        }
        for r in 0..k {
            if r != p {
                let f = a[r][p];
                for c in p..=k {
                    a[r][c] -= f * a[p][c];
                }
            }
        }
    }
    let beta: Vec<f64> = (0..k).map(|r| a[r][k]).collect();
    let resid: Vec<f64> = (0..y.len())
        .map(|i| y[i] - (0..k).map(|r| beta[r] * xs[r][i]).sum::<f64>())
        .collect();
    let (_, v) = moments(&resid);
    (beta, v)
}

#[test]
fn interval_bridges_have_the_conditional_law() {
    // Split at an arbitrary point r of [0, 1] after the whole span was
    // drawn: given (W_{0,1}, H_{0,1}), W_{0,r} has mean r W + 6r(1−r) H and
    // variance r(1−r)(r³ + (1−r)³) (Foster's bridge); given W_{0,1} alone,
    // the Brownian bridge: mean r W, variance r(1−r). The second path first
    // answers a short query elsewhere, so [0, r] is reached through
    // midpoint (balancing) splits: the law must not change. N = 2e4; the
    // coefficients are within 5 standard errors, the residual variances
    // within 5 standard errors (1% of them each).
    let r: f64 = 0.37;
    let [w, h, wr, w2, wr2] = per_path(|seed| {
        let mut p = BrownianInterval::new((0.0, 1.0), 1, seed);
        let (a, b) = wh(&mut p, 0.0, 1.0);
        let wr = wh(&mut p, 0.0, r).0[0];
        let mut q = BrownianInterval::new((0.0, 1.0), 1, seed ^ 0x5555);
        let w2 = wh(&mut q, 0.0, 1.0).0[0];
        wh(&mut q, 0.3, 0.32);
        [a[0], b[0], wr, w2, wh(&mut q, 0.0, r).0[0]]
    });
    let nf = PATHS as f64;
    let se_var = (2.0 / nf).sqrt();
    let (beta, v) = regress(&wr, &[&w, &h]);
    let var = r * (1.0 - r) * (r.powi(3) + (1.0 - r).powi(3));
    println!(
        "W_(0,r) on (W, H): {beta:?} (exact {r}, {}), residual variance {v} (exact {var})",
        6.0 * r * (1.0 - r)
    );
    // standard errors: sqrt(σ²/Σx²) with Σx² ≈ N Var x
    assert!((beta[0] - r).abs() < 5.0 * (var / nf).sqrt(), "{beta:?}");
    assert!(
        (beta[1] - 6.0 * r * (1.0 - r)).abs() < 5.0 * (var * 12.0 / nf).sqrt(),
        "{beta:?}"
    );
    assert!(
        (v / var - 1.0).abs() < 5.0 * se_var,
        "residual variance {v} vs {var}"
    );
    let var = r * (1.0 - r);
    for (name, y, x) in [("direct", &wr, &w), ("after balancing", &wr2, &w2)] {
        let (beta, v) = regress(y, &[x]);
        println!(
            "{name}: W_(0,r) on W: slope {} (exact {r}), residual variance {v} (exact {var})",
            beta[0]
        );
        assert!(
            (beta[0] - r).abs() < 5.0 * (var / nf).sqrt(),
            "{name}: {beta:?}"
        );
        assert!((v / var - 1.0).abs() < 5.0 * se_var, "{name}: {v} vs {var}");
    }
}

#[test]
fn interval_memory_grows_with_the_query_points_only() {
    // A sequential sweep of n steps with every fifth step first rejected:
    // the nodes and the draws of normals grow linearly in the number of
    // query points (whatever n: O(1) per query), and re-queries add no
    // nodes. Then the same intervals backwards, on a path with the same
    // queries but a cache of 16 nodes: answers equal to the forward ones bit
    // for bit (values recomputed after eviction).
    for n in [1_000usize, 20_000] {
        let dt = 1.0 / n as f64;
        let sweep = |p: &mut BrownianInterval| {
            let mut fwd = Vec::with_capacity(n);
            let mut points = 0;
            for k in 0..n {
                let s = k as f64 * dt;
                if k % 5 == 4 {
                    wh(p, s, s + 1.5 * dt);
                    points += 1;
                }
                fwd.push(wh(p, s, s + dt));
                points += 1;
            }
            (fwd, points)
        };
        let mut p = BrownianInterval::new((0.0, 1.0), 1, 3);
        let (fwd, points) = sweep(&mut p);
        let (nodes, draws) = (p.node_count(), p.draws());
        let mut small = BrownianInterval::new((0.0, 1.0), 1, 3).with_cache_size(16);
        sweep(&mut small);
        println!(
            "{n} steps: {nodes} nodes, {draws} draws for {points} query points ({} draws with a 16-node cache)",
            small.draws()
        );
        assert!(nodes <= 3 * points, "{nodes} nodes");
        assert!(draws as usize <= 2 * points, "{draws} draws");
        for k in (0..n).rev() {
            let s = k as f64 * dt;
            let (w, h) = wh(&mut small, s + dt, s);
            assert_eq!(w[0], -fwd[k].0[0]);
            assert_eq!(h[0], fwd[k].1[0]);
        }
        assert_eq!(small.node_count(), nodes, "re-queries must not add nodes");
        println!(
            "  backward with the small cache: {} draws in all",
            small.draws()
        );
    }
}
