//! Reverse-SDE samplers (issue #14, part 4): sample moments on the
//! Gaussian-mixture test bed against the exact marginal, strong orders on a
//! fixed Brownian path for the single Gaussian (a linear reverse SDE with a
//! closed-form solution given the path), agreement of DDPM ancestral with
//! SDE-DPM-Solver++1, reproducibility on a seed, and typed errors.
//!
//! Monte Carlo bounds: each moment estimate is a mean over `n` independent
//! samples, so its standard error is estimated from the samples themselves
//! (`sd(x_i)/√n` for a mean, `sd((x_i − x̄_i)(x_j − x̄_j))/√n` for a
//! covariance entry, valid for the mixture's non-Gaussian tails too); each
//! entry must lie within 4 standard errors of the exact value (a two-sided
//! 4σ bound fails with probability 6e-5 per entry for an exact sampler; the
//! seeds are fixed, so the tests are deterministic). The step counts are
//! chosen so that the discretisation bias is below one standard error
//! (measured: printed by each test).

use crate::common::{assert_order, assert_says};
use crate::diffusion::BoxedModel;
use sdeflow::diffusion::*;
use sdeflow::noise::{BrownianPath, Driver, Increments, NormalStream, VirtualTree};
use sdeflow::prelude::*;

const T: f64 = 1.0;
const T_END: f64 = 1e-3;

/// The two-dimensional mixture of the ODE tests (diffusion.md §7's bed).
pub(crate) fn mixture2() -> GaussianMixture {
    GaussianMixture::new(
        &[0.3, 0.7],
        &[1.0, -0.5, -0.8, 0.6],
        &[0.05, 0.2, 0.3, 0.02],
    )
    .expect("valid mixture")
}

/// A three-component mixture in 16 dimensions.
pub(crate) fn mixture16() -> GaussianMixture {
    let d = 16;
    let mut means = vec![0.0; 3 * d];
    let mut vars = vec![0.0; 3 * d];
    for i in 0..d {
        let x = i as f64 / d as f64;
        means[i] = 1.2 * (6.0 * x).sin();
        means[d + i] = -0.9 + 0.3 * x;
        means[2 * d + i] = 0.8 * (4.0 * x).cos();
        vars[i] = 0.05 + 0.1 * x;
        vars[d + i] = 0.2;
        vars[2 * d + i] = 0.3 - 0.2 * x;
    }
    GaussianMixture::new(&[0.2, 0.5, 0.3], &means, &vars).expect("valid mixture")
}

/// The reverse SDE of `gmm` (exact noise prediction, VP linear) from
/// `x_t` at `T` to `T_END`.
pub(crate) fn mixture_sde(
    gmm: &GaussianMixture,
    x_t: Vec<f64>,
) -> DiffusionSde<BoxedModel, VpLinear> {
    let s = VpLinear::default();
    let gmm = gmm.clone();
    let model: BoxedModel = Box::new(move |t, x, _p, out| gmm.noise(&s, t, x, out));
    reverse_sde(model, Parametrisation::Noise, s, x_t, (T, T_END))
}

/// `count · d` standard normals from `seed`.
pub(crate) fn normals(count: usize, seed: u64) -> Vec<f64> {
    let mut z = NormalStream::new(seed);
    (0..count).map(|_| z.next_normal()).collect()
}

/// `n` samples of `gmm` at `T_END` by `sampler` in `steps` uniform-λ steps,
/// the batch in one state, prior noise and increments from `seed`.
pub(crate) fn sample<X>(
    sampler: X,
    gmm: &GaussianMixture,
    n: usize,
    steps: usize,
    seed: u64,
) -> Vec<f64>
where
    X: Method<DiffusionSde<BoxedModel, VpLinear, Increments>>,
{
    let s = VpLinear::default();
    // i.i.d. increments: the fastest driver for fixed-grid sampling
    let prob = mixture_sde(gmm, normals(n * gmm.dim(), seed ^ 0x9E37)).driver(Increments);
    let opts = TimeGrid::UniformLambda
        .options(&s, T, T_END, steps)
        .expect("a uniform-λ grid")
        .seed(seed);
    solve(&prob, sampler, opts)
        .expect("sampling")
        .last()
        .to_vec()
}

