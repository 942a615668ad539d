//! Solver-heuristic regularizers (`../shared/reference/regularizers.md`):
//! the gradient of `L + λR` against central finite differences.
//!
//! The discrete gradient holds the accepted step sizes fixed (the
//! controller is not differentiated), so the finite differences are taken
//! on the forward solve's own grid (`Options::grid` with its step times):
//! the same steps at every perturbed parameter, the same discrete quantity.
//! The gradient on that grid is first checked to equal the adaptive one.

use crate::common::{self, LotkaVolterra, SDE2_P, SDE2_Y0};
use sdeflow::adjoint::regularize::{
    Aggregate, ErrorEstimateObserver, Global, Regularized, StepPenalty, StiffnessObserver,
    regularized_gradient,
};
use sdeflow::field::{DiffusionVjp, DriftVjp};
use sdeflow::observe::integrate_observed;
use sdeflow::prelude::*;
use sdeflow::solver::StepVjp;

/// `Σ_k y_k(t1)²`.
fn square_loss(_ts: &[f64], ys: &[f64], g: &mut [f64]) -> f64 {
    let n = ys.len();
    let mut l = 0.0;
    for k in 0..n {
        l += ys[k] * ys[k];
        g[k] = 2.0 * ys[k];
    }
    l
}

fn lv(p: &[f64], y0: &[f64]) -> Problem<Generic<LotkaVolterra>> {
    Problem::ode_field(Generic(LotkaVolterra), y0.to_vec(), (0.0, 2.0)).params(p.to_vec())
}

/// No task loss: the regularizer alone, so that its gradient is checked
/// at full relative accuracy (not swamped by the loss's).
fn zero_loss(_ts: &[f64], _ys: &[f64], _g: &mut [f64]) -> f64 {
    0.0
}

/// The step ends strictly inside the span of the adaptive solve with
/// `opts` (the grid that replays its accepted steps).
fn inner_step_times<F: Drift, G: Diffusion, D: Driver>(
    problem: &Problem<F, G, D>,
    method: impl Method<Problem<F, G, D>>,
    opts: &Options,
) -> Vec<f64> {
    let sol = solve(problem, method, opts.clone().save_at(SaveAt::Steps)).expect("solve");
    sol.ts[1..sol.ts.len() - 1].to_vec()
}

/// Checks `∂(L + λR)/∂(p, y0)` of `make(p, y0)` with `solver` against
/// central differences on the adaptive solve's grid, to 1e-5 relative,
/// for `L` = [`square_loss`] and for `L = 0` (`R` alone); returns the
/// regularized gradient of the adaptive solve with `L` = [`square_loss`].
fn fd_check<F, G, D, S, P>(
    label: &str,
    make: impl Fn(&[f64], &[f64]) -> Problem<F, G, D>,
    (p0, y0): (&[f64], &[f64]),
    solver: S,
    opts: &Options,
    reg: &Global<P>,
) -> Regularized
where
    F: DriftVjp,
    G: DiffusionVjp,
    D: Driver,
    S: StepVjp<Problem<F, G, D>> + Method<Problem<F, G, D>> + Copy,
    P: StepPenalty,
{
    fd_check_loss(
        &format!("{label}, R alone"),
        &make,
        (p0, y0),
        solver,
        opts,
        reg,
        &zero_loss,
    );
    fd_check_loss(label, &make, (p0, y0), solver, opts, reg, &square_loss)
}

