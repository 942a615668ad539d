//! Stochastic interpolants (Albergo & Vanden-Eijnden, "Building normalizing
//! flows with stochastic interpolants", ICLR 2023, arXiv 2209.15571;
//! Albergo, Boffi & Vanden-Eijnden, "Stochastic interpolants: a unifying
//! framework for flows and diffusions", arXiv 2303.08797; code
//! malbergo/stochastic-interpolants `interflow/fabrics.py`;
//! `../shared/reference/diffusion.md` §6).
//!
//! An interpolant joins a base sample `x_0` (at `t = 0`) and a data sample
//! `x_1` (at `t = 1`) as `x_t = a(t) x_0 + b(t) x_1 + γ(t) z`, `z ~ N(0, I)`,
//! with `a(0) = b(1) = 1`, `a(1) = b(0) = 0` and `γ(0) = γ(1) = 0`. With a
//! Gaussian base `x_0 ~ N(0, I)` the two Gaussian terms merge into one:
//! `x_t = α(t) z' + β(t) x_1` with `α² = a² + γ²`, `β = b` — the one-sided
//! interpolant, which is the `γ = 0` case of the same paths
//! ([`Linear`] or [`Trigonometric`] with [`Gamma::Zero`]).

use crate::error::SolveError;

/// The noise scale `γ(t)` of an interpolant (the repo's `make_gamma`).
/// `γ γ̇` is finite on all of `[0, 1]` for each choice (the Brownian
/// `γ̇` is not, which is why the fields use `γ γ̇` only).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Gamma {
    /// `γ = 0`: a deterministic interpolant (with a Gaussian base, the
    /// one-sided interpolant).
    #[default]
    Zero,
    /// `γ = √(c · t(1 − t))` (the repo's `"brownian"` with `c = 1`): a
    /// Brownian bridge's standard deviation, scaled; `0 < c ≤ 4` keeps
    /// `γ ≤ 1` (needed by [`Trigonometric`]).
    Brownian(f64),
    /// `γ = c · t(1 − t)` (the repo's `"bsquared"` with `c = 1`).
    BSquared(f64),
    /// `γ = c · sin²(π t)` (the repo's `"sinesquared"` with `c = 1`).
    SineSquared(f64),
}

impl Gamma {
    /// `γ(t)`.
    pub fn gamma(&self, t: f64) -> f64 {
        match *self {
            Gamma::Zero => 0.0,
            Gamma::Brownian(c) => (c * t * (1.0 - t)).max(0.0).sqrt(),
            Gamma::BSquared(c) => c * t * (1.0 - t),
            Gamma::SineSquared(c) => c * (std::f64::consts::PI * t).sin().powi(2),
        }
    }

    /// `γ(t) γ̇(t)` (finite at the ends for every choice).
    pub fn gamma_gamma_dot(&self, t: f64) -> f64 {
        use std::f64::consts::PI;
        match *self {
            Gamma::Zero => 0.0,
            Gamma::Brownian(c) => 0.5 * c * (1.0 - 2.0 * t),
            Gamma::BSquared(c) => c * c * t * (1.0 - t) * (1.0 - 2.0 * t),
            Gamma::SineSquared(c) => {
                let (s, co) = (PI * t).sin_cos();
                c * c * s * s * 2.0 * PI * s * co
            }
        }
    }

    /// Checks the scale `c`: finite and non-negative, and at most `max_sq`
    /// for `max γ² ≤ 1` where `bounded` (the trigonometric path needs
    /// `√(1 − γ²)`).
    fn check(&self, bounded: bool) -> Result<(), SolveError> {
        let (c, max) = match *self {
            Gamma::Zero => return Ok(()),
            Gamma::Brownian(c) => (c, 4.0),
            Gamma::BSquared(c) => (c, 4.0),
            Gamma::SineSquared(c) => (c, 1.0),
        };
        if !(c.is_finite() && c >= 0.0) || (bounded && c > max) {
            let limit = if bounded {
                format!(" and at most {max} (the trigonometric path needs γ ≤ 1)")
            } else {
                String::new()
            };
            return Err(SolveError::InvalidInput {
                what: format!("interpolant {self:?}"),
                reason: format!("the scale {c} must be finite and non-negative{limit}"),
            });
        }
        Ok(())
    }
}

