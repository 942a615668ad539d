//! One generic ESDIRK step for every [`EsdirkTableau`], run by the one
//! integration loop like the explicit methods ([`crate::erk`]), and its
//! vector–Jacobian product.
//!
//! # The step
//!
//! From `(t, y)` with step `h` (Hairer & Wanner, *Solving ODEs II*, §IV.6
//! and §IV.8; Kennedy & Carpenter, NASA/TM-2016-219173, for ESDIRKs):
//!
//! * `k_0 = f(t, y)`: the explicit first stage, carried over from the last
//!   stage of the previous step (FSAL; both tables are stiffly accurate);
//! * for `i = 1..s`: `Y_i = ψ_i + hγ f(t + c_i h, Y_i)` with
//!   `ψ_i = y + h Σ_{j<i} a_ij k_j`, solved by simplified Newton
//!   ([`super::newton`]) from the predictor `ψ_i + hγ k_{i−1}`, and
//!   `k_i = (Y_i − ψ_i)/(hγ)` (no extra evaluation: this is `f(Y_i)` up to
//!   the Newton tolerance, and does not amplify the Newton error by the
//!   stiffness the way `f(Y_i)` would);
//! * `y_{n+1} = Y_{s−1}` (stiffly accurate: `b` is the last row of `A`);
//! * the error estimate `err = W⁻¹ h Σ_i (b_i − b̂_i) k_i`, `W = I − hγJ`:
//!   both embedded solutions here have a stability function that grows like
//!   `|z|` as `z → −∞`, so the raw difference is `O(h)` on stiff components
//!   and would force tiny steps; multiplying by `W⁻¹` (the factorised
//!   Newton matrix, no extra cost) is the filter of Shampine (1984) used by
//!   Hairer & Wanner's RADAU5 (HW II §IV.8, eq. (8.20)), by Hosea & Shampine
//!   for TR-BDF2 and by diffsol. [`Esdirk::filter_error`] turns it off.
//!
//! The Jacobian `J` comes from [`crate::field::Drift::jacobian`] when the field has
//! one ([`crate::dual::Generic`] fields, [`crate::problem::Problem::with_jacobian`]),
//! else from forward differences ([`JacobianSource::FiniteDifferences`]
//! forces them), into a matrix in the cache. It is reused across steps as in
//! RADAU5 and OrdinaryDiffEq: it is formed at a step's start only when there
//! is none yet, when the previous step's Newton iterations contracted slowly
//! (worst rate above [`NewtonOptions::reuse_rate`]), or when the previous
//! attempt was rejected (error test or Newton failure) and the Jacobian is
//! not already from this step's start. `W` is refactorised when `J` changes
//! or the step changed by more than [`NewtonOptions::refactor_ratio`].
//!
//! When a stage's Newton iteration fails with an old Jacobian, the Jacobian
//! is re-formed at the step's start and the step tried again at once; when
//! it fails with a fresh one, the step returns
//! [`StepStatus::Failed`](crate::solver::StepStatus::Failed), which the
//! adaptive loop rejects with its controller's smallest step factor —
//! repeated failures end in a [`crate::error::SolveError::StepSizeUnderflow`] — and
//! a fixed-step solve reports as [`crate::error::SolveError::NonlinearSolve`]. Each failed Newton solve
//! counts in [`Stats::nonlinear_failures`].
//!
//! Dense output is the cubic Hermite interpolant through `(y_n, f_n)` and
//! `(y_{n+1}, f_{n+1})` (both are stages: `k_0` and `k_{s−1}`), written as
//! weights of the stages using `(y_{n+1} − y_n)/h = Σ b_i k_i`.
//!
//! # The step VJP
//!
//! Its [`StepVjp::step_vjp`] differentiates the step by the implicit-function
//! theorem, treating each converged stage as the exact solution of its stage
//! equation. It solves the stages again to full convergence (Newton with an
//! exact Jacobian at every iterate), so it is the VJP of the *converged*
//! step [`Esdirk::converged_step`], which the forward step matches up to the
//! Newton tolerance. Backwards over the stages, with `κ_i = ∂L/∂k_i`
//! accumulated from the outputs and the later stages, each implicit stage
//! costs one transposed solve `(I − hγ J(Y_i))ᵀ μ_i = κ_i` with the exact
//! Jacobian at the stage value and one VJP `μ_iᵀ[∂f/∂y, ∂f/∂p]` (Hager 2000
//! for the explicit analogue; Sandu 2006 for the implicit one).

