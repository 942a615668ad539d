//! DPM-Solver-2, singlestep, noise prediction (Lu, Zhou, Bao, Chen, Li, Zhu,
//! "DPM-Solver", NeurIPS 2022, Alg. 1 with `r1 = ½`): with
//! `s1 = t(λ_s + r1 h)`,
//! `u = (α_{s1}/α_s) x − σ_{s1}(e^{r1 h} − 1) ε_s`,
//! `x_t = (α_t/α_s) x − σ_t(e^h − 1) ε_s − (σ_t/(2 r1))(e^h − 1)(ε̂(u, s1) − ε_s)`.
//! Order 2, two model evaluations per step; the noise form of the step
//! DPM-Solver++(2S) takes in the data form ([`super::sampler::Form`]).
//! Reference: `../shared/reference/exponential.md` §4.

use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Form, Sampler};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp};
use super::schedule::NoiseSchedule;

/// DPM-Solver-2 (singlestep, `r1 = ½`): order 2, two evaluations per step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpmSolver2;

impl Sampler for DpmSolver2 {
    fn name(&self) -> &'static str {
        "DPM-Solver-2"
    }
    fn order(&self) -> f64 {
        2.0
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Noise
    }
    fn scratch(&self) -> usize {
        2
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        Form::Noise.singlestep2(0.5, st);
    }
}

impl SamplerVjp for DpmSolver2 {
    fn vjp_scratch(&self) -> usize {
        4
    }
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        Form::Noise.singlestep2_vjp(0.5, st)
    }
}
