//! Noise schedules: how much signal `α_t` and noise `σ_t` the forward
//! process `x_t = α_t x_0 + σ_t ε` keeps at time `t`, the half log-SNR
//! `λ_t = log(α_t/σ_t)` and its inverse `t(λ)`.
//!
//! Sources (formulas and values: `../shared/reference/diffusion.md` §1 and
//! `exponential.md` §4): VP linear and VE from Song et al., "Score-based
//! generative modeling through stochastic differential equations" (ICLR 2021,
//! score_sde `sde_lib.py`); VP cosine from Nichol & Dhariwal, "Improved
//! denoising diffusion probabilistic models" (ICML 2021); EDM from Karras et
//! al., "Elucidating the design space of diffusion-based generative models"
//! (NeurIPS 2022); rectified flow `α = 1 − t, σ = t` as in the diffusers
//! flow-matching schedulers. The discrete DDPM schedule is in
//! [`super::discrete`].

use crate::error::SolveError;

/// A noise schedule: `α_t`, `σ_t`, `λ_t = log(α_t/σ_t)` (strictly
/// decreasing in `t`), its inverse and the time derivatives the
/// probability-flow ODE needs. Samplers step from large `t` (noise) to
/// small `t` (data).
pub trait NoiseSchedule {
    /// `log α_t`.
    fn log_alpha(&self, t: f64) -> f64;

    /// `σ_t`.
    fn sigma(&self, t: f64) -> f64;

    /// `λ_t = log α_t − log σ_t`.
    fn lambda(&self, t: f64) -> f64 {
        self.log_alpha(t) - self.sigma(t).ln()
    }

    /// The inverse of `λ`: the time `t` with `λ_t = lambda`.
    fn t_of_lambda(&self, lambda: f64) -> f64;

    /// `d log α_t / dt` (the drift coefficient `f(t)` of the forward SDE).
    fn d_log_alpha(&self, t: f64) -> f64;

    /// `dλ_t / dt` (negative).
    fn d_lambda(&self, t: f64) -> f64;

    /// `α_t`.
    fn alpha(&self, t: f64) -> f64 {
        self.log_alpha(t).exp()
    }

    /// The span of times on which the schedule is defined and `λ` is finite:
    /// `(t_min, t_max)`, e.g. `(0, 1]` for the VP schedules, where `t_min`
    /// itself may be excluded (`σ = 0` there).
    fn t_range(&self) -> (f64, f64);

    /// Checks that `t` lies in [`NoiseSchedule::t_range`] with `σ_t > 0` (a
    /// finite `λ_t`); `what` names the time for the message.
    fn check_time(&self, what: &str, t: f64) -> Result<(), SolveError> {
        let (lo, hi) = self.t_range();
        let ok = t.is_finite() && t >= lo && t <= hi && self.lambda(t).is_finite();
        if ok {
            Ok(())
        } else {
            Err(SolveError::InvalidInput {
                what: what.into(),
                reason: format!(
                    "t = {t} is outside the schedule's times [{lo}, {hi}] or has σ_t = 0 \
                     (λ_t infinite); take a time inside the range, e.g. t_end = 1e-3 rather \
                     than 0"
                ),
            })
        }
    }
}

/// `−log(1 + e^{−2λ})` = `2 log α` of a VP schedule at half log-SNR `λ`
/// (without overflow for large `|λ|`).
#[inline]
pub(crate) fn vp_two_log_alpha(lambda: f64) -> f64 {
    // log(1 + e^x) = max(x, 0) + log1p(e^{−|x|})
    let x = -2.0 * lambda;
    -(x.max(0.0) + (-x.abs()).exp().ln_1p())
}

/// `log σ` of a VP schedule (`σ² = 1 − α²`) from `log α`.
#[inline]
pub(crate) fn vp_log_sigma(log_alpha: f64) -> f64 {
    0.5 * (-(2.0 * log_alpha).exp_m1()).ln()
}

/// Checks that a schedule parameter is finite and positive.
pub(crate) fn positive(what: &str, v: f64) -> Result<(), SolveError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(SolveError::InvalidInput {
            what: what.into(),
            reason: format!("{v} must be finite and positive"),
        })
    }
}

/// Checks `0 < lo < hi`, both finite, for the parameters named
/// `{owner} {lo_name}` and `{owner} {hi_name}`.
fn increasing(
    owner: &str,
    (lo_name, lo): (&str, f64),
    (hi_name, hi): (&str, f64),
) -> Result<(), SolveError> {
    positive(&format!("{owner} {lo_name}"), lo)?;
    positive(&format!("{owner} {hi_name}"), hi)?;
    if hi <= lo {
        return Err(SolveError::InvalidInput {
            what: format!("{owner} {hi_name}"),
            reason: format!("{hi_name} = {hi} must exceed {lo_name} = {lo}"),
        });
    }
    Ok(())
}

