//! The `Solver` trait: one step of a method, and nothing about the loop.
//!
//! The integration loop ([`crate::integrate`]) drives any `Solver` with any
//! controller and save policy; a solver only knows how to take one step from
//! `(t, y)` of size `h`, estimate its error, and describe its interpolant.

use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{Diffusion, Drift};
use crate::noise::Noise;
use crate::problem::Problem;
use crate::solution::Stats;

/// The fields of a problem bound to its parameters, counting evaluations.
#[derive(Debug)]
pub struct Fields<'a, F, G> {
    /// The drift.
    pub drift: &'a F,
    /// The diffusion.
    pub diffusion: &'a G,
    /// The parameters.
    pub p: &'a [f64],
    /// Noise structure (`None` for an ODE).
    pub noise: Option<Noise>,
}

impl<'a, F: Drift, G: Diffusion> Fields<'a, F, G> {
    /// Binds the fields of `problem`.
    pub fn new<D: Driver>(problem: &'a Problem<F, G, D>) -> Self {
        Fields {
            drift: &problem.drift,
            diffusion: &problem.diffusion,
            p: &problem.params,
            noise: problem.noise,
        }
    }

    /// Evaluates the drift and counts it.
    #[inline(always)]
    pub fn f(&self, t: f64, y: &[f64], dy: &mut [f64], stats: &mut Stats) {
        stats.drift_evals += 1;
        self.drift.drift(t, y, self.p, dy);
    }

    /// Evaluates the diffusion and counts it.
    #[inline(always)]
    pub fn g(&self, t: f64, y: &[f64], g: &mut [f64], stats: &mut Stats) {
        stats.diffusion_evals += 1;
        self.diffusion.diffusion(t, y, self.p, g);
    }
}

/// The Brownian increments of one step (empty for ODE solves).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepNoise<'a> {
    /// `W(t + h) − W(t)`, one entry per Brownian motion.
    pub dw: &'a [f64],
    /// Space–time Lévy area `H` over the step, where the solver asks for it.
    pub levy_h: &'a [f64],
}

impl StepNoise<'static> {
    /// No noise (ODE steps).
    pub const NONE: StepNoise<'static> = StepNoise {
        dw: &[],
        levy_h: &[],
    };
}

/// The weight polynomials of a solver's interpolant.
#[derive(Debug, Clone, Copy)]
pub struct DenseTable<'a> {
    /// Number of vectors kept per step.
    pub nk: usize,
    /// Coefficients per polynomial.
    pub ncoef: usize,
    /// `nk × ncoef` coefficients, ascending powers of θ.
    pub poly: &'a [f64],
}

/// Where a step starts: time, size and state.
#[derive(Debug, Clone, Copy)]
pub struct StepAt<'a> {
    /// Start time.
    pub t: f64,
    /// Step size (signed).
    pub h: f64,
    /// State at `t`.
    pub y: &'a [f64],
}

/// Where a step writes its results.
#[derive(Debug)]
pub struct StepOut<'a> {
    /// The state at `t + h`.
    pub y_new: &'a mut [f64],
    /// The local error estimate (left as it is by methods without one).
    pub err: &'a mut [f64],
}

/// Whether a step could be taken.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// `y_new` and `err` hold the step's result.
    Taken,
    /// The step could not be taken (an implicit method whose stage
    /// equations did not converge); `y_new` and `err` are meaningless. The
    /// adaptive loop rejects it and shrinks `h`; a fixed-step solve, which
    /// cannot, ends with [`SolveError::NonlinearSolve`].
    Failed,
}

/// One step of a numerical method.
pub trait Solver {
    /// Per-solve workspace (stage buffers and the like), allocated once by
    /// [`Solver::init`] and reused by every step.
    type Cache: Clone;

    /// The method's name.
    fn name(&self) -> &'static str;

    /// Order of convergence (classical order for ODE methods, strong order
    /// for SDE methods).
    fn order(&self) -> f64;

    /// Order `k` of the error estimate as used by the controller
    /// (`embedded order + 1` for an RK pair), or `None` when the method has no
    /// error estimate and needs fixed steps.
    fn error_order(&self) -> Option<f64>;

    /// Checks that this method can integrate `problem` (ODE vs SDE, noise
    /// type, interpretation).
    fn check<F: Drift, G: Diffusion, D: Driver>(
        &self,
        problem: &Problem<F, G, D>,
    ) -> Result<(), SolveError>;

    /// Allocates the workspace for `problem` (its dimension, noise
    /// structure and interpretation).
    fn init<F: Drift, G: Diffusion, D: Driver>(&self, problem: &Problem<F, G, D>) -> Self::Cache;

    /// Whether the steps need the space–time Lévy area of each increment
    /// (`StepNoise::levy_h`); the loop then draws it.
    fn needs_levy_area(&self) -> bool {
        false
    }

    /// Starts a solve at a state where the drift is `f0` and the diffusion
    /// `g0` (empty for ODEs), both already evaluated by the loop.
    fn start(&self, cache: &mut Self::Cache, f0: &[f64], g0: &[f64]);

