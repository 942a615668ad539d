//! A closed-form test bed that needs no trained network: data from a
//! Gaussian mixture with diagonal covariances, whose noised marginals
//! `p_t = Σ_k π_k N(α_t μ_k, α_t² Σ_k + σ_t² I)` give the exact noise and
//! data predictions, and a single Gaussian, whose probability-flow map is
//! affine and known in closed form.
//!
//! Formulas: `../shared/reference/exponential.md` §5 and `diffusion.md` §7.
//! With `C_k = α_t² Σ_k + σ_t² I` and posterior weights
//! `w_k ∝ π_k N(x; α_t μ_k, C_k)` (by log-sum-exp), the exact noise
//! prediction is `ε* = σ_t Σ_k w_k C_k⁻¹ (x − α_t μ_k)` and the data
//! prediction `x0* = (x − σ_t ε*)/α_t`. For one Gaussian `N(μ, diag v)`,
//! `C_t^{−1/2}(x_t − α_t μ)` is constant along the flow, so
//! `x_t = α_t μ + sqrt(C_t/C_u)(x_u − α_u μ)` per coordinate.

use super::schedule::NoiseSchedule;
use crate::error::SolveError;

/// A Gaussian mixture `Σ_k π_k N(μ_k, diag v_k)` in `d` dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianMixture {
    d: usize,
    log_weights: Vec<f64>,
    means: Vec<f64>,
    vars: Vec<f64>,
}

fn finite(what: &str, v: &[f64]) -> Result<(), SolveError> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(SolveError::InvalidInput {
            what: format!("{what}[{i}]"),
            reason: format!("{} is not finite", v[i]),
        }),
        None => Ok(()),
    }
}

impl GaussianMixture {
    /// The mixture of weights `weights` (positive, normalised here), means
    /// `means` (`K × d`, row per component) and per-coordinate variances
    /// `vars` (`K × d`, positive).
    pub fn new(weights: &[f64], means: &[f64], vars: &[f64]) -> Result<Self, SolveError> {
        let k = weights.len();
        if k == 0 || means.is_empty() || !means.len().is_multiple_of(k) {
            return Err(SolveError::DimensionMismatch {
                what: "GaussianMixture means".into(),
                expected: k.max(1),
                found: Some(means.len()),
                hint: "give K ≥ 1 weights and K × d means, a row per component".into(),
            });
        }
        let d = means.len() / k;
        if vars.len() != k * d {
            return Err(SolveError::DimensionMismatch {
                what: "GaussianMixture vars".into(),
                expected: k * d,
                found: Some(vars.len()),
                hint: "give a variance per component and coordinate (K × d)".into(),
            });
        }
        finite("GaussianMixture means", means)?;
        if let Some(i) = weights.iter().position(|w| !(w.is_finite() && *w > 0.0)) {
            return Err(SolveError::InvalidInput {
                what: format!("GaussianMixture weights[{i}]"),
                reason: format!("{} must be finite and positive", weights[i]),
            });
        }
        if let Some(i) = vars.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(SolveError::InvalidInput {
                what: format!("GaussianMixture vars[{i}]"),
                reason: format!("{} must be finite and positive", vars[i]),
            });
        }
        let total: f64 = weights.iter().sum();
        Ok(GaussianMixture {
            d,
            log_weights: weights.iter().map(|w| (w / total).ln()).collect(),
            means: means.to_vec(),
            vars: vars.to_vec(),
        })
    }

    /// The dimension `d` of one sample.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// The number of components `K`.
    pub fn components(&self) -> usize {
        self.log_weights.len()
    }

    /// `log π_k + log N(x; α μ_k, C_k)` up to the constant `−(d/2) log 2π`.
    fn log_component(&self, k: usize, a: f64, s2: f64, x: &[f64]) -> f64 {
        let (mu, v) = (
            &self.means[k * self.d..(k + 1) * self.d],
            &self.vars[k * self.d..(k + 1) * self.d],
        );
        let mut acc = 0.0;
        for i in 0..self.d {
            let c = a * a * v[i] + s2;
            let r = x[i] - a * mu[i];
            acc += r * r / c + c.ln();
        }
        self.log_weights[k] - 0.5 * acc
    }

    /// The exact noise prediction `ε*(x, t)` for a batch `x` of samples
    /// (`x.len()` a multiple of `d`, sample after sample) into `out`.
    pub fn noise<S: NoiseSchedule + ?Sized>(
        &self,
        schedule: &S,
        t: f64,
        x: &[f64],
        out: &mut [f64],
    ) {
        let (a, s) = (schedule.alpha(t), schedule.sigma(t));
        let s2 = s * s;
        let d = self.d;
        for (xj, oj) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let kk = self.components();
            let lmax = (0..kk)
                .map(|k| self.log_component(k, a, s2, xj))
                .fold(f64::NEG_INFINITY, f64::max);
            oj.iter_mut().for_each(|o| *o = 0.0);
            let mut total = 0.0;
            for k in 0..kk {
                let w = (self.log_component(k, a, s2, xj) - lmax).exp();
                total += w;
                let (mu, v) = (
                    &self.means[k * d..(k + 1) * d],
                    &self.vars[k * d..(k + 1) * d],
                );
                for i in 0..d {
                    oj[i] += w * (xj[i] - a * mu[i]) / (a * a * v[i] + s2);
                }
            }
            let scale = s / total;
            oj.iter_mut().for_each(|o| *o *= scale);
        }
    }

    /// The exact data prediction `x0*(x, t) = (x − σ_t ε*)/α_t` for a batch.
    pub fn data<S: NoiseSchedule + ?Sized>(
        &self,
        schedule: &S,
        t: f64,
        x: &[f64],
        out: &mut [f64],
    ) {
        self.noise(schedule, t, x, out);
        let (a, s) = (schedule.alpha(t), schedule.sigma(t));
        for (o, &xv) in out.iter_mut().zip(x) {
            *o = (xv - s * *o) / a;
        }
    }
}

