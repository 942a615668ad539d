//! Local regularization (Pal, Edelman, Rackauckas, "Locally Regularized
//! Neural Differential Equations: Some Black Boxes Were Meant to Remain
//! Closed!", ICML 2023, arXiv 2303.02262; `../shared/reference/regularizers.md`
//! §2): instead of every step's error estimate, the penalty of ONE step,
//! taken from the solution at a random time `t_r`:
//!
//! 1. `t_r` is drawn from a seed ([`RegTime`]): unbiased, uniform in the
//!    span; biased, one of the accepted step starts of the solve (found by
//!    a plain solve first, which costs one more forward solve); or given.
//! 2. `z(t_r)` is read from the main solve: `t_r` is added to the save
//!    times, so the solver's dense output gives it — one solve, no split —
//!    and its dependence on the parameters flows back through whatever
//!    adjoint the main solve uses (discrete, interpolating, backsolve), as
//!    the cotangent of that saved value.
//! 3. One step of the same method from `(t_r, z(t_r))` with the step size
//!    `dt` the initial-step heuristic proposes there (Hairer–Nørsett–Wanner
//!    I §II.4; held constant: the heuristic is not differentiated, as in
//!    the paper), and `R = P` of that step ([`ErrorEstimate`]: `E · dt`;
//!    [`super::Stiffness`]: the stiffness estimate of its stage pair). Its
//!    gradient is the method's step VJP, with the error cotangent (or the
//!    stage pair's cotangents).
//!
//! The loss is `L + λR`.
//!
//! For an SDE (an SRI or SRA method, whose step VJP takes the error
//! cotangent; LocalRegNeuralDE.jl's `neural_sde.jl` does the same with
//! SOSRI; losses on `SaveAt::T1`), `t_r` is instead made a step end of the
//! main solve (`Options::step_to`), which saves every step, so `z(t_r)` is
//! a step's result, which the SDE discrete adjoint differentiates (it does
//! not differentiate interpolated values); the regularized step draws its increments `ΔW` (and the Lévy
//! area `H`) over `[t_r, t_r + dt]` from the same Brownian path: the
//! problem's driver with the options' seed, which is the main solve's path
//! for every driver that regenerates its path from the seed (all built-in
//! ones). `dt` is clipped to the span.

use std::cell::RefCell;

use sdeflow_solvers::brownian::BrownianPath;
use sdeflow_solvers::brownian::Driver;
use sdeflow_solvers::error::SolveError;
use sdeflow_solvers::field::{DiffusionVjp, DriftVjp};
use sdeflow_solvers::initial_step::initial_step;
use sdeflow_solvers::integrate::integrate;
use sdeflow_solvers::options::{Options, SaveAt};
use sdeflow_solvers::problem::Problem;
use sdeflow_solvers::solution::Stats;
use sdeflow_solvers::solver::{
    Fields, Increment, StepArgs, StepAt, StepNoise, StepOut, StepStatus,
};
use sdeflow_solvers::step_vjp::{StagePair, StagePairBars, StepBars, StepVjp, VjpArgs, VjpNeeds};

use super::{ErrorEstimate, PenaltyBars, PenaltyStep, StepPenalty, check_weight};
use crate::loss::Loss;
use crate::{Adjoint, Differentiable, GradError, Gradient, grad};

/// Where the regularized step starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RegTime {
    /// Uniform in the span `[t0, t1)`, drawn from `seed`.
    Unbiased {
        /// The seed of the draw.
        seed: u64,
    },
    /// One of the accepted step starts of the solve, each as likely, drawn
    /// from `seed`.
    Biased {
        /// The seed of the draw.
        seed: u64,
    },
    /// At this time (in `[t0, t1)`).
    At(f64),
}

/// A local regularizer: `λ · P` of one step from `z(t_r)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Local<P = ErrorEstimate> {
    /// The penalty of the step.
    pub penalty: P,
    /// The weight `λ` (finite, ≥ 0).
    pub weight: f64,
    /// How `t_r` is chosen.
    pub time: RegTime,
    /// The step size of the regularized step; `None`: what the
    /// initial-step heuristic proposes at `(t_r, z(t_r))` (the paper).
    pub dt: Option<f64>,
}

