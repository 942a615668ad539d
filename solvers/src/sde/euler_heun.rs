//! Euler–Heun (Kloeden & Platen 1992, §11.1; torchsde `euler_heun`): the
//! Stratonovich counterpart of Euler–Maruyama,
//! `ȳ = y_n + g(t_n, y_n) ΔW`,
//! `y_{n+1} = y_n + f(t_n, y_n) h + ½(g(t_n, y_n) + g(t_n, ȳ)) ΔW`.
//! Any noise type, strong order 0.5 (1.0 for commutative noise). Fixed
//! steps; one drift and two diffusion evaluations per step.

use super::vjp::{SdeVjpWork, VjpArgs, VjpOut, sde_step_vjp};
use super::{Integrates, Noises, StartCache, StepArgs, add_noise, noise_outer, sde_solver};
use crate::brownian::Driver;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::noise::Noise;
use crate::problem::Problem;
use crate::solver::{StepAt, StepStatus};
use crate::step_vjp::refuse_err_cotangent;

/// Euler–Heun.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EulerHeun;

/// Euler–Heun's buffers: the predictor `ȳ` and `g` there.
#[derive(Debug, Clone)]
pub struct Predictor {
    y_bar: Vec<f64>,
    g_bar: Vec<f64>,
}

/// Euler–Heun's workspace.
type EhCache = StartCache<Predictor>;

/// The predictor `ȳ = y + G(y) ΔW` into `out`.
#[inline]
fn predictor(noise: Noise, y: &[f64], g: &[f64], dw: &[f64], out: &mut [f64]) {
    out.copy_from_slice(y);
    add_noise(noise, g, dw, 1.0, out);
}

sde_solver!(
    EulerHeun, EhCache, |_s| "EulerHeun",
    order: 0.5, error_order: None, levy: false,
    takes: (Noises::ALL, Integrates::Stratonovich),
);

impl EulerHeun {
    fn new_cache<F: Drift, G: Diffusion, D: Driver>(&self, p: &Problem<F, G, D>) -> EhCache {
        let (n, noise) = super::shape(p);
        let own = Predictor {
            y_bar: vec![0.0; n],
            g_bar: vec![0.0; noise.diffusion_len(n)],
        };
        StartCache::new(p, own)
    }

    #[inline]
    fn take<F: Drift, G: Diffusion>(&self, c: &mut EhCache, a: StepArgs<'_, F, G>) -> StepStatus {
        let (StepAt { t, h, y }, y_new, dw) = (a.at, a.out.y_new, a.noise.dw);
        c.ensure(a.fields, t, y, a.stats);
        let Predictor { y_bar, g_bar } = &mut c.own;
        predictor(c.noise, y, &c.g, dw, y_bar);
        a.fields.g(t, y_bar, g_bar, a.stats);
        for i in 0..y.len() {
            y_new[i] = y[i] + h * c.f[i];
        }
        add_noise(c.noise, &c.g, dw, 0.5, y_new);
        add_noise(c.noise, g_bar, dw, 0.5, y_new);
        StepStatus::Taken
    }

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
        refuse_err_cotangent("EulerHeun", a.bars.err)?;
        let (StepAt { t, h, y }, fields, bars) = (a.at, a.fields, a.bars);
        let (p, dw, n) = (fields.p, a.noise.dw, w.n);
        fields.g(t, y, &mut w.g, a.stats);
        let y_pred = &mut w.stages[..n];
        predictor(w.noise, y, &w.g, dw, y_pred);
        w.a.copy_from_slice(bars.y); // ∂L/∂y'
        w.c.fill(0.0);
        noise_outer(w.noise, &w.a, dw, 0.5, &mut w.vg);
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
        noise_outer(w.noise, &w.b, dw, 1.0, &mut w.vg);
        fields
            .diffusion
            .diffusion_vjp(t, y, p, &w.vg, bars.y, bars.p);
        Ok(1)
    }
}

sde_step_vjp!(EulerHeun, SdeVjpWork, |s| s);
