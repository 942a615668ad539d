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

use sdeflow_solvers::brownian::{Driver, DynPath};
use sdeflow_solvers::integrate::integrate_observed;
use sdeflow_solvers::sde::{SdeStepVjp, SdeVjpWork};
use sdeflow_solvers::solver::{Fields, StepNoise};
use sdeflow_solvers::{DiffusionVjp, DriftVjp, Options, Problem, SaveAt, Solver, Stats};

use crate::checkpoint::{Checkpointing, Recorder, Replay};
use crate::loss::Loss;
use crate::{GradError, Gradient};

/// Recomputes and reverses SDE steps; a record is `y ‖ ΔW ‖ H` (`H`, the
/// space–time Lévy area, only for solvers that use it).
struct SdeReplay<'a, F, G, D, S: Solver> {
    problem: &'a Problem<F, G, D>,
    solver: &'a S,
    cache: S::Cache,
    ts: &'a [f64],
    /// The forward solve's path, re-queried for the steps between
    /// checkpoints (`None` when every step is stored: nothing is recomputed).
    path: Option<Box<dyn DynPath>>,
    n: usize,
    m: usize,
    levy: bool,
    f0: Vec<f64>,
    g0: Vec<f64>,
    y_new: Vec<f64>,
    err: Vec<f64>,
    rec: Vec<f64>,
    stats: Stats,
    work: SdeVjpWork,
    y_bar: Vec<f64>,
    dp: Vec<f64>,
    gy: &'a [f64],
    /// Whether every step's end state is saved (`SaveAt::Steps`) or only
    /// the last (`SaveAt::T1`).
    save_steps: bool,
}

/// The increments stored in the noise part of a record (`ΔW ‖ H`).
fn record_noise(noise: &[f64], m: usize, levy: bool) -> StepNoise<'_> {
    StepNoise {
        dw: &noise[..m],
        levy_h: if levy { &noise[m..2 * m] } else { &[] },
    }
}

impl<F: DriftVjp, G: DiffusionVjp, D: Driver, S: Solver + SdeStepVjp> Replay
    for SdeReplay<'_, F, G, D, S>
{
    fn record_len(&self) -> usize {
        self.rec.len()
    }

    fn run(&mut self, from: usize, to: usize, rec: &[f64], keep: &mut dyn FnMut(usize, &[f64])) {
        if from >= to {
            return;
        }
        let (n, m) = (self.n, self.m);
        let steps = self.ts.len() - 1;
        let fields = Fields::new(self.problem);
        self.rec.copy_from_slice(rec);
        fields.f(self.ts[from], &rec[..n], &mut self.f0, &mut self.stats);
        fields.g(self.ts[from], &rec[..n], &mut self.g0, &mut self.stats);
        self.solver.start(&mut self.cache, &self.f0, &self.g0);
        for k in from..to {
            let (t, h) = (self.ts[k], self.ts[k + 1] - self.ts[k]);
            {
                let (y, noise) = self.rec.split_at(n);
                let noise = record_noise(noise, m, self.levy);
                self.solver.step(
                    &mut self.cache,
                    &fields,
                    t,
                    h,
                    y,
                    &noise,
                    &mut self.y_new,
                    &mut self.err,
                    &mut self.stats,
                );
            }
            self.solver.accept(&mut self.cache);
            let (y, noise) = self.rec.split_at_mut(n);
            y.copy_from_slice(&self.y_new);
            if k + 1 < steps
                && let Some(path) = self.path.as_mut()
            {
                let (dw, lh) = noise.split_at_mut(m);
                let (t1, t2) = (self.ts[k + 1], self.ts[k + 2]);
                if self.levy {
                    path.increment_with_levy_area(t1, t2, dw, lh);
                } else {
                    path.increment(t1, t2, dw);
                }
            }
            keep(k + 1, &self.rec);
        }
    }

    fn reverse(&mut self, k: usize, rec: &[f64]) {
        let n = self.n;
        let (t, h) = (self.ts[k], self.ts[k + 1] - self.ts[k]);
        let noise = record_noise(&rec[n..], self.m, self.levy);
        self.solver.sde_step_vjp(
            &mut self.work,
            &self.problem.drift,
            &self.problem.diffusion,
            &self.problem.params,
            t,
            h,
            &noise,
            &rec[..n],
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
    let mut recorder = Recorder::new(budget, n, if levy { 2 * m } else { m }, levy);
    // the forward solve first: it validates the problem (dimensions, noise
    // type for this solver) before the step VJP is probed
    let sol = integrate_observed(problem, &solver, opts, &mut recorder)?;
    solver
        .check_step_vjp(
            &problem.diffusion,
            problem.tspan.0,
            &problem.y0,
            &problem.params,
        )
        .map_err(GradError::Unsupported)?;
    let (value, gy) = crate::loss::evaluate(loss, &sol)?;
    let steps = recorder.ts.len() - 1;
    // steps between checkpoints are recomputed on the forward solve's path
    let path = if recorder.index.len() < steps {
        Some(sol.brownian_path()?)
    } else {
        None
    };
    let save_steps = matches!(opts.save_at, SaveAt::Steps);
    let mut y_bar = vec![0.0; n];
    let last = if save_steps { steps } else { 0 };
    y_bar.copy_from_slice(&gy[last * n..(last + 1) * n]);
    let mut replay = SdeReplay {
        problem,
        solver: &solver,
        cache: solver.init(problem),
        ts: &recorder.ts,
        path,
        n,
        m,
        levy,
        f0: vec![0.0; n],
        g0: vec![0.0; noise.diffusion_len(n)],
        y_new: vec![0.0; n],
        err: vec![0.0; n],
        rec: vec![0.0; n + if levy { 2 * m } else { m }],
        stats: Stats::default(),
        work: solver.vjp_workspace(n, noise, problem.interpretation),
        y_bar,
        dp: vec![0.0; problem.params.len()],
        gy: &gy,
        save_steps,
    };
    let peak =
        Checkpointing::reverse_all(&mut replay, budget, &recorder.index, &recorder.flat, steps);
    Ok(Gradient {
        loss: value,
        dp: replay.dp,
        dy0: replay.y_bar,
        backward_drift_evals: replay.stats.drift_evals,
        solution: sol,
        vjps: 0,
        peak_stored_states: peak,
    })
}
