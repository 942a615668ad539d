//! Reversible Heun (Kidger, Foster, Li, Lyons, "Efficient and accurate
//! gradients for neural SDEs", NeurIPS 2021; diffrax
//! `_solver/reversible_heun.py`, torchsde `methods/reversible_heun.py`).
//!
//! It carries `(y_n, ŷ_n, μ_n = f(t_n, ŷ_n), σ_n = g(t_n, ŷ_n))`:
//! `ŷ_{n+1} = 2y_n − ŷ_n + μ_n h + σ_n ΔW`, `μ_{n+1}, σ_{n+1}` at `ŷ_{n+1}`,
//! `y_{n+1} = y_n + ½(μ_n + μ_{n+1}) h + ½(σ_n + σ_{n+1}) ΔW`,
//! and the step is algebraically reversible:
//! [`ReversibleHeun::reverse_step`] recovers `(y_n, ŷ_n, μ_n, σ_n)` from
//! step `n+1` and the same `ΔW` to round-off — what its exact adjoint with
//! memory independent of the number of steps is built on.
//! Stratonovich, any noise type, strong order 0.5 (1.0 for additive noise);
//! one drift and one diffusion evaluation per step. Error estimate (diffrax):
//! `½(μ_{n+1} − μ_n) h + ½(σ_{n+1} − σ_n) ΔW`.
//!
//! Stability: the price of reversibility. The step map has determinant −1,
//! so on a decaying linear problem (`y' = λy`, `λ < 0`) the solution does
//! not decay — it is stable only "on average" and not A-stable
//! (Kidger et al. §3). Measured: never mean-square stable on
//! `dX = λX dt + μX dW` for any step tried, and on `y' = −10y` with
//! `h = 0.01` it grows without bound. Use it for its exact adjoint on
//! non-stiff neural SDEs, not for stiff or strongly dissipative problems.

use super::{Support, add_noise};
use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::noise::Noise;
use crate::problem::Problem;
use crate::solution::Stats;
use crate::solver::{Fields, Solver, StepAt, StepNoise, StepOut, StepStatus};

/// Reversible Heun.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReversibleHeun;

/// Workspace and carried state of [`ReversibleHeun`].
#[derive(Debug, Clone)]
pub struct ReversibleHeunCache {
    noise: Noise,
    y_hat: Vec<f64>,
    mu: Vec<f64>,
    sigma: Vec<f64>,
    y_hat_new: Vec<f64>,
    mu_new: Vec<f64>,
    sigma_new: Vec<f64>,
    initialised: bool,
    k: Vec<f64>,
}

impl ReversibleHeunCache {
    /// The auxiliary state `ŷ_n` at the current step.
    pub fn y_hat(&self) -> &[f64] {
        &self.y_hat
    }
}

impl ReversibleHeun {
    /// Sets the carried state to `ŷ` at time `t` (`μ`, `σ` evaluated there),
    /// as the forward pass held it after the step ending at `t` — so that
    /// [`ReversibleHeun::reverse_step`] can start from a recorded final
    /// `ŷ` ([`Solver::carried_state`]) without re-running the solve.
    pub fn restore<F: Drift, G: Diffusion>(
        &self,
        cache: &mut ReversibleHeunCache,
        fields: &Fields<'_, F, G>,
        t: f64,
        y_hat: &[f64],
        stats: &mut Stats,
    ) {
        cache.y_hat.copy_from_slice(y_hat);
        fields.f(t, &cache.y_hat, &mut cache.mu, stats);
        fields.g(t, &cache.y_hat, &mut cache.sigma, stats);
        cache.initialised = true;
    }

    /// Undoes the step from `t_n = step.t` of size `h = step.h`: from the
    /// state at `t_n + h` held in `cache` (as left by an accepted step) and
    /// `step.y = y_{n+1}` (the step's *end* state), recovers
    /// `y_n` into `y_out` and the carried state at `t_n` into `cache`.
    /// `dw` must be the increment the forward step used.
    pub fn reverse_step<F: Drift, G: Diffusion>(
        &self,
        cache: &mut ReversibleHeunCache,
        fields: &Fields<'_, F, G>,
        step: StepAt<'_>,
        dw: &[f64],
        y_out: &mut [f64],
        stats: &mut Stats,
    ) {
        let StepAt {
            t: t_n,
            h,
            y: y_next,
        } = step;
        let n = y_next.len();
        let c = cache;
        for i in 0..n {
            c.y_hat_new[i] = 2.0 * y_next[i] - c.y_hat[i] - h * c.mu[i];
        }
        add_noise(c.noise, &c.sigma, dw, -1.0, &mut c.y_hat_new);
        fields.f(t_n, &c.y_hat_new, &mut c.mu_new, stats);
        fields.g(t_n, &c.y_hat_new, &mut c.sigma_new, stats);
        for i in 0..n {
            y_out[i] = y_next[i] - 0.5 * h * (c.mu_new[i] + c.mu[i]);
        }
        add_noise(c.noise, &c.sigma_new, dw, -0.5, y_out);
        add_noise(c.noise, &c.sigma, dw, -0.5, y_out);
        std::mem::swap(&mut c.y_hat, &mut c.y_hat_new);
        std::mem::swap(&mut c.mu, &mut c.mu_new);
        std::mem::swap(&mut c.sigma, &mut c.sigma_new);
    }
}

