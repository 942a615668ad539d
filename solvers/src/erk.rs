//! One generic explicit Runge–Kutta step for every [`ButcherTableau`], in the
//! manner of diffrax's `AbstractERK`: the method is data, this file is the
//! only place a stage is computed.
//!
//! Stages `k_i = f(t + c_i h, y + h Σ_{j<i} a_ij k_j)`, solution
//! `y + h Σ b_i k_i`, error estimate `h Σ (b_i − b̂_i) k_i`. FSAL methods
//! compute `k_s` at `y_{n+1}` and reuse it as the next step's `k_1`, so an
//! attempted step costs `s − 1` drift evaluations, accepted or rejected.
//!
//! [`ExplicitRk<T>`] is generic over the tableau's storage `T`
//! ([`Tableau`]): `&'static ButcherTableau` by default (the built-ins,
//! constant data), or a borrowed [`crate::tableau::OwnedTableau`] built and
//! validated at run time. The step is monomorphised per storage, so the
//! built-ins pay nothing for the choice. `ExplicitRk<&OwnedTableau>` is
//! `Copy`, solves, interpolates and is differentiated by `grad` like any
//! built-in.

use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{DiffusionVjp, Drift, DriftVjp, NoDiffusion};
use crate::problem::Problem;
use crate::solver::{
    DenseTable, Increment, OdeProblem, Solver, StepArgs, StepAt, StepOut, StepStatus, StepTaken,
    delegate_solver,
};
use crate::step_vjp::{
    StagePair, StagePairBars, StagePairHook, StepBars, StepVjp, StiffnessStages, VjpArgs,
    delegate_step_vjp, refuse_err_cotangent,
};
use crate::tableau::{BS3, ButcherTableau, DP5, EULER, HEUN, TSIT5, Tableau, VERN7};

mod stiffness;

/// Workspace of an explicit RK solve.
#[derive(Debug, Clone)]
pub struct ErkCache {
    n: usize,
    /// Stages, `n` each: the step's stages then the interpolant's extra ones.
    ks: Vec<f64>,
    ytmp: Vec<f64>,
    poly: Vec<f64>,
    ncoef: usize,
    k0_valid: bool,
    extra_done: bool,
}

/// An explicit RK method defined by a tableau `T` (any [`Tableau`]: a
/// `&'static ButcherTableau`, the default, or a `&OwnedTableau` built at run
/// time). Every built-in method (`Euler`, `Heun`, `Bs3`, `Dopri5`, `Tsit5`,
/// `Vern7`) is one of these; a user tableau works the same way:
///
/// ```
/// use sdeflow_solvers::erk::ExplicitRk;
/// use sdeflow_solvers::tableau::TSIT5;
/// let tsit5 = ExplicitRk::new(&TSIT5);
/// assert_eq!(tsit5.tableau().order, 5);
/// ```
///
/// A tableau built at run time (see [`crate::tableau::OwnedTableau`]):
///
/// ```
/// use sdeflow_solvers::erk::ExplicitRk;
/// use sdeflow_solvers::tableau::{OwnedTableau, Tableau, TSIT5};
/// let owned = OwnedTableau::try_from(&TSIT5)?;
/// let rk = ExplicitRk::new(&owned);
/// assert_eq!(rk.tableau().order(), 5);
/// # Ok::<(), sdeflow_solvers::error::SolveError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ExplicitRk<T = &'static ButcherTableau> {
    tableau: T,
}

impl<T: Tableau> ExplicitRk<T> {
    /// A solver for `tableau`.
    pub const fn new(tableau: T) -> Self {
        ExplicitRk { tableau }
    }

    /// The tableau.
    pub fn tableau(&self) -> &T {
        &self.tableau
    }
}

/// `out = y + h Σ_j coef_j k_j` over the first `coef.len()` stages (`n`
/// entries each in `ks`), skipping zero coefficients: the input of an RK
/// stage (of its explicit part, for a diagonally implicit method).
#[inline(always)]
pub(crate) fn stage_input(y: &[f64], h: f64, coef: &[f64], ks: &[f64], n: usize, out: &mut [f64]) {
    out.copy_from_slice(y);
    for (j, &a) in coef.iter().enumerate() {
        if a != 0.0 {
            let ha = h * a;
            let k = &ks[j * n..(j + 1) * n];
            for (o, &kv) in out.iter_mut().zip(k) {
                *o += ha * kv;
            }
        }
    }
}

