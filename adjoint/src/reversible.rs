//! Gradients through reversible Heun solves of Stratonovich SDEs (Kidger,
//! Foster, Li, Lyons, "Efficient and accurate gradients for neural SDEs",
//! NeurIPS 2021): [`Adjoint::Reversible`] reconstructs every earlier state
//! with the solver's algebraic reverse step while it backpropagates through
//! the forward step — the exact gradient of the computed solution with
//! memory independent of the number of steps (only the accepted step times,
//! one number per step, are kept). [`Adjoint::Discrete`] does the same
//! backpropagation from the states `ŷ_n` and increments `ΔW_n` the forward
//! pass recorded (memory O(steps), whatever its `checkpoints`; faster: no
//! reverse steps, no path queries). The Brownian motion is the problem's
//! driver's, as `solve` sees it; the reversible adjoint walks the path the
//! forward solve kept backwards.

use sdeflow_solvers::brownian::Driver;
use sdeflow_solvers::integrate::{StepObserver, integrate_observed};
use sdeflow_solvers::sde::{ReversibleHeun, ReversibleHeunVjp};
use sdeflow_solvers::solver::{Fields, StepAt, StepNoise};
use sdeflow_solvers::{DiffusionVjp, DriftVjp, Options, Problem, SaveAt, Solver, Stats};

use crate::loss::Loss;
use crate::{Adjoint, GradError, Gradient};

/// Records the accepted step times and the last carried `ŷ`; with `store`,
/// every step's `ŷ` and increments (the discrete adjoint's records).
struct Tape {
    ts: Vec<f64>,
    y_hat: Vec<f64>,
    store: bool,
    /// `ŷ_0, …, ŷ_N` (flat, `store` only).
    y_hats: Vec<f64>,
    /// `ΔW_0, …, ΔW_{N−1}` (flat, `store` only).
    dws: Vec<f64>,
}

impl StepObserver for Tape {
    fn accepted_noise(&mut self, noise: &StepNoise<'_>) {
        if self.store {
            self.dws.extend_from_slice(noise.dw);
        }
    }

    fn accepted(&mut self, m: usize, t: f64, t_next: f64, y: &[f64], _y_next: &[f64]) {
        if m == 0 {
            self.ts.push(t);
            if self.store {
                // ŷ_0 = y_0
                self.y_hats.extend_from_slice(y);
            }
        }
        self.ts.push(t_next);
    }

    fn accepted_carried(&mut self, y_hat: &[f64]) {
        self.y_hat.clear();
        self.y_hat.extend_from_slice(y_hat);
        if self.store {
            self.y_hats.extend_from_slice(y_hat);
        }
    }
}

