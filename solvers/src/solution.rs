//! The result of a solve: saved times and states, work statistics, status and
//! (optionally) dense output.

use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::brownian::DynPath;
use crate::dense::DenseOutput;
use crate::error::SolveError;

/// Work done by a solve. Counts are exact, so solvers can be compared by work
/// and not only by time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Evaluations of the drift `f`.
    pub drift_evals: usize,
    /// Evaluations of the diffusion `g`.
    pub diffusion_evals: usize,
    /// Jacobian evaluations: points at which a Jacobian was formed (by the
    /// user's closure, dual numbers, or finite differences).
    pub jacobian_evals: usize,
    /// Accepted steps.
    pub accepted_steps: usize,
    /// Rejected steps.
    pub rejected_steps: usize,
    /// Nonlinear (Newton) iterations of implicit solvers.
    pub nonlinear_iterations: usize,
    /// Nonlinear (Newton) solves of implicit solvers that failed to
    /// converge (each one rejects its step, or retries it with a fresh
    /// Jacobian).
    #[serde(default)]
    pub nonlinear_failures: usize,
    /// LU factorisations of the iteration matrix `I − hγJ` (implicit
    /// solvers; diffsol's "linear solver setups" for the diffsol
    /// references).
    #[serde(default)]
    pub lu_factorizations: usize,
}

impl Stats {
    /// Attempted steps (accepted + rejected).
    pub fn steps(&self) -> usize {
        self.accepted_steps + self.rejected_steps
    }

    /// Drift plus diffusion evaluations.
    pub fn field_evals(&self) -> usize {
        self.drift_evals + self.diffusion_evals
    }
}

/// How a solve ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Reached `t1`.
    Success,
    /// Stopped early; the [`SolveError`] that carries this solution says why.
    Incomplete,
}

/// Saved times and states of a solve, stored flat (`n` values per saved time).
///
/// ```
/// use sdeflow_solvers::prelude::*;
/// let p = Problem::ode(|_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
///                      vec![1.0], (0.0, 1.0));
/// let sol = solve(&p, Tsit5, &Options::default().tol(1e-8).save_at(SaveAt::Dense)).unwrap();
/// assert!((sol.last()[0] - (-1.0f64).exp()).abs() < 1e-7);
/// assert!((sol.at(0.5).unwrap()[0] - (-0.5f64).exp()).abs() < 1e-7);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Solution {
    /// Saved times.
    pub ts: Vec<f64>,
    /// Saved states, `n` per saved time.
    pub ys: Vec<f64>,
    /// State dimension.
    pub n: usize,
    /// Work statistics.
    pub stats: Stats,
    /// How the solve ended.
    pub status: Status,
    /// Name of the solver that produced it.
    pub solver: String,
    /// Interpolation data (with [`crate::options::SaveAt::Dense`]).
    pub dense: Option<DenseOutput>,
    /// The Brownian path an SDE solve was driven by, as its driver keeps it
    /// (`None` for ODEs, for drivers that cannot re-query their path such as
    /// [`crate::brownian::Increments`], for the partial solution of a failed
    /// solve, for solves on a path given to
    /// [`crate::integrate::integrate_on_path`], and after deserialisation). Read it
    /// with [`Solution::brownian_at_saved`] and
    /// [`Solution::brownian_increment`].
    #[serde(skip)]
    pub brownian: Option<KeptPath>,
}

/// The Brownian path of a solve, kept by its [`Solution`]. Queries go to
/// this one path object, in place (a path that splits at query points, such
/// as the cached interval, stays consistent across calls).
#[derive(Debug)]
pub struct KeptPath {
    path: Mutex<Box<dyn DynPath>>,
    /// Where the solve started (`W(t0)` is the origin of
    /// [`Solution::brownian_at_saved`]).
    pub t0: f64,
}

impl KeptPath {
    /// Keeps `path` of a solve that started at `t0`.
    pub fn new(path: Box<dyn DynPath>, t0: f64) -> Self {
        KeptPath {
            path: Mutex::new(path),
            t0,
        }
    }

    /// The path, locked for queries.
    fn lock(&self) -> MutexGuard<'_, Box<dyn DynPath>> {
        self.path.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clone for KeptPath {
    fn clone(&self) -> Self {
        KeptPath::new(self.lock().clone_box(), self.t0)
    }
}

impl Solution {
    /// A copy of the Brownian path this solve was driven by, to query at
    /// will (for the cached interval, points not yet queried are split in
    /// the copy only); see [`Solution::brownian`].
    pub fn brownian_path(&self) -> Result<Box<dyn DynPath>, SolveError> {
        self.kept().map(|p| p.lock().clone_box())
    }

