//! The closed-form test bed of stochastic interpolants: a Gaussian-mixture
//! target `x_1 ~ Σ_k π_k N(μ_k, diag v_k)` ([`GaussianMixture`]) reached
//! from a Gaussian base `x_0 ~ N(0, I)` by any [`Interpolant`].
//!
//! Derivation (`../shared/reference/diffusion.md` §6–7). With the Gaussian
//! base the noise terms merge: `x_t = α z + β x_1`, `α² = a² + γ²`,
//! `β = b`, so `x_t` is the mixture `Σ_k π_k N(β μ_k, C_k)`,
//! `C_k = β² v_k + α²` (per coordinate). Gaussian conditioning within a
//! component gives `E[x_1 | x_t = x, k] = μ_k + β v_k (x − β μ_k)/C_k`; the
//! posterior weights are `w_k ∝ π_k N(x; β μ_k, C_k)`. With
//! `g = Σ_k w_k (x − β μ_k)/C_k` and `m = E[x_1 | x_t = x] = Σ_k w_k (μ_k +
//! β v_k (x − β μ_k)/C_k)`:
//! - the score is `s = −g` (and `x − β m = α² g`);
//! - the velocity `b = E[ȧ x_0 + ḃ x_1 + γ̇ z | x_t = x]
//!   = (α α̇/α²)(x − β m) + ḃ m = α α̇ g + ḃ m`, finite at both ends.
//!
//! For one component the flow is affine per coordinate:
//! `x_t = β_t μ + √(C_t/C_u) (x_u − β_u μ)`.

use super::interpolant::{Interpolant, check_span};
use super::testbed::GaussianMixture;
use crate::error::SolveError;
use crate::field::Drift;

/// A Gaussian-mixture target and an interpolant from `N(0, I)`: the exact
/// velocity `b` (this type's [`Drift`]) and score `s`
/// ([`InterpolantMixture::score_field`]) for batches of samples.
///
/// ```
/// use sdeflow_solvers::diffusion::{interpolant_ode, GaussianMixture, InterpolantMixture, Linear};
/// use sdeflow_solvers::{erk::Tsit5, options::Options, solve};
/// let target = GaussianMixture::new(&[1.0], &[0.5, -1.0], &[0.04, 0.25])?;
/// let bed = InterpolantMixture::new(target, Linear::default())?;
/// let z = [0.3, -0.7];
/// let sol = solve(&interpolant_ode(bed.clone(), z.to_vec(), (0.0, 1.0))?, Tsit5,
///                 Options::default().tol(1e-11))?;
/// let mut exact = [0.0; 2];
/// bed.gaussian_flow_map(0.0, 1.0, &z, &mut exact)?; // x_1 = μ + √v z
/// assert!((sol.last()[0] - exact[0]).abs() < 1e-8 && (exact[0] - 0.56).abs() < 1e-12);
/// # Ok::<(), sdeflow_solvers::error::SolveError>(())
/// ```
#[derive(Debug, Clone)]
pub struct InterpolantMixture<I> {
    mixture: GaussianMixture,
    interpolant: I,
}

/// The exact score `s(t, x)` of an [`InterpolantMixture`], as a field.
#[derive(Debug, Clone)]
pub struct InterpolantMixtureScore<I>(InterpolantMixture<I>);

impl<I: Interpolant> InterpolantMixture<I> {
    /// The target `mixture` reached from `N(0, I)` by `interpolant`
    /// (checked: its settings, and `α² = a² + γ² > 0` before `t = 1`).
    pub fn new(mixture: GaussianMixture, interpolant: I) -> Result<Self, SolveError> {
        interpolant.check()?;
        for k in 0..100 {
            let t = k as f64 / 100.0;
            let (a2, _) = interpolant.coefficients(t).base_variance();
            if !(a2.is_finite() && a2 > 0.0) {
                return Err(SolveError::InvalidInput {
                    what: "InterpolantMixture interpolant".into(),
                    reason: format!(
                        "a² + γ² = {a2} at t = {t}: the base must stay in x_t before t = 1"
                    ),
                });
            }
        }
        Ok(InterpolantMixture {
            mixture,
            interpolant,
        })
    }

    /// The dimension `d` of one sample.
    pub fn dim(&self) -> usize {
        self.mixture.dim()
    }

    /// The target mixture.
    pub fn mixture(&self) -> &GaussianMixture {
        &self.mixture
    }

    /// The exact score as a field of its own (for [`super::interpolant_sde`]).
    pub fn score_field(&self) -> InterpolantMixtureScore<I>
    where
        I: Clone,
    {
        InterpolantMixtureScore(self.clone())
    }

