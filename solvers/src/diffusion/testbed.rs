//! A closed-form test bed that needs no trained network: data from a
//! Gaussian mixture with diagonal covariances, whose noised marginals
//! `p_t = Σ_k π_k N(α_t μ_k, α_t² Σ_k + σ_t² I)` give the exact noise and
//! data predictions, and a single Gaussian, whose probability-flow map is
//! affine and known in closed form.
//!
//! Formulas: `../shared/reference/exponential.md` §5 and `diffusion.md` §7.
//! With `C_k = α_t² Σ_k + σ_t² I` and posterior weights
//! `w_k ∝ π_k N(x; α_t μ_k, C_k)` (by log-sum-exp), the exact noise
//! prediction is `ε* = σ_t Σ_k w_k C_k⁻¹ (x − α_t μ_k)` and the data
//! prediction `x0* = (x − σ_t ε*)/α_t`. For one Gaussian `N(μ, diag v)`,
//! `C_t^{−1/2}(x_t − α_t μ)` is constant along the flow, so
//! `x_t = α_t μ + sqrt(C_t/C_u)(x_u − α_u μ)` per coordinate.

use super::ems::Ems;
use super::schedule::NoiseSchedule;
use crate::error::SolveError;

/// A Gaussian mixture `Σ_k π_k N(μ_k, diag v_k)` in `d` dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianMixture {
    d: usize,
    log_weights: Vec<f64>,
    means: Vec<f64>,
    vars: Vec<f64>,
}

fn finite(what: &str, v: &[f64]) -> Result<(), SolveError> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(SolveError::InvalidInput {
            what: format!("{what}[{i}]"),
            reason: format!("{} is not finite", v[i]),
        }),
        None => Ok(()),
    }
}

