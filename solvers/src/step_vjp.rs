//! The step-VJP protocol of ODE solvers (`../shared/DESIGN.md`, seam 2):
//! what one discrete adjoint needs from a method to reverse its steps,
//! whatever the method (explicit Runge–Kutta, implicit ESDIRK, …).
//!
//! A step maps `(t, h, y)` to `(y_new, err)`; its VJP takes the cotangents
//! `ȳ_new` (and `ē`, the cotangent of the error estimate — what error-based
//! regularizers differentiate — and those of values interpolated inside the
//! step) and returns `ȳ`, adding `p̄`. The step size is a constant: the
//! controller is not differentiated (as in diffrax). Implicit methods
//! differentiate the step with converged stages (implicit-function
//! theorem); the native ESDIRK methods hold their error filter
//! `(I − hγJ(y))⁻¹` constant in the error cotangent. The discrete adjoint
//! (`sdeflow-adjoint`) drives any [`OdeStepVjp`] solver through this one
//! method, with recursive checkpointing.

use crate::error::SolveError;
use crate::field::DriftVjp;
use crate::solution::Stats;
use crate::solver::StepAt;

/// The cotangent `bar = ∂L/∂y(t_n + θh)` of a value interpolated inside a
/// step (a save time that is not a step end).
#[derive(Debug, Clone, Copy)]
pub struct InterpCotangent<'a> {
    /// Position in the step, in (0, 1).
    pub theta: f64,
    /// The cotangent.
    pub bar: &'a [f64],
}

/// The cotangents of one step's outputs, and where its input cotangents go.
#[derive(Debug)]
pub struct StepBars<'a, 'b> {
    /// In: `∂L/∂y_new`; out: `∂L/∂y` (the step's start).
    pub y: &'a mut [f64],
    /// `∂L/∂err`, the cotangent of the error estimate (`None`: zero).
    pub err: Option<&'a [f64]>,
    /// Cotangents of values interpolated inside the step.
    pub interp: &'a [InterpCotangent<'b>],
    /// `∂L/∂p` is added here.
    pub p: &'a mut [f64],
}

/// An ODE solver whose steps can be reversed: the one protocol the discrete
/// adjoint drives.
pub trait OdeStepVjp {
    /// Workspace of [`OdeStepVjp::step_vjp`], allocated once per gradient.
    type VjpCache;

    /// Allocates the workspace for a state of dimension `n` and the drift
    /// `drift` with `n_params` parameters.
    fn vjp_cache<F: DriftVjp>(&self, drift: &F, n: usize, n_params: usize) -> Self::VjpCache;

    /// Reverses the step from `at` (recomputing what it needs), mapping the
    /// output cotangents in `bars` to the input ones. Returns the number of
    /// drift VJPs taken, or why the step could not be reversed (an implicit
    /// method whose recomputed stage equations do not converge).
    fn step_vjp<F: DriftVjp>(
        &self,
        cache: &mut Self::VjpCache,
        drift: &F,
        p: &[f64],
        at: StepAt<'_>,
        bars: StepBars<'_, '_>,
        stats: &mut Stats,
    ) -> Result<usize, SolveError>;
}

/// Implements [`OdeStepVjp`] for `$name` by delegating to the solver
/// `$inner` (an expression of the method's solver, with `$s` bound to
/// `self`) whose workspace is `$cache`.
macro_rules! delegate_ode_step_vjp {
    ($name:ty, $cache:ty, |$s:ident| $inner:expr) => {
        impl $crate::step_vjp::OdeStepVjp for $name {
            type VjpCache = $cache;
            fn vjp_cache<F: $crate::field::DriftVjp>(
                &self,
                drift: &F,
                n: usize,
                n_params: usize,
            ) -> $cache {
                let $s = self;
                $crate::step_vjp::OdeStepVjp::vjp_cache(&$inner, drift, n, n_params)
            }
            fn step_vjp<F: $crate::field::DriftVjp>(
                &self,
                cache: &mut $cache,
                drift: &F,
                p: &[f64],
                at: $crate::solver::StepAt<'_>,
                bars: $crate::step_vjp::StepBars<'_, '_>,
                stats: &mut $crate::solution::Stats,
            ) -> Result<usize, $crate::error::SolveError> {
                let $s = self;
                $crate::step_vjp::OdeStepVjp::step_vjp(&$inner, cache, drift, p, at, bars, stats)
            }
        }
    };
}
pub(crate) use delegate_ode_step_vjp;
