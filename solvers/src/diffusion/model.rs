//! Diffusion models as the drift of a probability-flow ODE: a model in any
//! parametrisation, conversions between parametrisations, and the problem
//! family [`DiffusionOde`].
//!
//! Conversions (`../shared/reference/diffusion.md` §2): with
//! `x = α x̂0 + σ ε̂`, the score is `s = −ε̂/σ`, the v-prediction
//! `v = α ε̂ − σ x̂0` (Salimans & Ho 2022, App. D) and the flow velocity
//! `u = dx/dt = (α̇/α) x − σ λ̇ ε̂` (the probability-flow ODE of Song et al.
//! 2021 in the form of Lu et al. 2022, DPM-Solver Eq. 2.4). Each output is
//! affine in `(x, ε̂)`, so each converts to every other elementwise.

use super::schedule::NoiseSchedule;
use crate::brownian::VirtualTree;
use crate::field::{Drift, NoDiffusion};
use crate::problem::Problem;
use crate::solution::Stats;

/// What a model predicts from a noisy state `x` at time `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parametrisation {
    /// The noise `ε̂` (DDPM, DPM-Solver).
    Noise,
    /// The clean data `x̂0` (DPM-Solver++, EDM's denoiser `D`).
    Data,
    /// The score `∇ log p_t(x) = −ε̂/σ_t`.
    Score,
    /// The velocity `v = α_t ε̂ − σ_t x̂0` (v-prediction).
    V,
    /// The probability-flow velocity `dx/dt` (flow matching).
    Velocity,
}

impl Parametrisation {
    /// The coefficients `(c_x, c_ε)` of this output as `c_x x + c_ε ε̂` at
    /// time `t` of `schedule`.
    pub fn coefficients<S: NoiseSchedule + ?Sized>(self, schedule: &S, t: f64) -> (f64, f64) {
        let (a, s) = (schedule.alpha(t), schedule.sigma(t));
        match self {
            Parametrisation::Noise => (0.0, 1.0),
            Parametrisation::Data => (1.0 / a, -s / a),
            Parametrisation::Score => (0.0, -1.0 / s),
            Parametrisation::V => (-s / a, a + s * s / a),
            Parametrisation::Velocity => (schedule.d_log_alpha(t), -s * schedule.d_lambda(t)),
        }
    }

    /// The coefficients `(k_x, k_out)` that turn an output `out` of this
    /// parametrisation into `k_x x + k_out out` of `to`, at time `t`.
    pub fn conversion<S: NoiseSchedule + ?Sized>(
        self,
        to: Parametrisation,
        schedule: &S,
        t: f64,
    ) -> (f64, f64) {
        if self == to {
            return (0.0, 1.0);
        }
        // ε̂ = (out − p_x x)/p_ε, then to = q_x x + q_ε ε̂
        let (px, pe) = self.coefficients(schedule, t);
        let (qx, qe) = to.coefficients(schedule, t);
        let r = qe / pe;
        (qx - r * px, r)
    }

    /// Converts `out`, this parametrisation's output at `(t, x)`, in place
    /// into the parametrisation `to` (elementwise; `x` and `out` the same
    /// length, any batch layout).
    ///
    /// ```
    /// use sdeflow_solvers::diffusion::{Parametrisation, VpLinear};
    /// let s = VpLinear::default();
    /// let (x, mut out) = ([0.3, -1.2], [0.5, 0.1]);
    /// let orig = out;
    /// Parametrisation::Noise.convert(Parametrisation::V, &s, 0.4, &x, &mut out);
    /// Parametrisation::V.convert(Parametrisation::Noise, &s, 0.4, &x, &mut out);
    /// assert!((out[0] - orig[0]).abs() < 1e-14 && (out[1] - orig[1]).abs() < 1e-14);
    /// ```
    pub fn convert<S: NoiseSchedule + ?Sized>(
        self,
        to: Parametrisation,
        schedule: &S,
        t: f64,
        x: &[f64],
        out: &mut [f64],
    ) {
        if self == to {
            return;
        }
        let (kx, ko) = self.conversion(to, schedule, t);
        for (o, &xv) in out.iter_mut().zip(x) {
            *o = kx * xv + ko * *o;
        }
    }
}

/// A diffusion model: writes its prediction at time `t` for the whole state
/// `x` (a batch of samples flattened, in whatever layout the model reads)
/// into `out` (same length). Any closure `|t, x, p, out|` is a model; `p`
/// are the problem's parameters.
pub trait Model {
    /// Writes the model's output at `(t, x)` into `out`.
    fn predict(&self, t: f64, x: &[f64], p: &[f64], out: &mut [f64]);
}

