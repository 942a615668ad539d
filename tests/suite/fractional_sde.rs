//! fBM-driven SDEs `dX = b dt + s dB̂_H` (issue #15 part 2): the modes
//! integrated exactly by the driver, so steps far beyond `1/γ_max` are
//! stable and give the moments of the discrete scheme computed exactly; the
//! adaptive Heun/Euler pair converges, on one path, to a fine fixed-step
//! solve as the tolerance shrinks; at `H = ½` the solve is the Brownian
//! one; the fBM path is read back from the solution; gradients in the
//! parameters, the initial state and `H` agree with central differences.

use sdeflow::fractional::{
    FbmType, FractionalEuler, FractionalHeun, FractionalNoise, Hurst, ModeWeights, gamma_grid,
    gamma_grid_by_gamma_max,
};
use sdeflow::prelude::*;

use crate::common;

/// The fractional OU process `dX = −θ X dt + σ dB̂_H`, `X(0) = x0`,
/// on `[0, 1]`, with `θ = p[0]`, `σ = p[1]` (and `H` at `p[2]` where the
/// weights read it).
fn fou(
    driver: FractionalNoise,
    p: &[f64],
    x0: f64,
) -> Problem<impl Drift + Clone + use<>, impl Diffusion + Clone + use<>, FractionalNoise> {
    Problem::sde(
        |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| dy[0] = -p[0] * y[0],
        |_t: f64, _y: &[f64], p: &[f64], g: &mut [f64]| g[0] = p[1],
        Noise::Diagonal,
        vec![x0],
        (0.0, 1.0),
    )
    .params(p.to_vec())
    .driver(driver)
}

/// Row-major `k × k` products for the exact moment recursion.
fn matmul(a: &[f64], b: &[f64], k: usize) -> Vec<f64> {
    let mut c = vec![0.0; k * k];
    for i in 0..k {
        for l in 0..k {
            let ail = a[i * k + l];
            for j in 0..k {
                c[i * k + j] += ail * b[l * k + j];
            }
        }
    }
    c
}

fn transpose(a: &[f64], k: usize) -> Vec<f64> {
    (0..k * k).map(|i| a[(i % k) * k + i / k]).collect()
}

/// The exact mean and variance of `X_N` of the fractional Euler scheme
/// for the fOU with step `h` over `steps` steps: the scheme is linear in
/// `Z = (X, Y_1..Y_K)`, `Z' = M Z + B ξ` with `ξ ~ N(0, Q(h))` the exact
/// OU convolutions (`fbm.md` §3.4), `Y(0)` stationary (type I) or zero.
fn scheme_moments(
    w: &[f64],
    gammas: &[f64],
    kind: FbmType,
    (theta, sigma, x0): (f64, f64, f64),
    h: f64,
    steps: usize,
) -> (f64, f64) {
    let kk = gammas.len();
    let d = kk + 1;
    let e: Vec<f64> = gammas.iter().map(|g| (-g * h).exp()).collect();
    let mut m = vec![0.0; d * d];
    m[0] = 1.0 - theta * h;
    for k in 0..kk {
        m[k + 1] = sigma * w[k] * (e[k] - 1.0);
        m[(k + 1) * d + k + 1] = e[k];
    }
    // B Q Bᵀ with B = [σ ωᵀ; I]
    let q = |i: usize, j: usize| -(-(gammas[i] + gammas[j]) * h).exp_m1() / (gammas[i] + gammas[j]);
    let mut bqb = vec![0.0; d * d];
    for i in 0..kk {
        for j in 0..kk {
            bqb[(i + 1) * d + j + 1] = q(i, j);
            bqb[i + 1] += sigma * w[j] * q(j, i);
            bqb[(i + 1) * d] += sigma * w[j] * q(i, j);
            bqb[0] += sigma * sigma * w[i] * w[j] * q(i, j);
        }
    }
    let mut p = vec![0.0; d * d];
    if kind == FbmType::MandelbrotVanNess {
        for i in 0..kk {
            for j in 0..kk {
                p[(i + 1) * d + j + 1] = 1.0 / (gammas[i] + gammas[j]);
            }
        }
    }
    let mt = transpose(&m, d);
    for _ in 0..steps {
        p = matmul(&matmul(&m, &p, d), &mt, d);
        for (a, b) in p.iter_mut().zip(&bqb) {
            *a += b;
        }
    }
    (x0 * m[0].powi(steps as i32), p[0])
}

