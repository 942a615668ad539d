//! The discrete adjoint of ODE solves (explicit Runge–Kutta, native ESDIRK:
//! any [`OdeStepVjp`] solver): the forward solve keeps at most
//! `checkpoints` snapshots; the backward sweep reverses the steps one by one
//! with [`OdeStepVjp::step_vjp`], regenerating the steps it needs from the
//! snapshots — recursively, with the same budget per level (Griewank 1992;
//! diffrax's `RecursiveCheckpointAdjoint`; see [`crate::checkpoint`]), so
//! memory stays within `budget · (levels + 1)` snapshots while the number
//! of steps grows, step times included. Saved values inside a step
//! (interpolated) send their cotangents through the method's interpolant.

use sdeflow_solvers::brownian::Driver;
use sdeflow_solvers::integrate::Run;
use sdeflow_solvers::solver::{OdeProblem, Solver, StepAt};
use sdeflow_solvers::step_vjp::{InterpCotangent, OdeStepVjp, StepBars};
use sdeflow_solvers::{DriftVjp, NoDiffusion, Options, Problem, SolveError, Stats};

use crate::checkpoint::{Record, ReverseStep, forward, reverse_all};
use crate::loss::Loss;
use crate::{GradError, Gradient};

/// Everything the backward sweep carries.
struct Backward<'a, F, D, S: OdeStepVjp> {
    problem: &'a Problem<F, NoDiffusion, D>,
    solver: &'a S,
    vjp_cache: S::VjpCache,
    stats: Stats,
    /// The first step that could not be reversed (the rest are skipped).
    error: Option<SolveError>,
    lambda: Vec<f64>,
    dp: Vec<f64>,
    vjps: usize,
    /// The saved times and their cotangents.
    save_ts: &'a [f64],
    gy: &'a [f64],
    /// Saved values not yet located in a step: `save_ts[..unlocated]`.
    unlocated: usize,
    dir: f64,
}

impl<F: DriftVjp, D: Driver, S: OdeStepVjp> ReverseStep for Backward<'_, F, D, S> {
    /// Reverses step `m` from its record, first taking in the cotangents of
    /// the values saved inside it or at its end.
    fn reverse(&mut self, _m: usize, rec: &[f64]) {
        let n = self.lambda.len();
        let Record { t, h, y, .. } = Record::read(rec, n);
        let t_next = rec[1];
        let mut interp: Vec<InterpCotangent<'_>> = Vec::new();
        while self.unlocated > 0 && (self.save_ts[self.unlocated - 1] - t) * self.dir > 0.0 {
            let j = self.unlocated - 1;
            let bar = &self.gy[j * n..(j + 1) * n];
            if self.save_ts[j] == t_next {
                for k in 0..n {
                    self.lambda[k] += bar[k];
                }
            } else {
                interp.push(InterpCotangent {
                    theta: (self.save_ts[j] - t) / h,
                    bar,
                });
            }
            self.unlocated -= 1;
        }
        if self.error.is_some() {
            return;
        }
        match self.solver.step_vjp(
            &mut self.vjp_cache,
            &self.problem.drift,
            &self.problem.params,
            StepAt { t, h, y },
            StepBars {
                y: &mut self.lambda,
                err: None,
                interp: &interp,
                p: &mut self.dp,
            },
            &mut self.stats,
        ) {
            Ok(v) => self.vjps += v,
            Err(e) => self.error = Some(e),
        }
    }
}

/// The discrete adjoint (see [`crate::grad`]), with at most `checkpoints`
/// snapshots stored at the top level and per level of recomputation
/// (`usize::MAX`: every step stored, nothing recomputed).
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
    S: OdeStepVjp + Solver<OdeProblem<F, D>>,
    L: Loss + ?Sized,
{
    let n = problem.dim();
    let budget = checkpoints.max(2);
    // forward: the solve the user asked for, keeping snapshots
    let run = Run::new(problem, solver, options, None, true)?;
    let fwd = forward(run, budget, 0, false)?;
    let sol = &fwd.solution;
    let (value, gy) = crate::loss::evaluate(loss, sol)?;
    let mut replay = if budget == usize::MAX {
        None
    } else {
        Some(Run::new(problem, solver, options, None, false)?)
    };
    let mut bw = Backward {
        problem,
        solver,
        vjp_cache: solver.vjp_cache(&problem.drift, n, problem.params.len()),
        stats: Stats::default(),
        error: None,
        lambda: vec![0.0; n],
        dp: vec![0.0; problem.params.len()],
        vjps: 0,
        save_ts: &sol.ts,
        gy: &gy,
        unlocated: sol.ts.len(),
        dir: (problem.tspan.1 - problem.tspan.0).signum(),
    };
    let peak = reverse_all(&fwd, replay.as_mut(), budget, &mut bw)?;
    if let Some(e) = bw.error {
        return Err(GradError::Solve(e));
    }
    // values saved at t0
    let mut lambda = bw.lambda;
    for j in 0..bw.unlocated {
        for k in 0..n {
            lambda[k] += gy[j * n + k];
        }
    }
    let backward_drift_evals =
        bw.stats.drift_evals + replay.as_ref().map_or(0, |r| r.stats().drift_evals);
    let (dp, vjps) = (bw.dp, bw.vjps);
    Ok(Gradient {
        loss: value,
        dp,
        dy0: lambda,
        solution: fwd.solution,
        vjps,
        backward_drift_evals,
        peak_stored_states: peak,
    })
}
