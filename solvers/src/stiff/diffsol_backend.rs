//! diffsol's stiff ODE solvers (M. Robinson, `diffsol`,
//! <https://github.com/martinjrobins/diffsol>), in diffsol's own drive loop,
//! kept as references for the native [`crate::stiff::Bdf`], [`crate::stiff::Esdirk34`]
//! and [`crate::stiff::TrBdf2`], which run in the generic loop: diffsol's
//! variable-order BDF (NDF variant, orders 1–5; Shampine & Reichelt, "The
//! MATLAB ODE suite", SIAM J. Sci. Comput. 18 (1997)) as [`DiffsolBdf`],
//! its TR-BDF2 (Hosea & Shampine, Appl. Numer. Math. 20 (1996)) and
//! ESDIRK3(4) (Jørgensen, Kristensen & Thomsen, arXiv:1803.01613, 2018) as
//! [`DiffsolTrBdf2`] and [`DiffsolEsdirk34`].
//!
//! They run behind the same [`crate::solve`] call and return the same
//! [`Solution`] and [`Stats`] as the explicit methods (but no
//! [`crate::integrate::StepObserver`] sees their steps, and they have no
//! step VJP). The Jacobian comes,
//! in this order of preference, from
//! 1. a field written generically over the scalar ([`crate::dual::Generic`]):
//!    exact Jacobian–vector products by forward-mode duals;
//! 2. a user closure ([`crate::problem::Problem::with_jacobian`]): the full matrix,
//!    evaluated once per state and reused for each column diffsol asks for;
//! 3. forward finite differences (`n + 1` drift evaluations per Jacobian,
//!    step `√ε · max(|y|∞, 1)`), always, with [`JacobianSource::FiniteDifferences`].
//!
//! Differences from the explicit loop, by diffsol's design: the step-size
//! controller is diffsol's own (the `controller` and `dt_max` options are not
//! used, and `discontinuities` are refused; `step_to` times are set as its
//! stop time one after the other); `rtol` is a scalar in diffsol, so a per-component `rtol` is applied
//! as its smallest entry (at least as strict as asked); dense output is the
//! quartic through samples of diffsol's own interpolant at θ = ¼, ½, ¾ and
//! the step ends (no extra drift evaluation). `SaveAt::Times` uses diffsol's
//! interpolant directly.

use std::cell::{Cell, RefCell};

use diffsol::error::OdeSolverError;
use diffsol::{
    DiffsolError, NalgebraLU, NalgebraMat, OdeBuilder, OdeEquations, OdeSolverMethod,
    OdeSolverState, OdeSolverStopReason, Op, Tableau, Vector,
};

use super::JacobianSource;
use crate::Method;
use crate::brownian::Driver;
use crate::dense::{DenseOutput, lagrange_table};
use crate::error::SolveError;
use crate::field::{Diffusion, Drift};
use crate::integrate::probe_field;
use crate::options::{Options, SaveAt, Tolerance};
use crate::problem::Problem;
use crate::solution::{Solution, Stats, Status};
use crate::solver::OdeProblem;

type M = NalgebraMat<f64>;
type V = diffsol::NalgebraVec<f64>;
type LS = NalgebraLU<f64>;

/// Where the dense output samples diffsol's interpolant in each step; the
/// solution between them is the quartic through these samples.
const DENSE_NODES: [f64; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bdf,
    TrBdf2,
    Esdirk34,
}

macro_rules! stiff_method {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name {
            /// Where the Jacobian comes from.
            pub jacobian: JacobianSource,
        }

        impl $name {
            /// Forces finite-difference Jacobians.
            pub fn finite_differences() -> Self {
                $name {
                    jacobian: JacobianSource::FiniteDifferences,
                }
            }
        }

        impl<F: Drift, D: Driver> Method<OdeProblem<F, D>> for $name {
            fn solve_problem(
                &self,
                problem: &OdeProblem<F, D>,
                options: &Options,
            ) -> Result<Solution, SolveError> {
                stiff_solve(problem, options, $kind, self.jacobian)
            }
        }
    };
}