impl GaussianMixture {
    /// The mixture of weights `weights` (positive, normalised here), means
    /// `means` (`K × d`, row per component) and per-coordinate variances
    /// `vars` (`K × d`, positive).
    pub fn new(weights: &[f64], means: &[f64], vars: &[f64]) -> Result<Self, SolveError> {
        let k = weights.len();
        if k == 0 || means.is_empty() || !means.len().is_multiple_of(k) {
            return Err(SolveError::DimensionMismatch {
                what: "GaussianMixture means".into(),
                expected: k.max(1),
                found: Some(means.len()),
                hint: "give K ≥ 1 weights and K × d means, a row per component".into(),
            });
        }
        let d = means.len() / k;
        if vars.len() != k * d {
            return Err(SolveError::DimensionMismatch {
                what: "GaussianMixture vars".into(),
                expected: k * d,
                found: Some(vars.len()),
                hint: "give a variance per component and coordinate (K × d)".into(),
            });
        }
        finite("GaussianMixture means", means)?;
        if let Some(i) = weights.iter().position(|w| !(w.is_finite() && *w > 0.0)) {
            return Err(SolveError::InvalidInput {
                what: format!("GaussianMixture weights[{i}]"),
                reason: format!("{} must be finite and positive", weights[i]),
            });
        }
        if let Some(i) = vars.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(SolveError::InvalidInput {
                what: format!("GaussianMixture vars[{i}]"),
                reason: format!("{} must be finite and positive", vars[i]),
            });
        }
        let total: f64 = weights.iter().sum();
        Ok(GaussianMixture {
            d,
            log_weights: weights.iter().map(|w| (w / total).ln()).collect(),
            means: means.to_vec(),
            vars: vars.to_vec(),
        })
    }

    /// The benches' and tests' random mixture in `d` dimensions: four
    /// components of weights 0.1, 0.2, 0.3, 0.4, means `1.5 · N(0, 1)`
    /// and variances `0.02 + 0.28 · U(0, 1)` per coordinate, drawn from
    /// `rng` in that order (all the means, then all the variances).
    ///
    /// ```
    /// use rand::SeedableRng;
    /// use sdeflow_solvers::diffusion::GaussianMixture;
    /// let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
    /// let gmm = GaussianMixture::random(16, &mut rng).unwrap();
    /// assert_eq!((gmm.dim(), gmm.components()), (16, 4));
    /// ```
    pub fn random<R: rand::Rng + ?Sized>(d: usize, rng: &mut R) -> Result<Self, SolveError> {
        use rand::RngExt;
        let weights = [0.1, 0.2, 0.3, 0.4];
        let k = weights.len();
        let means: Vec<f64> = (0..k * d)
            .map(|_| 1.5 * rng.sample::<f64, _>(rand_distr::StandardNormal))
            .collect();
        let vars: Vec<f64> = (0..k * d)
            .map(|_| 0.02 + 0.28 * rng.random::<f64>())
            .collect();
        GaussianMixture::new(&weights, &means, &vars)
    }

    /// The dimension `d` of one sample.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// The weights' logarithms `log π_k` (normalised).
    pub fn log_weights(&self) -> &[f64] {
        &self.log_weights
    }

    /// The means, `K × d`, a row per component.
    pub fn means(&self) -> &[f64] {
        &self.means
    }

    /// The per-coordinate variances, `K × d`, a row per component.
    pub fn vars(&self) -> &[f64] {
        &self.vars
    }

    /// The number of components `K`.
    pub fn components(&self) -> usize {
        self.log_weights.len()
    }

    /// `log π_k + log N(x; α μ_k, C_k)` up to the constant `−(d/2) log 2π`.
    pub(crate) fn log_component(&self, k: usize, a: f64, s2: f64, x: &[f64]) -> f64 {
        let (mu, v) = (
            &self.means[k * self.d..(k + 1) * self.d],
            &self.vars[k * self.d..(k + 1) * self.d],
        );
        let mut acc = 0.0;
        for i in 0..self.d {
            let c = a * a * v[i] + s2;
            let r = x[i] - a * mu[i];
            acc += r * r / c + c.ln();
        }
        self.log_weights[k] - 0.5 * acc
    }

    /// The exact noise prediction `ε*(x, t)` for a batch `x` of samples
    /// (`x.len()` a multiple of `d`, sample after sample) into `out`.
    pub fn noise<S: NoiseSchedule + ?Sized>(
        &self,
        schedule: &S,
        t: f64,
        x: &[f64],
        out: &mut [f64],
    ) {
        let (a, s) = (schedule.alpha(t), schedule.sigma(t));
        let s2 = s * s;
        let d = self.d;
        for (xj, oj) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let kk = self.components();
            let lmax = (0..kk)
                .map(|k| self.log_component(k, a, s2, xj))
                .fold(f64::NEG_INFINITY, f64::max);
            oj.iter_mut().for_each(|o| *o = 0.0);
            let mut total = 0.0;
            for k in 0..kk {
                let w = (self.log_component(k, a, s2, xj) - lmax).exp();
                total += w;
                let (mu, v) = (
                    &self.means[k * d..(k + 1) * d],
                    &self.vars[k * d..(k + 1) * d],
                );
                for i in 0..d {
                    oj[i] += w * (xj[i] - a * mu[i]) / (a * a * v[i] + s2);
                }
            }
            let scale = s / total;
            oj.iter_mut().for_each(|o| *o *= scale);
        }
    }

    /// The exact data prediction `x0*(x, t) = (x − σ_t ε*)/α_t` for a batch.
    pub fn data<S: NoiseSchedule + ?Sized>(
        &self,
        schedule: &S,
        t: f64,
        x: &[f64],
        out: &mut [f64],
    ) {
        self.noise(schedule, t, x, out);
        let (a, s) = (schedule.alpha(t), schedule.sigma(t));
        for (o, &xv) in out.iter_mut().zip(x) {
            *o = (xv - s * *o) / a;
        }
    }
}