    /// Takes one step of size `at.h` from `(at.t, at.y)` into `out.y_new`;
    /// writes the local error estimate into `out.err` when the method has
    /// one.
    fn step<F: Drift, G: Diffusion>(
        &self,
        cache: &mut Self::Cache,
        fields: &Fields<'_, F, G>,
        at: StepAt<'_>,
        noise: &StepNoise<'_>,
        out: StepOut<'_>,
        stats: &mut Stats,
    ) -> StepStatus;

    /// Called when the last step is accepted (before the loop moves to
    /// `y_new`), e.g. to carry an FSAL stage over.
    fn accept(&self, cache: &mut Self::Cache);

    /// State the method carries from step to step besides `y` that an
    /// adjoint needs to reverse it (reversible Heun's `ŷ`), after
    /// [`Solver::accept`]; empty for most methods (the default).
    fn carried_state<'c>(&self, _cache: &'c Self::Cache) -> &'c [f64] {
        &[]
    }

    /// The interpolant's weight polynomials.
    fn dense_table<'c>(&self, cache: &'c Self::Cache) -> DenseTable<'c>;

    /// The vectors the interpolant needs for the last step (before
    /// [`Solver::accept`]), computing extra stages if the method needs them.
    fn dense_stages<'c, F: Drift, G: Diffusion>(
        &self,
        cache: &'c mut Self::Cache,
        fields: &Fields<'_, F, G>,
        t: f64,
        h: f64,
        y: &[f64],
        y_new: &[f64],
        stats: &mut Stats,
    ) -> &'c [f64];
}

/// Defines a unit struct `$name` that is the solver `$inner` (an expression
/// of a type implementing [`Solver`] with cache `$cache`, usually a
/// tableau-driven solver such as [`crate::erk::ExplicitRk`]): every method
/// delegates. `$name::tableau()` returns `$tab`.
macro_rules! delegate_solver {
    ($(#[$doc:meta])* $name:ident, $inner:expr, $cache:ty, $tab:expr, $tabty:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name;

        impl $name {
            /// The tableau of this method.
            pub fn tableau(&self) -> &'static $tabty {
                &$tab
            }

            /// The solver this method is.
            #[inline(always)]
            fn inner(&self) -> impl $crate::solver::Solver<Cache = $cache> {
                $inner
            }
        }

        $crate::solver::delegate_solver_impl!($name, $cache, inner);
    };
}
pub(crate) use delegate_solver;

/// Implements [`Solver`] for `$name` by delegating every method to the
/// solver (with cache `$cache`) that its method `$inner()` returns.
macro_rules! delegate_solver_impl {
    ($name:ty, $cache:ty, $inner:ident) => {
        impl $crate::solver::Solver for $name {
            type Cache = $cache;
            fn name(&self) -> &'static str {
                self.$inner().name()
            }
            fn order(&self) -> f64 {
                self.$inner().order()
            }
            fn error_order(&self) -> Option<f64> {
                self.$inner().error_order()
            }
            fn needs_levy_area(&self) -> bool {
                self.$inner().needs_levy_area()
            }
            fn check<F: $crate::Drift, G: $crate::Diffusion, D: $crate::prelude::Driver>(
                &self,
                problem: &$crate::Problem<F, G, D>,
            ) -> Result<(), $crate::SolveError> {
                self.$inner().check(problem)
            }
            fn init<F: $crate::Drift, G: $crate::Diffusion, D: $crate::prelude::Driver>(
                &self,
                problem: &$crate::Problem<F, G, D>,
            ) -> $cache {
                self.$inner().init(problem)
            }
            fn start(&self, cache: &mut $cache, f0: &[f64], g0: &[f64]) {
                self.$inner().start(cache, f0, g0)
            }
            #[inline]
            fn step<F: $crate::Drift, G: $crate::Diffusion>(
                &self,
                cache: &mut $cache,
                fields: &$crate::solver::Fields<'_, F, G>,
                at: $crate::solver::StepAt<'_>,
                noise: &$crate::solver::StepNoise<'_>,
                out: $crate::solver::StepOut<'_>,
                stats: &mut $crate::Stats,
            ) -> $crate::solver::StepStatus {
                self.$inner().step(cache, fields, at, noise, out, stats)
            }
            fn accept(&self, cache: &mut $cache) {
                self.$inner().accept(cache)
            }
            fn carried_state<'c>(&self, cache: &'c $cache) -> &'c [f64] {
                self.$inner().carried_state(cache)
            }
            fn dense_table<'c>(&self, cache: &'c $cache) -> $crate::solver::DenseTable<'c> {
                self.$inner().dense_table(cache)
            }
            fn dense_stages<'c, F: $crate::Drift, G: $crate::Diffusion>(
                &self,
                cache: &'c mut $cache,
                fields: &$crate::solver::Fields<'_, F, G>,
                t: f64,
                h: f64,
                y: &[f64],
                y_new: &[f64],
                stats: &mut $crate::Stats,
            ) -> &'c [f64] {
                self.$inner()
                    .dense_stages(cache, fields, t, h, y, y_new, stats)
            }
        }
    };
}
pub(crate) use delegate_solver_impl;
