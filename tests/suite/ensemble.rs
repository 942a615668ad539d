//! Monte Carlo ensembles: bit-identical statistics on any number of
//! threads, moments and quantiles against exact laws (GBM, OU) within
//! stated Monte Carlo bounds, failure reporting, and serialisation.

use sdeflow::ensemble::{Ensemble, EnsembleError, OnFailure};
use sdeflow::prelude::*;
use sdeflow::statistics::EnsembleSummary;
use statrs::distribution::{Continuous, ContinuousCDF, LogNormal};

use crate::common;

const A: f64 = 1.0;
const B: f64 = 0.5;

/// GBM with `a = A`, `b = B` from 1 on [0, 1].
fn gbm() -> Problem<impl Drift + Clone + Sync, impl Diffusion + Clone + Sync> {
    common::gbm(A, B)
}

fn opts() -> Options {
    Options::default()
        .fixed_step(0.01)
        .save_at(SaveAt::Times(vec![0.5, 1.0]))
}

#[test]
fn statistics_are_bit_identical_on_any_number_of_threads() {
    let p = gbm();
    let run =
        |e: Ensemble<'_, _, _, _>| e.seed(42).statistics(&[0.05, 0.5, 0.95]).expect("ensemble");
    let serial = run(Ensemble::new(&p, Sriw1, opts(), 3000).serial());
    for threads in [1, 2, 4] {
        let par = run(Ensemble::new(&p, Sriw1, opts(), 3000).threads(threads));
        assert_eq!(par, serial, "{threads} threads");
    }
    // adaptive solves too (rejections re-query each trajectory's own tree)
    let adaptive = Options::default().tol(1e-3).save_at(SaveAt::T1);
    let a = Ensemble::new(&p, Sriw1, adaptive.clone(), 1000)
        .seed(3)
        .threads(1)
        .statistics(&[])
        .expect("1");
    let b = Ensemble::new(&p, Sriw1, adaptive, 1000)
        .seed(3)
        .threads(2)
        .statistics(&[])
        .expect("2");
    assert_eq!(a, b);
    // another master seed gives other statistics
    let other = Ensemble::new(&p, Sriw1, opts(), 3000)
        .seed(43)
        .statistics(&[])
        .expect("other");
    assert_ne!(other.times[1].moments, serial.times[1].moments);
}

#[test]
fn gbm_moments_and_quantiles_match_the_lognormal() {
    // N = 20 000 paths of SRIW1 (weak order 2) with h = 0.01: the
    // discretisation bias (~1e-4) is far below the Monte Carlo error. Means
    // and variances must agree within 4 standard errors; the standard error
    // of the variance is estimated from the sample fourth moment.
    let p = gbm();
    let n = 20_000;
    let ens = Ensemble::new(&p, Sriw1, opts(), n).seed(7);
    let taus = [0.05, 0.25, 0.5, 0.75, 0.95];
    let summary = ens.statistics(&taus).expect("statistics");
    let xs: Vec<f64> = ens
        .run(|_, sol| sol.last()[0])
        .expect("run")
        .outputs
        .into_iter()
        .map(|(_, x)| x)
        .collect();
    for ts in &summary.times {
        let t = ts.t;
        let mean = (A * t).exp();
        let var = (2.0 * A * t).exp() * ((B * B * t).exp() - 1.0);
        assert!(
            (ts.mean(0) - mean).abs() < 4.0 * ts.std_error(0),
            "t={t}: mean {} vs {mean}",
            ts.mean(0)
        );
        // quantiles of ln X ~ N((a − b²/2)t, b²t): X_q = exp(μ + σ z_q)
        let ln = LogNormal::new((A - 0.5 * B * B) * t, B * t.sqrt()).expect("lognormal");
        for (q, &tau) in taus.iter().enumerate() {
            let exact = ln.inverse_cdf(tau);
            // SE of an empirical quantile: sqrt(τ(1−τ)/N) / pdf(x_τ); 5 SE allowed
            let se = (tau * (1.0 - tau) / n as f64).sqrt() / ln.pdf(exact);
            let got = ts.quantiles[q][0];
            assert!(
                (got - exact).abs() < 5.0 * se,
                "t={t} τ={tau}: {got} vs {exact} (se {se})"
            );
        }
        if t == 1.0 {
            let m = xs.iter().sum::<f64>() / n as f64;
            let m4 = xs.iter().map(|x| (x - m).powi(4)).sum::<f64>() / n as f64;
            let se_var = ((m4 - ts.variance(0).powi(2)) / n as f64).sqrt();
            assert!(
                (ts.variance(0) - var).abs() < 4.0 * se_var,
                "var {} vs {var} (se {se_var})",
                ts.variance(0)
            );
        }
    }
    // the weak-error helper
    let est = ens.expectation(|y| y[0], 0.95).expect("expectation");
    assert!(est.agrees_with(A.exp(), 4.0), "{est:?}");
    assert!(est.lower < A.exp() + 4.0 * est.std_error && est.upper > A.exp() - 4.0 * est.std_error);
    assert_eq!(summary.succeeded, n);
    assert!(summary.stats.diffusion_evals > 0);
}

