//! # sdeflow
//!
//! Ordinary and stochastic differential equations in Rust: adaptive explicit
//! Runge–Kutta solvers with dense output, stiff solvers (native
//! variable-order BDF/NDF and ESDIRK methods), SDE solvers (Euler–Maruyama, Milstein,
//! SRI/SRA stochastic Runge–Kutta, reversible Heun) driven by the problem's
//! noise driver (a virtual Brownian tree by default), gradients through the
//! solvers with one [`grad`] (discrete, continuous, reversible and
//! stochastic adjoints), and Monte Carlo ensembles that are bit-reproducible
//! on any number of threads or MPI ranks.
//!
//! A problem is defined with closures and solved with one call:
//!
//! ```
//! use sdeflow::prelude::*;
//!
//! let lv = Problem::ode(
//!     |_t, y, p, dy| {
//!         dy[0] = p[0] * y[0] - p[1] * y[0] * y[1];
//!         dy[1] = -p[2] * y[1] + p[3] * y[0] * y[1];
//!     },
//!     vec![1.0, 1.0],
//!     (0.0, 10.0),
//! )
//! .params(vec![1.5, 1.0, 3.0, 1.0]);
//! let sol = solve(&lv, Tsit5, Options::default().rtol(1e-6).atol(1e-6))?;
//! println!("{:?} after {} drift evaluations", sol.last(), sol.stats.drift_evals);
//! # Ok::<(), SolveError>(())
//! ```
//!
//! Gradients need fields written generically over the scalar, which
//! [`field::generic_field!`] makes from closure syntax, and a loss such as
//! [`adjoint::Terminal`]:
//!
//! ```
//! use sdeflow::prelude::*;
//!
//! // dy = -p0 y dt + p1 y dW (geometric Brownian motion), L = y(1)
//! let gbm = Problem::sde_field(
//!     generic_field!(|_t, y, p, dy| dy[0] = -p[0] * y[0]),
//!     generic_field!(|_t, y, p, g| g[0] = p[1] * y[0]),
//!     Noise::Diagonal,
//!     vec![1.0],
//!     (0.0, 1.0),
//! )
//! .params(vec![0.5, 0.2]);
//! let opts = Options::default().fixed_step(1e-3).seed(7).save_at(SaveAt::T1);
//! let g = grad(&gbm, EulerMaruyama, &opts, &Terminal::new(0), Adjoint::STORE_ALL)?;
//! // pathwise: dL/dp0 = -L (the drift's rate scales the log of y by -t)
//! assert!((g.dp[0] + g.loss).abs() < 1e-2 * g.loss);
//! # Ok::<(), sdeflow::adjoint::GradError>(())
//! ```
//!
//! Guides: `docs/getting-started.md`, `docs/choosing-a-solver.md`,
//! `docs/sde.md`, `docs/ensembles.md` and `docs/gradients.md` (what each
//! adjoint differentiates, what it costs, and what it cannot do yet).

// The public surface: every item at exactly one path (the prelude aside),
// grouped by family. The implementation crates `sdeflow-solvers` and
// `sdeflow-adjoint` are laid out by file; this crate is laid out by what a
// user reaches for.

mod error;
pub use error::Error;
pub use sdeflow_adjoint::{grad, sensitivities};
pub use sdeflow_solvers::error::SolveError;
pub use sdeflow_solvers::options::{Options, SaveAt, Tolerance};
pub use sdeflow_solvers::problem::Problem;
pub use sdeflow_solvers::solution::{Solution, Stats, Status};
pub use sdeflow_solvers::solver::{OdeProblem, SdeProblem};
pub use sdeflow_solvers::{Method, solve};

/// Vector fields: the drift and diffusion traits, their Jacobian and VJP
/// forms, and the dual numbers that derive them.
///
/// A closure `|t, y, p, dy|` is a [`Drift`](field::Drift); a closure
/// `|t, y, p, g|` is a [`Diffusion`](field::Diffusion). Fields generic over
/// the scalar ([`GenericField`](field::GenericField), wrapped in
/// [`Generic`](field::Generic)) get exact Jacobians and VJPs from dual
/// numbers.
pub mod field {
    pub use sdeflow_solvers::dual::{Dual64, DualNum, Generic, GenericField};
    pub use sdeflow_solvers::field::{
        Diffusion, DiffusionVjp, Drift, DriftVjp, FiniteDifferenceVjp, NoDiffusion, WithJacobian,
        WithVjp,
    };
    pub use sdeflow_solvers::generic_field;
}

/// Explicit Runge–Kutta methods for non-stiff ODEs, and the Butcher tableaus
/// they are built from (built in, or assembled at run time).
pub mod ode {
    pub use sdeflow_solvers::erk::{Bs3, Dopri5, Euler, ExplicitRk, Heun, Tsit5, Vern7};

