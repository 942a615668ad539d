//! Which solvers gradients flow through, for which problems, by which
//! adjoints: the bounds of the one public [`crate::grad`].
//!
//! A solver implements [`Differentiable<F, G, D>`] for the problems it can
//! differentiate (drift `F`, diffusion `G`, noise driver `D`): the explicit
//! Runge–Kutta methods for ODEs (`G = NoDiffusion`) with drifts that have a
//! VJP, the native implicit methods `Esdirk34` and `TrBdf2` for ODEs too,
//! `Bdf` (in diffsol's engine) for ODEs by the interpolating adjoint with a
//! stiff backward solve, the SDE solvers for SDEs whose drift and diffusion
//! have VJPs. A pairing without an implementation — Tsit5 on an SDE,
//! EulerMaruyama on an ODE, a field without a VJP — does not compile. An
//! adjoint a solver does not offer (e.g. `Adjoint::Reversible` with
//! Euler–Maruyama, `Adjoint::Discrete` with `Bdf`) is a
//! [`GradError::Unsupported`] returned before any work is done.

use sdeflow_solvers::brownian::Driver;
use sdeflow_solvers::erk::{Bs3, Dopri5, Euler, ExplicitRk, Heun, Tsit5, Vern7};
use sdeflow_solvers::sde::{
    EulerHeun, EulerMaruyama, Milstein, ReversibleHeun, Sosri, Sra1, Sra3, Sriw1,
};
use sdeflow_solvers::step_vjp::OdeStepVjp;
use sdeflow_solvers::stiff::{Bdf, Esdirk34, TrBdf2};
use sdeflow_solvers::tableau::Tableau;
use sdeflow_solvers::{DiffusionVjp, DriftVjp, Method, NoDiffusion, Options, Problem, SaveAt};

use crate::loss::Loss;
use crate::reversible::reversible_heun_gradient;
use crate::{Adjoint, GradError, Gradient};

/// A solver that gradients flow through, for problems with drift `F`,
/// diffusion `G` and driver `D`. [`crate::grad`] calls it; implement it to
/// make a solver of your own differentiable. Any [`Method`] can be: a
/// [`Solver`](sdeflow_solvers::Solver) run in the generic loop, or one with
/// its own engine (`Bdf`). An SDE solver of your own that implements the
/// step-VJP protocol ([`SdeStepVjp`](sdeflow_solvers::sde::SdeStepVjp))
/// implements it in one line, with
/// [`crate::sde_discrete_gradient`] (`tests/extension_sde.rs`).
///
/// An SDE differentiated through Euler–Maruyama:
///
/// ```
/// use sdeflow_adjoint::{Adjoint, grad};
/// use sdeflow_solvers::dual::{DualNum, Generic, GenericField};
/// use sdeflow_solvers::{EulerMaruyama, Noise, Options, Problem, SaveAt};
///
/// struct Lin;
/// impl GenericField for Lin {
///     fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], o: &mut [D]) {
///         o[0] = p[0] * y[0];
///     }
/// }
/// let sde = Problem::sde(Generic(Lin), Generic(Lin), Noise::Scalar, vec![1.0], (0.0, 1.0))
///     .params(vec![0.3]);
/// let opts = Options::default().fixed_step(0.01).save_at(SaveAt::T1);
/// let loss = |_ts: &[f64], ys: &[f64], g: &mut [f64]| { g[0] = 1.0; ys[0] };
/// let g = grad(&sde, EulerMaruyama, &opts, &loss, Adjoint::STORE_ALL).unwrap();
/// assert!(g.dp[0].is_finite());
/// ```
///
/// The same SDE with an ODE solver does not compile (`Tsit5` is
/// `Differentiable` for ODEs only):
///
/// ```compile_fail
/// use sdeflow_adjoint::{Adjoint, grad};
/// use sdeflow_solvers::dual::{DualNum, Generic, GenericField};
/// use sdeflow_solvers::{Noise, Options, Problem, SaveAt, Tsit5};
///
/// struct Lin;
/// impl GenericField for Lin {
///     fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], o: &mut [D]) {
///         o[0] = p[0] * y[0];
///     }
/// }
/// let sde = Problem::sde(Generic(Lin), Generic(Lin), Noise::Scalar, vec![1.0], (0.0, 1.0))
///     .params(vec![0.3]);
/// let opts = Options::default().fixed_step(0.01).save_at(SaveAt::T1);
/// let loss = |_ts: &[f64], ys: &[f64], g: &mut [f64]| { g[0] = 1.0; ys[0] };
/// let g = grad(&sde, Tsit5, &opts, &loss, Adjoint::STORE_ALL);
/// ```
pub trait Differentiable<F, G, D>: Method {
    /// `(L, dL/dp, dL/dy0)` of `loss` on the solve of `problem` with this
    /// solver, by `adjoint`.
    fn gradient<L: Loss + ?Sized>(
        &self,
        problem: &Problem<F, G, D>,
        options: &Options,
        loss: &L,
        adjoint: Adjoint,
    ) -> Result<Gradient, GradError>;
}

