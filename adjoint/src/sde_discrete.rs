//! The discrete adjoint of SDE solves: the exact gradient of the computed
//! solution on its Brownian path (the path the forward solve kept, from the
//! problem's driver), each step reversed with the solver's
//! [`SdeStepVjp`] — any solver that implements it: Euler–Maruyama,
//! Euler–Heun, Milstein (derivative-free, or exact given
//! `DiffusionVjp::milstein_term_vjp`), SRIW1, SOSRI, SRA1, SRA3, reversible
//! Heun, or one of yours ([`sde_discrete_gradient`]). Step sizes and
//! increments are constants.
//!
//! The forward pass keeps at most `checkpoints` records (state and the
//! step's increments) and the backward sweep recomputes the rest by
//! recursive checkpointing ([`crate::checkpoint`]), re-querying the kept
//! path for recomputed steps; with a budget of at least the number of steps
//! nothing is recomputed and the path is not queried again. A solver that
//! carries state from step to step ([`Solver::carried_state`]: reversible
//! Heun) has every step recorded with its carried state, whatever the
//! budget (the checkpointing records hold `t, h, y` and the increments
//! only), and the carried cotangent flows from step to step and, at the
//! start, through [`SdeStepVjp::start_vjp`].

use sdeflow_solvers::brownian::{BrownianPath, Driver};
use sdeflow_solvers::integrate::{Run, StepObserver};
use sdeflow_solvers::sde::{SdeStepBars, SdeStepVjp};
use sdeflow_solvers::solver::{Family, Fields, Increment, StepAt, StepNoise};
use sdeflow_solvers::{
    DiffusionVjp, DriftVjp, Options, Problem, SaveAt, Solution, SolveError, Solver, Stats,
};

use crate::checkpoint::{Forward, Record, ReverseStep, forward, reverse_all};
use crate::differentiable::budget;
use crate::loss::Loss;
use crate::{Adjoint, GradError, Gradient};

