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
//!     |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| {
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
//! See `docs/getting-started.md`, `docs/choosing-a-solver.md`, `docs/sde.md`
//! and `docs/ensembles.md`.

pub use sdeflow_solvers::{
    Bdf, Bs3, Controller, Diffusion, Dopri5, Drift, Esdirk34, Euler, EulerHeun, EulerMaruyama,
    ExplicitRk, Heun, Interpretation, JacobianSource, Method, Milstein, MilsteinDerivative,
    NewtonOptions, NoDiffusion, Noise, Options, PiController, PidController, Problem,
    ReversibleHeun, SaveAt, Solution, SolveError, Solver, Sosri, Sra1, Sra3, Sriw1, Stats, Status,
    StepController, Tolerance, TrBdf2, Tsit5, Vern7, WithJacobian, solve,
};

pub use sdeflow_adjoint::{
    Adjoint, Differentiable, GradError, Gradient, Loss, discrete_gradient, grad,
};
pub use sdeflow_solvers::{DiffusionVjp, DriftVjp, FiniteDifferenceVjp, WithVjp};

/// The building blocks, for users who write their own solvers or tableaus.
pub use sdeflow_solvers::{
    brownian, controller, dense, dual, erk, field, initial_step, integrate, noise, norm, options,
    problem, sde, solution, solver, step_vjp, stiff, tableau,
};

pub mod ensemble;
#[cfg(feature = "mpi")]
pub mod ensemble_mpi;
pub mod nn;
#[cfg(feature = "mpi")]
pub use mpi;
pub mod statistics;

/// Everything a typical program needs: `use sdeflow::prelude::*;`.
pub mod prelude {
    pub use crate::ensemble::{Ensemble, OnFailure};
    pub use sdeflow_adjoint::{Adjoint, Differentiable, Gradient, Loss, grad};
    pub use sdeflow_solvers::dual::{DualNum, Generic, GenericField};
    pub use sdeflow_solvers::prelude::*;
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
    #[doc = include_str!("../README.md")]
    struct Readme;
}
