//! The Brownian tree: consistency for any query order (property tests), and
//! the law of the path (Monte Carlo moments with 5-standard-error bounds).

use proptest::prelude::*;
use sdeflow::brownian::{BrownianIncrements, BrownianPath, BrownianTree};

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
    let n = PATHS as usize;
    let (mut w1, mut wh, mut h, mut hs) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for seed in 0..PATHS {
        let i = seed as usize;
        let mut tree = BrownianTree::new((0.0, 1.0), 1, seed);
        let (mut a, mut b) = ([0.0], [0.0]);
        tree.increment_with_levy_area(0.0, 1.0, &mut a, &mut b);
        w1[i] = a[0];
        h[i] = b[0];
        wh[i] = inc(&mut tree, 0.0, 0.5)[0];
        tree.increment_with_levy_area(0.21, 0.37, &mut a, &mut b);
        hs[i] = b[0];
    }
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

/// One query on a fresh tree: the reference for a query made after others.
fn fresh(seed: u64, tspan: (f64, f64), m: usize, s: f64, t: f64) -> (Vec<f64>, Vec<f64>) {
    let mut tree = BrownianTree::new(tspan, m, seed);
    let (mut dw, mut h) = (vec![0.0; m], vec![0.0; m]);
    tree.increment_with_levy_area(s, t, &mut dw, &mut h);
    (dw, h)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// The tree caches points, their partial sums and its last descent: an
    /// answer must not depend on what was asked before. Endpoints come from
    /// a small pool (so they repeat, as in stepping, rejections and
    /// backward passes), with neighbours closer than a leaf.
    #[test]
    fn tree_answers_do_not_depend_on_the_query_history(
        seed in any::<u64>(),
        pool in prop::collection::vec(0.0..1.0f64, 6),
        queries in prop::collection::vec((0usize..8, 0usize..8), 1..25),
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
