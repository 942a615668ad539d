//! Training utilities: the optimizers against hand-computed updates, the
//! weight schedule, the shuffles, and the `train` loop — reproducible for
//! a seed on 1 and 2 threads, on a small neural ODE classifier with the
//! error-estimate regularizer.

use sdeflow::adjoint::regularize::{Global, regularized_gradient};
use sdeflow::nn::{Activation, Mlp};
use sdeflow::prelude::*;
use sdeflow::train::{Adam, Example, ExpDecay, Minibatches, Optimizer, Sgd, TrainConfig, train};

use crate::common;

#[test]
fn adam_and_sgd_take_the_updates_of_their_definitions() {
    // Adam, lr 0.1, gradients 2 then −1 (Kingma & Ba 2015, Algorithm 1)
    let mut adam = Adam::new(0.1).expect("adam");
    let mut x = vec![1.0];
    adam.step(&mut x, &[2.0]).expect("step");
    // m̂ = 2, v̂ = 4: a step of lr · 2 / (2 + 1e-8)
    assert!((x[0] - (1.0 - 0.1 * 2.0 / (2.0 + 1e-8))).abs() < 1e-15);
    let x1 = x[0];
    adam.step(&mut x, &[-1.0]).expect("step");
    let m = 0.9 * 0.2 - 0.1; // β1 m + (1 − β1) g with g = −1
    let v = 0.999 * 0.004 + 0.001 * 1.0;
    let (mh, vh) = (m / (1.0 - 0.81), v / (1.0 - 0.999f64 * 0.999));
    assert!((x[0] - (x1 - 0.1 * mh / (vh.sqrt() + 1e-8))).abs() < 1e-15);
    // SGD with momentum 0.9: u = 1, then u = 0.9 − 2 = −1.1
    let mut sgd = Sgd::new(0.5, 0.9).expect("sgd");
    let mut y = vec![0.0, 1.0];
    sgd.step(&mut y, &[1.0, 0.0]).expect("step");
    sgd.step(&mut y, &[-2.0, 0.0]).expect("step");
    assert!((y[0] - 0.05).abs() < 1e-15 && y[1] == 1.0, "{y:?}");
}

#[test]
fn optimizers_schedules_and_batches_refuse_bad_input() {
    for e in [
        Adam::new(0.0).expect_err("lr 0"),
        Adam::new(f64::NAN).expect_err("lr NaN"),
        Adam::with(0.1, 1.0, 0.999, 1e-8).expect_err("beta1 1"),
    ] {
        common::assert_says(&e, &["Adam"]);
    }
    common::assert_says(&Sgd::new(0.1, -0.1).expect_err("momentum"), &["momentum"]);
    let mut adam = Adam::new(0.1).expect("adam");
    let mut x = vec![1.0, 2.0];
    common::assert_says(
        &adam.step(&mut x, &[1.0]).expect_err("len"),
        &["1 entries", "2 parameters"],
    );
    common::assert_says(
        &adam.step(&mut x, &[1.0, f64::NAN]).expect_err("nan"),
        &["gradient[1]"],
    );
    assert_eq!(x, vec![1.0, 2.0], "a refused update leaves the parameters");
    common::assert_says(
        &ExpDecay::new(1.0, 0.0, 5).expect_err("end 0"),
        &["end weight"],
    );
    common::assert_says(
        &ExpDecay::new(1.0, 1.0, 0).expect_err("0 epochs"),
        &["epochs"],
    );
    common::assert_says(&ExpDecay::constant(-1.0).expect_err("negative"), &["≥ 0"]);
    common::assert_says(
        &Minibatches::new(0, 4, 1).expect_err("empty"),
        &["minibatches"],
    );
    common::assert_says(
        &Minibatches::new(4, 0, 1).expect_err("batch 0"),
        &["batch size"],
    );
}

#[test]
fn exponential_decay_goes_from_start_to_end() {
    // RegNeuralDE's MNIST setting: λ0 = 100, λ1 = 10 over the epochs
    let w = ExpDecay::new(100.0, 10.0, 75).expect("schedule");
    assert_eq!(w.at(0), 100.0);
    assert!((w.at(75) - 10.0).abs() < 1e-12);
    let ratios: Vec<f64> = (0..74).map(|e| w.at(e + 1) / w.at(e)).collect();
    let r = (0.1f64).powf(1.0 / 75.0);
    assert!(ratios.iter().all(|q| (q - r).abs() < 1e-12));
    assert_eq!(ExpDecay::constant(0.5).expect("constant").at(40), 0.5);
}

