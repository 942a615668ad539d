//! Gradients through the diffusion samplers (issue #14, part 3): the
//! discrete adjoint through the samplers' step VJPs, with respect to the
//! initial noise `x_T` and the model's parameters, against central finite
//! differences of the sampler itself, and its memory on a 1000-step run.
//!
//! The model is the exact noise prediction of a two-component Gaussian
//! mixture per coordinate, `½ N(μ1, s²) + ½ N(μ2, s²)`, with the means and
//! `log s` as parameters (`p = [μ1, μ2, log s]`), written over the scalar
//! so its VJP is exact (dual numbers): nonlinear in `x` through the
//! posterior weights, and in every parameter.
//!
//! Tolerance: the adjoint is the exact derivative of the computed sample,
//! so it differs from a central difference with step `δ = 1e-5` by the
//! difference's truncation `O(δ²) ≈ 1e-10` and rounding `≈ 1e-16/δ`
//! relative: agreement to 1e-6 relative (entries below 1e-2 to 1e-8
//! absolute) leaves two orders of margin and fails for any missed term
//! (a history cotangent dropped changes the gradient at 1e-2).

use crate::common::{assert_gradients_agree, assert_says};
use sdeflow::diffusion::*;
use sdeflow::field::{DualNum, Generic, GenericField};
use sdeflow::prelude::*;

/// The exact noise prediction of `½ N(μ1, s²) + ½ N(μ2, s²)` per
/// coordinate under the VP-linear schedule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MixtureDenoiser;

impl GenericField for MixtureDenoiser {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, x: &[D], p: &[D], out: &mut [D]) {
        let s = VpLinear::default();
        let (a, sig) = (s.alpha(t.re()), s.sigma(t.re()));
        let var = (p[2] * 2.0).exp() * (a * a) + sig * sig;
        for (o, &xv) in out.iter_mut().zip(x) {
            let (d1, d2) = (xv - p[0] * a, xv - p[1] * a);
            // posterior weight of component 1 (equal priors, equal variance)
            let w1 = ((d2 * d2 - d1 * d1) / (var * 2.0)).exp();
            let w1 = w1 / (w1 + 1.0);
            *o = (d1 * w1 + d2 * (D::from(1.0) - w1)) * sig / var;
        }
    }
}

pub(crate) const P: [f64; 3] = [-0.8, 1.1, -0.9];
/// Three 2-D samples, flattened.
pub(crate) const X_T: [f64; 6] = [0.7, -1.3, 0.2, 1.9, -0.5, 0.4];

pub(crate) type Flow = ProbabilityFlow<Generic<MixtureDenoiser>, VpLinear>;

pub(crate) fn problem(x_t: &[f64], p: &[f64]) -> Problem<Flow> {
    Problem::ode_field(
        ProbabilityFlow::new(
            Generic(MixtureDenoiser),
            Parametrisation::Noise,
            VpLinear::default(),
        ),
        x_t.to_vec(),
        (1.0, 1e-3),
    )
    .params(p.to_vec())
}

/// `L = Σ_i c_i x_i(t_end)²/2 + Σ_i x_i(t_end)` with fixed weights `c`.
pub(crate) fn loss(_ts: &[f64], ys: &[f64], g: &mut [f64]) -> f64 {
    let n = X_T.len();
    let last = &ys[ys.len() - n..];
    g.iter_mut().for_each(|v| *v = 0.0);
    let off = ys.len() - n;
    let mut l = 0.0;
    for (i, &y) in last.iter().enumerate() {
        let c = 0.5 + 0.25 * i as f64;
        l += 0.5 * c * y * y + y;
        g[off + i] = c * y + 1.0;
    }
    l
}

fn sample_loss<X: Method<DiffusionOde<Generic<MixtureDenoiser>, VpLinear>>>(
    x: X,
    opts: &Options,
    x_t: &[f64],
    p: &[f64],
) -> f64 {
    let sol = solve(&problem(x_t, p), x, opts.clone()).expect("forward solve");
    let mut g = vec![0.0; sol.ys.len()];
    loss(&sol.ts, &sol.ys, &mut g)
}

/// The central-difference gradient `(dp, dy0)` of the sampled loss.
fn finite_differences<X>(x: X, opts: &Options) -> (Vec<f64>, Vec<f64>)
where
    X: Method<DiffusionOde<Generic<MixtureDenoiser>, VpLinear>> + Copy,
{
    let d = 1e-5;
    let mut dp = vec![0.0; P.len()];
    for j in 0..P.len() {
        let (mut a, mut b) = (P, P);
        a[j] += d;
        b[j] -= d;
        dp[j] = (sample_loss(x, opts, &X_T, &a) - sample_loss(x, opts, &X_T, &b)) / (2.0 * d);
    }
    let mut dy0 = vec![0.0; X_T.len()];
    for j in 0..X_T.len() {
        let (mut a, mut b) = (X_T, X_T);
        a[j] += d;
        b[j] -= d;
        dy0[j] = (sample_loss(x, opts, &a, &P) - sample_loss(x, opts, &b, &P)) / (2.0 * d);
    }
    (dp, dy0)
}

