//! What the fBM-driven methods share (`../shared/reference/fbm.md` §3.3–3.4):
//! the SDE `dX = b(t, X, p) dt + s(t, X, p) dB̂_H` with
//! `B̂_H = Σ_k ω_k (Y_k − Y_k(t0))`, the modes `dY_k = −γ_k Y_k dt + dW`
//! integrated exactly by the driver ([`super::FractionalNoise`]), which
//! hands each step the modes' increments `ΔY_k = Y_k(t + h) − Y_k(t)`
//! ([`crate::solver::Increment::DwModes`]). The step then uses the exact
//! increment of the fBM approximation, `ΔB̂_j = Σ_k ω_k ΔY_{jk}` for each
//! of the `m` driving fBMs: no `γ_max · h` stability limit, whatever the
//! rates (the reference code's Euler on the augmented system needs
//! `γ_max · h < 0.5`).
//!
//! The noise structure is the problem's: diagonal (one fBM per component),
//! scalar (one fBM), additive, or general (`m` fBMs, an `n × m` matrix).
//! The workspace holds the weights `ω(H)` and `dω/dH`, solved once per
//! solve from the problem's parameters ([`super::ModeWeights`]).

use super::ou_tree::FractionalNoise;
use super::weights::ModeWeights;
use crate::error::SolveError;
use crate::field::{Diffusion, Drift};
use crate::noise::Noise;
use crate::problem::Problem;
use crate::sde::{CalculusAlternatives, Integrates, Noises, add_noise, check_support_suggesting};

/// The workspace of an fBM-driven method: the weights, the step's fBM
/// increments, the fields at the step's start (and, for a predictor–
/// corrector, at the predictor), and the vector of linear dense output.
#[derive(Debug, Clone)]
pub struct DrivenCache {
    pub(super) noise: Noise,
    /// `ω(H)`.
    pub(super) w: Vec<f64>,
    /// `ΔB̂`, one per fBM.
    pub(super) db: Vec<f64>,
    pub(super) f: Vec<f64>,
    pub(super) g: Vec<f64>,
    /// `f` and `g` hold the values at the current step's start.
    pub(super) valid: bool,
    /// The predictor and the fields there (empty for one-stage methods).
    pub(super) y_pred: Vec<f64>,
    pub(super) f_pred: Vec<f64>,
    pub(super) g_pred: Vec<f64>,
    pub(super) dense: Vec<f64>,
}

impl DrivenCache {
    /// The workspace for `problem` with the weights of `mw` at its
    /// parameters (`NaN` weights if they cannot be solved: the solver's
    /// check has refused such a problem before); predictor buffers when
    /// `two_stage`.
    pub(super) fn new<F: Drift, G: Diffusion, D>(
        problem: &Problem<F, G, D>,
        mw: &ModeWeights,
        two_stage: bool,
    ) -> Self {
        let n = problem.y0.len();
        let noise = problem.noise.unwrap_or(Noise::Diagonal);
        let (m, k) = (noise.brownian_dim(n), mw.gammas().len());
        let w = mw
            .weights(&problem.params)
            .map_or_else(|_| vec![f64::NAN; k], |(w, _)| w);
        let len = noise.diffusion_len(n);
        let pred = |l: usize| vec![0.0; if two_stage { l } else { 0 }];
        DrivenCache {
            noise,
            w,
            db: vec![0.0; m],
            f: vec![0.0; n],
            g: vec![0.0; len],
            valid: false,
            y_pred: pred(n),
            f_pred: pred(n),
            g_pred: pred(len),
            dense: vec![0.0; n],
        }
    }
}

impl DrivenCache {
    /// Evaluates `f` and `g` at the step's start `(t, y)` unless they are
    /// there already, and the step's fBM increments from the modes' `dy`.
    #[inline]
    pub(super) fn begin<F: Drift, G: Diffusion>(
        &mut self,
        fields: &crate::solver::Fields<'_, F, G>,
        (t, y): (f64, &[f64]),
        dy: &[f64],
        stats: &mut crate::solution::Stats,
    ) {
        if !self.valid {
            fields.f(t, y, &mut self.f, stats);
            fields.g(t, y, &mut self.g, stats);
            self.valid = true;
        }
        weigh(&self.w, dy, &mut self.db);
    }
}

