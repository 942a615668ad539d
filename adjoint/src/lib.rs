//! `sdeflow-adjoint`: gradients through the solvers of `sdeflow-solvers`.
//!
//! One entry point, [`grad`], returns the loss, `dL/dp` and `dL/dy0` of a
//! loss on the saved states of an ODE or SDE solve; the [`Adjoint`] value
//! picks the strategy and the [`Differentiable`] bound says, at compile
//! time, which solvers differentiate which problems:
//!
//! - [`Adjoint::Discrete`]: the exact derivative of the computed discrete
//!   solution (Hager 2000; Sandu 2006), with the accepted step sizes of the
//!   forward pass treated as constants (as diffrax does: the controller is
//!   not differentiated) and recursive checkpointing, one adjoint over the
//!   one step-VJP protocol (`sdeflow_solvers::step_vjp::StepVjp`) — every
//!   explicit Runge–Kutta solver, the native implicit `Esdirk34`/`TrBdf2`
//!   (the step with its stages converged, by the implicit-function
//!   theorem), and every SDE solver on the forward solve's own Brownian
//!   path ([`discrete_gradient`]);
//! - [`Adjoint::Backsolve`], [`Adjoint::Interpolating`]: continuous adjoints
//!   of ODEs (Chen et al. 2018);
//! - [`Adjoint::Reversible`]: reversible Heun's exact adjoint (Kidger et al.
//!   2021), and [`Adjoint::Stochastic`], the stochastic adjoint (Li et al.
//!   2020), for Stratonovich SDEs solved with `ReversibleHeun`.

mod checkpoint;
mod continuous;
mod differentiable;
pub mod diffusion;
mod discrete;
mod forward;
mod loss;
pub mod regularize;
mod reversible;
mod stochastic;

pub use differentiable::Differentiable;
pub use discrete::discrete_gradient;
pub use forward::{
    Directions, Explicit, Sensitivities, TangentDiffusion, TangentDiffusionOf, TangentDrift,
    TangentDriftOf, TangentProblem, Wrt, sensitivities, tangent_problem,
};
pub use loss::{Loss, Plus, SquaredError, Terminal, Weighted};

use std::fmt;

use sdeflow_solvers::{error::SolveError, options::Options, problem::Problem, solution::Solution};

/// How gradients are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjoint {
    /// Reverse-mode through the discrete steps (exact gradient of the
    /// computed solution), with recursive checkpointing: at most
    /// `checkpoints` states are stored per level of recomputation;
    /// `usize::MAX` ([`Adjoint::STORE_ALL`]) stores every step and
    /// recomputes nothing. Snapshots hold the solver's carried state (such
    /// as reversible Heun's), so memory is bounded by the budget for every
    /// solver.
    Discrete {
        /// States stored per level (at least 2; `usize::MAX`: all).
        checkpoints: usize,
    },
    /// Continuous adjoint, integrating the state backwards with the adjoint
    /// (Chen et al. 2018): memory independent of the number of steps; the
    /// gradient converges to the true one as tolerances tighten; unreliable
    /// on strongly contracting (stiff, dissipative) or chaotic flows.
    Backsolve,
    /// Continuous adjoint reading the state from the forward dense output:
    /// stable, memory O(steps); converges as tolerances tighten.
    Interpolating,
    /// Reversible Heun's exact adjoint: earlier states are
    /// reconstructed by the algebraic reverse step, so memory does not grow
    /// with the number of steps.
    Reversible,
    /// The stochastic adjoint of Li et al. 2020 (with `ReversibleHeun`): the
    /// augmented adjoint SDE solved backwards on the forward solve's path;
    /// memory independent of the number of steps; converges to the pathwise
    /// gradient as the steps shrink.
    Stochastic,
}

impl Adjoint {
    /// The discrete adjoint storing every step (no recomputation; memory
    /// `O(steps)`).
    pub const STORE_ALL: Adjoint = Adjoint::Discrete {
        checkpoints: usize::MAX,
    };
}

