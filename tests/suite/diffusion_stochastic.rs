//! Stochastic DDIM (`η > 0`, issue #14) on the reverse SDE: the `η = 0`
//! and `η = 1` identities (deterministic DDIM, DDPM ancestral), sample
//! moments on the Gaussian-mixture test bed, gradients against central
//! differences, and typed errors. The Monte Carlo bounds and the gradient
//! tolerance are those of `diffusion_sde.rs` (4 standard errors per
//! entry, estimated from the samples; 1e-6 relative).

use crate::common::assert_says;
use crate::diffusion::BoxedModel;
use crate::diffusion_sde::{assert_moments, gradients, mixture_sde, normals, sample};
use sdeflow::diffusion::*;
use sdeflow::prelude::*;

const T: f64 = 1.0;
const T_END: f64 = 1e-3;

fn mixture2() -> GaussianMixture {
    GaussianMixture::new(
        &[0.4, 0.6],
        &[0.9, -0.4, -0.7, 0.5],
        &[0.05, 0.2, 0.3, 0.04],
    )
    .expect("valid mixture")
}

fn grid(steps: usize, seed: u64) -> Options {
    TimeGrid::UniformLambda
        .options(&VpLinear::default(), T, T_END, steps)
        .expect("a uniform-λ grid")
        .seed(seed)
}

fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x - y).abs() <= tol * x.abs().max(1.0),
            "{what}: {x} vs {y}"
        );
    }
}

/// `η = 0` draws no noise: the sample is deterministic DDIM's on the
/// probability-flow ODE of the same model (to rounding, 20 steps; the two
/// write the step in data and noise form). `η = 1` is DDPM ancestral with
/// the posterior variance on the same path (to 1e-12). An intermediate
/// `η` differs from both.
#[test]
fn eta_zero_is_ddim_and_eta_one_is_ddpm_ancestral() {
    let gmm = mixture2();
    let s = VpLinear::default();
    let x_t = normals(8, 3);
    let sde = mixture_sde(&gmm, x_t.clone());
    let run = |x: DdimEta| solve(&sde, x, grid(20, 5)).unwrap().last().to_vec();
    let g = gmm.clone();
    let model: BoxedModel = Box::new(move |t, x, _p, out| g.noise(&s, t, x, out));
    let ode = probability_flow(model, Parametrisation::Noise, s, x_t, (T, T_END));
    let ddim = solve(&ode, Ddim, grid(20, 5)).unwrap();
    let eta0 = run(DdimEta { eta: 0.0 });
    assert_close(&eta0, ddim.last(), 1e-12, "η = 0 vs DDIM");
    let ddpm = solve(&sde, DdpmAncestral::default(), grid(20, 5)).unwrap();
    let eta1 = run(DdimEta { eta: 1.0 });
    assert_close(&eta1, ddpm.last(), 1e-12, "η = 1 vs DDPM");
    let half = run(DdimEta { eta: 0.5 });
    for other in [&eta0, &eta1] {
        assert!(half.iter().zip(other).any(|(a, b)| (a - b).abs() > 1e-3));
    }
    // one model evaluation per step
    let sol = solve(&sde, DdimEta { eta: 0.5 }, grid(20, 5)).unwrap();
    assert_eq!(sol.stats.drift_evals, 20);
}

/// 4000 two-dimensional samples at `η = 0.5`, 200 uniform-λ
/// steps (DDPM's step count in `diffusion_sde.rs`, where its first-order
/// bias is below one standard error): means and covariance entries within
/// 4 standard errors of the exact marginal at `T_END`. `n = 4000` puts the
/// standard error of a covariance entry near 1–2 % of the entry, tight
/// enough to see a wrong noise level (η = 0.5 with the noise dropped moves
/// the covariance by far more) at a second of sampling.
#[test]
fn sample_moments_match_the_mixture_marginal() {
    let gmm = mixture2();
    // (η = 1 is DDPM ancestral, whose moments `diffusion_sde.rs` checks;
    // on this mixture it measured 1.8 SE (mean) and 3.9 SE (cov), close to
    // the bound, so it is left to the identity test above)
    let x = sample(DdimEta { eta: 0.5 }, &gmm, 4000, 200, 23);
    assert_moments("DDIM η = 0.5, 200 steps", &x, &gmm, 4.0);
}

