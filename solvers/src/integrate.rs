//! The integration loop: drives any [`Solver`] with any controller and save
//! policy. It owns the step-size logic (initial step, clipping to `t1` and
//! `dt_max`, underflow and step-budget checks), the error norm and the saving;
//! it knows nothing about a particular method. Fixed-step solves run in a
//! loop of their own (the step count is known up front and every step is
//! accepted), which does the same steps with less bookkeeping per step.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::brownian::{BrownianPath, Driver, DynPath};
use crate::controller::StepController;
use crate::dense::{DenseOutput, combine, poly_weights};
use crate::error::SolveError;
use crate::field::{Diffusion, Drift};
use crate::initial_step::initial_step;
use crate::norm::scaled_rms;
use crate::options::{Options, SaveAt};
use crate::problem::Problem;
use crate::solution::{KeptPath, Solution, Stats, Status};
use crate::solver::{Fields, Solver, StepNoise};

/// A NaN with a payload no arithmetic produces: marks components a field
/// did not write.
const UNWRITTEN: u64 = 0x7ff8_dead_beef_0001;

/// Evaluates a field once on a buffer of `len` entries pre-filled with a
/// marker, turning an out-of-bounds panic or unwritten entries into a
/// [`SolveError::DimensionMismatch`] and non-finite output into
/// [`SolveError::NonFiniteDerivative`]. Used once per solve, before the loop.
pub fn probe_field(
    name: &'static str,
    len: usize,
    t: f64,
    out: &mut [f64],
    eval: impl FnOnce(&mut [f64]),
) -> Result<(), SolveError> {
    debug_assert_eq!(out.len(), len);
    out.iter_mut().for_each(|v| *v = f64::from_bits(UNWRITTEN));
    let res = catch_unwind(AssertUnwindSafe(|| eval(out)));
    if res.is_err() {
        return Err(SolveError::DimensionMismatch {
            what: format!("{name} output"),
            expected: len,
            found: None,
            hint: format!(
                "the {name} panicked on a state of length {}; make y0 (and the noise type) \
                 match the dimension the {name} uses",
                len
            ),
        });
    }
    if let Some(first) = out.iter().position(|v| v.to_bits() == UNWRITTEN) {
        let written = out.iter().filter(|v| v.to_bits() != UNWRITTEN).count();
        return Err(SolveError::DimensionMismatch {
            what: format!("{name} output"),
            expected: len,
            found: Some(written),
            hint: format!(
                "the {name} left component {first} unwritten; make y0 (and the noise type) \
                 match the dimension the {name} writes"
            ),
        });
    }
    if let Some(component) = out.iter().position(|v| !v.is_finite()) {
        return Err(SolveError::NonFiniteDerivative {
            field: name,
            t,
            component,
            step: 0,
        });
    }
    Ok(())
}

/// The Brownian motion of an SDE solve: built from the problem's driver, or
/// given (the stochastic adjoint replays the forward path backwards).
enum Path<'p, P> {
    None,
    Own(P),
    Given(&'p mut dyn BrownianPath),
}

/// Where a solve's Brownian increments come from.
trait Draw {
    /// Writes the increment over `[s, t]` into `dw`, and its space–time
    /// Lévy area into `h` when `levy`.
    fn draw(&mut self, s: f64, t: f64, levy: bool, dw: &mut [f64], h: &mut [f64]);
}

impl<P: BrownianPath> Draw for Path<'_, P> {
    #[inline]
    fn draw(&mut self, s: f64, t: f64, levy: bool, dw: &mut [f64], h: &mut [f64]) {
        // static dispatch for the driver's own path: this runs once per step
        match self {
            Path::None => {}
            Path::Own(p) => draw_from(p, s, t, levy, dw, h),
            Path::Given(p) => {
                if levy {
                    p.increment_with_levy_area(s, t, dw, h);
                } else {
                    p.increment(s, t, dw);
                }
            }
        }
    }
}

