//! Vector–Jacobian products of diffusion models: what gradients through the
//! samplers need (with respect to the initial noise `x_T` and the model's
//! parameters `p`).
//!
//! A model with a VJP ([`ModelVjp`]) makes its [`ProbabilityFlow`] a
//! [`DriftVjp`], so every solver with a step VJP differentiates the flow,
//! and exposes the flow to the samplers' step VJPs as a [`FlowVjp`]
//! ([`DriftVjp::probability_flow`]). Every prediction is affine in the
//! model's output, `m = k_x x + k_o out(x)` (`model.rs`, the conversions of
//! `../shared/reference/diffusion.md` §2), so the VJP of a prediction is
//! `k_x m̄` plus the model's VJP at `k_o m̄`.

use std::cell::RefCell;

use super::model::{Model, Parametrisation, ProbabilityFlow};
use super::schedule::NoiseSchedule;
use crate::dual::{Generic, GenericField};
use crate::field::{Drift, DriftVjp};

/// A diffusion model with a vector–Jacobian product: given a cotangent `v`
/// on its output at `(t, x, p)`, adds `vᵀ ∂out/∂x` to `out_x` and
/// `vᵀ ∂out/∂p` to `out_p`. Implemented by models written generically over
/// the scalar ([`Generic`], exact by dual numbers) and by closures with a
/// hand-written VJP ([`ModelWithVjp`]).
pub trait ModelVjp: Model {
    /// Adds `vᵀ ∂out/∂x` to `out_x` and `vᵀ ∂out/∂p` to `out_p`.
    fn model_vjp(
        &self,
        t: f64,
        x: &[f64],
        p: &[f64],
        v: &[f64],
        out_x: &mut [f64],
        out_p: &mut [f64],
    );
}

/// A model closure `|t, x, p, out|` paired with its VJP closure
/// `|t, x, p, v, out_x, out_p|` (which adds `vᵀ∂out/∂x` to `out_x` and
/// `vᵀ∂out/∂p` to `out_p`).
///
/// ```
/// use sdeflow_solvers::diffusion::{ModelVjp, ModelWithVjp, Model};
/// // ε̂ = p0 x, elementwise
/// let m = ModelWithVjp {
///     model: |_t: f64, x: &[f64], p: &[f64], out: &mut [f64]| {
///         for (o, &xv) in out.iter_mut().zip(x) { *o = p[0] * xv; }
///     },
///     vjp: |_t: f64, x: &[f64], p: &[f64], v: &[f64], ox: &mut [f64], op: &mut [f64]| {
///         for i in 0..x.len() { ox[i] += p[0] * v[i]; op[0] += x[i] * v[i]; }
///     },
/// };
/// let (mut ox, mut op) = ([0.0; 2], [0.0]);
/// m.model_vjp(0.5, &[1.0, 2.0], &[3.0], &[1.0, 1.0], &mut ox, &mut op);
/// assert_eq!((ox, op), ([3.0, 3.0], [3.0]));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ModelWithVjp<M, V> {
    /// The model.
    pub model: M,
    /// Its VJP.
    pub vjp: V,
}

impl<M: Model, V> Model for ModelWithVjp<M, V> {
    #[inline(always)]
    fn predict(&self, t: f64, x: &[f64], p: &[f64], out: &mut [f64]) {
        self.model.predict(t, x, p, out)
    }
}

impl<M: Model, V> ModelVjp for ModelWithVjp<M, V>
where
    V: Fn(f64, &[f64], &[f64], &[f64], &mut [f64], &mut [f64]),
{
    fn model_vjp(&self, t: f64, x: &[f64], p: &[f64], v: &[f64], ox: &mut [f64], op: &mut [f64]) {
        (self.vjp)(t, x, p, v, ox, op)
    }
}

/// A model written generically over the scalar is a model, with an exact
/// VJP by forward-mode dual numbers.
impl<F: GenericField> Model for Generic<F> {
    #[inline]
    fn predict(&self, t: f64, x: &[f64], p: &[f64], out: &mut [f64]) {
        self.drift(t, x, p, out)
    }
}

