//! The variational posterior of fBM-driven SDEs (issue #15 part 3): a
//! control in the OU modes' drift and the KL it costs, as the augmented
//! problem `posterior(prior, u, weights)` on `(X, Z, KL)`. With `u ≡ 0` the
//! solve is the prior's bit for bit; the KL of a constant control is
//! `½u²T`; a constant control shifts the fBM path's mean by the closed-form
//! amount; gradients of a loss plus the KL in the control's parameters,
//! the model's, the initial state and `H` agree with central differences.

use sdeflow::fractional::{
    FbmType, FractionalEuler, FractionalHeun, FractionalNoise, Hurst, ModeWeights, gamma_grid,
    gamma_grid_by_gamma_max, posterior,
};
use sdeflow::prelude::*;

use crate::common;

fn nonlinear_prior(
    driver: FractionalNoise,
    noise: Noise,
    y0: Vec<f64>,
) -> Problem<impl Drift + Clone + use<>, impl Diffusion + Clone + use<>, FractionalNoise> {
    Problem::sde(
        |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| {
            for (d, x) in dy.iter_mut().zip(y) {
                *d = p[0] - x + 0.2 * x.sin();
            }
        },
        |_t: f64, y: &[f64], p: &[f64], g: &mut [f64]| {
            for (i, gi) in g.iter_mut().enumerate() {
                *gi = p[1] * (1.0 + 0.3 * y[i % y.len()].cos());
            }
        },
        noise,
        y0,
        (0.0, 1.0),
    )
    .params(vec![0.5, 0.4])
    .driver(driver)
}

#[test]
fn zero_control_reproduces_the_prior_solve_bit_for_bit() {
    // Diagonal (n = 2) and scalar noise, type I and II, Euler (Itô) and
    // Heun (Stratonovich) on fixed steps: every saved X of the posterior
    // equals the prior's exactly (==), and Z and KL stay exactly 0.
    let gammas = gamma_grid(5, 0.3, 1.0).expect("grid");
    for (kind, noise) in [
        (FbmType::MandelbrotVanNess, Noise::Diagonal),
        (FbmType::RiemannLiouville, Noise::Scalar),
    ] {
        let mw = ModeWeights::new(kind, Hurst::Fixed(0.3), 1.0, &gammas).expect("weights");
        let prior = nonlinear_prior(mw.noise(), noise, vec![0.2, -0.4]);
        let zero = generic_field!(|_t, _y, _p, u| for v in u.iter_mut() {
            *v = _t * 0.0
        });
        let post = posterior(prior.clone(), zero, &mw).expect("posterior");
        let layout = post.drift.layout();
        let opts = Options::default().fixed_step(1.0 / 50.0).seed(3);
        let check = |a: Solution, b: Solution, what: &str| {
            assert_eq!(a.ts, b.ts, "{what}");
            let na = layout.dim();
            for (i, _) in a.ts.iter().enumerate() {
                assert_eq!(
                    a.ys[i * 2..i * 2 + 2],
                    b.ys[i * na..i * na + 2],
                    "{what} at {i}"
                );
                assert!(b.ys[i * na + 2..(i + 1) * na].iter().all(|&v| v == 0.0));
            }
        };
        let (e0, e1) = (
            FractionalEuler::new(mw.clone()),
            FractionalEuler::new(mw.clone()),
        );
        check(
            solve(&prior, e0, opts.clone()).expect("prior"),
            solve(&post, e1, opts.clone()).expect("posterior"),
            "Euler",
        );
        let prior_s = prior.clone().interpretation(Interpretation::Stratonovich);
        let post_s = posterior(prior_s.clone(), zero, &mw).expect("posterior");
        check(
            solve(&prior_s, FractionalHeun::new(mw.clone()), opts.clone()).expect("prior"),
            solve(&post_s, FractionalHeun::new(mw.clone()), opts.clone()).expect("posterior"),
            "Heun",
        );
    }
}