/// [`fd_check`] with the task loss `loss`.
fn fd_check_loss<F, G, D, S, P>(
    label: &str,
    make: &impl Fn(&[f64], &[f64]) -> Problem<F, G, D>,
    (p0, y0): (&[f64], &[f64]),
    solver: S,
    opts: &Options,
    reg: &Global<P>,
    loss: &dyn Loss,
) -> Regularized
where
    F: DriftVjp,
    G: DiffusionVjp,
    D: Driver,
    S: StepVjp<Problem<F, G, D>> + Method<Problem<F, G, D>> + Copy,
    P: StepPenalty,
{
    let prob = make(p0, y0);
    let adaptive = regularized_gradient(&prob, &solver, opts, loss, Adjoint::STORE_ALL, reg)
        .expect("adaptive");
    let grid = opts.clone().grid(inner_step_times(&prob, solver, opts));
    let on_grid =
        regularized_gradient(&prob, &solver, &grid, loss, Adjoint::STORE_ALL, reg).expect("grid");
    // the same steps: the same values and gradient
    assert!(
        (adaptive.regularizer - on_grid.regularizer).abs() <= 1e-12 * adaptive.regularizer,
        "{label}: R {} adaptive vs {} on its grid",
        adaptive.regularizer,
        on_grid.regularizer
    );
    common::assert_gradients_agree(&adaptive.gradient, &on_grid.gradient, 1e-10, 1e-6);
    // checkpointed (replays between snapshots): the same gradient
    let few = Adjoint::Discrete { checkpoints: 3 };
    let ck = regularized_gradient(&prob, &solver, opts, loss, few, reg).expect("ckpt");
    common::assert_gradients_agree(&adaptive.gradient, &ck.gradient, 1e-12, 1e-6);
    let total = |p: &[f64], y: &[f64]| {
        let pr = make(p, y);
        regularized_gradient(&pr, &solver, &grid, loss, Adjoint::STORE_ALL, reg)
            .expect("perturbed")
            .gradient
            .loss
    };
    let g = &adaptive.gradient;
    let mut worst = 0.0f64;
    for j in 0..p0.len() + y0.len() {
        let (x, adj) = if j < p0.len() {
            (p0[j], g.dp[j])
        } else {
            (y0[j - p0.len()], g.dy0[j - p0.len()])
        };
        let eps = 1e-5 * x.abs().max(1.0);
        let fd = if j < p0.len() {
            common::central_difference(|q| total(q, y0), p0, j, eps)
        } else {
            common::central_difference(|q| total(p0, q), y0, j - p0.len(), eps)
        };
        let rel = (adj - fd).abs() / fd.abs().max(1e-6);
        worst = worst.max(rel);
        assert!(
            rel < 1e-5,
            "{label} θ{j}: adjoint {adj} vs FD {fd} (rel {rel:e})"
        );
    }
    println!(
        "{label}: L = {:.6}, R = {:.6e} over {} steps; gradient of L + λR matches central FD \
         (max rel {worst:.1e})",
        adaptive.task, adaptive.regularizer, adaptive.gradient.solution.stats.accepted_steps
    );
    adaptive
}

#[test]
fn error_estimate_regularizer_gradient_matches_finite_differences_ode() {
    let opts = Options::default().tol(1e-5).save_at(SaveAt::T1);
    let p = [1.5, 1.0, 3.0, 1.0];
    let y0 = [1.0, 1.0];
    let reg = Global::error_estimate(50.0);
    let r = fd_check("Tsit5 R_E (sum)", lv, (&p, &y0), Tsit5, &opts, &reg);
    // the penalty is not negligible next to the loss: the check sees it
    assert!(
        50.0 * r.regularizer > 1e-3 * r.task,
        "{} vs {}",
        r.regularizer,
        r.task
    );
    // the value is the sum the loop's step reports give
    let mut obs = ErrorEstimateObserver::default();
    integrate_observed(&lv(&p, &y0), &Tsit5, &opts, &mut obs).expect("solve");
    assert!(
        (obs.sum - r.regularizer).abs() <= 1e-12 * obs.sum,
        "{} vs {}",
        obs.sum,
        r.regularizer
    );
    // the mean: the sum over the number of accepted steps
    let mean = reg.aggregate(Aggregate::Mean);
    let m = fd_check("Dopri5 R_E (mean)", lv, (&p, &y0), Dopri5, &opts, &mean);
    let mut obs = ErrorEstimateObserver::default();
    integrate_observed(&lv(&p, &y0), &Dopri5, &opts, &mut obs).expect("solve");
    assert!((obs.mean() - m.regularizer).abs() <= 1e-12 * obs.mean());
}

#[test]
fn error_estimate_regularizer_gradient_matches_finite_differences_sde() {
    // SOSRI's error estimate (δE_D + E_N, sde.md §4) on a fixed Brownian path
    let opts = Options::default().tol(1e-3).seed(7).save_at(SaveAt::T1);
    let ito = |p: &[f64], y: &[f64]| common::sde2(p, y).interpretation(Interpretation::Ito);
    let reg = Global::error_estimate(5.0);
    fd_check("Sosri R_E", ito, (&SDE2_P, &SDE2_Y0), Sosri, &opts, &reg);
    fd_check("Sriw1 R_E", ito, (&SDE2_P, &SDE2_Y0), Sriw1, &opts, &reg);
}

