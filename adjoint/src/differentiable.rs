//! Which solvers gradients flow through, for which problems, by which
//! adjoints: the bounds of the one public [`crate::grad`].
//!
//! A solver implements [`Differentiable<F, G, D>`] for the problems it can
//! differentiate (drift `F`, diffusion `G`, noise driver `D`): the explicit
//! Runge–Kutta methods for ODEs (`G = NoDiffusion`) with drifts that have a
//! VJP, the native implicit methods `Esdirk34` and `TrBdf2` for ODEs too,
//! `Bdf` (multistep, its history carried) for ODEs by the discrete adjoint or
//! the interpolating adjoint with a stiff backward solve, the SDE solvers for SDEs whose drift and diffusion
//! have VJPs. A pairing without an implementation — Tsit5 on an SDE,
//! EulerMaruyama on an ODE, a field without a VJP — does not compile. An
//! adjoint a solver does not offer (e.g. `Adjoint::Reversible` with
//! Euler–Maruyama, `Adjoint::Backsolve` with `Bdf`) is a
//! [`GradError::Unsupported`] returned before any work is done.

use sdeflow_solvers::brownian::Driver;
use sdeflow_solvers::diffusion::{
    AdaptiveDpmSolver, Ddim, DdpmAncestral, Deis, DpmSolver2, DpmSolver2M, DpmSolver3, DpmSolver3M,
    DpmSolverFast, DpmSolverPP2M, DpmSolverPP2S, DpmSolverPP3M, EdmHeun, IPndm, LangevinPc, Lms,
    ModelVjp, NoiseSchedule, PfEuler, Plms, Pndm, ProbabilityFlow, ReverseEulerMaruyama,
    ReverseNoise, ReverseSde, SdeDpmSolver1, SdeDpmSolverPP2M, UniPc,
};
use sdeflow_solvers::erk::{Bs3, Dopri5, Euler, ExplicitRk, Heun, Tsit5, Vern7};
use sdeflow_solvers::expint::{
    ConvolutionNoise, CovarianceNoise, Etd1, Etdrk2, Etdrk4, Etdrk32, HochbruckOstermann, Krogstad,
    LawsonEuler, LinearPartVjp, Semilinear, StochasticExpEuler,
};
use sdeflow_solvers::fractional::{
    FractionalEuler, FractionalHeun, FractionalModalEuler, FractionalNoise,
};
use sdeflow_solvers::sde::{
    EulerHeun, EulerMaruyama, Milstein, ReversibleHeun, Sosri, Sra1, Sra3, Sriw1,
};
use sdeflow_solvers::solver::OdeProblem;
use sdeflow_solvers::step_vjp::StepVjp;
use sdeflow_solvers::stiff::{Bdf, Esdirk34, TrBdf2};
use sdeflow_solvers::tableau::Tableau;
use sdeflow_solvers::{
    Method, field::DiffusionVjp, field::DriftVjp, field::NoDiffusion, options::Options,
    problem::Problem,
};

use crate::continuous::{BackwardMethod, StateSource};
use crate::loss::Loss;
use crate::{Adjoint, GradError, Gradient};

