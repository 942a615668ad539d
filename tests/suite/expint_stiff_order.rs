//! Stiff orders of the fourth-order exponential methods (issue #13 part 4)
//! on the parabolic test problem of Hochbruck & Ostermann (SIAM J. Numer.
//! Anal. 43 (2005), §6; `../shared/reference/exponential.md` §2):
//!
//! `u_t = u_xx + 1/(1 + u²) + Φ(x, t)` on `(0, 1)`, `u = 0` at both ends,
//! `Φ` such that `u(x, t) = x(1 − x) e^t`,
//!
//! discretised by second differences on `M` interior points (exact on the
//! quadratic `u`, so the semi-discrete solution is `u` at the nodes) and
//! written in the discrete sine basis, where the Dirichlet Laplacian is the
//! diagonal `λ_k = −(4/Δx²) sin²(kπΔx/2)` (`|λ| ≤ 4/Δx² ≈ 1.7e4` at
//! `M = 63`: `h|λ|` up to 1700 at the steps below). The nonlinearity is
//! evaluated at the nodes (two sine transforms per evaluation).
//!
//! This problem is in the setting of the stiff-order theory: `N` is
//! Lipschitz with a constant independent of `Δx`, and `f(t) = N(t, u(t))
//! = (x(1 − x) + 2) e^t` is smooth in time with bounded derivatives — what
//! the convergence theorem of HO 2005 needs for stiff order 4 of the
//! five-stage method. Errors are the discrete L² norm of the nodal error
//! at `t = 1`.
//!
//! Why the manufactured problem of `expint.rs` measures about 3 for
//! Hochbruck–Ostermann: there `N = g(y) − g(y*) + y*' − L y*`, so the
//! forcing is of size `|λ| |y*|` — with amplitudes 1 it grows with the
//! stiffness, outside the theory (its bounds are `C h⁴ sup‖f⁽⁴⁾‖`, with
//! `‖f⁽⁴⁾‖ ~ |λ|`); and with amplitudes `1/|λ|` the errors there are
//! divided by `1/|λ_i|`, i.e. measured in the graph norm `‖L e‖`, where
//! the theory promises one order less. Both observations (≈ 3) are
//! consistent with stiff order 4; neither tests it. The coefficients were
//! checked term by term against HO 2005, eq. (5.8) (`hochbruck_ostermann.rs`).

use crate::common;
use sdeflow::expint::{Diagonal, Etdrk4, HochbruckOstermann, Krogstad, Semilinear};
use sdeflow::prelude::*;

/// Interior points.
const M: usize = 63;

/// The orthogonal (and symmetric) discrete sine transform, `M × M`.
fn sine_matrix() -> Vec<f64> {
    let c = (2.0 / (M as f64 + 1.0)).sqrt();
    let mut s = vec![0.0; M * M];
    for j in 0..M {
        for k in 0..M {
            s[j * M + k] =
                c * (((j + 1) * (k + 1)) as f64 * std::f64::consts::PI / (M as f64 + 1.0)).sin();
        }
    }
    s
}

fn nodes() -> Vec<f64> {
    (1..=M).map(|j| j as f64 / (M as f64 + 1.0)).collect()
}

/// `N(t, v) = S (1/(1 + (S v)²) + Φ(x, t))` in sine coordinates `v`.
#[derive(Clone)]
struct Parabolic {
    s: Vec<f64>,
    x: Vec<f64>,
}

impl GenericField for Parabolic {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, v: &[D], _p: &[D], out: &mut [D]) {
        let et = t.exp();
        let w: Vec<D> = (0..M)
            .map(|j| {
                let u = (0..M).fold(D::from(0.0), |acc, k| acc + v[k] * self.s[j * M + k]);
                let xj = self.x[j];
                let ustar = et * (xj * (1.0 - xj));
                // Φ = u*_t − u*_xx − 1/(1 + u*²)
                let phi = ustar + et * 2.0 - (ustar * ustar + 1.0).recip();
                (u * u + 1.0).recip() + phi
            })
            .collect();
        for (k, o) in out.iter_mut().enumerate() {
            *o = (0..M).fold(D::from(0.0), |acc, j| acc + w[j] * self.s[k * M + j]);
        }
    }
}

type Prob = Problem<Semilinear<Diagonal, Generic<Parabolic>>>;

fn parabolic() -> Prob {
    let dx = 1.0 / (M as f64 + 1.0);
    let lam: Vec<f64> = (1..=M)
        .map(|k| {
            let s = (k as f64 * std::f64::consts::PI * dx / 2.0).sin();
            -4.0 / (dx * dx) * s * s
        })
        .collect();
    let (s, x) = (sine_matrix(), nodes());
    let u0: Vec<f64> = x.iter().map(|&x| x * (1.0 - x)).collect();
    let v0 = transform(&s, &u0);
    Problem::ode_field(
        Semilinear::new(Diagonal(lam), Generic(Parabolic { s, x })),
        v0,
        (0.0, 1.0),
    )
}

fn transform(s: &[f64], u: &[f64]) -> Vec<f64> {
    (0..M)
        .map(|k| (0..M).map(|j| s[k * M + j] * u[j]).sum())
        .collect()
}

/// Discrete L² errors of the nodal values at `t = 1`.
fn errors<Me: Method<Prob> + Copy>(prob: &Prob, method: Me, hs: &[f64]) -> Vec<f64> {
    let s = sine_matrix();
    let x = nodes();
    let dx = 1.0 / (M as f64 + 1.0);
    hs.iter()
        .map(|&h| {
            let o = Options::default().fixed_step(h).save_at(SaveAt::T1);
            let sol = solve(prob, method, o).expect("solve");
            let u = transform(&s, sol.last());
            let e2: f64 = u
                .iter()
                .zip(&x)
                .map(|(u, &x)| (u - x * (1.0 - x) * 1f64.exp()).powi(2))
                .sum();
            (e2 * dx).sqrt()
        })
        .collect()
}

#[test]
fn stiff_orders_on_the_hochbruck_ostermann_parabolic_problem() {
    let prob = parabolic();
    let hs: Vec<f64> = (0..5).map(|k| 0.1 / 2f64.powi(k)).collect();
    let eh = errors(&prob, HochbruckOstermann, &hs);
    let ek = errors(&prob, Krogstad, &hs);
    let e4 = errors(&prob, Etdrk4, &hs);
    let (oh, ok, o4) = (
        common::fitted_slope(&hs, &eh),
        common::fitted_slope(&hs, &ek),
        common::fitted_slope(&hs, &e4),
    );
    println!(
        "parabolic problem (M = {M}), h = {hs:?}:\n  HochbruckOstermann order {oh:.2}, errors \
         {eh:?}\n  Krogstad           order {ok:.2}, errors {ek:?}\n  Etdrk4             \
         order {o4:.2}, errors {e4:?}"
    );
    common::assert_order("HochbruckOstermann (stiff)", &hs, &eh, 4.0, 0.3);
}
