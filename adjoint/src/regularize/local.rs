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
//!    the paper), and `R = P` of that step ([`ErrorEstimate`]: `E · dt`).
//!    Its gradient is the method's step VJP, with the error cotangent.
//!
//! The loss is `L + λR`. ODEs only for now (an SDE's step from `t_r` would
//! need its own increments, and the SDE discrete adjoint does not take
//! interpolated cotangents).

use std::cell::RefCell;

use sdeflow_solvers::brownian::Driver;
use sdeflow_solvers::error::SolveError;
use sdeflow_solvers::field::{DiffusionVjp, DriftVjp};
use sdeflow_solvers::initial_step::initial_step;
use sdeflow_solvers::integrate::integrate;
use sdeflow_solvers::options::{Options, SaveAt};
use sdeflow_solvers::problem::Problem;
use sdeflow_solvers::solution::Stats;
use sdeflow_solvers::solver::{Fields, StepArgs, StepAt, StepNoise, StepOut, StepStatus};
use sdeflow_solvers::step_vjp::{StepBars, StepVjp, VjpArgs, VjpNeeds};

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
    let mut cache = solver.init(problem);
    solver.start(&mut cache, &f0, &[]);
    let (mut y_new, mut err) = (vec![0.0; n], vec![0.0; n]);
    let at = StepAt {
        t: t_r,
        h: dt,
        y: z_r,
    };
    let args = StepArgs {
        fields: &fields,
        at,
        noise: &StepNoise::NONE,
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
        noise: &StepNoise::NONE,
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

/// The user's loss with `t_r` inserted at index `k` of the save times
/// (hidden from the user's loss), plus the regularized step from there.
struct WithLocal<'a, L: ?Sized, F, G, D, S, P> {
    loss: &'a L,
    k: usize,
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
    /// The user's times and states (without the inserted `t_r`).
    fn user_view(&self, ts: &[f64], ys: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
        let (mut t, mut y) = (ts.to_vec(), ys.to_vec());
        t.remove(self.k);
        y.drain(self.k * n..(self.k + 1) * n);
        (t, y)
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
        let (t, y) = self.user_view(ts, ys, n);
        let mut g = vec![0.0; y.len()];
        let task = self.loss.eval(&t, &y, &mut g);
        let k = self.k;
        for (j, chunk) in g.chunks(n).enumerate() {
            let at = if j >= k { j + 1 } else { j };
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
        let mut t = ts.to_vec();
        if self.k < t.len() {
            t.remove(self.k);
        }
        self.loss.check(&t, n)
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
    if problem.noise.is_some() {
        return Err(GradError::Unsupported(
            "local regularization of SDEs is not implemented yet (the regularized step would \
             need its own increments); use the global regularizer \
             (regularize::regularized_gradient) with an SRI method"
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
    let needs = VjpNeeds {
        err: true,
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
    let mut times = match &options.save_at {
        SaveAt::T1 => vec![t1],
        SaveAt::Times(ts) => ts.clone(),
        other => {
            return Err(GradError::Unsupported(format!(
                "local regularization with {other:?}: it adds t_r to the save times; save at \
                 SaveAt::T1 or SaveAt::Times"
            )));
        }
    };
    let k = times.iter().take_while(|&&t| (t - t_r) * dir < 0.0).count();
    times.insert(k, t_r);
    let opts = options.clone().save_at(SaveAt::Times(times));
    let wrapped = WithLocal {
        loss,
        k,
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
    // the user's solution: without the inserted t_r
    let n = problem.dim();
    let sol = &mut gradient.solution;
    if k < sol.ts.len() {
        sol.ts.remove(k);
        sol.ys.drain(k * n..(k + 1) * n);
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
