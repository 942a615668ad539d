//! Continuous adjoints of ODEs (Chen, Rubanova, Bettencourt, Duvenaud,
//! "Neural ordinary differential equations", NeurIPS 2018, Alg. 1–2;
//! SciMLSensitivity's `BacksolveAdjoint` / `InterpolatingAdjoint`).
//!
//! Backward in time, between consecutive save times,
//! `da/dt = −a ∂f/∂y`, `da_p/dt = −a ∂f/∂p`, with `a(t1) = ∂L/∂y(t1)` and a
//! jump `+∂L/∂y(t_k)` at every save time; `dL/dy0 = a(t0)` and
//! `dL/dp = a_p(t0)` (the parameter integral accumulated as a quadrature
//! along the backward solve). The state `y(t)` the adjoint needs comes from
//! integrating `y` backwards alongside (`Backsolve`, memory independent of
//! the number of steps, unreliable when the forward flow contracts strongly)
//! or from the forward solve's dense output (`Interpolating`, stable, memory
//! O(steps)). Both give the gradient of the exact solution map up to the
//! tolerances of the two solves — they converge to the true gradient as the
//! tolerances tighten, unlike the discrete adjoint, which is exact for the
//! computed solution.
//!
//! # Stiff problems: `Bdf`
//!
//! `Bdf` (variable-order BDF/NDF, in the generic loop) has a discrete
//! adjoint (its history as carried state); its continuous gradient is the
//! interpolating adjoint
//! ([`Request::stiff_interpolating`]),
//! with the backward solve made stiff as in CVODES (Hindmarsh et al.,
//! "SUNDIALS: Suite of nonlinear and differential/algebraic equation
//! solvers", ACM TOMS 31 (2005); Serban & Hindmarsh, "CVODES: the
//! sensitivity-enabled ODE solver in SUNDIALS", ASME IDETC 2005): the
//! adjoint ODE of a stiff problem is stiff too — backwards in time, with the
//! eigenvalues of `−(∂f/∂y)ᵀ` — so an explicit backward solve would need
//! steps on the fastest time scale. The forward pass is one `Bdf` solve with
//! `SaveAt::Dense`: its dense output is BDF's own interpolant, per step the
//! polynomial through the last `k + 1` solution values that its history
//! represents (no extra drift evaluation), accurate to the order of the
//! step's local error, so the
//! interpolated `y(t)` adds an error of the order of the forward tolerance
//! to the gradient. The backward pass solves `[a, a_p]` from `t1` to `t0`
//! with the native `Esdirk34` (L-stable, one-step: it restarts at every
//! save time at full order). The system is linear in `[a, a_p]`, with the
//! Jacobian `[[−(∂f/∂y)ᵀ, 0], [−(∂f/∂p)ᵀ, 0]]` at `y(t)`, which
//! [`AdjointRhs`] assembles exactly from `n` VJPs with unit vectors (so the
//! simplified Newton iteration converges in one or two iterations). The
//! user's `rtol` and `atol` govern the backward solve (per component, `a_k`
//! as `y_k`, and their smallest entries for `a_p`) and its Newton iteration
//! (their smallest entries). This is SciMLSensitivity's `InterpolatingAdjoint`
//! (Rackauckas et al., "Universal differential equations for scientific
//! machine learning", arXiv:2001.04385, 2020) with the stiff backward solve
//! of CVODES (which integrates the backward problem by BDF and reads the
//! forward state from interpolated checkpoints). Measured against central
//! finite differences in `tests/suite/stiff_gradients.rs` (see
//! `docs/gradients.md`).

use std::cell::{Cell, RefCell};

use sdeflow_solvers::brownian::Driver;
use sdeflow_solvers::integrate::{StepObserver, integrate_observed};
use sdeflow_solvers::solver::OdeProblem;
use sdeflow_solvers::{
    Method, controller::Controller, error::SolveError, field::Drift, field::DriftVjp,
    field::NoDiffusion, options::Options, options::SaveAt, options::Tolerance, problem::Problem,
    solution::Solution, solve, solver::Solver, stiff::Esdirk34,
};

/// Keeps the state after the last accepted step.
struct LastState(Vec<f64>);

impl StepObserver for LastState {
    fn accepted(&mut self, _m: usize, _t: f64, _t_next: f64, _y: &[f64], y_next: &[f64]) {
        self.0.copy_from_slice(y_next);
    }
}

