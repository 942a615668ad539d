//! Step VJPs of the diffusion samplers: the one [`StepVjp`] implementation
//! every sampler with [`SamplerVjp`] shares, so that the discrete adjoint
//! (`sdeflow-adjoint`'s `grad`) differentiates a sample with respect to the
//! initial noise `x_T` and the model's parameters.
//!
//! A sampler's step maps `(x, history) → (x_new, history_new)` with
//! `history_new = (m0(x), history[..k−1])` ([`super::Sampler::history`]):
//! the past predictions are carried state, so their cotangent flows back
//! through the carried cotangent ([`crate::step_vjp::StepBars::carried`]).
//! The step's own map from `(x, m0, history)` to `x_new` is the sampler's
//! [`SamplerVjp::advance_vjp`]; this file adds the carried cotangent's
//! share, then the VJP of the prediction `m0` at `(t, x)`. The
//! `λ`s, the history length and the step index the step used are read from
//! the carried state (`CarriedLayout`), as are the past predictions; they
//! are constants (not differentiated), as step sizes are. Vectors a
//! sampler carries besides its predictions (UniPC's corrected state) sit
//! after them in the carried state, and their cotangent is handed to the
//! sampler ([`AdvanceVjp::carried_bar_new`]) and taken back
//! ([`AdvanceVjp::carried_bar`]). On the reverse SDE the step's noise is
//! the forward solve's, replayed, normalised as the forward step saw it
//! ([`AdvanceVjp::noise`]); it is a constant of the VJP.
//!
//! Needs a model with a VJP ([`super::ModelVjp`]): the step VJP reads the
//! flow through [`crate::field::DriftVjp::probability_flow`].

use super::model::Parametrisation;
use super::model::{DiffusionOde, Model};
use super::model_vjp::FlowVjp;
use super::reverse_sde::DiffusionSde;
use super::sampler::{
    CarriedLayout, History, Sampler, noise_len, normalise_noise, reads_start_prediction,
};
use super::schedule::NoiseSchedule;
use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{DiffusionVjp, DriftVjp};
use crate::problem::Problem;
use crate::solution::Stats;
use crate::solver::StepAt;
use crate::step_vjp::{StepBars, StepVjp, VjpArgs, refuse_err_cotangent, refuse_interp_cotangents};

/// One step's VJP, as [`SamplerVjp::advance_vjp`] sees it: the step as the
/// forward solve took it (recomputed prediction `m0` included) and the
/// cotangent of its result, mapped to those of its inputs.
#[derive(Debug)]
pub struct AdvanceVjp<'a> {
    /// The probability flow (schedule and model).
    pub flow: &'a dyn FlowVjp,
    /// The problem's parameters.
    pub p: &'a [f64],
    /// Model evaluations are counted here.
    pub stats: &'a mut Stats,
    /// Where the step started.
    pub t: f64,
    /// Where it ended.
    pub t_next: f64,
    /// The state at `t`.
    pub x: &'a [f64],
    /// The prediction at `(t, x)` in [`Sampler::prediction`].
    pub m0: &'a [f64],
    /// The past predictions the step read.
    pub history: History<'a>,
    /// Steps taken before this one since the (re)start.
    pub index: usize,
    /// `∂L/∂x_new`.
    pub x_bar_new: &'a [f64],
    /// `∂L/∂x` through the step's direct dependence on `x` (not through
    /// `m0`) is added here.
    pub x_bar: &'a mut [f64],
    /// `∂L/∂m0` is added here.
    pub m0_bar: &'a mut [f64],
    /// `∂L/∂(past prediction k)` is added at `k · n` (most recent first).
    pub history_bar: &'a mut [f64],
    /// `∂L/∂p` (through model evaluations inside the step) is added here.
    pub p_bar: &'a mut [f64],
    /// The vectors the sampler carried into the step
    /// ([`Sampler::carried`] `· n` entries, e.g. UniPC's corrected state;
    /// empty for most samplers).
    pub carried: &'a [f64],
    /// `∂L/∂(carried vectors the step wrote)`, laid out as `carried`.
    pub carried_bar_new: &'a [f64],
    /// `∂L/∂carried` is added here.
    pub carried_bar: &'a mut [f64],
    /// The step's normalised noise, as [`super::Advance::noise`] (empty
    /// on the probability-flow ODE).
    pub noise: &'a [f64],
    /// `SamplerVjp::vjp_scratch() · n` entries of workspace.
    pub scratch: &'a mut [f64],
}

