//! Stochastic exponential Euler, exact-covariance route: the method of
//! `stochastic_euler.rs` on problems driven by [`CovarianceNoise`], where
//! the stochastic convolution of each step is formed from `L`-free
//! standard increments with the exact covariance of `L(p)` and `h`
//! (`../shared/reference/exponential.md` §3; Lord & Rougemont, IMA J.
//! Numer. Anal. 24 (2004)):
//!
//! `X_{n+1,i} = e^{λ_i h} X_{n,i} + h φ_1(λ_i h) N_i + G_ii ξ_i`,
//! `ξ_i = φ_1(λ_i h) ΔW_i + √(r(λ_i h)) ΔW'_i`, `r(z) = φ_1(2z) − φ_1(z)²`,
//!
//! with `ΔW`, `ΔW'` independent increments of the driver. `(ΔW_i, ξ_i)` has
//! exactly the law of the increment and the convolution `∫ e^{λ_i(t+h−u)}
//! dW_i(u)` (variance `h φ_1(2λh)`, covariance `h φ_1(λh)`), so the linear
//! OU SDE is sampled exactly at any `h|λ|`, as on the tree route.
//!
//! Why this route for a parameter inside `L` (the choice weighed against a
//! pathwise derivative in the tree): it is exact per step and the simplest
//! thing that differentiates. The randomness does not depend on `p`, so a
//! finite-difference solve at `p ± δ` with the same seed sees the same
//! `ΔW`, `ΔW'` and its convolutions follow `L(p ± δ)`; the step is a smooth
//! function of `λ` (`e^z`, `φ_1`, `√r`: `r(z) = z²/12 + O(z³)` is summed as
//! its series `Σ_{k≥2} (2^k(k − 2) + 2) z^k/(k + 2)!` for `|z| ≤ 1`, the
//! direct difference cancels there). A pathwise derivative inside the OU
//! tree would need its construction (bridges over a dyadic grid with
//! `γ`-dependent covariances) differentiated node by node, and a
//! rebuilt tree at `γ ± δ` draws other convolutions from the same seed, so
//! FD would not check it. The price: no fixed-path strong convergence
//! across step sizes (the tree route, [`super::ConvolutionNoise`], keeps
//! that).
//!
//! Each noise component drives one state component: diagonal or additive
//! noise (scalar noise for `n = 1`). Shared Brownian motions across
//! components of different rates (general noise) would need the joint
//! `(K + 1) × (K + 1)` covariance per motion; refused with a typed error.
//! `L` is a real diagonal, constant or depending on the parameters
//! ([`super::ParamDiagonal`]); any finite `λ_i` (for `λ_i = 0`, `ξ_i =
//! ΔW_i`; the derivative of `√r` there is taken as 0, the central one).
//!
//! Step VJP: with `ȳ'` the output cotangent,
//! `ȳ = e^{hL} ȳ' + (∂N/∂X)ᵀ h φ_1 ȳ' + (∂G/∂X)ᵀ[ȳ' ξ]`,
//! `p̄ += (∂N/∂p)ᵀ h φ_1 ȳ' + (∂G/∂p)ᵀ[ȳ' ξ] + (∂λ/∂p)ᵀ λ̄`,
//! `λ̄_i = ȳ'_i (h e^{z} X_i + h² φ_1'(z) N_i + G_ii (h φ_1'(z) ΔW_i + ∂_λ√r ΔW'_i))`,
//! `φ_1' = φ_1 − φ_2`.

use super::covariance_noise::CovarianceNoise;
use super::phi::phi_all;
use super::semilinear::{LinearPart, Semilinear, Structure, check_linear_values};
use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::noise::Noise;
use crate::problem::Problem;
use crate::sde::{Integrates, Noises, check_support, linear_stage, linear_table};
use crate::solver::{DenseTable, Increment, Solver, StepArgs, StepAt, StepStatus, StepTaken};
use crate::step_vjp::{StepVjp, VjpArgs};

use super::stochastic_euler::{StochasticExpEuler, vjp_parts};

const NAME: &str = "StochasticExpEuler";

