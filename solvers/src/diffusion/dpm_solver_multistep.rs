//! Multistep DPM-Solver in both forms (Lu, Zhou, Bao, Chen, Li, Zhu,
//! "DPM-Solver++", arXiv 2211.01095, Alg. 2 and App. B; dpm_solver
//! `multistep_dpm_solver_*_update` with `algorithm_type` `"dpmsolver++"`
//! and `"dpmsolver"`; diffusers `DPMSolverMultistepScheduler`):
//! DPM-Solver++(2M) and (3M) step the data prediction `x̂0`,
//! DPM-Solver(2M) and (3M) the noise prediction `ε̂`. One model evaluation
//! per step; the previous predictions are the carried state. Reference:
//! `../shared/reference/exponential.md` §4 and `diffusion.md` §4.
//!
//! With `h = λ_t − λ_s`, `m0` the prediction at `s` and `m1, m2` the
//! previous ones at `λ_s − r0 h` and `λ_s − (r0 + r1) h`, every step is
//! `x_t = r x + c1 m0 + c2 D1 + c3 D2` with
//!
//! - data form: `r = σ_t/σ_s`, `(c1, c2, c3) = α_t (−φ1, φ2, −φ3)`,
//!   `φ1 = e^{−h} − 1`, `φ2 = φ1/h + 1`, `φ3 = φ2/h − ½`;
//! - noise form: `r = α_t/α_s`, `(c1, c2, c3) = −σ_t (ψ1, ψ2, ψ3)`,
//!   `ψ1 = e^h − 1`, `ψ2 = ψ1/h − 1`, `ψ3 = ψ2/h − ½`;
//!
//! and, by order,
//!
//! - order 1 (the warm-up; DDIM): `D1 = D2 = 0`;
//! - 2M: `x_t = r x + c1 (m0 + (m0 − m1)/(2 r0))` (the references' form);
//! - 3M: `D1_0 = (m0 − m1)/r0`, `D1_1 = (m1 − m2)/r1`,
//!   `D1 = D1_0 + r0 (D1_0 − D1_1)/(r0 + r1)` and
//!   `D2 = 2 (D1_0 − D1_1)/(r0 + r1)`.
//!
//! **The factor 2 in `D2`.** The exact data-form step is
//! `x_t = (σ_t/σ_s) x + σ_t ∫ e^λ x̂0(λ) dλ`. Expanding
//! `x̂0(λ_s + τ) = m0 + τ m' + τ² m''/2 + O(τ³)` and integrating,
//! `σ_t ∫_0^h e^{λ_s+τ} τ dτ = α_t h φ2` and
//! `σ_t ∫_0^h e^{λ_s+τ} τ²/2 dτ = −α_t h² φ3`, so the step needs
//! `D1 = h m' + O(h³)` and `D2 = h² m'' + O(h³)`. (The noise form is the
//! same with `x_t = (α_t/α_s) x − σ_t ∫_0^h e^{h−τ} ε̂(λ_s + τ) dτ`, whose
//! moments are `ψ1`, `h ψ2`, `h² ψ3`.) In units of `h` the points
//! sit at `0, −r0, −(r0 + r1)`; the second divided difference of `m` there is
//! `(D1_0 − D1_1)/(r0 + r1) = h² m''/2 + O(h³)`, hence the factor 2, and the
//! derivative of the interpolating quadratic at 0 is `D1` above. The local
//! error is then `O(h⁴)`: order 3. dpm_solver, diffusers and k-diffusion
//! omit the 2 (their `D2` is `h² m''/2`), which leaves an `O(h³)` local error:
//! order 2 ([`SecondDifference::AsCommonlyCoded`] reproduces it; the tests
//! measure both).

use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Form, History, Sampler, data_phis, ratios};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp, add_scaled};
use super::schedule::NoiseSchedule;
use crate::error::SolveError;

/// DPM-Solver++(2M): data prediction, order 2, one model evaluation per
/// step; the first step is ++1 (DDIM).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpmSolverPP2M {
    lower_order_final: Option<usize>,
}

/// DPM-Solver(2M): the multistep DPM-Solver on the noise prediction
/// (dpm_solver's `algorithm_type="dpmsolver"`, `method="multistep"`),
/// order 2, one model evaluation per step; the first step is DDIM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpmSolver2M {
    lower_order_final: Option<usize>,
}

/// How DPM-Solver++(3M) and DPM-Solver(3M) form their second-difference
/// term `D2`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SecondDifference {
    /// `D2 = 2 (D1_0 − D1_1)/(r0 + r1) ≈ h² m''`: order 3 (the default).
    #[default]
    Taylor,
    /// `D2 = (D1_0 − D1_1)/(r0 + r1)`, as dpm_solver, diffusers and
    /// k-diffusion code it: order 2.
    AsCommonlyCoded,
}

