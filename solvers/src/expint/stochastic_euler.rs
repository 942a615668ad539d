//! Stochastic exponential Euler for `dX = (L X + N(t, X, p)) dt + G dW`
//! with a constant diagonal `L = diag(λ)`, `λ_i ≤ 0`, and additive noise
//! (`G` independent of `X`):
//!
//! `X_{n+1} = e^{hL} X_n + h φ_1(hL) N(t_n, X_n) + ∫_{t_n}^{t_n + h} e^{(t_n + h − u)L} G(t_n) dW_u`
//!
//! (`../shared/reference/exponential.md` §3; Lord & Rougemont, IMA J.
//! Numer. Anal. 24 (2004); Jentzen & Kloeden, Proc. R. Soc. A 465 (2009)).
//! The stochastic convolution is not sampled from its covariance alone: its
//! component `i` is `Σ_j G_ij ξ_{k(i), j}` with `ξ_{k, j} = ∫ e^{−γ_k (t −
//! u)} dW_j(u)`, `γ_{k(i)} = −λ_i` (`ΔW_j` where `λ_i = 0`), read with
//! `ΔW` from the problem's [`ConvolutionNoise`] path. So the scheme sees
//! one Brownian path at every step size (strong order 1 for additive noise
//! and smooth `N`), a rejected or replayed step sees the same values, and
//! with `N = 0` and constant `G` it is the exact Ornstein–Uhlenbeck
//! transition at any step (no stiffness restriction: `h|λ| = 100` is as
//! exact as `h|λ| = 0.01`). `G` is frozen at the step's start (exact for a
//! constant `G`; a `G(t)` costs nothing in order). A `G` that depends on
//! `X` is still integrated (Itô), at order 1/2.
//!
//! The operators `e^{hL}`, `φ_1(hL)` are ETD1's, cached per step size
//! ([`PhiOps`]). Fixed steps (no error estimate); the noise types of
//! [`crate::noise::Noise`], Itô (either interpretation for
//! [`crate::noise::Noise::Additive`]).
//!
//! Step VJP: `ȳ = e^{hL} ȳ' + (∂N/∂X)ᵀ h φ_1(hL) ȳ' + (∂G/∂X)ᵀ[ȳ' ξᵀ]`,
//! `p̄ += (∂N/∂p)ᵀ h φ_1 ȳ' + (∂G/∂p)ᵀ[ȳ' ξᵀ]` (gradients in `X_0`, in
//! the parameters of `N` and of `G`). A parameter-dependent `L` is refused
//! on this route: the convolutions' rates are the driver's, fixed when it
//! is built, so `∂ξ/∂λ` along the path is not available. The same method on
//! a problem driven by [`super::CovarianceNoise`] forms each step's
//! convolution from `L`-free increments with the exact covariance of
//! `L(p)` instead, and differentiates in `L`
//! (`stochastic_euler_covariance.rs`).

use super::convolution_noise::ConvolutionNoise;
use super::etd1::ETD1;
use super::ops::PhiOps;
use super::semilinear::{LinearPart, Semilinear, SemilinearParts, Structure, check_linear_values};
use crate::error::SolveError;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::noise::Noise;
use crate::problem::Problem;
use crate::sde::{Integrates, Noises, check_support, linear_stage, linear_table};
use crate::solver::{DenseTable, Increment, Solver, StepArgs, StepAt, StepStatus, StepTaken};
use crate::step_vjp::{StepVjp, VjpArgs, refuse_err_cotangent, refuse_interp_cotangents};

/// Stochastic exponential Euler (module docs), strong order 1 for additive
/// noise; problems driven by [`ConvolutionNoise`] only.
///
/// ```
/// use sdeflow_solvers::prelude::*;
/// use sdeflow_solvers::expint::{ConvolutionNoise, Diagonal, Semilinear, StochasticExpEuler};
/// // dX = (−50 X + sin X) dt + 0.3 dW
/// let lam = vec![-50.0];
/// let f = Semilinear::new(Diagonal(lam.clone()), |_t: f64, x: &[f64], _p: &[f64], n: &mut [f64]| {
///     n[0] = x[0].sin()
/// });
/// let g = |_t: f64, _x: &[f64], _p: &[f64], g: &mut [f64]| g[0] = 0.3;
/// let sde = Problem::sde_field(f, g, Noise::Additive, vec![1.0], (0.0, 1.0))
///     .driver(ConvolutionNoise::for_diagonal(&lam)?);
/// let sol = solve(&sde, StochasticExpEuler, Options::default().fixed_step(0.1).seed(3))?;
/// assert!(sol.last()[0].abs() < 1.0);
/// # Ok::<(), SolveError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StochasticExpEuler;

