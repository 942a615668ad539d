//! The one step body of every solve: draw the increments, take the step,
//! judge it, retry on rejection, and report the attempt. A plain solve, the
//! adjoints' forward passes and their replays from a checkpoint all run it;
//! a [`Snapshot`] holds everything a replay needs to regenerate the same
//! steps (state, the solver's carried workspace, the controller's state).

use super::control::Control;
use super::{Draw, StepObserver, StepReport};
use crate::norm::scaled_rms;
use crate::options::Options;
use crate::solution::Stats;
use crate::solver::{Family, FieldsOf, Solver, StepArgs, StepAt, StepNoise, StepOut, StepStatus};

/// Why the loop stopped before `t1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Stop {
    /// The step budget (`Options::max_steps`) is spent.
    MaxSteps,
    /// The step size fell below the floor.
    Underflow { dt: f64 },
    /// A fixed step left a non-finite state, or an adaptive step that
    /// underflowed did.
    NonFinite { component: usize },
    /// A fixed step's stage equations did not converge.
    NonlinearSolve { h: f64 },
    /// The controller gave a step factor that is not finite and `> 0`.
    Controller,
}

/// An accepted step, before the loop moves on to its end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accepted {
    /// Start of the step.
    pub t: f64,
    /// End of the step.
    pub t_next: f64,
    /// Whether it ends the solve.
    pub last: bool,
}

/// Everything a replay needs to take the same steps again from here.
#[derive(Debug, Clone)]
pub struct Snapshot<K, C> {
    t: f64,
    /// End of the step that led here (before `t` after a discontinuity).
    t_end: f64,
    t_prev: f64,
    y: Vec<f64>,
    cache: K,
    control: C,
    accepted: usize,
    attempts: usize,
}

impl<K, C> Snapshot<K, C> {
    /// The time of the snapshot.
    pub fn t(&self) -> f64 {
        self.t
    }

    /// End of the step that led to the snapshot: [`Snapshot::t`], except
    /// after a step that ended just before a discontinuity of the fields
    /// (the next step starts just after it).
    pub fn t_end(&self) -> f64 {
        self.t_end
    }

    /// Start of the step that led to the snapshot (`t0` at the start).
    pub fn t_prev(&self) -> f64 {
        self.t_prev
    }

    /// The state at [`Snapshot::t`].
    pub fn y(&self) -> &[f64] {
        &self.y
    }

    /// Number of steps accepted before it.
    pub fn step(&self) -> usize {
        self.accepted
    }

    /// The solver's workspace at [`Snapshot::t`] (after the last accepted
    /// step): where its carried state ([`Solver::carried_state`]) is read.
    pub fn cache(&self) -> &K {
        &self.cache
    }
}

/// Where a solve is: time, step counts and the control's state —
/// what changes from step to step. Kept apart from the [`Stepper`] so the
/// loop holds it in locals (registers) rather than behind a pointer.
pub(crate) struct Cursor<C> {
    pub t: f64,
    /// Start of the last accepted step (`t0` before the first).
    pub t_prev: f64,
    pub control: C,
    /// Steps accepted so far.
    pub accepted: usize,
    /// Steps attempted so far (accepted or not).
    pub attempts: usize,
    /// The step budget (`Options::max_steps`), here rather than read
    /// through the options at every step.
    pub max_steps: usize,
}

/// A buffer of a solve's values: a `Vec`, or an array whose length is a
/// constant of the monomorphised loop (one Brownian motion, a scalar state).
pub(crate) trait Buf: AsRef<[f64]> + AsMut<[f64]> {
    /// The values, to hand to a call the compiler does not inline: a copy
    /// for an array (so the array's own address never escapes and the loop
    /// keeps it in registers), the buffer itself for a `Vec`.
    type Lent<'b>: AsRef<[f64]>
    where
        Self: 'b;

    /// See [`Buf::Lent`].
    fn lend(&self) -> Self::Lent<'_>;
}

impl Buf for Vec<f64> {
    type Lent<'b> = &'b [f64];

    #[inline(always)]
    fn lend(&self) -> &[f64] {
        self
    }
}