/// A Gaussian `N(μ, diag v)`: its probability-flow map is known exactly.
///
/// ```
/// use sdeflow_solvers::diffusion::{DiagonalGaussian, VpLinear};
/// // diffusion.md §7: μ = 0.5, s = 0.3, VP linear, x_T = 1 at T = 1
/// let g = DiagonalGaussian::new(vec![0.5], vec![0.09])?;
/// let mut x0 = [0.0];
/// g.flow_map(&VpLinear::default(), 1.0, 1e-3, &[1.0], &mut x0);
/// assert!((x0[0] - 0.79915881).abs() < 1e-8);
/// # Ok::<(), sdeflow_solvers::error::SolveError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DiagonalGaussian {
    mean: Vec<f64>,
    var: Vec<f64>,
}

impl DiagonalGaussian {
    /// `N(mean, diag var)`, variances positive.
    pub fn new(mean: Vec<f64>, var: Vec<f64>) -> Result<Self, SolveError> {
        if mean.is_empty() || mean.len() != var.len() {
            return Err(SolveError::DimensionMismatch {
                what: "DiagonalGaussian var".into(),
                expected: mean.len(),
                found: Some(var.len()),
                hint: "give one variance per coordinate of the mean (at least one)".into(),
            });
        }
        finite("DiagonalGaussian mean", &mean)?;
        if let Some(i) = var.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(SolveError::InvalidInput {
                what: format!("DiagonalGaussian var[{i}]"),
                reason: format!("{} must be finite and positive", var[i]),
            });
        }
        Ok(DiagonalGaussian { mean, var })
    }

    /// The dimension `d`.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The exact noise prediction `σ_t (x − α_t μ)/(α_t² v + σ_t²)` for a
    /// batch `x` (a multiple of `d`).
    pub fn noise<S: NoiseSchedule + ?Sized>(
        &self,
        schedule: &S,
        t: f64,
        x: &[f64],
        out: &mut [f64],
    ) {
        let (a, s) = (schedule.alpha(t), schedule.sigma(t));
        let d = self.dim();
        for (j, (o, &xv)) in out.iter_mut().zip(x).enumerate() {
            let i = j % d;
            *o = s * (xv - a * self.mean[i]) / (a * a * self.var[i] + s * s);
        }
    }

    /// DPM-Solver-v3's empirical model statistics of this Gaussian in
    /// closed form, on `points` uniform-`λ` values from `lambda_min` to
    /// `lambda_max` (any schedule: they depend on `λ` only). With
    /// `q = v e^{2λ}` per coordinate, `ε* = σ(x − αμ)/(α²v + σ²)` has the
    /// constant Jacobian diagonal `σ/(α²v + σ²)`, so
    /// `l = σ²/(α²v + σ²) = 1/(1 + q)`; then
    /// `f = (σ ε* − l x)/α = −l μ` does not depend on `x`, and
    /// `df/dλ = 2 μ q l² = 2 μ l (1 − l)`. Every `(s, b)` with
    /// `s f + b = f'` fits exactly; these are `s = 0`, `b = f'` (the rule
    /// [`Ems::estimate`] applies where `f` has no variance).
    ///
    /// ```
    /// use sdeflow_solvers::diffusion::DiagonalGaussian;
    /// let g = DiagonalGaussian::new(vec![0.5], vec![0.09])?;
    /// let ems = g.ems(-5.0, 5.0, 11)?;
    /// // λ = 0: q = 0.09, l = 1/1.09
    /// assert!((ems.l_at(5)[0] - 1.0 / 1.09).abs() < 1e-15);
    /// assert!((ems.b_at(5)[0] - 2.0 * 0.5 * 0.09 / 1.09_f64.powi(2)).abs() < 1e-15);
    /// assert_eq!(ems.s_at(5), &[0.0]);
    /// # Ok::<(), sdeflow_solvers::error::SolveError>(())
    /// ```
    ///
    /// # Errors
    /// As [`Ems::from_tables`].
    pub fn ems(&self, lambda_min: f64, lambda_max: f64, points: usize) -> Result<Ems, SolveError> {
        // validates the grid before the tables are built
        let grid = Ems::noise_prediction(self.dim(), lambda_min, lambda_max, points)?;
        let d = self.dim();
        let (mut l, mut b) = (vec![0.0; points * d], vec![0.0; points * d]);
        for k in 0..points {
            let e2 = (2.0 * grid.lambda(k)).exp();
            for i in 0..d {
                let q = self.var[i] * e2;
                let li = 1.0 / (1.0 + q);
                l[k * d + i] = li;
                // 1 − l = q l, without cancellation at any q
                b[k * d + i] = 2.0 * self.mean[i] * li * (q * li);
            }
        }
        Ems::from_tables(
            d,
            lambda_min,
            lambda_max,
            points,
            l,
            vec![0.0; points * d],
            b,
        )
    }

    /// The exact probability-flow map from time `u` to time `t` of a batch:
    /// `x_t = α_t μ + sqrt(C_t/C_u)(x_u − α_u μ)` per coordinate.
    pub fn flow_map<S: NoiseSchedule + ?Sized>(
        &self,
        schedule: &S,
        u: f64,
        t: f64,
        x_u: &[f64],
        out: &mut [f64],
    ) {
        let (au, su, at, st) = (
            schedule.alpha(u),
            schedule.sigma(u),
            schedule.alpha(t),
            schedule.sigma(t),
        );
        let d = self.dim();
        for (j, (o, &xv)) in out.iter_mut().zip(x_u).enumerate() {
            let (m, v) = (self.mean[j % d], self.var[j % d]);
            let k = ((at * at * v + st * st) / (au * au * v + su * su)).sqrt();
            *o = at * m + k * (xv - au * m);
        }
    }
}

