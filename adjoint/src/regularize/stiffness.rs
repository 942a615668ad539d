//! The stiffness regularizer of SRNODE (Pal, Ma, Shah, Rackauckas, ICML
//! 2021, arXiv 2105.03918; `../shared/reference/regularizers.md` §1): per
//! accepted step of an explicit Runge–Kutta method, the estimate of the
//! dominant eigenvalue of the drift's Jacobian from two stages that share a
//! time (Hairer & Wanner II §IV.2; Shampine 1977), normalised by the
//! method's stability size `ρ` along the negative real axis:
//!
//! `S = RMS(k_b − k_a) / (ρ · RMS(g_b − g_a))`,
//!
//! `g` the stages' inputs, `k = f(t, g)` their derivatives (Tsit5 and
//! Dopri5: stages 6 and 7, both at `t + h`, stage 7's input the step's
//! result; Vern7: stages 9 and 10; `ρ` = 3.5068, 3.3066, 4.64). RMS norms as
//! in LocalRegNeuralDE.jl (OrdinaryDiffEq's stiffness detection takes the
//! largest component ratio instead). `S = 0` where the two inputs coincide
//! (zero subgradient). The step size does not multiply `S`.
//!
//! Its exact gradient needs the stages, not just the step's result and
//! error estimate: the step VJP takes their cotangents
//! ([`sdeflow_solvers::step_vjp::StepVjp::step_vjp_stage_pair`]).
//! [`StiffnessObserver`] accumulates `Σ_j S_j` over a plain solve.

use sdeflow_solvers::brownian::Driver;
use sdeflow_solvers::field::{DiffusionVjp, DriftVjp};
use sdeflow_solvers::integrate::{StepObserver, StepReport};
use sdeflow_solvers::problem::Problem;
use sdeflow_solvers::solution::Stats;
use sdeflow_solvers::solver::{Fields, StepAt};
use sdeflow_solvers::step_vjp::{StagePair, StagePairBars, StepBars, StepVjp, VjpArgs};

use super::{Aggregate, Global, Local, PenaltyBars, PenaltyStep, RegTime, StepPenalty};

/// `S = RMS(k_b − k_a) / (ρ · RMS(g_b − g_a))` of the step's stiffness
/// stage pair (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stiffness;

/// `S` of `pair` for the stability size `rho`; with `bars`, its derivatives
/// times `scale` are written there.
pub(crate) fn stiffness_estimate(
    pair: &StagePair<'_>,
    rho: f64,
    bars: Option<(StagePairBars<'_>, f64)>,
) -> f64 {
    let [ga, gb] = pair.inputs;
    let [ka, kb] = pair.derivs;
    let n = ga.len() as f64;
    let mut num = 0.0;
    let mut den = 0.0;
    for i in 0..ga.len() {
        num += (kb[i] - ka[i]).powi(2);
        den += (gb[i] - ga[i]).powi(2);
    }
    let (num, den) = ((num / n).sqrt(), (den / n).sqrt());
    if den == 0.0 {
        return 0.0;
    }
    let s = num / (rho * den);
    if let Some((bars, scale)) = bars {
        let StagePairBars {
            inputs: [ga_bar, gb_bar],
            derivs: [ka_bar, kb_bar],
        } = bars;
        // ∂S/∂d_i = d_i / (n num ρ den); ∂S/∂e_i = −S e_i / (n den²)
        let dk = if num > 0.0 {
            scale / (n * num * rho * den)
        } else {
            0.0
        };
        let dg = -scale * s / (n * den * den);
        for i in 0..ga.len() {
            let d = kb[i] - ka[i];
            kb_bar[i] += dk * d;
            ka_bar[i] -= dk * d;
            let e = gb[i] - ga[i];
            gb_bar[i] += dg * e;
            ga_bar[i] -= dg * e;
        }
    }
    s
}

impl StepPenalty for Stiffness {
    fn name(&self) -> &'static str {
        "stiffness estimate (S/ρ)"
    }

    /// Not used: the stiffness estimate reads the stage pair
    /// ([`StepPenalty::eval_pair`]); writes zero derivatives and returns 0.
    fn eval(&self, _step: &PenaltyStep<'_>, bars: PenaltyBars<'_>) -> f64 {
        bars.err.iter_mut().for_each(|v| *v = 0.0);
        0.0
    }

    fn reads_stage_pair(&self) -> bool {
        true
    }

    fn eval_pair(
        &self,
        pair: &StagePair<'_>,
        rho: f64,
        bars: StagePairBars<'_>,
        scale: f64,
    ) -> f64 {
        stiffness_estimate(pair, rho, Some((bars, scale)))
    }
}

