//! DPM-Solver-3, singlestep, noise prediction (Lu et al., "DPM-Solver",
//! NeurIPS 2022, Alg. 2 with `r1 = ⅓, r2 = ⅔`):
//! `u1 = (α_{s1}/α_s) x − σ_{s1}(e^{r1 h} − 1) ε_s`, `D1 = ε̂(u1, s1) − ε_s`,
//! `u2 = (α_{s2}/α_s) x − σ_{s2}(e^{r2 h} − 1) ε_s − σ_{s2}(r2/r1)((e^{r2 h} − 1)/(r2 h) − 1) D1`,
//! `D2 = ε̂(u2, s2) − ε_s`,
//! `x_t = (α_t/α_s) x − σ_t(e^h − 1) ε_s − (σ_t/r2)((e^h − 1)/h − 1) D2`.
//! Order 3, three model evaluations per step. Reference:
//! `../shared/reference/exponential.md` §4.

use super::model::{Model, Parametrisation, ProbabilityFlow};
use super::sampler::{Advance, Form, Sampler, lin2};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp, add_scaled, predict_counted};
use super::schedule::NoiseSchedule;
use crate::solution::Stats;

/// DPM-Solver-3 (singlestep, `r1 = ⅓, r2 = ⅔`): order 3, three
/// evaluations per step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpmSolver3;

/// `(e^z − 1)/z − 1 = z φ_2(z)` (accurate near `z = 0`).
fn phi2_noise(z: f64) -> f64 {
    z * crate::expint::phi::phi(2, z)
}

impl Sampler for DpmSolver3 {
    fn name(&self) -> &'static str {
        "DPM-Solver-3"
    }
    fn order(&self) -> f64 {
        3.0
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Noise
    }
    fn scratch(&self) -> usize {
        3
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        dpm3_step(R1, R2, st);
    }
}

/// A DPM-Solver-3 step with the intermediate fractions `r1, r2` of the
/// step in `λ` (3 vectors of scratch).
pub(crate) fn dpm3_step<M: Model, S: NoiseSchedule>(r1: f64, r2: f64, st: Advance<'_, M, S>) {
    let n = st.x.len();
    let (u, rest) = st.scratch.split_at_mut(n);
    let (d1, d2) = rest.split_at_mut(n);
    let stages = Stages {
        flow: st.flow,
        p: st.p,
        t: st.t,
        t_next: st.t_next,
        x: st.x,
        m0: st.m0,
    };
    stages.first(r1, u, d1, st.stats);
    stages.rest(r1, r2, d1, u, &mut d2[..n], st.x_new, st.stats);
}

/// DPM-Solver-3's intermediate fractions of the step in `λ`.
pub(crate) const R1: f64 = 1.0 / 3.0;
/// The second.
pub(crate) const R2: f64 = 2.0 / 3.0;

/// The stages of a DPM-Solver-3 step from `(t, x)` with `ε_s = m0` to
/// `t_next` (shared with the adaptive DPM-Solver-23, whose DPM-Solver-2
/// with `r1 = ⅓` is the first stage).
pub(crate) struct Stages<'a, M, S> {
    pub(crate) flow: &'a ProbabilityFlow<M, S>,
    pub(crate) p: &'a [f64],
    pub(crate) t: f64,
    pub(crate) t_next: f64,
    pub(crate) x: &'a [f64],
    pub(crate) m0: &'a [f64],
}

/// The coefficients of a DPM-Solver-3 step from `t` to `t_next` with
/// fractions `r1, r2` (the first stage's alone serve DPM-Solver-2):
/// `u1 = ra1 x + c1 ε_s` at `s1`,
/// `u2 = ra2 x + c20 ε_s + c21 D1` at `s2`,
/// `x_t = ra x + c0 ε_s + c2 D2`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Coefs {
    pub(crate) s1: f64,
    pub(crate) ra1: f64,
    pub(crate) c1: f64,
    pub(crate) s2: f64,
    pub(crate) ra2: f64,
    pub(crate) c20: f64,
    pub(crate) c21: f64,
    pub(crate) ra: f64,
    pub(crate) c0: f64,
    pub(crate) c2: f64,
}

impl Coefs {
    pub(crate) fn new<S: NoiseSchedule + ?Sized>(
        sched: &S,
        (t, t_next): (f64, f64),
        r1: f64,
        r2: f64,
    ) -> Self {
        let lam_s = sched.lambda(t);
        let h = sched.lambda(t_next) - lam_s;
        let s1 = sched.t_of_lambda(lam_s + r1 * h);
        let (ra1, c1) = Form::Noise.first_order(sched, (t, s1), r1 * h);
        let s2 = sched.t_of_lambda(lam_s + r2 * h);
        let (ra2, c20) = Form::Noise.first_order(sched, (t, s2), r2 * h);
        let c21 = -sched.sigma(s2) * (r2 / r1) * phi2_noise(r2 * h);
        let (ra, c0) = Form::Noise.first_order(sched, (t, t_next), h);
        let c2 = -sched.sigma(t_next) / r2 * phi2_noise(h);
        Coefs {
            s1,
            ra1,
            c1,
            s2,
            ra2,
            c20,
            c21,
            ra,
            c0,
            c2,
        }
    }
}

