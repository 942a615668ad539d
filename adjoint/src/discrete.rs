//! The discrete adjoint of explicit Runge–Kutta solves: a forward solve that
//! keeps its accepted steps, then the steps reversed one by one with
//! [`ExplicitRk::step_vjp`](sdeflow_solvers::erk::ExplicitRk::step_vjp).
//! Saved values inside a step (interpolated) send their cotangents through
//! the method's interpolant.

use sdeflow_solvers::erk::{InterpCotangent, RungeKutta};
use sdeflow_solvers::{
    DriftVjp, NoDiffusion, Options, Problem, SaveAt, Solution, Solver, Stats, solve,
};

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

/// The discrete adjoint (see [`crate::grad`]).
pub fn discrete_adjoint<F, S, L>(
    problem: &Problem<F, NoDiffusion>,
    solver: &S,
    options: &Options,
    loss: &L,
) -> Result<Gradient, GradError>
where
    F: DriftVjp,
    S: Solver + RungeKutta,
    L: Loss + ?Sized,
{
    let n = problem.dim();
    // forward: every accepted step with the interpolation data
    let dense_opts = options.clone().save_at(SaveAt::Dense);
    let steps: Solution = solve(problem, RkSolver(solver), &dense_opts)?;
    let dense = steps
        .dense
        .as_ref()
        .ok_or_else(|| GradError::Loss("internal: no dense output".into()))?;
    // what the user asked to save
    let (ts, ys): (Vec<f64>, Vec<f64>) = match &options.save_at {
        SaveAt::Steps | SaveAt::Dense => (steps.ts.clone(), steps.ys.clone()),
        SaveAt::T1 => (vec![steps.ts[steps.len() - 1]], steps.last().to_vec()),
        SaveAt::Times(times) => {
            let mut ys = vec![0.0; times.len() * n];
            for (i, &t) in times.iter().enumerate() {
                dense.eval(t, &mut ys[i * n..(i + 1) * n])?;
            }
            (times.clone(), ys)
        }
    };
    let mut gy = vec![0.0; ys.len()];
    let value = loss.eval(&ts, &ys, &mut gy);
    if !value.is_finite() || gy.iter().any(|g| !g.is_finite()) {
        return Err(GradError::Loss(format!(
            "the loss or its gradient is not finite (L = {value})"
        )));
    }
    // locate every saved value in the step sequence
    let t0 = problem.tspan.0;
    let step_ts = &steps.ts;
    let m_steps = step_ts.len() - 1;
    let dir = (problem.tspan.1 - t0).signum();
    let mut located: Vec<Located> = ts
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
            // first step whose end is at or beyond t
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

    let rk = solver.rk();
    let mut cache = rk.vjp_cache(n);
    let mut lambda = vec![0.0; n];
    let mut dp = vec![0.0; problem.params.len()];
    let mut stats = Stats::default();
    let mut vjps = 0;
    let mut next = 0;
    let mut interp: Vec<InterpCotangent<'_>> = Vec::new();
    for m in (0..m_steps).rev() {
        interp.clear();
        while next < located.len() && located[next].step == Some(m) {
            let l = &located[next];
            let bar = &gy[l.save * n..(l.save + 1) * n];
            if l.theta >= 1.0 {
                for k in 0..n {
                    lambda[k] += bar[k];
                }
            } else {
                interp.push(InterpCotangent {
                    theta: l.theta,
                    bar,
                });
            }
            next += 1;
        }
        let (t, h) = (step_ts[m], step_ts[m + 1] - step_ts[m]);
        vjps += rk.step_vjp(
            &mut cache,
            &problem.drift,
            &problem.params,
            t,
            h,
            steps.y(m),
            &mut lambda,
            &interp,
            &mut dp,
            &mut stats,
        );
    }
    for l in &located[next..] {
        let bar = &gy[l.save * n..(l.save + 1) * n];
        for k in 0..n {
            lambda[k] += bar[k];
        }
    }
    let solution = Solution {
        ts,
        ys,
        n,
        stats: steps.stats,
        status: steps.status,
        solver: steps.solver.clone(),
        dense: match options.save_at {
            SaveAt::Dense => steps.dense.clone(),
            _ => None,
        },
    };
    Ok(Gradient {
        loss: value,
        dp,
        dy0: lambda,
        solution,
        vjps,
        backward_drift_evals: stats.drift_evals,
    })
}

/// The forward solver, as the loop sees it.
struct RkSolver<'a, S>(&'a S);

impl<S: Solver> sdeflow_solvers::Method for RkSolver<'_, S> {
    fn solve_problem<F: sdeflow_solvers::Drift, G: sdeflow_solvers::Diffusion>(
        &self,
        problem: &Problem<F, G>,
        options: &Options,
    ) -> Result<Solution, sdeflow_solvers::SolveError> {
        sdeflow_solvers::integrate::integrate(problem, self.0, options)
    }
}
