//! Gradients through explicit RK solves with the discrete adjoint, checked
//! against an analytic gradient, central finite differences of the same
//! discrete solver, and forward-mode sensitivities (dual numbers in the
//! variational equations, integrated by the same method on the same steps —
//! for explicit RK that is exactly the forward-mode derivative of the
//! discrete solution).

use crate::common;
use common::{
    LV_PARAMS as P, LV_Y0 as Y0, LotkaVolterra as Lv, assert_converges, central_difference,
    loss_of_solve,
};
use sdeflow::field::FiniteDifferenceVjp;
use sdeflow::prelude::*;

/// The discrete adjoint with a budget of 8 stored states.
const DISCRETE: Adjoint = Adjoint::Discrete { checkpoints: 8 };
/// The discrete adjoint with a budget of 4 (recomputing most steps).
const DISCRETE_SMALL: Adjoint = Adjoint::Discrete { checkpoints: 4 };

/// y' = −p y, generic over the scalar: the linear ODE whose gradient is
/// known in closed form.
#[derive(Clone, Copy)]
struct Decay;
impl GenericField for Decay {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = -p[0] * y[0];
    }
}

fn data_times() -> Vec<f64> {
    // step ends (multiples of h = 0.01) and interior points of steps
    vec![0.5, 1.0, 1.234, 2.0, 2.5, 3.3333, 4.0]
}

/// Sum of squared distances to fixed "data".
fn loss(ts: &[f64], ys: &[f64], g: &mut [f64]) -> f64 {
    let mut l = 0.0;
    for (i, &t) in ts.iter().enumerate() {
        let target = [1.0 + 0.3 * t.sin(), 0.8 + 0.2 * t.cos()];
        for k in 0..2 {
            let d = ys[2 * i + k] - target[k];
            l += d * d;
            g[2 * i + k] = 2.0 * d;
        }
    }
    l
}

fn opts() -> Options {
    Options::default()
        .fixed_step(0.01)
        .save_at(SaveAt::Times(data_times()))
}

fn loss_of(p: &[f64], y0: &[f64]) -> f64 {
    let prob = Problem::ode_field(Generic(Lv), y0.to_vec(), (0.0, 4.0)).params(p.to_vec());
    loss_of_solve(&prob, Tsit5, &opts(), &loss)
}

#[test]
fn discrete_adjoint_matches_finite_differences_and_forward_duals() {
    let prob = Problem::ode_field(Generic(Lv), Y0.to_vec(), (0.0, 4.0)).params(P.to_vec());
    let g = grad(
        &prob,
        Tsit5,
        opts(),
        &loss,
        Adjoint::Discrete { checkpoints: 32 },
    )
    .expect("grad");
    assert!((g.loss - loss_of(&P, &Y0)).abs() < 1e-14);
    let all: Vec<f64> = g.dp.iter().chain(&g.dy0).copied().collect();
    for (j, &adj) in all.iter().enumerate() {
        // central finite differences of the same fixed-step discrete solver
        let h = 1e-6;
        let fd = if j < 4 {
            central_difference(|a| loss_of(a, &Y0), &P, j, h)
        } else {
            central_difference(|a| loss_of(&P, a), &Y0, j - 4, h)
        };
        // forward mode: dL/dθ = Σ ∂L/∂y(t_k) · s(t_k)
        let fwd = forward_mode(&Lv, &P, &Y0, 4.0, j, &opts(), &loss);
        let rel_fd = (adj - fd).abs() / fd.abs().max(1e-12);
        let rel_fwd = (adj - fwd).abs() / fwd.abs().max(1e-12);
        println!(
            "θ{j}: adjoint {adj:.12e}, FD {fd:.12e} (rel {rel_fd:.1e}), forward duals {fwd:.12e} (rel {rel_fwd:.1e})"
        );
        assert!(rel_fd < 1e-6, "θ{j}: FD rel err {rel_fd:e}");
        assert!(rel_fwd < 1e-10, "θ{j}: forward-mode rel err {rel_fwd:e}");
    }
}

