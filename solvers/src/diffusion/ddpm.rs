//! DDPM ancestral sampling (Ho, Jain, Abbeel, "Denoising diffusion
//! probabilistic models", NeurIPS 2020, Eqs. 6–7 and Alg. 2; diffusers
//! `DDPMScheduler.step`; `../shared/reference/diffusion.md` §4), on any grid
//! (strided: the step's `β = 1 − ᾱ_s/ᾱ_t`) and any schedule: a draw from the
//! Gaussian posterior `q(x_t | x_s, x̂0)` of the forward process. With
//! `α_{s|t} = α_s/α_t` and `σ_{s|t}² = σ_s² − α_{s|t}² σ_t² = σ_s² (1 − e^{−2h})`
//! (`h = λ_t − λ_s`; VP: `σ_{s|t}² = β`),
//! `x_t = (α_{s|t} σ_t²/σ_s²) x_s + (α_t σ_{s|t}²/σ_s²) x̂0 + std · z`,
//! `std = σ_{s|t} σ_t/σ_s` (the posterior variance `β̃`, "fixed_small") or
//! `σ_{s|t}` (`β`, "fixed_large"). One model evaluation per step; every
//! step draws noise (the end time `t_end > 0` has `σ > 0`).
//!
//! With `β̃` the step is algebraically SDE-DPM-Solver++1 (the first step of
//! [`super::SdeDpmSolverPP2M`]) and DDIM with `η = 1`; the tests check the
//! two implementations agree.

use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Sampler};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp, add_scaled};
use super::schedule::NoiseSchedule;
use crate::solver::Increment;

/// The variance of the ancestral step's noise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DdpmVariance {
    /// The posterior variance `β̃ = σ_{s|t}² σ_t²/σ_s²` ("fixed_small", the
    /// default): the exact posterior given `x̂0`.
    #[default]
    Posterior,
    /// The forward transition's variance `β = σ_{s|t}²` ("fixed_large").
    Transition,
}

/// DDPM ancestral sampling: one model evaluation per step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DdpmAncestral {
    /// The variance of each step's noise.
    pub variance: DdpmVariance,
}

/// `(c_x, c_0, std)` of the step from `s` to `t`.
fn coefficients<S: NoiseSchedule + ?Sized>(
    sched: &S,
    s: f64,
    t: f64,
    variance: DdpmVariance,
) -> (f64, f64, f64) {
    let a_st = (sched.log_alpha(s) - sched.log_alpha(t)).exp();
    let (sig_s, sig_t) = (sched.sigma(s), sched.sigma(t));
    let h = sched.lambda(t) - sched.lambda(s);
    // σ_{s|t}²/σ_s² = 1 − e^{−2h}, without the cancellation of the difference
    let keep = -(-2.0 * h).exp_m1();
    let ratio = sig_t / sig_s;
    let std = match variance {
        DdpmVariance::Posterior => sig_t * keep.sqrt(),
        DdpmVariance::Transition => sig_s * keep.sqrt(),
    };
    (a_st * ratio * ratio, sched.alpha(t) * keep, std)
}

impl Sampler for DdpmAncestral {
    const INCREMENT: Increment = Increment::Dw;
    fn name(&self) -> &'static str {
        "DDPM ancestral"
    }
    fn order(&self) -> f64 {
        1.0
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Data
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        let (cx, c0, std) = coefficients(st.schedule(), st.t, st.t_next, self.variance);
        for (((o, &x), &m), &z) in st.x_new.iter_mut().zip(st.x).zip(st.m0).zip(st.noise) {
            *o = cx * x + c0 * m + std * z;
        }
    }
}

/// `x̄ += c_x x̄_new`, `m̄0 += c_0 x̄_new` (the noise is a constant).
impl SamplerVjp for DdpmAncestral {
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        let (cx, c0, _) = coefficients(st.schedule(), st.t, st.t_next, self.variance);
        add_scaled(st.x_bar, cx, st.x_bar_new);
        add_scaled(st.m0_bar, c0, st.x_bar_new);
        0
    }
}