/// Workspace of [`ReversibleHeun::step_vjp`]; it also carries the
/// cotangents of `f` and `g` at the start `ŷ_n` of the last reversed step,
/// deferred so that they are merged with the next (earlier) step's
/// cotangents at the same point: one drift and one diffusion VJP per step.
/// [`ReversibleHeun::finish_vjp`] flushes them; a workspace is ready for
/// another backward pass after it (or after [`ReversibleHeunVjp::reset`]).
#[derive(Debug, Clone)]
pub struct ReversibleHeunVjp {
    noise: Noise,
    h_tot: Vec<f64>,
    v_f: Vec<f64>,
    v_g: Vec<f64>,
    acc: Vec<f64>,
    pend_f: Vec<f64>,
    pend_g: Vec<f64>,
    pending: bool,
}

impl ReversibleHeunVjp {
    /// Workspace for a state of dimension `n` under `noise`.
    pub fn new(n: usize, noise: Noise) -> Self {
        let len = noise.diffusion_len(n);
        ReversibleHeunVjp {
            noise,
            h_tot: vec![0.0; n],
            v_f: vec![0.0; n],
            v_g: vec![0.0; len],
            acc: vec![0.0; n],
            pend_f: vec![0.0; n],
            pend_g: vec![0.0; len],
            pending: false,
        }
    }

    /// Drops deferred cotangents (a backward pass abandoned before
    /// [`ReversibleHeun::finish_vjp`]).
    pub fn reset(&mut self) {
        self.pending = false;
    }

    /// `v_g = v ⊗ ΔW` in the shape of `g` (the cotangent of `g` from a
    /// cotangent `v` of `g ΔW`).
    fn outer(&mut self, v: &[f64], dw: &[f64], scale: f64) {
        outer_into(self.noise, v, dw, scale, &mut self.v_g);
    }
}

/// `out = scale · v ⊗ ΔW` in the shape of `g`.
fn outer_into(noise: Noise, v: &[f64], dw: &[f64], scale: f64, out: &mut [f64]) {
    let n = v.len();
    match noise {
        Noise::Scalar => (0..n).for_each(|i| out[i] = scale * v[i] * dw[0]),
        Noise::Diagonal | Noise::Additive => (0..n).for_each(|i| out[i] = scale * v[i] * dw[i]),
        Noise::General(m) => {
            for j in 0..m {
                for i in 0..n {
                    out[i + j * n] = scale * v[i] * dw[j];
                }
            }
        }
    }
}

impl ReversibleHeun {
    /// The vector–Jacobian product of one forward step
    /// `(y_n, ŷ_n) → (y_{n+1}, ŷ_{n+1})` from `step.t` of size `step.h`, with
    /// `step.y = ŷ_{n+1}` and increment `dw` (Kidger et al. 2021, §3): on
    /// entry `y_bar`, `y_hat_bar` are the cotangents of
    /// `y_{n+1}`, `ŷ_{n+1}`; on exit those of `y_n`, `ŷ_n`, except for the
    /// part that flows through `f(ŷ_n)` and `g(ŷ_n)`: those cotangents are
    /// kept in `ws` and merged into the VJPs at the same point of the next
    /// (earlier) step — call [`ReversibleHeun::finish_vjp`] after the
    /// earliest step. `∂L/∂p` is added to `p_bar`. Needs only `ŷ_n` and
    /// `ŷ_{n+1}` (the step is linear in `y`). One drift and one diffusion
    /// VJP per step.
    pub fn step_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        ws: &mut ReversibleHeunVjp,
        fields: &Fields<'_, F, G>,
        step: StepAt<'_>,
        dw: &[f64],
        (y_bar, y_hat_bar): (&mut [f64], &mut [f64]),
        p_bar: &mut [f64],
    ) {
        let StepAt {
            t,
            h,
            y: y_hat_next,
        } = step;
        let (drift, diffusion, p) = (fields.drift, fields.diffusion, fields.p);
        let n = y_bar.len();
        // ŷ_{n+1} also feeds y_{n+1} through f and g at ŷ_{n+1}, as it fed
        // the following step (the deferred cotangents)
        ws.h_tot.copy_from_slice(y_hat_bar);
        for i in 0..n {
            ws.v_f[i] = 0.5 * h * y_bar[i];
        }
        ws.outer(y_bar, dw, 0.5);
        if ws.pending {
            for (v, q) in ws.v_f.iter_mut().zip(&ws.pend_f) {
                *v += q;
            }
            for (v, q) in ws.v_g.iter_mut().zip(&ws.pend_g) {
                *v += q;
            }
        }
        drift.drift_vjp(t + h, y_hat_next, p, &ws.v_f, &mut ws.h_tot, p_bar);
        diffusion.diffusion_vjp(t + h, y_hat_next, p, &ws.v_g, &mut ws.h_tot, p_bar);
        // back to (y_n, ŷ_n): the cotangents of f(ŷ_n) and g(ŷ_n) wait
        for i in 0..n {
            ws.pend_f[i] = h * ws.h_tot[i] + 0.5 * h * y_bar[i];
            ws.acc[i] = 0.5 * y_bar[i] + ws.h_tot[i];
        }
        outer_into(ws.noise, &ws.acc, dw, 1.0, &mut ws.pend_g);
        ws.pending = true;
        for i in 0..n {
            y_hat_bar[i] = -ws.h_tot[i];
            y_bar[i] += 2.0 * ws.h_tot[i];
        }
    }

    /// Flushes the cotangents [`ReversibleHeun::step_vjp`] deferred at the
    /// start `ŷ_0` (time `t0`) of the earliest reversed step into
    /// `y_hat_bar` and `p_bar`.
    pub fn finish_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        ws: &mut ReversibleHeunVjp,
        fields: &Fields<'_, F, G>,
        t0: f64,
        y_hat0: &[f64],
        y_hat_bar: &mut [f64],
        p_bar: &mut [f64],
    ) {
        let (drift, diffusion, p) = (fields.drift, fields.diffusion, fields.p);
        if ws.pending {
            drift.drift_vjp(t0, y_hat0, p, &ws.pend_f, y_hat_bar, p_bar);
            diffusion.diffusion_vjp(t0, y_hat0, p, &ws.pend_g, y_hat_bar, p_bar);
            ws.pending = false;
        }
    }
}

