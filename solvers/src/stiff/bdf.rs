//! Variable-order (1–5) BDF/NDF in the one integration loop: the
//! fixed-leading-coefficient form on a backward-difference history, as in
//! MATLAB's `ode15s` (Shampine & Reichelt, "The MATLAB ODE suite", SIAM J.
//! Sci. Comput. 18 (1997), §2), SciPy's `BDF` and diffsol's `Bdf` (which
//! [`crate::stiff::DiffsolBdf`] runs for comparison), after Byrne &
//! Hindmarsh, "A polyalgorithm for the numerical solution of ordinary
//! differential equations", ACM TOMS 1 (1975).
//!
//! # The step
//!
//! The solver keeps the backward differences `D_j = ∇^j y_n` (`j = 0..k+2`,
//! `D_0 = y_n`) of its history at the spacing `h` of the step about to be
//! taken. A step of order `k` predicts `y⁰ = Σ_{j≤k} D_j` and solves the
//! NDF equation (BDF when `κ = 0`)
//!
//! `(1 − κ_k) γ_k (y − y⁰) + Σ_{j=1}^{k} γ_j D_j − h f(t + h, y) = 0`,
//!
//! `γ_k = Σ_{j≤k} 1/j`, with the κ of Shampine & Reichelt's Table 1, by
//! simplified Newton ([`super::newton`]) from `y⁰` on `W = I − hα_k J`,
//! `α_k = 1/((1 − κ_k)γ_k)`: the equation is `y = ψ + hα_k f(t + h, y)`
//! with `ψ = y⁰ − α_k Σ γ_j D_j`. The correction `d = y − y⁰ = ∇^{k+1}
//! y_{n+1}` gives the error estimate `err = C_k d`, `C_k = κ_k γ_k +
//! 1/(k+1)` (Shampine & Reichelt eq. (4)), and on acceptance updates the
//! differences: `D_{k+2} ← d − D_{k+1}`, `D_{k+1} ← d`, `D_j ← D_j + D_{j+1}`
//! for `j = k, …, 0`.
//!
//! # Who chooses the step, who chooses the order
//!
//! The step size is the loop's: its controller proposes `h` from the error
//! norm of each attempt, as for every other method, and clips it to
//! `dt_max`, stop times and `t1`. The solver owns its history and rescales
//! it to whatever `h` it is given: columns `0..=k` by the matrix `R U` of
//! Byrne & Hindmarsh §3.2 (the same interpolating polynomial re-expressed at
//! the new spacing), column `k + 1` by `(h_new/h)^{k+1}` (the top
//! difference of that degree), so the estimates of the neighbouring orders
//! stay valid under a varying step. It reports the order of each attempt's
//! estimate, `k + 1`, through [`Solver::step_error_order`], so the
//! controller's exponents follow the order.
//!
//! The order is the solver's: after `k + 1` accepted steps at order `k`
//! (`ode15s`, p. 83 of Shampine & Reichelt), [`Solver::accept`] compares
//! the scaled norms of the estimates of orders `k − 1` (`C_{k−1} D_k`), `k`
//! and `k + 1` (`C_{k+1} D_{k+2}`), each raised to `−1/(order + 1)` (the step
//! factor it would allow), and moves to the order with the largest. The
//! norm is the solve's (its `rtol` and `atol`, handed over by
//! [`Solver::tolerances`]), which also measures the Newton iteration.
//!
//! The first step is of order 1 from the history `D_1 = h f(t0, y0)`
//! (implicit Euler with an explicit-Euler predictor).
//!
//! # Jacobians, failures
//!
//! As for the ESDIRK methods ([`super::esdirk`]): `J` from
//! [`crate::field::Drift::jacobian`] when the field has one, else forward
//! differences, at the step's start; reused while the iterations contract
//! fast; re-formed after a Newton failure; `W` refactorised when `J` changes
//! or `hα_k` moves by more than [`NewtonOptions::refactor_ratio`]. A Newton
//! failure with a fresh Jacobian returns
//! [`StepStatus::Failed`]: the adaptive loop rejects the
//! attempt and shrinks `h` (the history is rescaled to it), a fixed-step
//! solve ends with [`SolveError::NonlinearSolve`]. A rejected attempt
//! restarts the count of steps before the next order change.
//!
//! # Dense output
//!
//! The method's own interpolant: the polynomial through `y_{n+1}, y_n, …,
//! y_{n+1−k}` at spacing `h` that the updated differences represent
//! (Byrne & Hindmarsh, p. 7 of §3), `y(t_n + θh) = y_{n+1} + Σ_{j=1}^{k}
//! D_j^{n+1} Π_{i=0}^{j−1} (θ − 1 + i)/(i + 1)`, written as weights of
//! the vectors `D_j^{n+1}/h`: it interpolates `y_n` and `y_{n+1}` exactly
//! and costs no evaluation.
//!
//! # The step VJP (a discrete adjoint)
//!
//! The history is the method's carried state ([`Solver::carried_state`]:
//! `D_1 … D_{K+2}`, then the order `k` and the step `h` they are at, `0`
//! before the first step, when `D_1 = f(t0, y0)`), so the one discrete
//! adjoint reverses `Bdf`'s steps as any other method's
//! ([`StepVjp::step_vjp`]): with the order and the step sizes constants (the
//! controller and the order choice are not differentiated), a step is
//! linear in the history but for its Newton solve. Backwards: the
//! difference update (`D'_j = D̃_j + D'_{j+1}`, `D'_{k+1} = d`, `D'_{k+2} =
//! d − D̃_{k+1}`), the error `C_k d` and `d = z − y⁰`; the implicit equation
//! `z = ψ + hα_k f(t + h, z)` by the implicit-function theorem — one
//! transposed solve `(I − hα_k J(z))ᵀ μ = z̄` with the exact Jacobian at `z`
//! solved to round-off ([`super::exact`]), and one VJP for `∂f/∂p`; then `ψ`
//! and `y⁰`, and the rescaling (the transpose of `R U`, and `r^{k+1}`).
//! The start's VJP ([`StepVjp::start_vjp`]) takes `D_1 = f(t0, y0)` back to
//! `y0` and `p`; a restart after a discontinuity is a start too
//! ([`Solver::RESTARTS_CARRIED_STATE`]). The dense output is not
//! differentiated (losses on step ends: `SaveAt::Steps`, `SaveAt::T1`, or
//! `step_to` the loss times).

