//! Minibatches over a dataset, shuffled per epoch from a seed.

use super::{SplitMix64, TrainError};

/// The minibatches of a dataset of `len` examples: each epoch a
/// permutation (Fisher–Yates, from the seed and the epoch only) cut into
/// batches of `batch` examples (the last one smaller when `batch` does not
/// divide `len`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minibatches {
    len: usize,
    batch: usize,
    seed: u64,
}

impl Minibatches {
    /// Batches of `batch ≥ 1` over `len ≥ 1` examples, shuffled from
    /// `seed`.
    ///
    /// ```
    /// use sdeflow::train::Minibatches;
    /// let mb = Minibatches::new(10, 4, 7).unwrap();
    /// let order = mb.epoch(0);
    /// let sizes: Vec<usize> = order.chunks(4).map(|c| c.len()).collect();
    /// assert_eq!(sizes, [4, 4, 2]);
    /// let mut sorted = order.clone();
    /// sorted.sort();
    /// assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    /// assert_eq!(mb.epoch(3), Minibatches::new(10, 4, 7).unwrap().epoch(3));
    /// ```
    pub fn new(len: usize, batch: usize, seed: u64) -> Result<Self, TrainError> {
        if len == 0 || batch == 0 {
            return Err(TrainError::InvalidInput {
                what: "minibatches".into(),
                reason: format!(
                    "{len} examples in batches of {batch}; give at least one example and a \
                     batch size ≥ 1"
                ),
            });
        }
        Ok(Minibatches { len, batch, seed })
    }

    /// The batch size.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The example order of epoch `epoch` (cut it with `chunks(batch)`).
    pub fn epoch(&self, epoch: usize) -> Vec<usize> {
        let mut rng = SplitMix64(self.seed ^ (epoch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mut order: Vec<usize> = (0..self.len).collect();
        for i in (1..self.len).rev() {
            // multiply-shift (Lemire 2019): bias below 2^-64 · len
            let j = ((u128::from(rng.next_u64()) * (i as u128 + 1)) >> 64) as usize;
            order.swap(i, j);
        }
        order
    }
}
