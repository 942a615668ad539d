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
//! ([`crate::solver::Increment::DwLevyArea`]).
//!
//! **Step VJP.** The step size depends on the state through `‖ε̂_s‖`:
//! `ε = C/‖ε̂_s‖²` with `C = 2a (r ‖z'‖ σ_s)²` constant on the replayed
//! path, so `∂ε/∂ε̂_s = −2ε ε̂_s/‖ε̂_s‖²`, and `x̄ = x − (ε/σ_s) ε̂_s + √(2ε) z'`
//! has `∂x̄/∂ε = −ε̂_s/σ_s + z'/√(2ε)`; the VJP differentiates it (exact
//! wherever `ε̂_s ≠ 0`; at `ε̂_s = 0` the corrector is skipped and so is its
//! derivative).

use super::model::{Model, Parametrisation};
use super::reverse_sde::g_squared;
use super::sampler::{Advance, Sampler};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp, add_scaled};
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
        let k = self.coefficients(sched, (t, t_next), m0, zc);
        // corrector at s: x̄ = x + kc ε̂_s + w z'
        for (((o, &xv), &m), &zv) in xbar.iter_mut().zip(x).zip(m0).zip(zc) {
            *o = xv + k.kc * m + k.w * zv;
        }
        // predictor: Euler–Maruyama from (s, x̄)
        flow.predict_as(Parametrisation::Noise, t, xbar, p, &mut m1[..n], stats);
        for i in 0..n {
            x_new[i] = k.cx * xbar[i] + k.ce * m1[i] + k.g * z[i];
        }
    }
}

/// The coefficients of a predictor–corrector step: the corrector's step
/// size `eps`, `x̄ = x + kc ε̂_s + w z'` (`kc = −ε/σ_s`, `w = √(2ε)`), and
/// the predictor `x_t = cx x̄ + ce ε̂(x̄, s) + g z`.
#[derive(Debug, Clone, Copy)]
struct PcCoefs {
    eps: f64,
    kc: f64,
    w: f64,
    cx: f64,
    ce: f64,
    g: f64,
}

impl LangevinPc {
    fn coefficients<S: NoiseSchedule + ?Sized>(
        &self,
        sched: &S,
        (t, t_next): (f64, f64),
        m0: &[f64],
        zc: &[f64],
    ) -> PcCoefs {
        // the score is −ε̂/σ
        let sig = sched.sigma(t);
        let score_norm = norm(m0) / sig;
        let a = (2.0 * (sched.log_alpha(t) - sched.log_alpha(t_next))).exp();
        let eps = if score_norm > 0.0 {
            let q = self.snr * norm(zc) / score_norm;
            2.0 * a * q * q
        } else {
            0.0
        };
        let dt = t_next - t;
        PcCoefs {
            eps,
            kc: -eps / sig,
            w: (2.0 * eps).sqrt(),
            cx: 1.0 + dt * sched.d_log_alpha(t),
            ce: -2.0 * dt * sig * sched.d_lambda(t),
            g: g_squared(sched, t).max(0.0).sqrt() * dt.abs().sqrt(),
        }
    }
}

/// Writing `x_c` for the corrected state (`x̄` above) and `x̄_c` for its
/// cotangent: the predictor sends `cx x̄_t` and, through the model at
/// `(s, x_c)`, the VJP of `ce x̄_t` to `x̄_c` (one model VJP; `x_c` is
/// recomputed without a model evaluation); the corrector sends `x̄_c` to
/// `x̄` and `kc x̄_c` to `ε̄_s`, and the cotangent of its step size,
/// `ε̄ = x̄_c · (−ε̂_s/σ_s + z'/√(2ε))`, to `ε̄_s` by `−2ε ε̂_s/‖ε̂_s‖²`.
impl SamplerVjp for LangevinPc {
    fn vjp_scratch(&self) -> usize {
        4
    }
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        let n = st.x.len();
        let sched = st.flow.schedule();
        let (t, m0) = (st.t, st.m0);
        let zc = &st.noise[n..];
        let k = self.coefficients(sched, (t, st.t_next), m0, zc);
        let (xc, rest) = st.scratch.split_at_mut(n);
        let (m1_bar, rest) = rest.split_at_mut(n);
        let (xc_bar, scaled) = rest.split_at_mut(n);
        for (((o, &xv), &m), &zv) in xc.iter_mut().zip(st.x).zip(m0).zip(zc) {
            *o = xv + k.kc * m + k.w * zv;
        }
        for ((mb, cb), &xb) in m1_bar.iter_mut().zip(xc_bar.iter_mut()).zip(st.x_bar_new) {
            *mb = k.ce * xb;
            *cb = k.cx * xb;
        }
        let want = Parametrisation::Noise;
        st.flow.predict_vjp(
            want,
            t,
            xc,
            st.p,
            m1_bar,
            &mut scaled[..n],
            xc_bar,
            st.p_bar,
        );
        add_scaled(st.x_bar, 1.0, xc_bar);
        add_scaled(st.m0_bar, k.kc, xc_bar);
        if k.eps > 0.0 {
            let sig = sched.sigma(t);
            let mut eps_bar = 0.0;
            for ((&cb, &m), &zv) in xc_bar.iter().zip(m0).zip(zc) {
                eps_bar += cb * (-m / sig + zv / k.w);
            }
            let m_sq: f64 = m0.iter().map(|v| v * v).sum();
            add_scaled(st.m0_bar, -2.0 * k.eps / m_sq * eps_bar, m0);
        }
        1
    }
}
