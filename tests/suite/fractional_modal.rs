//! The posterior whose control sees the full Markov state (issue #15 part
//! 5): `posterior_with_modes(prior, u, weights)` on `(X, Z, Y, KL)`, the
//! prior's OU modes `Y` written into the state by `FractionalModalEuler`
//! from the driver's exact increments. With `u ≡ 0` the `X` path is the
//! prior's bit for bit and `Y` is the driver's modes; gradients of a loss
//! plus the KL, with a control that reads `Y`, agree with central
//! differences; a misplaced modes block is a typed error.

use sdeflow::fractional::{
    FbmType, FractionalEuler, FractionalModalEuler, Hurst, ModeWeights, gamma_grid,
    gamma_grid_by_gamma_max, posterior_with_modes,
};
use sdeflow::prelude::*;

use crate::common;
use crate::fractional_posterior::{Df, Dr};

/// The control `u = p3 + p4 X + p5 Z_1 + p6 t + p7 sin(Y_1 + Z_1) + p8 Y_3`
/// for `n = 1`, `K = 4` (`Z` at 1..5, `Y` at 5..9): it reads the prior's
/// modes, the slowest through the posterior's mode `Y_1 + Z_1`.
#[derive(Clone, Copy)]
struct Ctl;
impl GenericField for Ctl {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, y: &[D], p: &[D], u: &mut [D]) {
        u[0] =
            p[3] + p[4] * y[0] + p[5] * y[1] + p[6] * t + p[7] * (y[5] + y[1]).sin() + p[8] * y[7];
    }
}

/// The zero control.
#[derive(Clone, Copy)]
struct Zero;
impl GenericField for Zero {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, _y: &[D], _p: &[D], u: &mut [D]) {
        u[0] = D::from(0.0);
    }
}

fn prior(
    mw: &ModeWeights,
    p: &[f64],
    x0: f64,
) -> Problem<Generic<Dr>, Generic<Df>, sdeflow::fractional::FractionalNoise> {
    Problem::sde_field(
        Generic(Dr),
        Generic(Df),
        Noise::Diagonal,
        vec![x0],
        (0.0, 1.0),
    )
    .params(p.to_vec())
    .driver(mw.noise())
}

#[test]
fn zero_control_reproduces_the_prior_path_and_its_modes() {
    // Type II (modes start at 0), K = 4, γ_max · h = 50/64 (the modes are
    // exact whatever the step), h = 1/64 on seed 11: every saved X equals
    // the prior's FractionalEuler solve exactly (==), Z and KL stay 0, and
    // each Y_k equals the driver's Y_k(t) − Y_k(0) read back from the
    // solution's path to 1e-12.
    let gammas = gamma_grid_by_gamma_max(4, 50.0, 0.0).expect("grid");
    let mw = ModeWeights::new(FbmType::RiemannLiouville, Hurst::Fixed(0.7), 1.0, &gammas)
        .expect("weights");
    let p = [0.6, 0.9];
    let pr = prior(&mw, &p, 0.3);
    let post = posterior_with_modes(pr.clone(), Generic(Zero), &mw).expect("posterior");
    let layout = post.drift.layout();
    assert_eq!(
        (
            layout.shift(),
            layout.prior_modes(),
            layout.kl(),
            layout.dim()
        ),
        (1..5, 5..9, 9, 10)
    );
    let opts = Options::default().fixed_step(1.0 / 64.0).seed(11);
    let a = solve(&pr, FractionalEuler::new(mw.clone()), opts.clone()).expect("prior");
    let solver = FractionalModalEuler::new(mw.clone(), layout.prior_modes().start);
    let b = solve(&post, solver, opts).expect("posterior");
    assert_eq!(a.ts, b.ts);
    let mut path = b.brownian_path().expect("path");
    let (mut dw, mut dy) = ([0.0], [0.0; 4]);
    let na = layout.dim();
    let mut worst: f64 = 0.0;
    for (i, &t) in b.ts.iter().enumerate() {
        let row = &b.ys[i * na..(i + 1) * na];
        assert_eq!(a.ys[i], row[0], "X at {t}");
        assert!(row[1..5].iter().all(|&v| v == 0.0), "Z at {t}");
        assert_eq!(row[9], 0.0, "KL at {t}");
        path.increment_with_modes(0.0, t, &mut dw, &mut dy);
        for k in 0..4 {
            worst = worst.max((row[5 + k] - dy[k]).abs());
        }
    }
    println!("largest |Y_k − driver's Y_k| over the path: {worst:.1e}");
    assert!(worst < 1e-12, "{worst}");
}

