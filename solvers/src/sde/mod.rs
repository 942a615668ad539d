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
pub use sra::{SRA1, SRA3, Sra, Sra1, Sra3, SraCache, SraTableau, SraVjpWork};
pub use sri::{SOSRI, SRIW1, Sosri, Sri, SriCache, SriTableau, SriVjpWork, Sriw1};
pub use vjp::{SdeStepBars, SdeStepVjp, SdeVjpWork, refuse_err_cotangent};

use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{Diffusion, Drift};
use crate::noise::{Interpretation, Noise};
use crate::problem::Problem;
use crate::solution::Stats;
use crate::solver::{DenseTable, Fields};

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

/// `out = scale · v ⊗ ΔW` in the shape of `g`: the cotangent of `g` from a
/// cotangent `v` of `scale · G dW` (the transpose of [`add_noise`] in `g`).
#[inline]
pub(crate) fn noise_outer(noise: Noise, v: &[f64], dw: &[f64], scale: f64, out: &mut [f64]) {
    let n = v.len();
    match noise {
        Noise::Scalar => (0..n).for_each(|i| out[i] = scale * v[i] * dw[0]),
        Noise::Diagonal | Noise::Additive => (0..n).for_each(|i| out[i] = scale * v[i] * dw[i]),
        Noise::General(m) => {
            for j in 0..m {
                for i in 0..n {
                    out[i + j * n] = scale * v[i] * dw[j];
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

/// `f(t, y)` and `g(t, y)` at the start of a step of a method that
/// evaluates both there (Euler–Maruyama, Euler–Heun, Milstein): the loop's
/// `f0`, `g0` on the first step, evaluated by the step after that; and the
/// vector `k` of linear dense output.
#[derive(Debug, Clone)]
pub(crate) struct AtStart {
    pub noise: Noise,
    pub f: Vec<f64>,
    pub g: Vec<f64>,
    pub k: Vec<f64>,
    /// `f` and `g` hold the values at the current step's start.
    pub valid: bool,
}

impl AtStart {
    pub(crate) fn new<F: Drift, G: Diffusion, D: Driver>(problem: &Problem<F, G, D>) -> Self {
        let n = problem.dim();
        let noise = problem.noise.unwrap_or(Noise::Diagonal);
        AtStart {
            noise,
            f: vec![0.0; n],
            g: vec![0.0; noise.diffusion_len(n)],
            k: vec![0.0; n],
            valid: false,
        }
    }

    /// Takes the loop's `f0`, `g0`.
    pub(crate) fn start(&mut self, f0: &[f64], g0: &[f64]) {
        self.f.copy_from_slice(f0);
        self.g.copy_from_slice(g0);
        self.valid = true;
    }

    /// Evaluates `f` and `g` at `(t, y)` unless they are already there.
    #[inline(always)]
    pub(crate) fn ensure<F: Drift, G: Diffusion>(
        &mut self,
        fields: &Fields<'_, F, G>,
        t: f64,
        y: &[f64],
        stats: &mut Stats,
    ) {
        if !self.valid {
            fields.f(t, y, &mut self.f, stats);
            fields.g(t, y, &mut self.g, stats);
            self.valid = true;
        }
    }
}

/// Which noise types a solver takes.
#[derive(Clone, Copy)]
pub(crate) struct Noises {
    scalar: bool,
    diagonal: bool,
    additive: bool,
    general: bool,
}

impl Noises {
    /// Every noise type.
    pub(crate) const ALL: Noises = Noises {
        scalar: true,
        diagonal: true,
        additive: true,
        general: true,
    };
    /// Scalar, diagonal and additive noise (not general).
    pub(crate) const DIAGONAL: Noises = Noises {
        general: false,
        ..Noises::ALL
    };
    /// Additive noise only.
    pub(crate) const ADDITIVE: Noises = Noises {
        scalar: false,
        diagonal: false,
        additive: true,
        general: false,
    };
}

/// Which interpretations a solver integrates (additive noise is accepted
/// under either: they coincide).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Integrates {
    Ito,
    Stratonovich,
    /// The problem's, whichever it is.
    Either,
}

const NOISE_ALTERNATIVES: &str = "EulerMaruyama (Itô) and EulerHeun or ReversibleHeun \
                                  (Stratonovich) support every noise type";

/// Checks that the solver `name`, which takes `noises` in `integrates`,
/// can integrate `problem`.
pub(crate) fn check_support<F: Drift, G: Diffusion, D: Driver>(
    name: &'static str,
    noises: Noises,
    integrates: Integrates,
    problem: &Problem<F, G, D>,
) -> Result<(), SolveError> {
    if problem.tspan.1 < problem.tspan.0 {
        return Err(SolveError::Unsupported {
            solver: name,
            what: "integration backwards in time (SDE solves run forward; the \
                   stochastic adjoints replay the path backwards themselves)"
                .into(),
            alternatives: "(none — give tspan with t1 > t0)".into(),
        });
    }
    let Some(noise) = problem.noise else {
        return Err(SolveError::Unsupported {
            solver: name,
            what: "ODEs (it integrates SDEs; the problem has no diffusion)".into(),
            alternatives: "Tsit5, Vern7, Dopri5, Bdf".into(),
        });
    };
    let ok = match noise {
        Noise::Scalar => noises.scalar,
        Noise::Diagonal => noises.diagonal,
        Noise::Additive => noises.additive,
        Noise::General(_) => noises.general,
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
            solver: name,
            what: format!("{noise:?} noise"),
            alternatives: alternatives.into(),
        });
    }
    let interp_ok = matches!(noise, Noise::Additive)
        || match problem.interpretation {
            Interpretation::Ito => integrates != Integrates::Stratonovich,
            Interpretation::Stratonovich => integrates != Integrates::Ito,
        };
    if !interp_ok {
        let alternatives = match problem.interpretation {
            Interpretation::Ito => "EulerMaruyama, Milstein, Sriw1, Sosri",
            Interpretation::Stratonovich => "EulerHeun, Milstein, ReversibleHeun",
        };
        return Err(SolveError::Unsupported {
            solver: name,
            what: format!("{:?} SDEs", problem.interpretation),
            alternatives: alternatives.into(),
        });
    }
    Ok(())
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
/// buffer of length `n` at `cache.$k` (`k` by default).
macro_rules! linear_dense {
    ($cache:ty) => {
        crate::sde::linear_dense!($cache, k);
    };
    ($cache:ty, $($k:ident).+) => {
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
            crate::sde::linear_stage(h, y, y_new, &mut cache.$($k).+);
            &cache.$($k).+
        }
    };
}
pub(crate) use linear_dense;