#[test]
fn kl_of_a_constant_control_is_half_u_squared_t() {
    // u = (0.7, −1.3) on two fBMs over [0, 1.5]: KL = ½ (0.49 + 1.69) 1.5,
    // to rounding (the integrand is constant, so every scheme is exact).
    let gammas = gamma_grid(4, 0.7, 1.5).expect("grid");
    let mw = ModeWeights::new(FbmType::RiemannLiouville, Hurst::Fixed(0.7), 1.5, &gammas)
        .expect("weights");
    let prior = nonlinear_prior(mw.noise(), Noise::Diagonal, vec![0.1, 0.3]).tspan((0.0, 1.5));
    let u = generic_field!(|_t, _y, _p, u| {
        u[0] = _t * 0.0 + 0.7;
        u[1] = _t * 0.0 - 1.3;
    });
    let post = posterior(prior, u, &mw).expect("posterior");
    let kl = post.drift.layout().kl();
    let want = 0.5 * (0.49 + 1.69) * 1.5;
    for h in [0.1, 0.01] {
        let opts = Options::default().fixed_step(h).seed(1).save_at(SaveAt::T1);
        let sol = solve(&post, FractionalEuler::new(mw.clone()), opts).expect("solve");
        let got = sol.last()[kl];
        println!("h = {h}: KL {got} (½u²T = {want})");
        assert!((got - want).abs() < 1e-12 * want, "{got} vs {want}");
    }
}

#[test]
fn a_constant_control_shifts_the_fbm_mean_by_the_closed_form_amount() {
    // X = B̂_H itself (dX = dB̂_H, X(0) = 0), H = 0.3 type I, u = 0.8. Under
    // the posterior the modes shift by Z_k(t) = u (1 − e^{−γ_k t})/γ_k, so
    // E X(T) = Σ_k ω_k u (1 − e^{−γ_k T})/γ_k (0 under the prior) and the
    // variance is the prior's. Checked: (1) on each of N = 400 seeds,
    // X^post(T) − X^prior(T) is the same number, the Euler recursion of the
    // shift (deterministic: to 1e-12); that number is within 2% of the
    // closed form at h = 1/512 (Euler's O(γ_max h) error on Z, γ_max = 20;
    // a dyadic step: the driver's queries then land on its tree's nodes);
    // (2) the sample mean of X^post(T) is within 4 standard errors of the
    // closed form plus that discretisation gap.
    let gammas = gamma_grid_by_gamma_max(5, 20.0, 0.0).expect("grid");
    let mw = ModeWeights::new(FbmType::MandelbrotVanNess, Hurst::Fixed(0.3), 1.0, &gammas)
        .expect("weights");
    let (w, _) = mw.weights(&[]).expect("weights");
    let u0 = 0.8;
    let prior = Problem::sde(
        |_t: f64, _y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = 0.0,
        |_t: f64, _y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = 1.0,
        Noise::Diagonal,
        vec![0.0],
        (0.0, 1.0),
    )
    .driver(mw.noise());
    let post = posterior(
        prior.clone(),
        generic_field!([u0: f64] |_t, _y, _p, u| u[0] = _t * 0.0 + u0),
        &mw,
    )
    .expect("posterior");
    let closed: f64 = w
        .iter()
        .zip(&gammas)
        .map(|(wk, g)| wk * u0 * -(-g).exp_m1() / g)
        .sum();
    let h = 1.0 / 512.0;
    let n = 400u64;
    let mut xs = Vec::new();
    let mut shift = None;
    for seed in 0..n {
        let opts = Options::default()
            .fixed_step(h)
            .seed(seed)
            .save_at(SaveAt::T1);
        let a = solve(&prior, FractionalEuler::new(mw.clone()), opts.clone()).expect("prior");
        let b = solve(&post, FractionalEuler::new(mw.clone()), opts).expect("posterior");
        let d = b.last()[0] - a.last()[0];
        let s = *shift.get_or_insert(d);
        assert!((d - s).abs() < 1e-12, "seed {seed}: shift {d} vs {s}");
        xs.push(b.last()[0]);
    }
    let shift = shift.expect("shift");
    let gap = (shift - closed).abs();
    let nf = n as f64;
    let mean = xs.iter().sum::<f64>() / nf;
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (nf - 1.0)).sqrt();
    println!(
        "closed-form shift {closed:.5}, Euler shift {shift:.5}; sample mean {mean:.5} ± {:.5}",
        sd / nf.sqrt()
    );
    assert!(gap < 0.02 * closed.abs(), "{shift} vs {closed}");
    assert!((mean - closed).abs() < 4.0 * sd / nf.sqrt() + gap);
}