#[test]
fn gradients_through_the_modal_posterior_match_central_differences() {
    // L = X(1)² + KL(1) of the posterior of dX = (−θX + 0.2 sin(X/2)) dt
    // + σ(1 + 0.2 cos X) dB̂_H, H = p[2] (type I, 4 modes), under the
    // control `Ctl` that reads Y; the discrete adjoint (3 checkpoints)
    // through FractionalModalEuler on seed 5, h = 1/64, against central
    // differences of the same solve (step 1e-5): within 1e-6 relative for
    // every parameter and X(0).
    let gammas = gamma_grid(4, 0.35, 1.0).expect("grid");
    let mw = ModeWeights::new(FbmType::MandelbrotVanNess, Hurst::Param(2), 1.0, &gammas)
        .expect("weights");
    let p = [0.6, 0.9, 0.35, 0.3, -0.4, 0.5, 0.7, 0.8, -0.6];
    let x0 = [0.4];
    let build = |p: &[f64], x0: &[f64]| {
        posterior_with_modes(prior(&mw, p, x0[0]), Generic(Ctl), &mw).expect("posterior")
    };
    let layout = build(&p, &x0).drift.layout();
    let kl = layout.kl();
    let loss = move |_ts: &[f64], ys: &[f64], g: &mut [f64]| {
        g.fill(0.0);
        g[0] = 2.0 * ys[0];
        g[kl] = 1.0;
        ys[0] * ys[0] + ys[kl]
    };
    let opts = Options::default()
        .fixed_step(1.0 / 64.0)
        .seed(5)
        .save_at(SaveAt::T1);
    let euler = FractionalModalEuler::new(mw.clone(), layout.prior_modes().start);
    let exact = euler.clone().exact_shift(layout.shift().start);
    for (name, solver) in [("Euler shift", euler), ("exact shift", exact)] {
        let g = grad(
            &build(&p, &x0),
            solver.clone(),
            &opts,
            &loss,
            Adjoint::Discrete { checkpoints: 3 },
        )
        .expect("grad");
        let f = |q: &[f64], y: &[f64]| {
            common::loss_of_solve(&build(q, y), solver.clone(), &opts, &loss)
        };
        assert!(g.loss.is_finite());
        // the control does read the modes: dL/dp7 and dL/dp8 are not 0
        assert!(g.dp[7].abs() > 1e-6 && g.dp[8].abs() > 1e-6, "{:?}", g.dp);
        common::assert_matches_fd(name, &g, &x0, &p, 1e-3, |y, q| f(q, y));
    }
}