/// A gradient and the work it took.
#[derive(Debug, Clone)]
pub struct Gradient {
    /// The loss value.
    pub loss: f64,
    /// `dL/dp`.
    pub dp: Vec<f64>,
    /// `dL/dy0`.
    pub dy0: Vec<f64>,
    /// The forward solution (saved as the options ask).
    pub solution: Solution,
    /// Vector–Jacobian products of the drift in the backward pass.
    pub vjps: usize,
    /// Drift evaluations of the backward pass spent recomputing states:
    /// replays of steps between checkpoints (discrete adjoint; none when
    /// every step is stored), reverse steps (reversible), the backward
    /// solve (continuous, stochastic). Evaluations inside step VJPs are
    /// not counted (their work is `vjps`).
    pub backward_drift_evals: usize,
    /// Largest number of states held at once by the backward pass.
    pub peak_stored_states: usize,
}

/// Why a gradient could not be computed. Its `Debug` is its `Display`
/// text (short, with the hint), as for [`SolveError`].
#[derive(Clone)]
#[non_exhaustive]
pub enum GradError {
    /// The forward solve failed.
    Solve(SolveError),
    /// A solve of the backward pass (the continuous adjoints' adjoint
    /// system) failed.
    Backward(SolveError),
    /// The loss returned a non-finite value or gradient.
    Loss(String),
    /// A user closure panicked (the loss, or a field during the forward or
    /// backward pass); the gradient was abandoned.
    Panicked {
        /// Which closure (`"loss"`, or `"drift or diffusion"`).
        closure: &'static str,
        /// The panic's message.
        message: String,
    },
    /// `Adjoint::Backsolve` integrated the state back to `t0` and did not
    /// find `y0`: the backward solve of the state is unstable on this
    /// problem (a contracting or chaotic flow), so its gradient is not
    /// trustworthy.
    Reconstruction {
        /// The worst component of the reconstructed initial state.
        component: usize,
        /// Its reconstructed value.
        reconstructed: f64,
        /// Its true value `y0[component]`.
        y0: f64,
        /// The error norm (scaled by `atol + rtol·|y0|`, RMS over the
        /// components) of the reconstruction.
        norm: f64,
    },
    /// This combination of problem, solver, save policy and adjoint is not
    /// supported (yet); the message says what is.
    Unsupported(String),
}

impl fmt::Display for GradError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GradError::Solve(e) => write!(f, "forward solve failed: {e}"),
            GradError::Backward(e) => write!(f, "backward (adjoint) solve failed: {e}"),
            GradError::Loss(why) => write!(f, "loss: {why}"),
            GradError::Panicked { closure, message } => write!(
                f,
                "the {closure} panicked: \"{message}\"; the gradient was abandoned"
            ),
            GradError::Reconstruction {
                component,
                reconstructed,
                y0,
                norm,
            } => write!(
                f,
                "Backsolve reconstructed y0[{component}] = {reconstructed:e} instead of \
                 {y0:e} (scaled error norm {norm:.3e} > {RECONSTRUCTION_LIMIT:e}): integrating \
                 the state backwards is unstable on this problem, so the gradient would be \
                 wrong; use Adjoint::Interpolating (reads the forward solution) or \
                 Adjoint::Discrete (exact for the computed solution)"
            ),
            GradError::Unsupported(why) => write!(f, "unsupported: {why}"),
        }
    }
}

impl fmt::Debug for GradError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// The largest scaled error norm (RMS over the components of
/// `(y_rec − y0) / (atol + rtol·|y0|)`) accepted for `Backsolve`'s
/// reconstruction of `y0`. A global error of a few hundred local
/// tolerances is ordinary for a stable backward solve over many steps
/// (each step adds up to one tolerance); beyond this the backward flow has
/// amplified the error, and the gradient read along it is off by as much.
pub const RECONSTRUCTION_LIMIT: f64 = 1e3;