impl<T: Tableau, F: Drift, D: Driver> Solver<OdeProblem<F, D>> for ExplicitRk<T> {
    type Cache = ErkCache;
    const INCREMENT: Increment = Increment::None;

    fn name(&self) -> &'static str {
        self.tableau.name()
    }

    fn order(&self) -> f64 {
        f64::from(self.tableau.order())
    }

    fn error_order(&self) -> Option<f64> {
        self.tableau.embedded_order().map(|q| f64::from(q) + 1.0)
    }

    fn pi_gains(&self) -> Option<crate::controller::PiGains> {
        // tuned on the pairs of order 5 and 7 (Bs3 does as well with the default)
        (self.tableau.order() >= 5).then_some(crate::controller::PiGains::EXPLICIT_RK)
    }

    fn check(&self, problem: &OdeProblem<F, D>) -> Result<(), SolveError> {
        problem.ode_only(self.tableau.name())
    }

    fn init(&self, problem: &OdeProblem<F, D>) -> ErkCache {
        let n = problem.dim();
        let t = &self.tableau;
        let nk = t.stages() + t.extra_c().len();
        let ncoef = (0..nk).map(|i| t.dense_coeffs(i).len()).max().unwrap_or(1);
        let mut poly = vec![0.0; nk * ncoef];
        for i in 0..nk {
            let row = t.dense_coeffs(i);
            poly[i * ncoef..i * ncoef + row.len()].copy_from_slice(row);
        }
        ErkCache {
            n,
            ks: vec![0.0; nk * n],
            ytmp: vec![0.0; n],
            poly,
            ncoef,
            k0_valid: false,
            extra_done: false,
        }
    }

    fn start(&self, cache: &mut ErkCache, f0: &[f64], _g0: &[f64]) {
        cache.ks[..cache.n].copy_from_slice(f0);
        cache.k0_valid = true;
    }

    #[inline]
    fn step(&self, cache: &mut ErkCache, args: StepArgs<'_, F, NoDiffusion>) -> StepStatus {
        let (StepAt { t, h, y }, StepOut { y_new, err }) = (args.at, args.out);
        let (fields, stats) = (args.fields, args.stats);
        let tab = &self.tableau;
        let n = cache.n;
        let s = tab.stages();
        let ErkCache {
            ks,
            ytmp,
            k0_valid,
            extra_done,
            ..
        } = cache;
        *extra_done = false;
        if !*k0_valid {
            fields.f(t, y, &mut ks[..n], stats);
            *k0_valid = true;
        }
        let last = if tab.fsal() { s - 1 } else { s };
        for i in 1..last {
            stage_input(y, h, tab.a(i), ks, n, ytmp);
            let (_, rest) = ks.split_at_mut(i * n);
            fields.f(t + tab.c()[i] * h, ytmp, &mut rest[..n], stats);
        }
        stage_input(y, h, &tab.b()[..last], ks, n, y_new);
        if tab.fsal() {
            let (_, rest) = ks.split_at_mut((s - 1) * n);
            fields.f(t + h, y_new, &mut rest[..n], stats);
        }
        if let Some(be) = tab.b_err() {
            err.iter_mut().for_each(|e| *e = 0.0);
            for (j, &w) in be.iter().enumerate() {
                if w != 0.0 {
                    let hw = h * w;
                    let k = &ks[j * n..(j + 1) * n];
                    for (e, &kv) in err.iter_mut().zip(k) {
                        *e += hw * kv;
                    }
                }
            }
        }
        StepStatus::Taken
    }

    fn accept(&self, cache: &mut ErkCache) {
        if self.tableau.fsal() {
            let n = cache.n;
            let s = self.tableau.stages();
            cache.ks.copy_within((s - 1) * n..s * n, 0);
        } else {
            cache.k0_valid = false;
        }
    }

    fn dense_table<'c>(&self, cache: &'c ErkCache) -> DenseTable<'c> {
        DenseTable::new(cache.ncoef, &cache.poly)
    }

    fn dense_stages<'c>(
        &self,
        cache: &'c mut ErkCache,
        step: StepTaken<'_, F, NoDiffusion>,
    ) -> &'c [f64] {
        let (StepAt { t, h, y }, fields, stats) = (step.at, step.fields, step.stats);
        let dense = &self.tableau;
        if !cache.extra_done && !dense.extra_c().is_empty() {
            let n = cache.n;
            let s = self.tableau.stages();
            for j in 0..dense.extra_c().len() {
                let (i, row, cj) = (s + j, dense.extra_a(j), dense.extra_c()[j]);
                stage_input(y, h, row, &cache.ks, n, &mut cache.ytmp);
                let (_, rest) = cache.ks.split_at_mut(i * n);
                fields.f(t + cj * h, &cache.ytmp, &mut rest[..n], stats);
            }
        }
        cache.extra_done = true;
        &cache.ks
    }
}