#[test]
fn exact_shift_steps_the_posterior_modes_exactly_at_any_gamma_h() {
    // X = σ B̂_H (b = 0, s = σ = 0.8), u ≡ 0.6, type II, K = 4 with
    // γ_max = 200 and h = 1/16 (γ_max h = 12.5: Euler's shift would blow
    // up): Z_k(t) = u (1 − e^{−γ_k t})/γ_k and X^post(t) − X^prior(t) =
    // σ Σ_k ω_k Z_k(t) at every step to 1e-12, KL(t) = ½ u² t.
    let gammas = gamma_grid_by_gamma_max(4, 200.0, 0.0).expect("grid");
    let mw = ModeWeights::new(FbmType::RiemannLiouville, Hurst::Fixed(0.3), 1.0, &gammas)
        .expect("weights");
    let (w, _) = mw.weights(&[]).expect("weights");
    let (sigma, u0) = (0.8, 0.6);
    let pr = Problem::sde(
        |_t: f64, _y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = 0.0,
        move |_t: f64, _y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = sigma,
        Noise::Diagonal,
        vec![0.0],
        (0.0, 1.0),
    )
    .driver(mw.noise());
    let post = posterior_with_modes(
        pr.clone(),
        generic_field!([u0: f64] |_t, _y, _p, u| u[0] = _t * 0.0 + u0),
        &mw,
    )
    .expect("posterior");
    let layout = post.drift.layout();
    let solver = FractionalModalEuler::new(mw.clone(), layout.prior_modes().start)
        .exact_shift(layout.shift().start);
    let opts = Options::default().fixed_step(1.0 / 16.0).seed(2);
    let a = solve(&pr, FractionalEuler::new(mw.clone()), opts.clone()).expect("prior");
    let b = solve(&post, solver, opts).expect("posterior");
    let na = layout.dim();
    for (i, &t) in b.ts.iter().enumerate() {
        let row = &b.ys[i * na..(i + 1) * na];
        let z: Vec<f64> = gammas.iter().map(|g| u0 * -(-g * t).exp_m1() / g).collect();
        for k in 0..4 {
            assert!(
                (row[1 + k] - z[k]).abs() < 1e-12,
                "Z_{k}({t}): {} vs {}",
                row[1 + k],
                z[k]
            );
        }
        let shift: f64 = sigma * (0..4).map(|k| w[k] * z[k]).sum::<f64>();
        assert!(
            (row[0] - a.ys[i] - shift).abs() < 1e-12,
            "X shift at {t}: {} vs {shift}",
            row[0] - a.ys[i]
        );
        assert!((row[layout.kl()] - 0.5 * u0 * u0 * t).abs() < 1e-12);
    }
}

#[test]
fn modal_euler_refuses_a_modes_block_past_the_state() {
    // The posterior has 10 components; a block of 4 modes starting at 7
    // would run past them: a DimensionMismatch that names the solver and
    // what to give, before any step.
    let gammas = gamma_grid(4, 0.3, 1.0).expect("grid");
    let mw = ModeWeights::new(FbmType::RiemannLiouville, Hurst::Fixed(0.3), 1.0, &gammas)
        .expect("weights");
    let post =
        posterior_with_modes(prior(&mw, &[0.6, 0.9], 0.0), Generic(Zero), &mw).expect("posterior");
    let opts = Options::default().fixed_step(1.0 / 16.0);
    match solve(
        &post,
        FractionalModalEuler::new(mw.clone(), 7),
        opts.clone(),
    ) {
        Err(e) => {
            assert!(matches!(e, SolveError::DimensionMismatch { .. }), "{e}");
            common::assert_says(&e, &["FractionalModalEuler", "prior_modes"]);
        }
        Ok(_) => panic!("a modes block past the state was accepted"),
    }
    // a solver of other modes than the driver's is refused too
    let other = ModeWeights::new(
        FbmType::RiemannLiouville,
        Hurst::Fixed(0.3),
        1.0,
        &gamma_grid(3, 0.3, 1.0).expect("grid"),
    )
    .expect("weights");
    match solve(&post, FractionalModalEuler::new(other, 5), opts.clone()) {
        Err(e) => common::assert_says(&e, &["FractionalModalEuler", "modes"]),
        Ok(_) => panic!("weights of other modes were accepted"),
    }
    // an exact-shift block past the state is refused
    match solve(
        &post,
        FractionalModalEuler::new(mw.clone(), 5).exact_shift(8),
        opts.clone(),
    ) {
        Err(e) => {
            assert!(matches!(e, SolveError::DimensionMismatch { .. }), "{e}");
            common::assert_says(&e, &["shift", "exact_shift"]);
        }
        Ok(_) => panic!("a shift block past the state was accepted"),
    }
    // a non-finite initial state is refused
    let mut bad = post.clone();
    bad.y0[0] = f64::NAN;
    match solve(&bad, FractionalModalEuler::new(mw, 5), opts) {
        Err(e) => assert!(matches!(e, SolveError::InvalidInput { .. }), "{e}"),
        Ok(_) => panic!("a NaN initial state was accepted"),
    }
}
