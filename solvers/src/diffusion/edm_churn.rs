//! EDM's stochastic sampler (Karras, Aittala, Aila, Laine, "Elucidating the
//! design space of diffusion-based generative models", NeurIPS 2022,
//! Alg. 2; edm `generate.py` `edm_sampler`; `../shared/reference/diffusion.md`
//! §4), a sampler of the reverse SDE ([`super::DiffusionSde`], noise from
//! the problem's driver). In EDM's noise level `ρ = σ/α` and scaled state
//! `x̃ = x/α` (the schedule's own `σ` and `x` when `α = 1`), each step from
//! `ρ_i` first "churns": with
//! `γ = min(S_churn/N, √2 − 1)` when `ρ_i ∈ [S_tmin, S_tmax]` (else 0) it
//! raises the noise level to `ρ̂ = ρ_i (1 + γ)` by adding fresh noise,
//! `x̃̂ = x̃ + √(ρ̂² − ρ_i²) S_noise z`, then takes EDM's Heun step
//! ([`super::EdmHeun`]) from `ρ̂` to `ρ_{i+1}`. The time of `ρ̂` is the
//! schedule's `t(λ = −log ρ̂)`, clamped to the schedule's range (a step
//! that starts at the range's end churns only as far as the range allows,
//! not at all when it starts there).
//!
//! `S_churn = 0` (or a step outside `[S_tmin, S_tmax]`) is the
//! deterministic EDM Heun step exactly. A churned step evaluates the model
//! at `(t̂, x̂)` instead of at the step's start (the loop skips that
//! prediction, [`Sampler::uses_start_prediction`]), so it costs Heun's two
//! model evaluations.

use super::edm_heun::EdmHeun;
use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Sampler, lin2};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp, add_scaled, predict_counted};
use super::schedule::NoiseSchedule;
use crate::error::SolveError;
use crate::solver::Increment;

/// EDM's stochastic sampler (Alg. 2): churn, then EDM Heun.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdmChurn {
    /// `S_churn`, the total churn: each eligible step raises its noise
    /// level by `γ = min(S_churn/N, √2 − 1)`.
    pub s_churn: f64,
    /// `N`, the number of steps of the grid (for `γ`).
    pub steps: usize,
    /// `S_tmin`: steps starting below this noise level `ρ` do not churn.
    pub s_tmin: f64,
    /// `S_tmax`: steps starting above this noise level `ρ` do not churn.
    pub s_tmax: f64,
    /// `S_noise`, the scale of the added noise (EDM uses 1 to 1.007).
    pub s_noise: f64,
}

impl EdmChurn {
    /// Churn `s_churn` over a grid of `steps` steps, at every noise level
    /// (`S_tmin = 0`, `S_tmax = ∞`), with `S_noise = 1`.
    pub fn new(s_churn: f64, steps: usize) -> Self {
        EdmChurn {
            s_churn,
            steps,
            s_tmin: 0.0,
            s_tmax: f64::INFINITY,
            s_noise: 1.0,
        }
    }

    /// The churn of a step starting at `t`: `(t̂, α_t̂/α_t, α_t̂ √(ρ̂² − ρ²) S_noise)`,
    /// or `None` for a step that does not churn.
    fn churn<S: NoiseSchedule + ?Sized>(&self, sched: &S, t: f64) -> Option<(f64, f64, f64)> {
        let a_t = sched.alpha(t);
        let rho = sched.sigma(t) / a_t;
        if self.s_churn <= 0.0 || self.steps == 0 || !(self.s_tmin..=self.s_tmax).contains(&rho) {
            return None;
        }
        let gamma = (self.s_churn / self.steps as f64).min(std::f64::consts::SQRT_2 - 1.0);
        let t_hat = sched
            .t_of_lambda(-(rho * (1.0 + gamma)).ln())
            .min(sched.t_range().1);
        if t_hat.is_nan() || t_hat <= t {
            return None;
        }
        let a_hat = sched.alpha(t_hat);
        let rho_hat = sched.sigma(t_hat) / a_hat;
        let spread = ((rho_hat - rho) * (rho_hat + rho)).max(0.0).sqrt();
        Some((t_hat, a_hat / a_t, a_hat * spread * self.s_noise))
    }
}

fn finite_at_least(what: &str, v: f64, lo: f64, hint: &str) -> Result<(), SolveError> {
    if v.is_finite() && v >= lo {
        return Ok(());
    }
    Err(SolveError::InvalidInput {
        what: format!("EdmChurn {what}"),
        reason: format!("{v} is not a finite number ≥ {lo}; {hint}"),
    })
}