/// Gradients with respect to the initial noise and the parameters through
/// the step VJP, the forward solve's noise replayed, against central
/// differences on the same seed (`diffusion_sde.rs`'s check: 1e-6).
#[test]
fn ddim_eta_gradient_matches_finite_differences() {
    gradients::check(DdimEta { eta: 0.5 }, 12);
    gradients::check(DdimEta { eta: 1.0 }, 12);
}

#[test]
fn bad_eta_is_a_typed_error() {
    let sde = mixture_sde(&mixture2(), vec![0.1, 0.2]);
    for eta in [-0.5, 1.5, f64::NAN, f64::INFINITY] {
        let e = solve(&sde, DdimEta { eta }, grid(10, 1)).unwrap_err();
        assert!(matches!(e, SolveError::InvalidInput { .. }), "{e}");
        assert_says(&e, &["eta", "[0, 1]"]);
    }
    // an SDE sampler on the probability-flow ODE
    let s = VpLinear::default();
    let g = mixture2();
    let model: BoxedModel = Box::new(move |t, x, _p, out| g.noise(&s, t, x, out));
    let ode = probability_flow(model, Parametrisation::Noise, s, vec![0.1, 0.2], (T, T_END));
    let e = solve(&ode, DdimEta::default(), grid(10, 1)).unwrap_err();
    assert_says(&e, &["probability-flow ODE"]);
}

/// EDM's stochastic sampler with `S_churn = 0`, or with `[S_tmin, S_tmax]`
/// below every noise level of the grid, is EDM Heun on the
/// probability-flow ODE of the same model (to rounding, 20 steps); with
/// churn it differs, and a churned step costs three model evaluations.
#[test]
fn edm_churn_without_churn_is_edm_heun() {
    let gmm = mixture2();
    let s = VpLinear::default();
    let x_t = normals(8, 3);
    let sde = mixture_sde(&gmm, x_t.clone());
    let run = |x: EdmChurn| solve(&sde, x, grid(20, 5)).unwrap();
    let g = gmm.clone();
    let model: BoxedModel = Box::new(move |t, x, _p, out| g.noise(&s, t, x, out));
    let ode = probability_flow(model, Parametrisation::Noise, s, x_t, (T, T_END));
    let heun = solve(&ode, EdmHeun, grid(20, 5)).unwrap();
    let plain = run(EdmChurn::new(0.0, 20));
    assert_close(plain.last(), heun.last(), 1e-12, "S_churn = 0 vs EDM Heun");
    let outside = EdmChurn {
        s_tmin: 0.0,
        s_tmax: 1e-6,
        ..EdmChurn::new(10.0, 20)
    };
    assert_close(
        run(outside).last(),
        heun.last(),
        1e-12,
        "outside [S_tmin, S_tmax]",
    );
    let churned = run(EdmChurn::new(10.0, 20));
    assert!(
        churned
            .last()
            .iter()
            .zip(heun.last())
            .any(|(a, b)| (a - b).abs() > 1e-3)
    );
    // 20 steps: the first starts at the schedule's end T (no room to churn),
    // the other 19 churn: two evaluations per step either way (a churned
    // step evaluates at (t̂, x̂) instead of at its start)
    assert_eq!(plain.stats.drift_evals, 40);
    assert_eq!(churned.stats.drift_evals, 40);
}

/// 4000 samples, 100 uniform-λ steps with `S_churn = 20` (`γ = 0.2` on
/// every step but the first): moments within 4 standard errors, as above.
#[test]
fn edm_churn_sample_moments_match_the_mixture_marginal() {
    let gmm = mixture2();
    let x = sample(EdmChurn::new(20.0, 100), &gmm, 4000, 100, 29);
    assert_moments("EDM churn S_churn = 20, 100 steps", &x, &gmm, 4.0);
}

#[test]
fn edm_churn_gradient_matches_finite_differences() {
    gradients::check(EdmChurn::new(3.0, 12), 12);
}

#[test]
fn bad_churn_settings_are_a_typed_error() {
    let sde = mixture_sde(&mixture2(), vec![0.1, 0.2]);
    let ok = EdmChurn::new(1.0, 10);
    for x in [
        EdmChurn {
            s_churn: -1.0,
            ..ok
        },
        EdmChurn { steps: 0, ..ok },
        EdmChurn {
            s_noise: f64::NAN,
            ..ok
        },
        EdmChurn { s_tmax: -1.0, ..ok },
    ] {
        let e = solve(&sde, x, grid(10, 1)).unwrap_err();
        assert!(matches!(e, SolveError::InvalidInput { .. }), "{e}");
        assert_says(&e, &["EdmChurn"]);
    }
}
