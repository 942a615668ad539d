//! Monte Carlo ensembles: run `N` trajectories of a problem in parallel and
//! reduce them to statistics you can trust.
//!
//! Reproducibility by construction: trajectory `i` solves with the seed
//! `derive(master_seed, i)` (SplitMix64-based, [`sdeflow_solvers::brownian::rng`]),
//! trajectories are grouped into fixed chunks of consecutive indices, each
//! chunk is reduced in index order and the chunks are merged in chunk order.
//! None of this depends on the number of threads or on scheduling, so the
//! statistics are bit-identical on 1, 2 or 64 threads.
//!
//! ```
//! use sdeflow::prelude::*;
//! use sdeflow::ensemble::Ensemble;
//! let gbm = Problem::sde(
//!     |_t, y, _p, dy| dy[0] = y[0],
//!     |_t, y, _p, g| g[0] = 0.5 * y[0],
//!     Noise::Scalar, vec![1.0], (0.0, 1.0));
//! let opts = Options::default().fixed_step(0.01).save_at(SaveAt::Times(vec![0.5, 1.0]));
//! let summary = Ensemble::new(&gbm, EulerMaruyama, opts, 2000).seed(1).statistics(&[0.05, 0.95])?;
//! let at_t1 = &summary.times[1];
//! assert!((at_t1.mean(0) - 1f64.exp()).abs() < 5.0 * at_t1.std_error(0));
//! # Ok::<(), sdeflow::ensemble::EnsembleError>(())
//! ```

use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use sdeflow_solvers::brownian::rng::derive;
use sdeflow_solvers::brownian::{Driver, VirtualTree};
use sdeflow_solvers::{
    Method, error::SolveError, error::catch_panic, field::Diffusion, field::Drift,
    options::Options, options::SaveAt, problem::Problem, solution::Solution, solution::Stats,
};

use crate::statistics::{EnsembleSummary, Estimate, Failure, Moments, TimeStatistics, quantile};

/// Trajectories per chunk: the unit of deterministic reduction.
const CHUNK: usize = 256;

/// What to do when a trajectory fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnFailure {
    /// Record the failure (index, seed, error) and go on with the others.
    #[default]
    Continue,
    /// Stop the ensemble and return the failure.
    Abort,
}

/// Where the trajectories run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parallelism {
    /// On the calling thread.
    Serial,
    /// On a rayon pool of this many threads (`None`: rayon's default, one
    /// per core).
    Threads(Option<usize>),
}

/// Why an ensemble could not produce its result. Its `Debug` is its
/// `Display` text (short, with the hint).
#[derive(Clone)]
pub enum EnsembleError {
    /// A trajectory failed under [`OnFailure::Abort`].
    Trajectory {
        /// Its index.
        index: usize,
        /// Its seed.
        seed: u64,
        /// What went wrong.
        message: String,
        /// The solver's error (when the trajectory ran in this process).
        error: Option<SolveError>,
    },
    /// Every trajectory failed.
    AllFailed {
        /// The first failure.
        first: Failure,
    },
    /// Statistics need the same save times for every trajectory.
    SaveTimes(String),
    /// A setting is invalid.
    Invalid(String),
}

impl fmt::Display for EnsembleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnsembleError::Trajectory {
                index,
                seed,
                message,
                ..
            } => write!(f, "trajectory {index} (seed {seed}) failed: {message}"),
            EnsembleError::AllFailed { first } => write!(
                f,
                "every trajectory failed; the first, {} (seed {}): {}",
                first.index, first.seed, first.message
            ),
            EnsembleError::SaveTimes(why) => write!(f, "{why}"),
            EnsembleError::Invalid(why) => write!(f, "invalid ensemble setting: {why}"),
        }
    }
}

impl fmt::Debug for EnsembleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl std::error::Error for EnsembleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EnsembleError::Trajectory { error: Some(e), .. } => Some(e),
            _ => None,
        }
    }
}