/// SRNODE's stiffness regularizer: its exact discrete gradient through the
/// stage pair's cotangents in the step VJP, against central differences on
/// the solve's grid (Tsit5 stages 6/7, Dopri5 stages 6/7, Vern7 9/10).
#[test]
fn stiffness_regularizer_gradient_matches_finite_differences() {
    let opts = Options::default().tol(1e-5).save_at(SaveAt::T1);
    let p = [1.5, 1.0, 3.0, 1.0];
    let y0 = [1.0, 1.0];
    let reg = Global::stiffness(0.5);
    let r = fd_check("Tsit5 R_S (sum)", lv, (&p, &y0), Tsit5, &opts, &reg);
    // not negligible next to the loss; about |λ_max| h / ρ per step
    assert!(
        0.5 * r.regularizer > 1e-2 * r.task,
        "{} vs {}",
        r.regularizer,
        r.task
    );
    // the value is the sum the observer of a plain solve gives
    let prob = lv(&p, &y0);
    let mut obs = StiffnessObserver::new(&prob, &Tsit5).expect("Tsit5 has a pair");
    let sol = integrate_observed(&prob, &Tsit5, &opts, &mut obs).expect("solve");
    assert_eq!(obs.steps, sol.stats.accepted_steps);
    assert!(
        (obs.sum - r.regularizer).abs() <= 1e-12 * obs.sum,
        "{} vs {}",
        obs.sum,
        r.regularizer
    );
    // the per-step estimate is the Jacobian's size over ρ: at the
    // Lotka–Volterra orbit |λ| is O(1..5), ρ(Tsit5) = 3.5
    let per_step = obs.mean();
    assert!(per_step > 0.05 && per_step < 5.0, "{per_step}");
    let mean = reg.aggregate(Aggregate::Mean);
    fd_check("Dopri5 R_S (mean)", lv, (&p, &y0), Dopri5, &opts, &mean);
    // Vern7's pair (stages 9 and 10, both at t + h) differ by O(h⁷): a
    // tolerance loose enough that their difference is far above rounding
    fd_check(
        "Vern7 R_S",
        lv,
        (&p, &y0),
        Vern7,
        &opts.clone().tol(1e-3),
        &reg,
    );
}

/// On a linear problem `y' = A y` the stiffness estimate of every step is
/// `‖A e‖ / ‖e‖ / ρ` for the difference `e` of the two stage inputs: for a
/// scalar decay `y' = −λ y` exactly `λ / ρ`.
/// `y' = −p₀ y`.
struct Decay;
impl GenericField for Decay {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = -p[0] * y[0];
    }
}

/// The mean per-step stiffness estimate of the solve of `prob` with `solver`.
fn mean_stiffness<S>(prob: &Problem<Generic<Decay>>, solver: S, opts: &Options) -> Option<f64>
where
    S: StepVjp<Problem<Generic<Decay>>>,
{
    let mut obs = StiffnessObserver::new(prob, &solver)?;
    integrate_observed(prob, &solver, opts, &mut obs).expect("solve");
    Some(obs.mean())
}

/// On a scalar decay `y' = −λ y` the stiffness estimate of every step is
/// exactly `λ / ρ`.
#[test]
fn stiffness_estimate_of_a_linear_decay_is_its_rate_over_the_stability_size() {
    let lambda = 7.0;
    let prob = Problem::ode_field(Generic(Decay), vec![1.0], (0.0, 1.0)).params(vec![lambda]);
    let opts = Options::default().tol(1e-6).save_at(SaveAt::T1);
    for (name, rho, mean) in [
        ("Tsit5", 3.5068, mean_stiffness(&prob, Tsit5, &opts)),
        ("Dopri5", 3.3066, mean_stiffness(&prob, Dopri5, &opts)),
    ] {
        let mean = mean.expect("pair");
        assert!(
            (mean - lambda / rho).abs() < 1e-3 * lambda / rho,
            "{name}: {mean} vs {}",
            lambda / rho
        );
    }
    // Bs3 has no two stages at one time
    assert!(mean_stiffness(&prob, Bs3, &opts).is_none());
}