#[test]
fn fractional_ou_with_stiff_modes_has_the_exact_moments_of_the_scheme() {
    // γ_max = 2000 and h = 1/16: γ_max·h = 125, 250× the reference code's
    // limit (0.5). The scheme's exact mean and variance come from the
    // linear recursion above; the sample moments of N = 2000 independent
    // paths must match them within 4 standard errors (mean: 4·sd/√N;
    // variance: 4·√(2/N) relative, Gaussian X). The scheme's variance is
    // also within 10% of the continuous-time one (the same recursion at
    // h = 1e-4): Euler's O(θh) error on the X-equation only.
    let (theta, sigma, x0, h, n) = (1.0, 0.8, 1.0, 1.0 / 16.0, 2000u64);
    for (kind, hurst) in [
        (FbmType::MandelbrotVanNess, 0.3),
        (FbmType::RiemannLiouville, 0.7),
    ] {
        let gammas = gamma_grid_by_gamma_max(6, 2000.0, 0.0).expect("grid");
        assert!(gammas.iter().cloned().fold(0.0, f64::max) * h >= 100.0 - 1e-9);
        let mw = ModeWeights::new(kind, Hurst::Fixed(hurst), 1.0, &gammas).expect("weights");
        let (w, _) = mw.weights(&[]).expect("weights");
        let (mean, var) = scheme_moments(&w, &gammas, kind, (theta, sigma, x0), h, 16);
        let (_, var_c) = scheme_moments(&w, &gammas, kind, (theta, sigma, x0), 1e-4, 10_000);
        let prob = fou(mw.noise(), &[theta, sigma], x0);
        let solver = FractionalEuler::new(mw.clone());
        let xs: Vec<f64> = (0..n)
            .map(|seed| {
                let opts = Options::default()
                    .fixed_step(h)
                    .seed(seed)
                    .save_at(SaveAt::T1);
                let sol = solve(&prob, solver.clone(), opts).expect("solve");
                assert_eq!(sol.stats.accepted_steps, 16);
                sol.ys[0]
            })
            .collect();
        let nf = n as f64;
        let m_hat = xs.iter().sum::<f64>() / nf;
        let v_hat = xs.iter().map(|x| (x - m_hat).powi(2)).sum::<f64>() / (nf - 1.0);
        println!(
            "{kind:?} H = {hurst}: mean {m_hat:.4} (scheme {mean:.4}), variance {v_hat:.4} \
             (scheme {var:.4}, continuous {var_c:.4})"
        );
        assert!(xs.iter().all(|x| x.is_finite()));
        assert!((m_hat - mean).abs() < 4.0 * (var / nf).sqrt(), "{kind:?}");
        assert!(
            (v_hat / var - 1.0).abs() < 4.0 * (2.0 / nf).sqrt(),
            "{kind:?}"
        );
        assert!(
            (var / var_c - 1.0).abs() < 0.1,
            "{kind:?}: {var} vs {var_c}"
        );
    }
}

/// A nonlinear Stratonovich SDE with multiplicative scalar fBM noise,
/// `dX = (0.5 − X + 0.2 sin X) dt + 0.4 (1 + 0.3 cos X) ∘ dB̂_H`, `H = 0.3`.
fn nonlinear(
    driver: FractionalNoise,
) -> Problem<impl Drift + Clone + use<>, impl Diffusion + Clone + use<>, FractionalNoise> {
    Problem::sde(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = 0.5 - y[0] + 0.2 * y[0].sin(),
        |_t: f64, y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = 0.4 * (1.0 + 0.3 * y[0].cos()),
        Noise::Scalar,
        vec![0.2],
        (0.0, 1.0),
    )
    .interpretation(Interpretation::Stratonovich)
    .driver(driver)
}

