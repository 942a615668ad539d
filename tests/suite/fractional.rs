//! The fractional noise driver under the existing SDE solvers: its path
//! serves `ΔW` and the space–time Lévy area consistently at every step
//! size and under adaptive rejections, so solves on it converge to the
//! exact solution of the same Brownian path read back from the driver.

use sdeflow::fractional::{FbmType, FractionalNoise, MarkovApprox, gamma_grid};
use sdeflow::noise::{BrownianPath, Driver};
use sdeflow::prelude::*;

use crate::common;

const T: f64 = 1.0;

/// SciML's `prob_sde_additive`,
/// `dX = (β/√(1+t) − X/(2(1+t))) dt + αβ/√(1+t) dW`, solved by
/// `X_T = X0/√(1+T) + β(T + αW_T)/√(1+T)`, driven by a fractional-noise
/// path; the exact solution reads `W_T` from the same path
/// (`Driver::path` is a pure function of the seed).
fn additive(
    noise: &FractionalNoise,
) -> (
    Problem<impl Drift + Clone, impl Diffusion + Clone, FractionalNoise>,
    impl Fn(u64) -> f64,
) {
    let (alpha, beta, x0) = (0.5, 0.8, 1.0);
    let p = Problem::sde(
        move |t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| {
            dy[0] = beta / (1.0 + t).sqrt() - y[0] / (2.0 * (1.0 + t));
        },
        move |t: f64, _y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = alpha * beta / (1.0 + t).sqrt(),
        Noise::Additive,
        vec![x0],
        (0.0, T),
    )
    .driver(noise.clone());
    let noise = noise.clone();
    let exact = move |seed: u64| {
        let mut path = noise.path((0.0, T), 1, seed).expect("valid span");
        let mut w = [0.0];
        path.increment(0.0, T, &mut w);
        x0 / (1.0 + T).sqrt() + beta * (T + alpha * w[0]) / (1.0 + T).sqrt()
    };
    (p, exact)
}

fn driver() -> FractionalNoise {
    let ma = MarkovApprox::new(
        FbmType::MandelbrotVanNess,
        0.3,
        T,
        &gamma_grid(4, 0.3, T).expect("valid grid"),
    )
    .expect("valid approximation");
    FractionalNoise::from_markov(&ma)
}

#[test]
fn euler_maruyama_on_the_fractional_path_converges_at_order_one() {
    // strong error at T over 40 paths (EM has strong order 1 for additive
    // noise); steps of 1/8 .. 1/128: the coarse steps' increments must be
    // sums of the fine ones on one path for the order to show
    let noise = driver();
    let (p, exact) = additive(&noise);
    let ns = [8usize, 16, 32, 64, 128];
    let mut hs = Vec::new();
    let mut errs = Vec::new();
    for &n in &ns {
        let h = T / n as f64;
        let mut e2 = 0.0;
        for seed in 0..40u64 {
            let sol = solve(
                &p,
                EulerMaruyama,
                Options::default().fixed_step(h).seed(seed),
            )
            .expect("solve");
            e2 += (sol.last()[0] - exact(seed)).powi(2);
        }
        hs.push(h);
        errs.push((e2 / 40.0).sqrt());
    }
    common::assert_order(
        "EulerMaruyama on FractionalNoise, strong",
        &hs,
        &errs,
        1.0,
        0.2,
    );
}

#[test]
fn adaptive_sra1_on_the_fractional_path_converges_as_tolerance_shrinks() {
    // Sra1 reads ΔW and the Lévy area at the (rejected and accepted) steps
    // an adaptive solve chooses, off the dyadic grid: the error against
    // the exact solution on that path falls with the tolerance
    let noise = driver();
    let (p, exact) = additive(&noise);
    for seed in [3u64, 11] {
        let x = exact(seed);
        let errs: Vec<f64> = [1e-2, 1e-4, 1e-6]
            .iter()
            .map(|&tol| {
                let sol = solve(&p, Sra1, Options::default().tol(tol).seed(seed)).expect("solve");
                (sol.last()[0] - x).abs()
            })
            .collect();
        println!("seed {seed}: errors {errs:?} at tol 1e-2, 1e-4, 1e-6");
        assert!(errs[2] < errs[0] && errs[2] < 1e-5, "seed {seed}: {errs:?}");
    }
}

#[test]
fn a_bad_span_is_a_typed_error_of_the_solve() {
    let noise = FractionalNoise::new(&[0.5, 5.0], FbmType::RiemannLiouville).expect("valid");
    let p = Problem::sde(
        |_t: f64, _y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = 0.0,
        |_t: f64, _y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = 1.0,
        Noise::Additive,
        vec![0.0],
        (0.0, f64::INFINITY),
    )
    .driver(noise);
    assert!(solve(&p, EulerMaruyama, Options::default().fixed_step(0.1)).is_err());
}