/// `r(z) = φ_1(2z) − φ_1(z)²` (the residual variance of the convolution
/// given `ΔW`, per unit `h`) and `r'(z)`.
pub(crate) fn residual_variance(z: f64) -> (f64, f64) {
    if z.abs() <= 1.0 {
        // Σ_{k≥2} c_k z^k, c_k = (2^k (k − 2) + 2)/(k + 2)!
        let (mut r, mut dr) = (0.0, 0.0);
        let (mut pow2, mut inv_fact) = (4.0, 1.0 / 24.0); // 2^k, 1/(k+2)! at k = 2
        let mut zk1 = z; // z^{k−1}
        for k in 2..34 {
            let c = (pow2 * (k as f64 - 2.0) + 2.0) * inv_fact;
            dr += k as f64 * c * zk1;
            zk1 *= z;
            r += c * zk1;
            pow2 *= 2.0;
            inv_fact /= (k + 3) as f64;
        }
        return (r, dr);
    }
    let (mut a, mut b) = ([0.0; 3], [0.0; 3]);
    phi_all(z, &mut a);
    phi_all(2.0 * z, &mut b);
    let r = b[1] - a[1] * a[1];
    let dr = 2.0 * (b[1] - b[2]) - 2.0 * a[1] * (a[1] - a[2]);
    (r.max(0.0), dr)
}

/// The per-component coefficients of one step size and their derivatives
/// in `λ_i` (module docs).
#[derive(Debug, Clone)]
struct Factors {
    /// The step size they are for (NaN: none yet).
    h: f64,
    /// `e^{z}`, `h φ_1(z)`, `φ_1(z)`, `√r(z)`, `z = λ_i h`.
    e: Vec<f64>,
    hphi: Vec<f64>,
    a: Vec<f64>,
    b: Vec<f64>,
    /// Their derivatives in `λ_i`.
    de: Vec<f64>,
    dhphi: Vec<f64>,
    da: Vec<f64>,
    db: Vec<f64>,
}

impl Factors {
    fn new(n: usize) -> Self {
        let v = || vec![0.0; n];
        Factors {
            h: f64::NAN,
            e: v(),
            hphi: v(),
            a: v(),
            b: v(),
            de: v(),
            dhphi: v(),
            da: v(),
            db: v(),
        }
    }

    /// Computes the coefficients for `h` unless they are current.
    fn ensure(&mut self, h: f64, lam: &[f64]) {
        if self.h == h {
            return;
        }
        self.h = h;
        let mut phis = [0.0; 3];
        for (i, &l) in lam.iter().enumerate() {
            let z = l * h;
            phi_all(z, &mut phis);
            let dphi1 = phis[1] - phis[2];
            let (r, dr) = residual_variance(z);
            let b = r.sqrt();
            self.e[i] = phis[0];
            self.hphi[i] = h * phis[1];
            self.a[i] = phis[1];
            self.b[i] = b;
            self.de[i] = h * phis[0];
            self.dhphi[i] = h * h * dphi1;
            self.da[i] = h * dphi1;
            self.db[i] = if b > 0.0 { h * dr / (2.0 * b) } else { 0.0 };
        }
    }

    /// The convolution `ξ_i` from the increments.
    #[inline]
    fn xi(&self, i: usize, dw: f64, res: f64) -> f64 {
        self.a[i] * dw + self.b[i] * res
    }
}

/// Workspace of [`StochasticExpEuler`] on the exact-covariance route.
#[derive(Debug, Clone)]
pub struct StochasticExpCovCache {
    lam: Vec<f64>,
    f: Factors,
    /// `N(t_n, X_n)`, `G(t_n)`, the interpolant's vector.
    nl: Vec<f64>,
    g: Vec<f64>,
    dense: Vec<f64>,
}

type CovProblem<L, N, G, D> = Problem<Semilinear<L, N>, G, CovarianceNoise<D>>;

/// The diagonal of `L` at the problem's parameters, checked.
fn checked_lambda<L: LinearPart, N: Drift, G: Diffusion, D: Driver>(
    problem: &CovProblem<L, N, G, D>,
) -> Result<Vec<f64>, SolveError> {
    let n = problem.dim();
    let linear = &problem.drift.linear;
    if linear.structure() != Structure::Diagonal {
        return Err(SolveError::Unsupported {
            solver: NAME,
            what: "a dense or complex linear part (the exact-covariance route forms the \
                   convolution of each component from its own real rate)"
                .into(),
            alternatives: "diagonalise L (a symmetric L in its eigenbasis), or \
                           EulerMaruyama on the drift L X + N"
                .into(),
        });
    }
    check_linear_values(Structure::Diagonal, n, linear.known_len(), None)?;
    let mut scratch = Vec::new();
    let lam = linear.values(n, &problem.params, &mut scratch);
    check_linear_values(Structure::Diagonal, n, Some(lam.len()), Some(lam))?;
    Ok(lam.to_vec())
}