/// The values `save_at` asks for, read from a dense solution.
fn saved_view(dense: &Solution, save_at: &SaveAt) -> Result<Solution, SolveError> {
    let n = dense.n;
    let (ts, ys) = match save_at {
        SaveAt::Steps | SaveAt::Dense => (dense.ts.clone(), dense.ys.clone()),
        SaveAt::T1 => (vec![dense.ts[dense.len() - 1]], dense.last().to_vec()),
        SaveAt::Times(times) => {
            let mut ys = vec![0.0; times.len() * n];
            for (i, &t) in times.iter().enumerate() {
                dense.at_into(t, &mut ys[i * n..(i + 1) * n])?;
            }
            (times.clone(), ys)
        }
    };
    Ok(Solution {
        ts,
        ys,
        n,
        stats: dense.stats,
        status: dense.status,
        solver: dense.solver.clone(),
        dense: match save_at {
            SaveAt::Dense => dense.dense.clone(),
            _ => None,
        },
        brownian: None,
    })
}

use crate::differentiable::Request;
use crate::loss::Loss;
use crate::{GradError, Gradient};

/// Where the backward pass gets `y(t)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateSource {
    /// Integrated backwards with the adjoint.
    Backsolve,
    /// The forward dense output.
    Interpolating,
}

/// The state the backward pass starts from.
enum Backward {
    /// `y(t1)`, integrated backwards with the adjoint.
    Backsolve(Vec<f64>),
    /// The forward dense solution, read at every backward evaluation.
    Interpolating(Box<Solution>),
}

/// Work buffers of [`AdjointRhs`].
struct Scratch {
    y: Vec<f64>,
    ay: Vec<f64>,
    ap: Vec<f64>,
    unit: Vec<f64>,
}

/// The right-hand side of the backward system on `u = [y (backsolve
/// only), a, a_p]`: `[f, −a ∂f/∂y, −a ∂f/∂p]`, one VJP per evaluation.
/// With the state interpolated, the system is linear in `u` and its
/// Jacobian, `[[−(∂f/∂y)ᵀ, 0], [−(∂f/∂p)ᵀ, 0]]`, is assembled from `n`
/// VJPs with unit vectors ([`Drift::jacobian`]), for a stiff backward solve.
/// (Implemented on the reference: each segment's problem borrows it.)
pub(crate) struct AdjointRhs<'a, F> {
    field: &'a F,
    params: &'a [f64],
    n: usize,
    /// `n` with the state in `u` (backsolve), else 0.
    off: usize,
    dense: Option<&'a Solution>,
    scratch: RefCell<Scratch>,
    vjps: Cell<usize>,
}

/// A method that integrates the continuous adjoints' backward system (as
/// every ODE method does, for any drift).
pub(crate) trait BackwardMethod<F>:
    for<'r> Method<OdeProblem<&'r AdjointRhs<'r, F>>>
{
}

impl<F, M: for<'r> Method<OdeProblem<&'r AdjointRhs<'r, F>>>> BackwardMethod<F> for M {}

impl<'a, F> AdjointRhs<'a, F> {
    /// The backward system of `field` with parameters `params`, a state of
    /// dimension `n` of which `off` leading entries are in `u`, and the
    /// forward dense solution if interpolating.
    fn new(
        field: &'a F,
        params: &'a [f64],
        (n, off): (usize, usize),
        dense: Option<&'a Solution>,
    ) -> Self {
        AdjointRhs {
            field,
            params,
            n,
            off,
            dense,
            scratch: RefCell::new(Scratch {
                y: vec![0.0; n],
                ay: vec![0.0; n],
                ap: vec![0.0; params.len()],
                unit: vec![0.0; n],
            }),
            vjps: Cell::new(0),
        }
    }
}