/// The drift `−p0 X + 0.2 sin(X/2)` (shared with `fractional_modal`).
#[derive(Clone, Copy)]
pub(crate) struct Dr;
impl GenericField for Dr {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = -p[0] * y[0] + (y[0] * 0.5).sin() * 0.2;
    }
}
/// The diffusion `p1 (1 + 0.2 cos X)` (shared with `fractional_modal`).
#[derive(Clone, Copy)]
pub(crate) struct Df;
impl GenericField for Df {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], g: &mut [D]) {
        g[0] = p[1] * (D::from(1.0) + y[0].cos() * 0.2);
    }
}
/// The control `u = p3 + p4 X + p5 Z_1 + p6 t` (`Z_1` the shift of the
/// slowest mode).
#[derive(Clone, Copy)]
struct Ctl;
impl GenericField for Ctl {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, y: &[D], p: &[D], u: &mut [D]) {
        u[0] = p[3] + p[4] * y[0] + p[5] * y[1] + p[6] * t;
    }
}

/// The loss of a solve as a function of `(p, X(0))`.
type LossOf<'a> = Box<dyn Fn(&[f64], &[f64]) -> f64 + 'a>;

#[test]
fn gradients_of_loss_plus_kl_match_central_differences() {
    // L = X(1)² + KL(1) of the posterior of dX = (−θX + 0.2 sin(X/2)) dt
    // + σ(1 + 0.2 cos X) dB̂_H, H = p[2] (type I, 5 modes), with the
    // control's parameters p[3..7]; the discrete adjoint (3 checkpoints)
    // through FractionalEuler (Itô) and FractionalHeun (Stratonovich, fixed
    // steps) on a fixed seed, against central differences of the same
    // solve (step 1e-5): within 1e-6 relative, for every parameter and X(0).
    let gammas = gamma_grid(5, 0.35, 1.0).expect("grid");
    let mw = ModeWeights::new(FbmType::MandelbrotVanNess, Hurst::Param(2), 1.0, &gammas)
        .expect("weights");
    let p = [0.6, 0.9, 0.35, 0.3, -0.4, 0.5, 0.7];
    let x0 = [0.4];
    let build = |p: &[f64], x0: &[f64], interp: Interpretation| {
        let prior = Problem::sde_field(
            Generic(Dr),
            Generic(Df),
            Noise::Diagonal,
            x0.to_vec(),
            (0.0, 1.0),
        )
        .params(p.to_vec())
        .interpretation(interp)
        .driver(mw.noise());
        posterior(prior, Generic(Ctl), &mw).expect("posterior")
    };
    let kl = build(&p, &x0, Interpretation::Ito).drift.layout().kl();
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
    let euler = FractionalEuler::new(mw.clone());
    let heun = FractionalHeun::new(mw.clone());
    for interp in [Interpretation::Ito, Interpretation::Stratonovich] {
        let prob = build(&p, &x0, interp);
        let name;
        let (g, f): (_, LossOf<'_>) = match interp {
            Interpretation::Ito => {
                name = "FractionalEuler";
                let g = grad(
                    &prob,
                    euler.clone(),
                    &opts,
                    &loss,
                    Adjoint::Discrete { checkpoints: 3 },
                )
                .expect("grad");
                let f = |q: &[f64], y: &[f64]| {
                    common::loss_of_solve(&build(q, y, interp), euler.clone(), &opts, &loss)
                };
                (g, Box::new(f))
            }
            _ => {
                name = "FractionalHeun";
                let g = grad(
                    &prob,
                    heun.clone(),
                    &opts,
                    &loss,
                    Adjoint::Discrete { checkpoints: 3 },
                )
                .expect("grad");
                let f = |q: &[f64], y: &[f64]| {
                    common::loss_of_solve(&build(q, y, interp), heun.clone(), &opts, &loss)
                };
                (g, Box::new(f))
            }
        };
        assert!(g.loss.is_finite());
        common::assert_matches_fd(name, &g, &x0, &p, 1e-3, |y, q| f(q, y));
    }
}

#[test]
fn posterior_refuses_a_driver_of_other_modes() {
    let mw = ModeWeights::new(
        FbmType::RiemannLiouville,
        Hurst::Fixed(0.3),
        1.0,
        &gamma_grid(5, 0.3, 1.0).expect("grid"),
    )
    .expect("weights");
    let other = ModeWeights::new(
        FbmType::RiemannLiouville,
        Hurst::Fixed(0.3),
        1.0,
        &gamma_grid(4, 0.3, 1.0).expect("grid"),
    )
    .expect("weights");
    let prior = nonlinear_prior(other.noise(), Noise::Diagonal, vec![0.0]);
    let u = generic_field!(|_t, _y, _p, u| u[0] = _t * 0.0);
    match posterior(prior, u, &mw) {
        Err(err) => common::assert_says(&err, &["driver", "modes"]),
        Ok(_) => panic!("a driver of other modes was accepted"),
    }
}
