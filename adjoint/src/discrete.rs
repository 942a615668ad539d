//! The discrete adjoint of ODE solves (explicit Runge–Kutta, native ESDIRK:
//! any [`OdeStepVjp`](sdeflow_solvers::step_vjp::OdeStepVjp) solver): the forward solve
//! records its accepted step times and at most `checkpoints` states; the
//! backward sweep reverses the steps one by one with
//! [`OdeStepVjp::step_vjp`](sdeflow_solvers::step_vjp::OdeStepVjp::step_vjp),
//! recomputing the states it needs from the checkpoints — recursively, with
//! the same budget per level (Griewank 1992; diffrax's
//! `RecursiveCheckpointAdjoint`), so stored states stay within
//! `budget · (levels + 1)` while the number of steps grows. Saved values
//! inside a step (interpolated) send their cotangents through the method's
//! interpolant.

use sdeflow_solvers::brownian::Driver;
use sdeflow_solvers::integrate::integrate_observed;
use sdeflow_solvers::solver::{Fields, StepNoise};
use sdeflow_solvers::step_vjp::{InterpCotangent, OdeStepVjp, StepAt, StepBars};
use sdeflow_solvers::{DriftVjp, NoDiffusion, Options, Problem, Solver, Stats};

use crate::checkpoint::{Checkpointing, Recorder, Replay};
use crate::loss::Loss;
use crate::{GradError, Gradient};

/// A saved value's cotangent, located in the step sequence.
struct Located {
    /// Step index `m` (the step from `t_m` to `t_{m+1}`); `None` for `t0`.
    step: Option<usize>,
    /// Position in the step (1 for the step end).
    theta: f64,
    /// Index of the saved value.
    save: usize,
}

/// Re-runs accepted steps from a stored state with the recorded step sizes.
struct Advancer<'a, F, D, S: Solver> {
    problem: &'a Problem<F, NoDiffusion, D>,
    solver: &'a S,
    cache: S::Cache,
    ts: &'a [f64],
    f0: Vec<f64>,
    y: Vec<f64>,
    y_new: Vec<f64>,
    err: Vec<f64>,
    stats: Stats,
    /// A recomputed step that could not be taken (an implicit method whose
    /// stages did not converge on replay).
    failed: Option<sdeflow_solvers::SolveError>,
}

impl<F: DriftVjp, D: Driver, S: Solver> Advancer<'_, F, D, S> {
    /// Steps `from..to` starting from `y_from` (the state at `ts[from]`),
    /// handing the state after each step (index `m + 1`) to `keep`.
    fn run(&mut self, from: usize, to: usize, y_from: &[f64], keep: &mut dyn FnMut(usize, &[f64])) {
        if from >= to {
            return;
        }
        let fields = Fields::new(self.problem);
        self.y.copy_from_slice(y_from);
        fields.f(self.ts[from], &self.y, &mut self.f0, &mut self.stats);
        self.solver.start(&mut self.cache, &self.f0, &[]);
        for m in from..to {
            let (t, h) = (self.ts[m], self.ts[m + 1] - self.ts[m]);
            self.solver.step(
                &mut self.cache,
                &fields,
                t,
                h,
                &self.y,
                &StepNoise::NONE,
                &mut self.y_new,
                &mut self.err,
                &mut self.stats,
            );
            if S::CAN_FAIL
                && self.err.first() == Some(&sdeflow_solvers::solver::STEP_FAILED)
                && self.failed.is_none()
            {
                self.failed = Some(sdeflow_solvers::SolveError::NonlinearSolve {
                    solver: self.solver.name(),
                    t,
                    h,
                    reason: "recomputing the step from a checkpoint, the stage equations did \
                             not converge; use a larger checkpoint budget"
                        .into(),
                });
            }
            self.solver.accept(&mut self.cache);
            std::mem::swap(&mut self.y, &mut self.y_new);
            keep(m + 1, &self.y);
        }
    }
}

/// Everything the backward sweep carries.
struct Backward<'a, F, D, S: OdeStepVjp> {
    adv: Advancer<'a, F, D, S>,
    vjp_cache: S::VjpCache,
    /// The first step that could not be reversed (the rest are skipped).
    error: Option<sdeflow_solvers::SolveError>,
    lambda: Vec<f64>,
    dp: Vec<f64>,
    vjps: usize,
    /// Cotangents by step: (step, theta, save index), sorted by step descending.
    located: Vec<Located>,
    next: usize,
    gy: &'a [f64],
}

