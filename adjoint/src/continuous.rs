//! Continuous adjoints of ODEs (Chen, Rubanova, Bettencourt, Duvenaud,
//! "Neural ordinary differential equations", NeurIPS 2018, Alg. 1–2;
//! SciMLSensitivity's `BacksolveAdjoint` / `InterpolatingAdjoint`).
//!
//! Backward in time, between consecutive save times,
//! `da/dt = −a ∂f/∂y`, `da_p/dt = −a ∂f/∂p`, with `a(t1) = ∂L/∂y(t1)` and a
//! jump `+∂L/∂y(t_k)` at every save time; `dL/dy0 = a(t0)` and
//! `dL/dp = a_p(t0)` (the parameter integral accumulated as a quadrature
//! along the backward solve). The state `y(t)` the adjoint needs comes from
//! integrating `y` backwards alongside (`Backsolve`, memory independent of
//! the number of steps, unreliable when the forward flow contracts strongly)
//! or from the forward solve's dense output (`Interpolating`, stable, memory
//! O(steps)). Both give the gradient of the exact solution map up to the
//! tolerances of the two solves — they converge to the true gradient as the
//! tolerances tighten, unlike the discrete adjoint, which is exact for the
//! computed solution.

use std::cell::RefCell;

use sdeflow_solvers::brownian::Driver;
use sdeflow_solvers::integrate::{StepObserver, integrate_observed};
use sdeflow_solvers::{
    DriftVjp, Method, NoDiffusion, Options, Problem, SaveAt, Solution, SolveError, Solver, solve,
};

/// Keeps the state after the last accepted step.
struct LastState(Vec<f64>);

impl StepObserver for LastState {
    fn accepted(&mut self, _m: usize, _t: f64, _t_next: f64, _y: &[f64], y_next: &[f64]) {
        self.0.copy_from_slice(y_next);
    }
}

/// The values `save_at` asks for, read from a dense solution.
fn saved_view(dense: &Solution, save_at: &SaveAt) -> Result<Solution, SolveError> {
    let n = dense.n;
    let (ts, ys) = match save_at {
        SaveAt::Steps | SaveAt::Dense => (dense.ts.clone(), dense.ys.clone()),
        SaveAt::T1 => (vec![dense.ts[dense.len() - 1]], dense.last().to_vec()),
        SaveAt::Times(times) => {
            let mut ys = vec![0.0; times.len() * n];
            for (i, &t) in times.iter().enumerate() {
                dense.at_into(t, &mut ys[i * n..(i + 1) * n])?;
            }
            (times.clone(), ys)
        }
    };
    Ok(Solution {
        ts,
        ys,
        n,
        stats: dense.stats,
        status: dense.status,
        solver: dense.solver.clone(),
        dense: match save_at {
            SaveAt::Dense => dense.dense.clone(),
            _ => None,
        },
        brownian: None,
    })
}

use crate::loss::Loss;
use crate::{GradError, Gradient};

/// Where the backward pass gets `y(t)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateSource {
    /// Integrated backwards with the adjoint.
    Backsolve,
    /// The forward dense output.
    Interpolating,
}

/// The continuous adjoint with `source` (see [`crate::grad`]).
pub(crate) fn continuous_adjoint<F, D, S, L>(
    problem: &Problem<F, NoDiffusion, D>,
    solver: &S,
    options: &Options,
    loss: &L,
    source: StateSource,
) -> Result<Gradient, GradError>
where
    F: DriftVjp,
    D: Driver,
    S: Solver + Copy + Method,
    L: Loss + ?Sized,
{
    let n = problem.dim();
    let np = problem.params.len();
    let (t0, t1) = problem.tspan;
    // one forward solve: dense when the backward pass interpolates (the
    // user's saved values are read from it), else as asked, with the final
    // state recorded on the way
    let mut last = LastState(problem.y0.clone());
    let (sol, dense_sol) = match source {
        StateSource::Interpolating => {
            let dense = integrate_observed(
                problem,
                solver,
                &options.clone().save_at(SaveAt::Dense),
                &mut last,
            )?;
            (saved_view(&dense, &options.save_at)?, Some(dense))
        }
        StateSource::Backsolve => (
            integrate_observed(problem, solver, options, &mut last)?,
            None,
        ),
    };
    let (value, gy) = crate::loss::evaluate(loss, &sol)?;
    let y1 = last.0;
    // backward segments: between save times, from t1 down to t0
    let mut marks: Vec<f64> = sol.ts.clone();
    marks.push(t1);
    marks.push(t0);
    let dir = (t1 - t0).signum();
    marks.sort_by(|a, b| (b * dir).total_cmp(&(a * dir)));
    marks.dedup();
    // augmented state: [y (backsolve only), a, a_p]
    let off = if source == StateSource::Backsolve {
        n
    } else {
        0
    };
    let mut u = vec![0.0; off + n + np];
    u[..off].copy_from_slice(&y1[..off]);
    let scratch = RefCell::new((vec![0.0; n], vec![0.0; n], vec![0.0; np]));
    let field = &problem.drift;
    let params = &problem.params;
    let dense_ref = dense_sol.as_ref();
    let rhs = |t: f64, u: &[f64], _p: &[f64], du: &mut [f64]| {
        let mut s = scratch.borrow_mut();
        let (y, ay, ap) = &mut *s;
        let y_src: &[f64] = if off > 0 {
            &u[..n]
        } else {
            if let Some(d) = dense_ref {
                // t is inside the solved span; a failure leaves the last value
                let _ = d.at_into(t, y);
            }
            y
        };
        if off > 0 {
            field.drift(t, y_src, params, &mut du[..n]);
        }
        ay.iter_mut().for_each(|v| *v = 0.0);
        ap.iter_mut().for_each(|v| *v = 0.0);
        field.drift_vjp(t, y_src, params, &u[off..off + n], ay, ap);
        for k in 0..n {
            du[off + k] = -ay[k];
        }
        for j in 0..np {
            du[off + n + j] = -ap[j];
        }
    };
    let mut backward_evals = 0;
    let mut vjps = 0;
    let add_jump = |u: &mut [f64], t: f64| {
        for (i, &ts) in sol.ts.iter().enumerate() {
            if ts == t {
                for k in 0..n {
                    u[off + k] += gy[i * n + k];
                }
            }
        }
    };
    for w in marks.windows(2) {
        let (ta, tb) = (w[0], w[1]);
        add_jump(&mut u, ta);
        let back = Problem::ode(&rhs, u.clone(), (ta, tb));
        let opts = Options {
            save_at: SaveAt::T1,
            dt0: None,
            ..options.clone()
        };
        let opts = match &opts.rtol {
            sdeflow_solvers::Tolerance::Vector(_) => opts.rtol(options.rtol.get(0)),
            _ => opts,
        };
        let opts = match &opts.atol {
            sdeflow_solvers::Tolerance::Vector(_) => opts.atol(options.atol.get(0)),
            _ => opts,
        };
        let b = solve(&back, *solver, &opts)?;
        backward_evals += b.stats.drift_evals;
        vjps += b.stats.drift_evals;
        u.copy_from_slice(b.last());
    }
    add_jump(&mut u, t0);
    Ok(Gradient {
        loss: value,
        dp: u[off + n..].to_vec(),
        dy0: u[off..off + n].to_vec(),
        solution: sol,
        vjps,
        backward_drift_evals: backward_evals,
        peak_stored_states: match &dense_sol {
            Some(d) => d.len(),
            None => 1,
        },
    })
}