pub(crate) fn check_against_fd<X>(x: X, steps: usize)
where
    X: Method<DiffusionOde<Generic<MixtureDenoiser>, VpLinear>>
        + Differentiable<Flow, NoDiffusion, VirtualTree>
        + Copy
        + std::fmt::Debug,
{
    let s = VpLinear::default();
    let opts = TimeGrid::UniformLambda
        .options(&s, 1.0, 1e-3, steps)
        .expect("a uniform-λ grid of the VP schedule")
        .save_at(SaveAt::T1);
    let prob = problem(&X_T, &P);
    let g = grad(&prob, x, &opts, &loss, Adjoint::STORE_ALL).expect("gradient");
    let (dp, dy0) = finite_differences(x, &opts);
    println!(
        "{:?}, {steps} steps: adjoint dp {:?} dy0 {:?}; FD dp {dp:?} dy0 {dy0:?}",
        x, g.dp, g.dy0
    );
    assert!((g.loss - sample_loss(x, &opts, &X_T, &P)).abs() < 1e-14);
    let fd = Gradient {
        dp,
        dy0,
        ..g.clone()
    };
    assert_agree_named(&format!("{x:?}, {steps} steps"), &g, &fd);
}

/// [`assert_gradients_agree`] at this file's tolerance (1e-6 relative,
/// entries below 1e-2 to 1e-8 absolute), naming the sampler `what` on
/// failure; and every parameter matters here, so a gradient of zero
/// would pass nothing.
pub(crate) fn assert_agree_named(what: &str, adjoint: &Gradient, fd: &Gradient) {
    let pairs = adjoint
        .dp
        .iter()
        .zip(&fd.dp)
        .chain(adjoint.dy0.iter().zip(&fd.dy0));
    for (j, (a, b)) in pairs.enumerate() {
        assert!(
            (a - b).abs() <= 1e-6 * a.abs().max(1e-2),
            "{what}: entry {j} of (dp, dy0): adjoint {a} vs central difference {b}"
        );
    }
    assert!(
        adjoint.dp.iter().all(|v| v.abs() > 1e-3),
        "{what}: {:?}",
        adjoint.dp
    );
}

#[test]
fn ddim_gradient_matches_finite_differences() {
    check_against_fd(Ddim, 12);
}

#[test]
fn dpmpp_2m_gradient_matches_finite_differences() {
    // the multistep history is carried state: its cotangent flows back
    check_against_fd(DpmSolverPP2M::default(), 12);
    // with dpm_solver's lower-order final steps (orders read from the
    // carried step index)
    check_against_fd(DpmSolverPP2M::default().lower_order_final(8), 8);
}

#[test]
fn dpmpp_3m_gradient_matches_finite_differences() {
    check_against_fd(DpmSolverPP3M::default(), 12);
}

#[test]
fn noise_form_multistep_gradients_match_finite_differences() {
    check_against_fd(DpmSolver2M::default(), 12);
    check_against_fd(DpmSolver3M::default(), 12);
    check_against_fd(DpmSolver3M::default().lower_order_final(8), 8);
}

#[test]
fn singlestep_second_order_gradients_match_finite_differences() {
    check_against_fd(DpmSolver2, 8);
    check_against_fd(DpmSolverPP2S, 8);
}

#[test]
fn single_evaluation_samplers_gradients_match_finite_differences() {
    check_against_fd(PfEuler, 12);
    // the last step's second evaluation is reversed too
    check_against_fd(EdmHeun, 8);
}

#[test]
fn dpm_solver3_gradient_matches_finite_differences() {
    // two evaluations inside each step, the second reading the first
    check_against_fd(DpmSolver3, 6);
}

#[test]
fn deis_gradients_match_finite_differences() {
    for degree in 1..=3 {
        check_against_fd(Deis::t_ab(degree), 10);
        check_against_fd(Deis::t_ab(degree).data_prediction(), 10);
    }
}

#[test]
fn pseudo_numerical_samplers_gradients_match_finite_differences() {
    // three pseudo-RK4 warm-up steps (three evaluations inside each), then AB4
    check_against_fd(Pndm, 8);
    // a pseudo-Heun first step, then AB2 to AB4
    check_against_fd(Plms, 10);
    check_against_fd(IPndm, 10);
}

#[test]
fn lms_gradients_match_finite_differences() {
    for order in 2..=4 {
        check_against_fd(Lms::new(order), 10);
    }
}

#[test]
fn unipc_gradients_match_finite_differences() {
    // the corrector re-uses the next step's evaluation: its state is
    // carried, and so is its cotangent
    for order in [2, 3] {
        for variant in [BhVariant::B1, BhVariant::B2] {
            check_against_fd(UniPc::new(order).variant(variant), 10);
        }
    }
    check_against_fd(UniPc::new(3).noise_prediction(), 10);
    check_against_fd(UniPc::new(2).without_corrector(), 10);
}