/// Per-trajectory problem map: `(index, seed, base problem) → problem`.
type ProblemMap<'p, F, G, D> =
    dyn Fn(usize, u64, &Problem<F, G, D>) -> Problem<F, G, D> + Sync + 'p;

/// `N` trajectories of a problem.
pub struct Ensemble<'p, F, G, M, D = VirtualTree> {
    pub(crate) problem: &'p Problem<F, G, D>,
    method: M,
    options: Options,
    pub(crate) trajectories: usize,
    seed: u64,
    parallelism: Parallelism,
    on_failure: OnFailure,
    progress: Option<bool>,
    map: Option<Box<ProblemMap<'p, F, G, D>>>,
}

/// The per-trajectory outputs of [`Ensemble::run`].
#[derive(Debug, Clone)]
pub struct EnsembleRun<T> {
    /// `(index, output)` of the trajectories that succeeded, by index.
    pub outputs: Vec<(usize, T)>,
    /// The trajectories that failed, by index.
    pub failures: Vec<Failure>,
    /// Work summed over all trajectories.
    pub stats: Stats,
}

/// What one chunk (or the whole ensemble) accumulates.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChunkOut<A> {
    pub(crate) value: A,
    pub(crate) failures: Vec<Failure>,
    pub(crate) stats: Stats,
    /// The solver errors of the failures (local runs only).
    #[serde(skip)]
    pub(crate) errors: Vec<SolveError>,
}

/// A reduction of trajectories: fold each solution into a chunk's
/// accumulator, merge accumulators in chunk order.
pub(crate) trait Reducer: Sync {
    type Acc: Send;
    fn init(&self) -> Self::Acc;
    fn fold(&self, acc: &mut Self::Acc, i: usize, sol: &Solution);
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);
}

/// Keeps `output(i, sol)` per trajectory.
struct Collect<O>(O);

impl<T: Send, O: Fn(usize, &Solution) -> T + Sync> Reducer for Collect<O> {
    type Acc = Vec<(usize, T)>;
    fn init(&self) -> Self::Acc {
        Vec::new()
    }
    fn fold(&self, acc: &mut Self::Acc, i: usize, sol: &Solution) {
        acc.push((i, (self.0)(i, sol)));
    }
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
        acc.extend(other);
    }
}

/// Moments (and optionally all values) of every state at every save time.
pub(crate) struct StateStatistics {
    pub(crate) keep_values: bool,
}

/// The accumulator of [`StateStatistics`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct StateAcc {
    ts: Vec<f64>,
    moments: Vec<Moments>,
    values: Vec<Vec<f64>>,
}

impl Reducer for StateStatistics {
    type Acc = StateAcc;
    fn init(&self) -> StateAcc {
        StateAcc::default()
    }
    fn fold(&self, st: &mut StateAcc, _i: usize, sol: &Solution) {
        if st.ts.is_empty() {
            st.ts = sol.ts.clone();
            st.moments = vec![Moments::default(); sol.ys.len()];
            if self.keep_values {
                st.values = vec![Vec::new(); sol.ys.len()];
            }
        }
        if sol.ys.len() != st.moments.len() {
            return;
        }
        for (k, &v) in sol.ys.iter().enumerate() {
            st.moments[k].push(v);
            if self.keep_values {
                st.values[k].push(v);
            }
        }
    }
    fn merge(&self, a: &mut StateAcc, b: StateAcc) {
        if a.ts.is_empty() {
            *a = b;
            return;
        }
        if b.moments.len() != a.moments.len() {
            return;
        }
        for (x, y) in a.moments.iter_mut().zip(&b.moments) {
            x.merge(y);
        }
        for (x, y) in a.values.iter_mut().zip(b.values) {
            x.extend(y);
        }
    }
}

/// Moments of `φ(X_T)`.
pub(crate) struct Expectation<P>(pub(crate) P);

impl<P: Fn(&[f64]) -> f64 + Sync> Reducer for Expectation<P> {
    type Acc = Moments;
    fn init(&self) -> Moments {
        Moments::default()
    }
    fn fold(&self, m: &mut Moments, _i: usize, sol: &Solution) {
        m.push((self.0)(sol.last()));
    }
    fn merge(&self, a: &mut Moments, b: Moments) {
        a.merge(&b);
    }
}

