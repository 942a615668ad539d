//! DPM-Solver-3, singlestep, noise prediction (Lu et al., "DPM-Solver",
//! NeurIPS 2022, Alg. 2 with `r1 = ⅓, r2 = ⅔`):
//! `u1 = (α_{s1}/α_s) x − σ_{s1}(e^{r1 h} − 1) ε_s`, `D1 = ε̂(u1, s1) − ε_s`,
//! `u2 = (α_{s2}/α_s) x − σ_{s2}(e^{r2 h} − 1) ε_s − σ_{s2}(r2/r1)((e^{r2 h} − 1)/(r2 h) − 1) D1`,
//! `D2 = ε̂(u2, s2) − ε_s`,
//! `x_t = (α_t/α_s) x − σ_t(e^h − 1) ε_s − (σ_t/r2)((e^h − 1)/h − 1) D2`.
//! Order 3, three model evaluations per step. Reference:
//! `../shared/reference/exponential.md` §4.

use super::model::{Model, Parametrisation, ProbabilityFlow};
use super::sampler::{Advance, Form, Sampler, lin2};
use super::schedule::NoiseSchedule;
use crate::solution::Stats;

/// DPM-Solver-3 (singlestep, `r1 = ⅓, r2 = ⅔`): order 3, three
/// evaluations per step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpmSolver3;

/// `(e^z − 1)/z − 1 = z φ_2(z)` (accurate near `z = 0`).
fn phi2_noise(z: f64) -> f64 {
    z * crate::expint::phi::phi(2, z)
}

impl Sampler for DpmSolver3 {
    fn name(&self) -> &'static str {
        "DPM-Solver-3"
    }
    fn order(&self) -> f64 {
        3.0
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Noise
    }
    fn scratch(&self) -> usize {
        3
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
        let n = x.len();
        let (u, rest) = scratch.split_at_mut(n);
        let (d1, d2) = rest.split_at_mut(n);
        let stages = Stages {
            flow,
            p,
            t,
            t_next,
            x,
            m0,
        };
        stages.first(R1, u, d1, stats);
        stages.rest(R1, R2, d1, u, &mut d2[..n], x_new, stats);
    }
}

/// DPM-Solver-3's intermediate fractions of the step in `λ`.
pub(crate) const R1: f64 = 1.0 / 3.0;
/// The second.
pub(crate) const R2: f64 = 2.0 / 3.0;

/// The stages of a DPM-Solver-3 step from `(t, x)` with `ε_s = m0` to
/// `t_next` (shared with the adaptive DPM-Solver-23, whose DPM-Solver-2
/// with `r1 = ⅓` is the first stage).
pub(crate) struct Stages<'a, M, S> {
    pub(crate) flow: &'a ProbabilityFlow<M, S>,
    pub(crate) p: &'a [f64],
    pub(crate) t: f64,
    pub(crate) t_next: f64,
    pub(crate) x: &'a [f64],
    pub(crate) m0: &'a [f64],
}

impl<M: Model, S: NoiseSchedule> Stages<'_, M, S> {
    /// The first stage: `u1` (DPM-Solver-1 to `s1 = t(λ_s + r1 h)`) into
    /// `u` and `D1 = ε̂(u1, s1) − ε_s` into `d1`.
    pub(crate) fn first(&self, r1: f64, u: &mut [f64], d1: &mut [f64], stats: &mut Stats) {
        let sched = &self.flow.schedule;
        let lam_s = sched.lambda(self.t);
        let h = sched.lambda(self.t_next) - lam_s;
        let s1 = sched.t_of_lambda(lam_s + r1 * h);
        let (ra1, c1) = Form::Noise.first_order(sched, (self.t, s1), r1 * h);
        lin2(u, ra1, self.x, c1, self.m0);
        self.flow
            .predict_as(Parametrisation::Noise, s1, u, self.p, d1, stats);
        d1.iter_mut().zip(self.m0).for_each(|(d, &e)| *d -= e);
    }

    /// The second stage and the step, from `D1` (`u` is workspace, `d2`
    /// receives `D2`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn rest(
        &self,
        r1: f64,
        r2: f64,
        d1: &[f64],
        u: &mut [f64],
        d2: &mut [f64],
        x_new: &mut [f64],
        stats: &mut Stats,
    ) {
        let (x, m0) = (self.x, self.m0);
        let sched = &self.flow.schedule;
        let lam_s = sched.lambda(self.t);
        let h = sched.lambda(self.t_next) - lam_s;
        let s2 = sched.t_of_lambda(lam_s + r2 * h);
        let n = x.len();
        let (ra2, c0) = Form::Noise.first_order(sched, (self.t, s2), r2 * h);
        let c1 = -sched.sigma(s2) * (r2 / r1) * phi2_noise(r2 * h);
        for i in 0..n {
            u[i] = ra2 * x[i] + c0 * m0[i] + c1 * d1[i];
        }
        self.flow
            .predict_as(Parametrisation::Noise, s2, u, self.p, d2, stats);
        d2.iter_mut().zip(m0).for_each(|(d, &e)| *d -= e);
        let (ra, c0) = Form::Noise.first_order(sched, (self.t, self.t_next), h);
        let c2 = -sched.sigma(self.t_next) / r2 * phi2_noise(h);
        for i in 0..n {
            x_new[i] = ra * x[i] + c0 * m0[i] + c2 * d2[i];
        }
    }
}
