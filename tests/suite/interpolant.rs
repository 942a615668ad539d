//! Stochastic-interpolant sampling (issue #14): the probability-flow ODE
//! and the SDE family with tunable `ε(t)` on the closed-form bed
//! ([`InterpolantMixture`]: exact velocity and score of a Gaussian-mixture
//! target from `N(0, I)`).
//!
//! - The flow of a single Gaussian against its affine closed form, for the
//!   linear and trigonometric paths with and without `γ`.
//! - Sample mean and covariance at `t = 1` within Monte Carlo bounds for
//!   the ODE and for the SDE with two `ε` choices. Bound: each entry within
//!   4 standard errors estimated from the samples (`sd/√n` for a mean,
//!   `sd((x_i − x̄_i)(x_j − x̄_j))/√n` for a covariance entry); a two-sided
//!   4σ bound fails with probability 6e-5 per entry for an exact sampler,
//!   and the seeds are fixed, so the tests are deterministic. `n = 4000`
//!   (standard error ≈ 0.015 on the mean) and 400 Euler–Maruyama steps,
//!   whose weak bias (`O(h)`, measured below one standard error: printed)
//!   does not use up the bound.
//! - The strong order of Euler–Maruyama on the SDE (additive noise: 1) on
//!   fixed Brownian paths (a virtual tree per seed) against an SRA1
//!   reference at 4096 steps on the same paths.
//! - Gradients through Euler–Maruyama on the SDE (initial noise, the
//!   target's mean and variance in both `b` and `s`) against central
//!   differences; typed errors.

use crate::common::{assert_matches_fd, assert_order, assert_says};
use sdeflow::diffusion::*;
use sdeflow::prelude::*;

use crate::diffusion_sde::{mixture2, moments, normals};

#[test]
fn flow_of_a_single_gaussian_matches_its_closed_form() {
    let target = GaussianMixture::new(&[1.0], &[0.5, -1.0, 2.0], &[0.04, 0.25, 1.5])
        .expect("interpolant test");
    let z = normals(3 * 5, 1);
    type Case<'a> = (&'a str, Box<dyn Fn() -> f64 + 'a>);
    let paths: [Case<'_>; 4] = [
        (
            "linear, γ = 0",
            Box::new(|| run(&target, Linear::default(), &z)),
        ),
        (
            "linear, γ = √(t(1−t))",
            Box::new(|| {
                run(
                    &target,
                    Linear {
                        gamma: Gamma::Brownian(1.0),
                    },
                    &z,
                )
            }),
        ),
        (
            "trig, γ = 0",
            Box::new(|| run(&target, Trigonometric::default(), &z)),
        ),
        (
            "trig, γ = sin²(πt)/2",
            Box::new(|| {
                run(
                    &target,
                    Trigonometric {
                        gamma: Gamma::SineSquared(0.5),
                    },
                    &z,
                )
            }),
        ),
    ];
    fn run<I: Interpolant + Clone>(target: &GaussianMixture, i: I, z: &[f64]) -> f64 {
        let bed = InterpolantMixture::new(target.clone(), i).expect("interpolant test");
        let mut worst: f64 = 0.0;
        // 0 → 1 and an inner span backwards
        for (u, t) in [(0.0, 1.0), (0.8, 0.3)] {
            let mut x_u = z.to_vec();
            if u > 0.0 {
                bed.gaussian_flow_map(0.0, u, z, &mut x_u)
                    .expect("interpolant test");
            }
            let prob = interpolant_ode(bed.clone(), x_u.clone(), (u, t)).expect("interpolant test");
            let sol = solve(&prob, Tsit5, Options::default().tol(1e-12)).expect("interpolant test");
            let mut exact = vec![0.0; z.len()];
            bed.gaussian_flow_map(u, t, &x_u, &mut exact)
                .expect("interpolant test");
            worst = worst.max(crate::common::max_abs_diff(sol.last(), &exact));
        }
        worst
    }
    for (what, f) in &paths {
        let err = f();
        println!("{what}: max |Tsit5 − closed form| = {err:.2e}");
        assert!(err < 1e-8, "{what}: {err:e}");
    }
    // the map 0 → 1 is x_1 = μ + √v z (the base N(0, I) has C_0 = 1)
    let bed = InterpolantMixture::new(target.clone(), Linear::default()).expect("interpolant test");
    let mut x1 = [0.0; 3];
    bed.gaussian_flow_map(0.0, 1.0, &[1.0, 1.0, 1.0], &mut x1)
        .expect("interpolant test");
    let want = [0.5 + 0.2, -1.0 + 0.5, 2.0 + 1.5f64.sqrt()];
    assert!(crate::common::max_abs_diff(&x1, &want) < 1e-14, "{x1:?}");
}

