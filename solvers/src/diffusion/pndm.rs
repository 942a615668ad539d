//! Pseudo numerical methods on the noise prediction with DDIM's transfer
//! (Liu, Ren, Lin, Zhao, "Pseudo numerical methods for diffusion models on
//! manifolds", ICLR 2022, Eqs. 9–13; luping-liu/PNDM `runner/method.py`;
//! diffusers `PNDMScheduler`) and the improved PNDM of Zhang & Chen (DEIS,
//! ICLR 2023, `jax_deis` `get_sampler_ipndm`). Reference:
//! `../shared/reference/diffusion.md` §4.
//!
//! Every step ends with the transfer `φ(x, ε̄, s → t)`, the DDIM step with
//! the combination `ε̄` in place of `ε̂`: `x_t = (α_t/α_s) x − σ_t (e^h − 1) ε̄`,
//! which in `x̃ = x/α`, `ρ = σ/α` is Euler's step `x̃_t = x̃_s + (ρ_t − ρ_s) ε̄`
//! of `dx̃/dρ = ε̂`. `ε̄` is the Adams–Bashforth combination of the current
//! and past predictions with the equal-step weights `[1]`, `[3, −1]/2`,
//! `[23, −16, 5]/12`, `[55, −59, 37, −9]/24`, so the linear multistep part
//! (AB4) has order 4 on grids uniform in `ρ` (e.g.
//! [`super::TimeGrid::Karras`] with `rho = 1`); on other grids the fixed
//! weights are off by `O(h)` and the order drops (to 2 on a logSNR grid).
//! The three methods differ in the warm-up:
//!
//! - [`Pndm`] (F-PNDM): three pseudo-Runge–Kutta steps, `e1` at `(x, s)`,
//!   `e2` at `φ(x, e1, s → m)`, `e3` at `φ(x, e2, s → m)`, `e4` at
//!   `φ(x, e3, s → t)`, `ε̄ = (e1 + 2e2 + 2e3 + e4)/6` (four evaluations
//!   each), then AB4. The midpoint `m` is taken in `ρ` (classical RK4 in
//!   `ρ`; PNDM's code halves its uniform `t`). NFE = steps + 9.
//! - [`Plms`] (diffusers' PLMS, `skip_prk_steps`): a pseudo-Heun first step
//!   (`e2` at `φ(x, e1, s → t)`, `ε̄ = (e1 + e2)/2`, two evaluations), then
//!   AB2, AB3, AB4. NFE = steps + 1.
//! - [`IPndm`]: AB1 (DDIM), AB2, AB3 on the first three steps, then AB4.
//!   NFE = steps.

use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Form, Sampler, lin2};
use super::schedule::NoiseSchedule;

/// F-PNDM: pseudo-RK4 warm-up (three steps, four evaluations each), then
/// the pseudo linear multistep AB4 on `ε̂` with DDIM's transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pndm;

/// PLMS: a pseudo-Heun first step (two evaluations), then AB2, AB3, AB4 on
/// `ε̂` with DDIM's transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plms;

/// iPNDM: AB1 to AB3 as warm-up, then AB4, on `ε̂` with DDIM's transfer;
/// one evaluation per step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IPndm;

/// The equal-step Adams–Bashforth weights by number of points.
const AB: [[f64; 4]; 4] = [
    [1.0, 0.0, 0.0, 0.0],
    [1.5, -0.5, 0.0, 0.0],
    [23.0 / 12.0, -16.0 / 12.0, 5.0 / 12.0, 0.0],
    [55.0 / 24.0, -59.0 / 24.0, 37.0 / 24.0, -9.0 / 24.0],
];

/// DDIM's transfer `φ(x, e, s → t)` into `out`.
fn transfer<S: NoiseSchedule>(
    sched: &S,
    (s, t): (f64, f64),
    x: &[f64],
    e: &[f64],
    out: &mut [f64],
) {
    let h = sched.lambda(t) - sched.lambda(s);
    let (r, c) = Form::Noise.first_order(sched, (s, t), h);
    lin2(out, r, x, c, e);
}

/// The AB step on as many points as the history allows (up to four).
fn ab_step<M: Model, S: NoiseSchedule>(st: Advance<'_, M, S>) {
    let k = (st.history.len() + 1).min(4);
    let w = &AB[k - 1];
    let n = st.x.len();
    let eb = &mut st.scratch[..n];
    for i in 0..n {
        let mut acc = w[0] * st.m0[i];
        for j in 1..k {
            acc += w[j] * st.history.get(j - 1).0[i];
        }
        eb[i] = acc;
    }
    transfer(&st.flow.schedule, (st.t, st.t_next), st.x, eb, st.x_new);
}

impl Sampler for IPndm {
    fn name(&self) -> &'static str {
        "iPNDM"
    }
    fn order(&self) -> f64 {
        4.0
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Noise
    }
    fn history(&self) -> usize {
        3
    }
    fn scratch(&self) -> usize {
        1
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        ab_step(st);
    }
}

impl Sampler for Plms {
    fn name(&self) -> &'static str {
        "PLMS"
    }
    fn order(&self) -> f64 {
        4.0
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Noise
    }
    fn history(&self) -> usize {
        3
    }
    fn scratch(&self) -> usize {
        2
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        if !st.history.is_empty() {
            return ab_step(st);
        }
        let Advance {
            flow,
            p,
            stats,
            t,
            t_next,
            x,
            m0,
            scratch,
            x_new,
            ..
        } = st;
        let sched = &flow.schedule;
        let n = x.len();
        let (u, e2) = scratch.split_at_mut(n);
        transfer(sched, (t, t_next), x, m0, u);
        flow.predict_as(Parametrisation::Noise, t_next, u, p, &mut e2[..n], stats);
        for i in 0..n {
            u[i] = 0.5 * (m0[i] + e2[i]);
        }
        transfer(sched, (t, t_next), x, u, x_new);
    }
}

impl Sampler for Pndm {
    fn name(&self) -> &'static str {
        "PNDM"
    }
    fn order(&self) -> f64 {
        4.0
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Noise
    }
    fn history(&self) -> usize {
        3
    }
    fn scratch(&self) -> usize {
        3
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        if st.index >= 3 {
            return ab_step(st);
        }
        let Advance {
            flow,
            p,
            stats,
            t,
            t_next,
            x,
            m0,
            scratch,
            x_new,
            ..
        } = st;
        let sched = &flow.schedule;
        let n = x.len();
        // the midpoint in ρ = σ/α = e^{−λ}
        let rho = |t: f64| (-sched.lambda(t)).exp();
        let tm = sched.t_of_lambda(-(0.5 * (rho(t) + rho(t_next))).ln());
        let (u, rest) = scratch.split_at_mut(n);
        let (e, acc) = rest.split_at_mut(n);
        let acc = &mut acc[..n];
        acc.copy_from_slice(m0);
        // e2, e3 at the midpoint, e4 at the end, each from x with the last e
        for (stage, (to, w)) in [(tm, 2.0), (tm, 2.0), (t_next, 1.0)]
            .into_iter()
            .enumerate()
        {
            let from: &[f64] = if stage == 0 { m0 } else { e };
            transfer(sched, (t, to), x, from, u);
            flow.predict_as(Parametrisation::Noise, to, u, p, e, stats);
            acc.iter_mut()
                .zip(e.iter())
                .for_each(|(a, &ev)| *a += w * ev);
        }
        acc.iter_mut().for_each(|a| *a /= 6.0);
        transfer(sched, (t, t_next), x, acc, x_new);
    }
}
