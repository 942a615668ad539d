//! SDE-DPM-Solver-1 (C. Lu, diffusers PR #3344,
//! `scheduling_dpmsolver_multistep.py` with `algorithm_type="sde-dpmsolver"`;
//! `../shared/reference/diffusion.md` §4): the exponential-integrator step
//! of the reverse SDE in noise form with `ε̂` frozen over the step. With
//! `h = λ_t − λ_s`, variation of constants on
//! `dx = [f x − 2σλ̇ ε̂] dt + g dW̄` gives
//! `x_t = (α_t/α_s) x_s − 2 σ_t (e^h − 1) ε̂ + σ_t √(e^{2h} − 1) z`: the noise
//! term is the exact variance of the step's stochastic integral. One model
//! evaluation per step; order 1.

use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Sampler, ratios};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp, add_scaled};
use super::schedule::NoiseSchedule;
use crate::solver::Increment;

/// SDE-DPM-Solver-1: one model evaluation per step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SdeDpmSolver1;

/// `(α_t/α_s, −2σ_t(e^h − 1), σ_t √(e^{2h} − 1))`.
fn coefficients<S: NoiseSchedule + ?Sized>(sched: &S, s: f64, t: f64) -> (f64, f64, f64) {
    let (ra, _, h) = ratios(sched, s, t);
    let sig_t = sched.sigma(t);
    (
        ra,
        -2.0 * sig_t * h.exp_m1(),
        sig_t * (2.0 * h).exp_m1().sqrt(),
    )
}

impl Sampler for SdeDpmSolver1 {
    const INCREMENT: Increment = Increment::Dw;
    fn name(&self) -> &'static str {
        "SDE-DPM-Solver-1"
    }
    fn order(&self) -> f64 {
        1.0
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Noise
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        let (r, c, std) = coefficients(st.schedule(), st.t, st.t_next);
        for (((o, &x), &m), &z) in st.x_new.iter_mut().zip(st.x).zip(st.m0).zip(st.noise) {
            *o = r * x + c * m + std * z;
        }
    }
}

/// `x̄ += (α_t/α_s) x̄_new`, `m̄0 += −2σ_t(e^h − 1) x̄_new`.
impl SamplerVjp for SdeDpmSolver1 {
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        let (r, c, _) = coefficients(st.schedule(), st.t, st.t_next);
        add_scaled(st.x_bar, r, st.x_bar_new);
        add_scaled(st.m0_bar, c, st.x_bar_new);
        0
    }
}
