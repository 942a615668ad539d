//! Stiff ODE solvers, all native: they implement [`crate::solver::Solver`], so they
//! run in the one integration loop ([`crate::integrate`]) with its
//! controllers, save policies, dense output, `dt_max`, stop times and step
//! observers, and allocate nothing per step.
//!
//! * [`Bdf`]: variable-order (1–5) BDF/NDF (`bdf.rs`; Shampine & Reichelt,
//!   "The MATLAB ODE suite", SIAM J. Sci. Comput. 18 (1997); Byrne &
//!   Hindmarsh, ACM TOMS 1 (1975)), a multistep method: it keeps its history
//!   as backward differences, rescales them to whatever step the loop's
//!   controller gives it, chooses its order after each accepted step, and
//!   reports the order of each attempt's error estimate to the controller
//!   ([`crate::solver::Solver::step_error_order`]). Its Newton iteration and order
//!   choice are measured in the solve's tolerances
//!   ([`crate::solver::Solver::tolerances`]). Its history is its carried state, so
//!   it has a step VJP too ([`crate::step_vjp::StepVjp`]) and restarts at
//!   order 1 after discontinuities.
//! * [`Esdirk34`] and [`TrBdf2`]: one generic ESDIRK step
//!   (`esdirk.rs`) driven by a coefficient table (`tableau.rs`: ESDIRK3(4) of
//!   Jørgensen, Kristensen & Thomsen, arXiv:1803.01613 (2018), as diffsol
//!   writes it; TR-BDF2 of Bank et al. (1985) with the error estimate of
//!   Hosea & Shampine, Appl. Numer. Math. 20 (1996)), with simplified Newton
//!   on `W = I − hγJ` (`newton.rs`; Hairer & Wanner, *Solving ODEs II*,
//!   §IV.8). They have a step VJP ([`crate::step_vjp::StepVjp`], by the
//!   implicit-function theorem).
//! * [`DiffsolBdf`], [`DiffsolTrBdf2`] and [`DiffsolEsdirk34`]: diffsol's
//!   versions of the three native methods, run in diffsol's own drive loop
//!   (`diffsol_backend.rs`), kept as references for tests and benches.
//!
//! The ESDIRK methods' Newton iteration measures convergence in a norm
//! scaled by its own tolerances ([`NewtonOptions::rtol`],
//! [`NewtonOptions::atol`]): set them to the solve's with
//! `Esdirk34::default().tolerances(rtol, atol)`. `Bdf` reads the solve's.

mod bdf;
mod diffsol_backend;
mod esdirk;
mod exact;
mod newton;
mod tableau;

pub use bdf::{BDF_MAX_ORDER, Bdf, BdfCache, BdfVjpCache};
pub use diffsol_backend::{DiffsolBdf, DiffsolEsdirk34, DiffsolTrBdf2};
pub use esdirk::{Esdirk, EsdirkCache, EsdirkVjpCache};
pub use newton::NewtonOptions;
pub use tableau::{ESDIRK34, EsdirkTableau, TRBDF2};

use crate::solver::delegate_solver_impl;
use crate::step_vjp::delegate_step_vjp;

/// How a stiff solver obtains the Jacobian `∂f/∂y`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JacobianSource {
    /// Exact if the field provides it (dual numbers or a user closure),
    /// else finite differences.
    #[default]
    Auto,
    /// Forward finite differences even when the field provides a Jacobian.
    FiniteDifferences,
}

macro_rules! native_esdirk {
    ($(#[$doc:meta])* $name:ident, $tab:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct $name {
            /// Where the Jacobian comes from.
            pub jacobian: JacobianSource,
            /// The Newton iteration's settings.
            pub newton: NewtonOptions,
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    jacobian: JacobianSource::Auto,
                    newton: NewtonOptions::default(),
                }
            }
        }

        impl $name {
            /// Forces finite-difference Jacobians.
            pub fn finite_differences() -> Self {
                $name {
                    jacobian: JacobianSource::FiniteDifferences,
                    ..Self::default()
                }
            }

            /// Measures Newton convergence with these tolerances (pass the
            /// solve's `rtol` and `atol`; see [`NewtonOptions`]).
            pub fn tolerances(mut self, rtol: f64, atol: f64) -> Self {
                self.newton = self.newton.tolerances(rtol, atol);
                self
            }

            /// Sets the Newton settings.
            pub fn newton(mut self, newton: NewtonOptions) -> Self {
                self.newton = newton;
                self
            }

            /// The method as the generic ESDIRK solver (for its step VJP).
            pub fn esdirk(&self) -> Esdirk {
                Esdirk::new(&$tab)
                    .jacobian(self.jacobian)
                    .newton(self.newton)
            }

            /// The coefficient table.
            pub fn tableau(&self) -> &'static EsdirkTableau {
                &$tab
            }
        }

        delegate_solver_impl!($name, Esdirk, EsdirkCache, esdirk);

        delegate_step_vjp!($name, Esdirk, EsdirkVjpCache, |s| s.esdirk());
    };
}

native_esdirk!(
    /// ESDIRK3(4) (Jørgensen, Kristensen & Thomsen 2018): an L-stable,
    /// stiffly accurate one-step method of order 3 with an order-4 error
    /// estimate, 4 stages (3 implicit, FSAL). For moderately tight
    /// tolerances, and problems where BDF's restarts hurt. Native: runs in
    /// the generic loop, with a step VJP ([`crate::step_vjp::StepVjp`]).
    Esdirk34,
    ESDIRK34
);
native_esdirk!(
    /// TR-BDF2 (Bank et al. 1985; Hosea & Shampine 1996): an L-stable,
    /// stiffly accurate one-step method of order 2 with a third-order error
    /// estimate, 3 stages (2 implicit, FSAL): robust and cheap per step, for
    /// loose tolerances. Native: runs in the generic loop, with a step VJP
    /// ([`crate::step_vjp::StepVjp`]).
    TrBdf2,
    TRBDF2
);