use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{DiffusionVjp, Drift, DriftVjp, NoDiffusion};
use crate::norm::weighted_rms;
use crate::options::{Tolerance, setters};
use crate::problem::Problem;
use crate::solution::Stats;
use crate::solver::{
    DenseTable, Increment, OdeProblem, Solver, StepArgs, StepAt, StepOut, StepStatus, StepTaken,
};
use crate::step_vjp::{StepBars, StepVjp, VjpArgs, refuse_interp_cotangents};
use crate::stiff::JacobianSource;
use crate::stiff::exact::ExactJacobian;
use crate::stiff::newton::{Implicit, Newton, NewtonOptions};

/// The highest order of [`Bdf`].
pub const BDF_MAX_ORDER: usize = 5;
/// `K + 1` for the highest order `K`.
const K1: usize = BDF_MAX_ORDER + 1;

/// `κ` of [`Bdf`]'s Newton iteration, in the solve's norm. Measured on
/// Robertson (to 1e5 and 1e11), HIRES and Van der Pol at rtol 1e-6 and
/// 1e-8: 0.01 (the ESDIRK default, there in a tighter norm) costs up to 40%
/// more drift evaluations (Van der Pol at 1e-8: 5904 vs 4222) for no
/// accuracy; 0.2 (diffsol's) about as many as 0.1 with more steps and LU
/// factorisations.
const NEWTON_KAPPA: f64 = 0.1;

/// The NDF coefficients `κ_k`, `k = 1..5`, of Shampine & Reichelt (1997),
/// Table 1 (`κ_0` unused).
const NDF_KAPPA: [f64; K1] = [0.0, -0.1850, -1.0 / 9.0, -0.0823, -0.0415, 0.0];

/// Variable-order (1–5) BDF, by default in its NDF variant (the numerical
/// differentiation formulas of `ode15s`): the first choice for stiff
/// problems (Van der Pol with large μ, Robertson, chemical kinetics), cheap
/// per step (one Newton solve, usually one or two iterations) and accurate
/// at tight tolerances. Runs in the one integration loop with its
/// controllers, save policies, `dt_max`, stop times and step observers,
/// and allocates nothing per step; restarts at order 1 after each of the
/// options' discontinuities; has a step VJP (its history carried), so the
/// discrete adjoint differentiates it. The method, its step-size and order
/// control, dense output, step VJP and sources are described in
/// `stiff/bdf.rs`.
///
/// Its Newton iteration and its order choice are measured in the solve's
/// own tolerances (handed over through [`Solver::tolerances`]), so
/// [`NewtonOptions::rtol`] and [`NewtonOptions::atol`] are not read; the
/// other Newton settings are.
///
/// ```
/// use sdeflow_solvers::prelude::*;
/// // y' = -1000 (y - cos t): stiff, smooth
/// let p = Problem::ode(
///     |t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -1e3 * (y[0] - t.cos()),
///     vec![0.0],
///     (0.0, 1.0),
/// );
/// let sol = solve(&p, Bdf::default(), Options::default().tol(1e-8))?;
/// // y(1) is the particular solution (the e^{-1000 t} mode has died out)
/// let exact = (1e6 * 1f64.cos() + 1e3 * 1f64.sin()) / (1e6 + 1.0);
/// assert!((sol.last()[0] - exact).abs() < 1e-6);
/// # Ok::<(), SolveError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bdf {
    /// Where the Jacobian comes from.
    pub jacobian: JacobianSource,
    /// The Newton iteration's settings (`rtol` and `atol` are not read:
    /// the solve's are used; default `κ = 0.1`).
    pub newton: NewtonOptions,
    /// The highest order used, 1 to 5 (default 5).
    pub max_order: usize,
    /// NDF (`true`, the default) or BDF (`false`, all `κ = 0`) formulas.
    pub ndf: bool,
}

impl Default for Bdf {
    fn default() -> Self {
        Bdf {
            jacobian: JacobianSource::Auto,
            newton: NewtonOptions {
                kappa: NEWTON_KAPPA,
                ..NewtonOptions::DEFAULT
            },
            max_order: BDF_MAX_ORDER,
            ndf: true,
        }
    }
}

impl Bdf {
    /// Forces finite-difference Jacobians.
    pub fn finite_differences() -> Self {
        Bdf {
            jacobian: JacobianSource::FiniteDifferences,
            ..Self::default()
        }
    }

