//! Euler's method on the probability-flow ODE in `t` (Song et al., "Score-
//! based generative modeling through stochastic differential equations",
//! ICLR 2021, §4.3): `x_t = x_s + (t − s) u(x_s, s)` with `u = dx/dt` the
//! flow velocity. Order 1, one model evaluation per step. Reference:
//! `../shared/reference/diffusion.md` §4.

use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Sampler, lin2};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp, linear_vjp};
use super::schedule::NoiseSchedule;

/// Probability-flow Euler: order 1, one model evaluation per step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PfEuler;

impl Sampler for PfEuler {
    fn name(&self) -> &'static str {
        "probability-flow Euler"
    }
    fn order(&self) -> f64 {
        1.0
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Velocity
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        lin2(st.x_new, 1.0, st.x, st.t_next - st.t, st.m0);
    }
}

/// `x̄ += x̄_new`, `ū0 += (t − s) x̄_new`.
impl SamplerVjp for PfEuler {
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        let dt = st.t_next - st.t;
        linear_vjp(st, 1.0, &[dt])
    }
}
