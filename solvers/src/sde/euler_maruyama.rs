//! Euler–Maruyama (Maruyama 1955; Kloeden & Platen, *Numerical Solution of
//! SDEs*, 1992, §9.1): `y_{n+1} = y_n + f(t_n, y_n) h + g(t_n, y_n) ΔW`.
//! Itô, any noise type, strong order 0.5 (1.0 for additive noise), weak
//! order 1. Fixed steps. One drift and one diffusion evaluation per step.

use super::vjp::{SdeVjpWork, VjpArgs, VjpOut, sde_step_vjp};
use super::{Integrates, Noises, StartCache, StepArgs, euler_update, sde_solver};
use crate::brownian::Driver;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::problem::Problem;
use crate::solver::{StepAt, StepStatus};
use crate::step_vjp::refuse_err_cotangent;

/// The largest diffusion (`G` entries) a step keeps in a local array
/// rather than in the workspace.
const SMALL_DIFFUSION: usize = 4;

/// Euler–Maruyama's workspace.
type EmCache = StartCache<()>;

/// Euler–Maruyama.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EulerMaruyama;

sde_solver!(
    EulerMaruyama, EmCache, |_s| "EulerMaruyama",
    order: 0.5, error_order: None, levy: false,
    takes: (Noises::ALL, Integrates::Ito),
);

impl EulerMaruyama {
    fn new_cache<F: Drift, G: Diffusion, D: Driver>(&self, p: &Problem<F, G, D>) -> EmCache {
        StartCache::new(p, ())
    }

    // always inlined, so that the loop's increment reaches the update in a
    // register
    #[inline(always)]
    fn take<F: Drift, G: Diffusion>(&self, c: &mut EmCache, a: StepArgs<'_, F, G>) -> StepStatus {
        let (StepAt { t, h, y }, y_new) = (a.at, a.out.y_new);
        // f(t, y) goes straight into y_new (one buffer fewer on the
        // step's dependency chain); at the start the loop's f0 and g0 serve
        if c.valid {
            y_new.copy_from_slice(&c.f);
            euler_update(c.noise, y, h, &c.g, a.noise.dw, y_new);
            return StepStatus::Taken;
        }
        a.fields.f(t, y, y_new, a.stats);
        let len = c.g.len();
        if len <= SMALL_DIFFUSION {
            // a small diffusion lives in a local of the step: its values
            // reach the update without a store to the heap and a reload
            // (on scalar GBM, 1.2x the hand-written loop's time where the
            // cache's buffer costs 1.3–1.4x)
            let mut local = [0.0; SMALL_DIFFUSION];
            let g = &mut local[..len];
            a.fields.g(t, y, g, a.stats);
            euler_update(c.noise, y, h, g, a.noise.dw, y_new);
        } else {
            a.fields.g(t, y, &mut c.g, a.stats);
            euler_update(c.noise, y, h, &c.g, a.noise.dw, y_new);
        }
        StepStatus::Taken
    }

    fn workspace<F: Drift, G: Diffusion, D: Driver>(&self, p: &Problem<F, G, D>) -> SdeVjpWork {
        SdeVjpWork::new(p, 0)
    }

    /// `y' = y + h f(t, y) + G(t, y) ΔW`: the drift's VJP with `h ȳ'`, the
    /// diffusion's with `ȳ' ⊗ ΔW`.
    fn vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut SdeVjpWork,
        a: VjpArgs<'_, F, G>,
    ) -> VjpOut {
        refuse_err_cotangent("EulerMaruyama", a.bars.err)?;
        let (StepAt { t, h, y }, fields, bars) = (a.at, a.fields, a.bars);
        for i in 0..w.n {
            w.b[i] = h * bars.y[i];
        }
        super::noise_outer(w.noise, bars.y, a.noise.dw, 1.0, &mut w.vg);
        fields.drift.drift_vjp(t, y, fields.p, &w.b, bars.y, bars.p);
        fields
            .diffusion
            .diffusion_vjp(t, y, fields.p, &w.vg, bars.y, bars.p);
        Ok(1)
    }
}

sde_step_vjp!(EulerMaruyama, SdeVjpWork, |s| s);