/// The sample mean and covariance of `x` (`d`-dimensional samples) and
/// their standard errors.
pub(crate) struct Moments {
    pub(crate) mean: Vec<f64>,
    pub(crate) cov: Vec<f64>,
    pub(crate) se_mean: Vec<f64>,
    pub(crate) se_cov: Vec<f64>,
}

pub(crate) fn moments(x: &[f64], d: usize) -> Moments {
    let n = (x.len() / d) as f64;
    let mut mean = vec![0.0; d];
    for xj in x.chunks_exact(d) {
        for i in 0..d {
            mean[i] += xj[i] / n;
        }
    }
    let (mut cov, mut sq) = (vec![0.0; d * d], vec![0.0; d * d]);
    for xj in x.chunks_exact(d) {
        for i in 0..d {
            for k in 0..d {
                let v = (xj[i] - mean[i]) * (xj[k] - mean[k]);
                cov[i * d + k] += v / n;
                sq[i * d + k] += v * v / n;
            }
        }
    }
    let se_cov = (0..d * d)
        .map(|e| ((sq[e] - cov[e] * cov[e]).max(0.0) / n).sqrt())
        .collect();
    let se_mean = (0..d).map(|i| (cov[i * d + i] / n).sqrt()).collect();
    Moments {
        mean,
        cov,
        se_mean,
        se_cov,
    }
}

/// Asserts the sample moments of `x` lie within 4 standard errors of
/// `gmm`'s marginal at `T_END`, entry by entry; returns the distances
/// `‖m̂ − m‖₂` and `‖Ĉ − C‖_F/‖C‖_F`.
pub(crate) fn assert_moments(
    what: &str,
    x: &[f64],
    gmm: &GaussianMixture,
    bound: f64,
) -> (f64, f64) {
    let d = gmm.dim();
    let (m, c) = gmm.marginal_moments(&VpLinear::default(), T_END);
    let got = moments(x, d);
    let dm = m
        .iter()
        .zip(&got.mean)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    let cn = c.iter().map(|v| v * v).sum::<f64>().sqrt();
    let dc = c
        .iter()
        .zip(&got.cov)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        .sqrt()
        / cn;
    let worst_m = (0..d)
        .map(|i| (got.mean[i] - m[i]).abs() / got.se_mean[i])
        .fold(0.0, f64::max);
    let worst_c = (0..d * d)
        .map(|e| (got.cov[e] - c[e]).abs() / got.se_cov[e])
        .fold(0.0, f64::max);
    println!(
        "{what}: |m̂ − m| = {dm:.2e}, |Ĉ − C|/|C| = {dc:.2e}; worst entry {worst_m:.2} SE (mean), \
         {worst_c:.2} SE (cov)"
    );
    assert!(
        worst_m < bound,
        "{what}: a mean entry is {worst_m:.2} standard errors off"
    );
    assert!(
        worst_c < bound,
        "{what}: a covariance entry is {worst_c:.2} standard errors off"
    );
    (dm, dc)
}

/// The single Gaussian `N(μ, v)` (1-D, a batch of `B` independent samples
/// in one state): its reverse SDE is linear, `dy = (f + g²/C_t) y dt + g dW̄`
/// for `y = x − α_t μ`, `C_t = α_t² v + σ_t²`, with the transition
/// `Φ(t, u) = (C_t α_u)/(C_u α_t)` (from `C' = 2fC + g²`), so given the
/// Brownian path
/// `y_end = Φ(t_end, T) y_T + ∫_T^{t_end} Φ(t_end, u) g(u) dW(u)`. The
/// integral is a deterministic integrand against the path: a midpoint sum
/// over 2^15 uniform cells of the same virtual tree the solve queries
/// (error `≈ |w'| h/√12 ≈ 1e-5`, far below the errors measured).
mod gaussian {
    use super::*;

