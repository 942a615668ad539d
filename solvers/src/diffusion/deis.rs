//! DEIS with the time Adams–Bashforth coefficients, tAB-DEIS (Zhang &
//! Chen, "Fast sampling of diffusion models with exponential integrator",
//! ICLR 2023, Eq. 14 and §3; qsh-zh/deis `jax_deis/multistep.py`
//! `get_ab_eps_coef`). Reference: `../shared/reference/diffusion.md` §4.
//!
//! The exact step of the probability-flow ODE in the noise form is
//! `x_t = (α_t/α_s) x_s − σ_t ∫_{λ_s}^{λ_t} e^{−(λ−λ_t)} ε̂(λ) dλ` and in the
//! data form `x_t = (σ_t/σ_s) x_s + α_t ∫_{λ_s}^{λ_t} e^{λ−λ_t} x̂0(λ) dλ`
//! (`exponential.md` §4). tAB-DEIS of degree `r` replaces the prediction by
//! its Lagrange interpolant in `t` through the current and the `r` previous
//! grid points, `Σ_j m_j ℓ_j(t)`, so `x_t = (ratio) x_s + Σ_j c_j m_j` with
//! `c_j = −σ_t ∫ e^{−(λ−λ_t)} ℓ_j(t(λ)) dλ` (noise) or
//! `c_j = α_t ∫ e^{λ−λ_t} ℓ_j(t(λ)) dλ` (data). The integrals are taken in
//! `λ` by 8-point Gauss–Legendre (see [`super::lagrange`]; DEIS itself sums
//! 10,000 points in `t`). Degree `r` is order `r + 1` (local error
//! `O(h^{r+2})`); degree 0 is DDIM. The first `r` steps use the points
//! there are (degrees 0, 1, …: the lower-order warm-up of DEIS's code). One
//! model evaluation per step.

use super::lagrange::{AdamsBashforth, MAX_NODES, lagrange_integrals, nodes};
use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Form, History, Sampler, ratios};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp};
use super::schedule::NoiseSchedule;
use crate::error::SolveError;

/// tAB-DEIS of degree `r ∈ {1, 2, 3}` (order `r + 1`), in the noise form
/// (the paper's) or the data form: one model evaluation per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deis {
    degree: usize,
    form: Form,
}

impl Deis {
    /// tAB-DEIS of degree `degree` (1, 2 or 3; checked when solving) in
    /// the noise form: the prediction is interpolated through
    /// `degree + 1` grid points.
    pub fn t_ab(degree: usize) -> Self {
        Deis {
            degree,
            form: Form::Noise,
        }
    }

    /// The same method on the data prediction `x̂0` (the DPM-Solver++ form).
    pub fn data_prediction(mut self) -> Self {
        self.form = Form::Data;
        self
    }

    /// The polynomial degree `r`.
    pub fn degree(&self) -> usize {
        self.degree
    }
}

impl Sampler for Deis {
    fn name(&self) -> &'static str {
        match self.form {
            Form::Noise => "tAB-DEIS",
            Form::Data => "tAB-DEIS (data prediction)",
        }
    }
    fn order(&self) -> f64 {
        (self.degree + 1) as f64
    }
    fn prediction(&self) -> Parametrisation {
        self.form.parametrisation()
    }
    fn history(&self) -> usize {
        self.degree
    }
    fn check_settings(&self) -> Result<(), SolveError> {
        if (1..MAX_NODES).contains(&self.degree) {
            Ok(())
        } else {
            Err(SolveError::InvalidInput {
                what: "Deis degree".into(),
                reason: format!(
                    "{} is not one of 1, 2, 3 (degree 0 is DDIM: use Ddim)",
                    self.degree
                ),
            })
        }
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        self.ab_advance(st);
    }
}

impl AdamsBashforth for Deis {
    fn coefficients<S: NoiseSchedule + ?Sized>(
        &self,
        sched: &S,
        (t, t_next): (f64, f64),
        history: History<'_>,
    ) -> (usize, f64, [f64; MAX_NODES]) {
        let k = self.degree.min(history.len()) + 1;
        let nodes = nodes(t, history, k, |lam| sched.t_of_lambda(lam));
        let (ra, rs, _) = ratios(sched, t, t_next);
        let (lam_s, lam_t) = (sched.lambda(t), sched.lambda(t_next));
        let (ratio, scale, sign) = match self.form {
            Form::Noise => (ra, -sched.sigma(t_next), -1.0),
            Form::Data => (rs, sched.alpha(t_next), 1.0),
        };
        let mut c = [0.0; MAX_NODES];
        lagrange_integrals(
            &nodes[..k],
            (lam_s, lam_t),
            |lam| (sched.t_of_lambda(lam), (sign * (lam - lam_t)).exp()),
            &mut c,
        );
        c[..k].iter_mut().for_each(|cj| *cj *= scale);
        (k, ratio, c)
    }
}

/// The step is linear in the state and the predictions.
impl SamplerVjp for Deis {
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        self.ab_vjp(st)
    }
}
