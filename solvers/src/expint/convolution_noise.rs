//! The noise driver of stochastic exponential Euler
//! ([`super::StochasticExpEuler`]): Brownian motions together with their
//! exact stochastic convolutions `ξ_k(s, t) = ∫_s^t e^{−γ_k (t − u)} dW_u`
//! for a set of rates `γ_k > 0` (`../shared/reference/exponential.md` §3:
//! `Cov(ξ, ΔW) = h φ_1(−γh)`, `Var ξ = (1 − e^{−2γh})/(2γ)`).
//!
//! The joint Gaussian `(ΔW, ξ_1, …, ξ_K)` of any interval, with exact
//! bridging between intervals, is what the fractional noise tree
//! ([`crate::fractional::OuTree`]) already serves for its OU modes; this
//! driver is that tree built with the rates of a diagonal linear part
//! (modes started at zero: the convolutions do not depend on the start). So
//! the path is a pure function of `(seed, t)` — every step size sees the
//! same Brownian motion (strong convergence on a fixed path), a rejected
//! step re-queries consistently, and the discrete adjoint replays it.
//!
//! What the path hands a step in [`crate::solver::StepNoise::modes`] (the
//! solver declares [`crate::solver::Increment::DwModes`]) is, for this
//! path, the convolutions `ξ_k(t, t + h)` themselves — `K` per Brownian
//! motion, Brownian-motion-major — not the modes' increments that the
//! fBM-driven methods read from [`crate::fractional::FractionalNoise`]. The
//! two drivers are distinct types, so a method cannot be handed the one it
//! does not read: [`super::StochasticExpEuler`] takes only problems driven
//! by [`ConvolutionNoise`].
//!
//! Cost per query: that of the tree with `K` modes, `O(m (K + 2)²)` per
//! node over about `2 · depth` nodes, plus an `O((K + 2)³)` leaf bridge
//! per end off the dyadic grid. It suits a handful of distinct rates (an
//! OU system, a few stiff modes), not a Fourier operator with hundreds.

use std::sync::Arc;

use crate::brownian::{BrownianPath, Driver};
use crate::error::SolveError;
use crate::fractional::{FbmType, FractionalNoise, OuTree};

/// A noise driver serving `ΔW` with the exact stochastic convolutions
/// `∫_s^t e^{−γ_k (t − u)} dW_u` for the rates `γ_k` (module docs); built
/// from a diagonal linear part by [`ConvolutionNoise::for_diagonal`].
///
/// ```
/// use sdeflow_solvers::brownian::{BrownianPath, Driver};
/// use sdeflow_solvers::expint::ConvolutionNoise;
/// let noise = ConvolutionNoise::for_diagonal(&[-100.0, -2.0, -100.0])?;
/// assert_eq!(noise.rates(), &[100.0, 2.0]);
/// let mut path = noise.path((0.0, 1.0), 1, 7)?;
/// let (mut dw, mut xi) = ([0.0], [0.0; 2]);
/// path.increment_with_modes(0.25, 0.5, &mut dw, &mut xi);
/// # Ok::<(), sdeflow_solvers::error::SolveError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConvolutionNoise {
    rates: Arc<[f64]>,
    tree: FractionalNoise,
}

impl ConvolutionNoise {
    /// The convolutions for the rates `rates` (finite, positive).
    pub fn new(rates: &[f64]) -> Result<Self, SolveError> {
        let tree = FractionalNoise::new(rates, FbmType::RiemannLiouville)?;
        Ok(ConvolutionNoise {
            rates: rates.into(),
            tree,
        })
    }

    /// The convolutions a diagonal linear part `L = diag(λ)` needs: one
    /// rate `γ = −λ_i` per distinct negative entry, in order of first
    /// appearance. Entries equal to zero need none (their convolution is
    /// `ΔW`); a positive or non-finite entry is an error, as is a part with
    /// no negative entry (a plain Brownian driver serves it: use
    /// Euler–Maruyama).
    pub fn for_diagonal(lambda: &[f64]) -> Result<Self, SolveError> {
        let mut rates: Vec<f64> = Vec::new();
        for (i, &l) in lambda.iter().enumerate() {
            if !(l.is_finite() && l <= 0.0) {
                return Err(SolveError::invalid(
                    format!("L[{i}] = {l}"),
                    "stochastic exponential Euler needs a finite, non-positive diagonal (a \
                     decaying or neutral linear part); move a growing part into N",
                ));
            }
            if l < 0.0 && !rates.contains(&-l) {
                rates.push(-l);
            }
        }
        if rates.is_empty() {
            return Err(SolveError::invalid(
                "L",
                "no negative entry, so there is no convolution to sample; the linear part is \
                 zero: solve with EulerMaruyama on the default driver",
            ));
        }
        Self::new(&rates)
    }

    /// The rates `γ_k`.
    pub fn rates(&self) -> &[f64] {
        &self.rates
    }

    /// The index `k` of the rate `γ_k = −λ` (to a relative `1e-12`), if
    /// any.
    pub fn rate_index(&self, lambda: f64) -> Option<usize> {
        let g = -lambda;
        self.rates
            .iter()
            .position(|&r| (r - g).abs() <= 1e-12 * r.abs().max(g.abs()))
    }
}

impl Driver for ConvolutionNoise {
    type Path = ConvolutionPath;

    fn name(&self) -> &'static str {
        "ConvolutionNoise"
    }

    fn path(&self, tspan: (f64, f64), m: usize, seed: u64) -> Result<ConvolutionPath, SolveError> {
        Ok(ConvolutionPath(self.tree.path(tspan, m, seed)?))
    }

    fn requery(&self) -> bool {
        true
    }
}

/// The path of a [`ConvolutionNoise`] driver: increments and Lévy areas as
/// any Brownian path; [`BrownianPath::increment_with_modes`] writes the
/// convolutions `ξ_k(s, t)` (module docs), `K` per Brownian motion.
#[derive(Debug, Clone)]
pub struct ConvolutionPath(OuTree);

impl BrownianPath for ConvolutionPath {
    fn dim(&self) -> usize {
        self.0.dim()
    }

    fn increment(&mut self, s: f64, t: f64, dw: &mut [f64]) {
        self.0.increment(s, t, dw)
    }

    fn increment_with_levy_area(&mut self, s: f64, t: f64, dw: &mut [f64], h: &mut [f64]) {
        self.0.increment_with_levy_area(s, t, dw, h)
    }

    fn modes_len(&self) -> usize {
        self.0.gammas().len()
    }

    /// Writes `ΔW` into `dw` and the convolutions `∫_s^t e^{−γ_k (t − u)}
    /// dW_u` into `xi` (`m × K`, Brownian-motion-major); for `s > t`, those
    /// of the forward interval `[t, s]` (as [`OuTree`]).
    fn increment_with_modes(&mut self, s: f64, t: f64, dw: &mut [f64], xi: &mut [f64]) {
        self.0.increment_with_convolutions(s, t, dw, xi)
    }
}
