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

use super::{Support, add_noise, driver};
use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{Diffusion, Drift};
use crate::noise::{Interpretation, Noise};
use crate::problem::Problem;
use crate::solution::Stats;
use crate::solver::{Fields, Solver, StepAt, StepNoise, StepOut, StepStatus};

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

/// Workspace of [`Milstein`].
#[derive(Debug, Clone)]
pub struct MilsteinCache {
    noise: Noise,
    ito: bool,
    f: Vec<f64>,
    g: Vec<f64>,
    lg: Vec<f64>,
    y_bar: Vec<f64>,
    k: Vec<f64>,
    f_valid: bool,
}

impl Solver for Milstein {
    type Cache = MilsteinCache;

    fn name(&self) -> &'static str {
        "Milstein"
    }
    fn order(&self) -> f64 {
        1.0
    }
    fn error_order(&self) -> Option<f64> {
        None
    }
    fn check<F: Drift, G: Diffusion, D: Driver>(
        &self,
        problem: &Problem<F, G, D>,
    ) -> Result<(), SolveError> {
        Support {
            name: self.name(),
            scalar: true,
            diagonal: true,
            additive: true,
            general: false,
            ito: true,
            stratonovich: true,
        }
        .check(problem)?;
        if self.derivative == MilsteinDerivative::Exact {
            let n = problem.dim();
            let mut out = vec![0.0; n];
            let v = vec![0.0; n];
            let (t0, _) = problem.tspan;
            if !problem
                .diffusion
                .diffusion_jvp(t0, &problem.y0, &problem.params, &v, &mut out)
            {
                return Err(SolveError::Unsupported {
                    solver: "Milstein::exact()",
                    what: "a diffusion without a Jacobian–vector product (write it generically \
                           over the scalar and wrap it in Generic, or implement \
                           Diffusion::diffusion_jvp)"
                        .into(),
                    alternatives: "Milstein::derivative_free()".into(),
                });
            }
        }
        Ok(())
    }
    fn init<F: Drift, G: Diffusion, D: Driver>(&self, problem: &Problem<F, G, D>) -> MilsteinCache {
        let (n, noise) = (problem.dim(), problem.noise);
        MilsteinCache {
            noise: noise.unwrap_or(Noise::Diagonal),
            ito: problem.interpretation == Interpretation::Ito,
            f: vec![0.0; n],
            g: vec![0.0; n],
            lg: vec![0.0; n],
            y_bar: vec![0.0; n],
            k: vec![0.0; n],
            f_valid: false,
        }
    }
    fn start(&self, cache: &mut MilsteinCache, f0: &[f64], g0: &[f64]) {
        cache.f.copy_from_slice(f0);
        cache.g.copy_from_slice(g0);
        cache.f_valid = true;
    }
    #[inline]
    fn step<F: Drift, G: Diffusion>(
        &self,
        cache: &mut MilsteinCache,
        fields: &Fields<'_, F, G>,
        at: StepAt<'_>,
        noise: &StepNoise<'_>,
        out: StepOut<'_>,
        stats: &mut Stats,
    ) -> StepStatus {
        let StepAt { t, h, y } = at;
        let StepOut { y_new, .. } = out;
        let n = y.len();
        // f and g at (t, y): valid after the start and after a rejection
        if !cache.f_valid {
            fields.f(t, y, &mut cache.f, stats);
            fields.g(t, y, &mut cache.g, stats);
            cache.f_valid = true;
        }
        let sqh = h.abs().sqrt();
        match self.derivative {
            MilsteinDerivative::Exact => {
                stats.jacobian_evals += 1;
                fields
                    .diffusion
                    .diffusion_jvp(t, y, fields.p, &cache.g, &mut cache.lg);
            }
            MilsteinDerivative::DerivativeFree if cache.ito => {
                // one-sided difference at y + f h + g √h: its O(√h) error
                // multiplies ΔW² − h, which has mean zero
                for i in 0..n {
                    cache.y_bar[i] = y[i] + h * cache.f[i] + sqh * cache.g[i];
                }
                fields.g(t, &cache.y_bar, &mut cache.lg, stats);
                for i in 0..n {
                    cache.lg[i] = (cache.lg[i] - cache.g[i]) / sqh;
                }
            }
            MilsteinDerivative::DerivativeFree => {
                // Stratonovich multiplies by ΔW² (mean h): a one-sided
                // difference would leave an O(√h) bias, so use the central
                // difference (g(y + g√h) − g(y − g√h)) / (2√h), one more g
                for i in 0..n {
                    cache.y_bar[i] = y[i] + sqh * cache.g[i];
                }
                fields.g(t, &cache.y_bar, &mut cache.lg, stats);
                for i in 0..n {
                    cache.y_bar[i] = y[i] - sqh * cache.g[i];
                }
                fields.g(t, &cache.y_bar, &mut cache.k, stats);
                for i in 0..n {
                    cache.lg[i] = (cache.lg[i] - cache.k[i]) / (2.0 * sqh);
                }
            }
        }
        let ito = cache.ito;
        let (noise_kind, dw) = (cache.noise, noise.dw);
        for i in 0..n {
            let d = dw[driver(noise_kind, i)];
            let corr = if ito { d * d - h } else { d * d };
            y_new[i] = y[i] + h * cache.f[i] + 0.5 * cache.lg[i] * corr;
        }
        add_noise(noise_kind, &cache.g, dw, 1.0, y_new);
        StepStatus::Taken
    }
    fn accept(&self, cache: &mut MilsteinCache) {
        cache.f_valid = false;
    }
    super::linear_dense!(MilsteinCache);
}
