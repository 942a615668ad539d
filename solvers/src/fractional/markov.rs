//! The Markov approximation of fBM by Ornstein–Uhlenbeck modes (MA-fBM):
//! Carmona and Coutin, "Fractional Brownian motion and the Markov
//! property", Electron. Commun. Probab. 3, 1998; Harms and Stefanovits,
//! "Affine representations of fractional processes with applications in
//! mathematical finance", Stoch. Proc. Appl. 129, 2019; Daems, Opper,
//! Crevecoeur and Birdal, "Variational inference for SDEs driven by
//! fractional noise", ICLR 2024 (arXiv 2310.12975), whose optimised
//! weights this module computes (`../shared/reference/fbm.md` §3).
//!
//! `B̂_H(t) = Σ_k ω_k Y_k(t)` (type II, `Y_k(0) = 0`) or
//! `Σ_k ω_k (Y_k(t) − Y_k(0))` (type I, `Y(0)` stationary, covariance
//! `1/(γ_i + γ_j)`: [`stationary_covariance`]), with
//! `dY_k = −γ_k Y_k dt + dW` all driven by one Brownian motion. The weights
//! minimise `∫_0^T E[(B̂_H(t) − B_H(t))²] dt = ωᵀAω − 2bᵀω + c` (closed
//! forms of `A`, `b`, `c` in fbm.md §3.2, derived again while writing this
//! module and checked against quadrature of the defining integrals in the
//! tests); `B_H` is the `1/Γ(H+½)`-normalised integral of its type.
//!
//! # Solving `A ω = b`
//!
//! `A` is symmetric positive definite but very ill-conditioned for large
//! `K` (fbm.md §5). The system is solved after symmetric diagonal (Jacobi)
//! scaling by the eigen-decomposition of the scaled matrix, dropping
//! eigenvalues below `1e-13` of the largest (a truncated pseudo-inverse):
//! below that the exact weights are huge, alternate in sign and cannot be
//! used in double precision anyway (the covariance of `B̂` computed from
//! them cancels catastrophically), while the truncated weights stay
//! moderate and reach nearly the same error. [`MarkovApprox::rank`] says
//! how many directions were kept. What the tests compare is the error
//! reached ([`MarkovApprox::relative_error`], by quadrature of the error
//! kernel, and [`MarkovApprox::covariance_error`]), not the weights.
//!
//! Which `K` are safe: on the default grid ([`gamma_grid`]) the weights
//! are well determined for `K ≤ 16` with `T = 1` (the error from the
//! quadratic form and from quadrature agree to better than 1e-3 relative;
//! wider grids, ratio 4–5 at `K = 16`, lose that agreement for type I with
//! `H ≥ ½`). [`MarkovApprox::rank`] and
//! [`MarkovApprox::condition_number`] report the system's state. Errors
//! reached (relative mean-square error on `[0, 1]`, `K = 2, 4, 8, 16`):
//! type I `H = 0.1`: 0.41, 0.27, 0.16, 0.067; `H = 0.3`: 0.16, 0.046,
//! 5.9e-3, 3.3e-4; `H = 0.7`: 0.21, 0.10, 0.027, 1.9e-3; `H = 0.9`: 0.54,
//! 0.42, 0.26, 0.11; type II `H = 0.1`: 0.33, 0.20, 0.13, 0.052;
//! `H = 0.3`: 0.043, 8.9e-3, 2.5e-3, 1.8e-4; `H = 0.7`: 3.7e-3, 7.7e-4,
//! 1.4e-4, 5.2e-7; `H = 0.9`: 6.9e-3, 7.2e-4, 2.2e-4, 3.7e-7. Rough type-I
//! paths (`H = 0.1`) and smooth ones (`H = 0.9`) need many modes.
//!
//! # `dω/dH`
//!
//! `A` does not depend on `H`; `b` does, so `dω/dH = A⁺ db/dH` with the
//! same pseudo-inverse (the exact derivative of the weights this module
//! computes). `db/dH` is evaluated by forward-mode dual numbers through
//! the closed forms of `b`: the incomplete gamma functions and `ln Γ` are
//! written generically over the scalar (`special.rs`) and iterated to
//! convergence of the value and the derivative.

use nalgebra::{DMatrix, DVector};
use num_dual::{Dual64, DualNum};