/// Asserts the sample moments of `x` (`d`-dimensional) lie within 4
/// standard errors of `target`'s, entry by entry.
fn assert_moments(what: &str, x: &[f64], target: &GaussianMixture) {
    let d = target.dim();
    // the data moments: the diffusion bed's marginal at t = 0 (α = 1, σ = 0)
    let (m, c) = target.marginal_moments(&VpLinear::default(), 0.0);
    let got = moments(x, d);
    let worst_m = (0..d)
        .map(|i| (got.mean[i] - m[i]).abs() / got.se_mean[i])
        .fold(0.0, f64::max);
    let worst_c = (0..d * d)
        .map(|e| (got.cov[e] - c[e]).abs() / got.se_cov[e])
        .fold(0.0, f64::max);
    println!("{what}: worst entry {worst_m:.2} SE (mean), {worst_c:.2} SE (cov)");
    assert!(worst_m < 4.0, "{what}: a mean entry is {worst_m:.2} SE off");
    assert!(
        worst_c < 4.0,
        "{what}: a covariance entry is {worst_c:.2} SE off"
    );
}

const N: usize = 4000;

#[test]
fn pf_ode_samples_have_the_target_moments() {
    let target = mixture2();
    let z = normals(N * 2, 11);
    let bed = InterpolantMixture::new(target.clone(), Linear::default()).expect("interpolant test");
    let prob = interpolant_ode(bed, z.clone(), (0.0, 1.0)).expect("interpolant test");
    let sol = solve(&prob, Tsit5, Options::default().tol(1e-8)).expect("interpolant test");
    assert_moments("PF-ODE, linear", sol.last(), &target);
    let bed = InterpolantMixture::new(
        target.clone(),
        Trigonometric {
            gamma: Gamma::Brownian(1.0),
        },
    )
    .expect("interpolant test");
    let prob = interpolant_ode(bed, z, (0.0, 1.0)).expect("interpolant test");
    let sol = solve(&prob, Tsit5, Options::default().tol(1e-8)).expect("interpolant test");
    assert_moments("PF-ODE, trig with γ = √(t(1−t))", sol.last(), &target);
}

/// `N` samples of the SDE with diffusion `eps` by Euler–Maruyama in
/// `steps` steps (i.i.d. increments from `seed`).
fn sde_samples<E: Diffusivity + Clone>(
    bed: &InterpolantMixture<Linear>,
    eps: E,
    steps: usize,
    seed: u64,
) -> Vec<f64> {
    let prob = interpolant_sde(
        bed.clone(),
        bed.score_field(),
        eps,
        SdeDirection::Forward,
        normals(N * bed.dim(), seed ^ 0x5EED),
        (0.0, 1.0),
    )
    .expect("interpolant test")
    .driver(Increments);
    let opts = Options::default().fixed_step(1.0 / steps as f64).seed(seed);
    let sol = solve(&prob, EulerMaruyama, opts).expect("interpolant test");
    assert_eq!(sol.stats.accepted_steps, steps);
    sol.last().to_vec()
}

