//! Diffusion samplers (issue #14, part 1): schedules, parametrisations,
//! grids, the closed-form test bed and the measured orders of the samplers
//! on the single-Gaussian problem (whose probability-flow map is exact,
//! `../shared/reference/diffusion.md` §7) and on a Gaussian mixture
//! (against a Vern7 reference at tolerance 1e-12).

use crate::common::{assert_order, fitted_slope};
use sdeflow::diffusion::*;
use sdeflow::ode::{Tsit5, Vern7};
use sdeflow::prelude::*;

const T: f64 = 1.0;
const T_END: f64 = 1e-3;

/// The schedules under test, as trait objects for the table tests.
fn schedules() -> Vec<(&'static str, Box<dyn NoiseSchedule>, f64, f64)> {
    vec![
        ("vp linear", Box::new(VpLinear::default()), 1e-3, 1.0),
        ("vp cosine", Box::new(VpCosine::default()), 1e-3, 0.9946),
        (
            "ddpm discrete",
            Box::new(DiscreteVp::ddpm_linear(1000).expect("valid betas")),
            1e-3,
            1.0,
        ),
        ("ve", Box::new(Ve::default()), 1e-3, 1.0),
        ("edm", Box::new(Edm), 2e-3, 80.0),
        ("rectified flow", Box::new(RectifiedFlow), 1e-3, 0.999),
    ]
}

#[test]
fn lambda_inverse_round_trips() {
    for (name, s, lo, hi) in schedules() {
        let (l_hi, l_lo) = (s.lambda(lo), s.lambda(hi));
        assert!(l_hi > l_lo, "{name}: λ must decrease in t");
        for i in 0..=200 {
            let lam = l_lo + (l_hi - l_lo) * i as f64 / 200.0;
            let back = s.lambda(s.t_of_lambda(lam));
            assert!(
                (back - lam).abs() <= 1e-12 * lam.abs().max(1.0),
                "{name}: λ(t(λ)) = {back} for λ = {lam}"
            );
            let t = lo + (hi - lo) * i as f64 / 200.0;
            let tb = s.t_of_lambda(s.lambda(t));
            assert!(
                (tb - t).abs() <= 1e-11 * t.max(1.0),
                "{name}: t(λ(t)) = {tb} for t = {t}"
            );
        }
    }
}

#[test]
fn schedule_derivatives_match_finite_differences() {
    for (name, s, lo, hi) in schedules() {
        for i in 1..20 {
            let t = lo + (hi - lo) * i as f64 / 20.0;
            let e = 1e-6 * t;
            let fd_la = (s.log_alpha(t + e) - s.log_alpha(t - e)) / (2.0 * e);
            let fd_l = (s.lambda(t + e) - s.lambda(t - e)) / (2.0 * e);
            // the discrete schedule is piecewise linear: its derivative
            // jumps at the knots, so only the segments' slopes compare
            let tol = |v: f64| 1e-6 * v.abs().max(1e-3);
            assert!(
                (s.d_log_alpha(t) - fd_la).abs() <= tol(fd_la),
                "{name} t = {t}: d log α = {} vs {fd_la}",
                s.d_log_alpha(t)
            );
            assert!(
                (s.d_lambda(t) - fd_l).abs() <= tol(fd_l),
                "{name} t = {t}: dλ = {} vs {fd_l}",
                s.d_lambda(t)
            );
        }
    }
}