impl<F: DriftVjp> Drift for &AdjointRhs<'_, F> {
    fn drift(&self, t: f64, u: &[f64], _p: &[f64], du: &mut [f64]) {
        let (n, off) = (self.n, self.off);
        let mut s = self.scratch.borrow_mut();
        let Scratch { y, ay, ap, .. } = &mut *s;
        let y_src: &[f64] = if off > 0 {
            &u[..n]
        } else {
            if let Some(d) = self.dense {
                // t is inside the solved span; a failure leaves the last value
                let _ = d.at_into(t, y);
            }
            y
        };
        if off > 0 {
            self.field.drift(t, y_src, self.params, &mut du[..n]);
        }
        ay.iter_mut().for_each(|v| *v = 0.0);
        ap.iter_mut().for_each(|v| *v = 0.0);
        self.vjps.set(self.vjps.get() + 1);
        self.field
            .drift_vjp(t, y_src, self.params, &u[off..off + n], ay, ap);
        for k in 0..n {
            du[off + k] = -ay[k];
        }
        for j in 0..ap.len() {
            du[off + n + j] = -ap[j];
        }
    }

    fn jacobian(&self, t: f64, u: &[f64], _p: &[f64], jac: &mut [f64]) -> bool {
        // only the interpolating system (linear in u); backsolve's would
        // need second derivatives of f
        let (Some(d), 0) = (self.dense, self.off) else {
            return false;
        };
        let n = self.n;
        let m = u.len();
        let mut s = self.scratch.borrow_mut();
        let Scratch { y, ay, ap, unit } = &mut *s;
        let _ = d.at_into(t, y);
        jac.iter_mut().for_each(|v| *v = 0.0);
        // column j (∂/∂a_j) is −(row j of ∂f/∂y, row j of ∂f/∂p): the VJP
        // with the unit vector e_j
        for j in 0..n {
            unit.iter_mut().for_each(|v| *v = 0.0);
            unit[j] = 1.0;
            ay.iter_mut().for_each(|v| *v = 0.0);
            ap.iter_mut().for_each(|v| *v = 0.0);
            self.vjps.set(self.vjps.get() + 1);
            self.field.drift_vjp(t, y, self.params, unit, ay, ap);
            let col = &mut jac[j * m..(j + 1) * m];
            for i in 0..n {
                col[i] = -ay[i];
            }
            for (c, v) in col[n..].iter_mut().zip(ap.iter()) {
                *c = -v;
            }
        }
        true
    }
}

/// The tolerance of the backward system `[y (off = n entries, backsolve
/// only), a (n), a_p (np)]` from the user's `tol` on `y`: a scalar stays
/// as it is; per-component tolerances apply to `y` and to `a` component by
/// component (`a_k` is `∂L/∂y_k`, on the scale of the loss over `y_k`'s),
/// and their smallest entry to `a_p`.
fn augmented(tol: &Tolerance, (off, n, np): (usize, usize, usize)) -> Tolerance {
    match tol {
        Tolerance::Scalar(v) => Tolerance::Scalar(*v),
        Tolerance::Vector(v) => {
            let least = smallest(tol);
            let mut out = Vec::with_capacity(off + n + np);
            if off > 0 {
                out.extend_from_slice(v);
            }
            out.extend_from_slice(v);
            out.resize(off + n + np, least);
            Tolerance::Vector(out)
        }
    }
}

/// The smallest entry of a tolerance (the value itself for a scalar).
fn smallest(tol: &Tolerance) -> f64 {
    match tol {
        Tolerance::Scalar(v) => *v,
        Tolerance::Vector(v) => v.iter().copied().fold(f64::INFINITY, f64::min),
    }
}

impl<F: DriftVjp, D: Driver, L: Loss + ?Sized> Request<'_, F, NoDiffusion, D, L> {
    /// The continuous adjoint with `source` (see [`crate::grad`]), the forward
    /// and the backward solve both with `solver` (an explicit or native
    /// one-step method, run in the generic loop).
    pub(crate) fn continuous<S: Solver<OdeProblem<F, D>> + BackwardMethod<F> + Copy>(
        &self,
        solver: &S,
        source: StateSource,
    ) -> Result<Gradient, GradError> {
        let (problem, options, loss) = (self.problem, self.options, self.loss);
        // one forward solve: dense when the backward pass interpolates (the
        // user's saved values are read from it), else as asked, with the final
        // state recorded on the way
        let mut last = LastState(problem.y0.clone());
        let (sol, state) = match source {
            StateSource::Interpolating => {
                let dense = integrate_observed(
                    problem,
                    solver,
                    &options.clone().save_at(SaveAt::Dense),
                    &mut last,
                )?;
                (
                    saved_view(&dense, &options.save_at)?,
                    Backward::Interpolating(Box::new(dense)),
                )
            }
            StateSource::Backsolve => (
                integrate_observed(problem, solver, options, &mut last)?,
                Backward::Backsolve(last.0),
            ),
        };
        let (value, gy) = crate::loss::evaluate(loss, &sol)?;
        let off = match source {
            StateSource::Backsolve => problem.dim(),
            StateSource::Interpolating => 0,
        };
        let layout = (off, problem.dim(), problem.params.len());
        let opts = Options {
            save_at: SaveAt::T1,
            dt0: None,
            rtol: augmented(&options.rtol, layout),
            atol: augmented(&options.atol, layout),
            ..options.clone()
        };
        backward_pass(problem, sol, value, &gy, state, *solver, &opts)
    }

    /// The interpolating adjoint of a solver without a step VJP (`Bdf`,
    /// whose steps depend on its multistep history), with a stiff backward
    /// solve: the forward
    /// solve with `solver` and `SaveAt::Dense` (the user's saved values are
    /// read from its dense output), then `[a, a_p]` backwards by the native
    /// `Esdirk34` (L-stable, so the adjoint's fast modes — stiff backwards in
    /// time exactly as the forward ones are forwards — cost no tiny steps), with
    /// the exact Jacobian of the adjoint system assembled from `n` VJPs. The
    /// backward solve runs at the user's `rtol` and `atol` (per component,
    /// `a_k` as `y_k`, their smallest entries for `a_p`), whose smallest
    /// entries also set its Newton tolerances (scalars in `Esdirk34`), with the default adaptive controller (the
    /// backward solve adapts its steps whatever controller the forward one
    /// used) and the user's `dt_min`, `dt_max` and `max_steps`.
    pub(crate) fn stiff_interpolating<M: Method<OdeProblem<F, D>> + BackwardMethod<F> + Copy>(
        &self,
        solver: &M,
    ) -> Result<Gradient, GradError> {
        let (problem, options, loss) = (self.problem, self.options, self.loss);
        let dense = solve(problem, *solver, options.clone().save_at(SaveAt::Dense))?;
        let sol = saved_view(&dense, &options.save_at)?;
        let (value, gy) = crate::loss::evaluate(loss, &sol)?;
        let (rtol, atol) = (smallest(&options.rtol), smallest(&options.atol));
        let layout = (0, problem.dim(), problem.params.len());
        let opts = Options {
            save_at: SaveAt::T1,
            dt0: None,
            controller: Controller::default(),
            rtol: augmented(&options.rtol, layout),
            atol: augmented(&options.atol, layout),
            ..options.clone()
        };
        let backward = Esdirk34::default().tolerances(rtol, atol);
        backward_pass(
            problem,
            sol,
            value,
            &gy,
            Backward::Interpolating(Box::new(dense)),
            backward,
            &opts,
        )
    }
}

