//! The training loop: epochs of shuffled minibatches, each example's loss
//! and gradient computed in parallel, the batch's mean gradient handed to
//! the optimizer.

use rayon::prelude::*;

use super::{Minibatches, Optimizer, TrainError};

/// One example's contribution: its loss, `∂loss/∂params`, whether the
/// model got it right (classification; `None` otherwise) and the drift
/// evaluations its solve and gradient took.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The example's loss.
    pub loss: f64,
    /// Its gradient with respect to the parameters.
    pub grad: Vec<f64>,
    /// Whether it was classified correctly (`None`: not a classifier).
    pub correct: Option<bool>,
    /// Drift evaluations spent on it.
    pub nfe: usize,
}

/// The settings of [`train`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainConfig {
    /// Passes over the dataset.
    pub epochs: usize,
    /// Examples per minibatch.
    pub batch: usize,
    /// Seed of the shuffles.
    pub seed: u64,
    /// Whether to print one progress line per epoch on stderr.
    pub progress: bool,
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    /// The epoch (from 0).
    pub epoch: usize,
    /// The mean loss over the epoch's examples (each at the parameters of
    /// its minibatch).
    pub loss: f64,
    /// The fraction classified correctly (`None` when the examples say
    /// nothing of it).
    pub accuracy: Option<f64>,
    /// Drift evaluations over the epoch.
    pub nfe: usize,
}

/// Trains `params` on a dataset of `len` examples: `config.epochs` passes
/// of minibatches ([`Minibatches`], seed `config.seed`), each example
/// evaluated by `example(params, index, epoch)` in parallel on the rayon
/// pool, the batch's mean gradient given to `optimizer`. Returns one
/// report per epoch. The result depends on the seed, not on the number of
/// threads.
///
/// ```
/// use sdeflow::train::{Adam, Example, TrainConfig, train};
/// // fit θ to the mean of the data by least squares
/// let data = [1.0, 2.0, 3.0, 6.0];
/// let mut theta = vec![0.0];
/// let config = TrainConfig { epochs: 300, batch: 2, seed: 1, progress: false };
/// let mut adam = Adam::new(0.05).unwrap();
/// let reports = train(&mut theta, data.len(), &config, &mut adam, |p, i, _epoch| {
///     let r = p[0] - data[i];
///     Ok::<_, sdeflow::Error>(Example { loss: r * r, grad: vec![2.0 * r], correct: None, nfe: 0 })
/// })
/// .unwrap();
/// assert!((theta[0] - 3.0).abs() < 0.1);
/// assert!(reports[299].loss < reports[0].loss);
/// ```
pub fn train<O, E, F>(
    params: &mut [f64],
    len: usize,
    config: &TrainConfig,
    optimizer: &mut O,
    example: F,
) -> Result<Vec<EpochReport>, TrainError>
where
    O: Optimizer,
    E: Into<crate::Error> + Send,
    F: Fn(&[f64], usize, usize) -> Result<Example, E> + Sync,
{
    let batches = Minibatches::new(len, config.batch, config.seed)?;
    let mut reports = Vec::with_capacity(config.epochs);
    let mut grad = vec![0.0; params.len()];
    let started = std::time::Instant::now();
    for epoch in 0..config.epochs {
        let order = batches.epoch(epoch);
        let (mut loss, mut correct, mut judged, mut nfe) = (0.0, 0usize, 0usize, 0usize);
        for batch in order.chunks(config.batch) {
            let p: &[f64] = params;
            let outs: Vec<Result<Example, (usize, E)>> = batch
                .par_iter()
                .map(|&i| example(p, i, epoch).map_err(|e| (i, e)))
                .collect();
            grad.iter_mut().for_each(|g| *g = 0.0);
            let scale = 1.0 / batch.len() as f64;
            // summed in the batch's order: the same on any number of threads
            for out in outs {
                let ex = out.map_err(|(index, e)| TrainError::Example {
                    epoch,
                    index,
                    error: Box::new(e.into()),
                })?;
                if ex.grad.len() != grad.len() {
                    return Err(TrainError::InvalidInput {
                        what: "an example's gradient".into(),
                        reason: format!("{} entries for {} parameters", ex.grad.len(), grad.len()),
                    });
                }
                loss += ex.loss;
                nfe += ex.nfe;
                if let Some(c) = ex.correct {
                    judged += 1;
                    correct += usize::from(c);
                }
                for (g, d) in grad.iter_mut().zip(&ex.grad) {
                    *g += scale * d;
                }
            }
            if !loss.is_finite() {
                return Err(TrainError::NonFinite {
                    epoch,
                    what: "the loss".into(),
                });
            }
            optimizer.step(params, &grad).map_err(|e| match e {
                TrainError::InvalidInput { what, .. } if what.starts_with("gradient[") => {
                    TrainError::NonFinite { epoch, what }
                }
                other => other,
            })?;
        }
        let report = EpochReport {
            epoch,
            loss: loss / len as f64,
            accuracy: (judged > 0).then(|| correct as f64 / judged as f64),
            nfe,
        };
        if config.progress {
            let acc = report
                .accuracy
                .map_or(String::new(), |a| format!("  accuracy {:5.1}%", 100.0 * a));
            eprintln!(
                "epoch {:>3}/{}  loss {:.5}{acc}  NFE {}  ({:.1} s)",
                epoch + 1,
                config.epochs,
                report.loss,
                report.nfe,
                started.elapsed().as_secs_f64()
            );
        }
        reports.push(report);
    }
    Ok(reports)
}