impl Sampler for EdmChurn {
    const INCREMENT: Increment = Increment::Dw;
    fn name(&self) -> &'static str {
        "EDM stochastic (churn + Heun)"
    }
    /// Heun's order on the deterministic part; the churn is a first-order
    /// stochastic step.
    fn order(&self) -> f64 {
        1.0
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Data
    }
    fn scratch(&self) -> usize {
        EdmHeun.scratch() + 2
    }
    fn check_settings(&self) -> Result<(), SolveError> {
        finite_at_least("s_churn", self.s_churn, 0.0, "EDM uses 0 to 80")?;
        finite_at_least("s_tmin", self.s_tmin, 0.0, "EDM uses 0.05")?;
        finite_at_least("s_noise", self.s_noise, 0.0, "EDM uses 1 to 1.007")?;
        if self.s_tmax.is_nan() || self.s_tmax < self.s_tmin {
            return Err(SolveError::InvalidInput {
                what: "EdmChurn s_tmax".into(),
                reason: format!(
                    "{} is below s_tmin = {}; use f64::INFINITY to churn at every level",
                    self.s_tmax, self.s_tmin
                ),
            });
        }
        if self.s_churn > 0.0 && self.steps == 0 {
            return Err(SolveError::InvalidInput {
                what: "EdmChurn steps".into(),
                reason: "0 steps with s_churn > 0; set steps to the grid's step count N".into(),
            });
        }
        Ok(())
    }
    fn uses_start_prediction(&self, schedule: &dyn NoiseSchedule, t: f64) -> bool {
        self.churn(schedule, t).is_none()
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        let Some((t_hat, a, b)) = self.churn(st.schedule(), st.t) else {
            return EdmHeun.advance(st);
        };
        let n = st.x.len();
        let (xh, rest) = st.scratch.split_at_mut(n);
        let (mh, heun_scratch) = rest.split_at_mut(n);
        lin2(xh, a, st.x, b, st.noise);
        st.flow
            .predict_as(Parametrisation::Data, t_hat, xh, st.p, mh, st.stats);
        EdmHeun.advance(Advance {
            t: t_hat,
            x: xh,
            m0: mh,
            scratch: heun_scratch,
            ..st
        });
    }
}

/// Through the Heun step from `(t̂, x̂)` ([`EdmHeun`]'s VJP), then the
/// model's VJP at `(t̂, x̂)` (recomputed: one evaluation), then
/// `x̄ += (α_t̂/α_t) x̂̄`; the prediction at the step's start is not
/// evaluated. A step that does not churn is EDM Heun's VJP.
impl SamplerVjp for EdmChurn {
    fn vjp_scratch(&self) -> usize {
        EdmHeun.vjp_scratch() + 5
    }
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        let Some((t_hat, a, b)) = self.churn(st.schedule(), st.t) else {
            return EdmHeun.advance_vjp(st);
        };
        let n = st.x.len();
        let (xh, rest) = st.scratch.split_at_mut(n);
        let (mh, rest) = rest.split_at_mut(n);
        let (xh_bar, rest) = rest.split_at_mut(n);
        let (mh_bar, rest) = rest.split_at_mut(n);
        let (scaled, heun_scratch) = rest.split_at_mut(n);
        lin2(xh, a, st.x, b, st.noise);
        let want = Parametrisation::Data;
        predict_counted(st.flow, st.stats, want, (t_hat, xh), st.p, mh);
        xh_bar.fill(0.0);
        mh_bar.fill(0.0);
        let x_bar = st.x_bar;
        let vjps = EdmHeun.advance_vjp(AdvanceVjp {
            t: t_hat,
            x: xh,
            m0: mh,
            x_bar: xh_bar,
            m0_bar: mh_bar,
            scratch: heun_scratch,
            stats: &mut *st.stats,
            p_bar: &mut *st.p_bar,
            ..st
        });
        st.flow
            .predict_vjp(want, t_hat, xh, st.p, mh_bar, scaled, xh_bar, st.p_bar);
        add_scaled(x_bar, a, xh_bar);
        vjps + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::{Edm, VpLinear};

    /// On EDM's schedule (`α = 1`, `σ = t`) the churned time is
    /// `t(1 + γ)` and the noise scale `√(t̂² − t²) S_noise`; outside
    /// `[S_tmin, S_tmax]` or with `S_churn = 0` nothing churns; γ is capped
    /// at `√2 − 1`.
    #[test]
    fn churn_matches_karras_algorithm_2() {
        let sched = Edm;
        let mut x = EdmChurn::new(4.0, 20);
        x.s_noise = 1.003;
        let (t_hat, a, b) = x.churn(&sched, 2.0).expect("churns");
        assert!((t_hat - 2.0 * 1.2).abs() < 1e-12, "{t_hat}");
        assert!((a - 1.0).abs() < 1e-15);
        let want = (t_hat * t_hat - 4.0f64).sqrt() * 1.003;
        assert!((b - want).abs() < 1e-12, "{b} vs {want}");
        let capped = EdmChurn::new(100.0, 10).churn(&sched, 2.0).unwrap();
        assert!((capped.0 - 2.0 * std::f64::consts::SQRT_2).abs() < 1e-12);
        x.s_tmax = 1.0;
        assert!(x.churn(&sched, 2.0).is_none());
        assert!(EdmChurn::new(0.0, 20).churn(&sched, 2.0).is_none());
        // VP: t̂ clamped to the range's end, no churn from the end itself
        let vp = VpLinear::default();
        assert!(EdmChurn::new(4.0, 20).churn(&vp, 1.0).is_none());
        let (t_hat, _, _) = EdmChurn::new(4.0, 20).churn(&vp, 0.5).unwrap();
        let rho = |t: f64| vp.sigma(t) / vp.alpha(t);
        assert!((rho(t_hat) / rho(0.5) - 1.2).abs() < 1e-9);
    }

    #[test]
    fn bad_settings_are_refused() {
        let ok = EdmChurn::new(1.0, 10);
        assert!(ok.check_settings().is_ok());
        let bad = [
            EdmChurn {
                s_churn: -1.0,
                ..ok
            },
            EdmChurn {
                s_churn: f64::NAN,
                ..ok
            },
            EdmChurn { steps: 0, ..ok },
            EdmChurn {
                s_tmin: f64::NAN,
                ..ok
            },
            EdmChurn { s_tmax: -1.0, ..ok },
            EdmChurn {
                s_noise: f64::INFINITY,
                ..ok
            },
        ];
        for x in bad {
            let e = x.check_settings().unwrap_err();
            assert!(e.to_string().contains("EdmChurn"), "{e}");
        }
    }
}