impl<F: GenericField> ModelVjp for Generic<F> {
    fn model_vjp(&self, t: f64, x: &[f64], p: &[f64], v: &[f64], ox: &mut [f64], op: &mut [f64]) {
        self.drift_vjp(t, x, p, v, ox, op)
    }
}

/// A probability flow with a model VJP, as the samplers' step VJPs see it
/// through [`DriftVjp::probability_flow`]: its schedule, and its model in
/// any prediction with that prediction's VJP.
pub trait FlowVjp {
    /// The noise schedule.
    fn schedule(&self) -> &dyn NoiseSchedule;

    /// Writes the model's prediction in the parametrisation `want` at
    /// `(t, x)` into `out` (one model evaluation).
    fn predict_in(&self, want: Parametrisation, t: f64, x: &[f64], p: &[f64], out: &mut [f64]);

    /// Adds `m̄ᵀ ∂m/∂x` to `out_x` and `m̄ᵀ ∂m/∂p` to `out_p`, where `m` is
    /// the prediction in `want` at `(t, x)`; `scratch` (the length of `x`)
    /// is workspace.
    #[allow(clippy::too_many_arguments)]
    fn predict_vjp(
        &self,
        want: Parametrisation,
        t: f64,
        x: &[f64],
        p: &[f64],
        m_bar: &[f64],
        scratch: &mut [f64],
        out_x: &mut [f64],
        out_p: &mut [f64],
    );
}

impl<M: ModelVjp, S: NoiseSchedule> FlowVjp for ProbabilityFlow<M, S> {
    fn schedule(&self) -> &dyn NoiseSchedule {
        &self.schedule
    }

    fn predict_in(&self, want: Parametrisation, t: f64, x: &[f64], p: &[f64], out: &mut [f64]) {
        self.model.predict(t, x, p, out);
        self.parametrisation
            .convert(want, &self.schedule, t, x, out);
    }

    fn predict_vjp(
        &self,
        want: Parametrisation,
        t: f64,
        x: &[f64],
        p: &[f64],
        m_bar: &[f64],
        scratch: &mut [f64],
        out_x: &mut [f64],
        out_p: &mut [f64],
    ) {
        let (kx, ko) = self.parametrisation.conversion(want, &self.schedule, t);
        for ((s, o), &mb) in scratch.iter_mut().zip(out_x.iter_mut()).zip(m_bar) {
            *s = ko * mb;
            *o += kx * mb;
        }
        self.model.model_vjp(t, x, p, scratch, out_x, out_p);
    }
}

thread_local! {
    /// Workspace of [`ProbabilityFlow`]'s drift VJP (the scaled
    /// cotangent), grown once to the state's length and reused, so that the
    /// VJP allocates nothing per step.
    static SCALED: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// The probability flow of a model with a VJP has one: the velocity
/// `u = k_x x + k_o out(x)` gives `vᵀ∂u/∂x = k_x v + (k_o v)ᵀ ∂out/∂x`.
impl<M: ModelVjp, S: NoiseSchedule> DriftVjp for ProbabilityFlow<M, S> {
    fn drift_vjp(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], oy: &mut [f64], op: &mut [f64]) {
        SCALED.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => {
                buf.resize(y.len(), 0.0);
                self.predict_vjp(Parametrisation::Velocity, t, y, p, v, &mut buf, oy, op)
            }
            // a model whose VJP differentiates another flow: its own buffer
            Err(_) => {
                let mut buf = vec![0.0; y.len()];
                self.predict_vjp(Parametrisation::Velocity, t, y, p, v, &mut buf, oy, op)
            }
        })
    }

    fn probability_flow(&self) -> Option<&dyn FlowVjp> {
        Some(self)
    }
}

impl std::fmt::Debug for dyn FlowVjp + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlowVjp")
    }
}