#[test]
fn decay_gradient_is_analytic_for_every_solver() {
    // L = y(1)² with y = y0 e^{-p t}: dL/dp = -2 y(1)², dL/dy0 = 2 y(1) e^{-p}
    let prob = Problem::ode_field(Generic(Decay), vec![2.0], (0.0, 1.0)).params(vec![0.7]);
    let y1 = 2.0 * (-0.7f64).exp();
    let l = |_ts: &[f64], ys: &[f64], g: &mut [f64]| {
        g[0] = 2.0 * ys[0];
        ys[0] * ys[0]
    };
    let opts = Options::default().tol(1e-11).save_at(SaveAt::T1);
    for (name, g) in [
        ("Tsit5", grad(&prob, Tsit5, &opts, &l, DISCRETE)),
        ("Dopri5", grad(&prob, Dopri5, &opts, &l, DISCRETE)),
        ("Vern7", grad(&prob, Vern7, &opts, &l, DISCRETE)),
        ("Bs3", grad(&prob, Bs3, &opts, &l, DISCRETE)),
    ] {
        let g = g.expect(name);
        assert!(
            (g.dp[0] + 2.0 * y1 * y1).abs() < 1e-7,
            "{name}: {}",
            g.dp[0]
        );
        assert!(
            (g.dy0[0] - 2.0 * y1 * (-0.7f64).exp()).abs() < 1e-7,
            "{name}: {}",
            g.dy0[0]
        );
    }
}

#[test]
fn hand_written_and_finite_difference_vjps() {
    // the same decay with a closure and a hand-written VJP, and with FD VJPs
    let f = |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| dy[0] = -p[0] * y[0];
    let prob = Problem::ode(f, vec![2.0], (0.0, 1.0))
        .params(vec![0.7])
        .with_vjp(
            |_t, y: &[f64], p: &[f64], v: &[f64], oy: &mut [f64], op: &mut [f64]| {
                oy[0] += -p[0] * v[0];
                op[0] += -y[0] * v[0];
            },
        );
    let fdp = Problem::ode_field(FiniteDifferenceVjp(f), vec![2.0], (0.0, 1.0)).params(vec![0.7]);
    let l = |_ts: &[f64], ys: &[f64], g: &mut [f64]| {
        g[0] = 1.0;
        ys[0]
    };
    let opts = Options::default().tol(1e-10).save_at(SaveAt::T1);
    let a = grad(&prob, Tsit5, &opts, &l, DISCRETE).expect("vjp");
    let b = grad(&fdp, Tsit5, &opts, &l, DISCRETE).expect("fd");
    let exact = -2.0 * (-0.7f64).exp();
    assert!((a.dp[0] - exact).abs() < 1e-8);
    assert!(
        (b.dp[0] - exact).abs() < 1e-6,
        "FD VJPs are approximate: {}",
        b.dp[0]
    );
}

#[test]
fn checkpointing_bounds_memory_and_keeps_the_gradient() {
    // Lotka–Volterra on [0, T] with fixed steps: 400, 4000 and 40 000 steps.
    // With a budget of 16 states per level the backward pass never holds
    // more than 16·(levels + 1) states (levels = ⌈log_16(steps)⌉), and the
    // gradient equals the one with every state stored.
    let l = |_ts: &[f64], ys: &[f64], g: &mut [f64]| {
        g[0] = 1.0;
        g[1] = -0.5;
        ys[0] - 0.5 * ys[1]
    };
    for steps in [400usize, 4000, 40_000] {
        let t1 = 4.0;
        let prob = Problem::ode_field(Generic(Lv), Y0.to_vec(), (0.0, t1)).params(P.to_vec());
        let opts = Options::default()
            .fixed_step(t1 / steps as f64)
            .save_at(SaveAt::T1)
            .max_steps(1_000_000);
        // a budget of 16, and every state stored
        let [small, all] = [16, 1_000_000].map(|checkpoints| {
            grad(&prob, Tsit5, &opts, &l, Adjoint::Discrete { checkpoints }).expect("grad")
        });
        let levels = (steps as f64).log(16.0).ceil() as usize;
        println!(
            "{steps} steps: peak stored states {} with budget 16 (bound {}), {} storing all; backward drift evals {} vs {}",
            small.peak_stored_states,
            16 * (levels + 1),
            all.peak_stored_states,
            small.backward_drift_evals,
            all.backward_drift_evals
        );
        assert!(small.peak_stored_states <= 16 * (levels + 1));
        assert!(all.peak_stored_states >= steps);
        common::assert_gradients_agree(&all, &small, 1e-12, 1.0);
    }
}