#[test]
fn regularizer_refuses_bad_weights_and_methods_without_an_estimate() {
    let prob = lv(&[1.5, 1.0, 3.0, 1.0], &[1.0, 1.0]);
    let opts = Options::default().save_at(SaveAt::T1);
    for w in [f64::NAN, -1.0, f64::INFINITY] {
        let e = regularized_gradient(
            &prob,
            &Tsit5,
            &opts,
            &square_loss,
            Adjoint::STORE_ALL,
            &Global::error_estimate(w),
        )
        .expect_err("bad weight");
        common::assert_says(&e, &["regularization weight", "λ ≥ 0"]);
    }
    // Euler has no error estimate
    let fixed = opts.clone().fixed_step(0.01);
    let e = regularized_gradient(
        &prob,
        &Euler,
        &fixed,
        &square_loss,
        Adjoint::STORE_ALL,
        &Global::error_estimate(1.0),
    )
    .expect_err("no estimate");
    common::assert_says(&e, &["Euler", "no error estimate"]);
    // Bs3 has an error estimate but no stiffness stage pair
    let e = regularized_gradient(
        &prob,
        &Bs3,
        &opts,
        &square_loss,
        Adjoint::STORE_ALL,
        &Global::stiffness(1.0),
    )
    .expect_err("no pair");
    common::assert_says(&e, &["Bs3", "stiffness", "Tsit5"]);
    // another adjoint than the discrete one
    let e = regularized_gradient(
        &prob,
        &Tsit5,
        &opts,
        &square_loss,
        Adjoint::Backsolve,
        &Global::error_estimate(1.0),
    )
    .expect_err("backsolve");
    common::assert_says(&e, &["Adjoint::Discrete"]);
    // reversible Heun carries state: refused, not silently wrong
    let sde = common::sde2(&SDE2_P, &SDE2_Y0).interpretation(Interpretation::Stratonovich);
    let e = regularized_gradient(
        &sde,
        &ReversibleHeun,
        &Options::default().fixed_step(0.05).save_at(SaveAt::T1),
        &square_loss,
        Adjoint::STORE_ALL,
        &Global::error_estimate(1.0),
    )
    .expect_err("carried state");
    common::assert_says(&e, &["ReversibleHeun", "carries state"]);
}

mod local {
    use super::{inner_step_times, lv, square_loss, zero_loss};
    use crate::common;
    use sdeflow::adjoint::regularize::local::{Local, RegTime, local_gradient};
    use sdeflow::prelude::*;

    const P: [f64; 4] = [1.5, 1.0, 3.0, 1.0];
    const Y0: [f64; 2] = [1.0, 1.0];

