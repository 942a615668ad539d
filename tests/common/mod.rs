//! Test problems shared by the integration tests (sources in
//! `../shared/reference/test_problems.md`).
#![allow(dead_code)]

use sdeflow::prelude::*;

/// Lotka–Volterra, α=1.5, β=1, γ=3, δ=1, (1, 1) on [0, 10].
pub fn lotka_volterra() -> Problem<impl Drift + Clone> {
    Problem::ode(
        |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| {
            dy[0] = p[0] * y[0] - p[1] * y[0] * y[1];
            dy[1] = -p[2] * y[1] + p[3] * y[0] * y[1];
        },
        vec![1.0, 1.0],
        (0.0, 10.0),
    )
    .params(vec![1.5, 1.0, 3.0, 1.0])
}

/// mpmath Taylor reference (30 digits) of Lotka–Volterra at t = 10.
pub const LV_REF: [f64; 2] = [1.0263447675750893191, 0.90969107813604161755];

/// Arenstorf orbit period.
pub const ARENSTORF_T: f64 = 17.0652165601579625588917206249;
/// Arenstorf initial state.
pub const ARENSTORF_Y0: [f64; 4] = [0.994, 0.0, 0.0, -2.00158510637908252240537862224];

/// The Arenstorf orbit over one period.
pub fn arenstorf() -> Problem<impl Drift + Clone> {
    Problem::ode(
        |_t: f64, u: &[f64], _p: &[f64], du: &mut [f64]| {
            let mu = 0.012277471;
            let mup = 1.0 - mu;
            let (x, y, vx, vy) = (u[0], u[1], u[2], u[3]);
            let d1 = ((x + mu).powi(2) + y * y).powf(1.5);
            let d2 = ((x - mup).powi(2) + y * y).powf(1.5);
            du[0] = vx;
            du[1] = vy;
            du[2] = x + 2.0 * vy - mup * (x + mu) / d1 - mu * (x - mup) / d2;
            du[3] = y - 2.0 * vx - mup * y / d1 - mu * y / d2;
        },
        ARENSTORF_Y0.to_vec(),
        (0.0, ARENSTORF_T),
    )
}

/// Max-norm distance.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Least-squares slope of log(err) against log(h).
pub fn fitted_slope(hs: &[f64], errs: &[f64]) -> f64 {
    let xs: Vec<f64> = hs.iter().map(|h| h.ln()).collect();
    let ys: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    sxy / sxx
}

/// The drift of a nonlinear two-state SDE with diagonal noise (parameters
/// `p[0]`, `p[1]`; the diffusion [`Diff2`] uses `p[2]`, `p[3]`).
#[derive(Clone, Copy)]
pub struct Drift2;
impl GenericField for Drift2 {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = p[0] * y[1] - y[0] * y[0] * y[0] * 0.1;
        dy[1] = -p[1] * y[0] + (y[1] * 0.5).sin();
    }
}
/// Its diffusion.
#[derive(Clone, Copy)]
pub struct Diff2;
impl GenericField for Diff2 {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], g: &mut [D]) {
        g[0] = p[2] * (D::from(1.0) + y[0] * y[0]).sqrt();
        g[1] = p[3] * y[1].cos();
    }
}

/// `Σ_i Σ_k (y_k(t_i) − 0.3 t_i)²` over the saved states of a two-state
/// solve, with its gradient: the loss of the SDE gradient tests.
pub fn tracking_loss(ts: &[f64], ys: &[f64], g: &mut [f64]) -> f64 {
    let mut l = 0.0;
    for (i, &t) in ts.iter().enumerate() {
        for k in 0..2 {
            let d = ys[2 * i + k] - 0.3 * t;
            l += d * d;
            g[2 * i + k] = 2.0 * d;
        }
    }
    l
}
