//! EDM's deterministic Heun sampler (Karras, Aittala, Aila, Laine,
//! "Elucidating the design space of diffusion-based generative models",
//! NeurIPS 2022, Alg. 1; edm `generate.py` `edm_sampler`): Heun's method on
//! `dx̃/dρ = (x̃ − D(x̃; ρ))/ρ` in the scaled state `x̃ = x/α` and noise level
//! `ρ = σ/α`, with `D` the data prediction; a step to `ρ = 0` is Euler's
//! (so `N` steps to 0 cost `2N − 1` evaluations). Order 2. Reference:
//! `../shared/reference/diffusion.md` §4.

use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Sampler, lin2};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp, add_scaled};
use super::schedule::NoiseSchedule;

/// EDM Heun: order 2, two model evaluations per step (one into `σ = 0`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdmHeun;

impl Sampler for EdmHeun {
    fn name(&self) -> &'static str {
        "EDM Heun"
    }
    fn order(&self) -> f64 {
        2.0
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Data
    }
    fn scratch(&self) -> usize {
        2
    }
    fn reaches_zero_noise(&self) -> bool {
        true
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
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
        let k = HeunCoefs::new(&flow.schedule, t, t_next);
        // Euler predictor, in x = α x̃
        lin2(x_new, k.ex, x, k.ed, m0);
        if k.euler_only {
            return;
        }
        let n = x.len();
        let (xp, dp) = scratch.split_at_mut(n);
        xp.copy_from_slice(x_new);
        flow.predict_as(Parametrisation::Data, t_next, xp, p, &mut dp[..n], stats);
        for i in 0..n {
            x_new[i] = k.cx * x[i] + k.cd * m0[i] + k.cp * xp[i] + k.cdp * dp[i];
        }
    }
}

/// The coefficients of an EDM Heun step from `s` to `t` in `x` (with
/// `x̃ = x/α`, `ρ = σ/α`, `Δρ = ρ_t − ρ_s`): the Euler predictor
/// `x_p = ex x + ed D_s` and the corrected
/// `x_t = cx x + cd D_s + cp x_p + cdp D(x_p, t)`.
struct HeunCoefs {
    ex: f64,
    ed: f64,
    cx: f64,
    cd: f64,
    cp: f64,
    cdp: f64,
    /// The step ends at `σ = 0`: Euler's step alone.
    euler_only: bool,
}

impl HeunCoefs {
    fn new<S: NoiseSchedule + ?Sized>(sched: &S, s: f64, t: f64) -> Self {
        let (a_s, a_t) = (sched.alpha(s), sched.alpha(t));
        let rho_s = sched.sigma(s) / a_s;
        let sig_t = sched.sigma(t);
        let rho_t = sig_t / a_t;
        let dr = rho_t - rho_s;
        // x_p = α_t (x̃ + Δρ (x̃ − D_s)/ρ_s)
        let (ex, ed) = (a_t / a_s * (1.0 + dr / rho_s), -a_t * dr / rho_s);
        // x_t = α_t (x̃ + ½Δρ ((x̃ − D_s)/ρ_s + (x_p/α_t − D_p)/ρ_t))
        let half = 0.5 * dr;
        HeunCoefs {
            ex,
            ed,
            cx: a_t / a_s * (1.0 + half / rho_s),
            cd: -a_t * half / rho_s,
            cp: half / rho_t,
            cdp: -a_t * half / rho_t,
            euler_only: sig_t == 0.0,
        }
    }
}

/// Through the corrector: `x̄_p = cp x̄_t` plus the model's VJP at
/// `(t, x_p)` of `cdp x̄_t`, then the predictor sends `ex x̄_p` to `x̄` and
/// `ed x̄_p` to `D̄_s`. One model VJP and no evaluation (`x_p` is linear
/// in `x` and `D_s`, and `x_t` in `D_p`); the Euler step into `σ = 0` none.
impl SamplerVjp for EdmHeun {
    fn vjp_scratch(&self) -> usize {
        4
    }
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        let k = HeunCoefs::new(st.schedule(), st.t, st.t_next);
        if k.euler_only {
            add_scaled(st.x_bar, k.ex, st.x_bar_new);
            add_scaled(st.m0_bar, k.ed, st.x_bar_new);
            return 0;
        }
        let n = st.x.len();
        let (xp, rest) = st.scratch.split_at_mut(n);
        let (dp_bar, rest) = rest.split_at_mut(n);
        let (xp_bar, scaled) = rest.split_at_mut(n);
        lin2(xp, k.ex, st.x, k.ed, st.m0);
        for ((db, pb), &xb) in dp_bar.iter_mut().zip(xp_bar.iter_mut()).zip(st.x_bar_new) {
            *db = k.cdp * xb;
            *pb = k.cp * xb;
        }
        let want = Parametrisation::Data;
        st.flow.predict_vjp(
            want,
            st.t_next,
            xp,
            st.p,
            dp_bar,
            &mut scaled[..n],
            xp_bar,
            st.p_bar,
        );
        add_scaled(st.x_bar, k.cx, st.x_bar_new);
        add_scaled(st.m0_bar, k.cd, st.x_bar_new);
        add_scaled(st.x_bar, k.ex, xp_bar);
        add_scaled(st.m0_bar, k.ed, xp_bar);
        1
    }
}