impl<const N: usize> Buf for [f64; N] {
    type Lent<'b> = [f64; N];

    #[inline(always)]
    fn lend(&self) -> [f64; N] {
        *self
    }
}

/// The step's small buffers: `W` holds the increment, `Y` the state and the
/// step's result. Kept apart from the [`Stepper`] (the loop holds them in a
/// local of their own) and only ever passed to inlined code or [`Buf::lend`]
/// copies: a buffer whose address reached a call the compiler cannot see
/// through (the stepper's drop, a save) stays in memory, and scalar
/// Euler–Maruyama then pays a store and a reload on its dependency chain at
/// every step.
///
/// The layout is fixed (`repr(C)`) so that no two of the buffers are
/// adjacent where the compiler could pair `h·y_new[0]` and `g·dw[0]` into
/// one 16-byte load over two separate 8-byte stores, a store-to-load
/// forwarding failure on the step's dependency chain (measured on scalar
/// Euler–Maruyama: 2.04x the hand-written loop's time with the adjacent
/// layout, 1.57x without).
#[repr(C)]
pub(crate) struct StepBuffers<W = Vec<f64>, Y = Vec<f64>> {
    /// The state at the cursor's time, and the last step's result (between
    /// the two steps of a pair, the other way round: see [`StateIn`]).
    pub y: Y,
    pub dw: W,
    pub y_new: Y,
}

impl<W, Y> StepBuffers<W, Y> {
    /// These buffers, moved, with the increment buffer mapped by `fw` and
    /// the state buffers by `fy`.
    #[inline(always)]
    pub fn map<W2, Y2>(
        self,
        fw: impl FnOnce(W) -> W2,
        mut fy: impl FnMut(Y) -> Y2,
    ) -> StepBuffers<W2, Y2> {
        StepBuffers {
            y: fy(self.y),
            dw: fw(self.dw),
            y_new: fy(self.y_new),
        }
    }
}

impl<W: Buf, Y: Buf> StepBuffers<W, Y> {
    /// Makes the last step's result (in `y_new`) the state.
    #[inline(always)]
    pub fn swap_states(&mut self) {
        std::mem::swap(&mut self.y, &mut self.y_new);
    }
}

/// The fixed parts of a solve and its buffers other than the step's small
/// ones ([`StepBuffers`]).
pub(crate) struct Stepper<'a, Pb: Family, S: Solver<Pb>> {
    pub solver: &'a S,
    pub fields: FieldsOf<'a, Pb>,
    pub err: Vec<f64>,
    pub cache: S::Cache,
    pub opts: &'a Options,
    pub levy_h: Vec<f64>,
    /// The OU modes' increments, for a method that reads them
    /// ([`Increment::DwModes`]; empty otherwise).
    pub modes: Vec<f64>,
    /// The drift, then the diffusion, where the method restarts after a
    /// discontinuity (empty without discontinuities).
    pub restart: Vec<f64>,
    pub stats: Stats,
}

/// The first component of `y` that is not finite: tested as
/// `|v| <= f64::MAX` (false for ±∞ and NaN), three instructions a value
/// where `is_finite`'s bit test takes six, at every fixed step.
#[inline(always)]
fn first_non_finite(y: &[f64]) -> Option<usize> {
    let finite = |v: f64| v.abs() <= f64::MAX;
    if y.iter().all(|&v| finite(v)) {
        return None;
    }
    y.iter().position(|&v| !finite(v))
}

/// Which of a stepper's two state buffers holds the state a step starts
/// from; the step writes its result into the other. A loop that swaps the
/// buffers after each step ([`Stepper::swap_states`]) starts every step
/// from `y`; fixed steps go in pairs, the first from `y` into `y_new` and
/// the second back, so that the buffers never trade places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateIn {
    Y,
    YNew,
}