impl<F: DriftVjp, D: Driver, S: OdeStepVjp> Backward<'_, F, D, S> {
    /// Reverses one step `m` from the state `y_m`.
    fn reverse_step(&mut self, m: usize, y_m: &[f64]) {
        let n = y_m.len();
        let mut interp: Vec<InterpCotangent<'_>> = Vec::new();
        while self.next < self.located.len() && self.located[self.next].step == Some(m) {
            let l = &self.located[self.next];
            let bar = &self.gy[l.save * n..(l.save + 1) * n];
            if l.theta >= 1.0 {
                for k in 0..n {
                    self.lambda[k] += bar[k];
                }
            } else {
                interp.push(InterpCotangent {
                    theta: l.theta,
                    bar,
                });
            }
            self.next += 1;
        }
        let (t, h) = (self.adv.ts[m], self.adv.ts[m + 1] - self.adv.ts[m]);
        if self.error.is_some() {
            return;
        }
        match self.adv.solver.step_vjp(
            &mut self.vjp_cache,
            &self.adv.problem.drift,
            &self.adv.problem.params,
            StepAt { t, h, y: y_m },
            StepBars {
                y: &mut self.lambda,
                err: None,
                interp: &interp,
                p: &mut self.dp,
            },
            &mut self.adv.stats,
        ) {
            Ok(v) => self.vjps += v,
            Err(e) => self.error = Some(e),
        }
    }
}

impl<F: DriftVjp, D: Driver, S: OdeStepVjp> Replay for Backward<'_, F, D, S> {
    fn record_len(&self) -> usize {
        self.lambda.len()
    }

    fn run(&mut self, from: usize, to: usize, rec: &[f64], keep: &mut dyn FnMut(usize, &[f64])) {
        self.adv.run(from, to, rec, keep)
    }

    fn reverse(&mut self, m: usize, rec: &[f64]) {
        self.reverse_step(m, rec)
    }
}

/// The discrete adjoint (see [`crate::grad`]), with at most `checkpoints`
/// states stored at the top level and per level of recomputation.
pub fn discrete_adjoint<F, D, S, L>(
    problem: &Problem<F, NoDiffusion, D>,
    solver: &S,
    options: &Options,
    loss: &L,
    checkpoints: usize,
) -> Result<Gradient, GradError>
where
    F: DriftVjp,
    D: Driver,
    S: OdeStepVjp,
    L: Loss + ?Sized,
{
    let n = problem.dim();
    let budget = checkpoints.max(2);
    // forward: the solve the user asked for, recording step times and checkpoints
    let mut rec = Recorder::new(budget, n, 0, false);
    let sol = integrate_observed(problem, solver, options, &mut rec)?;
    let (value, gy) = crate::loss::evaluate(loss, &sol)?;
    // locate every saved value in the step sequence
    let t0 = problem.tspan.0;
    let step_ts = &rec.ts;
    let m_steps = step_ts.len() - 1;
    let dir = (problem.tspan.1 - t0).signum();
    let mut located: Vec<Located> = sol
        .ts
        .iter()
        .enumerate()
        .map(|(save, &t)| {
            if t == t0 {
                return Located {
                    step: None,
                    theta: 0.0,
                    save,
                };
            }
            let m = step_ts[1..]
                .partition_point(|&e| (e - t) * dir < 0.0)
                .min(m_steps - 1);
            let h = step_ts[m + 1] - step_ts[m];
            let theta = if t == step_ts[m + 1] {
                1.0
            } else {
                (t - step_ts[m]) / h
            };
            Located {
                step: Some(m),
                theta,
                save,
            }
        })
        .collect();
    located.sort_by_key(|l| std::cmp::Reverse(l.step.map_or(0, |m| m + 1)));

    let mut bw = Backward {
        adv: Advancer {
            problem,
            solver,
            cache: solver.init(problem),
            ts: step_ts,
            f0: vec![0.0; n],
            y: vec![0.0; n],
            y_new: vec![0.0; n],
            err: vec![0.0; n],
            stats: Stats::default(),
            failed: None,
        },
        vjp_cache: solver.vjp_cache(&problem.drift, n, problem.params.len()),
        error: None,
        lambda: vec![0.0; n],
        dp: vec![0.0; problem.params.len()],
        vjps: 0,
        located,
        next: 0,
        gy: &gy,
    };
    let peak = Checkpointing::reverse_all(&mut bw, budget, &rec.index, &rec.flat, m_steps);
    let Backward {
        adv,
        mut lambda,
        dp,
        vjps,
        located,
        next,
        error,
        ..
    } = bw;
    if let Some(e) = error.or(adv.failed) {
        return Err(GradError::Solve(e));
    }
    for l in &located[next..] {
        for k in 0..n {
            lambda[k] += gy[l.save * n + k];
        }
    }
    Ok(Gradient {
        loss: value,
        dp,
        dy0: lambda,
        solution: sol,
        vjps,
        backward_drift_evals: adv.stats.drift_evals,
        peak_stored_states: peak,
    })
}
