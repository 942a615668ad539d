//! DPM-Solver++(2S), singlestep, data prediction (Lu, Zhou, Bao, Chen, Li,
//! Zhu, "DPM-Solver++", arXiv 2211.01095, Alg. 1 with `r1 = ½`): with
//! `s1 = t(λ_s + r1 h)`,
//! `u = (σ_{s1}/σ_s) x − α_{s1}(e^{−r1 h} − 1) x̂0_s`,
//! `x_t = (σ_t/σ_s) x − α_t(e^{−h} − 1) x̂0_s − (α_t/(2 r1))(e^{−h} − 1)(x̂0(u, s1) − x̂0_s)`.
//! Order 2, two model evaluations per step; the data form of DPM-Solver-2's
//! step ([`super::sampler::Form`]). Reference:
//! `../shared/reference/exponential.md` §4.

use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Form, Sampler};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp};
use super::schedule::NoiseSchedule;

/// DPM-Solver++(2S) (`r1 = ½`): order 2, two evaluations per step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpmSolverPP2S;

impl Sampler for DpmSolverPP2S {
    fn name(&self) -> &'static str {
        "DPM-Solver++(2S)"
    }
    fn order(&self) -> f64 {
        2.0
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Data
    }
    fn scratch(&self) -> usize {
        2
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        Form::Data.singlestep2(0.5, st);
    }
}

impl SamplerVjp for DpmSolverPP2S {
    fn vjp_scratch(&self) -> usize {
        4
    }
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        Form::Data.singlestep2_vjp(0.5, st)
    }
}
