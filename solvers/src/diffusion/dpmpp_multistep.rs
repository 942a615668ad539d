//! DPM-Solver++(2M) and (3M), multistep, data prediction (Lu, Zhou, Bao,
//! Chen, Li, Zhu, "DPM-Solver++", arXiv 2211.01095, Alg. 2; dpm_solver
//! `multistep_dpm_solver_*_update`). One model evaluation per step; the
//! previous predictions are the carried state. Reference:
//! `../shared/reference/exponential.md` §4 and `diffusion.md` §4.
//!
//! With `h = λ_t − λ_s`, `m0` the prediction at `s` and `m1, m2` the
//! previous ones at `λ_s − r0 h` and `λ_s − (r0 + r1) h`, and
//! `φ1 = e^{−h} − 1`, `φ2 = φ1/h + 1`, `φ3 = φ2/h − ½`:
//!
//! - order 1 (++1, the warm-up): `x_t = (σ_t/σ_s) x − α_t φ1 m0`;
//! - 2M: `x_t = (σ_t/σ_s) x − α_t φ1 (m0 + (m0 − m1)/(2 r0))`;
//! - 3M: `x_t = (σ_t/σ_s) x − α_t φ1 m0 + α_t φ2 D1 − α_t φ3 D2` with
//!   `D1_0 = (m0 − m1)/r0`, `D1_1 = (m1 − m2)/r1`,
//!   `D1 = D1_0 + r0 (D1_0 − D1_1)/(r0 + r1)` and
//!   `D2 = 2 (D1_0 − D1_1)/(r0 + r1)`.
//!
//! **The factor 2 in `D2`.** The exact step is
//! `x_t = (σ_t/σ_s) x + σ_t ∫ e^λ x̂0(λ) dλ`. Expanding
//! `x̂0(λ_s + τ) = m0 + τ m' + τ² m''/2 + O(τ³)` and integrating,
//! `σ_t ∫_0^h e^{λ_s+τ} τ dτ = α_t h φ2` and
//! `σ_t ∫_0^h e^{λ_s+τ} τ²/2 dτ = −α_t h² φ3`, so the step needs
//! `D1 = h m' + O(h³)` and `D2 = h² m'' + O(h³)`. In units of `h` the points
//! sit at `0, −r0, −(r0 + r1)`; the second divided difference of `m` there is
//! `(D1_0 − D1_1)/(r0 + r1) = h² m''/2 + O(h³)`, hence the factor 2, and the
//! derivative of the interpolating quadratic at 0 is `D1` above. The local
//! error is then `O(h⁴)`: order 3. dpm_solver, diffusers and k-diffusion
//! omit the 2 (their `D2` is `h² m''/2`), which leaves an `O(h³)` local error:
//! order 2 ([`SecondDifference::AsCommonlyCoded`] reproduces it; the tests
//! measure both).

use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Sampler, data_phis, ratios};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp, add_scaled};
use super::schedule::NoiseSchedule;
use crate::error::SolveError;

/// DPM-Solver++(2M): order 2, one model evaluation per step; the first
/// step is ++1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpmSolverPP2M {
    lower_order_final: Option<usize>,
}

/// How DPM-Solver++(3M) forms its second-difference term `D2`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SecondDifference {
    /// `D2 = 2 (D1_0 − D1_1)/(r0 + r1) ≈ h² x̂0''`: order 3 (the default).
    #[default]
    Taylor,
    /// `D2 = (D1_0 − D1_1)/(r0 + r1)`, as dpm_solver, diffusers and
    /// k-diffusion code it: order 2.
    AsCommonlyCoded,
}

/// DPM-Solver++(3M): order 3, one model evaluation per step; the first two
/// steps are ++1 and ++(2M).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpmSolverPP3M {
    lower_order_final: Option<usize>,
    d2: SecondDifference,
}