stiff_method!(
    /// diffsol's variable-order (1–5) BDF/NDF with a dense LU, in diffsol's
    /// drive loop (its own step-size and order control): the reference the
    /// native [`crate::stiff::Bdf`] is compared with (tests, benches).
    DiffsolBdf,
    Kind::Bdf
);
stiff_method!(
    /// diffsol's TR-BDF2, in diffsol's drive loop: the reference the native
    /// [`crate::stiff::TrBdf2`] is compared with (tests, benches).
    DiffsolTrBdf2,
    Kind::TrBdf2
);
stiff_method!(
    /// diffsol's ESDIRK3(4), in diffsol's drive loop: the reference the
    /// native [`crate::stiff::Esdirk34`] is compared with (tests, benches).
    DiffsolEsdirk34,
    Kind::Esdirk34
);

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Bdf => "DiffsolBdf",
            Kind::TrBdf2 => "DiffsolTrBdf2",
            Kind::Esdirk34 => "DiffsolEsdirk34",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JacMode {
    Vector,
    Matrix,
    FiniteDifferences,
}

/// Work state shared by the closures handed to diffsol.
struct Shared {
    drift_evals: Cell<usize>,
    jac_evals: Cell<usize>,
    /// (t, y, J or f(y)) at the last point a Jacobian was formed.
    cache_t: Cell<f64>,
    cache_y: RefCell<Vec<f64>>,
    cache_v: RefCell<Vec<f64>>,
    scratch: RefCell<Vec<f64>>,
    valid: Cell<bool>,
}

