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
//! Its carried state ([`Solver::carried_state`]) is `c_n = (ŷ_n, μ_n, σ_n)`,
//! so the step is the map `(y_n, c_n) → (y_{n+1}, c_{n+1})` and its VJP
//! ([`StepVjp`](crate::step_vjp::StepVjp), with the carried cotangent
//! `c̄`) takes one drift and one diffusion VJP, both at `ŷ_{n+1}`: the
//! cotangents of `μ_n = f(ŷ_n)` and `σ_n = g(ŷ_n)` stay in `c̄_n` and reach
//! `f` and `g` at `ŷ_n` through the previous step's VJP (or, at the first
//! step, [`StepVjp::start_vjp`](crate::step_vjp::StepVjp::start_vjp), the
//! VJP of `c_0 = (y_0, f(y_0), g(y_0))`).
//!
//! Stability: the price of reversibility. The step map has determinant −1,
//! so on a decaying linear problem (`y' = λy`, `λ < 0`) the solution does
//! not decay — it is stable only "on average" and not A-stable
//! (Kidger et al. §3). Measured: never mean-square stable on
//! `dX = λX dt + μX dW` for any step tried, and on `y' = −10y` with
//! `h = 0.01` it grows without bound. Use it for its exact adjoint on
//! non-stiff neural SDEs, not for stiff or strongly dissipative problems.

use super::vjp::{VjpArgs, VjpOut, sde_step_vjp};
use super::{Integrates, Noises, SdeCache, StepArgs, add_noise, noise_outer, sde_solver};
use crate::brownian::Driver;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::noise::Noise;
use crate::problem::Problem;
use crate::solution::Stats;
use crate::solver::{Fields, StepAt, StepOut, StepStatus};

/// Reversible Heun.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReversibleHeun;

/// Workspace and carried state of [`ReversibleHeun`].
#[derive(Debug, Clone)]
pub struct ReversibleHeunCache {
    noise: Noise,
    n: usize,
    /// `(ŷ_n, μ_n, σ_n)`.
    carried: Vec<f64>,
    /// `(ŷ_{n+1}, μ_{n+1}, σ_{n+1})` of the last step taken.
    carried_new: Vec<f64>,
    initialised: bool,
    k: Vec<f64>,
}

/// Short for [`ReversibleHeunCache`].
type RhCache = ReversibleHeunCache;

/// `(ŷ, μ, σ)`, the parts of a carried state.
#[derive(Clone, Copy)]
struct Carried<'c> {
    y_hat: &'c [f64],
    mu: &'c [f64],
    sigma: &'c [f64],
}

impl<'c> Carried<'c> {
    fn of(n: usize, c: &'c [f64]) -> Self {
        let (y_hat, rest) = c.split_at(n);
        let (mu, sigma) = rest.split_at(n);
        Carried { y_hat, mu, sigma }
    }
}

/// `(ŷ, μ, σ)` of a carried state, mutable.
fn carried_mut(n: usize, c: &mut [f64]) -> (&mut [f64], &mut [f64], &mut [f64]) {
    let (y_hat, rest) = c.split_at_mut(n);
    let (mu, sigma) = rest.split_at_mut(n);
    (y_hat, mu, sigma)
}

/// `out = 2y − ŷ + h μ + dir · σ ΔW`: the next `ŷ` (`dir = 1`), or, with
/// `−h`, `dir = −1` and the next step's `(y, c)`, the previous one.
#[inline]
fn y_hat_next(
    noise: Noise,
    h: f64,
    dir: f64,
    y: &[f64],
    c: Carried<'_>,
    dw: &[f64],
    out: &mut [f64],
) {
    for i in 0..y.len() {
        out[i] = 2.0 * y[i] - c.y_hat[i] + h * c.mu[i];
    }
    add_noise(noise, c.sigma, dw, dir, out);
}

impl ReversibleHeunCache {
    /// The auxiliary state `ŷ_n` at the current step.
    pub fn y_hat(&self) -> &[f64] {
        &self.carried[..self.n]
    }
}

impl ReversibleHeun {
    /// Sets the carried state `(ŷ, μ, σ)` ([`Solver::carried_state`](crate::solver::Solver::carried_state), as
    /// recorded after an accepted step): so that
    /// [`ReversibleHeun::reverse_step`] can start from a solve's final
    /// carried state without re-running it, or a step from any state.
    pub fn set_carried(&self, cache: &mut ReversibleHeunCache, carried: &[f64]) {
        cache.carried.copy_from_slice(carried);
        cache.initialised = true;
    }

