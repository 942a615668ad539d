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
//!     |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = y[0],
//!     |_t: f64, y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = 0.5 * y[0],
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

use sdeflow_solvers::brownian::rng::derive;
use sdeflow_solvers::{
    Diffusion, Drift, Method, Options, Problem, SaveAt, Solution, SolveError, Stats,
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

/// Why an ensemble could not produce its result.
#[derive(Debug, Clone)]
pub enum EnsembleError {
    /// A trajectory failed under [`OnFailure::Abort`].
    Trajectory {
        /// Its index.
        index: usize,
        /// Its seed.
        seed: u64,
        /// The solver's error.
        error: SolveError,
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
            EnsembleError::Trajectory { index, seed, error } => {
                write!(f, "trajectory {index} (seed {seed}) failed: {error}")
            }
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

impl std::error::Error for EnsembleError {}

/// Per-trajectory problem map: `(index, seed, base problem) → problem`.
type ProblemMap<'p, F, G> = dyn Fn(usize, u64, &Problem<F, G>) -> Problem<F, G> + Sync + 'p;

/// `N` trajectories of a problem.
pub struct Ensemble<'p, F, G, M> {
    problem: &'p Problem<F, G>,
    method: M,
    options: Options,
    trajectories: usize,
    seed: u64,
    parallelism: Parallelism,
    on_failure: OnFailure,
    progress: Option<bool>,
    map: Option<Box<ProblemMap<'p, F, G>>>,
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

/// What one chunk accumulates.
struct Acc<A> {
    value: A,
    failures: Vec<(Failure, SolveError)>,
    stats: Stats,
}

fn add_stats(a: &mut Stats, b: &Stats) {
    a.drift_evals += b.drift_evals;
    a.diffusion_evals += b.diffusion_evals;
    a.jacobian_evals += b.jacobian_evals;
    a.accepted_steps += b.accepted_steps;
    a.rejected_steps += b.rejected_steps;
    a.nonlinear_iterations += b.nonlinear_iterations;
}

impl<'p, F, G, M> Ensemble<'p, F, G, M>
where
    F: Drift + Sync,
    G: Diffusion + Sync,
    M: Method + Sync,
{
    /// `trajectories` solves of `problem` with `method` under `options`
    /// (whose seed is replaced per trajectory).
    pub fn new(
        problem: &'p Problem<F, G>,
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
        map: impl Fn(usize, u64, &Problem<F, G>) -> Problem<F, G> + Sync + 'p,
    ) -> Self {
        self.map = Some(Box::new(map));
        self
    }

    /// The seed of trajectory `i`.
    pub fn trajectory_seed(&self, i: usize) -> u64 {
        derive(self.seed, i as u64)
    }

    /// Solves trajectory `i`.
    pub fn solve_trajectory(&self, i: usize) -> Result<Solution, SolveError> {
        let seed = self.trajectory_seed(i);
        let mut opts = self.options.clone();
        opts.seed = seed;
        match &self.map {
            Some(map) => {
                let p = map(i, seed, self.problem);
                self.method.solve_problem(&p, &opts)
            }
            None => self.method.solve_problem(self.problem, &opts),
        }
    }

    /// The deterministic chunked map-reduce all results go through.
    fn reduce<A: Send>(
        &self,
        init: impl Fn() -> A + Sync,
        fold: impl Fn(&mut A, usize, &Solution) + Sync,
        merge: impl Fn(&mut A, A),
    ) -> Result<Acc<A>, EnsembleError> {
        if self.trajectories == 0 {
            return Err(EnsembleError::Invalid(
                "an ensemble needs at least one trajectory".into(),
            ));
        }
        let n_chunks = self.trajectories.div_ceil(CHUNK);
        let stop = AtomicBool::new(false);
        let show = self
            .progress
            .unwrap_or(self.trajectories >= 10_000 && std::io::stderr().is_terminal());
        let bar = if show {
            let bar = ProgressBar::with_draw_target(
                Some(self.trajectories as u64),
                ProgressDrawTarget::stderr(),
            );
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {pos}/{len} trajectories, eta {eta}")
            {
                bar.set_style(style);
            }
            bar
        } else {
            ProgressBar::hidden()
        };
        let run_chunk = |c: usize| -> Acc<A> {
            let mut acc = Acc {
                value: init(),
                failures: Vec::new(),
                stats: Stats::default(),
            };
            let end = ((c + 1) * CHUNK).min(self.trajectories);
            for i in c * CHUNK..end {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match self.solve_trajectory(i) {
                    Ok(sol) => {
                        add_stats(&mut acc.stats, &sol.stats);
                        fold(&mut acc.value, i, &sol);
                    }
                    Err(e) => {
                        if let Some(p) = e.partial() {
                            add_stats(&mut acc.stats, &p.stats);
                        }
                        if self.on_failure == OnFailure::Abort {
                            stop.store(true, Ordering::Relaxed);
                        }
                        let f = Failure {
                            index: i,
                            seed: self.trajectory_seed(i),
                            message: e.to_string(),
                        };
                        acc.failures.push((f, e));
                    }
                }
            }
            bar.inc((end - c * CHUNK) as u64);
            acc
        };
        let chunks: Vec<Acc<A>> = match self.parallelism {
            Parallelism::Serial => (0..n_chunks).map(run_chunk).collect(),
            Parallelism::Threads(threads) => {
                let mut builder = rayon::ThreadPoolBuilder::new();
                if let Some(t) = threads {
                    builder = builder.num_threads(t.max(1));
                }
                let pool = builder
                    .build()
                    .map_err(|e| EnsembleError::Invalid(format!("thread pool: {e}")))?;
                pool.install(|| (0..n_chunks).into_par_iter().map(run_chunk).collect())
            }
        };
        bar.finish_and_clear();
        let mut total = Acc {
            value: init(),
            failures: Vec::new(),
            stats: Stats::default(),
        };
        for chunk in chunks {
            merge(&mut total.value, chunk.value);
            total.failures.extend(chunk.failures);
            add_stats(&mut total.stats, &chunk.stats);
        }
        if self.on_failure == OnFailure::Abort
            && let Some((f, e)) = total.failures.first()
        {
            return Err(EnsembleError::Trajectory {
                index: f.index,
                seed: f.seed,
                error: e.clone(),
            });
        }
        Ok(total)
    }

    /// Runs every trajectory and keeps `output(i, &solution)` of each (for
    /// example only `X_T`), in index order.
    pub fn run<T: Send>(
        &self,
        output: impl Fn(usize, &Solution) -> T + Sync,
    ) -> Result<EnsembleRun<T>, EnsembleError> {
        let acc = self.reduce(
            Vec::new,
            |v: &mut Vec<(usize, T)>, i, sol| v.push((i, output(i, sol))),
            |a, b| a.extend(b),
        )?;
        Ok(EnsembleRun {
            outputs: acc.value,
            failures: acc.failures.into_iter().map(|(f, _)| f).collect(),
            stats: acc.stats,
        })
    }

    /// Statistics of the state at every save time: streaming moments
    /// (memory independent of `N`) and, if `taus` is not empty, the
    /// empirical quantiles `taus` (which keep the `N` values of each
    /// component at each save time). Needs the same save times for every
    /// trajectory: `SaveAt::T1`, `SaveAt::Times`, or fixed steps.
    pub fn statistics(&self, taus: &[f64]) -> Result<EnsembleSummary, EnsembleError> {
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
        let keep = !taus.is_empty();
        // (times, moments per (time, component), values per (time, component))
        type St = (Vec<f64>, Vec<Moments>, Vec<Vec<f64>>);
        let acc = self.reduce(
            || -> St { (Vec::new(), Vec::new(), Vec::new()) },
            |st: &mut St, _i, sol| {
                if st.0.is_empty() {
                    st.0 = sol.ts.clone();
                    st.1 = vec![Moments::default(); sol.ys.len()];
                    if keep {
                        st.2 = vec![Vec::new(); sol.ys.len()];
                    }
                }
                if sol.ys.len() != st.1.len() {
                    return;
                }
                for (k, &v) in sol.ys.iter().enumerate() {
                    st.1[k].push(v);
                    if keep {
                        st.2[k].push(v);
                    }
                }
            },
            |a: &mut St, b: St| {
                if a.0.is_empty() {
                    *a = b;
                    return;
                }
                if b.1.len() != a.1.len() {
                    return;
                }
                for (x, y) in a.1.iter_mut().zip(&b.1) {
                    x.merge(y);
                }
                if keep {
                    for (x, y) in a.2.iter_mut().zip(b.2) {
                        x.extend(y);
                    }
                }
            },
        )?;
        let failures: Vec<Failure> = acc.failures.into_iter().map(|(f, _)| f).collect();
        let (ts, moments, values) = acc.value;
        if ts.is_empty() {
            return Err(match failures.first() {
                Some(f) => EnsembleError::AllFailed { first: f.clone() },
                None => EnsembleError::Invalid("no trajectory ran".into()),
            });
        }
        let n = self.problem.dim();
        let succeeded = moments.first().map_or(0, |m| m.count as usize);
        let times = ts
            .iter()
            .enumerate()
            .map(|(j, &t)| TimeStatistics {
                t,
                moments: moments[j * n..(j + 1) * n].to_vec(),
                quantiles: taus
                    .iter()
                    .map(|&tau| (0..n).map(|i| quantile(&values[j * n + i], tau)).collect())
                    .collect(),
            })
            .collect();
        Ok(EnsembleSummary {
            trajectories: self.trajectories,
            succeeded,
            failures,
            taus: taus.to_vec(),
            times,
            stats: acc.stats,
        })
    }

    /// Estimates `E[φ(X_T)]` (X_T the last saved state) with a confidence
    /// interval at `level` — the weak-error helper: compare it with an exact
    /// expectation, or two solvers' estimates, within their errors.
    pub fn expectation(
        &self,
        phi: impl Fn(&[f64]) -> f64 + Sync,
        level: f64,
    ) -> Result<Estimate, EnsembleError> {
        let acc = self.reduce(
            Moments::default,
            |m: &mut Moments, _i, sol| m.push(phi(sol.last())),
            |a, b| a.merge(&b),
        )?;
        if acc.value.count == 0
            && let Some((f, _)) = acc.failures.first()
        {
            return Err(EnsembleError::AllFailed { first: f.clone() });
        }
        Ok(acc.value.estimate(level))
    }
}