#[test]
fn adaptive_heun_converges_to_the_fine_fixed_step_solve_on_the_same_path() {
    // Mean absolute error of X(1) over 4 seeds against Heun at h = 2^-14
    // on the same path. Above the fastest mode's time scale 1/γ_max the
    // driving path is as rough as fBM with H = 0.3, so the local error
    // estimate scales like h^{2H} there, not h^2: the error falls more
    // slowly than the tolerance (measured slope 0.57 on log–log). Asserted:
    // the errors fall at each tenfold tightening, the fitted slope exceeds
    // 0.4, the tightest is below 1e-3, and rejected steps occur (the path
    // is re-queried after them).
    let gammas = gamma_grid(5, 0.3, 1.0).expect("grid");
    let mw = ModeWeights::new(FbmType::RiemannLiouville, Hurst::Fixed(0.3), 1.0, &gammas)
        .expect("weights");
    let prob = nonlinear(mw.noise());
    let heun = FractionalHeun::new(mw);
    let tols = [1e-2, 1e-3, 1e-4, 1e-5];
    let seeds = 0..4u64;
    let mut errs = vec![0.0; tols.len()];
    let mut rejected = 0;
    for seed in seeds.clone() {
        let fine = Options::default()
            .fixed_step(2f64.powi(-14))
            .seed(seed)
            .save_at(SaveAt::T1);
        let reference = solve(&prob, heun.clone(), fine).expect("fine").ys[0];
        for (i, &tol) in tols.iter().enumerate() {
            let opts = Options::default().tol(tol).seed(seed).save_at(SaveAt::T1);
            let sol = solve(&prob, heun.clone(), opts).expect("adaptive");
            rejected += sol.stats.rejected_steps;
            errs[i] += (sol.ys[0] - reference).abs() / seeds.end as f64;
        }
    }
    let slope = common::fitted_slope(&tols, &errs);
    println!(
        "adaptive FractionalHeun: errors {errs:?} at tol {tols:?}, slope {slope:.3}, {rejected} rejections"
    );
    assert!(errs.windows(2).all(|e| e[1] < e[0]), "{errs:?}");
    assert!(slope > 0.4, "slope {slope}: {errs:?}");
    assert!(errs[tols.len() - 1] < 1e-3, "{errs:?}");
    assert!(rejected > 0);
}

#[test]
fn a_solver_of_the_other_calculus_is_refused_naming_the_fractional_ones() {
    // FractionalHeun integrates Stratonovich: on an Itô problem it is a
    // typed error naming the fBM-driven solvers (not the Brownian ones,
    // which do not step B̂_H), and FractionalEuler on a Stratonovich one
    let gammas = gamma_grid(4, 0.3, 1.0).expect("grid");
    let mw = ModeWeights::new(FbmType::MandelbrotVanNess, Hurst::Fixed(0.3), 1.0, &gammas)
        .expect("weights");
    let ito = fou(mw.noise(), &[1.0, 0.5], 1.0);
    let opts = Options::default().fixed_step(0.1).seed(1);
    let e = solve(&ito, FractionalHeun::new(mw.clone()), opts.clone()).expect_err("Itô");
    assert!(matches!(e, SolveError::Unsupported { .. }), "{e}");
    common::assert_says(&e, &["FractionalHeun", "Ito SDEs", "FractionalEuler"]);
    assert!(!e.to_string().contains("  "), "a run of spaces in: {e}");
    let strat = ito.clone().interpretation(Interpretation::Stratonovich);
    let e = solve(&strat, FractionalEuler::new(mw.clone()), opts.clone()).expect_err("Str.");
    common::assert_says(&e, &["Stratonovich SDEs", "FractionalHeun"]);
    // and each solves its own
    assert!(solve(&strat, FractionalHeun::new(mw.clone()), opts.clone()).is_ok());
    assert!(solve(&ito, FractionalEuler::new(mw), opts).is_ok());
}