/// The order of step `index` of `steps` under dpm_solver's
/// `lower_order_final` rule: `min(order, steps − index)` when `steps < 10`,
/// after the warm-up (the warm-up steps `index < order − 1` keep their
/// order `index + 1`, as in dpm_solver's `sample`).
fn final_order(order: usize, lower_order_final: Option<usize>, index: usize) -> usize {
    match lower_order_final {
        Some(steps) if steps < 10 && index + 1 >= order => {
            order.min(steps.saturating_sub(index).max(1))
        }
        _ => order,
    }
}

fn check_steps(name: &str, lower_order_final: Option<usize>) -> Result<(), SolveError> {
    if lower_order_final == Some(0) {
        return Err(SolveError::InvalidInput {
            what: format!("{name} lower_order_final"),
            reason: "0 steps; give the number of steps of the grid".into(),
        });
    }
    Ok(())
}

impl DpmSolverPP2M {
    /// Lowers the order of the last steps of a solve of `steps` steps as
    /// dpm_solver's `lower_order_final` does: when `steps < 10`, step `i`
    /// (from 0) after the warm-up has order `min(2, steps − i)` (the last
    /// one ++1), which
    /// steadies very short runs. `steps` must be the grid's step count.
    pub fn lower_order_final(mut self, steps: usize) -> Self {
        self.lower_order_final = Some(steps);
        self
    }
}

impl DpmSolverPP3M {
    /// As [`DpmSolverPP2M::lower_order_final`], with orders
    /// `min(3, steps − i)`.
    pub fn lower_order_final(mut self, steps: usize) -> Self {
        self.lower_order_final = Some(steps);
        self
    }

    /// The factor of `D2`.
    fn d2_scale(&self) -> f64 {
        match self.d2 {
            SecondDifference::Taylor => 2.0,
            SecondDifference::AsCommonlyCoded => 1.0,
        }
    }

    /// Chooses how `D2` is formed (see the module docs).
    pub fn second_difference(mut self, d2: SecondDifference) -> Self {
        self.d2 = d2;
        self
    }
}

/// One multistep DPM-Solver++ step of order `order` (≤ the history + 1),
/// `d2_scale` the factor of `D2`.
fn multistep<M: Model, S: NoiseSchedule>(order: usize, d2_scale: f64, st: Advance<'_, M, S>) {
    let Advance {
        flow,
        t,
        t_next,
        x,
        m0,
        history,
        x_new,
        ..
    } = st;
    let sched = &flow.schedule;
    let (_, rs, h) = ratios(sched, t, t_next);
    let a_t = sched.alpha(t_next);
    let (phi1, phi2, phi3) = data_phis(h);
    let lam_s = sched.lambda(t);
    let order = order.min(history.len() + 1);
    match order {
        1 => {
            for i in 0..x.len() {
                x_new[i] = rs * x[i] - a_t * phi1 * m0[i];
            }
        }
        2 => {
            let (m1, l1) = history.get(0);
            let r0 = (lam_s - l1) / h;
            let w = 1.0 / (2.0 * r0);
            for i in 0..x.len() {
                x_new[i] = rs * x[i] - a_t * phi1 * (m0[i] + w * (m0[i] - m1[i]));
            }
        }
        _ => {
            let ((m1, l1), (m2, l2)) = (history.get(0), history.get(1));
            let (r0, r1) = ((lam_s - l1) / h, (l1 - l2) / h);
            let (c1, c2) = (r0 / (r0 + r1), d2_scale / (r0 + r1));
            for i in 0..x.len() {
                let d10 = (m0[i] - m1[i]) / r0;
                let d11 = (m1[i] - m2[i]) / r1;
                let d1 = d10 + c1 * (d10 - d11);
                let d2 = c2 * (d10 - d11);
                x_new[i] = rs * x[i] - a_t * phi1 * m0[i] + a_t * phi2 * d1 - a_t * phi3 * d2;
            }
        }
    }
}