/// `out_j = Σ_k w_k dy_{jk}` for each of the `out.len()` fBMs: the fBM
/// increments from the modes' (`K = w.len()` per fBM).
#[inline]
pub(super) fn weigh(w: &[f64], dy: &[f64], out: &mut [f64]) {
    let k = w.len();
    for (j, o) in out.iter_mut().enumerate() {
        *o = w
            .iter()
            .zip(&dy[j * k..(j + 1) * k])
            .map(|(a, b)| a * b)
            .sum();
    }
}

/// `vᵀ G u`: the contraction of a state cotangent `v` with the diffusion
/// `g` applied to the noise vector `u` (`tmp`: `v.len()` scratch).
#[inline]
pub(super) fn contract(noise: Noise, v: &[f64], g: &[f64], u: &[f64], tmp: &mut [f64]) -> f64 {
    tmp.fill(0.0);
    add_noise(noise, g, u, 1.0, tmp);
    v.iter().zip(tmp.iter()).map(|(a, b)| a * b).sum()
}

/// The fBM-driven solvers of each calculus (the Brownian ones do not step
/// `B̂_H`).
const FBM_CALCULI: CalculusAlternatives = CalculusAlternatives {
    ito: FBM_SOLVERS,
    stratonovich: FBM_SOLVERS,
};
const FBM_SOLVERS: &str = "FractionalEuler (Itô; FractionalModalEuler for a posterior with the \
                           modes in its state), FractionalHeun (Stratonovich); or set \
                           Problem::interpretation to the solver's";

/// What every fBM-driven method checks: the noise structure and
/// interpretation (`integrates`), the driver's modes against the weights',
/// and that the weights can be solved at the problem's parameters.
pub(super) fn check_driven<F: Drift, G: Diffusion>(
    name: &'static str,
    integrates: Integrates,
    mw: &ModeWeights,
    problem: &Problem<F, G, FractionalNoise>,
) -> Result<(), SolveError> {
    check_support_suggesting(name, Noises::ALL, integrates, &FBM_CALCULI, problem)?;
    mw.check_driver(name, &problem.driver)?;
    mw.weights(&problem.params).map(|_| ())
}

/// Implements [`crate::solver::Solver`] for the fBM-driven method `$name`
/// (a struct with a field `weights: ModeWeights`) on every problem driven
/// by [`FractionalNoise`], from a header — its name, strong order, error
/// order (`None`: fixed steps), the interpretation it integrates, whether
/// it has a predictor, optionally a further check of its own
/// (`check: method`, a `fn(&self, &Problem) -> Result<(), SolveError>`) —
/// and its inherent step `take(cache, StepArgs)`. Dense output is linear.
macro_rules! driven_solver {
    (
        $name:ty, $display:expr, order: $order:expr, error_order: $eo:expr,
        integrates: $integrates:expr, two_stage: $two:expr
        $(, check: $extra:ident)? $(,)?
    ) => {
        impl<F: crate::field::Drift, G: crate::field::Diffusion>
            crate::solver::Solver<crate::problem::Problem<F, G, super::ou_tree::FractionalNoise>>
            for $name
        {
            type Cache = super::driven::DrivenCache;
            const INCREMENT: crate::solver::Increment = crate::solver::Increment::DwModes;
            fn name(&self) -> &'static str {
                $display
            }
            fn order(&self) -> f64 {
                $order
            }
            fn error_order(&self) -> Option<f64> {
                $eo
            }
            fn check(
                &self,
                problem: &crate::problem::Problem<F, G, super::ou_tree::FractionalNoise>,
            ) -> Result<(), crate::error::SolveError> {
                super::driven::check_driven($display, $integrates, &self.weights, problem)?;
                $( self.$extra(problem)?; )?
                Ok(())
            }
            fn init(
                &self,
                problem: &crate::problem::Problem<F, G, super::ou_tree::FractionalNoise>,
            ) -> super::driven::DrivenCache {
                super::driven::DrivenCache::new(problem, &self.weights, $two)
            }
            fn start(&self, cache: &mut super::driven::DrivenCache, f0: &[f64], g0: &[f64]) {
                cache.f.copy_from_slice(f0);
                cache.g.copy_from_slice(g0);
                cache.valid = true;
            }
            #[inline]
            fn step(
                &self,
                cache: &mut super::driven::DrivenCache,
                args: crate::solver::StepArgs<'_, F, G>,
            ) -> crate::solver::StepStatus {
                self.take(cache, args)
            }
            fn accept(&self, cache: &mut super::driven::DrivenCache) {
                // the next step starts elsewhere: its fields are evaluated there
                cache.valid = false;
            }
            fn dense_table<'c>(
                &self,
                _cache: &'c super::driven::DrivenCache,
            ) -> crate::solver::DenseTable<'c> {
                crate::sde::linear_table()
            }
            fn dense_stages<'c>(
                &self,
                cache: &'c mut super::driven::DrivenCache,
                step: crate::solver::StepTaken<'_, F, G>,
            ) -> &'c [f64] {
                crate::sde::linear_stage(step.at.h, step.at.y, step.y_new, &mut cache.dense);
                &cache.dense
            }
        }
    };
}
pub(super) use driven_solver;