use crate::brownian::Driver;
use crate::erk::stage_input;
use crate::error::SolveError;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp, NoDiffusion};
use crate::options::setters;
use crate::problem::Problem;
use crate::solution::Stats;
use crate::solver::{
    DenseTable, Fields, Increment, OdeProblem, Solver, StepArgs, StepAt, StepOut, StepStatus,
    StepTaken,
};
use crate::step_vjp::{StepBars, StepVjp, VjpArgs, refuse_interp_cotangents};
use crate::stiff::JacobianSource;
use crate::stiff::exact::ExactJacobian;
use crate::stiff::newton::{Implicit, Newton, NewtonOptions, newton_norm};
use crate::stiff::tableau::EsdirkTableau;

/// An ESDIRK method defined by a tableau ([`crate::stiff::ESDIRK34`],
/// [`crate::stiff::TRBDF2`], or a user's), with its Jacobian source and
/// Newton settings. [`crate::stiff::Esdirk34`] and [`crate::stiff::TrBdf2`] are this with
/// their tables.
///
/// ```
/// use sdeflow_solvers::stiff::{Esdirk, ESDIRK34};
/// let solver = Esdirk::new(&ESDIRK34).filter_error(false);
/// assert_eq!(solver.tableau().order, 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Esdirk {
    tableau: &'static EsdirkTableau,
    /// Where the Jacobian comes from.
    pub jacobian: JacobianSource,
    /// The Newton iteration's settings.
    pub newton: NewtonOptions,
    /// Whether the error estimate is filtered by `W⁻¹` (default `true`).
    pub filter: bool,
}

impl Esdirk {
    /// A solver for `tableau`, with the defaults: Jacobian from the field
    /// when it has one, default Newton settings, filtered error estimate.
    pub const fn new(tableau: &'static EsdirkTableau) -> Self {
        Esdirk {
            tableau,
            jacobian: JacobianSource::Auto,
            newton: NewtonOptions::DEFAULT,
            filter: true,
        }
    }

    /// The tableau.
    pub fn tableau(&self) -> &'static EsdirkTableau {
        self.tableau
    }

    setters! {
        /// Sets the Jacobian source.
        jacobian: JacobianSource;
        /// Sets the Newton settings.
        newton: NewtonOptions;
        /// Turns the `W⁻¹` filter of the error estimate on or off.
        filter_error => filter: bool;
    }
}

/// Workspace of an ESDIRK solve.
#[derive(Debug, Clone)]
pub struct EsdirkCache {
    n: usize,
    /// Stage derivatives `k_i`, `n` each.
    ks: Vec<f64>,
    psi: Vec<f64>,
    /// The Newton iteration (iterate, Jacobian, factorised `W`).
    newton: Newton,
    /// Dense-output weight polynomials (`s × 4`).
    poly: Vec<f64>,
    /// A step was attempted and not yet accepted (so the next call is a
    /// retry after a rejection).
    pending: bool,
}

/// Cubic Hermite weights of `(f_n, f_{n+1}, (y_{n+1} − y_n)/h)`, ascending
/// powers of θ.
const HERMITE: [[f64; 4]; 3] = [
    [0.0, 1.0, -2.0, 1.0],
    [0.0, 0.0, -1.0, 1.0],
    [0.0, 0.0, 3.0, -2.0],
];

/// The stage predictor of stage `i`: `k(c_i) ≈ w k_{j1} + (1 − w) k_{j2}`,
/// the line through the two earlier stages whose nodes are nearest `c_i`
/// (`k_0` alone for the first implicit stage).
fn predictor_weights(c: &[f64], i: usize) -> (usize, usize, f64) {
    if i < 2 {
        return (0, 0, 1.0);
    }
    let mut order: [usize; 2] = [0, 1];
    let dist = |j: usize| (c[j] - c[i]).abs();
    if dist(1) < dist(0) {
        order = [1, 0];
    }
    for j in 2..i {
        if dist(j) < dist(order[0]) {
            order = [j, order[0]];
        } else if dist(j) < dist(order[1]) {
            order[1] = j;
        }
    }
    let [j1, j2] = order;
    let span = c[j1] - c[j2];
    if span == 0.0 {
        return (j1, j1, 1.0);
    }
    // linear through (c_{j1}, k_{j1}), (c_{j2}, k_{j2})
    let w1 = (c[i] - c[j2]) / span;
    (j1, j2, w1)
}