#[test]
fn schedule_values_from_the_reference() {
    // diffusion.md §1: VP linear λ(1) = −5.025, λ(1e−3) = 4.558
    let s = VpLinear::default();
    assert!((s.lambda(1.0) + 5.025).abs() < 1e-3, "{}", s.lambda(1.0));
    assert!((s.lambda(1e-3) - 4.558).abs() < 1e-3, "{}", s.lambda(1e-3));
    // VP: α² + σ² = 1
    for t in [1e-3, 0.3, 1.0] {
        assert!((s.alpha(t).powi(2) + s.sigma(t).powi(2) - 1.0).abs() < 1e-14);
    }
    // cosine at DPM-Solver's T = 0.9946: λ_T ≈ −4.78 (exponential.md §4)
    let c = VpCosine::default();
    assert!((c.lambda(0.9946) + 4.78).abs() < 0.01, "{}", c.lambda(0.9946));
    // DDPM's betas are score_sde's linspace(β0/N, β1/N, N): log α within
    // 0.034 of the continuous schedule at t = (n + 1)/N (diffusion.md §1)
    let d = DiscreteVp::ddpm_linear(1000).expect("valid betas");
    let worst = (1..=1000)
        .map(|n| {
            let t = n as f64 / 1000.0;
            (d.log_alpha(t) - s.log_alpha(t)).abs()
        })
        .fold(0.0, f64::max);
    assert!(worst < 0.034 && worst > 0.01, "worst |Δ log α| = {worst}");
    // VE and EDM: λ = −log σ
    let ve = Ve::default();
    assert!((ve.sigma(1.0) - 50.0).abs() < 1e-12 && (ve.sigma(0.0) - 0.01).abs() < 1e-15);
    assert!((Edm.lambda(80.0) + 80f64.ln()).abs() < 1e-15);
}

const ALL: [Parametrisation; 5] = [
    Parametrisation::Noise,
    Parametrisation::Data,
    Parametrisation::Score,
    Parametrisation::V,
    Parametrisation::Velocity,
];

#[test]
fn parametrisations_convert_both_ways_and_agree_with_direct_formulas() {
    // single Gaussian N(μ, v): each prediction written out directly
    let (mu, v) = (0.5, 0.09);
    let s = VpLinear::default();
    let direct = |p: Parametrisation, t: f64, x: f64| -> f64 {
        let (a, sg) = (s.alpha(t), s.sigma(t));
        let c = a * a * v + sg * sg;
        let eps = sg * (x - a * mu) / c;
        let x0 = mu + a * v / c * (x - a * mu);
        match p {
            Parametrisation::Noise => eps,
            Parametrisation::Data => x0,
            Parametrisation::Score => -(x - a * mu) / c,
            Parametrisation::V => a * eps - sg * x0,
            // u = α̇ x0 + σ̇ ε with α̇ = −½β α, σ̇ = ½β α²/σ (VP)
            Parametrisation::Velocity => {
                let b = s.beta(t);
                -0.5 * b * a * x0 + 0.5 * b * a * a / sg * eps
            }
        }
    };
    for t in [0.01, 0.2, 0.7, 1.0] {
        for x in [-2.0, 0.3, 1.7] {
            for from in ALL {
                for to in ALL {
                    let mut out = [direct(from, t, x)];
                    from.convert(to, &s, t, &[x], &mut out);
                    let want = direct(to, t, x);
                    assert!(
                        (out[0] - want).abs() <= 1e-10 * want.abs().max(1.0),
                        "{from:?} → {to:?} at t = {t}, x = {x}: {} vs {want}",
                        out[0]
                    );
                }
            }
        }
    }
}

/// diffusion.md §7: μ = 0.5, s = 0.3, VP linear, T = 1, t_end = 1e−3.
const X_T: [f64; 4] = [-2.0, -0.5, 1.0, 2.5];
const X_0: [f64; 4] = [-0.10135899, 0.34889991, 0.79915881, 1.24941771];

#[test]
fn the_flow_map_and_tsit5_on_every_parametrisation_match_the_reference() {
    let s = VpLinear::default();
    let g = DiagonalGaussian::new(vec![0.5], vec![0.09]).expect("valid");
    let mut exact = [0.0; 4];
    g.flow_map(&s, T, T_END, &X_T, &mut exact);
    for i in 0..4 {
        assert!((exact[i] - X_0[i]).abs() < 1e-8, "{exact:?}");
    }
    for param in ALL {
        let g = g.clone();
        let model = move |t: f64, x: &[f64], _p: &[f64], out: &mut [f64]| {
            g.noise(&s, t, x, out);
            Parametrisation::Noise.convert(param, &s, t, x, out);
        };
        let prob = probability_flow(model, param, s, X_T.to_vec(), (T, T_END));
        let sol = solve(&prob, Tsit5, Options::default().tol(1e-11)).expect("solves");
        for i in 0..4 {
            assert!(
                (sol.last()[i] - X_0[i]).abs() < 1e-7,
                "{param:?}: {:?}",
                sol.last()
            );
        }
    }
}

