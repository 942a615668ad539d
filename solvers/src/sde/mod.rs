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
//!
//! Every solver here has a step VJP ([`StepVjp`], the protocol of the
//! one discrete adjoint); a solver of your own that implements [`Solver`]
//! and [`StepVjp`] runs in the same loop and gets the same gradients
//! (`tests/suite/extension_sde.rs`).
//!
//! [`Solver`]: crate::solver::Solver
//! [`StepVjp`]: crate::step_vjp::StepVjp

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
pub use vjp::{SdeVjpWork, StageVjpWork};

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
    if n == 1 && dw.len() == 1 {
        // one component and one Brownian motion: every noise type is the
        // same update (a constant of the loop where the state is an array,
        // so the type is not even read)
        out[0] = (y[0] + h * out[0]) + dw[0] * g[0];
    } else if let Noise::Scalar = noise {
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

/// The dimension and noise type of the SDE `problem` (a solver's check has
/// refused problems without noise before anything is allocated).
#[inline]
pub(crate) fn shape<F: Drift, G: Diffusion, D: Driver>(
    problem: &Problem<F, G, D>,
) -> (usize, Noise) {
    (problem.dim(), problem.noise.unwrap_or(Noise::Diagonal))
}

/// Index of the Brownian component driving state component `i` under
/// scalar / diagonal / additive noise.
#[inline(always)]
pub(crate) fn driver(noise: Noise, i: usize) -> usize {
    if let Noise::Scalar = noise { 0 } else { i }
}

/// The workspace of a method that evaluates `f(t, y)` and `g(t, y)` at the
/// start of each step (Euler–Maruyama, Euler–Heun, Milstein): the loop's
/// `f0`, `g0` on the first step, evaluated by the step after that; the
/// vector of linear dense output; and the method's own buffers `own`.
#[derive(Debug, Clone)]
pub struct StartCache<X> {
    pub(crate) noise: Noise,
    pub(crate) f: Vec<f64>,
    pub(crate) g: Vec<f64>,
    pub(crate) k: Vec<f64>,
    /// `f` and `g` hold the values at the current step's start.
    pub(crate) valid: bool,
    pub(crate) own: X,
}

impl<X> StartCache<X> {
    pub(crate) fn new<F: Drift, G: Diffusion, D: Driver>(
        problem: &Problem<F, G, D>,
        own: X,
    ) -> Self {
        let (n, noise) = shape(problem);
        StartCache {
            noise,
            f: vec![0.0; n],
            g: vec![0.0; noise.diffusion_len(n)],
            k: vec![0.0; n],
            valid: false,
            own,
        }
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

impl<X> SdeCache for StartCache<X> {
    fn start(&mut self, f0: &[f64], g0: &[f64]) {
        self.f.copy_from_slice(f0);
        self.g.copy_from_slice(g0);
        self.valid = true;
    }
    fn accept(&mut self) {
        // no error estimate, no rejection: f and g are redone next step
        self.valid = false;
    }
    fn dense(&mut self) -> &mut [f64] {
        &mut self.k
    }
}

/// The workspace of an SDE method as the shared [`Solver`](crate::solver::Solver) plumbing
/// ([`sde_solver!`]) sees it.
pub(crate) trait SdeCache {
    /// Takes the loop's `f(t0, y0)` and `g(t0, y0)` at the start of a solve.
    fn start(&mut self, f0: &[f64], g0: &[f64]);
    /// The last step was accepted.
    fn accept(&mut self);
    /// The vector of linear dense output.
    fn dense(&mut self) -> &mut [f64];
    /// The carried state ([`Solver::carried_state`](crate::solver::Solver::carried_state); none by default).
    fn carried(&self) -> &[f64] {
        &[]
    }
}

pub(crate) use crate::solver::StepArgs;

/// Implements [`Solver`](crate::solver::Solver) for the SDE method `$name` with workspace `$cache`
/// (an [`SdeCache`]) from a header — its name (with `$s` bound to `self`),
/// strong order, error order (`None`: fixed steps), whether it needs the
/// Lévy area, the noise types and interpretations it takes (checked by
/// [`check_support`], then by the method's `$check(problem)` if given) —
/// and two inherent functions of the method: `new_cache(problem)` and the
/// step, `take(cache, StepArgs)`. Dense output is linear.
macro_rules! sde_solver {
    (
        $name:ty, $cache:ty, |$s:ident| $n:expr,
        order: $order:expr, error_order: $eo:expr, levy: $levy:expr,
        takes: ($noises:expr, $integrates:expr) $(, then: $check:ident)? $(,)?
    ) => {
        impl<F: crate::field::Drift, G: crate::field::Diffusion, D: crate::brownian::Driver>
            crate::solver::Solver<crate::solver::SdeProblem<F, G, D>> for $name
        {
            type Cache = $cache;
            const INCREMENT: crate::solver::Increment = if $levy {
                crate::solver::Increment::DwLevyArea
            } else {
                crate::solver::Increment::Dw
            };
            fn name(&self) -> &'static str {
                let $s = self;
                $n
            }
            fn order(&self) -> f64 {
                $order
            }
            fn error_order(&self) -> Option<f64> {
                $eo
            }
            fn check(
                &self,
                problem: &crate::solver::SdeProblem<F, G, D>,
            ) -> Result<(), crate::error::SolveError> {
                let name = {
                    let $s = self;
                    $n
                };
                crate::sde::check_support(name, $noises, $integrates, problem)?;
                $(self.$check(problem)?;)?
                Ok(())
            }
            fn init(&self, problem: &crate::solver::SdeProblem<F, G, D>) -> $cache {
                self.new_cache(problem)
            }
            fn start(&self, cache: &mut $cache, f0: &[f64], g0: &[f64]) {
                crate::sde::SdeCache::start(cache, f0, g0)
            }
            #[inline(always)]
            fn step(
                &self,
                cache: &mut $cache,
                args: crate::solver::StepArgs<'_, F, G>,
            ) -> crate::solver::StepStatus {
                self.take(cache, args)
            }
            fn accept(&self, cache: &mut $cache) {
                crate::sde::SdeCache::accept(cache)
            }
            fn carried_state<'c>(&self, cache: &'c $cache) -> &'c [f64] {
                crate::sde::SdeCache::carried(cache)
            }
            fn dense_table<'c>(&self, _cache: &'c $cache) -> crate::solver::DenseTable<'c> {
                crate::sde::linear_table()
            }
            fn dense_stages<'c>(
                &self,
                cache: &'c mut $cache,
                step: crate::solver::StepTaken<'_, F, G>,
            ) -> &'c [f64] {
                let k = crate::sde::SdeCache::dense(cache);
                crate::sde::linear_stage(step.at.h, step.at.y, step.y_new, k);
                k
            }
        }
    };
}
pub(crate) use sde_solver;

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
    check_support_suggesting(name, noises, integrates, &BROWNIAN_CALCULI, problem)
}