    /// Undoes the step from `t_n = step.t` of size `h = step.h`: from the
    /// carried state at `t_n + h` held in `cache` (as left by an accepted
    /// step) and `step.y = y_{n+1}` (the step's *end* state), recovers
    /// `y_n` into `y_out` and the carried state at `t_n` into `cache` (one
    /// drift and one diffusion evaluation). `dw` must be the increment the
    /// forward step used.
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
        let c = cache;
        let next = Carried::of(c.n, &c.carried);
        let (y_hat, mu, sigma) = carried_mut(c.n, &mut c.carried_new);
        y_hat_next(c.noise, -h, -1.0, y_next, next, dw, y_hat);
        fields.f(t_n, y_hat, mu, stats);
        fields.g(t_n, y_hat, sigma, stats);
        for i in 0..y_next.len() {
            y_out[i] = y_next[i] - 0.5 * h * (mu[i] + next.mu[i]);
        }
        add_noise(c.noise, sigma, dw, -0.5, y_out);
        add_noise(c.noise, next.sigma, dw, -0.5, y_out);
        std::mem::swap(&mut c.carried, &mut c.carried_new);
    }
}

sde_solver!(
    ReversibleHeun, ReversibleHeunCache, |_s| "ReversibleHeun",
    order: 0.5, error_order: Some(1.0), levy: false,
    takes: (Noises::ALL, Integrates::Stratonovich),
);

impl SdeCache for ReversibleHeunCache {
    fn start(&mut self, f0: &[f64], g0: &[f64]) {
        // ŷ_0 = y_0 (set by init), μ_0 = f(t0, y0), σ_0 = g(t0, y0)
        let (_, mu, sigma) = carried_mut(self.n, &mut self.carried);
        mu.copy_from_slice(f0);
        sigma.copy_from_slice(g0);
        self.initialised = true;
    }
    fn accept(&mut self) {
        std::mem::swap(&mut self.carried, &mut self.carried_new);
    }
    fn dense(&mut self) -> &mut [f64] {
        &mut self.k
    }
    /// `(ŷ, μ, σ)`: `ŷ`, `f(t, ŷ)` and `g(t, ŷ)` (in the shape of the
    /// diffusion), one after the other.
    fn carried(&self) -> &[f64] {
        &self.carried
    }
}

impl ReversibleHeun {
    fn new_cache<F: Drift, G: Diffusion, D: Driver>(
        &self,
        p: &Problem<F, G, D>,
    ) -> ReversibleHeunCache {
        let (n, noise) = super::shape(p);
        let len = 2 * n + noise.diffusion_len(n);
        let mut carried = vec![0.0; len];
        // ŷ_0 = y_0
        carried[..n].copy_from_slice(&p.y0);
        ReversibleHeunCache {
            noise,
            n,
            carried,
            carried_new: vec![0.0; len],
            initialised: false,
            k: vec![0.0; n],
        }
    }

    #[inline]
    fn take<F: Drift, G: Diffusion>(&self, c: &mut RhCache, a: StepArgs<'_, F, G>) -> StepStatus {
        let (StepAt { t, h, y }, StepOut { y_new, err }) = (a.at, a.out);
        let (fields, dw, stats, n) = (a.fields, a.noise.dw, a.stats, y.len());
        if !c.initialised {
            let (y_hat, mu, sigma) = carried_mut(n, &mut c.carried);
            fields.f(t, y_hat, mu, stats);
            fields.g(t, y_hat, sigma, stats);
            c.initialised = true;
        }
        let now = Carried::of(n, &c.carried);
        let (y_hat, mu, sigma) = carried_mut(n, &mut c.carried_new);
        y_hat_next(c.noise, h, 1.0, y, now, dw, y_hat);
        fields.f(t + h, y_hat, mu, stats);
        fields.g(t + h, y_hat, sigma, stats);
        for i in 0..n {
            y_new[i] = y[i] + 0.5 * h * (now.mu[i] + mu[i]);
            err[i] = 0.5 * h * (mu[i] - now.mu[i]);
        }
        add_noise(c.noise, now.sigma, dw, 0.5, y_new);
        add_noise(c.noise, sigma, dw, 0.5, y_new);
        add_noise(c.noise, sigma, dw, 0.5, err);
        add_noise(c.noise, now.sigma, dw, -0.5, err);
        StepStatus::Taken
    }
}

/// Workspace of reversible Heun's step VJP.
#[derive(Debug, Clone)]
pub struct ReversibleHeunVjp {
    noise: Noise,
    n: usize,
    /// `ŷ_{n+1}`, recomputed.
    y_hat: Vec<f64>,
    /// Cotangents of `μ_{n+1}` and `σ_{n+1}`.
    v_mu: Vec<f64>,
    v_sigma: Vec<f64>,
    /// The whole cotangent of `ŷ_{n+1}`.
    y_hat_bar: Vec<f64>,
}

