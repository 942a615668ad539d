//! Recursive checkpointing for discrete adjoints (Griewank 1992; diffrax's
//! `RecursiveCheckpointAdjoint`), shared by the ODE and SDE discrete
//! adjoints.
//!
//! A *record* is what reversing one step needs besides the recorded step
//! times: the state at the step's start, plus whatever the method takes from
//! outside (an SDE step's Brownian increments). The forward solve keeps at
//! most `budget` records ([`Recorder`], stride doubled whenever the budget
//! fills, so the unknown number of steps needs no second pass). The
//! backward sweep reverses a segment by recomputing its records from the
//! segment's first one — all of them when the segment fits in the budget,
//! otherwise `budget` evenly spaced ones, recursing into each piece — so at
//! most `budget` records are held per level and `O(log_budget(steps))`
//! levels exist.

use sdeflow_solvers::integrate::StepObserver;
use sdeflow_solvers::solver::StepNoise;

/// What recursive checkpointing drives: recomputation forwards and the
/// reversal of one step, over the accepted steps of a forward solve.
pub(crate) trait Replay {
    /// Length of a record.
    fn record_len(&self) -> usize;

    /// Runs steps `from..to` from `rec` (the record of step `from`), handing
    /// the record of each following step (`from + 1 ..= to`) to `keep`.
    fn run(&mut self, from: usize, to: usize, rec: &[f64], keep: &mut dyn FnMut(usize, &[f64]));

    /// Reverses step `m` from its record.
    fn reverse(&mut self, m: usize, rec: &[f64]);
}

/// Records the accepted step times and, online, at most `budget` records
/// (state and, for SDEs, the step's Brownian increments) at step indices
/// that are multiples of a stride.
pub(crate) struct Recorder {
    /// Accepted step times `t_0, …, t_steps`.
    pub ts: Vec<f64>,
    /// The kept records, by step index.
    pub records: Vec<(usize, Vec<f64>)>,
    stride: usize,
    budget: usize,
    noise: Vec<f64>,
    with_levy: bool,
}

impl Recorder {
    /// A recorder keeping at most `budget` records; with `noise_len > 0`
    /// the records carry the step's increments (`noise_len` entries: `ΔW`,
    /// followed by the space–time Lévy area when `with_levy`).
    pub fn new(budget: usize, noise_len: usize, with_levy: bool) -> Self {
        Recorder {
            ts: Vec::new(),
            records: Vec::new(),
            stride: 1,
            budget,
            noise: vec![0.0; noise_len],
            with_levy,
        }
    }
}

/// Copies a step's increments into `out` (`ΔW`, then the Lévy area when
/// asked for and available).
pub(crate) fn copy_noise(noise: &StepNoise<'_>, with_levy: bool, out: &mut [f64]) {
    let m = noise.dw.len().min(out.len());
    out[..m].copy_from_slice(&noise.dw[..m]);
    if with_levy && !noise.levy_h.is_empty() {
        out[m..m + noise.levy_h.len()].copy_from_slice(noise.levy_h);
    }
}

impl StepObserver for Recorder {
    fn accepted_noise(&mut self, noise: &StepNoise<'_>) {
        copy_noise(noise, self.with_levy, &mut self.noise);
    }

    fn accepted(&mut self, m: usize, t: f64, t_next: f64, y: &[f64], _y_next: &[f64]) {
        if m == 0 {
            self.ts.push(t);
        }
        self.ts.push(t_next);
        if m.is_multiple_of(self.stride) {
            let mut rec = Vec::with_capacity(y.len() + self.noise.len());
            rec.extend_from_slice(y);
            rec.extend_from_slice(&self.noise);
            self.records.push((m, rec));
            if self.records.len() > self.budget {
                self.stride *= 2;
                let stride = self.stride;
                self.records.retain(|(i, _)| i.is_multiple_of(stride));
            }
        }
    }
}

/// The backward sweep's bookkeeping: the budget and the records held.
pub(crate) struct Checkpointing {
    budget: usize,
    stored: usize,
    /// Largest number of records held at once.
    pub peak: usize,
}

impl Checkpointing {
    /// Reverses all `steps` steps from the forward pass's records (sorted
    /// by step index, the first one at step 0).
    pub fn reverse_all<R: Replay>(
        replay: &mut R,
        budget: usize,
        records: &[(usize, Vec<f64>)],
        steps: usize,
    ) -> usize {
        let mut c = Checkpointing {
            budget,
            stored: records.len(),
            peak: records.len(),
        };
        for (k, (start, rec)) in records.iter().enumerate().rev() {
            let end = records.get(k + 1).map_or(steps, |r| r.0);
            c.reverse_range(replay, *start, end, rec);
        }
        c.peak
    }

    fn hold(&mut self, k: usize) {
        self.stored += k;
        self.peak = self.peak.max(self.stored);
    }

    /// Reverses steps `a..b` given the record of step `a`.
    fn reverse_range<R: Replay>(&mut self, replay: &mut R, a: usize, b: usize, rec_a: &[f64]) {
        let len = b.saturating_sub(a);
        if len == 0 {
            return;
        }
        let rl = replay.record_len();
        if len == 1 {
            replay.reverse(a, rec_a);
            return;
        }
        if len <= self.budget {
            // recompute every record of the segment, then reverse
            let mut recs = Vec::with_capacity(len * rl);
            recs.extend_from_slice(rec_a);
            replay.run(a, b - 1, rec_a, &mut |_, r| recs.extend_from_slice(r));
            self.hold(len);
            for m in (a..b).rev() {
                replay.reverse(m, &recs[(m - a) * rl..(m - a + 1) * rl]);
            }
            self.stored -= len;
            return;
        }
        let chunk = len.div_ceil(self.budget);
        let mut starts: Vec<(usize, Vec<f64>)> = vec![(a, rec_a.to_vec())];
        let last_start = a + chunk * ((len - 1) / chunk);
        replay.run(a, last_start, rec_a, &mut |m, r| {
            if (m - a).is_multiple_of(chunk) {
                starts.push((m, r.to_vec()));
            }
        });
        let held = starts.len();
        self.hold(held);
        for (s, rec) in starts.iter().rev() {
            let e = (s + chunk).min(b);
            self.reverse_range(replay, *s, e, rec);
        }
        self.stored -= held;
    }
}
