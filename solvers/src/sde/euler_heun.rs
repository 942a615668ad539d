//! Euler–Heun (Kloeden & Platen 1992, §11.1; torchsde `euler_heun`): the
//! Stratonovich counterpart of Euler–Maruyama,
//! `ȳ = y_n + g(t_n, y_n) ΔW`,
//! `y_{n+1} = y_n + f(t_n, y_n) h + ½(g(t_n, y_n) + g(t_n, ȳ)) ΔW`.
//! Any noise type, strong order 0.5 (1.0 for commutative noise). Fixed
//! steps; one drift and two diffusion evaluations per step.

use super::{Support, add_noise};
use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{Diffusion, Drift};
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
    noise: Noise,
    f: Vec<f64>,
    g: Vec<f64>,
    g_bar: Vec<f64>,
    y_bar: Vec<f64>,
    k: Vec<f64>,
    f_valid: bool,
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
        Support {
            name: self.name(),
            scalar: true,
            diagonal: true,
            additive: true,
            general: true,
            ito: false,
            stratonovich: true,
        }
        .check(problem)
    }
    fn init<F: Drift, G: Diffusion, D: Driver>(
        &self,
        problem: &Problem<F, G, D>,
    ) -> EulerHeunCache {
        let (n, noise) = (problem.dim(), problem.noise);
        let noise = noise.unwrap_or(Noise::Diagonal);
        let len = noise.diffusion_len(n);
        EulerHeunCache {
            noise,
            f: vec![0.0; n],
            g: vec![0.0; len],
            g_bar: vec![0.0; len],
            y_bar: vec![0.0; n],
            k: vec![0.0; n],
            f_valid: false,
        }
    }
    fn start(&self, cache: &mut EulerHeunCache, f0: &[f64], g0: &[f64]) {
        cache.f.copy_from_slice(f0);
        cache.g.copy_from_slice(g0);
        cache.f_valid = true;
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
        // f and g at (t, y): valid after the start and after a rejection
        if !cache.f_valid {
            fields.f(t, y, &mut cache.f, stats);
            fields.g(t, y, &mut cache.g, stats);
            cache.f_valid = true;
        }
        cache.y_bar.copy_from_slice(y);
        add_noise(cache.noise, &cache.g, noise.dw, 1.0, &mut cache.y_bar);
        fields.g(t, &cache.y_bar, &mut cache.g_bar, stats);
        for i in 0..y.len() {
            y_new[i] = y[i] + h * cache.f[i];
        }
        add_noise(cache.noise, &cache.g, noise.dw, 0.5, y_new);
        add_noise(cache.noise, &cache.g_bar, noise.dw, 0.5, y_new);
        StepStatus::Taken
    }
    fn accept(&self, cache: &mut EulerHeunCache) {
        cache.f_valid = false;
    }
    super::linear_dense!(EulerHeunCache);
}