    pub(super) const MU: f64 = 0.5;
    pub(super) const V: f64 = 0.09;
    pub(super) const B: usize = 32;

    pub(super) fn problem(x_t: Vec<f64>) -> DiffusionSde<BoxedModel, VpLinear> {
        let s = VpLinear::default();
        let g = DiagonalGaussian::new(vec![MU], vec![V]).expect("valid Gaussian");
        let model: BoxedModel = Box::new(move |t, x, _p, out| g.noise(&s, t, x, out));
        reverse_sde(model, Parametrisation::Noise, s, x_t, (T, T_END))
    }

    /// The exact `x(T_END)` on the path of `seed`.
    pub(super) fn exact(x_t: &[f64], seed: u64) -> Vec<f64> {
        let s = VpLinear::default();
        let c = |t: f64| s.alpha(t).powi(2) * V + s.sigma(t).powi(2);
        let g = |t: f64| (-2.0 * s.sigma(t).powi(2) * s.d_lambda(t)).sqrt();
        let phi = |u: f64| c(T_END) * s.alpha(u) / (c(u) * s.alpha(T_END));
        let mut path = VirtualTree
            .path((T, T_END), x_t.len(), seed)
            .expect("a tree path");
        let cells = 1 << 15;
        let h = (T_END - T) / cells as f64;
        let mut integral = vec![0.0; x_t.len()];
        let mut dw = vec![0.0; x_t.len()];
        for k in 0..cells {
            let (u0, u1) = (T + k as f64 * h, T + (k + 1) as f64 * h);
            path.increment(u0, u1, &mut dw);
            let w = phi(0.5 * (u0 + u1)) * g(0.5 * (u0 + u1));
            for (i, v) in integral.iter_mut().enumerate() {
                *v += w * dw[i];
            }
        }
        x_t.iter()
            .zip(&integral)
            .map(|(&x, &i)| s.alpha(T_END) * MU + phi(T) * (x - s.alpha(T) * MU) + i)
            .collect()
    }

    /// The RMS error over the batch of `sampler` in `steps` uniform-λ
    /// steps against [`exact`], on the path of `seed`.
    pub(super) fn error<X>(sampler: X, steps: usize, x_t: &[f64], want: &[f64], seed: u64) -> f64
    where
        X: Method<DiffusionSde<BoxedModel, VpLinear>>,
    {
        let s = VpLinear::default();
        let opts = TimeGrid::UniformLambda
            .options(&s, T, T_END, steps)
            .expect("a uniform-λ grid")
            .seed(seed);
        let sol = solve(&problem(x_t.to_vec()), sampler, opts).expect("sampling");
        let e2: f64 = sol
            .last()
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).powi(2))
            .sum();
        (e2 / want.len() as f64).sqrt()
    }
}

/// Strong order on a fixed Brownian path: the RMS error over 32 paths at
/// 16–256 uniform-λ steps against the closed-form solution on the same
/// path. Every sampler here is first order in the noise (its increment is
/// `ΔW` over the step, rescaled to the exact variance): strong order 1,
/// asserted within ±0.3 — the fitted slopes lie above 1 (1.13 for
/// SDE-DPM-Solver-1, 1.16–1.22 for ++(2M)) because the drift's own error,
/// of higher order, still weighs at the coarse end.
#[test]
fn strong_order_on_a_fixed_path_of_the_linear_reverse_sde() {
    let seed = 11;
    let x_t = normals(gaussian::B, 3);
    let want = gaussian::exact(&x_t, seed);
    let steps = [16, 32, 64, 128, 256];
    let hs: Vec<f64> = steps.iter().map(|&n| 1.0 / n as f64).collect();
    let measure = |name: &str, f: &dyn Fn(usize) -> f64| {
        let errs: Vec<f64> = steps.iter().map(|&n| f(n)).collect();
        assert_order(name, &hs, &errs, 1.0, 0.3);
        errs
    };
    let e1 = measure("SDE-DPM-Solver-1", &|n| {
        gaussian::error(SdeDpmSolver1, n, &x_t, &want, seed)
    });
    let e2 = measure("SDE-DPM-Solver++(2M)", &|n| {
        gaussian::error(SdeDpmSolverPP2M::default(), n, &x_t, &want, seed)
    });
    measure("SDE-DPM-Solver++(2M), heun", &|n| {
        let x = SdeDpmSolverPP2M {
            solver_type: SdeSolverType::Heun,
        };
        gaussian::error(x, n, &x_t, &want, seed)
    });
    measure("DDPM ancestral", &|n| {
        gaussian::error(DdpmAncestral::default(), n, &x_t, &want, seed)
    });
    measure("reverse-SDE Euler–Maruyama", &|n| {
        gaussian::error(ReverseEulerMaruyama, n, &x_t, &want, seed)
    });
    println!("SDE-1 {e1:?}\n++2M {e2:?}");
}

