//! Tests of the fractional family: samplers against the exact covariance,
//! the Markov approximation's closed forms and errors, and the driver's
//! path consistency and moments.

use super::ou_bridge::sigma;
use super::special::tanh_sinh;
use super::*;
use crate::brownian::{BrownianPath, Driver};

/// Empirical second moments `(1/n) Σ x xᵀ` of `n` centred paths of length
/// `len` (row-major in `xs`).
fn second_moments(xs: &[f64], len: usize) -> Vec<f64> {
    let n = xs.len() / len;
    let mut c = vec![0.0; len * len];
    for p in xs.chunks(len) {
        for i in 0..len {
            for j in 0..len {
                c[i * len + j] += p[i] * p[j];
            }
        }
    }
    c.iter_mut().for_each(|v| *v /= n as f64);
    c
}

/// Asserts that the empirical second moments `c` of `n` samples match
/// `exact` entry by entry within 5 standard errors: for a centred Gaussian
/// pair the estimate `(1/n) Σ x_i x_j` has variance
/// `(C_ii C_jj + C_ij²)/n`. With a fixed seed the test is deterministic;
/// 5σ makes a false failure of a correct sampler unlikely (≈ 6e-7 per
/// entry) across the few hundred entries compared.
fn assert_moments(
    c: &[f64],
    exact: &dyn Fn(usize, usize) -> f64,
    len: usize,
    n: usize,
    what: &str,
) {
    let mut worst: f64 = 0.0;
    for i in 0..len {
        for j in 0..len {
            let e = exact(i, j);
            let se = ((exact(i, i) * exact(j, j) + e * e) / n as f64).sqrt();
            let z = (c[i * len + j] - e).abs() / se.max(1e-300);
            worst = worst.max(z);
            assert!(
                z < 5.0,
                "{what}: entry ({i}, {j}) = {} vs exact {e} ({z:.1} standard errors)",
                c[i * len + j]
            );
        }
    }
    println!("{what}: worst entry {worst:.2} standard errors");
}

#[test]
fn exact_samplers_match_the_fbm_covariance() {
    // 10^4 paths on t_k = k/16, k = 1..16, for both types (Cholesky) and
    // type I (Davies–Harte, 5000 pairs)
    let n = 10_000;
    let len = 16;
    let ts: Vec<f64> = (1..=len).map(|k| k as f64 / len as f64).collect();
    for h in [0.1, 0.3, 0.7, 0.9] {
        for kind in [FbmType::MandelbrotVanNess, FbmType::RiemannLiouville] {
            let mut ch = CholeskyFbm::new(kind, h, &ts).expect("grid is valid");
            let mut xs = vec![0.0; n * len];
            for (i, p) in xs.chunks_mut(len).enumerate() {
                ch.sample(i as u64, p).expect("length matches");
            }
            let c = second_moments(&xs, len);
            assert_moments(
                &c,
                &|i, j| covariance(kind, h, ts[i], ts[j]),
                len,
                n,
                &format!("Cholesky {kind:?} H = {h}"),
            );
        }
        let mut dh = DaviesHarte::new(h, len, 1.0 / len as f64).expect("embedding is positive");
        let mut xs = vec![0.0; n * len];
        for (i, p) in xs.chunks_mut(2 * len).enumerate() {
            let (a, b) = p.split_at_mut(len);
            dh.sample_pair(i as u64, a, b).expect("length matches");
        }
        let c = second_moments(&xs, len);
        assert_moments(
            &c,
            &|i, j| fbm_covariance(h, ts[i], ts[j]),
            len,
            n,
            &format!("Davies–Harte H = {h}"),
        );
    }
}

/// The two-sample Kolmogorov–Smirnov statistic.
fn ks_statistic(mut a: Vec<f64>, mut b: Vec<f64>) -> f64 {
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        // step past every copy of the next value in both samples (the
        // running maximum has an atom at 0), then compare the two CDFs
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] == x {
            i += 1;
        }
        while j < b.len() && b[j] == x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

