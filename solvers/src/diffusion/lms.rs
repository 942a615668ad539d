//! k-diffusion's linear multistep sampler LMS (Crowson, k-diffusion
//! `sampling.py` `sample_lms`, `linear_multistep_coeff`): Adams–Bashforth
//! with variable steps in the noise level `ρ = σ/α` on the derivative of
//! Karras et al.'s ODE `dx̃/dρ = (x̃ − D(x̃; ρ))/ρ`, `x̃ = x/α`, which is the
//! noise prediction `ε̂` (`x̃ = D + ρ ε̂`). Reference:
//! `../shared/reference/diffusion.md` §4.
//!
//! With the current and the `k − 1` previous noise levels `ρ_0, ρ_1, …` and
//! their predictions `ε_j`, `x̃_t = x̃_s + Σ_j c_j ε_j`,
//! `c_j = ∫_{ρ_s}^{ρ_t} ℓ_j(ρ) dρ` (Lagrange basis on the `ρ_j`), exact by
//! Gauss–Legendre ([`super::lagrange`]; k-diffusion calls scipy's `quad`).
//! Order `k` (default 4), lower-order warm-up on the first `k − 1` steps,
//! one model evaluation per step; it can step to `σ = 0` (`ρ_t = 0`).

use super::lagrange::{AdamsBashforth, MAX_NODES, lagrange_integrals, nodes};
use super::model::{Model, Parametrisation};
use super::sampler::{Advance, History, Sampler};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp};
use super::schedule::NoiseSchedule;
use crate::error::SolveError;

/// k-diffusion's LMS of order `k ∈ 1..=4` (default 4): one model
/// evaluation per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lms {
    order: usize,
}

impl Default for Lms {
    fn default() -> Self {
        Lms { order: 4 }
    }
}

impl Lms {
    /// LMS of order `order` (1 to 4; checked when solving).
    pub fn new(order: usize) -> Self {
        Lms { order }
    }
}

impl Sampler for Lms {
    fn name(&self) -> &'static str {
        "LMS"
    }
    fn order(&self) -> f64 {
        self.order as f64
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Noise
    }
    fn history(&self) -> usize {
        self.order.saturating_sub(1)
    }
    fn reaches_zero_noise(&self) -> bool {
        true
    }
    fn check_settings(&self) -> Result<(), SolveError> {
        if (1..=MAX_NODES).contains(&self.order) {
            Ok(())
        } else {
            Err(SolveError::InvalidInput {
                what: "Lms order".into(),
                reason: format!("{} is not one of 1, 2, 3, 4", self.order),
            })
        }
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        self.ab_advance(st);
    }
}

impl AdamsBashforth for Lms {
    fn coefficients<S: NoiseSchedule + ?Sized>(
        &self,
        sched: &S,
        (t, t_next): (f64, f64),
        history: History<'_>,
    ) -> (usize, f64, [f64; MAX_NODES]) {
        let k = self.order.min(history.len() + 1);
        let (a_s, a_t) = (sched.alpha(t), sched.alpha(t_next));
        let (rho_s, rho_t) = (sched.sigma(t) / a_s, sched.sigma(t_next) / a_t);
        let nodes = nodes(rho_s, history, k, |lam| (-lam).exp());
        let mut c = [0.0; MAX_NODES];
        lagrange_integrals(&nodes[..k], (rho_s, rho_t), |r| (r, 1.0), &mut c);
        // x_t = α_t (x_s/α_s + Σ c_j ε_j)
        c[..k].iter_mut().for_each(|cj| *cj *= a_t);
        (k, a_t / a_s, c)
    }
}

/// The step is linear in the state and the predictions.
impl SamplerVjp for Lms {
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        self.ab_vjp(st)
    }
}