#[test]
fn hurst_one_half_is_the_brownian_case() {
    // At H = ½ (type II, K = 16: relative mean-square error of B̂ below
    // 1e-3) the fBM path is the driver's own Brownian motion up to that
    // error, and the fractional Euler solve is Euler–Maruyama on it. Over
    // 20 seeds at h = 1/128: RMS of B̂(t) − W(t) at the saved times below
    // 1e-5, and the RMS difference of
    // X(1) below 1e-5 of X(1)'s spread (measured: about 3e-8 and 6e-8 — the
    // slowest mode, γ_1 ≪ 1, carries nearly all the weight).
    let gammas = gamma_grid(16, 0.5, 1.0).expect("grid");
    let mw = ModeWeights::new(FbmType::RiemannLiouville, Hurst::Fixed(0.5), 1.0, &gammas)
        .expect("weights");
    let prob = fou(mw.noise(), &[1.0, 0.8], 1.0);
    let (mut db2, mut dx2, mut sx2, mut cnt) = (0.0, 0.0, 0.0, 0.0);
    for seed in 0..20 {
        let opts = Options::default().fixed_step(1.0 / 128.0).seed(seed);
        let frac = solve(&prob, FractionalEuler::new(mw.clone()), opts.clone()).expect("frac");
        let bm = solve(&prob, EulerMaruyama, opts).expect("em");
        let b = mw.fbm_at_saved(&frac, &prob.params).expect("fbm");
        let w = bm.brownian_at_saved().expect("w");
        for (x, y) in b.iter().zip(&w) {
            db2 += (x - y).powi(2);
            cnt += 1.0;
        }
        let (xf, xb) = (frac.ys[frac.ys.len() - 1], bm.ys[bm.ys.len() - 1]);
        dx2 += (xf - xb).powi(2);
        sx2 += (xb - (-1.0f64).exp()).powi(2);
    }
    let (rms_b, rel_x) = ((db2 / cnt).sqrt(), (dx2 / sx2).sqrt());
    println!("H = ½: RMS(B̂ − W) = {rms_b:.2e}, RMS ΔX(1) / spread = {rel_x:.2e}");
    assert!(rms_b < 1e-5 && rel_x < 1e-5, "{rms_b} {rel_x}");
}

#[test]
fn the_fbm_path_is_read_back_from_the_solution() {
    // B̂ at the saved times equals the driver path's own B̂_H(t)
    // (OuTree::fbm, same seed) to round-off, and starts at 0.
    let gammas = gamma_grid(4, 0.3, 1.0).expect("grid");
    let mw = ModeWeights::new(FbmType::MandelbrotVanNess, Hurst::Fixed(0.3), 1.0, &gammas)
        .expect("weights");
    let prob = fou(mw.noise(), &[1.0, 0.5], 1.0);
    let sol = solve(
        &prob,
        FractionalEuler::new(mw.clone()),
        Options::default().fixed_step(0.1).seed(5),
    )
    .expect("solve");
    let b = mw.fbm_at_saved(&sol, &prob.params).expect("fbm");
    let mut path = prob.driver.path((0.0, 1.0), 1, 5).expect("path");
    assert_eq!(b[0], 0.0);
    for (t, v) in sol.ts.iter().zip(&b) {
        let mut want = [0.0];
        path.fbm(*t, &mut want).expect("fbm");
        assert!((v - want[0]).abs() < 1e-12, "t = {t}: {v} vs {}", want[0]);
    }
    // a mismatched reading is refused
    let other = ModeWeights::new(
        FbmType::MandelbrotVanNess,
        Hurst::Fixed(0.3),
        1.0,
        &gammas[..3],
    )
    .expect("weights");
    let e = other
        .fbm_at_saved(&sol, &prob.params)
        .expect_err("K differs");
    common::assert_says(&e, &["4 OU modes"]);
}

