//! Training utilities for neural differential equations: first-order
//! optimizers ([`Adam`], [`Sgd`] with momentum), seeded minibatches
//! ([`Minibatches`]), weight schedules ([`ExpDecay`], for annealing a
//! regularization weight as in Pal et al. 2021,
//! `../shared/reference/regularizers.md` §1), and a [`train`] loop that
//! evaluates the examples of a minibatch in parallel (rayon) and reports
//! loss, accuracy and NFE per epoch.
//!
//! Reproducible for a seed on any number of threads: the shuffle depends
//! on the seed and the epoch only, each example's gradient on the
//! parameters and the example only, and the minibatch gradient is summed
//! in the batch's order after the parallel evaluation.

mod batches;
mod optim;
mod run;
mod schedule;

pub use batches::Minibatches;
pub use optim::{Adam, Optimizer, Sgd};
pub use run::{EpochReport, Example, TrainConfig, train};
pub use schedule::ExpDecay;

use std::fmt;

/// Why training could not go on.
#[derive(Clone)]
#[non_exhaustive]
pub enum TrainError {
    /// A setting is invalid.
    InvalidInput {
        /// Which setting.
        what: String,
        /// Why, and what to give instead.
        reason: String,
    },
    /// An example's loss or gradient could not be computed.
    Example {
        /// The epoch (from 0).
        epoch: usize,
        /// The example's index in the dataset.
        index: usize,
        /// What failed.
        error: Box<crate::Error>,
    },
    /// A gradient or loss is not finite.
    NonFinite {
        /// The epoch (from 0).
        epoch: usize,
        /// What is not finite.
        what: String,
    },
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::InvalidInput { what, reason } => write!(f, "invalid {what}: {reason}"),
            TrainError::Example {
                epoch,
                index,
                error,
            } => write!(f, "epoch {epoch}, example {index}: {error}"),
            TrainError::NonFinite { epoch, what } => write!(
                f,
                "epoch {epoch}: {what} is not finite; lower the learning rate or check the \
                 model's output"
            ),
        }
    }
}

impl fmt::Debug for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl std::error::Error for TrainError {}

/// `Err(InvalidInput)` unless `x` is finite and `> 0`.
pub(crate) fn positive(what: &str, x: f64) -> Result<(), TrainError> {
    if x.is_finite() && x > 0.0 {
        Ok(())
    } else {
        Err(TrainError::InvalidInput {
            what: what.into(),
            reason: format!("{x} is not a finite number > 0"),
        })
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): the seeded stream of the shuffles.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