fn stiff_solve<F: Drift, G: Diffusion, D: Driver>(
    problem: &Problem<F, G, D>,
    opts: &Options,
    kind: Kind,
    source: JacobianSource,
) -> Result<Solution, SolveError> {
    let name = kind.name();
    problem.validate()?;
    problem.ode_only(name)?;
    let n = problem.dim();
    let (t0, t1) = problem.tspan;
    opts.validate(n, problem.tspan)?;
    if !opts.discontinuities.is_empty() {
        return Err(SolveError::Unsupported {
            solver: name,
            what: "restarting after discontinuities (Options::discontinuities) inside diffsol's \
                   engine"
                .into(),
            alternatives: "Esdirk34 or TrBdf2 (stiff, in sdeflow's own loop), or solving the \
                           pieces between the discontinuities one after the other"
                .into(),
        });
    }
    let p = &problem.params;
    let field = &problem.drift;
    let mut f0 = vec![0.0; n];
    field.check_dims(n, p.len())?;
    probe_field("drift", n, t0, &mut f0, |out| {
        field.drift(t0, &problem.y0, p, out)
    })
    .map_err(|e| problem.diagnose_probe("drift", t0, e))?;

    // which Jacobian
    let mut probe_out = vec![0.0; n * n];
    let mode = if source == JacobianSource::FiniteDifferences {
        JacMode::FiniteDifferences
    } else if field.jacobian_vector(t0, &problem.y0, p, &f0, &mut probe_out[..n]) {
        JacMode::Vector
    } else if field.jacobian(t0, &problem.y0, p, &mut probe_out) {
        JacMode::Matrix
    } else {
        JacMode::FiniteDifferences
    };

    let shared = Shared {
        drift_evals: Cell::new(1),
        jac_evals: Cell::new(0),
        cache_t: Cell::new(f64::NAN),
        cache_y: RefCell::new(vec![0.0; n]),
        cache_v: RefCell::new(vec![0.0; n * n]),
        scratch: RefCell::new(vec![0.0; 2 * n]),
        valid: Cell::new(false),
    };
    let sh = &shared;

    let rhs = move |y: &[f64], _p: &[f64], t: f64, dy: &mut [f64]| {
        sh.drift_evals.set(sh.drift_evals.get() + 1);
        field.drift(t, y, p, dy);
    };
    let jac = move |y: &[f64], _p: &[f64], t: f64, v: &[f64], jv: &mut [f64]| {
        // diffsol forms the Jacobian column by column at one (t, y): count one
        // Jacobian evaluation per new point, and for the matrix / finite
        // difference sources form the data once per point.
        let fresh = sh.valid.get() && sh.cache_t.get() == t && sh.cache_y.borrow().as_slice() == y;
        if !fresh {
            sh.valid.set(true);
            sh.cache_t.set(t);
            sh.cache_y.borrow_mut().copy_from_slice(y);
            sh.jac_evals.set(sh.jac_evals.get() + 1);
            let mut cv = sh.cache_v.borrow_mut();
            match mode {
                JacMode::Vector => {}
                JacMode::Matrix => {
                    field.jacobian(t, y, p, &mut cv);
                }
                JacMode::FiniteDifferences => {
                    // keep f(t, y) in the first n entries
                    sh.drift_evals.set(sh.drift_evals.get() + 1);
                    field.drift(t, y, p, &mut cv[..n]);
                }
            }
        }
        let cv = sh.cache_v.borrow();
        match mode {
            JacMode::Vector => {
                field.jacobian_vector(t, y, p, v, jv);
            }
            JacMode::Matrix => {
                for (i, o) in jv.iter_mut().enumerate() {
                    *o = (0..n).map(|j| cv[i + j * n] * v[j]).sum();
                }
            }
            JacMode::FiniteDifferences => {
                let vmax = v.iter().fold(0.0f64, |a, b| a.max(b.abs()));
                if vmax == 0.0 {
                    jv.iter_mut().for_each(|o| *o = 0.0);
                    return;
                }
                let ymax = y.iter().fold(1.0f64, |a, b| a.max(b.abs()));
                let eps = f64::EPSILON.sqrt() * ymax / vmax;
                let mut s = sh.scratch.borrow_mut();
                let (yp, fp) = s.split_at_mut(n);
                for i in 0..n {
                    yp[i] = y[i] + eps * v[i];
                }
                sh.drift_evals.set(sh.drift_evals.get() + 1);
                field.drift(t, yp, p, fp);
                for i in 0..n {
                    jv[i] = (fp[i] - cv[i]) / eps;
                }
            }
        }
    };
    let y0 = problem.y0.clone();
    let init = move |_p: &[f64], _t: f64, y: &mut [f64]| y.copy_from_slice(&y0);

    let dir = (t1 - t0).signum();
    let rtol = match &opts.rtol {
        Tolerance::Scalar(r) => *r,
        Tolerance::Vector(v) => v.iter().copied().fold(f64::INFINITY, f64::min),
    };
    let atol: Vec<f64> = (0..n).map(|i| opts.atol.get(i)).collect();
    let mut dprob = OdeBuilder::<M>::new()
        .t0(t0)
        .h0(dir)
        .rtol(rtol)
        .atol(atol)
        .rhs_implicit(rhs, jac)
        .init(init, n)
        .build()
        .map_err(|e| backend(name, t0, e))?;
    let scale = t0.abs().max(t1.abs()).max(1.0);
    dprob.ode_options.min_timestep = if opts.dt_min > 0.0 {
        opts.dt_min
    } else {
        16.0 * f64::EPSILON * scale
    };
    // diffsol counts Newton failures over the whole solve; bound them by the
    // step budget (an unbounded count can spin forever on a NaN step size)
    dprob.ode_options.max_nonlinear_solver_failures = opts.max_steps.max(50);
    dprob.ode_options.max_error_test_failures = 60;

    let ctx = Ctx {
        problem,
        opts,
        n,
        name,
        shared: sh,
    };
    match kind {
        Kind::Bdf => {
            let mut state = dprob.bdf_state::<LS>().map_err(|e| backend(name, t0, e))?;
            if let Some(h) = opts.step_size(problem.tspan) {
                *state.as_mut().h = dir * h;
            }
            let solver = dprob
                .bdf_solver::<LS>(state)
                .map_err(|e| backend(name, t0, e))?;
            drive(solver, &ctx)
        }
        Kind::TrBdf2 | Kind::Esdirk34 => {
            let tableau = if kind == Kind::TrBdf2 {
                Tableau::<f64>::tr_bdf2()
            } else {
                Tableau::<f64>::esdirk34()
            };
            let mut state = dprob
                .rk_state_and_consistent::<LS>(&tableau)
                .map_err(|e| backend(name, t0, e))?;
            if let Some(h) = opts.step_size(problem.tspan) {
                *state.as_mut().h = dir * h;
            }
            let solver = if kind == Kind::TrBdf2 {
                dprob.tr_bdf2_solver::<LS>(state)
            } else {
                dprob.esdirk34_solver::<LS>(state)
            }
            .map_err(|e| backend(name, t0, e))?;
            drive(solver, &ctx)
        }
    }
}