impl Local<ErrorEstimate> {
    /// `λ · E · dt` of one step from a time drawn by `time`.
    pub fn error_estimate(weight: f64, time: RegTime) -> Self {
        Local {
            penalty: ErrorEstimate,
            weight,
            time,
            dt: None,
        }
    }
}

impl<P> Local<P> {
    /// The same regularizer with the regularized step's size fixed to `dt`.
    pub fn with_dt(mut self, dt: f64) -> Self {
        self.dt = Some(dt);
        self
    }
}

/// A gradient of `L + λR` with a local regularizer.
#[derive(Debug, Clone)]
pub struct LocalRegularized {
    /// `L + λR` in `gradient.loss`, its derivatives, the solution (saved as
    /// the options ask: `t_r` is not in it) and the main solve's work.
    pub gradient: Gradient,
    /// The task loss `L`.
    pub task: f64,
    /// `R` (unweighted).
    pub regularizer: f64,
    /// Where the regularized step started.
    pub t_r: f64,
    /// Its size.
    pub dt: f64,
    /// Drift evaluations of the regularized step (the heuristic, the step
    /// and its VJP's recomputation), besides the main solve's.
    pub drift_evals: usize,
}

/// A uniform number in `[0, 1)` from `seed` (SplitMix64; Steele, Lea,
/// Flood 2014).
fn uniform(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The outcome of the regularized step.
struct StepResult {
    value: f64,
    dt: f64,
    /// `∂(λP)/∂z_r`, `∂(λP)/∂p`.
    dz: Vec<f64>,
    dp: Vec<f64>,
    evals: usize,
}

/// Takes the regularized step from `(t_r, z_r)` and differentiates `λP`.
fn regularized_step<F, G, D, S, P>(
    problem: &Problem<F, G, D>,
    solver: &S,
    opts: &Options,
    reg: &Local<P>,
    (t_r, z_r): (f64, &[f64]),
) -> Result<StepResult, SolveError>
where
    F: DriftVjp,
    G: DiffusionVjp,
    D: Driver,
    S: StepVjp<Problem<F, G, D>>,
    P: StepPenalty,
{
    let n = z_r.len();
    let fields = Fields::new(problem);
    let mut stats = Stats::default();
    let mut f0 = vec![0.0; n];
    fields.f(t_r, z_r, &mut f0, &mut stats);
    let span = problem.tspan.1 - t_r;
    let dt = match reg.dt {
        Some(dt) => dt.abs() * span.signum(),
        None => {
            let mut scratch = vec![0.0; 2 * n];
            let at = StepAt {
                t: t_r,
                h: span,
                y: z_r,
            };
            let h = initial_step(
                &fields,
                at,
                &f0,
                solver.order(),
                opts,
                &mut scratch,
                &mut stats,
            );
            h * span.signum()
        }
    };
    let at = StepAt {
        t: t_r,
        h: dt,
        y: z_r,
    };
    if reg.penalty.reads_stage_pair() {
        return stage_pair_step(problem, solver, reg, at, stats);
    }
    // an SDE's step: on the main solve's Brownian path (the same driver
    // and seed), not beyond the span
    let dt = if problem.noise.is_some() && dt.abs() > span.abs() {
        span
    } else {
        dt
    };
    let at = StepAt { h: dt, ..at };
    let increments = step_increments(problem, solver, opts.seed, (t_r, dt))?;
    let m = increments.len() / 2;
    let noise = StepNoise {
        dw: &increments[..m],
        levy_h: if S::INCREMENT == Increment::DwLevyArea {
            &increments[m..]
        } else {
            &[]
        },
        modes: &[],
    };
    let mut g0 = vec![0.0; problem.noise.map_or(0, |nz| nz.diffusion_len(n))];
    if !g0.is_empty() {
        fields.g(t_r, z_r, &mut g0, &mut stats);
    }
    let mut cache = solver.init(problem);
    solver.start(&mut cache, &f0, &g0);
    let (mut y_new, mut err) = (vec![0.0; n], vec![0.0; n]);
    let args = StepArgs {
        fields: &fields,
        at,
        noise: &noise,
        out: StepOut {
            y_new: &mut y_new,
            err: &mut err,
        },
        stats: &mut stats,
    };
    if solver.step(&mut cache, args) == StepStatus::Failed {
        return Err(SolveError::Unsupported {
            solver: solver.name(),
            what: format!("the regularized step from t_r = {t_r} of size {dt} failed"),
            alternatives: "an explicit method".into(),
        });
    }
    let (mut err_bar, mut y_bar, mut y_new_bar) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let step = PenaltyStep {
        t: t_r,
        h: dt,
        y: z_r,
        y_new: &y_new,
        err: &err,
        rtol: &opts.rtol,
        atol: &opts.atol,
    };
    let bars = PenaltyBars {
        err: &mut err_bar,
        y: &mut y_bar,
        y_new: &mut y_new_bar,
    };
    let value = reg.penalty.eval(&step, bars);
    if !value.is_finite() {
        return Err(SolveError::NonFiniteState {
            t: t_r,
            component: y_new.iter().position(|v| !v.is_finite()).unwrap_or(0),
            step: 0,
        });
    }
    let w = reg.weight;
    err_bar.iter_mut().for_each(|v| *v *= w);
    y_new_bar.iter_mut().for_each(|v| *v *= w);
    let mut dp = vec![0.0; problem.params.len()];
    let mut work = solver.vjp_workspace(problem);
    let args = VjpArgs {
        fields: &fields,
        at,
        carried: &[],
        noise: &noise,
        bars: StepBars {
            y: &mut y_new_bar,
            carried: &mut [],
            err: Some(&err_bar),
            interp: &[],
            p: &mut dp,
        },
        stats: &mut stats,
    };
    solver.step_vjp(&mut work, args)?;
    for (d, b) in y_new_bar.iter_mut().zip(&y_bar) {
        *d += w * b;
    }
    Ok(StepResult {
        value,
        dt,
        dz: y_new_bar,
        dp,
        evals: stats.drift_evals,
    })
}

/// The Brownian increments of the regularized step `(t, dt)` of an SDE on
/// the path of the problem's driver with `seed` (the main solve's): `ΔW`
/// then, for a method that reads it, the Lévy area `H` (zeros otherwise),
/// `m` each; empty for an ODE.
fn step_increments<F, G, D, S>(
    problem: &Problem<F, G, D>,
    solver: &S,
    seed: u64,
    (t, dt): (f64, f64),
) -> Result<Vec<f64>, SolveError>
where
    F: DriftVjp,
    G: DiffusionVjp,
    D: Driver,
    S: StepVjp<Problem<F, G, D>>,
{
    let Some(noise) = problem.noise else {
        return Ok(Vec::new());
    };
    let m = noise.brownian_dim(problem.dim());
    let mut path = problem.driver.path(problem.tspan, m, seed)?;
    let mut out = vec![0.0; 2 * m];
    let (dw, h) = out.split_at_mut(m);
    match S::INCREMENT {
        Increment::DwLevyArea => path.increment_with_levy_area(t, t + dt, dw, h),
        Increment::None | Increment::Dw => path.increment(t, t + dt, dw),
        Increment::DwModes => {
            return Err(SolveError::Unsupported {
                solver: solver.name(),
                what: "local regularization of a method driven by OU modes".into(),
                alternatives: "an SRI method (Sosri, Sriw1) or an SRA method".into(),
            });
        }
    }
    Ok(out)
}

/// The regularized step `at` of a penalty of the stiffness stage pair:
/// the step VJP recomputes the stages and differentiates `λP` of them.
fn stage_pair_step<F, G, D, S, P>(
    problem: &Problem<F, G, D>,
    solver: &S,
    reg: &Local<P>,
    at: StepAt<'_>,
    mut stats: Stats,
) -> Result<StepResult, SolveError>
where
    F: DriftVjp,
    G: DiffusionVjp,
    D: Driver,
    S: StepVjp<Problem<F, G, D>>,
    P: StepPenalty,
{
    let rho = solver
        .stiffness_stages()
        .map_or(f64::NAN, |st| st.stability_size);
    let fields = Fields::new(problem);
    let (mut dz, mut dp) = (vec![0.0; at.y.len()], vec![0.0; problem.params.len()]);
    let mut value = f64::NAN;
    let mut hook = |pair: StagePair<'_>, bars: StagePairBars<'_>| {
        value = reg.penalty.eval_pair(&pair, rho, bars, reg.weight);
    };
    let mut no_carried: [f64; 0] = [];
    let args = VjpArgs {
        fields: &fields,
        at,
        carried: &[],
        noise: &StepNoise::NONE,
        bars: StepBars::states(&mut dz, &mut no_carried, &mut dp),
        stats: &mut stats,
    };
    solver.step_vjp_stage_pair(&mut solver.vjp_workspace(problem), args, Some(&mut hook))?;
    if !value.is_finite() {
        return Err(SolveError::NonFiniteState {
            t: at.t,
            component: 0,
            step: 0,
        });
    }
    Ok(StepResult {
        value,
        dt: at.h,
        dz,
        dp,
        evals: stats.drift_evals,
    })
}

/// The user's loss with `t_r` inserted at index `k` of the save times
/// (hidden from the user's loss), plus the regularized step from there.
struct WithLocal<'a, L: ?Sized, F, G, D, S, P> {
    loss: &'a L,
    /// Where `t_r` is among the saved times (`SaveAt::Times`), or `None`:
    /// the main solve saves every step (an SDE's), `t_r` is the step end
    /// at that time and the user's loss sees the last state only.
    k: Option<usize>,
    t_r: f64,
    problem: &'a Problem<F, G, D>,
    solver: &'a S,
    opts: &'a Options,
    reg: &'a Local<P>,
    /// The last evaluation's task loss and regularized step (or why it
    /// failed).
    out: RefCell<Option<(f64, Result<StepResult, SolveError>)>>,
}