impl SecondDifference {
    /// The factor of `D2`.
    fn scale(self) -> f64 {
        match self {
            SecondDifference::Taylor => 2.0,
            SecondDifference::AsCommonlyCoded => 1.0,
        }
    }

    /// The global order of a third-order multistep method with this `D2`.
    fn order(self) -> f64 {
        match self {
            SecondDifference::Taylor => 3.0,
            SecondDifference::AsCommonlyCoded => 2.0,
        }
    }
}

/// DPM-Solver++(3M): data prediction, order 3, one model evaluation per
/// step; the first two steps are ++1 and ++(2M).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpmSolverPP3M {
    lower_order_final: Option<usize>,
    d2: SecondDifference,
}

/// DPM-Solver(3M): the multistep DPM-Solver on the noise prediction
/// (dpm_solver's `algorithm_type="dpmsolver"`, `method="multistep"`,
/// `order=3`), order 3, one model evaluation per step; the first two steps
/// are DDIM and DPM-Solver(2M).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpmSolver3M {
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

/// `r` and `(c1, c2, c3)` of a step from `t` to `t_next` in `form` (module
/// docs), with `h`.
fn coefficients<S: NoiseSchedule + ?Sized>(
    form: Form,
    sched: &S,
    t: f64,
    t_next: f64,
) -> (f64, [f64; 3], f64) {
    let (ra, rs, h) = ratios(sched, t, t_next);
    match form {
        Form::Data => {
            let a_t = sched.alpha(t_next);
            let (phi1, phi2, phi3) = data_phis(h);
            (rs, [-a_t * phi1, a_t * phi2, -a_t * phi3], h)
        }
        Form::Noise => {
            let s_t = sched.sigma(t_next);
            let (psi1, psi2, psi3) = noise_phis(h);
            (ra, [-s_t * psi1, -s_t * psi2, -s_t * psi3], h)
        }
    }
}

/// `ψ1 = e^h − 1`, `ψ2 = ψ1/h − 1`, `ψ3 = ψ2/h − ½` of the noise-form
/// steps: `h φ_1(h)`, `h φ_2(h)`, `h φ_3(h)` in the exponential
/// integrators' φ-functions (accurate near `h = 0`).
fn noise_phis(h: f64) -> (f64, f64, f64) {
    let mut phi = [0.0; 4];
    crate::expint::phi::phi_all(h, &mut phi);
    (h.exp_m1(), h * phi[2], h * phi[3])
}

/// The weights `(k0, k1, k2)` of `(m0, m1, m2)` in a step of `order`
/// (≤ the history + 1) with `D2` scaled by `d2_scale`: the step is
/// `x_t = r x + k0 m0 + k1 m1 + k2 m2`. For order 3, with
/// `A = c2 (1 + q1) + c3 q2` and `B = −c2 q1 − c3 q2` the weights of `D1_0`
/// and `D1_1` (`q1 = r0/(r0 + r1)`, `q2 = d2_scale/(r0 + r1)`):
/// `k0 = c1 + A/r0`, `k1 = −A/r0 + B/r1`, `k2 = −B/r1`.
fn weights(order: usize, d2_scale: f64, c: [f64; 3], r: [f64; 2]) -> [f64; 3] {
    let [c1, c2, c3] = c;
    let [r0, r1] = r;
    match order {
        1 => [c1, 0.0, 0.0],
        2 => {
            let w = 1.0 / (2.0 * r0);
            [c1 * (1.0 + w), -c1 * w, 0.0]
        }
        _ => {
            let (q1, q2) = (r0 / (r0 + r1), d2_scale / (r0 + r1));
            let a = c2 * (1.0 + q1) + c3 * q2;
            let b = -c2 * q1 - c3 * q2;
            [c1 + a / r0, -a / r0 + b / r1, -b / r1]
        }
    }
}

/// The step's order, `r`, and the weights of `m0, m1, m2` (module docs):
/// the history's λ gives `r0, r1`.
fn plan<S: NoiseSchedule + ?Sized>(
    form: Form,
    order: usize,
    d2_scale: f64,
    sched: &S,
    (t, t_next): (f64, f64),
    history: &History<'_>,
) -> (usize, f64, [f64; 3]) {
    let (r, c, h) = coefficients(form, sched, t, t_next);
    let order = order.min(history.len() + 1);
    let lam_s = sched.lambda(t);
    let mut rr = [1.0, 1.0];
    if order >= 2 {
        rr[0] = (lam_s - history.get(0).1) / h;
    }
    if order >= 3 {
        rr[1] = (history.get(0).1 - history.get(1).1) / h;
    }
    (order, r, weights(order, d2_scale, c, rr))
}