    /// Butcher tableaus: the built-in ones, tableaus assembled at run time
    /// ([`OwnedTableau`](tableau::OwnedTableau)) and the order conditions
    /// they are validated against.
    pub mod tableau {
        pub use sdeflow_solvers::tableau::order_conditions;
        pub use sdeflow_solvers::tableau::{
            BS3, ButcherTableau, DP5, DenseTableau, EULER, HEUN, OwnedTableau, TSIT5, Tableau,
            TableauBuilder, VERN7,
        };
    }
}

/// Stiff ODE solvers, all in the one loop and all differentiable:
/// variable-order BDF/NDF and the ESDIRK methods (ESDIRK3(4), TR-BDF2);
/// diffsol's versions of the three as references; Newton settings and
/// Jacobian sources.
pub mod stiff {
    pub use sdeflow_solvers::stiff::{
        Bdf, DiffsolBdf, DiffsolEsdirk34, DiffsolTrBdf2, ESDIRK34, Esdirk, Esdirk34, EsdirkTableau,
        JacobianSource, NewtonOptions, TRBDF2, TrBdf2,
    };
}

/// Exponential integrators for semilinear ODEs `y' = L(p) y + N(t, y, p)`:
/// the [`expint::Semilinear`] drift and its linear parts, exponential
/// Euler, Lawson–Euler, ETDRK2, the adaptive ETDRK3(2), ETDRK4,
/// Krogstad's and Hochbruck–Ostermann's methods, their tables and the
/// φ-functions; stochastic exponential Euler for semilinear SDEs with
/// additive noise and its driver of exact stochastic convolutions.
pub mod expint {
    pub use sdeflow_solvers::expint::phi::{phi, phi_all, phi_derivatives, phi_matrices};
    pub use sdeflow_solvers::expint::phi_complex::{phi_all_complex, phi_complex};
    pub use sdeflow_solvers::expint::{
        ComplexDiagonal, ConvolutionNoise, ConvolutionPath, CovarianceNoise, CovariancePath,
        StochasticExpEuler,
    };
    pub use sdeflow_solvers::expint::{
        Dense, Diagonal, ETD1, ETDRK2, ETDRK4, ETDRK32, Etd1, Etdrk2, Etdrk4, Etdrk32, ExpRk,
        ExpTableau, HOCHBRUCK_OSTERMANN, HochbruckOstermann, KROGSTAD, Krogstad, LAWSON_EULER,
        LawsonEuler, LinearPart, LinearPartVjp, ParamDense, ParamDiagonal, Semilinear, Structure,
    };
}

/// SDE solvers: Euler–Maruyama, Milstein, Euler–Heun, reversible Heun and
/// the stochastic Runge–Kutta families SRI (SRIW1, SOSRI) and SRA (SRA1,
/// SRA3) with their tableaus.
pub mod sde {
    pub use sdeflow_solvers::sde::{
        EulerHeun, EulerMaruyama, Milstein, MilsteinDerivative, ReversibleHeun, SOSRI, SRA1, SRA3,
        SRIW1, Sosri, Sra, Sra1, Sra3, SraTableau, Sri, SriTableau, Sriw1,
    };
}

/// Diffusion-model samplers: the probability-flow ODE of a model under a
/// noise schedule as a problem ([`DiffusionOde`](diffusion::DiffusionOde)),
/// schedules, parametrisations, time grids, the samplers (DDIM/DPM-Solver,
/// DPM-Solver++, EDM Heun, probability-flow Euler) and a closed-form
/// Gaussian-mixture test bed.
pub mod diffusion {
    pub use sdeflow_solvers::diffusion::*;
}

/// Noise: its structure ([`Noise`](noise::Noise), the Itô/Stratonovich
/// [`Interpretation`](noise::Interpretation)) and the drivers a problem owns
/// (virtual Brownian tree, cached Brownian interval, i.i.d. increments, a
/// fixed grid, a sampled path), with the paths they build.
pub mod noise {
    pub use sdeflow_solvers::brownian::rng::NormalStream;
    pub use sdeflow_solvers::brownian::{
        BrownianIncrements, BrownianInterval, BrownianPath, BrownianTree, CachedInterval, Driver,
        DynPath, FixedGrid, Increments, PiecewiseLinearPath, ReversedPath, SampledPath,
        VirtualTree,
    };
    pub use sdeflow_solvers::noise::{Interpretation, Noise};
    pub use sdeflow_solvers::solution::KeptPath;
}

/// Fractional Brownian motion: exact samplers on a grid (Cholesky,
/// Davies–Harte), the Markov approximation by Ornstein–Uhlenbeck modes
/// with its optimal weights, and the [`FractionalNoise`](fractional::FractionalNoise)
/// driver serving the modes' exact convolutions.
pub mod fractional {
    pub use sdeflow_solvers::fractional::*;
}

/// Step-size control: the controllers (constant, PI, PID, the step ladder,
/// your own), the
/// first-step heuristic and the error norms.
pub mod control {
    pub use sdeflow_solvers::controller::{
        ConstantController, Controller, CustomController, PiController, PiGains, PidController,
        StepController, StepDecision, StepLadder,
    };
    pub use sdeflow_solvers::initial_step::initial_step;
    pub use sdeflow_solvers::norm::{scaled_rms, weighted_rms};
}