pub(crate) fn add_stats(a: &mut Stats, b: &Stats) {
    a.drift_evals += b.drift_evals;
    a.diffusion_evals += b.diffusion_evals;
    a.jacobian_evals += b.jacobian_evals;
    a.accepted_steps += b.accepted_steps;
    a.rejected_steps += b.rejected_steps;
    a.nonlinear_iterations += b.nonlinear_iterations;
    a.nonlinear_failures += b.nonlinear_failures;
    a.lu_factorizations += b.lu_factorizations;
}

/// Merges chunk outputs in the order given.
pub(crate) fn combine<R: Reducer>(r: &R, chunks: Vec<ChunkOut<R::Acc>>) -> ChunkOut<R::Acc> {
    let mut total = ChunkOut {
        value: r.init(),
        failures: Vec::new(),
        stats: Stats::default(),
        errors: Vec::new(),
    };
    for chunk in chunks {
        r.merge(&mut total.value, chunk.value);
        total.failures.extend(chunk.failures);
        total.errors.extend(chunk.errors);
        add_stats(&mut total.stats, &chunk.stats);
    }
    total
}

/// Turns the accumulated moments (and values) into the summary.
pub(crate) fn finish_statistics(
    total: ChunkOut<StateAcc>,
    n: usize,
    trajectories: usize,
    taus: &[f64],
) -> Result<EnsembleSummary, EnsembleError> {
    let StateAcc {
        ts,
        moments,
        values,
    } = total.value;
    if ts.is_empty() {
        return Err(match total.failures.first() {
            Some(f) => EnsembleError::AllFailed { first: f.clone() },
            None => EnsembleError::Invalid("no trajectory ran".into()),
        });
    }
    let succeeded = moments.first().map_or(0, |m| m.count as usize);
    let times = ts
        .iter()
        .enumerate()
        .map(|(j, &t)| TimeStatistics {
            t,
            moments: moments[j * n..(j + 1) * n].to_vec(),
            taus: taus.to_vec(),
            quantiles: taus
                .iter()
                .map(|&tau| (0..n).map(|i| quantile(&values[j * n + i], tau)).collect())
                .collect(),
        })
        .collect();
    Ok(EnsembleSummary {
        trajectories,
        succeeded,
        failures: total.failures,
        taus: taus.to_vec(),
        times,
        stats: total.stats,
    })
}

