//! Time grids for samplers: the times `t_0 = T > t_1 > … > t_N = t_end` of
//! `N` steps, driven by the loop's fixed-grid control
//! ([`crate::options::Options::grid`], which steps through given times).
//!
//! Sources (`../shared/reference/diffusion.md` §3, `exponential.md` §4):
//! uniform `t`, uniform `λ` ("logSNR") and time-quadratic are dpm_solver's
//! `get_time_steps` (Lu et al. 2022); the Karras grid is uniform in
//! `ρ^{1/r}`, `ρ = σ/α = e^{−λ}` (Karras et al. 2022, Eq. 5, `r = 7`).

use super::schedule::NoiseSchedule;
use crate::error::SolveError;
use crate::options::Options;

/// How the `N + 1` times of a sampler's grid are spaced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimeGrid {
    /// Uniform in `t`.
    UniformT,
    /// Uniform in `λ` (logSNR): `t_i = t(λ_i)`.
    UniformLambda,
    /// Uniform in `√t`.
    TimeQuadratic,
    /// Uniform in `ρ^{1/r}` with `ρ = e^{−λ}` (Karras et al.; `r = 7` is
    /// theirs), between the span's end points. EDM's own sampler appends a
    /// last step to `ρ = 0`; here a schedule with `σ = 0` at `t_end = 0`
    /// (`Edm`) reaches it instead.
    Karras {
        /// The exponent `r > 0`.
        rho: f64,
    },
}

impl TimeGrid {
    /// The `steps + 1` times from `t_start` (the noise end) down to `t_end`
    /// under `schedule`. Both ends must lie in the schedule's range with
    /// `t_start > t_end`; `t_end` may have `σ = 0` only for
    /// [`TimeGrid::UniformT`], [`TimeGrid::TimeQuadratic`] and
    /// [`TimeGrid::Karras`] on an `α = 1` schedule.
    ///
    /// ```
    /// use sdeflow_solvers::diffusion::{NoiseSchedule, TimeGrid, VpLinear};
    /// let s = VpLinear::default();
    /// let ts = TimeGrid::UniformLambda.times(&s, 1.0, 1e-3, 4)?;
    /// let h = s.lambda(ts[1]) - s.lambda(ts[0]);
    /// assert!((s.lambda(ts[4]) - s.lambda(ts[3]) - h).abs() < 1e-9);
    /// # Ok::<(), sdeflow_solvers::error::SolveError>(())
    /// ```
    pub fn times<S: NoiseSchedule + ?Sized>(
        &self,
        schedule: &S,
        t_start: f64,
        t_end: f64,
        steps: usize,
    ) -> Result<Vec<f64>, SolveError> {
        self.check(schedule, t_start, t_end, steps)?;
        let n = steps as f64;
        let mut ts: Vec<f64> = (0..=steps)
            .map(|i| self.point(schedule, (t_start, t_end), i as f64 / n))
            .collect();
        // the ends exactly (t(λ(t)) is t only to rounding)
        ts[0] = t_start;
        ts[steps] = t_end;
        if let Some(i) =
            (1..=steps).find(|&i| ts[i].partial_cmp(&ts[i - 1]) != Some(std::cmp::Ordering::Less))
        {
            return Err(SolveError::InvalidInput {
                what: "time grid".into(),
                reason: format!(
                    "t[{i}] = {} does not decrease from t[{}] = {}: {steps} steps are too many \
                     for the span ({t_start}, {t_end}) in double precision",
                    ts[i],
                    i - 1,
                    ts[i - 1]
                ),
            });
        }
        Ok(ts)
    }

    /// The time a fraction `frac ∈ [0, 1]` of the way from `t_start` to
    /// `t_end` in this grid's variable (`t`, `√t`, `λ` or `ρ^{1/r}`): the
    /// point `i` of an `N`-step grid is `frac = i/N`, and the points of
    /// a sub-grid between two grid times are of the same kind. Unchecked
    /// (see [`TimeGrid::times`]).
    pub(crate) fn point<S: NoiseSchedule + ?Sized>(
        &self,
        schedule: &S,
        (t_start, t_end): (f64, f64),
        frac: f64,
    ) -> f64 {
        match *self {
            TimeGrid::UniformT => t_start + frac * (t_end - t_start),
            TimeGrid::TimeQuadratic => {
                let (a, b) = (t_start.sqrt(), t_end.sqrt());
                (a + frac * (b - a)).powi(2)
            }
            TimeGrid::UniformLambda => {
                let (la, lb) = (schedule.lambda(t_start), schedule.lambda(t_end));
                schedule.t_of_lambda(la + frac * (lb - la))
            }
            TimeGrid::Karras { rho } => {
                let r = |t: f64| (schedule.sigma(t) / schedule.alpha(t)).powf(1.0 / rho);
                let (a, b) = (r(t_start), r(t_end));
                let q = (a + frac * (b - a)).powf(rho);
                if q == 0.0 {
                    t_end
                } else {
                    schedule.t_of_lambda(-q.ln())
                }
            }
        }
    }

    /// Options that step through this grid (fixed steps on
    /// [`TimeGrid::times`]; the problem's span must be `(t_start, t_end)`).
    pub fn options<S: NoiseSchedule + ?Sized>(
        &self,
        schedule: &S,
        t_start: f64,
        t_end: f64,
        steps: usize,
    ) -> Result<Options, SolveError> {
        let ts = self.times(schedule, t_start, t_end, steps)?;
        Ok(if steps == 1 {
            // no interior time: one fixed step over the span
            Options::default().fixed_step(t_start - t_end)
        } else {
            Options::default().grid(ts[1..steps].to_vec())
        })
    }

    fn check<S: NoiseSchedule + ?Sized>(
        &self,
        schedule: &S,
        t_start: f64,
        t_end: f64,
        steps: usize,
    ) -> Result<(), SolveError> {
        if steps == 0 {
            return Err(SolveError::InvalidInput {
                what: "time grid steps".into(),
                reason: "0 steps; a grid needs at least one".into(),
            });
        }
        if let TimeGrid::Karras { rho } = *self
            && !(rho.is_finite() && rho > 0.0)
        {
            return Err(SolveError::InvalidInput {
                what: "TimeGrid::Karras rho".into(),
                reason: format!("{rho} must be finite and positive (Karras et al. use 7)"),
            });
        }
        schedule.check_time("time grid t_start", t_start)?;
        let zero_end_ok = t_end == 0.0
            && schedule.sigma(0.0) == 0.0
            && !matches!(self, TimeGrid::UniformLambda)
            && (schedule.log_alpha(0.0) == 0.0 || !matches!(self, TimeGrid::Karras { .. }));
        if !zero_end_ok {
            schedule.check_time("time grid t_end", t_end)?;
        }
        if t_end.partial_cmp(&t_start) != Some(std::cmp::Ordering::Less) {
            return Err(SolveError::InvalidInput {
                what: "time grid".into(),
                reason: format!(
                    "t_end = {t_end} must be below t_start = {t_start}: samplers run from \
                     noise (large t) to data (small t)"
                ),
            });
        }
        Ok(())
    }
}