    setters! {
        /// Sets the Jacobian source.
        jacobian: JacobianSource;
        /// Sets the Newton settings.
        newton: NewtonOptions;
        /// Sets the highest order (1 to 5).
        max_order: usize;
        /// Chooses NDF (`true`) or BDF (`false`) formulas.
        ndf: bool;
    }
}

/// The per-order coefficients of the formulas, `k = 0..=5`.
#[derive(Debug, Clone, Copy)]
struct Coefficients {
    /// `γ_k = Σ_{j≤k} 1/j`.
    gamma: [f64; K1],
    /// `α_k = 1/((1 − κ_k) γ_k)`.
    alpha: [f64; K1],
    /// The error constants `C_k = κ_k γ_k + 1/(k + 1)`.
    error: [f64; K1],
}

impl Coefficients {
    /// The prediction `y⁰ = Σ_{j≤k} D_j` of an order-`k` step from the
    /// differences `diff` (at the step's spacing, `n = pred.len()` each),
    /// and `ψ = y⁰ − α_k Σ_{j=1}^{k} γ_j D_j`.
    fn predict(&self, diff: &[f64], k: usize, pred: &mut [f64], psi: &mut [f64]) {
        let n = pred.len();
        let (alpha, gamma) = (self.alpha[k], &self.gamma);
        for q in 0..n {
            let (mut y0, mut sum) = (diff[q], 0.0);
            for j in 1..=k {
                let dj = diff[j * n + q];
                y0 += dj;
                sum += gamma[j] * dj;
            }
            pred[q] = y0;
            psi[q] = y0 - alpha * sum;
        }
    }

    fn new(ndf: bool) -> Self {
        let mut c = Coefficients {
            gamma: [0.0; K1],
            alpha: [0.0; K1],
            error: [1.0; K1],
        };
        for k in 1..K1 {
            let kappa = if ndf { NDF_KAPPA[k] } else { 0.0 };
            c.gamma[k] = c.gamma[k - 1] + 1.0 / k as f64;
            c.alpha[k] = 1.0 / ((1.0 - kappa) * c.gamma[k]);
            c.error[k] = kappa * c.gamma[k] + 1.0 / (k + 1) as f64;
        }
        c
    }
}

/// Workspace of a [`Bdf`] solve: the history and the Newton iteration.
#[derive(Debug, Clone)]
pub struct BdfCache {
    n: usize,
    coef: Coefficients,
    /// The backward differences `D_0 … D_{K+2}` at spacing `h`, `n` each,
    /// then the order and `h` (`0` before the first step) as floats: from
    /// `D_1` on, the carried state ([`Solver::carried_state`]).
    diff: Vec<f64>,
    /// The current order.
    order: usize,
    /// The step the differences are at (NaN before the first step, when
    /// `D_1` holds `f(t0, y0)`).
    h: f64,
    /// Steps accepted since the order last changed or a step was rejected.
    steps_at_order: usize,
    /// The prediction `y⁰`, and `ψ` of the step's equation.
    pred: Vec<f64>,
    psi: Vec<f64>,
    /// The last attempt's correction `d = y − y⁰`.
    d: Vec<f64>,
    /// Receives `f(t, y)` from finite-difference Jacobians (unused).
    f0: Vec<f64>,
    newton: Newton,
    /// Dense-output vectors `D_j^{n+1}/h` (`max_order × n`) and their
    /// weight polynomials.
    ks: Vec<f64>,
    poly: Vec<f64>,
    /// The solve's tolerances.
    rtol: Tolerance,
    atol: Tolerance,
    /// A step was attempted and not yet accepted (the next call is a retry).
    pending: bool,
    /// The last attempt's Newton iteration failed.
    failed: bool,
}

/// `1/i` for `i = 0..=K` (`0` unused).
const INV: [f64; K1] = [0.0, 1.0, 0.5, 1.0 / 3.0, 0.25, 0.2];

/// The matrix `R(k, r)` of Byrne & Hindmarsh §3.2 (`(k+1) × (k+1)` of a
/// `K1 × K1` array): `R_{0j} = 1`, `R_{ij} = R_{i−1,j} (i − 1 − r j)/i`.
const fn r_matrix(k: usize, r: f64) -> [[f64; K1]; K1] {
    let mut m = [[0.0; K1]; K1];
    let mut j = 0;
    while j <= k {
        m[0][j] = 1.0;
        let rj = r * j as f64;
        let mut i = 1;
        while i <= k {
            m[i][j] = m[i - 1][j] * ((i - 1) as f64 - rj) * INV[i];
            i += 1;
        }
        j += 1;
    }
    m
}

/// `U(k) = R(k, 1)` for every order `k` (upper triangular).
static U: [[[f64; K1]; K1]; K1] = {
    let mut u = [[[0.0; K1]; K1]; K1];
    let mut k = 0;
    while k < K1 {
        u[k] = r_matrix(k, 1.0);
        k += 1;
    }
    u
};

/// Re-expresses the differences of an order-`k` history at the step
/// `r h` instead of `h`: columns `0..=k` (the interpolating polynomial) by
/// `D ← D R(k, r) U(k)` (column 0, `y_n`, is unchanged), column `k + 1` by
/// `r^{k+1}`.
fn rescale(diff: &mut [f64], n: usize, k: usize, r: f64) {
    // one instance per order, so that the small loops over the order unroll
    match k {
        1 => rescale_order::<1>(diff, n, r),
        2 => rescale_order::<2>(diff, n, r),
        3 => rescale_order::<3>(diff, n, r),
        4 => rescale_order::<4>(diff, n, r),
        _ => rescale_order::<5>(diff, n, r),
    }
}

