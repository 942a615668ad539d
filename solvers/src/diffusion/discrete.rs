//! Discrete-time DDPM schedules made continuous, as DPM-Solver does
//! (`dpm_solver_pytorch.py`, `NoiseScheduleVP('discrete')`; reference:
//! `../shared/reference/diffusion.md` §1): `log α_n = ½ Σ_{m≤n} log(1 − β_m)`
//! sits at `t_n = (n + 1)/N`, and `log α(t)` is piecewise linear in `t`
//! between them (linear extrapolation outside), on `t ∈ [1/N, 1]`. A network
//! trained on step indices takes the label `N (t − 1/N)`.
//! DDPM's betas are Ho et al., "Denoising diffusion probabilistic models"
//! (NeurIPS 2020) §4: `linspace(1e−4, 0.02, 1000)`.

use super::schedule::{NoiseSchedule, vp_log_sigma, vp_two_log_alpha};
use crate::error::SolveError;

/// A discrete VP schedule `β_1 … β_N`, continuous by interpolating `log α`
/// linearly in `t` between the knots `t_n = n/N`.
///
/// ```
/// use sdeflow_solvers::diffusion::{DiscreteVp, NoiseSchedule};
/// let s = DiscreteVp::ddpm_linear(1000)?;
/// let t = 0.37;
/// assert!((s.t_of_lambda(s.lambda(t)) - t).abs() < 1e-12);
/// # Ok::<(), sdeflow_solvers::error::SolveError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DiscreteVp {
    /// `log α` at the knots `t_n = (n + 1)/N`, decreasing.
    log_alpha: Vec<f64>,
}

impl DiscreteVp {
    /// The schedule of the given betas, each in `(0, 1)`, at least two.
    pub fn from_betas(betas: &[f64]) -> Result<Self, SolveError> {
        if betas.len() < 2 {
            return Err(SolveError::InvalidInput {
                what: "DiscreteVp betas".into(),
                reason: format!("{} betas given; a schedule needs at least two", betas.len()),
            });
        }
        let mut acc = 0.0;
        let mut log_alpha = Vec::with_capacity(betas.len());
        for (i, &b) in betas.iter().enumerate() {
            if !(b > 0.0 && b < 1.0) {
                return Err(SolveError::InvalidInput {
                    what: format!("DiscreteVp betas[{i}]"),
                    reason: format!("{b} must lie in (0, 1)"),
                });
            }
            acc += 0.5 * (-b).ln_1p();
            log_alpha.push(acc);
        }
        Ok(DiscreteVp { log_alpha })
    }

    /// DDPM's linear betas, `linspace(1e−4, 0.02, n)` for `n` steps (Ho et
    /// al. use `n = 1000`).
    pub fn ddpm_linear(n: usize) -> Result<Self, SolveError> {
        let betas: Vec<f64> = (0..n)
            .map(|i| 1e-4 + (0.02 - 1e-4) * i as f64 / (n.max(2) - 1) as f64)
            .collect();
        Self::from_betas(&betas)
    }

    /// The number of discrete steps `N`.
    pub fn steps(&self) -> usize {
        self.log_alpha.len()
    }

    /// The segment `k` (between knots `k` and `k + 1`) holding `t`, and the
    /// knots' spacing.
    fn segment(&self, t: f64) -> (usize, f64) {
        let n = self.log_alpha.len();
        let dt = 1.0 / n as f64;
        // knot k at (k + 1) dt
        let pos = t / dt - 1.0;
        let k = if pos.is_nan() {
            0
        } else {
            (pos.floor().max(0.0) as usize).min(n - 2)
        };
        (k, dt)
    }
}

impl NoiseSchedule for DiscreteVp {
    fn log_alpha(&self, t: f64) -> f64 {
        let (k, dt) = self.segment(t);
        let (a, b) = (self.log_alpha[k], self.log_alpha[k + 1]);
        let t_k = (k + 1) as f64 * dt;
        a + (b - a) * (t - t_k) / dt
    }
    fn sigma(&self, t: f64) -> f64 {
        vp_log_sigma(self.log_alpha(t)).exp()
    }
    fn lambda(&self, t: f64) -> f64 {
        let la = self.log_alpha(t);
        la - vp_log_sigma(la)
    }
    fn t_of_lambda(&self, lambda: f64) -> f64 {
        let target = 0.5 * vp_two_log_alpha(lambda);
        let la = &self.log_alpha;
        let n = la.len();
        // the segment [k, k+1] with la[k] ≥ target ≥ la[k+1] (la decreasing),
        // clamped to the end segments (linear extrapolation)
        let k = la
            .partition_point(|&v| v > target)
            .saturating_sub(1)
            .min(n - 2);
        let dt = 1.0 / n as f64;
        let (a, b) = (la[k], la[k + 1]);
        (k + 1) as f64 * dt + (target - a) / (b - a) * dt
    }
    fn d_log_alpha(&self, t: f64) -> f64 {
        let (k, dt) = self.segment(t);
        (self.log_alpha[k + 1] - self.log_alpha[k]) / dt
    }
    fn d_lambda(&self, t: f64) -> f64 {
        let la = self.log_alpha(t);
        self.d_log_alpha(t) / -(2.0 * la).exp_m1()
    }
    fn t_range(&self) -> (f64, f64) {
        (1.0 / self.log_alpha.len() as f64, 1.0)
    }
}