    /// The kept path, or why there is none.
    fn kept(&self) -> Result<&KeptPath, SolveError> {
        match &self.brownian {
            Some(p) => Ok(p),
            None => Err(SolveError::invalid(
                "brownian",
                "this solution keeps no Brownian path: it is an ODE solve, or its driver \
                 (Increments) draws each increment once; drive the problem with VirtualTree \
                 or CachedInterval to keep the path",
            )),
        }
    }

    /// `W(t) − W(t0)` at every saved time, `m` values per time (time-major):
    /// the Brownian motion of the trajectory, aligned with [`Solution::ys`].
    pub fn brownian_at_saved(&self) -> Result<Vec<f64>, SolveError> {
        let kept = self.kept()?;
        let (mut path, t0) = (kept.lock(), kept.t0);
        let m = path.dim();
        let mut w = vec![0.0; self.ts.len() * m];
        for (k, &t) in self.ts.iter().enumerate() {
            if t != t0 {
                path.increment(t0, t, &mut w[k * m..(k + 1) * m]);
            }
        }
        Ok(w)
    }

    /// The Brownian increment `W(t) − W(s)` of this solve's path (`m`
    /// values) into `dw`, and its space–time Lévy area into `h` when given.
    pub fn brownian_increment(
        &self,
        s: f64,
        t: f64,
        dw: &mut [f64],
        h: Option<&mut [f64]>,
    ) -> Result<(), SolveError> {
        let mut path = self.kept()?.lock();
        let m = path.dim();
        if dw.len() != m || h.as_ref().is_some_and(|h| h.len() != m) {
            return Err(SolveError::DimensionMismatch {
                what: "Brownian increment buffer".into(),
                expected: m,
                found: Some(dw.len()),
                hint: "give one entry per Brownian motion".into(),
            });
        }
        if !(s.is_finite() && t.is_finite()) {
            return Err(SolveError::invalid(
                "brownian_increment",
                format!("[{s}, {t}] is not finite"),
            ));
        }
        match h {
            Some(h) => path.increment_with_levy_area(s, t, dw, h),
            None => path.increment(s, t, dw),
        }
        Ok(())
    }

    /// Number of saved states.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether nothing was saved.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// The `i`-th saved state.
    pub fn y(&self, i: usize) -> &[f64] {
        &self.ys[i * self.n..(i + 1) * self.n]
    }

    /// The last saved state (the state at `t1` after a successful solve).
    pub fn last(&self) -> &[f64] {
        let len = self.len();
        if len == 0 { &[] } else { self.y(len - 1) }
    }

    /// The last saved time.
    pub fn t_last(&self) -> Option<f64> {
        self.ts.last().copied()
    }

    /// Iterates over `(t, y)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (f64, &[f64])> + '_ {
        self.ts
            .iter()
            .copied()
            .zip(self.ys.chunks_exact(self.n.max(1)))
    }

    /// Component `j` of every saved state.
    pub fn component(&self, j: usize) -> Vec<f64> {
        self.ys
            .iter()
            .skip(j)
            .step_by(self.n.max(1))
            .copied()
            .collect()
    }

    /// The solution at time `t`, by the solver's own interpolant. Needs a
    /// solve with [`crate::options::SaveAt::Dense`].
    pub fn at(&self, t: f64) -> Result<Vec<f64>, SolveError> {
        let mut out = vec![0.0; self.n];
        self.at_into(t, &mut out)?;
        Ok(out)
    }

    /// Like [`Solution::at`], writing into `out` (length `n`).
    pub fn at_into(&self, t: f64, out: &mut [f64]) -> Result<(), SolveError> {
        if out.len() != self.n {
            return Err(SolveError::DimensionMismatch {
                what: "at_into output".into(),
                expected: self.n,
                found: Some(out.len()),
                hint: "pass a buffer of the state dimension".into(),
            });
        }
        match &self.dense {
            Some(d) => d.eval(t, out),
            None => Err(SolveError::Interpolation {
                reason: "this solution has no dense output; solve with SaveAt::Dense".into(),
            }),
        }
    }
}
