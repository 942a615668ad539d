//! UniPC: the unified predictor UniP-p and corrector UniC (Zhao, Bai, Rao,
//! Zhou, Lu, "UniPC: a unified predictor-corrector framework for fast
//! sampling of diffusion models", NeurIPS 2023, Alg. 1–3; wl-zhao/UniPC,
//! diffusers `UniPCMultistepScheduler` `multistep_uni_p_bh_update`,
//! `multistep_uni_c_bh_update`).
//!
//! In the data form (`ĥ = −h`, `h = λ_t − λ_s`; the noise form has `ĥ = h`
//! and `σ` for `α`) with `m_0` the prediction at `s` and `m_i` the earlier
//! ones at `r_i = (λ_{s_i} − λ_s)/h` (negative), `D_i = (m_i − m_0)/r_i`:
//!
//! - UniP-p: `x_t = (σ_t/σ_s) x − α_t (e^{ĥ} − 1) m_0 − α_t B(h) Σ_{i<p} a_i D_i`;
//! - UniC after it, once the model has been evaluated at the predicted
//!   `x̃_t` (the next step's evaluation, so UniC costs no NFE):
//!   `x^c_t = (σ_t/σ_s) x^c_s − α_t (e^{ĥ} − 1) m_0 − α_t B(h) (Σ_{i<p} c_i D_i + c_p (m_t − m_0))`,
//!   and the next UniP step starts from `x^c_t` with `m_t` (not
//!   re-evaluated there).
//!
//! The weights solve `R a = b` with `R_{ki} = r_i^k` (`k = 0, 1, …`, `r_p = 1`
//! for the corrector's last column) and `b_k = ĥ φ_{k+2}(ĥ) (k+1)!/B(h)`
//! (`φ` of [`crate::expint::phi`]), the order conditions of the expansion
//! of the exact step. UniP-2 takes `a = ½` and UniC-1 `c = ½`, as the
//! reference code does. `B(h) = ĥ` (variant [`BhVariant::B1`]) or
//! `B(h) = e^{ĥ} − 1` (variant [`BhVariant::B2`], the diffusers default).
//!
//! Orders: UniP-p is order `p` (its local error is `O(h^{p+1})`); UniC-p
//! uses one more point, `m_t`, and raises it to `p + 1`. The state the loop
//! carries is the predicted `x̃`, as the reference code returns it; the
//! corrected `x^c` is this sampler's carried state. The last step is not
//! corrected (there is no further evaluation), which leaves a single
//! `O(h^{p+1})` local error: still global order `p + 1`. Warm-up: step `i`
//! uses UniP of order `min(p, i + 1)` and UniC of the order of the step
//! before, so the first step is corrected with UniC-1 (local `O(h³)`), which
//! bounds the asymptotic order of UniPC-3 by 3 in principle; at the noise
//! end the prediction hardly changes and that error is small (measured
//! order 4.05 on the single Gaussian, `tests/suite/diffusion_multistep.rs`).
//! At order 3 the two variants give the same steps: `B(h)` cancels in
//! `B(h) R⁻¹ b`; they differ through the fixed `½` of UniP-2 and UniC-1.

use super::lagrange::{MAX_NODES, combine, outputs};
use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Form, History, Sampler};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp, add_scaled};
use super::schedule::NoiseSchedule;
use crate::error::SolveError;

/// Which `B(h)` UniPC's weights are scaled by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BhVariant {
    /// `B(h) = ĥ` (the paper's `B1`).
    B1,
    /// `B(h) = e^{ĥ} − 1` (`B2`; diffusers' default).
    #[default]
    B2,
}

/// UniPC of order `p ∈ {2, 3}`: UniP-p with the UniC corrector (order
/// `p + 1`), one model evaluation per step; data prediction by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UniPc {
    order: usize,
    variant: BhVariant,
    form: Form,
    corrector: bool,
}

impl UniPc {
    /// UniPC with the predictor of order `order` (2 or 3; checked when
    /// solving), the corrector, `B2`, data prediction.
    pub fn new(order: usize) -> Self {
        UniPc {
            order,
            variant: BhVariant::B2,
            form: Form::Data,
            corrector: true,
        }
    }

    /// Chooses `B(h)`.
    pub fn variant(mut self, variant: BhVariant) -> Self {
        self.variant = variant;
        self
    }

    /// The noise-prediction form (`ĥ = h`).
    pub fn noise_prediction(mut self) -> Self {
        self.form = Form::Noise;
        self
    }

    /// The predictor alone (UniP-p, order `p`), without the corrector.
    pub fn without_corrector(mut self) -> Self {
        self.corrector = false;
        self
    }
}

