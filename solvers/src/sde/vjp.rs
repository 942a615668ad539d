//! The SDE methods' side of the step-VJP protocol
//! ([`crate::step_vjp::StepVjp`], `../shared/DESIGN.md` seam 2): the
//! workspaces and helpers their step VJPs share, and the macro that
//! implements the protocol from a method's inherent `workspace` and `vjp`.
//!
//! The methods here reverse each step from its start, recomputing the
//! stages they need: SRI and SRA with their forward step itself (the same
//! code, so the same stages to the bit), Euler–Maruyama, Euler–Heun and
//! Milstein from the few values they need. Milstein with exact derivatives
//! needs the diffusion's second derivatives, through
//! [`DiffusionVjp::milstein_term_vjp`](crate::field::DiffusionVjp::milstein_term_vjp); its
//! [`StepVjp::check_step_vjp`](crate::step_vjp::StepVjp::check_step_vjp)
//! says up front whether a diffusion has it. The error estimates of SRI
//! and SRA hold absolute values, differentiated as `sign(x)` (0 at 0);
//! Euler–Maruyama, Euler–Heun and Milstein have no error estimate and
//! refuse an error cotangent
//! ([`refuse_err_cotangent`](crate::step_vjp::refuse_err_cotangent)). Their
//! dense output (linear) is not differentiated: interpolated cotangents are
//! refused, so SDE losses are on step ends.

use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{Diffusion, Drift};
use crate::noise::{Interpretation, Noise};
use crate::problem::Problem;
use crate::solver::{StepOut, StepStatus};

use super::{SdeCache, StepArgs};

/// What a built-in method's step VJP returns (see
/// [`StepVjp::step_vjp`](crate::step_vjp::StepVjp::step_vjp)).
pub(crate) type VjpOut = Result<usize, SolveError>;

pub(crate) use crate::step_vjp::VjpArgs;

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
        let _ = take(&mut self.step, a.forward(out));
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

/// Implements [`StepVjp`](crate::step_vjp::StepVjp) for the SDE method
/// `$name` with workspace `$work`, by the inherent `workspace(problem)` and
/// `vjp(work, VjpArgs)` of `$inner`, an expression of the method's solver
/// with `$s` bound to `self`; given, `check_step_vjp` adds its
/// `$check(diffusion, (t, y, p))` to the default check, and `start_vjp` is
/// its `$start(work, VjpArgs)` (the arguments [`VjpArgs::start`] makes). Interpolated
/// cotangents are refused (the dense output is linear and not
/// differentiated).
macro_rules! sde_step_vjp {
    (
        $name:ty, $work:ty, |$s:ident| $inner:expr
        $(, check: $check:ident)? $(, start: $start:ident)? $(,)?
    ) => {
        impl<Fx: $crate::field::Drift, Gx: $crate::field::Diffusion, Dx: $crate::brownian::Driver>
            $crate::step_vjp::StepVjp<$crate::solver::SdeProblem<Fx, Gx, Dx>> for $name
        {
            type VjpWork = $work;
            fn vjp_workspace<
                F: $crate::field::DriftVjp,
                G: $crate::field::DiffusionVjp,
                D: $crate::brownian::Driver,
            >(
                &self,
                problem: &$crate::problem::Problem<F, G, D>,
            ) -> $work {
                let $s = self;
                $inner.workspace(problem)
            }
            fn check_step_vjp<G: $crate::field::DiffusionVjp>(
                &self,
                _diffusion: &G,
                _at: $crate::step_vjp::Probe<'_>,
                needs: $crate::step_vjp::VjpNeeds,
            ) -> Result<(), String> {
                $(let $s = self;
                $inner.$check(_diffusion, _at)?;)?
                let solver = $crate::solver::Solver::<$crate::solver::SdeProblem<Fx, Gx, Dx>>::name(self);
                let has_err = $crate::solver::Solver::<$crate::solver::SdeProblem<Fx, Gx, Dx>>::error_order(self).is_some();
                $crate::step_vjp::default_check(solver, has_err, false, needs)
            }
            fn step_vjp<F: $crate::field::DriftVjp, G: $crate::field::DiffusionVjp>(
                &self,
                work: &mut $work,
                args: $crate::step_vjp::VjpArgs<'_, F, G>,
            ) -> Result<usize, $crate::error::SolveError> {
                let solver = $crate::solver::Solver::<$crate::solver::SdeProblem<Fx, Gx, Dx>>::name(self);
                $crate::step_vjp::refuse_interp_cotangents(solver, args.bars.interp)?;
                let $s = self;
                $inner.vjp(work, args)
            }
            $(fn start_vjp<F: $crate::field::DriftVjp, G: $crate::field::DiffusionVjp>(
                &self,
                work: &mut $work,
                args: $crate::step_vjp::VjpArgs<'_, F, G>,
            ) -> Result<usize, $crate::error::SolveError> {
                let $s = self;
                $inner.$start(work, args)
            })?
        }
    };
}
pub(crate) use sde_step_vjp;
