//! Gradients through reversible Heun solves of Stratonovich SDEs (Kidger,
//! Foster, Li, Lyons, "Efficient and accurate gradients for neural SDEs",
//! NeurIPS 2021): [`Adjoint::Reversible`] reconstructs every earlier state
//! with the solver's algebraic reverse step while it backpropagates through
//! the forward step — the exact gradient of the computed solution with
//! memory independent of the number of steps (only the accepted step times,
//! one number per step, are kept). [`Adjoint::Discrete`] does the same
//! backpropagation from stored states (for comparison). The Brownian motion
//! is a Brownian tree (forced), replayed backwards from the seed.

use sdeflow_solvers::brownian::{BrownianPath, BrownianTree};
use sdeflow_solvers::integrate::{StepObserver, integrate_observed};
use sdeflow_solvers::sde::{ReversibleHeun, ReversibleHeunVjp};
use sdeflow_solvers::solver::{Fields, StepNoise};
use sdeflow_solvers::{
    BrownianSampling, DiffusionVjp, DriftVjp, Options, Problem, SaveAt, Solver, Stats,
};

use crate::loss::Loss;
use crate::{Adjoint, GradError, Gradient};

/// Records the accepted step times.
struct StepTimes(Vec<f64>);

impl StepObserver for StepTimes {
    fn accepted(&mut self, m: usize, t: f64, t_next: f64, _y: &[f64], _y_next: &[f64]) {
        if m == 0 {
            self.0.push(t);
        }
        self.0.push(t_next);
    }
}

/// `(L, dL/dp, dL/dy0)` of a loss on a reversible Heun solve of a
/// Stratonovich SDE with [`Adjoint::Reversible`] (exact, memory independent
/// of the number of steps), [`Adjoint::Discrete`] (exact, stored states) or
/// [`Adjoint::Stochastic`] (Li et al. 2020; converges as the steps shrink;
/// loss on `SaveAt::T1`). The loss may use `SaveAt::T1` or `SaveAt::Steps`;
/// the Brownian path is always the tree of `options.seed`.
pub fn grad_sde<F, G, L>(
    problem: &Problem<F, G>,
    solver: ReversibleHeun,
    options: impl AsRef<Options>,
    loss: &L,
    adjoint: Adjoint,
) -> Result<Gradient, GradError>
where
    F: DriftVjp,
    G: DiffusionVjp,
    L: Loss + ?Sized,
{
    let opts = options.as_ref().clone().brownian(BrownianSampling::Tree);
    if !matches!(opts.save_at, SaveAt::T1 | SaveAt::Steps) {
        return Err(GradError::Unsupported(
            "SDE gradients take losses on SaveAt::T1 or SaveAt::Steps".into(),
        ));
    }
    let store = match adjoint {
        Adjoint::Stochastic => {
            return crate::stochastic::stochastic_adjoint(problem, options.as_ref(), loss);
        }
        Adjoint::Reversible => false,
        Adjoint::Discrete { .. } => true,
        other => {
            return Err(GradError::Unsupported(format!(
                "{other:?} for SDEs; use Adjoint::Reversible or Adjoint::Discrete with ReversibleHeun"
            )));
        }
    };
    let noise = problem
        .noise
        .ok_or_else(|| GradError::Unsupported("grad_sde needs an SDE; use grad for ODEs".into()))?;
    let n = problem.dim();
    let m = noise.brownian_dim(n);
    let mut rec = StepTimes(Vec::new());
    let sol = integrate_observed(problem, &solver, &opts, &mut rec)?;
    let (value, gy) = crate::loss::evaluate(loss, &sol)?;
    let ts = &rec.0;
    let steps = ts.len() - 1;
    // replay the forward pass (bit-identical) to reach the final carried state
    let fields = Fields::new(problem);
    let mut stats = Stats::default();
    let mut cache = solver.init(problem);
    let (mut f0, mut g0) = (vec![0.0; n], vec![0.0; noise.diffusion_len(n)]);
    fields.f(ts[0], &problem.y0, &mut f0, &mut stats);
    fields.g(ts[0], &problem.y0, &mut g0, &mut stats);
    solver.start(&mut cache, &f0, &g0);
    let mut tree = BrownianTree::new(problem.tspan, m, opts.seed);
    let (mut y, mut y_new, mut err, mut dw) =
        (problem.y0.clone(), vec![0.0; n], vec![0.0; n], vec![0.0; m]);
    let mut stored: Vec<Vec<f64>> = Vec::new();
    if store {
        stored.push(cache.y_hat().to_vec());
    }
    for k in 0..steps {
        tree.increment(ts[k], ts[k + 1], &mut dw);
        let noise_k = StepNoise {
            dw: &dw,
            levy_h: &[],
        };
        solver.step(
            &mut cache,
            &fields,
            ts[k],
            ts[k + 1] - ts[k],
            &y,
            &noise_k,
            &mut y_new,
            &mut err,
            &mut stats,
        );
        solver.accept(&mut cache);
        std::mem::swap(&mut y, &mut y_new);
        if store {
            stored.push(cache.y_hat().to_vec());
        }
    }
    // backward
    let saved_at = |k: usize| -> Option<usize> {
        match opts.save_at {
            SaveAt::Steps => Some(k),
            _ => (k == steps).then_some(0),
        }
    };
    let mut y_bar = vec![0.0; n];
    let mut yh_bar = vec![0.0; n];
    let mut dp = vec![0.0; problem.params.len()];
    if let Some(i) = saved_at(steps) {
        y_bar.copy_from_slice(&gy[i * n..(i + 1) * n]);
    }
    let mut ws = ReversibleHeunVjp::new(n, noise);
    let (mut yh_next, mut yh_prev) = (vec![0.0; n], vec![0.0; n]);
    let mut vjps = 0;
    for k in (0..steps).rev() {
        let (t, h) = (ts[k], ts[k + 1] - ts[k]);
        tree.increment(t, ts[k + 1], &mut dw);
        if store {
            yh_next.copy_from_slice(&stored[k + 1]);
            yh_prev.copy_from_slice(&stored[k]);
        } else {
            yh_next.copy_from_slice(cache.y_hat());
            solver.reverse_step(&mut cache, &fields, t, h, &dw, &y, &mut y_new, &mut stats);
            std::mem::swap(&mut y, &mut y_new);
            yh_prev.copy_from_slice(cache.y_hat());
        }
        solver.step_vjp(
            &mut ws,
            &problem.drift,
            &problem.diffusion,
            &problem.params,
            t,
            h,
            &dw,
            &yh_prev,
            &yh_next,
            &mut y_bar,
            &mut yh_bar,
            &mut dp,
        );
        vjps += 4;
        if let Some(i) = saved_at(k) {
            for j in 0..n {
                y_bar[j] += gy[i * n + j];
            }
        }
    }
    // ŷ_0 = y_0
    let dy0: Vec<f64> = y_bar.iter().zip(&yh_bar).map(|(a, b)| a + b).collect();
    Ok(Gradient {
        loss: value,
        dp,
        dy0,
        solution: sol,
        vjps,
        backward_drift_evals: stats.drift_evals,
        peak_stored_states: if store { stored.len() } else { 2 },
    })
}
