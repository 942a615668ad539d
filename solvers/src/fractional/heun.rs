//! Fractional Heun: the stochastic Heun step of an fBM-driven SDE
//! `dX = b(t, X, p) dt + s(t, X, p) ∘ dB̂_H` on the exact increments of the
//! Markov approximation (`../shared/reference/fbm.md` §3.3–3.4), with the
//! Euler step as its embedded estimate (the Heun/Euler pair of diffrax's
//! `Heun`; Kloeden & Platen 1992 §11.1 for the stochastic Heun scheme):
//!
//! `X̄ = X + b(t, X) h + s(t, X) ΔB̂`,
//! `X' = X + ½(b(t, X) + b(t + h, X̄)) h + ½(s(t, X) + s(t + h, X̄)) ΔB̂`,
//! `err = X' − X̄`,
//!
//! with `ΔB̂_j = Σ_k ω_k ΔY_{jk}` from the driver's exact OU modes, so the
//! step size is free of `γ_max` and a rejected step re-queries the same
//! path (the driver is a virtual tree). Stratonovich in the Brownian part
//! of `B̂` (the reference code's choice for its bridge experiment), strong
//! order 0.5 in general, 1.0 for commutative noise; adaptive; two drift
//! and two diffusion evaluations per step.

use super::driven::{DrivenCache, DrivenVjpWork, contract, driven_solver, driven_step_vjp};
use super::weights::ModeWeights;
use crate::error::SolveError;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::sde::{Integrates, add_noise, noise_outer};
use crate::solver::{StepArgs, StepAt, StepStatus};
use crate::step_vjp::VjpArgs;

/// The stochastic Heun method with an embedded Euler estimate for
/// fBM-driven SDEs (Stratonovich), on the problems driven by
/// [`FractionalNoise`](super::FractionalNoise) with the modes of its [`ModeWeights`]. Adaptive.
#[derive(Debug, Clone, PartialEq)]
pub struct FractionalHeun {
    /// The modes' weights.
    pub weights: ModeWeights,
}

impl FractionalHeun {
    /// The method with the modes' weights `weights`.
    pub fn new(weights: ModeWeights) -> Self {
        FractionalHeun { weights }
    }

    #[inline]
    fn take<F: Drift, G: Diffusion>(
        &self,
        c: &mut DrivenCache,
        a: StepArgs<'_, F, G>,
    ) -> StepStatus {
        let (StepAt { t, h, y }, out) = (a.at, a.out);
        let n = y.len();
        c.begin(a.fields, (t, y), a.noise.modes, a.stats);
        // the Euler predictor
        for i in 0..n {
            c.y_pred[i] = y[i] + h * c.f[i];
        }
        add_noise(c.noise, &c.g, &c.db, 1.0, &mut c.y_pred);
        a.fields.f(t + h, &c.y_pred, &mut c.f_pred, a.stats);
        a.fields.g(t + h, &c.y_pred, &mut c.g_pred, a.stats);
        // the trapezoidal corrector, and its distance to the predictor
        for i in 0..n {
            out.y_new[i] = y[i] + 0.5 * h * (c.f[i] + c.f_pred[i]);
        }
        add_noise(c.noise, &c.g, &c.db, 0.5, out.y_new);
        add_noise(c.noise, &c.g_pred, &c.db, 0.5, out.y_new);
        for i in 0..n {
            out.err[i] = out.y_new[i] - c.y_pred[i];
        }
        StepStatus::Taken
    }
}

driven_solver!(
    FractionalHeun, "FractionalHeun", order: 0.5, error_order: Some(1.0),
    integrates: Integrates::Stratonovich, two_stage: true,
);

driven_step_vjp!(FractionalHeun);

impl FractionalHeun {
    /// With `A = h b(t, X) + s(t, X) ΔB̂` and `B = h b(t + h, X̄) + s(t + h,
    /// X̄) ΔB̂`: `X̄ = X + A`, `X' = X + ½A + ½B`, `err = ½B − ½A`. The
    /// cotangent of `B` is `β = ½(X̄' + ē)`; its VJP at `X̄` gives `x̄`, that
    /// of `X̄`; the cotangent of `A` is `α = ½(X̄' − ē) + x̄`, and
    /// `X̄_in = X̄' + x̄ + VJP_A(α)`; `∂L/∂H += (αᵀ s(X) + βᵀ s(X̄)) ∂ΔB̂/∂H`
    /// when `H` is a parameter. The predictor is recomputed (one drift and
    /// two diffusion evaluations).
    fn vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut DrivenVjpWork,
        a: VjpArgs<'_, F, G>,
    ) -> Result<usize, SolveError> {
        crate::step_vjp::refuse_interp_cotangents("FractionalHeun", a.bars.interp)?;
        let (StepAt { t, h, y }, fields, bars) = (a.at, a.fields, a.bars);
        let (p, n) = (fields.p, w.n);
        w.increments(a.noise.modes);
        // the predictor
        fields.f(t, y, &mut w.f, a.stats);
        fields.g(t, y, &mut w.g, a.stats);
        for i in 0..n {
            w.y_pred[i] = y[i] + h * w.f[i];
        }
        add_noise(w.noise, &w.g, &w.db, 1.0, &mut w.y_pred);
        // β (in a), h β (in b); the VJP of B at the predictor into x
        for i in 0..n {
            let e = bars.err.map_or(0.0, |e| e[i]);
            w.a[i] = 0.5 * (bars.y[i] + e);
            w.c[i] = 0.5 * (bars.y[i] - e);
            w.b[i] = h * w.a[i];
        }
        w.x.fill(0.0);
        noise_outer(w.noise, &w.a, &w.db, 1.0, &mut w.vg);
        let tn = t + h;
        fields
            .drift
            .drift_vjp(tn, &w.y_pred, p, &w.b, &mut w.x, bars.p);
        fields
            .diffusion
            .diffusion_vjp(tn, &w.y_pred, p, &w.vg, &mut w.x, bars.p);
        let mut dh = 0.0;
        if w.hurst_index.is_some() {
            fields.g(tn, &w.y_pred, &mut w.g_pred, a.stats);
            dh += contract(w.noise, &w.a, &w.g_pred, &w.ddb, &mut w.tmp);
        }
        // α = ½(ȳ' − ē) + x̄ (in c); the state's cotangent
        for i in 0..n {
            w.c[i] += w.x[i];
            bars.y[i] += w.x[i];
            w.b[i] = h * w.c[i];
        }
        noise_outer(w.noise, &w.c, &w.db, 1.0, &mut w.vg);
        fields.drift.drift_vjp(t, y, p, &w.b, bars.y, bars.p);
        fields
            .diffusion
            .diffusion_vjp(t, y, p, &w.vg, bars.y, bars.p);
        if let Some(i) = w.hurst_index {
            dh += contract(w.noise, &w.c, &w.g, &w.ddb, &mut w.tmp);
            bars.p[i] += dh;
        }
        Ok(2)
    }
}
