//! The noise driver of the exact-covariance route of stochastic exponential
//! Euler ([`super::StochasticExpEuler`] on problems driven by
//! [`CovarianceNoise`]): per step, two independent Brownian increments per
//! noise component, `ΔW` and a residual `ΔW'`, that do not depend on `L`.
//! The solver forms the stochastic convolution from them,
//!
//! `ξ_i = φ_1(λ_i h) ΔW_i + √(φ_1(2λ_i h) − φ_1(λ_i h)²) ΔW'_i`,
//!
//! which has exactly the joint law of `(ΔW_i, ∫ e^{λ_i(t+h−u)} dW_i(u))`
//! over the step (`../shared/reference/exponential.md` §3: `Var ξ = h
//! φ_1(2λh)`, `Cov(ξ, ΔW) = h φ_1(λh)`); see
//! `stochastic_euler_covariance.rs`.
//!
//! Why this route exists next to [`super::ConvolutionNoise`]: the
//! convolution tree serves `∫ e^{−γ(t−u)} dW_u` for rates fixed when the
//! driver is built, so a parameter inside `L` cannot move them — a
//! finite-difference solve at `p ± δ` would need another driver, whose
//! tree (built from other rates) is another draw of the convolutions. Here
//! the randomness is `L`-free: the same seed gives the same `ΔW`, `ΔW'` at
//! every `p`, the convolution follows `L(p)` through the covariance factor,
//! and its derivative in `λ` is that of two smooth scalar functions — exact
//! in distribution at every step, reproducible, differentiable. What it
//! gives up: the residual is drawn per step, so the convolutions of a
//! coarse step are not those of the fine steps inside it (no fixed-path
//! strong convergence across step sizes; use [`super::ConvolutionNoise`]
//! for that).
//!
//! The increments come from any Brownian driver `D` (default
//! [`VirtualTree`]) built with `2m` components: the first `m` are `W`, the
//! last `m` the residual motions `W'`, served as the path's single "mode"
//! per Brownian motion ([`crate::solver::StepNoise::modes`]).

use std::fmt;

use crate::brownian::{BrownianPath, Driver, DynPath, VirtualTree};
use crate::error::SolveError;

/// A driver serving, with each Brownian increment `ΔW_j`, the increment
/// `ΔW'_j` of an independent residual Brownian motion: the `L`-free
/// randomness of the exact-covariance route of
/// [`super::StochasticExpEuler`] (module docs), which differentiates in a
/// parameter inside `L`.
///
/// ```
/// use sdeflow_solvers::brownian::{BrownianPath, Driver};
/// use sdeflow_solvers::expint::CovarianceNoise;
/// let mut path = CovarianceNoise::default().path((0.0, 1.0), 2, 7)?;
/// assert_eq!((path.dim(), path.modes_len()), (2, 1));
/// let (mut dw, mut res) = ([0.0; 2], [0.0; 2]);
/// path.increment_with_modes(0.25, 0.5, &mut dw, &mut res);
/// # Ok::<(), sdeflow_solvers::error::SolveError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CovarianceNoise<D = VirtualTree> {
    /// The Brownian driver of `W` and `W'` (built with `2m` components).
    pub inner: D,
}

impl Default for CovarianceNoise {
    /// `W` and `W'` from the virtual Brownian tree: the same path at every
    /// query order (rejected steps, backward passes).
    fn default() -> Self {
        CovarianceNoise { inner: VirtualTree }
    }
}

impl<D: Driver> CovarianceNoise<D> {
    /// The increments of `W` and `W'` from `inner`.
    pub fn new(inner: D) -> Self {
        CovarianceNoise { inner }
    }
}

impl<D: Driver> Driver for CovarianceNoise<D> {
    type Path = CovariancePath;

    fn name(&self) -> &'static str {
        "CovarianceNoise"
    }

    fn path(&self, tspan: (f64, f64), m: usize, seed: u64) -> Result<CovariancePath, SolveError> {
        let inner = self.inner.path(tspan, 2 * m, seed)?;
        Ok(CovariancePath {
            inner: Box::new(inner),
            m,
            buf: vec![0.0; 2 * m],
            hbuf: vec![0.0; 2 * m],
        })
    }

    fn requery(&self) -> bool {
        self.inner.requery()
    }
}

/// The path of a [`CovarianceNoise`] driver: `m` Brownian motions `W`
/// (increments, Lévy areas) and, as one mode per motion, the increments of
/// `m` independent residual motions `W'`.
pub struct CovariancePath {
    inner: Box<dyn DynPath>,
    m: usize,
    /// The `2m` increments (and Lévy areas) of the inner path.
    buf: Vec<f64>,
    hbuf: Vec<f64>,
}

impl Clone for CovariancePath {
    fn clone(&self) -> Self {
        CovariancePath {
            inner: self.inner.clone_box(),
            m: self.m,
            buf: self.buf.clone(),
            hbuf: self.hbuf.clone(),
        }
    }
}

impl fmt::Debug for CovariancePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CovariancePath")
            .field("inner", &self.inner)
            .field("m", &self.m)
            .finish()
    }
}

impl BrownianPath for CovariancePath {
    fn dim(&self) -> usize {
        self.m
    }

    fn increment(&mut self, s: f64, t: f64, dw: &mut [f64]) {
        self.inner.increment(s, t, &mut self.buf);
        dw.copy_from_slice(&self.buf[..self.m]);
    }

    fn increment_with_levy_area(&mut self, s: f64, t: f64, dw: &mut [f64], h: &mut [f64]) {
        self.inner
            .increment_with_levy_area(s, t, &mut self.buf, &mut self.hbuf);
        dw.copy_from_slice(&self.buf[..self.m]);
        h.copy_from_slice(&self.hbuf[..self.m]);
    }

    fn modes_len(&self) -> usize {
        1
    }

    /// Writes `ΔW` into `dw` and the residual increments `ΔW'` into `res`
    /// (both length `m`).
    fn increment_with_modes(&mut self, s: f64, t: f64, dw: &mut [f64], res: &mut [f64]) {
        self.inner.increment(s, t, &mut self.buf);
        dw.copy_from_slice(&self.buf[..self.m]);
        res.copy_from_slice(&self.buf[self.m..]);
    }
}
