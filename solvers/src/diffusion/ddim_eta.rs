//! DDIM with `η > 0` (Song, Meng, Ermon, "Denoising diffusion implicit
//! models", ICLR 2021, Eqs. 12 and 16; diffusers `DDIMScheduler.step` and
//! `_get_variance`; `../shared/reference/diffusion.md` §4), a sampler of the
//! reverse SDE ([`super::DiffusionSde`], noise from the problem's driver).
//! With `h = λ_t − λ_s`, the data prediction `x̂0` and the implied noise
//! `ε̂ = (x_s − α_s x̂0)/σ_s`,
//! `x_t = α_t x̂0 + √(σ_t² − σ̃²) ε̂ + σ̃ z`,
//! `σ̃ = η σ_t √(1 − e^{−2h})`; in VP terms
//! `σ̃² = η² (1 − ᾱ_t)/(1 − ᾱ_s) · (1 − ᾱ_s/ᾱ_t)`, diffusers' variance
//! (the unit tests check the two agree). In `(x_s, x̂0)`:
//! `x_t = c_x x_s + c_0 x̂0 + σ̃ z` with `r = √(1 − η²(1 − e^{−2h}))`,
//! `c_x = r σ_t/σ_s`, `c_0 = α_t (1 − e^{−h} r)`.
//!
//! `η = 0` is deterministic DDIM ([`super::Ddim`]) and `η = 1` is DDPM
//! ancestral with the posterior variance ([`super::DdpmAncestral`]); the
//! tests check both. `0 ≤ η ≤ 1` (for `η > 1` the square root is not real
//! on large steps). One model evaluation per step; order 1.

use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Sampler};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp, add_scaled};
use super::schedule::NoiseSchedule;
use crate::error::SolveError;
use crate::solver::Increment;

/// DDIM with stochasticity `η ∈ [0, 1]` on the reverse SDE: one model
/// evaluation per step, order 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DdimEta {
    /// The share of the posterior noise each step redraws: 0 is
    /// deterministic DDIM, 1 is DDPM ancestral.
    pub eta: f64,
}

impl Default for DdimEta {
    /// `η = 1`.
    fn default() -> Self {
        DdimEta { eta: 1.0 }
    }
}

/// `(c_x, c_0, σ̃)` of the step from `s` to `t`.
fn coefficients<S: NoiseSchedule + ?Sized>(sched: &S, s: f64, t: f64, eta: f64) -> (f64, f64, f64) {
    let (sig_s, sig_t) = (sched.sigma(s), sched.sigma(t));
    let h = sched.lambda(t) - sched.lambda(s);
    // 1 − e^{−2h}, without the cancellation of the difference
    let keep = -(-2.0 * h).exp_m1();
    let lost = eta * eta * keep;
    let r = (1.0 - lost).max(0.0).sqrt();
    // 1 − e^{−h} r = (1 − e^{−h}) + e^{−h} (1 − r), 1 − r = lost/(1 + r)
    let c0 = sched.alpha(t) * (-(-h).exp_m1() + (-h).exp() * lost / (1.0 + r));
    (r * sig_t / sig_s, c0, eta * sig_t * keep.sqrt())
}

impl Sampler for DdimEta {
    const INCREMENT: Increment = Increment::Dw;
    fn name(&self) -> &'static str {
        "DDIM (η > 0)"
    }
    fn order(&self) -> f64 {
        1.0
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Data
    }
    fn check_settings(&self) -> Result<(), SolveError> {
        if !(self.eta.is_finite() && (0.0..=1.0).contains(&self.eta)) {
            return Err(SolveError::InvalidInput {
                what: "DdimEta eta".into(),
                reason: format!(
                    "{} is not in [0, 1]; η = 0 is deterministic DDIM, η = 1 DDPM ancestral",
                    self.eta
                ),
            });
        }
        Ok(())
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        let (cx, c0, std) = coefficients(st.schedule(), st.t, st.t_next, self.eta);
        for (((o, &x), &m), &z) in st.x_new.iter_mut().zip(st.x).zip(st.m0).zip(st.noise) {
            *o = cx * x + c0 * m + std * z;
        }
    }
}

/// `x̄ += c_x x̄_new`, `m̄0 += c_0 x̄_new` (the noise is a constant).
impl SamplerVjp for DdimEta {
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        let (cx, c0, _) = coefficients(st.schedule(), st.t, st.t_next, self.eta);
        add_scaled(st.x_bar, cx, st.x_bar_new);
        add_scaled(st.m0_bar, c0, st.x_bar_new);
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::VpLinear;

    /// The noise level is diffusers' `η √_get_variance` with `ᾱ = α²`, and
    /// the coefficients are the closed forms of the module docs.
    #[test]
    fn coefficients_match_diffusers_and_the_closed_form() {
        let sched = VpLinear::default();
        for &(s, t, eta) in &[(0.9, 0.7, 1.0), (0.5, 0.45, 0.3), (0.2, 0.01, 0.8)] {
            let (cx, c0, std) = coefficients(&sched, s, t, eta);
            let (ab_s, ab_t) = (sched.alpha(s).powi(2), sched.alpha(t).powi(2));
            let variance = (1.0 - ab_t) / (1.0 - ab_s) * (1.0 - ab_s / ab_t);
            assert!((std - eta * variance.sqrt()).abs() < 1e-14, "{s} {t} {eta}");
            let (sig_s, sig_t) = (sched.sigma(s), sched.sigma(t));
            let root = (sig_t * sig_t - std * std).sqrt();
            assert!((cx - root / sig_s).abs() < 1e-14);
            let want_c0 = sched.alpha(t) - root * sched.alpha(s) / sig_s;
            assert!((c0 - want_c0).abs() < 1e-14, "{c0} vs {want_c0}");
        }
    }

    #[test]
    fn eta_outside_the_unit_interval_is_refused() {
        for eta in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            let e = DdimEta { eta }.check_settings().unwrap_err();
            assert!(e.to_string().contains("eta"), "{e}");
        }
        assert!(DdimEta { eta: 0.0 }.check_settings().is_ok());
    }
}