impl Global<Stiffness> {
    /// SRNODE's `λ · Σ_j S_j` (the paper's total stiffness; RegNeuralDE.jl's
    /// MNIST code takes the maximum over steps, not offered here).
    pub fn stiffness(weight: f64) -> Self {
        Global {
            penalty: Stiffness,
            weight,
            aggregate: Aggregate::Sum,
        }
    }
}

impl Local<Stiffness> {
    /// `λ · S` of one step from a time drawn by `time`.
    pub fn stiffness(weight: f64, time: RegTime) -> Self {
        Local {
            penalty: Stiffness,
            weight,
            time,
            dt: None,
        }
    }
}

/// Accumulates `Σ_j S_j` over the accepted steps of a plain solve
/// (`integrate_observed`): the value of the global stiffness regularizer
/// without a gradient. Each accepted step is retaken once in the step
/// VJP's workspace to read its stages (`s` drift evaluations for an
/// `s`-stage method, counted in [`StiffnessObserver::drift_evals`], not in
/// the solve's statistics); nothing is reversed. Build it with
/// [`StiffnessObserver::new`], which refuses a method without a stage pair.
pub struct StiffnessObserver<'a, F, G, D, S>
where
    F: DriftVjp,
    G: DiffusionVjp,
    D: Driver,
    S: StepVjp<Problem<F, G, D>>,
{
    fields: Fields<'a, F, G>,
    solver: &'a S,
    work: S::VjpWork,
    rho: f64,
    y_bar: Vec<f64>,
    dp: Vec<f64>,
    stats: Stats,
    /// `Σ_j S_j` so far.
    pub sum: f64,
    /// Accepted steps seen.
    pub steps: usize,
    /// Drift evaluations spent retaking the steps.
    pub drift_evals: usize,
}

impl<'a, F, G, D, S> StiffnessObserver<'a, F, G, D, S>
where
    F: DriftVjp,
    G: DiffusionVjp,
    D: Driver,
    S: StepVjp<Problem<F, G, D>>,
{
    /// An observer of solves of `problem` with `solver`; `None` when the
    /// method has no stiffness stage pair (Bs3, Heun, the SDE methods).
    pub fn new(problem: &'a Problem<F, G, D>, solver: &'a S) -> Option<Self> {
        let rho = solver.stiffness_stages()?.stability_size;
        Some(StiffnessObserver {
            fields: Fields::new(problem),
            solver,
            work: solver.vjp_workspace(problem),
            rho,
            y_bar: vec![0.0; problem.dim()],
            dp: vec![0.0; problem.params.len()],
            stats: Stats::default(),
            sum: 0.0,
            steps: 0,
            drift_evals: 0,
        })
    }

    /// The mean `Σ_j S_j / steps` (0 without steps).
    pub fn mean(&self) -> f64 {
        if self.steps == 0 {
            0.0
        } else {
            self.sum / self.steps as f64
        }
    }
}

impl<F, G, D, S> StepObserver for StiffnessObserver<'_, F, G, D, S>
where
    F: DriftVjp,
    G: DiffusionVjp,
    D: Driver,
    S: StepVjp<Problem<F, G, D>>,
{
    fn accepted(&mut self, _: usize, _: f64, _: f64, _: &[f64], _: &[f64]) {}

    fn attempted(&mut self, report: &StepReport<'_>) {
        if !report.accepted {
            return;
        }
        let rho = self.rho;
        let mut value = 0.0;
        // the hook writes no cotangents: the "VJP" recomputes the stages
        // and reverses nothing
        let mut hook = |pair: StagePair<'_>, _: StagePairBars<'_>| {
            value = stiffness_estimate(&pair, rho, None);
        };
        self.y_bar.iter_mut().for_each(|v| *v = 0.0);
        let before = self.stats.drift_evals;
        let mut no_carried: [f64; 0] = [];
        let args = VjpArgs {
            fields: &self.fields,
            at: StepAt {
                t: report.t,
                h: report.h,
                y: report.y,
            },
            carried: &[],
            noise: &report.noise,
            bars: StepBars::states(&mut self.y_bar, &mut no_carried, &mut self.dp),
            stats: &mut self.stats,
        };
        if self
            .solver
            .step_vjp_stage_pair(&mut self.work, args, Some(&mut hook))
            .is_ok()
        {
            self.sum += value;
            self.steps += 1;
        }
        self.drift_evals += self.stats.drift_evals - before;
    }
}
