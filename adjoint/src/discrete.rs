//! The discrete adjoint (Hager 2000; Sandu 2006): the exact gradient of the
//! computed solution — of an ODE, or of an SDE on its Brownian path (the
//! path the forward solve kept, from the problem's driver) — for any solver
//! with the step-VJP protocol ([`StepVjp`]): every explicit Runge–Kutta
//! method, the native `Esdirk34`/`TrBdf2`, Euler–Maruyama, Euler–Heun,
//! Milstein (derivative-free, or exact given
//! `DiffusionVjp::milstein_term_vjp`), SRIW1, SOSRI, SRA1, SRA3, reversible
//! Heun, or one of yours ([`discrete_gradient`]). Step sizes and increments
//! are constants (the controller is not differentiated, as in diffrax).
//!
//! The forward pass keeps at most `checkpoints` snapshots (state, the
//! solver's workspace with its carried state, the controller's state) and
//! the backward sweep reverses the steps one by one with
//! [`StepVjp::step_vjp`], regenerating the steps it needs from the
//! snapshots — recursively, with the same budget per level (Griewank 1992;
//! diffrax's `RecursiveCheckpointAdjoint`; see [`crate::checkpoint`]), so
//! memory stays within `budget · (levels + 1)` snapshots while the number
//! of steps grows, step times and carried states included. Replays of an
//! SDE re-query the kept path; with a budget of at least the number of
//! steps nothing is recomputed and the path is not queried again. The
//! carried cotangent flows from step to step and, at the start, through
//! [`StepVjp::start_vjp`]. Saved values inside a step (interpolated, ODE
//! losses on dense save times) send their cotangents through the method's
//! interpolant.

use sdeflow_solvers::brownian::{BrownianPath, Driver};
use sdeflow_solvers::integrate::Run;
use sdeflow_solvers::solver::{Family, Fields, FieldsOf, Increment, StepAt, StepNoise};
use sdeflow_solvers::step_vjp::{
    InterpCotangent, StagePair, StagePairBars, StepBars, StepVjp, VjpArgs, VjpNeeds,
};
use sdeflow_solvers::{
    error::SolveError, field::DiffusionVjp, field::DriftVjp, options::Options, options::SaveAt,
    problem::Problem, solution::Stats,
};

use crate::checkpoint::{Record, ReverseStep, forward, reverse_all};
use crate::loss::Loss;
use crate::regularize::{Aggregate, PenaltySweep, StepPenalty};
use crate::{Adjoint, GradError, Gradient};

/// The snapshot budget of `checkpoints`: at least 2, and `usize::MAX`
/// (store every step) as it is.
fn budget(checkpoints: usize) -> usize {
    if checkpoints == usize::MAX {
        usize::MAX
    } else {
        checkpoints.max(2)
    }
}

/// Everything the backward sweep carries.
struct Backward<'a, Pb: Family, S: StepVjp<Pb>> {
    fields: FieldsOf<'a, Pb>,
    solver: &'a S,
    work: S::VjpWork,
    stats: Stats,
    /// The first step that could not be reversed (the rest are skipped).
    error: Option<SolveError>,
    /// `∂L/∂y` and `∂L/∂c` at the start of the step last reversed.
    y_bar: Vec<f64>,
    c_bar: Vec<f64>,
    dp: Vec<f64>,
    vjps: usize,
    /// The saved times and their cotangents.
    save_ts: &'a [f64],
    gy: &'a [f64],
    /// Saved values not yet located in a step: `save_ts[..unlocated]`.
    unlocated: usize,
    /// The cotangents of the values saved inside the step being reversed.
    interp: Vec<InterpCotangent<'a>>,
    dir: f64,
    /// Brownian motions per increment (0 for an ODE), whether the
    /// records carry the Lévy area after `ΔW` (else what follows `ΔW` is
    /// the OU modes' increments, for a method that reads them), and the
    /// length of a record's increments.
    m: usize,
    levy: bool,
    noise_len: usize,
    /// Where the method restarted, its carried state made afresh
    /// ([`sdeflow_solvers::solver::Solver::RESTARTS_CARRIED_STATE`]): the first
    /// float after each discontinuity (empty when it carries nothing).
    restarts: Vec<f64>,
    /// A global regularizer's per-step part (`None`: the loss alone).
    penalty: Option<PenaltySweep<'a, Pb, S>>,
}

