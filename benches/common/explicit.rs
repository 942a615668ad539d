//! The non-stiff test problems of the report benches and how diffsol's
//! explicit `tsit45` is run on them (`set_stop_time` and `step()` until the
//! stop, no storage of intermediate steps).
#![allow(dead_code)]

use diffsol::{
    DiffsolError, NalgebraMat, NalgebraVec, OdeBuilder, OdeEquations, OdeSolverMethod,
    OdeSolverStopReason, Op, Vector,
};
use sdeflow::prelude::*;

use crate::common::{ARENSTORF_T, ARENSTORF_Y0, LV_PARAMS, LV_REF, LV_TSPAN, LV_Y0, arenstorf_rhs};

/// Matrix type of the diffsol problems.
pub type DMat = NalgebraMat<f64>;
/// Vector type of the diffsol problems.
pub type DVec = NalgebraVec<f64>;

/// Step budget of every solve (large enough for Heun at 1e-8 on Arenstorf).
pub const MAX_STEPS: usize = 10_000_000;

/// A non-stiff test problem; its right-hand side is a plain function so that
/// sdeflow and diffsol evaluate exactly the same code.
pub trait Case {
    const NAME: &'static str;
    const T1: f64;
    const Y0: &'static [f64];
    const PARAMS: &'static [f64];
    /// The reference `y(T1)`.
    const REFERENCE: &'static [f64];
    fn rhs(y: &[f64], p: &[f64], dy: &mut [f64]);
}

/// Lotka–Volterra, α=1.5, β=1, γ=3, δ=1, y0=(1, 1) on [0, 10].
pub struct LotkaVolterra;

impl Case for LotkaVolterra {
    const NAME: &'static str = "Lotka–Volterra";
    const T1: f64 = LV_TSPAN.1;
    const Y0: &'static [f64] = &LV_Y0;
    const PARAMS: &'static [f64] = &LV_PARAMS;
    const REFERENCE: &'static [f64] = &LV_REF;
    #[inline(always)]
    fn rhs(y: &[f64], p: &[f64], dy: &mut [f64]) {
        dy[0] = p[0] * y[0] - p[1] * y[0] * y[1];
        dy[1] = -p[2] * y[1] + p[3] * y[0] * y[1];
    }
}

/// The Arenstorf orbit over one period; the exact solution returns to y0.
pub struct Arenstorf;

impl Case for Arenstorf {
    const NAME: &'static str = "Arenstorf";
    const T1: f64 = ARENSTORF_T;
    const Y0: &'static [f64] = &ARENSTORF_Y0;
    const PARAMS: &'static [f64] = &[];
    const REFERENCE: &'static [f64] = &ARENSTORF_Y0;
    #[inline(always)]
    fn rhs(u: &[f64], _p: &[f64], du: &mut [f64]) {
        arenstorf_rhs(u, du)
    }
}

/// Kepler's two-body problem `q'' = −q/|q|³` with eccentricity 0.6 over two
/// periods (t ∈ [0, 4π]): q(0) = (1 − e, 0), p(0) = (0, √((1+e)/(1−e))), and
/// the exact solution returns to the initial state after every period 2π
/// (HNW I §I.2; `/work/shared/reference/test_problems.md`, problem 4).
pub struct Kepler;

impl Case for Kepler {
    const NAME: &'static str = "Kepler e=0.6";
    const T1: f64 = 4.0 * std::f64::consts::PI;
    const Y0: &'static [f64] = &[0.4, 0.0, 0.0, 2.0];
    const PARAMS: &'static [f64] = &[];
    const REFERENCE: &'static [f64] = &[0.4, 0.0, 0.0, 2.0];
    #[inline(always)]
    fn rhs(u: &[f64], _p: &[f64], du: &mut [f64]) {
        let r2 = u[0] * u[0] + u[1] * u[1];
        let r3 = r2 * r2.sqrt();
        du[0] = u[2];
        du[1] = u[3];
        du[2] = -u[0] / r3;
        du[3] = -u[1] / r3;
    }
}

/// The sdeflow problem of a [`Case`].
pub fn sdeflow_problem<C: Case>() -> Problem<impl Drift> {
    Problem::ode(
        |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| C::rhs(y, p, dy),
        C::Y0.to_vec(),
        (0.0, C::T1),
    )
    .params(C::PARAMS.to_vec())
}

/// What a diffsol step loop returns.
pub struct DiffsolOutcome {
    /// The state at the end.
    pub y: Vec<f64>,
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected steps (error-test and Newton failures).
    pub rejected: usize,
    /// Linear solver setups (LU factorisations).
    pub lu: usize,
    /// Right-hand side evaluations.
    pub nfe: usize,
}

/// Steps `solver` to `t1` with `set_stop_time` and `step()` (no storage of
/// intermediate steps); `nfe` is left 0.
pub fn step_to_end<'a, Eqn, S>(mut solver: S, t1: f64) -> Result<DiffsolOutcome, DiffsolError>
where
    Eqn: OdeEquations + Op<T = f64, V = DVec> + 'a,
    S: OdeSolverMethod<'a, Eqn>,
{
    solver.set_stop_time(t1)?;
    let mut steps = 0usize;
    while let OdeSolverStopReason::InternalTimestep = solver.step()? {
        steps += 1;
        if steps >= MAX_STEPS {
            return Err(DiffsolError::Other(format!("{MAX_STEPS} steps taken")));
        }
    }
    let st = solver.get_statistics();
    Ok(DiffsolOutcome {
        y: solver.state().y.clone_as_vec(),
        accepted: st.number_of_steps,
        rejected: st.number_of_error_test_failures + st.number_of_nonlinear_solver_fails,
        lu: st.number_of_linear_solver_setups,
        nfe: 0,
    })
}

/// diffsol's `tsit45` on `y' = rhs(y, p, t)` from `y0` over `[0, t1]` at
/// rtol = atol = `tol`: a closure that solves it once (creating the solver,
/// which evaluates the initial derivative and runs diffsol's initial-step
/// heuristic, then stepping to `t1`) and counts its right-hand-side calls.
pub fn diffsol_tsit45(
    rhs: impl Fn(&[f64], &[f64], f64, &mut [f64]),
    y0: &[f64],
    params: &[f64],
    t1: f64,
    tol: f64,
) -> Result<impl Fn() -> Result<DiffsolOutcome, DiffsolError>, DiffsolError> {
    let y0 = y0.to_vec();
    let n = y0.len();
    let dproblem = OdeBuilder::<DMat>::new()
        .rtol(tol)
        .atol([tol])
        .p(params.to_vec())
        .rhs(rhs)
        .init(
            move |_p: &[f64], _t: f64, y: &mut [f64]| y.copy_from_slice(&y0),
            n,
        )
        .build()?;
    Ok(move || {
        let before = dproblem.eqn.rhs().statistics().number_of_calls;
        let mut out = step_to_end(dproblem.tsit45()?, t1)?;
        out.nfe = dproblem.eqn.rhs().statistics().number_of_calls - before;
        Ok(out)
    })
}

/// [`diffsol_tsit45`] on case `C`.
pub fn diffsol_case<C: Case>(
    tol: f64,
) -> Result<impl Fn() -> Result<DiffsolOutcome, DiffsolError>, DiffsolError> {
    diffsol_tsit45(
        |y: &[f64], p: &[f64], _t: f64, dy: &mut [f64]| C::rhs(y, p, dy),
        C::Y0,
        C::PARAMS,
        C::T1,
        tol,
    )
}