#[test]
fn shuffles_are_permutations_that_differ_between_epochs() {
    let mb = Minibatches::new(50, 8, 3).expect("batches");
    let (a, b) = (mb.epoch(0), mb.epoch(1));
    for order in [&a, &b] {
        let mut s = order.clone();
        s.sort_unstable();
        assert_eq!(s, (0..50).collect::<Vec<_>>());
    }
    assert_ne!(a, b);
    assert_ne!(a, Minibatches::new(50, 8, 4).expect("other seed").epoch(0));
}

/// 24 points on two circles (radius 0.5: class 0, radius 1.5: class 1).
fn circles() -> Vec<([f64; 2], usize)> {
    (0..24)
        .map(|i| {
            let class = i % 2;
            let r = if class == 0 { 0.5 } else { 1.5 };
            let a = 0.7 * i as f64;
            ([r * a.cos(), r * a.sin()], class)
        })
        .collect()
}

/// Softmax cross-entropy of the final state as logits, for class `c`.
fn cross_entropy(c: usize) -> impl Fn(&[f64], &[f64], &mut [f64]) -> f64 {
    move |_ts: &[f64], ys: &[f64], g: &mut [f64]| {
        let z = &ys[ys.len() - 2..];
        let mx = z[0].max(z[1]);
        let e = [(z[0] - mx).exp(), (z[1] - mx).exp()];
        let s = e[0] + e[1];
        let k = g.len() - 2;
        for j in 0..2 {
            g[k + j] = e[j] / s - if j == c { 1.0 } else { 0.0 };
        }
        -(e[c] / s).ln()
    }
}

/// Trains the neural ODE classifier `z' = MLP(z)`, `z(0) = x`, logits
/// `z(1)`, with the error-estimate regularizer decaying from 0.1, on the
/// current rayon pool.
fn train_circles(epochs: usize) -> (Vec<f64>, Vec<sdeflow::train::EpochReport>) {
    let data = circles();
    let net = Mlp::new(&[2, 8, 2], Activation::Tanh);
    let mut params = net.init_params(1, 0.5);
    let weight = ExpDecay::new(0.1, 0.01, epochs).expect("schedule");
    let opts = Options::default().tol(1e-4).save_at(SaveAt::T1);
    let config = TrainConfig {
        epochs,
        batch: 8,
        seed: 5,
        progress: true,
    };
    let mut adam = Adam::new(0.05).expect("adam");
    let reports = train(
        &mut params,
        data.len(),
        &config,
        &mut adam,
        |p, i, epoch| {
            let (x, c) = data[i];
            let ode = Problem::ode_field(net.clone(), x.to_vec(), (0.0, 1.0)).params(p.to_vec());
            let reg = Global::error_estimate(weight.at(epoch));
            let r = regularized_gradient(
                &ode,
                &Tsit5,
                &opts,
                &cross_entropy(c),
                Adjoint::STORE_ALL,
                &reg,
            )?;
            let z = r.gradient.solution.last();
            let predicted = usize::from(z[1] > z[0]);
            Ok::<_, sdeflow::Error>(Example {
                loss: r.gradient.loss,
                grad: r.gradient.dp,
                correct: Some(predicted == c),
                nfe: r.gradient.solution.stats.drift_evals,
            })
        },
    )
    .expect("train");
    (params, reports)
}

#[test]
fn training_is_reproducible_on_one_and_two_threads() {
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool")
            .install(|| train_circles(4))
    };
    let (p1, r1) = run(1);
    let (p2, r2) = run(2);
    assert_eq!(p1, p2, "parameters differ between 1 and 2 threads");
    assert_eq!(r1, r2, "reports differ between 1 and 2 threads");
    assert!(r1.iter().all(|r| r.nfe > 0 && r.accuracy.is_some()));
    // training lowers the loss on this easy problem
    assert!(r1[3].loss < r1[0].loss, "{r1:?}");
}

#[test]
fn train_reports_an_example_that_fails() {
    let mut x = vec![0.0];
    let config = TrainConfig {
        epochs: 1,
        batch: 2,
        seed: 0,
        progress: false,
    };
    let mut sgd = Sgd::new(0.1, 0.0).expect("sgd");
    let e = train(&mut x, 3, &config, &mut sgd, |_p, i, _| {
        if i == 2 {
            let bad = Problem::ode(
                |_t: f64, _y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = f64::NAN,
                vec![1.0],
                (0.0, 1.0),
            );
            solve(&bad, Tsit5, Options::default())?;
        }
        Ok::<_, sdeflow::Error>(Example {
            loss: 1.0,
            grad: vec![1.0],
            correct: None,
            nfe: 0,
        })
    })
    .expect_err("fails");
    common::assert_says(&e, &["example 2"]);
}