impl StateIn {
    /// The state and the buffer for the step's result, out of `y` and
    /// `y_new`.
    #[inline(always)]
    pub fn split<'b>(self, y: &'b mut [f64], y_new: &'b mut [f64]) -> (&'b [f64], &'b mut [f64]) {
        match self {
            StateIn::Y => (y, y_new),
            StateIn::YNew => (y_new, y),
        }
    }

    /// [`StateIn::split`] to read: the state and the step's result.
    #[inline(always)]
    pub fn pick<'b>(self, y: &'b [f64], y_new: &'b [f64]) -> (&'b [f64], &'b [f64]) {
        match self {
            StateIn::Y => (y, y_new),
            StateIn::YNew => (y_new, y),
        }
    }

    /// The buffer holding the state after a step from this one.
    #[inline(always)]
    pub fn other(self) -> StateIn {
        match self {
            StateIn::Y => StateIn::YNew,
            StateIn::YNew => StateIn::Y,
        }
    }
}

impl<Pb: Family, S: Solver<Pb>> Stepper<'_, Pb, S> {
    /// Attempts steps from `(t, y)` (the state in the buffer `from`) until
    /// one is accepted (its result in the other buffer, the loop not yet
    /// moved on: see [`Stepper::commit`]), reporting every attempt to
    /// `observer`.
    #[inline(always)]
    pub fn advance<C: Control, P: Draw + ?Sized, O: StepObserver, W: Buf, Y: Buf>(
        &mut self,
        b: &mut StepBuffers<W, Y>,
        cur: &mut Cursor<C>,
        path: &mut P,
        observer: &mut O,
        from: StateIn,
    ) -> Result<Accepted, Stop> {
        let adaptive = cur.control.adaptive();
        // the solver's constant for a concrete solver: no test per step
        let kind = S::INCREMENT;
        loop {
            // split afresh for each attempt (the report in between reads
            // the stepper), first in the body: split after the draw, the
            // fixed-step loop spills more (3 instructions per step)
            let (y, y_new) = from.split(b.y.as_mut(), b.y_new.as_mut());
            // one length for both (fewer bounds checks and registers)
            let y_new = &mut y_new[..y.len()];
            if cur.attempts >= cur.max_steps {
                return Err(Stop::MaxSteps);
            }
            let t = cur.t;
            let (t_next, last) = cur
                .control
                .propose(t)
                .map_err(|dt| Stop::Underflow { dt })?;
            let h = t_next - t;
            let (dw, levy_h, modes) = (b.dw.as_mut(), &mut self.levy_h, &mut self.modes);
            path.draw(t, t_next, kind, dw, levy_h, modes);
            let args = StepArgs {
                fields: &self.fields,
                at: StepAt { t, h, y },
                noise: &StepNoise {
                    dw: b.dw.as_ref(),
                    levy_h: &self.levy_h,
                    modes: &self.modes,
                },
                out: StepOut {
                    y_new: &mut *y_new,
                    err: &mut self.err,
                },
                stats: &mut self.stats,
            };
            let status = self.solver.step(&mut self.cache, args);
            cur.attempts += 1;
            if !adaptive {
                if status == StepStatus::Failed {
                    return Err(Stop::NonlinearSolve { h });
                }
                if let Some(component) = first_non_finite(y_new) {
                    return Err(Stop::NonFinite { component });
                }
                observer.attempted(&self.report(b, from, (t, h), None, true));
                return Ok(Accepted { t, t_next, last });
            }
            let e = match status {
                StepStatus::Taken => {
                    scaled_rms(&self.err, y, y_new, &self.opts.rtol, &self.opts.atol)
                }
                StepStatus::Failed => f64::INFINITY,
            };
            let k_err = self.solver.step_error_order(&self.cache);
            let verdict = cur.control.judge(e, k_err);
            let judged = Some((status == StepStatus::Taken, e));
            observer.attempted(&self.report(b, from, (t, h), judged, verdict == Ok(true)));
            match verdict {
                Ok(true) => return Ok(Accepted { t, t_next, last }),
                Ok(false) => self.stats.rejected_steps += 1,
                Err(dt) => {
                    self.stats.rejected_steps += 1;
                    if dt.is_nan() {
                        return Err(Stop::Controller);
                    }
                    let y_new = from.pick(b.y.as_ref(), b.y_new.as_ref()).1;
                    if status == StepStatus::Taken
                        && let Some(component) = first_non_finite(y_new)
                    {
                        return Err(Stop::NonFinite { component });
                    }
                    return Err(Stop::Underflow { dt });
                }
            }
        }
    }

    /// The report of the attempt from `t` of size `h` just taken from the
    /// state in the buffer `from`; `judged`: whether the step was taken and
    /// its error norm, for an attempt the controller judged (`None` for a
    /// fixed step).
    #[inline(always)]
    fn report<'b, W: Buf, Y: Buf>(
        &'b self,
        b: &'b StepBuffers<W, Y>,
        from: StateIn,
        (t, h): (f64, f64),
        judged: Option<(bool, f64)>,
        accepted: bool,
    ) -> StepReport<'b> {
        let (y, y_new) = from.pick(b.y.as_ref(), b.y_new.as_ref());
        StepReport {
            t,
            h,
            y,
            y_new,
            err: judged.and_then(|(taken, _)| taken.then_some(&self.err[..])),
            err_norm: judged.map(|(_, e)| e),
            noise: StepNoise {
                dw: b.dw.as_ref(),
                levy_h: &self.levy_h,
                modes: &self.modes,
            },
            accepted,
        }
    }

    /// Moves the loop to the end of the accepted step `a` taken from the
    /// buffer `from` (after the saves), telling `observer` — or, after a
    /// step that ended just before a discontinuity, to just after it,
    /// restarting the method there. The step's result stays in the other
    /// buffer.
    #[inline(always)]
    pub fn commit<C: Control, O: StepObserver, W: Buf, Y: Buf>(
        &mut self,
        b: &StepBuffers<W, Y>,
        cur: &mut Cursor<C>,
        a: &Accepted,
        observer: &mut O,
        from: StateIn,
    ) {
        let (y, y_new) = from.pick(b.y.as_ref(), b.y_new.as_ref());
        observer.accepted(cur.accepted, a.t, a.t_next, y, y_new);
        self.solver.accept(&mut self.cache);
        cur.accepted += 1;
        self.stats.accepted_steps += 1;
        cur.t_prev = a.t;
        cur.t = a.t_next;
        if let Some((_, start)) = cur.control.discontinuity() {
            // the state is the step's result, in the buffer other than `from`
            let y = from.other().pick(b.y.as_ref(), b.y_new.as_ref()).0;
            self.restart(start, y);
            cur.t = start;
        }
        // what the next step starts from (after a restart, the fresh one)
        observer.accepted_carried(self.solver.carried_state(&self.cache));
    }

    /// Restarts the method at `(t, y)` just after a discontinuity: the drift (and diffusion) evaluated
    /// afresh there replace whatever the method carried over from the step
    /// before (an FSAL stage, a cached Jacobian), as at the start of a
    /// solve.
    #[cold]
    #[inline(never)]
    fn restart(&mut self, t: f64, y: &[f64]) {
        let (f, g) = self.restart.split_at_mut(y.len());
        self.fields.f(t, y, f, &mut self.stats);
        if self.fields.noise.is_some() {
            self.fields.g(t, y, g, &mut self.stats);
        }
        self.solver.start(&mut self.cache, f, g);
    }

    /// What a replay needs to take the next steps again from `cur`.
    pub fn snapshot<C: Control>(&self, y: &[f64], cur: &Cursor<C>) -> Snapshot<S::Cache, C> {
        Snapshot {
            t: cur.t,
            t_end: cur.control.discontinuity().map_or(cur.t, |(end, _)| end),
            t_prev: cur.t_prev,
            y: y.to_vec(),
            cache: self.cache.clone(),
            control: cur.control.clone(),
            accepted: cur.accepted,
            attempts: cur.attempts,
        }
    }

    /// Returns to `snap` (no allocation: buffers are overwritten).
    pub fn restore<C: Control>(
        &mut self,
        y: &mut [f64],
        cur: &mut Cursor<C>,
        snap: &Snapshot<S::Cache, C>,
    ) {
        cur.t = snap.t;
        cur.t_prev = snap.t_prev;
        y.copy_from_slice(&snap.y);
        self.cache.clone_from(&snap.cache);
        cur.control.clone_from(&snap.control);
        cur.accepted = snap.accepted;
        cur.attempts = snap.attempts;
    }
}