#[test]
fn grids_are_spaced_as_named_and_drive_the_loop() {
    let s = VpLinear::default();
    let n = 8;
    for grid in [
        TimeGrid::UniformT,
        TimeGrid::UniformLambda,
        TimeGrid::TimeQuadratic,
        TimeGrid::Karras { rho: 7.0 },
    ] {
        let ts = grid.times(&s, T, T_END, n).expect("grid");
        assert_eq!(ts.len(), n + 1);
        assert_eq!((ts[0], ts[n]), (T, T_END));
        let key = |t: f64| match grid {
            TimeGrid::UniformT => t,
            TimeGrid::UniformLambda => s.lambda(t),
            TimeGrid::TimeQuadratic => t.sqrt(),
            TimeGrid::Karras { rho } => (s.sigma(t) / s.alpha(t)).powf(1.0 / rho),
        };
        let d0 = key(ts[1]) - key(ts[0]);
        for i in 1..n {
            let d = key(ts[i + 1]) - key(ts[i]);
            assert!((d - d0).abs() < 1e-9 * d0.abs(), "{grid:?}: step {i}");
        }
        // the loop steps exactly through the grid
        let g = DiagonalGaussian::new(vec![0.5], vec![0.09]).expect("valid");
        let prob = probability_flow(
            move |t: f64, x: &[f64], _p: &[f64], out: &mut [f64]| g.noise(&s, t, x, out),
            Parametrisation::Noise,
            s,
            vec![1.0],
            (T, T_END),
        );
        let sol = solve(&prob, Ddim, grid.options(&s, T, T_END, n).expect("grid")).expect("ok");
        assert_eq!(sol.ts.len(), n + 1, "{grid:?}");
        for (a, b) in sol.ts.iter().zip(&ts) {
            assert!((a - b).abs() < 1e-15, "{grid:?}: {:?} vs {ts:?}", sol.ts);
        }
        assert_eq!(sol.stats.drift_evals, n, "one model call per DDIM step");
    }
}

/// A Gaussian in two coordinates, four samples in one state (8 entries).
fn gaussian_problem(
    param: Parametrisation,
) -> (DiagonalGaussian, impl Fn(f64, &[f64], &[f64], &mut [f64]) + Clone, Vec<f64>) {
    let s = VpLinear::default();
    let g = DiagonalGaussian::new(vec![0.5, -1.0], vec![0.09, 2.0]).expect("valid");
    let gm = g.clone();
    let model = move |t: f64, x: &[f64], _p: &[f64], out: &mut [f64]| {
        gm.noise(&s, t, x, out);
        Parametrisation::Noise.convert(param, &s, t, x, out);
    };
    let x_t = vec![-2.0, 1.5, -0.5, -0.3, 1.0, 0.8, 2.5, -1.9];
    (g, model, x_t)
}

/// Max error of `sampler` against the exact map at `steps` steps of `grid`,
/// and the model evaluations.
fn gaussian_error<X>(sampler: X, grid: TimeGrid, steps: usize) -> (f64, usize)
where
    X: Copy + Method<DiffusionOde<Box<dyn Fn(f64, &[f64], &[f64], &mut [f64])>, VpLinear>>,
{
    let s = VpLinear::default();
    let (g, model, x_t) = gaussian_problem(Parametrisation::Noise);
    let boxed: Box<dyn Fn(f64, &[f64], &[f64], &mut [f64])> = Box::new(model);
    let prob = Problem::ode_field(
        ProbabilityFlow::new(boxed, Parametrisation::Noise, s),
        x_t.clone(),
        (T, T_END),
    );
    let opts = grid.options(&s, T, T_END, steps).expect("grid");
    let sol = solve(&prob, sampler, opts).expect("solves");
    let mut exact = vec![0.0; x_t.len()];
    g.flow_map(&s, T, T_END, &x_t, &mut exact);
    let err = sol
        .last()
        .iter()
        .zip(&exact)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    (err, sol.stats.drift_evals)
}

