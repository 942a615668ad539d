//! Fractional Brownian motion (fBM): exact samplers on a grid, the Markov
//! approximation by Ornstein–Uhlenbeck modes, and the noise driver that
//! serves the modes' exact convolutions to solvers
//! (`../shared/reference/fbm.md`; issue #15).
//!
//! - [`CholeskyFbm`] (`cholesky.rs`): exact on any grid, both types,
//!   `O(N³)` once and `O(N²)` per path.
//! - [`DaviesHarte`] (`davies_harte.rs`): exact on a uniform grid by
//!   circulant embedding, type I, `O(N log N)` per path, the embedding
//!   cached; padded automatically, a typed error when it is not positive.
//!   Type II (Riemann–Liouville) has non-stationary increments and no
//!   circulant embedding: [`DaviesHarte::for_type`] says so with
//!   [`FbmError::Unsupported`] and points to [`CholeskyFbm`].
//! - [`MarkovApprox`] (`markov.rs`): `B̂_H(t) = Σ_k ω_k Y_k(t)`, `K` OU
//!   processes `dY_k = −γ_k Y_k dt + dW` on a geometric grid of rates, with
//!   the weights `ω` that minimise the mean-square error on `[0, T]`
//!   (Daems et al., ICLR 2024), their derivative in `H`, and the error they
//!   reach.
//! - [`FractionalNoise`] (`ou_tree.rs`): a noise driver whose path is a
//!   virtual tree over the joint Gauss–Markov process
//!   `(W, H̄, Y_1, …, Y_K)`: ΔW, the space–time Lévy area and the exact OU
//!   convolutions `∫_s^t e^{−γ_k (t−u)} dW_u` over any interval, bridged
//!   exactly, so that queries in any order see one path; and the fBM path
//!   `B̂_H(t)` read from it.
//! - fBM-driven SDEs `dX = b dt + s dB̂_H` (`driven.rs`): [`FractionalEuler`]
//!   (Itô, fixed steps) and [`FractionalHeun`] (Stratonovich, adaptive
//!   Heun/Euler pair) step `X` with the exact increments of the modes the
//!   driver serves, so no `γ_max · h` limit; [`ModeWeights`] holds the
//!   weights `ω(H)` (`H` fixed or a parameter, differentiated by `grad`
//!   through `dω/dH` with the `γ` grid fixed) and reads the fBM path of a
//!   solution back ([`ModeWeights::fbm_at_saved`]).
//! - The variational posterior (`posterior.rs`): a control `u` in the
//!   modes' drift and the `KL = ½∫|u|² dt` it costs, as the augmented
//!   fBM-driven problem [`posterior`] on `(X, Z, KL)` that the same solvers
//!   and step VJPs handle (Daems et al., ICLR 2024); with the prior's modes
//!   in the state too, [`posterior_with_modes`] on `(X, Z, Y, KL)`, whose
//!   control sees the full Markov state, stepped by
//!   [`FractionalModalEuler`] (`modal_euler.rs`: Euler with the driver's
//!   exact mode increments written into the state, and optionally the
//!   shift `Z` stepped exactly). A control may also read
//!   [`future_observation_features`] (`future.rs`): data-only exponential
//!   sums of the observations after `t`, which the exact posterior's
//!   control depends on linearly.
//!
//! Two types of fBM ([`FbmType`]): I, Mandelbrot–Van Ness (the standard fBM,
//! stationary increments), and II, Riemann–Liouville (no past). The
//! samplers give standard fBM for type I and the `1/Γ(H+½)`-normalised
//! Riemann–Liouville process for type II; the Markov approximation targets
//! both integrals with the `1/Γ(H+½)` normalisation of the reference, whose
//! type-I variance is `V_H t^{2H}` ([`mvn_variance_constant`]).

mod cholesky;
mod covariance;
mod davies_harte;
mod driven;
mod error;
mod euler;
mod future;
mod heun;
mod markov;
mod modal_euler;
mod ou_bridge;
mod ou_tree;
mod posterior;
mod special;
mod weights;

pub use cholesky::CholeskyFbm;
pub use covariance::{
    FbmType, covariance, fbm_covariance, mvn_variance_constant, riemann_liouville_covariance,
};
pub use davies_harte::{DaviesHarte, fgn_autocovariance};
pub use driven::{DrivenCache, DrivenVjpWork};
pub use error::FbmError;
pub use euler::FractionalEuler;
pub use future::future_observation_features;
pub use heun::FractionalHeun;
pub use markov::{
    MarkovApprox, gamma_grid, gamma_grid_by_gamma_max, gamma_grid_by_r, stationary_covariance,
};
pub use modal_euler::FractionalModalEuler;
pub use ou_tree::{FractionalNoise, OuTree};
pub use posterior::{
    PosteriorDiffusion, PosteriorDrift, PosteriorLayout, PosteriorProblem, posterior,
    posterior_with_modes,
};
pub use weights::{Hurst, ModeWeights};

#[cfg(test)]
mod tests;