impl<L: LinearPart, N: Drift, G: Diffusion, D: Driver> Solver<CovProblem<L, N, G, D>>
    for StochasticExpEuler
{
    type Cache = StochasticExpCovCache;
    const INCREMENT: Increment = Increment::DwModes;

    fn name(&self) -> &'static str {
        NAME
    }

    fn order(&self) -> f64 {
        1.0
    }

    fn error_order(&self) -> Option<f64> {
        None
    }

    fn check(&self, problem: &CovProblem<L, N, G, D>) -> Result<(), SolveError> {
        check_support(NAME, Noises::DIAGONAL, Integrates::Ito, problem)?;
        if problem.noise == Some(Noise::Scalar) && problem.dim() > 1 {
            return Err(SolveError::Unsupported {
                solver: NAME,
                what: "scalar noise on several components with CovarianceNoise (components \
                       sharing one Brownian motion need the joint covariance of their \
                       convolutions)"
                    .into(),
                alternatives: "diagonal or additive noise, or ConvolutionNoise::for_diagonal \
                               with a constant L"
                    .into(),
            });
        }
        checked_lambda(problem).map(|_| ())
    }

    fn init(&self, problem: &CovProblem<L, N, G, D>) -> StochasticExpCovCache {
        let n = problem.dim();
        let noise = problem.noise.unwrap_or(Noise::Additive);
        let lam = checked_lambda(problem).unwrap_or_else(|_| vec![0.0; n]);
        StochasticExpCovCache {
            lam,
            f: Factors::new(n),
            nl: vec![0.0; n],
            g: vec![0.0; noise.diffusion_len(n)],
            dense: vec![0.0; n],
        }
    }

    fn start(&self, _cache: &mut StochasticExpCovCache, _f0: &[f64], _g0: &[f64]) {}

    #[inline]
    fn step(
        &self,
        c: &mut StochasticExpCovCache,
        a: StepArgs<'_, Semilinear<L, N>, G>,
    ) -> StepStatus {
        let StepAt { t, h, y } = a.at;
        let (fields, stats, y_new) = (a.fields, a.stats, a.out.y_new);
        c.f.ensure(h, &c.lam);
        stats.drift_evals += 1;
        fields.drift.nonlinear.drift(t, y, fields.p, &mut c.nl);
        fields.g(t, y, &mut c.g, stats);
        let (dw, res) = (a.noise.dw, a.noise.modes);
        for i in 0..y.len() {
            y_new[i] = c.f.e[i] * y[i] + c.f.hphi[i] * c.nl[i] + c.g[i] * c.f.xi(i, dw[i], res[i]);
        }
        StepStatus::Taken
    }

    fn accept(&self, _cache: &mut StochasticExpCovCache) {}

    fn dense_table<'c>(&self, _cache: &'c StochasticExpCovCache) -> DenseTable<'c> {
        linear_table()
    }

    fn dense_stages<'c>(
        &self,
        cache: &'c mut StochasticExpCovCache,
        step: StepTaken<'_, Semilinear<L, N>, G>,
    ) -> &'c [f64] {
        linear_stage(step.at.h, step.at.y, step.y_new, &mut cache.dense);
        &cache.dense
    }
}

/// Workspace of the step VJP of [`StochasticExpEuler`] on the
/// exact-covariance route.
#[derive(Debug, Clone)]
pub struct StochasticExpCovVjpWork {
    lam: Vec<f64>,
    f: Factors,
    /// `N(t_n, X_n)`, `G(t_n)` (for `λ̄`), `h φ_1 ȳ'`, the cotangents of
    /// `G` and of `λ`.
    nl: Vec<f64>,
    g: Vec<f64>,
    b: Vec<f64>,
    gbar: Vec<f64>,
    lbar: Vec<f64>,
}