/// A solver that gradients flow through, for problems with drift `F`,
/// diffusion `G` and driver `D`. [`crate::grad`] calls it; implement it to
/// make a solver of your own differentiable. Any [`Method`] can be: a
/// [`Solver`](sdeflow_solvers::solver::Solver) run in the generic loop, or one with
/// its own engine (`Bdf`). A solver of your own that implements the
/// step-VJP protocol ([`StepVjp`](sdeflow_solvers::step_vjp::StepVjp))
/// implements it in one line, with [`crate::discrete_gradient`]
/// (`tests/suite/extension_sde.rs`).
///
/// An SDE differentiated through Euler–Maruyama:
///
/// ```
/// use sdeflow_adjoint::{Adjoint, grad};
/// use sdeflow_solvers::dual::{DualNum, Generic, GenericField};
/// use sdeflow_solvers::sde::EulerMaruyama;
/// use sdeflow_solvers::noise::Noise;
/// use sdeflow_solvers::options::{Options, SaveAt};
/// use sdeflow_solvers::problem::Problem;
///
/// struct Lin;
/// impl GenericField for Lin {
///     fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], o: &mut [D]) {
///         o[0] = p[0] * y[0];
///     }
/// }
/// let sde = Problem::sde_field(Generic(Lin), Generic(Lin), Noise::Scalar, vec![1.0], (0.0, 1.0))
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
/// use sdeflow_solvers::noise::Noise;
/// use sdeflow_solvers::options::{Options, SaveAt};
/// use sdeflow_solvers::problem::Problem;
/// use sdeflow_solvers::erk::Tsit5;
///
/// struct Lin;
/// impl GenericField for Lin {
///     fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], o: &mut [D]) {
///         o[0] = p[0] * y[0];
///     }
/// }
/// let sde = Problem::sde_field(Generic(Lin), Generic(Lin), Noise::Scalar, vec![1.0], (0.0, 1.0))
///     .params(vec![0.3]);
/// let opts = Options::default().fixed_step(0.01).save_at(SaveAt::T1);
/// let loss = |_ts: &[f64], ys: &[f64], g: &mut [f64]| { g[0] = 1.0; ys[0] };
/// let g = grad(&sde, Tsit5, &opts, &loss, Adjoint::STORE_ALL);
/// ```
pub trait Differentiable<F, G, D>: Method<Problem<F, G, D>> {
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

/// A gradient to compute: the problem, the options of its solve and the
/// loss. The solvers' [`Differentiable`] implementations call its method for
/// their family, with the adjoint asked for.
pub(crate) struct Request<'a, F, G, D, L: ?Sized> {
    pub(crate) problem: &'a Problem<F, G, D>,
    pub(crate) options: &'a Options,
    pub(crate) loss: &'a L,
}

impl<F: DriftVjp, D: Driver, L: Loss + ?Sized> Request<'_, F, NoDiffusion, D, L> {
    /// The ODE adjoints of a one-step solver with a step VJP (explicit
    /// Runge–Kutta; the native implicit methods, whose discrete adjoint
    /// reverses each step by the implicit-function theorem, one transposed
    /// linear solve per implicit stage, for losses on step ends).
    fn one_step<S: StepVjp<OdeProblem<F, D>> + BackwardMethod<F> + Copy>(
        &self,
        solver: &S,
        adjoint: Adjoint,
    ) -> Result<Gradient, GradError> {
        let Request {
            problem,
            options,
            loss,
        } = *self;
        let source = match adjoint {
            Adjoint::Discrete { .. } => {
                return crate::discrete_gradient(problem, solver, options, loss, adjoint);
            }
            Adjoint::Backsolve => StateSource::Backsolve,
            Adjoint::Interpolating => StateSource::Interpolating,
            Adjoint::Reversible | Adjoint::Stochastic => {
                return Err(GradError::Unsupported(format!(
                    "{adjoint:?} is an SDE adjoint; for ODEs use Adjoint::Discrete, Backsolve or \
                     Interpolating"
                )));
            }
        };
        self.continuous(solver, source)
    }

    /// `Bdf` (variable-order BDF/NDF): the discrete adjoint (its history
    /// as carried state, each step reversed by the implicit-function
    /// theorem), or the interpolating one with a stiff backward solve
    /// (native `Esdirk34` on the adjoint system with its exact Jacobian;
    /// see `continuous`). Backsolve integrates `y` backwards, which blows
    /// up on the contracting flows `Bdf` is for: refused before any work.
    fn bdf(&self, solver: &Bdf, adjoint: Adjoint) -> Result<Gradient, GradError> {
        match adjoint {
            Adjoint::Interpolating => self.stiff_interpolating(solver),
            Adjoint::Discrete { .. } => {
                let Request {
                    problem,
                    options,
                    loss,
                } = *self;
                crate::discrete_gradient(problem, solver, options, loss, adjoint)
            }
            Adjoint::Backsolve => Err(GradError::Unsupported(
                "Adjoint::Backsolve with Bdf: integrating the state backwards is unstable on the \
                 stiff, contracting flows Bdf is for; use Adjoint::Discrete { checkpoints } \
                 (bounded memory) or Adjoint::Interpolating"
                    .into(),
            )),
            Adjoint::Reversible | Adjoint::Stochastic => Err(GradError::Unsupported(format!(
                "{adjoint:?} is an SDE adjoint; with Bdf use Adjoint::Discrete or \
                 Adjoint::Interpolating"
            ))),
        }
    }
}

