//! The continuous diffusion adjoint in `ρ = σ/α = e^{−λ}` by an explicit
//! Runge–Kutta method, as AdjointDPM's code (HanshuYAN/AdjointDPM,
//! `node_solver_noise.py`, torchdiffeq `odeint_adjoint` with fixed-step
//! `euler`, `midpoint`, `rk4`) solves it: the augmented system
//! `z = (y, a_y, a_θ)`, `dz/dρ = F = (ε̂(αy, t(ρ)), −α Jᵀa_y, −(∂ε̂/∂θ)ᵀa_y)`
//! from `ρ_0` up to `ρ_T` on the grid's `ρ` values, `y` re-solved backwards
//! (module docs of [`super`]; `../shared/reference/diffusion.md` §5).
//! Each stage costs one model evaluation and one VJP.

use sdeflow_solvers::diffusion::FlowVjp;

use super::{Backward, RhoMethod, initial_state, rhs};

/// `(c, a, b)` of an explicit method: `a` row-major, strictly lower.
fn tableau(method: RhoMethod) -> (&'static [f64], &'static [&'static [f64]], &'static [f64]) {
    match method {
        RhoMethod::Euler => (&[0.0], &[&[]], &[1.0]),
        RhoMethod::Midpoint => (&[0.0, 0.5], &[&[], &[0.5]], &[0.0, 1.0]),
        RhoMethod::Rk4 => (
            &[0.0, 0.5, 0.5, 1.0],
            &[&[], &[0.5], &[0.0, 0.5], &[0.0, 0.0, 1.0]],
            &[1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
        ),
    }
}

/// The backward pass on the grid `times` (noise first) from the sample
/// `x0` with `∂L/∂x_0 = dl_dx0`.
pub(super) fn backward(
    flow: &dyn FlowVjp,
    p: &[f64],
    times: &[f64],
    x0: &[f64],
    dl_dx0: &[f64],
    method: RhoMethod,
) -> Backward {
    let sched = flow.schedule();
    let (c, a, b) = tableau(method);
    let stages = c.len();
    let n = x0.len();
    let steps = times.len() - 1;
    let mut z = initial_state(flow, times, x0, dl_dx0, p.len());
    let m = z.len();
    let mut ks = vec![0.0; stages * m];
    let (mut zs, mut x, mut scratch) = (vec![0.0; m], vec![0.0; n], vec![0.0; n]);
    for i in (1..=steps).rev() {
        let (t, s) = (times[i], times[i - 1]);
        let rho_t = (-sched.lambda(t)).exp();
        let dr = (-sched.lambda(s)).exp() - rho_t;
        for j in 0..stages {
            zs.copy_from_slice(&z);
            for (l, &ajl) in a[j].iter().enumerate() {
                if ajl != 0.0 {
                    let kl = &ks[l * m..(l + 1) * m];
                    zs.iter_mut()
                        .zip(kl)
                        .for_each(|(zv, &kv)| *zv += dr * ajl * kv);
                }
            }
            // the grid's own times at the ends (t(λ(t)) is t only to rounding)
            let tj = if c[j] == 0.0 {
                t
            } else if c[j] == 1.0 {
                s
            } else {
                sched.t_of_lambda(-(rho_t + c[j] * dr).ln())
            };
            let aj = sched.alpha(tj);
            x.iter_mut().zip(&zs[..n]).for_each(|(xv, &y)| *xv = aj * y);
            let kj = &mut ks[j * m..(j + 1) * m];
            rhs(flow, tj, &x, p, &zs[n..2 * n], true, &mut scratch, kj);
        }
        for (j, &bj) in b.iter().enumerate() {
            if bj != 0.0 {
                let kj = &ks[j * m..(j + 1) * m];
                z.iter_mut()
                    .zip(kj)
                    .for_each(|(zv, &kv)| *zv += dr * bj * kv);
            }
        }
    }
    let a_start = sched.alpha(times[0]);
    Backward {
        a_x: z[n..2 * n].iter().map(|v| v / a_start).collect(),
        a_p: z[2 * n..].to_vec(),
        vjps: stages * steps,
        model_evals: stages * steps,
        peak_stored: 1 + stages,
    }
}