impl<L, F, G, D, S, P> WithLocal<'_, L, F, G, D, S, P>
where
    L: Loss + ?Sized,
{
    /// The index of `t_r` among the saved times `ts` and the indices of
    /// the user's saved times.
    fn indices(&self, ts: &[f64]) -> Option<(usize, Vec<usize>)> {
        match self.k {
            Some(k) => Some((k, (0..ts.len()).filter(|&j| j != k).collect())),
            None => {
                let k = ts.iter().position(|&t| t == self.t_r)?;
                Some((k, vec![ts.len().checked_sub(1)?]))
            }
        }
    }
}

impl<L, F, G, D, S, P> Loss for WithLocal<'_, L, F, G, D, S, P>
where
    L: Loss + ?Sized,
    F: DriftVjp,
    G: DiffusionVjp,
    D: Driver,
    S: StepVjp<Problem<F, G, D>>,
    P: StepPenalty,
{
    fn eval(&self, ts: &[f64], ys: &[f64], grad: &mut [f64]) -> f64 {
        let n = self.problem.dim();
        grad.iter_mut().for_each(|v| *v = 0.0);
        let Some((k, user)) = self.indices(ts) else {
            let missing = SolveError::InvalidInput {
                what: "local regularizer time t_r".into(),
                reason: format!("{} is not a step end of the main solve", self.t_r),
            };
            *self.out.borrow_mut() = Some((f64::NAN, Err(missing)));
            return f64::NAN;
        };
        let t: Vec<f64> = user.iter().map(|&j| ts[j]).collect();
        let y: Vec<f64> = user
            .iter()
            .flat_map(|&j| ys[j * n..(j + 1) * n].iter().copied())
            .collect();
        let mut g = vec![0.0; y.len()];
        let task = self.loss.eval(&t, &y, &mut g);
        for (&at, chunk) in user.iter().zip(g.chunks(n)) {
            grad[at * n..(at + 1) * n].copy_from_slice(chunk);
        }
        let z_r = &ys[k * n..(k + 1) * n];
        let step = regularized_step(self.problem, self.solver, self.opts, self.reg, (ts[k], z_r));
        let total = match &step {
            Ok(s) => {
                for (g, d) in grad[k * n..(k + 1) * n].iter_mut().zip(&s.dz) {
                    *g += d;
                }
                task + self.reg.weight * s.value
            }
            Err(_) => f64::NAN,
        };
        *self.out.borrow_mut() = Some((task, step));
        total
    }

    fn check(&self, ts: &[f64], n: usize) -> Result<(), String> {
        match self.k {
            Some(k) => {
                let mut t = ts.to_vec();
                if k < t.len() {
                    t.remove(k);
                }
                self.loss.check(&t, n)
            }
            None => self.loss.check(&ts[ts.len().saturating_sub(1)..], n),
        }
    }
}

