//! SDE solvers. Each states the interpretation it integrates, the noise
//! types it supports and its strong order; asking one for something it
//! cannot do is a [`SolveError::Unsupported`] naming the solvers that can.
//!
//! | solver | interpretation | noise | strong order | adaptive |
//! |---|---|---|---|---|
//! | [`EulerMaruyama`] | Itô | any | 0.5 (1.0 additive) | no |
//! | [`EulerHeun`] | Stratonovich | any | 0.5 (1.0 commutative) | no |
//! | [`Milstein`] | Itô or Stratonovich (the problem's) | scalar, diagonal, additive | 1.0 | no |
//! | [`Sriw1`], [`Sosri`] | Itô | scalar, diagonal, additive | 1.5 | yes |
//! | [`Sra1`], [`Sra3`] | either (additive noise) | additive | 1.5 | yes |
//! | [`ReversibleHeun`] | Stratonovich | any | 0.5 (1.0 additive) | yes |
//!
//! Diagonal noise means `g_i` depends on `y_i` (and `t`) only; the order of
//! Milstein and SRI relies on it (see [`Noise::Diagonal`]).

mod euler_heun;
mod euler_maruyama;
mod milstein;
mod reversible_heun;
mod sra;
mod sri;
mod vjp;

pub use euler_heun::EulerHeun;
pub use euler_maruyama::EulerMaruyama;
pub use milstein::{Milstein, MilsteinDerivative};
pub use reversible_heun::{ReversibleHeun, ReversibleHeunCache, ReversibleHeunVjp};
pub use sra::{SRA1, SRA3, Sra, Sra1, Sra3, SraCache, SraTableau};
pub use sri::{SOSRI, SRIW1, Sosri, Sri, SriCache, SriTableau, Sriw1};
pub use vjp::{SdeStepVjp, SdeVjpWork};

use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{Diffusion, Drift};
use crate::noise::{Interpretation, Noise};
use crate::problem::Problem;
use crate::solver::DenseTable;

/// `out += scale · G dW` for the noise structure (`g` as the diffusion
/// writes it: `n` entries, or `n × m` column-major for general noise).
#[inline]
pub fn add_noise(noise: Noise, g: &[f64], dw: &[f64], scale: f64, out: &mut [f64]) {
    let n = out.len();
    match noise {
        Noise::Scalar => {
            let s = scale * dw[0];
            for i in 0..n {
                out[i] += s * g[i];
            }
        }
        Noise::Diagonal | Noise::Additive => {
            for i in 0..n {
                out[i] += scale * g[i] * dw[i];
            }
        }
        Noise::General(m) => {
            for j in 0..m {
                let s = scale * dw[j];
                let col = &g[j * n..(j + 1) * n];
                for i in 0..n {
                    out[i] += s * col[i];
                }
            }
        }
    }
}

/// The Euler–Maruyama update `out = (y + h·out) + G dW` in one pass, where
/// `out` holds the drift `f(t, y)` on entry (`y`, `g`, and for diagonal
/// noise `dw`, have `out.len()` entries). Bit-identical to `out = y + h·out`
/// followed by [`add_noise`] with `scale = 1` (the same operations in the
/// same order per component; `1·x = x` exactly), with one pass over the
/// state instead of two: a store and a reload fewer on each component's
/// dependency chain from one step to the next.
#[inline(always)]
pub(crate) fn euler_update(
    noise: Noise,
    y: &[f64],
    h: f64,
    g: &[f64],
    dw: &[f64],
    out: &mut [f64],
) {
    let n = out.len();
    let y = &y[..n];
    if let Noise::Scalar = noise {
        let (s, g) = (dw[0], &g[..n]);
        for i in 0..n {
            out[i] = (y[i] + h * out[i]) + s * g[i];
        }
    } else if let Noise::General(_) = noise {
        for i in 0..n {
            out[i] = y[i] + h * out[i];
        }
        add_noise(noise, g, dw, 1.0, out);
    } else {
        // diagonal and additive noise
        let (g, dw) = (&g[..n], &dw[..n]);
        for i in 0..n {
            out[i] = (y[i] + h * out[i]) + g[i] * dw[i];
        }
    }
}

/// Index of the Brownian component driving state component `i` under
/// scalar / diagonal / additive noise.
#[inline(always)]
pub(crate) fn driver(noise: Noise, i: usize) -> usize {
    if let Noise::Scalar = noise { 0 } else { i }
}

