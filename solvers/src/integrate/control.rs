//! Where the next step ends: a fixed grid, or an error-controlled step
//! size ([`crate::controller`]). The loop asks a [`Control`] for the end of
//! each attempt and, for adaptive control, hands it the attempt's scaled
//! error norm; everything else in the loop is the same for both. Adaptive
//! control also clips steps to given stop times and ends them just before
//! discontinuities of the fields, where the loop restarts the method
//! ([`Control::discontinuity`]).

use std::sync::Arc;

use crate::controller::{Controller, StepController};

/// Chooses the steps of a solve (fixed grid or adaptive); cloned into the
/// adjoints' checkpoints so a replay regenerates the same steps.
pub trait Control: Clone {
    /// Whether attempts are judged by their error estimate (else every
    /// attempt is accepted, and one that fails or leaves the state
    /// non-finite ends the solve). Fixed steps by default.
    #[inline(always)]
    fn adaptive(&self) -> bool {
        false
    }

    /// The end of the next attempt from `t`, and whether it ends the solve;
    /// `Err(dt)` when the step would underflow (too small to advance `t`).
    fn propose(&mut self, t: f64) -> Result<(f64, bool), f64>;

    /// Judges the attempt just proposed from its scaled error norm `err`
    /// (called only when [`Control::adaptive`]) and the order `k_err` of the
    /// estimate (the solver's
    /// [`Solver::step_error_order`](crate::solver::Solver::step_error_order); `None`:
    /// the order the control was built with): whether it is accepted, or
    /// `Err(dt)` when it is rejected and the next step would underflow
    /// (`Err(NaN)`: the controller gave a factor that is not finite and
    /// `> 0`). Accepts every attempt by default.
    #[inline(always)]
    fn judge(&mut self, _err: f64, _k_err: Option<f64>) -> Result<bool, f64> {
        Ok(true)
    }

    /// After an accepted attempt that ended just before a discontinuity of
    /// the fields: `Some((end, start))`, the attempt's end and the time just
    /// after the discontinuity where the next step starts, with the method
    /// restarted there ([`crate::options::Options::discontinuities`]). `None` (the
    /// default) otherwise. Meaningful from the acceptance until the next
    /// [`Control::propose`].
    #[inline(always)]
    fn discontinuity(&self) -> Option<(f64, f64)> {
        None
    }
}

/// Fixed steps of size `h`: step `k` ends at `t0 + dir·(k+1)·h`, the last
/// one exactly at `t1`; every attempt is accepted.
#[derive(Debug, Clone)]
pub struct FixedSteps {
    t0: f64,
    t1: f64,
    dh: f64,
    /// Number of steps, as a float: exact, as counts below `1e15` are; a
    /// count past any step budget is `usize::MAX as f64`, which `next`
    /// never reaches (it stops growing at 2^53).
    steps: f64,
    /// Steps proposed so far, counted exactly as a float (one counter
    /// for both the test of the last step and the grid point).
    next: f64,
}

impl FixedSteps {
    /// Steps of size `h > 0` from `t0` to `t1`.
    pub fn new(t0: f64, t1: f64, h: f64) -> Self {
        FixedSteps {
            t0,
            t1,
            dh: (t1 - t0).signum() * h,
            steps: fixed_step_count(t1 - t0, h) as f64,
            next: 0.0,
        }
    }
}

impl Control for FixedSteps {
    #[inline(always)]
    fn propose(&mut self, _t: f64) -> Result<(f64, bool), f64> {
        self.next += 1.0;
        if self.next == self.steps {
            return Ok((end_of_span(self.t1), true));
        }
        // `dir·(k+1)·h` as `(k+1)·(dir·h)`: the same product, as `dir = ±1`
        Ok((self.t0 + self.next * self.dh, false))
    }
}

/// `t1`, from a function the compiler does not inline: the last fixed
/// step's end then stays a branch taken once, where the compiler would
/// otherwise compute both ends at every step and select one.
#[cold]
#[inline(never)]
fn end_of_span(t1: f64) -> f64 {
    std::hint::black_box(t1)
}

/// Fixed steps on a given grid: step `k` ends at `grid[k]`, the last grid
/// point being `t1`; every attempt is accepted.
#[derive(Debug, Clone)]
pub struct GridSteps {
    grid: Arc<[f64]>,
    /// Steps proposed so far.
    k: usize,
}

impl GridSteps {
    /// Steps through `times` (strictly monotone towards `t1`) and then to
    /// `t1`.
    pub fn new(times: &[f64], t1: f64) -> Self {
        let grid: Vec<f64> = times.iter().copied().chain(std::iter::once(t1)).collect();
        GridSteps {
            grid: grid.into(),
            k: 0,
        }
    }
}

