//! The continuous (AdjointDPM) adjoint of the probability-flow ODE (issue
//! #14, gradients): `sdeflow_adjoint::diffusion::diffusion_gradient`.
//!
//! - On a diagonal Gaussian (`diffusion.md` §7), whose flow map
//!   `x_0 = α_0 μ + k (x_T − α_T μ)`, `k = sqrt(C_0/C_T)`,
//!   `C_t = α_t² v + σ_t²`, gives `∂L/∂x_T`, `∂L/∂μ` and `∂L/∂v` in closed
//!   form, the gradient converges as the uniform-λ grid refines at the
//!   order of the backward integrator, measured by the slope of log error
//!   against log step over five levels (N = 16 … 256) and asserted within
//!   ±0.3 of theory. The forward sampler has at least the adjoint's order,
//!   so that the sample (through `∂L/∂x_0`) does not limit it.
//! - On the two-component mixture of `diffusion_gradients.rs` (nonlinear in
//!   `x` and every parameter), the continuous gradient approaches the
//!   discrete adjoint's (exact for the computed sample) as the steps
//!   increase, at the order of both.
//! - Bad input gets a typed error.

use crate::common::{assert_order, assert_says};
use crate::diffusion_gradients::{Flow, MixtureDenoiser, P, X_T, loss, problem};
use sdeflow::diffusion::*;
use sdeflow::prelude::*;
use sdeflow_adjoint::Gradient;
use sdeflow_adjoint::diffusion::{
    DiffusionAdjoint, ExpOrder, RhoMethod, StateSource, diffusion_gradient,
};

const T_END: f64 = 1e-3;
/// Dimension of the Gaussian; the state is a batch of two samples.
const D: usize = 2;
const MEAN: [f64; D] = [0.5, -0.3];
const VAR: [f64; D] = [0.09, 0.6];
const XT: [f64; 2 * D] = [1.0, -0.4, -1.3, 0.8];
/// Grid sizes of the order fits: coarser grids are pre-asymptotic (the
/// frozen step's error falls from 0.43 at 16 steps only to 0.24 at 64;
/// the multistep's from 4.4 at 16 to 0.08 at 64).
const LEVELS: [usize; 5] = [64, 128, 256, 512, 1024];

/// `ε̂ = σ (x − α μ)/(α² v + σ²)` per coordinate with `p = [μ, v]`, and its
/// VJP by hand.
#[allow(clippy::type_complexity)] // two `impl Fn` types cannot be aliased
fn gaussian_model(
    s: VpLinear,
) -> ModelWithVjp<
    impl Fn(f64, &[f64], &[f64], &mut [f64]),
    impl Fn(f64, &[f64], &[f64], &[f64], &mut [f64], &mut [f64]),
> {
    ModelWithVjp {
        model: move |t: f64, x: &[f64], p: &[f64], out: &mut [f64]| {
            let (a, sg) = (s.alpha(t), s.sigma(t));
            for (j, (o, &xv)) in out.iter_mut().zip(x).enumerate() {
                let i = j % D;
                *o = sg * (xv - a * p[i]) / (a * a * p[D + i] + sg * sg);
            }
        },
        vjp: move |t: f64, x: &[f64], p: &[f64], v: &[f64], ox: &mut [f64], op: &mut [f64]| {
            let (a, sg) = (s.alpha(t), s.sigma(t));
            for (j, &xv) in x.iter().enumerate() {
                let i = j % D;
                let c = a * a * p[D + i] + sg * sg;
                ox[j] += sg / c * v[j];
                op[i] -= sg * a / c * v[j];
                op[D + i] -= sg * (xv - a * p[i]) * a * a / (c * c) * v[j];
            }
        },
    }
}

fn gaussian_problem() -> DiffusionOde<impl ModelVjp, VpLinear> {
    let s = VpLinear::default();
    let p: Vec<f64> = MEAN.iter().chain(&VAR).copied().collect();
    Problem::ode_field(
        ProbabilityFlow::new(gaussian_model(s), Parametrisation::Noise, s),
        XT.to_vec(),
        (1.0, T_END),
    )
    .params(p)
}