    /// For each sample of the batch `x`, with the posterior component
    /// weights `w_k`: `cg · g + cm · m` into `out`, where
    /// `g = Σ w_k (x − β μ_k)/C_k` and `m = E[x_1 | x_t = x] =
    /// Σ w_k (μ_k + β v_k (x − β μ_k)/C_k)` (no workspace: one pass per
    /// sample accumulates the combination).
    fn conditionals(&self, t: f64, x: &[f64], (cg, cm): (f64, f64), out: &mut [f64]) {
        let c = self.interpolant.coefficients(t);
        let (a2, _) = c.base_variance();
        let beta = c.b;
        let mx = &self.mixture;
        let (d, kk) = (mx.dim(), mx.components());
        let (means, vars) = (mx.means(), mx.vars());
        for (xj, oj) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            oj.fill(0.0);
            let lmax = (0..kk)
                .map(|k| mx.log_component(k, beta, a2, xj))
                .fold(f64::NEG_INFINITY, f64::max);
            let mut total = 0.0;
            for k in 0..kk {
                let w = (mx.log_component(k, beta, a2, xj) - lmax).exp();
                total += w;
                let (mu, v) = (&means[k * d..(k + 1) * d], &vars[k * d..(k + 1) * d]);
                for i in 0..d {
                    let r = (xj[i] - beta * mu[i]) / (beta * beta * v[i] + a2);
                    oj[i] += w * (cg * r + cm * (mu[i] + beta * v[i] * r));
                }
            }
            oj.iter_mut().for_each(|v| *v /= total);
        }
    }

    /// The exact velocity `b(t, x) = α α̇ g + ḃ m` of a batch into `out`.
    pub fn velocity(&self, t: f64, x: &[f64], out: &mut [f64]) {
        let c = self.interpolant.coefficients(t);
        let (_, aa_dot) = c.base_variance();
        self.conditionals(t, x, (aa_dot, c.b_dot), out);
    }

    /// The exact score `s(t, x) = −g` of a batch into `out` (infinite at
    /// `t = 1` where `α = 0` and some `v_k → 0`; finite for `t < 1`).
    pub fn score(&self, t: f64, x: &[f64], out: &mut [f64]) {
        self.conditionals(t, x, (-1.0, 0.0), out);
    }

    /// The exact probability-flow map of a single-Gaussian target from
    /// time `u` to time `t` (both in `[0, 1]`) of a batch:
    /// `x_t = β_t μ + √(C_t/C_u)(x_u − β_u μ)` per coordinate. An error for
    /// a mixture of more than one component, a span outside `[0, 1]`, or a
    /// batch that is not a multiple of `d` in length.
    pub fn gaussian_flow_map(
        &self,
        u: f64,
        t: f64,
        x_u: &[f64],
        out: &mut [f64],
    ) -> Result<(), SolveError> {
        if self.mixture.components() != 1 {
            return Err(SolveError::InvalidInput {
                what: "InterpolantMixture::gaussian_flow_map".into(),
                reason: format!(
                    "the target has {} components; the closed-form map is that of one Gaussian",
                    self.mixture.components()
                ),
            });
        }
        if u != t {
            check_span((u, t))?;
        }
        let d = self.dim();
        if !x_u.len().is_multiple_of(d) || out.len() != x_u.len() {
            return Err(SolveError::DimensionMismatch {
                what: "InterpolantMixture::gaussian_flow_map batch".into(),
                expected: d,
                found: Some(x_u.len()),
                hint: format!(
                    "give whole {d}-dimensional samples and an output of the same length"
                ),
            });
        }
        let (cu, ct) = (
            self.interpolant.coefficients(u),
            self.interpolant.coefficients(t),
        );
        let (au, at) = (cu.base_variance().0, ct.base_variance().0);
        let (mu, v) = (self.mixture.means(), self.mixture.vars());
        for (j, (o, &xv)) in out.iter_mut().zip(x_u).enumerate() {
            let (m, v) = (mu[j % d], v[j % d]);
            let k = ((ct.b * ct.b * v + at) / (cu.b * cu.b * v + au)).sqrt();
            *o = ct.b * m + k * (xv - cu.b * m);
        }
        Ok(())
    }
}

/// Checks that a batch of length `n` is whole `d`-dimensional samples.
fn check_batch(d: usize, n: usize) -> Result<(), SolveError> {
    if n == 0 || !n.is_multiple_of(d) {
        return Err(SolveError::DimensionMismatch {
            what: "interpolant test-bed state".into(),
            expected: d,
            found: Some(n),
            hint: format!("the state is a batch of {d}-dimensional samples, flattened"),
        });
    }
    Ok(())
}

impl<I: Interpolant> Drift for InterpolantMixture<I> {
    fn drift(&self, t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]) {
        self.velocity(t, y, dy);
    }

    fn check_dims(&self, n: usize, _n_params: usize) -> Result<(), SolveError> {
        check_batch(self.dim(), n)
    }
}

impl<I: Interpolant> Drift for InterpolantMixtureScore<I> {
    fn drift(&self, t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]) {
        self.0.score(t, y, dy);
    }

    fn check_dims(&self, n: usize, _n_params: usize) -> Result<(), SolveError> {
        check_batch(self.0.dim(), n)
    }
}