/// `w[i][j] = (R(k, r) U(k))_{ij}` for `i, j = 1..=k`, the rescaling of
/// the differences `D_1 … D_k` (`U` is upper triangular, `R_{i0} = 0` for
/// `i ≥ 1`, and `(R U)_{0j} = Σ_l U_{lj} = 0` for `j ≥ 1`: `D_0` stays).
#[inline(always)]
fn rescale_weights(k: usize, r: f64) -> [[f64; K1]; K1] {
    let (rm, u) = (r_matrix(k, r), &U[k]);
    let mut w = [[0.0; K1]; K1];
    for i in 1..=k {
        for j in 1..=k {
            let mut acc = 0.0;
            for l in 1..=j {
                acc += rm[i][l] * u[l][j];
            }
            w[i][j] = acc;
        }
    }
    w
}

/// The transpose of [`rescale`]: maps the cotangents of the rescaled
/// differences (`bar`, columns `1..=k + 1` read) to those of the
/// differences before (`D̄_i = Σ_j w_ij D̃̄_j`, `D̄_{k+1} = r^{k+1}
/// D̃̄_{k+1}`), in place.
fn rescale_transposed(bar: &mut [f64], n: usize, k: usize, r: f64) {
    let w = rescale_weights(k, r);
    for q in 0..n {
        let mut row = [0.0; K1];
        for (j, v) in row.iter_mut().enumerate().take(k + 1).skip(1) {
            *v = bar[j * n + q];
        }
        for (i, wi) in w.iter().enumerate().take(k + 1).skip(1) {
            bar[i * n + q] = (1..=k).map(|j| wi[j] * row[j]).sum();
        }
    }
    let top = r.powi(k as i32 + 1);
    bar[(k + 1) * n..(k + 2) * n]
        .iter_mut()
        .for_each(|v| *v *= top);
}

/// [`rescale`] at order `K`.
#[inline(always)]
fn rescale_order<const K: usize>(diff: &mut [f64], n: usize, r: f64) {
    let w = rescale_weights(K, r);
    for q in 0..n {
        let mut row = [0.0; K1];
        for (i, v) in row.iter_mut().enumerate().take(K + 1).skip(1) {
            *v = diff[i * n + q];
        }
        for j in 1..=K {
            let mut acc = 0.0;
            for i in 1..=K {
                acc += row[i] * w[i][j];
            }
            diff[j * n + q] = acc;
        }
    }
    let top = r.powi(K as i32 + 1);
    diff[(K + 1) * n..(K + 2) * n]
        .iter_mut()
        .for_each(|v| *v *= top);
}

impl Bdf {
    /// The dense-output weights of the vectors `D_j/h`, `j = 1..=nk`
    /// (`nk × (nk + 1)`, ascending powers of θ): `θ` for `j = 1`, else
    /// `Π_{i<j} (θ − 1 + i)/(i + 1)`.
    fn dense_poly(nk: usize) -> Vec<f64> {
        let ncoef = nk + 1;
        let mut poly = vec![0.0; nk * ncoef];
        poly[1] = 1.0;
        for j in 2..=nk {
            let row = &mut poly[(j - 1) * ncoef..j * ncoef];
            row[0] = 1.0;
            for i in 0..j {
                // multiply by (θ + (i − 1)) / (i + 1)
                let (a, s) = ((i as f64) - 1.0, 1.0 / (i + 1) as f64);
                for c in (0..=i + 1).rev() {
                    let shifted = if c > 0 { row[c - 1] } else { 0.0 };
                    row[c] = (shifted + a * row[c]) * s;
                }
            }
        }
        poly
    }

    /// After `k + 1` steps at order `k`: moves to the order among `k − 1`,
    /// `k`, `k + 1` whose estimate allows the largest step, i.e. whose
    /// `E_j^{−1/(j+1)}` is largest (compared as `ln E_j / (j + 1)`, smallest
    /// wins: one logarithm per order instead of a power).
    fn choose_order(&self, c: &mut BdfCache) {
        let (n, k) = (c.n, c.order);
        let y = &c.diff[..n];
        // ln of the scaled norm of the estimate C_j D_col at order j, over j + 1
        let score = |j: usize, col: usize| {
            let col = &c.diff[col * n..(col + 1) * n];
            (c.coef.error[j] * weighted_rms(col, y, &c.rtol, &c.atol)).ln() / (j + 1) as f64
        };
        let mut best = (k, score(k, k + 1));
        if k > 1 {
            let down = score(k - 1, k);
            if down < best.1 {
                best = (k - 1, down);
            }
        }
        if k < self.max_order {
            let up = score(k + 1, k + 2);
            if up < best.1 {
                best = (k + 1, up);
            }
        }
        if best.0 != k {
            c.order = best.0;
            c.steps_at_order = 0;
        }
    }
}

impl BdfCache {
    /// Writes the order and the step (`0` before the first) after the
    /// differences, where [`Solver::carried_state`] ends.
    fn mirror(&mut self) {
        let at = (BDF_MAX_ORDER + 3) * self.n;
        self.diff[at] = self.order as f64;
        self.diff[at + 1] = if self.h.is_nan() { 0.0 } else { self.h };
    }
}