/// `L = Σ_j c_j x_j²/2 + x_j`, `c_j = 0.5 + 0.25 j`, on the sample.
fn quadratic(_ts: &[f64], x0: &[f64], g: &mut [f64]) -> f64 {
    let mut l = 0.0;
    for (j, (&x, gj)) in x0.iter().zip(g.iter_mut()).enumerate() {
        let c = 0.5 + 0.25 * j as f64;
        l += 0.5 * c * x * x + x;
        *gj = c * x + 1.0;
    }
    l
}

/// `L = Σ_j (1 + 0.25 j) x_j`, linear in the sample.
fn linear(_ts: &[f64], x0: &[f64], g: &mut [f64]) -> f64 {
    let mut l = 0.0;
    for (j, (&x, gj)) in x0.iter().zip(g.iter_mut()).enumerate() {
        *gj = 1.0 + 0.25 * j as f64;
        l += *gj * x;
    }
    l
}

/// The closed-form `[dL/dx_T, dL/dμ, dL/dv]` of [`quadratic`] (or of
/// [`linear`]) on the Gaussian's exact flow map.
fn gaussian_exact(quadratic: bool) -> Vec<f64> {
    let s = VpLinear::default();
    let (a0, s0, at, st) = (s.alpha(T_END), s.sigma(T_END), s.alpha(1.0), s.sigma(1.0));
    let mut dx = vec![0.0; XT.len()];
    let mut dp = vec![0.0; 2 * D];
    for (j, &xt) in XT.iter().enumerate() {
        let i = j % D;
        let (m, v) = (MEAN[i], VAR[i]);
        let (c0, ct) = (a0 * a0 * v + s0 * s0, at * at * v + st * st);
        let k = (c0 / ct).sqrt();
        let x0 = a0 * m + k * (xt - at * m);
        let gl = if quadratic {
            (0.5 + 0.25 * j as f64) * x0 + 1.0
        } else {
            1.0 + 0.25 * j as f64
        };
        let dk_dv = (a0 * a0 * ct - c0 * at * at) / (2.0 * k * ct * ct);
        dx[j] = gl * k;
        dp[i] += gl * (a0 - k * at);
        dp[D + i] += gl * dk_dv * (xt - at * m);
    }
    dx.extend(dp);
    dx
}

