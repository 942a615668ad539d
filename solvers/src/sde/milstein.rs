//! Milstein's scheme for scalar and diagonal noise (Milstein 1974; Kloeden &
//! Platen 1992, §10.3), in the interpretation of the problem:
//! `y_{n+1,i} = y_i + f_i h + g_i ΔW_i + ½ (L g)_i (ΔW_i² − h)` (Itô; drop
//! the `− h` for Stratonovich), with `L g = (∂g/∂y) g`.
//!
//! With [`MilsteinDerivative::Exact`], `(∂g/∂y) g` is one Jacobian–vector
//! product of the diffusion (exact for fields written generically over the
//! scalar with [`crate::dual::Generic`]). With
//! [`MilsteinDerivative::DerivativeFree`] (the default, Kloeden & Platen
//! §11.1 "Runge–Kutta Milstein", SciML `RKMil`) it is replaced by the
//! difference `(g(ȳ) − g(y))/√h` at the support point `ȳ = y + f h + g √h`
//! (Itô), or by the central difference `(g(y + g√h) − g(y − g√h))/(2√h)`
//! (Stratonovich, where the correction multiplies `ΔW²`, whose mean `h`
//! would turn the one-sided difference's `O(√h)` error into a bias).
//! Strong order 1.0 either way; one drift and two (Itô) or three
//! (Stratonovich) diffusion evaluations per step, or one diffusion and one
//! JVP with exact derivatives. Fixed steps.

use super::vjp::{SdeVjpWork, VjpArgs, VjpOut, sde_step_vjp};
use super::{Integrates, Noises, StartCache, StepArgs, add_noise, driver, sde_solver};
use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::noise::Interpretation;
use crate::problem::Problem;
use crate::solver::{StepAt, StepStatus};
use crate::step_vjp::Probe;

/// How Milstein obtains `(∂g/∂y) g`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MilsteinDerivative {
    /// The difference `(g(y + f h + g√h) − g(y))/√h` (needs nothing from the
    /// user).
    #[default]
    DerivativeFree,
    /// The exact Jacobian–vector product of the diffusion
    /// ([`Diffusion::diffusion_jvp`]).
    Exact,
}

/// Milstein's method (Itô or Stratonovich, following the problem).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Milstein {
    /// Where `(∂g/∂y) g` comes from.
    pub derivative: MilsteinDerivative,
}

impl Milstein {
    /// Milstein with the exact diffusion derivative.
    pub fn exact() -> Self {
        Milstein {
            derivative: MilsteinDerivative::Exact,
        }
    }

    /// The derivative-free (Runge–Kutta) Milstein.
    pub fn derivative_free() -> Self {
        Milstein {
            derivative: MilsteinDerivative::DerivativeFree,
        }
    }
}

/// Milstein's buffers: `(∂g/∂y) g` (or its difference) and the support
/// point of the difference.
#[derive(Debug, Clone)]
pub struct Correction {
    ito: bool,
    lg: Vec<f64>,
    y_bar: Vec<f64>,
}

/// Milstein's workspace.
type MilCache = StartCache<Correction>;

/// The factor of `½ (Lg)_i` for an increment `d`: `d² − h` (Itô) or `d²`
/// (Stratonovich).
#[inline(always)]
fn correction(ito: bool, d: f64, h: f64) -> f64 {
    if ito { d * d - h } else { d * d }
}

/// A support point of the derivative-free difference:
/// `y + h f + s g` (Itô, `hf = Some((h, f))`) or `y + s g`.
#[inline]
fn support(y: &[f64], hf: Option<(f64, &[f64])>, s: f64, g: &[f64], out: &mut [f64]) {
    match hf {
        Some((h, f)) => (0..y.len()).for_each(|i| out[i] = y[i] + h * f[i] + s * g[i]),
        None => (0..y.len()).for_each(|i| out[i] = y[i] + s * g[i]),
    }
}

sde_solver!(
    Milstein, MilCache, |_s| "Milstein",
    order: 1.0, error_order: None, levy: false,
    takes: (Noises::DIAGONAL, Integrates::Either), then: check_derivative,
);

impl Milstein {
    /// With exact derivatives, the diffusion must have a JVP.
    fn check_derivative<F: Drift, G: Diffusion, D: Driver>(
        &self,
        problem: &Problem<F, G, D>,
    ) -> Result<(), SolveError> {
        if self.derivative == MilsteinDerivative::DerivativeFree {
            return Ok(());
        }
        let n = problem.dim();
        let (v, mut out) = (vec![0.0; n], vec![0.0; n]);
        let (t0, _) = problem.tspan;
        let (y0, p) = (&problem.y0, &problem.params);
        if problem.diffusion.diffusion_jvp(t0, y0, p, &v, &mut out) {
            return Ok(());
        }
        Err(SolveError::Unsupported {
            solver: "Milstein::exact()",
            what: "a diffusion without a Jacobian–vector product (write it generically \
                   over the scalar and wrap it in Generic, or implement \
                   Diffusion::diffusion_jvp)"
                .into(),
            alternatives: "Milstein::derivative_free()".into(),
        })
    }

