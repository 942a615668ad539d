//! Euler–Maruyama on the reverse SDE (Song et al., "Score-based generative
//! modeling through stochastic differential equations", ICLR 2021, §4.2;
//! score_sde `EulerMaruyamaPredictor`; `../shared/reference/diffusion.md`
//! §4 "Reverse SDE, PC"): with `Δt = t − s < 0`,
//! `x_t = x_s + Δt (f x_s − 2 σ_s λ̇_s ε̂) + g_s √|Δt| z`, `z = ΔW/√|Δt|` from
//! the problem's driver. Weak order 1 (strong order 1: the noise is
//! additive); one model evaluation per step.

use super::model::{Model, Parametrisation};
use super::reverse_sde::g_squared;
use super::sampler::{Advance, Sampler};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp, add_scaled};
use super::schedule::NoiseSchedule;
use crate::solver::Increment;

/// Euler–Maruyama on the reverse SDE: one model evaluation per step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReverseEulerMaruyama;

/// `(1 + Δt f, Δt (−2σλ̇))`: the coefficients of `x` and `ε̂` in the step.
fn coefficients<S: NoiseSchedule + ?Sized>(sched: &S, s: f64, t: f64) -> (f64, f64) {
    let dt = t - s;
    (
        1.0 + dt * sched.d_log_alpha(s),
        -2.0 * dt * sched.sigma(s) * sched.d_lambda(s),
    )
}

impl Sampler for ReverseEulerMaruyama {
    const INCREMENT: Increment = Increment::Dw;
    fn name(&self) -> &'static str {
        "reverse-SDE Euler–Maruyama"
    }
    fn order(&self) -> f64 {
        1.0
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Noise
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        let sched = st.schedule();
        let (cx, ce) = coefficients(sched, st.t, st.t_next);
        let g = g_squared(sched, st.t).max(0.0).sqrt() * (st.t_next - st.t).abs().sqrt();
        for (((o, &x), &m), &z) in st.x_new.iter_mut().zip(st.x).zip(st.m0).zip(st.noise) {
            *o = cx * x + ce * m + g * z;
        }
    }
}

/// The noise is a constant of the step: `x̄ += (1 + Δt f) x̄_new`,
/// `m̄0 += Δt (−2σλ̇) x̄_new`.
impl SamplerVjp for ReverseEulerMaruyama {
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        let (cx, ce) = coefficients(st.schedule(), st.t, st.t_next);
        add_scaled(st.x_bar, cx, st.x_bar_new);
        add_scaled(st.m0_bar, ce, st.x_bar_new);
        0
    }
}
