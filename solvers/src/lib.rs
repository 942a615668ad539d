//! `sdeflow-solvers`: the core of sdeflow — vector-field traits, problems,
//! options, Butcher tableaus, the generic explicit Runge–Kutta step, step-size
//! controllers, the integration loop, dense output and the stiff solvers
//! (native BDF/NDF and ESDIRK methods; diffsol's versions as references).
//!
//! This crate is laid out by implementation file, each item at one path
//! (its module; the [`prelude`] aside). Most users depend on the facade
//! crate `sdeflow`, which re-exports what a program needs grouped by family.
//! The pieces are orthogonal: any [`Solver`] runs under any
//! [`Controller`](controller::Controller) and [`SaveAt`](options::SaveAt)
//! policy; adding a solver does not touch the loop in [`integrate`].

pub mod brownian;
pub mod controller;
pub mod dense;
pub mod diffusion;
pub mod dual;
pub mod erk;
pub mod error;
pub mod expint;
pub mod field;
pub mod fractional;
pub mod initial_step;
pub mod integrate;
pub mod noise;
pub mod norm;
pub mod options;
pub mod problem;
pub mod sde;
pub mod solution;
pub mod solver;
pub mod step_vjp;
pub mod stiff;
pub mod tableau;

use brownian::Driver;
use error::SolveError;
use field::{Diffusion, Drift};
use options::Options;
use problem::Problem;
use solution::Solution;
use solver::Solver;

/// Anything [`solve`] accepts for problems of type `P`: every
/// [`Solver<P>`] (through the generic loop) and the solvers that run inside
/// diffsol (the references [`stiff::DiffsolBdf`], [`stiff::DiffsolTrBdf2`]
/// and [`stiff::DiffsolEsdirk34`], for ODE problems).
///
/// The stiff solvers take ODEs only; an SDE does not compile:
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
/// let _ = solve(&sde, Bdf::default(), Options::default());
/// ```
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
/// let _ = solve(&sde, Esdirk34::default(), Options::default());
/// ```
pub trait Method<P> {
    /// Solves `problem` under `options`.
    fn solve_problem(&self, problem: &P, options: &Options) -> Result<Solution, SolveError>;
}

impl<F: Drift, G: Diffusion, D: Driver, S: Solver<Problem<F, G, D>>> Method<Problem<F, G, D>>
    for S
{
    fn solve_problem(
        &self,
        problem: &Problem<F, G, D>,
        options: &Options,
    ) -> Result<Solution, SolveError> {
        integrate::integrate(problem, self, options)
    }
}

/// Solves `problem` with `method`. A panic in the problem's closures is
/// caught and returned as [`SolveError::Panicked`].
///
/// ```
/// use sdeflow_solvers::prelude::*;
/// let lv = Problem::ode(
///     |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| {
///         dy[0] = p[0] * y[0] - p[1] * y[0] * y[1];
///         dy[1] = -p[2] * y[1] + p[3] * y[0] * y[1];
///     },
///     vec![1.0, 1.0],
///     (0.0, 10.0),
/// )
/// .params(vec![1.5, 1.0, 3.0, 1.0]);
/// let sol = solve(&lv, Tsit5, Options::default().tol(1e-8))?;
/// assert!((sol.last()[0] - 1.0263447675750893).abs() < 1e-6);
/// println!("{} drift evaluations", sol.stats.drift_evals);
/// # Ok::<(), SolveError>(())
/// ```
pub fn solve<P, M: Method<P>>(
    problem: &P,
    method: M,
    options: impl AsRef<Options>,
) -> Result<Solution, SolveError> {
    // a panic in a user closure becomes an error of this solve (caught
    // here, once, not per evaluation)
    error::catch_panic("drift or diffusion", || {
        method.solve_problem(problem, options.as_ref())
    })
}

/// The names most programs need.
pub mod prelude {
    pub use crate::brownian::{
        CachedInterval, Driver, FixedGrid, Increments, SampledPath, VirtualTree,
    };
    pub use crate::controller::{Controller, PiController, PidController};
    pub use crate::dual::Generic;
    pub use crate::erk::{Bs3, Dopri5, Euler, Heun, Tsit5, Vern7};
    pub use crate::error::SolveError;
    pub use crate::field::{Diffusion, Drift, NoDiffusion};
    pub use crate::noise::{Interpretation, Noise};
    pub use crate::options::{Options, SaveAt};
    pub use crate::problem::Problem;
    pub use crate::sde::{
        EulerHeun, EulerMaruyama, Milstein, ReversibleHeun, Sosri, Sra1, Sra3, Sriw1,
    };
    pub use crate::solution::{Solution, Stats, Status};
    pub use crate::solver::{OdeProblem, SdeProblem, Solver};
    pub use crate::stiff::{Bdf, Esdirk34, TrBdf2};
    pub use crate::{Method, solve};
}
