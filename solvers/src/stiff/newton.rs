//! The simplified Newton iteration of implicit stages, and its linear
//! algebra.
//!
//! A stage equation `Y = ψ + hγ f(t, Y)` is solved by simplified Newton
//! (Hairer & Wanner, *Solving ODEs II*, §IV.8): with the iteration matrix
//! `W = I − hγJ` (`J` an approximation of `∂f/∂y`, possibly from an earlier
//! step) factorised once,
//!
//! `W Δ^k = ψ + hγ f(t, Y^k) − Y^k`,  `Y^{k+1} = Y^k + Δ^k`.
//!
//! Convergence is judged as in HW II (8.10)–(8.13) and RADAU5: with the
//! contraction rate `θ_k = ‖Δ^k‖ / ‖Δ^{k−1}‖` and `η_k = θ_k / (1 − θ_k)`,
//! the iteration has converged when `η_k ‖Δ^k‖ ≤ κ` in the scaled norm
//! `‖v‖ = rms(v_i / (atol + rtol |Y_i|))`, i.e. when the remaining error is
//! below `κ` times the tolerance; it has failed when `θ_k ≥ 1`, when a value
//! is not finite, when the predicted error after the remaining iterations,
//! `θ^{k_max − k} / (1 − θ) ‖Δ^k‖`, exceeds `κ`, or after `k_max`
//! iterations. Before a rate is known (the first iteration), `η` is the
//! previous stage's, as `max(η_old, ε)^{0.8}` (RADAU5's `FACCON`), so a
//! stage can converge in one iteration when the last ones converged fast.
//!
//! The LU factorisation is the partial-pivoting Gaussian elimination of
//! `nalgebra::LU::new` (same pivot choice, same `P W = L U` layout), written
//! out in place over a column-major buffer kept in the solver's cache, with
//! the pivots in a cached buffer: `LU::new` takes its matrix by value and
//! allocates its permutation at every factorisation, which the rule of no
//! allocation per step forbids (nalgebra's in-place kernels `gauss_step*`
//! are `#[doc(hidden)]`). The triangular solves, plain and transposed (the
//! latter for the step VJP), work on the same storage.

use crate::error::SolveError;
use crate::field::{Diffusion, Drift};
use crate::options::setters;
use crate::solution::Stats;
use crate::solver::Fields;
use crate::stiff::JacobianSource;

/// Settings of the Newton iteration of the implicit stages.
///
/// The iteration's norm is scaled by `rtol` and `atol`. The solver does not
/// see the solve's [`crate::options::Options`] (the [`crate::solver::Solver`] trait does not
/// hand them over), so set these to the solve's tolerances with
/// [`NewtonOptions::tolerances`] (or `Esdirk34::default().tolerances(..)`).
/// The defaults (`rtol = 1e-8`, `atol = 1e-12`) converge the stages below
/// the error of any solve with `rtol ≥ 1e-8`, at the price of up to twice
/// the Newton iterations at loose tolerances (measured on Robertson, HIRES
/// and Van der Pol at rtol 1e-4). A Newton tolerance much looser than the
/// solve's lets the iteration error into the error estimate and costs steps
/// (Robertson at rtol 1e-8, atol 1e-10 with Newton `atol = 1e-8`: 2114
/// steps instead of 663).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewtonOptions {
    /// Relative tolerance of the iteration's norm (default `1e-8`).
    pub rtol: f64,
    /// Absolute tolerance of the iteration's norm (default `1e-12`).
    pub atol: f64,
    /// `κ`: the iteration stops when its estimated error is below `κ` in the
    /// scaled norm (default `0.01`, OrdinaryDiffEq's `NLNewton` κ).
    pub kappa: f64,
    /// Most iterations per stage (default 10).
    pub max_iters: usize,
    /// The Jacobian is kept for the next step when the worst contraction
    /// rate `θ` of the last step's stages is at most this (default 0.2,
    /// OrdinaryDiffEq's `fast_convergence_cutoff`); otherwise it is
    /// re-evaluated at the next step's start.
    pub reuse_rate: f64,
    /// The factorised `W = I − hγJ` is kept while `|h/h_W − 1|` is at most
    /// this (default 0.2, OrdinaryDiffEq's `new_W_dt_cutoff`); a larger
    /// change of the step refactorises it (with the same `J`).
    pub refactor_ratio: f64,
}