#[test]
fn ornstein_uhlenbeck_moments() {
    // dX = θ(μ − X) dt + σ dW, X0 = 0: E X_t = μ(1 − e^{−θt}),
    // Var X_t = σ²(1 − e^{−2θt})/(2θ). SRA1 (additive noise), h = 0.01.
    let (theta, mu, sigma) = (2.0, 1.0, 0.5);
    let p = Problem::sde(
        move |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = theta * (mu - y[0]),
        move |_t: f64, _y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = sigma,
        Noise::Additive,
        vec![0.0],
        (0.0, 1.0),
    );
    let n = 20_000;
    let s = Ensemble::new(&p, Sra1, opts(), n)
        .seed(11)
        .statistics(&[])
        .expect("ou");
    for ts in &s.times {
        let t = ts.t;
        let mean = mu * (1.0 - (-theta * t).exp());
        let var = sigma * sigma * (1.0 - (-2.0 * theta * t).exp()) / (2.0 * theta);
        assert!(
            (ts.mean(0) - mean).abs() < 4.0 * ts.std_error(0),
            "t={t}: {} vs {mean}",
            ts.mean(0)
        );
        // Gaussian: SE of the sample variance = var·sqrt(2/(N−1))
        let se_var = var * (2.0 / (n - 1) as f64).sqrt();
        assert!(
            (ts.variance(0) - var).abs() < 4.0 * se_var,
            "t={t}: var {} vs {var}",
            ts.variance(0)
        );
    }
}

#[test]
fn failed_trajectories_are_reported_and_the_rest_complete() {
    // trajectory 7 starts where the drift X² blows up before t = 1
    let p = Problem::sde(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = y[0] * y[0] - y[0],
        |_t: f64, y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = 0.1 * y[0],
        Noise::Diagonal,
        vec![0.5],
        (0.0, 1.0),
    );
    let ens = || {
        Ensemble::new(
            &p,
            EulerMaruyama,
            Options::default().fixed_step(0.01).save_at(SaveAt::T1),
            100,
        )
        .seed(1)
        .map_problem(|i, _seed, base| {
            if i == 7 {
                base.clone().y0(vec![50.0])
            } else {
                base.clone()
            }
        })
    };
    let s = ens().statistics(&[]).expect("continue");
    assert_eq!(s.succeeded, 99);
    assert_eq!(s.failures.len(), 1);
    assert_eq!(s.failures[0].index, 7);
    assert!(
        s.failures[0].message.contains("non-finite"),
        "{}",
        s.failures[0].message
    );
    match ens().on_failure(OnFailure::Abort).statistics(&[]) {
        Err(EnsembleError::Trajectory { index: 7, .. }) => {}
        other => panic!("expected trajectory 7 to abort the ensemble, got {other:?}"),
    }
    // outputs stay in index order and skip the failure
    let run = ens()
        .threads(2)
        .run(|i, sol| (i, sol.last()[0]))
        .expect("run");
    let idx: Vec<usize> = run.outputs.iter().map(|(i, _)| *i).collect();
    assert_eq!(idx, (0..100).filter(|&i| i != 7).collect::<Vec<_>>());
}

#[test]
fn statistics_need_common_save_times() {
    let p = gbm();
    let e = Ensemble::new(&p, Sriw1, Options::default().tol(1e-3), 10).statistics(&[]);
    assert!(matches!(e, Err(EnsembleError::SaveTimes(_))));
    let e = Ensemble::new(&p, Sriw1, opts(), 10).statistics(&[1.5]);
    assert!(matches!(e, Err(EnsembleError::Invalid(_))));
    let e = Ensemble::new(&p, Sriw1, opts(), 0).statistics(&[]);
    assert!(matches!(e, Err(EnsembleError::Invalid(_))));
}

#[test]
fn summaries_and_solutions_serialise() {
    let p = gbm();
    let s = Ensemble::new(&p, Sriw1, opts(), 50)
        .statistics(&[0.5])
        .expect("ens");
    let json = s.to_json().expect("json");
    let back: EnsembleSummary = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, s);
    let csv = s.to_csv();
    assert!(csv.starts_with("t,component,mean,variance,std_error,q0.5\n"));
    assert_eq!(csv.lines().count(), 1 + 2);
    let sol = solve(&p, Sriw1, opts()).expect("solve");
    let json = serde_json::to_string(&sol).expect("solution json");
    let back: Solution = serde_json::from_str(&json).expect("solution parse");
    assert_eq!(back.ys, sol.ys);
    assert_eq!(back.stats, sol.stats);
}