impl<F: Drift, D: Driver> Solver<OdeProblem<F, D>> for Bdf {
    type Cache = BdfCache;
    const INCREMENT: Increment = Increment::None;
    /// A restart is a start: order 1 from the state and drift after the
    /// discontinuity, the history before it dropped.
    const RESTARTS_CARRIED_STATE: bool = true;

    fn name(&self) -> &'static str {
        "Bdf"
    }

    /// `max_order`: the order it works up to (it starts at 1). The loop's
    /// initial-step heuristic reads it; with 1 that heuristic's step is far
    /// too small for stiff problems (16ε|t| on `y' = −50 (y − cos t)` at
    /// tol 1e-10), with `max_order` the first step is at worst rejected a
    /// few times (measured on Robertson, HIRES, Van der Pol: within 3% of
    /// the drift evaluations of order 2, the value that makes it HNW's
    /// estimate for order 1).
    fn order(&self) -> f64 {
        self.max_order as f64
    }

    /// 2: that of the first step's estimate (each attempt's is reported by
    /// [`Solver::step_error_order`]).
    fn error_order(&self) -> Option<f64> {
        Some(2.0)
    }

    fn check(&self, problem: &OdeProblem<F, D>) -> Result<(), SolveError> {
        problem.ode_only("Bdf")?;
        if !(1..=BDF_MAX_ORDER).contains(&self.max_order) {
            return Err(SolveError::invalid(
                "Bdf max_order",
                format!("{} must be 1 to {BDF_MAX_ORDER}", self.max_order),
            ));
        }
        self.newton.check(false)
    }

    fn init(&self, problem: &OdeProblem<F, D>) -> BdfCache {
        let n = problem.dim();
        let nk = self.max_order;
        BdfCache {
            n,
            coef: Coefficients::new(self.ndf),
            diff: vec![0.0; (BDF_MAX_ORDER + 3) * n + 2],
            order: 1,
            h: f64::NAN,
            steps_at_order: 0,
            pred: vec![0.0; n],
            psi: vec![0.0; n],
            d: vec![0.0; n],
            f0: vec![0.0; n],
            newton: Newton::new(n),
            ks: vec![0.0; nk * n],
            poly: Self::dense_poly(nk),
            rtol: Tolerance::Scalar(1e-3),
            atol: Tolerance::Scalar(1e-6),
            pending: false,
            failed: false,
        }
    }

    fn tolerances(&self, c: &mut BdfCache, rtol: &Tolerance, atol: &Tolerance) {
        c.rtol.clone_from(rtol);
        c.atol.clone_from(atol);
    }

    fn start(&self, c: &mut BdfCache, f0: &[f64], _g0: &[f64]) {
        let n = c.n;
        c.diff.iter_mut().for_each(|v| *v = 0.0);
        c.diff[n..2 * n].copy_from_slice(f0);
        c.order = 1;
        c.h = f64::NAN;
        c.mirror();
        c.steps_at_order = 0;
        c.newton.reset();
        c.pending = false;
        c.failed = false;
    }

    fn step(&self, c: &mut BdfCache, args: StepArgs<'_, F, NoDiffusion>) -> StepStatus {
        let (StepAt { t, h, y }, StepOut { y_new, err }) = (args.at, args.out);
        let (fields, stats) = (args.fields, args.stats);
        let n = c.n;
        let retry = c.pending;
        c.pending = true;
        if retry {
            c.steps_at_order = 0;
        }
        // the history at the step the loop gives
        c.diff[..n].copy_from_slice(y);
        if c.h.is_nan() {
            c.diff[n..2 * n].iter_mut().for_each(|v| *v *= h);
            c.h = h;
        } else if h != c.h {
            rescale(&mut c.diff, n, c.order, h / c.h);
            c.h = h;
        }
        let k = c.order;
        c.coef.predict(&c.diff, k, &mut c.pred, &mut c.psi);
        let ha = h * c.coef.alpha[k];
        let (pred, psi, rtol, atol) = (&c.pred, &c.psi, &c.rtol, &c.atol);
        let eq = Implicit {
            t: t + h,
            c: ha,
            psi,
        };
        let solved = c.newton.solve_step(
            (fields.drift, fields.p, self.jacobian),
            (t, y, ha),
            &self.newton,
            retry && c.failed,
            (&mut c.f0, stats),
            |nw, _, stats| {
                nw.z.copy_from_slice(pred);
                let norm = |d: &[f64], z: &[f64]| weighted_rms(d, z, rtol, atol);
                nw.iterate(fields, eq, &self.newton, norm, stats)
            },
        );
        c.failed = !solved;
        if !solved {
            return StepStatus::Failed;
        }
        let ck = c.coef.error[k];
        for q in 0..n {
            let z = c.newton.z[q];
            let d = z - c.pred[q];
            c.d[q] = d;
            y_new[q] = z;
            err[q] = ck * d;
        }
        StepStatus::Taken
    }

    #[inline(always)]
    fn step_error_order(&self, c: &BdfCache) -> Option<f64> {
        Some((c.order + 1) as f64)
    }

    fn accept(&self, c: &mut BdfCache) {
        let (n, k) = (c.n, c.order);
        for q in 0..n {
            let d = c.d[q];
            c.diff[(k + 2) * n + q] = d - c.diff[(k + 1) * n + q];
            c.diff[(k + 1) * n + q] = d;
            for j in (0..=k).rev() {
                c.diff[j * n + q] += c.diff[(j + 1) * n + q];
            }
            c.diff[q] = c.newton.z[q];
        }
        c.newton.jac.fresh = false;
        c.pending = false;
        c.steps_at_order += 1;
        if c.steps_at_order > k {
            self.choose_order(c);
        }
        c.mirror();
    }

    /// The history from `D_1` on, then the order and the step it is at.
    fn carried_state<'c>(&self, c: &'c BdfCache) -> &'c [f64] {
        &c.diff[c.n..]
    }

    fn dense_table<'c>(&self, c: &'c BdfCache) -> DenseTable<'c> {
        DenseTable::new(self.max_order + 1, &c.poly)
    }

    /// The vectors `D_j^{n+1}/h` of the updated history (computed from the
    /// current one and the correction: this is called before
    /// [`Solver::accept`]), zero above the order.
    fn dense_stages<'c>(
        &self,
        c: &'c mut BdfCache,
        step: StepTaken<'_, F, NoDiffusion>,
    ) -> &'c [f64] {
        let (n, k, h) = (c.n, c.order, step.at.h);
        for q in 0..n {
            let mut acc = c.d[q];
            for j in (1..=k).rev() {
                acc += c.diff[j * n + q];
                c.ks[(j - 1) * n + q] = acc / h;
            }
        }
        c.ks[k * n..].iter_mut().for_each(|v| *v = 0.0);
        &c.ks
    }
}