impl Solver for ReversibleHeun {
    type Cache = ReversibleHeunCache;

    fn name(&self) -> &'static str {
        "ReversibleHeun"
    }
    fn order(&self) -> f64 {
        0.5
    }
    fn error_order(&self) -> Option<f64> {
        Some(1.0)
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
    ) -> ReversibleHeunCache {
        let n = problem.dim();
        let noise = problem.noise.unwrap_or(Noise::Diagonal);
        let len = noise.diffusion_len(n);
        ReversibleHeunCache {
            noise,
            y_hat: problem.y0.clone(),
            mu: vec![0.0; n],
            sigma: vec![0.0; len],
            y_hat_new: vec![0.0; n],
            mu_new: vec![0.0; n],
            sigma_new: vec![0.0; len],
            initialised: false,
            k: vec![0.0; n],
        }
    }
    fn start(&self, cache: &mut ReversibleHeunCache, f0: &[f64], g0: &[f64]) {
        // ŷ_0 = y_0 (set by init), μ_0 = f(t0, y0), σ_0 = g(t0, y0)
        cache.mu.copy_from_slice(f0);
        cache.sigma.copy_from_slice(g0);
        cache.initialised = true;
    }
    #[inline]
    fn step<F: Drift, G: Diffusion>(
        &self,
        c: &mut ReversibleHeunCache,
        fields: &Fields<'_, F, G>,
        at: StepAt<'_>,
        noise: &StepNoise<'_>,
        out: StepOut<'_>,
        stats: &mut Stats,
    ) -> StepStatus {
        let StepAt { t, h, y } = at;
        let StepOut { y_new, err } = out;
        let n = y.len();
        if !c.initialised {
            fields.g(t, &c.y_hat, &mut c.sigma, stats);
            c.initialised = true;
        }
        for i in 0..n {
            c.y_hat_new[i] = 2.0 * y[i] - c.y_hat[i] + h * c.mu[i];
        }
        add_noise(c.noise, &c.sigma, noise.dw, 1.0, &mut c.y_hat_new);
        fields.f(t + h, &c.y_hat_new, &mut c.mu_new, stats);
        fields.g(t + h, &c.y_hat_new, &mut c.sigma_new, stats);
        for i in 0..n {
            y_new[i] = y[i] + 0.5 * h * (c.mu[i] + c.mu_new[i]);
            err[i] = 0.5 * h * (c.mu_new[i] - c.mu[i]);
        }
        add_noise(c.noise, &c.sigma, noise.dw, 0.5, y_new);
        add_noise(c.noise, &c.sigma_new, noise.dw, 0.5, y_new);
        add_noise(c.noise, &c.sigma_new, noise.dw, 0.5, err);
        add_noise(c.noise, &c.sigma, noise.dw, -0.5, err);
        StepStatus::Taken
    }
    fn accept(&self, c: &mut ReversibleHeunCache) {
        std::mem::swap(&mut c.y_hat, &mut c.y_hat_new);
        std::mem::swap(&mut c.mu, &mut c.mu_new);
        std::mem::swap(&mut c.sigma, &mut c.sigma_new);
    }
    /// `ŷ`.
    fn carried_state<'c>(&self, c: &'c ReversibleHeunCache) -> &'c [f64] {
        &c.y_hat
    }
    super::linear_dense!(ReversibleHeunCache);
}