impl NewtonOptions {
    /// The defaults (also usable in `const` contexts).
    pub const DEFAULT: NewtonOptions = NewtonOptions {
        rtol: 1e-8,
        atol: 1e-12,
        kappa: 0.01,
        max_iters: 10,
        reuse_rate: 0.2,
        refactor_ratio: 0.2,
    };
}

impl Default for NewtonOptions {
    fn default() -> Self {
        NewtonOptions::DEFAULT
    }
}

impl NewtonOptions {
    /// Sets the tolerances of the iteration's norm (use the solve's).
    pub fn tolerances(mut self, rtol: f64, atol: f64) -> Self {
        self.rtol = rtol;
        self.atol = atol;
        self
    }

    setters! {
        /// Sets `κ`.
        kappa: f64;
        /// Sets the most iterations per stage.
        max_iters: usize;
    }
}

impl NewtonOptions {
    /// Checks the settings (a solver's [`crate::solver::Solver::check`]); `tolerances`
    /// says whether `rtol` and `atol` are read.
    pub(crate) fn check(&self, tolerances: bool) -> Result<(), SolveError> {
        let o = self;
        let fine = |v: f64| v.is_finite() && v >= 0.0;
        if tolerances && !(fine(o.rtol) && fine(o.atol) && o.rtol + o.atol > 0.0) {
            return Err(SolveError::invalid(
                "newton tolerances",
                format!(
                    "rtol = {}, atol = {} must be finite, >= 0 and not both 0",
                    o.rtol, o.atol
                ),
            ));
        }
        if !(o.kappa.is_finite() && o.kappa > 0.0) || o.max_iters == 0 {
            return Err(SolveError::invalid(
                "newton",
                format!(
                    "kappa = {} must be finite and > 0, max_iters = {} at least 1",
                    o.kappa, o.max_iters
                ),
            ));
        }
        if !(fine(o.reuse_rate) && fine(o.refactor_ratio)) {
            return Err(SolveError::invalid(
                "newton",
                format!(
                    "reuse_rate = {} and refactor_ratio = {} must be finite and >= 0",
                    o.reuse_rate, o.refactor_ratio
                ),
            ));
        }
        Ok(())
    }
}

/// An implicit equation `z = ψ + c f(t, z)`: an ESDIRK stage (`c = hγ`) or
/// a BDF step (`c = hα_k`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Implicit<'a> {
    /// The time at which `f` is evaluated.
    pub t: f64,
    /// The coefficient of `f`.
    pub c: f64,
    /// The explicit part `ψ`.
    pub psi: &'a [f64],
}

/// The simplified Newton iteration of a solve: the Jacobian it reuses, the
/// factorised iteration matrix `W = I − cJ`, the iterate and its buffers, and
/// what carries over from one equation to the next (the contraction estimate
/// `η`, and whether the last step's iterations contracted slowly).
#[derive(Debug, Clone)]
pub(crate) struct Newton {
    /// The iterate: the caller's initial guess in, the solution out.
    pub(crate) z: Vec<f64>,
    fz: Vec<f64>,
    delta: Vec<f64>,
    pub(crate) jac: JacobianCache,
    pub(crate) w: IterationMatrix,
    /// `η = θ/(1 − θ)` of the last equation solved.
    eta: f64,
    /// The last step's iterations contracted slowly (worst `θ` above
    /// [`NewtonOptions::reuse_rate`]).
    slow: bool,
}

impl Newton {
    /// The iteration for states of dimension `n`.
    pub(crate) fn new(n: usize) -> Self {
        Newton {
            z: vec![0.0; n],
            fz: vec![0.0; n],
            delta: vec![0.0; n],
            jac: JacobianCache::new(n),
            w: IterationMatrix::new(n),
            eta: 1.0,
            slow: false,
        }
    }

    /// Forgets the Jacobian, the factorisation and the rates (a new solve).
    pub(crate) fn reset(&mut self) {
        self.jac.valid = false;
        self.jac.fresh = false;
        self.w.invalidate();
        self.slow = false;
        self.eta = 1.0;
    }