/// Workspace of [`Bdf`]'s step VJP ([`StepVjp::step_vjp`]).
#[derive(Debug, Clone)]
pub struct BdfVjpCache {
    n: usize,
    coef: Coefficients,
    /// The differences `D̃_0 … D̃_{K+2}` at the step's spacing, and the
    /// cotangents of the history.
    tilde: Vec<f64>,
    bar: Vec<f64>,
    /// The prediction (then its cotangent), `ψ`, the converged `z`, and
    /// scratch.
    pred: Vec<f64>,
    psi: Vec<f64>,
    z: Vec<f64>,
    fz: Vec<f64>,
    delta: Vec<f64>,
    jw: ExactJacobian,
}

impl Bdf {
    /// The step from `(at.t, at.y)` of size `at.h` taken from the history
    /// `carried` (as [`Solver::carried_state`] gives it), with its equation
    /// solved to round-off: the map the step VJP differentiates (the
    /// loop's step stops Newton at the solve's tolerance). Writes `y_new`,
    /// the error estimate and the history after the step (`carried_new`,
    /// the order and step entries included; the order is not re-chosen).
    ///
    /// # Errors
    /// A carried state of the wrong length or order, or an iteration that
    /// does not converge.
    pub fn converged_step<F: DriftVjp>(
        &self,
        c: &mut BdfVjpCache,
        (field, p): (&F, &[f64]),
        at: StepAt<'_>,
        carried: &[f64],
        (out, carried_new): (StepOut<'_>, &mut [f64]),
        stats: &mut Stats,
    ) -> Result<(), SolveError> {
        let (k, _) = self.replay(c, (field, p), at, carried, stats)?;
        let n = c.n;
        let ck = c.coef.error[k];
        // the difference update of [`Solver::accept`] on the replayed history
        for q in 0..n {
            let d = c.z[q] - c.pred[q];
            out.y_new[q] = c.z[q];
            out.err[q] = ck * d;
            c.tilde[(k + 2) * n + q] = d - c.tilde[(k + 1) * n + q];
            c.tilde[(k + 1) * n + q] = d;
            for j in (0..=k).rev() {
                c.tilde[j * n + q] += c.tilde[(j + 1) * n + q];
            }
        }
        let hist = (BDF_MAX_ORDER + 2) * n;
        carried_new[..hist].copy_from_slice(&c.tilde[n..]);
        carried_new[hist] = k as f64;
        carried_new[hist + 1] = at.h;
        Ok(())
    }

    /// The step again from `carried`: the history at spacing `at.h` in
    /// `c.tilde`, the prediction and `ψ`, and the solution `c.z` to
    /// round-off. Returns the order and the step the history was at.
    fn replay<F: DriftVjp>(
        &self,
        c: &mut BdfVjpCache,
        (field, p): (&F, &[f64]),
        at: StepAt<'_>,
        carried: &[f64],
        stats: &mut Stats,
    ) -> Result<(usize, f64), SolveError> {
        let StepAt { t, h, y } = at;
        let n = c.n;
        let hist = (BDF_MAX_ORDER + 2) * n;
        let (k, h_prev) = match carried {
            [.., k, h_prev] if carried.len() == hist + 2 => (*k as usize, *h_prev),
            _ => {
                return Err(SolveError::invalid(
                    "Bdf step VJP carried state",
                    format!(
                        "{} entries where Bdf carries {} (its history for n = {n})",
                        carried.len(),
                        hist + 2
                    ),
                ));
            }
        };
        if !(1..=self.max_order).contains(&k) {
            return Err(SolveError::invalid(
                "Bdf step VJP carried state",
                format!("order {k} outside 1..={}", self.max_order),
            ));
        }
        // the history at spacing h, the prediction and ψ
        c.tilde[..n].copy_from_slice(y);
        c.tilde[n..].copy_from_slice(&carried[..hist]);
        if h_prev == 0.0 {
            c.tilde[n..2 * n].iter_mut().for_each(|v| *v *= h);
        } else if h != h_prev {
            rescale(&mut c.tilde, n, k, h / h_prev);
        }
        c.coef.predict(&c.tilde, k, &mut c.pred, &mut c.psi);
        let ha = h * c.coef.alpha[k];
        c.z.copy_from_slice(&c.pred);
        c.jw.converge(
            (field, p),
            (t + h, ha),
            &c.psi,
            (&mut c.z, &mut c.fz, &mut c.delta),
            stats,
        )
        .map_err(|reason| SolveError::NonlinearSolve {
            solver: "Bdf",
            t,
            h,
            reason,
        })?;
        Ok((k, h_prev))
    }
}

impl<Fx: Drift, Dx: Driver> StepVjp<OdeProblem<Fx, Dx>> for Bdf {
    type VjpWork = BdfVjpCache;