/// `(L, dL/dp, dL/dy0)` of `loss` on the solve of `problem` with `solver`
/// by `adjoint`, which must be [`Adjoint::Discrete`]: the SDE discrete
/// adjoint through the solver's step VJP ([`SdeStepVjp`]). What
/// [`crate::grad`] runs for the built-in SDE solvers (reversible Heun
/// offers more adjoints), and what the [`crate::Differentiable`] impl of
/// an SDE solver of your own calls:
///
/// ```
/// # use sdeflow_adjoint::{Adjoint, Differentiable, GradError, Gradient, Loss, grad};
/// # use sdeflow_solvers::brownian::Driver;
/// # use sdeflow_solvers::dual::{DualNum, Generic, GenericField};
/// # use sdeflow_solvers::sde::{SdeStepBars, SdeStepVjp};
/// # use sdeflow_solvers::solver::{
/// #     DenseTable, Fields, Increment, Solver, StepAt, StepNoise, StepOut, StepStatus,
/// # };
/// # use sdeflow_solvers::{
/// #     Diffusion, DiffusionVjp, Drift, DriftVjp, EulerMaruyama, Noise, Options, Problem, SaveAt,
/// #     SolveError, Stats,
/// # };
/// # /// Euler–Maruyama under another name: a solver of "your own".
/// # #[derive(Clone, Copy)]
/// # struct MySolver;
/// # type P<F, G, D> = Problem<F, G, D>;
/// # type Rhs = fn(f64, &[f64], &[f64], &mut [f64]);
/// # type C = <EulerMaruyama as Solver<P<Rhs, Rhs, sdeflow_solvers::brownian::VirtualTree>>>::Cache;
/// # impl<F: Drift, G: Diffusion, D: Driver> Solver<P<F, G, D>> for MySolver {
/// #     type Cache = C;
/// #     const INCREMENT: Increment = Increment::Dw;
/// #     fn name(&self) -> &'static str { "MySolver" }
/// #     fn order(&self) -> f64 { 0.5 }
/// #     fn error_order(&self) -> Option<f64> { None }
/// #     fn check(&self, p: &P<F, G, D>) -> Result<(), SolveError> { EulerMaruyama.check(p) }
/// #     fn init(&self, p: &P<F, G, D>) -> C { EulerMaruyama.init(p) }
/// #     fn start(&self, c: &mut C, f0: &[f64], g0: &[f64]) {
/// #         Solver::<P<F, G, D>>::start(&EulerMaruyama, c, f0, g0)
/// #     }
/// #     fn step(&self, c: &mut C, fields: &Fields<'_, F, G>, at: StepAt<'_>,
/// #         noise: &StepNoise<'_>, out: StepOut<'_>, stats: &mut Stats) -> StepStatus {
/// #         Solver::<P<F, G, D>>::step(&EulerMaruyama, c, fields, at, noise, out, stats)
/// #     }
/// #     fn accept(&self, c: &mut C) { Solver::<P<F, G, D>>::accept(&EulerMaruyama, c) }
/// #     fn dense_table<'c>(&self, c: &'c C) -> DenseTable<'c> {
/// #         Solver::<P<F, G, D>>::dense_table(&EulerMaruyama, c)
/// #     }
/// #     fn dense_stages<'c>(&self, c: &'c mut C, fields: &Fields<'_, F, G>,
/// #         t: f64, h: f64, y: &[f64], y_new: &[f64], stats: &mut Stats) -> &'c [f64] {
/// #         Solver::<P<F, G, D>>::dense_stages(&EulerMaruyama, c, fields, t, h, y, y_new, stats)
/// #     }
/// # }
/// # type W = <EulerMaruyama as SdeStepVjp>::VjpWork;
/// # impl SdeStepVjp for MySolver {
/// #     type VjpWork = W;
/// #     fn vjp_workspace<F: Drift, G: Diffusion, D: Driver>(&self, p: &Problem<F, G, D>) -> W {
/// #         EulerMaruyama.vjp_workspace(p)
/// #     }
/// #     fn step_vjp<F: DriftVjp, G: DiffusionVjp>(&self, w: &mut W, fields: &Fields<'_, F, G>,
/// #         at: StepAt<'_>, carried: &[f64], noise: &StepNoise<'_>, bars: SdeStepBars<'_>,
/// #         stats: &mut Stats) -> Result<usize, SolveError> {
/// #         EulerMaruyama.step_vjp(w, fields, at, carried, noise, bars, stats)
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
///         sdeflow_adjoint::sde_discrete_gradient(problem, self, options, loss, adjoint)
///     }
/// }
/// # struct Lin;
/// # impl GenericField for Lin {
/// #     fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], o: &mut [D]) {
/// #         o[0] = p[0] * y[0];
/// #     }
/// # }
/// # let sde = Problem::sde(Generic(Lin), Generic(Lin), Noise::Scalar, vec![1.0], (0.0, 1.0))
/// #     .params(vec![0.3]);
/// # let opts = Options::default().fixed_step(0.01).save_at(SaveAt::T1);
/// # let loss = |_ts: &[f64], ys: &[f64], g: &mut [f64]| { g[0] = 1.0; ys[0] };
/// // `grad` now takes it, and gives what it gives for Euler–Maruyama
/// let mine = grad(&sde, MySolver, &opts, &loss, Adjoint::STORE_ALL).unwrap();
/// let em = grad(&sde, EulerMaruyama, &opts, &loss, Adjoint::STORE_ALL).unwrap();
/// assert_eq!(mine.dp, em.dp);
/// ```
///
/// (`tests/extension_sde.rs` writes a whole drift-implicit Euler–Maruyama
/// this way.) Called directly, with a built-in solver:
///
/// ```
/// use sdeflow_adjoint::{Adjoint, sde_discrete_gradient};
/// use sdeflow_solvers::dual::{DualNum, Generic, GenericField};
/// use sdeflow_solvers::{EulerMaruyama, Noise, Options, Problem, SaveAt};
///
/// struct Lin;
/// impl GenericField for Lin {
///     fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], o: &mut [D]) {
///         o[0] = p[0] * y[0];
///     }
/// }
/// let sde = Problem::sde(Generic(Lin), Generic(Lin), Noise::Scalar, vec![1.0], (0.0, 1.0))
///     .params(vec![0.3]);
/// let opts = Options::default().fixed_step(0.01).save_at(SaveAt::T1);
/// let loss = |_ts: &[f64], ys: &[f64], g: &mut [f64]| { g[0] = 1.0; ys[0] };
/// let g = sde_discrete_gradient(&sde, &EulerMaruyama, &opts, &loss, Adjoint::STORE_ALL)
///     .unwrap();
/// // y(1) = Π (1 + 0.3 h + 0.3 ΔW): dL/dy0 = y(1)
/// assert!((g.dy0[0] - g.loss).abs() < 1e-12);
/// // other adjoints are refused before any work
/// assert!(sde_discrete_gradient(&sde, &EulerMaruyama, &opts, &loss, Adjoint::Backsolve).is_err());
/// ```
///
/// The loss may use `SaveAt::T1` or `SaveAt::Steps`. At most `checkpoints`
/// records (at least 2; `usize::MAX` stores every step and recomputes
/// nothing) are held per level of recomputation, so memory grows like
/// `checkpoints · log(steps)`; the price is recomputing steps on the
/// forward solve's path, and the gradient is the same. A solver with
/// carried state records every step.
pub fn sde_discrete_gradient<F, G, D, S, L>(
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
    S: SdeStepVjp + Solver<Problem<F, G, D>>,
    L: Loss + ?Sized,
{
    let Adjoint::Discrete { checkpoints } = adjoint else {
        return Err(GradError::Unsupported(format!(
            "{adjoint:?} with {}: its gradient is the discrete adjoint \
             (Adjoint::Discrete {{ checkpoints }}); Adjoint::Reversible and \
             Adjoint::Stochastic run with ReversibleHeun",
            solver.name()
        )));
    };
    let (opts, budget) = (options, budget(checkpoints));
    if !matches!(opts.save_at, SaveAt::T1 | SaveAt::Steps) {
        return Err(GradError::Unsupported(
            "SDE gradients take losses on SaveAt::T1 or SaveAt::Steps".into(),
        ));
    }
    let pass = forward_pass(problem, solver, opts, budget)?;
    solver
        .check_step_vjp(
            &problem.diffusion,
            problem.tspan.0,
            &problem.y0,
            &problem.params,
        )
        .map_err(GradError::Unsupported)?;
    let (solution, steps) = match &pass {
        Pass::Checkpointed(fwd) => (&fwd.solution, fwd.steps),
        Pass::Recorded(solution, tape) => (solution, tape.steps()),
    };
    let (value, gy) = crate::loss::evaluate(loss, solution)?;
    let (n, save_steps) = (problem.dim(), matches!(opts.save_at, SaveAt::Steps));
    let last = if save_steps { steps } else { 0 };
    let levy = S::INCREMENT == Increment::DwLevyArea;
    let mut rev = SdeReverse {
        fields: Fields::new(problem),
        solver,
        m: problem.noise.map_or(0, |nz| nz.brownian_dim(n)),
        levy,
        work: solver.vjp_workspace(problem),
        y_bar: gy[last * n..(last + 1) * n].to_vec(),
        c_bar: vec![0.0; pass.carried_len()],
        dp: vec![0.0; problem.params.len()],
        gy: &gy,
        save_steps,
        stats: Stats::default(),
        vjps: 0,
        error: None,
    };
    let (peak, backward_drift_evals) = match &pass {
        Pass::Checkpointed(fwd) => {
            // steps between checkpoints are replayed on the forward solve's
            // path
            let mut path = if budget == usize::MAX {
                None
            } else {
                Some(fwd.solution.brownian_path()?)
            };
            let mut replay = match path.as_deref_mut() {
                Some(p) => {
                    let p: &mut dyn BrownianPath = p;
                    Some(Run::new(problem, solver, opts, Some(p), false)?)
                }
                None => None,
            };
            let peak = reverse_all(fwd, replay.as_mut(), budget, &mut rev)?;
            (peak, replay.as_ref().map_or(0, |r| r.stats().drift_evals))
        }
        Pass::Recorded(_, tape) => {
            for k in (0..steps).rev() {
                let (rec, carried) = tape.step(k);
                rev.reverse_from(k, rec, carried);
            }
            // the carried states c_0 … c_N
            (steps + 1, 0)
        }
    };
    if let Some(e) = rev.error {
        return Err(GradError::Solve(e));
    }
    let bars = SdeStepBars {
        y: &mut rev.y_bar,
        carried: &mut rev.c_bar,
        err: None,
        p: &mut rev.dp,
    };
    let (t0, y0) = (problem.tspan.0, &problem.y0);
    rev.vjps += solver.start_vjp(&mut rev.work, &rev.fields, t0, y0, bars, &mut rev.stats)?;
    Ok(Gradient {
        loss: value,
        dp: rev.dp,
        dy0: rev.y_bar,
        backward_drift_evals,
        solution: match pass {
            Pass::Checkpointed(fwd) => fwd.solution,
            Pass::Recorded(solution, _) => solution,
        },
        vjps: rev.vjps,
        peak_stored_states: peak,
    })
}

/// Reverses SDE steps from their records (`ΔW ‖ H` the increments, `H`,
/// the space–time Lévy area, only for solvers that use it).
struct SdeReverse<'a, F, G, S: SdeStepVjp> {
    fields: Fields<'a, F, G>,
    solver: &'a S,
    m: usize,
    levy: bool,
    work: S::VjpWork,
    y_bar: Vec<f64>,
    /// The cotangent of the carried state (empty for most solvers).
    c_bar: Vec<f64>,
    dp: Vec<f64>,
    gy: &'a [f64],
    /// Whether every step's end state is saved (`SaveAt::Steps`) or only
    /// the last (`SaveAt::T1`).
    save_steps: bool,
    stats: Stats,
    vjps: usize,
    /// The first step that could not be reversed (the rest are skipped).
    error: Option<SolveError>,
}