impl<F: DriftVjp, G: DiffusionVjp, D: Driver, L: Loss + ?Sized> Request<'_, F, G, D, L> {
    /// The discrete adjoint of an SDE solver with a step VJP (what a
    /// solver of your own gets through [`crate::discrete_gradient`]).
    fn sde<S: StepVjp<Problem<F, G, D>>>(
        &self,
        solver: &S,
        adjoint: Adjoint,
    ) -> Result<Gradient, GradError> {
        crate::discrete_gradient(self.problem, solver, self.options, self.loss, adjoint)
    }
}

/// Implements [`Differentiable`] (`Differentiable<F, $g, D>`) for each
/// solver type `$name`, generic over `$gen` besides the drift `F: DriftVjp`
/// and the driver `D`, by the [`Request`] method `$via`.
macro_rules! differentiable {
    (impl[$($gen:tt)*] Differentiable<F, $g:ty, D> for => $via:ident) => {};
    (
        impl[$($gen:tt)*] Differentiable<F, $g:ty, D>
        for $name:ty $(, $rest:ty)* => $via:ident
    ) => {
        impl<F: DriftVjp, D: Driver, $($gen)*> Differentiable<F, $g, D> for $name {
            fn gradient<L: Loss + ?Sized>(
                &self,
                problem: &Problem<F, $g, D>,
                options: &Options,
                loss: &L,
                adjoint: Adjoint,
            ) -> Result<Gradient, GradError> {
                Request { problem, options, loss }.$via(self, adjoint)
            }
        }
        differentiable!(impl[$($gen)*] Differentiable<F, $g, D> for $($rest),* => $via);
    };
}

differentiable!(impl[] Differentiable<F, NoDiffusion, D> for Euler, Heun, Bs3, Dopri5, Tsit5, Vern7 => one_step);
// Any tableau held by a `Copy` handle: `ExplicitRk<&'static ButcherTableau>`
// (the built-ins' storage) and `ExplicitRk<&OwnedTableau>` (a tableau built
// at run time).
differentiable!(impl[T: Tableau + Copy] Differentiable<F, NoDiffusion, D> for ExplicitRk<T> => one_step);
differentiable!(impl[] Differentiable<F, NoDiffusion, D> for Esdirk34, TrBdf2 => one_step);
differentiable!(impl[] Differentiable<F, NoDiffusion, D> for Bdf => bdf);
differentiable!(
    impl[G: DiffusionVjp] Differentiable<F, G, D>
    for EulerMaruyama, EulerHeun, Milstein, Sriw1, Sosri, Sra1, Sra3 => sde
);
differentiable!(impl[G: DiffusionVjp] Differentiable<F, G, D> for ReversibleHeun => reversible_heun);

/// Implements [`Differentiable`] for the fBM-driven methods on the problems
/// driven by fractional noise (the only ones they take): the discrete
/// adjoint through their step VJP, which differentiates in `H` too when the
/// weights read it from the parameters.
macro_rules! differentiable_fractional {
    ($($name:ty),*) => {$(
        impl<F: DriftVjp, G: DiffusionVjp> Differentiable<F, G, FractionalNoise> for $name {
            fn gradient<L: Loss + ?Sized>(
                &self,
                problem: &Problem<F, G, FractionalNoise>,
                options: &Options,
                loss: &L,
                adjoint: Adjoint,
            ) -> Result<Gradient, GradError> {
                Request { problem, options, loss }.sde(self, adjoint)
            }
        }
    )*};
}
differentiable_fractional!(FractionalEuler, FractionalHeun, FractionalModalEuler);

