//! The result of a solve: saved times and states, work statistics, status and
//! (optionally) dense output.

use serde::{Deserialize, Serialize};

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
    /// solvers; diffsol's "linear solver setups" for `Bdf`).
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
    /// Interpolation data (with [`crate::SaveAt::Dense`]).
    pub dense: Option<DenseOutput>,
}

impl Solution {
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
    /// solve with [`crate::SaveAt::Dense`].
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