impl<P: DynPath + 'static> Path<'_, P> {
    /// What the solution keeps of this path: the path itself, moved, when
    /// the driver can re-query it (a given path stays with its owner).
    fn keep<D: Driver<Path = P>>(self, driver: &D, t0: f64) -> Option<KeptPath> {
        match self {
            Path::Own(p) if driver.requery() => Some(KeptPath::new(Box::new(p), t0)),
            _ => None,
        }
    }
}

/// A path owned by a fixed-step loop that runs on it directly (no enum
/// dispatch), handed back when the loop ends.
struct Owned<P>(P);

impl<P: BrownianPath> Draw for Owned<P> {
    #[inline(always)]
    fn draw(&mut self, s: f64, t: f64, levy: bool, dw: &mut [f64], h: &mut [f64]) {
        draw_from(&mut self.0, s, t, levy, dw, h);
    }
}

/// What the loop has saved so far.
struct Saved {
    ts: Vec<f64>,
    ys: Vec<f64>,
    dense: Option<DenseOutput>,
}

impl Saved {
    fn into_solution(
        mut self,
        n: usize,
        t: f64,
        y: &[f64],
        stats: Stats,
        status: Status,
        name: &str,
    ) -> Solution {
        if self.ts.last() != Some(&t) {
            self.ts.push(t);
            self.ys.extend_from_slice(y);
        }
        Solution {
            ts: self.ts,
            ys: self.ys,
            n,
            stats,
            status,
            solver: name.to_string(),
            dense: self.dense,
            brownian: None,
        }
    }
}

/// [`SaveAt`] without its times: what to do after each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SaveKind {
    T1,
    Steps,
    Dense,
    Times,
}

/// The save policy of a solve and what it has saved so far; both loops
/// hand it every accepted step.
struct Saver<'o> {
    saved: Saved,
    save_at: SaveKind,
    /// The requested times of `SaveAt::Times` (empty otherwise).
    save_times: &'o [f64],
    /// The next requested time not yet saved.
    next_save: usize,
    /// The interpolant's weight polynomials, and a buffer for their values.
    poly: Vec<f64>,
    ncoef: usize,
    nk: usize,
    w: Vec<f64>,
    n: usize,
    dir: f64,
}

impl Saver<'_> {
    /// Saves what the accepted step from `(t, y)` to `(t + h, y_new)` covers.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn accepted<F: Drift, G: Diffusion, S: Solver>(
        &mut self,
        solver: &S,
        cache: &mut S::Cache,
        fields: &Fields<'_, F, G>,
        t: f64,
        h: f64,
        t_next: f64,
        y: &[f64],
        y_new: &[f64],
        stats: &mut Stats,
    ) {
        if self.save_at != SaveKind::T1 {
            self.save(solver, cache, fields, t, h, t_next, y, y_new, stats);
        }
    }

    /// [`Saver::accepted`] for every policy (out of line; nothing to do
    /// for `SaveAt::T1`).
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn save<F: Drift, G: Diffusion, S: Solver>(
        &mut self,
        solver: &S,
        cache: &mut S::Cache,
        fields: &Fields<'_, F, G>,
        t: f64,
        h: f64,
        t_next: f64,
        y: &[f64],
        y_new: &[f64],
        stats: &mut Stats,
    ) {
        match self.save_at {
            SaveKind::T1 => {}
            SaveKind::Steps => {
                self.saved.ts.push(t_next);
                self.saved.ys.extend_from_slice(y_new);
            }
            SaveKind::Dense => self.dense(solver, cache, fields, t, h, t_next, y, y_new, stats),
            SaveKind::Times => self.times(solver, cache, fields, t, h, t_next, y, y_new, stats),
        }
    }

    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn dense<F: Drift, G: Diffusion, S: Solver>(
        &mut self,
        solver: &S,
        cache: &mut S::Cache,
        fields: &Fields<'_, F, G>,
        t: f64,
        h: f64,
        t_next: f64,
        y: &[f64],
        y_new: &[f64],
        stats: &mut Stats,
    ) {
        let n = self.n;
        let ks = solver.dense_stages(cache, fields, t, h, y, y_new, stats);
        if let Some(d) = self.saved.dense.as_mut() {
            d.push(t, h, y, &ks[..self.nk * n]);
        }
        self.saved.ts.push(t_next);
        self.saved.ys.extend_from_slice(y_new);
    }

    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn times<F: Drift, G: Diffusion, S: Solver>(
        &mut self,
        solver: &S,
        cache: &mut S::Cache,
        fields: &Fields<'_, F, G>,
        t: f64,
        h: f64,
        t_next: f64,
        y: &[f64],
        y_new: &[f64],
        stats: &mut Stats,
    ) {
        let n = self.n;
        while self.next_save < self.save_times.len()
            && (self.save_times[self.next_save] - t_next) * self.dir <= 0.0
        {
            let ts = self.save_times[self.next_save];
            self.saved.ts.push(ts);
            if ts == t_next {
                self.saved.ys.extend_from_slice(y_new);
            } else {
                let ks = solver.dense_stages(cache, fields, t, h, y, y_new, stats);
                poly_weights(&self.poly, self.ncoef, (ts - t) / h, &mut self.w);
                let start = self.saved.ys.len();
                self.saved.ys.resize(start + n, 0.0);
                combine(y, h, &self.w, ks, &mut self.saved.ys[start..]);
            }
            self.next_save += 1;
        }
    }

    /// The solution of a solve that ended at `(t, y)`.
    fn finish(self, t: f64, y: &[f64], stats: Stats, status: Status, name: &str) -> Solution {
        let n = self.n;
        if status == Status::Success && self.save_at != SaveKind::T1 {
            // Steps/Dense saved t1 already; Times saves only what was asked for.
            return Solution {
                ts: self.saved.ts,
                ys: self.saved.ys,
                n,
                stats,
                status,
                solver: name.to_string(),
                dense: self.saved.dense,
                brownian: None,
            };
        }
        self.saved.into_solution(n, t, y, stats, status, name)
    }
}