/// Every reverse-SDE sampler on the 2-D mixture, 4000 samples: mean and
/// covariance within 4 standard errors of the exact marginal at `T_END`
/// (6 entries per sampler). Step counts: 50 for ++(2M) (its covariance
/// error at 50 steps, 1–2 %, is within one standard error), 100 for
/// SDE-DPM-Solver-1 and PC, 200 for the data-form first-order DDPM step
/// (whose covariance is 9 % off at 50 steps, 4 % at 100, 2 % at 200) and
/// Euler–Maruyama.
#[test]
fn sample_moments_match_the_mixture_marginal_in_two_dimensions() {
    let gmm = mixture2();
    let n = 4000;
    let seed = 21;
    assert_moments(
        "EM, 200 steps",
        &sample(ReverseEulerMaruyama, &gmm, n, 200, seed),
        &gmm,
        4.0,
    );
    let ddpm = sample(DdpmAncestral::default(), &gmm, n, 200, seed);
    assert_moments("DDPM ancestral, 200 steps", &ddpm, &gmm, 4.0);
    assert_moments(
        "SDE-DPM-Solver-1, 100 steps",
        &sample(SdeDpmSolver1, &gmm, n, 100, seed),
        &gmm,
        4.0,
    );
    let pp = sample(SdeDpmSolverPP2M::default(), &gmm, n, 50, seed);
    assert_moments("SDE-DPM-Solver++(2M), 50 steps", &pp, &gmm, 4.0);
    assert_moments(
        "Langevin PC, 100 steps",
        &sample(LangevinPc::default(), &gmm, n, 100, seed),
        &gmm,
        4.0,
    );
    // and in distribution: sliced W2 to exact mixture samples is at the
    // level of two exact sample sets' distance
    let exact = gmm.sample_marginal(&VpLinear::default(), T_END, n, 5);
    let floor = sliced_wasserstein(
        &exact,
        &gmm.sample_marginal(&VpLinear::default(), T_END, n, 6),
        2,
        64,
        1,
    )
    .expect("sliced W2");
    let sw = sliced_wasserstein(&pp, &exact, 2, 64, 1).expect("sliced W2");
    println!("sliced W2: ++(2M) {sw:.3e}, two exact sets {floor:.3e}");
    assert!(
        sw < 3.0 * floor,
        "++(2M): sliced W2 {sw} against a floor of {floor}"
    );
}

/// SDE-DPM-Solver++(2M) on a three-component mixture in 16 dimensions,
/// 2000 samples, 50 steps: the 16 means and 256 covariance entries within
/// 4.5 standard errors (two-sided 4.5σ: 7e-6 per entry, 2e-3 for the 272
/// entries together for an exact sampler).
#[test]
fn sample_moments_match_the_mixture_marginal_in_sixteen_dimensions() {
    let gmm = mixture16();
    let x = sample(SdeDpmSolverPP2M::default(), &gmm, 2000, 50, 33);
    assert_moments("SDE-DPM-Solver++(2M), d = 16, 50 steps", &x, &gmm, 4.5);
}