/// `L + λR` and its gradient, for `loss` on the solve of the ODE `problem`
/// with `solver` by `adjoint` (any adjoint `grad` offers for it) and the
/// local regularizer `reg` (module docs). The options must save at
/// `SaveAt::T1` or `SaveAt::Times` (`t_r` is added to the times).
///
/// ```
/// use sdeflow_adjoint::Adjoint;
/// use sdeflow_adjoint::regularize::local::{Local, RegTime, local_gradient};
/// use sdeflow_solvers::dual::{DualNum, Generic, GenericField};
/// use sdeflow_solvers::erk::Tsit5;
/// use sdeflow_solvers::options::{Options, SaveAt};
/// use sdeflow_solvers::problem::Problem;
///
/// struct Decay;
/// impl GenericField for Decay {
///     fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
///         dy[0] = -p[0] * y[0] * y[0];
///     }
/// }
/// let ode = Problem::ode_field(Generic(Decay), vec![1.0], (0.0, 1.0)).params(vec![3.0]);
/// let opts = Options::default().tol(1e-6).save_at(SaveAt::T1);
/// let loss = |_ts: &[f64], ys: &[f64], g: &mut [f64]| { g[0] = 2.0 * ys[0]; ys[0] * ys[0] };
/// let reg = Local::error_estimate(10.0, RegTime::Unbiased { seed: 3 });
/// let r = local_gradient(&ode, Tsit5, &opts, &loss, Adjoint::Interpolating, &reg).unwrap();
/// assert!(r.regularizer > 0.0 && r.t_r >= 0.0 && r.t_r < 1.0);
/// assert_eq!(r.gradient.solution.ts, vec![1.0]);
/// ```
pub fn local_gradient<F, G, D, S, L, P>(
    problem: &Problem<F, G, D>,
    solver: S,
    options: &Options,
    loss: &L,
    adjoint: Adjoint,
    reg: &Local<P>,
) -> Result<LocalRegularized, GradError>
where
    F: DriftVjp,
    G: DiffusionVjp,
    D: Driver,
    S: Differentiable<F, G, D> + StepVjp<Problem<F, G, D>> + Copy,
    L: Loss + ?Sized,
    P: StepPenalty,
{
    check_weight(reg.weight)?;
    if problem.noise.is_some() && reg.penalty.reads_stage_pair() {
        return Err(GradError::Unsupported(
            "a local stiffness regularizer of an SDE: the stiffness estimate reads two explicit \
             Runge–Kutta stages of an ODE step; use the error estimate \
             (Local::error_estimate) with an SRI method"
                .into(),
        ));
    }
    if let Some(dt) = reg.dt.filter(|dt| !dt.is_finite() || *dt == 0.0) {
        return Err(GradError::Solve(SolveError::InvalidInput {
            what: "local regularizer dt".into(),
            reason: format!("{dt} is not a finite non-zero step; give None (the heuristic)"),
        }));
    }
    let (t0, t1) = problem.tspan;
    let probe = (t0, &problem.y0[..], &problem.params[..]);
    let reads_pair = reg.penalty.reads_stage_pair();
    if reads_pair && solver.stiffness_stages().is_none() {
        return Err(GradError::Unsupported(format!(
            "a local stiffness regularizer with {}: no two stages of its step share a time, so \
             it has no stiffness estimate; use Tsit5, Dopri5 or Vern7",
            solver.name()
        )));
    }
    let needs = VjpNeeds {
        err: !reads_pair,
        interp: false,
    };
    solver
        .check_step_vjp(&problem.diffusion, probe, needs)
        .map_err(GradError::Unsupported)?;
    let t_r = match reg.time {
        RegTime::Unbiased { seed } => t0 + uniform(seed) * (t1 - t0),
        RegTime::Biased { seed } => {
            let plain = options.clone().save_at(SaveAt::Steps);
            let sol = integrate(problem, &solver, &plain)?;
            let starts = sol.ts.len().saturating_sub(1).max(1);
            let j = ((uniform(seed) * starts as f64) as usize).min(starts - 1);
            sol.ts[j]
        }
        RegTime::At(t) => t,
    };
    let (lo, hi) = (t0.min(t1), t0.max(t1));
    if !t_r.is_finite() || t_r < lo || t_r > hi || t_r == t1 {
        return Err(GradError::Solve(SolveError::InvalidInput {
            what: "local regularizer time t_r".into(),
            reason: format!("{t_r} is not in the span [{t0}, {t1}); give a time in it"),
        }));
    }
    let dir = (t1 - t0).signum();
    let sde = problem.noise.is_some();
    let (opts, k) = if sde {
        // an SDE's z(t_r) is a step end (its discrete adjoint does not
        // differentiate interpolated values): every step is saved and the
        // user's loss sees the last state
        if options.save_at != SaveAt::T1 {
            return Err(GradError::Unsupported(format!(
                "local regularization of an SDE with {:?}: it saves every step to read z(t_r) \
                 at a step end, and hands the loss the state at t1; save at SaveAt::T1",
                options.save_at
            )));
        }
        let mut opts = options.clone().save_at(SaveAt::Steps);
        if (t_r - t0) * dir > 0.0 && !opts.step_to.contains(&t_r) {
            let j = opts
                .step_to
                .iter()
                .take_while(|&&t| (t - t_r) * dir < 0.0)
                .count();
            opts.step_to.insert(j, t_r);
        }
        (opts, None)
    } else {
        let mut times = match &options.save_at {
            SaveAt::T1 => vec![t1],
            SaveAt::Times(ts) => ts.clone(),
            other => {
                return Err(GradError::Unsupported(format!(
                    "local regularization with {other:?}: it adds t_r to the save times; save \
                     at SaveAt::T1 or SaveAt::Times"
                )));
            }
        };
        let k = times.iter().take_while(|&&t| (t - t_r) * dir < 0.0).count();
        times.insert(k, t_r);
        (options.clone().save_at(SaveAt::Times(times)), Some(k))
    };
    let wrapped = WithLocal {
        loss,
        k,
        t_r,
        problem,
        solver: &solver,
        opts: &opts,
        reg,
        out: RefCell::new(None),
    };
    let result = grad(problem, solver, &opts, &wrapped, adjoint);
    let (mut gradient, task, step) = match (result, wrapped.out.into_inner()) {
        (Ok(g), Some((task, Ok(step)))) => (g, task, step),
        (_, Some((_, Err(e)))) => return Err(GradError::Solve(e)),
        (Err(e), _) => return Err(e),
        (Ok(_), None) => {
            return Err(GradError::Loss(
                "the adjoint did not evaluate the loss (no regularized step)".into(),
            ));
        }
    };
    for (g, d) in gradient.dp.iter_mut().zip(&step.dp) {
        *g += d;
    }
    // the user's solution: without the inserted t_r (an SDE's: its end)
    let n = problem.dim();
    let sol = &mut gradient.solution;
    match k {
        Some(k) if k < sol.ts.len() => {
            sol.ts.remove(k);
            sol.ys.drain(k * n..(k + 1) * n);
        }
        Some(_) => {}
        None => {
            let last = sol.ts.len().saturating_sub(1);
            sol.ts.drain(..last);
            sol.ys.drain(..last * n);
        }
    }
    Ok(LocalRegularized {
        gradient,
        task,
        regularizer: step.value,
        t_r,
        dt: step.dt,
        drift_evals: step.evals,
    })
}