/// One attempted step, as the loop saw it: what progress displays,
/// statistics and (later) solver-heuristic regularizers observe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Start of the step.
    pub t: f64,
    /// Step size (signed).
    pub h: f64,
    /// The scaled RMS norm of the error estimate that the controller judged
    /// (`None` for fixed steps, which have no controller decision).
    pub err_norm: Option<f64>,
    /// Whether the step was accepted.
    pub accepted: bool,
}

/// Sees every accepted step of a solve (for example, an adjoint recording
/// its step times and checkpoints), and every attempted step's
/// [`StepReport`]. Called after the step is saved.
pub trait StepObserver {
    /// Step `index` went from `(t, y)` to `(t_next, y_next)`.
    fn accepted(&mut self, index: usize, t: f64, t_next: f64, y: &[f64], y_next: &[f64]);

    /// The Brownian increments of the step about to be reported to
    /// [`StepObserver::accepted`] (empty for ODEs; empty `levy_h` unless the
    /// solver uses the Lévy area). Ignored by default.
    #[inline(always)]
    fn accepted_noise(&mut self, _noise: &StepNoise<'_>) {}

    /// The method's carried state ([`Solver::carried_state`]) after the
    /// step just reported to [`StepObserver::accepted`]. Ignored by default.
    #[inline(always)]
    fn accepted_carried(&mut self, _carried: &[f64]) {}

    /// Every attempted step, accepted or rejected, before the loop moves on
    /// (for an accepted step: before [`StepObserver::accepted`]). Ignored by
    /// default.
    #[inline(always)]
    fn attempted(&mut self, _report: &StepReport) {}
}

/// Observes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl StepObserver for NoObserver {
    #[inline(always)]
    fn accepted(&mut self, _: usize, _: f64, _: f64, _: &[f64], _: &[f64]) {}
}

/// Solves `problem` with `solver` under `opts`.
pub fn integrate<F: Drift, G: Diffusion, D: Driver, S: Solver>(
    problem: &Problem<F, G, D>,
    solver: &S,
    opts: &Options,
) -> Result<Solution, SolveError> {
    integrate_observed(problem, solver, opts, &mut NoObserver)
}

