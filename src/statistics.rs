//! Statistics of ensembles: streaming moments (Welford's algorithm, merged
//! with Chan, Golub & LeVeque's pairwise update), confidence intervals and
//! empirical quantiles (statrs), and the summary of an ensemble at each
//! save time, with JSON and CSV export.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
use statrs::statistics::{Data, OrderStatistics};

use sdeflow_solvers::solution::Stats;

/// Streaming count, mean and sum of squared deviations of a sample
/// (Welford 1962); memory does not grow with the sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Number of values.
    pub count: u64,
    /// Running mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
}

impl Moments {
    /// Adds one value.
    #[inline]
    pub fn push(&mut self, x: f64) {
        self.count += 1;
        let d = x - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (x - self.mean);
    }

    /// Merges another sample into this one (Chan et al. 1979). Merging in a
    /// fixed order gives bit-identical results whatever the scheduling.
    pub fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let n = (self.count + other.count) as f64;
        let d = other.mean - self.mean;
        self.mean += d * other.count as f64 / n;
        self.m2 += other.m2 + d * d * self.count as f64 * other.count as f64 / n;
        self.count += other.count;
    }

    /// Unbiased sample variance (NaN with fewer than two values).
    pub fn variance(&self) -> f64 {
        if self.count < 2 {
            f64::NAN
        } else {
            self.m2 / (self.count - 1) as f64
        }
    }

    /// Standard error of the mean, `sqrt(variance / count)`.
    pub fn std_error(&self) -> f64 {
        (self.variance() / self.count as f64).sqrt()
    }

    /// Two-sided confidence interval for the mean at `level` (e.g. 0.95),
    /// from Student's t with `count − 1` degrees of freedom (the normal
    /// limit for large samples).
    pub fn confidence_interval(&self, level: f64) -> (f64, f64) {
        let half = critical_value(level, self.count) * self.std_error();
        (self.mean - half, self.mean + half)
    }

    /// The estimate of the mean with its standard error and interval.
    pub fn estimate(&self, level: f64) -> Estimate {
        let (lower, upper) = self.confidence_interval(level);
        Estimate {
            mean: self.mean,
            std_error: self.std_error(),
            lower,
            upper,
            level,
            samples: self.count,
        }
    }
}

/// The two-sided critical value of Student's t (normal beyond 1000 degrees
/// of freedom).
fn critical_value(level: f64, count: u64) -> f64 {
    let q = 0.5 + 0.5 * level.clamp(0.0, 1.0 - 1e-12);
    if count > 1000 {
        Normal::standard().inverse_cdf(q)
    } else if count >= 2 {
        match StudentsT::new(0.0, 1.0, (count - 1) as f64) {
            Ok(t) => t.inverse_cdf(q),
            Err(_) => f64::NAN,
        }
    } else {
        f64::NAN
    }
}

/// A Monte Carlo estimate with its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Sample mean.
    pub mean: f64,
    /// Standard error of the mean.
    pub std_error: f64,
    /// Lower end of the confidence interval.
    pub lower: f64,
    /// Upper end of the confidence interval.
    pub upper: f64,
    /// Confidence level of the interval.
    pub level: f64,
    /// Number of samples.
    pub samples: u64,
}

impl Estimate {
    /// Whether `value` lies within `k` standard errors of the mean.
    pub fn agrees_with(&self, value: f64, k: f64) -> bool {
        (self.mean - value).abs() <= k * self.std_error
    }
}

/// Empirical quantile `tau ∈ [0, 1]` of `values` (statrs' definition).
pub fn quantile(values: &[f64], tau: f64) -> f64 {
    Data::new(values.to_vec()).quantile(tau)
}

/// Statistics of every state component at one save time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeStatistics {
    /// The save time.
    pub t: f64,
    /// Moments per component.
    pub moments: Vec<Moments>,
    /// The quantile levels requested (those of [`EnsembleSummary::taus`]).
    pub taus: Vec<f64>,
    /// Requested quantiles per component: `quantiles[q][i]` is quantile
    /// `taus[q]` of component `i`; [`TimeStatistics::quantile`] asks by
    /// level instead.
    pub quantiles: Vec<Vec<f64>>,
}

/// The position of level `tau` among the requested `taus` (equal to
/// within 1e-12, so that a level computed as `1.0 - 0.05` is found).
fn level_index(taus: &[f64], tau: f64) -> Option<usize> {
    taus.iter().position(|&t| (t - tau).abs() <= 1e-12)
}

impl TimeStatistics {
    /// Quantile `tau` (a probability, e.g. `0.95`) of component `i`, or
    /// `None` when `tau` was not among the levels given to
    /// `Ensemble::statistics` (the values are not kept, so other levels
    /// cannot be computed afterwards) or component `i` does not exist.
    pub fn quantile(&self, tau: f64, i: usize) -> Option<f64> {
        let q = level_index(&self.taus, tau)?;
        self.quantiles.get(q)?.get(i).copied()
    }