/// Watching a solve: every attempted step is reported to a
/// [`StepObserver`](observe::StepObserver).
pub mod observe {
    pub use sdeflow_solvers::integrate::{
        NoObserver, StepObserver, StepReport, integrate_observed,
    };
}

/// Gradients: the adjoint strategies [`grad`] runs, the loss
/// trait and loss helpers that derive their own gradient (terminal value,
/// squared error against data, sums and weighted sums: `a + w * b`), the
/// solver–problem pairings that can be differentiated, the discrete
/// adjoint on a solution already computed, and the forward sensitivities
/// `dy/dp`, `dy/dy0` at the saved times that [`sensitivities`] computes
/// (the sensitivity system, its fields and options, which solvers run it).
pub mod adjoint {
    /// Solver-heuristic regularizers (ERNODE's error-estimate penalty, and
    /// local regularization) and their exact gradients.
    pub use sdeflow_adjoint::regularize;
    pub use sdeflow_adjoint::{
        Adjoint, Differentiable, GradError, Gradient, Loss, Plus, SquaredError, Terminal, Weighted,
        discrete_gradient,
    };
    pub use sdeflow_adjoint::{
        Directions, Explicit, Sensitivities, TangentDiffusion, TangentDiffusionOf, TangentDrift,
        TangentDriftOf, TangentProblem, Wrt, tangent_problem,
    };
}

/// Writing your own solver: the [`Solver`](solver::Solver) and
/// [`StepVjp`](solver::StepVjp) traits, the problem families they are
/// implemented for, the step's inputs and outputs, and dense-output helpers.
/// `tests/suite/extension.rs` and `tests/suite/extension_sde.rs` show both traits
/// implemented outside the crate.
pub mod solver {
    pub use sdeflow_solvers::dense::{DenseOutput, combine, lagrange_table, poly_weights};
    pub use sdeflow_solvers::solver::{
        DenseTable, Family, Fields, FieldsOf, Increment, Solver, StepArgs, StepArgsOf, StepAt,
        StepNoise, StepOut, StepStatus, StepTaken, StepTakenOf,
    };
    pub use sdeflow_solvers::step_vjp::{
        InterpCotangent, Probe, StepBars, StepVjp, VjpArgs, VjpNeeds, default_check,
        refuse_err_cotangent, refuse_interp_cotangents,
    };
}

pub mod ensemble;
#[cfg(feature = "mpi")]
pub mod ensemble_mpi;
pub mod nn;
/// The MPI bindings the `mpi` feature builds on (re-exported so that a
/// program needs no second dependency to set up ranks).
#[cfg(feature = "mpi")]
pub use mpi;
pub mod statistics;
pub mod train;

/// Everything a typical program needs: `use sdeflow::prelude::*;`.
///
/// The one place an item has a second path: each name here is also at its
/// family module (or the crate root).
pub mod prelude {
    pub use crate::adjoint::{
        Adjoint, Differentiable, Gradient, Loss, Sensitivities, SquaredError, Terminal, Wrt,
    };
    pub use crate::control::{Controller, PiController, PidController};
    pub use crate::ensemble::{Ensemble, OnFailure};
    pub use crate::field::{
        Diffusion, Drift, DualNum, Generic, GenericField, NoDiffusion, generic_field,
    };
    pub use crate::noise::{
        CachedInterval, Driver, FixedGrid, Increments, Interpretation, Noise, SampledPath,
        VirtualTree,
    };
    pub use crate::ode::{Bs3, Dopri5, Euler, Heun, Tsit5, Vern7};
    pub use crate::sde::{
        EulerHeun, EulerMaruyama, Milstein, ReversibleHeun, Sosri, Sra1, Sra3, Sriw1,
    };
    pub use crate::solver::Solver;
    pub use crate::stiff::{Bdf, Esdirk34, TrBdf2};
    pub use crate::{
        Method, OdeProblem, Options, Problem, SaveAt, SdeProblem, Solution, SolveError, Stats,
        Status, grad, sensitivities, solve,
    };
}

/// The guides' code blocks are compiled and run as doc tests.
#[cfg(doctest)]
mod guides {
    #[doc = include_str!("../docs/getting-started.md")]
    struct GettingStarted;
    #[doc = include_str!("../docs/choosing-a-solver.md")]
    struct ChoosingASolver;
    #[doc = include_str!("../docs/sde.md")]
    struct Sde;
    #[doc = include_str!("../docs/ensembles.md")]
    struct Ensembles;
    #[doc = include_str!("../docs/gradients.md")]
    struct Gradients;
    #[doc = include_str!("../docs/diffusion-samplers.md")]
    struct DiffusionSamplers;
    #[doc = include_str!("../docs/fractional.md")]
    struct Fractional;
    #[doc = include_str!("../README.md")]
    struct Readme;
}