/// dL/dθ_dir by forward mode: the variational system [y, s] integrated by the
/// same solver on the same fixed steps, with dual numbers for J s + ∂f/∂θ.
fn forward_mode<F: GenericField + Clone>(
    field: &F,
    p: &[f64],
    y0: &[f64],
    t1: f64,
    dir: usize,
    opts: &Options,
    l: &dyn Loss,
) -> f64 {
    use sdeflow::field::Dual64;
    let n = y0.len();
    let np = p.len();
    let f = field.clone();
    let aug = move |t: f64, z: &[f64], p: &[f64], dz: &mut [f64]| {
        let y: Vec<Dual64> = (0..n).map(|k| Dual64::new(z[k], z[n + k])).collect();
        let pd: Vec<Dual64> = (0..np)
            .map(|j| Dual64::new(p[j], if j == dir { 1.0 } else { 0.0 }))
            .collect();
        let mut out = vec![Dual64::from(0.0); n];
        f.eval(Dual64::from(t), &y, &pd, &mut out);
        for k in 0..n {
            dz[k] = out[k].re;
            dz[n + k] = out[k].eps;
        }
    };
    let mut z0 = y0.to_vec();
    z0.extend((0..n).map(|k| if dir >= np && k == dir - np { 1.0 } else { 0.0 }));
    let prob = Problem::ode(aug, z0, (0.0, t1)).params(p.to_vec());
    let sol = solve(&prob, Tsit5, opts).expect("forward-mode solve");
    let ys: Vec<f64> = sol.ys.chunks(2 * n).flat_map(|z| z[..n].to_vec()).collect();
    let ss: Vec<f64> = sol.ys.chunks(2 * n).flat_map(|z| z[n..].to_vec()).collect();
    let mut gy = vec![0.0; ys.len()];
    l.eval(&sol.ts, &ys, &mut gy);
    gy.iter().zip(&ss).map(|(a, b)| a * b).sum()
}

#[test]
fn neural_ode_gradient_matches_fd_and_forward_duals() {
    use sdeflow::nn::{Activation, Mlp};
    let mlp = Mlp::new(&[2, 16, 2], Activation::Tanh);
    let params = mlp.init_params(11, 1.0);
    let y0 = [0.5, -0.3];
    let t1 = 1.0;
    let opts = Options::default()
        .fixed_step(0.05)
        .save_at(SaveAt::Times(vec![0.3, 0.55, 1.0]));
    let l = |ts: &[f64], ys: &[f64], g: &mut [f64]| {
        let mut v = 0.0;
        for i in 0..ts.len() {
            for k in 0..2 {
                let d = ys[2 * i + k] - 0.1 * (k as f64 + ts[i]);
                v += d * d;
                g[2 * i + k] = 2.0 * d;
            }
        }
        v
    };
    let prob = Problem::ode_field(mlp.clone(), y0.to_vec(), (0.0, t1)).params(params.clone());
    let g = grad(&prob, Tsit5, &opts, &l, DISCRETE_SMALL).expect("grad");
    let loss_at = |p: &[f64]| {
        let prob = Problem::ode_field(mlp.clone(), y0.to_vec(), (0.0, t1)).params(p.to_vec());
        loss_of_solve(&prob, Tsit5, &opts, &l)
    };
    // every 5th parameter and both initial-state components
    let np = params.len();
    let dirs: Vec<usize> = (0..np).step_by(5).chain([np, np + 1]).collect();
    for dir in dirs {
        let adj = if dir < np { g.dp[dir] } else { g.dy0[dir - np] };
        let fwd = forward_mode(&mlp, &params, &y0, t1, dir, &opts, &l);
        assert!(
            (adj - fwd).abs() <= 1e-10 * fwd.abs().max(1e-3),
            "θ{dir}: {adj} vs forward {fwd}"
        );
        if dir < np {
            let h = 1e-6 * params[dir].abs().max(1.0);
            let fd = central_difference(loss_at, &params, dir, h);
            assert!(
                (adj - fd).abs() <= 1e-6 * fd.abs().max(1e-3),
                "θ{dir}: {adj} vs FD {fd}"
            );
        }
    }
}

