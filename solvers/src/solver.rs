//! The `Solver` trait: one step of a method, and nothing about the loop.
//!
//! The integration loop ([`crate::integrate`]) drives any `Solver` with any
//! controller and save policy; a solver only knows how to take one step from
//! `(t, y)` of size `h`, estimate its error, and describe its interpolant.
//!
//! A solver states at compile time which problems it integrates
//! (`../shared/DESIGN.md`, seam 1): it implements [`Solver<P>`] for the
//! problem types `P` it can take, with bounds for the capabilities it
//! requires of their fields and driver. The explicit Runge–Kutta and ESDIRK
//! methods implement it for ODE problems only ([`OdeProblem`], whose
//! diffusion is [`NoDiffusion`]), so asking Tsit5 to solve an SDE does not
//! compile; the SDE methods implement it for every [`SdeProblem`]. What
//! only run time knows (a noise structure or interpretation a method does
//! not take) is refused by [`Solver::check`] with a typed error before any
//! work is done.

use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{Diffusion, Drift, NoDiffusion};
use crate::noise::Noise;
use crate::options::Tolerance;
use crate::problem::Problem;
use crate::solution::Stats;

/// A problem type as a solver sees it: its drift, diffusion and noise
/// driver types. Implemented by [`Problem`] for every combination; the
/// families are named by [`OdeProblem`] and [`SdeProblem`], and the
/// families still to come (a semilinear drift `L y + N(t, y)`, a diffusion
/// model's probability-flow drift) are problems whose drift type carries
/// the extra structure their solvers bound on.
pub trait Family {
    /// The drift's type.
    type Drift: Drift;
    /// The diffusion's type ([`NoDiffusion`] for an ODE).
    type Diffusion: Diffusion;
    /// The noise driver's type (unused by an ODE).
    type Driver: Driver;
}

impl<F: Drift, G: Diffusion, D: Driver> Family for Problem<F, G, D> {
    type Drift = F;
    type Diffusion = G;
    type Driver = D;
}

/// The ODE family: `y' = f(t, y, p)`, a problem without diffusion (what
/// [`Problem::ode`] builds). The ODE methods implement [`Solver`] for it
/// alone.
pub type OdeProblem<F, D = crate::brownian::VirtualTree> = Problem<F, NoDiffusion, D>;

/// The SDE family: `dy = f dt + g dW` driven by `D` (what [`Problem::sde`]
/// builds). The SDE methods implement [`Solver`] for it.
pub type SdeProblem<F, G, D = crate::brownian::VirtualTree> = Problem<F, G, D>;

/// The fields of the problem type `P`, bound to its parameters.
pub type FieldsOf<'a, P> = Fields<'a, <P as Family>::Drift, <P as Family>::Diffusion>;

/// Which increments of the driving noise a method's steps read, declared by
/// the method ([`Solver::INCREMENT`]); the loop draws exactly these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Increment {
    /// None: an ODE method.
    None,
    /// `ΔW` over each step.
    Dw,
    /// `ΔW` and the space–time Lévy area `H` over each step (the SRI
    /// methods).
    DwLevyArea,
    /// `ΔW` and the increments `Y_k(t + h) − Y_k(t)` of the `K`
    /// Ornstein–Uhlenbeck modes each Brownian motion drives, over each step
    /// (the fBM-driven methods of [`crate::fractional`]). Only a path that
    /// serves modes ([`crate::brownian::BrownianPath::modes_len`] `> 0`,
    /// e.g. that of [`crate::fractional::FractionalNoise`]) can drive such
    /// a method; the loop refuses any other with a typed error.
    DwModes,
}

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
    /// The increments `Y_k(t + h) − Y_k(t)` of the OU modes over the step,
    /// `K` per Brownian motion (Brownian-motion-major), where the solver
    /// asks for them ([`Increment::DwModes`]); empty otherwise.
    pub modes: &'a [f64],
}

impl StepNoise<'static> {
    /// No noise (ODE steps).
    pub const NONE: StepNoise<'static> = StepNoise {
        dw: &[],
        levy_h: &[],
        modes: &[],
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

impl<'a> DenseTable<'a> {
    /// The table of the polynomials in `poly`, `ncoef` coefficients each
    /// (`nk = poly.len() / ncoef`; `poly.len()` must be a multiple of
    /// `ncoef`).
    pub fn new(ncoef: usize, poly: &'a [f64]) -> Self {
        debug_assert!(ncoef > 0 && poly.len().is_multiple_of(ncoef));
        DenseTable {
            nk: poly.len() / ncoef,
            ncoef,
            poly,
        }
    }
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

/// The arguments of one step ([`Solver::step`]): the fields it evaluates,
/// where it starts, the increments it reads, where it writes, and the
/// counter of evaluations. `F` and `G` are the drift's and the diffusion's
/// types ([`StepArgsOf`] names them for a problem type).
#[derive(Debug)]
pub struct StepArgs<'a, F, G> {
    /// The fields, bound to the parameters.
    pub fields: &'a Fields<'a, F, G>,
    /// Where the step starts, and its size.
    pub at: StepAt<'a>,
    /// The step's Brownian increments ([`StepNoise::NONE`] for an ODE).
    pub noise: &'a StepNoise<'a>,
    /// Where the new state and the error estimate go.
    pub out: StepOut<'a>,
    /// Evaluations are counted here.
    pub stats: &'a mut Stats,
}