/// The coefficients of an interpolant at one time:
/// `x_t = a x_0 + b x_1 + γ z` and the derivatives the fields need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InterpolantCoefficients {
    /// `a(t)`, the weight of the base sample.
    pub a: f64,
    /// `ȧ(t)`.
    pub a_dot: f64,
    /// `b(t)`, the weight of the data sample.
    pub b: f64,
    /// `ḃ(t)`.
    pub b_dot: f64,
    /// `γ(t)`.
    pub gamma: f64,
    /// `γ(t) γ̇(t)`.
    pub gamma_gamma_dot: f64,
}

impl InterpolantCoefficients {
    /// With a Gaussian base `x_0 ~ N(0, I)`: `(α², α α̇)` of the merged
    /// noise `α z'`, `α² = a² + γ²`, `α α̇ = a ȧ + γ γ̇`.
    pub fn base_variance(&self) -> (f64, f64) {
        (
            self.a * self.a + self.gamma * self.gamma,
            self.a * self.a_dot + self.gamma_gamma_dot,
        )
    }
}

/// A stochastic interpolant `x_t = a(t) x_0 + b(t) x_1 + γ(t) z` on
/// `t ∈ [0, 1]`. Implement it for a path of your own; [`Linear`] and
/// [`Trigonometric`] are the repo's `"linear"` and `"trig"`.
pub trait Interpolant {
    /// The coefficients at `t ∈ [0, 1]`.
    fn coefficients(&self, t: f64) -> InterpolantCoefficients;

    /// Checks the interpolant's own settings (the default accepts all).
    fn check(&self) -> Result<(), SolveError> {
        Ok(())
    }
}

/// The linear interpolant `x_t = (1 − t) x_0 + t x_1 + γ(t) z`; with
/// [`Gamma::Zero`] and a Gaussian base, the one-sided linear interpolant
/// `α = 1 − t`, `β = t` (rectified flow).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Linear {
    /// The noise scale.
    pub gamma: Gamma,
}

impl Interpolant for Linear {
    fn coefficients(&self, t: f64) -> InterpolantCoefficients {
        InterpolantCoefficients {
            a: 1.0 - t,
            a_dot: -1.0,
            b: t,
            b_dot: 1.0,
            gamma: self.gamma.gamma(t),
            gamma_gamma_dot: self.gamma.gamma_gamma_dot(t),
        }
    }

    fn check(&self) -> Result<(), SolveError> {
        self.gamma.check(false)
    }
}

/// The trigonometric interpolant of the repo (`"trig"`):
/// `x_t = √(1 − γ²) (cos(πt/2) x_0 + sin(πt/2) x_1) + γ z`, so that
/// `a² + b² + γ² = 1`; with [`Gamma::Zero`] and a Gaussian base, the
/// one-sided `α = cos(πt/2)`, `β = sin(πt/2)`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Trigonometric {
    /// The noise scale (`γ ≤ 1`).
    pub gamma: Gamma,
}

impl Interpolant for Trigonometric {
    fn coefficients(&self, t: f64) -> InterpolantCoefficients {
        use std::f64::consts::FRAC_PI_2;
        let gamma = self.gamma.gamma(t);
        let gg = self.gamma.gamma_gamma_dot(t);
        let r = (1.0 - gamma * gamma).max(0.0).sqrt();
        // d/dt √(1 − γ²) = −γγ̇/√(1 − γ²); zero when γ = 0
        let r_dot = if gg == 0.0 { 0.0 } else { -gg / r };
        let (s, c) = (FRAC_PI_2 * t).sin_cos();
        InterpolantCoefficients {
            a: r * c,
            a_dot: r_dot * c - FRAC_PI_2 * r * s,
            b: r * s,
            b_dot: r_dot * s + FRAC_PI_2 * r * c,
            gamma,
            gamma_gamma_dot: gg,
        }
    }

    fn check(&self) -> Result<(), SolveError> {
        self.gamma.check(true)
    }
}

/// Checks that `tspan` lies in `[0, 1]` (the interpolant's time), is
/// finite and not empty.
pub(crate) fn check_span(tspan: (f64, f64)) -> Result<(), SolveError> {
    let (t0, t1) = tspan;
    let inside = |t: f64| t.is_finite() && (0.0..=1.0).contains(&t);
    if !inside(t0) || !inside(t1) || t0 == t1 {
        return Err(SolveError::InvalidInput {
            what: "interpolant tspan".into(),
            reason: format!(
                "({t0}, {t1}) must be two different times in [0, 1] (the interpolant's \
                 time: base at 0, data at 1); sample with (0, 1), or (1, 0) backwards"
            ),
        });
    }
    Ok(())
}
