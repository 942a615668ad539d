//! Fractional Euler: the Euler step of an fBM-driven SDE
//! `dX = b(t, X, p) dt + s(t, X, p) dB̂_H` on the exact increments of the
//! Markov approximation (`../shared/reference/fbm.md` §3.3–3.4; Daems et
//! al., "Variational inference for SDEs driven by fractional noise", ICLR
//! 2024, whose reference code takes Euler steps of the augmented system):
//! `X_{n+1} = X_n + b(t_n, X_n) h + s(t_n, X_n) ΔB̂`, with
//! `ΔB̂_j = Σ_k ω_k (Y_{jk}(t_{n+1}) − Y_{jk}(t_n))` from the driver's exact
//! OU modes. Itô in the Brownian part of `B̂`; strong order 0.5 (1.0 for
//! additive noise); fixed steps; one drift and one diffusion evaluation per
//! step; any `γ_max · h` (the modes are not stepped by the method).

use super::driven::{DrivenCache, DrivenVjpWork, contract, driven_solver, driven_step_vjp};
use super::weights::ModeWeights;
use crate::error::SolveError;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::sde::{Integrates, add_noise, noise_outer};
use crate::solver::{StepArgs, StepAt, StepStatus};
use crate::step_vjp::{VjpArgs, refuse_err_cotangent};

/// The Euler method for fBM-driven SDEs (Itô), on the problems driven by
/// [`FractionalNoise`](super::FractionalNoise) with the modes of its [`ModeWeights`].
///
/// ```
/// use sdeflow_solvers::fractional::{FbmType, FractionalEuler, Hurst, ModeWeights, gamma_grid};
/// use sdeflow_solvers::prelude::*;
/// let mw = ModeWeights::new(FbmType::RiemannLiouville, Hurst::Fixed(0.3), 1.0,
///                           &gamma_grid(5, 0.3, 1.0)?)?;
/// // a fractional OU process, dX = −X dt + 0.5 dB̂_H
/// let p = Problem::sde(
///     |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
///     |_t: f64, _y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = 0.5,
///     Noise::Diagonal,
///     vec![1.0],
///     (0.0, 1.0),
/// )
/// .driver(mw.noise());
/// let sol = solve(&p, FractionalEuler::new(mw.clone()), Options::default().fixed_step(0.01))?;
/// let b = mw.fbm_at_saved(&sol, &p.params)?; // the fBM path it was driven by
/// assert_eq!(b.len(), sol.ts.len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FractionalEuler {
    /// The modes' weights.
    pub weights: ModeWeights,
}

impl FractionalEuler {
    /// The method with the modes' weights `weights`.
    pub fn new(weights: ModeWeights) -> Self {
        FractionalEuler { weights }
    }

    #[inline]
    fn take<F: Drift, G: Diffusion>(
        &self,
        c: &mut DrivenCache,
        a: StepArgs<'_, F, G>,
    ) -> StepStatus {
        euler_step(c, a)
    }
}

/// The fractional Euler step on the cache `c` (shared with
/// [`super::FractionalModalEuler`]).
#[inline]
pub(super) fn euler_step<F: Drift, G: Diffusion>(
    c: &mut DrivenCache,
    a: StepArgs<'_, F, G>,
) -> StepStatus {
    let (StepAt { t, h, y }, y_new) = (a.at, a.out.y_new);
    c.begin(a.fields, (t, y), a.noise.modes, a.stats);
    for i in 0..y.len() {
        y_new[i] = y[i] + h * c.f[i];
    }
    add_noise(c.noise, &c.g, &c.db, 1.0, y_new);
    StepStatus::Taken
}

driven_solver!(
    FractionalEuler, "FractionalEuler", order: 0.5, error_order: None,
    integrates: Integrates::Ito, two_stage: false,
);

driven_step_vjp!(FractionalEuler);

impl FractionalEuler {
    fn vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut DrivenVjpWork,
        a: VjpArgs<'_, F, G>,
    ) -> Result<usize, SolveError> {
        euler_step_vjp("FractionalEuler", w, a, None)
    }
}

/// `(1 − e^{−γh})/γ − h`: what the exact step of `dZ = (−γ Z + u) dt`
/// (`u` held over the step) adds to its Euler step, per unit of the drift
/// `−γ Z + u` (`φ1(−γh) h − h`).
#[inline]
pub(super) fn exact_shift_excess(gamma: f64, h: f64) -> f64 {
    if gamma == 0.0 {
        0.0
    } else {
        -(-gamma * h).exp_m1() / gamma - h
    }
}

/// The VJP of [`euler_step`] (for the solver `name`):
/// `y' = y + h b(y) + s(y) ΔB̂(H)`: the drift's VJP with `h ȳ'`, the
/// diffusion's with `ȳ' ⊗ ΔB̂`, and `∂L/∂H += ȳ'ᵀ s(y) ∂ΔB̂/∂H` when
/// `H` is a parameter. With `shift = Some((at, γ))` the step also has the
/// exact-shift terms of [`super::FractionalModalEuler::exact_shift`]:
/// `y'_{Z_jk} += c_k b_{Z_jk}`, `y' += s(y) e`, `e_j = Σ_k ω_k c_k
/// b_{Z_jk}`, `c_k` = [`exact_shift_excess`].
pub(super) fn euler_step_vjp<F: DriftVjp, G: DiffusionVjp>(
    name: &'static str,
    w: &mut DrivenVjpWork,
    a: VjpArgs<'_, F, G>,
    shift: Option<(usize, &[f64])>,
) -> Result<usize, SolveError> {
    refuse_err_cotangent(name, a.bars.err)?;
    crate::step_vjp::refuse_interp_cotangents(name, a.bars.interp)?;
    let (StepAt { t, h, y }, fields, bars) = (a.at, a.fields, a.bars);
    let p = fields.p;
    w.increments(a.noise.modes);
    w.a.copy_from_slice(bars.y);
    for i in 0..w.n {
        w.b[i] = h * w.a[i];
    }
    let mut dh_shift = 0.0;
    if let Some((at, gammas)) = shift {
        // b and s at y; sᵀ ȳ' in c, e added to ΔB̂ (the diffusion's
        // cotangent is then ȳ' ⊗ (ΔB̂ + e))
        fields.f(t, y, &mut w.f, a.stats);
        fields.g(t, y, &mut w.g, a.stats);
        let (m, k) = (w.db.len(), gammas.len());
        super::posterior::noise_transpose(w.noise, &w.g, &w.a, &mut w.c[..m]);
        for j in 0..m {
            let mut e = 0.0;
            for (l, &gamma) in gammas.iter().enumerate() {
                let (i, ck) = (at + j * k + l, exact_shift_excess(gamma, h));
                w.b[i] += ck * (w.a[i] + w.w[l] * w.c[j]);
                e += w.w[l] * ck * w.f[i];
                dh_shift += w.c[j] * w.dw_dh[l] * ck * w.f[i];
            }
            w.db[j] += e;
        }
    }
    noise_outer(w.noise, &w.a, &w.db, 1.0, &mut w.vg);
    fields.drift.drift_vjp(t, y, p, &w.b, bars.y, bars.p);
    fields
        .diffusion
        .diffusion_vjp(t, y, p, &w.vg, bars.y, bars.p);
    if let Some(i) = w.hurst_index {
        fields.g(t, y, &mut w.g, a.stats);
        bars.p[i] += contract(w.noise, &w.a, &w.g, &w.ddb, &mut w.tmp) + dh_shift;
    }
    Ok(1)
}