#[test]
fn continuous_adjoints_converge_as_tolerances_tighten() {
    // reference: the discrete adjoint of Vern7 at rtol 1e-13 (its own error
    // is far below the continuous adjoints' at the tolerances tested)
    let prob = Problem::ode_field(Generic(Lv), Y0.to_vec(), (0.0, 4.0)).params(P.to_vec());
    let at = |tol: f64| {
        Options::default()
            .tol(tol)
            .save_at(SaveAt::Times(data_times()))
    };
    let reference = grad(
        &prob,
        Vern7,
        at(1e-13),
        &loss,
        Adjoint::Discrete { checkpoints: 64 },
    )
    .expect("reference");
    let ref_all: Vec<f64> = reference.dp.iter().chain(&reference.dy0).copied().collect();
    let scale = ref_all.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (name, adjoint) in [
        ("Backsolve", Adjoint::Backsolve),
        ("Interpolating", Adjoint::Interpolating),
    ] {
        let mut errs = Vec::new();
        for tol in [1e-4, 1e-6, 1e-8] {
            let g = grad(&prob, Tsit5, at(tol), &loss, adjoint).expect(name);
            let e =
                g.dp.iter()
                    .chain(&g.dy0)
                    .zip(&ref_all)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max)
                    / scale;
            errs.push(e);
        }
        println!("{name}: relative gradient error at tol 1e-4, 1e-6, 1e-8: {errs:?}");
        assert_converges(name, &errs, 1e-5);
    }
}

#[test]
fn linear_ode_discrete_adjoint_matches_fd_and_forward_duals() {
    // y' = -p y (a linear ODE with the analytic gradient checked in
    // `decay_gradient_is_analytic_for_every_solver`): here the discrete
    // gradient against FD of the same fixed-step solver and forward duals
    let opts = Options::default()
        .fixed_step(0.05)
        .save_at(SaveAt::Times(vec![0.33, 1.0]));
    let l = |_ts: &[f64], ys: &[f64], g: &mut [f64]| {
        g[0] = 1.0;
        g[1] = 2.0 * ys[1];
        ys[0] + ys[1] * ys[1]
    };
    let prob =
        |p: f64, y0: f64| Problem::ode_field(Generic(Decay), vec![y0], (0.0, 1.0)).params(vec![p]);
    let g = grad(&prob(0.7, 2.0), Tsit5, &opts, &l, DISCRETE_SMALL).expect("grad");
    let loss_at = |p: f64, y0: f64| {
        let sol = solve(&prob(p, y0), Tsit5, &opts).expect("solve");
        let mut gy = vec![0.0; 2];
        l(&sol.ts, &sol.ys, &mut gy)
    };
    let h = 1e-6;
    let fd_p = (loss_at(0.7 + h, 2.0) - loss_at(0.7 - h, 2.0)) / (2.0 * h);
    let fd_y = (loss_at(0.7, 2.0 + h) - loss_at(0.7, 2.0 - h)) / (2.0 * h);
    assert!((g.dp[0] - fd_p).abs() < 1e-6 * fd_p.abs());
    assert!((g.dy0[0] - fd_y).abs() < 1e-6 * fd_y.abs());
    let fwd_p = forward_mode(&Decay, &[0.7], &[2.0], 1.0, 0, &opts, &l);
    let fwd_y = forward_mode(&Decay, &[0.7], &[2.0], 1.0, 1, &opts, &l);
    assert!(
        (g.dp[0] - fwd_p).abs() < 1e-10 * fwd_p.abs(),
        "{} vs {fwd_p}",
        g.dp[0]
    );
    assert!(
        (g.dy0[0] - fwd_y).abs() < 1e-10 * fwd_y.abs(),
        "{} vs {fwd_y}",
        g.dy0[0]
    );
}

