//! EDM's deterministic Heun sampler (Karras, Aittala, Aila, Laine,
//! "Elucidating the design space of diffusion-based generative models",
//! NeurIPS 2022, Alg. 1; edm `generate.py` `edm_sampler`): Heun's method on
//! `dx̃/dρ = (x̃ − D(x̃; ρ))/ρ` in the scaled state `x̃ = x/α` and noise level
//! `ρ = σ/α`, with `D` the data prediction; a step to `ρ = 0` is Euler's
//! (so `N` steps to 0 cost `2N − 1` evaluations). Order 2. Reference:
//! `../shared/reference/diffusion.md` §4.

use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Sampler};
use super::schedule::NoiseSchedule;

/// EDM Heun: order 2, two model evaluations per step (one into `σ = 0`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdmHeun;

impl Sampler for EdmHeun {
    fn name(&self) -> &'static str {
        "EDM Heun"
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
    fn reaches_zero_noise(&self) -> bool {
        true
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
        let (a_s, a_t) = (sched.alpha(t), sched.alpha(t_next));
        let rho_s = sched.sigma(t) / a_s;
        let sig_t = sched.sigma(t_next);
        let rho_t = sig_t / a_t;
        let dr = rho_t - rho_s;
        // Euler predictor, in x = α x̃
        for ((o, &xv), &d0) in x_new.iter_mut().zip(x).zip(m0) {
            let xt = xv / a_s;
            *o = a_t * (xt + dr * (xt - d0) / rho_s);
        }
        if sig_t == 0.0 {
            return;
        }
        let n = x.len();
        let (xp, dp) = scratch.split_at_mut(n);
        xp.copy_from_slice(x_new);
        flow.predict_as(Parametrisation::Data, t_next, xp, p, &mut dp[..n], stats);
        for i in 0..n {
            let xt = x[i] / a_s;
            let d = (xt - m0[i]) / rho_s;
            let xpt = xp[i] / a_t;
            let d2 = (xpt - dp[i]) / rho_t;
            x_new[i] = a_t * (xt + 0.5 * dr * (d + d2));
        }
    }
}
