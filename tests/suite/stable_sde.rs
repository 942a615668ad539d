//! The stable neural SDE classes (Oh, Lim, Kim, ICLR 2024; `nn::StableSde`):
//! each class's drift and diffusion have the shape and the defining
//! property of its equation, the geometric class keeps a positive state
//! positive where additive noise does not, bad shapes are typed errors,
//! and the discrete adjoint's gradient through a solve agrees with central
//! finite differences of the same discrete solve (same Brownian path).

use sdeflow::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use sdeflow::nn::{Activation, StableKind, StableSde};
use sdeflow::prelude::*;

use crate::common;

fn models() -> [StableSde; 3] {
    [
        StableSde::langevin(2, &[5], Activation::Tanh),
        StableSde::linear_noise(2, &[5], Activation::Tanh),
        StableSde::geometric(2, &[5], Activation::Tanh),
    ]
}

fn eval(m: &StableSde, t: f64, y: &[f64], p: &[f64]) -> ([f64; 2], [f64; 2]) {
    let (mut f, mut g) = ([0.0; 2], [0.0; 2]);
    m.drift(t, y, p, &mut f);
    m.diffusion(t, y, p, &mut g);
    (f, g)
}

#[test]
fn shapes_and_parameter_layout() {
    for m in models() {
        // drift network (n or 1 + n) → 5 → n, noise network 1 → 5 → n
        let input = if m.kind() == StableKind::Langevin {
            2
        } else {
            3
        };
        let kd = input * 5 + 5 + 5 * 2 + 2;
        let ks = 5 + 5 + 5 * 2 + 2;
        assert_eq!(m.drift_net().num_params(), kd);
        assert_eq!(m.num_params(), kd + ks);
        let p = m.init_params(4, 0.7);
        assert_eq!(p.len(), kd + ks);
        let (f, g) = eval(&m, 0.3, &[0.4, -0.8], &p);
        assert!(f.iter().chain(&g).all(|v| v.is_finite() && *v != 0.0));
        assert!(m.check_shape(2, kd + ks, 2).is_ok());
    }
}

#[test]
fn langevin_drift_is_autonomous_and_noise_additive() {
    let m = StableSde::langevin(2, &[5], Activation::Tanh);
    let p = m.init_params(1, 0.8);
    let (f1, g1) = eval(&m, 0.1, &[0.4, -0.8], &p);
    let (f2, g2) = eval(&m, 0.9, &[-1.5, 2.0], &p);
    let (f3, g3) = eval(&m, 0.9, &[0.4, -0.8], &p);
    // γ(z) does not read t; σ(t) does not read z, but does read t
    assert_eq!(f1, f3);
    assert_eq!(g2, g3);
    assert_ne!(g1, g3);
    assert_ne!(f1, f2);
}

#[test]
fn linear_noise_diffusion_is_linear_in_the_state() {
    let m = StableSde::linear_noise(2, &[5], Activation::Tanh);
    let p = m.init_params(2, 0.8);
    let (y1, y2) = ([0.4, -0.8], [1.3, 0.6]);
    let (a, b) = (0.7, -2.1);
    let ys = [a * y1[0] + b * y2[0], a * y1[1] + b * y2[1]];
    let (_, g1) = eval(&m, 0.5, &y1, &p);
    let (_, g2) = eval(&m, 0.5, &y2, &p);
    let (_, gs) = eval(&m, 0.5, &ys, &p);
    for i in 0..2 {
        let want = a * g1[i] + b * g2[i];
        assert!((gs[i] - want).abs() < 1e-14 * want.abs().max(1.0), "{gs:?}");
    }
    // the drift is not (a network of (t, z))
    let (f1, _) = eval(&m, 0.5, &y1, &p);
    let (fs, _) = eval(&m, 0.5, &ys, &p);
    let (f2, _) = eval(&m, 0.5, &y2, &p);
    assert!((fs[0] - (a * f1[0] + b * f2[0])).abs() > 1e-3);
}