    /// The local regularizer's gradient (main solve by the discrete
    /// adjoint through the dense output at t_r, the one step by its step
    /// VJP) against central differences, with the main solve's steps and
    /// the regularized step's dt held fixed (the gradient holds both).
    ///
    /// The heuristic's dt (2.5e-2 here) makes a step whose error estimate
    /// is ~1e-11, so small that its rounding (~1e-6 relative, from the
    /// cancellation in `h Σ (b − b̂) k`) swamps central differences of step
    /// 1e-5; the check takes dt = 0.3 (error estimate ~1e-6), where FD can
    /// resolve it. The heuristic's dt is checked to be the one used.
    #[test]
    fn local_regularizer_gradient_matches_finite_differences() {
        let opts = Options::default()
            .tol(1e-6)
            .save_at(SaveAt::Times(vec![1.0, 2.0]));
        let reg = Local::error_estimate(10.0, RegTime::Unbiased { seed: 11 });
        let prob = lv(&P, &Y0);
        let r = local_gradient(&prob, Tsit5, &opts, &square_loss, Adjoint::STORE_ALL, &reg)
            .expect("local");
        assert!(
            r.t_r > 0.0 && r.t_r < 2.0 && r.dt > 0.0,
            "{} {}",
            r.t_r,
            r.dt
        );
        assert_eq!(r.gradient.solution.ts, vec![1.0, 2.0]);
        // the same draw again, and t_r, dt given: the same result
        let given = Local {
            time: RegTime::At(r.t_r),
            ..reg
        };
        let again = local_gradient(
            &prob,
            Tsit5,
            &opts,
            &square_loss,
            Adjoint::STORE_ALL,
            &given.with_dt(r.dt),
        )
        .expect("given");
        assert_eq!(again.gradient.dp, r.gradient.dp);
        let fixed = given.with_dt(0.3);
        let grid = opts.clone().grid(inner_step_times(&prob, Tsit5, &opts));
        let total = |p: &[f64], y: &[f64], loss: &dyn Loss| {
            local_gradient(&lv(p, y), Tsit5, &grid, loss, Adjoint::STORE_ALL, &fixed)
                .expect("perturbed")
                .gradient
                .loss
        };
        let mut worst = 0.0f64;
        for loss in [&square_loss as &dyn Loss, &zero_loss] {
            let r = local_gradient(&prob, Tsit5, &opts, loss, Adjoint::STORE_ALL, &fixed)
                .expect("dt 0.3");
            let on_grid = local_gradient(&prob, Tsit5, &grid, loss, Adjoint::STORE_ALL, &fixed)
                .expect("grid");
            common::assert_gradients_agree(&r.gradient, &on_grid.gradient, 1e-10, 1e-6);
            assert!(
                10.0 * r.regularizer > 1e-2 * r.task,
                "{} vs {}",
                r.regularizer,
                r.task
            );
            let g = &r.gradient;
            for j in 0..P.len() + Y0.len() {
                let (adj, fd) = if j < P.len() {
                    let e = 1e-5 * P[j].abs().max(1.0);
                    (
                        g.dp[j],
                        common::central_difference(|q| total(q, &Y0, loss), &P, j, e),
                    )
                } else {
                    let k = j - P.len();
                    let e = 1e-5 * Y0[k].abs().max(1.0);
                    (
                        g.dy0[k],
                        common::central_difference(|q| total(&P, q, loss), &Y0, k, e),
                    )
                };
                let rel = (adj - fd).abs() / fd.abs().max(1e-6);
                worst = worst.max(rel);
                assert!(rel < 1e-5, "θ{j}: {adj} vs FD {fd} (rel {rel:e})");
            }
        }
        println!(
            "local R_E at t_r = {:.4} (heuristic dt {:.3e}, R = {:.3e}, {} extra drift evals); \
             with dt = 0.3 the gradient of L + λR and of λR alone match central FD (max rel \
             {worst:.1e})",
            r.t_r, r.dt, r.regularizer, r.drift_evals
        );
    }

    /// Any adjoint for the main solve: the interpolating adjoint's gradient
    /// converges to the discrete one as the tolerance tightens (at 1e-9 they
    /// agree to 1e-5; the regularized step's part is the same step VJP).
    #[test]
    fn local_regularizer_works_with_a_continuous_adjoint() {
        let opts = Options::default().tol(1e-9).save_at(SaveAt::T1);
        let reg = Local::error_estimate(5.0, RegTime::Unbiased { seed: 2 });
        let prob = lv(&P, &Y0);
        let d = local_gradient(&prob, Tsit5, &opts, &square_loss, Adjoint::STORE_ALL, &reg)
            .expect("discrete");
        let c = local_gradient(
            &prob,
            Tsit5,
            &opts,
            &square_loss,
            Adjoint::Interpolating,
            &reg,
        )
        .expect("interpolating");
        assert_eq!(d.t_r, c.t_r);
        common::assert_gradients_agree(&d.gradient, &c.gradient, 1e-5, 1e-3);
    }

