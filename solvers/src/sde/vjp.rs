//! The step-VJP protocol of the SDE solvers (`../shared/DESIGN.md`, seam
//! 2): what the discrete adjoint of an SDE solve needs from a method to
//! reverse its steps — the exact gradient of the computed solution on its
//! Brownian path — whatever the method, the built-in ones and yours alike.
//!
//! A step maps `(t, h, y, c, ΔW)` to `(y_new, err, c_new)`, where `c` is
//! the state the method carries from step to step
//! ([`Solver::carried_state`](crate::solver::Solver::carried_state): reversible Heun's `(ŷ, f(ŷ), g(ŷ))`; empty
//! for most methods). Its VJP, [`SdeStepVjp::step_vjp`], takes the
//! cotangents `(ȳ_new, ē, c̄_new)` in [`SdeStepBars`] and returns
//! `(ȳ, c̄)` in place, adding `p̄` — the same bundle as the ODE protocol
//! ([`crate::step_vjp::StepBars`]) with the carried cotangent in place of
//! interpolated values (SDE losses are on step ends). The step size and the
//! increments are constants: the controller is not differentiated (as in
//! diffrax), and the path is the forward solve's. A method without an error
//! estimate refuses an error cotangent with a typed error
//! ([`refuse_err_cotangent`]); the error estimates of SRI and SRA hold
//! absolute values, differentiated as `sign(x)` (0 at 0).
//!
//! The methods here reverse each step from its start, recomputing the
//! stages they need: SRI and SRA with their forward step itself (the same
//! code, so the same stages to the bit), Euler–Maruyama, Euler–Heun and
//! Milstein from the few values they need. Milstein with exact derivatives
//! needs the diffusion's second derivatives, through
//! [`DiffusionVjp::milstein_term_vjp`]; [`SdeStepVjp::check_step_vjp`]
//! says up front whether a diffusion has it.

use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::noise::{Interpretation, Noise};
use crate::problem::Problem;
use crate::solution::Stats;
use crate::solver::{Fields, StepAt, StepNoise, StepOut, StepStatus};

use super::{SdeCache, StepArgs};

/// The cotangents of one SDE step's outputs, and where its input
/// cotangents go.
#[derive(Debug)]
pub struct SdeStepBars<'a> {
    /// In: `∂L/∂y_new`; out: `∂L/∂y` (the step's start).
    pub y: &'a mut [f64],
    /// In: `∂L/∂c_new`, the cotangent of the carried state after the step;
    /// out: `∂L/∂c`, that of the carried state it started from (the
    /// length of [`Solver::carried_state`](crate::solver::Solver::carried_state): empty for most methods).
    pub carried: &'a mut [f64],
    /// `∂L/∂err`, the cotangent of the error estimate (`None`: zero). A
    /// method without an error estimate refuses `Some`.
    pub err: Option<&'a [f64]>,
    /// `∂L/∂p` is added here.
    pub p: &'a mut [f64],
}

/// An SDE solver whose steps can be reversed: the one protocol the SDE
/// discrete adjoint drives (`sdeflow_adjoint::sde_discrete_gradient`).
/// Implement it for a solver of your own to differentiate through it
/// (`tests/extension_sde.rs` does, for a drift-implicit Euler–Maruyama).
pub trait SdeStepVjp {
    /// Workspace of [`SdeStepVjp::step_vjp`], allocated once per gradient.
    type VjpWork;

    /// Allocates the workspace for `problem` (its dimension, noise type and
    /// interpretation).
    fn vjp_workspace<F: Drift, G: Diffusion, D: Driver>(
        &self,
        problem: &Problem<F, G, D>,
    ) -> Self::VjpWork;

    /// Whether this configuration has a step VJP for `diffusion`, probed at
    /// `(t, y, p)`: `Ok(())`, or `Err` with what is missing and what to do
    /// instead. Every built-in solver has one except Milstein with exact
    /// derivatives on a diffusion without
    /// [`DiffusionVjp::milstein_term_vjp`] (the default).
    fn check_step_vjp<G: DiffusionVjp>(
        &self,
        _diffusion: &G,
        _t: f64,
        _y: &[f64],
        _p: &[f64],
    ) -> Result<(), String> {
        Ok(())
    }

