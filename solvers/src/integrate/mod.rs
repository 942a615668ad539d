//! The integration loop: drives any [`Solver`] with any step control and
//! save policy. One step body (`stepper.rs`) serves fixed and adaptive steps
//! (a [`Control`] says where each attempt ends and judges it), plain solves,
//! the adjoints' forward passes ([`Run`]) and their replays from a
//! [`Snapshot`]. The loop owns the initial step, the error norm, the
//! step-budget and underflow checks and the saving (`saver.rs`); it knows
//! nothing about a particular method.

use std::panic::{AssertUnwindSafe, catch_unwind};

mod control;
mod saver;
mod stepper;

pub use control::{Adaptive, AnyControl, Control, FixedSteps, GridSteps};
pub use stepper::{Accepted, Snapshot};

use crate::brownian::{BrownianPath, Driver, DynPath};
use crate::error::SolveError;
use crate::field::{Diffusion, Drift};
use crate::initial_step::initial_step;
use crate::options::Options;
use crate::problem::Problem;
use crate::solution::{KeptPath, Solution, Stats, Status};
use crate::solver::{Family, Fields, Increment, Solver, StepAt, StepNoise};
use saver::{Saver, Span};
use stepper::{Buf, Cursor, StateIn, StepBuffers, Stepper, Stop};

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
    if let Err(payload) = res {
        return Err(SolveError::DimensionMismatch {
            what: format!("{name} output"),
            expected: len,
            found: None,
            hint: format!(
                "the {name} panicked on a state of length {len} (\"{}\"); make y0 (and the \
                 noise type) match the dimension the {name} uses",
                crate::error::panic_message(&*payload)
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
/// given (the stochastic adjoint replays the forward path backwards; the
/// discrete adjoints replay it forwards).
enum Path<'p, P> {
    None,
    Own(P),
    Given(&'p mut dyn BrownianPath),
}

/// Where a solve's Brownian increments come from.
pub(crate) trait Draw {
    /// Writes the increment over `[s, t]` into `dw`, and what `kind` asks
    /// besides: its space–time Lévy area into `h`
    /// ([`Increment::DwLevyArea`]), or the OU modes' increments into
    /// `modes` ([`Increment::DwModes`]).
    fn draw(
        &mut self,
        s: f64,
        t: f64,
        kind: Increment,
        dw: &mut [f64],
        h: &mut [f64],
        modes: &mut [f64],
    );
}

impl<P: BrownianPath> Draw for Path<'_, P> {
    #[inline]
    fn draw(
        &mut self,
        s: f64,
        t: f64,
        kind: Increment,
        dw: &mut [f64],
        h: &mut [f64],
        modes: &mut [f64],
    ) {
        // static dispatch for the driver's own path: this runs once per step
        match self {
            Path::None => {}
            Path::Own(p) => draw_from(p, s, t, kind, dw, h, modes),
            Path::Given(p) => draw_from(&mut **p, s, t, kind, dw, h, modes),
        }
    }
}

impl<P: BrownianPath> Path<'_, P> {
    /// The number of OU modes per Brownian motion the path serves (0 for
    /// none, and for an ODE).
    fn modes_len(&self) -> usize {
        match self {
            Path::None => 0,
            Path::Own(p) => p.modes_len(),
            Path::Given(p) => p.modes_len(),
        }
    }
}

impl<P: DynPath + 'static> Path<'_, P> {
    /// What the solution keeps of this path: the path itself, moved, when
    /// the driver can re-query it (a given path stays with its owner).
    fn keep(self, requery: bool, t0: f64) -> Option<KeptPath> {
        match self {
            Path::Own(p) if requery => Some(KeptPath::new(Box::new(p), t0)),
            _ => None,
        }
    }
}

/// A path owned by a fixed-step loop that runs on it directly (no enum
/// dispatch), handed back when the loop ends.
struct Owned<P>(P);

impl<P: BrownianPath> Draw for Owned<P> {
    #[inline(always)]
    fn draw(
        &mut self,
        s: f64,
        t: f64,
        kind: Increment,
        dw: &mut [f64],
        h: &mut [f64],
        modes: &mut [f64],
    ) {
        draw_from(&mut self.0, s, t, kind, dw, h, modes);
    }
}

/// One attempted step, as the loop saw it: what progress displays,
/// statistics and (later) solver-heuristic regularizers observe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport<'a> {
    /// Start of the step.
    pub t: f64,
    /// Step size (signed).
    pub h: f64,
    /// The state at `t`.
    pub y: &'a [f64],
    /// The attempt's result at `t + h` (meaningless for a step that
    /// failed: see `err`).
    pub y_new: &'a [f64],
    /// The local error estimate the controller judged (`None` for fixed
    /// steps, and for an attempt that could not be taken).
    pub err: Option<&'a [f64]>,
    /// The scaled RMS norm of the error estimate that the controller judged
    /// (`None` for fixed steps, which have no controller decision; `+∞` for
    /// an attempt that could not be taken).
    pub err_norm: Option<f64>,
    /// The attempt's Brownian increment `W(t + h) − W(t)` (one entry per
    /// Brownian motion) and, where the solver draws it, its space–time Lévy
    /// area; both empty for ODEs (`levy_h` also for solvers without it).
    pub noise: StepNoise<'a>,
    /// Whether the step was accepted.
    pub accepted: bool,
}

/// Sees every accepted step of a solve (for example, an adjoint recording
/// its step times and checkpoints), and every attempted step's
/// [`StepReport`]. Called after the step is saved.
pub trait StepObserver {
    /// Step `index` went from `(t, y)` to `(t_next, y_next)`.
    fn accepted(&mut self, index: usize, t: f64, t_next: f64, y: &[f64], y_next: &[f64]);

    /// The method's carried state ([`Solver::carried_state`]) after the
    /// step just reported to [`StepObserver::accepted`]: the one the next
    /// step starts from (after a discontinuity, the restarted method's).
    /// Ignored by default.
    #[inline(always)]
    fn accepted_carried(&mut self, _carried: &[f64]) {}

    /// Every attempted step, accepted or rejected, before the loop moves on
    /// (for an accepted step: before [`StepObserver::accepted`]). Ignored by
    /// default.
    #[inline(always)]
    fn attempted(&mut self, _report: &StepReport<'_>) {}
}

/// Observes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl StepObserver for NoObserver {
    #[inline(always)]
    fn accepted(&mut self, _: usize, _: f64, _: f64, _: &[f64], _: &[f64]) {}
}

/// Solves `problem` with `solver` under `opts`.
pub fn integrate<F: Drift, G: Diffusion, D: Driver, S: Solver<Problem<F, G, D>>>(
    problem: &Problem<F, G, D>,
    solver: &S,
    opts: &Options,
) -> Result<Solution, SolveError> {
    integrate_observed(problem, solver, opts, &mut NoObserver)
}

/// [`integrate`], reporting every accepted step to `observer`.
pub fn integrate_observed<
    F: Drift,
    G: Diffusion,
    D: Driver,
    S: Solver<Problem<F, G, D>>,
    O: StepObserver,
>(
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
pub fn integrate_on_path<
    F: Drift,
    G: Diffusion,
    D: Driver,
    S: Solver<Problem<F, G, D>>,
    O: StepObserver,
>(
    problem: &Problem<F, G, D>,
    solver: &S,
    opts: &Options,
    observer: &mut O,
    given: Option<&mut dyn BrownianPath>,
) -> Result<Solution, SolveError> {
    let Setup {
        stepper,
        bufs,
        cursor,
        saver,
        path,
        m,
    } = setup(problem, solver, opts, given)?;
    let t0 = problem.tspan.0;
    // `drive` under the control `c` on `path`, with an increment buffer of
    // `m` entries (a macro: each control is another type)
    macro_rules! drive_on {
        ($c:expr, $path:expr) => {
            drive(
                stepper,
                bufs.map(|()| vec![0.0; m], |y| y),
                cursor.with($c),
                $path,
                saver,
                observer,
            )
        };
    }
    // the solution of a drive, with the path it ran on if the driver can
    // re-query it (what the adjoints replay)
    macro_rules! kept {
        ($driven:expr) => {{
            let (sol, path) = $driven;
            sol.map(|s| Solution {
                brownian: path.keep(problem.driver.requery(), t0),
                ..s
            })
        }};
    }
    let n = bufs.y.len();
    match (cursor.control.clone(), path) {
        // With one Brownian motion on the driver's own path of a fixed-step
        // solve, the increment buffer is a one-element array: its length is
        // known at compile time, so the draw and the step's read of the
        // increment collapse to one value kept in a register; so does a
        // scalar state.
        (AnyControl::Fixed(c), Path::Own(p)) => kept!({
            let (sol, own) = match (m, n) {
                (1, 1) => {
                    // the length of the state a constant of the loop: the
                    // step's slices need no bounds checks and its loops
                    // over the state collapse to one value in a register
                    let b = bufs.map(|()| [0.0; 1], |y| [y[0]]);
                    drive(stepper, b, cursor.with(c), Owned(p), saver, observer)
                }
                (1, _) => {
                    let b = bufs.map(|()| [0.0; 1], |y| y);
                    drive(stepper, b, cursor.with(c), Owned(p), saver, observer)
                }
                _ => drive_on!(c, Owned(p)),
            };
            (sol, Path::Own(own.0))
        }),
        (AnyControl::Fixed(c), path) => kept!(drive_on!(c, path)),
        (AnyControl::Grid(c), path) => kept!(drive_on!(c, path)),
        (AnyControl::Adaptive(c), path) => kept!(drive_on!(c, path)),
    }
}

/// A solve set up and not yet stepped.
struct Setup<'a, 'p, Pb: Family, S: Solver<Pb>, P> {
    stepper: Stepper<'a, Pb, S>,
    /// The state and the step's result (no increment buffer yet).
    bufs: StepBuffers<()>,
    cursor: Cursor<AnyControl>,
    saver: Saver<'a>,
    path: Path<'p, P>,
    /// Number of Brownian motions.
    m: usize,
}

/// The setup of a solve of a `Problem<F, G, D>` by `S`.
type SetupOf<'a, 'p, F, G, D, S> = Setup<'a, 'p, Problem<F, G, D>, S, <D as Driver>::Path>;

/// Validates `problem`, `solver` and `opts` against each other, checks the
/// fields' shapes at `t0`, builds the Brownian path and the control, and
/// allocates every buffer of the solve.
fn setup<'a, 'p, F: Drift, G: Diffusion, D: Driver, S: Solver<Problem<F, G, D>>>(
    problem: &'a Problem<F, G, D>,
    solver: &'a S,
    opts: &'a Options,
    given: Option<&'p mut dyn BrownianPath>,
) -> Result<SetupOf<'a, 'p, F, G, D, S>, SolveError> {
    problem.validate()?;
    let n = problem.dim();
    let (t0, t1) = problem.tspan;
    opts.validate(n, problem.tspan)?;
    solver.check(problem)?;
    let m = problem.noise.map_or(0, |nz| nz.brownian_dim(n));
    let fields = Fields::new(problem);
    let grid = !opts.controller.is_adaptive() && !opts.step_to.is_empty();
    let k_err = match (opts.controller.is_adaptive(), solver.error_order()) {
        (true, Some(k)) => Some(k),
        (_, _) if opts.dt0.is_some() || grid => None,
        _ => {
            return Err(SolveError::NeedsStepSize {
                solver: solver.name(),
            });
        }
    };
    if k_err.is_none() && !grid && !opts.step_to.is_empty() {
        // fixed steps of dt0 (a method without an error estimate under the
        // adaptive controller) would step past the times
        return Err(SolveError::invalid(
            "step_to",
            format!(
                "{} has no error estimate, so it takes fixed steps of dt0, which do not land \
                 on step_to's times: use Options::grid(times) for a fixed grid that holds \
                 them",
                solver.name()
            ),
        ));
    }
    let adaptive = k_err.is_some();
    let dir = (t1 - t0).signum();

    let mut stats = Stats::default();
    let y = problem.y0.clone();
    let mut f0 = vec![0.0; n];
    problem.drift.check_dims(n, problem.params.len())?;
    probe_field("drift", n, t0, &mut f0, |out| {
        problem.drift.drift(t0, &y, &problem.params, out)
    })
    .map_err(|e| problem.diagnose_probe("drift", t0, e))?;
    stats.drift_evals += 1;

    // SDEs: check the diffusion's shape once, and set up the Brownian path
    let levy = S::INCREMENT == Increment::DwLevyArea;
    let mut path = Path::None;
    let mut modes_len = 0;
    let mut g0 = Vec::new();
    if let Some(noise) = problem.noise {
        g0 = vec![0.0; noise.diffusion_len(n)];
        problem
            .diffusion
            .check_dims(n, problem.params.len(), g0.len())?;
        probe_field("diffusion", g0.len(), t0, &mut g0, |out| {
            problem.diffusion.diffusion(t0, &y, &problem.params, out)
        })
        .map_err(|e| problem.diagnose_probe("diffusion", t0, e))?;
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
        if S::INCREMENT == Increment::DwModes {
            modes_len = m * path.modes_len();
            if modes_len == 0 {
                return Err(SolveError::invalid(
                    "driver",
                    format!(
                        "{} reads the increments of the Ornstein–Uhlenbeck modes of a \
                         fractional noise, which the {} driver's path does not serve; drive \
                         the problem with fractional::FractionalNoise",
                        solver.name(),
                        problem.driver.name()
                    ),
                ));
            }
        }
    }

    let mut cache = solver.init(problem);
    solver.tolerances(&mut cache, &opts.rtol, &opts.atol);
    solver.start(&mut cache, &f0, &g0);
    let restart = restart_buffer(solver, &cache, opts, adaptive, n + g0.len())?;

    let control = match (k_err, opts.step_size(problem.tspan)) {
        (None, _) if grid => AnyControl::Grid(GridSteps::new(&opts.step_to, t1)),
        (None, h) => AnyControl::Fixed(FixedSteps::new(t0, t1, h.unwrap_or(0.0))),
        (Some(k), dt0) => {
            let h_abs = match dt0 {
                Some(h) => h,
                None => {
                    let mut scratch = vec![0.0; 2 * n];
                    initial_step(
                        &fields,
                        StepAt {
                            t: t0,
                            h: t1 - t0,
                            y: &y,
                        },
                        &f0,
                        solver.order(),
                        opts,
                        &mut scratch,
                        &mut stats,
                    )
                }
            };
            AnyControl::Adaptive(
                Adaptive::new(
                    opts.controller
                        .for_method(solver.suggested_controller(), solver.pi_gains()),
                    k,
                    dir * h_abs,
                    t1,
                    opts.dt_min,
                    opts.dt_max,
                )
                .stopping_at(&opts.step_to)
                .restarting_at(&opts.discontinuities),
            )
        }
    };
    let saver = Saver::new(opts, n, t0, &y, solver.dense_table(&cache), dir);
    Ok(Setup {
        stepper: Stepper {
            solver,
            fields,
            cache,
            opts,
            err: vec![0.0; n],
            levy_h: vec![0.0; if levy { m } else { 0 }],
            modes: vec![0.0; modes_len],
            restart,
            stats,
        },
        bufs: StepBuffers {
            y,
            dw: (),
            y_new: vec![0.0; n],
        },
        cursor: Cursor {
            t: t0,
            t_prev: t0,
            control,
            accepted: 0,
            attempts: 0,
            max_steps: opts.max_steps,
        },
        saver,
        path,
        m,
    })
}

/// The buffer where the method restarts after each of the options'
/// discontinuities (`len` entries: the drift, then the diffusion; empty
/// without discontinuities), or why it cannot: fixed steps, or a solver
/// that carries a state across steps which a restart would lose.
fn restart_buffer<Pb: Family, S: Solver<Pb>>(
    solver: &S,
    cache: &S::Cache,
    opts: &Options,
    adaptive: bool,
    len: usize,
) -> Result<Vec<f64>, SolveError> {
    if opts.discontinuities.is_empty() {
        return Ok(Vec::new());
    }
    if !adaptive {
        return Err(Options::fixed_discontinuities());
    }
    if !S::RESTARTS_CARRIED_STATE && !solver.carried_state(cache).is_empty() {
        return Err(SolveError::Unsupported {
            solver: solver.name(),
            what: "restarting after discontinuities (Options::discontinuities), as it \
                   carries a second state from step to step that a restart would discard"
                .into(),
            alternatives: "the other adaptive solvers (Sriw1, Sosri, Sra1, Sra3 for SDEs; any \
                           ODE solver with an error estimate); or keep this one with \
                           Options::step_to(times), which lands on the times without \
                           restarting"
                .into(),
        });
    }
    Ok(vec![0.0; len])
}

impl<A> Cursor<A> {
    /// This cursor with the control `control`.
    fn with<C>(self, control: C) -> Cursor<C> {
        Cursor {
            t: self.t,
            t_prev: self.t_prev,
            control,
            accepted: self.accepted,
            attempts: self.attempts,
            max_steps: self.max_steps,
        }
    }
}

impl<Pb: Family, S: Solver<Pb>> Stepper<'_, Pb, S> {
    /// Takes the next accepted step from the state in the buffer `from`,
    /// saving what it covers into `saver` (`None` when nothing is saved:
    /// asked once, not at every step); its result stays in the other buffer.
    #[inline(always)]
    fn step_and_save<C: Control, P: Draw + ?Sized, O: StepObserver, W: Buf, Y: Buf>(
        &mut self,
        b: &mut StepBuffers<W, Y>,
        cur: &mut Cursor<C>,
        path: &mut P,
        (saver, observer): (Option<&mut Saver<'_>>, &mut O),
        from: StateIn,
    ) -> Result<Accepted, Stop> {
        let a = self.advance(b, cur, path, observer, from)?;
        if let Some(saver) = saver {
            // copies of a scalar state: the buffers' own addresses never
            // reach the (not inlined) save
            let (y, y_new) = (b.y.lend(), b.y_new.lend());
            let (y, y_new) = from.pick(y.as_ref(), y_new.as_ref());
            saver.save(
                self.solver,
                &mut self.cache,
                &self.fields,
                Span {
                    t: a.t,
                    h: a.t_next - a.t,
                    t_next: a.t_next,
                    y,
                    y_new,
                },
                &mut self.stats,
            );
        }
        self.commit(b, cur, &a, observer, from);
        Ok(a)
    }
}

/// The error a stop is at step `step`, time `t` and state `y`, with the
/// solution up to there (a free function of values, so that no loop's
/// state has its address taken on the way out: the loops keep it in
/// registers).
#[inline(never)]
fn stopped(
    (name, max_steps, stats): (&'static str, usize, Stats),
    (t, step, y): (f64, usize, &[f64]),
    stop: Stop,
    saver: Saver<'_>,
) -> SolveError {
    let partial = |saver: Saver<'_>| Box::new(saver.finish(t, y, stats, Status::Incomplete, name));
    match stop {
        Stop::MaxSteps => SolveError::MaxStepsReached {
            t,
            max_steps,
            partial: partial(saver),
        },
        Stop::Underflow { dt } => SolveError::StepSizeUnderflow {
            t,
            dt,
            step,
            partial: partial(saver),
        },
        Stop::NonFinite { component } => SolveError::NonFiniteState { t, component, step },
        Stop::Controller => SolveError::invalid(
            "step controller",
            format!(
                "at t={t} (after {step} accepted steps) the controller returned a step factor \
                 that is not finite and > 0; StepController::decide must return a factor in \
                 (0, ∞)"
            ),
        ),
        Stop::NonlinearSolve { h } => SolveError::NonlinearSolve {
            solver: name,
            t,
            h,
            reason: "the stage equations did not converge, and a fixed-step solve cannot \
                     shrink the step"
                .into(),
        },
    }
}

/// Runs `stepper` from `cur` to `t1` (or to a stop) on `path`, saving and
/// observing each step; hands the path back.
#[inline(never)]
fn drive<Pb: Family, S: Solver<Pb>, C: Control, W: Buf, Y: Buf, P: Draw, O: StepObserver>(
    mut stepper: Stepper<'_, Pb, S>,
    bufs: StepBuffers<W, Y>,
    cur: Cursor<C>,
    path: P,
    mut saver: Saver<'_>,
    observer: &mut O,
) -> (Result<Solution, SolveError>, P) {
    // a by-value argument this large arrives behind a pointer to the
    // caller's copy; rebuilt field by field, the step's buffers (see
    // `StepBuffers`) and the cursor are locals of this function, which the
    // compiler splits into registers where their fields' addresses do not
    // escape (and the path, moved here, keeps its generator's state in
    // this frame); the stepper holds nothing the step's chain reads back
    let mut b = bufs.map(|dw| dw, |y| y);
    let mut path = path;
    let Cursor {
        t,
        t_prev,
        control,
        accepted,
        attempts,
        max_steps,
    } = cur;
    let mut cur = Cursor {
        t,
        t_prev,
        control,
        accepted,
        attempts,
        max_steps,
    };
    // Fixed steps go in pairs, the first from `y` into `y_new` and the
    // second back, so that the buffers never trade places; an adaptive
    // step (with its retries, a larger body) goes alone, and they swap.
    // Both are a constant for a concrete control, and the same step body.
    let pairs = !cur.control.adaptive();
    // asked once: whether accepted steps save anything
    let saves = saver.saves();
    let end = loop {
        let io = (saves.then_some(&mut saver), &mut *observer);
        match stepper.step_and_save(&mut b, &mut cur, &mut path, io, StateIn::Y) {
            Ok(a) if a.last || !pairs => {
                b.swap_states();
                if a.last {
                    break Ok(());
                }
                continue;
            }
            Ok(_) => {}
            Err(stop) => break Err(stop),
        }
        let io = (saves.then_some(&mut saver), &mut *observer);
        match stepper.step_and_save(&mut b, &mut cur, &mut path, io, StateIn::YNew) {
            Ok(a) if a.last => break Ok(()),
            Ok(_) => {}
            Err(stop) => {
                // the state the step started from, in `y` as a stop expects
                b.swap_states();
                break Err(stop);
            }
        }
    };
    if let Err(stop) = end {
        let what = (stepper.solver.name(), stepper.opts.max_steps, stepper.stats);
        let y = b.y.lend();
        let err = stopped(what, (cur.t, cur.accepted, y.as_ref()), stop, saver);
        return (Err(err), path);
    }
    let name = stepper.solver.name();
    let y = b.y.lend();
    let sol = saver.finish(cur.t, y.as_ref(), stepper.stats, Status::Success, name);
    (Ok(sol), path)
}

/// Draws the increment over `[s, t]` (with the Lévy area or the modes'
/// increments, as `kind` asks).
#[inline(always)]
fn draw_from<P: BrownianPath + ?Sized>(
    p: &mut P,
    s: f64,
    t: f64,
    kind: Increment,
    dw: &mut [f64],
    h: &mut [f64],
    modes: &mut [f64],
) {
    match kind {
        Increment::DwLevyArea => p.increment_with_levy_area(s, t, dw, h),
        Increment::DwModes => p.increment_with_modes(s, t, dw, modes),
        Increment::None | Increment::Dw => p.increment(s, t, dw),
    }
}

/// A solve taken one accepted step at a time: what the discrete adjoints
/// drive. Its forward pass is the solve the user asked for (same steps,
/// saves and path as [`integrate_observed`]); a [`Run::snapshot`] taken
/// between steps and later [`Run::restore`]d (into this run or another
/// built for the same problem, solver and options) regenerates exactly the
/// same steps, so an adjoint stores snapshots at a budget instead of every
/// step time.
pub struct Run<'a, 'p, Pb: Family, S: Solver<Pb>, P> {
    stepper: Stepper<'a, Pb, S>,
    bufs: StepBuffers,
    cur: Cursor<AnyControl>,
    saver: Saver<'a>,
    /// Whether accepted steps are saved (a replay saves nothing).
    save: bool,
    path: Path<'p, P>,
    /// Whether the solution keeps the path (the driver can re-query it).
    keep: bool,
    t0: f64,
}

impl<'a, 'p, F, G, D, S, P> Run<'a, 'p, Problem<F, G, D>, S, P>
where
    F: Drift,
    G: Diffusion,
    D: Driver<Path = P>,
    S: Solver<Problem<F, G, D>>,
    P: DynPath + 'static,
{
    /// Sets up the solve of `problem` by `solver` under `opts` (validating
    /// all three, as [`integrate`] does), on `given` (a replay's path) or
    /// else the path the problem's driver builds; a run with `save ==
    /// false` saves nothing.
    pub fn new(
        problem: &'a Problem<F, G, D>,
        solver: &'a S,
        opts: &'a Options,
        given: Option<&'p mut dyn BrownianPath>,
        save: bool,
    ) -> Result<Self, SolveError> {
        let Setup {
            stepper,
            bufs,
            cursor,
            saver,
            path,
            m,
        } = setup(problem, solver, opts, given)?;
        Ok(Run {
            stepper,
            bufs: bufs.map(|()| vec![0.0; m], |y| y),
            cur: cursor,
            saver,
            save,
            path,
            keep: problem.driver.requery(),
            t0: problem.tspan.0,
        })
    }
}

impl<'a, 'p, Pb: Family, S: Solver<Pb>, P: DynPath + 'static> Run<'a, 'p, Pb, S, P> {
    /// Takes the next accepted step (retrying rejected attempts), reporting
    /// attempts and the accepted step to `observer`.
    pub fn step<O: StepObserver>(&mut self, observer: &mut O) -> Result<Accepted, SolveError> {
        let (stepper, b, cur) = (&mut self.stepper, &mut self.bufs, &mut self.cur);
        let saver = (self.save && self.saver.saves()).then_some(&mut self.saver);
        let res = stepper
            .step_and_save(b, cur, &mut self.path, (saver, observer), StateIn::Y)
            .inspect(|_| b.swap_states());
        res.map_err(|stop| {
            let empty = self.saver.emptied();
            let saver = std::mem::replace(&mut self.saver, empty);
            let cur = &self.cur;
            let st = &self.stepper;
            let what = (st.solver.name(), st.opts.max_steps, st.stats);
            stopped(what, (cur.t, cur.accepted, &self.bufs.y), stop, saver)
        })
    }

    /// Time of the current state.
    pub fn t(&self) -> f64 {
        self.cur.t
    }

    /// Start of the last accepted step (`t0` before the first).
    pub fn t_prev(&self) -> f64 {
        self.cur.t_prev
    }

    /// Writes the increments of the run's path over `[s, t]` into `out`:
    /// `ΔW`, then the space–time Lévy area or the OU modes' increments when
    /// the solver uses them (nothing for an ODE). What a step over `[s, t]`
    /// would draw; [`Run::increments_len`] entries.
    pub fn increments(&mut self, s: f64, t: f64, out: &mut [f64]) {
        let kind = S::INCREMENT;
        let m = self.bufs.dw.len();
        let (dw, rest) = out.split_at_mut(m.min(out.len()));
        let (h_len, y_len) = match kind {
            Increment::DwLevyArea => (m.min(rest.len()), 0),
            Increment::DwModes => (0, self.stepper.modes.len().min(rest.len())),
            Increment::None | Increment::Dw => (0, 0),
        };
        let (h, modes) = rest.split_at_mut(h_len);
        self.path.draw(s, t, kind, dw, h, &mut modes[..y_len]);
    }

    /// The number of values [`Run::increments`] writes: `m` Brownian
    /// increments, then `m` Lévy areas or `m · K` mode increments when the
    /// solver reads them.
    pub fn increments_len(&self) -> usize {
        self.bufs.dw.len() + self.stepper.levy_h.len() + self.stepper.modes.len()
    }

    /// The current state.
    pub fn y(&self) -> &[f64] {
        &self.bufs.y
    }

    /// Number of steps accepted so far.
    pub fn accepted(&self) -> usize {
        self.cur.accepted
    }

    /// Evaluation counts so far.
    pub fn stats(&self) -> &Stats {
        &self.stepper.stats
    }

    /// What a replay needs to take the next steps again.
    pub fn snapshot(&self) -> Snapshot<S::Cache, AnyControl> {
        self.stepper.snapshot(&self.bufs.y, &self.cur)
    }

    /// Returns to `snap` (taken from a run of the same problem, solver and
    /// options); allocates nothing.
    pub fn restore(&mut self, snap: &Snapshot<S::Cache, AnyControl>) {
        self.stepper.restore(&mut self.bufs.y, &mut self.cur, snap)
    }

    /// The solution of a run that reached `t1`, keeping its path when the
    /// driver can re-query it.
    pub fn finish(self) -> Solution {
        let Run {
            stepper,
            bufs,
            cur,
            saver,
            path,
            keep,
            t0,
            ..
        } = self;
        let name = stepper.solver.name();
        let sol = saver.finish(cur.t, &bufs.y, stepper.stats, Status::Success, name);
        Solution {
            brownian: path.keep(keep, t0),
            ..sol
        }
    }
}
