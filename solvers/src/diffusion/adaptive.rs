//! Adaptive DPM-Solver-12 and -23 (Lu, Zhou, Bao, Chen, Li, Zhu,
//! "DPM-Solver", NeurIPS 2022, §3.3 and Alg. 4–5; dpm_solver
//! `dpm_solver_adaptive`) as a [`Solver`] of the adaptive loop: each step
//! forms a lower- and a higher-order result from shared model evaluations,
//! writes the higher one and their difference as the error estimate, and
//! the loop's controller (any of them) chooses the steps. Reference:
//! `../shared/reference/exponential.md` §4.
//!
//! - DPM-Solver-12: DPM-Solver-1 and DPM-Solver-2 (`r1 = ½`), two model
//!   evaluations per attempt; error order 2.
//! - DPM-Solver-23: DPM-Solver-2 with `r1 = ⅓` and DPM-Solver-3
//!   (`r1 = ⅓, r2 = ⅔`), three per attempt; error order 3.
//!
//! The evaluation at the step's start is kept across rejected attempts, so
//! a rejection costs one (12) or two (23) evaluations.
//!
//! **Error norm.** By default the loop's scaled RMS norm
//! (`atol + rtol max(|y|, |y_new|)`, [`crate::norm::scaled_rms`]). With
//! [`AdaptiveDpmSolver::paper_norm`] the paper's instead:
//! `δ = max(atol, rtol max(|x_low|, |x_s|))` elementwise and
//! `E = max over samples of RMS((x_high − x_low)/δ)`, the tolerances being
//! the loop's ([`crate::options::Options::rtol`], `atol`; the paper's
//! defaults are `rtol = 0.05`, `atol = 0.0078` for data in `[−1, 1]`). The
//! method writes an error vector whose loop norm is exactly `E`. dpm_solver
//! compares with the previous step's `x_low` where this uses the state `x_s`
//! the step starts from.
//!
//! **Gradients.** The step VJP reverses the accepted steps the discrete
//! adjoint replays (the grid the controller chose, held constant as every
//! step size is): the step's result is DPM-Solver-2 (`r1 = ½`, pair 12) or
//! DPM-Solver-3 (pair 23), so it is theirs
//! ([`super::SamplerVjp`]). The error estimate is not differentiated (its
//! cotangent is refused).

use super::dpm_solver2::DpmSolver2;
use super::dpm_solver3::DpmSolver3;
use super::dpm_solver3::{R1, R2, Stages};
use super::model::{DiffusionOde, Model, Parametrisation};
use super::model_vjp::ModelVjp;
use super::sampler::{Form, check_span};
use super::sampler_vjp::{SamplerVjpWork, sampler_vjp};
use super::schedule::NoiseSchedule;
use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{DiffusionVjp, DriftVjp};
use crate::options::Tolerance;
use crate::problem::Problem;
use crate::solver::{DenseTable, Increment, Solver, StepArgsOf, StepAt, StepStatus, StepTakenOf};
use crate::step_vjp::{Probe, StepVjp, VjpArgs, VjpNeeds, default_check, refuse_err_cotangent};

/// Which pair of DPM-Solvers an adaptive step compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdaptivePair {
    /// DPM-Solver-1 and -2.
    Dpm12,
    /// DPM-Solver-2 (`r1 = ⅓`) and -3.
    Dpm23,
}

/// Adaptive DPM-Solver-12 or -23 in the adaptive loop (set `rtol`, `atol`
/// and the controller in the options; the problem's span from the noise
/// end to the data end).
///
/// ```
/// use sdeflow_solvers::diffusion::{probability_flow, AdaptiveDpmSolver, Parametrisation, VpLinear, NoiseSchedule};
/// use sdeflow_solvers::{solve, options::Options};
/// let s = VpLinear::default();
/// // data N(0, 1): ε̂ = σ x, and the flow map is the identity
/// let problem = probability_flow(
///     move |t: f64, x: &[f64], _p: &[f64], out: &mut [f64]| {
///         let sig = s.sigma(t);
///         for (o, &xv) in out.iter_mut().zip(x) { *o = sig * xv; }
///     },
///     Parametrisation::Noise, s, vec![0.7, -1.3], (1.0, 1e-3),
/// );
/// let sol = solve(&problem, AdaptiveDpmSolver::dpm_solver_23(), Options::default().tol(1e-6))?;
/// assert!((sol.last()[0] - 0.7).abs() < 1e-4);
/// # Ok::<(), sdeflow_solvers::error::SolveError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveDpmSolver {
    pair: AdaptivePair,
    /// `Some(d)`: the paper's norm over samples of `d` entries.
    paper_norm: Option<usize>,
}

