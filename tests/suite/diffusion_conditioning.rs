//! Gradients with respect to a conditioning input (issue #14): there is
//! no separate conditioning API — the model reads the condition `c` from
//! a documented slice of its parameter vector, so `grad`'s `dp` holds
//! `∂L/∂c` (see "Conditioning" in `sdeflow_solvers::diffusion`).
//!
//! The conditional model is the mixture denoiser of
//! `diffusion_gradients.rs` with its component means shifted per
//! coordinate by the condition: coordinate `i` of a 2-D sample has the
//! mixture `½ N(μ1 + c_{i mod 2}, s²) + ½ N(μ2 + c_{i mod 2}, s²)`, so
//! `p = [μ1, μ2, log s, c0, c1]`, the condition at `p[3..5]`. Its exact
//! noise prediction is written over the scalar (exact VJP by dual
//! numbers). The gradient of the loss with respect to `c` through
//! DPM-Solver++(2M) on the probability-flow ODE and through
//! SDE-DPM-Solver++(2M) on the reverse SDE (the same driver path replayed)
//! agrees with central differences in `c` to 1e-6 relative (tolerance as
//! in `diffusion_gradients.rs`: two orders above the differences' own
//! `O(δ²) + O(ε/δ)` error at `δ = 1e-5`).

use crate::diffusion_gradients::{X_T, loss};
use sdeflow::diffusion::*;
use sdeflow::field::{DualNum, Generic, GenericField};
use sdeflow::prelude::*;

/// The exact noise prediction of the conditional mixture (module docs)
/// under the VP-linear schedule; the condition is `p[3..5]`.
#[derive(Debug, Clone, Copy)]
struct ConditionalMixture;

/// Where the condition sits in the parameter vector.
const CONDITION: std::ops::Range<usize> = 3..5;

impl GenericField for ConditionalMixture {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, x: &[D], p: &[D], out: &mut [D]) {
        let s = VpLinear::default();
        let (a, sig) = (s.alpha(t.re()), s.sigma(t.re()));
        let var = (p[2] * 2.0).exp() * (a * a) + sig * sig;
        let c = &p[CONDITION];
        for (i, (o, &xv)) in out.iter_mut().zip(x).enumerate() {
            let shift = c[i % 2];
            let (d1, d2) = (xv - (p[0] + shift) * a, xv - (p[1] + shift) * a);
            let w1 = ((d2 * d2 - d1 * d1) / (var * 2.0)).exp();
            let w1 = w1 / (w1 + 1.0);
            *o = (d1 * w1 + d2 * (D::from(1.0) - w1)) * sig / var;
        }
    }
}

const P: [f64; 5] = [-0.8, 1.1, -0.9, 0.4, -0.3];
const SPAN: (f64, f64) = (1.0, 1e-3);

fn flow() -> ProbabilityFlow<Generic<ConditionalMixture>, VpLinear> {
    ProbabilityFlow::new(
        Generic(ConditionalMixture),
        Parametrisation::Noise,
        VpLinear::default(),
    )
}

/// `∂L/∂c` by the adjoint (from `dp`) and by central differences of
/// `sample(p)`, the loss of a forward solve with parameters `p`.
fn compare(what: &str, adjoint_dp: &[f64], sample: impl Fn(&[f64]) -> f64) {
    let d = 1e-5;
    for j in CONDITION {
        let (mut a, mut b) = (P, P);
        a[j] += d;
        b[j] -= d;
        let fd = (sample(&a) - sample(&b)) / (2.0 * d);
        let ad = adjoint_dp[j];
        println!(
            "{what}: dL/dc{} adjoint {ad} central difference {fd}",
            j - 3
        );
        assert!(
            (ad - fd).abs() <= 1e-6 * ad.abs().max(1e-2),
            "{what}: dL/dc{}: adjoint {ad} vs central difference {fd}",
            j - 3
        );
        // the condition moves the samples: a zero gradient would pass nothing
        assert!(ad.abs() > 1e-2, "{what}: dL/dc{} = {ad}", j - 3);
    }
}

#[test]
fn condition_gradient_through_dpmpp_2m_matches_finite_differences() {
    let opts = TimeGrid::UniformLambda
        .options(&VpLinear::default(), SPAN.0, SPAN.1, 12)
        .expect("a uniform-λ grid")
        .save_at(SaveAt::T1);
    let problem = |p: &[f64]| Problem::ode_field(flow(), X_T.to_vec(), SPAN).params(p.to_vec());
    let x = DpmSolverPP2M::default();
    let g = grad(&problem(&P), x, &opts, &loss, Adjoint::STORE_ALL).expect("gradient");
    compare("DPM-Solver++(2M)", &g.dp, |p| {
        let sol = solve(&problem(p), x, opts.clone()).expect("forward solve");
        loss(&sol.ts, &sol.ys, &mut vec![0.0; sol.ys.len()])
    });
}

#[test]
fn condition_gradient_through_sde_dpmpp_2m_matches_finite_differences() {
    let opts = TimeGrid::UniformLambda
        .options(&VpLinear::default(), SPAN.0, SPAN.1, 12)
        .expect("a uniform-λ grid")
        .seed(5)
        .save_at(SaveAt::T1);
    let problem = |p: &[f64]| reverse_sde_field(flow(), X_T.to_vec(), SPAN).params(p.to_vec());
    let x = SdeDpmSolverPP2M::default();
    let g = grad(&problem(&P), x, &opts, &loss, Adjoint::STORE_ALL).expect("gradient");
    compare("SDE-DPM-Solver++(2M)", &g.dp, |p| {
        let sol = solve(&problem(p), x, opts.clone()).expect("forward solve (same seed)");
        loss(&sol.ts, &sol.ys, &mut vec![0.0; sol.ys.len()])
    });
}