/// Adaptive DPM-Solver-12 and -23: the discrete adjoint reverses the
/// accepted steps (the controller's choices held constant), so its
/// gradient is that of the sampler on the accepted grid, and agrees with
/// central differences of that fixed-grid run.
#[test]
fn adaptive_dpm_solver_gradients_match_finite_differences_on_the_accepted_grid() {
    for x in [
        AdaptiveDpmSolver::dpm_solver_12(),
        AdaptiveDpmSolver::dpm_solver_23(),
    ] {
        let adaptive = Options::default().tol(1e-4).save_at(SaveAt::Steps);
        let prob = problem(&X_T, &P);
        let sol = solve(&prob, x, adaptive.clone()).expect("adaptive solve");
        let steps = sol.stats.accepted_steps;
        println!(
            "{x:?}: {steps} accepted, {} rejected",
            sol.stats.rejected_steps
        );
        assert!(steps >= 5, "{x:?}: {steps} steps");
        let adaptive = adaptive.save_at(SaveAt::T1);
        let grid = Options::default()
            .grid(sol.ts[1..sol.ts.len() - 1].to_vec())
            .save_at(SaveAt::T1);
        let g = grad(&prob, x, &adaptive, &loss, Adjoint::STORE_ALL).expect("gradient");
        let on_grid = grad(&prob, x, &grid, &loss, Adjoint::STORE_ALL).expect("gradient");
        assert_gradients_agree(&g, &on_grid, 1e-12, 1e-2);
        let (dp, dy0) = finite_differences(x, &grid);
        let fd = Gradient {
            dp,
            dy0,
            ..g.clone()
        };
        assert_agree_named(&format!("{x:?}"), &g, &fd);
    }
}

/// A 1000-step DPM-Solver++(2M) run with 8 checkpoints: the peak number of
/// stored records stays within the recursive checkpointing bound
/// `budget · (levels + 1)`, `levels = ⌈log_budget(steps)⌉`, and the
/// gradient equals the one that stores every step (recomputed steps
/// rebuild the same carried history).
#[test]
fn thousand_step_gradient_stays_within_checkpoint_budget() {
    let s = VpLinear::default();
    let steps = 1000;
    let opts = TimeGrid::UniformLambda
        .options(&s, 1.0, 1e-3, steps)
        .expect("a uniform-λ grid of the VP schedule")
        .save_at(SaveAt::T1);
    let prob = problem(&X_T, &P);
    let x = DpmSolverPP2M::default();
    let budget = 8;
    let all = grad(&prob, x, &opts, &loss, Adjoint::STORE_ALL).unwrap();
    let small = grad(
        &prob,
        x,
        &opts,
        &loss,
        Adjoint::Discrete {
            checkpoints: budget,
        },
    )
    .unwrap();
    let levels = (steps as f64).log(budget as f64).ceil() as usize;
    println!(
        "1000 steps: peak records {} (bound {}), {} storing all; recomputed drift evals {}",
        small.peak_stored_states,
        budget * (levels + 1),
        all.peak_stored_states,
        small.backward_drift_evals
    );
    assert!(small.peak_stored_states <= budget * (levels + 1));
    assert!(all.peak_stored_states >= steps);
    assert!(small.backward_drift_evals > 0);
    assert_gradients_agree(&all, &small, 1e-12, 1.0);
}

/// A sampler's step VJP needs the flow of a model with a VJP; a drift
/// that is not one is refused with a typed error naming the fix.
#[test]
fn step_vjp_without_a_flow_is_refused() {
    use sdeflow::field::WithVjp;
    use sdeflow_solvers::solver::{Fields, StepAt, StepNoise};
    use sdeflow_solvers::step_vjp::{StepBars, StepVjp, VjpArgs};
    let prob = problem(&X_T, &P);
    let other = Problem::ode_field(
        WithVjp {
            field: |_t: f64, _y: &[f64], _p: &[f64], dy: &mut [f64]| dy.fill(0.0),
            vjp: |_t: f64, _y: &[f64], _p: &[f64], _v: &[f64], _oy: &mut [f64], _op: &mut [f64]| {},
        },
        X_T.to_vec(),
        (1.0, 1e-3),
    );
    let mut work = StepVjp::<Problem<Flow>>::vjp_workspace(&Ddim, &prob);
    let fields = Fields::new(&other);
    let (mut yb, mut cb, mut pb) = (vec![1.0; 6], vec![], vec![]);
    let mut stats = Stats::default();
    let args = VjpArgs {
        fields: &fields,
        at: StepAt {
            t: 1.0,
            h: -0.1,
            y: &X_T,
        },
        carried: &[],
        noise: &StepNoise::NONE,
        bars: StepBars::states(&mut yb, &mut cb, &mut pb),
        stats: &mut stats,
    };
    let e = StepVjp::<Problem<Flow>>::step_vjp(&Ddim, &mut work, args).unwrap_err();
    assert_says(&e, &["probability flow", "ModelVjp"]);
}