/// Solves the `k × k` system `a y = b` (`k ≤ 3`) by Gaussian elimination
/// with partial pivoting, in place (`b` becomes `y`).
fn solve_small(a: &mut [[f64; 3]; 3], b: &mut [f64; 3], k: usize) {
    for col in 0..k {
        let piv = (col..k)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, piv);
        b.swap(col, piv);
        for row in col + 1..k {
            let f = a[row][col] / a[col][col];
            for c in col..k {
                a[row][c] -= f * a[col][c];
            }
            b[row] -= f * b[col];
        }
    }
    for row in (0..k).rev() {
        let mut s = b[row];
        for c in row + 1..k {
            s -= a[row][c] * b[c];
        }
        b[row] = s / a[row][row];
    }
}

/// The weights of a UniP (`corrector = false`, order `q`, `q − 1` weights)
/// or UniC (order `q`, `q` weights, the last for `m_t`) step, with `ĥ` and
/// the ratios `r_1, …, r_{q−1}`; returns `B(h)`.
fn weights(
    variant: BhVariant,
    hh: f64,
    rks: &[f64],
    corrector: bool,
    q: usize,
    out: &mut [f64; 3],
) -> f64 {
    let mut phi = [0.0; 6];
    crate::expint::phi::phi_all(hh, &mut phi);
    let bh = match variant {
        BhVariant::B1 => hh,
        BhVariant::B2 => hh.exp_m1(),
    };
    // b_k = ĥ φ_{k+2}(ĥ) (k + 1)!/B(h), k = 0, 1, …
    let mut b = [0.0; 3];
    let mut fact = 1.0;
    for (k, bk) in b.iter_mut().enumerate() {
        fact *= (k + 1) as f64;
        *bk = hh * phi[k + 2] * fact / bh;
    }
    let k = if corrector { q } else { q - 1 };
    if (corrector && q == 1) || (!corrector && q == 2) {
        out[0] = 0.5;
        return bh;
    }
    let mut r = [[0.0; 3]; 3];
    for (row, rrow) in r.iter_mut().enumerate().take(k) {
        for (col, e) in rrow.iter_mut().enumerate().take(k) {
            let node = if col < rks.len() { rks[col] } else { 1.0 };
            *e = node.powi(row as i32);
        }
    }
    solve_small(&mut r, &mut b, k);
    out[..k].copy_from_slice(&b[..k]);
    bh
}

impl UniPc {
    /// `(ratio, c, coef)` of `x_t = ratio x + c m_0 + coef B(h) res` from `s`
    /// to `t`, and `ĥ`.
    fn base<S: NoiseSchedule + ?Sized>(
        &self,
        sched: &S,
        s: f64,
        t: f64,
        h: f64,
    ) -> (f64, f64, f64, f64) {
        let (ratio, c) = self.form.first_order(sched, (s, t), h);
        match self.form {
            Form::Data => (ratio, c, -sched.alpha(t), -h),
            Form::Noise => (ratio, c, -sched.sigma(t), h),
        }
    }
}

impl Sampler for UniPc {
    fn name(&self) -> &'static str {
        match (self.corrector, self.variant) {
            (true, BhVariant::B1) => "UniPC (B1)",
            (true, BhVariant::B2) => "UniPC (B2)",
            (false, BhVariant::B1) => "UniP (B1)",
            (false, BhVariant::B2) => "UniP (B2)",
        }
    }
    fn order(&self) -> f64 {
        (self.order + usize::from(self.corrector)) as f64
    }
    fn prediction(&self) -> Parametrisation {
        self.form.parametrisation()
    }
    fn history(&self) -> usize {
        self.order
    }
    fn carried(&self) -> usize {
        1
    }
    fn check_settings(&self) -> Result<(), SolveError> {
        if matches!(self.order, 2 | 3) {
            Ok(())
        } else {
            Err(SolveError::InvalidInput {
                what: "UniPc order".into(),
                reason: format!("{} is not 2 or 3", self.order),
            })
        }
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        let Advance {
            flow,
            t,
            t_next,
            x,
            m0,
            history,
            x_new,
            index,
            carried,
            carried_new,
            ..
        } = st;
        let k = self.step(&flow.schedule, (t, t_next), history, index);
        let outs = outputs(m0, history, self.order + 1);
        // UniC: correct the state at t (predicted by the last step) with m0
        if k.corrected {
            combine(carried_new, k.corrector_state, carried, &k.corrector, &outs);
        } else {
            carried_new.copy_from_slice(x);
        }
        // UniP from the corrected state
        combine(x_new, k.predictor_state, carried_new, &k.predictor, &outs);
    }
}