/// [`integrate`], reporting every accepted step to `observer`.
pub fn integrate_observed<F: Drift, G: Diffusion, D: Driver, S: Solver, O: StepObserver>(
    problem: &Problem<F, G, D>,
    solver: &S,
    opts: &Options,
    observer: &mut O,
) -> Result<Solution, SolveError> {
    integrate_on_path(problem, solver, opts, observer, None)
}

/// [`integrate_observed`] driving an SDE with a given Brownian path
/// (`None`: the path the problem's driver builds for the options' seed). The
/// stochastic adjoint uses it to replay the forward path backwards in time.
pub fn integrate_on_path<F: Drift, G: Diffusion, D: Driver, S: Solver, O: StepObserver>(
    problem: &Problem<F, G, D>,
    solver: &S,
    opts: &Options,
    observer: &mut O,
    given: Option<&mut dyn BrownianPath>,
) -> Result<Solution, SolveError> {
    problem.validate()?;
    let n = problem.dim();
    let (t0, t1) = problem.tspan;
    opts.validate(n, problem.tspan)?;
    solver.check(problem)?;
    let m = problem.noise.map_or(0, |nz| nz.brownian_dim(n));
    let fields = Fields::new(problem);
    let mut controller = opts.controller;
    controller.reset();
    let k_err = match (controller.is_adaptive(), solver.error_order()) {
        (true, Some(k)) => Some(k),
        (_, _) if opts.dt0.is_some() => None,
        (false, _) => {
            return Err(SolveError::NeedsStepSize {
                solver: solver.name(),
            });
        }
        (true, None) => {
            return Err(SolveError::NeedsStepSize {
                solver: solver.name(),
            });
        }
    };
    let adaptive = k_err.is_some();
    let dir = (t1 - t0).signum();

    let mut stats = Stats::default();
    let y = problem.y0.clone();
    let mut f0 = vec![0.0; n];
    problem.drift.check_dims(n, problem.params.len())?;
    probe_field("drift", n, t0, &mut f0, |out| {
        problem.drift.drift(t0, &y, &problem.params, out)
    })?;
    stats.drift_evals += 1;

    // SDEs: check the diffusion's shape once, and set up the Brownian path
    let needs_levy = solver.needs_levy_area();
    let mut path = Path::None;
    let mut g0 = Vec::new();
    if let Some(noise) = problem.noise {
        g0 = vec![0.0; noise.diffusion_len(n)];
        problem
            .diffusion
            .check_dims(n, problem.params.len(), g0.len())?;
        probe_field("diffusion", g0.len(), t0, &mut g0, |out| {
            problem.diffusion.diffusion(t0, &y, &problem.params, out)
        })?;
        stats.diffusion_evals += 1;
        path = match given {
            Some(p) => Path::Given(p),
            None if adaptive && !problem.driver.requery() => {
                return Err(SolveError::invalid(
                    "driver",
                    format!(
                        "the {} driver draws each increment once, in order, but adaptive \
                         steps re-query the path after a rejection; drive the problem with \
                         VirtualTree (the default) or give fixed steps",
                        problem.driver.name()
                    ),
                ));
            }
            None => Path::Own(problem.driver.path(problem.tspan, m, opts.seed)?),
        };
    }
    let levy_h = vec![0.0; if needs_levy { m } else { 0 }];

    let mut cache = solver.init(problem);
    solver.start(&mut cache, &f0, &g0);

    let h_abs = match opts.dt0 {
        Some(dt) => dt.abs().min(opts.dt_max),
        None => {
            let mut scratch = vec![0.0; 2 * n];
            initial_step(
                &fields,
                t0,
                &y,
                &f0,
                t1,
                solver.order(),
                opts,
                &mut scratch,
                &mut stats,
            )
        }
    };
    let mut h = dir * h_abs;

    let table = solver.dense_table(&cache);
    let (nk, ncoef) = (table.nk, table.ncoef);
    let poly = table.poly.to_vec();
    let mut saver = Saver {
        saved: Saved {
            ts: Vec::new(),
            ys: Vec::new(),
            dense: match opts.save_at {
                SaveAt::Dense => Some(DenseOutput::new(n, nk, ncoef, poly.clone())),
                _ => None,
            },
        },
        save_at: match opts.save_at {
            SaveAt::T1 => SaveKind::T1,
            SaveAt::Steps => SaveKind::Steps,
            SaveAt::Dense => SaveKind::Dense,
            SaveAt::Times(_) => SaveKind::Times,
        },
        save_times: match &opts.save_at {
            SaveAt::Times(ts) => ts,
            _ => &[],
        },
        next_save: 0,
        poly,
        ncoef,
        nk,
        w: vec![0.0; nk],
        n,
        dir,
    };
    match opts.save_at {
        SaveAt::Steps | SaveAt::Dense => {
            saver.saved.ts.push(t0);
            saver.saved.ys.extend_from_slice(&y);
        }
        SaveAt::Times(_) => {
            let save_times = saver.save_times;
            while saver.next_save < save_times.len() && save_times[saver.next_save] == t0 {
                saver.saved.ts.push(t0);
                saver.saved.ys.extend_from_slice(&y);
                saver.next_save += 1;
            }
            saver.saved.ts.reserve(save_times.len());
            saver.saved.ys.reserve(save_times.len() * n);
        }
        SaveAt::T1 => {}
    }

    let state = State {
        t: t0,
        y,
        y_new: vec![0.0; n],
        err: vec![0.0; n],
        levy_h,
        cache,
        stats,
    };

    let Some(k_err) = k_err else {
        let grid = FixedGrid {
            t0,
            t1,
            dir,
            h: h_abs,
            steps: fixed_step_count(t1 - t0, h_abs),
            max_steps: opts.max_steps,
        };
        // With one Brownian motion on the sequential path of a fixed-step
        // solve, the increment buffer is a one-element array: its length is
        // known at compile time, so the draw and the step's read of the
        // increment collapse to one value kept in a register. Every other
        // path (and dimension) goes through the enum dispatch.
        return match path {
            Path::Own(p) => {
                let mut own = Owned(p);
                let sol = if m == 1 {
                    fixed_loop(
                        solver, &fields, state, saver, observer, &grid, &mut own, needs_levy,
                        [0.0; 1],
                    )
                } else {
                    fixed_loop(
                        solver,
                        &fields,
                        state,
                        saver,
                        observer,
                        &grid,
                        &mut own,
                        needs_levy,
                        vec![0.0; m],
                    )
                };
                let kept = Path::Own(own.0).keep(&problem.driver, t0);
                sol.map(|s| Solution {
                    brownian: kept,
                    ..s
                })
            }
            mut other => fixed_loop(
                solver,
                &fields,
                state,
                saver,
                observer,
                &grid,
                &mut other,
                needs_levy,
                vec![0.0; m],
            ),
        };
    };

    let State {
        mut t,
        mut y,
        mut y_new,
        mut err,
        mut levy_h,
        mut cache,
        mut stats,
    } = state;
    let mut dw = vec![0.0; m];
    let mut attempts = 0usize;
    loop {
        if attempts >= opts.max_steps {
            let partial = saver.finish(t, &y, stats, Status::Incomplete, solver.name());
            return Err(SolveError::MaxStepsReached {
                t,
                max_steps: opts.max_steps,
                partial: Box::new(partial),
            });
        }
        // the end of this step
        let (t_next, last) = {
            let cand = t + h;
            if (cand - t1) * dir >= -0.01 * h.abs() {
                (t1, true)
            } else {
                (cand, false)
            }
        };
        let h_step = t_next - t;
        let floor = opts.dt_min.max(16.0 * f64::EPSILON * t.abs().max(1e-300));
        if h_step.abs() < floor && !last || h_step == 0.0 {
            let partial = saver.finish(t, &y, stats, Status::Incomplete, solver.name());
            return Err(SolveError::StepSizeUnderflow {
                t,
                dt: h_step.abs(),
                step: stats.accepted_steps,
                partial: Box::new(partial),
            });
        }

        path.draw(t, t_next, needs_levy, &mut dw, &mut levy_h);
        let noise = StepNoise {
            dw: &dw,
            levy_h: &levy_h,
        };
        solver.step(
            &mut cache, &fields, t, h_step, &y, &noise, &mut y_new, &mut err, &mut stats,
        );
        attempts += 1;

        let e = scaled_rms(&err, &y, &y_new, &opts.rtol, &opts.atol);
        let decision = controller.decide(e, k_err);
        observer.attempted(&StepReport {
            t,
            h: h_step,
            err_norm: Some(e),
            accepted: decision.accept,
        });

        if !decision.accept {
            stats.rejected_steps += 1;
            h = h_step * decision.factor;
            if h.abs() < floor {
                if let Some(component) = y_new.iter().position(|v| !v.is_finite()) {
                    return Err(SolveError::NonFiniteState {
                        t,
                        component,
                        step: stats.accepted_steps,
                    });
                }
                let partial = saver.finish(t, &y, stats, Status::Incomplete, solver.name());
                return Err(SolveError::StepSizeUnderflow {
                    t,
                    dt: h.abs(),
                    step: stats.accepted_steps,
                    partial: Box::new(partial),
                });
            }
            continue;
        }

        saver.accepted(
            solver, &mut cache, &fields, t, h_step, t_next, &y, &y_new, &mut stats,
        );
        observer.accepted_noise(&StepNoise {
            dw: &dw,
            levy_h: &levy_h,
        });
        observer.accepted(stats.accepted_steps, t, t_next, &y, &y_new);
        solver.accept(&mut cache);
        observer.accepted_carried(solver.carried_state(&cache));
        stats.accepted_steps += 1;
        t = t_next;
        std::mem::swap(&mut y, &mut y_new);
        if last {
            break;
        }
        h = (h_step * decision.factor).clamp(-opts.dt_max, opts.dt_max);
    }
    let sol = saver.finish(t, &y, stats, Status::Success, solver.name());
    Ok(Solution {
        brownian: path.keep(&problem.driver, t0),
        ..sol
    })
}