/// `‖g − want‖∞ / ‖want‖∞` over `[dL/dx_T, dL/dθ]`.
fn rel_error(g: &Gradient, want: &[f64]) -> f64 {
    let got: Vec<f64> = g.dy0.iter().chain(&g.dp).copied().collect();
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

fn grid(steps: usize) -> Vec<f64> {
    TimeGrid::UniformLambda
        .times(&VpLinear::default(), 1.0, T_END, steps)
        .expect("a uniform-λ grid")
}

/// The relative errors of `run(N)` against `want` over [`LEVELS`], and the
/// steps `1/N` to fit them against.
fn errors(run: impl Fn(usize) -> Gradient, want: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let hs = LEVELS.iter().map(|&n| 1.0 / n as f64).collect();
    let errs = LEVELS.iter().map(|&n| rel_error(&run(n), want)).collect();
    (hs, errs)
}

const FIRST_BACKSOLVE: DiffusionAdjoint = DiffusionAdjoint::Exponential {
    order: ExpOrder::First,
    states: StateSource::Backsolve,
};
const FIRST_STORED: DiffusionAdjoint = DiffusionAdjoint::Exponential {
    order: ExpOrder::First,
    states: StateSource::Stored,
};
const SECOND_BACKSOLVE: DiffusionAdjoint = DiffusionAdjoint::Exponential {
    order: ExpOrder::Second,
    states: StateSource::Backsolve,
};
const SECOND_STORED: DiffusionAdjoint = DiffusionAdjoint::Exponential {
    order: ExpOrder::Second,
    states: StateSource::Stored,
};

/// The frozen exponential step (and Euler in ρ), after DDIM: order 1.
#[test]
fn gaussian_gradient_converges_at_first_order() {
    let prob = gaussian_problem();
    let want = gaussian_exact(true);
    for (name, adj) in [
        ("frozen, backsolve", FIRST_BACKSOLVE),
        ("frozen, stored", FIRST_STORED),
        ("Euler in ρ", DiffusionAdjoint::Rho(RhoMethod::Euler)),
    ] {
        let run = |n| diffusion_gradient(&prob, Ddim, &grid(n), &quadratic, adj).unwrap();
        let (hs, errs) = errors(run, &want);
        assert_order(&format!("Gaussian, DDIM + {name}"), &hs, &errs, 1.0, 0.3);
    }
}

/// The multistep exponential step and the midpoint rule in ρ, after
/// DPM-Solver++(2M): order 2.
#[test]
fn gaussian_gradient_converges_at_second_order() {
    let prob = gaussian_problem();
    let want = gaussian_exact(true);
    let x = DpmSolverPP2M::default();
    for (name, adj) in [
        ("multistep, backsolve", SECOND_BACKSOLVE),
        ("multistep, stored", SECOND_STORED),
        ("midpoint in ρ", DiffusionAdjoint::Rho(RhoMethod::Midpoint)),
    ] {
        let run = |n| diffusion_gradient(&prob, x, &grid(n), &quadratic, adj).unwrap();
        let (hs, errs) = errors(run, &want);
        assert_order(&format!("Gaussian, ++2M + {name}"), &hs, &errs, 2.0, 0.3);
    }
}

/// RK4 in ρ: order 4, on the entries that do not depend on the sample
/// under a linear loss (`∂L/∂x_T` and `∂L/∂μ`: `J` and `∂ε̂/∂μ` are
/// independent of `x` here), so that the sampler's error does not set the
/// order (`∂L/∂v` reads the re-solved `y`, which starts from the sample).
#[test]
fn gaussian_gradient_rk4_in_rho() {
    let prob = gaussian_problem();
    let mut want = gaussian_exact(false);
    want.truncate(XT.len() + D);
    let adj = DiffusionAdjoint::Rho(RhoMethod::Rk4);
    let run = |n| {
        let mut g = diffusion_gradient(&prob, Ddim, &grid(n / 4), &linear, adj).unwrap();
        g.dp.truncate(D);
        g
    };
    let (hs, errs) = errors(run, &want);
    assert_order("Gaussian, linear loss, RK4 in ρ", &hs, &errs, 4.0, 0.3);
}

/// The frozen exponential step in λ is Euler in ρ on the same grid
/// (`∫_{λ_s}^{λ_t} e^{−λ} dλ = ρ_s − ρ_t`): the two agree to rounding.
#[test]
fn frozen_exponential_step_is_euler_in_rho() {
    let prob = gaussian_problem();
    let times = grid(24);
    let a = diffusion_gradient(&prob, Ddim, &times, &quadratic, FIRST_BACKSOLVE).unwrap();
    let b = diffusion_gradient(
        &prob,
        Ddim,
        &times,
        &quadratic,
        DiffusionAdjoint::Rho(RhoMethod::Euler),
    )
    .unwrap();
    let want: Vec<f64> = b.dy0.iter().chain(&b.dp).copied().collect();
    assert!(rel_error(&a, &want) < 1e-12, "{a:?} vs {b:?}");
    // one VJP per step; re-solving y costs one model evaluation per step,
    // reading stored states none (and keeps N + 1 of them)
    assert_eq!(
        (a.vjps, a.backward_drift_evals, a.peak_stored_states),
        (24, 24, 1)
    );
    let s = diffusion_gradient(&prob, Ddim, &times, &quadratic, FIRST_STORED).unwrap();
    assert_eq!(
        (s.vjps, s.backward_drift_evals, s.peak_stored_states),
        (24, 0, 25)
    );
}

/// `|continuous − discrete|` (relative, ∞-norm) over [`LEVELS`] on the
/// mixture, after `sampler`: both converge to the flow's gradient at the
/// sampler's (= the adjoint's) order, so their gap shrinks at that order.
fn mixture_gap<X>(sampler: X, adjoint: DiffusionAdjoint, order: f64, what: &str)
where
    X: sdeflow::Method<DiffusionOde<Generic<MixtureDenoiser>, VpLinear>>
        + sdeflow::adjoint::Differentiable<Flow, NoDiffusion, VirtualTree>
        + Copy,
{
    let s = VpLinear::default();
    let prob = problem(&X_T, &P);
    let mut gaps = Vec::new();
    for &n in &LEVELS {
        let opts = TimeGrid::UniformLambda
            .options(&s, 1.0, T_END, n)
            .expect("a uniform-λ grid")
            .save_at(SaveAt::T1);
        let disc =
            grad(&prob, sampler, &opts, &loss, Adjoint::STORE_ALL).expect("discrete adjoint");
        let cont = diffusion_gradient(&prob, sampler, &grid(n), &loss, adjoint)
            .expect("continuous adjoint");
        // the same sample, hence the same loss
        assert!((disc.loss - cont.loss).abs() < 1e-12 * disc.loss.abs());
        let want: Vec<f64> = disc.dy0.iter().chain(&disc.dp).copied().collect();
        gaps.push(rel_error(&cont, &want));
    }
    let hs: Vec<f64> = LEVELS.iter().map(|&n| 1.0 / n as f64).collect();
    assert_order(what, &hs, &gaps, order, 0.3);
}

#[test]
fn mixture_continuous_gradient_approaches_discrete() {
    mixture_gap(
        Ddim,
        FIRST_BACKSOLVE,
        1.0,
        "mixture, DDIM: frozen vs discrete",
    );
    mixture_gap(
        DpmSolverPP2M::default(),
        SECOND_STORED,
        2.0,
        "mixture, ++2M: multistep vs discrete",
    );
}

#[test]
fn bad_grids_are_refused() {
    let prob = gaussian_problem();
    let run = |times: &[f64]| {
        diffusion_gradient(&prob, Ddim, times, &quadratic, FIRST_BACKSOLVE).unwrap_err()
    };
    assert_says(&run(&[1.0]), &["times", "needs T and t_end"]);
    assert_says(&run(&[1.0, 0.5, 1e-2]), &["problem", "span"]);
    assert_says(
        &run(&[1.0, 0.3, 0.5, T_END]),
        &["times[2]", "does not decrease"],
    );
    assert_says(&run(&[1.0, f64::NAN, T_END]), &["times[1]", "outside"]);
}

#[test]
fn non_finite_values_are_refused() {
    // a non-finite initial noise fails the forward solve
    let mut prob = gaussian_problem();
    prob.y0[1] = f64::NAN;
    let e = diffusion_gradient(&prob, Ddim, &grid(8), &quadratic, FIRST_BACKSOLVE).unwrap_err();
    assert!(matches!(e, sdeflow::adjoint::GradError::Solve(_)), "{e}");
    // a loss that is not finite on the sample
    let prob = gaussian_problem();
    let nan_loss = |_ts: &[f64], _x: &[f64], _g: &mut [f64]| f64::NAN;
    let e = diffusion_gradient(&prob, Ddim, &grid(8), &nan_loss, FIRST_BACKSOLVE).unwrap_err();
    assert_says(&e, &["loss", "finite"]);
    // a model VJP that returns NaN: refused, not returned as a gradient
    let s = VpLinear::default();
    let broken = ModelWithVjp {
        model: gaussian_model(s).model,
        vjp: |_t: f64, _x: &[f64], _p: &[f64], _v: &[f64], ox: &mut [f64], _op: &mut [f64]| {
            ox[0] = f64::NAN;
        },
    };
    let prob = Problem::ode_field(
        ProbabilityFlow::new(broken, Parametrisation::Noise, s),
        XT.to_vec(),
        (1.0, T_END),
    )
    .params(gaussian_problem().params);
    for adj in [SECOND_STORED, DiffusionAdjoint::Rho(RhoMethod::Rk4)] {
        let e = diffusion_gradient(&prob, Ddim, &grid(8), &quadratic, adj).unwrap_err();
        assert_says(&e, &["not finite", "VJP"]);
    }
}
