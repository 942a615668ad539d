//! Integrals of Lagrange basis polynomials against a weight, the
//! coefficients of the variable-step Adams–Bashforth samplers (DEIS's
//! tAB, k-diffusion's LMS): `c_j = ∫_a^b ℓ_j(u(v)) w(v) dv` with `ℓ_j` the
//! Lagrange basis on the nodes `u_0, …, u_{k−1}` (`ℓ_j(u_m) = δ_jm`).
//!
//! Quadrature: 8-point Gauss–Legendre on `[a, b]`, exact for polynomial
//! integrands up to degree 15 (LMS: `u = v`, `w = 1`, degree ≤ 3, so the
//! coefficients are exact to rounding, where k-diffusion calls scipy's
//! `quad` at `epsrel = 1e−4`). DEIS integrates in `λ`, where its integrand
//! `e^{∓λ} ℓ_j(t(λ))` is analytic in a strip `|Im λ| < π/2` for the VP
//! schedules; there the rule's error falls like `ρ^{−16}` with `ρ` the
//! Bernstein-ellipse parameter of that strip, below `1e−8` relative for
//! steps up to `h = 2` in `λ` (DEIS's own code takes a 10,000-point left
//! Riemann sum in `t`, Zhang & Chen, `jax_deis/multistep.py`).

use super::model::Model;
use super::sampler::{Advance, History};
use super::sampler_vjp::{AdvanceVjp, linear_vjp};
use super::schedule::NoiseSchedule;

/// The nodes (positive half) of 8-point Gauss–Legendre on `[−1, 1]`.
pub(crate) const GL8_X: [f64; 4] = [
    0.183_434_642_495_649_8,
    0.525_532_409_916_329,
    0.796_666_477_413_626_7,
    0.960_289_856_497_536_3,
];
/// Their weights.
pub(crate) const GL8_W: [f64; 4] = [
    0.362_683_783_378_362,
    0.313_706_645_877_887_3,
    0.222_381_034_453_374_5,
    0.101_228_536_290_376_3,
];

/// The most nodes a sampler's basis has (AB4).
pub(crate) const MAX_NODES: usize = 4;

/// Writes `c_j = ∫_a^b ℓ_j(u(v)) w(v) dv` for the Lagrange basis on
/// `nodes` (distinct, at most [`MAX_NODES`]) into `out[..nodes.len()]`;
/// `uw(v)` returns `(u(v), w(v))`.
pub(crate) fn lagrange_integrals(
    nodes: &[f64],
    (a, b): (f64, f64),
    uw: impl Fn(f64) -> (f64, f64),
    out: &mut [f64],
) {
    let k = nodes.len();
    debug_assert!((1..=MAX_NODES).contains(&k) && out.len() >= k);
    out[..k].iter_mut().for_each(|o| *o = 0.0);
    let (mid, half) = (0.5 * (a + b), 0.5 * (b - a));
    for (&x, &wq) in GL8_X.iter().zip(&GL8_W) {
        for v in [mid - half * x, mid + half * x] {
            let (u, w) = uw(v);
            let scale = half * wq * w;
            for (j, o) in out[..k].iter_mut().enumerate() {
                *o += scale * basis(nodes, j, u);
            }
        }
    }
}

/// The Lagrange basis polynomial `ℓ_j` of `nodes` (distinct) at `u`.
pub(crate) fn basis(nodes: &[f64], j: usize, u: f64) -> f64 {
    let mut l = 1.0;
    for (m, &um) in nodes.iter().enumerate() {
        if m != j {
            l *= (u - um) / (nodes[j] - um);
        }
    }
    l
}

/// The nodes of a `k`-point Adams–Bashforth step: `node0` for the current
/// prediction, then `node(λ)` of the `λ`s of the `k − 1` most recent past
/// ones in `history`.
pub(crate) fn nodes(
    node0: f64,
    history: History<'_>,
    k: usize,
    node: impl Fn(f64) -> f64,
) -> [f64; MAX_NODES] {
    let mut nodes = [node0; MAX_NODES];
    for (j, nd) in nodes.iter_mut().enumerate().take(k).skip(1) {
        *nd = node(history.get(j - 1).1);
    }
    nodes
}

