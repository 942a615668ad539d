//! DPM-Solver-3, singlestep, noise prediction (Lu et al., "DPM-Solver",
//! NeurIPS 2022, Alg. 2 with `r1 = ⅓, r2 = ⅔`):
//! `u1 = (α_{s1}/α_s) x − σ_{s1}(e^{r1 h} − 1) ε_s`, `D1 = ε̂(u1, s1) − ε_s`,
//! `u2 = (α_{s2}/α_s) x − σ_{s2}(e^{r2 h} − 1) ε_s − σ_{s2}(r2/r1)((e^{r2 h} − 1)/(r2 h) − 1) D1`,
//! `D2 = ε̂(u2, s2) − ε_s`,
//! `x_t = (α_t/α_s) x − σ_t(e^h − 1) ε_s − (σ_t/r2)((e^h − 1)/h − 1) D2`.
//! Order 3, three model evaluations per step. Reference:
//! `../shared/reference/exponential.md` §4.

use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Form, Sampler, lin2};
use super::schedule::NoiseSchedule;

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
        let sched = &flow.schedule;
        let (r1, r2) = (1.0 / 3.0, 2.0 / 3.0);
        let h = sched.lambda(t_next) - sched.lambda(t);
        let lam_s = sched.lambda(t);
        let (s1, s2) = (
            sched.t_of_lambda(lam_s + r1 * h),
            sched.t_of_lambda(lam_s + r2 * h),
        );
        let n = x.len();
        let (u, rest) = scratch.split_at_mut(n);
        let (d1, d2) = rest.split_at_mut(n);
        // first stage: DPM-Solver-1 to s1
        let (ra1, c1) = Form::Noise.first_order(sched, (t, s1), r1 * h);
        lin2(u, ra1, x, c1, m0);
        flow.predict_as(Parametrisation::Noise, s1, u, p, d1, stats);
        d1.iter_mut().zip(m0).for_each(|(d, &e)| *d -= e);
        // second stage
        let (ra2, c0) = Form::Noise.first_order(sched, (t, s2), r2 * h);
        let c1 = -sched.sigma(s2) * (r2 / r1) * phi2_noise(r2 * h);
        for i in 0..n {
            u[i] = ra2 * x[i] + c0 * m0[i] + c1 * d1[i];
        }
        flow.predict_as(Parametrisation::Noise, s2, u, p, &mut d2[..n], stats);
        d2.iter_mut().zip(m0).for_each(|(d, &e)| *d -= e);
        // the step
        let (ra, c0) = Form::Noise.first_order(sched, (t, t_next), h);
        let c2 = -sched.sigma(t_next) / r2 * phi2_noise(h);
        for i in 0..n {
            x_new[i] = ra * x[i] + c0 * m0[i] + c2 * d2[i];
        }
    }
}