impl<F, G, D, S> ReverseStep for Backward<'_, Problem<F, G, D>, S>
where
    F: DriftVjp,
    G: DiffusionVjp,
    D: Driver,
    S: StepVjp<Problem<F, G, D>>,
{
    /// Reverses step `m` from its record, first taking in the cotangents of
    /// the values saved inside it or at its end.
    fn reverse(&mut self, _m: usize, rec: &[f64]) {
        let (n, m) = (self.y_bar.len(), self.m);
        let noise_len = self.noise_len;
        let Record {
            t,
            h,
            y,
            noise,
            carried,
        } = Record::read(rec, n, noise_len);
        let t_next = rec[1];
        self.interp.clear();
        while self.unlocated > 0 && (self.save_ts[self.unlocated - 1] - t) * self.dir > 0.0 {
            let j = self.unlocated - 1;
            let bar = &self.gy[j * n..(j + 1) * n];
            if self.save_ts[j] == t_next {
                for k in 0..n {
                    self.y_bar[k] += bar[k];
                }
            } else {
                self.interp.push(InterpCotangent {
                    theta: (self.save_ts[j] - t) / h,
                    bar,
                });
            }
            self.unlocated -= 1;
        }
        if self.error.is_some() {
            return;
        }
        let (dw, rest) = noise.split_at(m);
        let noise = StepNoise {
            dw,
            levy_h: if self.levy { rest } else { &[] },
            modes: if self.levy { &[] } else { rest },
        };
        let pair_penalty = self.penalty.as_ref().filter(|ps| ps.reads_pair());
        let pair_parts = pair_penalty.map(|ps| ps.pair_parts());
        if let Some(ps) = self.penalty.as_mut().filter(|ps| !ps.reads_pair()) {
            let at = (StepAt { t, h, y }, &noise);
            let retaken = ps.before(
                self.solver,
                &self.fields,
                at,
                &mut self.y_bar,
                &mut self.stats,
            );
            if let Err(e) = retaken {
                self.error = Some(e);
                return;
            }
        }
        let err = match &self.penalty {
            Some(ps) if !ps.reads_pair() => Some(&ps.err_bar[..]),
            _ => None,
        };
        let bars = StepBars {
            y: &mut self.y_bar,
            carried: &mut self.c_bar,
            err,
            interp: &self.interp,
            p: &mut self.dp,
        };
        let args = VjpArgs {
            fields: &self.fields,
            at: StepAt { t, h, y },
            carried,
            noise: &noise,
            bars,
            stats: &mut self.stats,
        };
        // a penalty of the stiffness stage pair is evaluated and
        // differentiated inside the step VJP
        let mut pair_sum = 0.0;
        let reversed = match pair_parts {
            Some((penalty, rho, scale)) => {
                let mut hook = |pair: StagePair<'_>, bars: StagePairBars<'_>| {
                    pair_sum += penalty.eval_pair(&pair, rho, bars, scale);
                };
                (self.solver).step_vjp_stage_pair(&mut self.work, args, Some(&mut hook))
            }
            None => (self.solver).step_vjp(&mut self.work, args),
        };
        match reversed {
            Ok(v) => self.vjps += v,
            Err(e) => self.error = Some(e),
        }
        if let Some(ps) = &mut self.penalty {
            if ps.reads_pair() {
                ps.sum += pair_sum;
            } else {
                ps.after(&mut self.y_bar);
            }
        }
        if self.error.is_none() && self.restarts.contains(&t) {
            // the step started from a restart: its carried state was made
            // from (t, y), not carried over from the step before
            let bars = StepBars::states(&mut self.y_bar, &mut self.c_bar, &mut self.dp);
            let args = VjpArgs::start(&self.fields, (t, y), bars, &mut self.stats);
            match (self.solver).start_vjp(&mut self.work, args) {
                Ok(v) => self.vjps += v,
                Err(e) => self.error = Some(e),
            }
            self.c_bar.iter_mut().for_each(|v| *v = 0.0);
        }
    }
}