impl GaussianMixture {
    /// The mean (`d`) and covariance (`d × d`, row-major) of the noised
    /// marginal `p_t`: `m = Σ π_k α_t μ_k`,
    /// `C = Σ π_k (C_k + α_t² μ_k μ_kᵀ) − m mᵀ` with
    /// `C_k = α_t² diag v_k + σ_t² I` (`diffusion.md` §7, metric (b)).
    pub fn marginal_moments<S: NoiseSchedule + ?Sized>(
        &self,
        schedule: &S,
        t: f64,
    ) -> (Vec<f64>, Vec<f64>) {
        let (a, s) = (schedule.alpha(t), schedule.sigma(t));
        let d = self.d;
        let (mut m, mut c) = (vec![0.0; d], vec![0.0; d * d]);
        for k in 0..self.components() {
            let w = self.log_weights[k].exp();
            let (mu, v) = (
                &self.means[k * d..(k + 1) * d],
                &self.vars[k * d..(k + 1) * d],
            );
            for i in 0..d {
                m[i] += w * a * mu[i];
                c[i * d + i] += w * (a * a * v[i] + s * s);
                for j in 0..d {
                    c[i * d + j] += w * a * a * mu[i] * mu[j];
                }
            }
        }
        for i in 0..d {
            for j in 0..d {
                c[i * d + j] -= m[i] * m[j];
            }
        }
        (m, c)
    }