    /// Reverses the step from `(at.t, at.y)` of size `at.h`, taken from the
    /// carried state `carried` with the increments `noise`, mapping the
    /// output cotangents in `bars` to the input ones (recomputing what it
    /// needs; evaluations are counted in `stats`). Returns the number of
    /// drift VJPs taken, or why the step could not be reversed (an error
    /// cotangent for a method without an error estimate; an implicit step
    /// whose recomputed equations do not converge).
    fn step_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        work: &mut Self::VjpWork,
        fields: &Fields<'_, F, G>,
        at: StepAt<'_>,
        carried: &[f64],
        noise: &StepNoise<'_>,
        bars: SdeStepBars<'_>,
        stats: &mut Stats,
    ) -> Result<usize, SolveError>;

    /// The VJP of the map from the initial state `y0` (at `t0`) to the
    /// carried state [`Solver::start`](crate::solver::Solver::start) makes of it: adds
    /// `c̄ᵀ ∂c/∂y0` to `bars.y` and `c̄ᵀ ∂c/∂p` to `bars.p`, where
    /// `c̄ = bars.carried` (`bars.err` is not read). Returns the number of
    /// drift VJPs. The default does nothing: right for methods that carry
    /// nothing; a method with carried state must implement it.
    fn start_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        _work: &mut Self::VjpWork,
        _fields: &Fields<'_, F, G>,
        _t0: f64,
        _y0: &[f64],
        _bars: SdeStepBars<'_>,
        _stats: &mut Stats,
    ) -> Result<usize, SolveError> {
        Ok(0)
    }
}

/// `Err` for an error cotangent given to the method `solver`, which has no
/// error estimate (`Ok` for `None`): what a [`SdeStepVjp::step_vjp`] of
/// such a method returns.
pub fn refuse_err_cotangent(solver: &'static str, err: Option<&[f64]>) -> Result<(), SolveError> {
    match err {
        None => Ok(()),
        Some(_) => Err(SolveError::Unsupported {
            solver,
            what: "a cotangent of the error estimate (it has no error estimate)".into(),
            alternatives: "Sriw1, Sosri, Sra1, Sra3, ReversibleHeun (their step VJPs take \
                           one)"
                .into(),
        }),
    }
}

/// What a built-in method's step VJP returns (see [`SdeStepVjp::step_vjp`]).
pub(crate) type VjpOut = Result<usize, SolveError>;

/// The arguments of [`SdeStepVjp::step_vjp`], bundled for the built-in
/// methods' implementations.
pub(crate) struct VjpArgs<'a, F, G> {
    pub fields: &'a Fields<'a, F, G>,
    pub at: StepAt<'a>,
    pub carried: &'a [f64],
    pub noise: &'a StepNoise<'a>,
    pub bars: SdeStepBars<'a>,
    pub stats: &'a mut Stats,
}

/// Workspace of the step VJPs of Euler–Maruyama, Euler–Heun and Milstein.
#[derive(Debug, Clone)]
pub struct SdeVjpWork {
    pub(super) noise: Noise,
    pub(super) n: usize,
    pub(super) ito: bool,
    pub(super) a: Vec<f64>,
    pub(super) b: Vec<f64>,
    pub(super) c: Vec<f64>,
    /// A cotangent in the shape of `g`.
    pub(super) vg: Vec<f64>,
    /// `g` at the step's start.
    pub(super) g: Vec<f64>,
    /// `stage_vectors` more vectors of length `n`.
    pub(super) stages: Vec<f64>,
}

impl SdeVjpWork {
    pub(super) fn new<F: Drift, G: Diffusion, D: Driver>(
        problem: &Problem<F, G, D>,
        stage_vectors: usize,
    ) -> Self {
        let (n, noise) = super::shape(problem);
        SdeVjpWork {
            noise,
            n,
            ito: problem.interpretation == Interpretation::Ito,
            a: vec![0.0; n],
            b: vec![0.0; n],
            c: vec![0.0; n],
            vg: vec![0.0; noise.diffusion_len(n)],
            g: vec![0.0; noise.diffusion_len(n)],
            stages: vec![0.0; stage_vectors * n],
        }
    }
}

/// Workspace of the step VJP of a stochastic Runge–Kutta method (SRI,
/// SRA): the method's own step workspace `C` (the step is retaken by the
/// method's step itself, so the stages are the forward ones to the bit) and
/// the cotangents of the stages.
#[derive(Debug, Clone)]
pub struct StageVjpWork<C> {
    pub(super) step: C,
    /// Cotangents of the drift and diffusion values, stage by stage.
    pub(super) fb: Vec<f64>,
    pub(super) gb: Vec<f64>,
    /// Cotangents of a stage's drift and diffusion arguments.
    pub(super) la0: Vec<f64>,
    pub(super) la1: Vec<f64>,
    y_new: Vec<f64>,
    err: Vec<f64>,
}

