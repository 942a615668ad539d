//! Gradients through reversible Heun solves of Stratonovich SDEs (Kidger,
//! Foster, Li, Lyons, "Efficient and accurate gradients for neural SDEs",
//! NeurIPS 2021): [`Adjoint::Reversible`] reconstructs every earlier state
//! with the solver's algebraic reverse step while it backpropagates through
//! the forward step — the exact gradient of the computed solution with
//! memory independent of the number of steps (only the accepted step times,
//! one number per step, are kept). Both reverse each step with the one
//! step-VJP protocol ([`StepVjp`], with reversible Heun's carried state
//! `(ŷ, f(ŷ), g(ŷ))` and its cotangent): [`Adjoint::Discrete`] is the
//! one discrete adjoint ([`crate::discrete_gradient`]), replaying steps
//! from checkpoints that hold the carried state (memory bounded by its
//! `checkpoints`; with every step stored, faster: no reverse steps, no path
//! queries). The Brownian motion is the problem's driver's, as `solve` sees
//! it; the reversible adjoint walks the path the forward solve kept
//! backwards.

use sdeflow_solvers::brownian::Driver;
use sdeflow_solvers::integrate::{StepObserver, integrate_observed};
use sdeflow_solvers::sde::ReversibleHeun;
use sdeflow_solvers::solver::{Fields, StepAt, StepNoise};
use sdeflow_solvers::step_vjp::{StepBars, StepVjp, VjpArgs};
use sdeflow_solvers::{
    field::DiffusionVjp, field::DriftVjp, problem::Problem, solution::Stats, solver::Solver,
};

use crate::differentiable::Request;
use crate::loss::Loss;
use crate::{Adjoint, GradError, Gradient};

/// Records the accepted step times and the last carried state.
struct Tape {
    ts: Vec<f64>,
    carried: Vec<f64>,
}

impl StepObserver for Tape {
    fn accepted(&mut self, m: usize, t: f64, t_next: f64, _y: &[f64], _y_next: &[f64]) {
        if m == 0 {
            self.ts.push(t);
        }
        self.ts.push(t_next);
    }

    fn accepted_carried(&mut self, carried: &[f64]) {
        self.carried.clear();
        self.carried.extend_from_slice(carried);
    }
}

