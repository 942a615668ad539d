//! DPM-Solver-fast: singlestep DPM-Solver that spends exactly a given
//! number of model evaluations (Lu, Zhou, Bao, Chen, Li, Zhu, "DPM-Solver",
//! NeurIPS 2022, §3.4 "DPM-Solver-fast"; dpm_solver `DPM_Solver.sample`
//! with `method="singlestep"` and
//! `get_orders_and_timesteps_for_singlestep_solver`). Reference:
//! `../shared/reference/diffusion.md` §3 and `exponential.md` §4.
//!
//! With a budget of `N` evaluations and order 3 it takes `K = ⌊N/3⌋ + 1`
//! steps of orders `3, …, 3` followed by `2, 1` (`N ≡ 0 mod 3`), `1`
//! (`N ≡ 1`) or `2` (`N ≡ 2`); order 2 takes `⌈N/2⌉` steps of order 2, the
//! last of order 1 when `N` is odd; order 1 is DDIM with `N` steps. An
//! order-`k` step is DPM-Solver-`k` (noise prediction; DPM-Solver-3 in
//! the reference's default `solver_type="dpmsolver"` form, Alg. 2).
//!
//! Its intermediate points are those of a `k`-step sub-grid of the same
//! kind ([`TimeGrid`]) between the step's ends: on the uniform-λ grid the
//! fractions are the paper's `r1 = ⅓, r2 = ⅔` (order 3) and `r1 = ½`
//! (order 2), and the `K` outer points are uniform in λ; on any other grid
//! the outer points are those of the `N`-step grid at the cumulative
//! orders and the intermediate points are its inner points, so the model
//! is evaluated at exactly the `N`-step grid's times
//! ([`DpmSolverFast::options`] builds the outer grid).
//!
//! One order-1 step has a local error `O(h²)`, so when the orders end
//! in 1 (`N ≢ 2 mod 3` for order 3, `N` odd for order 2) the global order
//! is 2 ([`Sampler::order`] says so); otherwise it is the order.

use super::ddim::Ddim;
use super::dpm_solver3::{dpm3_step, dpm3_vjp};
use super::grid::TimeGrid;
use super::model::{Model, Parametrisation};
use super::sampler::{Advance, Form, Sampler};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp};
use super::schedule::NoiseSchedule;
use crate::error::SolveError;
use crate::options::Options;

/// DPM-Solver-fast: singlestep DPM-Solver of order 1, 2 or 3 spending
/// exactly `nfe` model evaluations on a grid of the kind `grid` (module
/// docs).
///
/// ```
/// use sdeflow_solvers::diffusion::*;
/// use sdeflow_solvers::solve;
/// let s = VpLinear::default();
/// let g = DiagonalGaussian::new(vec![0.5], vec![0.09])?;
/// let gm = g.clone();
/// let prob = probability_flow(
///     move |t: f64, x: &[f64], _p: &[f64], out: &mut [f64]| gm.noise(&s, t, x, out),
///     Parametrisation::Noise,
///     s,
///     vec![1.0],
///     (1.0, 1e-3),
/// );
/// let fast = DpmSolverFast::new(20, TimeGrid::UniformLambda);
/// assert_eq!(fast.steps(), 7); // six steps of order 3, one of order 2
/// let sol = solve(&prob, fast, fast.options(&s, 1.0, 1e-3)?)?;
/// assert_eq!(sol.stats.drift_evals, 20);
/// let mut exact = [0.0];
/// g.flow_map(&s, 1.0, 1e-3, &[1.0], &mut exact);
/// // DDIM with the same 20 evaluations is ten times further off
/// let ddim = solve(&prob, Ddim, TimeGrid::UniformLambda.options(&s, 1.0, 1e-3, 20)?)?;
/// let (e_fast, e_ddim) = ((sol.last()[0] - exact[0]).abs(), (ddim.last()[0] - exact[0]).abs());
/// assert!(e_fast < 5e-3 && 10.0 * e_fast < e_ddim);
/// # Ok::<(), sdeflow_solvers::error::SolveError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpmSolverFast {
    nfe: usize,
    order: usize,
    grid: TimeGrid,
}

impl DpmSolverFast {
    /// Order 3 with a budget of `nfe` model evaluations on a grid of the
    /// kind `grid` (`nfe ≥ 1`; checked when solving).
    pub fn new(nfe: usize, grid: TimeGrid) -> Self {
        DpmSolverFast {
            nfe,
            order: 3,
            grid,
        }
    }

    /// The highest order used (1, 2 or 3; checked when solving).
    pub fn with_order(mut self, order: usize) -> Self {
        self.order = order;
        self
    }

    /// The number of steps `K` (outer grid intervals).
    pub fn steps(&self) -> usize {
        match self.order {
            3 => self.nfe / 3 + 1,
            2 => self.nfe.div_ceil(2),
            _ => self.nfe,
        }
    }

    /// The order of step `index` (from 0); steps past the last repeat its
    /// order.
    pub fn order_of_step(&self, index: usize) -> usize {
        let k = self.steps();
        let last = index + 1 >= k;
        match (self.order, self.nfe % self.order.max(1)) {
            (3, 0) if index + 2 == k => 2,
            (3, 0) if last => 1,
            (3, 1) if last => 1,
            (3, 2) if last => 2,
            (3, _) => 3,
            (2, 1) if last => 1,
            (2, _) => 2,
            _ => 1,
        }
    }