/// A Gaussian `N(μ, diag v)`: its probability-flow map is known exactly.
///
/// ```
/// use sdeflow_solvers::diffusion::{DiagonalGaussian, VpLinear};
/// // diffusion.md §7: μ = 0.5, s = 0.3, VP linear, x_T = 1 at T = 1
/// let g = DiagonalGaussian::new(vec![0.5], vec![0.09])?;
/// let mut x0 = [0.0];
/// g.flow_map(&VpLinear::default(), 1.0, 1e-3, &[1.0], &mut x0);
/// assert!((x0[0] - 0.79915881).abs() < 1e-8);
/// # Ok::<(), sdeflow_solvers::error::SolveError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DiagonalGaussian {
    mean: Vec<f64>,
    var: Vec<f64>,
}

impl DiagonalGaussian {
    /// `N(mean, diag var)`, variances positive.
    pub fn new(mean: Vec<f64>, var: Vec<f64>) -> Result<Self, SolveError> {
        if mean.is_empty() || mean.len() != var.len() {
            return Err(SolveError::DimensionMismatch {
                what: "DiagonalGaussian var".into(),
                expected: mean.len(),
                found: Some(var.len()),
                hint: "give one variance per coordinate of the mean (at least one)".into(),
            });
        }
        finite("DiagonalGaussian mean", &mean)?;
        if let Some(i) = var.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(SolveError::InvalidInput {
                what: format!("DiagonalGaussian var[{i}]"),
                reason: format!("{} must be finite and positive", var[i]),
            });
        }
        Ok(DiagonalGaussian { mean, var })
    }

    /// The dimension `d`.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The exact noise prediction `σ_t (x − α_t μ)/(α_t² v + σ_t²)` for a
    /// batch `x` (a multiple of `d`).
    pub fn noise<S: NoiseSchedule + ?Sized>(
        &self,
        schedule: &S,
        t: f64,
        x: &[f64],
        out: &mut [f64],
    ) {
        let (a, s) = (schedule.alpha(t), schedule.sigma(t));
        let d = self.dim();
        for (j, (o, &xv)) in out.iter_mut().zip(x).enumerate() {
            let i = j % d;
            *o = s * (xv - a * self.mean[i]) / (a * a * self.var[i] + s * s);
        }
    }

    /// The exact probability-flow map from time `u` to time `t` of a batch:
    /// `x_t = α_t μ + sqrt(C_t/C_u)(x_u − α_u μ)` per coordinate.
    pub fn flow_map<S: NoiseSchedule + ?Sized>(
        &self,
        schedule: &S,
        u: f64,
        t: f64,
        x_u: &[f64],
        out: &mut [f64],
    ) {
        let (au, su, at, st) = (
            schedule.alpha(u),
            schedule.sigma(u),
            schedule.alpha(t),
            schedule.sigma(t),
        );
        let d = self.dim();
        for (j, (o, &xv)) in out.iter_mut().zip(x_u).enumerate() {
            let (m, v) = (self.mean[j % d], self.var[j % d]);
            let k = ((at * at * v + st * st) / (au * au * v + su * su)).sqrt();
            *o = at * m + k * (xv - au * m);
        }
    }
}
