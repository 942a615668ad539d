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
//!
//! [`FractionalModalEuler::exact_shift`] also steps a posterior's shift
//! `Z` exactly (`dZ_k = (−γ_k Z_k + u) dt` with `u` held over the step,
//! the exponential-Euler step `Z' = Z + φ1(−γ_k h) h (−γ_k Z + u)`), and
//! moves `X` by the matching fBM shift: the Euler step plus
//! `c_k (−γ_k Z_k + u)` on `Z` and `s Σ_k ω_k c_k (−γ_k Z_k + u)` on `X`,
//! `c_k = φ1(−γ_k h) h − h`; its VJP adds those terms' (the drift's VJP
//! on the `Z` rows, the diffusion's, and `dω/dH`).

use super::driven::{DrivenCache, DrivenVjpWork, driven_solver, driven_step_vjp};
use super::euler::{euler_step, euler_step_vjp, exact_shift_excess};
use super::ou_tree::FractionalNoise;
use super::weights::ModeWeights;
use crate::error::SolveError;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::problem::Problem;
use crate::sde::{Integrates, add_noise};
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
    /// Where the posterior's shift `Z` starts, when it is stepped exactly
    /// ([`FractionalModalEuler::exact_shift`]).
    pub shift_at: Option<usize>,
}

impl FractionalModalEuler {
    /// The method with the modes' weights `weights`, the modes' block of
    /// the state starting at `modes_at`.
    pub fn new(weights: ModeWeights, modes_at: usize) -> Self {
        FractionalModalEuler {
            weights,
            modes_at,
            shift_at: None,
        }
    }

    /// Steps the block of `m K` components at `shift_at` exactly, as the
    /// shift `Z` of a posterior ([`super::PosteriorLayout::shift`]): its
    /// drift rows must be `−γ_k Z_jk + u_j` and the drift of the other
    /// rows must contain `s Σ_k ω_k (u_j − γ_k Z_jk)`, as
    /// [`super::PosteriorDrift`]'s do. The step then holds `u` over the
    /// step and integrates `Z` exactly, `Z' = e^{−γh} Z + (1 − e^{−γh}) u/γ`
    /// (any `γ h`; Euler needs `γ_max h < 2`), and moves `X` by
    /// `s Σ_k ω_k ΔZ_k` of that exact shift: the posterior is then exactly
    /// the prior driven by `W` with the drift `u` held over each step,
    /// whose KL is `½ Σ |u|² h`, the `KL` component's Euler sum.
    pub fn exact_shift(mut self, shift_at: usize) -> Self {
        self.shift_at = Some(shift_at);
        self
    }

    /// The modes' block fits in the state.
    fn check_modes<F, G>(
        &self,
        problem: &Problem<F, G, FractionalNoise>,
    ) -> Result<(), SolveError> {
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
        if let Some(at) = self.shift_at.filter(|&at| at + len > n) {
            return Err(SolveError::DimensionMismatch {
                what: "FractionalModalEuler shift block".into(),
                expected: at + len,
                found: Some(n),
                hint: format!(
                    "the posterior's shift Z ({len} components) starts at {at}: give \
                     PosteriorLayout::shift().start to exact_shift"
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
        let at_h = a.at.h;
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
        if let Some(at) = self.shift_at {
            // the exact shift's excess over Euler's, c_k b_Z, on Z and
            // through s Σ ω_k c_k b_Z on X (`db` is free after the step)
            let (gammas, k) = (self.weights.gammas(), self.weights.gammas().len());
            for j in 0..c.db.len() {
                let mut e = 0.0;
                for (l, &gamma) in gammas.iter().enumerate() {
                    let i = at + j * k + l;
                    let extra = exact_shift_excess(gamma, at_h) * c.f[i];
                    y_new[i] += extra;
                    e += c.w[l] * extra;
                }
                c.db[j] = e;
            }
            add_noise(c.noise, &c.g, &c.db, 1.0, y_new);
        }
        status
    }

    fn vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut DrivenVjpWork,
        a: VjpArgs<'_, F, G>,
    ) -> Result<usize, SolveError> {
        let shift = self.shift_at.map(|at| (at, self.weights.gammas()));
        euler_step_vjp("FractionalModalEuler", w, a, shift)
    }
}

driven_solver!(
    FractionalModalEuler, "FractionalModalEuler", order: 0.5, error_order: None,
    integrates: Integrates::Ito, two_stage: false, check: check_modes,
);

driven_step_vjp!(FractionalModalEuler);
