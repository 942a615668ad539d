//! Predictor–corrector sampling with a Langevin corrector (Song et al.,
//! "Score-based generative modeling through stochastic differential
//! equations", ICLR 2021, §4.2 and Alg. 2–3; score_sde `sampling.py`
//! `LangevinCorrector`, `EulerMaruyamaPredictor`;
//! `../shared/reference/diffusion.md` §4 "Reverse SDE, PC").
//!
//! Each step from `s` to `t` first corrects at `s` with one step of
//! Langevin dynamics, `x̄ = x + ε ∇log p_s(x) + √(2ε) z'`, its step size from
//! the signal-to-noise rule `ε = 2 a (r ‖z'‖/‖∇log p_s‖)²` (`r` the target
//! signal-to-noise ratio, 0.16 in score_sde's CIFAR-10 configs;
//! `a = (α_s/α_t)²`, score_sde's `1 − β_i` for VP and 1 for VE), then
//! predicts with reverse-SDE Euler–Maruyama from `(s, x̄)`
//! ([`super::ReverseEulerMaruyama`]). Two model evaluations per step
//! (score_sde: `N (n_steps + 1)`), one corrector step per step. The norms
//! are taken over the whole state (score_sde averages per-sample norms over
//! the batch; for a single sample they agree). Both draws come from the
//! problem's driver: `z` is the step's `ΔW/√|Δt|` and `z'` its space–time
//! Lévy area `H √(12/|Δt|)`, independent of `ΔW`
//! ([`crate::solver::Increment::DwLevyArea`]). No step VJP: the step size
//! depends on the state.

use super::model::{Model, Parametrisation};
use super::reverse_sde::g_squared;
use super::sampler::{Advance, Sampler};
use super::schedule::NoiseSchedule;
use crate::error::SolveError;
use crate::solver::Increment;

/// Predictor–corrector sampling: a Langevin corrector step, then a
/// reverse-SDE Euler–Maruyama predictor step; two model evaluations per
/// step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LangevinPc {
    /// The corrector's target signal-to-noise ratio `r` (finite, positive).
    pub snr: f64,
}

impl Default for LangevinPc {
    /// `r = 0.16` (score_sde's CIFAR-10 configurations).
    fn default() -> Self {
        LangevinPc { snr: 0.16 }
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

impl Sampler for LangevinPc {
    const INCREMENT: Increment = Increment::DwLevyArea;
    fn name(&self) -> &'static str {
        "predictor–corrector (Langevin)"
    }
    fn order(&self) -> f64 {
        1.0
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Noise
    }
    fn scratch(&self) -> usize {
        2
    }
    fn check_settings(&self) -> Result<(), SolveError> {
        if !(self.snr.is_finite() && self.snr > 0.0) {
            return Err(SolveError::InvalidInput {
                what: "LangevinPc snr".into(),
                reason: format!(
                    "{} is not a positive finite signal-to-noise ratio; score_sde uses 0.16",
                    self.snr
                ),
            });
        }
        Ok(())
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        let Advance {
            flow,
            p,
            stats,
            t,
            t_next,
            x,
            m0,
            scratch,
            x_new,
            noise,
            ..
        } = st;
        let sched = &flow.schedule;
        let n = x.len();
        let (z, zc) = noise.split_at(n);
        let (xbar, m1) = scratch.split_at_mut(n);
        // corrector at s: the score is −ε̂/σ
        let sig = sched.sigma(t);
        let score_norm = norm(m0) / sig;
        let a = (2.0 * (sched.log_alpha(t) - sched.log_alpha(t_next))).exp();
        let eps = if score_norm > 0.0 {
            let q = self.snr * norm(zc) / score_norm;
            2.0 * a * q * q
        } else {
            0.0
        };
        let (k, w) = (-eps / sig, (2.0 * eps).sqrt());
        for (((o, &xv), &m), &zv) in xbar.iter_mut().zip(x).zip(m0).zip(zc) {
            *o = xv + k * m + w * zv;
        }
        // predictor: Euler–Maruyama from (s, x̄)
        flow.predict_as(Parametrisation::Noise, t, xbar, p, &mut m1[..n], stats);
        let dt = t_next - t;
        let cx = 1.0 + dt * sched.d_log_alpha(t);
        let ce = -2.0 * dt * sig * sched.d_lambda(t);
        let g = g_squared(sched, t).max(0.0).sqrt() * dt.abs().sqrt();
        for i in 0..n {
            x_new[i] = cx * xbar[i] + ce * m1[i] + g * z[i];
        }
    }
}