const NAME: &str = "StochasticExpEuler";

/// For each component, the index of its rate among the distinct negative
/// entries of `lam` in order of first appearance (the order of
/// [`ConvolutionNoise::for_diagonal`]), `None` where `λ_i = 0`; and those
/// rates.
fn rate_map(lam: &[f64]) -> (Vec<Option<usize>>, Vec<f64>) {
    let mut rates: Vec<f64> = Vec::new();
    let map = lam
        .iter()
        .map(|&l| {
            (l < 0.0).then(|| match rates.iter().position(|&r| r == -l) {
                Some(k) => k,
                None => {
                    rates.push(-l);
                    rates.len() - 1
                }
            })
        })
        .collect();
    (map, rates)
}

/// Workspace of [`StochasticExpEuler`].
#[derive(Debug, Clone)]
pub struct StochasticExpCache {
    noise: Noise,
    ops: PhiOps,
    /// Per component: its rate's index (`None`: `λ_i = 0`).
    rate: Vec<Option<usize>>,
    /// Number of rates `K`.
    k: usize,
    /// `N(t_n, X_n)`, `G(t_n)`, the interpolant's vector.
    nl: Vec<f64>,
    g: Vec<f64>,
    dense: Vec<f64>,
}

/// `out_i += Σ_j G_ij c_ij`, the convolution `c_ij` of component `i`
/// against `W_j` read from `dw` and `xi` (module docs).
#[inline]
fn add_convolution(
    noise: Noise,
    (rate, k): (&[Option<usize>], usize),
    g: &[f64],
    (dw, xi): (&[f64], &[f64]),
    out: &mut [f64],
) {
    let n = out.len();
    let conv = |i: usize, j: usize| match rate[i] {
        Some(r) => xi[j * k + r],
        None => dw[j],
    };
    match noise {
        Noise::Scalar => (0..n).for_each(|i| out[i] += g[i] * conv(i, 0)),
        Noise::Diagonal | Noise::Additive => (0..n).for_each(|i| out[i] += g[i] * conv(i, i)),
        Noise::General(m) => {
            for j in 0..m {
                for i in 0..n {
                    out[i] += g[i + j * n] * conv(i, j);
                }
            }
        }
    }
}

/// `gbar = ȳ ⊗ c` in the shape of `g`: the cotangent of `G` from the
/// cotangent `ȳ` of [`add_convolution`]'s output.
#[inline]
fn convolution_outer(
    noise: Noise,
    (rate, k): (&[Option<usize>], usize),
    ybar: &[f64],
    (dw, xi): (&[f64], &[f64]),
    gbar: &mut [f64],
) {
    let n = ybar.len();
    let conv = |i: usize, j: usize| match rate[i] {
        Some(r) => xi[j * k + r],
        None => dw[j],
    };
    match noise {
        Noise::Scalar => (0..n).for_each(|i| gbar[i] = ybar[i] * conv(i, 0)),
        Noise::Diagonal | Noise::Additive => (0..n).for_each(|i| gbar[i] = ybar[i] * conv(i, i)),
        Noise::General(m) => {
            for j in 0..m {
                for i in 0..n {
                    gbar[i + j * n] = ybar[i] * conv(i, j);
                }
            }
        }
    }
}

type SexpProblem<L, N, G> = Problem<Semilinear<L, N>, G, ConvolutionNoise>;

impl<L: LinearPart, N: Drift, G: Diffusion> Solver<SexpProblem<L, N, G>> for StochasticExpEuler {
    type Cache = StochasticExpCache;
    const INCREMENT: Increment = Increment::DwModes;