    /// Solves `eq` by simplified Newton with the factorised `W`, from the
    /// iterate in [`Newton::z`], measuring increments with `norm(Δ, z)` (see
    /// the module docs for the convergence test). Returns the worst
    /// contraction rate, or `Err` when the iteration failed.
    pub(crate) fn iterate<F: Drift, G: Diffusion>(
        &mut self,
        fields: &Fields<'_, F, G>,
        eq: Implicit<'_>,
        opts: &NewtonOptions,
        norm: impl Fn(&[f64], &[f64]) -> f64,
        stats: &mut Stats,
    ) -> Result<f64, ()> {
        let Implicit { t, c, psi } = eq;
        let n = self.z.len();
        let mut theta_max: f64 = 0.0;
        let mut eta = self.eta.max(f64::EPSILON).powf(0.8);
        let mut nd_prev = 0.0;
        for it in 0..opts.max_iters {
            fields.f(t, &self.z, &mut self.fz, stats);
            stats.nonlinear_iterations += 1;
            for k in 0..n {
                self.delta[k] = psi[k] + c * self.fz[k] - self.z[k];
            }
            self.w.solve(&mut self.delta);
            let nd = norm(&self.delta, &self.z);
            if !nd.is_finite() {
                return Err(());
            }
            for k in 0..n {
                self.z[k] += self.delta[k];
            }
            if it > 0 {
                let theta = nd / nd_prev;
                if theta.is_nan() || theta >= 0.99 {
                    return Err(());
                }
                theta_max = theta_max.max(theta);
                eta = theta / (1.0 - theta);
                // the error predicted after the remaining iterations
                let left = (opts.max_iters - 1 - it) as i32;
                if eta * nd * theta.powi(left) > opts.kappa && left > 0 {
                    return Err(());
                }
            }
            if eta * nd <= opts.kappa {
                self.eta = eta;
                return Ok(theta_max);
            }
            nd_prev = nd;
        }
        Err(())
    }

    /// Solves the implicit equations of a step from `(t, y)` whose
    /// iteration matrix is `I − cJ`: forms `J` at `(t, y)` when there is none,
    /// or when it is not from this step's start and either `refresh` (the
    /// caller's reason, e.g. a retry after a failure) or the last step's
    /// iterations contracted slowly; refactorises `W` when `J` changed or `c`
    /// moved by more than [`NewtonOptions::refactor_ratio`] from the
    /// factorised one; then runs `solve` (which calls [`Newton::iterate`]).
    /// A failure with an old Jacobian re-forms it at `(t, y)` and tries
    /// again; with a fresh one the step fails (`false`). Forward differences
    /// also write `f(t, y)` into the first `n` entries of `f0`, which `solve`
    /// receives back.
    pub(crate) fn solve_step<F: Drift>(
        &mut self,
        (field, p, source): (&F, &[f64], JacobianSource),
        (t, y, c): (f64, &[f64], f64),
        opts: &NewtonOptions,
        refresh: bool,
        (f0, stats): (&mut [f64], &mut Stats),
        mut solve: impl FnMut(&mut Newton, &mut [f64], &mut Stats) -> Result<f64, ()>,
    ) -> bool {
        let n = self.z.len();
        let mut need_jac = !self.jac.valid || (!self.jac.fresh && (refresh || self.slow));
        let theta = loop {
            if need_jac {
                self.jac
                    .evaluate(field, p, source, t, y, &mut f0[..n], stats);
                self.w.invalidate();
            }
            let stale = !self.w.valid() || (c / self.w.hg - 1.0).abs() > opts.refactor_ratio;
            if stale {
                stats.lu_factorizations += 1;
                if !self.w.factor(&self.jac.jac, c) {
                    stats.nonlinear_failures += 1;
                    if self.jac.fresh {
                        return false;
                    }
                    need_jac = true;
                    continue;
                }
            }
            match solve(self, f0, stats) {
                Ok(theta) => break theta,
                Err(()) => {
                    stats.nonlinear_failures += 1;
                    self.eta = 1.0;
                    if self.jac.fresh {
                        return false;
                    }
                    need_jac = true;
                }
            }
        };
        self.slow = theta > opts.reuse_rate;
        true
    }
}

/// `W = I − hγJ` factorised in place: `P W = L U` with unit lower `L`.
#[derive(Debug, Clone)]
pub(crate) struct IterationMatrix {
    n: usize,
    /// `L` (below the diagonal) and `U`, column-major.
    lu: Vec<f64>,
    piv: Vec<usize>,
    /// `hγ` of the factorised matrix (NaN: none).
    pub(crate) hg: f64,
}

impl IterationMatrix {
    pub(crate) fn new(n: usize) -> Self {
        IterationMatrix {
            n,
            lu: vec![0.0; n * n],
            piv: vec![0; n],
            hg: f64::NAN,
        }
    }

    /// Whether a factorisation is held.
    pub(crate) fn valid(&self) -> bool {
        !self.hg.is_nan()
    }

