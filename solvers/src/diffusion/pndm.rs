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
use super::sampler::{Advance, Form, History, Sampler, lin2};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp, add_scaled, linear_vjp, predict_counted};
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

/// `(r, c)` of DDIM's transfer `φ(x, e, s → t) = r x + c e`.
fn transfer_coefs<S: NoiseSchedule + ?Sized>(sched: &S, (s, t): (f64, f64)) -> (f64, f64) {
    let h = sched.lambda(t) - sched.lambda(s);
    Form::Noise.first_order(sched, (s, t), h)
}

/// DDIM's transfer `φ(x, e, s → t)` into `out`.
fn transfer<S: NoiseSchedule>(
    sched: &S,
    (s, t): (f64, f64),
    x: &[f64],
    e: &[f64],
    out: &mut [f64],
) {
    let (r, c) = transfer_coefs(sched, (s, t));
    lin2(out, r, x, c, e);
}

/// The number of points of the AB step with `history`.
fn ab_points(history: History<'_>) -> usize {
    (history.len() + 1).min(4)
}

/// The AB step on as many points as the history allows (up to four).
fn ab_step<M: Model, S: NoiseSchedule>(st: Advance<'_, M, S>) {
    let k = ab_points(st.history);
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
        let tm = rho_midpoint(sched, t, t_next);
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

/// The midpoint of `s` and `t` in `ρ = σ/α = e^{−λ}`.
fn rho_midpoint<S: NoiseSchedule + ?Sized>(sched: &S, s: f64, t: f64) -> f64 {
    let rho = |t: f64| (-sched.lambda(t)).exp();
    sched.t_of_lambda(-(0.5 * (rho(s) + rho(t))).ln())
}

/// The VJP of [`ab_step`]: linear, `x_t = r x + c Σ_j w_j ε_j`.
fn ab_step_vjp(st: AdvanceVjp<'_>) -> usize {
    let k = ab_points(st.history);
    let (r, c) = transfer_coefs(st.schedule(), (st.t, st.t_next));
    let mut cw = [0.0; 4];
    for (o, &w) in cw.iter_mut().zip(&AB[k - 1]) {
        *o = c * w;
    }
    linear_vjp(st, r, &cw[..k])
}

impl SamplerVjp for IPndm {
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        ab_step_vjp(st)
    }
}

/// The pseudo-Heun first step `x_t = r x + (c/2)(ε_s + ε̂(u, t))`,
/// `u = r x + c ε_s`: the cotangent `(c/2) x̄_t` of `ε̂(u, t)` goes back
/// through the model to `ū`, which sends `r ū` to `x̄` and `c ū` to `ε̄_s`
/// (one model VJP, no evaluation); then the AB steps.
impl SamplerVjp for Plms {
    fn vjp_scratch(&self) -> usize {
        4
    }
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        if !st.history.is_empty() {
            return ab_step_vjp(st);
        }
        let (r, c) = transfer_coefs(st.schedule(), (st.t, st.t_next));
        let n = st.x.len();
        let (u, rest) = st.scratch.split_at_mut(n);
        let (e_bar, rest) = rest.split_at_mut(n);
        let (u_bar, scaled) = rest.split_at_mut(n);
        lin2(u, r, st.x, c, st.m0);
        for (eb, &xb) in e_bar.iter_mut().zip(st.x_bar_new) {
            *eb = 0.5 * c * xb;
        }
        u_bar.fill(0.0);
        let want = Parametrisation::Noise;
        st.flow.predict_vjp(
            want,
            st.t_next,
            u,
            st.p,
            e_bar,
            &mut scaled[..n],
            u_bar,
            st.p_bar,
        );
        add_scaled(st.x_bar, r, st.x_bar_new);
        add_scaled(st.m0_bar, 0.5 * c, st.x_bar_new);
        add_scaled(st.x_bar, r, u_bar);
        add_scaled(st.m0_bar, c, u_bar);
        1
    }
}

/// The pseudo-RK4 warm-up, `x_t = r x + c (ε_s + 2e2 + 2e3 + e4)/6` with
/// `e2 = ε̂(u1, m)`, `e3 = ε̂(u2, m)`, `e4 = ε̂(u3, t)` and
/// `u1 = r_m x + c_m ε_s`, `u2 = r_m x + c_m e2`, `u3 = r x + c e3`
/// (`u1`–`u3` recomputed: two model evaluations), reversed stage by stage:
/// three model VJPs. Then the AB steps.
impl SamplerVjp for Pndm {
    fn vjp_scratch(&self) -> usize {
        6
    }
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        if st.index >= 3 {
            return ab_step_vjp(st);
        }
        let AdvanceVjp {
            flow,
            p,
            stats,
            t,
            t_next,
            x,
            m0,
            x_bar_new,
            x_bar,
            m0_bar,
            p_bar,
            scratch,
            ..
        } = st;
        let sched = flow.schedule();
        let tm = rho_midpoint(sched, t, t_next);
        let (rm, cm) = transfer_coefs(sched, (t, tm));
        let (r, c) = transfer_coefs(sched, (t, t_next));
        let n = x.len();
        let (u, rest) = scratch.split_at_mut(3 * n);
        let (e_bar, rest) = rest.split_at_mut(n);
        let (u_bar, scaled) = rest.split_at_mut(n);
        let scaled = &mut scaled[..n];
        let want = Parametrisation::Noise;
        // forward: u1, then e2 (in u3) and u2, then e3 (in u3) and u3
        let (u1, u23) = u.split_at_mut(n);
        let (u2, u3) = u23.split_at_mut(n);
        lin2(u1, rm, x, cm, m0);
        predict_counted(flow, stats, want, (tm, u1), p, u3);
        for i in 0..n {
            u2[i] = rm * x[i] + cm * u3[i];
        }
        predict_counted(flow, stats, want, (tm, u2), p, e_bar);
        lin2(u3, r, x, c, e_bar);
        // backward: x̄_t gives ā = c x̄_t to acc = (ε_s + 2e2 + 2e3 + e4)/6
        add_scaled(x_bar, r, x_bar_new);
        add_scaled(m0_bar, c / 6.0, x_bar_new);
        let stages: [(&[f64], f64, f64, f64, f64); 3] = [
            (u3, t_next, 1.0, r, c),
            (u2, tm, 2.0, rm, cm),
            (u1, tm, 2.0, rm, cm),
        ];
        // ē of the stage's output: its share of acc, plus what the next
        // stage's input sent back (ū_next's e-coefficient)
        u_bar.fill(0.0);
        let mut carry = 0.0;
        for (stage, (ui, si, wi, ri, ci)) in stages.into_iter().enumerate() {
            for ((eb, &xb), &ub) in e_bar.iter_mut().zip(x_bar_new).zip(u_bar.iter()) {
                *eb = wi * c / 6.0 * xb + carry * ub;
            }
            u_bar.fill(0.0);
            flow.predict_vjp(want, si, ui, p, e_bar, scaled, u_bar, p_bar);
            add_scaled(x_bar, ri, u_bar);
            if stage == 2 {
                // u1 = r_m x + c_m ε_s
                add_scaled(m0_bar, ci, u_bar);
            }
            carry = ci;
        }
        3
    }
}