    fn new_cache<F: Drift, G: Diffusion, D: Driver>(&self, p: &Problem<F, G, D>) -> MilCache {
        let n = p.dim();
        let own = Correction {
            ito: p.interpretation == Interpretation::Ito,
            lg: vec![0.0; n],
            y_bar: vec![0.0; n],
        };
        StartCache::new(p, own)
    }

    #[inline]
    fn take<F: Drift, G: Diffusion>(&self, c: &mut MilCache, a: StepArgs<'_, F, G>) -> StepStatus {
        let (StepAt { t, h, y }, y_new, fields, stats) = (a.at, a.out.y_new, a.fields, a.stats);
        let n = y.len();
        // f and g at (t, y): valid after the start and after a rejection
        c.ensure(fields, t, y, stats);
        let Correction { ito, lg, y_bar } = &mut c.own;
        let sqh = h.abs().sqrt();
        match self.derivative {
            MilsteinDerivative::Exact => {
                stats.jacobian_evals += 1;
                fields.diffusion.diffusion_jvp(t, y, fields.p, &c.g, lg);
            }
            MilsteinDerivative::DerivativeFree if *ito => {
                // one-sided difference at y + f h + g √h: its O(√h) error
                // multiplies ΔW² − h, which has mean zero
                support(y, Some((h, &c.f)), sqh, &c.g, y_bar);
                fields.g(t, y_bar, lg, stats);
                for i in 0..n {
                    lg[i] = (lg[i] - c.g[i]) / sqh;
                }
            }
            MilsteinDerivative::DerivativeFree => {
                // Stratonovich multiplies by ΔW² (mean h): a one-sided
                // difference would leave an O(√h) bias, so use the central
                // difference (g(y + g√h) − g(y − g√h)) / (2√h), one more g
                // (evaluated into k, free until the dense output)
                support(y, None, sqh, &c.g, y_bar);
                fields.g(t, y_bar, lg, stats);
                support(y, None, -sqh, &c.g, y_bar);
                fields.g(t, y_bar, &mut c.k, stats);
                for i in 0..n {
                    lg[i] = (lg[i] - c.k[i]) / (2.0 * sqh);
                }
            }
        }
        let (noise_kind, dw) = (c.noise, a.noise.dw);
        for i in 0..n {
            let corr = correction(*ito, dw[driver(noise_kind, i)], h);
            y_new[i] = y[i] + h * c.f[i] + 0.5 * lg[i] * corr;
        }
        add_noise(noise_kind, &c.g, dw, 1.0, y_new);
        StepStatus::Taken
    }
}

impl Milstein {
    /// Derivative-free: the support points and `g` at them, and their
    /// cotangents; exact: nothing beyond the common vectors.
    fn workspace<F: Drift, G: Diffusion, D: Driver>(&self, p: &Problem<F, G, D>) -> SdeVjpWork {
        let stages = match self.derivative {
            MilsteinDerivative::DerivativeFree => 5,
            MilsteinDerivative::Exact => 0,
        };
        SdeVjpWork::new(p, stages)
    }

    /// Exact derivatives need [`DiffusionVjp::milstein_term_vjp`]: probed
    /// once with `w = 0` (which adds nothing).
    fn has_second_derivatives<G: DiffusionVjp>(
        &self,
        diffusion: &G,
        at: Probe<'_>,
    ) -> Result<(), String> {
        let (t, y, p) = at;
        if self.derivative == MilsteinDerivative::DerivativeFree {
            return Ok(());
        }
        let (w, mut oy, mut op) = (vec![0.0; y.len()], vec![0.0; y.len()], vec![0.0; p.len()]);
        if diffusion.milstein_term_vjp(t, y, p, &w, &mut oy, &mut op) {
            Ok(())
        } else {
            Err(
                "Milstein::exact() has no step VJP for this diffusion: reversing its \
                 correction (∂g/∂y) g needs second derivatives of g, which the diffusion \
                 does not provide. Write it generically over the scalar and wrap it in \
                 Generic (exact, by hyper-dual numbers), implement \
                 DiffusionVjp::milstein_term_vjp, or use Milstein::derivative_free()"
                    .into(),
            )
        }
    }