impl ReversibleHeun {
    fn workspace<F: Drift, G: Diffusion, D: Driver>(
        &self,
        p: &Problem<F, G, D>,
    ) -> ReversibleHeunVjp {
        let (n, noise) = super::shape(p);
        ReversibleHeunVjp {
            noise,
            n,
            y_hat: vec![0.0; n],
            v_mu: vec![0.0; n],
            v_sigma: vec![0.0; noise.diffusion_len(n)],
            y_hat_bar: vec![0.0; n],
        }
    }

    /// The VJP of `(y_n, c_n) → (y_{n+1}, err, c_{n+1})` (Kidger et al.
    /// 2021, §3): with `ŷ' = 2y − ŷ + hμ + σΔW` recomputed, the cotangents
    /// `μ̄' + ½h(ȳ' + ē)` of `μ' = f(ŷ')` and `σ̄' + ½(ȳ' + ē) ⊗ ΔW` of
    /// `σ' = g(ŷ')` give, with `ŷ̄'`, the whole cotangent `Ŷ` of `ŷ'`;
    /// then `ȳ = ȳ' + 2Ŷ`, `ŷ̄ = −Ŷ`, `μ̄ = hŶ + ½h(ȳ' − ē)`,
    /// `σ̄ = (Ŷ + ½(ȳ' − ē)) ⊗ ΔW`. One drift and one diffusion VJP, both
    /// at `ŷ'`; no evaluation (the step is linear in `y`, `μ` and `σ`).
    fn vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut ReversibleHeunVjp,
        a: VjpArgs<'_, F, G>,
    ) -> VjpOut {
        let (StepAt { t, h, y }, fields, bars, dw, n) = (a.at, a.fields, a.bars, a.noise.dw, w.n);
        y_hat_next(
            w.noise,
            h,
            1.0,
            y,
            Carried::of(n, a.carried),
            dw,
            &mut w.y_hat,
        );
        let (hat_bar, mu_bar, sigma_bar) = carried_mut(n, bars.carried);
        // ȳ' ± ē: what the step's output and error estimate send to μ', σ'
        // (+) and to μ, σ (−)
        let e = |i: usize| bars.err.map_or(0.0, |e| e[i]);
        for i in 0..n {
            w.v_mu[i] = mu_bar[i] + 0.5 * h * (bars.y[i] + e(i));
            w.y_hat_bar[i] = 0.5 * (bars.y[i] + e(i));
        }
        noise_outer(w.noise, &w.y_hat_bar, dw, 1.0, &mut w.v_sigma);
        for (v, s) in w.v_sigma.iter_mut().zip(sigma_bar.iter()) {
            *v += s;
        }
        w.y_hat_bar.copy_from_slice(hat_bar);
        let (p, t1, y1) = (fields.p, t + h, &w.y_hat);
        fields
            .drift
            .drift_vjp(t1, y1, p, &w.v_mu, &mut w.y_hat_bar, bars.p);
        fields
            .diffusion
            .diffusion_vjp(t1, y1, p, &w.v_sigma, &mut w.y_hat_bar, bars.p);
        // back to (y_n, c_n)
        let big = &w.y_hat_bar;
        for i in 0..n {
            let minus = 0.5 * (bars.y[i] - e(i));
            mu_bar[i] = h * big[i] + h * minus;
            hat_bar[i] = big[i] + minus; // σ̄ = this ⊗ ΔW, next
        }
        noise_outer(w.noise, hat_bar, dw, 1.0, sigma_bar);
        for i in 0..n {
            hat_bar[i] = -big[i];
            bars.y[i] += 2.0 * big[i];
        }
        Ok(1)
    }

    /// The VJP of `c_0 = (y_0, f(t0, y_0), g(t0, y_0))`.
    fn vjp_start<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut ReversibleHeunVjp,
        a: VjpArgs<'_, F, G>,
    ) -> VjpOut {
        let (StepAt { t: t0, y: y0, .. }, fields, bars) = (a.at, a.fields, a.bars);
        let (hat_bar, mu_bar, sigma_bar) = carried_mut(w.n, bars.carried);
        for i in 0..w.n {
            bars.y[i] += hat_bar[i];
        }
        let p = fields.p;
        fields.drift.drift_vjp(t0, y0, p, mu_bar, bars.y, bars.p);
        fields
            .diffusion
            .diffusion_vjp(t0, y0, p, sigma_bar, bars.y, bars.p);
        Ok(1)
    }
}

sde_step_vjp!(ReversibleHeun, ReversibleHeunVjp, |s| s, start: vjp_start);