    fn name(&self) -> &'static str {
        NAME
    }

    fn order(&self) -> f64 {
        1.0
    }

    fn error_order(&self) -> Option<f64> {
        None
    }

    fn check(&self, problem: &SexpProblem<L, N, G>) -> Result<(), SolveError> {
        check_support(NAME, Noises::ALL, Integrates::Ito, problem)?;
        let n = problem.dim();
        let linear = &problem.drift.linear;
        if linear.structure() != Structure::Diagonal {
            return Err(SolveError::Unsupported {
                solver: NAME,
                what: "a dense or complex linear part (the convolutions it reads are those \
                       of real scalar rates)"
                    .into(),
                alternatives: "diagonalise L (a symmetric L in its eigenbasis), or \
                               EulerMaruyama on the drift L X + N"
                    .into(),
            });
        }
        if linear.depends_on_params() {
            return Err(SolveError::Unsupported {
                solver: NAME,
                what: "a parameter-dependent linear part (the convolutions' rates are the \
                       driver's, fixed when it is built)"
                    .into(),
                alternatives: "drive the problem with CovarianceNoise (the exact-covariance \
                               route, which differentiates in L), or a constant L with the \
                               parameters in N"
                    .into(),
            });
        }
        check_linear_values(Structure::Diagonal, n, linear.known_len(), None)?;
        let mut scratch = Vec::new();
        let lam = linear.values(n, &problem.params, &mut scratch);
        check_linear_values(Structure::Diagonal, n, Some(lam.len()), Some(lam))?;
        if let Some(i) = lam.iter().position(|&l| l > 0.0) {
            return Err(SolveError::invalid(
                format!("L[{i}] = {}", lam[i]),
                "stochastic exponential Euler needs a non-positive diagonal (a decaying or \
                 neutral linear part); move a growing part into N",
            ));
        }
        let (_, rates) = rate_map(lam);
        if rates.as_slice() != problem.driver.rates() {
            return Err(SolveError::invalid(
                "driver",
                format!(
                    "the ConvolutionNoise serves the rates {:?}, but L needs {rates:?} (the \
                     distinct −λ_i < 0 in order); build it with \
                     ConvolutionNoise::for_diagonal(&lambda)",
                    problem.driver.rates()
                ),
            ));
        }
        Ok(())
    }

    fn init(&self, problem: &SexpProblem<L, N, G>) -> StochasticExpCache {
        let n = problem.dim();
        let noise = problem.noise.unwrap_or(Noise::Additive);
        let mut scratch = Vec::new();
        let lam = problem
            .drift
            .linear
            .values(n, &problem.params, &mut scratch)
            .to_vec();
        let (rate, rates) = rate_map(&lam);
        StochasticExpCache {
            noise,
            ops: PhiOps::new(&ETD1, Structure::Diagonal, n, lam, false),
            rate,
            k: rates.len(),
            nl: vec![0.0; n],
            g: vec![0.0; noise.diffusion_len(n)],
            dense: vec![0.0; n],
        }
    }

    fn start(&self, _cache: &mut StochasticExpCache, _f0: &[f64], _g0: &[f64]) {}

    #[inline]
    fn step(&self, c: &mut StochasticExpCache, a: StepArgs<'_, Semilinear<L, N>, G>) -> StepStatus {
        let StepAt { t, h, y } = a.at;
        let (fields, stats, y_new) = (a.fields, a.stats, a.out.y_new);
        c.ops.ensure(h);
        stats.drift_evals += 1;
        fields.drift.nonlinear.drift(t, y, fields.p, &mut c.nl);
        fields.g(t, y, &mut c.g, stats);
        y_new.iter_mut().for_each(|v| *v = 0.0);
        c.ops.apply_add(c.ops.index.out_exp, 1.0, y, y_new);
        c.ops.apply_add(c.ops.index.b, h, &c.nl, y_new);
        add_convolution(
            c.noise,
            (&c.rate, c.k),
            &c.g,
            (a.noise.dw, a.noise.modes),
            y_new,
        );
        StepStatus::Taken
    }

    fn accept(&self, _cache: &mut StochasticExpCache) {}

    fn dense_table<'c>(&self, _cache: &'c StochasticExpCache) -> DenseTable<'c> {
        linear_table()
    }

    fn dense_stages<'c>(
        &self,
        cache: &'c mut StochasticExpCache,
        step: StepTaken<'_, Semilinear<L, N>, G>,
    ) -> &'c [f64] {
        linear_stage(step.at.h, step.at.y, step.y_new, &mut cache.dense);
        &cache.dense
    }
}