#[test]
fn geometric_fields_vanish_with_the_state() {
    let m = StableSde::geometric(2, &[5], Activation::Tanh);
    let p = m.init_params(3, 0.8);
    let (f, g) = eval(&m, 0.5, &[0.0, 0.7], &p);
    assert_eq!((f[0], g[0]), (0.0, 0.0));
    assert!(f[1] != 0.0 && g[1] != 0.0);
}

/// The smallest component of the state over a fixed-step Euler–Maruyama
/// path from a small positive state, on `seeds` paths.
fn smallest(m: &StableSde, noise: Noise, p: &[f64], seeds: std::ops::Range<u64>) -> f64 {
    let prob = Problem::sde_field(m.clone(), m.clone(), noise, vec![0.05, 0.02], (0.0, 2.0))
        .params(p.to_vec());
    seeds
        .map(|s| {
            let opts = Options::default()
                .fixed_step(0.01)
                .save_at(SaveAt::Steps)
                .seed(s);
            let sol = solve(&prob, EulerMaruyama, &opts).expect("solve");
            sol.ys.iter().copied().fold(f64::INFINITY, f64::min)
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
fn geometric_keeps_a_positive_state_positive_where_additive_noise_does_not() {
    // same networks and parameters: the Langevin-type model (additive noise
    // σ(t), of size ~0.5 here) leaves (0, ∞) from (0.05, 0.02) on some of
    // 20 paths; the geometric one (noise σ(t) z, exact solution
    // z0 · exp(…)) never does (Euler–Maruyama multiplies by 1 + γh + σΔW,
    // which at h = 0.01 would need a ~20σ Brownian increment to be ≤ 0)
    let gsde = StableSde::geometric(2, &[5], Activation::Tanh);
    let lsde = StableSde::langevin(2, &[5], Activation::Tanh);
    let pg = gsde.init_params(5, 1.0);
    let pl = lsde.init_params(5, 1.0);
    assert!(smallest(&lsde, Noise::Additive, &pl, 0..20) < 0.0);
    assert!(smallest(&gsde, Noise::Diagonal, &pg, 0..20) > 0.0);
}

#[test]
fn vjps_agree_with_finite_differences_of_the_fields() {
    for m in models() {
        let p = m.init_params(6, 0.8);
        let (t, y, v) = (0.4, [0.3, -0.6], [0.7, -1.1]);
        let (mut fy, mut fp) = (vec![0.0; 2], vec![0.0; p.len()]);
        let (mut gy, mut gp) = (vec![0.0; 2], vec![0.0; p.len()]);
        m.drift_vjp(t, &y, &p, &v, &mut fy, &mut fp);
        m.diffusion_vjp(t, &y, &p, &v, &mut gy, &mut gp);
        let dot = |yy: &[f64], pp: &[f64]| {
            let (f, g) = eval(&m, t, yy, pp);
            (v[0] * f[0] + v[1] * f[1], v[0] * g[0] + v[1] * g[1])
        };
        let h = 1e-6;
        let check = |adj: f64, fd: f64, what: &str| {
            assert!(
                (adj - fd).abs() <= 1e-7 * fd.abs().max(1.0),
                "{:?} {what}: {adj} vs FD {fd}",
                m.kind()
            );
        };
        for j in 0..2 {
            let (mut a, mut b) = (y, y);
            a[j] += h;
            b[j] -= h;
            let (pa, pb) = (dot(&a, &p), dot(&b, &p));
            check(fy[j], (pa.0 - pb.0) / (2.0 * h), "drift ∂y");
            check(gy[j], (pa.1 - pb.1) / (2.0 * h), "diffusion ∂y");
        }
        for j in 0..p.len() {
            let (mut a, mut b) = (p.clone(), p.clone());
            a[j] += h;
            b[j] -= h;
            let (pa, pb) = (dot(&y, &a), dot(&y, &b));
            check(fp[j], (pa.0 - pb.0) / (2.0 * h), "drift ∂p");
            check(gp[j], (pa.1 - pb.1) / (2.0 * h), "diffusion ∂p");
        }
    }
}

/// `Σ_k Σ_i (y_i(t_k) − 0.01 k)²` over the saved states.
fn tracking(_ts: &[f64], ys: &[f64], g: &mut [f64]) -> f64 {
    let mut l = 0.0;
    for (j, y) in ys.iter().enumerate() {
        let d = y - 0.01 * (j / 2) as f64;
        l += d * d;
        g[j] = 2.0 * d;
    }
    l
}

#[test]
fn gradients_through_a_solve_agree_with_central_differences() {
    // the discrete adjoint of Euler–Maruyama (Itô) on a fixed path against
    // central differences of the same discrete solve: 1e-6 relative
    // (floor 1e-3)
    for m in models() {
        let p0 = m.init_params(7, 0.8);
        let y0 = [0.6, 0.4];
        let opts = Options::default()
            .fixed_step(0.02)
            .save_at(SaveAt::Steps)
            .seed(11);
        let prob = |p: &[f64], y0: &[f64]| {
            Problem::sde_field(
                m.clone(),
                m.clone(),
                Noise::Diagonal,
                y0.to_vec(),
                (0.0, 1.0),
            )
            .params(p.to_vec())
        };
        let g = grad(
            &prob(&p0, &y0),
            EulerMaruyama,
            &opts,
            &tracking,
            Adjoint::Discrete { checkpoints: 0 },
        )
        .expect("grad");
        let loss_at = |p: &[f64], y0: &[f64]| {
            let sol = solve(&prob(p, y0), EulerMaruyama, &opts).expect("solve");
            let mut gg = vec![0.0; sol.ys.len()];
            tracking(&sol.ts, &sol.ys, &mut gg)
        };
        // Richardson-extrapolated central differences (fourth order): at
        // h = 1e-4 the truncation (~h⁴) and rounding (~ε·L/h) errors both
        // stay well below 1e-6 of the gradient
        let richardson = |f: &dyn Fn(&[f64]) -> f64, x: &[f64], j: usize| {
            let h = 2e-4;
            let (d1, d2) = (
                common::central_difference(f, x, j, h),
                common::central_difference(f, x, j, h / 2.0),
            );
            (4.0 * d2 - d1) / 3.0
        };
        let mut worst: f64 = 0.0;
        for j in 0..p0.len() + 2 {
            let (adj, fd) = if j < p0.len() {
                (g.dp[j], richardson(&|q| loss_at(q, &y0), &p0, j))
            } else {
                let k = j - p0.len();
                (g.dy0[k], richardson(&|q| loss_at(&p0, q), &y0, k))
            };
            let rel = (adj - fd).abs() / fd.abs().max(1e-3);
            worst = worst.max(rel);
            assert!(rel < 1e-6, "{:?} θ{j}: adjoint {adj} vs FD {fd}", m.kind());
        }
        println!("{:?}: worst relative difference {worst:.1e}", m.kind());
    }
}

#[test]
fn bad_shapes_are_typed_errors() {
    let m = StableSde::linear_noise(2, &[5], Activation::Tanh);
    let p = m.init_params(1, 0.5);
    // a 3-D state for a 2-D model
    let prob = Problem::sde_field(
        m.clone(),
        m.clone(),
        Noise::Diagonal,
        vec![0.1, 0.2, 0.3],
        (0.0, 1.0),
    )
    .params(p.clone());
    let e = solve(&prob, EulerMaruyama, Options::default().fixed_step(0.1)).unwrap_err();
    common::assert_says(&e, &["state", "dimension 2"]);
    // too few parameters
    let prob = Problem::sde_field(
        m.clone(),
        m.clone(),
        Noise::Diagonal,
        vec![0.1, 0.2],
        (0.0, 1.0),
    )
    .params(p[1..].to_vec());
    let e = solve(&prob, EulerMaruyama, Options::default().fixed_step(0.1)).unwrap_err();
    common::assert_says(&e, &["parameters", "init_params"]);
    // a general noise matrix for a diagonal-noise model
    let prob =
        Problem::sde_field(m.clone(), m, Noise::General(3), vec![0.1, 0.2], (0.0, 1.0)).params(p);
    let e = solve(&prob, EulerMaruyama, Options::default().fixed_step(0.1)).unwrap_err();
    common::assert_says(&e, &["diffusion", "Noise::Diagonal"]);
}