#[test]
fn a_batched_neural_ode_is_its_samples_solved_one_by_one() {
    use sdeflow::nn::{Activation, BatchedMlp, Mlp};
    // [2, 16, 2]: the thin layers' dot products; [7, 9, 7] with 6 samples:
    // every layer and batch dimension above nalgebra's gemm threshold
    for (sizes, b) in [(&[2usize, 16, 2][..], 4usize), (&[7, 9, 7][..], 6)] {
        let mlp = Mlp::new(sizes, Activation::Tanh);
        let n = mlp.input_dim();
        let params = mlp.init_params(2, 1.0);
        let starts: Vec<f64> = (0..n * b).map(|i| (0.9 * i as f64).cos()).collect();
        let opts = Options::default()
            .fixed_step(0.05)
            .save_at(SaveAt::Times(vec![0.35, 1.0]));
        // the loss of the batch: the sum of the samples' losses
        let l = |_ts: &[f64], ys: &[f64], g: &mut [f64]| {
            let mut v = 0.0;
            for (k, (y, g)) in ys.iter().zip(g.iter_mut()).enumerate() {
                let d = y - 0.01 * k as f64;
                v += d * d;
                *g = 2.0 * d;
            }
            v
        };
        let batched =
            Problem::ode_field(BatchedMlp::new(mlp.clone(), b), starts.clone(), (0.0, 1.0))
                .params(params.clone());
        let sol = solve(&batched, Tsit5, &opts).expect("batched solve");
        let g = grad(&batched, Tsit5, &opts, &l, DISCRETE_SMALL).expect("batched gradient");
        let mut dp = vec![0.0; params.len()];
        for s in 0..b {
            let one =
                Problem::ode_field(mlp.clone(), starts[s * n..(s + 1) * n].to_vec(), (0.0, 1.0))
                    .params(params.clone());
            let alone = solve(&one, Tsit5, &opts).expect("solve");
            for (j, y) in alone.ys.chunks(n).enumerate() {
                let at = &sol.ys[j * n * b + s * n..j * n * b + (s + 1) * n];
                for (a, c) in at.iter().zip(y) {
                    assert!(
                        (a - c).abs() <= 1e-13 * c.abs().max(1.0),
                        "{sizes:?} sample {s}: {a} vs {c}"
                    );
                }
            }
            // the sample's share of the loss: its entries at each save time
            let ls = |ts: &[f64], ys: &[f64], gs: &mut [f64]| {
                let mut v = 0.0;
                for j in 0..ts.len() {
                    for k in 0..n {
                        let d = ys[j * n + k] - 0.01 * (j * n * b + s * n + k) as f64;
                        v += d * d;
                        gs[j * n + k] = 2.0 * d;
                    }
                }
                v
            };
            let gs = grad(&one, Tsit5, &opts, &ls, DISCRETE_SMALL).expect("gradient");
            for (d, x) in dp.iter_mut().zip(&gs.dp) {
                *d += x;
            }
            for (a, c) in g.dy0[s * n..(s + 1) * n].iter().zip(&gs.dy0) {
                assert!(
                    (a - c).abs() <= 1e-11 * c.abs().max(1e-3),
                    "{sizes:?} dy0 of {s}: {a} vs {c}"
                );
            }
        }
        let scale = dp.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (a, c) in g.dp.iter().zip(&dp) {
            assert!(
                (a - c).abs() <= 1e-11 * scale,
                "{sizes:?} dp: {a} vs sum {c}"
            );
        }
    }
}