    /// Mean of component `i`.
    pub fn mean(&self, i: usize) -> f64 {
        self.moments[i].mean
    }
    /// Variance of component `i`.
    pub fn variance(&self, i: usize) -> f64 {
        self.moments[i].variance()
    }
    /// Standard error of the mean of component `i`.
    pub fn std_error(&self, i: usize) -> f64 {
        self.moments[i].std_error()
    }
}

/// A trajectory that failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Its index in the ensemble.
    pub index: usize,
    /// Its seed.
    pub seed: u64,
    /// What went wrong.
    pub message: String,
}

/// What an ensemble produced: statistics at each save time, failures and
/// the total work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleSummary {
    /// Trajectories run.
    pub trajectories: usize,
    /// Trajectories that succeeded (the statistics are over these).
    pub succeeded: usize,
    /// Failed trajectories, by index.
    pub failures: Vec<Failure>,
    /// Quantile levels of [`TimeStatistics::quantiles`].
    pub taus: Vec<f64>,
    /// Statistics per save time.
    pub times: Vec<TimeStatistics>,
    /// Work summed over all trajectories.
    pub stats: Stats,
}

impl EnsembleSummary {
    /// Quantile `tau` (a probability) of component `i` at every save time,
    /// as `(t, value)` pairs, or `None` when `tau` was not requested or
    /// component `i` does not exist (see [`TimeStatistics::quantile`]).
    pub fn quantile_path(&self, tau: f64, i: usize) -> Option<Vec<(f64, f64)>> {
        self.times
            .iter()
            .map(|ts| ts.quantile(tau, i).map(|q| (ts.t, q)))
            .collect()
    }

    /// The summary as JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// The statistics as CSV: one row per save time and component with
    /// mean, variance, standard error and the quantiles.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("t,component,mean,variance,std_error");
        for tau in &self.taus {
            let _ = write!(out, ",q{tau}");
        }
        out.push('\n');
        for ts in &self.times {
            for (i, m) in ts.moments.iter().enumerate() {
                let _ = write!(
                    out,
                    "{},{},{},{},{}",
                    ts.t,
                    i,
                    m.mean,
                    m.variance(),
                    m.std_error()
                );
                for q in &ts.quantiles {
                    let _ = write!(out, ",{}", q[i]);
                }
                out.push('\n');
            }
        }
        out
    }

    /// Writes [`EnsembleSummary::to_csv`] to a file.
    pub fn write_csv(&self, path: impl AsRef<Path>) -> io::Result<()> {
        std::fs::write(path, self.to_csv())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welford_matches_two_pass_and_merges_exactly() {
        let xs: Vec<f64> = (0..1000)
            .map(|i| ((i * 37 % 101) as f64).sin() * 3.0 + 1e6)
            .collect();
        let mut all = Moments::default();
        xs.iter().for_each(|&x| all.push(x));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
        assert!((all.mean - mean).abs() < 1e-14 * mean.abs());
        assert!((all.variance() - var).abs() < 1e-9 * var);
        let (mut a, mut b) = (Moments::default(), Moments::default());
        xs[..400].iter().for_each(|&x| a.push(x));
        xs[400..].iter().for_each(|&x| b.push(x));
        a.merge(&b);
        assert_eq!(a.count, 1000);
        assert!((a.mean - mean).abs() < 1e-14 * mean.abs());
        assert!((a.variance() - var).abs() < 1e-9 * var);
    }

    #[test]
    fn quantiles_are_asked_by_level() {
        let ts = TimeStatistics {
            t: 1.0,
            moments: vec![Moments::default(); 2],
            taus: vec![0.05, 0.5, 0.95],
            quantiles: vec![vec![1.0, 10.0], vec![2.0, 20.0], vec![3.0, 30.0]],
        };
        assert_eq!(ts.quantile(0.95, 1), Some(30.0));
        assert_eq!(ts.quantile(1.0 - 0.05, 0), Some(3.0));
        assert_eq!(ts.quantile(0.5, 0), Some(2.0));
        // not requested, or no such component
        assert_eq!(ts.quantile(0.25, 0), None);
        assert_eq!(ts.quantile(0.5, 2), None);
        let summary = EnsembleSummary {
            trajectories: 3,
            succeeded: 3,
            failures: vec![],
            taus: ts.taus.clone(),
            times: vec![ts.clone(), TimeStatistics { t: 2.0, ..ts }],
            stats: Stats::default(),
        };
        assert_eq!(
            summary.quantile_path(0.05, 1),
            Some(vec![(1.0, 10.0), (2.0, 10.0)])
        );
        assert_eq!(summary.quantile_path(0.9, 1), None);
    }

    #[test]
    fn confidence_interval_uses_t_then_normal() {
        let mut m = Moments::default();
        for x in [1.0, 2.0, 3.0, 4.0] {
            m.push(x);
        }
        // t with 3 dof at 97.5%: 3.182
        let (lo, hi) = m.confidence_interval(0.95);
        let half = 3.182446305 * m.std_error();
        assert!((hi - lo - 2.0 * half).abs() < 1e-6);
        assert!((critical_value(0.95, 5000) - 1.959964).abs() < 1e-5);
    }
}