/// The test bed's marginal moments and exact samples agree (20 000
/// samples, 4 standard errors), and the sliced Wasserstein distance of a
/// set to its translate by `c` is `|c| (mean_θ cos² θ)^{1/2} ≈ |c|/√2`
/// in two dimensions (within 15 %: 200 random directions).
#[test]
fn test_bed_moments_samples_and_sliced_wasserstein_agree() {
    let gmm = mixture2();
    let s = VpLinear::default();
    let x = gmm.sample_marginal(&s, 0.3, 20_000, 8);
    let (m, c) = gmm.marginal_moments(&s, 0.3);
    let got = moments(&x, 2);
    for i in 0..2 {
        assert!(
            (got.mean[i] - m[i]).abs() < 4.0 * got.se_mean[i],
            "mean {i}"
        );
    }
    for e in 0..4 {
        assert!((got.cov[e] - c[e]).abs() < 4.0 * got.se_cov[e], "cov {e}");
    }
    assert_eq!(sliced_wasserstein(&x, &x, 2, 16, 0).unwrap(), 0.0);
    let shifted: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(j, &v)| v + if j % 2 == 0 { 0.3 } else { 0.0 })
        .collect();
    let sw = sliced_wasserstein(&x, &shifted, 2, 200, 4).unwrap();
    let want = 0.3 / 2f64.sqrt();
    assert!(
        (sw - want).abs() < 0.15 * want,
        "sliced W2 of a translate: {sw} vs {want}"
    );
}

/// DDPM ancestral with the posterior variance is SDE-DPM-Solver++1 (the
/// first step of ++(2M)), written in another form: one step on the same
/// path agrees to rounding. The transition variance differs.
#[test]
fn ddpm_ancestral_is_sde_dpm_solver_pp1() {
    let gmm = mixture2();
    let x_t = normals(8, 4);
    let s = VpLinear::default();
    let prob = mixture_sde(&gmm, x_t);
    let run = |steps: usize, x: &dyn Fn(Options) -> Vec<f64>| {
        x(TimeGrid::UniformLambda
            .options(&s, T, 0.4, steps)
            .unwrap()
            .seed(9))
    };
    let prob = prob.tspan((T, 0.4));
    let ddpm = run(1, &|o| {
        solve(&prob, DdpmAncestral::default(), o)
            .unwrap()
            .last()
            .to_vec()
    });
    let pp = run(1, &|o| {
        solve(&prob, SdeDpmSolverPP2M::default(), o)
            .unwrap()
            .last()
            .to_vec()
    });
    for (a, b) in ddpm.iter().zip(&pp) {
        assert!((a - b).abs() < 1e-13 * a.abs().max(1.0), "{a} vs {b}");
    }
    let large = DdpmAncestral {
        variance: DdpmVariance::Transition,
    };
    let big = run(1, &|o| solve(&prob, large, o).unwrap().last().to_vec());
    assert!(big.iter().zip(&ddpm).any(|(a, b)| (a - b).abs() > 1e-3));
}

