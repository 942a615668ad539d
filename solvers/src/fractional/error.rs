//! The typed errors of the fractional-noise family.

use std::fmt;

use crate::error::SolveError;

/// Why an fBM sampler, a Markov approximation or a fractional noise path
/// could not be built or used. Each message says what was wrong and what to
/// try; it converts into [`SolveError::InvalidInput`] where a solve needs it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FbmError {
    /// The Hurst index is not in the open interval `(0, 1)`.
    InvalidHurst {
        /// The value given.
        hurst: f64,
    },
    /// Some other input is invalid (a time grid, a rate, a length).
    InvalidInput {
        /// Which input.
        what: String,
        /// Why it is rejected and what to use instead.
        reason: String,
    },
    /// A buffer has the wrong length.
    DimensionMismatch {
        /// Which buffer.
        what: String,
        /// The length expected.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// A covariance matrix that must be positive (semi)definite is not, to
    /// working precision: the circulant embedding of Davies–Harte had a
    /// negative eigenvalue beyond round-off at every padding tried, or a
    /// Cholesky factorisation failed.
    NotPositive {
        /// Which matrix.
        what: String,
        /// The most negative eigenvalue (or pivot) found, relative to the
        /// largest.
        min_relative: f64,
        /// The largest size tried (the circulant's length, or the matrix
        /// order).
        size: usize,
        /// What to try instead.
        hint: String,
    },
    /// The method cannot produce what was asked for (exactly), whatever the
    /// input: e.g. Davies–Harte for the Riemann–Liouville process.
    Unsupported {
        /// What was asked for.
        what: String,
        /// Why the method cannot do it.
        why: String,
        /// What to use instead.
        instead: String,
    },
}

impl fmt::Display for FbmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FbmError::InvalidHurst { hurst } => write!(
                f,
                "invalid Hurst index {hurst}: it must be finite and in the open interval (0, 1) \
                 (H = 0.5 is Brownian motion)"
            ),
            FbmError::InvalidInput { what, reason } => write!(f, "invalid {what}: {reason}"),
            FbmError::DimensionMismatch {
                what,
                expected,
                found,
            } => write!(
                f,
                "dimension mismatch in {what}: expected {expected}, found {found}"
            ),
            FbmError::NotPositive {
                what,
                min_relative,
                size,
                hint,
            } => write!(
                f,
                "{what} is not positive semidefinite (most negative eigenvalue or pivot \
                 {min_relative:e} of the largest, at size {size}); {hint}"
            ),
            FbmError::Unsupported { what, why, instead } => {
                write!(f, "{what} is not supported: {why}; {instead}")
            }
        }
    }
}

impl std::error::Error for FbmError {}

impl From<FbmError> for SolveError {
    fn from(e: FbmError) -> Self {
        SolveError::InvalidInput {
            what: "fractional noise".into(),
            reason: e.to_string(),
        }
    }
}

impl FbmError {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        FbmError::InvalidInput {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// Checks that `hurst` is a valid Hurst index.
pub(crate) fn check_hurst(hurst: f64) -> Result<f64, FbmError> {
    if hurst.is_finite() && hurst > 0.0 && hurst < 1.0 {
        Ok(hurst)
    } else {
        Err(FbmError::InvalidHurst { hurst })
    }
}

/// Checks that `ts` is a finite, strictly increasing grid of positive times.
pub(crate) fn check_times(ts: &[f64]) -> Result<(), FbmError> {
    if ts.is_empty() {
        return Err(FbmError::invalid(
            "time grid",
            "it is empty; give at least one time > 0",
        ));
    }
    let mut prev = 0.0;
    for (k, &t) in ts.iter().enumerate() {
        if !(t.is_finite() && t > prev) {
            return Err(FbmError::invalid(
                format!("time grid ts[{k}] = {t}"),
                "times must be finite, positive and strictly increasing (B(0) = 0 is implied)",
            ));
        }
        prev = t;
    }
    Ok(())
}