/// `(L, dL/dp, dL/dy0)` of a loss on a reversible Heun solve of a
/// Stratonovich SDE with [`Adjoint::Reversible`] (exact, memory independent
/// of the number of steps), [`Adjoint::Discrete`] (exact, stored states) or
/// [`Adjoint::Stochastic`] (Li et al. 2020; converges as the steps shrink;
/// loss on `SaveAt::T1`). The loss may use `SaveAt::T1` or `SaveAt::Steps`;
/// the Brownian path is the one `solve` sees: the problem's driver with
/// `options.seed` (the reversible and stochastic adjoints re-query it
/// backwards, so they refuse drivers that cannot, such as `Increments`).
pub(crate) fn reversible_heun_gradient<F, G, D, L>(
    solver: &ReversibleHeun,
    problem: &Problem<F, G, D>,
    options: &Options,
    loss: &L,
    adjoint: Adjoint,
) -> Result<Gradient, GradError>
where
    F: DriftVjp,
    G: DiffusionVjp,
    D: Driver,
    L: Loss + ?Sized,
{
    let opts = options;
    if !matches!(opts.save_at, SaveAt::T1 | SaveAt::Steps) {
        return Err(GradError::Unsupported(
            "SDE gradients take losses on SaveAt::T1 or SaveAt::Steps".into(),
        ));
    }
    let store = match adjoint {
        Adjoint::Stochastic => {
            return crate::stochastic::stochastic_adjoint(problem, options, loss);
        }
        Adjoint::Reversible if !problem.driver.requery() => {
            return Err(GradError::Unsupported(format!(
                "Adjoint::Reversible walks the Brownian path backwards, which the {} driver \
                 cannot re-query; drive the problem with VirtualTree (the default) or \
                 CachedInterval, or use Adjoint::Discrete",
                problem.driver.name()
            )));
        }
        Adjoint::Reversible => false,
        Adjoint::Discrete { .. } => true,
        other => {
            return Err(GradError::Unsupported(format!(
                "{other:?} with ReversibleHeun: use Adjoint::Reversible, Adjoint::Discrete or \
                 Adjoint::Stochastic"
            )));
        }
    };
    let noise = problem
        .noise
        .ok_or_else(|| GradError::Unsupported("ReversibleHeun needs an SDE".into()))?;
    let n = problem.dim();
    let m = noise.brownian_dim(n);
    let mut tape = Tape {
        ts: Vec::new(),
        y_hat: Vec::new(),
        store,
        y_hats: Vec::new(),
        dws: Vec::new(),
    };
    let sol = integrate_observed(problem, solver, opts, &mut tape)?;
    let (value, gy) = crate::loss::evaluate(loss, &sol)?;
    let ts = &tape.ts;
    let steps = ts.len() - 1;
    let fields = Fields::new(problem);
    let mut stats = Stats::default();
    // the reversible adjoint walks back from the final carried state (the
    // discrete one reads the recorded states and increments)
    let mut cache = solver.init(problem);
    let mut path = if store {
        None
    } else {
        Some(sol.brownian_path()?)
    };
    if !store {
        let t_last = ts[steps - 1] + (ts[steps] - ts[steps - 1]);
        solver.restore(&mut cache, &fields, t_last, &tape.y_hat, &mut stats);
    }
    let (mut y, mut y_new, mut dw) = (sol.last().to_vec(), vec![0.0; n], vec![0.0; m]);
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
    let mut yh_next = vec![0.0; n];
    let mut vjps = 0;
    for k in (0..steps).rev() {
        let (t, h) = (ts[k], ts[k + 1] - ts[k]);
        if store {
            dw.copy_from_slice(&tape.dws[k * m..(k + 1) * m]);
            yh_next.copy_from_slice(&tape.y_hats[(k + 1) * n..(k + 2) * n]);
        } else if let Some(path) = path.as_mut() {
            path.increment(t, ts[k + 1], &mut dw);
            yh_next.copy_from_slice(cache.y_hat());
            let step = StepAt { t, h, y: &y };
            solver.reverse_step(&mut cache, &fields, step, &dw, &mut y_new, &mut stats);
            std::mem::swap(&mut y, &mut y_new);
        }
        solver.step_vjp(
            &mut ws,
            &fields,
            StepAt { t, h, y: &yh_next },
            &dw,
            (&mut y_bar, &mut yh_bar),
            &mut dp,
        );
        vjps += 2;
        if let Some(i) = saved_at(k) {
            for j in 0..n {
                y_bar[j] += gy[i * n + j];
            }
        }
    }
    // the deferred VJPs at ŷ_0 = y_0
    solver.finish_vjp(&mut ws, &fields, ts[0], &problem.y0, &mut yh_bar, &mut dp);
    vjps += 2;
    // ŷ_0 = y_0
    let dy0: Vec<f64> = y_bar.iter().zip(&yh_bar).map(|(a, b)| a + b).collect();
    Ok(Gradient {
        loss: value,
        dp,
        dy0,
        solution: sol,
        vjps,
        backward_drift_evals: stats.drift_evals,
        peak_stored_states: if store { tape.y_hats.len() / n } else { 2 },
    })
}
