//! What the step VJPs of the implicit methods share (`esdirk.rs`,
//! `bdf.rs`): the exact Jacobian `∂f/∂y` at a point — the field's own
//! ([`Drift::jacobian`]) or assembled from `n` VJPs with the unit vectors —
//! the factorisation of `I − c·J`, and the solution of one implicit
//! equation `z = ψ + c f(t, z)` to round-off by Newton with that exact
//! Jacobian at every iterate. A step VJP by the implicit-function theorem
//! treats the converged `z` as the equation's exact solution (Hager,
//! Numer. Math. 87 (2000); Sandu, ICCS 2006), so it recomputes it here
//! rather than reusing the forward iteration's, which stopped at the
//! solve's tolerance.

use crate::field::DriftVjp;
use crate::solution::Stats;
use crate::stiff::newton::IterationMatrix;

/// Most Newton iterations of an implicit equation solved to round-off.
const CONVERGE_ITERS: usize = 50;

/// The exact Jacobian `∂f/∂y` of a step's VJP and the factorisation of
/// `I − c·J`, with the scratch that assembles `J` from VJPs.
#[derive(Debug, Clone)]
pub(super) struct ExactJacobian {
    jac: Vec<f64>,
    /// The factorised `I − c·J`.
    pub(super) w: IterationMatrix,
    /// Scratch of length `n` (a Jacobian row, or any VJP's `∂/∂y` part).
    pub(super) row: Vec<f64>,
    unit: Vec<f64>,
    p_scratch: Vec<f64>,
}

impl ExactJacobian {
    /// Workspace for a state of dimension `n` with `n_params` parameters.
    pub(super) fn new(n: usize, n_params: usize) -> Self {
        ExactJacobian {
            jac: vec![0.0; n * n],
            w: IterationMatrix::new(n),
            row: vec![0.0; n],
            unit: vec![0.0; n],
            p_scratch: vec![0.0; n_params],
        }
    }

    /// Evaluates the exact Jacobian at `(t, y)` — the field's own
    /// ([`crate::field::Drift::jacobian`]) when it has one, else assembled row by
    /// row from `n` VJPs with the unit vectors (`e_rᵀ ∂f/∂y` is row `r`) —
    /// and factorises `I − c·J`; `false` when that matrix is singular.
    pub(super) fn factor_at<F: DriftVjp>(
        &mut self,
        field: &F,
        p: &[f64],
        (t, y): (f64, &[f64]),
        c: f64,
        stats: &mut Stats,
    ) -> bool {
        let n = y.len();
        stats.jacobian_evals += 1;
        if !field.jacobian(t, y, p, &mut self.jac) {
            self.unit.iter_mut().for_each(|v| *v = 0.0);
            for r in 0..n {
                self.unit[r] = 1.0;
                self.row.iter_mut().for_each(|v| *v = 0.0);
                field.drift_vjp(t, y, p, &self.unit, &mut self.row, &mut self.p_scratch);
                self.unit[r] = 0.0;
                for j in 0..n {
                    self.jac[r + j * n] = self.row[j];
                }
            }
        }
        stats.lu_factorizations += 1;
        self.w.factor(&self.jac, c)
    }

    /// Solves `z = ψ + c f(t, z)` to round-off from the initial guess in
    /// `z` (Newton with the exact Jacobian at every iterate), `fz` and
    /// `delta` scratch of length `n`; `Err` says why it did not converge.
    pub(super) fn converge<F: DriftVjp>(
        &mut self,
        (field, p): (&F, &[f64]),
        (t, c): (f64, f64),
        psi: &[f64],
        (z, fz, delta): (&mut [f64], &mut [f64], &mut [f64]),
        stats: &mut Stats,
    ) -> Result<(), String> {
        let n = z.len();
        let mut nd_prev = f64::INFINITY;
        for _ in 0..CONVERGE_ITERS {
            stats.drift_evals += 1;
            field.drift(t, z, p, fz);
            stats.nonlinear_iterations += 1;
            if !self.factor_at(field, p, (t, z), c, stats) {
                return Err("singular iteration matrix".into());
            }
            let mut nd: f64 = 0.0;
            for k in 0..n {
                delta[k] = psi[k] + c * fz[k] - z[k];
            }
            self.w.solve(delta);
            for k in 0..n {
                let scale = psi[k].abs() + (c * fz[k]).abs() + z[k].abs() + 1e-300;
                nd = nd.max(delta[k].abs() / scale);
                z[k] += delta[k];
            }
            if !nd.is_finite() {
                return Err("non-finite iterate".into());
            }
            // converged to round-off, or stagnating there
            if nd <= 1e-15 || (nd <= 1e-10 && nd >= 0.5 * nd_prev) {
                return Ok(());
            }
            nd_prev = nd;
        }
        Err(format!(
            "no convergence in {CONVERGE_ITERS} Newton iterations"
        ))
    }
}