    /// Exact derivatives: `y'_i = y_i + h f_i + g_i D_i + ½ (Lg)_i c_i` with
    /// `Lg = (∂g/∂y) g` and `c_i = D_i² − h` (Itô) or `D_i²`
    /// (Stratonovich), reversed with `Y = ∂L/∂y'` as the drift's VJP with
    /// `h Y`, the diffusion's with `Y ⊗ ΔW` and
    /// [`DiffusionVjp::milstein_term_vjp`] with `w_i = ½ Y_i c_i`.
    ///
    /// Derivative-free: Itô
    /// `y'_i = y_i + h f_i + g_i D_i + ½(D_i² − h)/√h (g_i(ȳ) − g_i(y))` with
    /// `ȳ = y + h f + √h g`; Stratonovich
    /// `y'_i = y_i + h f_i + g_i D_i + D_i²/(4√h) (g_i(y + √h g) − g_i(y − √h g))`.
    fn vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut SdeVjpWork,
        a: VjpArgs<'_, F, G>,
    ) -> VjpOut {
        crate::step_vjp::refuse_err_cotangent("Milstein", a.bars.err)?;
        let (StepAt { t, h, y }, fields, bars) = (a.at, a.fields, a.bars);
        let (drift, diffusion, p) = (fields.drift, fields.diffusion, fields.p);
        let (n, dw, kind) = (w.n, a.noise.dw, w.noise);
        w.b.copy_from_slice(bars.y); // Y = ∂L/∂y'
        let big_y = &w.b;
        if self.derivative == MilsteinDerivative::Exact {
            for i in 0..n {
                w.a[i] = h * big_y[i];
                w.c[i] = 0.5 * big_y[i] * correction(w.ito, dw[driver(kind, i)], h);
            }
            drift.drift_vjp(t, y, p, &w.a, bars.y, bars.p);
            super::noise_outer(kind, big_y, dw, 1.0, &mut w.vg);
            diffusion.diffusion_vjp(t, y, p, &w.vg, bars.y, bars.p);
            let done = diffusion.milstein_term_vjp(t, y, p, &w.c, bars.y, bars.p);
            assert!(
                done,
                "Milstein::exact(): the diffusion's milstein_term_vjp declined at t = {t} \
                 after accepting the check (check_step_vjp) at the start"
            );
            return Ok(1);
        }
        let sqh = h.abs().sqrt();
        let (pt_a, rest) = w.stages.split_at_mut(n);
        let (pt_b, rest) = rest.split_at_mut(n);
        let (c_a, rest) = rest.split_at_mut(n);
        let (c_b, f) = rest.split_at_mut(n);
        let f = &mut f[..n];
        fields.g(t, y, &mut w.g, a.stats);
        c_a.fill(0.0);
        c_b.fill(0.0);
        if w.ito {
            fields.f(t, y, f, a.stats);
            support(y, Some((h, &*f)), sqh, &w.g, pt_a);
            // cotangent of g(ȳ): Y ∘ Q
            for i in 0..n {
                w.vg[i] = big_y[i] * 0.5 * correction(true, dw[driver(kind, i)], h) / sqh;
            }
            diffusion.diffusion_vjp(t, pt_a, p, &w.vg, c_a, bars.p);
            // everything at y
            for i in 0..n {
                let d = dw[driver(kind, i)];
                w.a[i] = h * (big_y[i] + c_a[i]);
                w.vg[i] = big_y[i] * d - big_y[i] * 0.5 * (d * d - h) / sqh + sqh * c_a[i];
                bars.y[i] += c_a[i];
            }
        } else {
            support(y, None, sqh, &w.g, pt_a);
            support(y, None, -sqh, &w.g, pt_b);
            for i in 0..n {
                let d = dw[driver(kind, i)];
                w.vg[i] = big_y[i] * d * d / (4.0 * sqh);
            }
            diffusion.diffusion_vjp(t, pt_a, p, &w.vg, c_a, bars.p);
            w.vg.iter_mut().for_each(|v| *v = -*v);
            diffusion.diffusion_vjp(t, pt_b, p, &w.vg, c_b, bars.p);
            for i in 0..n {
                w.a[i] = h * big_y[i];
                w.vg[i] = big_y[i] * dw[driver(kind, i)] + sqh * (c_a[i] - c_b[i]);
                bars.y[i] += c_a[i] + c_b[i];
            }
        }
        drift.drift_vjp(t, y, p, &w.a, bars.y, bars.p);
        diffusion.diffusion_vjp(t, y, p, &w.vg, bars.y, bars.p);
        Ok(1)
    }
}

sde_step_vjp!(Milstein, SdeVjpWork, |s| s, check: has_second_derivatives);
