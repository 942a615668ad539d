//! The discrete adjoint of SDE solves with Euler–Maruyama, Euler–Heun,
//! Milstein (derivative-free, or exact given `DiffusionVjp::milstein_term_vjp`), SRIW1, SOSRI, SRA1 and SRA3: the exact gradient of the computed solution
//! on its Brownian path (a Brownian tree, replayed backwards from the seed),
//! each step reversed with the solver's
//! [`SdeStepVjp`](sdeflow_solvers::sde::SdeStepVjp) from the stored states
//! (memory O(steps)); step sizes are constants.

use sdeflow_solvers::brownian::{BrownianPath, BrownianTree};
use sdeflow_solvers::integrate::{StepObserver, integrate_observed};
use sdeflow_solvers::sde::SdeStepVjp;
use sdeflow_solvers::solver::StepNoise;
use sdeflow_solvers::{BrownianSampling, DiffusionVjp, DriftVjp, Options, Problem, SaveAt, Solver};

use crate::loss::Loss;
use crate::{GradError, Gradient};

/// Records step times and states.
struct Tape {
    ts: Vec<f64>,
    ys: Vec<Vec<f64>>,
}

impl StepObserver for Tape {
    fn accepted(&mut self, m: usize, t: f64, t_next: f64, y: &[f64], _y_next: &[f64]) {
        if m == 0 {
            self.ts.push(t);
        }
        self.ts.push(t_next);
        self.ys.push(y.to_vec());
    }
}

/// `(L, dL/dp, dL/dy0)` by the discrete adjoint of an SDE solve with
/// `solver` (Euler–Maruyama, Euler–Heun, SRIW1, SOSRI, SRA1, SRA3). The
/// loss may use `SaveAt::T1` or `SaveAt::Steps`.
pub fn grad_sde_discrete<F, G, S, L>(
    problem: &Problem<F, G>,
    solver: S,
    options: impl AsRef<Options>,
    loss: &L,
) -> Result<Gradient, GradError>
where
    F: DriftVjp,
    G: DiffusionVjp,
    S: Solver + SdeStepVjp,
    L: Loss + ?Sized,
{
    let opts = options.as_ref().clone().brownian(BrownianSampling::Tree);
    if !matches!(opts.save_at, SaveAt::T1 | SaveAt::Steps) {
        return Err(GradError::Unsupported(
            "SDE gradients take losses on SaveAt::T1 or SaveAt::Steps".into(),
        ));
    }
    let noise = problem
        .noise
        .ok_or_else(|| GradError::Unsupported("grad_sde_discrete needs an SDE".into()))?;
    solver
        .check_step_vjp(
            &problem.diffusion,
            problem.tspan.0,
            &problem.y0,
            &problem.params,
        )
        .map_err(GradError::Unsupported)?;
    let n = problem.dim();
    let m = noise.brownian_dim(n);
    let mut tape = Tape {
        ts: Vec::new(),
        ys: Vec::new(),
    };
    let sol = integrate_observed(problem, &solver, &opts, &mut tape)?;
    let (value, gy) = crate::loss::evaluate(loss, &sol)?;
    let steps = tape.ys.len();
    let saved_at = |k: usize| -> Option<usize> {
        match opts.save_at {
            SaveAt::Steps => Some(k),
            _ => (k == steps).then_some(0),
        }
    };
    let mut y_bar = vec![0.0; n];
    if let Some(i) = saved_at(steps) {
        y_bar.copy_from_slice(&gy[i * n..(i + 1) * n]);
    }
    let mut dp = vec![0.0; problem.params.len()];
    let mut work = solver.vjp_workspace(n, noise, problem.interpretation);
    let mut tree = BrownianTree::new(problem.tspan, m, opts.seed);
    let (mut dw, mut lh) = (vec![0.0; m], vec![0.0; m]);
    let levy = solver.needs_levy_area();
    for k in (0..steps).rev() {
        let (t, t_next) = (tape.ts[k], tape.ts[k + 1]);
        tree.increment_with_levy_area(t, t_next, &mut dw, &mut lh);
        let noise_k = StepNoise {
            dw: &dw,
            levy_h: if levy { &lh } else { &[] },
        };
        solver.sde_step_vjp(
            &mut work,
            &problem.drift,
            &problem.diffusion,
            &problem.params,
            t,
            t_next - t,
            &noise_k,
            &tape.ys[k],
            &mut y_bar,
            &mut dp,
        );
        if let Some(i) = saved_at(k) {
            for j in 0..n {
                y_bar[j] += gy[i * n + j];
            }
        }
    }
    Ok(Gradient {
        loss: value,
        dp,
        dy0: y_bar,
        solution: sol,
        vjps: 0,
        backward_drift_evals: 0,
        peak_stored_states: steps,
    })
}
