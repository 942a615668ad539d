//! Noise structure and stochastic-integral interpretation of an SDE.

use serde::{Deserialize, Serialize};

/// How the Brownian motion enters an SDE `dy = f dt + g dW`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Noise {
    /// One Brownian motion (`m = 1`); `g` has `n` entries, all multiplying the
    /// same `dW`.
    Scalar,
    /// `m = n` independent Brownian motions, component `i` driven by `W_i`
    /// only; `g` has `n` entries (the diagonal). The higher-order solvers
    /// (Milstein, SRI) also assume `g_i` depends on `y_i` (and `t`) only —
    /// not on other components; otherwise they still converge, but only at
    /// about order 0.5: use `General(n)` with Euler–Maruyama / Euler–Heun.
    Diagonal,
    /// Like `Diagonal`, with `g` independent of `y` (it may depend on `t`).
    /// Solvers for additive noise (SRA) exploit this.
    Additive,
    /// `m` Brownian motions with a full `n × m` diffusion matrix, stored
    /// column-major in `g`.
    General(usize),
}

impl Noise {
    /// Number of Brownian motions `m` for a state of dimension `n`.
    pub fn brownian_dim(self, n: usize) -> usize {
        match self {
            Noise::Scalar => 1,
            Noise::Diagonal | Noise::Additive => n,
            Noise::General(m) => m,
        }
    }

    /// Number of entries the diffusion writes for a state of dimension `n`.
    pub fn diffusion_len(self, n: usize) -> usize {
        match self {
            Noise::Scalar | Noise::Diagonal | Noise::Additive => n,
            Noise::General(m) => n * m,
        }
    }
}

/// The meaning of the stochastic integral.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Interpretation {
    /// Itô calculus (the default).
    #[default]
    Ito,
    /// Stratonovich calculus (`∘ dW`).
    Stratonovich,
}
