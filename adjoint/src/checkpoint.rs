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
/// that are multiples of a stride, in one flat buffer (no allocation per
/// step beyond the buffer's amortised growth).
pub(crate) struct Recorder {
    /// Accepted step times `t_0, …, t_steps`.
    pub ts: Vec<f64>,
    /// Step indices of the kept records, ascending.
    pub index: Vec<usize>,
    /// The kept records, flat, in the order of `index`.
    pub flat: Vec<f64>,
    record_len: usize,
    stride: usize,
    budget: usize,
    noise: Vec<f64>,
    with_levy: bool,
}

impl Recorder {
    /// A recorder keeping at most `budget` records of a state of length `n`;
    /// with `noise_len > 0` the records carry the step's increments
    /// (`noise_len` entries: `ΔW`, followed by the space–time Lévy area when
    /// `with_levy`).
    pub fn new(budget: usize, n: usize, noise_len: usize, with_levy: bool) -> Self {
        Recorder {
            ts: Vec::new(),
            index: Vec::new(),
            flat: Vec::new(),
            record_len: n + noise_len,
            stride: 1,
            budget,
            noise: vec![0.0; noise_len],
            with_levy,
        }
    }

    /// Keeps only the records at multiples of the (doubled) stride,
    /// compacting the flat buffer in place.
    fn thin(&mut self) {
        self.stride *= 2;
        let rl = self.record_len;
        let mut kept = 0;
        for k in 0..self.index.len() {
            if self.index[k].is_multiple_of(self.stride) {
                self.index[kept] = self.index[k];
                self.flat.copy_within(k * rl..(k + 1) * rl, kept * rl);
                kept += 1;
            }
        }
        self.index.truncate(kept);
        self.flat.truncate(kept * rl);
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
            self.index.push(m);
            self.flat.extend_from_slice(y);
            self.flat.extend_from_slice(&self.noise);
            if self.index.len() > self.budget {
                self.thin();
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
    /// Reverses all `steps` steps from the forward pass's records (their
    /// step indices ascending, the first 0, and the records flat).
    pub fn reverse_all<R: Replay>(
        replay: &mut R,
        budget: usize,
        index: &[usize],
        flat: &[f64],
        steps: usize,
    ) -> usize {
        let rl = replay.record_len();
        let mut c = Checkpointing {
            budget,
            stored: index.len(),
            peak: index.len(),
        };
        for (k, &start) in index.iter().enumerate().rev() {
            let end = index.get(k + 1).copied().unwrap_or(steps);
            c.reverse_range(replay, start, end, &flat[k * rl..(k + 1) * rl]);
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