/// Workspace of the step VJP of [`StochasticExpEuler`].
#[derive(Debug, Clone)]
pub struct StochasticExpVjpWork {
    noise: Noise,
    /// The operators; `None` when the drift has no semilinear structure.
    ops: Option<PhiOps>,
    rate: Vec<Option<usize>>,
    k: usize,
    /// `h φ_1(hL) ȳ'`, and the cotangent of `G`.
    b: Vec<f64>,
    gbar: Vec<f64>,
}

impl<L: LinearPart, N: Drift, G: Diffusion> StepVjp<SexpProblem<L, N, G>> for StochasticExpEuler {
    type VjpWork = StochasticExpVjpWork;

    fn vjp_workspace<F: DriftVjp, Gv: DiffusionVjp, D: crate::brownian::Driver>(
        &self,
        problem: &Problem<F, Gv, D>,
    ) -> StochasticExpVjpWork {
        let n = problem.dim();
        let noise = problem.noise.unwrap_or(Noise::Additive);
        let mut lam = Vec::new();
        let parts = problem.drift.semilinear();
        if let Some(parts) = parts {
            parts.linear_values(n, &problem.params, &mut lam);
        }
        let (rate, rates) = rate_map(&lam);
        StochasticExpVjpWork {
            noise,
            ops: parts.map(|_| PhiOps::new(&ETD1, Structure::Diagonal, n, lam, false)),
            rate,
            k: rates.len(),
            b: vec![0.0; n],
            gbar: vec![0.0; noise.diffusion_len(n)],
        }
    }

    /// `ȳ ← e^{hL} ȳ' + (∂N/∂X)ᵀ h φ_1 ȳ' + (∂G/∂X)ᵀ[ȳ' ξᵀ]`, with the
    /// parameter cotangents of `N` and `G` added to `bars.p` (module
    /// docs). Returns the number of drift VJPs (one).
    fn step_vjp<F: DriftVjp, Gv: DiffusionVjp>(
        &self,
        w: &mut StochasticExpVjpWork,
        args: VjpArgs<'_, F, Gv>,
    ) -> Result<usize, SolveError> {
        let parts = vjp_parts(&args)?;
        let Some(ops) = w.ops.as_mut() else {
            return Err(no_semilinear());
        };
        let StepAt { t, h, y } = args.at;
        let (fields, bars) = (args.fields, args.bars);
        ops.ensure(h);
        w.b.iter_mut().for_each(|v| *v = 0.0);
        ops.apply_add(ops.index.b, h, bars.y, &mut w.b);
        convolution_outer(
            w.noise,
            (&w.rate, w.k),
            bars.y,
            (args.noise.dw, args.noise.modes),
            &mut w.gbar,
        );
        // ȳ ← e^{hL} ȳ' (diagonal: in place)
        for (v, &e) in bars.y.iter_mut().zip(ops.op(ops.index.out_exp)) {
            *v *= e;
        }
        parts.nonlinear_vjp(t, y, fields.p, &w.b, bars.y, bars.p);
        fields
            .diffusion
            .diffusion_vjp(t, y, fields.p, &w.gbar, bars.y, bars.p);
        Ok(1)
    }
}

/// The semilinear parts of the drift of a step VJP of either route (this
/// one and `stochastic_euler_covariance.rs`), after refusing the
/// cotangents the method has no use for.
pub(super) fn vjp_parts<'a, F: DriftVjp, Gv>(
    args: &VjpArgs<'a, F, Gv>,
) -> Result<&'a dyn SemilinearParts, SolveError> {
    refuse_err_cotangent(NAME, args.bars.err)?;
    refuse_interp_cotangents(NAME, args.bars.interp)?;
    let drift: &'a F = args.fields.drift;
    drift.semilinear().ok_or_else(no_semilinear)
}

fn no_semilinear() -> SolveError {
    SolveError::Unsupported {
        solver: NAME,
        what: "a drift without a semilinear structure".into(),
        alternatives: "write the drift as Semilinear::new(L, N)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_map_orders_distinct_negative_entries_by_first_appearance() {
        let (map, rates) = rate_map(&[-3.0, 0.0, -1.0, -3.0]);
        assert_eq!(map, vec![Some(0), None, Some(1), Some(0)]);
        assert_eq!(rates, vec![3.0, 1.0]);
        let d = ConvolutionNoise::for_diagonal(&[-3.0, 0.0, -1.0, -3.0]).unwrap();
        assert_eq!(d.rates(), rates.as_slice());
    }
}