/// The store-every-step budget of the discrete adjoint.
pub(crate) fn budget(checkpoints: usize) -> usize {
    if checkpoints == usize::MAX {
        usize::MAX
    } else {
        checkpoints.max(2)
    }
}

/// The ODE adjoints of a one-step solver with a step VJP.
fn erk_gradient<F, D, S, L>(
    solver: &S,
    problem: &Problem<F, NoDiffusion, D>,
    opts: &Options,
    loss: &L,
    adjoint: Adjoint,
) -> Result<Gradient, GradError>
where
    F: DriftVjp,
    D: Driver,
    S: OdeStepVjp + sdeflow_solvers::Method + Copy,
    L: Loss + ?Sized,
{
    use crate::continuous::{StateSource, continuous_adjoint};
    match adjoint {
        Adjoint::Discrete { checkpoints } => {
            crate::discrete::discrete_adjoint(problem, solver, opts, loss, budget(checkpoints))
        }
        Adjoint::Backsolve => {
            continuous_adjoint(problem, solver, opts, loss, StateSource::Backsolve)
        }
        Adjoint::Interpolating => {
            continuous_adjoint(problem, solver, opts, loss, StateSource::Interpolating)
        }
        Adjoint::Reversible | Adjoint::Stochastic => Err(GradError::Unsupported(format!(
            "{adjoint:?} is an SDE adjoint; for ODEs use Adjoint::Discrete, Backsolve or \
             Interpolating"
        ))),
    }
}

/// Implements [`Differentiable`] for each solver type by one gradient
/// function, for ODEs (`ode`: diffusion `NoDiffusion`; the function takes
/// the solver first) or SDEs (`sde`: diffusions with a VJP; the function
/// takes `grad`'s arguments, problem first).
macro_rules! differentiable {
    (ode, $via:ident: $($name:ty),*) => {$(
        impl<F: DriftVjp, D: Driver> Differentiable<F, NoDiffusion, D> for $name {
            fn gradient<L: Loss + ?Sized>(
                &self,
                problem: &Problem<F, NoDiffusion, D>,
                options: &Options,
                loss: &L,
                adjoint: Adjoint,
            ) -> Result<Gradient, GradError> {
                $via(self, problem, options, loss, adjoint)
            }
        }
    )*};
    (sde, $via:path: $($name:ty),*) => {$(
        impl<F: DriftVjp, G: DiffusionVjp, D: Driver> Differentiable<F, G, D> for $name {
            fn gradient<L: Loss + ?Sized>(
                &self,
                problem: &Problem<F, G, D>,
                options: &Options,
                loss: &L,
                adjoint: Adjoint,
            ) -> Result<Gradient, GradError> {
                $via(problem, self, options, loss, adjoint)
            }
        }
    )*};
}
differentiable!(ode, erk_gradient: Euler, Heun, Bs3, Dopri5, Tsit5, Vern7);