/// One UniPC step as the two linear maps it is, on the predictions
/// `m_0` (at the step's start) and `m_j` (`j ≥ 1`, the `(j − 1)`-th most
/// recent past one): the corrector
/// `x^c_s = corrector_state x^c_prev + Σ_j corrector_j m_j` (when
/// `corrected`; otherwise `x^c_s = x_s`), then the predictor
/// `x_t = predictor_state x^c_s + Σ_j predictor_j m_j`.
#[derive(Debug, Clone, Copy)]
struct LinearStep {
    corrected: bool,
    corrector_state: f64,
    corrector: [f64; MAX_NODES],
    predictor_state: f64,
    predictor: [f64; MAX_NODES],
}

impl UniPc {
    /// The step from `t` to `t_next`, the `index`-th since the start, with
    /// the past predictions `history` (their `λ`s are read).
    fn step<S: NoiseSchedule + ?Sized>(
        &self,
        sched: &S,
        (t, t_next): (f64, f64),
        history: History<'_>,
        index: usize,
    ) -> LinearStep {
        let lam = sched.lambda(t);
        let mut out = LinearStep {
            corrected: false,
            corrector_state: 0.0,
            corrector: [0.0; MAX_NODES],
            predictor_state: 0.0,
            predictor: [0.0; MAX_NODES],
        };
        // UniC with m0 on the step from the previous point t_p (m_1):
        // x^c = ratio x^c_prev + c m_1 + cb (w_last (m0 − m_1) + Σ w_j (m_{j+2} − m_1)/r_j)
        let qc = self.order.min(index);
        if self.corrector && qc > 0 {
            let lam_p = history.get(0).1;
            let tp = sched.t_of_lambda(lam_p);
            let h = lam - lam_p;
            let mut rks = [0.0; 2];
            for (i, r) in rks.iter_mut().enumerate().take(qc - 1) {
                *r = (history.get(i + 1).1 - lam_p) / h;
            }
            let (ratio, c, coef, hh) = self.base(sched, tp, t, h);
            let mut w = [0.0; 3];
            let bh = weights(self.variant, hh, &rks[..qc - 1], true, qc, &mut w);
            let cb = coef * bh;
            let k = &mut out.corrector;
            k[0] = cb * w[qc - 1];
            k[1] = c - cb * w[qc - 1];
            for j in 0..qc - 1 {
                k[j + 2] += cb * w[j] / rks[j];
                k[1] -= cb * w[j] / rks[j];
            }
            out.corrected = true;
            out.corrector_state = ratio;
        }
        // UniP: x_t = ratio x^c + c m0 + cb Σ w_j (m_{j+1} − m0)/r_j
        let q = self.order.min(index + 1);
        let h = sched.lambda(t_next) - lam;
        let mut rks = [0.0; 2];
        for (i, r) in rks.iter_mut().enumerate().take(q - 1) {
            *r = (history.get(i).1 - lam) / h;
        }
        let (ratio, c, coef, hh) = self.base(sched, t, t_next, h);
        let mut w = [0.0; 3];
        let bh = if q > 1 {
            weights(self.variant, hh, &rks[..q - 1], false, q, &mut w)
        } else {
            0.0
        };
        let cb = coef * bh;
        let k = &mut out.predictor;
        k[0] = c;
        for j in 0..q - 1 {
            k[j + 1] += cb * w[j] / rks[j];
            k[0] -= cb * w[j] / rks[j];
        }
        out.predictor_state = ratio;
        out
    }
}

/// Both maps are linear: `x̄^c_s = x̄^c_s(carried) + predictor_state x̄_t`
/// and `m̄_j += predictor_j x̄_t`; the corrector then sends
/// `corrector_state x̄^c_s` to the carried corrected state of the step
/// before and `corrector_j x̄^c_s` to the predictions — among them `m_0`,
/// the prediction at this step's start, evaluated at the predicted state
/// (the loop's `x`), whose VJP the shared step VJP takes — or, uncorrected,
/// `x̄^c_s` to `x̄`. No model VJP of its own.
impl SamplerVjp for UniPc {
    fn vjp_scratch(&self) -> usize {
        1
    }
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        let k = self.step(st.schedule(), (st.t, st.t_next), st.history, st.index);
        let n = st.x.len();
        let points = self.order + 1;
        let mut put = |coefs: &[f64; MAX_NODES], v: &[f64]| {
            add_scaled(st.m0_bar, coefs[0], v);
            for j in 1..points {
                add_scaled(&mut st.history_bar[(j - 1) * n..j * n], coefs[j], v);
            }
        };
        put(&k.predictor, st.x_bar_new);
        // x̄^c_s, in the carried cotangent's place (it is read once more)
        let cn_bar = &mut *st.scratch;
        cn_bar.copy_from_slice(st.carried_bar_new);
        add_scaled(cn_bar, k.predictor_state, st.x_bar_new);
        if k.corrected {
            put(&k.corrector, cn_bar);
            add_scaled(st.carried_bar, k.corrector_state, cn_bar);
        } else {
            add_scaled(st.x_bar, 1.0, cn_bar);
        }
        0
    }
}
