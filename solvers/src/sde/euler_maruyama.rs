//! Euler–Maruyama (Maruyama 1955; Kloeden & Platen, *Numerical Solution of
//! SDEs*, 1992, §9.1): `y_{n+1} = y_n + f(t_n, y_n) h + g(t_n, y_n) ΔW`.
//! Itô, any noise type, strong order 0.5 (1.0 for additive noise), weak
//! order 1. Fixed steps. One drift and one diffusion evaluation per step.

use super::vjp::{SdeVjpWork, VjpArgs, VjpOut, refuse_err_cotangent, sde_step_vjp};
use super::{AtStart, Integrates, Noises, check_support, euler_update};
use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::problem::Problem;
use crate::solution::Stats;
use crate::solver::{Fields, Solver, StepAt, StepNoise, StepOut, StepStatus};

/// Euler–Maruyama.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EulerMaruyama;

/// Workspace of [`EulerMaruyama`].
#[derive(Debug, Clone)]
pub struct EmCache {
    s: AtStart,
}

impl Solver for EulerMaruyama {
    type Cache = EmCache;

    fn name(&self) -> &'static str {
        "EulerMaruyama"
    }
    fn order(&self) -> f64 {
        0.5
    }
    fn error_order(&self) -> Option<f64> {
        None
    }
    fn check<F: Drift, G: Diffusion, D: Driver>(
        &self,
        problem: &Problem<F, G, D>,
    ) -> Result<(), SolveError> {
        check_support(self.name(), Noises::ALL, Integrates::Ito, problem)
    }
    fn init<F: Drift, G: Diffusion, D: Driver>(&self, problem: &Problem<F, G, D>) -> EmCache {
        EmCache {
            s: AtStart::new(problem),
        }
    }
    fn start(&self, cache: &mut EmCache, f0: &[f64], g0: &[f64]) {
        cache.s.start(f0, g0);
    }
    // always inlined, so that the loop's increment reaches the update in a
    // register
    #[inline(always)]
    fn step<F: Drift, G: Diffusion>(
        &self,
        cache: &mut EmCache,
        fields: &Fields<'_, F, G>,
        at: StepAt<'_>,
        noise: &StepNoise<'_>,
        out: StepOut<'_>,
        stats: &mut Stats,
    ) -> StepStatus {
        let StepAt { t, h, y } = at;
        let StepOut { y_new, .. } = out;
        let c = &mut cache.s;
        // f(t, y) goes straight into y_new (one buffer fewer on the
        // step's dependency chain); at the start the loop's f0 and g0 serve
        if c.valid {
            y_new.copy_from_slice(&c.f);
        } else {
            fields.f(t, y, y_new, stats);
            fields.g(t, y, &mut c.g, stats);
        }
        euler_update(c.noise, y, h, &c.g, noise.dw, y_new);
        StepStatus::Taken
    }
    fn accept(&self, cache: &mut EmCache) {
        // EM never rejects (no error estimate): f and g are redone next step
        cache.s.valid = false;
    }
    super::linear_dense!(EmCache, s.k);
}

impl EulerMaruyama {
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
        refuse_err_cotangent(self.name(), a.bars.err)?;
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