impl<M> Model for M
where
    M: Fn(f64, &[f64], &[f64], &mut [f64]),
{
    #[inline(always)]
    fn predict(&self, t: f64, x: &[f64], p: &[f64], out: &mut [f64]) {
        self(t, x, p, out)
    }
}

/// The probability-flow ODE `dx/dt = (α̇/α) x − σ λ̇ ε̂(x, t)` of a model `M`
/// (in the parametrisation it states) under the schedule `S`: a [`Drift`],
/// so any ODE solver integrates it, and the drift the diffusion samplers
/// ([`super`]) recognise, evaluating the model in the prediction they need.
#[derive(Debug, Clone)]
pub struct ProbabilityFlow<M, S> {
    /// The model.
    pub model: M,
    /// What the model predicts.
    pub parametrisation: Parametrisation,
    /// The noise schedule.
    pub schedule: S,
}

/// The probability-flow ODE family: a [`Problem`] whose drift is a
/// [`ProbabilityFlow`], integrated from the noise time `T` down to `t_end`.
pub type DiffusionOde<M, S, D = VirtualTree> = Problem<ProbabilityFlow<M, S>, NoDiffusion, D>;

impl<M: Model, S: NoiseSchedule> ProbabilityFlow<M, S> {
    /// The probability flow of `model` (predicting `parametrisation`) under
    /// `schedule`.
    pub fn new(model: M, parametrisation: Parametrisation, schedule: S) -> Self {
        ProbabilityFlow {
            model,
            parametrisation,
            schedule,
        }
    }

    /// Evaluates the model at `(t, x)` and writes its prediction in the
    /// parametrisation `want` into `out`, counting one drift evaluation.
    #[inline]
    pub fn predict_as(
        &self,
        want: Parametrisation,
        t: f64,
        x: &[f64],
        p: &[f64],
        out: &mut [f64],
        stats: &mut Stats,
    ) {
        stats.drift_evals += 1;
        self.model.predict(t, x, p, out);
        self.parametrisation
            .convert(want, &self.schedule, t, x, out);
    }
}

impl<M: Model, S: NoiseSchedule> Drift for ProbabilityFlow<M, S> {
    #[inline]
    fn drift(&self, t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
        self.model.predict(t, y, p, dy);
        self.parametrisation
            .convert(Parametrisation::Velocity, &self.schedule, t, y, dy);
    }
}

/// The probability-flow ODE of `model` under `schedule`, from the noise
/// `x_T` at `t_start` down to `t_end` (e.g. `1 → 1e−3` for VP schedules).
///
/// ```
/// use sdeflow_solvers::diffusion::{probability_flow, DpmSolverPP2M, Parametrisation, TimeGrid, VpLinear};
/// use sdeflow_solvers::solve;
/// // the exact noise prediction of data N(0, 1): ε̂ = σ x
/// let s = VpLinear::default();
/// let problem = probability_flow(
///     move |t: f64, x: &[f64], _p: &[f64], out: &mut [f64]| {
///         let sig = sdeflow_solvers::diffusion::NoiseSchedule::sigma(&s, t);
///         for (o, &xv) in out.iter_mut().zip(x) { *o = sig * xv; }
///     },
///     Parametrisation::Noise, s, vec![0.7, -1.3], (1.0, 1e-3),
/// );
/// let opts = TimeGrid::UniformLambda.options(&s, 1.0, 1e-3, 10)?;
/// let sol = solve(&problem, DpmSolverPP2M::default(), opts)?;
/// // N(0, 1) data: the flow map is the identity (++2M is 0.025 off at 10 steps)
/// assert!((sol.last()[0] - 0.7).abs() < 0.05);
/// assert_eq!(sol.stats.drift_evals, 10);
/// # Ok::<(), sdeflow_solvers::error::SolveError>(())
/// ```
pub fn probability_flow<M, S>(
    model: M,
    parametrisation: Parametrisation,
    schedule: S,
    x_t: impl Into<Vec<f64>>,
    tspan: (f64, f64),
) -> DiffusionOde<M, S>
where
    M: Fn(f64, &[f64], &[f64], &mut [f64]),
    S: NoiseSchedule,
{
    Problem::ode_field(
        ProbabilityFlow::new(model, parametrisation, schedule),
        x_t,
        tspan,
    )
}