/// The VJP of [`multistep`]: each order is linear in `(x, m0, m1, m2)`,
/// `x_t = rs x + k0 m0 + k1 m1 + k2 m2`, so the cotangent `x̄_t` goes to
/// `rs x̄_t`, `k0 x̄_t`, `k1 x̄_t`, `k2 x̄_t`. For order 3, with
/// `A = α_t (φ2 (1 + c1) − φ3 c2)` and `B = α_t (φ3 c2 − φ2 c1)` the
/// weights of `D1_0` and `D1_1`: `k0 = −α_t φ1 + A/r0`,
/// `k1 = −A/r0 + B/r1`, `k2 = −B/r1`.
fn multistep_vjp(order: usize, d2_scale: f64, st: AdvanceVjp<'_>) -> usize {
    let AdvanceVjp {
        flow,
        t,
        t_next,
        history,
        x_bar_new,
        x_bar,
        m0_bar,
        history_bar,
        ..
    } = st;
    let sched = flow.schedule();
    let (_, rs, h) = ratios(sched, t, t_next);
    let a_t = sched.alpha(t_next);
    let (phi1, phi2, phi3) = data_phis(h);
    let lam_s = sched.lambda(t);
    let n = x_bar.len();
    add_scaled(x_bar, rs, x_bar_new);
    let (k0, k1, k2) = match order.min(history.len() + 1) {
        1 => (-a_t * phi1, 0.0, 0.0),
        2 => {
            let r0 = (lam_s - history.get(0).1) / h;
            let w = 1.0 / (2.0 * r0);
            (-a_t * phi1 * (1.0 + w), a_t * phi1 * w, 0.0)
        }
        _ => {
            let (l1, l2) = (history.get(0).1, history.get(1).1);
            let (r0, r1) = ((lam_s - l1) / h, (l1 - l2) / h);
            let (c1, c2) = (r0 / (r0 + r1), d2_scale / (r0 + r1));
            let a = a_t * (phi2 * (1.0 + c1) - phi3 * c2);
            let b = a_t * (phi3 * c2 - phi2 * c1);
            (-a_t * phi1 + a / r0, -a / r0 + b / r1, -b / r1)
        }
    };
    add_scaled(m0_bar, k0, x_bar_new);
    if k1 != 0.0 {
        add_scaled(&mut history_bar[..n], k1, x_bar_new);
    }
    if k2 != 0.0 {
        add_scaled(&mut history_bar[n..2 * n], k2, x_bar_new);
    }
    0
}

impl SamplerVjp for DpmSolverPP2M {
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        let order = final_order(2, self.lower_order_final, st.index);
        multistep_vjp(order, 1.0, st)
    }
}

impl SamplerVjp for DpmSolverPP3M {
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        let order = final_order(3, self.lower_order_final, st.index);
        multistep_vjp(order, self.d2_scale(), st)
    }
}

impl Sampler for DpmSolverPP2M {
    fn name(&self) -> &'static str {
        "DPM-Solver++(2M)"
    }
    fn order(&self) -> f64 {
        2.0
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Data
    }
    fn history(&self) -> usize {
        1
    }
    fn check_settings(&self) -> Result<(), SolveError> {
        check_steps("DpmSolverPP2M", self.lower_order_final)
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        let order = final_order(2, self.lower_order_final, st.index);
        multistep(order, 1.0, st);
    }
}

impl Sampler for DpmSolverPP3M {
    fn name(&self) -> &'static str {
        "DPM-Solver++(3M)"
    }
    fn order(&self) -> f64 {
        match self.d2 {
            SecondDifference::Taylor => 3.0,
            SecondDifference::AsCommonlyCoded => 2.0,
        }
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Data
    }
    fn history(&self) -> usize {
        2
    }
    fn check_settings(&self) -> Result<(), SolveError> {
        check_steps("DpmSolverPP3M", self.lower_order_final)
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        let order = final_order(3, self.lower_order_final, st.index);
        multistep(order, self.d2_scale(), st);
    }
}
