//! First-order optimizers: Adam (Kingma & Ba, "Adam: A method for
//! stochastic optimization", ICLR 2015, Algorithm 1) and SGD with
//! (heavy-ball) momentum.

use super::{TrainError, positive};

/// Updates parameters from a gradient.
pub trait Optimizer {
    /// One update of `params` along the gradient `grad` (same length).
    fn step(&mut self, params: &mut [f64], grad: &[f64]) -> Result<(), TrainError>;
}

/// `Err` unless `grad` has `params`' length and is finite.
fn check(params: &[f64], grad: &[f64]) -> Result<(), TrainError> {
    if params.len() != grad.len() {
        return Err(TrainError::InvalidInput {
            what: "gradient".into(),
            reason: format!(
                "{} entries for {} parameters; give one per parameter",
                grad.len(),
                params.len()
            ),
        });
    }
    if let Some(i) = grad.iter().position(|g| !g.is_finite()) {
        return Err(TrainError::InvalidInput {
            what: format!("gradient[{i}]"),
            reason: format!("{} is not finite; the update was not applied", grad[i]),
        });
    }
    Ok(())
}

/// Adam: `m ← β1 m + (1−β1) g`, `v ← β2 v + (1−β2) g²`,
/// `θ ← θ − α m̂ / (√v̂ + ε)` with the bias corrections
/// `m̂ = m / (1−β1ᵗ)`, `v̂ = v / (1−β2ᵗ)`.
///
/// ```
/// use sdeflow::train::{Adam, Optimizer};
/// let mut adam = Adam::new(0.1).unwrap();
/// let mut x = vec![1.0];
/// adam.step(&mut x, &[2.0]).unwrap();
/// // the first step moves by α (up to ε) whatever the gradient's size
/// assert!((x[0] - 0.9).abs() < 1e-7);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    t: i32,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl Adam {
    /// Adam with step size `lr` and the paper's defaults `β1 = 0.9`,
    /// `β2 = 0.999`, `ε = 1e-8`.
    pub fn new(lr: f64) -> Result<Self, TrainError> {
        Adam::with(lr, 0.9, 0.999, 1e-8)
    }

    /// Adam with every setting given: `lr > 0`, `β1, β2 ∈ [0, 1)`, `ε > 0`.
    pub fn with(lr: f64, beta1: f64, beta2: f64, eps: f64) -> Result<Self, TrainError> {
        positive("Adam learning rate", lr)?;
        positive("Adam epsilon", eps)?;
        for (what, b) in [("Adam beta1", beta1), ("Adam beta2", beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(TrainError::InvalidInput {
                    what: what.into(),
                    reason: format!("{b} is not in [0, 1)"),
                });
            }
        }
        Ok(Adam {
            lr,
            beta1,
            beta2,
            eps,
            t: 0,
            m: Vec::new(),
            v: Vec::new(),
        })
    }
}

impl Optimizer for Adam {
    fn step(&mut self, params: &mut [f64], grad: &[f64]) -> Result<(), TrainError> {
        check(params, grad)?;
        if self.m.len() != params.len() {
            self.m = vec![0.0; params.len()];
            self.v = vec![0.0; params.len()];
            self.t = 0;
        }
        self.t = self.t.saturating_add(1);
        let c1 = 1.0 - self.beta1.powi(self.t);
        let c2 = 1.0 - self.beta2.powi(self.t);
        for i in 0..params.len() {
            let g = grad[i];
            self.m[i] = self.beta1 * self.m[i] + (1.0 - self.beta1) * g;
            self.v[i] = self.beta2 * self.v[i] + (1.0 - self.beta2) * g * g;
            let (mh, vh) = (self.m[i] / c1, self.v[i] / c2);
            params[i] -= self.lr * mh / (vh.sqrt() + self.eps);
        }
        Ok(())
    }
}

/// SGD with heavy-ball momentum: `u ← μ u + g`, `θ ← θ − α u` (`μ = 0`:
/// plain gradient descent).
///
/// ```
/// use sdeflow::train::{Optimizer, Sgd};
/// let mut sgd = Sgd::new(0.1, 0.5).unwrap();
/// let mut x = vec![0.0];
/// sgd.step(&mut x, &[1.0]).unwrap(); // u = 1
/// sgd.step(&mut x, &[1.0]).unwrap(); // u = 1.5
/// assert!((x[0] + 0.25).abs() < 1e-15);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Sgd {
    lr: f64,
    momentum: f64,
    velocity: Vec<f64>,
}

impl Sgd {
    /// SGD with step size `lr > 0` and momentum `μ ∈ [0, 1)`.
    pub fn new(lr: f64, momentum: f64) -> Result<Self, TrainError> {
        positive("SGD learning rate", lr)?;
        if !(0.0..1.0).contains(&momentum) {
            return Err(TrainError::InvalidInput {
                what: "SGD momentum".into(),
                reason: format!("{momentum} is not in [0, 1)"),
            });
        }
        Ok(Sgd {
            lr,
            momentum,
            velocity: Vec::new(),
        })
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, params: &mut [f64], grad: &[f64]) -> Result<(), TrainError> {
        check(params, grad)?;
        if self.velocity.len() != params.len() {
            self.velocity = vec![0.0; params.len()];
        }
        for i in 0..params.len() {
            self.velocity[i] = self.momentum * self.velocity[i] + grad[i];
            params[i] -= self.lr * self.velocity[i];
        }
        Ok(())
    }
}
