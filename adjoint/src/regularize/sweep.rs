//! The per-step part of a global regularizer inside the discrete adjoint's
//! backward sweep: before a step is reversed, it is taken once more from
//! its record to read its result and error estimate; the penalty's
//! derivatives then enter the step VJP as its error cotangent and as
//! cotangents of the step's end (before the VJP) and start (after it).
//! A penalty of the stiffness stage pair ([`StepPenalty::reads_stage_pair`])
//! retakes nothing: the step VJP recomputes the stages and hands them to
//! the penalty ([`PenaltySweep::pair_parts`]).

use sdeflow_solvers::error::SolveError;
use sdeflow_solvers::options::Options;
use sdeflow_solvers::solution::Stats;
use sdeflow_solvers::solver::StepStatus;
use sdeflow_solvers::solver::{Family, FieldsOf, Solver, StepArgs, StepAt, StepNoise, StepOut};

use super::{Aggregate, PenaltyBars, PenaltyStep, StepPenalty};

/// The penalty's state during one backward sweep.
pub(crate) struct PenaltySweep<'a, Pb: Family, S: Solver<Pb>> {
    penalty: &'a dyn StepPenalty,
    /// `λ` or `λ / N`.
    scale: f64,
    opts: &'a Options,
    cache: S::Cache,
    f0: Vec<f64>,
    g0: Vec<f64>,
    y_new: Vec<f64>,
    err: Vec<f64>,
    /// The scaled `∂(λR)/∂err` of the step being reversed.
    pub err_bar: Vec<f64>,
    y_new_bar: Vec<f64>,
    /// `∂(λR)/∂y` of the step being reversed, added after its VJP.
    y_bar: Vec<f64>,
    /// `Σ_j P_j` so far.
    pub sum: f64,
    /// The method's stability size (for a penalty of the stage pair).
    rho: f64,
}

impl<'a, Pb: Family, S: Solver<Pb>> PenaltySweep<'a, Pb, S> {
    /// The sweep of `penalty` with weight `weight` aggregated by
    /// `aggregate` over `steps` accepted steps, with a fresh workspace
    /// `cache` of `solver`, for a state of dimension `n` and a diffusion of
    /// `g_len` entries; `rho` the method's stability size (read by a
    /// penalty of the stiffness stage pair).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        (penalty, weight, aggregate): (&'a dyn StepPenalty, f64, Aggregate),
        steps: usize,
        opts: &'a Options,
        cache: S::Cache,
        (n, g_len): (usize, usize),
        rho: f64,
    ) -> Self {
        let scale = match aggregate {
            Aggregate::Sum => weight,
            Aggregate::Mean => weight / steps.max(1) as f64,
        };
        PenaltySweep {
            penalty,
            scale,
            opts,
            cache,
            f0: vec![0.0; n],
            g0: vec![0.0; g_len],
            y_new: vec![0.0; n],
            err: vec![0.0; n],
            err_bar: vec![0.0; n],
            y_new_bar: vec![0.0; n],
            y_bar: vec![0.0; n],
            sum: 0.0,
            rho,
        }
    }

    /// Whether the penalty reads the stiffness stage pair (then neither
    /// [`PenaltySweep::before`] nor [`PenaltySweep::after`] applies: the
    /// step VJP's hook evaluates it).
    pub fn reads_pair(&self) -> bool {
        self.penalty.reads_stage_pair()
    }

    /// The penalty, the method's stability size and the scale `λ` or
    /// `λ / N`: what the step VJP's stage-pair hook needs.
    pub fn pair_parts(&self) -> (&'a dyn StepPenalty, f64, f64) {
        (self.penalty, self.rho, self.scale)
    }

    /// The regularizer `R` (unweighted) accumulated over the steps seen.
    pub fn value(&self, aggregate: Aggregate, steps: usize) -> f64 {
        match aggregate {
            Aggregate::Sum => self.sum,
            Aggregate::Mean => self.sum / steps.max(1) as f64,
        }
    }

    /// Retakes the step `at` with increments `noise`, adds its penalty to
    /// the sum, its scaled `∂/∂y_new` to `y_bar` (the cotangent of the
    /// step's end) and leaves its scaled `∂/∂err` in `self.err_bar`.
    pub fn before(
        &mut self,
        solver: &S,
        fields: &FieldsOf<'_, Pb>,
        (at, noise): (StepAt<'_>, &StepNoise<'_>),
        y_bar: &mut [f64],
        stats: &mut Stats,
    ) -> Result<(), SolveError> {
        let StepAt { t, y, .. } = at;
        fields.f(t, y, &mut self.f0, stats);
        if !self.g0.is_empty() {
            fields.g(t, y, &mut self.g0, stats);
        }
        solver.start(&mut self.cache, &self.f0, &self.g0);
        let args = StepArgs {
            fields,
            at,
            noise,
            out: StepOut {
                y_new: &mut self.y_new,
                err: &mut self.err,
            },
            stats,
        };
        if solver.step(&mut self.cache, args) == StepStatus::Failed {
            return Err(SolveError::Unsupported {
                solver: solver.name(),
                what: format!(
                    "retaking the accepted step at t = {t} to read its error estimate failed \
                     (its stage equations did not converge this time)"
                ),
                alternatives: "an explicit method, or the plain gradient without the \
                               regularizer"
                    .into(),
            });
        }
        self.y_new_bar.iter_mut().for_each(|v| *v = 0.0);
        self.y_bar.iter_mut().for_each(|v| *v = 0.0);
        let step = PenaltyStep {
            t,
            h: at.h,
            y,
            y_new: &self.y_new,
            err: &self.err,
            rtol: &self.opts.rtol,
            atol: &self.opts.atol,
        };
        let bars = PenaltyBars {
            err: &mut self.err_bar,
            y: &mut self.y_bar,
            y_new: &mut self.y_new_bar,
        };
        let p = self.penalty.eval(&step, bars);
        if !p.is_finite() {
            return Err(SolveError::Unsupported {
                solver: solver.name(),
                what: format!(
                    "the regularizer {} of the step at t = {t} is not finite ({p})",
                    self.penalty.name()
                ),
                alternatives: "check the problem's fields near that time".into(),
            });
        }
        self.sum += p;
        let s = self.scale;
        self.err_bar.iter_mut().for_each(|v| *v *= s);
        for (yb, d) in y_bar.iter_mut().zip(&self.y_new_bar) {
            *yb += s * d;
        }
        Ok(())
    }

    /// Adds the scaled `∂/∂y` of the step just reversed to `y_bar` (now the
    /// cotangent of the step's start).
    pub fn after(&self, y_bar: &mut [f64]) {
        for (yb, d) in y_bar.iter_mut().zip(&self.y_bar) {
            *yb += self.scale * d;
        }
    }
}
