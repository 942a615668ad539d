//! Recursive checkpointing for the discrete adjoint (Griewank 1992;
//! diffrax's `RecursiveCheckpointAdjoint`), for ODE and SDE solves alike.
//!
//! The forward solve is a [`Run`]. It keeps at most `budget` snapshots
//! ([`Snapshot`]: the state, the solver's workspace — FSAL stage, cached
//! Jacobian, the carried state of a method that has one, such as
//! reversible Heun's `(ŷ, f(ŷ), g(ŷ))` — and the controller's state) at
//! step indices that are multiples of a stride, doubled whenever the
//! budget fills, so the unknown number of steps needs no second pass.
//! Nothing is stored per step: a snapshot restored into a replay run
//! regenerates exactly the same steps (sizes, rejections, carried states
//! and all), so memory is bounded by the budget, step times included.
//!
//! The backward sweep reverses the segment between consecutive snapshots:
//! a segment of at most `budget` steps is replayed once up to its last
//! step's start (that step ends at the next snapshot), recording each
//! step's *record* (`t, t_next, y`, for SDEs the step's increments, and
//! the carried state the step started from) in one reusable buffer, and
//! reversed last to first — a one-step segment is not replayed at all; a
//! longer one is replayed taking `budget` evenly spaced snapshots,
//! recursing into each piece — `O(log_budget(steps))` levels of at most
//! `budget` snapshots. Every replay must reach the start of the segment's
//! last step exactly where the forward solve did (each snapshot knows it);
//! one that does not is an error, never a silently wrong gradient.
//!
//! With an unbounded budget ([`usize::MAX`]) the forward solve stores every
//! step's record and nothing is replayed (the path is not queried again).

use sdeflow_solvers::integrate::{AnyControl, Run, Snapshot, StepObserver, StepReport};
use sdeflow_solvers::solver::Family;
use sdeflow_solvers::{error::SolveError, solution::Solution, solver::Solver};

use crate::GradError;

/// Reverses one step from its record `[t, t_next, y, noise, carried]`.
pub(crate) trait ReverseStep {
    /// Reverses step `m`.
    fn reverse(&mut self, m: usize, rec: &[f64]);
}

/// The record of a step: `t`, `t_next`, the state at `t`, the increments,
/// the carried state at `t`.
pub(crate) struct Record<'r> {
    /// Start of the step.
    pub t: f64,
    /// Step size.
    pub h: f64,
    /// State at `t`.
    pub y: &'r [f64],
    /// The increments (`ΔW ‖ H`; empty for ODEs).
    pub noise: &'r [f64],
    /// The carried state at `t` (empty for most methods).
    pub carried: &'r [f64],
}

impl<'r> Record<'r> {
    /// Reads a record of a state of length `n` with `noise_len`
    /// increments.
    pub fn read(rec: &'r [f64], n: usize, noise_len: usize) -> Self {
        let (noise, carried) = rec[2 + n..].split_at(noise_len);
        Record {
            t: rec[0],
            h: rec[1] - rec[0],
            y: &rec[2..2 + n],
            noise,
            carried,
        }
    }
}

/// Appends every accepted step's record to a flat buffer.
pub(crate) struct Records {
    pub flat: Vec<f64>,
    noise: Vec<f64>,
    with_levy: bool,
    /// The carried state the next step starts from.
    carried: Vec<f64>,
}

impl Records {
    /// Records with `noise_len` increments per step (`ΔW`, then the Lévy
    /// area when `with_levy`), the first step starting from the carried
    /// state `carried`.
    fn new(noise_len: usize, with_levy: bool, carried: &[f64]) -> Self {
        Records {
            flat: Vec::new(),
            noise: vec![0.0; noise_len],
            with_levy,
            carried: carried.to_vec(),
        }
    }

    /// Appends the record of the step from `(t, y)` to `t_next` with the
    /// increments held in `self.noise` and the carried state in
    /// `self.carried`.
    fn push(&mut self, t: f64, t_next: f64, y: &[f64]) {
        self.flat.push(t);
        self.flat.push(t_next);
        self.flat.extend_from_slice(y);
        self.flat.extend_from_slice(&self.noise);
        self.flat.extend_from_slice(&self.carried);
    }
}