impl<L: LinearPart, N: Drift, G: Diffusion, D: Driver> StepVjp<CovProblem<L, N, G, D>>
    for StochasticExpEuler
{
    type VjpWork = StochasticExpCovVjpWork;

    fn vjp_workspace<F: DriftVjp, Gv: DiffusionVjp, Dv: Driver>(
        &self,
        problem: &Problem<F, Gv, Dv>,
    ) -> StochasticExpCovVjpWork {
        let n = problem.dim();
        let noise = problem.noise.unwrap_or(Noise::Additive);
        let mut lam = Vec::new();
        if let Some(parts) = problem.drift.semilinear() {
            parts.linear_values(n, &problem.params, &mut lam);
        }
        lam.resize(n, 0.0);
        StochasticExpCovVjpWork {
            lam,
            f: Factors::new(n),
            nl: vec![0.0; n],
            g: vec![0.0; noise.diffusion_len(n)],
            b: vec![0.0; n],
            gbar: vec![0.0; noise.diffusion_len(n)],
            lbar: vec![0.0; n],
        }
    }

    /// The cotangents of the step's inputs (module docs); returns the
    /// number of drift VJPs (one).
    fn step_vjp<F: DriftVjp, Gv: DiffusionVjp>(
        &self,
        w: &mut StochasticExpCovVjpWork,
        args: VjpArgs<'_, F, Gv>,
    ) -> Result<usize, SolveError> {
        let parts = vjp_parts(&args)?;
        let StepAt { t, h, y } = args.at;
        let (fields, bars) = (args.fields, args.bars);
        let (dw, res) = (args.noise.dw, args.noise.modes);
        w.f.ensure(h, &w.lam);
        let f = &w.f;
        let with_l = parts.linear_depends_on_params();
        if with_l {
            args.stats.drift_evals += 1;
            parts.nonlinear(t, y, fields.p, &mut w.nl);
            fields.g(t, y, &mut w.g, args.stats);
        }
        for (i, yb) in bars.y.iter_mut().enumerate() {
            let v = *yb;
            w.b[i] = f.hphi[i] * v;
            w.gbar[i] = v * f.xi(i, dw[i], res[i]);
            if with_l {
                let dxi = f.da[i] * dw[i] + f.db[i] * res[i];
                w.lbar[i] = v * (f.de[i] * y[i] + f.dhphi[i] * w.nl[i] + w.g[i] * dxi);
            }
            *yb = f.e[i] * v;
        }
        parts.nonlinear_vjp(t, y, fields.p, &w.b, bars.y, bars.p);
        fields
            .diffusion
            .diffusion_vjp(t, y, fields.p, &w.gbar, bars.y, bars.p);
        if with_l {
            parts.linear_vjp_params(fields.p, &w.lbar, bars.p);
        }
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_variance_series_and_direct_forms_agree_at_the_switch() {
        for z in [-1.0, 1.0] {
            let (r, dr) = residual_variance(z);
            let mut a = [0.0; 3];
            let mut b = [0.0; 3];
            phi_all(z, &mut a);
            phi_all(2.0 * z, &mut b);
            let direct = b[1] - a[1] * a[1];
            let ddirect = 2.0 * (b[1] - b[2]) - 2.0 * a[1] * (a[1] - a[2]);
            assert!(
                (r - direct).abs() < 1e-14 * direct,
                "r({z}): {r} vs {direct}"
            );
            assert!((dr - ddirect).abs() < 1e-13 * ddirect.abs(), "r'({z})");
        }
        // r(z) = z²/12 + z³/12 + O(z⁴)
        let z = 1e-3;
        let (r, dr) = residual_variance(z);
        assert!((r / (z * z / 12.0 * (1.0 + z)) - 1.0).abs() < 1e-5);
        assert!((dr / (z / 6.0) - 1.0).abs() < 1e-2);
        // derivative against a central difference, both branches
        for z in [-0.3f64, -2.5, -40.0] {
            let d = 1e-6 * z.abs();
            let fd = (residual_variance(z + d).0 - residual_variance(z - d).0) / (2.0 * d);
            let (_, dr) = residual_variance(z);
            assert!(
                (dr - fd).abs() < 1e-7 * dr.abs().max(1e-3),
                "r'({z}) {dr} vs {fd}"
            );
        }
    }
}