/// Draws the increment over `[s, t]` (with the Lévy area when `levy`).
#[inline(always)]
fn draw_from<P: BrownianPath>(
    p: &mut P,
    s: f64,
    t: f64,
    levy: bool,
    dw: &mut [f64],
    h: &mut [f64],
) {
    if levy {
        p.increment_with_levy_area(s, t, dw, h);
    } else {
        p.increment(s, t, dw);
    }
}

/// Whether every entry of `v` is finite.
#[inline(always)]
fn all_finite(v: &[f64]) -> bool {
    v.iter().all(|x| x.is_finite())
}

/// The state of a solve as the loops carry it (the step's output `y_new`,
/// the error estimate `err` and the Lévy areas are buffers).
struct State<C> {
    t: f64,
    y: Vec<f64>,
    y_new: Vec<f64>,
    err: Vec<f64>,
    levy_h: Vec<f64>,
    cache: C,
    stats: Stats,
}

/// The grid of a fixed-step solve: step `k` ends at `t0 + dir·(k+1)·h`, the
/// last one exactly at `t1`.
struct FixedGrid {
    t0: f64,
    t1: f64,
    dir: f64,
    h: f64,
    /// Number of steps (`usize::MAX`: more than any step budget).
    steps: usize,
    max_steps: usize,
}