impl Control for GridSteps {
    #[inline]
    fn propose(&mut self, _t: f64) -> Result<(f64, bool), f64> {
        let t_next = self.grid[self.k.min(self.grid.len() - 1)];
        self.k += 1;
        Ok((t_next, self.k >= self.grid.len()))
    }
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

/// Error-controlled steps: the controller accepts or rejects each attempt
/// and scales the step; steps are clipped to `dt_max`, to the given stop
/// times and to `t1` (a step that would leave less than 1% of itself before
/// a stop or `t1` goes to it), and to the last float before each
/// discontinuity of the fields, after which the next step starts at the
/// first float after it ([`Control::discontinuity`]; diffrax's `jump_ts`).
#[derive(Debug)]
pub struct Adaptive {
    controller: Controller,
    walk: Walk,
}

/// Adaptive steps' state besides the controller.
#[derive(Debug, Clone)]
struct Walk {
    /// Times that must be step ends, and the next one not yet passed.
    stops: Arc<[f64]>,
    next_stop: usize,
    /// Discontinuities of the fields, and the next one not yet passed.
    jumps: Arc<[f64]>,
    next_jump: usize,
    /// How the attempt being judged was cut short.
    clip: Clip,
    /// Order of the solver's error estimate (the starting one of a
    /// variable-order solver, which reports each attempt's to
    /// [`Control::judge`]).
    k_err: f64,
    /// The next step size to try (signed).
    h: f64,
    /// The attempt being judged: its size, and the step-size floor at its
    /// start.
    h_step: f64,
    floor: f64,
    t1: f64,
    dt_min: f64,
    dt_max: f64,
}

/// How an attempt was cut short.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Clip {
    /// Not at all.
    None,
    /// To land on a stop time.
    Stop,
    /// To end at `end`, the last float before a discontinuity; the next
    /// step starts at `start`, the first float after it.
    Jump { end: f64, start: f64 },
}

impl Adaptive {
    /// Control by `controller` (reset here) of an estimator of order
    /// `k_err`, starting with the signed step `h0`.
    pub fn new(
        mut controller: Controller,
        k_err: f64,
        h0: f64,
        t1: f64,
        dt_min: f64,
        dt_max: f64,
    ) -> Self {
        controller.reset();
        Adaptive {
            controller,
            walk: Walk {
                stops: Arc::from(&[][..]),
                next_stop: 0,
                jumps: Arc::from(&[][..]),
                next_jump: 0,
                clip: Clip::None,
                k_err,
                h: h0,
                h_step: h0,
                floor: 0.0,
                t1,
                dt_min,
                dt_max,
            },
        }
    }

    /// These controls, also landing on every time of `stops` (strictly
    /// inside the span, monotone towards `t1`).
    pub fn stopping_at(mut self, stops: &[f64]) -> Self {
        self.walk.stops = stops.into();
        self.walk.next_stop = 0;
        self
    }

    /// These controls, also stopping just before and restarting just after
    /// every time of `jumps` (strictly inside the span, monotone towards
    /// `t1`), where the fields are discontinuous.
    pub fn restarting_at(mut self, jumps: &[f64]) -> Self {
        self.walk.jumps = jumps.into();
        self.walk.next_jump = 0;
        self
    }
}

impl Clone for Adaptive {
    fn clone(&self) -> Self {
        Adaptive {
            controller: self.controller.clone(),
            walk: self.walk.clone(),
        }
    }

    /// In place: a snapshot restored into a replay allocates nothing.
    fn clone_from(&mut self, source: &Self) {
        self.controller.clone_from(&source.controller);
        self.walk.clone_from(&source.walk);
    }
}

/// The float next to `t` towards `dir`.
#[inline]
fn step_float(t: f64, dir: f64) -> f64 {
    if dir > 0.0 {
        t.next_up()
    } else {
        t.next_down()
    }
}

/// The first of `times` from `*next` on whose `end` is after `t` (in the
/// direction `dir`), moving `*next` to it.
#[inline]
fn upcoming(
    times: &[f64],
    next: &mut usize,
    t: f64,
    dir: f64,
    end: impl Fn(f64) -> f64,
) -> Option<f64> {
    while *next < times.len() && (end(times[*next]) - t) * dir <= 0.0 {
        *next += 1;
    }
    times.get(*next).copied()
}

impl Control for Adaptive {
    #[inline(always)]
    fn adaptive(&self) -> bool {
        true
    }

