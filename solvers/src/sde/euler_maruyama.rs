//! Euler–Maruyama (Maruyama 1955; Kloeden & Platen, *Numerical Solution of
//! SDEs*, 1992, §9.1): `y_{n+1} = y_n + f(t_n, y_n) h + g(t_n, y_n) ΔW`.
//! Itô, any noise type, strong order 0.5 (1.0 for additive noise), weak
//! order 1. Fixed steps. One drift and one diffusion evaluation per step.

use super::{Support, euler_update};
use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{Diffusion, Drift};
use crate::noise::Noise;
use crate::problem::Problem;
use crate::solution::Stats;
use crate::solver::{Fields, Solver, StepAt, StepNoise, StepOut, StepStatus};

/// Euler–Maruyama.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EulerMaruyama;

/// Workspace of [`EulerMaruyama`].
#[derive(Debug, Clone)]
pub struct EmCache {
    noise: Noise,
    f: Vec<f64>,
    g: Vec<f64>,
    k: Vec<f64>,
    f_valid: bool,
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
        Support {
            name: self.name(),
            scalar: true,
            diagonal: true,
            additive: true,
            general: true,
            ito: true,
            stratonovich: false,
        }
        .check(problem)
    }
    fn init<F: Drift, G: Diffusion, D: Driver>(&self, problem: &Problem<F, G, D>) -> EmCache {
        let (n, noise) = (problem.dim(), problem.noise);
        let noise = noise.unwrap_or(Noise::Diagonal);
        EmCache {
            noise,
            f: vec![0.0; n],
            g: vec![0.0; noise.diffusion_len(n)],
            k: vec![0.0; n],
            f_valid: false,
        }
    }
    fn start(&self, cache: &mut EmCache, f0: &[f64], g0: &[f64]) {
        cache.f.copy_from_slice(f0);
        cache.g.copy_from_slice(g0);
        cache.f_valid = true;
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
        // f(t, y) goes straight into y_new (one buffer fewer on the
        // step's dependency chain); at the start the loop's f0 and g0 serve
        if cache.f_valid {
            y_new.copy_from_slice(&cache.f);
        } else {
            fields.f(t, y, y_new, stats);
            fields.g(t, y, &mut cache.g, stats);
        }
        euler_update(cache.noise, y, h, &cache.g, noise.dw, y_new);
        StepStatus::Taken
    }
    fn accept(&self, cache: &mut EmCache) {
        // EM never rejects (no error estimate): f and g are redone next step
        cache.f_valid = false;
    }
    super::linear_dense!(EmCache);
}