/// Integrates the adjoint system backwards from `t1` to `t0` with `solver`
/// under `opts`, segment by segment between the saved times (adding
/// `∂L/∂y(t_k)` to `a` at each), and returns the gradient.
fn backward_pass<F, D, M>(
    problem: &Problem<F, NoDiffusion, D>,
    sol: Solution,
    value: f64,
    gy: &[f64],
    state: Backward,
    solver: M,
    opts: &Options,
) -> Result<Gradient, GradError>
where
    F: DriftVjp,
    D: Driver,
    M: BackwardMethod<F> + Copy,
{
    let n = problem.dim();
    let np = problem.params.len();
    let (t0, t1) = problem.tspan;
    // backward segments: between save times, from t1 down to t0
    let mut marks: Vec<f64> = sol.ts.clone();
    marks.push(t1);
    marks.push(t0);
    let dir = (t1 - t0).signum();
    marks.sort_by(|a, b| (b * dir).total_cmp(&(a * dir)));
    marks.dedup();
    // augmented state: [y (backsolve only), a, a_p]
    let (off, y1, dense) = match &state {
        Backward::Backsolve(y1) => (n, y1.as_slice(), None),
        Backward::Interpolating(d) => (0, &[][..], Some(&**d)),
    };
    let mut u = vec![0.0; off + n + np];
    u[..off].copy_from_slice(y1);
    let rhs = AdjointRhs::new(&problem.drift, &problem.params, (n, off), dense);
    let mut backward_evals = 0;
    let add_jump = |u: &mut [f64], t: f64| {
        for (i, &ts) in sol.ts.iter().enumerate() {
            if ts == t {
                for k in 0..n {
                    u[off + k] += gy[i * n + k];
                }
            }
        }
    };
    for w in marks.windows(2) {
        let (ta, tb) = (w[0], w[1]);
        add_jump(&mut u, ta);
        let back = Problem::ode_field(&rhs, u.clone(), (ta, tb));
        let b =
            solve(&back, solver, segment_options(opts, (ta, tb))).map_err(GradError::Backward)?;
        backward_evals += b.stats.drift_evals;
        u.copy_from_slice(b.last());
    }
    add_jump(&mut u, t0);
    if off > 0 {
        check_reconstruction(&problem.y0, &u[..n], opts)?;
    }
    Ok(Gradient {
        loss: value,
        dp: u[off + n..].to_vec(),
        dy0: u[off..off + n].to_vec(),
        solution: sol,
        vjps: rhs.vjps.get(),
        backward_drift_evals: backward_evals,
        peak_stored_states: match dense {
            Some(d) => d.len(),
            None => 1,
        },
    })
}

