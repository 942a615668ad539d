//! DDIM with `η = 0` (Song, Meng, Ermon, "Denoising diffusion implicit
//! models", ICLR 2021, Eq. 12), which is DPM-Solver-1 (Lu et al., NeurIPS
//! 2022, Eq. 3.7) and DPM-Solver++1: the exponential-integrator step with
//! the noise prediction frozen, `x_t = (α_t/α_s) x_s − σ_t (e^h − 1) ε̂(x_s, s)`,
//! `h = λ_t − λ_s`. Order 1, one model evaluation per step.
//! Reference: `../shared/reference/exponential.md` §4, `diffusion.md` §4.

use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Form, Sampler, lin2};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp, add_scaled};
use super::schedule::NoiseSchedule;

/// DDIM (`η = 0`) = DPM-Solver-1: order 1, one model evaluation per step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ddim;

/// DPM-Solver-1 is DDIM with `η = 0`.
pub type DpmSolver1 = Ddim;

impl Sampler for Ddim {
    fn name(&self) -> &'static str {
        "DDIM (DPM-Solver-1)"
    }
    fn order(&self) -> f64 {
        1.0
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Noise
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        let sched = st.schedule();
        let h = sched.lambda(st.t_next) - sched.lambda(st.t);
        let (r, c) = Form::Noise.first_order(sched, (st.t, st.t_next), h);
        lin2(st.x_new, r, st.x, c, st.m0);
    }
}

/// `x̄ += r x̄_new`, `m̄0 += c x̄_new`.
impl SamplerVjp for Ddim {
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        let sched = st.schedule();
        let h = sched.lambda(st.t_next) - sched.lambda(st.t);
        let (r, c) = Form::Noise.first_order(sched, (st.t, st.t_next), h);
        add_scaled(st.x_bar, r, st.x_bar_new);
        add_scaled(st.m0_bar, c, st.x_bar_new);
        0
    }
}
