//! The discrete adjoint of SDE solves with Euler–Maruyama, Euler–Heun,
//! Milstein (derivative-free, or exact given
//! `DiffusionVjp::milstein_term_vjp`), SRIW1, SOSRI, SRA1 and SRA3: the
//! exact gradient of the computed solution on its Brownian path (the path
//! the forward solve kept, from the problem's driver), each step reversed
//! with the solver's
//! [`SdeStepVjp`](sdeflow_solvers::sde::SdeStepVjp); step sizes are
//! constants. The forward pass keeps at most `checkpoints` records (state
//! and the step's increments) and the backward sweep recomputes the rest
//! by recursive checkpointing ([`crate::checkpoint`]), re-querying the kept
//! path for recomputed steps; with a budget of at least the number of steps
//! nothing is recomputed and the path is not queried again.

use sdeflow_solvers::brownian::{BrownianPath, Driver};
use sdeflow_solvers::integrate::Run;
use sdeflow_solvers::sde::{SdeStepVjp, SdeVjpWork};
use sdeflow_solvers::solver::{Fields, StepAt, StepNoise};
use sdeflow_solvers::{DiffusionVjp, DriftVjp, Options, Problem, SaveAt, Solver};

use crate::checkpoint::{Record, ReverseStep, forward, reverse_all};
use crate::loss::Loss;
use crate::{GradError, Gradient};

/// Reverses SDE steps from their records (`ΔW ‖ H` the increments, `H`,
/// the space–time Lévy area, only for solvers that use it).
struct SdeReverse<'a, F, G, D, S> {
    problem: &'a Problem<F, G, D>,
    solver: &'a S,
    n: usize,
    m: usize,
    levy: bool,
    work: SdeVjpWork,
    y_bar: Vec<f64>,
    dp: Vec<f64>,
    gy: &'a [f64],
    /// Whether every step's end state is saved (`SaveAt::Steps`) or only
    /// the last (`SaveAt::T1`).
    save_steps: bool,
}

impl<F: DriftVjp, G: DiffusionVjp, D: Driver, S: SdeStepVjp> ReverseStep
    for SdeReverse<'_, F, G, D, S>
{
    fn reverse(&mut self, k: usize, rec: &[f64]) {
        let n = self.n;
        let Record { t, h, y, noise } = Record::read(rec, n);
        let m = self.m;
        let noise = StepNoise {
            dw: &noise[..m],
            levy_h: if self.levy { &noise[m..2 * m] } else { &[] },
        };
        self.solver.sde_step_vjp(
            &mut self.work,
            &Fields::new(self.problem),
            StepAt { t, h, y },
            &noise,
            &mut self.y_bar,
            &mut self.dp,
        );
        if self.save_steps {
            for j in 0..n {
                self.y_bar[j] += self.gy[k * n + j];
            }
        }
    }
}

/// `(L, dL/dp, dL/dy0)` by the discrete adjoint of an SDE solve with
/// `solver` (Euler–Maruyama, Euler–Heun, Milstein, SRIW1, SOSRI, SRA1,
/// SRA3) with recursive checkpointing: at most `budget` records (at least
/// 2; `usize::MAX` stores every step and recomputes nothing) are held per
/// level of recomputation, so memory grows like `budget · log(steps)`; the
/// price is recomputing steps on the forward solve's path. The gradient is
/// the same. The loss may use `SaveAt::T1` or `SaveAt::Steps`.
pub(crate) fn sde_discrete_adjoint<F, G, D, S, L>(
    problem: &Problem<F, G, D>,
    solver: S,
    options: &Options,
    loss: &L,
    budget: usize,
) -> Result<Gradient, GradError>
where
    F: DriftVjp,
    G: DiffusionVjp,
    D: Driver,
    S: Solver + SdeStepVjp,
    L: Loss + ?Sized,
{
    let opts = options;
    if !matches!(opts.save_at, SaveAt::T1 | SaveAt::Steps) {
        return Err(GradError::Unsupported(
            "SDE gradients take losses on SaveAt::T1 or SaveAt::Steps".into(),
        ));
    }
    let noise = problem
        .noise
        .ok_or_else(|| GradError::Unsupported("the SDE discrete adjoint needs an SDE".into()))?;
    let n = problem.dim();
    let m = noise.brownian_dim(n);
    let levy = solver.needs_levy_area();
    if budget != usize::MAX && !problem.driver.requery() {
        return Err(GradError::Unsupported(format!(
            "the discrete adjoint with {budget} checkpoints recomputes steps between them on \
             the forward path, which the {} driver cannot re-query; store every step \
             (Adjoint::Discrete {{ checkpoints: usize::MAX }}) or drive the problem with \
             VirtualTree or CachedInterval",
            problem.driver.name()
        )));
    }
    // the forward solve first: it validates the problem (dimensions, noise
    // type for this solver) before the step VJP is probed
    let noise_len = if levy { 2 * m } else { m };
    let run = Run::new(problem, &solver, opts, None, true)?;
    let fwd = forward(run, budget, noise_len, levy)?;
    solver
        .check_step_vjp(
            &problem.diffusion,
            problem.tspan.0,
            &problem.y0,
            &problem.params,
        )
        .map_err(GradError::Unsupported)?;
    let (value, gy) = crate::loss::evaluate(loss, &fwd.solution)?;
    let steps = fwd.steps;
    // steps between checkpoints are replayed on the forward solve's path
    let mut path = if budget == usize::MAX {
        None
    } else {
        Some(fwd.solution.brownian_path()?)
    };
    let mut replay = match path.as_deref_mut() {
        Some(p) => {
            let p: &mut dyn BrownianPath = p;
            Some(Run::new(problem, &solver, opts, Some(p), false)?)
        }
        None => None,
    };
    let save_steps = matches!(opts.save_at, SaveAt::Steps);
    let mut y_bar = vec![0.0; n];
    let last = if save_steps { steps } else { 0 };
    y_bar.copy_from_slice(&gy[last * n..(last + 1) * n]);
    let mut rev = SdeReverse {
        problem,
        solver: &solver,
        n,
        m,
        levy,
        work: solver.vjp_workspace(n, noise, problem.interpretation),
        y_bar,
        dp: vec![0.0; problem.params.len()],
        gy: &gy,
        save_steps,
    };
    let peak = reverse_all(&fwd, replay.as_mut(), budget, &mut rev)?;
    let backward_drift_evals = replay.as_ref().map_or(0, |r| r.stats().drift_evals);
    Ok(Gradient {
        loss: value,
        dp: rev.dp,
        dy0: rev.y_bar,
        backward_drift_evals,
        solution: fwd.solution,
        vjps: 0,
        peak_stored_states: peak,
    })
}