/// Any tableau held by a `Copy` handle: `ExplicitRk<&'static ButcherTableau>`
/// (the built-ins' storage) and `ExplicitRk<&OwnedTableau>` (a tableau built
/// at run time).
impl<T: Tableau + Copy, F: DriftVjp, D: Driver> Differentiable<F, NoDiffusion, D>
    for ExplicitRk<T>
{
    fn gradient<L: Loss + ?Sized>(
        &self,
        problem: &Problem<F, NoDiffusion, D>,
        options: &Options,
        loss: &L,
        adjoint: Adjoint,
    ) -> Result<Gradient, GradError> {
        erk_gradient(self, problem, options, loss, adjoint)
    }
}

/// The implicit (stiff) one-step methods: the same ODE adjoints; the
/// discrete one reverses each step by the implicit-function theorem (one
/// transposed linear solve per implicit stage), for losses on step ends
/// (their dense output is not differentiated).
fn implicit_gradient<F, D, S, L>(
    solver: &S,
    problem: &Problem<F, NoDiffusion, D>,
    options: &Options,
    loss: &L,
    adjoint: Adjoint,
) -> Result<Gradient, GradError>
where
    F: DriftVjp,
    D: Driver,
    S: OdeStepVjp + sdeflow_solvers::Method + Copy,
    L: Loss + ?Sized,
{
    if matches!(adjoint, Adjoint::Discrete { .. })
        && !matches!(options.save_at, SaveAt::T1 | SaveAt::Steps)
    {
        return Err(GradError::Unsupported(format!(
            "the discrete adjoint of {} differentiates step ends only (its dense output is not \
             differentiated): use SaveAt::Steps or SaveAt::T1, or Adjoint::Interpolating",
            solver.name()
        )));
    }
    erk_gradient(solver, problem, options, loss, adjoint)
}
differentiable!(ode, implicit_gradient: Esdirk34, TrBdf2);

/// `Bdf` (variable-order BDF/NDF in diffsol's engine): the interpolating
/// adjoint only, its backward solve stiff (native `Esdirk34` on the adjoint
/// system with its exact Jacobian; see `continuous`). The discrete adjoint
/// would replay diffsol's internal steps (variable order, its own history
/// and Newton iterations), which are not replayable from outside; backsolve
/// integrates `y` backwards, which blows up on the contracting flows `Bdf`
/// is for. Both are refused before any work.
fn bdf_gradient<F, D, L>(
    solver: &Bdf,
    problem: &Problem<F, NoDiffusion, D>,
    options: &Options,
    loss: &L,
    adjoint: Adjoint,
) -> Result<Gradient, GradError>
where
    F: DriftVjp,
    D: Driver,
    L: Loss + ?Sized,
{
    match adjoint {
        Adjoint::Interpolating => {
            crate::continuous::stiff_interpolating_adjoint(problem, solver, options, loss)
        }
        Adjoint::Discrete { .. } => Err(GradError::Unsupported(
            "Adjoint::Discrete with Bdf: diffsol runs Bdf's steps internally (variable order, \
             its own history), so they cannot be replayed backwards; use Esdirk34 (or TrBdf2) \
             for a discrete adjoint, or Adjoint::Interpolating with Bdf"
                .into(),
        )),
        Adjoint::Backsolve => Err(GradError::Unsupported(
            "Adjoint::Backsolve with Bdf: integrating the state backwards is unstable on the \
             stiff, contracting flows Bdf is for; use Adjoint::Interpolating (memory O(steps)), \
             or Esdirk34 with Adjoint::Discrete { checkpoints } for bounded memory"
                .into(),
        )),
        Adjoint::Reversible | Adjoint::Stochastic => Err(GradError::Unsupported(format!(
            "{adjoint:?} is an SDE adjoint; with Bdf use Adjoint::Interpolating"
        ))),
    }
}
differentiable!(ode, bdf_gradient: Bdf);

// The built-in SDE solvers: the discrete adjoint through their step VJP,
// as an SDE solver of your own gets it.
differentiable!(sde, crate::sde_discrete_gradient: EulerMaruyama, EulerHeun, Milstein, Sriw1, Sosri, Sra1, Sra3);

// Reversible Heun: its reversible, discrete and stochastic adjoints.
differentiable!(sde, reversible_heun_gradient: ReversibleHeun);