/// `(L, dL/dp, dL/dy0)` of `loss` on the solve of `problem` (an ODE or an
/// SDE) with `solver` by `adjoint`, which must be [`Adjoint::Discrete`]:
/// the discrete adjoint through the solver's step VJP ([`StepVjp`]). What
/// [`crate::grad`] runs for `Adjoint::Discrete` with every built-in solver
/// that has one, and what the [`crate::Differentiable`] impl of a solver of
/// your own calls:
///
/// ```
/// # use sdeflow_adjoint::{Adjoint, Differentiable, GradError, Gradient, Loss, grad};
/// # use sdeflow_solvers::brownian::Driver;
/// # use sdeflow_solvers::dual::{DualNum, Generic, GenericField};
/// # use sdeflow_solvers::step_vjp::{StepVjp, VjpArgs};
/// # use sdeflow_solvers::solver::{
/// #     DenseTable, Increment, Solver, StepArgs, StepStatus, StepTaken,
/// # };
/// # use sdeflow_solvers::error::SolveError;
/// # use sdeflow_solvers::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
/// # use sdeflow_solvers::noise::Noise;
/// # use sdeflow_solvers::options::{Options, SaveAt};
/// # use sdeflow_solvers::problem::Problem;
/// # use sdeflow_solvers::sde::EulerMaruyama;
/// # /// Euler–Maruyama under another name: a solver of "your own".
/// # #[derive(Clone, Copy)]
/// # struct MySolver;
/// # type Rhs = fn(f64, &[f64], &[f64], &mut [f64]);
/// # type C = <EulerMaruyama as Solver<Problem<Rhs, Rhs>>>::Cache;
/// # impl<Fx: Drift, Gx: Diffusion, Dx: Driver> Solver<Problem<Fx, Gx, Dx>> for MySolver {
/// #     type Cache = C;
/// #     const INCREMENT: Increment = Increment::Dw;
/// #     fn name(&self) -> &'static str { "MySolver" }
/// #     fn order(&self) -> f64 { 0.5 }
/// #     fn error_order(&self) -> Option<f64> { None }
/// #     fn check(&self, p: &Problem<Fx, Gx, Dx>) -> Result<(), SolveError> { EulerMaruyama.check(p) }
/// #     fn init(&self, p: &Problem<Fx, Gx, Dx>) -> C { EulerMaruyama.init(p) }
/// #     fn start(&self, c: &mut C, f0: &[f64], g0: &[f64]) {
/// #         Solver::<Problem<Fx, Gx, Dx>>::start(&EulerMaruyama, c, f0, g0)
/// #     }
/// #     fn step(&self, c: &mut C, args: StepArgs<'_, Fx, Gx>) -> StepStatus {
/// #         Solver::<Problem<Fx, Gx, Dx>>::step(&EulerMaruyama, c, args)
/// #     }
/// #     fn accept(&self, c: &mut C) { Solver::<Problem<Fx, Gx, Dx>>::accept(&EulerMaruyama, c) }
/// #     fn dense_table<'c>(&self, c: &'c C) -> DenseTable<'c> {
/// #         Solver::<Problem<Fx, Gx, Dx>>::dense_table(&EulerMaruyama, c)
/// #     }
/// #     fn dense_stages<'c>(&self, c: &'c mut C, step: StepTaken<'_, Fx, Gx>) -> &'c [f64] {
/// #         Solver::<Problem<Fx, Gx, Dx>>::dense_stages(&EulerMaruyama, c, step)
/// #     }
/// # }
/// # type W = <EulerMaruyama as StepVjp<Problem<Rhs, Rhs>>>::VjpWork;
/// # impl<Fx: Drift, Gx: Diffusion, Dx: Driver> StepVjp<Problem<Fx, Gx, Dx>> for MySolver {
/// #     type VjpWork = W;
/// #     fn vjp_workspace<F: DriftVjp, G: DiffusionVjp, D: Driver>(&self, p: &Problem<F, G, D>) -> W {
/// #         StepVjp::<Problem<F, G, D>>::vjp_workspace(&EulerMaruyama, p)
/// #     }
/// #     fn step_vjp<F: DriftVjp, G: DiffusionVjp>(&self, w: &mut W, args: VjpArgs<'_, F, G>)
/// #         -> Result<usize, SolveError> {
/// #         StepVjp::<Problem<F, G>>::step_vjp(&EulerMaruyama, w, args)
/// #     }
/// # }
/// impl<F: DriftVjp, G: DiffusionVjp, D: Driver> Differentiable<F, G, D> for MySolver {
///     fn gradient<L: Loss + ?Sized>(
///         &self,
///         problem: &Problem<F, G, D>,
///         options: &Options,
///         loss: &L,
///         adjoint: Adjoint,
///     ) -> Result<Gradient, GradError> {
///         sdeflow_adjoint::discrete_gradient(problem, self, options, loss, adjoint)
///     }
/// }
/// # struct Lin;
/// # impl GenericField for Lin {
/// #     fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], o: &mut [D]) {
/// #         o[0] = p[0] * y[0];
/// #     }
/// # }
/// # let sde = Problem::sde_field(Generic(Lin), Generic(Lin), Noise::Scalar, vec![1.0], (0.0, 1.0))
/// #     .params(vec![0.3]);
/// # let opts = Options::default().fixed_step(0.01).save_at(SaveAt::T1);
/// # let loss = |_ts: &[f64], ys: &[f64], g: &mut [f64]| { g[0] = 1.0; ys[0] };
/// // `grad` now takes it, and gives what it gives for Euler–Maruyama
/// let mine = grad(&sde, MySolver, &opts, &loss, Adjoint::STORE_ALL).unwrap();
/// let em = grad(&sde, EulerMaruyama, &opts, &loss, Adjoint::STORE_ALL).unwrap();
/// assert_eq!(mine.dp, em.dp);
/// ```
///
/// (`tests/suite/extension_sde.rs` writes a whole drift-implicit Euler–Maruyama
/// this way.) Called directly, with built-in solvers, on an SDE and on an
/// ODE:
///
/// ```
/// use sdeflow_adjoint::{Adjoint, discrete_gradient};
/// use sdeflow_solvers::dual::{DualNum, Generic, GenericField};
/// use sdeflow_solvers::sde::EulerMaruyama;
/// use sdeflow_solvers::noise::Noise;
/// use sdeflow_solvers::options::{Options, SaveAt};
/// use sdeflow_solvers::problem::Problem;
/// use sdeflow_solvers::erk::Tsit5;
///
/// struct Lin;
/// impl GenericField for Lin {
///     fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], o: &mut [D]) {
///         o[0] = p[0] * y[0];
///     }
/// }
/// let sde = Problem::sde_field(Generic(Lin), Generic(Lin), Noise::Scalar, vec![1.0], (0.0, 1.0))
///     .params(vec![0.3]);
/// let opts = Options::default().fixed_step(0.01).save_at(SaveAt::T1);
/// let loss = |_ts: &[f64], ys: &[f64], g: &mut [f64]| { g[0] = 1.0; ys[0] };
/// let g = discrete_gradient(&sde, &EulerMaruyama, &opts, &loss, Adjoint::STORE_ALL)
///     .unwrap();
/// // y(1) = Π (1 + 0.3 h + 0.3 ΔW): dL/dy0 = y(1)
/// assert!((g.dy0[0] - g.loss).abs() < 1e-12);
/// // other adjoints are refused before any work
/// assert!(discrete_gradient(&sde, &EulerMaruyama, &opts, &loss, Adjoint::Backsolve).is_err());
///
/// // y' = 0.3 y: y(1) = e^0.3 y0, so dL/dy0 = e^0.3, whatever the budget
/// let ode = Problem::ode_field(Generic(Lin), vec![1.0], (0.0, 1.0)).params(vec![0.3]);
/// let opts = Options::default().tol(1e-10).save_at(SaveAt::T1);
/// let g = discrete_gradient(&ode, &Tsit5, &opts, &loss, Adjoint::Discrete { checkpoints: 4 })
///     .unwrap();
/// assert!((g.dy0[0] - 0.3f64.exp()).abs() < 1e-8);
/// ```
///
/// The loss may use any save policy with a solver whose step VJP
/// differentiates its dense output (the explicit Runge–Kutta methods);
/// other solvers — the implicit and the SDE ones — take losses on
/// values at step ends: `SaveAt::T1`, `SaveAt::Steps`, or `SaveAt::Times`
/// with every time also in `Options::step_to` (the steps then land on
/// them; checked up front, with [`StepVjp::check_step_vjp`]). At most
/// `checkpoints` snapshots (at least 2; `usize::MAX` stores every step and
/// recomputes nothing) are held per
/// level of recomputation, so memory grows like
/// `checkpoints · log(steps)`, for solvers with carried state too; the
/// price is recomputing steps (on the forward solve's path, for SDEs), and
/// the gradient is the same. An SDE whose driver cannot re-query its path
/// (`Increments`) needs `usize::MAX`.
pub fn discrete_gradient<F, G, D, S, L>(
    problem: &Problem<F, G, D>,
    solver: &S,
    options: &Options,
    loss: &L,
    adjoint: Adjoint,
) -> Result<Gradient, GradError>
where
    F: DriftVjp,
    G: DiffusionVjp,
    D: Driver,
    S: StepVjp<Problem<F, G, D>>,
    L: Loss + ?Sized,
{
    discrete_gradient_penalized(problem, solver, options, loss, adjoint, None).map(|(g, ..)| g)
}