/// The arguments of [`Solver::step`] for the problem type `P`.
pub type StepArgsOf<'a, P> = StepArgs<'a, <P as Family>::Drift, <P as Family>::Diffusion>;

/// A step just taken, as [`Solver::dense_stages`] reads it: the fields,
/// where the step started (and its size), the state it reached, and the
/// counter of evaluations (for extra stages).
#[derive(Debug)]
pub struct StepTaken<'a, F, G> {
    /// The fields, bound to the parameters.
    pub fields: &'a Fields<'a, F, G>,
    /// Where the step started, and its size.
    pub at: StepAt<'a>,
    /// The state at `at.t + at.h`.
    pub y_new: &'a [f64],
    /// Evaluations are counted here.
    pub stats: &'a mut Stats,
}

/// The step taken for [`Solver::dense_stages`], for the problem type `P`.
pub type StepTakenOf<'a, P> = StepTaken<'a, <P as Family>::Drift, <P as Family>::Diffusion>;

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

/// One step of a numerical method, for the problems of type `P` (see the
/// module docs: a method implements it for the families it integrates).
///
/// An ODE method does not take an SDE:
///
/// ```compile_fail
/// use sdeflow_solvers::prelude::*;
/// let sde = Problem::sde(
///     |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
///     |_t: f64, _y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = 0.1,
///     Noise::Diagonal,
///     vec![1.0],
///     (0.0, 1.0),
/// );
/// let _ = solve(&sde, Tsit5, Options::default());
/// ```
pub trait Solver<P: Family> {
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

    /// The gains this method recommends for the PI controller (given to
    /// the fields of [`crate::controller::PiController`] left unset, see
    /// [`crate::controller::PiController::tuned_for`]); `None` by default:
    /// Gustafsson's.
    fn pi_gains(&self) -> Option<crate::controller::PiGains> {
        None
    }

    /// The controller this method suggests in place of the default one
    /// (PI with every field unset, `Controller::default()`): `solve` uses
    /// it only when the options carry that default, so a controller the
    /// user chose (any other, including `Controller::custom` of a default
    /// PI) is used as given. `None` by default: the default PI, tuned by
    /// [`Solver::pi_gains`]. For methods whose set-up per step size is
    /// costly (the exponential integrators' φ operators), e.g. the step
    /// ladder ([`crate::controller::StepLadder`]).
    fn suggested_controller(&self) -> Option<crate::controller::Controller> {
        None
    }

    /// The increments the steps read (`StepNoise::levy_h` is drawn only
    /// for [`Increment::DwLevyArea`], `StepNoise::modes` only for
    /// [`Increment::DwModes`]).
    const INCREMENT: Increment;

    /// Whether a method that carries state ([`Solver::carried_state`]) may
    /// be restarted by [`Solver::start`] after each discontinuity of the
    /// fields ([`crate::options::Options::discontinuities`]), its carried state made
    /// afresh from the state and fields there, as at the start of a solve
    /// (the discrete adjoint then takes [`crate::step_vjp::StepVjp::start_vjp`]
    /// there too). `false` by default: such a solve is refused, as the
    /// restart would discard what the method carries (reversible Heun's
    /// `ŷ`). Methods without carried state always restart; [`crate::stiff::Bdf`],
    /// whose carried state is its history, says `true`.
    const RESTARTS_CARRIED_STATE: bool = false;

    /// Checks what only run time knows about `problem`: its noise
    /// structure and interpretation, the method's own settings.
    fn check(&self, problem: &P) -> Result<(), SolveError>;

    /// Allocates the workspace for `problem` (its dimension, noise
    /// structure and interpretation).
    fn init(&self, problem: &P) -> Self::Cache;

    /// Hands the solve's tolerances to the workspace, once per solve,
    /// before [`Solver::start`]. A method whose own decisions are measured
    /// in the error norm keeps them: [`crate::stiff::Bdf`] compares the error
    /// estimates of its neighbouring orders to choose the next one, and
    /// measures its Newton iteration against them. Ignored by default.
    fn tolerances(&self, _cache: &mut Self::Cache, _rtol: &Tolerance, _atol: &Tolerance) {}

    /// Starts a solve at a state where the drift is `f0` and the diffusion
    /// `g0` (empty for ODEs), both already evaluated by the loop.
    fn start(&self, cache: &mut Self::Cache, f0: &[f64], g0: &[f64]);