#[test]
fn davies_harte_and_cholesky_agree_in_distribution() {
    // 10^4 paths of each on 64 points; KS two-sample tests of three path
    // functionals (the running maximum, the end value, the sum of squared
    // increments). Critical value at level 1e-3: 1.95 √(2/n) = 0.0276.
    let (n, len) = (10_000, 64);
    let dt = 1.0 / len as f64;
    let ts: Vec<f64> = (1..=len).map(|k| k as f64 * dt).collect();
    let crit = 1.95 * (2.0 / n as f64).sqrt();
    for h in [0.1, 0.3, 0.7, 0.9] {
        let mut ch = CholeskyFbm::new(FbmType::MandelbrotVanNess, h, &ts).expect("valid grid");
        let mut dh = DaviesHarte::new(h, len, dt).expect("positive embedding");
        let stats = |p: &[f64]| {
            let max = p.iter().copied().fold(0.0, f64::max);
            let mut prev = 0.0;
            let qv: f64 = p
                .iter()
                .map(|&x| {
                    let d = x - prev;
                    prev = x;
                    d * d
                })
                .sum();
            [max, p[p.len() - 1], qv]
        };
        let mut sa: [Vec<f64>; 3] = Default::default();
        let mut sb: [Vec<f64>; 3] = Default::default();
        let mut p = vec![0.0; len];
        for i in 0..n {
            // different seeds for the two samplers: independent samples
            ch.sample(i as u64, &mut p).expect("length matches");
            for (v, s) in sa.iter_mut().zip(stats(&p)) {
                v.push(s);
            }
            dh.sample(1_000_000 + i as u64, &mut p)
                .expect("length matches");
            for (v, s) in sb.iter_mut().zip(stats(&p)) {
                v.push(s);
            }
        }
        for (name, (a, b)) in ["max", "end", "quadratic variation"]
            .iter()
            .zip(sa.into_iter().zip(sb))
        {
            let d = ks_statistic(a, b);
            assert!(d < crit, "H = {h}, {name}: KS statistic {d} ≥ {crit}");
        }
    }
}

