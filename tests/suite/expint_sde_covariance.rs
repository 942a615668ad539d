//! Stochastic exponential Euler on its exact-covariance route
//! (`sdeflow::expint::CovarianceNoise`, issue #13 part 4): the convolution
//! of each step formed from `L`-free increments `ΔW`, `ΔW'` with the exact
//! covariance of `L(p)` and `h`.
//!
//! * Gradients (discrete adjoint) in a parameter inside `L`, one of `N`,
//!   one of `G` and `X0` against central finite differences of same-seed
//!   solves (the randomness does not move with `p`), 1e-6 relative.
//! * The OU law at `h|λ| = 100`, `L` from a parameter: mean, variance and
//!   the covariance with `W(1)` within Monte Carlo bounds.
//! * Bad input: general noise, scalar noise on two components, a dense
//!   `L`, a non-finite `λ` — typed errors.

use crate::common;
use crate::expint_sde::{Gadd, Nl};
use common::{assert_says, central_difference};
use nalgebra::DMatrix;
use sdeflow::expint::{CovarianceNoise, Dense, ParamDiagonal, Semilinear, StochasticExpEuler};
use sdeflow::noise::{BrownianPath, Driver};
use sdeflow::prelude::*;

/// `λ(p) = (−p2, −5 p2²)`.
#[derive(Clone, Copy)]
struct Lam;
impl GenericField for Lam {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, _x: &[D], p: &[D], out: &mut [D]) {
        out[0] = -p[2];
        out[1] = -(p[2] * p[2]) * 5.0;
    }
}

// N and G: those of `expint_sde.rs` (`Nl`, `Gadd`: N's parameter p0, G's p1).

/// `λ = (−1.8, −16.2)` at these parameters.
const P: [f64; 3] = [0.8, 0.6, 1.8];
const X0: [f64; 2] = [0.5, -0.4];

type CovProblem =
    Problem<Semilinear<ParamDiagonal<Lam>, Generic<Nl>>, Generic<Gadd>, CovarianceNoise>;

fn nonlinear(p: &[f64], x0: &[f64]) -> CovProblem {
    Problem::sde_field(
        Semilinear::new(ParamDiagonal(Lam), Generic(Nl)),
        Generic(Gadd),
        Noise::Additive,
        x0.to_vec(),
        (0.0, 1.0),
    )
    .params(p.to_vec())
    .driver(CovarianceNoise::default())
}

#[test]
fn gradients_in_l_n_g_and_x0_match_finite_differences() {
    let opts = Options::default()
        .fixed_step(0.05)
        .seed(9)
        .save_at(SaveAt::T1);
    // a nonlinear loss of the end state
    let loss = |_ts: &[f64], ys: &[f64], g: &mut [f64]| {
        let k = ys.len() - 2;
        g.fill(0.0);
        g[k] = 1.0 + 2.0 * ys[k];
        g[k + 1] = -2.0;
        ys[k] + ys[k] * ys[k] - 2.0 * ys[k + 1]
    };
    let g = grad(
        &nonlinear(&P, &X0),
        StochasticExpEuler,
        opts.clone(),
        &loss,
        Adjoint::Discrete { checkpoints: 4 },
    )
    .expect("grad");
    let f = |p: &[f64], x0: &[f64]| {
        common::loss_of_solve(&nonlinear(p, x0), StochasticExpEuler, &opts, &loss)
    };
    for j in 0..3 {
        let fd = central_difference(|a| f(a, &X0), &P, j, 1e-6);
        println!("dp[{j}] {} vs FD {fd}", g.dp[j]);
        assert!((g.dp[j] - fd).abs() < 1e-6 * fd.abs().max(1e-3), "dp[{j}]");
    }
    // the L parameter matters here (not a vacuous check)
    assert!(g.dp[2].abs() > 1e-2, "dλ/dp2 contributes: {}", g.dp[2]);
    for j in 0..2 {
        let fd = central_difference(|a| f(&P, a), &X0, j, 1e-6);
        println!("dx0[{j}] {} vs FD {fd}", g.dy0[j]);
        assert!(
            (g.dy0[j] - fd).abs() < 1e-6 * fd.abs().max(1e-3),
            "dx0[{j}]"
        );
    }
}

/// `dX = λ(p) X dt + σ dW`, diagonal noise, `λ(p) = (−p0, −p1)`.
#[derive(Clone, Copy)]
struct OuLam;
impl GenericField for OuLam {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, _x: &[D], p: &[D], out: &mut [D]) {
        out[0] = -p[0];
        out[1] = -p[1];
    }
}

const SIGMA: [f64; 2] = [1.0, 0.8];