/// Whether the loss may read values interpolated inside steps: not for
/// `SaveAt::T1` or `Steps`, nor for `SaveAt::Times` whose every time is a
/// step end — an end of the span or a time of `Options::step_to`, on
/// which every step control lands exactly (unless it is also one of
/// `Options::discontinuities`, whose steps end a float before it).
pub(crate) fn saves_inside_steps(opts: &Options, (t0, t1): (f64, f64)) -> bool {
    let step_end = |t: &f64| {
        *t == t0 || *t == t1 || (opts.step_to.contains(t) && !opts.discontinuities.contains(t))
    };
    match &opts.save_at {
        SaveAt::T1 | SaveAt::Steps => false,
        SaveAt::Times(ts) => !ts.iter().all(step_end),
        SaveAt::Dense => true,
    }
}

/// [`discrete_gradient`] of `L + λR` for a global regularizer `R`
/// (`penalty`: the per-step penalty, `λ`, the aggregation; `None`: `L`
/// alone): the gradient (its `loss` is `L + λR`), `L` and `R`.
pub(crate) fn discrete_gradient_penalized<F, G, D, S, L>(
    problem: &Problem<F, G, D>,
    solver: &S,
    options: &Options,
    loss: &L,
    adjoint: Adjoint,
    penalty: Option<(&dyn StepPenalty, f64, Aggregate)>,
) -> Result<(Gradient, f64, f64), GradError>
where
    F: DriftVjp,
    G: DiffusionVjp,
    D: Driver,
    S: StepVjp<Problem<F, G, D>>,
    L: Loss + ?Sized,
{
    let Adjoint::Discrete { checkpoints } = adjoint else {
        return Err(GradError::Unsupported(format!(
            "{adjoint:?} with {}: this is the discrete adjoint (Adjoint::Discrete \
             {{ checkpoints }}); grad offers Adjoint::Backsolve and Adjoint::Interpolating with \
             the ODE solvers, Adjoint::Reversible and Adjoint::Stochastic with ReversibleHeun",
            solver.name()
        )));
    };
    let (opts, budget) = (options, budget(checkpoints));
    let n = problem.dim();
    // the run first: it validates the problem (dimensions, noise type for
    // this solver) before anything else is evaluated
    let run = Run::new(problem, solver, opts, None, true)?;
    let reads_pair = penalty.is_some_and(|(pen, ..)| pen.reads_stage_pair());
    let rho = match (reads_pair, solver.stiffness_stages()) {
        (false, _) => 0.0,
        (true, Some(st)) => st.stability_size,
        (true, None) => {
            return Err(GradError::Unsupported(format!(
                "a stiffness regularizer with {}: no two stages of its step share a time, so \
                 it has no stiffness estimate; use Tsit5, Dopri5 or Vern7",
                solver.name()
            )));
        }
    };
    let needs = VjpNeeds {
        err: penalty.is_some() && !reads_pair,
        interp: saves_inside_steps(opts, problem.tspan),
    };
    let probe = (problem.tspan.0, &problem.y0[..], &problem.params[..]);
    solver
        .check_step_vjp(&problem.diffusion, probe, needs)
        .map_err(GradError::Unsupported)?;
    let m = problem.noise.map_or(0, |nz| nz.brownian_dim(n));
    let levy = m > 0 && S::INCREMENT == Increment::DwLevyArea;
    if m > 0 && budget != usize::MAX && !problem.driver.requery() {
        return Err(GradError::Unsupported(format!(
            "the discrete adjoint with {budget} checkpoints recomputes steps between them on \
             the forward path, which the {} driver cannot re-query; store every step \
             (Adjoint::Discrete {{ checkpoints: usize::MAX }}) or drive the problem with \
             VirtualTree or CachedInterval",
            problem.driver.name()
        )));
    }
    let noise_len = if m == 0 { 0 } else { run.increments_len() };
    let fwd = forward(run, solver, budget, (noise_len, levy))?;
    let sol = &fwd.solution;
    let (value, gy) = crate::loss::evaluate(loss, sol)?;
    // steps between checkpoints are replayed (for an SDE, on the forward
    // solve's path), unless every step's record was kept
    let mut path = if !fwd.needs_replay() || m == 0 {
        None
    } else {
        Some(sol.brownian_path()?)
    };
    let mut replay = if !fwd.needs_replay() {
        None
    } else {
        let given = path.as_deref_mut().map(|p| -> &mut dyn BrownianPath { p });
        Some(Run::new(problem, solver, opts, given, false)?)
    };
    let c_len = solver.carried_state(&solver.init(problem)).len();
    if penalty.is_some() && c_len > 0 {
        return Err(GradError::Unsupported(format!(
            "a global regularizer retakes each step from its start, which {} cannot (it \
             carries state from step to step); use a method without carried state (Tsit5, \
             Sosri, ...)",
            solver.name()
        )));
    }
    let dir = (problem.tspan.1 - problem.tspan.0).signum();
    let restarts = if c_len == 0 {
        Vec::new()
    } else {
        let after = |tau: f64| {
            if dir > 0.0 {
                tau.next_up()
            } else {
                tau.next_down()
            }
        };
        opts.discontinuities.iter().map(|&tau| after(tau)).collect()
    };
    let mut bw = Backward {
        fields: Fields::new(problem),
        solver,
        work: solver.vjp_workspace(problem),
        stats: Stats::default(),
        error: None,
        y_bar: vec![0.0; n],
        c_bar: vec![0.0; c_len],
        dp: vec![0.0; problem.params.len()],
        vjps: 0,
        save_ts: &sol.ts,
        gy: &gy,
        unlocated: sol.ts.len(),
        interp: Vec::new(),
        dir,
        m,
        levy,
        noise_len,
        restarts,
        penalty: penalty.map(|pen| {
            let g_len = problem.noise.map_or(0, |nz| nz.diffusion_len(n));
            PenaltySweep::new(pen, fwd.steps, opts, solver.init(problem), (n, g_len), rho)
        }),
    };
    let peak = reverse_all(&fwd, solver, replay.as_mut(), budget, &mut bw)?;
    if let Some(e) = bw.error {
        return Err(GradError::Solve(e));
    }
    // values saved at t0, then the carried state's start
    for j in 0..bw.unlocated {
        for k in 0..n {
            bw.y_bar[k] += gy[j * n + k];
        }
    }
    let bars = StepBars::states(&mut bw.y_bar, &mut bw.c_bar, &mut bw.dp);
    let (t0, y0) = (problem.tspan.0, &problem.y0);
    let args = VjpArgs::start(&bw.fields, (t0, y0), bars, &mut bw.stats);
    bw.vjps += solver.start_vjp(&mut bw.work, args)?;
    let backward_drift_evals = replay.as_ref().map_or(0, |r| r.stats().drift_evals);
    let reg = match (&bw.penalty, penalty) {
        (Some(ps), Some((_, weight, aggregate))) => (weight, ps.value(aggregate, fwd.steps)),
        _ => (0.0, 0.0),
    };
    let (dp, dy0, vjps) = (bw.dp, bw.y_bar, bw.vjps);
    let gradient = Gradient {
        loss: value + reg.0 * reg.1,
        dp,
        dy0,
        solution: fwd.solution,
        vjps,
        backward_drift_evals,
        peak_stored_states: peak,
    };
    Ok((gradient, value, reg.1))
}