    /// Takes one step of size `args.at.h` from `(args.at.t, args.at.y)`
    /// with the increments `args.noise` into `args.out.y_new`; writes the
    /// local error estimate into `args.out.err` when the method has one.
    fn step(&self, cache: &mut Self::Cache, args: StepArgsOf<'_, P>) -> StepStatus;

    /// The order `k` of the error estimate of the attempt just made (after
    /// [`Solver::step`], before [`Solver::accept`]), which the adaptive
    /// control hands its controller to judge that attempt, as it would
    /// [`Solver::error_order`]. [`Solver::error_order`] by default; a
    /// variable-order method (multistep, which chooses its order in
    /// [`Solver::accept`]) returns the order of the estimate it just wrote,
    /// e.g. [`crate::stiff::Bdf`] its current order plus one. The step size stays
    /// the loop's: such a method rescales its history to whatever step it
    /// is given.
    #[inline(always)]
    fn step_error_order(&self, _cache: &Self::Cache) -> Option<f64> {
        self.error_order()
    }

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

    /// The vectors the interpolant needs for the step just taken (before
    /// [`Solver::accept`]), computing extra stages if the method needs them.
    fn dense_stages<'c>(&self, cache: &'c mut Self::Cache, step: StepTakenOf<'_, P>) -> &'c [f64];
}

/// Defines a unit struct `$name` that is the solver `$inner` (an expression
/// of type `$inner_ty`, a solver with cache `$cache`, usually a
/// tableau-driven solver such as [`crate::erk::ExplicitRk`]): every method
/// delegates, for every problem type the inner solver takes.
/// `$name::tableau()` returns `$tab`.
macro_rules! delegate_solver {
    ($(#[$doc:meta])* $name:ident, $inner:expr, $inner_ty:ty, $cache:ty, $tab:expr, $tabty:ty) => {
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
            fn inner(&self) -> $inner_ty {
                $inner
            }
        }

        $crate::solver::delegate_solver_impl!($name, $inner_ty, $cache, inner);
    };
}
pub(crate) use delegate_solver;

/// Implements [`Solver`] for `$name`, for every problem type that the
/// solver `$inner_ty` (with cache `$cache`) takes, by delegating every
/// method to the solver that `$name`'s method `$inner()` returns.
macro_rules! delegate_solver_impl {
    ($name:ty, $inner_ty:ty, $cache:ty, $inner:ident) => {
        impl<P: $crate::solver::Family> $crate::solver::Solver<P> for $name
        where
            $inner_ty: $crate::solver::Solver<P, Cache = $cache>,
        {
            type Cache = $cache;
            const INCREMENT: $crate::solver::Increment =
                <$inner_ty as $crate::solver::Solver<P>>::INCREMENT;
            const RESTARTS_CARRIED_STATE: bool =
                <$inner_ty as $crate::solver::Solver<P>>::RESTARTS_CARRIED_STATE;
            fn name(&self) -> &'static str {
                self.$inner().name()
            }
            fn order(&self) -> f64 {
                self.$inner().order()
            }
            fn error_order(&self) -> Option<f64> {
                self.$inner().error_order()
            }
            fn pi_gains(&self) -> Option<$crate::controller::PiGains> {
                self.$inner().pi_gains()
            }
            fn suggested_controller(&self) -> Option<$crate::controller::Controller> {
                self.$inner().suggested_controller()
            }
            fn check(&self, problem: &P) -> Result<(), $crate::error::SolveError> {
                self.$inner().check(problem)
            }
            fn init(&self, problem: &P) -> $cache {
                self.$inner().init(problem)
            }
            fn tolerances(
                &self,
                cache: &mut $cache,
                rtol: &$crate::options::Tolerance,
                atol: &$crate::options::Tolerance,
            ) {
                $crate::solver::Solver::<P>::tolerances(&self.$inner(), cache, rtol, atol)
            }
            fn start(&self, cache: &mut $cache, f0: &[f64], g0: &[f64]) {
                self.$inner().start(cache, f0, g0)
            }
            #[inline]
            fn step(
                &self,
                cache: &mut $cache,
                args: $crate::solver::StepArgsOf<'_, P>,
            ) -> $crate::solver::StepStatus {
                self.$inner().step(cache, args)
            }
            #[inline(always)]
            fn step_error_order(&self, cache: &$cache) -> Option<f64> {
                $crate::solver::Solver::<P>::step_error_order(&self.$inner(), cache)
            }
            fn accept(&self, cache: &mut $cache) {
                $crate::solver::Solver::<P>::accept(&self.$inner(), cache)
            }
            fn carried_state<'c>(&self, cache: &'c $cache) -> &'c [f64] {
                $crate::solver::Solver::<P>::carried_state(&self.$inner(), cache)
            }
            fn dense_table<'c>(&self, cache: &'c $cache) -> $crate::solver::DenseTable<'c> {
                $crate::solver::Solver::<P>::dense_table(&self.$inner(), cache)
            }
            fn dense_stages<'c>(
                &self,
                cache: &'c mut $cache,
                step: $crate::solver::StepTakenOf<'_, P>,
            ) -> &'c [f64] {
                self.$inner().dense_stages(cache, step)
            }
        }
    };
}
pub(crate) use delegate_solver_impl;