    /// The local regularizer of an SDE (SOSRI's error estimate of one step
    /// from z(t_r) on the solve's Brownian path) against central
    /// differences on a fixed seed, with the main solve's steps (t_r among
    /// them) and the regularized step's dt held fixed; and the local
    /// stiffness regularizer of an ODE.
    #[test]
    fn local_regularizer_gradient_matches_finite_differences_sde_and_stiffness() {
        use crate::common::{SDE2_P, SDE2_Y0};
        use sdeflow::adjoint::regularize::StepPenalty;
        let ito = |p: &[f64], y: &[f64]| common::sde2(p, y).interpretation(Interpretation::Ito);
        let sde_opts = Options::default().tol(1e-3).seed(7).save_at(SaveAt::T1);
        let t_r = 0.37;
        let sde_reg = Local::error_estimate(5.0, RegTime::At(t_r)).with_dt(0.2);
        let ode_opts = Options::default().tol(1e-5).save_at(SaveAt::T1);
        let ode_reg = Local::stiffness(0.5, RegTime::At(0.8)).with_dt(0.1);
        fn check<F, G, D, S, P>(
            label: &str,
            make: &impl Fn(&[f64], &[f64]) -> Problem<F, G, D>,
            (p0, y0): (&[f64], &[f64]),
            solver: S,
            opts: &Options,
            reg: &Local<P>,
        ) where
            F: sdeflow::field::DriftVjp,
            G: sdeflow::field::DiffusionVjp,
            D: Driver,
            S: sdeflow::adjoint::Differentiable<F, G, D>
                + sdeflow::solver::StepVjp<Problem<F, G, D>>
                + Method<Problem<F, G, D>>
                + Copy,
            P: StepPenalty,
        {
            let RegTime::At(t_r) = reg.time else {
                unreachable!("a fixed time")
            };
            let prob = make(p0, y0);
            // the main solve's grid (an SDE's: t_r a step end, as
            // local_gradient makes it)
            let with_tr = if prob.noise.is_some() {
                opts.clone().step_to(vec![t_r])
            } else {
                opts.clone()
            };
            let grid = opts.clone().grid(inner_step_times(&prob, solver, &with_tr));
            let total = |p: &[f64], y: &[f64], loss: &dyn Loss| {
                local_gradient(&make(p, y), solver, &grid, loss, Adjoint::STORE_ALL, reg)
                    .expect("perturbed")
                    .gradient
                    .loss
            };
            let mut worst = 0.0f64;
            for loss in [&square_loss as &dyn Loss, &zero_loss] {
                let r = local_gradient(&prob, solver, opts, loss, Adjoint::STORE_ALL, reg)
                    .expect("local");
                let on_grid = local_gradient(&prob, solver, &grid, loss, Adjoint::STORE_ALL, reg)
                    .expect("grid");
                assert_eq!(r.regularizer, on_grid.regularizer, "{label}");
                common::assert_gradients_agree(&r.gradient, &on_grid.gradient, 1e-10, 1e-6);
                assert!(r.regularizer > 0.0, "{label}: R = {}", r.regularizer);
                let g = &r.gradient;
                for j in 0..p0.len() + y0.len() {
                    let (adj, fd) = if j < p0.len() {
                        let e = 1e-5 * p0[j].abs().max(1.0);
                        let fd = common::central_difference(|q| total(q, y0, loss), p0, j, e);
                        (g.dp[j], fd)
                    } else {
                        let k = j - p0.len();
                        let e = 1e-5 * y0[k].abs().max(1.0);
                        let fd = common::central_difference(|q| total(p0, q, loss), y0, k, e);
                        (g.dy0[k], fd)
                    };
                    let rel = (adj - fd).abs() / fd.abs().max(1e-6);
                    worst = worst.max(rel);
                    assert!(rel < 1e-5, "{label} θ{j}: {adj} vs FD {fd} (rel {rel:e})");
                }
                println!(
                    "{label}: L = {:.6}, R = {:.4e}; gradient matches central FD (max rel \
                     {worst:.1e})",
                    r.task, r.regularizer
                );
            }
        }
        check(
            "Sosri local R_E",
            &ito,
            (&SDE2_P, &SDE2_Y0),
            Sosri,
            &sde_opts,
            &sde_reg,
        );
        check(
            "Sriw1 local R_E",
            &ito,
            (&SDE2_P, &SDE2_Y0),
            Sriw1,
            &sde_opts,
            &sde_reg,
        );
        check(
            "Tsit5 local R_S",
            &lv,
            (&P, &Y0),
            Tsit5,
            &ode_opts,
            &ode_reg,
        );
    }