impl Esdirk {
    /// The dense-output table over the stages (`s × 4`).
    fn dense_poly(&self) -> Vec<f64> {
        let tab = self.tableau;
        let s = tab.stages();
        let mut poly = vec![0.0; s * 4];
        for i in 0..s {
            for k in 0..4 {
                let mut v = tab.b[i] * HERMITE[2][k];
                if i == 0 {
                    v += HERMITE[0][k];
                }
                if i == s - 1 {
                    v += HERMITE[1][k];
                }
                poly[i * 4 + k] = v;
            }
        }
        poly
    }

    /// Solves the implicit stages of the step `at` with the factorised `W`
    /// of `nw`, into the stage derivatives `ks` (`k_0` given) with `psi` as
    /// scratch. Returns the worst contraction rate, or `Err` when a stage's
    /// iteration failed.
    fn solve_stages<F: Drift, G: Diffusion>(
        &self,
        nw: &mut Newton,
        (ks, psi): (&mut [f64], &mut [f64]),
        fields: &Fields<'_, F, G>,
        at: StepAt<'_>,
        stats: &mut Stats,
    ) -> Result<f64, ()> {
        let StepAt { t, h, y } = at;
        let tab = self.tableau;
        let opts = &self.newton;
        let n = y.len();
        let s = tab.stages();
        let hg = h * tab.gamma;
        let mut theta_max: f64 = 0.0;
        for i in 1..s {
            let row = tab.a[i - 1];
            stage_input(y, h, &row[..i], ks, n, psi);
            // predictor: k at c_i by the line through the two earlier
            // stages with the nearest nodes (the first stage's k for i = 1)
            let (j1, j2, w1) = predictor_weights(tab.c, i);
            let (k1, k2) = (&ks[j1 * n..(j1 + 1) * n], &ks[j2 * n..(j2 + 1) * n]);
            for k in 0..n {
                nw.z[k] = psi[k] + hg * (w1 * k1[k] + (1.0 - w1) * k2[k]);
            }
            let eq = Implicit {
                t: t + tab.c[i] * h,
                c: hg,
                psi,
            };
            let theta = nw.iterate(fields, eq, opts, |d, z| newton_norm(d, z, opts), stats)?;
            theta_max = theta_max.max(theta);
            let ki = &mut ks[i * n..(i + 1) * n];
            for k in 0..n {
                ki[k] = (nw.z[k] - psi[k]) / hg;
            }
        }
        Ok(theta_max)
    }
}

impl<F: Drift, D: Driver> Solver<OdeProblem<F, D>> for Esdirk {
    type Cache = EsdirkCache;
    const INCREMENT: Increment = Increment::None;

    fn name(&self) -> &'static str {
        self.tableau.name
    }

    fn order(&self) -> f64 {
        f64::from(self.tableau.order)
    }

    fn error_order(&self) -> Option<f64> {
        Some(self.tableau.error_order())
    }

    fn check(&self, problem: &OdeProblem<F, D>) -> Result<(), SolveError> {
        problem.ode_only(self.tableau.name)?;
        self.newton.check(true)
    }

    fn init(&self, problem: &OdeProblem<F, D>) -> EsdirkCache {
        let n = problem.dim();
        let s = self.tableau.stages();
        EsdirkCache {
            n,
            ks: vec![0.0; s * n],
            psi: vec![0.0; n],
            newton: Newton::new(n),
            poly: self.dense_poly(),
            pending: false,
        }
    }

    fn start(&self, cache: &mut EsdirkCache, f0: &[f64], _g0: &[f64]) {
        cache.ks[..cache.n].copy_from_slice(f0);
        cache.newton.reset();
        cache.pending = false;
    }

    fn step(&self, c: &mut EsdirkCache, args: StepArgs<'_, F, NoDiffusion>) -> StepStatus {
        let (at, StepOut { y_new, err }) = (args.at, args.out);
        let (StepAt { t, h, y }, fields, stats) = (at, args.fields, args.stats);
        let tab = self.tableau;
        let n = c.n;
        let s = tab.stages();
        let hg = h * tab.gamma;
        let retry = c.pending;
        c.pending = true;
        let psi = &mut c.psi;
        let solved = c.newton.solve_step(
            (fields.drift, fields.p, self.jacobian),
            (t, y, hg),
            &self.newton,
            retry,
            (&mut c.ks, stats),
            |nw, ks, stats| self.solve_stages(nw, (ks, &mut *psi), fields, at, stats),
        );
        if !solved {
            return StepStatus::Failed;
        }
        y_new.copy_from_slice(&c.newton.z);
        err.iter_mut().for_each(|e| *e = 0.0);
        for (j, &d) in tab.d.iter().enumerate() {
            if d != 0.0 {
                let hd = h * d;
                for (e, &k) in err.iter_mut().zip(&c.ks[j * n..(j + 1) * n]) {
                    *e += hd * k;
                }
            }
        }
        if self.filter {
            c.newton.w.solve(err);
        }
        debug_assert_eq!(s * n, c.ks.len());
        StepStatus::Taken
    }

    fn accept(&self, c: &mut EsdirkCache) {
        let n = c.n;
        let s = self.tableau.stages();
        c.ks.copy_within((s - 1) * n..s * n, 0);
        c.newton.jac.fresh = false;
        c.pending = false;
    }

    fn dense_table<'c>(&self, c: &'c EsdirkCache) -> DenseTable<'c> {
        DenseTable::new(4, &c.poly)
    }

    /// The stages of the step: an ESDIRK method needs no extra ones.
    fn dense_stages<'c>(
        &self,
        c: &'c mut EsdirkCache,
        _: StepTaken<'_, F, NoDiffusion>,
    ) -> &'c [f64] {
        &c.ks
    }
}