delegate_solver!(
    /// Forward Euler: order 1, fixed steps only (set `Options::dt0`).
    Euler,
    ExplicitRk::new(&EULER),
    ExplicitRk,
    ErkCache,
    EULER,
    ButcherTableau
);
delegate_solver!(
    /// Heun's method with an embedded Euler estimate, 2(1).
    Heun,
    ExplicitRk::new(&HEUN),
    ExplicitRk,
    ErkCache,
    HEUN,
    ButcherTableau
);
delegate_solver!(
    /// Bogacki–Shampine 3(2), FSAL, cubic Hermite dense output. Good at loose
    /// tolerances (rtol ≳ 1e-3).
    Bs3,
    ExplicitRk::new(&BS3),
    ExplicitRk,
    ErkCache,
    BS3,
    ButcherTableau
);
delegate_solver!(
    /// Dormand–Prince 5(4) ("DOPRI5", MATLAB's `ode45`), FSAL, 4th-order
    /// dense output.
    Dopri5,
    ExplicitRk::new(&DP5),
    ExplicitRk,
    ErkCache,
    DP5,
    ButcherTableau
);
delegate_solver!(
    /// Tsitouras 5(4), FSAL, 4th-order dense output: the default non-stiff
    /// solver for rtol in about 1e-3 .. 1e-8.
    Tsit5,
    ExplicitRk::new(&TSIT5),
    ExplicitRk,
    ErkCache,
    TSIT5,
    ButcherTableau
);
delegate_solver!(
    /// Verner's "most efficient" 7(6) with its lazy interpolant (6 extra
    /// stages, only on interpolated steps; it satisfies the order conditions
    /// to order 6): for tight tolerances (rtol ≲ 1e-8).
    Vern7,
    ExplicitRk::new(&VERN7),
    ExplicitRk,
    ErkCache,
    VERN7,
    ButcherTableau
);

/// Workspace of the step VJP of [`ExplicitRk`].
#[derive(Debug, Clone)]
pub struct ErkVjpCache {
    n: usize,
    /// Stage inputs and derivatives (step stages, then interpolation stages).
    inputs: Vec<f64>,
    ks: Vec<f64>,
    kappa: Vec<f64>,
    lam: Vec<f64>,
    big: Vec<f64>,
    weights: Vec<f64>,
    /// The drift's tapes ([`crate::field::DriftVjp::drift_taped`]), one per
    /// stage.
    tapes: Vec<f64>,
    tape_len: usize,
    /// For a first-same-as-last tableau, the first stage of the step
    /// reversed last (input, derivative, tape) at time `first_t` (NaN
    /// before the first step): a sweep reverses steps last to first, so it
    /// is the last stage of the step reversed next, taken from here when
    /// its input and time are the same to the bit (one drift evaluation
    /// saved per step, the gradient unchanged).
    first: Vec<f64>,
    first_t: f64,
    /// Cotangents of the stiffness stage pair's inputs and derivatives
    /// ([`StepVjp::step_vjp_stage_pair`]), `n` each.
    pair_bars: Vec<f64>,
}

impl<T: Tableau, Fx: Drift, Dx: Driver> StepVjp<OdeProblem<Fx, Dx>> for ExplicitRk<T> {
    type VjpWork = ErkVjpCache;
    const DIFFERENTIATES_DENSE: bool = true;

    fn vjp_workspace<F: DriftVjp, G: DiffusionVjp, D: Driver>(
        &self,
        problem: &Problem<F, G, D>,
    ) -> ErkVjpCache {
        let n = problem.dim();
        let tape_len = problem.drift.tape_len(n, problem.params.len());
        let s_all = self.tableau.stages() + self.tableau.extra_c().len();
        ErkVjpCache {
            n,
            tapes: vec![0.0; s_all * tape_len],
            tape_len,
            inputs: vec![0.0; s_all * n],
            ks: vec![0.0; s_all * n],
            kappa: vec![0.0; s_all * n],
            lam: vec![0.0; n],
            big: vec![0.0; n],
            weights: vec![0.0; s_all],
            first: vec![0.0; 2 * n + tape_len],
            first_t: f64::NAN,
            pair_bars: vec![0.0; 4 * n],
        }
    }