    /// The regularized SDE step reads the main solve's Brownian path: its
    /// increment over [t_r, t_r + dt] is the solution path's.
    #[test]
    fn local_sde_step_is_on_the_solve_path() {
        use crate::common::{SDE2_P, SDE2_Y0};
        use sdeflow::noise::BrownianPath;
        let prob = common::sde2(&SDE2_P, &SDE2_Y0).interpretation(Interpretation::Ito);
        let opts = Options::default().tol(1e-3).seed(7).save_at(SaveAt::T1);
        let reg = Local::error_estimate(1.0, RegTime::Unbiased { seed: 5 });
        let r = local_gradient(&prob, Sosri, &opts, &square_loss, Adjoint::STORE_ALL, &reg)
            .expect("sde local");
        // the heuristic's dt, clipped to the span
        assert!(
            r.dt > 0.0 && r.t_r + r.dt <= 1.0 + 1e-12,
            "{} {}",
            r.t_r,
            r.dt
        );
        // the same draw with t_r given reproduces it, and the user's solution
        // is saved as asked (t_r removed)
        let given = Local {
            time: RegTime::At(r.t_r),
            ..reg
        }
        .with_dt(r.dt);
        let again = local_gradient(
            &prob,
            Sosri,
            &opts,
            &square_loss,
            Adjoint::STORE_ALL,
            &given,
        )
        .expect("given");
        assert_eq!(again.regularizer, r.regularizer);
        assert_eq!(r.gradient.solution.ts, vec![1.0]);
        // the same path: the driver's path at the seed is the solution's
        let mut kept = r.gradient.solution.brownian_path().expect("path");
        let mut fresh = prob.driver.path(prob.tspan, 2, 7).expect("driver path");
        let (mut a, mut b) = ([0.0; 2], [0.0; 2]);
        kept.increment(r.t_r, r.t_r + r.dt, &mut a);
        fresh.increment(r.t_r, r.t_r + r.dt, &mut b);
        assert_eq!(a, b);
        // a stiffness estimate is an ODE step's: refused for an SDE
        let e = local_gradient(
            &prob,
            Sosri,
            &opts,
            &square_loss,
            Adjoint::STORE_ALL,
            &Local::stiffness(1.0, RegTime::At(0.5)),
        )
        .expect_err("sde stiffness");
        common::assert_says(&e, &["stiffness", "SDE"]);
    }

    #[test]
    fn biased_time_is_an_accepted_step_start() {
        let opts = Options::default().tol(1e-5).save_at(SaveAt::T1);
        let prob = lv(&P, &Y0);
        let steps = solve(&prob, Tsit5, opts.clone().save_at(SaveAt::Steps)).expect("solve");
        for seed in 0..4 {
            let reg = Local::error_estimate(1.0, RegTime::Biased { seed });
            let r = local_gradient(&prob, Tsit5, &opts, &square_loss, Adjoint::STORE_ALL, &reg)
                .expect("biased");
            let starts = &steps.ts[..steps.ts.len() - 1];
            assert!(starts.contains(&r.t_r), "{} not a step start", r.t_r);
        }
    }

    #[test]
    fn local_regularizer_refuses_bad_input() {
        let prob = lv(&P, &Y0);
        let opts = Options::default().save_at(SaveAt::T1);
        let run = |reg: Local, o: &Options| {
            local_gradient(&prob, Tsit5, o, &square_loss, Adjoint::STORE_ALL, &reg)
                .expect_err("refused")
        };
        for t in [f64::NAN, -0.5, 2.0, 7.0] {
            let e = run(Local::error_estimate(1.0, RegTime::At(t)), &opts);
            common::assert_says(&e, &["t_r", "span"]);
        }
        let e = run(
            Local::error_estimate(1.0, RegTime::At(0.5)).with_dt(f64::NAN),
            &opts,
        );
        common::assert_says(&e, &["dt", "finite"]);
        let e = run(Local::error_estimate(-2.0, RegTime::At(0.5)), &opts);
        common::assert_says(&e, &["regularization weight"]);
        let e = run(
            Local::error_estimate(1.0, RegTime::At(0.5)),
            &opts.clone().save_at(SaveAt::Steps),
        );
        common::assert_says(&e, &["SaveAt::T1", "SaveAt::Times"]);
        // Bs3 has no stiffness stage pair
        let e = local_gradient(
            &prob,
            Bs3,
            &opts,
            &square_loss,
            Adjoint::STORE_ALL,
            &Local::stiffness(1.0, RegTime::At(0.5)),
        )
        .expect_err("no pair");
        common::assert_says(&e, &["Bs3", "stiffness", "Tsit5"]);
    }
}