/// Implements [`crate::step_vjp::StepVjp`] for the fBM-driven method
/// `$name` by its inherent `vjp(work, args)`, with a [`DrivenVjpWork`]
/// for its weights.
macro_rules! driven_step_vjp {
    ($name:ty) => {
        impl<F: crate::field::Drift, G: crate::field::Diffusion>
            crate::step_vjp::StepVjp<crate::problem::Problem<F, G, super::ou_tree::FractionalNoise>>
            for $name
        {
            type VjpWork = super::driven::DrivenVjpWork;

            fn vjp_workspace<
                F2: crate::field::DriftVjp,
                G2: crate::field::DiffusionVjp,
                D: crate::brownian::Driver,
            >(
                &self,
                problem: &crate::problem::Problem<F2, G2, D>,
            ) -> super::driven::DrivenVjpWork {
                super::driven::DrivenVjpWork::new(problem, &self.weights)
            }

            fn step_vjp<F2: crate::field::DriftVjp, G2: crate::field::DiffusionVjp>(
                &self,
                work: &mut super::driven::DrivenVjpWork,
                args: crate::step_vjp::VjpArgs<'_, F2, G2>,
            ) -> Result<usize, crate::error::SolveError> {
                self.vjp(work, args)
            }
        }
    };
}
pub(super) use driven_step_vjp;

/// The workspace of the fBM-driven methods' step VJPs.
#[derive(Debug, Clone)]
pub struct DrivenVjpWork {
    pub(super) noise: Noise,
    pub(super) n: usize,
    /// `ω`, `dω/dH`, and where `H` sits in the parameters.
    pub(super) w: Vec<f64>,
    pub(super) dw_dh: Vec<f64>,
    pub(super) hurst_index: Option<usize>,
    /// `ΔB̂` and `dΔB̂/dH`.
    pub(super) db: Vec<f64>,
    pub(super) ddb: Vec<f64>,
    pub(super) f: Vec<f64>,
    pub(super) g: Vec<f64>,
    pub(super) y_pred: Vec<f64>,
    pub(super) g_pred: Vec<f64>,
    /// State cotangents and scratch (`n` each), the diffusion's cotangent.
    pub(super) a: Vec<f64>,
    pub(super) b: Vec<f64>,
    pub(super) c: Vec<f64>,
    pub(super) x: Vec<f64>,
    pub(super) tmp: Vec<f64>,
    pub(super) vg: Vec<f64>,
}

impl DrivenVjpWork {
    /// The workspace for `problem`, with the weights of `mw` at its
    /// parameters (`NaN` if they cannot be solved: the forward solve has
    /// refused such a problem).
    pub(super) fn new<F, G, D>(problem: &Problem<F, G, D>, mw: &ModeWeights) -> Self {
        let n = problem.y0.len();
        let noise = problem.noise.unwrap_or(Noise::Diagonal);
        let (m, k) = (noise.brownian_dim(n), mw.gammas().len());
        let (w, dw_dh) = mw
            .weights(&problem.params)
            .unwrap_or_else(|_| (vec![f64::NAN; k], vec![f64::NAN; k]));
        let len = noise.diffusion_len(n);
        DrivenVjpWork {
            noise,
            n,
            w,
            dw_dh,
            hurst_index: mw.hurst_index(),
            db: vec![0.0; m],
            ddb: vec![0.0; m],
            f: vec![0.0; n],
            g: vec![0.0; len],
            y_pred: vec![0.0; n],
            g_pred: vec![0.0; len],
            a: vec![0.0; n],
            b: vec![0.0; n],
            c: vec![0.0; n],
            x: vec![0.0; n],
            tmp: vec![0.0; n],
            vg: vec![0.0; len],
        }
    }

    /// `ΔB̂` and `dΔB̂/dH` of the step's mode increments `dy`.
    pub(super) fn increments(&mut self, dy: &[f64]) {
        weigh(&self.w, dy, &mut self.db);
        weigh(&self.dw_dh, dy, &mut self.ddb);
    }
}
