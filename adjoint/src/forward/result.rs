//! The result of [`crate::sensitivities`]: the solution and its
//! derivatives at the saved times.

use nalgebra::DMatrixView;
use sdeflow_solvers::solution::{Solution, Stats};

use super::tangent::Directions;

/// The solution `y` at the saved times and its forward sensitivities
/// `dy/dp` (`n × P`) and `dy/dy0` (`n × n`) there, read from the solve of
/// the sensitivity system `[y, S_1, …, S_K]` (kept as
/// [`Sensitivities::augmented`]).
///
/// Saved time `k` is indexed as in a [`Solution`]; the accessors panic when
/// `k >= len()`, as slice indexing does.
#[derive(Debug, Clone)]
pub struct Sensitivities {
    pub(super) solution: Solution,
    pub(super) dirs: Directions,
    pub(super) plain_stats: Option<Stats>,
}

impl Sensitivities {
    /// Number of saved times.
    pub fn len(&self) -> usize {
        self.solution.len()
    }

    /// Whether no time was saved.
    pub fn is_empty(&self) -> bool {
        self.solution.is_empty()
    }

    /// The saved times.
    pub fn ts(&self) -> &[f64] {
        &self.solution.ts
    }

    /// State dimension `n`.
    pub fn dim(&self) -> usize {
        self.dirs.n
    }

    /// Number of parameter columns of [`Sensitivities::dy_dp`] (`P`, or 0
    /// when they were not asked for).
    pub fn n_params(&self) -> usize {
        self.dirs.params
    }

    /// The state `y` at saved time `k` (bit for bit the state
    /// [`sdeflow_solvers::solve`] saves on the same steps).
    pub fn y(&self, k: usize) -> &[f64] {
        &self.solution.y(k)[..self.dirs.n]
    }

    /// `dy/dp` at saved time `k`: `n × P`, entry `(i, j) = ∂y_i/∂p_j`
    /// (no columns unless asked with [`super::Wrt::Params`] or
    /// [`super::Wrt::ParamsAndY0`]).
    pub fn dy_dp(&self, k: usize) -> DMatrixView<'_, f64> {
        let n = self.dirs.n;
        let z = self.solution.y(k);
        DMatrixView::from_slice(&z[n..n * (1 + self.dirs.params)], n, self.dirs.params)
    }

    /// `dy/dy0` at saved time `k`: `n × n`, entry `(i, j) = ∂y_i/∂y0_j`
    /// (no columns unless asked with [`super::Wrt::Y0`] or
    /// [`super::Wrt::ParamsAndY0`]).
    pub fn dy_dy0(&self, k: usize) -> DMatrixView<'_, f64> {
        let n = self.dirs.n;
        let z = self.solution.y(k);
        let start = n * (1 + self.dirs.params);
        DMatrixView::from_slice(&z[start..start + n * self.dirs.y0], n, self.dirs.y0)
    }

    /// The solve of the sensitivity system: the augmented states
    /// `[y, S_1, …, S_K]` (parameter directions first), `n (1 + K)` values
    /// per saved time.
    pub fn augmented(&self) -> &Solution {
        &self.solution
    }

    /// Work of the solve: each drift evaluation counted is one of the
    /// sensitivity system, i.e. one plain evaluation of the drift and one
    /// on dual numbers per direction (likewise for the diffusion).
    pub fn stats(&self) -> &Stats {
        &self.solution.stats
    }

    /// Work of the plain solve that chose the steps (adaptive steps only;
    /// `None` for fixed steps, which need none).
    pub fn plain_stats(&self) -> Option<&Stats> {
        self.plain_stats.as_ref()
    }
}
