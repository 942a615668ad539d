//! Fractional Euler on the augmented Markov system `(X, Y)`: the Euler step
//! of [`super::FractionalEuler`] for a state that also carries the OU modes
//! `Y_1..Y_{mK}` of the Markov approximation, written exactly from the
//! driver's increments (`../shared/reference/fbm.md` §3.3; Daems et al.,
//! "Variational inference for SDEs driven by fractional noise", ICLR 2024,
//! whose augmented system is `(X, Y)`; Tong et al., "Learning fractional
//! white noises in neural stochastic differential equations", NeurIPS 2022).
//!
//! With the modes in the state, the fields may read them: a posterior
//! control `u(t, X, Y)` of the full Markov state
//! ([`super::posterior_with_modes`]). The step is
//!
//! `y' = y + h b(t, y) + s(t, y) ΔB̂`,  then  `y'[Y] += ΔY`,
//!
//! with `ΔY_k = Y_k(t + h) − Y_k(t)` the exact OU increments the driver
//! serves (any `γ_max · h`: the modes are never stepped by Euler) and
//! `ΔB̂_j = Σ_k ω_k ΔY_{jk}`. The fields' rows of the `Y` block should be
//! zero (the prior's modes have no other dynamics); the block starts at
//! the problem's `y0` and holds `y0[Y] + Y(t) − Y(t0)`. The step VJP is
//! [`super::FractionalEuler`]'s: `ΔY` depends on neither the state nor the
//! parameters (the `γ` grid is fixed), so the extra term passes the
//! cotangent of `Y` through unchanged.

use super::driven::{DrivenCache, DrivenVjpWork, driven_solver, driven_step_vjp};
use super::euler::{euler_step, euler_step_vjp};
use super::ou_tree::FractionalNoise;
use super::weights::ModeWeights;
use crate::error::SolveError;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::problem::Problem;
use crate::sde::Integrates;
use crate::solver::{StepArgs, StepOut, StepStatus};
use crate::step_vjp::VjpArgs;

/// The Euler method (Itô) for fBM-driven SDEs whose state carries the
/// driver's OU modes at `modes_at..modes_at + m K` (`m` fBMs of `K` modes,
/// fBM `j`'s modes contiguous): [`super::FractionalEuler`] plus the modes' exact
/// increments written into that block.
///
/// ```
/// use sdeflow_solvers::fractional::{FbmType, FractionalModalEuler, Hurst, ModeWeights, gamma_grid};
/// use sdeflow_solvers::prelude::*;
/// let mw = ModeWeights::new(FbmType::RiemannLiouville, Hurst::Fixed(0.3), 1.0,
///                           &gamma_grid(3, 0.3, 1.0)?)?;
/// let w = mw.weights(&[])?.0;
/// // X = B̂_H, with the modes Y_1..Y_3 in the state (zero fields there)
/// let p = Problem::sde(
///     |_t: f64, _y: &[f64], _p: &[f64], dy: &mut [f64]| dy.fill(0.0),
///     |_t: f64, _y: &[f64], _p: &[f64], g: &mut [f64]| { g.fill(0.0); g[0] = 1.0 },
///     Noise::General(1),
///     vec![0.0; 4],
///     (0.0, 1.0),
/// )
/// .driver(mw.noise());
/// let sol = solve(&p, FractionalModalEuler::new(mw, 1), Options::default().fixed_step(1.0 / 64.0))?;
/// let y = sol.last();
/// let b: f64 = (0..3).map(|k| w[k] * y[1 + k]).sum();
/// assert!((y[0] - b).abs() < 1e-12); // B̂_H = Σ ω_k Y_k
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FractionalModalEuler {
    /// The modes' weights.
    pub weights: ModeWeights,
    /// Where the modes' block starts in the state.
    pub modes_at: usize,
}

impl FractionalModalEuler {
    /// The method with the modes' weights `weights`, the modes' block of
    /// the state starting at `modes_at`.
    pub fn new(weights: ModeWeights, modes_at: usize) -> Self {
        FractionalModalEuler { weights, modes_at }
    }

    /// The modes' block fits in the state.
    fn check_modes<F, G>(&self, problem: &Problem<F, G, FractionalNoise>) -> Result<(), SolveError> {
        let n = problem.y0.len();
        let m = problem.noise.map_or(n, |noise| noise.brownian_dim(n));
        let len = m * self.weights.gammas().len();
        if self.modes_at + len > n {
            return Err(SolveError::DimensionMismatch {
                what: "FractionalModalEuler modes block".into(),
                expected: self.modes_at + len,
                found: Some(n),
                hint: format!(
                    "the {m} fBM(s) × {} modes start at index {} and need a state of at least \
                     {} components; give the block's start (e.g. \
                     PosteriorLayout::prior_modes().start) or extend y0",
                    self.weights.gammas().len(),
                    self.modes_at,
                    self.modes_at + len
                ),
            });
        }
        Ok(())
    }

    #[inline]
    fn take<F: Drift, G: Diffusion>(
        &self,
        c: &mut DrivenCache,
        a: StepArgs<'_, F, G>,
    ) -> StepStatus {
        let StepArgs {
            fields,
            at,
            noise,
            out: StepOut { y_new, err },
            stats,
        } = a;
        let out = StepOut {
            y_new: &mut *y_new,
            err,
        };
        let status = euler_step(
            c,
            StepArgs {
                fields,
                at,
                noise,
                out,
                stats,
            },
        );
        for (v, d) in y_new[self.modes_at..].iter_mut().zip(noise.modes) {
            *v += d;
        }
        status
    }

    fn vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut DrivenVjpWork,
        a: VjpArgs<'_, F, G>,
    ) -> Result<usize, SolveError> {
        euler_step_vjp("FractionalModalEuler", w, a)
    }
}

driven_solver!(
    FractionalModalEuler, "FractionalModalEuler", order: 0.5, error_order: None,
    integrates: Integrates::Ito, two_stage: false, check: check_modes,
);

driven_step_vjp!(FractionalModalEuler);