/// Workspace of [`StepVjp::step_vjp`] and [`Esdirk::converged_step`].
#[derive(Debug, Clone)]
pub struct EsdirkVjpCache {
    n: usize,
    /// Stage derivatives `k_i = f(t + c_i h, Y_i)` and values `Y_i`.
    ks: Vec<f64>,
    ys: Vec<f64>,
    psi: Vec<f64>,
    z: Vec<f64>,
    fz: Vec<f64>,
    delta: Vec<f64>,
    /// Exact Jacobians and the factorised `I − hγJ`.
    jw: ExactJacobian,
    kappa: Vec<f64>,
    lam: Vec<f64>,
    e_tilde: Vec<f64>,
}

impl Esdirk {
    /// Workspace for differentiating steps of a state of dimension `n` with
    /// `n_params` parameters.
    pub fn vjp_cache(&self, n: usize, n_params: usize) -> EsdirkVjpCache {
        let s = self.tableau.stages();
        EsdirkVjpCache {
            n,
            ks: vec![0.0; s * n],
            ys: vec![0.0; s * n],
            psi: vec![0.0; n],
            z: vec![0.0; n],
            fz: vec![0.0; n],
            delta: vec![0.0; n],
            jw: ExactJacobian::new(n, n_params),
            kappa: vec![0.0; s * n],
            lam: vec![0.0; n],
            e_tilde: vec![0.0; n],
        }
    }

    /// Solves every stage of the step from `(t, y)` of size `h` to full
    /// convergence (Newton with the exact Jacobian at each iterate), leaving
    /// `Y_i` and `k_i = f(t + c_i h, Y_i)` in the cache.
    fn converge<F: DriftVjp>(
        &self,
        c: &mut EsdirkVjpCache,
        field: &F,
        p: &[f64],
        t: f64,
        h: f64,
        y: &[f64],
        stats: &mut Stats,
    ) -> Result<(), SolveError> {
        let tab = self.tableau;
        let n = c.n;
        let s = tab.stages();
        let hg = h * tab.gamma;
        let fail = |i: usize, why: &str| SolveError::NonlinearSolve {
            solver: tab.name,
            t,
            h,
            reason: format!("stage {i}: {why}"),
        };
        stats.drift_evals += 1;
        field.drift(t, y, p, &mut c.ks[..n]);
        c.ys[..n].copy_from_slice(y);
        for i in 1..s {
            let row = tab.a[i - 1];
            stage_input(y, h, &row[..i], &c.ks, n, &mut c.psi);
            for k in 0..n {
                c.z[k] = c.psi[k] + hg * c.ks[(i - 1) * n + k];
            }
            let ti = t + tab.c[i] * h;
            c.jw.converge(
                (field, p),
                (ti, hg),
                &c.psi,
                (&mut c.z, &mut c.fz, &mut c.delta),
                stats,
            )
            .map_err(|why| fail(i, &why))?;
            c.ys[i * n..(i + 1) * n].copy_from_slice(&c.z);
            stats.drift_evals += 1;
            field.drift(ti, &c.z, p, &mut c.ks[i * n..(i + 1) * n]);
        }
        Ok(())
    }