    /// Forgets the factorisation.
    pub(crate) fn invalidate(&mut self) {
        self.hg = f64::NAN;
    }

    /// Forms `I − hg·J` (`jac` column-major `n × n`) and factorises it.
    /// Returns `false` (and holds no factorisation) when it is singular or
    /// not finite.
    pub(crate) fn factor(&mut self, jac: &[f64], hg: f64) -> bool {
        let n = self.n;
        for (o, &j) in self.lu.iter_mut().zip(jac) {
            *o = -hg * j;
        }
        for i in 0..n {
            self.lu[i * n + i] += 1.0;
        }
        if !self.lu.iter().all(|v| v.is_finite()) {
            self.hg = f64::NAN;
            return false;
        }
        let m = &mut self.lu;
        for i in 0..n {
            // partial pivoting: the largest entry of column i at or below i
            let mut piv = i;
            let mut best = m[i * n + i].abs();
            for r in i + 1..n {
                let v = m[i * n + r].abs();
                if v > best {
                    best = v;
                    piv = r;
                }
            }
            if best == 0.0 {
                self.hg = f64::NAN;
                return false;
            }
            self.piv[i] = piv;
            if piv != i {
                for c in 0..n {
                    m.swap(c * n + i, c * n + piv);
                }
            }
            let inv = 1.0 / m[i * n + i];
            for r in i + 1..n {
                m[i * n + r] *= inv;
            }
            for c in i + 1..n {
                let u = m[c * n + i];
                if u != 0.0 {
                    for r in i + 1..n {
                        m[c * n + r] -= m[i * n + r] * u;
                    }
                }
            }
        }
        self.hg = hg;
        true
    }

    /// Solves `W x = b` in place.
    pub(crate) fn solve(&self, b: &mut [f64]) {
        let n = self.n;
        let m = &self.lu;
        for i in 0..n {
            b.swap(i, self.piv[i]);
        }
        // L y = P b (unit diagonal), by columns
        for j in 0..n {
            let bj = b[j];
            if bj != 0.0 {
                let col = &m[j * n..(j + 1) * n];
                for i in j + 1..n {
                    b[i] -= col[i] * bj;
                }
            }
        }
        // U x = y
        for j in (0..n).rev() {
            let col = &m[j * n..(j + 1) * n];
            b[j] /= col[j];
            let bj = b[j];
            if bj != 0.0 {
                for i in 0..j {
                    b[i] -= col[i] * bj;
                }
            }
        }
    }

    /// Solves `Wᵀ x = b` in place (`Wᵀ = Uᵀ Lᵀ P`).
    pub(crate) fn solve_transposed(&self, b: &mut [f64]) {
        let n = self.n;
        let m = &self.lu;
        // Uᵀ z = b
        for j in 0..n {
            let col = &m[j * n..(j + 1) * n];
            let mut r = b[j];
            for i in 0..j {
                r -= col[i] * b[i];
            }
            b[j] = r / col[j];
        }
        // Lᵀ w = z
        for j in (0..n).rev() {
            let col = &m[j * n..(j + 1) * n];
            let mut r = b[j];
            for i in j + 1..n {
                r -= col[i] * b[i];
            }
            b[j] = r;
        }
        // x = Pᵀ w
        for i in (0..n).rev() {
            b.swap(i, self.piv[i]);
        }
    }
}

/// The Jacobian a solve reuses across steps.
#[derive(Debug, Clone)]
pub(crate) struct JacobianCache {
    n: usize,
    /// `∂f/∂y`, column-major.
    pub(crate) jac: Vec<f64>,
    /// Whether `jac` holds a Jacobian.
    pub(crate) valid: bool,
    /// Whether `jac` was formed at the current step's start.
    pub(crate) fresh: bool,
    /// Whether the field gave an exact Jacobian (`None`: not asked yet).
    exact: Option<bool>,
    /// Perturbed state and drift of finite differences.
    yp: Vec<f64>,
    fp: Vec<f64>,
}

impl JacobianCache {
    pub(crate) fn new(n: usize) -> Self {
        JacobianCache {
            n,
            jac: vec![0.0; n * n],
            valid: false,
            fresh: false,
            exact: None,
            yp: vec![0.0; n],
            fp: vec![0.0; n],
        }
    }