impl<F: DriftVjp, G: DiffusionVjp, S: SdeStepVjp> SdeReverse<'_, F, G, S> {
    /// Reverses step `k` from its record, taken from the carried state
    /// `carried`, then takes in the cotangent of the state saved at its
    /// start.
    fn reverse_from(&mut self, k: usize, rec: &[f64], carried: &[f64]) {
        if self.error.is_some() {
            return;
        }
        let n = self.y_bar.len();
        let Record { t, h, y, noise } = Record::read(rec, n);
        let m = self.m;
        let noise = StepNoise {
            dw: &noise[..m],
            levy_h: if self.levy { &noise[m..2 * m] } else { &[] },
        };
        let bars = SdeStepBars {
            y: &mut self.y_bar,
            carried: &mut self.c_bar,
            err: None,
            p: &mut self.dp,
        };
        let at = StepAt { t, h, y };
        let (work, stats) = (&mut self.work, &mut self.stats);
        match (self.solver).step_vjp(work, &self.fields, at, carried, &noise, bars, stats) {
            Ok(v) => self.vjps += v,
            Err(e) => self.error = Some(e),
        }
        if self.save_steps {
            for j in 0..n {
                self.y_bar[j] += self.gy[k * n + j];
            }
        }
    }
}

impl<F: DriftVjp, G: DiffusionVjp, S: SdeStepVjp> ReverseStep for SdeReverse<'_, F, G, S> {
    fn reverse(&mut self, k: usize, rec: &[f64]) {
        self.reverse_from(k, rec, &[]);
    }
}