use super::covariance::{
    FbmType, fbm_covariance, mvn_variance_constant, riemann_liouville_covariance,
};
use super::error::{FbmError, check_hurst};
use super::special::{gamma, gamma_p, gamma_q_scaled, tanh_sinh_levels};

/// Eigenvalues of the scaled `A` below this fraction of the largest are
/// dropped.
const CUTOFF: f64 = 1e-13;

/// The geometric grid `γ_k = r^{k − n}`, `k = 1..K`, `n = (K+1)/2 + offset`
/// (MA-fBM's `gamma_by_r`; `offset = 0` centres it on 1 in log scale).
pub fn gamma_grid_by_r(k: usize, r: f64, offset: f64) -> Result<Vec<f64>, FbmError> {
    if k == 0 {
        return Err(FbmError::invalid("number of OU modes", "K = 0; give K ≥ 1"));
    }
    let valid = r.is_finite() && r > 1.0 && offset.is_finite();
    if !valid {
        return Err(FbmError::invalid(
            "geometric rate grid",
            format!("r = {r}, offset = {offset}; give a finite r > 1 and a finite offset"),
        ));
    }
    let n = (k as f64 + 1.0) / 2.0 + offset;
    let g: Vec<f64> = (1..=k).map(|i| r.powf(i as f64 - n)).collect();
    check_rates(&g)?;
    Ok(g)
}

/// The geometric grid reaching `γ_K = γ_max` (MA-fBM's
/// `gamma_by_gamma_max`): `r = γ_max^{2/(K − 1 − 2·offset)}`; `K ≥ 2`.
pub fn gamma_grid_by_gamma_max(
    k: usize,
    gamma_max: f64,
    offset: f64,
) -> Result<Vec<f64>, FbmError> {
    let denom = k as f64 - 1.0 - 2.0 * offset;
    if k < 2 || denom <= 0.0 || !(gamma_max.is_finite() && gamma_max > 1.0) {
        return Err(FbmError::invalid(
            "geometric rate grid",
            format!(
                "K = {k}, γ_max = {gamma_max}, offset = {offset}; give K ≥ 2, γ_max > 1 and \
                 offset < (K − 1)/2"
            ),
        ));
    }
    gamma_grid_by_r(k, gamma_max.powf(2.0 / denom), offset)
}

/// The default grid for Hurst index `H` and horizon `T`: `K` rates in
/// geometric progression with ratio 3, centred (in log scale) on
/// `γ_c = 10^{2.5(½ − H)}/T`: `γ_k = γ_c · 3^{k − (K+1)/2}`. The range
/// widens with `K` (so the error keeps falling: a fixed range plateaus,
/// fbm.md §5) and moves to faster rates for rough paths (`H < ½`, whose
/// kernel is singular at 0) and to slower ones for smooth paths (`H > ½`,
/// whose type-I representation needs `γ → 0`). Chosen from a scan of
/// ratios 3–5 and centres `10^{c(½−H)}`, `c ∈ [2, 3]`: ratio 3 keeps the
/// weight system well enough conditioned for `K ≤ 16` that the error
/// reported by the quadratic form and by quadrature agree. Errors reached
/// on `T = 1`: the table in the `covariance_error_decreases_in_k` test.
pub fn gamma_grid(k: usize, hurst: f64, horizon: f64) -> Result<Vec<f64>, FbmError> {
    let hurst = check_hurst(hurst)?;
    if k == 0 || !(horizon.is_finite() && horizon > 0.0) {
        return Err(FbmError::invalid(
            "rate grid",
            format!("K = {k}, T = {horizon}; give K ≥ 1 and a finite T > 0"),
        ));
    }
    let centre = 10f64.powf(2.5 * (0.5 - hurst)) / horizon;
    let mid = (k as f64 + 1.0) / 2.0;
    Ok((1..=k)
        .map(|i| centre * 3f64.powf(i as f64 - mid))
        .collect())
}

/// Checks a rate set: finite, positive.
pub(crate) fn check_rates(g: &[f64]) -> Result<(), FbmError> {
    if g.is_empty() {
        return Err(FbmError::invalid(
            "OU rates",
            "none given; give at least one γ > 0",
        ));
    }
    if let Some(i) = g.iter().position(|&v| !(v.is_finite() && v > 0.0)) {
        return Err(FbmError::invalid(
            format!("OU rate γ[{i}] = {}", g[i]),
            "rates must be finite and positive",
        ));
    }
    Ok(())
}