const LEVELS: [usize; 5] = [10, 20, 40, 80, 160];

/// Fits the order over [`LEVELS`] and checks the evaluations per step.
fn measured_order<X>(name: &str, sampler: X, grid: TimeGrid, per_step: usize) -> f64
where
    X: Copy + Method<DiffusionOde<Box<dyn Fn(f64, &[f64], &[f64], &mut [f64])>, VpLinear>>,
{
    let mut hs = Vec::new();
    let mut errs = Vec::new();
    for n in LEVELS {
        let (e, nfe) = gaussian_error(sampler, grid, n);
        assert_eq!(nfe, per_step * n, "{name}: model evaluations at {n} steps");
        hs.push(1.0 / n as f64);
        errs.push(e);
    }
    let slope = fitted_slope(&hs, &errs);
    println!("{name}: order {slope:.3}; errors {errs:?}");
    slope
}

#[test]
fn measured_orders_on_the_single_gaussian() {
    let lam = TimeGrid::UniformLambda;
    // order ± 0.2, as the ODE convergence tests
    let cases: [(&str, f64, f64); 0] = [];
    let _ = cases;
    for (name, slope, order) in [
        ("DDIM", measured_order("DDIM", Ddim, lam, 1), 1.0),
        ("PF-Euler", measured_order("PF-Euler", PfEuler, TimeGrid::UniformT, 1), 1.0),
        ("DPM-Solver-2", measured_order("DPM-Solver-2", DpmSolver2, lam, 2), 2.0),
        ("DPM-Solver-3", measured_order("DPM-Solver-3", DpmSolver3, lam, 3), 3.0),
        ("DPM-Solver++(2S)", measured_order("++2S", DpmSolverPP2S, lam, 2), 2.0),
        ("DPM-Solver++(2M)", measured_order("++2M", DpmSolverPP2M::default(), lam, 1), 2.0),
        ("DPM-Solver++(3M)", measured_order("++3M", DpmSolverPP3M::default(), lam, 1), 3.0),
        (
            "EDM Heun",
            measured_order("EDM Heun", EdmHeun, TimeGrid::Karras { rho: 7.0 }, 2),
            2.0,
        ),
        (
            "++3M as commonly coded",
            measured_order(
                "++3M coded",
                DpmSolverPP3M::default().second_difference(SecondDifference::AsCommonlyCoded),
                lam,
                1,
            ),
            2.0,
        ),
    ] {
        println!("{name}: {slope:.3} (theory {order})");
    }
}

/// A two-component mixture in two dimensions (diffusion.md §7's GMM bed).
fn mixture() -> GaussianMixture {
    GaussianMixture::new(
        &[0.3, 0.7],
        &[1.0, -0.5, -0.8, 0.6],
        &[0.05, 0.2, 0.3, 0.02],
    )
    .expect("valid mixture")
}

/// `log p_t(x)` of the mixture written out independently of the test bed
/// (full Gaussian densities, summed directly).
fn mixture_log_density(s: &VpLinear, t: f64, x: &[f64]) -> f64 {
    let comps = [
        (0.3, [1.0, -0.5], [0.05, 0.2]),
        (0.7, [-0.8, 0.6], [0.3, 0.02]),
    ];
    let (a, sg) = (s.alpha(t), s.sigma(t));
    let p: f64 = comps
        .iter()
        .map(|(w, mu, v)| {
            let mut dens = *w;
            for i in 0..2 {
                let c = a * a * v[i] + sg * sg;
                dens *= (-(x[i] - a * mu[i]).powi(2) / (2.0 * c)).exp()
                    / (2.0 * std::f64::consts::PI * c).sqrt();
            }
            dens
        })
        .sum();
    p.ln()
}