/// The predictions of a `k`-point Adams–Bashforth step: the current one
/// `m0`, then the `k − 1` most recent past ones of `history`.
pub(crate) fn outputs<'a>(m0: &'a [f64], history: History<'a>, k: usize) -> [&'a [f64]; MAX_NODES] {
    let mut outs = [m0; MAX_NODES];
    for (j, o) in outs.iter_mut().enumerate().take(k).skip(1) {
        *o = history.get(j - 1).0;
    }
    outs
}

/// `x_new = ratio x + Σ_j c_j outs_j` over the `c.len()` points.
pub(crate) fn combine(x_new: &mut [f64], ratio: f64, x: &[f64], c: &[f64], outs: &[&[f64]]) {
    for i in 0..x.len() {
        let mut acc = ratio * x[i];
        for (cj, m) in c.iter().zip(outs) {
            acc += cj * m[i];
        }
        x_new[i] = acc;
    }
}

/// A variable-step Adams–Bashforth sampler (DEIS's tAB, LMS): its step
/// is `x_t = ratio x + Σ_j c_j m_j` over the current and past predictions,
/// with coefficients from the grid alone.
pub(crate) trait AdamsBashforth {
    /// The number of points `k` of the step from `t` to `t_next` with
    /// `history`, `ratio`, and `c[..k]`.
    fn coefficients<S: NoiseSchedule + ?Sized>(
        &self,
        sched: &S,
        span: (f64, f64),
        history: History<'_>,
    ) -> (usize, f64, [f64; MAX_NODES]);

    /// Takes the step.
    fn ab_advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        let (t, t_next, history) = (st.t, st.t_next, st.history);
        let (k, ratio, c) = self.coefficients(st.schedule(), (t, t_next), history);
        let outs = outputs(st.m0, history, k);
        combine(st.x_new, ratio, st.x, &c[..k], &outs[..k]);
    }

    /// The step's VJP: linear ([`linear_vjp`] with the same coefficients).
    fn ab_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        let (k, ratio, c) = self.coefficients(st.schedule(), (st.t, st.t_next), st.history);
        linear_vjp(st, ratio, &c[..k])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_is_exact_to_degree_15() {
        // ∫_{−0.3}^{1.1} v^p dv with the basis of one node (ℓ = 1), w = v^p
        for p in 0..=15 {
            let mut c = [0.0];
            lagrange_integrals(&[0.0], (-0.3, 1.1), |v| (v, v.powi(p)), &mut c);
            let want = (1.1f64.powi(p + 1) - (-0.3f64).powi(p + 1)) / (p + 1) as f64;
            assert!(
                (c[0] - want).abs() < 1e-14,
                "degree {p}: {} vs {want}",
                c[0]
            );
        }
    }

    #[test]
    fn adams_bashforth_weights_on_equal_steps() {
        // nodes 0, −1, −2, −3, integral over [0, 1]: AB4's 55, −59, 37, −9 (/24)
        let mut c = [0.0; 4];
        lagrange_integrals(&[0.0, -1.0, -2.0, -3.0], (0.0, 1.0), |v| (v, 1.0), &mut c);
        for (got, want) in c.iter().zip([55.0, -59.0, 37.0, -9.0]) {
            assert!((got - want / 24.0).abs() < 1e-14, "{c:?}");
        }
        // the basis sums to one: Σ c_j = b − a
        let mut c = [0.0; 3];
        lagrange_integrals(&[0.2, -0.5, -1.7], (0.2, 0.9), |v| (v, 1.0), &mut c);
        assert!((c.iter().sum::<f64>() - 0.7).abs() < 1e-14);
    }
}