    /// Options that step through the outer grid from `t_start` to `t_end`
    /// under `schedule`: `K` steps uniform in λ on
    /// [`TimeGrid::UniformLambda`], otherwise the `nfe`-step grid's times at
    /// the cumulative orders. The problem's span must be
    /// `(t_start, t_end)`.
    pub fn options<S: NoiseSchedule + ?Sized>(
        &self,
        schedule: &S,
        t_start: f64,
        t_end: f64,
    ) -> Result<Options, SolveError> {
        self.check_settings()?;
        let k = self.steps();
        if self.grid == TimeGrid::UniformLambda {
            return self.grid.options(schedule, t_start, t_end, k);
        }
        let fine = self.grid.times(schedule, t_start, t_end, self.nfe)?;
        let mut at = 0;
        let mut outer = Vec::with_capacity(k);
        for i in 0..k - 1 {
            at += self.order_of_step(i);
            outer.push(fine[at]);
        }
        Ok(if k == 1 {
            Options::default().fixed_step(t_start - t_end)
        } else {
            Options::default().grid(outer)
        })
    }

    /// The λ-fractions of the step's intermediate points: a `k`-step
    /// sub-grid of the grid's kind between `t` and `t_next`.
    fn fractions<S: NoiseSchedule + ?Sized>(
        &self,
        sched: &S,
        (t, t_next): (f64, f64),
        k: usize,
    ) -> [f64; 2] {
        let lam_s = sched.lambda(t);
        let h = sched.lambda(t_next) - lam_s;
        let mut r = [0.0; 2];
        for (j, rj) in r.iter_mut().enumerate().take(k - 1) {
            let tj = self
                .grid
                .point(sched, (t, t_next), (j + 1) as f64 / k as f64);
            *rj = (sched.lambda(tj) - lam_s) / h;
        }
        r
    }
}

impl Sampler for DpmSolverFast {
    fn name(&self) -> &'static str {
        "DPM-Solver-fast"
    }
    fn order(&self) -> f64 {
        let last = self.steps().saturating_sub(1);
        let ends_in_first_order = self.order > 1 && self.order_of_step(last) == 1;
        if ends_in_first_order {
            2.0
        } else {
            self.order as f64
        }
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Noise
    }
    fn scratch(&self) -> usize {
        3
    }
    fn reads_step_index(&self) -> bool {
        true
    }
    fn check_settings(&self) -> Result<(), SolveError> {
        if !(1..=3).contains(&self.order) {
            return Err(SolveError::InvalidInput {
                what: "DpmSolverFast order".into(),
                reason: format!("{} is not 1, 2 or 3", self.order),
            });
        }
        if self.nfe == 0 {
            return Err(SolveError::InvalidInput {
                what: "DpmSolverFast nfe".into(),
                reason: "a budget of 0 model evaluations; give at least 1".into(),
            });
        }
        Ok(())
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        let k = self.order_of_step(st.index);
        let [r1, r2] = self.fractions(&st.flow.schedule, (st.t, st.t_next), k);
        match k {
            1 => Ddim.advance(st),
            2 => Form::Noise.singlestep2(r1, st),
            _ => dpm3_step(r1, r2, st),
        }
    }
}

/// Each step's VJP is its order's: DDIM's, DPM-Solver-2's or
/// DPM-Solver-3's with the step's fractions.
impl SamplerVjp for DpmSolverFast {
    fn vjp_scratch(&self) -> usize {
        5
    }
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        let k = self.order_of_step(st.index);
        let [r1, r2] = self.fractions(st.schedule(), (st.t, st.t_next), k);
        match k {
            1 => Ddim.advance_vjp(st),
            2 => Form::Noise.singlestep2_vjp(r1, st),
            _ => dpm3_vjp(r1, r2, st),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference's order lists (dpm_solver
    /// `get_orders_and_timesteps_for_singlestep_solver`), written out.
    fn reference_orders(nfe: usize, order: usize) -> Vec<usize> {
        match order {
            3 => {
                let k = nfe / 3 + 1;
                match nfe % 3 {
                    0 => [vec![3; k - 2], vec![2, 1]].concat(),
                    1 => [vec![3; k - 1], vec![1]].concat(),
                    _ => [vec![3; k - 1], vec![2]].concat(),
                }
            }
            2 if nfe.is_multiple_of(2) => vec![2; nfe / 2],
            2 => [vec![2; nfe / 2], vec![1]].concat(),
            _ => vec![1; nfe],
        }
    }

    #[test]
    fn orders_match_the_reference_and_spend_the_budget() {
        for order in 1..=3 {
            for nfe in 1..=40 {
                let fast = DpmSolverFast::new(nfe, TimeGrid::UniformLambda).with_order(order);
                let ours: Vec<usize> = (0..fast.steps()).map(|i| fast.order_of_step(i)).collect();
                assert_eq!(
                    ours,
                    reference_orders(nfe, order),
                    "nfe {nfe}, order {order}"
                );
                assert_eq!(ours.iter().sum::<usize>(), nfe, "nfe {nfe}, order {order}");
            }
        }
    }
}