impl<C> StageVjpWork<C> {
    /// The workspace for `s` stages of dimension `n` around `step`.
    pub(super) fn new(step: C, n: usize, s: usize) -> Self {
        StageVjpWork {
            step,
            fb: vec![0.0; s * n],
            gb: vec![0.0; s * n],
            la0: vec![0.0; n],
            la1: vec![0.0; n],
            y_new: vec![0.0; n],
            err: vec![0.0; n],
        }
    }

    /// Retakes the step of `a` with `take`, the method's step, keeping its
    /// stages in `self.step` (left ready for another step).
    pub(super) fn retake<F: Drift, G: Diffusion>(
        &mut self,
        a: &mut VjpArgs<'_, F, G>,
        take: impl FnOnce(&mut C, StepArgs<'_, F, G>) -> StepStatus,
    ) where
        C: SdeCache,
    {
        let out = StepOut {
            y_new: &mut self.y_new,
            err: &mut self.err,
        };
        let (fields, at, noise, stats) = (a.fields, a.at, a.noise, &mut *a.stats);
        let args = StepArgs {
            fields,
            at,
            noise,
            out,
            stats,
        };
        let _ = take(&mut self.step, args);
        self.step.accept();
    }
}

/// Adds the cotangent of the drift part `δ |h (f_0 − f_1)|` of an SRI or
/// SRA error estimate (`e` its cotangent, `fs` the stages' drifts) to the
/// cotangents `fb` of the first two drift stages.
pub(super) fn drift_err_bar(delta: f64, h: f64, fs: &[f64], e: &[f64], fb: &mut [f64]) {
    let n = e.len();
    for k in 0..n {
        let sd = delta * h * abs_slope(h * (fs[k] - fs[n + k])) * e[k];
        fb[k] += sd;
        fb[n + k] -= sd;
    }
}

/// `sign(x)` as the derivative of `|x|` (0 at 0).
#[inline]
pub(crate) fn abs_slope(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Implements [`SdeStepVjp`] for `$name` with workspace `$work`, by the
/// inherent `workspace(problem)` and `vjp(work, VjpArgs)` of `$inner`, an
/// expression of the method's solver with `$s` bound to `self`; given,
/// `check_step_vjp` by its `$check(diffusion, (t, y, p))` and `start_vjp`
/// by its `$start(work, VjpArgs)` (with `at = (t0, 0, y0)`).
macro_rules! sde_step_vjp {
    (
        $name:ty, $work:ty, |$s:ident| $inner:expr
        $(, check: $check:ident)? $(, start: $start:ident)? $(,)?
    ) => {
        impl $crate::sde::SdeStepVjp for $name {
            type VjpWork = $work;
            fn vjp_workspace<
                F: $crate::field::Drift,
                G: $crate::field::Diffusion,
                D: $crate::brownian::Driver,
            >(
                &self,
                problem: &$crate::problem::Problem<F, G, D>,
            ) -> $work {
                let $s = self;
                $inner.workspace(problem)
            }
            $(fn check_step_vjp<G: $crate::field::DiffusionVjp>(
                &self,
                diffusion: &G,
                t: f64,
                y: &[f64],
                p: &[f64],
            ) -> Result<(), String> {
                let $s = self;
                $inner.$check(diffusion, (t, y, p))
            })?
            fn step_vjp<F: $crate::field::DriftVjp, G: $crate::field::DiffusionVjp>(
                &self,
                work: &mut $work,
                fields: &$crate::solver::Fields<'_, F, G>,
                at: $crate::solver::StepAt<'_>,
                carried: &[f64],
                noise: &$crate::solver::StepNoise<'_>,
                bars: $crate::sde::SdeStepBars<'_>,
                stats: &mut $crate::solution::Stats,
            ) -> Result<usize, $crate::error::SolveError> {
                let $s = self;
                let args = $crate::sde::vjp::VjpArgs {
                    fields,
                    at,
                    carried,
                    noise,
                    bars,
                    stats,
                };
                $inner.vjp(work, args)
            }
            $(fn start_vjp<F: $crate::field::DriftVjp, G: $crate::field::DiffusionVjp>(
                &self,
                work: &mut $work,
                fields: &$crate::solver::Fields<'_, F, G>,
                t0: f64,
                y0: &[f64],
                bars: $crate::sde::SdeStepBars<'_>,
                stats: &mut $crate::solution::Stats,
            ) -> Result<usize, $crate::error::SolveError> {
                let $s = self;
                let args = $crate::sde::vjp::VjpArgs {
                    fields,
                    at: $crate::solver::StepAt { t: t0, h: 0.0, y: y0 },
                    carried: &[],
                    noise: &$crate::solver::StepNoise::NONE,
                    bars,
                    stats,
                };
                $inner.$start(work, args)
            })?
        }
    };
}
pub(crate) use sde_step_vjp;