#[test]
fn sde_samples_have_the_target_moments_for_two_epsilons() {
    let target = mixture2();
    let bed = InterpolantMixture::new(target.clone(), Linear::default()).expect("interpolant test");
    assert_moments(
        "SDE ε = 1, EM 400 steps",
        &sde_samples(&bed, 1.0, 400, 21),
        &target,
    );
    let eps = |t: f64| 2.0 * (std::f64::consts::PI * t).sin().powi(2);
    assert_moments(
        "SDE ε = 2 sin²(πt), EM 400 steps",
        &sde_samples(&bed, eps, 400, 22),
        &target,
    );
    // the noise matters: a different seed gives different samples, and
    // ε = 0 gives the (deterministic) PF-ODE's Euler samples
    let a = sde_samples(&bed, 1.0, 50, 3);
    let b = sde_samples(&bed, 1.0, 50, 4);
    assert!(crate::common::max_abs_diff(&a, &b) > 0.1);
}

#[test]
fn backward_sde_returns_data_to_the_base() {
    // from exact data at t = 1 down to t = 0: N(0, I)
    let target = mixture2();
    let bed = InterpolantMixture::new(target.clone(), Linear::default()).expect("interpolant test");
    let x1 = target.sample_marginal(&VpLinear::default(), 0.0, N, 31);
    let eps = |t: f64| 0.5 + t * (1.0 - t);
    let prob = interpolant_sde(
        bed.clone(),
        bed.score_field(),
        eps,
        SdeDirection::Backward,
        x1,
        (1.0, 0.0),
    )
    .expect("interpolant test")
    .driver(Increments);
    let sol = solve(
        &prob,
        EulerMaruyama,
        Options::default().fixed_step(1.0 / 400.0).seed(32),
    )
    .expect("interpolant test");
    let base = GaussianMixture::new(&[1.0], &[0.0, 0.0], &[1.0, 1.0]).expect("interpolant test");
    assert_moments("backward SDE to the base", sol.last(), &base);
}

#[test]
fn euler_maruyama_has_strong_order_one_on_the_interpolant_sde() {
    // single Gaussian N(0.5, 0.09) in 1-D, a batch of 16 paths in one
    // state; ε = 1 constant; errors RMS over the batch, same seed (path)
    let target = GaussianMixture::new(&[1.0], &[0.5], &[0.09]).expect("interpolant test");
    let bed = InterpolantMixture::new(target, Linear::default()).expect("interpolant test");
    let prob = interpolant_sde(
        bed.clone(),
        bed.score_field(),
        1.0,
        SdeDirection::Forward,
        normals(16, 41),
        (0.0, 1.0),
    )
    .expect("interpolant test");
    let at = |steps: usize, sra: bool| {
        let opts = Options::default().fixed_step(1.0 / steps as f64).seed(42);
        if sra {
            solve(&prob, Sra1, opts)
                .expect("interpolant test")
                .last()
                .to_vec()
        } else {
            solve(&prob, EulerMaruyama, opts)
                .expect("interpolant test")
                .last()
                .to_vec()
        }
    };
    let reference = at(4096, true);
    let levels = [16usize, 32, 64, 128, 256];
    let errs: Vec<f64> = levels
        .iter()
        .map(|&n| {
            let x = at(n, false);
            let ss: f64 = x.iter().zip(&reference).map(|(a, b)| (a - b).powi(2)).sum();
            (ss / x.len() as f64).sqrt()
        })
        .collect();
    let hs: Vec<f64> = levels.iter().map(|&n| 1.0 / n as f64).collect();
    assert_order("EM on the interpolant SDE (strong)", &hs, &errs, 1.0, 0.15);
}