/// Implements [`Differentiable`] through the discrete adjoint (the step VJPs;
/// losses on step ends) for ODE solvers of one drift type: the exponential
/// integrators on semilinear problems (gradients in `y0` and in the
/// parameters of `N` and of a parameter-dependent `L`) and the diffusion
/// samplers with a step VJP on the probability flow of a model with a VJP
/// (gradients in the initial noise `x_T` and the model's parameters; the
/// past predictions of the multistep ones are carried state).
macro_rules! differentiable_discrete {
    ($gen:tt $drift:ty; $($name:ty),*) => {$(
        differentiable_discrete!(@one $gen $drift, NoDiffusion; $name);
    )*};
    ($gen:tt $drift:ty, $diffusion:ty; $($name:ty),*) => {$(
        differentiable_discrete!(@one $gen $drift, $diffusion; $name);
    )*};
    (@one [$($gen:tt)*] $drift:ty, $diffusion:ty; $name:ty) => {
        impl<$($gen)*, D: Driver> Differentiable<$drift, $diffusion, D> for $name {
            fn gradient<L: Loss + ?Sized>(
                &self,
                problem: &Problem<$drift, $diffusion, D>,
                options: &Options,
                loss: &L,
                adjoint: Adjoint,
            ) -> Result<Gradient, GradError> {
                crate::discrete_gradient(problem, self, options, loss, adjoint)
            }
        }
    };
}

differentiable_discrete!(
    [Lp: LinearPartVjp, N: DriftVjp] Semilinear<Lp, N>;
    Etd1, LawsonEuler, Etdrk2, Etdrk32, Etdrk4, Krogstad, HochbruckOstermann
);

differentiable_discrete!(
    [M: ModelVjp, S: NoiseSchedule] ProbabilityFlow<M, S>;
    Ddim, DpmSolver2, DpmSolverPP2S, DpmSolverPP2M, DpmSolverPP3M, PfEuler, EdmHeun, DpmSolver3,
    DpmSolver2M, DpmSolver3M, DpmSolverFast, Deis, Pndm, Plms, IPndm, Lms, UniPc, AdaptiveDpmSolver
);

// DPM-Solver-v3 (it borrows its statistics; they are constants of the VJP)
differentiable_discrete!(
    [M: ModelVjp, S: NoiseSchedule] ProbabilityFlow<M, S>;
    sdeflow_solvers::diffusion::DpmSolverV3<'_>
);

// the reverse-SDE samplers with a step VJP, on the reverse SDE of a model
// with a VJP (the noise is replayed from the forward solve's path)
differentiable_discrete!(
    [M: ModelVjp, S: NoiseSchedule] ReverseSde<M, S>, ReverseNoise<S>;
    ReverseEulerMaruyama, DdpmAncestral, SdeDpmSolver1, SdeDpmSolverPP2M, LangevinPc
);

// stochastic DDIM (η ∈ [0, 1]) and EDM's churn on the reverse SDE, as above
differentiable_discrete!(
    [M: ModelVjp, S: NoiseSchedule] ReverseSde<M, S>, ReverseNoise<S>;
    sdeflow_solvers::diffusion::DdimEta, sdeflow_solvers::diffusion::EdmChurn
);

/// Implements [`Differentiable`] for stochastic exponential Euler on the
/// semilinear SDEs driven by `$driver`: the discrete adjoint through its
/// step VJP.
macro_rules! differentiable_exp_euler {
    ($(#[$doc:meta])* [$($gen:tt)*] $driver:ty) => {
        $(#[$doc])*
        impl<Lp: LinearPartVjp, N: DriftVjp, G: DiffusionVjp, $($gen)*>
            Differentiable<Semilinear<Lp, N>, G, $driver> for StochasticExpEuler
        {
            fn gradient<L: Loss + ?Sized>(
                &self,
                problem: &Problem<Semilinear<Lp, N>, G, $driver>,
                options: &Options,
                loss: &L,
                adjoint: Adjoint,
            ) -> Result<Gradient, GradError> {
                Request {
                    problem,
                    options,
                    loss,
                }
                .sde(self, adjoint)
            }
        }
    };
}

differentiable_exp_euler!(
    /// Driven by the convolutions ([`ConvolutionNoise`]): gradients in `y0`
    /// and in the parameters of `N` and `G`.
    [] ConvolutionNoise
);
differentiable_exp_euler!(
    /// On the exact-covariance route ([`CovarianceNoise`]): gradients in
    /// `y0`, in the parameters of `N` and `G`, and in those of a
    /// parameter-dependent diagonal `L`.
    [Dr: Driver] CovarianceNoise<Dr>
);
