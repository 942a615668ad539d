//! Stiff solvers (diffsol backend): Van der Pol μ = 1000 against the
//! published test-set reference, Robertson's mass conservation, the three
//! Jacobian sources, and backwards integration.

mod common;
use common::max_abs_diff;
use sdeflow::prelude::*;

/// Van der Pol, μ = 1000, in the scaled form of the Bari / Hairer test set
/// (`vdpol`): y1' = y2, y2' = ((1 − y1²) y2 − y1)/ε, ε = 1/μ² = 1e-6,
/// y(0) = (2, 0), t ∈ [0, 2]. Written generically over the scalar so the
/// Jacobian is exact (dual numbers).
struct VanDerPol;
impl GenericField for VanDerPol {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = y[1];
        dy[1] = ((D::from(1.0) - y[0] * y[0]) * y[1] - y[0]) / p[0];
    }
}

/// Reference y(2) of the test set (RADAU5 at 1.1e-18).
const VDP_REF: [f64; 2] = [1.706167732170483, -0.8928097010247975];

fn vdp_closure(t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
    let _ = t;
    dy[0] = y[1];
    dy[1] = ((1.0 - y[0] * y[0]) * y[1] - y[0]) / p[0];
}

fn rel_err(y: &[f64], r: &[f64]) -> f64 {
    y.iter()
        .zip(r)
        .map(|(a, b)| ((a - b) / b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn bdf_matches_the_van_der_pol_reference() {
    let p = Problem::ode(Generic(VanDerPol), vec![2.0, 0.0], (0.0, 2.0)).params(vec![1e-6]);
    let sol = solve(&p, Bdf::default(), Options::default().tol(1e-8)).expect("bdf");
    let e = rel_err(sol.last(), &VDP_REF);
    println!("VdP Bdf (duals): rel err {e:e}, {:?}", sol.stats);
    assert!(e < 1e-5, "relative error {e:e}");
    assert!(sol.stats.jacobian_evals > 0);
}

#[test]
fn jacobian_sources_agree() {
    let base = Problem::ode(vdp_closure, vec![2.0, 0.0], (0.0, 2.0)).params(vec![1e-6]);
    let analytic = base
        .clone()
        .with_jacobian(|_t, y: &[f64], p: &[f64], jac: &mut [f64]| {
            // column-major 2x2
            jac[0] = 0.0;
            jac[1] = (-2.0 * y[0] * y[1] - 1.0) / p[0];
            jac[2] = 1.0;
            jac[3] = (1.0 - y[0] * y[0]) / p[0];
        });
    let opts = Options::default().tol(1e-8);
    let fd = solve(&base, Bdf::default(), &opts).expect("finite differences");
    let an = solve(&analytic, Bdf::default(), &opts).expect("analytic");
    let forced = solve(&analytic, Bdf::finite_differences(), &opts).expect("forced FD");
    for (name, s) in [("fd", &fd), ("analytic", &an), ("forced fd", &forced)] {
        let e = rel_err(s.last(), &VDP_REF);
        println!("VdP Bdf {name}: rel err {e:e}, {:?}", s.stats);
        assert!(e < 1e-5, "{name}: {e:e}");
    }
    // finite differences cost drift evaluations, an analytic Jacobian does not
    assert!(fd.stats.drift_evals > an.stats.drift_evals);
}

#[test]
fn one_step_stiff_solvers_solve_van_der_pol() {
    let p = Problem::ode(Generic(VanDerPol), vec![2.0, 0.0], (0.0, 2.0)).params(vec![1e-6]);
    for (name, sol, tol) in [
        (
            "Esdirk34",
            solve(&p, Esdirk34::default(), Options::default().tol(1e-8)),
            1e-5,
        ),
        (
            "TrBdf2",
            solve(&p, TrBdf2::default(), Options::default().tol(1e-8)),
            1e-4,
        ),
    ] {
        let sol = sol.expect(name);
        let e = rel_err(sol.last(), &VDP_REF);
        println!("VdP {name}: rel err {e:e}, {:?}", sol.stats);
        assert!(e < tol, "{name}: {e:e}");
    }
}

/// Robertson's chemical kinetics to t = 1e5: y1 + y2 + y3 = 1 is conserved.
struct Robertson;
impl GenericField for Robertson {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], _p: &[D], dy: &mut [D]) {
        let (k1, k2, k3) = (D::from(0.04), D::from(3e7), D::from(1e4));
        dy[0] = -k1 * y[0] + k3 * y[1] * y[2];
        dy[1] = k1 * y[0] - k3 * y[1] * y[2] - k2 * y[1] * y[1];
        dy[2] = k2 * y[1] * y[1];
    }
}

#[test]
fn robertson_conserves_mass() {
    let p = Problem::ode(Generic(Robertson), vec![1.0, 0.0, 0.0], (0.0, 1e5));
    for (name, sol) in [
        (
            "Bdf",
            solve(
                &p,
                Bdf::default(),
                Options::default().rtol(1e-8).atol(1e-10),
            ),
        ),
        (
            "Esdirk34",
            solve(
                &p,
                Esdirk34::default(),
                Options::default().rtol(1e-8).atol(1e-10),
            ),
        ),
    ] {
        let sol = sol.expect(name);
        let worst = sol
            .iter()
            .map(|(_, y)| (y.iter().sum::<f64>() - 1.0).abs())
            .fold(0.0, f64::max);
        println!(
            "Robertson {name}: max |Σy − 1| = {worst:e}, y(1e5) = {:?}, {:?}",
            sol.last(),
            sol.stats
        );
        assert!(worst < 1e-8, "{name}: {worst:e}");
        // self-consistency against a much tighter BDF run (the probe's value)
        assert!((sol.last()[0] - 0.017865921143176814).abs() < 1e-6);
    }
}

#[test]
fn stiff_save_policies_and_dense_output() {
    let p = Problem::ode(Generic(VanDerPol), vec![2.0, 0.0], (0.0, 2.0)).params(vec![1e-6]);
    let opts = Options::default().tol(1e-8);
    let times = vec![0.0, 0.5, 1.0, 1.5, 2.0];
    let at = solve(
        &p,
        Bdf::default(),
        opts.clone().save_at(SaveAt::Times(times.clone())),
    )
    .expect("times");
    let dense = solve(&p, Bdf::default(), opts.clone().save_at(SaveAt::Dense)).expect("dense");
    let t1 = solve(&p, Bdf::default(), opts.save_at(SaveAt::T1)).expect("t1");
    assert_eq!(at.ts, times);
    assert_eq!(t1.len(), 1);
    for (i, &t) in times.iter().enumerate() {
        let d = dense.at(t).expect("inside");
        let e = max_abs_diff(&d, at.y(i));
        assert!(e < 1e-5, "t={t}: {e:e}");
    }
    // between steps, dense output is as accurate as the solve: compare with
    // a much tighter solve at many interior times (relative error 1e-5 at
    // tolerance 1e-8, excluding the fast transients where y2 is ~1e3)
    let grid: Vec<f64> = (1..200).map(|i| 0.01 * i as f64 + 0.003).collect();
    let tight = solve(
        &p,
        Bdf::default(),
        Options::default()
            .tol(1e-12)
            .save_at(SaveAt::Times(grid.clone())),
    )
    .expect("tight");
    let mut worst: f64 = 0.0;
    for (i, &t) in grid.iter().enumerate() {
        let d = dense.at(t).expect("inside");
        let r = tight.y(i);
        if r[1].abs() < 10.0 {
            let e = ((d[0] - r[0]) / r[0])
                .abs()
                .max(((d[1] - r[1]) / r[1]).abs());
            worst = worst.max(e);
        }
    }
    println!("VdP Bdf dense output: worst relative error {worst:e}");
    assert!(worst < 1e-5, "dense output relative error {worst:e}");
}

#[test]
fn stiff_solvers_integrate_backwards() {
    // y' = -50 (y - cos t) has y = y_p(t) + C e^{-50 t} with the particular
    // solution y_p = (2500 cos t + 50 sin t)/2501. Backwards from t = 1 to
    // t = 0.9 the e^{-50 t} mode grows by e^5 ≈ 148, so the backward solve
    // must be accurate to be within 1e-6 of the exact value.
    let f = |t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -50.0 * (y[0] - t.cos());
    let yp = |t: f64| (2500.0 * t.cos() + 50.0 * t.sin()) / 2501.0;
    let y1 = 0.3;
    let exact = yp(0.9) + (y1 - yp(1.0)) * (-50.0f64 * (0.9 - 1.0)).exp();
    for (name, sol) in [
        (
            "Bdf",
            solve(
                &Problem::ode(f, vec![y1], (1.0, 0.9)),
                Bdf::default(),
                Options::default().tol(1e-10),
            ),
        ),
        (
            "Esdirk34",
            solve(
                &Problem::ode(f, vec![y1], (1.0, 0.9)),
                Esdirk34::default(),
                Options::default().tol(1e-10),
            ),
        ),
    ] {
        let sol = sol.expect(name);
        assert_eq!(sol.t_last(), Some(0.9), "{name}");
        assert!(
            sol.ts.windows(2).all(|w| w[1] < w[0]),
            "{name}: times must decrease"
        );
        let e = (sol.last()[0] - exact).abs();
        assert!(
            e < 1e-6 * exact.abs().max(1.0),
            "{name}: {} vs exact {exact} ({e:e})",
            sol.last()[0]
        );
    }
}
