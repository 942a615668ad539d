//! The save policy of a solve ([`SaveAt`]) and what it has saved so far:
//! the loop hands it every accepted step.

use crate::dense::{DenseOutput, combine, poly_weights};
use crate::options::{Options, SaveAt};
use crate::solution::{Solution, Stats, Status};
use crate::solver::DenseTable;
use crate::solver::{Family, FieldsOf, Solver, StepAt, StepTaken};

/// An accepted step from `(t, y)` to `(t_next, y_new)`, `h = t_next − t`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span<'a> {
    pub t: f64,
    pub h: f64,
    pub t_next: f64,
    pub y: &'a [f64],
    pub y_new: &'a [f64],
}

/// What the loop has saved so far.
pub(crate) struct Saved {
    pub ts: Vec<f64>,
    pub ys: Vec<f64>,
    pub dense: Option<DenseOutput>,
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
pub(crate) enum SaveKind {
    T1,
    Steps,
    Dense,
    Times,
}

/// The save policy of a solve and what it has saved so far; both loops
/// hand it every accepted step.
pub(crate) struct Saver<'o> {
    pub saved: Saved,
    pub save_at: SaveKind,
    /// The requested times of `SaveAt::Times` (empty otherwise).
    pub save_times: &'o [f64],
    /// The next requested time not yet saved.
    pub next_save: usize,
    /// The interpolant's weight polynomials, and a buffer for their values.
    pub poly: Vec<f64>,
    pub ncoef: usize,
    pub nk: usize,
    pub w: Vec<f64>,
    pub n: usize,
    pub dir: f64,
}

impl<'o> Saver<'o> {
    /// The save policy of `opts` for a state of length `n`, having saved
    /// what it asks for at `(t0, y0)`; `table` is the solver's interpolant.
    pub fn new(
        opts: &'o Options,
        n: usize,
        t0: f64,
        y0: &[f64],
        table: DenseTable<'_>,
        dir: f64,
    ) -> Self {
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
        match saver.save_at {
            SaveKind::Steps | SaveKind::Dense => {
                saver.saved.ts.push(t0);
                saver.saved.ys.extend_from_slice(y0);
            }
            SaveKind::Times => {
                let save_times = saver.save_times;
                while saver.next_save < save_times.len() && save_times[saver.next_save] == t0 {
                    saver.saved.ts.push(t0);
                    saver.saved.ys.extend_from_slice(y0);
                    saver.next_save += 1;
                }
                saver.saved.ts.reserve(save_times.len());
                saver.saved.ys.reserve(save_times.len() * n);
            }
            SaveKind::T1 => {}
        }
        saver
    }
}

impl Saver<'_> {
    /// A saver with nothing saved and saving nothing (what is left behind
    /// when a run's partial solution is taken).
    pub fn emptied<'o>(&self) -> Saver<'o> {
        Saver {
            saved: Saved {
                ts: Vec::new(),
                ys: Vec::new(),
                dense: None,
            },
            save_at: SaveKind::T1,
            save_times: &[],
            next_save: 0,
            poly: Vec::new(),
            ncoef: 0,
            nk: 0,
            w: Vec::new(),
            n: self.n,
            dir: self.dir,
        }
    }

    /// Whether accepted steps save anything (not for `SaveAt::T1`): the
    /// loop asks before it gathers a [`Span`] for [`Saver::save`].
    #[inline(always)]
    pub fn saves(&self) -> bool {
        self.save_at != SaveKind::T1
    }

    /// Saves what the accepted step from `(t, y)` to `(t + h, y_new)`
    /// covers (out of line; nothing to do for `SaveAt::T1`).
    #[inline(never)]
    pub fn save<Pb: Family, S: Solver<Pb>>(
        &mut self,
        solver: &S,
        cache: &mut S::Cache,
        fields: &FieldsOf<'_, Pb>,
        span: Span<'_>,
        stats: &mut Stats,
    ) {
        let n = self.n;
        let Span {
            t,
            h,
            t_next,
            y,
            y_new,
        } = span;
        match self.save_at {
            SaveKind::T1 => return,
            SaveKind::Steps => {}
            SaveKind::Dense => {
                let step = StepTaken {
                    fields,
                    at: StepAt { t, h, y },
                    y_new,
                    stats,
                };
                let ks = solver.dense_stages(cache, step);
                if let Some(d) = self.saved.dense.as_mut() {
                    d.push(t, h, y, &ks[..self.nk * n]);
                }
            }
            SaveKind::Times => {
                while self.next_save < self.save_times.len()
                    && (self.save_times[self.next_save] - t_next) * self.dir <= 0.0
                {
                    let ts = self.save_times[self.next_save];
                    self.saved.ts.push(ts);
                    if ts == t_next {
                        self.saved.ys.extend_from_slice(y_new);
                    } else {
                        let step = StepTaken {
                            fields,
                            at: StepAt { t, h, y },
                            y_new,
                            stats: &mut *stats,
                        };
                        let ks = solver.dense_stages(cache, step);
                        poly_weights(&self.poly, self.ncoef, (ts - t) / h, &mut self.w);
                        let start = self.saved.ys.len();
                        self.saved.ys.resize(start + n, 0.0);
                        combine(y, h, &self.w, ks, &mut self.saved.ys[start..]);
                    }
                    self.next_save += 1;
                }
                return;
            }
        }
        // Steps and Dense save every step end
        self.saved.ts.push(t_next);
        self.saved.ys.extend_from_slice(y_new);
    }

    /// The solution of a solve that ended at `(t, y)`.
    pub fn finish(self, t: f64, y: &[f64], stats: Stats, status: Status, name: &str) -> Solution {
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
