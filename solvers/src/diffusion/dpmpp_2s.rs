//! DPM-Solver++(2S), singlestep, data prediction (Lu, Zhou, Bao, Chen, Li,
//! Zhu, "DPM-Solver++", arXiv 2211.01095, Alg. 1 with `r1 = ½`): with
//! `s1 = t(λ_s + r1 h)`,
//! `u = (σ_{s1}/σ_s) x − α_{s1}(e^{−r1 h} − 1) x̂0_s`,
//! `x_t = (σ_t/σ_s) x − α_t(e^{−h} − 1) x̂0_s − (α_t/(2 r1))(e^{−h} − 1)(x̂0(u, s1) − x̂0_s)`.
//! Order 2, two model evaluations per step. Reference:
//! `../shared/reference/exponential.md` §4.

use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Sampler, lin2, ratios};
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
            ..
        } = st;
        let sched = &flow.schedule;
        let r1 = 0.5;
        let (_, rs, h) = ratios(sched, t, t_next);
        let s1 = sched.t_of_lambda(sched.lambda(t) + r1 * h);
        let (_, rs1, _) = ratios(sched, t, s1);
        let n = x.len();
        let (u, m1) = scratch.split_at_mut(n);
        lin2(u, rs1, x, -sched.alpha(s1) * (-r1 * h).exp_m1(), m0);
        flow.predict_as(Parametrisation::Data, s1, u, p, &mut m1[..n], stats);
        let c = -sched.alpha(t_next) * (-h).exp_m1();
        let w = 1.0 / (2.0 * r1);
        for i in 0..n {
            x_new[i] = rs * x[i] + c * (m0[i] + w * (m1[i] - m0[i]));
        }
    }
}