impl std::error::Error for GradError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GradError::Solve(e) | GradError::Backward(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SolveError> for GradError {
    fn from(e: SolveError) -> Self {
        GradError::Solve(e)
    }
}

/// A loss that records whether it is running, so that a panic caught at
/// [`grad`] can be blamed on it (once per evaluation of the loss, never per
/// step).
struct Watched<'l, L: ?Sized> {
    loss: &'l L,
    running: std::cell::Cell<bool>,
}

impl<L: ?Sized> Watched<'_, L> {
    /// `f` of the loss, marked as running while it runs.
    fn watch<R>(&self, f: impl FnOnce(&L) -> R) -> R {
        self.running.set(true);
        let out = f(self.loss);
        self.running.set(false);
        out
    }
}

impl<L: Loss + ?Sized> Loss for Watched<'_, L> {
    fn eval(&self, ts: &[f64], ys: &[f64], grad: &mut [f64]) -> f64 {
        self.watch(|l| l.eval(ts, ys, grad))
    }

    fn check(&self, ts: &[f64], n: usize) -> Result<(), String> {
        self.watch(|l| l.check(ts, n))
    }
}

/// `(L, dL/dp, dL/dy0)` of `loss` on the solution of `problem` (an ODE or
/// an SDE) with `solver`, by `adjoint`. For SDEs the path is the one
/// [`sdeflow_solvers::solve`] sees for the same problem and seed. Which
/// solver differentiates which problem by which adjoint is in
/// [`Differentiable`]; other pairings do not compile. A panic in the loss
/// or the fields is caught and returned as [`GradError::Panicked`].
///
/// ```
/// use sdeflow_adjoint::{Adjoint, grad};
/// use sdeflow_solvers::dual::{DualNum, Generic, GenericField};
/// use sdeflow_solvers::options::{Options, SaveAt};
/// use sdeflow_solvers::problem::Problem;
/// use sdeflow_solvers::erk::Tsit5;
///
/// struct Decay;
/// impl GenericField for Decay {
///     fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
///         dy[0] = -p[0] * y[0];
///     }
/// }
/// let p = Problem::ode_field(Generic(Decay), vec![2.0], (0.0, 1.0)).params(vec![0.5]);
/// let opts = Options::default().tol(1e-10).save_at(SaveAt::T1);
/// // L = y(1) = 2 e^{-p}: dL/dp = -2 e^{-p}, dL/dy0 = e^{-p}
/// let g = grad(&p, Tsit5, &opts, &|_ts: &[f64], ys: &[f64], gy: &mut [f64]| {
///     gy[0] = 1.0;
///     ys[0]
/// }, Adjoint::Discrete { checkpoints: 32 }).unwrap();
/// assert!((g.dp[0] + 2.0 * (-0.5f64).exp()).abs() < 1e-8);
/// assert!((g.dy0[0] - (-0.5f64).exp()).abs() < 1e-8);
/// ```
pub fn grad<F, G, D, S, L>(
    problem: &Problem<F, G, D>,
    solver: S,
    options: impl AsRef<Options>,
    loss: &L,
    adjoint: Adjoint,
) -> Result<Gradient, GradError>
where
    S: Differentiable<F, G, D>,
    L: Loss + ?Sized,
{
    // a panic in the loss or a field becomes an error of this gradient
    // (caught here, once, not per evaluation)
    let watched = Watched {
        loss,
        running: std::cell::Cell::new(false),
    };
    let run = std::panic::AssertUnwindSafe(|| {
        solver.gradient(problem, options.as_ref(), &watched, adjoint)
    });
    std::panic::catch_unwind(run).unwrap_or_else(|payload| {
        Err(GradError::Panicked {
            closure: if watched.running.get() {
                "loss"
            } else {
                "drift or diffusion"
            },
            message: sdeflow_solvers::error::panic_message(&*payload),
        })
    })
}