/// The stationary covariance `1/(γ_i + γ_j)` of OU processes with rates
/// `γ` driven by one Brownian motion (the type-I start).
pub fn stationary_covariance(gammas: &[f64]) -> DMatrix<f64> {
    let k = gammas.len();
    DMatrix::from_fn(k, k, |i, j| 1.0 / (gammas[i] + gammas[j]))
}

/// The vector `b` of fbm.md §3.2 for Hurst index `hurst` (any dual type).
pub(crate) fn b_vector<D: DualNum<Primitive = f64> + Copy>(
    kind: FbmType,
    hurst: D,
    horizon: f64,
    gammas: &[f64],
) -> Vec<D> {
    let t = horizon;
    let alpha = hurst + 0.5;
    gammas
        .iter()
        .map(|&g| {
            let x = g * t;
            // γ^{−α}
            let g_alpha = (-alpha * g.ln()).exp();
            match kind {
                FbmType::RiemannLiouville => {
                    g_alpha * gamma_p(alpha, x) * t - alpha * g_alpha / g * gamma_p(alpha + 1.0, x)
                }
                FbmType::MandelbrotVanNess => {
                    g_alpha * (2.0 * t) - (alpha * t.ln()).exp() / (gamma(alpha + 1.0) * g)
                        + g_alpha / g * (-gamma_q_scaled(alpha, x) + (-x).exp())
                }
            }
        })
        .collect()
}

/// The matrix `A` of fbm.md §3.2.
fn a_matrix(kind: FbmType, horizon: f64, gammas: &[f64]) -> DMatrix<f64> {
    let t = horizon;
    let k = gammas.len();
    // (1 − e^{−γT})/γ, accurate for small γT
    let frac = |g: f64| -(-g * t).exp_m1() / g;
    DMatrix::from_fn(k, k, |i, j| {
        let (gi, gj) = (gammas[i], gammas[j]);
        let s = gi + gj;
        match kind {
            FbmType::RiemannLiouville => (t - frac(s)) / s,
            FbmType::MandelbrotVanNess => (2.0 * t - frac(gi) - frac(gj)) / s,
        }
    })
}

/// `c = ∫_0^T Var B_H(t) dt`.
fn c_value(kind: FbmType, hurst: f64, horizon: f64) -> f64 {
    let p = horizon.powf(2.0 * hurst + 1.0) / (2.0 * hurst + 1.0);
    match kind {
        FbmType::MandelbrotVanNess => mvn_variance_constant(hurst) * p,
        FbmType::RiemannLiouville => {
            let g = gamma(hurst + 0.5);
            p / (2.0 * hurst * g * g)
        }
    }
}

/// The Markov approximation of fBM of one type and Hurst index on `[0, T]`
/// with given OU rates: the optimal weights, their derivative in `H`, and
/// the error they reach.
///
/// ```
/// use sdeflow_solvers::fractional::{FbmType, MarkovApprox, gamma_grid};
/// let gammas = gamma_grid(6, 0.3, 1.0)?;
/// let ma = MarkovApprox::new(FbmType::MandelbrotVanNess, 0.3, 1.0, &gammas)?;
/// assert_eq!(ma.weights().len(), 6);
/// assert!(ma.relative_error() < 0.05);
/// # Ok::<(), sdeflow_solvers::fractional::FbmError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MarkovApprox {
    kind: FbmType,
    hurst: f64,
    horizon: f64,
    gammas: Vec<f64>,
    a: DMatrix<f64>,
    b: DVector<f64>,
    c: f64,
    /// The truncated pseudo-inverse of `A`.
    pinv: DMatrix<f64>,
    rank: usize,
    cond: f64,
    weights: DVector<f64>,
}