/// Variance-preserving schedule with linear `β(t) = β0 + (β1 − β0) t` on
/// `t ∈ (0, 1]` (Song et al. 2021, `VPSDE`): `log α_t = −¼(β1 − β0)t² −
/// ½β0 t`, `σ_t = sqrt(1 − α_t²)`. The default `β0 = 0.1, β1 = 20` has
/// `λ(1) ≈ −5.025`.
///
/// ```
/// use sdeflow_solvers::diffusion::{NoiseSchedule, VpLinear};
/// let s = VpLinear::default();
/// assert!((s.lambda(1.0) + 5.025).abs() < 1e-3);
/// assert!((s.t_of_lambda(s.lambda(0.3)) - 0.3).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VpLinear {
    beta0: f64,
    beta1: f64,
}

impl Default for VpLinear {
    fn default() -> Self {
        VpLinear {
            beta0: 0.1,
            beta1: 20.0,
        }
    }
}

impl VpLinear {
    /// The schedule with `β(0) = beta0`, `β(1) = beta1` (`0 < beta0 < beta1`).
    pub fn new(beta0: f64, beta1: f64) -> Result<Self, SolveError> {
        increasing("VpLinear", ("beta0", beta0), ("beta1", beta1))?;
        Ok(VpLinear { beta0, beta1 })
    }

    /// `β(t)`.
    pub fn beta(&self, t: f64) -> f64 {
        self.beta0 + (self.beta1 - self.beta0) * t
    }
}

impl NoiseSchedule for VpLinear {
    fn log_alpha(&self, t: f64) -> f64 {
        -0.25 * (self.beta1 - self.beta0) * t * t - 0.5 * self.beta0 * t
    }
    fn sigma(&self, t: f64) -> f64 {
        vp_log_sigma(self.log_alpha(t)).exp()
    }
    fn lambda(&self, t: f64) -> f64 {
        let la = self.log_alpha(t);
        la - vp_log_sigma(la)
    }
    fn t_of_lambda(&self, lambda: f64) -> f64 {
        // L = log(1 + e^{−2λ}) = −2 log α; solve ¼ d t² + ½ β0 t = ½ L
        let l = -vp_two_log_alpha(lambda);
        let d = self.beta1 - self.beta0;
        2.0 * l / ((self.beta0 * self.beta0 + 2.0 * d * l).sqrt() + self.beta0)
    }
    fn d_log_alpha(&self, t: f64) -> f64 {
        -0.5 * self.beta(t)
    }
    fn d_lambda(&self, t: f64) -> f64 {
        // λ̇ = (d log α/dt)/σ² for VP
        let la = self.log_alpha(t);
        self.d_log_alpha(t) / -(2.0 * la).exp_m1()
    }
    fn t_range(&self) -> (f64, f64) {
        (0.0, 1.0)
    }
}

/// Variance-preserving cosine schedule (Nichol & Dhariwal 2021):
/// `α_t = cos θ_t / cos θ_0`, `θ_t = π(t + s)/(2(1 + s))`, `s = 0.008`, on
/// `t ∈ (0, t_max]`; `t_max = 0.9946` by default (DPM-Solver's choice, which
/// keeps `λ_T ≈ −4.78` finite).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VpCosine {
    s: f64,
    t_max: f64,
}

impl Default for VpCosine {
    fn default() -> Self {
        VpCosine {
            s: 0.008,
            t_max: 0.9946,
        }
    }
}

impl VpCosine {
    /// The schedule with offset `s > 0`, defined up to `t_max ∈ (0, 1)`.
    pub fn new(s: f64, t_max: f64) -> Result<Self, SolveError> {
        positive("VpCosine s", s)?;
        if !(t_max > 0.0 && t_max < 1.0) {
            return Err(SolveError::InvalidInput {
                what: "VpCosine t_max".into(),
                reason: format!("t_max = {t_max} must lie in (0, 1) (α reaches 0 at t = 1)"),
            });
        }
        Ok(VpCosine { s, t_max })
    }

    fn theta(&self, t: f64) -> f64 {
        std::f64::consts::FRAC_PI_2 * (t + self.s) / (1.0 + self.s)
    }
}