/// One multistep step of `order` in `form`, `d2_scale` the factor of `D2`.
fn multistep<M: Model, S: NoiseSchedule>(
    form: Form,
    order: usize,
    d2_scale: f64,
    st: Advance<'_, M, S>,
) {
    let sched = &st.flow.schedule;
    let (order, r, [k0, k1, k2]) =
        plan(form, order, d2_scale, sched, (st.t, st.t_next), &st.history);
    let (x, m0, x_new) = (st.x, st.m0, st.x_new);
    match order {
        1 => {
            for i in 0..x.len() {
                x_new[i] = r * x[i] + k0 * m0[i];
            }
        }
        2 => {
            let m1 = st.history.get(0).0;
            for i in 0..x.len() {
                x_new[i] = r * x[i] + k0 * m0[i] + k1 * m1[i];
            }
        }
        _ => {
            let (m1, m2) = (st.history.get(0).0, st.history.get(1).0);
            for i in 0..x.len() {
                x_new[i] = r * x[i] + k0 * m0[i] + k1 * m1[i] + k2 * m2[i];
            }
        }
    }
}

/// The VJP of [`multistep`]: the step is linear in `(x, m0, m1, m2)`,
/// `x_t = r x + k0 m0 + k1 m1 + k2 m2`, so the cotangent `x̄_t` goes to
/// `r x̄_t`, `k0 x̄_t`, `k1 x̄_t`, `k2 x̄_t`.
fn multistep_vjp(form: Form, order: usize, d2_scale: f64, st: AdvanceVjp<'_>) -> usize {
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
    let (_, r, [k0, k1, k2]) = plan(
        form,
        order,
        d2_scale,
        flow.schedule(),
        (t, t_next),
        &history,
    );
    let n = x_bar.len();
    add_scaled(x_bar, r, x_bar_new);
    add_scaled(m0_bar, k0, x_bar_new);
    if k1 != 0.0 {
        add_scaled(&mut history_bar[..n], k1, x_bar_new);
    }
    if k2 != 0.0 {
        add_scaled(&mut history_bar[n..2 * n], k2, x_bar_new);
    }
    0
}

/// `lower_order_final`, `Sampler` and `SamplerVjp` of a multistep type of
/// order `$k` (history `$k − 1`); `$d2` is the factor of `D2` and `$order`
/// the global order, both read from `$s` (the sampler).
macro_rules! multistep_sampler {
    ($ty:ident, $form:expr, $name:literal, $k:literal, |$s:ident| ($d2:expr, $order:expr)) => {
        impl $ty {
            #[doc = concat!(
                        "Lowers the order of the last steps of a solve of `steps` steps as ",
                        "dpm_solver's `lower_order_final` does: when `steps < 10`, step `i` ",
                        "(from 0) after the warm-up has order `min(", stringify!($k),
                        ", steps − i)` (the last one first order), which steadies very short ",
                        "runs. `steps` must be the grid's step count."
                    )]
            pub fn lower_order_final(mut self, steps: usize) -> Self {
                self.lower_order_final = Some(steps);
                self
            }
        }

        impl SamplerVjp for $ty {
            fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
                let $s = self;
                let order = final_order($k, $s.lower_order_final, st.index);
                multistep_vjp($form, order, $d2, st)
            }
        }

        impl Sampler for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn order(&self) -> f64 {
                let $s = self;
                $order
            }
            fn prediction(&self) -> Parametrisation {
                $form.parametrisation()
            }
            fn history(&self) -> usize {
                $k - 1
            }
            fn check_settings(&self) -> Result<(), SolveError> {
                check_steps(stringify!($ty), self.lower_order_final)
            }
            fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
                let $s = self;
                let order = final_order($k, $s.lower_order_final, st.index);
                multistep($form, order, $d2, st);
            }
        }
    };
}

multistep_sampler!(DpmSolverPP2M, Form::Data, "DPM-Solver++(2M)", 2, |_s| (
    1.0, 2.0
));
multistep_sampler!(DpmSolver2M, Form::Noise, "DPM-Solver(2M)", 2, |_s| (
    1.0, 2.0
));
multistep_sampler!(DpmSolverPP3M, Form::Data, "DPM-Solver++(3M)", 3, |s| (
    s.d2.scale(),
    s.d2.order()
));
multistep_sampler!(DpmSolver3M, Form::Noise, "DPM-Solver(3M)", 3, |s| (
    s.d2.scale(),
    s.d2.order()
));

impl DpmSolverPP3M {
    /// Chooses how `D2` is formed (see the module docs).
    pub fn second_difference(self, d2: SecondDifference) -> Self {
        Self { d2, ..self }
    }
}

impl DpmSolver3M {
    /// Chooses how `D2` is formed (see the module docs).
    pub fn second_difference(self, d2: SecondDifference) -> Self {
        Self { d2, ..self }
    }
}