/// The single-Gaussian target `N(p[0], p[1])` per coordinate under the
/// linear one-sided interpolant: `C = t² v + (1 − t)²`, `g = (x − tμ)/C`,
/// the velocity `b = −(1 − t) g + μ + t v g` or (`score`) `s = −g`,
/// written over the scalar.
#[derive(Clone, Copy)]
struct Gauss {
    score: bool,
}
impl GenericField for Gauss {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, x: &[D], p: &[D], out: &mut [D]) {
        let one = D::from(1.0);
        let c = t * t * p[1] + (one - t) * (one - t);
        for (o, &xv) in out.iter_mut().zip(x) {
            let g = (xv - t * p[0]) / c;
            *o = if self.score {
                -g
            } else {
                -(one - t) * g + p[0] + t * p[1] * g
            };
        }
    }
}

/// `Σ x_end³/3`: a nonlinear loss of the final samples.
fn cube_loss(_ts: &[f64], ys: &[f64], g: &mut [f64]) -> f64 {
    let mut l = 0.0;
    for (gi, &y) in g.iter_mut().zip(ys) {
        l += y * y * y / 3.0;
        *gi = y * y;
    }
    l
}

#[test]
fn gradients_through_euler_maruyama_match_finite_differences() {
    // Tolerance: the adjoint is the exact derivative of the computed
    // sample; a central difference with δ = 1e-5 errs by O(δ²) ≈ 1e-10
    // relative plus rounding ≈ 1e-11, so 1e-6 relative leaves margin and
    // fails for a missed term (the score's share is ε-weighted, ≈ 1e-1).
    // forward (base to data) and backward (data to base, in τ = 1 − t)
    for (dir, span) in [
        (SdeDirection::Forward, (0.0, 1.0)),
        (SdeDirection::Backward, (1.0, 0.0)),
    ] {
        check_gradient(dir, span);
    }
}

fn check_gradient(dir: SdeDirection, span: (f64, f64)) {
    let x0 = [0.4, -1.1, 0.9];
    let p = [0.7, 0.3];
    let eps = |t: f64| 0.8 * (1.0 - t * t);
    let problem = |x0: &[f64], p: &[f64]| {
        interpolant_sde(
            Generic(Gauss { score: false }),
            Generic(Gauss { score: true }),
            eps,
            dir,
            x0.to_vec(),
            span,
        )
        .expect("interpolant test")
        .params(p.to_vec())
    };
    let opts = Options::default()
        .fixed_step(1.0 / 20.0)
        .seed(5)
        .save_at(SaveAt::T1);
    let g = grad(
        &problem(&x0, &p),
        EulerMaruyama,
        &opts,
        &cube_loss,
        Adjoint::STORE_ALL,
    )
    .expect("gradient");
    let value = |x: &[f64], p: &[f64]| {
        let sol = solve(&problem(x, p), EulerMaruyama, opts.clone()).expect("interpolant test");
        let mut gg = vec![0.0; sol.ys.len()];
        cube_loss(&sol.ts, &sol.ys, &mut gg)
    };
    assert_matches_fd(&format!("{dir:?}"), &g, &x0, &p, 1e-2, value);
    assert!((g.loss - value(&x0, &p)).abs() < 1e-13);
    assert!(g.dp.iter().all(|v| v.abs() > 1e-2), "{:?}", g.dp);
}

#[test]
fn velocity_from_v_and_s_matches_the_exact_velocity() {
    // with γ > 0, v = b + γγ̇ s; VelocityFromVs must give back b
    let i = Linear {
        gamma: Gamma::Brownian(1.0),
    };
    let bed = InterpolantMixture::new(mixture2(), i).expect("interpolant test");
    let x = normals(2 * 6, 9);
    for t in [0.0, 0.2, 0.5, 0.9] {
        let (mut b, mut s) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        bed.velocity(t, &x, &mut b);
        bed.score(t, &x, &mut s);
        let gg = i.coefficients(t).gamma_gamma_dot;
        let v: Vec<f64> = b.iter().zip(&s).map(|(b, s)| b + gg * s).collect();
        let vf = move |_t: f64, _x: &[f64], _p: &[f64], o: &mut [f64]| o.copy_from_slice(&v);
        let combined = VelocityFromVs {
            v: vf,
            s: bed.score_field(),
            interpolant: i,
        };
        let mut got = vec![0.0; x.len()];
        combined.drift(t, &x, &[], &mut got);
        assert!(crate::common::max_abs_diff(&got, &b) < 1e-13, "t = {t}");
    }
}

