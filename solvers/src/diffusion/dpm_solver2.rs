//! DPM-Solver-2, singlestep, noise prediction (Lu, Zhou, Bao, Chen, Li, Zhu,
//! "DPM-Solver", NeurIPS 2022, Alg. 1 with `r1 = ½`): with
//! `s1 = t(λ_s + r1 h)`,
//! `u = (α_{s1}/α_s) x − σ_{s1}(e^{r1 h} − 1) ε_s`,
//! `x_t = (α_t/α_s) x − σ_t(e^h − 1) ε_s − (σ_t/(2 r1))(e^h − 1)(ε̂(u, s1) − ε_s)`.
//! Order 2, two model evaluations per step. Reference:
//! `../shared/reference/exponential.md` §4.

use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Sampler, lin2, ratios};
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
        let (ra, _, h) = ratios(sched, t, t_next);
        let s1 = sched.t_of_lambda(sched.lambda(t) + r1 * h);
        let (ra1, _, _) = ratios(sched, t, s1);
        let n = x.len();
        let (u, e1) = scratch.split_at_mut(n);
        lin2(u, ra1, x, -sched.sigma(s1) * (r1 * h).exp_m1(), m0);
        flow.predict_as(Parametrisation::Noise, s1, u, p, &mut e1[..n], stats);
        let c = -sched.sigma(t_next) * h.exp_m1();
        let w = 1.0 / (2.0 * r1);
        for i in 0..n {
            x_new[i] = ra * x[i] + c * (m0[i] + w * (e1[i] - m0[i]));
        }
    }
}