    /// The step that [`StepVjp::step_vjp`] differentiates: the stages solved
    /// to full convergence, `y_new = y + h Σ b_i k_i` and
    /// `err = M⁻¹ h Σ (b_i − b̂_i) k_i` with `M = I − hγ J(t, y)` (the exact
    /// Jacobian at the step's start; `M = I` without the filter). It agrees
    /// with the forward step ([`Solver::step`]) up to the Newton tolerance
    /// (and, for `err`, the forward step's possibly older Jacobian in `M`).
    pub fn converged_step<F: DriftVjp>(
        &self,
        c: &mut EsdirkVjpCache,
        field: &F,
        p: &[f64],
        at: StepAt<'_>,
        out: StepOut<'_>,
        stats: &mut Stats,
    ) -> Result<(), SolveError> {
        let StepAt { t, h, y } = at;
        let StepOut { y_new, err } = out;
        let tab = self.tableau;
        let n = c.n;
        self.converge(c, field, p, t, h, y, stats)?;
        y_new.copy_from_slice(y);
        err.iter_mut().for_each(|e| *e = 0.0);
        for i in 0..tab.stages() {
            let k = &c.ks[i * n..(i + 1) * n];
            let (hb, hd) = (h * tab.b[i], h * tab.d[i]);
            for q in 0..n {
                y_new[q] += hb * k[q];
                err[q] += hd * k[q];
            }
        }
        if self.filter {
            if !c.jw.factor_at(field, p, (t, y), h * tab.gamma, stats) {
                return Err(SolveError::NonlinearSolve {
                    solver: tab.name,
                    t,
                    h,
                    reason: "singular error filter I − hγJ(t, y)".into(),
                });
            }
            c.jw.w.solve(err);
        }
        Ok(())
    }
}

impl<Fx: Drift, Dx: Driver> StepVjp<OdeProblem<Fx, Dx>> for Esdirk {
    type VjpWork = EsdirkVjpCache;

    fn vjp_workspace<F: DriftVjp, G: DiffusionVjp, D: Driver>(
        &self,
        problem: &Problem<F, G, D>,
    ) -> EsdirkVjpCache {
        self.vjp_cache(problem.dim(), problem.params.len())
    }