#[test]
fn bad_input_gives_typed_errors() {
    let bed = InterpolantMixture::new(mixture2(), Linear::default()).expect("interpolant test");
    let s = bed.score_field();
    let fwd = SdeDirection::Forward;
    // t outside [0, 1]
    let e = interpolant_ode(bed.clone(), vec![0.0, 0.0], (-0.1, 1.0)).unwrap_err();
    assert_says(&e, &["[0, 1]", "-0.1"]);
    let e =
        interpolant_sde(bed.clone(), s.clone(), 1.0, fwd, vec![0.0; 2], (0.0, 1.5)).unwrap_err();
    assert_says(&e, &["[0, 1]"]);
    // wrong direction for the span
    let e =
        interpolant_sde(bed.clone(), s.clone(), 1.0, fwd, vec![0.0; 2], (1.0, 0.0)).unwrap_err();
    assert_says(&e, &["Forward", "swap"]);
    // non-finite state
    let e = interpolant_ode(bed.clone(), vec![0.0, f64::NAN], (0.0, 1.0)).unwrap_err();
    assert_says(&e, &["[1]", "not finite"]);
    // ε < 0: a constant, and a closure negative inside the span
    let e =
        interpolant_sde(bed.clone(), s.clone(), -0.5, fwd, vec![0.0; 2], (0.0, 1.0)).unwrap_err();
    assert_says(&e, &["ε", "-0.5", "≥ 0"]);
    let Err(e) = interpolant_sde(
        bed.clone(),
        s.clone(),
        |t: f64| 0.6 - t,
        fwd,
        vec![0.0; 2],
        (0.0, 1.0),
    ) else {
        panic!("a negative ε(t) was accepted")
    };
    assert_says(&e, &["ε", "≥ 0"]);
    let e = interpolant_sde(
        bed.clone(),
        s.clone(),
        f64::NAN,
        fwd,
        vec![0.0; 2],
        (0.0, 1.0),
    )
    .unwrap_err();
    assert_says(&e, &["ε", "NaN"]);
    // dimension mismatch: 3 entries for 2-dimensional samples
    let prob = interpolant_ode(bed.clone(), vec![0.0; 3], (0.0, 1.0)).expect("interpolant test");
    let e = solve(&prob, Tsit5, Options::default()).unwrap_err();
    assert!(matches!(e, SolveError::DimensionMismatch { .. }), "{e}");
    let prob = interpolant_sde(bed.clone(), s, 1.0, fwd, vec![0.0; 3], (0.0, 1.0))
        .expect("interpolant test");
    let e = solve(&prob, EulerMaruyama, Options::default().fixed_step(0.1)).unwrap_err();
    assert!(matches!(e, SolveError::DimensionMismatch { .. }), "{e}");
    // bad γ scales
    let e = InterpolantMixture::new(
        mixture2(),
        Trigonometric {
            gamma: Gamma::Brownian(5.0),
        },
    )
    .unwrap_err();
    assert_says(&e, &["γ ≤ 1"]);
    let e = InterpolantMixture::new(
        mixture2(),
        Linear {
            gamma: Gamma::SineSquared(f64::INFINITY),
        },
    )
    .unwrap_err();
    assert_says(&e, &["finite"]);
    // the closed-form map is for one Gaussian only
    let mut out = [0.0; 2];
    let e = bed
        .gaussian_flow_map(0.0, 1.0, &[0.0; 2], &mut out)
        .unwrap_err();
    assert_says(&e, &["2 components"]);
}
