//! The stochastic adjoint of Li, Wong, Chen, Duvenaud ("Scalable gradients
//! for stochastic differential equations", AISTATS 2020) for Stratonovich
//! SDEs, diagonal, scalar or general noise.
//!
//! In reversed time `τ = t1 − t`, driven by the reversed path
//! `W̃(τ) = W(t1 − τ) − W(t1)` of the forward solve's own path, the augmented
//! state `u = [z, a, a_p]` solves the Stratonovich SDE
//! `dz = −f dτ + g ∘ dW̃`, `da = a ∂f/∂y dτ − a ∂g/∂y ∘ dW̃`,
//! `da_p = a ∂f/∂p dτ − a ∂g/∂p ∘ dW̃`,
//! from `z = y(t1)`, `a = ∂L/∂y(t1)`, `a_p = 0`; then `dL/dy0 = a`,
//! `dL/dp = a_p` at `τ = t1 − t0`. The state is recomputed backwards, so
//! memory does not depend on the number of steps; the gradient converges to
//! the pathwise gradient as the steps shrink (it is not the exact gradient of
//! the discrete forward solution). Both passes use reversible Heun.

use std::cell::RefCell;

use sdeflow_solvers::brownian::{Driver, ReversedPath};
use sdeflow_solvers::integrate::{NoObserver, integrate_on_path};
use sdeflow_solvers::sde::ReversibleHeun;
use sdeflow_solvers::{
    field::DiffusionVjp, field::DriftVjp, noise::Interpretation, noise::Noise, options::Options,
    options::SaveAt, problem::Problem, solve,
};

use crate::differentiable::Request;
use crate::loss::Loss;
use crate::{GradError, Gradient};

impl<F: DriftVjp, G: DiffusionVjp, D: Driver, L: Loss + ?Sized> Request<'_, F, G, D, L> {
    /// The stochastic adjoint (see [`crate::Adjoint::Stochastic`]) of the
    /// gradient asked for.
    pub(crate) fn stochastic(&self) -> Result<Gradient, GradError> {
        let (problem, opts, loss) = (self.problem, self.options, self.loss);
        if !problem.driver.requery() {
            return Err(GradError::Unsupported(format!(
                "the stochastic adjoint walks the Brownian path backwards, which the {} driver \
                 cannot re-query; drive the problem with VirtualTree (the default) or CachedInterval, \
                 or use Adjoint::Discrete",
                problem.driver.name()
            )));
        }
        if !matches!(opts.save_at, SaveAt::T1) {
            return Err(GradError::Unsupported(
                "the stochastic adjoint takes a loss on SaveAt::T1".into(),
            ));
        }
        let noise = problem
            .noise
            .ok_or_else(|| GradError::Unsupported("the stochastic adjoint needs an SDE".into()))?;
        let (t0, t1) = problem.tspan;
        let n = problem.dim();
        let np = problem.params.len();
        let m = noise.brownian_dim(n);
        let sol = solve(problem, ReversibleHeun, opts)?;
        let mut path = sol.brownian_path()?;
        let (value, gy) = crate::loss::evaluate(loss, &sol)?;
        let big = 2 * n + np;
        let mut u0 = vec![0.0; big];
        u0[..n].copy_from_slice(sol.last());
        u0[n..2 * n].copy_from_slice(&gy[..n]);
        let (drift, diffusion, p) = (&problem.drift, &problem.diffusion, &problem.params);
        let glen = noise.diffusion_len(n);
        let scratch = RefCell::new((
            vec![0.0; n],
            vec![0.0; np],
            vec![0.0; glen],
            vec![0.0; glen],
        ));
        let aug_drift = |tau: f64, u: &[f64], _q: &[f64], du: &mut [f64]| {
            let t = t1 - tau;
            let (z, a) = (&u[..n], &u[n..2 * n]);
            drift.drift(t, z, p, &mut du[..n]);
            for v in &mut du[..n] {
                *v = -*v;
            }
            let mut s = scratch.borrow_mut();
            let (oy, op, _, _) = &mut *s;
            oy.iter_mut().for_each(|v| *v = 0.0);
            op.iter_mut().for_each(|v| *v = 0.0);
            drift.drift_vjp(t, z, p, a, oy, op);
            du[n..2 * n].copy_from_slice(oy);
            du[2 * n..].copy_from_slice(op);
        };
        let aug_diffusion = |tau: f64, u: &[f64], _q: &[f64], gm: &mut [f64]| {
            // column-major big × m
            let t = t1 - tau;
            let (z, a) = (&u[..n], &u[n..2 * n]);
            let mut s = scratch.borrow_mut();
            let (oy, op, g, v) = &mut *s;
            diffusion.diffusion(t, z, p, g);
            gm.iter_mut().for_each(|x| *x = 0.0);
            for j in 0..m {
                let col = &mut gm[j * big..(j + 1) * big];
                // the cotangent of column j of G: a in that column
                v.iter_mut().for_each(|x| *x = 0.0);
                match noise {
                    Noise::Scalar => {
                        col[..n].copy_from_slice(&g[..n]);
                        v[..n].copy_from_slice(a);
                    }
                    Noise::Diagonal | Noise::Additive => {
                        col[j] = g[j];
                        v[j] = a[j];
                    }
                    Noise::General(_) => {
                        col[..n].copy_from_slice(&g[j * n..(j + 1) * n]);
                        v[j * n..(j + 1) * n].copy_from_slice(a);
                    }
                }
                oy.iter_mut().for_each(|x| *x = 0.0);
                op.iter_mut().for_each(|x| *x = 0.0);
                diffusion.diffusion_vjp(t, z, p, v, oy, op);
                for k in 0..n {
                    col[n + k] = -oy[k];
                }
                for k in 0..np {
                    col[2 * n + k] = -op[k];
                }
            }
        };
        let back = Problem::sde(
            &aug_drift,
            &aug_diffusion,
            Noise::General(m),
            u0,
            (0.0, t1 - t0),
        )
        .interpretation(Interpretation::Stratonovich);
        let mut reversed = ReversedPath {
            path: path.as_mut(),
            t_end: t1,
        };
        // The backward solve runs in reversed time τ = t1 − t: the forward
        // solve's step and discontinuity times, mapped there, in increasing τ.
        let reverse = |times: &[f64]| -> Vec<f64> {
            times
                .iter()
                .rev()
                .map(|&t| t1 - t)
                .filter(|&tau| tau > 0.0 && tau < t1 - t0)
                .collect()
        };
        let back_opts = Options {
            save_at: SaveAt::T1,
            step_to: reverse(&opts.step_to),
            discontinuities: reverse(&opts.discontinuities),
            ..opts.clone()
        };
        let b = integrate_on_path(
            &back,
            &ReversibleHeun,
            &back_opts,
            &mut NoObserver,
            Some(&mut reversed),
        )?;
        let u = b.last();
        Ok(Gradient {
            loss: value,
            dp: u[2 * n..].to_vec(),
            dy0: u[n..2 * n].to_vec(),
            solution: sol,
            vjps: b.stats.drift_evals + m * b.stats.diffusion_evals,
            backward_drift_evals: b.stats.drift_evals,
            peak_stored_states: 1,
        })
    }
}