impl StepObserver for Records {
    /// Keeps the increments of the step about to be reported accepted.
    fn attempted(&mut self, report: &StepReport<'_>) {
        if !report.accepted {
            return;
        }
        let noise = &report.noise;
        let m = noise.dw.len().min(self.noise.len());
        self.noise[..m].copy_from_slice(&noise.dw[..m]);
        let mut at = m;
        if self.with_levy && !noise.levy_h.is_empty() {
            self.noise[m..m + noise.levy_h.len()].copy_from_slice(noise.levy_h);
            at += noise.levy_h.len();
        }
        // the OU modes' increments, for a method that reads them
        let k = noise.modes.len().min(self.noise.len().saturating_sub(at));
        self.noise[at..at + k].copy_from_slice(&noise.modes[..k]);
    }

    fn accepted(&mut self, _m: usize, t: f64, t_next: f64, y: &[f64], _y_next: &[f64]) {
        self.push(t, t_next, y);
    }

    fn accepted_carried(&mut self, carried: &[f64]) {
        self.carried.copy_from_slice(carried);
    }
}

/// The snapshot type of a run of `S`.
pub(crate) type Snap<Pb, S> = Snapshot<<S as Solver<Pb>>::Cache, AnyControl>;

/// What the forward pass kept.
pub(crate) struct Forward<Pb: Family, S: Solver<Pb>> {
    /// The solve the user asked for.
    pub solution: Solution,
    /// Number of accepted steps.
    pub steps: usize,
    /// Snapshots at ascending step indices, the first at step 0 (empty when
    /// every record is stored).
    snaps: Vec<Snap<Pb, S>>,
    /// Every step's record: with budget `usize::MAX`, or when the solve
    /// took no more steps than the budget (then nothing is replayed).
    records: Option<Vec<f64>>,
    /// Length of a record.
    record_len: usize,
    /// Increments per record (`ΔW ‖ H`).
    noise_len: usize,
    /// Whether records carry the Lévy area.
    with_levy: bool,
    /// Where the solve ended, and where its last step started.
    end: (f64, f64),
}

/// Runs `run` (of `solver`) to `t1`, keeping at most `budget` snapshots
/// (every step's record when `budget == usize::MAX`, or when the solve
/// takes at most `budget` steps: records are smaller than snapshots, and
/// nothing needs replaying then); the records carry
/// `noise_len` increments per step (the Lévy area too when `with_levy`)
/// and the solver's carried state.
pub(crate) fn forward<Pb: Family, S: Solver<Pb>, P>(
    mut run: Run<'_, '_, Pb, S, P>,
    solver: &S,
    budget: usize,
    (noise_len, with_levy): (usize, bool),
) -> Result<Forward<Pb, S>, SolveError>
where
    P: sdeflow_solvers::brownian::DynPath + 'static,
{
    let n = run.y().len();
    let c0 = solver.carried_state(run.snapshot().cache()).to_vec();
    let record_len = 2 + n + noise_len + c0.len();
    let mut records = Records::new(noise_len, with_levy, &c0);
    let mut snaps: Vec<Snap<Pb, S>> = Vec::new();
    let mut stride = 1usize;
    let store_all = budget == usize::MAX;
    // every step's record while they fit in the budget
    let mut keep = true;
    loop {
        let m = run.accepted();
        if !store_all && m.is_multiple_of(stride) {
            snaps.push(run.snapshot());
            if snaps.len() > budget {
                stride *= 2;
                snaps.retain(|s| s.step().is_multiple_of(stride));
            }
        }
        if keep && !store_all && m >= budget {
            keep = false;
            records.flat = Vec::new();
        }
        let a = if keep {
            run.step(&mut records)?
        } else {
            run.step(&mut sdeflow_solvers::integrate::NoObserver)?
        };
        if a.last {
            break;
        }
    }
    let (steps, end) = (run.accepted(), (run.t(), run.t_prev()));
    Ok(Forward {
        with_levy,
        end,
        solution: run.finish(),
        steps,
        snaps: if keep { Vec::new() } else { snaps },
        records: keep.then_some(records.flat),
        record_len,
        noise_len,
    })
}

/// The backward sweep's state: the replay run, the records buffer, and the
/// count of snapshots and records held.
struct Sweep<'r, 'a, 'p, Pb: Family, S: Solver<Pb>, P> {
    run: &'r mut Run<'a, 'p, Pb, S, P>,
    solver: &'r S,
    budget: usize,
    records: Records,
    record_len: usize,
    held: usize,
    peak: usize,
}