impl MarkovApprox {
    /// The optimal weights for `kind`, Hurst index `hurst`, horizon `T`
    /// and the rates `gammas` (finite, positive; e.g. [`gamma_grid`]).
    pub fn new(kind: FbmType, hurst: f64, horizon: f64, gammas: &[f64]) -> Result<Self, FbmError> {
        let hurst = check_hurst(hurst)?;
        if !(horizon.is_finite() && horizon > 0.0) {
            return Err(FbmError::invalid(
                "horizon",
                format!("T = {horizon}; give a finite T > 0"),
            ));
        }
        check_rates(gammas)?;
        let k = gammas.len();
        let a = a_matrix(kind, horizon, gammas);
        let b = DVector::from_vec(b_vector(kind, hurst, horizon, gammas));
        let c = c_value(kind, hurst, horizon);
        // Jacobi scaling, then the eigen-decomposition of the scaled matrix
        let d = DVector::from_fn(k, |i, _| 1.0 / a[(i, i)].sqrt());
        let scaled = DMatrix::from_fn(k, k, |i, j| d[i] * a[(i, j)] * d[j]);
        let eig = scaled.symmetric_eigen();
        let max = eig.eigenvalues.max();
        let min = eig.eigenvalues.min();
        let mut inv = DMatrix::zeros(k, k);
        let mut rank = 0;
        for (l, &lam) in eig.eigenvalues.iter().enumerate() {
            if lam > CUTOFF * max {
                rank += 1;
                let v = eig.eigenvectors.column(l);
                inv += (v * v.transpose()) / lam;
            }
        }
        let pinv = DMatrix::from_fn(k, k, |i, j| d[i] * inv[(i, j)] * d[j]);
        let weights = &pinv * &b;
        if weights.iter().any(|w| !w.is_finite()) {
            return Err(FbmError::invalid(
                "OU rates",
                "the weight system has no finite solution for these rates (rates too close or \
                 too extreme); spread them geometrically (gamma_grid)",
            ));
        }
        Ok(MarkovApprox {
            kind,
            hurst,
            horizon,
            gammas: gammas.to_vec(),
            a,
            b,
            c,
            pinv,
            rank,
            cond: if min > 0.0 { max / min } else { f64::INFINITY },
            weights,
        })
    }

    /// The fBM type approximated.
    pub fn kind(&self) -> FbmType {
        self.kind
    }

    /// The Hurst index.
    pub fn hurst(&self) -> f64 {
        self.hurst
    }

    /// The horizon `T`.
    pub fn horizon(&self) -> f64 {
        self.horizon
    }

    /// The OU rates `γ`.
    pub fn gammas(&self) -> &[f64] {
        &self.gammas
    }

    /// The weights `ω`.
    pub fn weights(&self) -> &[f64] {
        self.weights.as_slice()
    }

    /// The matrix `A` of the weight system `A ω = b` (fbm.md §3.2).
    pub fn matrix(&self) -> &DMatrix<f64> {
        &self.a
    }

    /// The right-hand side `b` of the weight system.
    pub fn rhs(&self) -> &[f64] {
        self.b.as_slice()
    }

    /// How many eigen-directions of the scaled `A` were kept (`K` when the
    /// system was solved exactly).
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The condition number of the Jacobi-scaled `A`.
    pub fn condition_number(&self) -> f64 {
        self.cond
    }

    /// The mean-square error `(1/T) ∫_0^T E[(B̂_H − B_H)²] dt` reached.
    ///
    /// Evaluated from the error kernel `e(v) = Σ_k ω_k e^{−γ_k v} −
    /// v^{H−½}/Γ(H+½)` (`B̂_H − B_H` is the Wiener integral of `e`, plus,
    /// for type I, the past's `e(t + w) − e(w)`):
    /// `(1/T) ∫_0^T (T − v) e(v)² dv`, plus for type I
    /// `(1/T) ∫_0^T ∫_0^∞ (e(t + w) − e(w))² dw dt`, by tanh–sinh
    /// quadrature (relative accuracy about 1e-6). Unlike the quadratic form `ωᵀAω − 2bᵀω + c`, which
    /// cancels catastrophically when the weights are large, this keeps its
    /// relative precision (the sum in `e` loses only `ε Σ|ω_k|` against
    /// the kernel).
    pub fn mean_square_error(&self) -> f64 {
        let t = self.horizon;
        let e = |v: f64| self.kernel_error(v);
        let recent = t * tanh_sinh_levels(|x, y| y * e(t * x).powi(2), 1e-9, 9);
        match self.kind {
            FbmType::RiemannLiouville => recent,
            FbmType::MandelbrotVanNess => {
                // w = T x/(1 − x) maps [0, 1) onto [0, ∞)
                let past = |tt: f64| {
                    tanh_sinh_levels(
                        |x, y| {
                            let w = t * x / y;
                            (e(tt + w) - e(w)).powi(2) * t / (y * y)
                        },
                        1e-8,
                        7,
                    )
                };
                recent + tanh_sinh_levels(|x, _| past(t * x), 1e-7, 6)
            }
        }
    }