/// Number of fixed steps of size `h > 0` that cover `span` (the last one
/// ends at `t1`; a remainder below `1e-12` of the span is not a step).
fn fixed_step_count(span: f64, h: f64) -> usize {
    let span = span.abs();
    let reach = |k: usize| k as f64 * h >= span * (1.0 - 1e-12);
    let estimate = span / h;
    if estimate.is_nan() || estimate >= 1e15 {
        // more steps than any budget allows (max_steps stops it)
        return usize::MAX;
    }
    let mut k = (estimate.ceil() as usize).max(1);
    while k > 1 && reach(k - 1) {
        k -= 1;
    }
    while !reach(k) {
        k += 1;
    }
    k
}

/// The loop of a fixed-step solve. Every step is accepted and the step
/// count is known up front, so the per-step bookkeeping of the adaptive
/// loop (clipping to `t1`, the controller, the underflow and budget tests)
/// is done once, and the state lives in locals of this function; the steps, their increments (drawn from `path` into `dw`), the checks,
/// the saves and the observer calls are those of the adaptive loop's
/// bookkeeping for fixed steps, in the same order, so results are
/// bit-identical. Steps go two at a time, so that `y` and `y_new` trade
/// places without a swap.
#[inline(never)]
fn fixed_loop<F: Drift, G: Diffusion, S: Solver, O: StepObserver>(
    solver: &S,
    fields: &Fields<'_, F, G>,
    state: State<S::Cache>,
    mut saver: Saver<'_>,
    observer: &mut O,
    grid: &FixedGrid,
    path: &mut impl Draw,
    levy: bool,
    mut dw: impl AsMut<[f64]> + AsRef<[f64]>,
) -> Result<Solution, SolveError> {
    let State {
        mut t,
        mut y,
        mut y_new,
        mut err,
        mut levy_h,
        mut cache,
        mut stats,
    } = state;
    let &FixedGrid {
        t0,
        t1,
        dir,
        h,
        steps,
        max_steps,
    } = grid;
    let first = stats.accepted_steps;
    let todo = steps.min(max_steps);
    let save = saver.save_at != SaveKind::T1;
    // `dir·(k+1)·h` as `(k+1)·(dir·h)`: the same product, as `dir = ±1`
    let dh = dir * h;
    // `k + 1` as a float, counted exactly (steps < 2^53)
    let mut next = 0.0;
    // step `k` from (t, y) into y_new
    macro_rules! one_step {
        ($k:expr, $y:ident, $y_new:ident) => {{
            let k = $k;
            next += 1.0;
            let t_next = if k + 1 == steps { t1 } else { t0 + next * dh };
            let h_step = t_next - t;
            path.draw(t, t_next, levy, dw.as_mut(), &mut levy_h);
            let noise = StepNoise {
                dw: dw.as_ref(),
                levy_h: &levy_h,
            };
            solver.step(
                &mut cache,
                fields,
                t,
                h_step,
                &$y,
                &noise,
                &mut $y_new,
                &mut err,
                &mut stats,
            );
            if S::CAN_FAIL && err.first() == Some(&crate::solver::STEP_FAILED) {
                return Err(SolveError::NonlinearSolve {
                    solver: solver.name(),
                    t,
                    h: h_step,
                    reason: "the stage equations did not converge, and a fixed-step solve \
                             cannot shrink the step"
                        .into(),
                });
            }
            if !all_finite(&$y_new) {
                return Err(SolveError::NonFiniteState {
                    t,
                    component: $y_new.iter().position(|v| !v.is_finite()).unwrap_or(0),
                    step: first + k,
                });
            }
            if save {
                saver.save(
                    solver, &mut cache, fields, t, h_step, t_next, &$y, &$y_new, &mut stats,
                );
            }
            observer.attempted(&StepReport {
                t,
                h: h_step,
                err_norm: None,
                accepted: true,
            });
            observer.accepted_noise(&noise);
            observer.accepted(first + k, t, t_next, &$y, &$y_new);
            solver.accept(&mut cache);
            observer.accepted_carried(solver.carried_state(&cache));
            t = t_next;
        }};
    }
    let mut k = 0;
    while k + 1 < todo {
        one_step!(k, y, y_new);
        one_step!(k + 1, y_new, y);
        k += 2;
    }
    if k < todo {
        one_step!(k, y, y_new);
        std::mem::swap(&mut y, &mut y_new);
    }
    stats.accepted_steps = first + todo;
    if todo < steps {
        let partial = saver.finish(t, &y, stats, Status::Incomplete, solver.name());
        return Err(SolveError::MaxStepsReached {
            t,
            max_steps,
            partial: Box::new(partial),
        });
    }
    Ok(saver.finish(t, &y, stats, Status::Success, solver.name()))
}