    /// The discrete adjoint of one step by the implicit-function theorem.
    ///
    /// On entry `bars.y = ∂L/∂y_{n+1}` and `bars.err = ∂L/∂err` (the
    /// cotangent of the error estimate, e.g. from a regularizer; `None` when
    /// unused); on exit `bars.y = ∂L/∂y_n`, and `∂L/∂p` is added to
    /// `bars.p`; interpolated cotangents are refused (the dense output is
    /// not differentiated), and there is no carried state or noise. The
    /// step is recomputed from `at` with its stages solved to full
    /// convergence, so this is the exact VJP of [`Esdirk::converged_step`]
    /// (each stage treated as the exact solution of its stage equation). The
    /// step size is a constant (the controller is not differentiated), and
    /// so is the filter matrix `M = I − hγJ(t, y)` of `err` (its dependence
    /// on `y` and `p` would need second derivatives of `f`).
    ///
    /// Per implicit stage: one Jacobian at the stage value — the field's
    /// own ([`Drift::jacobian`]) or, when it has none, assembled from `n`
    /// VJPs with unit vectors — one LU factorisation, one transposed solve
    /// `(I − hγJ(Y_i))ᵀ μ_i = κ_i` and one VJP `μ_iᵀ [∂f/∂y, ∂f/∂p]`; the
    /// recomputation adds the Newton iterations (an exact Jacobian and a
    /// factorisation each). Returns the number of VJPs with cotangents
    /// (not counting those that assemble Jacobians).
    fn step_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        c: &mut EsdirkVjpCache,
        args: VjpArgs<'_, F, G>,
    ) -> Result<usize, SolveError> {
        let (bars, stats) = (args.bars, args.stats);
        refuse_interp_cotangents(self.tableau.name, bars.interp)?;
        let (field, p) = (args.fields.drift, args.fields.p);
        let StepAt { t, h, y } = args.at;
        let StepBars {
            y: lambda,
            err: err_bar,
            p: p_bar,
            ..
        } = bars;
        let tab = self.tableau;
        let n = c.n;
        let s = tab.stages();
        let hg = h * tab.gamma;
        self.converge(c, field, p, t, h, y, stats)?;
        // ẽ = M⁻ᵀ ē: the cotangent of the unfiltered estimate
        let err_bar = err_bar.filter(|e| e.iter().any(|&v| v != 0.0));
        let has_e = err_bar.is_some();
        if let Some(err_bar) = err_bar {
            c.e_tilde.copy_from_slice(err_bar);
            if self.filter {
                if !c.jw.factor_at(field, p, (t, y), hg, stats) {
                    return Err(SolveError::NonlinearSolve {
                        solver: tab.name,
                        t,
                        h,
                        reason: "singular error filter I − hγJ(t, y)".into(),
                    });
                }
                c.jw.w.solve_transposed(&mut c.e_tilde);
            }
        }
        // cotangents of the stage derivatives from the outputs
        for i in 0..s {
            let (hb, hd) = (h * tab.b[i], h * tab.d[i]);
            let kap = &mut c.kappa[i * n..(i + 1) * n];
            for q in 0..n {
                kap[q] = hb * lambda[q] + if has_e { hd * c.e_tilde[q] } else { 0.0 };
            }
        }
        c.lam.copy_from_slice(lambda);
        let mut vjps = 0;
        for i in (0..s).rev() {
            if c.kappa[i * n..(i + 1) * n].iter().all(|&v| v == 0.0) {
                continue;
            }
            let ti = t + tab.c[i] * h;
            // μ_i: κ_i itself for the explicit stage, else the transposed solve
            c.delta.copy_from_slice(&c.kappa[i * n..(i + 1) * n]);
            if i > 0 {
                if !c
                    .jw
                    .factor_at(field, p, (ti, &c.ys[i * n..(i + 1) * n]), hg, stats)
                {
                    return Err(SolveError::NonlinearSolve {
                        solver: tab.name,
                        t,
                        h,
                        reason: format!("stage {i}: singular I − hγJ(Y_i)"),
                    });
                }
                c.jw.w.solve_transposed(&mut c.delta);
            }
            c.jw.row.iter_mut().for_each(|v| *v = 0.0);
            field.drift_vjp(
                ti,
                &c.ys[i * n..(i + 1) * n],
                p,
                &c.delta,
                &mut c.jw.row,
                p_bar,
            );
            vjps += 1;
            for q in 0..n {
                c.lam[q] += c.jw.row[q];
            }
            if i > 0 {
                for (j, &a) in tab.a[i - 1][..i].iter().enumerate() {
                    if a != 0.0 {
                        let ha = h * a;
                        for q in 0..n {
                            c.kappa[j * n + q] += ha * c.jw.row[q];
                        }
                    }
                }
            }
        }
        lambda.copy_from_slice(&c.lam);
        Ok(vjps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stiff::{ESDIRK34, TRBDF2};

    #[test]
    fn dense_weights_are_hermite_and_reach_the_step_end() {
        for tab in [&ESDIRK34, &TRBDF2] {
            let poly = Esdirk::new(tab).dense_poly();
            let s = tab.stages();
            // at θ = 1 the weights are b (y_{n+1} = y_n + h Σ b_i k_i)
            for i in 0..s {
                let w1: f64 = poly[i * 4..(i + 1) * 4].iter().sum();
                assert!((w1 - tab.b[i]).abs() < 1e-15, "{} stage {i}", tab.name);
                assert_eq!(poly[i * 4], 0.0);
            }
            // the derivative at θ = 0 is k_0 and at θ = 1 is k_{s−1}
            for i in 0..s {
                let d0 = poly[i * 4 + 1];
                let d1 = poly[i * 4 + 1] + 2.0 * poly[i * 4 + 2] + 3.0 * poly[i * 4 + 3];
                assert!((d0 - if i == 0 { 1.0 } else { 0.0 }).abs() < 1e-15);
                assert!((d1 - if i == s - 1 { 1.0 } else { 0.0 }).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn predictor_uses_the_nearest_stages() {
        // Esdirk34: c = [0, 0.87, 0.47, 1]
        assert_eq!(predictor_weights(ESDIRK34.c, 1), (0, 0, 1.0));
        let (j1, j2, w) = predictor_weights(ESDIRK34.c, 2);
        assert_eq!((j1, j2), (1, 0));
        assert!((w * ESDIRK34.c[1] - ESDIRK34.c[2]).abs() < 1e-15);
        let (j1, j2, _) = predictor_weights(ESDIRK34.c, 3);
        assert_eq!((j1, j2), (1, 2));
    }
}