    fn vjp_workspace<F: DriftVjp, G: DiffusionVjp, D: Driver>(
        &self,
        problem: &Problem<F, G, D>,
    ) -> BdfVjpCache {
        let n = problem.dim();
        let cols = (BDF_MAX_ORDER + 3) * n;
        BdfVjpCache {
            n,
            coef: Coefficients::new(self.ndf),
            tilde: vec![0.0; cols],
            bar: vec![0.0; cols],
            pred: vec![0.0; n],
            psi: vec![0.0; n],
            z: vec![0.0; n],
            fz: vec![0.0; n],
            delta: vec![0.0; n],
            jw: ExactJacobian::new(n, problem.params.len()),
        }
    }

    /// Reverses the step from `(at.t, at.y)` of size `at.h` taken from the
    /// history `carried` (see the module doc, "The step VJP"): on entry
    /// `bars.y = ∂L/∂y_{n+1}`, `bars.carried` the cotangent of the history
    /// after the step and `bars.err` that of the error estimate; on exit
    /// `bars.y = ∂L/∂y_n`, `bars.carried` that of the history before it,
    /// and `∂L/∂p` is added to `bars.p`. The step's equation is solved
    /// again to round-off (an exact Jacobian and a factorisation per
    /// Newton iteration, and one more at the solution for the transposed
    /// solve). Returns the number of VJPs with cotangents (1; those that
    /// assemble Jacobians are not counted).
    fn step_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        c: &mut BdfVjpCache,
        args: VjpArgs<'_, F, G>,
    ) -> Result<usize, SolveError> {
        let (at, carried, bars, stats) = (args.at, args.carried, args.bars, args.stats);
        refuse_interp_cotangents("Bdf", bars.interp)?;
        let (field, p) = (args.fields.drift, args.fields.p);
        let StepAt { t, h, .. } = at;
        let n = c.n;
        let hist = (BDF_MAX_ORDER + 2) * n;
        let (k, h_prev) = self.replay(c, (field, p), at, carried, stats)?;
        let r = h / h_prev;
        let (alpha, gamma) = (c.coef.alpha[k], c.coef.gamma);
        let ha = h * alpha;
        let fail = |reason: String| SolveError::NonlinearSolve {
            solver: "Bdf",
            t,
            h,
            reason,
        };
        let StepBars {
            y: y_bar,
            carried: c_bar,
            err: err_bar,
            p: p_bar,
            ..
        } = bars;
        // the difference update D'_j = D̃_j + D'_{j+1} (j = 1..k),
        // D'_{k+1} = d, D'_{k+2} = d − D̃_{k+1}; columns above unchanged
        c.bar[..n].iter_mut().for_each(|v| *v = 0.0);
        c.bar[n..].copy_from_slice(&c_bar[..hist]);
        for j in 1..=k {
            for q in 0..n {
                c.bar[(j + 1) * n + q] += c.bar[j * n + q];
            }
        }
        let ck = c.coef.error[k];
        for q in 0..n {
            let top = c.bar[(k + 2) * n + q];
            // d̄ from D'_{k+1}, D'_{k+2} and err = C_k d
            let d_bar = c.bar[(k + 1) * n + q] + top + err_bar.map_or(0.0, |e| ck * e[q]);
            c.bar[(k + 1) * n + q] = -top;
            c.bar[(k + 2) * n + q] = 0.0;
            // d = z − y⁰, y_new = z
            c.delta[q] = y_bar[q] + d_bar;
            c.pred[q] = -d_bar;
        }
        // z = ψ + hα f(t + h, z): μ = (I − hα J(z))⁻ᵀ z̄ is ψ̄, and
        // p̄ += hα (∂f/∂p)ᵀ μ
        if !c.jw.factor_at(field, p, (t + h, &c.z), ha, stats) {
            return Err(fail("singular I − hαJ(z) at the solution".into()));
        }
        c.jw.w.solve_transposed(&mut c.delta);
        for q in 0..n {
            c.fz[q] = ha * c.delta[q];
        }
        c.jw.row.iter_mut().for_each(|v| *v = 0.0);
        field.drift_vjp(t + h, &c.z, p, &c.fz, &mut c.jw.row, p_bar);
        // ψ = y⁰ − α Σ γ_j D̃_j, y⁰ = Σ_{j≤k} D̃_j, D̃_0 = y
        for q in 0..n {
            let mu = c.delta[q];
            let pred_bar = c.pred[q] + mu;
            for j in 1..=k {
                c.bar[j * n + q] += pred_bar - alpha * gamma[j] * mu;
            }
            y_bar[q] = pred_bar;
        }
        // the rescaling (or, at the first step, D̃_1 = h f(t0, y0))
        if h_prev == 0.0 {
            c.bar[n..2 * n].iter_mut().for_each(|v| *v *= h);
        } else if h != h_prev {
            rescale_transposed(&mut c.bar, n, k, r);
        }
        c_bar[..hist].copy_from_slice(&c.bar[n..]);
        c_bar[hist..].iter_mut().for_each(|v| *v = 0.0);
        Ok(1)
    }