/// Records every accepted step `[t, t_next, y, increments]` and the carried
/// states `c_0, c_1, …` (the first given).
struct CarriedRecords {
    flat: Vec<f64>,
    carried: Vec<f64>,
    noise: Vec<f64>,
    record_len: usize,
}

impl CarriedRecords {
    /// Number of steps recorded.
    fn steps(&self) -> usize {
        self.flat.len() / self.record_len
    }

    /// The record of step `k` and the carried state it started from.
    fn step(&self, k: usize) -> (&[f64], &[f64]) {
        let (rl, cl) = (self.record_len, self.carried.len() / (self.steps() + 1));
        let rec = &self.flat[k * rl..(k + 1) * rl];
        (rec, &self.carried[k * cl..(k + 1) * cl])
    }
}

impl StepObserver for CarriedRecords {
    fn accepted_noise(&mut self, noise: &StepNoise<'_>) {
        let m = noise.dw.len();
        self.noise[..m].copy_from_slice(noise.dw);
        let rest = self.noise.len() - m;
        self.noise[m..].copy_from_slice(&noise.levy_h[..rest]);
    }

    fn accepted(&mut self, _m: usize, t: f64, t_next: f64, y: &[f64], _y_next: &[f64]) {
        self.flat.extend_from_slice(&[t, t_next]);
        self.flat.extend_from_slice(y);
        self.flat.extend_from_slice(&self.noise);
    }