impl<F: DriftVjp, G: DiffusionVjp, D: Driver, L: Loss + ?Sized> Request<'_, F, G, D, L> {
    /// `(L, dL/dp, dL/dy0)` of a loss on a reversible Heun solve of a
    /// Stratonovich SDE with [`Adjoint::Reversible`] (exact, memory independent
    /// of the number of steps), [`Adjoint::Discrete`] (exact, stored states) or
    /// [`Adjoint::Stochastic`] (Li et al. 2020; converges as the steps shrink;
    /// loss on `SaveAt::T1`). The loss may use `SaveAt::T1`, `SaveAt::Steps`
    /// or `SaveAt::Times` whose times are step ends (`Options::step_to`);
    /// the Brownian path is the one `solve` sees: the problem's driver with
    /// `options.seed` (the reversible and stochastic adjoints re-query it
    /// backwards, so they refuse drivers that cannot, such as `Increments`).
    ///
    /// The reversible adjoint walks back from the final state and carried
    /// state with [`ReversibleHeun::reverse_step`] while it reverses the
    /// cotangents with [`StepVjp::step_vjp`].
    pub(crate) fn reversible_heun(
        &self,
        solver: &ReversibleHeun,
        adjoint: Adjoint,
    ) -> Result<Gradient, GradError> {
        let (problem, opts, loss) = (self.problem, self.options, self.loss);
        if crate::discrete::saves_inside_steps(opts, problem.tspan) {
            return Err(GradError::Unsupported(
                "SDE gradients take losses on values at step ends: SaveAt::T1, SaveAt::Steps, \
                 or SaveAt::Times with its times inside the span in Options::step_to"
                    .into(),
            ));
        }
        match adjoint {
            Adjoint::Stochastic => {
                return self.stochastic();
            }
            Adjoint::Discrete { .. } => {
                return crate::discrete_gradient(problem, solver, opts, loss, adjoint);
            }
            Adjoint::Reversible if !problem.driver.requery() => {
                return Err(GradError::Unsupported(format!(
                    "Adjoint::Reversible walks the Brownian path backwards, which the {} driver \
                     cannot re-query; drive the problem with VirtualTree (the default) or \
                     CachedInterval, or use Adjoint::Discrete",
                    problem.driver.name()
                )));
            }
            Adjoint::Reversible => {}
            other => {
                return Err(GradError::Unsupported(format!(
                    "{other:?} with ReversibleHeun: use Adjoint::Reversible, Adjoint::Discrete or \
                     Adjoint::Stochastic"
                )));
            }
        }
        let noise = problem
            .noise
            .ok_or_else(|| GradError::Unsupported("ReversibleHeun needs an SDE".into()))?;
        let n = problem.dim();
        let m = noise.brownian_dim(n);
        let mut tape = Tape {
            ts: Vec::new(),
            carried: Vec::new(),
        };
        let sol = integrate_observed(problem, solver, opts, &mut tape)?;
        let (value, gy) = crate::loss::evaluate(loss, &sol)?;
        let ts = &tape.ts;
        let steps = ts.len() - 1;
        let fields = Fields::new(problem);
        let (mut stats, mut vjp_stats) = (Stats::default(), Stats::default());
        // walk back from the final state and carried state
        let mut cache = solver.init(problem);
        solver.set_carried(&mut cache, &tape.carried);
        let mut path = sol.brownian_path()?;
        let (mut y, mut y_prev, mut dw) = (sol.last().to_vec(), vec![0.0; n], vec![0.0; m]);
        // the saved values' cotangents join at the step ends they were
        // saved at (every saved time is one: checked above), latest first
        let mut unlocated = sol.ts.len();
        let mut take_saved = |k: usize, y_bar: &mut [f64]| {
            while unlocated > 0 && sol.ts[unlocated - 1] == ts[k] {
                unlocated -= 1;
                for j in 0..n {
                    y_bar[j] += gy[unlocated * n + j];
                }
            }
        };
        let mut y_bar = vec![0.0; n];
        let mut c_bar = vec![0.0; tape.carried.len()];
        let mut dp = vec![0.0; problem.params.len()];
        take_saved(steps, &mut y_bar);
        let mut work = StepVjp::<Problem<F, G, D>>::vjp_workspace(solver, problem);
        let mut vjps = 0;
        for k in (0..steps).rev() {
            let (t, h) = (ts[k], ts[k + 1] - ts[k]);
            path.increment(t, ts[k + 1], &mut dw);
            let end = StepAt { t, h, y: &y };
            solver.reverse_step(&mut cache, &fields, end, &dw, &mut y_prev, &mut stats);
            std::mem::swap(&mut y, &mut y_prev);
            let bars = StepBars::states(&mut y_bar, &mut c_bar, &mut dp);
            let (at, noise) = (
                StepAt { t, h, y: &y },
                StepNoise {
                    dw: &dw,
                    levy_h: &[],
                    modes: &[],
                },
            );
            let c = Solver::<Problem<F, G, D>>::carried_state(solver, &cache);
            let args = VjpArgs {
                fields: &fields,
                at,
                carried: c,
                noise: &noise,
                bars,
                stats: &mut vjp_stats,
            };
            vjps += StepVjp::<Problem<F, G, D>>::step_vjp(solver, &mut work, args)?;
            take_saved(k, &mut y_bar);
        }
        if unlocated > 0 {
            return Err(GradError::Unsupported(format!(
                "the value saved at t = {} is not at a step end of the solve",
                sol.ts[unlocated - 1]
            )));
        }
        let bars = StepBars::states(&mut y_bar, &mut c_bar, &mut dp);
        let (t0, y0) = (problem.tspan.0, &problem.y0);
        let args = VjpArgs::start(&fields, (t0, y0), bars, &mut vjp_stats);
        vjps += StepVjp::<Problem<F, G, D>>::start_vjp(solver, &mut work, args)?;
        Ok(Gradient {
            loss: value,
            dp,
            dy0: y_bar,
            solution: sol,
            vjps,
            backward_drift_evals: stats.drift_evals,
            peak_stored_states: 2,
        })
    }
}