#[test]
fn the_ou_law_is_exact_at_h_lambda_100() {
    // One step of h = 1 with λ = (−100, −0.7). Per component the end state
    // is N(e^{λh} x0, σ² (1 − e^{2λh})/(−2λ)) and its covariance with W(1)
    // is σ (1 − e^{λh})/(−λ) = σ h φ_1(λh) (reference §3).
    let (lam, x0, h) = ([-100.0, -0.7], [1.0, -2.0], 1.0);
    let n = |_t: f64, _x: &[f64], _p: &[f64], out: &mut [f64]| out.fill(0.0);
    let g = |_t: f64, _x: &[f64], _p: &[f64], g: &mut [f64]| g.copy_from_slice(&SIGMA);
    let prob = Problem::sde_field(
        Semilinear::new(ParamDiagonal(OuLam), n),
        g,
        Noise::Diagonal,
        x0.to_vec(),
        (0.0, h),
    )
    .params(vec![-lam[0], -lam[1]])
    .driver(CovarianceNoise::default());
    let paths = 4000;
    let (mut xs, mut ws) = (Vec::with_capacity(paths), Vec::with_capacity(paths));
    for s in 0..paths as u64 {
        let seed = 1000 + s;
        let o = Options::default()
            .fixed_step(h)
            .seed(seed)
            .save_at(SaveAt::T1);
        let sol = solve(&prob, StochasticExpEuler, o).unwrap();
        xs.push([sol.last()[0], sol.last()[1]]);
        // the same path's W(1): the first two of the driver's components
        let mut path = CovarianceNoise::default().path((0.0, h), 2, seed).unwrap();
        let mut w = [0.0; 2];
        path.increment(0.0, h, &mut w);
        ws.push(w);
    }
    let np = paths as f64;
    for i in 0..2 {
        let (l, s) = (lam[i], SIGMA[i]);
        let mean = (l * h).exp() * x0[i];
        let var = s * s * (1.0 - (2.0 * l * h).exp()) / (-2.0 * l);
        let cov_w = s * (1.0 - (l * h).exp()) / (-l);
        let m = xs.iter().map(|x| x[i]).sum::<f64>() / np;
        let v = xs.iter().map(|x| (x[i] - m).powi(2)).sum::<f64>() / (np - 1.0);
        let cw = xs
            .iter()
            .zip(&ws)
            .map(|(x, w)| (x[i] - m) * w[i])
            .sum::<f64>()
            / (np - 1.0);
        // 5 standard errors (each two-sided ~6e-7; 6 checks). Gaussian
        // samples: SE of the mean √(var/n), of the variance var √(2/(n−1)),
        // of Cov(X, W) √((var h + cov_w²)/n).
        let se_m = (var / np).sqrt();
        let se_v = var * (2.0 / (np - 1.0)).sqrt();
        let se_c = ((var * h + cov_w * cov_w) / np).sqrt();
        println!(
            "[{i}] mean {m:.5} vs {mean:.5} (SE {se_m:.1e}); var {v:.5} vs {var:.5} \
             (SE {se_v:.1e}); cov(X, W) {cw:.5} vs {cov_w:.5} (SE {se_c:.1e})"
        );
        assert!((m - mean).abs() < 5.0 * se_m, "mean[{i}]");
        assert!((v - var).abs() < 5.0 * se_v, "var[{i}]");
        assert!((cw - cov_w).abs() < 5.0 * se_c, "cov(X, W)[{i}]");
    }
}

#[test]
fn unsupported_noise_and_linear_parts_are_typed_errors() {
    let o = || Options::default().fixed_step(0.1);
    let n = |_t: f64, _x: &[f64], _p: &[f64], out: &mut [f64]| out.fill(0.0);
    let g = |_t: f64, _x: &[f64], _p: &[f64], g: &mut [f64]| g.fill(0.3);
    let with = |noise: Noise, lam: Vec<f64>| {
        Problem::sde_field(
            Semilinear::new(sdeflow::expint::Diagonal(lam), n),
            g,
            noise,
            vec![1.0, 1.0],
            (0.0, 1.0),
        )
        .driver(CovarianceNoise::default())
    };
    let e = solve(
        &with(Noise::General(2), vec![-1.0, -2.0]),
        StochasticExpEuler,
        o(),
    )
    .unwrap_err();
    assert_says(&e, &["StochasticExpEuler", "General"]);
    let e = solve(
        &with(Noise::Scalar, vec![-1.0, -2.0]),
        StochasticExpEuler,
        o(),
    )
    .unwrap_err();
    assert_says(&e, &["scalar noise", "joint covariance"]);
    let e = solve(
        &with(Noise::Additive, vec![-1.0, f64::NAN]),
        StochasticExpEuler,
        o(),
    )
    .unwrap_err();
    assert_says(&e, &["NaN"]);
    let e = solve(&with(Noise::Additive, vec![-1.0]), StochasticExpEuler, o()).unwrap_err();
    assert_says(&e, &["2"]);
    let dense = Problem::sde_field(
        Semilinear::new(Dense(DMatrix::from_element(2, 2, -1.0)), n),
        g,
        Noise::Additive,
        vec![1.0, 1.0],
        (0.0, 1.0),
    )
    .driver(CovarianceNoise::default());
    let e = solve(&dense, StochasticExpEuler, o()).unwrap_err();
    assert_says(&e, &["dense"]);
}