/// Checks `Backsolve`'s reconstructed initial state `y_rec` against `y0`:
/// the RMS over the components of `(y_rec − y0) / (atol + rtol·|y0|)`
/// must not exceed [`crate::RECONSTRUCTION_LIMIT`], or the backward
/// solve of the state was unstable and the gradient read along it is not
/// to be trusted ([`GradError::Reconstruction`]).
fn check_reconstruction(y0: &[f64], y_rec: &[f64], opts: &Options) -> Result<(), GradError> {
    let n = y0.len();
    let scaled = |k: usize| {
        let w = opts.atol.get(k) + opts.rtol.get(k) * y0[k].abs();
        ((y_rec[k] - y0[k]) / w).abs()
    };
    let norm = ((0..n).map(|k| scaled(k).powi(2)).sum::<f64>() / n as f64).sqrt();
    if norm <= crate::RECONSTRUCTION_LIMIT {
        return Ok(());
    }
    // (a NaN norm fails the test above and lands here too)
    let component = (0..n)
        .max_by(|&a, &b| scaled(a).total_cmp(&scaled(b)))
        .unwrap_or(0);
    Err(GradError::Reconstruction {
        component,
        reconstructed: y_rec[component],
        y0: y0[component],
        norm,
    })
}

/// `opts` for the backward segment from `ta` to `tb`: of the forward
/// solve's step times and discontinuities (the adjoint system's drift jumps
/// where the forward one does), those strictly inside it, in its direction.
fn segment_options(opts: &Options, (ta, tb): (f64, f64)) -> Options {
    let (lo, hi) = (ta.min(tb), ta.max(tb));
    let inside = |times: &[f64]| -> Vec<f64> {
        times
            .iter()
            .rev()
            .copied()
            .filter(|&t| t > lo && t < hi)
            .collect()
    };
    Options {
        step_to: inside(&opts.step_to),
        discontinuities: inside(&opts.discontinuities),
        ..opts.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdeflow_solvers::dual::{DualNum, Generic, GenericField};
    use sdeflow_solvers::erk::Tsit5;

    struct LotkaVolterra;
    impl GenericField for LotkaVolterra {
        fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
            dy[0] = p[0] * y[0] - p[1] * y[0] * y[1];
            dy[1] = -p[2] * y[1] + p[3] * y[0] * y[1];
        }
    }

    /// The interpolating adjoint system is linear in `u`, so column `j` of
    /// its assembled Jacobian is the right-hand side at the unit vector
    /// `e_j`: `[−row j of ∂f/∂y, −row j of ∂f/∂p]` for `j < n`, zero for the
    /// `a_p` columns.
    #[test]
    fn assembled_jacobian_is_the_linear_adjoint_system() {
        let problem = Problem::ode_field(Generic(LotkaVolterra), vec![1.0, 1.0], (0.0, 2.0))
            .params(vec![1.5, 1.0, 3.0, 1.0]);
        let dense = solve(
            &problem,
            Tsit5,
            Options::default().tol(1e-8).save_at(SaveAt::Dense),
        )
        .expect("forward");
        let (n, np) = (2, 4);
        let m = n + np;
        let rhs = AdjointRhs::new(&problem.drift, &problem.params, (n, 0), Some(&dense));
        let rhs = &rhs;
        let t = 1.3;
        let u: Vec<f64> = (0..m).map(|i| 0.3 + 0.7 * i as f64).collect();
        let mut jac = vec![f64::NAN; m * m];
        assert!(rhs.jacobian(t, &u, &[], &mut jac));
        assert_eq!(rhs.vjps.get(), n);
        let mut e = vec![0.0; m];
        let mut col = vec![0.0; m];
        for j in 0..m {
            e.iter_mut().for_each(|v| *v = 0.0);
            e[j] = 1.0;
            rhs.drift(t, &e, &[], &mut col);
            for i in 0..m {
                let (a, b) = (jac[j * m + i], col[i]);
                assert!(
                    (a - b).abs() <= 1e-14 * b.abs().max(1.0),
                    "J[{i},{j}] {a} vs {b}"
                );
            }
            if j >= n {
                assert!(col.iter().all(|&v| v == 0.0));
            }
        }
        // ∂(du_n+l)/∂a_0 = −∂f_0/∂p_l: f_0 = p0 y0 − p1 y0 y1
        let mut y = vec![0.0; n];
        dense.at_into(t, &mut y).expect("inside the span");
        assert!((jac[n] + y[0]).abs() < 1e-14);
        assert!((jac[n + 1] - y[0] * y[1]).abs() < 1e-14);
    }
}