impl AdaptiveDpmSolver {
    /// Adaptive DPM-Solver-12.
    pub fn dpm_solver_12() -> Self {
        AdaptiveDpmSolver {
            pair: AdaptivePair::Dpm12,
            paper_norm: None,
        }
    }

    /// Adaptive DPM-Solver-23.
    pub fn dpm_solver_23() -> Self {
        AdaptiveDpmSolver {
            pair: AdaptivePair::Dpm23,
            paper_norm: None,
        }
    }

    /// Measures the error in the paper's norm (see the module docs), over a
    /// batch of samples of `sample_dim` entries each (the state's length
    /// must be a multiple).
    pub fn paper_norm(mut self, sample_dim: usize) -> Self {
        self.paper_norm = Some(sample_dim);
        self
    }

    /// The pair.
    pub fn pair(&self) -> AdaptivePair {
        self.pair
    }
}

/// Workspace of an adaptive DPM-Solver solve.
#[derive(Debug, Clone)]
pub struct AdaptiveCache {
    /// The noise prediction at the step's start.
    m0: Vec<f64>,
    m0_velocity: bool,
    m0_valid: bool,
    u: Vec<f64>,
    d1: Vec<f64>,
    d2: Vec<f64>,
    lin: Vec<f64>,
    rtol: Tolerance,
    atol: Tolerance,
}

impl<M: Model, S: NoiseSchedule, D: Driver> Solver<DiffusionOde<M, S, D>> for AdaptiveDpmSolver {
    type Cache = AdaptiveCache;
    const INCREMENT: Increment = Increment::None;

    fn name(&self) -> &'static str {
        match self.pair {
            AdaptivePair::Dpm12 => "adaptive DPM-Solver-12",
            AdaptivePair::Dpm23 => "adaptive DPM-Solver-23",
        }
    }

    fn order(&self) -> f64 {
        match self.pair {
            AdaptivePair::Dpm12 => 2.0,
            AdaptivePair::Dpm23 => 3.0,
        }
    }

    fn error_order(&self) -> Option<f64> {
        Some(Solver::<DiffusionOde<M, S, D>>::order(self))
    }

    fn check(&self, problem: &DiffusionOde<M, S, D>) -> Result<(), SolveError> {
        let name = Solver::<DiffusionOde<M, S, D>>::name(self);
        problem.ode_only(name)?;
        check_span(name, problem.tspan, &problem.drift.schedule, false)?;
        if let Some(d) = self.paper_norm {
            let n = problem.dim();
            if d == 0 || !n.is_multiple_of(d) {
                return Err(SolveError::DimensionMismatch {
                    what: "AdaptiveDpmSolver paper_norm sample_dim".into(),
                    expected: n,
                    found: Some(d),
                    hint: "give the length of one sample; the state must hold whole samples".into(),
                });
            }
        }
        Ok(())
    }

    fn init(&self, problem: &DiffusionOde<M, S, D>) -> AdaptiveCache {
        let n = problem.dim();
        AdaptiveCache {
            m0: vec![0.0; n],
            m0_velocity: false,
            m0_valid: false,
            u: vec![0.0; n],
            d1: vec![0.0; n],
            d2: vec![0.0; n],
            lin: vec![0.0; n],
            rtol: Tolerance::Scalar(0.0),
            atol: Tolerance::Scalar(0.0),
        }
    }

    fn tolerances(&self, c: &mut AdaptiveCache, rtol: &Tolerance, atol: &Tolerance) {
        c.rtol = rtol.clone();
        c.atol = atol.clone();
    }

    fn start(&self, c: &mut AdaptiveCache, f0: &[f64], _g0: &[f64]) {
        c.m0.copy_from_slice(f0);
        c.m0_velocity = true;
        c.m0_valid = true;
    }

    fn step(
        &self,
        c: &mut AdaptiveCache,
        args: StepArgsOf<'_, DiffusionOde<M, S, D>>,
    ) -> StepStatus {
        let StepAt { t, h, y } = args.at;
        let (flow, p, stats) = (args.fields.drift, args.fields.p, args.stats);
        let sched = &flow.schedule;
        if c.m0_velocity {
            Parametrisation::Velocity.convert(Parametrisation::Noise, sched, t, y, &mut c.m0);
            c.m0_velocity = false;
        } else if !c.m0_valid {
            flow.predict_as(Parametrisation::Noise, t, y, p, &mut c.m0, stats);
        }
        c.m0_valid = true;
        let t_next = t + h;
        let hl = sched.lambda(t_next) - sched.lambda(t);
        let stages = Stages {
            flow,
            p,
            t,
            t_next,
            x: y,
            m0: &c.m0,
        };
        let r1 = match self.pair {
            AdaptivePair::Dpm12 => 0.5,
            AdaptivePair::Dpm23 => R1,
        };
        stages.first(r1, &mut c.u, &mut c.d1, stats);
        // DPM-Solver-1 (12) or -2 with r1 (23) into err (x_low for now)
        let (r, cf) = Form::Noise.first_order(sched, (t, t_next), hl);
        let (y_new, err) = (args.out.y_new, args.out.err);
        let w = 1.0 / (2.0 * r1);
        match self.pair {
            AdaptivePair::Dpm12 => {
                for i in 0..y.len() {
                    err[i] = r * y[i] + cf * c.m0[i];
                    y_new[i] = err[i] + cf * w * c.d1[i];
                }
            }
            AdaptivePair::Dpm23 => {
                for i in 0..y.len() {
                    err[i] = r * y[i] + cf * (c.m0[i] + w * c.d1[i]);
                }
                stages.rest(R1, R2, &c.d1, &mut c.u, &mut c.d2, y_new, stats);
            }
        }
        match self.paper_norm {
            None => err
                .iter_mut()
                .zip(y_new.iter())
                .for_each(|(e, &hi)| *e = hi - *e),
            Some(d) => paper_error(d, y, y_new, err, &c.rtol, &c.atol),
        }
        StepStatus::Taken
    }

    fn accept(&self, c: &mut AdaptiveCache) {
        c.m0_valid = false;
    }

    fn dense_table<'c>(&self, _c: &'c AdaptiveCache) -> DenseTable<'c> {
        crate::sde::linear_table()
    }

    fn dense_stages<'c>(
        &self,
        c: &'c mut AdaptiveCache,
        step: StepTakenOf<'_, DiffusionOde<M, S, D>>,
    ) -> &'c [f64] {
        crate::sde::linear_stage(step.at.h, step.at.y, step.y_new, &mut c.lin);
        &c.lin
    }
}