    fn accepted_carried(&mut self, carried: &[f64]) {
        self.carried.extend_from_slice(carried);
    }
}

/// The carried state `solver` starts `problem` from (as the loop's start
/// makes it; empty for most solvers).
fn start_carried<F, G, D, S>(problem: &Problem<F, G, D>, solver: &S) -> Vec<f64>
where
    F: DriftVjp,
    G: DiffusionVjp,
    D: Driver,
    S: Solver<Problem<F, G, D>>,
{
    let mut cache = solver.init(problem);
    let (fields, (t0, y0)) = (Fields::new(problem), (problem.tspan.0, &problem.y0));
    let mut f0 = vec![0.0; y0.len()];
    let mut g0 = vec![0.0; problem.noise.map_or(0, |nz| nz.diffusion_len(y0.len()))];
    let mut stats = Stats::default();
    fields.f(t0, y0, &mut f0, &mut stats);
    fields.g(t0, y0, &mut g0, &mut stats);
    solver.start(&mut cache, &f0, &g0);
    solver.carried_state(&cache).to_vec()
}

/// The forward pass of the discrete adjoint.
enum Pass<Pb: Family, S: Solver<Pb>> {
    /// Snapshots at a budget (or every record).
    Checkpointed(Forward<Pb, S>),
    /// The solution and every step's record with its carried state.
    Recorded(Solution, CarriedRecords),
}

impl<Pb: Family, S: Solver<Pb>> Pass<Pb, S> {
    /// The length of the solver's carried state.
    fn carried_len(&self) -> usize {
        match self {
            Pass::Checkpointed(_) => 0,
            Pass::Recorded(_, tape) => tape.carried.len() / (tape.steps() + 1),
        }
    }
}

/// The solve the user asked for, keeping at most `budget` snapshots — or,
/// for a solver with carried state, every step's record with it.
fn forward_pass<F, G, D, S>(
    problem: &Problem<F, G, D>,
    solver: &S,
    opts: &Options,
    budget: usize,
) -> Result<Pass<Problem<F, G, D>, S>, GradError>
where
    F: DriftVjp,
    G: DiffusionVjp,
    D: Driver,
    S: Solver<Problem<F, G, D>>,
{
    let noise = problem
        .noise
        .ok_or_else(|| GradError::Unsupported("the SDE discrete adjoint needs an SDE".into()))?;
    let m = noise.brownian_dim(problem.dim());
    let levy = S::INCREMENT == Increment::DwLevyArea;
    let noise_len = if levy { 2 * m } else { m };
    // the run first: it validates the problem (dimensions, noise type for
    // this solver) before anything else is evaluated
    let mut run = Run::new(problem, solver, opts, None, true)?;
    let carried = start_carried(problem, solver);
    if !carried.is_empty() {
        let mut tape = CarriedRecords {
            flat: Vec::new(),
            noise: vec![0.0; noise_len],
            record_len: 2 + problem.dim() + noise_len,
            carried,
        };
        while !run.step(&mut tape)?.last {}
        return Ok(Pass::Recorded(run.finish(), tape));
    }
    if budget != usize::MAX && !problem.driver.requery() {
        return Err(GradError::Unsupported(format!(
            "the discrete adjoint with {budget} checkpoints recomputes steps between them on \
             the forward path, which the {} driver cannot re-query; store every step \
             (Adjoint::Discrete {{ checkpoints: usize::MAX }}) or drive the problem with \
             VirtualTree or CachedInterval",
            problem.driver.name()
        )));
    }
    Ok(Pass::Checkpointed(forward(run, budget, noise_len, levy)?))
}