    #[inline]
    fn propose(&mut self, t: f64) -> Result<(f64, bool), f64> {
        let w = &mut self.walk;
        let h = w.h;
        let dir = h.signum();
        let cand = t + h;
        let stop = upcoming(&w.stops, &mut w.next_stop, t, dir, |s| s);
        let before = |j: f64| step_float(j, -dir);
        let jump = upcoming(&w.jumps, &mut w.next_jump, t, dir, before);
        // the nearer boundary; a stop at (or one float before) a
        // discontinuity is the discontinuity
        let bound = match (stop, jump) {
            (Some(s), Some(j)) if (s - before(j)) * dir < 0.0 => Some((s, Clip::Stop)),
            (_, Some(j)) => Some((
                before(j),
                Clip::Jump {
                    end: before(j),
                    start: step_float(j, dir),
                },
            )),
            (s, None) => s.map(|s| (s, Clip::Stop)),
        };
        let reaches = |end: f64| (cand - end) * dir >= -0.01 * h.abs();
        let (t_next, last, clip) = match bound {
            Some((b, clip)) if reaches(b) => (b, false, clip),
            _ if reaches(w.t1) => (w.t1, true, Clip::None),
            _ => (cand, false, Clip::None),
        };
        w.clip = clip;
        w.h_step = t_next - t;
        w.floor = w.dt_min.max(16.0 * f64::EPSILON * t.abs().max(1e-300));
        if w.h_step.abs() < w.floor && !last || w.h_step == 0.0 {
            return Err(w.h_step.abs());
        }
        Ok((t_next, last))
    }

    #[inline]
    fn judge(&mut self, err: f64, k_err: Option<f64>) -> Result<bool, f64> {
        let decision = self
            .controller
            .decide(err, k_err.unwrap_or(self.walk.k_err));
        let w = &mut self.walk;
        if decision.accept {
            let mut h = w.h_step * decision.factor;
            if w.clip != Clip::None && h.abs() < w.h.abs() {
                // a step cut short to land on a stop says little about the
                // step size: resume from the one proposed before the cut
                // (as OrdinaryDiffEq does after a tstop)
                h = w.h;
            }
            w.h = h.clamp(-w.dt_max, w.dt_max);
            return Ok(true);
        }
        w.h = w.h_step * decision.factor;
        // (NaN: a custom controller's invalid factor)
        if w.h.abs() < w.floor || w.h.is_nan() {
            return Err(w.h.abs());
        }
        Ok(false)
    }

    #[inline]
    fn discontinuity(&self) -> Option<(f64, f64)> {
        match self.walk.clip {
            Clip::Jump { end, start } => Some((end, start)),
            _ => None,
        }
    }
}

/// Any control, chosen at run time (what the adjoints' replays use; a
/// plain solve runs each monomorphised).
// The adaptive control (with its controller's settings) is the large
// variant and the common one; boxing it would add an allocation to every
// checkpoint snapshot and an indirection to every step.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum AnyControl {
    /// Fixed steps.
    Fixed(FixedSteps),
    /// Fixed steps on a given grid.
    Grid(GridSteps),
    /// Error-controlled steps.
    Adaptive(Adaptive),
}

impl Clone for AnyControl {
    fn clone(&self) -> Self {
        match self {
            AnyControl::Fixed(c) => AnyControl::Fixed(c.clone()),
            AnyControl::Grid(c) => AnyControl::Grid(c.clone()),
            AnyControl::Adaptive(c) => AnyControl::Adaptive(c.clone()),
        }
    }

    /// In place for adaptive control (a custom controller is not re-boxed).
    fn clone_from(&mut self, source: &Self) {
        if let (AnyControl::Adaptive(a), AnyControl::Adaptive(b)) = (&mut *self, source) {
            a.clone_from(b);
        } else {
            *self = source.clone();
        }
    }
}

impl Control for AnyControl {
    #[inline]
    fn adaptive(&self) -> bool {
        matches!(self, AnyControl::Adaptive(_))
    }

    #[inline]
    fn propose(&mut self, t: f64) -> Result<(f64, bool), f64> {
        match self {
            AnyControl::Fixed(c) => c.propose(t),
            AnyControl::Grid(c) => c.propose(t),
            AnyControl::Adaptive(c) => c.propose(t),
        }
    }

    #[inline]
    fn judge(&mut self, err: f64, k_err: Option<f64>) -> Result<bool, f64> {
        match self {
            AnyControl::Fixed(c) => c.judge(err, k_err),
            AnyControl::Grid(c) => c.judge(err, k_err),
            AnyControl::Adaptive(c) => c.judge(err, k_err),
        }
    }

    #[inline]
    fn discontinuity(&self) -> Option<(f64, f64)> {
        match self {
            AnyControl::Adaptive(c) => c.discontinuity(),
            _ => None,
        }
    }
}
