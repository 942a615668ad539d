//! The continuous diffusion adjoint in exponential-integrator form in `λ`
//! (module docs of [`super`]; `../shared/reference/diffusion.md` §5).
//!
//! Backwards from `λ_t` to `λ_s < λ_t` (`h = λ_t − λ_s > 0`),
//! `z_s = z_t + ∫_{λ_s}^{λ_t} e^{−λ} F(λ) dλ` for `z = (y, a_y, a_θ)`.
//! Order 1 freezes `F = F_t`: `∫ = e^{−λ_t}(e^h − 1) F_t` (= `(ρ_s − ρ_t) F_t`).
//! Order 2 extrapolates `F` linearly through the previous point `u`
//! (`λ_u > λ_t`), `F ≈ F_t + (λ − λ_t) D`, `D = (F_u − F_t)/(λ_u − λ_t)`:
//! `∫ = e^{−λ_t}[(e^h − 1) F_t − (h e^h − (e^h − 1)) D]`, exact for `F`
//! linear in `λ`; the first backward step (no previous point) is frozen.
//! One VJP per step (its cotangent `a_y` gives both `Jᵀa_y` and
//! `(∂ε̂/∂θ)ᵀa_y`), plus one model evaluation when `y` is re-solved.

use sdeflow_solvers::diffusion::FlowVjp;

use super::{Backward, ExpOrder, initial_state, rhs};

/// The backward pass on the grid `times` (noise first) from the sample
/// `x0` with `∂L/∂x_0 = dl_dx0`; the forward states are read from `stored`
/// (`N + 1` states, grid order) or re-solved.
pub(super) fn backward(
    flow: &dyn FlowVjp,
    p: &[f64],
    times: &[f64],
    x0: &[f64],
    dl_dx0: &[f64],
    order: ExpOrder,
    stored: Option<&[f64]>,
) -> Backward {
    let sched = flow.schedule();
    let n = x0.len();
    let steps = times.len() - 1;
    let mut z = initial_state(flow, times, x0, dl_dx0, p.len());
    let m = z.len();
    let (mut f, mut f_prev) = (vec![0.0; m], vec![0.0; m]);
    let (mut x, mut scratch) = (vec![0.0; n], vec![0.0; n]);
    let mut lambda_prev: Option<f64> = None;
    for i in (1..=steps).rev() {
        let (t, s) = (times[i], times[i - 1]);
        let (lt, ls) = (sched.lambda(t), sched.lambda(s));
        let h = lt - ls;
        match stored {
            Some(ys) => x.copy_from_slice(&ys[i * n..(i + 1) * n]),
            None => {
                let at = sched.alpha(t);
                x.iter_mut().zip(&z[..n]).for_each(|(xv, &y)| *xv = at * y);
            }
        }
        rhs(
            flow,
            t,
            &x,
            p,
            &z[n..2 * n],
            stored.is_none(),
            &mut scratch,
            &mut f,
        );
        let w = (-lt).exp();
        let c1 = w * h.exp_m1();
        match (order, lambda_prev) {
            (ExpOrder::Second, Some(lu)) => {
                let c2 = w * (h * h.exp() - h.exp_m1()) / (lu - lt);
                for ((zk, &fk), &fu) in z.iter_mut().zip(&f).zip(&f_prev) {
                    *zk += c1 * fk - c2 * (fu - fk);
                }
            }
            _ => z.iter_mut().zip(&f).for_each(|(zk, &fk)| *zk += c1 * fk),
        }
        std::mem::swap(&mut f, &mut f_prev);
        lambda_prev = Some(lt);
    }
    let a_start = sched.alpha(times[0]);
    Backward {
        a_x: z[n..2 * n].iter().map(|v| v / a_start).collect(),
        a_p: z[2 * n..].to_vec(),
        vjps: steps,
        model_evals: if stored.is_some() { 0 } else { steps },
        peak_stored: match (stored, order) {
            (Some(_), _) => steps + 1,
            (None, ExpOrder::First) => 1,
            (None, ExpOrder::Second) => 2,
        },
    }
}
