//! Weight schedules: the exponential decay of a regularization weight over
//! the epochs (Pal et al. 2021, RegNeuralDE.jl; `regularizers.md` §1).

use super::{TrainError, positive};

/// `λ(e) = λ0 · exp(−k e)`, `k = ln(λ0/λ1) / E`, for epochs `e = 0..E`:
/// from `λ0` at the first epoch towards `λ1` at epoch `E` (constant when
/// `λ0 = λ1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExpDecay {
    start: f64,
    rate: f64,
}

impl ExpDecay {
    /// The decay from `start` (`λ0 > 0`) to `end` (`λ1 > 0`) over `epochs`
    /// epochs (≥ 1).
    ///
    /// ```
    /// use sdeflow::train::ExpDecay;
    /// let w = ExpDecay::new(100.0, 10.0, 10).unwrap();
    /// assert_eq!(w.at(0), 100.0);
    /// assert!((w.at(10) - 10.0).abs() < 1e-12);
    /// assert!((w.at(5) - 100.0 / 10f64.sqrt()).abs() < 1e-10);
    /// ```
    pub fn new(start: f64, end: f64, epochs: usize) -> Result<Self, TrainError> {
        positive("ExpDecay start weight", start)?;
        positive("ExpDecay end weight", end)?;
        if epochs == 0 {
            return Err(TrainError::InvalidInput {
                what: "ExpDecay epochs".into(),
                reason: "0 epochs; give at least 1".into(),
            });
        }
        Ok(ExpDecay {
            start,
            rate: (start / end).ln() / epochs as f64,
        })
    }

    /// A constant weight `w ≥ 0` (0 switches a regularizer off).
    pub fn constant(w: f64) -> Result<Self, TrainError> {
        if !(w.is_finite() && w >= 0.0) {
            return Err(TrainError::InvalidInput {
                what: "constant weight".into(),
                reason: format!("{w} is not a finite number ≥ 0"),
            });
        }
        Ok(ExpDecay {
            start: w,
            rate: 0.0,
        })
    }

    /// The weight at epoch `epoch`.
    pub fn at(&self, epoch: usize) -> f64 {
        self.start * (-self.rate * epoch as f64).exp()
    }
}