    /// The discrete adjoint of one step (Hager 2000; Sandu 2006): the step
    /// from `(t, y)` of size `h` is recomputed, then reversed stage by stage.
    /// On entry `bars.y = ∂L/∂y_{n+1}`; on exit `bars.y = ∂L/∂y_n`, with the
    /// cotangents of the error estimate (`err = h Σ (b_i − b̂_i) k_i`) and of
    /// values interpolated inside the step included. `∂L/∂p` is added to
    /// `bars.p`. No carried state, no noise. The step size is a constant
    /// (the controller is not differentiated). Returns the number of VJPs.
    fn step_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        c: &mut ErkVjpCache,
        args: VjpArgs<'_, F, G>,
    ) -> Result<usize, SolveError> {
        StepVjp::<OdeProblem<Fx, Dx>>::step_vjp_stage_pair(self, c, args, None)
    }

    fn stiffness_stages(&self) -> Option<StiffnessStages> {
        stiffness::stiffness_stages(&self.tableau)
    }

    /// [`StepVjp::step_vjp`] with the cotangents of a function of the
    /// stiffness stage pair ([`StepVjp::stiffness_stages`]) added: they
    /// join the stage derivatives' cotangents, and the inputs' join the
    /// stage's input cotangent in the reversal.
    fn step_vjp_stage_pair<F: DriftVjp, G: DiffusionVjp>(
        &self,
        c: &mut ErkVjpCache,
        args: VjpArgs<'_, F, G>,
        mut hook: Option<&mut StagePairHook<'_>>,
    ) -> Result<usize, SolveError> {
        let pair = match hook {
            None => None,
            Some(_) => Some(stiffness::pair_indices(&self.tableau).ok_or_else(|| {
                SolveError::Unsupported {
                    solver: self.tableau.name(),
                    what: "a stiffness estimate (no two stages of its step share a time)".into(),
                    alternatives: "Tsit5, Dopri5 or Vern7".into(),
                }
            })?),
        };
        let (tab, bars) = (&self.tableau, args.bars);
        if tab.b_err().is_none() {
            refuse_err_cotangent(tab.name(), bars.err)?;
        }
        let (field, p) = (args.fields.drift, args.fields.p);
        let (StepAt { t, h, y }, stats) = (args.at, args.stats);
        let StepBars {
            y: lambda,
            err: err_bar,
            interp,
            p: p_bar,
            ..
        } = bars;
        let (n, tl) = (c.n, c.tape_len);
        let s = tab.stages();
        // without interpolated values, a last stage with b = 0 (the FSAL
        // stage) feeds nothing: neither computed nor reversed
        let err_weights = err_bar.and(tab.b_err());
        let s_all = if interp.is_empty() {
            let last_weight = err_weights.map_or(0.0, |e| e[s - 1]);
            if tab.fsal() && tab.b()[s - 1] == 0.0 && last_weight == 0.0 && pair.is_none() {
                s - 1
            } else {
                s
            }
        } else {
            s + tab.extra_c().len()
        };
        let row = |i: usize| {
            if i < s { tab.a(i) } else { tab.extra_a(i - s) }
        };
        let node = |i: usize| {
            if i < s {
                tab.c()[i]
            } else {
                tab.extra_c()[i - s]
            }
        };
        // forward: stage inputs and derivatives
        for i in 0..s_all {
            let (done, rest) = c.ks.split_at_mut(i * n);
            let input = &mut c.inputs[i * n..(i + 1) * n];
            stage_input(y, h, row(i), done, n, input);
            let (ti, tape) = (t + node(i) * h, &mut c.tapes[i * tl..(i + 1) * tl]);
            let (kept_y, kept) = c.first.split_at(n);
            if tab.fsal() && i == s - 1 && ti == c.first_t && *input == *kept_y {
                rest[..n].copy_from_slice(&kept[..n]);
                tape.copy_from_slice(&kept[n..]);
                continue;
            }
            stats.drift_evals += 1;
            field.drift_taped(ti, input, p, &mut rest[..n], tape);
        }
        // this step's first stage is the last of the step reversed next
        if tab.fsal() {
            let (first_y, first) = c.first.split_at_mut(n);
            first_y.copy_from_slice(&c.inputs[..n]);
            first[..n].copy_from_slice(&c.ks[..n]);
            first[n..].copy_from_slice(&c.tapes[..tl]);
            c.first_t = t;
        }
        // cotangents of the stage derivatives from the outputs
        c.kappa[..s_all * n].iter_mut().for_each(|v| *v = 0.0);
        c.pair_bars.iter_mut().for_each(|v| *v = 0.0);
        if let (Some(pr), Some(hook)) = (pair, hook.as_mut()) {
            let (i, j) = pr;
            let (gb, kb) = c.pair_bars.split_at_mut(2 * n);
            let (gi, gj) = gb.split_at_mut(n);
            let (ki, kj) = kb.split_at_mut(n);
            let view = StagePair {
                inputs: [&c.inputs[i * n..(i + 1) * n], &c.inputs[j * n..(j + 1) * n]],
                derivs: [&c.ks[i * n..(i + 1) * n], &c.ks[j * n..(j + 1) * n]],
                h,
            };
            hook(
                view,
                StagePairBars {
                    inputs: [gi, gj],
                    derivs: [ki, kj],
                },
            );
            for (m, st) in [i, j].into_iter().enumerate() {
                let kb = &c.pair_bars[(2 + m) * n..(3 + m) * n];
                for k in 0..n {
                    c.kappa[st * n + k] += kb[k];
                }
            }
        }
        c.lam.copy_from_slice(lambda);
        for i in 0..s.min(s_all) {
            let hb = h * tab.b()[i];
            if hb != 0.0 {
                for k in 0..n {
                    c.kappa[i * n + k] += hb * lambda[k];
                }
            }
        }
        if let (Some(e), Some(eb)) = (err_weights, err_bar) {
            for i in 0..s.min(s_all) {
                let he = h * e[i];
                if he != 0.0 {
                    for k in 0..n {
                        c.kappa[i * n + k] += he * eb[k];
                    }
                }
            }
        }
        for ic in interp {
            let w = &mut c.weights[..s_all];
            for (i, wi) in w.iter_mut().enumerate() {
                *wi = tab
                    .dense_coeffs(i)
                    .iter()
                    .rev()
                    .fold(0.0, |acc, &q| acc * ic.theta + q);
            }
            for i in 0..s_all {
                let hw = h * w[i];
                if hw != 0.0 {
                    for k in 0..n {
                        c.kappa[i * n + k] += hw * ic.bar[k];
                    }
                }
            }
            for k in 0..n {
                c.lam[k] += ic.bar[k];
            }
        }
        // reverse through the stages
        let mut vjps = 0;
        let big_lambda = &mut c.big;
        for i in (0..s_all).rev() {
            let kap = &c.kappa[i * n..(i + 1) * n];
            // the stage pair's input cotangent, if this is one of its stages
            let g_bar = pair.and_then(|pr| {
                let m = [pr.0, pr.1].iter().position(|&st| st == i)?;
                Some(&c.pair_bars[m * n..(m + 1) * n])
            });
            let kap_zero = kap.iter().all(|&v| v == 0.0);
            if kap_zero && g_bar.is_none() {
                continue;
            }
            big_lambda.iter_mut().for_each(|v| *v = 0.0);
            if !kap_zero {
                field.drift_vjp_taped(
                    t + node(i) * h,
                    &c.inputs[i * n..(i + 1) * n],
                    p,
                    &c.tapes[i * tl..(i + 1) * tl],
                    kap,
                    big_lambda,
                    p_bar,
                );
                vjps += 1;
            }
            if let Some(gb) = g_bar {
                for k in 0..n {
                    big_lambda[k] += gb[k];
                }
            }
            for k in 0..n {
                c.lam[k] += big_lambda[k];
            }
            for (j, &a) in row(i).iter().enumerate() {
                if a != 0.0 {
                    for k in 0..n {
                        c.kappa[j * n + k] += h * a * big_lambda[k];
                    }
                }
            }
        }
        lambda.copy_from_slice(&c.lam);
        Ok(vjps)
    }
}

/// The step VJP of each tableau-driven method `$name`: the generic one.
macro_rules! erk_step_vjps {
    ($($name:ident),*) => {$(
        delegate_step_vjp!($name, ExplicitRk, ErkVjpCache, |s| ExplicitRk::new(s.tableau()));
    )*};
}

erk_step_vjps!(Euler, Heun, Bs3, Dopri5, Tsit5, Vern7);