    /// The start's history is `D_1 = f(t0, y0)` (the rest zeros): adds
    /// `D̄_1ᵀ ∂f/∂y` to `bars.y` and `D̄_1ᵀ ∂f/∂p` to `bars.p`.
    fn start_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        c: &mut BdfVjpCache,
        args: VjpArgs<'_, F, G>,
    ) -> Result<usize, SolveError> {
        let (StepAt { t: t0, y: y0, .. }, fields, bars) = (args.at, args.fields, args.bars);
        let n = c.n;
        let f_bar = &bars.carried[..n];
        if f_bar.iter().all(|&v| v == 0.0) {
            return Ok(0);
        }
        c.jw.row.iter_mut().for_each(|v| *v = 0.0);
        fields
            .drift
            .drift_vjp(t0, y0, fields.p, f_bar, &mut c.jw.row, bars.p);
        for (yb, r) in bars.y.iter_mut().zip(&c.jw.row) {
            *yb += r;
        }
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Backward differences at spacing `h` of `p` at `t`: `∇^j p(t)`.
    fn differences(p: impl Fn(f64) -> f64, t: f64, h: f64, k: usize) -> Vec<f64> {
        let mut vals: Vec<f64> = (0..=k).map(|i| p(t - i as f64 * h)).collect();
        let mut out = vec![vals[0]];
        for _ in 0..k {
            for i in 0..vals.len() - 1 {
                vals[i] -= vals[i + 1];
            }
            vals.pop();
            out.push(vals[0]);
        }
        out
    }

    #[test]
    fn rescaling_re_expresses_the_polynomial_at_the_new_spacing() {
        // a cubic: its differences at spacing h, rescaled, are its
        // differences at spacing r h (exactly, up to rounding), and the top
        // difference of a quartic scales by r^4
        let cubic = |t: f64| 0.3 - 1.2 * t + 0.7 * t * t + 0.25 * t * t * t;
        let (t, h) = (0.4, 0.1);
        for r in [0.3, 0.9, 1.7, 4.0] {
            let k = 3;
            let mut diff = vec![0.0; K1 + 2];
            diff[..=k].copy_from_slice(&differences(cubic, t, h, k));
            rescale(&mut diff, 1, k, r);
            let want = differences(cubic, t, r * h, k);
            for j in 0..=k {
                assert!(
                    (diff[j] - want[j]).abs() < 1e-13,
                    "r={r} D{j}: {} vs {}",
                    diff[j],
                    want[j]
                );
            }
        }
        let quartic = |t: f64| 2.0 * t.powi(4) - t;
        let mut diff = vec![0.0; K1 + 2];
        diff[..=4].copy_from_slice(&differences(quartic, 1.0, 0.2, 4));
        rescale(&mut diff, 1, 3, 0.5);
        let want = differences(quartic, 1.0, 0.1, 4)[4];
        assert!((diff[4] - want).abs() < 1e-14 * want.abs().max(1.0));
    }

    #[test]
    fn dense_weights_interpolate_the_history() {
        // y(θ) = y_{n+1} + Σ_j D_j Π_{i<j} (θ − 1 + i)/(i + 1) must
        // reproduce a quartic through the points at spacing h ending at
        // t_{n+1}; with y_n = y_{n+1} − D_1: y = y_n + h Σ b_j (D_j/h)
        let q = |t: f64| 1.0 + t - 3.0 * t * t + 0.5 * t.powi(3) - 0.2 * t.powi(4);
        let (t1, h) = (2.0, 0.3);
        let nk = 5;
        let d = differences(q, t1, h, nk);
        let poly = Bdf::dense_poly(nk);
        for theta in [0.0f64, 0.2, 0.5, 0.77, 1.0] {
            let mut y = q(t1 - h);
            for j in 1..=nk {
                let b: f64 = (0..=nk)
                    .map(|c| poly[(j - 1) * (nk + 1) + c] * theta.powi(c as i32))
                    .sum();
                y += b * d[j];
            }
            let want = q(t1 - h + theta * h);
            assert!((y - want).abs() < 1e-12, "θ={theta}: {y} vs {want}");
        }
    }

    #[test]
    fn coefficients_are_those_of_ode15s() {
        let c = Coefficients::new(true);
        // BDF2/NDF2: γ_2 = 3/2, C_2 = κ γ + 1/3
        assert!((c.gamma[2] - 1.5).abs() < 1e-15);
        assert!((c.error[2] - (-1.0 / 9.0 * 1.5 + 1.0 / 3.0)).abs() < 1e-15);
        let b = Coefficients::new(false);
        // plain BDF: α_1 = 1 (implicit Euler), C_1 = 1/2
        assert!((b.alpha[1] - 1.0).abs() < 1e-15 && (b.error[1] - 0.5).abs() < 1e-15);
    }
}