#[test]
fn mixture_noise_prediction_is_minus_sigma_times_the_score() {
    let s = VpLinear::default();
    let gmm = mixture();
    // two samples in one batch
    let x = [0.4, 0.1, -1.2, 0.9];
    for t in [0.05, 0.3, 0.8] {
        let mut eps = [0.0; 4];
        gmm.noise(&s, t, &x, &mut eps);
        for j in 0..2 {
            for i in 0..2 {
                let e = 1e-5;
                let mut xp = [x[2 * j], x[2 * j + 1]];
                let mut xm = xp;
                xp[i] += e;
                xm[i] -= e;
                let score = (mixture_log_density(&s, t, &xp) - mixture_log_density(&s, t, &xm))
                    / (2.0 * e);
                let want = -s.sigma(t) * score;
                assert!(
                    (eps[2 * j + i] - want).abs() < 1e-6 * want.abs().max(1.0),
                    "t = {t}: ε* = {} vs −σ∇log p = {want}",
                    eps[2 * j + i]
                );
            }
        }
        // x0* = (x − σ ε*)/α
        let mut x0 = [0.0; 4];
        gmm.data(&s, t, &x, &mut x0);
        for i in 0..4 {
            let want = (x[i] - s.sigma(t) * eps[i]) / s.alpha(t);
            assert!((x0[i] - want).abs() < 1e-12 * want.abs().max(1.0));
        }
    }
}

type BoxedModel = Box<dyn Fn(f64, &[f64], &[f64], &mut [f64])>;

fn mixture_problem(x_t: Vec<f64>) -> DiffusionOde<BoxedModel, VpLinear> {
    let s = VpLinear::default();
    let gmm = mixture();
    let model: BoxedModel = Box::new(move |t, x, _p, out| gmm.noise(&s, t, x, out));
    Problem::ode_field(
        ProbabilityFlow::new(model, Parametrisation::Noise, s),
        x_t,
        (T, T_END),
    )
}

const MIX_X_T: [f64; 6] = [-1.5, 0.7, 0.2, -0.4, 1.1, 1.9];

#[test]
fn measured_orders_on_the_mixture_against_vern7() {
    let s = VpLinear::default();
    let prob = mixture_problem(MIX_X_T.to_vec());
    let reference = solve(&prob, Vern7, Options::default().tol(1e-13).save_at(SaveAt::T1))
        .expect("reference")
        .last()
        .to_vec();
    let loose = solve(&prob, Vern7, Options::default().tol(1e-11).save_at(SaveAt::T1))
        .expect("reference check");
    let ref_err = reference
        .iter()
        .zip(loose.last())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(ref_err < 1e-9, "reference moves by {ref_err} from tol 1e-11 to 1e-13");
    fn fit<X: Copy + Method<DiffusionOde<BoxedModel, VpLinear>>>(
        name: &str,
        x: X,
        reference: &[f64],
    ) -> f64 {
        let s = VpLinear::default();
        let levels = [10usize, 20, 40, 80];
        let errs: Vec<f64> = levels
            .iter()
            .map(|&n| {
                let prob = mixture_problem(MIX_X_T.to_vec());
                let opts = TimeGrid::UniformLambda
                    .options(&s, T, T_END, n)
                    .expect("grid");
                let sol = solve(&prob, x, opts).expect("solves");
                sol.last()
                    .iter()
                    .zip(reference)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max)
            })
            .collect();
        let hs: Vec<f64> = levels.iter().map(|&n| 1.0 / n as f64).collect();
        let slope = fitted_slope(&hs, &errs);
        println!("mixture {name}: order {slope:.3}; errors {errs:?}");
        slope
    }
    let _ = s;
    fit("DDIM", Ddim, &reference);
    fit("DPM-Solver-2", DpmSolver2, &reference);
    fit("DPM-Solver-3", DpmSolver3, &reference);
    fit("++2S", DpmSolverPP2S, &reference);
    fit("++2M", DpmSolverPP2M::default(), &reference);
    fit("++3M", DpmSolverPP3M::default(), &reference);
    fit(
        "++3M coded",
        DpmSolverPP3M::default().second_difference(SecondDifference::AsCommonlyCoded),
        &reference,
    );
}
