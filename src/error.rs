//! One error type for a program that solves, differentiates and runs
//! ensembles: `?` converts every module's error into [`Error`], and its
//! `Debug` (what `fn main() -> Result<(), sdeflow::Error>` prints) is the
//! short message with its hint.

use std::fmt;

use crate::SolveError;
use crate::adjoint::GradError;
use crate::ensemble::EnsembleError;

/// Any error of sdeflow: a solve's, a gradient's or an ensemble's.
///
/// ```
/// use sdeflow::prelude::*;
///
/// fn run() -> Result<f64, sdeflow::Error> {
///     let p = Problem::ode(
///         |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
///         vec![1.0],
///         (0.0, 1.0),
///     );
///     let sol = solve(&p, Tsit5, Options::default().rtol(-1.0))?;
///     Ok(sol.last()[0])
/// }
/// let e = run().unwrap_err();
/// assert!(matches!(e, sdeflow::Error::Solve(SolveError::InvalidInput { .. })));
/// assert!(format!("{e:?}").contains("rtol"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum Error {
    /// A solve failed.
    Solve(SolveError),
    /// A gradient could not be computed.
    Grad(GradError),
    /// An ensemble could not produce its result.
    Ensemble(EnsembleError),
}

impl Error {
    /// The error this one carries (what `Display`, `Debug` and `source`
    /// show).
    fn inner(&self) -> &(dyn std::error::Error + 'static) {
        match self {
            Error::Solve(e) => e,
            Error::Grad(e) => e,
            Error::Ensemble(e) => e,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.inner())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.inner())
    }
}

impl From<SolveError> for Error {
    fn from(e: SolveError) -> Self {
        Error::Solve(e)
    }
}

impl From<GradError> for Error {
    fn from(e: GradError) -> Self {
        Error::Grad(e)
    }
}

impl From<EnsembleError> for Error {
    fn from(e: EnsembleError) -> Self {
        Error::Ensemble(e)
    }
}