/// The step VJP of the accepted steps: that of the step's higher-order
/// result, DPM-Solver-2 (`r1 = ½`) or DPM-Solver-3 (see the module docs).
impl<M: ModelVjp, S: NoiseSchedule, D: Driver> StepVjp<DiffusionOde<M, S, D>>
    for AdaptiveDpmSolver
{
    type VjpWork = SamplerVjpWork;

    fn vjp_workspace<F: DriftVjp, G: DiffusionVjp, Dx: Driver>(
        &self,
        problem: &Problem<F, G, Dx>,
    ) -> SamplerVjpWork {
        match self.pair {
            AdaptivePair::Dpm12 => SamplerVjpWork::new(&DpmSolver2, problem.dim()),
            AdaptivePair::Dpm23 => SamplerVjpWork::new(&DpmSolver3, problem.dim()),
        }
    }

    fn check_step_vjp<G: DiffusionVjp>(
        &self,
        _diffusion: &G,
        _at: Probe<'_>,
        needs: VjpNeeds,
    ) -> Result<(), String> {
        let name = Solver::<DiffusionOde<M, S, D>>::name(self);
        default_check(name, false, false, needs)
    }

    fn step_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut SamplerVjpWork,
        args: VjpArgs<'_, F, G>,
    ) -> Result<usize, SolveError> {
        let name = Solver::<DiffusionOde<M, S, D>>::name(self);
        refuse_err_cotangent(name, args.bars.err)?;
        match self.pair {
            AdaptivePair::Dpm12 => sampler_vjp(&DpmSolver2, w, args),
            AdaptivePair::Dpm23 => sampler_vjp(&DpmSolver3, w, args),
        }
    }
}

/// Replaces `err` (holding `x_low`) by a vector whose loop norm
/// ([`crate::norm::scaled_rms`] at `y`, `y_new`) is the paper's `E`: every
/// entry `E · sc_i` with `sc_i` the loop's scale.
fn paper_error(
    d: usize,
    y: &[f64],
    y_new: &[f64],
    err: &mut [f64],
    rtol: &Tolerance,
    atol: &Tolerance,
) {
    let mut worst: f64 = 0.0;
    for (j, ((xs, hi), lo)) in y
        .chunks_exact(d)
        .zip(y_new.chunks_exact(d))
        .zip(err.chunks_exact(d))
        .enumerate()
    {
        let mut acc = 0.0;
        for i in 0..d {
            let k = j * d + i;
            let delta = atol.get(k).max(rtol.get(k) * lo[i].abs().max(xs[i].abs()));
            let q = (hi[i] - lo[i]) / delta;
            acc += q * q;
        }
        let e = (acc / d as f64).sqrt();
        // a NaN makes the step fail the loop's test
        worst = if e.is_nan() { f64::NAN } else { worst.max(e) };
    }
    for (k, e) in err.iter_mut().enumerate() {
        let sc = atol.get(k) + rtol.get(k) * y[k].abs().max(y_new[k].abs());
        *e = worst * sc;
    }
}