/// What an SDE solver can integrate.
pub(crate) struct Support {
    pub name: &'static str,
    pub scalar: bool,
    pub diagonal: bool,
    pub additive: bool,
    pub general: bool,
    pub ito: bool,
    pub stratonovich: bool,
}

const NOISE_ALTERNATIVES: &str = "EulerMaruyama (Itô) and EulerHeun or ReversibleHeun \
                                  (Stratonovich) support every noise type";

impl Support {
    pub(crate) fn check<F: Drift, G: Diffusion, D: Driver>(
        &self,
        problem: &Problem<F, G, D>,
    ) -> Result<(), SolveError> {
        if problem.tspan.1 < problem.tspan.0 {
            return Err(SolveError::Unsupported {
                solver: self.name,
                what: "integration backwards in time (SDE solves run forward; the \
                       stochastic adjoints replay the path backwards themselves)"
                    .into(),
                alternatives: "(none — give tspan with t1 > t0)".into(),
            });
        }
        let Some(noise) = problem.noise else {
            return Err(SolveError::Unsupported {
                solver: self.name,
                what: "ODEs (it integrates SDEs; the problem has no diffusion)".into(),
                alternatives: "Tsit5, Vern7, Dopri5, Bdf".into(),
            });
        };
        let ok = match noise {
            Noise::Scalar => self.scalar,
            Noise::Diagonal => self.diagonal,
            Noise::Additive => self.additive,
            Noise::General(_) => self.general,
        };
        if !ok {
            let alternatives = match noise {
                Noise::Scalar | Noise::Diagonal => {
                    "Sriw1, Sosri, Milstein, EulerMaruyama (Itô); Milstein, EulerHeun, \
                     ReversibleHeun (Stratonovich)"
                }
                Noise::Additive => "Sra1, Sra3 (strong order 1.5), EulerMaruyama",
                Noise::General(_) => NOISE_ALTERNATIVES,
            };
            return Err(SolveError::Unsupported {
                solver: self.name,
                what: format!("{noise:?} noise"),
                alternatives: alternatives.into(),
            });
        }
        // additive noise: Itô and Stratonovich coincide
        let additive = matches!(noise, Noise::Additive);
        let interp_ok = additive
            || match problem.interpretation {
                Interpretation::Ito => self.ito,
                Interpretation::Stratonovich => self.stratonovich,
            };
        if !interp_ok {
            let alternatives = match problem.interpretation {
                Interpretation::Ito => "EulerMaruyama, Milstein, Sriw1, Sosri",
                Interpretation::Stratonovich => "EulerHeun, Milstein, ReversibleHeun",
            };
            return Err(SolveError::Unsupported {
                solver: self.name,
                what: format!("{:?} SDEs", problem.interpretation),
                alternatives: alternatives.into(),
            });
        }
        Ok(())
    }
}

/// Linear interpolation between accepted steps: the dense output of the SDE
/// solvers (an SDE solution has no smooth interpolant; between steps a
/// Brownian bridge would be the law, linear is its mean).
pub(crate) const LINEAR: [f64; 2] = [0.0, 1.0];

pub(crate) fn linear_table() -> DenseTable<'static> {
    DenseTable {
        nk: 1,
        ncoef: 2,
        poly: &LINEAR,
    }
}

/// Writes `(y_new − y)/h` into `k` (the one vector linear interpolation keeps).
pub(crate) fn linear_stage(h: f64, y: &[f64], y_new: &[f64], k: &mut [f64]) {
    for i in 0..k.len() {
        k[i] = (y_new[i] - y[i]) / h;
    }
}

/// The linear dense-output methods of an SDE solver whose cache has a
/// buffer `k` of length `n`.
macro_rules! linear_dense {
    ($cache:ty) => {
        fn dense_table<'c>(&self, _cache: &'c $cache) -> crate::solver::DenseTable<'c> {
            crate::sde::linear_table()
        }
        fn dense_stages<'c, F: crate::field::Drift, G: crate::field::Diffusion>(
            &self,
            cache: &'c mut $cache,
            _fields: &crate::solver::Fields<'_, F, G>,
            _t: f64,
            h: f64,
            y: &[f64],
            y_new: &[f64],
            _stats: &mut crate::solution::Stats,
        ) -> &'c [f64] {
            crate::sde::linear_stage(h, y, y_new, &mut cache.k);
            &cache.k
        }
    };
}
pub(crate) use linear_dense;