/// The solvers to suggest for a problem of a calculus the method does not
/// integrate, per calculus.
pub(crate) struct CalculusAlternatives {
    /// For an Itô problem.
    pub ito: &'static str,
    /// For a Stratonovich problem.
    pub stratonovich: &'static str,
}

/// The Brownian-driven solvers of each calculus.
const BROWNIAN_CALCULI: CalculusAlternatives = CalculusAlternatives {
    ito: "EulerMaruyama, Milstein, Sriw1, Sosri",
    stratonovich: "EulerHeun, Milstein, ReversibleHeun",
};

/// [`check_support`] suggesting `calculi` when the problem's calculus is
/// not the method's (another family of drivers has other solvers).
pub(crate) fn check_support_suggesting<F: Drift, G: Diffusion, D: Driver>(
    name: &'static str,
    noises: Noises,
    integrates: Integrates,
    calculi: &CalculusAlternatives,
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
            Interpretation::Ito => calculi.ito,
            Interpretation::Stratonovich => calculi.stratonovich,
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
    DenseTable::new(2, &LINEAR)
}

/// Writes `(y_new − y)/h` into `k` (the one vector linear interpolation keeps).
pub(crate) fn linear_stage(h: f64, y: &[f64], y_new: &[f64], k: &mut [f64]) {
    for i in 0..k.len() {
        k[i] = (y_new[i] - y[i]) / h;
    }
}