/// `dX = (p0 − p1 X) dt + p2 (1 + 0.2 sin X) dB̂` in two components with
/// general noise (two fBMs mixing into both), `H = p[3]`.
#[derive(Clone, Copy)]
struct Dr;
impl GenericField for Dr {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = p[0] - p[1] * y[0] + y[1] * 0.3;
        dy[1] = p[0] * 0.5 - p[1] * y[1] - (y[0] * 0.5).sin();
    }
}
#[derive(Clone, Copy)]
struct Df;
impl GenericField for Df {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], g: &mut [D]) {
        // column-major 2 × 2
        g[0] = p[2] * (D::from(1.0) + (y[0]).sin() * 0.2);
        g[1] = p[2] * y[0] * 0.1;
        g[2] = p[2] * y[1].cos() * 0.3;
        g[3] = p[2] * (D::from(1.0) + y[1] * y[1] * 0.1);
    }
}

fn gradient_problem(
    mw: &ModeWeights,
    p: &[f64],
    y0: &[f64],
    interp: Interpretation,
) -> Problem<Generic<Dr>, Generic<Df>, FractionalNoise> {
    Problem::sde_field(
        Generic(Dr),
        Generic(Df),
        Noise::General(2),
        y0.to_vec(),
        (0.0, 1.0),
    )
    .params(p.to_vec())
    .interpretation(interp)
    .driver(mw.noise())
}

#[test]
fn gradients_in_parameters_initial_state_and_hurst_match_central_differences() {
    // The discrete adjoint through FractionalEuler (Itô) and FractionalHeun
    // (Stratonovich, fixed steps; with an error cotangent too? no: states
    // only) on a fixed seed, with checkpoints (steps between them replayed
    // on the kept path) against central differences of the same solve
    // (step 1e-5; the γ grid fixed, ω(H) re-solved): within 1e-6 relative.
    let gammas = gamma_grid(5, 0.35, 1.0).expect("grid");
    let mw = ModeWeights::new(FbmType::MandelbrotVanNess, Hurst::Param(3), 1.0, &gammas)
        .expect("weights");
    let (p, y0) = ([0.4, 1.1, 0.5, 0.35], [0.3, -0.2]);
    let loss = |_ts: &[f64], ys: &[f64], g: &mut [f64]| {
        let n = ys.len();
        g.fill(0.0);
        g[n - 2] = 2.0 * ys[n - 2];
        g[n - 1] = 1.0;
        ys[n - 2] * ys[n - 2] + ys[n - 1]
    };
    let opts = Options::default()
        .fixed_step(1.0 / 64.0)
        .seed(11)
        .save_at(SaveAt::T1);
    fn check<S>(
        solver: S,
        mw: &ModeWeights,
        p: &[f64],
        y0: &[f64],
        interp: Interpretation,
        opts: &Options,
        loss: &dyn Loss,
    ) where
        S: sdeflow::adjoint::Differentiable<Generic<Dr>, Generic<Df>, FractionalNoise>
            + Solver<Problem<Generic<Dr>, Generic<Df>, FractionalNoise>>
            + Clone,
    {
        let prob = gradient_problem(mw, p, y0, interp);
        let g = grad(
            &prob,
            solver.clone(),
            opts,
            loss,
            Adjoint::Discrete { checkpoints: 3 },
        )
        .expect("grad");
        let name = sdeflow::solver::Solver::name(&solver);
        let f = |p: &[f64], y0: &[f64]| {
            common::loss_of_solve(
                &gradient_problem(mw, p, y0, interp),
                solver.clone(),
                opts,
                loss,
            )
        };
        for j in 0..p.len() {
            let fd = common::central_difference(|q| f(q, y0), p, j, 1e-5);
            let rel = (g.dp[j] - fd).abs() / fd.abs().max(1e-3);
            println!(
                "{name} p[{j}]: adjoint {:.10e}, FD {fd:.10e}, rel {rel:.1e}",
                g.dp[j]
            );
            assert!(rel < 1e-6, "{name} p[{j}]: {} vs {fd}", g.dp[j]);
        }
        for j in 0..y0.len() {
            let fd = common::central_difference(|y| f(p, y), y0, j, 1e-5);
            let rel = (g.dy0[j] - fd).abs() / fd.abs().max(1e-3);
            println!(
                "{name} y0[{j}]: adjoint {:.10e}, FD {fd:.10e}, rel {rel:.1e}",
                g.dy0[j]
            );
            assert!(rel < 1e-6, "{name} y0[{j}]: {} vs {fd}", g.dy0[j]);
        }
    }
    check(
        FractionalEuler::new(mw.clone()),
        &mw,
        &p,
        &y0,
        Interpretation::Ito,
        &opts,
        &loss,
    );
    check(
        FractionalHeun::new(mw.clone()),
        &mw,
        &p,
        &y0,
        Interpretation::Stratonovich,
        &opts,
        &loss,
    );
}