struct Ctx<'a, F, G, D> {
    problem: &'a Problem<F, G, D>,
    opts: &'a Options,
    n: usize,
    name: &'static str,
    shared: &'a Shared,
}

fn backend(solver: &'static str, t: f64, e: DiffsolError) -> SolveError {
    SolveError::Backend {
        solver,
        t,
        message: e.to_string(),
    }
}

fn drive<'a, Eqn, S, F, G, D>(mut solver: S, ctx: &Ctx<'_, F, G, D>) -> Result<Solution, SolveError>
where
    Eqn: OdeEquations + Op<T = f64, V = V> + 'a,
    S: OdeSolverMethod<'a, Eqn>,
    F: Drift,
    G: Diffusion,
{
    let Ctx {
        problem,
        opts,
        n,
        name,
        shared,
    } = *ctx;
    let (t0, t1) = problem.tspan;
    let dir = (t1 - t0).signum();
    let stats_of = |s: &S| {
        let st = s.get_statistics();
        Stats {
            drift_evals: shared.drift_evals.get(),
            diffusion_evals: 0,
            jacobian_evals: shared.jac_evals.get(),
            accepted_steps: st.number_of_steps,
            rejected_steps: st.number_of_error_test_failures + st.number_of_nonlinear_solver_fails,
            nonlinear_iterations: st.number_of_nonlinear_solver_iterations,
            nonlinear_failures: st.number_of_nonlinear_solver_fails,
            lu_factorizations: st.number_of_linear_solver_setups,
        }
    };
    let mut ts = Vec::new();
    let mut ys = Vec::new();
    let mut dense = match opts.save_at {
        SaveAt::Dense => Some(DenseOutput::new(
            n,
            DENSE_NODES.len() - 1,
            DENSE_NODES.len(),
            lagrange_table(&DENSE_NODES),
        )),
        _ => None,
    };
    let times: &[f64] = match &opts.save_at {
        SaveAt::Times(t) => t,
        _ => &[],
    };
    let mut next_save = 0;
    match opts.save_at {
        SaveAt::Steps | SaveAt::Dense => {
            ts.push(t0);
            ys.extend_from_slice(&problem.y0);
        }
        SaveAt::Times(_) => {
            while next_save < times.len() && times[next_save] == t0 {
                ts.push(t0);
                ys.extend_from_slice(&problem.y0);
                next_save += 1;
            }
        }
        SaveAt::T1 => {}
    }
    let mut t_prev = t0;
    let mut y_prev = problem.y0.clone();
    let mut ks = vec![0.0; (DENSE_NODES.len() - 1) * n];
    let partial = |ts: Vec<f64>, ys: Vec<f64>, t: f64, y: &[f64], stats: Stats, dense| {
        let mut ts = ts;
        let mut ys = ys;
        if ts.last() != Some(&t) {
            ts.push(t);
            ys.extend_from_slice(y);
        }
        Box::new(Solution {
            ts,
            ys,
            n,
            stats,
            status: Status::Incomplete,
            solver: name.to_string(),
            dense,
            brownian: None,
        })
    };
    // the stop times, then t1, each diffsol's stop time in turn
    let stops: Vec<f64> = opts.step_to.iter().copied().chain([t1]).collect();
    let mut next_stop = 0;
    solver
        .set_stop_time(stops[0])
        .map_err(|e| backend(name, t0, e))?;
    loop {
        let stats = stats_of(&solver);
        if stats.steps() >= opts.max_steps {
            return Err(SolveError::MaxStepsReached {
                t: t_prev,
                max_steps: opts.max_steps,
                partial: partial(ts, ys, t_prev, &y_prev, stats, dense),
            });
        }
        let reason = match solver.step() {
            Ok(r) => r,
            Err(DiffsolError::OdeSolverError(OdeSolverError::StepSizeTooSmall { time })) => {
                let dt = solver.state().h.abs();
                return Err(SolveError::StepSizeUnderflow {
                    t: time,
                    dt,
                    step: stats.accepted_steps,
                    partial: partial(ts, ys, t_prev, &y_prev, stats_of(&solver), dense),
                });
            }
            Err(e) => return Err(backend(name, t_prev, e)),
        };
        let state = solver.state();
        // diffsol lands on the stop time as t + (t_stop − t), which can miss
        // it by an ulp: report the stop time itself
        let stopped = matches!(reason, OdeSolverStopReason::TstopReached);
        let t = if stopped { stops[next_stop] } else { state.t };
        let y = state.y;
        if let Some(component) = (0..n).position(|i| !y[i].is_finite()) {
            return Err(SolveError::NonFiniteState {
                t: t_prev,
                component,
                step: stats.accepted_steps,
            });
        }
        let done = t == t1;
        match opts.save_at {
            SaveAt::T1 => {}
            SaveAt::Steps => {
                ts.push(t);
                ys.extend((0..n).map(|i| y[i]));
            }
            SaveAt::Dense => {
                // sample the solver's own interpolant inside the step
                let y_cur: Vec<f64> = (0..n).map(|i| y[i]).collect();
                let h = t - t_prev;
                let m = DENSE_NODES.len() - 1;
                for (j, &theta) in DENSE_NODES[1..m].iter().enumerate() {
                    let v = solver
                        .interpolate(t_prev + theta * h)
                        .map_err(|e| backend(name, t_prev, e))?;
                    for i in 0..n {
                        ks[j * n + i] = (v[i] - y_prev[i]) / h;
                    }
                }
                for i in 0..n {
                    ks[(m - 1) * n + i] = (y_cur[i] - y_prev[i]) / h;
                }
                if let Some(d) = dense.as_mut() {
                    d.push(t_prev, h, &y_prev, &ks);
                }
                ts.push(t);
                ys.extend_from_slice(&y_cur);
            }
            SaveAt::Times(_) => {
                while next_save < times.len() && (times[next_save] - t) * dir <= 0.0 {
                    let ts_i = times[next_save];
                    let v = solver
                        .interpolate(ts_i)
                        .map_err(|e| backend(name, ts_i, e))?;
                    ts.push(ts_i);
                    ys.extend(v.clone_as_vec());
                    next_save += 1;
                }
            }
        }
        let state = solver.state();
        t_prev = t;
        for i in 0..n {
            y_prev[i] = state.y[i];
        }
        if done {
            break;
        }
        if stopped {
            next_stop += 1;
            solver
                .set_stop_time(stops[next_stop])
                .map_err(|e| backend(name, t, e))?;
        }
    }
    if matches!(opts.save_at, SaveAt::T1) {
        ts.push(t_prev);
        ys.extend_from_slice(&y_prev);
    }
    Ok(Solution {
        ts,
        ys,
        n,
        stats: stats_of(&solver),
        status: Status::Success,
        solver: name.to_string(),
        dense,
        brownian: None,
    })
}