impl AdvanceVjp<'_> {
    /// The schedule.
    pub fn schedule(&self) -> &dyn NoiseSchedule {
        self.flow.schedule()
    }
}

/// A sampler whose steps can be reversed: every type implementing it has a
/// [`StepVjp`] for the probability-flow family, so `grad` differentiates
/// through it. The cotangents of vectors a sampler carries besides its
/// past predictions ([`Sampler::carried`] > 0) flow through
/// [`AdvanceVjp::carried_bar_new`] and [`AdvanceVjp::carried_bar`].
pub trait SamplerVjp: Sampler {
    /// How many state-sized vectors of workspace [`SamplerVjp::advance_vjp`]
    /// needs.
    fn vjp_scratch(&self) -> usize {
        0
    }

    /// The VJP of one step's map from `(x, m0, history)` to `x_new`
    /// ([`AdvanceVjp`]); returns the number of model VJPs it took.
    fn advance_vjp(&self, step: AdvanceVjp<'_>) -> usize;
}

/// Workspace of a sampler's step VJP.
#[derive(Debug, Clone)]
pub struct SamplerVjpWork {
    layout: CarriedLayout,
    m0: Vec<f64>,
    x_bar_new: Vec<f64>,
    m0_bar: Vec<f64>,
    history_bar: Vec<f64>,
    carried_bar_new: Vec<f64>,
    carried_bar: Vec<f64>,
    scaled: Vec<f64>,
    scratch: Vec<f64>,
    z: Vec<f64>,
}

/// Implements [`StepVjp`] for every [`SamplerVjp`] on the problem type
/// `$family` (the probability-flow ODE and the reverse SDE: the noise of a
/// reverse-SDE step is additive, a constant of its VJP).
macro_rules! sampler_step_vjp {
    ($family:ident) => {
        impl<X: SamplerVjp, M: Model, S: NoiseSchedule, D: Driver> StepVjp<$family<M, S, D>> for X {
            type VjpWork = SamplerVjpWork;

            fn vjp_workspace<F: DriftVjp, G: DiffusionVjp, Dx: Driver>(
                &self,
                problem: &Problem<F, G, Dx>,
            ) -> SamplerVjpWork {
                SamplerVjpWork::new(self, problem.dim())
            }

            fn step_vjp<F: DriftVjp, G: DiffusionVjp>(
                &self,
                w: &mut SamplerVjpWork,
                args: VjpArgs<'_, F, G>,
            ) -> Result<usize, SolveError> {
                sampler_vjp(self, w, args)
            }
        }
    };
}

sampler_step_vjp!(DiffusionOde);
sampler_step_vjp!(DiffusionSde);

impl SamplerVjpWork {
    pub(crate) fn new<X: SamplerVjp>(sampler: &X, n: usize) -> Self {
        let layout = CarriedLayout::of(sampler, n);
        SamplerVjpWork {
            layout,
            m0: vec![0.0; n],
            x_bar_new: vec![0.0; n],
            m0_bar: vec![0.0; n],
            history_bar: vec![0.0; sampler.history() * n],
            carried_bar_new: vec![0.0; sampler.carried() * n],
            carried_bar: vec![0.0; sampler.carried() * n],
            scaled: vec![0.0; n],
            scratch: vec![0.0; sampler.vjp_scratch() * n],
            z: vec![0.0; noise_len(X::INCREMENT, n)],
        }
    }
}

/// The step VJP of a sampler: the prediction at the step's start
/// recomputed, the sampler's own map reversed, then the carried history's
/// cotangent and the prediction's VJP.
pub(crate) fn sampler_vjp<X: SamplerVjp, F: DriftVjp, G: DiffusionVjp>(
    sampler: &X,
    w: &mut SamplerVjpWork,
    args: VjpArgs<'_, F, G>,
) -> Result<usize, SolveError> {
    let name = Sampler::name(sampler);
    refuse_err_cotangent(name, args.bars.err)?;
    refuse_interp_cotangents(name, args.bars.interp)?;
    let Some(flow) = args.fields.drift.probability_flow() else {
        return Err(SolveError::Unsupported {
            solver: name,
            what: "gradients through a drift that is not the probability flow of a model \
                   with a VJP"
                .into(),
            alternatives: "build the problem with ProbabilityFlow of a ModelVjp model \
                           (Generic(...) or ModelWithVjp)"
                .into(),
        });
    };
    let p = args.fields.p;
    let StepAt { t, h, y } = args.at;
    let (history, index, carried) = w.layout.read(args.carried);
    normalise_noise(h, args.noise, &mut w.z);
    let want = sampler.prediction();
    let uses_m0 = reads_start_prediction(sampler, flow.schedule(), t);
    if uses_m0 {
        args.stats.drift_evals += 1;
        flow.predict_in(want, t, y, p, &mut w.m0);
    } else {
        w.m0.iter_mut().for_each(|v| *v = 0.0);
    }
    let StepBars {
        y: y_bar,
        carried: c_bar,
        p: p_bar,
        ..
    } = args.bars;
    w.x_bar_new.copy_from_slice(y_bar);
    y_bar.iter_mut().for_each(|v| *v = 0.0);
    w.m0_bar.iter_mut().for_each(|v| *v = 0.0);
    w.history_bar.iter_mut().for_each(|v| *v = 0.0);
    let (n, k) = (w.m0.len(), w.layout.history);
    let carried_len = w.carried_bar.len();
    w.carried_bar_new
        .copy_from_slice(&c_bar[k * n..k * n + carried_len]);
    w.carried_bar.iter_mut().for_each(|v| *v = 0.0);
    let mut vjps = sampler.advance_vjp(AdvanceVjp {
        flow,
        p,
        stats: args.stats,
        t,
        t_next: t + h,
        x: y,
        m0: &w.m0,
        history,
        index,
        x_bar_new: &w.x_bar_new,
        x_bar: y_bar,
        m0_bar: &mut w.m0_bar,
        history_bar: &mut w.history_bar,
        p_bar,
        scratch: &mut w.scratch,
        carried,
        carried_bar_new: &w.carried_bar_new,
        carried_bar: &mut w.carried_bar,
        noise: &w.z,
    });
    // history_new = (m0, history[..k−1])
    if k > 0 {
        for (mb, &cb) in w.m0_bar.iter_mut().zip(&c_bar[..n]) {
            *mb += cb;
        }
        for j in 1..k {
            let (dst, src) = ((j - 1) * n..j * n, j * n..(j + 1) * n);
            for (hb, &cb) in w.history_bar[dst].iter_mut().zip(&c_bar[src]) {
                *hb += cb;
            }
        }
    }
    if uses_m0 {
        flow.predict_vjp(want, t, y, p, &w.m0_bar, &mut w.scaled, y_bar, p_bar);
        vjps += 1;
    }
    c_bar.iter_mut().for_each(|v| *v = 0.0);
    c_bar[..k * n].copy_from_slice(&w.history_bar);
    c_bar[k * n..k * n + carried_len].copy_from_slice(&w.carried_bar);
    Ok(vjps)
}

/// The VJP of a step linear in its inputs,
/// `x_new = ratio x + Σ_j c_j m_j` with `m_0` the prediction at the step's
/// start and `m_j` (`j ≥ 1`) the `(j − 1)`-th most recent past one: adds
/// `ratio x̄_new` to `x̄` and `c_j x̄_new` to the predictions' cotangents.
/// Returns 0 (no model VJP).
pub(crate) fn linear_vjp(st: AdvanceVjp<'_>, ratio: f64, c: &[f64]) -> usize {
    let n = st.x.len();
    add_scaled(st.x_bar, ratio, st.x_bar_new);
    add_scaled(st.m0_bar, c[0], st.x_bar_new);
    for (j, &cj) in c.iter().enumerate().skip(1) {
        add_scaled(&mut st.history_bar[(j - 1) * n..j * n], cj, st.x_bar_new);
    }
    0
}

/// Recomputes one model evaluation inside a step's VJP: the prediction
/// in `want` at `(s, u)` into `out`, counted in `stats`.
pub(crate) fn predict_counted(
    flow: &dyn FlowVjp,
    stats: &mut Stats,
    want: Parametrisation,
    (s, u): (f64, &[f64]),
    p: &[f64],
    out: &mut [f64],
) {
    stats.drift_evals += 1;
    flow.predict_in(want, s, u, p, out);
}

/// `out += a v`, elementwise.
#[inline(always)]
pub(crate) fn add_scaled(out: &mut [f64], a: f64, v: &[f64]) {
    for (o, &x) in out.iter_mut().zip(v) {
        *o += a * x;
    }
}