/// The same seed gives the same sample (the path is a pure function of the
/// seed); another seed another one; the same seed at another step count
/// sees the same Brownian path (virtual tree), so the samples stay close.
/// NFE: one model evaluation per step (the loop's first drift evaluation
/// is the first step's prediction), two for PC.
#[test]
fn samples_are_reproducible_on_a_seed_and_count_model_evaluations() {
    let gmm = mixture2();
    let s = VpLinear::default();
    let prob = mixture_sde(&gmm, normals(16, 2));
    let opts = |steps: usize, seed: u64| {
        TimeGrid::UniformLambda
            .options(&s, T, T_END, steps)
            .unwrap()
            .seed(seed)
    };
    let a = solve(&prob, SdeDpmSolverPP2M::default(), opts(40, 3)).unwrap();
    let b = solve(&prob, SdeDpmSolverPP2M::default(), opts(40, 3)).unwrap();
    let c = solve(&prob, SdeDpmSolverPP2M::default(), opts(40, 4)).unwrap();
    let fine = solve(&prob, SdeDpmSolverPP2M::default(), opts(80, 3)).unwrap();
    assert_eq!(a.last(), b.last());
    let dist = |u: &[f64], v: &[f64]| {
        u.iter()
            .zip(v)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let (other, refined) = (dist(a.last(), c.last()), dist(a.last(), fine.last()));
    println!(
        "distance to another seed's sample {other:.3e}, to the same path at 80 steps {refined:.3e}"
    );
    assert!(refined < 0.2 * other, "{refined} vs {other}");
    assert_eq!(a.stats.drift_evals, 40);
    let pc = solve(&prob, LangevinPc::default(), opts(40, 3)).unwrap();
    assert_eq!(pc.stats.drift_evals, 80);
}

#[test]
fn bad_input_is_a_typed_error() {
    let gmm = mixture2();
    let s = VpLinear::default();
    let opts = || TimeGrid::UniformLambda.options(&s, T, T_END, 10).unwrap();
    let x = SdeDpmSolverPP2M::default();
    // a non-finite initial noise
    let e = solve(&mixture_sde(&gmm, vec![0.1, f64::NAN]), x, opts()).unwrap_err();
    assert_says(&e, &["y0[1]", "not finite"]);
    // a state that is not a whole number of the model's samples
    let e = solve(&mixture_sde(&gmm, vec![0.1, 0.2, 0.3]), x, opts()).unwrap_err();
    assert!(matches!(e, SolveError::DimensionMismatch { .. }), "{e}");
    // an ODE sampler on the reverse SDE, an SDE sampler on the ODE
    let e = solve(&mixture_sde(&gmm, vec![0.1, 0.2]), Ddim, opts()).unwrap_err();
    assert_says(&e, &["reverse SDE", "SdeDpmSolverPP2M"]);
    let ode = probability_flow(
        move |t: f64, x: &[f64], _p: &[f64], out: &mut [f64]| {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = VpLinear::default().sigma(t) * v;
            }
        },
        Parametrisation::Noise,
        s,
        vec![0.1],
        (T, T_END),
    );
    let e = solve(&ode, x, opts()).unwrap_err();
    assert_says(&e, &["probability-flow ODE", "reverse_sde"]);
    // a span the schedule cannot run: to σ = 0, or backwards
    let e = solve(
        &mixture_sde(&gmm, vec![0.1, 0.2]).tspan((T, 0.0)),
        x,
        opts(),
    )
    .unwrap_err();
    assert_says(&e, &["tspan.1"]);
    let e = solve(
        &mixture_sde(&gmm, vec![0.1, 0.2]).tspan((T_END, T)),
        x,
        TimeGrid::UniformT.options(&s, T, T_END, 10).unwrap(),
    )
    .unwrap_err();
    assert!(matches!(e, SolveError::InvalidInput { .. }), "{e}");
    // a noise structure the reverse SDE does not have
    let p = mixture_sde(&gmm, vec![0.1, 0.2]);
    let diag = Problem::sde_field(p.drift, p.diffusion, Noise::Diagonal, p.y0, p.tspan);
    let e = solve(&diag, x, opts()).unwrap_err();
    assert_says(&e, &["Diagonal", "reverse_sde"]);
    // a corrector without a signal-to-noise ratio
    let e = solve(
        &mixture_sde(&gmm, vec![0.1, 0.2]),
        LangevinPc { snr: f64::NAN },
        opts(),
    )
    .unwrap_err();
    assert_says(&e, &["snr"]);
    // sliced Wasserstein of mismatched or non-finite sample sets
    assert!(matches!(
        sliced_wasserstein(&[0.0, 1.0], &[0.0, 1.0, 2.0, 3.0], 2, 8, 0),
        Err(SolveError::DimensionMismatch { .. })
    ));
    assert!(sliced_wasserstein(&[0.0, 1.0], &[0.0, 1.0], 2, 0, 0).is_err());
    assert!(sliced_wasserstein(&[0.0, f64::INFINITY], &[0.0, 1.0], 2, 4, 0).is_err());
}