impl<M: Model, S: NoiseSchedule> Stages<'_, M, S> {
    /// The first stage: `u1` (DPM-Solver-1 to `s1 = t(λ_s + r1 h)`) into
    /// `u` and `D1 = ε̂(u1, s1) − ε_s` into `d1`.
    pub(crate) fn first(&self, r1: f64, u: &mut [f64], d1: &mut [f64], stats: &mut Stats) {
        let k = Coefs::new(&self.flow.schedule, (self.t, self.t_next), r1, R2);
        lin2(u, k.ra1, self.x, k.c1, self.m0);
        self.flow
            .predict_as(Parametrisation::Noise, k.s1, u, self.p, d1, stats);
        d1.iter_mut().zip(self.m0).for_each(|(d, &e)| *d -= e);
    }

    /// The second stage and the step, from `D1` (`u` is workspace, `d2`
    /// receives `D2`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn rest(
        &self,
        r1: f64,
        r2: f64,
        d1: &[f64],
        u: &mut [f64],
        d2: &mut [f64],
        x_new: &mut [f64],
        stats: &mut Stats,
    ) {
        let (x, m0) = (self.x, self.m0);
        let k = Coefs::new(&self.flow.schedule, (self.t, self.t_next), r1, r2);
        for i in 0..x.len() {
            u[i] = k.ra2 * x[i] + k.c20 * m0[i] + k.c21 * d1[i];
        }
        self.flow
            .predict_as(Parametrisation::Noise, k.s2, u, self.p, d2, stats);
        d2.iter_mut().zip(m0).for_each(|(d, &e)| *d -= e);
        for i in 0..x.len() {
            x_new[i] = k.ra * x[i] + k.c0 * m0[i] + k.c2 * d2[i];
        }
    }
}

/// The VJP of a DPM-Solver-3 step with fractions `r1, r2` (`u1`, `D1`
/// and `u2` recomputed: one model evaluation): `D̄2 = c2 x̄_t` goes back
/// through the model at `(s2, u2)` to `ū2`, which sends `ra2 ū2` to `x̄`,
/// `c20 ū2` to `ε̄_s` and `c21 ū2 = D̄1` back through the model at
/// `(s1, u1)` to `ū1`; `u1` sends `ra1 ū1` to `x̄` and `c1 ū1` to `ε̄_s`;
/// each `D_i = ε̂_i − ε_s` takes `D̄_i` from `ε̄_s`. Two model VJPs. Needs
/// 5 vectors of scratch.
pub(crate) fn dpm3_vjp(r1: f64, r2: f64, st: AdvanceVjp<'_>) -> usize {
    let (flow, p, x, m0, xb) = (st.flow, st.p, st.x, st.m0, st.x_bar_new);
    let k = Coefs::new(flow.schedule(), (st.t, st.t_next), r1, r2);
    let n = x.len();
    let (u1, rest) = st.scratch.split_at_mut(n);
    let (u2, rest) = rest.split_at_mut(n);
    let (m_bar, rest) = rest.split_at_mut(n);
    let (u_bar, scaled) = rest.split_at_mut(n);
    let scaled = &mut scaled[..n];
    let want = Parametrisation::Noise;
    // forward: u1, D1 (in u2 for now), u2
    lin2(u1, k.ra1, x, k.c1, m0);
    predict_counted(flow, st.stats, want, (k.s1, u1), p, u2);
    for i in 0..n {
        let d1 = u2[i] - m0[i];
        u2[i] = k.ra2 * x[i] + k.c20 * m0[i] + k.c21 * d1;
    }
    // x_t = ra x + c0 ε_s + c2 (ε̂(u2) − ε_s)
    add_scaled(st.x_bar, k.ra, xb);
    add_scaled(st.m0_bar, k.c0 - k.c2, xb);
    for (mb, &v) in m_bar.iter_mut().zip(xb) {
        *mb = k.c2 * v;
    }
    u_bar.fill(0.0);
    flow.predict_vjp(want, k.s2, u2, p, m_bar, scaled, u_bar, st.p_bar);
    // u2 = ra2 x + c20 ε_s + c21 (ε̂(u1) − ε_s)
    add_scaled(st.x_bar, k.ra2, u_bar);
    add_scaled(st.m0_bar, k.c20 - k.c21, u_bar);
    for (mb, &ub) in m_bar.iter_mut().zip(u_bar.iter()) {
        *mb = k.c21 * ub;
    }
    u_bar.fill(0.0);
    flow.predict_vjp(want, k.s1, u1, p, m_bar, scaled, u_bar, st.p_bar);
    add_scaled(st.x_bar, k.ra1, u_bar);
    add_scaled(st.m0_bar, k.c1, u_bar);
    2
}

impl SamplerVjp for DpmSolver3 {
    fn vjp_scratch(&self) -> usize {
        5
    }
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        dpm3_vjp(R1, R2, st)
    }
}
