//! Euler–Heun (Kloeden & Platen 1992, §11.1; torchsde `euler_heun`): the
//! Stratonovich counterpart of Euler–Maruyama,
//! `ȳ = y_n + g(t_n, y_n) ΔW`,
//! `y_{n+1} = y_n + f(t_n, y_n) h + ½(g(t_n, y_n) + g(t_n, ȳ)) ΔW`.
//! Any noise type, strong order 0.5 (1.0 for commutative noise). Fixed
//! steps; one drift and two diffusion evaluations per step.

use super::vjp::{SdeVjpWork, VjpArgs, VjpOut, refuse_err_cotangent, sde_step_vjp};
use super::{AtStart, Integrates, Noises, add_noise, check_support};
use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::noise::Noise;
use crate::problem::Problem;
use crate::solution::Stats;
use crate::solver::{Fields, Solver, StepAt, StepNoise, StepOut, StepStatus};

/// Euler–Heun.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EulerHeun;

/// Workspace of [`EulerHeun`].
#[derive(Debug, Clone)]
pub struct EulerHeunCache {
    s: AtStart,
    g_bar: Vec<f64>,
    y_bar: Vec<f64>,
}

/// The predictor `ȳ = y + G(y) ΔW` into `out`.
#[inline]
fn predictor(noise: Noise, y: &[f64], g: &[f64], dw: &[f64], out: &mut [f64]) {
    out.copy_from_slice(y);
    add_noise(noise, g, dw, 1.0, out);
}

impl Solver for EulerHeun {
    type Cache = EulerHeunCache;

    fn name(&self) -> &'static str {
        "EulerHeun"
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
        check_support(self.name(), Noises::ALL, Integrates::Stratonovich, problem)
    }
    fn init<F: Drift, G: Diffusion, D: Driver>(
        &self,
        problem: &Problem<F, G, D>,
    ) -> EulerHeunCache {
        let s = AtStart::new(problem);
        EulerHeunCache {
            g_bar: vec![0.0; s.g.len()],
            y_bar: vec![0.0; s.f.len()],
            s,
        }
    }
    fn start(&self, cache: &mut EulerHeunCache, f0: &[f64], g0: &[f64]) {
        cache.s.start(f0, g0);
    }
    #[inline]
    fn step<F: Drift, G: Diffusion>(
        &self,
        cache: &mut EulerHeunCache,
        fields: &Fields<'_, F, G>,
        at: StepAt<'_>,
        noise: &StepNoise<'_>,
        out: StepOut<'_>,
        stats: &mut Stats,
    ) -> StepStatus {
        let StepAt { t, h, y } = at;
        let StepOut { y_new, .. } = out;
        let (c, dw) = (&mut cache.s, noise.dw);
        c.ensure(fields, t, y, stats);
        predictor(c.noise, y, &c.g, dw, &mut cache.y_bar);
        fields.g(t, &cache.y_bar, &mut cache.g_bar, stats);
        for i in 0..y.len() {
            y_new[i] = y[i] + h * c.f[i];
        }
        add_noise(c.noise, &c.g, dw, 0.5, y_new);
        add_noise(c.noise, &cache.g_bar, dw, 0.5, y_new);
        StepStatus::Taken
    }
    fn accept(&self, cache: &mut EulerHeunCache) {
        cache.s.valid = false;
    }
    super::linear_dense!(EulerHeunCache, s.k);
}

impl EulerHeun {
    fn workspace<F: Drift, G: Diffusion, D: Driver>(&self, p: &Problem<F, G, D>) -> SdeVjpWork {
        SdeVjpWork::new(p, 1)
    }

    /// `ȳ = y + G(y) ΔW`, `y' = y + h f(y) + ½(G(y) + G(ȳ)) ΔW`: `ȳ`
    /// recomputed (one diffusion evaluation), then the diffusion's VJP at
    /// `ȳ` with `½ ȳ' ⊗ ΔW` gives the cotangent `c` of `ȳ`, and everything
    /// at `y` follows: identity, `f` with `h ȳ'`, `G` with
    /// `(½ ȳ' + c) ⊗ ΔW`.
    fn vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut SdeVjpWork,
        a: VjpArgs<'_, F, G>,
    ) -> VjpOut {
        refuse_err_cotangent(self.name(), a.bars.err)?;
        let (StepAt { t, h, y }, fields, bars) = (a.at, a.fields, a.bars);
        let (p, dw, n) = (fields.p, a.noise.dw, w.n);
        fields.g(t, y, &mut w.g, a.stats);
        let y_pred = &mut w.stages[..n];
        predictor(w.noise, y, &w.g, dw, y_pred);
        w.a.copy_from_slice(bars.y); // ∂L/∂y'
        w.c.fill(0.0);
        super::noise_outer(w.noise, &w.a, dw, 0.5, &mut w.vg);
        fields
            .diffusion
            .diffusion_vjp(t, y_pred, p, &w.vg, &mut w.c, bars.p);
        for i in 0..n {
            w.b[i] = h * w.a[i];
        }
        fields.drift.drift_vjp(t, y, p, &w.b, bars.y, bars.p);
        for i in 0..n {
            w.b[i] = 0.5 * w.a[i] + w.c[i];
            bars.y[i] += w.c[i];
        }
        super::noise_outer(w.noise, &w.b, dw, 1.0, &mut w.vg);
        fields
            .diffusion
            .diffusion_vjp(t, y, p, &w.vg, bars.y, bars.p);
        Ok(1)
    }
}

sde_step_vjp!(EulerHeun, SdeVjpWork, |s| s);