/// Gradients through SDE-DPM-Solver++(2M) and DDPM ancestral with respect
/// to the initial noise and the model's parameters (the mixture denoiser of
/// `diffusion_gradients.rs`, exact VJP by dual numbers): the discrete
/// adjoint through the samplers' step VJPs, the forward solve's Brownian
/// increments replayed, against central differences of the sampler on the
/// same seed (the same path). Tolerance as in `diffusion_gradients.rs`:
/// 1e-6 relative (entries below 1e-2 to 1e-8 absolute), two orders above
/// the difference's `O(δ²) + O(ε/δ)` error with `δ = 1e-5`.
pub(crate) mod gradients {
    use super::*;
    use crate::diffusion_gradients::{MixtureDenoiser, P, X_T, loss};

    type Model = Generic<MixtureDenoiser>;
    type Sde = DiffusionSde<Model, VpLinear>;

    fn problem(x_t: &[f64], p: &[f64]) -> Sde {
        let flow = ProbabilityFlow::new(
            Generic(MixtureDenoiser),
            Parametrisation::Noise,
            VpLinear::default(),
        );
        reverse_sde_field(flow, x_t.to_vec(), (T, T_END)).params(p.to_vec())
    }

    fn sample_loss<X: Method<Sde>>(x: X, opts: &Options, x_t: &[f64], p: &[f64]) -> f64 {
        let sol = solve(&problem(x_t, p), x, opts.clone()).expect("forward solve");
        let mut g = vec![0.0; sol.ys.len()];
        loss(&sol.ts, &sol.ys, &mut g)
    }

    pub(crate) fn check<X>(x: X, steps: usize)
    where
        X: Method<Sde>
            + Differentiable<ReverseSde<Model, VpLinear>, ReverseNoise<VpLinear>, VirtualTree>
            + Copy
            + std::fmt::Debug,
    {
        let s = VpLinear::default();
        let opts = TimeGrid::UniformLambda
            .options(&s, T, T_END, steps)
            .expect("a uniform-λ grid")
            .seed(17)
            .save_at(SaveAt::T1);
        let g = grad(&problem(&X_T, &P), x, &opts, &loss, Adjoint::STORE_ALL).expect("gradient");
        crate::common::assert_matches_fd(
            &format!("{x:?}, {steps} steps"),
            &g,
            &X_T,
            &P,
            1e-2,
            |xt, q| sample_loss(x, &opts, xt, q),
        );
        assert!((g.loss - sample_loss(x, &opts, &X_T, &P)).abs() < 1e-14);
        assert!(g.dp.iter().all(|v| v.abs() > 1e-3), "{:?}", g.dp);
        // the noise enters: another seed gives another gradient
        let other = grad(
            &problem(&X_T, &P),
            x,
            opts.clone().seed(18),
            &loss,
            Adjoint::STORE_ALL,
        )
        .expect("gradient on another seed");
        let (a, b) = (g.dp.iter().chain(&g.dy0), other.dp.iter().chain(&other.dy0));
        assert!(
            a.zip(b)
                .any(|(a, b)| (a - b).abs() > 1e-4 * a.abs().max(1e-2))
        );
    }

    #[test]
    fn sde_dpmpp_2m_gradient_matches_finite_differences() {
        check(SdeDpmSolverPP2M::default(), 12);
        check(
            SdeDpmSolverPP2M {
                solver_type: SdeSolverType::Heun,
            },
            12,
        );
    }

    /// The corrector's step size depends on the state (through `‖ε̂‖`):
    /// differentiated too; both draws (`ΔW` and the Lévy area) replayed.
    #[test]
    fn langevin_pc_gradient_matches_finite_differences() {
        check(LangevinPc::default(), 10);
        check(LangevinPc { snr: 0.4 }, 10);
    }

    #[test]
    fn ddpm_and_sde_dpm_solver1_gradients_match_finite_differences() {
        check(DdpmAncestral::default(), 12);
        check(SdeDpmSolver1, 12);
    }
}