impl<'p, F, G, M, D> Ensemble<'p, F, G, M, D>
where
    F: Drift + Sync,
    G: Diffusion + Sync,
    D: Driver,
    M: Method<Problem<F, G, D>> + Sync,
{
    /// `trajectories` solves of `problem` with `method` under `options`
    /// (whose seed is replaced per trajectory).
    pub fn new(
        problem: &'p Problem<F, G, D>,
        method: M,
        options: Options,
        trajectories: usize,
    ) -> Self {
        Ensemble {
            problem,
            method,
            options,
            trajectories,
            seed: 0,
            parallelism: Parallelism::Threads(None),
            on_failure: OnFailure::Continue,
            progress: None,
            map: None,
        }
    }

    /// The master seed (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Runs on a pool of `threads` threads.
    pub fn threads(mut self, threads: usize) -> Self {
        self.parallelism = Parallelism::Threads(Some(threads));
        self
    }

    /// Runs on the calling thread.
    pub fn serial(mut self) -> Self {
        self.parallelism = Parallelism::Serial;
        self
    }

    /// Sets what happens when a trajectory fails.
    pub fn on_failure(mut self, on_failure: OnFailure) -> Self {
        self.on_failure = on_failure;
        self
    }

    /// Forces the progress bar on or off (default: on for ensembles of at
    /// least 10 000 trajectories when stderr is a terminal).
    pub fn progress(mut self, show: bool) -> Self {
        self.progress = Some(show);
        self
    }

    /// Varies the problem per trajectory: `map(i, seed_i, &base)` returns
    /// trajectory `i`'s problem (parameter sweeps, random initial
    /// conditions drawn from `seed_i`).
    pub fn map_problem(
        mut self,
        map: impl Fn(usize, u64, &Problem<F, G, D>) -> Problem<F, G, D> + Sync + 'p,
    ) -> Self {
        self.map = Some(Box::new(map));
        self
    }

    /// The seed of trajectory `i`.
    pub fn trajectory_seed(&self, i: usize) -> u64 {
        derive(self.seed, i as u64)
    }

    /// Solves trajectory `i`. A panic in the per-trajectory map or in the
    /// problem's closures is caught and returned as
    /// [`SolveError::Panicked`] naming which.
    pub fn solve_trajectory(&self, i: usize) -> Result<Solution, SolveError> {
        let seed = self.trajectory_seed(i);
        let mut opts = self.options.clone();
        opts.seed = seed;
        let solve = |p: &Problem<F, G, D>| {
            catch_panic("drift or diffusion", || self.method.solve_problem(p, &opts))
        };
        match &self.map {
            Some(map) => {
                let p = catch_panic("per-trajectory map", || Ok(map(i, seed, self.problem)))?;
                solve(&p)
            }
            None => solve(self.problem),
        }
    }

    /// Number of chunks of the deterministic reduction.
    pub(crate) fn chunks(&self) -> usize {
        self.trajectories.div_ceil(CHUNK)
    }

    /// Runs the trajectories of chunk `c` (unless `stop` is set) and folds
    /// them in index order.
    pub(crate) fn run_chunk<R: Reducer>(
        &self,
        r: &R,
        c: usize,
        stop: &AtomicBool,
        bar: &ProgressBar,
    ) -> ChunkOut<R::Acc> {
        let mut out = ChunkOut {
            value: r.init(),
            failures: Vec::new(),
            stats: Stats::default(),
            errors: Vec::new(),
        };
        let end = ((c + 1) * CHUNK).min(self.trajectories);
        for i in c * CHUNK..end {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            // the reduction's closure (output, φ) runs here: its panic is
            // this trajectory's failure too
            let folded = self.solve_trajectory(i).and_then(|sol| {
                add_stats(&mut out.stats, &sol.stats);
                catch_panic("reduction (output or φ)", || {
                    r.fold(&mut out.value, i, &sol);
                    Ok(())
                })
            });
            match folded {
                Ok(()) => {}
                Err(e) => {
                    if let Some(p) = e.partial() {
                        add_stats(&mut out.stats, &p.stats);
                    }
                    if self.on_failure == OnFailure::Abort {
                        stop.store(true, Ordering::Relaxed);
                    }
                    out.failures.push(Failure {
                        index: i,
                        seed: self.trajectory_seed(i),
                        message: e.to_string(),
                    });
                    out.errors.push(e);
                }
            }
        }
        bar.inc((end - c * CHUNK) as u64);
        out
    }

    /// A progress bar for `len` trajectories, shown as configured.
    pub(crate) fn progress_bar(&self, len: usize) -> ProgressBar {
        let show = self
            .progress
            .unwrap_or(self.trajectories >= 10_000 && std::io::stderr().is_terminal());
        if !show {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{bar:40} {pos}/{len} trajectories, eta {eta}")
        {
            bar.set_style(style);
        }
        bar
    }

    /// Runs chunks `range` on this process (serially or on the pool), in
    /// chunk order.
    pub(crate) fn run_chunks<R: Reducer>(
        &self,
        r: &R,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<ChunkOut<R::Acc>>, EnsembleError> {
        if self.trajectories == 0 {
            return Err(EnsembleError::Invalid(
                "an ensemble needs at least one trajectory".into(),
            ));
        }
        let stop = AtomicBool::new(false);
        let len = (range.end * CHUNK).min(self.trajectories)
            - (range.start * CHUNK).min(self.trajectories);
        let bar = self.progress_bar(len);
        let out = match self.parallelism {
            Parallelism::Serial => range.map(|c| self.run_chunk(r, c, &stop, &bar)).collect(),
            Parallelism::Threads(threads) => {
                let mut builder = rayon::ThreadPoolBuilder::new();
                if let Some(t) = threads {
                    builder = builder.num_threads(t.max(1));
                }
                let pool = builder
                    .build()
                    .map_err(|e| EnsembleError::Invalid(format!("thread pool: {e}")))?;
                pool.install(|| {
                    range
                        .into_par_iter()
                        .map(|c| self.run_chunk(r, c, &stop, &bar))
                        .collect()
                })
            }
        };
        bar.finish_and_clear();
        Ok(out)
    }

    /// The abort policy applied to a finished reduction.
    pub(crate) fn check_abort<A>(&self, total: &ChunkOut<A>) -> Result<(), EnsembleError> {
        if self.on_failure == OnFailure::Abort
            && let Some(f) = total.failures.first()
        {
            return Err(EnsembleError::Trajectory {
                index: f.index,
                seed: f.seed,
                message: f.message.clone(),
                error: total.errors.first().cloned(),
            });
        }
        Ok(())
    }

    /// The whole ensemble on this process.
    fn reduce<R: Reducer>(&self, r: &R) -> Result<ChunkOut<R::Acc>, EnsembleError> {
        let chunks = self.run_chunks(r, 0..self.chunks())?;
        let total = combine(r, chunks);
        self.check_abort(&total)?;
        Ok(total)
    }

    /// Checks the settings of [`Ensemble::statistics`].
    pub(crate) fn check_statistics(&self, taus: &[f64]) -> Result<(), EnsembleError> {
        if let Some(bad) = taus.iter().find(|t| !(0.0..=1.0).contains(*t)) {
            return Err(EnsembleError::Invalid(format!(
                "quantile level {bad} is outside [0, 1]"
            )));
        }
        let adaptive_steps = matches!(self.options.save_at, SaveAt::Steps | SaveAt::Dense)
            && self.options.controller.is_adaptive();
        if adaptive_steps {
            return Err(EnsembleError::SaveTimes(
                "statistics need the same save times in every trajectory, but adaptive \
                 steps differ between trajectories: use SaveAt::Times or SaveAt::T1"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Runs every trajectory and keeps `output(i, &solution)` of each (for
    /// example only `X_T`), in index order.
    pub fn run<T: Send>(
        &self,
        output: impl Fn(usize, &Solution) -> T + Sync,
    ) -> Result<EnsembleRun<T>, EnsembleError> {
        let total = self.reduce(&Collect(output))?;
        Ok(EnsembleRun {
            outputs: total.value,
            failures: total.failures,
            stats: total.stats,
        })
    }

    /// Statistics of the state at every save time: streaming moments
    /// (memory independent of `N`) and, if `taus` is not empty, the
    /// empirical quantiles `taus` (which keep the `N` values of each
    /// component at each save time). Needs the same save times for every
    /// trajectory: `SaveAt::T1`, `SaveAt::Times`, or fixed steps.
    pub fn statistics(&self, taus: &[f64]) -> Result<EnsembleSummary, EnsembleError> {
        self.check_statistics(taus)?;
        let r = StateStatistics {
            keep_values: !taus.is_empty(),
        };
        let total = self.reduce(&r)?;
        finish_statistics(total, self.problem.dim(), self.trajectories, taus)
    }

    /// Estimates `E[φ(X_T)]` (X_T the last saved state) with a confidence
    /// interval at `level` — the weak-error helper: compare it with an exact
    /// expectation, or two solvers' estimates, within their errors.
    pub fn expectation(
        &self,
        phi: impl Fn(&[f64]) -> f64 + Sync,
        level: f64,
    ) -> Result<Estimate, EnsembleError> {
        let total = self.reduce(&Expectation(phi))?;
        if total.value.count == 0
            && let Some(f) = total.failures.first()
        {
            return Err(EnsembleError::AllFailed { first: f.clone() });
        }
        Ok(total.value.estimate(level))
    }
}