impl<Pb: Family, S: Solver<Pb>, P> Sweep<'_, '_, '_, Pb, S, P>
where
    P: sdeflow_solvers::brownian::DynPath + 'static,
{
    fn hold(&mut self, k: usize) {
        self.held += k;
        self.peak = self.peak.max(self.held);
    }

    /// Checks that the replay reached step `m` at `t_m`.
    fn check_at(&self, a: usize, m: usize, t_m: f64) -> Result<(), GradError> {
        if self.run.accepted() == m && self.run.t() == t_m {
            return Ok(());
        }
        Err(GradError::Unsupported(format!(
            "replaying steps {a}..{m} from a checkpoint ended at step {} and t = {} instead of \
             t = {t_m}: the solver's steps are not reproducible from its snapshot; use \
             Adjoint::STORE_ALL (and please report this)",
            self.run.accepted(),
            self.run.t()
        )))
    }

    /// Reverses steps `a..b` from the snapshot of step `a`; step `b − 1`
    /// went from `t_prev_b` to `t_b`.
    fn reverse_range<R: ReverseStep>(
        &mut self,
        rev: &mut R,
        snap: &Snap<Pb, S>,
        b: usize,
        (t_b, t_prev_b): (f64, f64),
    ) -> Result<(), GradError> {
        let a = snap.step();
        let len = b - a;
        if len == 0 {
            return Ok(());
        }
        self.run.restore(snap);
        if len <= self.budget {
            self.records
                .carried
                .copy_from_slice(self.solver.carried_state(snap.cache()));
            // replay the segment up to its last step's start (the last
            // step itself is known: it ends at t_b), recording every step,
            // then reverse
            self.records.flat.clear();
            for _ in a..b - 1 {
                self.run.step(&mut self.records)?;
            }
            self.check_at(a, b - 1, t_prev_b)?;
            let t = self.run.t();
            self.run.increments(t, t_b, &mut self.records.noise);
            self.records.push(t, t_b, self.run.y());
            self.hold(len);
            let rl = self.record_len;
            for m in (a..b).rev() {
                let k = m - a;
                rev.reverse(m, &self.records.flat[k * rl..(k + 1) * rl]);
            }
            self.held -= len;
            return Ok(());
        }
        let chunk = len.div_ceil(self.budget);
        let mut starts = vec![snap.clone()];
        let last_start = a + chunk * ((len - 1) / chunk);
        while self.run.accepted() < last_start {
            self.run.step(&mut sdeflow_solvers::integrate::NoObserver)?;
            if (self.run.accepted() - a).is_multiple_of(chunk) {
                starts.push(self.run.snapshot());
            }
        }
        let held = starts.len();
        self.hold(held);
        let mut end = (b, (t_b, t_prev_b));
        for s in starts.iter().rev() {
            self.reverse_range(rev, s, end.0, end.1)?;
            end = (s.step(), (s.t_end(), s.t_prev()));
        }
        self.held -= held;
        Ok(())
    }
}

impl<Pb: Family, S: Solver<Pb>> Forward<Pb, S> {
    /// Whether reversing needs a replay run ([`reverse_all`]): not when
    /// every step's record was kept.
    pub fn needs_replay(&self) -> bool {
        self.records.is_none()
    }
}

/// Reverses every step of `fwd` with `rev`, replaying on `replay` (a run
/// of the same problem, `solver` and options on the forward path; `None`
/// when every record is stored). Returns the largest number of snapshots
/// and records held at once.
pub(crate) fn reverse_all<Pb: Family, S: Solver<Pb>, P, R: ReverseStep>(
    fwd: &Forward<Pb, S>,
    solver: &S,
    replay: Option<&mut Run<'_, '_, Pb, S, P>>,
    budget: usize,
    rev: &mut R,
) -> Result<usize, GradError>
where
    P: sdeflow_solvers::brownian::DynPath + 'static,
{
    let rl = fwd.record_len;
    if let Some(flat) = &fwd.records {
        for m in (0..fwd.steps).rev() {
            rev.reverse(m, &flat[m * rl..(m + 1) * rl]);
        }
        return Ok(fwd.steps);
    }
    let Some(run) = replay else {
        return Err(GradError::Unsupported(
            "checkpointed replay needs a replay run".into(),
        ));
    };
    let c_len = rl - 2 - run.y().len() - fwd.noise_len;
    let mut sweep = Sweep {
        run,
        solver,
        budget: budget.max(2),
        records: Records::new(fwd.noise_len, fwd.with_levy, &vec![0.0; c_len]),
        record_len: rl,
        held: fwd.snaps.len(),
        peak: fwd.snaps.len(),
    };
    let mut end = (fwd.steps, fwd.end);
    for snap in fwd.snaps.iter().rev() {
        sweep.reverse_range(rev, snap, end.0, end.1)?;
        end = (snap.step(), (snap.t_end(), snap.t_prev()));
    }
    Ok(sweep.peak)
}