#[test]
fn bad_input_gives_typed_errors() {
    let gammas = gamma_grid(4, 0.3, 1.0).expect("grid");
    let mw = ModeWeights::new(FbmType::RiemannLiouville, Hurst::Param(2), 1.0, &gammas)
        .expect("weights");
    let opts = Options::default().fixed_step(0.1);
    // H out of (0, 1) in the parameters
    let prob = fou(mw.noise(), &[1.0, 0.5, 1.2], 1.0);
    let e = solve(&prob, FractionalEuler::new(mw.clone()), opts.clone()).expect_err("H = 1.2");
    common::assert_says(&e, &["Hurst", "1.2"]);
    // H's parameter missing
    let prob = fou(mw.noise(), &[1.0, 0.5], 1.0);
    let e = solve(&prob, FractionalEuler::new(mw.clone()), opts.clone()).expect_err("no p[2]");
    common::assert_says(&e, &["p[2]"]);
    // a driver with other modes
    let other = FractionalNoise::new(
        &gamma_grid(3, 0.3, 1.0).expect("grid"),
        FbmType::RiemannLiouville,
    )
    .expect("noise");
    let prob = fou(other, &[1.0, 0.5, 0.3], 1.0);
    let e = solve(&prob, FractionalEuler::new(mw.clone()), opts.clone()).expect_err("modes");
    common::assert_says(&e, &["ModeWeights::noise"]);
    // the interpretation each method integrates
    let prob = fou(mw.noise(), &[1.0, 0.5, 0.3], 1.0);
    let strat = Problem::sde(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
        |_t: f64, y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = y[0],
        Noise::Diagonal,
        vec![1.0],
        (0.0, 1.0),
    )
    .params(vec![0.0, 0.0, 0.3])
    .interpretation(Interpretation::Stratonovich)
    .driver(mw.noise());
    let e = solve(&strat, FractionalEuler::new(mw.clone()), opts.clone()).expect_err("Itô only");
    common::assert_says(&e, &["Stratonovich"]);
    // non-finite state
    let bad = prob.clone().y0(vec![f64::NAN]);
    assert!(solve(&bad, FractionalEuler::new(mw.clone()), opts.clone()).is_err());
    // the weights' own inputs
    assert!(ModeWeights::new(FbmType::RiemannLiouville, Hurst::Fixed(0.0), 1.0, &gammas).is_err());
    assert!(ModeWeights::new(FbmType::RiemannLiouville, Hurst::Fixed(0.3), -1.0, &gammas).is_err());
    assert!(
        ModeWeights::new(
            FbmType::RiemannLiouville,
            Hurst::Fixed(0.3),
            1.0,
            &[1.0, -2.0]
        )
        .is_err()
    );
    // the adaptive method with a tolerance on its own works, the fixed one
    // needs a step
    let e = solve(&prob, FractionalEuler::new(mw), Options::default()).expect_err("no dt");
    println!("{e}");
}