#[test]
fn samplers_refuse_bad_input() {
    let ok = [0.5, 1.0];
    for h in [0.0, 1.0, -0.2, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            CholeskyFbm::new(FbmType::MandelbrotVanNess, h, &ok),
            Err(FbmError::InvalidHurst { .. })
        ));
        assert!(matches!(
            DaviesHarte::new(h, 8, 0.1),
            Err(FbmError::InvalidHurst { .. })
        ));
    }
    for ts in [
        &[][..],
        &[0.0, 1.0],
        &[0.5, 0.5],
        &[1.0, 0.5],
        &[0.1, f64::NAN],
    ] {
        let e = CholeskyFbm::new(FbmType::RiemannLiouville, 0.3, ts);
        assert!(
            matches!(e, Err(FbmError::InvalidInput { .. })),
            "{ts:?}: {e:?}"
        );
    }
    for (n, dt) in [(0, 0.1), (8, 0.0), (8, -1.0), (8, f64::NAN)] {
        assert!(matches!(
            DaviesHarte::new(0.3, n, dt),
            Err(FbmError::InvalidInput { .. })
        ));
    }
    let mut ch = CholeskyFbm::new(FbmType::MandelbrotVanNess, 0.3, &ok).expect("valid");
    assert!(matches!(
        ch.sample(0, &mut [0.0; 3]),
        Err(FbmError::DimensionMismatch {
            expected: 2,
            found: 3,
            ..
        })
    ));
    // type II has no circulant embedding: a typed error naming the way out
    let e = DaviesHarte::for_type(FbmType::RiemannLiouville, 0.3, 8, 0.1)
        .expect_err("type II is refused");
    assert!(matches!(e, FbmError::Unsupported { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("not stationary") && msg.contains("CholeskyFbm"),
        "{msg}"
    );
    let dh1 = DaviesHarte::for_type(FbmType::MandelbrotVanNess, 0.3, 8, 0.1).expect("type I");
    assert_eq!(dh1.circulant_len(), 16);
    let mut dh = DaviesHarte::new(0.3, 8, 0.1).expect("valid");
    assert!(matches!(
        dh.sample_pair(0, &mut [0.0; 8], &mut [0.0; 7]),
        Err(FbmError::DimensionMismatch { .. })
    ));
    // the error converts into a solve error with its message
    let e: crate::error::SolveError = FbmError::InvalidHurst { hurst: 2.0 }.into();
    assert!(e.to_string().contains("Hurst"), "{e}");
}

// ---------------------------------------------------------------------------
// Markov approximation

#[test]
fn weight_system_closed_forms_match_quadrature_of_the_defining_integrals() {
    use super::markov::b_vector;
    use super::special::gamma;
    for kind in [FbmType::MandelbrotVanNess, FbmType::RiemannLiouville] {
        for h in [0.1, 0.3, 0.7, 0.9] {
            let alpha = h + 0.5;
            for t in [1.0, 2.5] {
                let gs = [0.05, 0.7, 5.0, 60.0];
                let b: Vec<f64> = b_vector(kind, h, t, &gs);
                for (k, &g) in gs.iter().enumerate() {
                    let q = match kind {
                        // b = Γ(α)^{-1} ∫_0^T (T − v) e^{−γv} v^{α−1} dv, v = T x
                        FbmType::RiemannLiouville => {
                            t.powf(alpha) / gamma(alpha)
                                * tanh_sinh(
                                    |x, y| t * y * (-g * t * x).exp() * x.powf(alpha - 1.0),
                                    1e-14,
                                )
                        }
                        // b = ∫_0^T E[(Y(t) − Y(0)) B(t)] dt with E[Y(t)B(t)] =
                        // γ^{−α}(1 − e^{−γt}) and ∫_0^T E[Y(0)B(t)] dt =
                        // Γ(α)^{-1} ∫_0^∞ e^{−γw} [((T+w)^α − w^α)/α − T w^{α−1}] dw
                        FbmType::MandelbrotVanNess => {
                            let first = g.powf(-alpha) * (t + (-g * t).exp_m1() / g);
                            // w = x/(γ(1−x)), dw = dx/(γ(1−x)²)
                            let second = tanh_sinh(
                                |x, y| {
                                    let w = x / (g * y);
                                    let f = ((t + w).powf(alpha) - w.powf(alpha)) / alpha
                                        - t * w.powf(alpha - 1.0);
                                    (-g * w).exp() * f / (g * y * y)
                                },
                                1e-14,
                            ) / gamma(alpha);
                            first - second
                        }
                    };
                    assert!(
                        (b[k] - q).abs() < 1e-9 * q.abs().max(1e-3),
                        "{kind:?} H {h} T {t} γ {g}: closed form {} vs quadrature {q}",
                        b[k]
                    );
                }
            }
        }
    }
}

#[test]
fn the_quadratic_form_is_the_integrated_variance_of_the_approximation() {
    // A against the covariance of B̂ (written independently), K = 4
    for kind in [FbmType::MandelbrotVanNess, FbmType::RiemannLiouville] {
        for h in [0.3, 0.7] {
            let gs = gamma_grid(4, h, 1.0).expect("valid");
            let ma = MarkovApprox::new(kind, h, 1.0, &gs).expect("valid");
            // ωᵀAω = ∫_0^T Var B̂(t) dt, the latter by quadrature of the
            // covariance function of B̂
            let var_int = tanh_sinh(|x, _| ma.covariance(x, x), 1e-13);
            let w = ma.weights();
            let mut quad = 0.0;
            for i in 0..4 {
                for j in 0..4 {
                    let (gi, gj) = (gs[i], gs[j]);
                    let s = gi + gj;
                    let fr = |g: f64| -(-g).exp_m1() / g;
                    let a = match kind {
                        FbmType::RiemannLiouville => (1.0 - fr(s)) / s,
                        FbmType::MandelbrotVanNess => (2.0 - fr(gi) - fr(gj)) / s,
                    };
                    quad += w[i] * w[j] * a;
                }
            }
            assert!(
                (var_int - quad).abs() < 1e-10 * quad,
                "{kind:?} {h}: {var_int} vs {quad}"
            );
            // and the error by quadrature of the error kernel agrees with the
            // quadratic form where the weights are moderate
            let (q, e) = (ma.quadratic_mean_square_error(), ma.mean_square_error());
            assert!(
                (q - e).abs() < 1e-5 * e,
                "{kind:?} {h}: quadratic form {q} vs quadrature {e}"
            );
        }
    }
}

#[test]
fn dweights_dhurst_matches_central_differences() {
    use super::markov::b_vector;
    use num_dual::Dual64;
    // db/dH by forward-mode duals through the incomplete gamma functions
    // against central differences (step 1e-4: truncation ~1e-9 relative;
    // b carries ~1e-11 of rounding from cancelling terms, which a smaller
    // step would amplify), to 1e-7 relative; then dω/dH = A⁺ db/dH against
    // central differences of the weights where A is well enough
    // conditioned for the differences to mean something (cond < 1e7;
    // otherwise A⁺ amplifies the differences' own error), to 1e-6 relative
    // of the largest entry
    let eps = 1e-4;
    let mut compared = 0;
    for kind in [FbmType::MandelbrotVanNess, FbmType::RiemannLiouville] {
        for h in [0.1, 0.3, 0.7, 0.9] {
            for (k, t) in [(3, 1.0), (4, 2.0), (5, 2.0)] {
                let gs = gamma_grid(k, h, t).expect("valid");
                let db: Vec<f64> = b_vector(kind, Dual64::new(h, 1.0), t, &gs)
                    .iter()
                    .map(|v| v.eps)
                    .collect();
                let up: Vec<f64> = b_vector(kind, h + eps, t, &gs);
                let dn: Vec<f64> = b_vector(kind, h - eps, t, &gs);
                for i in 0..k {
                    let fd = (up[i] - dn[i]) / (2.0 * eps);
                    assert!(
                        (db[i] - fd).abs() < 1e-7 * fd.abs().max(1.0),
                        "{kind:?} H {h} K {k}: db_{i}/dH dual {} vs FD {fd}",
                        db[i]
                    );
                }
                let ma = MarkovApprox::new(kind, h, t, &gs).expect("valid");
                if ma.condition_number() > 1e7 {
                    continue;
                }
                compared += 1;
                let dw = ma.dweights_dhurst();
                let wu = MarkovApprox::new(kind, h + eps, t, &gs).expect("valid");
                let wd = MarkovApprox::new(kind, h - eps, t, &gs).expect("valid");
                let scale = dw.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                for i in 0..k {
                    let fd = (wu.weights()[i] - wd.weights()[i]) / (2.0 * eps);
                    assert!(
                        (dw[i] - fd).abs() < 1e-6 * scale,
                        "{kind:?} H {h} K {k}: dω_{i}/dH {} vs FD {fd}",
                        dw[i]
                    );
                }
            }
        }
    }
    assert!(
        compared >= 12,
        "only {compared} well-conditioned cases compared"
    );
}

#[test]
fn covariance_error_decreases_in_k() {
    // the relative mean-square error (by quadrature of the error kernel)
    // must fall with K on the default grid; the largest covariance error on
    // a grid is printed alongside
    println!(
        "MA-fBM on [0, 1]: relative mean-square error; max covariance error on a 24-point grid; rank kept"
    );
    for kind in [FbmType::MandelbrotVanNess, FbmType::RiemannLiouville] {
        for h in [0.1, 0.3, 0.7, 0.9] {
            let mut row = Vec::new();
            for k in [2, 4, 8, 16] {
                let gs = gamma_grid(k, h, 1.0).expect("valid");
                let ma = MarkovApprox::new(kind, h, 1.0, &gs).expect("valid");
                row.push((k, ma.relative_error(), ma.covariance_error(24), ma.rank()));
            }
            let cells: Vec<String> = row
                .iter()
                .map(|(k, e, c, rank)| format!("K={k}: {e:.2e} (cov {c:.1e}, rank {rank})"))
                .collect();
            println!("{kind:?} H = {h}: {}", cells.join(", "));
            for w in row.windows(2) {
                assert!(
                    w[1].1 < w[0].1,
                    "{kind:?} H {h}: the error does not decrease from K = {} to {}: {row:?}",
                    w[0].0,
                    w[1].0
                );
            }
        }
    }
}

#[test]
fn hurst_one_half_reproduces_brownian_motion() {
    for kind in [FbmType::MandelbrotVanNess, FbmType::RiemannLiouville] {
        let gs = gamma_grid(8, 0.5, 1.0).expect("valid");
        let ma = MarkovApprox::new(kind, 0.5, 1.0, &gs).expect("valid");
        // the target is Brownian motion: min(s, t)
        for (s, t) in [(0.2, 0.7), (0.5, 0.5), (0.9, 0.1)] {
            assert!((ma.target_covariance(s, t) - f64::min(s, t)).abs() < 1e-12);
        }
        let e = ma.relative_error();
        assert!(e < 1e-2, "{kind:?}: relative error {e}");
        let ma16 = MarkovApprox::new(kind, 0.5, 1.0, &gamma_grid(16, 0.5, 1.0).expect("valid"))
            .expect("valid");
        assert!(
            ma16.relative_error() < 1e-3,
            "{kind:?}: {}",
            ma16.relative_error()
        );
    }
    // the exact samplers at H = ½: covariance min(s, t) for both types
    assert!((fbm_covariance(0.5, 0.3, 0.8) - 0.3).abs() < 1e-15);
}

#[test]
fn markov_approximation_refuses_bad_input() {
    let gs = [0.5, 2.0];
    assert!(matches!(
        MarkovApprox::new(FbmType::MandelbrotVanNess, 1.2, 1.0, &gs),
        Err(FbmError::InvalidHurst { .. })
    ));
    for t in [0.0, -1.0, f64::NAN] {
        assert!(MarkovApprox::new(FbmType::MandelbrotVanNess, 0.3, t, &gs).is_err());
    }
    for bad in [&[][..], &[1.0, -2.0], &[f64::INFINITY]] {
        assert!(MarkovApprox::new(FbmType::RiemannLiouville, 0.3, 1.0, bad).is_err());
        assert!(FractionalNoise::new(bad, FbmType::RiemannLiouville).is_err());
    }
    assert!(gamma_grid_by_r(0, 2.0, 0.0).is_err());
    assert!(gamma_grid_by_r(3, 1.0, 0.0).is_err());
    assert!(gamma_grid_by_gamma_max(1, 20.0, 0.0).is_err());
    assert!(gamma_grid(3, 0.3, f64::NAN).is_err());
    // the reference grids: symmetric around 1 in log scale, γ_K = γ_max
    let g = gamma_grid_by_gamma_max(5, 20.0, 0.0).expect("valid");
    assert!((g[4] - 20.0).abs() < 1e-12 && (g[0] * g[4] - 1.0).abs() < 1e-12);
    let g = gamma_grid_by_r(4, 2.0, 0.0).expect("valid");
    assert!((g.iter().product::<f64>() - 1.0).abs() < 1e-12);
}

// ---------------------------------------------------------------------------
// The driver

/// The state `(ΔW, H̄, ξ)` over `[s, t]` of one Brownian motion of a path
/// (`H̄ = (t − s) H`).
fn state(p: &mut OuTree, s: f64, t: f64) -> Vec<f64> {
    let k = p.modes_len();
    let (mut dw, mut h, mut xi) = ([0.0], [0.0], vec![0.0; k]);
    p.increment_with_levy_area(s, t, &mut dw, &mut h);
    p.increment_with_convolutions(s, t, &mut dw, &mut xi);
    let mut v = vec![dw[0], h[0] * (t - s)];
    v.extend(xi);
    v
}

#[test]
fn joint_increments_have_the_exact_covariance_and_adjacent_ones_are_independent() {
    // 4000 paths; intervals of length 1 and 0.01 off the dyadic grid, with
    // rates so that γh spans 1e-3..1e2 in both; the state (ΔW, H̄, ξ_1..ξ_K)
    // against Σ(h), and the cross moments of two adjacent intervals
    // against 0 (exact bridging), each within 5 standard errors.
    let n = 4000;
    for (gs, s, h) in [
        (vec![1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0], 0.3, 1.0),
        (vec![0.1, 1.0, 10.0, 100.0, 1e3, 1e4], 0.5137, 0.01),
    ] {
        let noise = FractionalNoise::new(&gs, FbmType::MandelbrotVanNess).expect("valid");
        let d = gs.len() + 2;
        let mut whole = Vec::with_capacity(n * d);
        let mut pair = Vec::with_capacity(n * 2 * d);
        for seed in 0..n as u64 {
            let mut p = noise.path((0.0, 2.0), 1, seed).expect("valid span");
            whole.extend(state(&mut p, s, s + h));
            pair.extend(state(&mut p, s, s + 0.4 * h));
            pair.extend(state(&mut p, s + 0.4 * h, s + h));
        }
        let mut exact = vec![0.0; d * d];
        sigma(h, &gs, &mut exact);
        let c = second_moments(&whole, d);
        assert_moments(&c, &|i, j| exact[i * d + j], d, n, &format!("Σ({h})"));
        // adjacent intervals: the cross block must vanish
        let (mut sl, mut sr) = (vec![0.0; d * d], vec![0.0; d * d]);
        sigma(0.4 * h, &gs, &mut sl);
        sigma(0.6 * h, &gs, &mut sr);
        let c2 = second_moments(&pair, 2 * d);
        let exact2 = |i: usize, j: usize| match (i < d, j < d) {
            (true, true) => sl[i * d + j],
            (false, false) => sr[(i - d) * d + j - d],
            _ => 0.0,
        };
        assert_moments(&c2, &exact2, 2 * d, n, &format!("adjacent halves of {h}"));
    }
}

#[test]
fn non_dyadic_fixed_steps_reuse_leaf_bridges_and_stay_consistent() {
    // h = T/400 meets 25 offsets inside the leaves (400 = 16 · 25): the
    // leaf bridges are computed a few dozen times, not twice per step; a
    // grid with more offsets than the cache holds (h = T/3001) evicts. In
    // both, the path queried backwards on a fresh copy equals the forward
    // one bit for bit, and the increments sum to the whole.
    let gs = gamma_grid(5, 0.3, 2.0).expect("valid");
    let noise = FractionalNoise::new(&gs, FbmType::RiemannLiouville).expect("valid");
    let k = gs.len();
    for (steps, most) in [(400usize, 60usize), (3001, usize::MAX)] {
        let h = 2.0 / steps as f64;
        let ts: Vec<f64> = (0..=steps).map(|i| i as f64 * h).collect();
        let mut p = noise.path((0.0, 2.0), 1, 5).expect("valid");
        let mut q = noise.path((0.0, 2.0), 1, 5).expect("valid");
        let get = |p: &mut OuTree, s: f64, t: f64| {
            let (mut dw, mut xi) = ([0.0], vec![0.0; k]);
            p.increment_with_convolutions(s, t, &mut dw, &mut xi);
            (dw[0], xi)
        };
        let fw: Vec<_> = ts.windows(2).map(|w| get(&mut p, w[0], w[1])).collect();
        assert!(
            p.leaf_builds() <= most,
            "{steps} steps: {} leaf bridges computed",
            p.leaf_builds()
        );
        let mut bw: Vec<_> = ts
            .windows(2)
            .rev()
            .map(|w| get(&mut q, w[0], w[1]))
            .collect();
        bw.reverse();
        assert_eq!(fw, bw, "{steps} steps");
        let total: f64 = fw.iter().map(|x| x.0).sum();
        let (whole, _) = get(&mut p, 0.0, 2.0);
        assert!(
            (total - whole).abs() < 1e-12,
            "{steps} steps: {total} vs {whole}"
        );
    }
}

#[test]
fn paths_are_consistent_in_any_query_order() {
    let gs = gamma_grid(5, 0.3, 1.0).expect("valid");
    let noise = FractionalNoise::new(&gs, FbmType::MandelbrotVanNess).expect("valid");
    let times = [0.0, 0.137, 0.25, 0.2501, 0.6, 0.61, 0.999, 1.0];
    let mut p = noise.path((0.0, 1.0), 2, 9).expect("valid");
    let mut q = noise.path((0.0, 1.0), 2, 9).expect("valid");
    let k = gs.len();
    let get = |p: &mut OuTree, s: f64, t: f64| {
        let (mut dw, mut xi, mut h) = ([0.0; 2], vec![0.0; 2 * k], [0.0; 2]);
        p.increment_with_convolutions(s, t, &mut dw, &mut xi);
        p.increment_with_levy_area(s, t, &mut dw, &mut h);
        (dw, xi, h)
    };
    // forwards on p, backwards on q: identical values
    let mut fw = Vec::new();
    for w in times.windows(2) {
        fw.push(get(&mut p, w[0], w[1]));
    }
    let mut bw = Vec::new();
    for w in times.windows(2).rev() {
        bw.push(get(&mut q, w[0], w[1]));
    }
    bw.reverse();
    assert_eq!(fw, bw);
    // composition: [a, b] ⊕ [b, c] = [a, c] for every triple
    for (i, &a) in times.iter().enumerate() {
        for (j, &b) in times.iter().enumerate().skip(i + 1) {
            for &c in &times[j + 1..] {
                let (w1, x1, h1) = get(&mut p, a, b);
                let (w2, x2, h2) = get(&mut p, b, c);
                let (w, x, h) = get(&mut p, a, c);
                for m in 0..2 {
                    assert!((w1[m] + w2[m] - w[m]).abs() < 1e-12, "ΔW ({a}, {b}, {c})");
                    let (l, r) = (b - a, c - b);
                    let hb = h1[m] * l + h2[m] * r + 0.5 * (r * w1[m] - l * w2[m]);
                    assert!((hb - h[m] * (c - a)).abs() < 1e-12, "H̄ ({a}, {b}, {c})");
                    for (kk, &g) in gs.iter().enumerate() {
                        let comp = (-g * r).exp() * x1[m * k + kk] + x2[m * k + kk];
                        assert!(
                            (comp - x[m * k + kk]).abs() < 1e-12,
                            "ξ_{kk} ({a}, {b}, {c}): {comp} vs {}",
                            x[m * k + kk]
                        );
                    }
                }
            }
        }
    }
    // reversed queries: ΔW flips, H and ξ are those of the forward interval
    let (w, x, h) = get(&mut p, 0.6, 0.137);
    let (wf, xf, hf) = get(&mut p, 0.137, 0.6);
    assert_eq!((w[0], w[1]), (-wf[0], -wf[1]));
    assert_eq!((x, h), (xf, hf));
}

#[test]
fn the_fbm_path_has_the_markov_approximations_covariance() {
    // B̂_H(t) read from 4000 paths against MarkovApprox::covariance (the
    // exact covariance of the approximating process; type I includes the
    // stationary start), within 5 standard errors
    let n = 4000;
    let ts = [0.1, 0.37, 0.5, 1.0];
    for kind in [FbmType::MandelbrotVanNess, FbmType::RiemannLiouville] {
        let gs = gamma_grid(4, 0.3, 1.0).expect("valid");
        let ma = MarkovApprox::new(kind, 0.3, 1.0, &gs).expect("valid");
        let noise = FractionalNoise::from_markov(&ma);
        let mut xs = Vec::with_capacity(n * ts.len());
        for seed in 0..n as u64 {
            let mut p = noise.path((0.0, 1.0), 1, seed).expect("valid");
            if kind == FbmType::RiemannLiouville {
                assert!(p.initial_modes().iter().all(|&y| y == 0.0));
            }
            for &t in &ts {
                let mut b = [0.0];
                p.fbm(t, &mut b).expect("weights given");
                xs.push(b[0]);
            }
        }
        let c = second_moments(&xs, ts.len());
        assert_moments(
            &c,
            &|i, j| ma.covariance(ts[i], ts[j]),
            ts.len(),
            n,
            &format!("B̂ {kind:?}"),
        );
    }
    // without weights the fBM value is a typed error
    let noise = FractionalNoise::new(&[1.0, 2.0], FbmType::RiemannLiouville).expect("valid");
    let mut p = noise.path((0.0, 1.0), 1, 0).expect("valid");
    assert!(p.fbm(0.5, &mut [0.0]).is_err());
    assert!(noise.path((1.0, 1.0), 1, 0).is_err());
    assert!(noise.path((0.0, f64::NAN), 1, 0).is_err());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Any set of query times, visited in any order, gives the same
        /// increments as visiting them in order on a fresh path, and they
        /// add up to the increment over the whole.
        #[test]
        fn query_order_is_irrelevant(
            mut ts in proptest::collection::vec(0.0f64..1.0, 2..7),
            perm_seed in any::<u64>(),
            seed in any::<u64>(),
        ) {
            ts.sort_by(f64::total_cmp);
            ts.dedup();
            prop_assume!(ts.len() >= 2);
            let gs = [0.3, 4.0, 70.0];
            let noise = FractionalNoise::new(&gs, FbmType::MandelbrotVanNess).expect("valid");
            let mut a = noise.path((0.0, 1.0), 1, seed).expect("valid");
            let mut b = noise.path((0.0, 1.0), 1, seed).expect("valid");
            let n = ts.len() - 1;
            let inorder: Vec<Vec<f64>> = (0..n).map(|i| state(&mut a, ts[i], ts[i + 1])).collect();
            // a pseudo-random permutation of the intervals
            let mut idx: Vec<usize> = (0..n).collect();
            let mut r = perm_seed;
            for i in (1..n).rev() {
                r = crate::brownian::rng::mix(r.wrapping_add(i as u64));
                idx.swap(i, (r % (i as u64 + 1)) as usize);
            }
            for &i in &idx {
                prop_assert_eq!(&state(&mut b, ts[i], ts[i + 1]), &inorder[i]);
            }
            let total = state(&mut b, ts[0], ts[n]);
            let sum: f64 = inorder.iter().map(|v| v[0]).sum();
            prop_assert!((sum - total[0]).abs() < 1e-12);
        }
    }
}