impl NoiseSchedule for VpCosine {
    fn log_alpha(&self, t: f64) -> f64 {
        self.theta(t).cos().ln() - self.theta(0.0).cos().ln()
    }
    fn sigma(&self, t: f64) -> f64 {
        vp_log_sigma(self.log_alpha(t)).exp()
    }
    fn lambda(&self, t: f64) -> f64 {
        let la = self.log_alpha(t);
        la - vp_log_sigma(la)
    }
    fn t_of_lambda(&self, lambda: f64) -> f64 {
        let log_alpha = 0.5 * vp_two_log_alpha(lambda);
        let c = (log_alpha + self.theta(0.0).cos().ln()).exp();
        2.0 * (1.0 + self.s) / std::f64::consts::PI * c.acos() - self.s
    }
    fn d_log_alpha(&self, t: f64) -> f64 {
        -self.theta(t).tan() * std::f64::consts::FRAC_PI_2 / (1.0 + self.s)
    }
    fn d_lambda(&self, t: f64) -> f64 {
        let la = self.log_alpha(t);
        self.d_log_alpha(t) / -(2.0 * la).exp_m1()
    }
    fn t_range(&self) -> (f64, f64) {
        (0.0, self.t_max)
    }
}

/// Variance-exploding schedule (Song et al. 2021, `VESDE`): `α = 1`,
/// `σ_t = σ_min (σ_max/σ_min)^t` on `t ∈ [0, 1]`; defaults `σ_min = 0.01`,
/// `σ_max = 50` (CIFAR-10). `σ_t` is used as the marginal standard deviation,
/// as score_sde does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ve {
    sigma_min: f64,
    sigma_max: f64,
}

impl Default for Ve {
    fn default() -> Self {
        Ve {
            sigma_min: 0.01,
            sigma_max: 50.0,
        }
    }
}

impl Ve {
    /// The schedule from `sigma_min` to `sigma_max` (`0 < sigma_min < sigma_max`).
    pub fn new(sigma_min: f64, sigma_max: f64) -> Result<Self, SolveError> {
        increasing("Ve", ("sigma_min", sigma_min), ("sigma_max", sigma_max))?;
        Ok(Ve {
            sigma_min,
            sigma_max,
        })
    }

    fn log_ratio(&self) -> f64 {
        (self.sigma_max / self.sigma_min).ln()
    }
}

impl NoiseSchedule for Ve {
    fn log_alpha(&self, _t: f64) -> f64 {
        0.0
    }
    fn sigma(&self, t: f64) -> f64 {
        self.sigma_min * (t * self.log_ratio()).exp()
    }
    fn lambda(&self, t: f64) -> f64 {
        -self.sigma_min.ln() - t * self.log_ratio()
    }
    fn t_of_lambda(&self, lambda: f64) -> f64 {
        (-lambda - self.sigma_min.ln()) / self.log_ratio()
    }
    fn d_log_alpha(&self, _t: f64) -> f64 {
        0.0
    }
    fn d_lambda(&self, _t: f64) -> f64 {
        -self.log_ratio()
    }
    fn t_range(&self) -> (f64, f64) {
        (0.0, 1.0)
    }
}

/// The EDM schedule (Karras et al. 2022): `α = 1`, `σ_t = t`, so time is
/// the noise level; `λ = −log t`. Typical span `t` from `σ_max = 80` to
/// `σ_min = 0.002` (or to 0, which only [`crate::diffusion::EdmHeun`]'s
/// final Euler step reaches).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Edm;

impl NoiseSchedule for Edm {
    fn log_alpha(&self, _t: f64) -> f64 {
        0.0
    }
    fn sigma(&self, t: f64) -> f64 {
        t
    }
    fn lambda(&self, t: f64) -> f64 {
        -t.ln()
    }
    fn t_of_lambda(&self, lambda: f64) -> f64 {
        (-lambda).exp()
    }
    fn d_log_alpha(&self, _t: f64) -> f64 {
        0.0
    }
    fn d_lambda(&self, t: f64) -> f64 {
        -1.0 / t
    }
    fn t_range(&self) -> (f64, f64) {
        (0.0, f64::MAX)
    }
}

/// Rectified flow / flow matching (diffusers' flow schedulers):
/// `α_t = 1 − t`, `σ_t = t` on `t ∈ (0, 1)`; `λ = log((1 − t)/t)`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RectifiedFlow;

impl NoiseSchedule for RectifiedFlow {
    fn log_alpha(&self, t: f64) -> f64 {
        (-t).ln_1p()
    }
    fn sigma(&self, t: f64) -> f64 {
        t
    }
    fn lambda(&self, t: f64) -> f64 {
        (-t).ln_1p() - t.ln()
    }
    fn t_of_lambda(&self, lambda: f64) -> f64 {
        // 1/(1 + e^λ), without overflow
        if lambda > 0.0 {
            let e = (-lambda).exp();
            e / (1.0 + e)
        } else {
            1.0 / (1.0 + lambda.exp())
        }
    }
    fn d_log_alpha(&self, t: f64) -> f64 {
        -1.0 / (1.0 - t)
    }
    fn d_lambda(&self, t: f64) -> f64 {
        -1.0 / (1.0 - t) - 1.0 / t
    }
    fn t_range(&self) -> (f64, f64) {
        (0.0, 1.0 - f64::EPSILON)
    }
}