    /// `count` exact samples of the noised marginal `p_t` (sample after
    /// sample), a pure function of `seed`: a component drawn by its weight,
    /// then `α_t μ_k + √(α_t² v_k + σ_t²) ξ`, `ξ ~ N(0, I)`.
    pub fn sample_marginal<S: NoiseSchedule + ?Sized>(
        &self,
        schedule: &S,
        t: f64,
        count: usize,
        seed: u64,
    ) -> Vec<f64> {
        use rand::SeedableRng;
        use rand::distr::{Distribution, StandardUniform};
        use rand::rngs::Xoshiro256PlusPlus;
        let (a, s) = (schedule.alpha(t), schedule.sigma(t));
        let d = self.d;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut normals = crate::brownian::rng::NormalStream::new(seed);
        let mut out = vec![0.0; count * d];
        for x in out.chunks_exact_mut(d) {
            let u: f64 = StandardUniform.sample(&mut rng);
            let mut acc = 0.0;
            let mut k = self.components() - 1;
            for (j, lw) in self.log_weights.iter().enumerate() {
                acc += lw.exp();
                if u < acc {
                    k = j;
                    break;
                }
            }
            let (mu, v) = (
                &self.means[k * d..(k + 1) * d],
                &self.vars[k * d..(k + 1) * d],
            );
            for i in 0..d {
                x[i] = a * mu[i] + (a * a * v[i] + s * s).sqrt() * normals.next_normal();
            }
        }
        out
    }
}

/// The sliced Wasserstein-2 distance between two sets of `d`-dimensional
/// samples of equal size (`a`, `b` flattened, sample after sample):
/// `SW_2 = (mean_θ W_2²(θ·a, θ·b))^{1/2}` over `projections` directions
/// `θ` uniform on the sphere (normalised Gaussian vectors from `seed`, so
/// the same seed gives the same directions), each 1-D `W_2` that of the
/// sorted projections (Bonneel et al., "Sliced and Radon Wasserstein
/// barycenters of measures", 2015; `diffusion.md` §7, metric (c)).
///
/// ```
/// use sdeflow_solvers::diffusion::sliced_wasserstein;
/// // one 1-D sample set shifted by 0.5: every direction sees the shift
/// let a = [0.0, 1.0, 2.0];
/// let b = [0.5, 1.5, 2.5];
/// assert!((sliced_wasserstein(&a, &b, 1, 8, 3)? - 0.5).abs() < 1e-15);
/// # Ok::<(), sdeflow_solvers::error::SolveError>(())
/// ```
pub fn sliced_wasserstein(
    a: &[f64],
    b: &[f64],
    d: usize,
    projections: usize,
    seed: u64,
) -> Result<f64, SolveError> {
    if d == 0 || a.is_empty() || a.len() != b.len() || !a.len().is_multiple_of(d) {
        return Err(SolveError::DimensionMismatch {
            what: "sliced_wasserstein samples".into(),
            expected: a.len(),
            found: Some(b.len()),
            hint: format!(
                "give two non-empty sets of the same number of {d}-dimensional samples \
                 (d ≥ 1), flattened"
            ),
        });
    }
    if projections == 0 {
        return Err(SolveError::InvalidInput {
            what: "sliced_wasserstein projections".into(),
            reason: "0 directions; give at least one (POT's default is 50)".into(),
        });
    }
    finite("sliced_wasserstein a", a)?;
    finite("sliced_wasserstein b", b)?;
    let count = a.len() / d;
    let mut normals = crate::brownian::rng::NormalStream::new(seed);
    let (mut theta, mut pa, mut pb) = (vec![0.0; d], vec![0.0; count], vec![0.0; count]);
    let mut total = 0.0;
    for _ in 0..projections {
        let mut norm = 0.0;
        while norm == 0.0 {
            theta.iter_mut().for_each(|v| *v = normals.next_normal());
            norm = theta.iter().map(|v| v * v).sum::<f64>().sqrt();
        }
        theta.iter_mut().for_each(|v| *v /= norm);
        let project = |x: &[f64], out: &mut [f64]| {
            for (o, xj) in out.iter_mut().zip(x.chunks_exact(d)) {
                *o = xj.iter().zip(&theta).map(|(x, t)| x * t).sum();
            }
            out.sort_by(f64::total_cmp);
        };
        project(a, &mut pa);
        project(b, &mut pb);
        total += pa
            .iter()
            .zip(&pb)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            / count as f64;
    }
    Ok((total / projections as f64).sqrt())
}