    /// The error kernel `e(v) = Σ_k ω_k e^{−γ_k v} − v^{H−½}/Γ(H+½)`, `v > 0`.
    fn kernel_error(&self, v: f64) -> f64 {
        let approx: f64 = self
            .gammas
            .iter()
            .zip(self.weights.iter())
            .map(|(g, w)| w * (-g * v).exp())
            .sum();
        approx - v.powf(self.hurst - 0.5) / gamma(self.hurst + 0.5)
    }

    /// The same error from the quadratic form `(ωᵀAω − 2bᵀω + c)/T`
    /// (exact in exact arithmetic; cancels when the weights are large).
    #[cfg(test)]
    pub(crate) fn quadratic_mean_square_error(&self) -> f64 {
        let w = &self.weights;
        let quad = w.dot(&(&self.a * w));
        (quad - 2.0 * self.b.dot(w) + self.c) / self.horizon
    }

    /// [`MarkovApprox::mean_square_error`] relative to the mean variance
    /// `(1/T) ∫_0^T Var B_H dt` (0 is exact, 1 is `ω = 0`).
    pub fn relative_error(&self) -> f64 {
        self.mean_square_error() * self.horizon / self.c
    }

    /// `dω/dH`: the derivative of [`MarkovApprox::weights`] in the Hurst
    /// index (rates and horizon fixed).
    pub fn dweights_dhurst(&self) -> Vec<f64> {
        let db: Vec<f64> = b_vector(
            self.kind,
            Dual64::new(self.hurst, 1.0),
            self.horizon,
            &self.gammas,
        )
        .iter()
        .map(|v| v.eps)
        .collect();
        (&self.pinv * DVector::from_vec(db)).as_slice().to_vec()
    }

    /// `Cov(B̂_H(s), B̂_H(t))`, `s, t ∈ [0, T]` (type I with the modes
    /// started stationary).
    pub fn covariance(&self, s: f64, t: f64) -> f64 {
        let (s, t) = if s <= t { (s, t) } else { (t, s) };
        let g = &self.gammas;
        let w = &self.weights;
        let mut acc = 0.0;
        for i in 0..g.len() {
            for j in 0..g.len() {
                let sum = g[i] + g[j];
                let kij = match self.kind {
                    FbmType::MandelbrotVanNess => {
                        (1.0 + (-g[j] * (t - s)).exp() - (-g[i] * s).exp() - (-g[j] * t).exp())
                            / sum
                    }
                    FbmType::RiemannLiouville => {
                        (-g[j] * (t - s)).exp() * -(-sum * s).exp_m1() / sum
                    }
                };
                acc += w[i] * w[j] * kij;
            }
        }
        acc
    }

    /// `Cov(B_H(s), B_H(t))` of the process approximated (the
    /// `1/Γ(H+½)` normalisation of its type).
    pub fn target_covariance(&self, s: f64, t: f64) -> f64 {
        match self.kind {
            FbmType::MandelbrotVanNess => {
                mvn_variance_constant(self.hurst) * fbm_covariance(self.hurst, s, t)
            }
            FbmType::RiemannLiouville => riemann_liouville_covariance(self.hurst, s, t),
        }
    }

    /// The largest covariance error `|Cov B̂ − Cov B_H|` over the grid
    /// `t_k = kT/n`, `k = 1..n` (all pairs), relative to the largest
    /// variance `Var B_H(T)`. `Cov B̂` is the sum `Σ ω_i ω_j K_ij`, which
    /// loses `ε (Σ|ω|)²` to cancellation: with large weights trust
    /// [`MarkovApprox::relative_error`] instead.
    pub fn covariance_error(&self, n: usize) -> f64 {
        let n = n.max(1);
        let t = |k: usize| self.horizon * k as f64 / n as f64;
        let scale = self.target_covariance(self.horizon, self.horizon);
        let mut worst: f64 = 0.0;
        for i in 1..=n {
            for j in i..=n {
                let e = (self.covariance(t(i), t(j)) - self.target_covariance(t(i), t(j))).abs();
                worst = worst.max(e);
            }
        }
        worst / scale
    }
}