    /// Forms `∂f/∂y` at `(t, y)`: the field's own Jacobian when it has one
    /// and `source` allows it, else forward differences (`n + 1` drift
    /// evaluations; column `j` with the step
    /// `δ_j = √(ε · max(10⁻⁵, |y_j|))` of RADAU5, exactly representable),
    /// which also write `f(t, y)` into `f0`. Returns whether `f0` was
    /// written.
    pub(crate) fn evaluate<F: Drift>(
        &mut self,
        field: &F,
        p: &[f64],
        source: JacobianSource,
        t: f64,
        y: &[f64],
        f0: &mut [f64],
        stats: &mut Stats,
    ) -> bool {
        let n = self.n;
        stats.jacobian_evals += 1;
        self.valid = true;
        self.fresh = true;
        if source == JacobianSource::Auto && self.exact != Some(false) {
            let ok = field.jacobian(t, y, p, &mut self.jac);
            self.exact = Some(ok);
            if ok {
                return false;
            }
        }
        stats.drift_evals += 1;
        field.drift(t, y, p, f0);
        self.yp.copy_from_slice(y);
        for j in 0..n {
            let yj = y[j];
            let step = (f64::EPSILON * yj.abs().max(1e-5)).sqrt();
            let yh = yj + step;
            let delta = yh - yj;
            self.yp[j] = yh;
            stats.drift_evals += 1;
            field.drift(t, &self.yp, p, &mut self.fp);
            self.yp[j] = yj;
            let col = &mut self.jac[j * n..(j + 1) * n];
            for i in 0..n {
                col[i] = (self.fp[i] - f0[i]) / delta;
            }
        }
        true
    }
}

/// Scaled RMS norm of a Newton increment `d` at the iterate `y`.
#[inline]
pub(crate) fn newton_norm(d: &[f64], y: &[f64], opts: &NewtonOptions) -> f64 {
    let n = d.len();
    let mut acc = 0.0;
    for i in 0..n {
        let q = d[i] / (opts.atol + opts.rtol * y[i].abs());
        acc += q * q;
    }
    (acc / n as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lu_solves_plain_and_transposed() {
        // a matrix that needs pivoting
        let n = 4;
        let jac: Vec<f64> = (0..n * n)
            .map(|k| ((k * 7 + 3) % 11) as f64 - 5.0 + if k % 5 == 0 { 0.5 } else { 0.0 })
            .collect();
        let hg = 0.7;
        let mut w = IterationMatrix::new(n);
        assert!(w.factor(&jac, hg));
        // W = I − hg J, column-major
        let wm = |i: usize, j: usize| (if i == j { 1.0 } else { 0.0 }) - hg * jac[i + j * n];
        let b = [1.0, -2.0, 0.5, 3.0];
        let mut x = b;
        w.solve(&mut x);
        for i in 0..n {
            let r: f64 = (0..n).map(|j| wm(i, j) * x[j]).sum();
            assert!((r - b[i]).abs() < 1e-12, "row {i}: {r} vs {}", b[i]);
        }
        let mut x = b;
        w.solve_transposed(&mut x);
        for i in 0..n {
            let r: f64 = (0..n).map(|j| wm(j, i) * x[j]).sum();
            assert!((r - b[i]).abs() < 1e-12, "row {i}: {r} vs {}", b[i]);
        }
    }

    #[test]
    fn singular_and_nonfinite_matrices_are_reported() {
        let mut w = IterationMatrix::new(2);
        // I − 1·I = 0
        assert!(!w.factor(&[1.0, 0.0, 0.0, 1.0], 1.0));
        assert!(!w.valid());
        assert!(!w.factor(&[f64::NAN, 0.0, 0.0, 1.0], 0.1));
        assert!(w.factor(&[1.0, 0.0, 0.0, 1.0], 0.5));
        assert!(w.valid());
    }

    #[test]
    fn finite_difference_jacobian_is_accurate() {
        let f = |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| {
            dy[0] = p[0] * y[0] * y[1];
            dy[1] = y[0].sin() - y[1] * y[1];
        };
        let y = [0.3, -1.2];
        let mut jc = JacobianCache::new(2);
        let mut f0 = [0.0; 2];
        let mut stats = Stats::default();
        assert!(jc.evaluate(
            &f,
            &[2.0],
            JacobianSource::Auto,
            0.0,
            &y,
            &mut f0,
            &mut stats
        ));
        let exact = [2.0 * y[1], y[0].cos(), 2.0 * y[0], -2.0 * y[1]];
        for k in 0..4 {
            assert!((jc.jac[k] - exact[k]).abs() < 1e-6, "{k}");
        }
        assert_eq!(stats.drift_evals, 3);
        assert_eq!(stats.jacobian_evals, 1);
    }
}
