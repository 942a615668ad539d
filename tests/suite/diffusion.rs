//! Diffusion samplers (issue #14, part 1): schedules, parametrisations,
//! grids, the closed-form test bed and the measured orders of the samplers
//! on the single-Gaussian problem (whose probability-flow map is exact,
//! `../shared/reference/diffusion.md` §7) and on a Gaussian mixture
//! (against a Vern7 reference at tolerance 1e-12).

use crate::common::fitted_slope;
use sdeflow::diffusion::*;
use sdeflow::ode::{Tsit5, Vern7};
use sdeflow::prelude::*;

/// A model behind a box, so helpers can name the problem type.
pub(crate) type BoxedModel = Box<dyn Fn(f64, &[f64], &[f64], &mut [f64])>;

const T: f64 = 1.0;
pub(crate) const T_END: f64 = 1e-3;

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
    assert!(
        (c.lambda(0.9946) + 4.78).abs() < 0.01,
        "{}",
        c.lambda(0.9946)
    );
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

/// Max error of `sampler` against the exact map of a two-coordinate
/// Gaussian (four samples in one state) from `t0` to `T_END` in `steps`
/// steps of `grid`, and the model evaluations.
pub(crate) fn gaussian_error<X>(sampler: X, t0: f64, grid: TimeGrid, steps: usize) -> (f64, usize)
where
    X: Copy + Method<DiffusionOde<BoxedModel, VpLinear>>,
{
    // a Gaussian in two coordinates, four samples in one state (8 entries)
    let s = VpLinear::default();
    let g = DiagonalGaussian::new(vec![0.5, -1.0], vec![0.09, 2.0]).expect("valid");
    let gm = g.clone();
    let boxed: BoxedModel = Box::new(move |t, x, _p, out| gm.noise(&s, t, x, out));
    let x_t = vec![-2.0, 1.5, -0.5, -0.3, 1.0, 0.8, 2.5, -1.9];
    let prob = Problem::ode_field(
        ProbabilityFlow::new(boxed, Parametrisation::Noise, s),
        x_t.clone(),
        (t0, T_END),
    );
    let opts = grid.options(&s, t0, T_END, steps).expect("grid");
    let sol = solve(&prob, sampler, opts).expect("solves");
    let mut exact = vec![0.0; x_t.len()];
    g.flow_map(&s, t0, T_END, &x_t, &mut exact);
    let err = sol
        .last()
        .iter()
        .zip(&exact)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    (err, sol.stats.drift_evals)
}

/// Step counts of the order fits (five levels).
const LEVELS: [usize; 5] = [20, 40, 80, 160, 320];

/// Fits the order over [`LEVELS`] and checks the evaluations per step.
fn measured_order<X>(name: &str, sampler: X, grid: TimeGrid, per_step: usize) -> f64
where
    X: Copy + Method<DiffusionOde<BoxedModel, VpLinear>>,
{
    let mut hs = Vec::new();
    let mut errs = Vec::new();
    for n in LEVELS {
        let (e, nfe) = gaussian_error(sampler, T, grid, n);
        assert_eq!(nfe, per_step * n, "{name}: model evaluations at {n} steps");
        hs.push(1.0 / n as f64);
        errs.push(e);
    }
    let slope = fitted_slope(&hs, &errs);
    println!("{name}: order {slope:.3}; errors {errs:?}");
    slope
}

/// Orders on the exact single-Gaussian map (2 coordinates with different
/// means and variances, 4 samples), logSNR grid unless noted, 20…320 steps.
/// First- and second-order methods: within 0.15 / 0.2 of theory. The
/// third-order ones are at least 2.8: on a Gaussian the data prediction is
/// affine in `x` with slowly varying coefficients, and ++3M converges
/// faster than its order here (≈ 4, as diffusion.md §7 also measured), so
/// the mixture test below is the one that pins order 3 from above. ++3M
/// with the commonly coded `D2` is order 2 (it is ≤ 2.3 here, against ≈ 4
/// with the derived factor 2).
#[test]
fn measured_orders_on_the_single_gaussian() {
    let lam = TimeGrid::UniformLambda;
    let within = |name: &str, slope: f64, order: f64, tol: f64| {
        assert!(
            (slope - order).abs() <= tol,
            "{name}: measured order {slope:.3}, theory {order}"
        );
    };
    within("DDIM", measured_order("DDIM", Ddim, lam, 1), 1.0, 0.15);
    within(
        "PF-Euler",
        measured_order("PF-Euler", PfEuler, TimeGrid::UniformT, 1),
        1.0,
        0.15,
    );
    within(
        "DPM-Solver-2",
        measured_order("DPM-Solver-2", DpmSolver2, lam, 2),
        2.0,
        0.2,
    );
    within(
        "++2S",
        measured_order("++2S", DpmSolverPP2S, lam, 2),
        2.0,
        0.2,
    );
    within(
        "++2M",
        measured_order("++2M", DpmSolverPP2M::default(), lam, 1),
        2.0,
        0.2,
    );
    within(
        "EDM Heun",
        measured_order("EDM Heun", EdmHeun, TimeGrid::Karras { rho: 7.0 }, 2),
        2.0,
        0.2,
    );
    let dpm3 = measured_order("DPM-Solver-3", DpmSolver3, lam, 3);
    assert!(dpm3 >= 2.8, "DPM-Solver-3: measured order {dpm3:.3}");
    let pp3 = measured_order("++3M", DpmSolverPP3M::default(), lam, 1);
    assert!(pp3 >= 2.8, "++3M: measured order {pp3:.3}");
    within(
        "DPM-Solver(2M)",
        measured_order("2M", DpmSolver2M::default(), lam, 1),
        2.0,
        0.2,
    );
    let n3 = measured_order("3M", DpmSolver3M::default(), lam, 1);
    assert!(n3 >= 2.8, "DPM-Solver(3M): measured order {n3:.3}");
    within(
        "DPM-Solver(3M) as commonly coded",
        measured_order(
            "3M coded",
            DpmSolver3M::default().second_difference(SecondDifference::AsCommonlyCoded),
            lam,
            1,
        ),
        2.0,
        0.3,
    );
    let coded = measured_order(
        "++3M coded",
        DpmSolverPP3M::default().second_difference(SecondDifference::AsCommonlyCoded),
        lam,
        1,
    );
    within("++3M as commonly coded", coded, 2.0, 0.3);
}

/// A two-component mixture in two dimensions (diffusion.md §7's GMM bed).
pub(crate) fn mixture() -> GaussianMixture {
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
                let score =
                    (mixture_log_density(&s, t, &xp) - mixture_log_density(&s, t, &xm)) / (2.0 * e);
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

/// The mixture's probability-flow problem from `x_t` at `T` to `T_END`.
pub(crate) fn mixture_problem(x_t: Vec<f64>) -> DiffusionOde<BoxedModel, VpLinear> {
    let s = VpLinear::default();
    let gmm = mixture();
    let model: BoxedModel = Box::new(move |t, x, _p, out| gmm.noise(&s, t, x, out));
    Problem::ode_field(
        ProbabilityFlow::new(model, Parametrisation::Noise, s),
        x_t,
        (T, T_END),
    )
}

/// Three initial noises of the mixture tests.
pub(crate) const MIX_X_T: [f64; 6] = [-1.5, 0.7, 0.2, -0.4, 1.1, 1.9];

#[test]
fn measured_orders_on_the_mixture_against_vern7() {
    let s = VpLinear::default();
    let prob = mixture_problem(MIX_X_T.to_vec());
    let reference = solve(
        &prob,
        Vern7,
        Options::default().tol(1e-13).save_at(SaveAt::T1),
    )
    .expect("reference")
    .last()
    .to_vec();
    let loose = solve(
        &prob,
        Vern7,
        Options::default().tol(1e-11).save_at(SaveAt::T1),
    )
    .expect("reference check");
    let ref_err = reference
        .iter()
        .zip(loose.last())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        ref_err < 1e-9,
        "reference moves by {ref_err} from tol 1e-11 to 1e-13"
    );
    fn fit<X: Copy + Method<DiffusionOde<BoxedModel, VpLinear>>>(
        name: &str,
        x: X,
        reference: &[f64],
    ) -> f64 {
        fit_over(name, x, reference, &[20, 40, 80, 160])
    }
    fn fit_over<X: Copy + Method<DiffusionOde<BoxedModel, VpLinear>>>(
        name: &str,
        x: X,
        reference: &[f64],
        levels: &[usize],
    ) -> f64 {
        let s = VpLinear::default();
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
        println!("mixture {name}: order {slope:.3} over {levels:?}; errors {errs:?}");
        slope
    }
    let _ = s;
    for (name, slope, order) in [
        ("DDIM", fit("DDIM", Ddim, &reference), 1.0),
        (
            "DPM-Solver-2",
            fit("DPM-Solver-2", DpmSolver2, &reference),
            2.0,
        ),
        (
            "DPM-Solver-3",
            fit("DPM-Solver-3", DpmSolver3, &reference),
            3.0,
        ),
        ("++2S", fit("++2S", DpmSolverPP2S, &reference), 2.0),
        (
            "++2M",
            fit("++2M", DpmSolverPP2M::default(), &reference),
            2.0,
        ),
        (
            "++3M",
            fit("++3M", DpmSolverPP3M::default(), &reference),
            3.0,
        ),
        // the noise-form multistep pair reaches its order later on this
        // mixture (local slopes 20→40→80→160→320: 3M 2.33, 2.79, 2.97,
        // 3.01; 2M 1.58, 1.78, 1.90, 1.95): fitted one level further
        (
            "2M",
            fit_over(
                "2M",
                DpmSolver2M::default(),
                &reference,
                &[40, 80, 160, 320],
            ),
            2.0,
        ),
        (
            "3M",
            fit_over(
                "3M",
                DpmSolver3M::default(),
                &reference,
                &[40, 80, 160, 320],
            ),
            3.0,
        ),
        (
            "++3M coded",
            fit(
                "++3M coded",
                DpmSolverPP3M::default().second_difference(SecondDifference::AsCommonlyCoded),
                &reference,
            ),
            2.0,
        ),
    ] {
        // order 1 and 2 within 0.3; order 3 at least 2.8 (pre-asymptotic
        // fits run high for DPM-Solver-3: 4.0 over 10…80 steps); the
        // commonly coded ++3M is only printed here (pinned to 2 on the
        // Gaussian above)
        if name == "++3M coded" {
            continue;
        }
        if order == 3.0 {
            assert!(
                slope >= 2.8,
                "mixture {name}: measured order {slope:.3}, theory 3"
            );
        } else {
            assert!(
                (slope - order).abs() <= 0.3,
                "mixture {name}: measured order {slope:.3}, theory {order}"
            );
        }
    }
}

/// dpm_solver's multistep loop written out (warm-up orders 1, 2, …;
/// `lower_order_final`: order `min(k, steps + 1 − step)` when `steps < 10`)
/// in its `algorithm_type="dpmsolver++"` (data) or `"dpmsolver"` (noise,
/// `noise = true`) update, with the prediction of N(0.5, 0.09) in closed
/// form and the derived `D2` (factor 2).
fn hand_loop(
    order: usize,
    steps: usize,
    lower_final: bool,
    ts: &[f64],
    x_t: f64,
    noise: bool,
) -> f64 {
    let s = VpLinear::default();
    let x0 = |t: f64, x: f64| {
        let (a, sg) = (s.alpha(t), s.sigma(t));
        0.5 + a * 0.09 / (a * a * 0.09 + sg * sg) * (x - a * 0.5)
    };
    let predict = |t: f64, x: f64| {
        if noise {
            (x - s.alpha(t) * x0(t, x)) / s.sigma(t)
        } else {
            x0(t, x)
        }
    };
    let mut x = x_t;
    let mut prev: Vec<(f64, f64)> = Vec::new(); // (m, λ), most recent last
    for step in 1..=steps {
        let k = if step < order {
            step
        } else if lower_final && steps < 10 {
            order.min(steps + 1 - step)
        } else {
            order
        };
        let (sp, t) = (ts[step - 1], ts[step]);
        let (ls, lt) = (s.lambda(sp), s.lambda(t));
        let h = lt - ls;
        let m0 = predict(sp, x);
        // x_t = base + c1 m0 + c2 D1 + c3 D2
        let (base, c1, c2, c3) = if noise {
            let phi1 = h.exp_m1();
            let phi2 = phi1 / h - 1.0;
            let phi3 = phi2 / h - 0.5;
            let st = s.sigma(t);
            (
                s.alpha(t) / s.alpha(sp) * x,
                -st * phi1,
                -st * phi2,
                -st * phi3,
            )
        } else {
            let phi1 = (-h).exp_m1();
            let phi2 = phi1 / h + 1.0;
            let phi3 = phi2 / h - 0.5;
            let at = s.alpha(t);
            (
                s.sigma(t) / s.sigma(sp) * x,
                -at * phi1,
                at * phi2,
                -at * phi3,
            )
        };
        x = match k {
            1 => base + c1 * m0,
            2 => {
                let (m1, l1) = prev[prev.len() - 1];
                let r0 = (ls - l1) / h;
                base + c1 * (m0 + (m0 - m1) / (2.0 * r0))
            }
            _ => {
                let (m1, l1) = prev[prev.len() - 1];
                let (m2, l2) = prev[prev.len() - 2];
                let (r0, r1) = ((ls - l1) / h, (l1 - l2) / h);
                let (d10, d11) = ((m0 - m1) / r0, (m1 - m2) / r1);
                let d1 = d10 + r0 / (r0 + r1) * (d10 - d11);
                let d2 = 2.0 * (d10 - d11) / (r0 + r1);
                base + c1 * m0 + c2 * d1 + c3 * d2
            }
        };
        prev.push((m0, ls));
    }
    x
}

#[test]
fn multistep_warm_up_and_lower_order_final_match_the_hand_written_loop() {
    let s = VpLinear::default();
    let g = DiagonalGaussian::new(vec![0.5], vec![0.09]).expect("valid");
    let prob = probability_flow(
        move |t: f64, x: &[f64], _p: &[f64], out: &mut [f64]| g.noise(&s, t, x, out),
        Parametrisation::Noise,
        s,
        vec![1.3],
        (T, T_END),
    );
    for steps in [1, 2, 3, 5, 9, 12] {
        let ts = TimeGrid::UniformLambda
            .times(&s, T, T_END, steps)
            .expect("grid");
        let opts = TimeGrid::UniformLambda
            .options(&s, T, T_END, steps)
            .expect("grid");
        for lower in [false, true] {
            let last = |sol: Result<Solution, SolveError>| sol.expect("solves").last()[0];
            let run = |pp2: DpmSolverPP2M, pp3: DpmSolverPP3M, n2: DpmSolver2M, n3: DpmSolver3M| {
                [
                    last(solve(&prob, pp2, opts.clone())),
                    last(solve(&prob, pp3, opts.clone())),
                    last(solve(&prob, n2, opts.clone())),
                    last(solve(&prob, n3, opts.clone())),
                ]
            };
            let got = if lower {
                run(
                    DpmSolverPP2M::default().lower_order_final(steps),
                    DpmSolverPP3M::default().lower_order_final(steps),
                    DpmSolver2M::default().lower_order_final(steps),
                    DpmSolver3M::default().lower_order_final(steps),
                )
            } else {
                run(
                    DpmSolverPP2M::default(),
                    DpmSolverPP3M::default(),
                    DpmSolver2M::default(),
                    DpmSolver3M::default(),
                )
            };
            let want = [
                hand_loop(2, steps, lower, &ts, 1.3, false),
                hand_loop(3, steps, lower, &ts, 1.3, false),
                hand_loop(2, steps, lower, &ts, 1.3, true),
                hand_loop(3, steps, lower, &ts, 1.3, true),
            ];
            for (name, (g, w)) in ["++2M", "++3M", "2M", "3M"]
                .iter()
                .zip(got.iter().zip(&want))
            {
                assert!(
                    (g - w).abs() < 1e-12,
                    "{steps} steps, lower_order_final {lower}: {name} {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn a_batch_in_one_state_equals_its_samples_solved_alone() {
    let s = VpLinear::default();
    let opts = TimeGrid::UniformLambda
        .options(&s, T, T_END, 12)
        .expect("grid");
    let batch = solve(
        &mixture_problem(MIX_X_T.to_vec()),
        DpmSolverPP3M::default(),
        opts.clone(),
    )
    .expect("batch");
    for j in 0..3 {
        let one = solve(
            &mixture_problem(MIX_X_T[2 * j..2 * j + 2].to_vec()),
            DpmSolverPP3M::default(),
            opts.clone(),
        )
        .expect("one sample");
        assert_eq!(one.last(), &batch.last()[2 * j..2 * j + 2], "sample {j}");
    }
    // one model call per step for the whole batch
    assert_eq!(batch.stats.drift_evals, 12);
}

#[test]
fn edm_heun_steps_to_zero_noise_with_a_final_euler_step() {
    // data N(0.5, 0.09) under EDM (α = 1, σ = t): exact map to σ = 0 is
    // x_0 = μ + sqrt(v/(v + T²))(x_T − μ)
    let (mu, v, big_t) = (0.5, 0.09, 80.0);
    let data = move |t: f64, x: &[f64], _p: &[f64], out: &mut [f64]| {
        for (o, &xv) in out.iter_mut().zip(x) {
            *o = mu + v / (v + t * t) * (xv - mu);
        }
    };
    let x_t = 40.0;
    let exact = mu + (v / (v + big_t * big_t)).sqrt() * (x_t - mu);
    let mut errs = Vec::new();
    for n in [10, 20, 40, 80] {
        let prob = probability_flow(data, Parametrisation::Data, Edm, vec![x_t], (big_t, 0.0));
        let opts = TimeGrid::Karras { rho: 7.0 }
            .options(&Edm, big_t, 0.0, n)
            .expect("grid");
        let sol = solve(&prob, EdmHeun, opts).expect("solves");
        assert_eq!(sol.stats.drift_evals, 2 * n - 1, "2N − 1 evaluations");
        errs.push((sol.last()[0] - exact).abs());
    }
    println!("EDM Heun to σ = 0: errors {errs:?}");
    assert!(errs.windows(2).all(|w| w[1] < w[0]), "{errs:?}");
    assert!(errs[3] < 1e-3, "{errs:?}");
}

#[test]
fn bad_input_is_a_typed_error() {
    let s = VpLinear::default();
    let g = DiagonalGaussian::new(vec![0.5], vec![0.09]).expect("valid");
    let model = move |t: f64, x: &[f64], _p: &[f64], out: &mut [f64]| g.noise(&s, t, x, out);
    let grid = TimeGrid::UniformLambda
        .options(&s, T, T_END, 5)
        .expect("grid");
    let invalid = |r: Result<Solution, SolveError>, what: &str| match r {
        Err(SolveError::InvalidInput { .. }) => {}
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    };
    // a span from data to noise
    let back = probability_flow(
        model.clone(),
        Parametrisation::Noise,
        s,
        vec![1.0],
        (T_END, T),
    );
    invalid(
        solve(&back, Ddim, Options::default().grid(vec![0.5])),
        "reversed span",
    );
    // t_end = 0 on a VP schedule (λ infinite)
    let zero = probability_flow(
        model.clone(),
        Parametrisation::Noise,
        s,
        vec![1.0],
        (T, 0.0),
    );
    invalid(
        solve(&zero, DpmSolver2, Options::default().grid(vec![0.5])),
        "t_end = 0",
    );
    // a time past the schedule's range
    let past = probability_flow(
        model.clone(),
        Parametrisation::Noise,
        s,
        vec![1.0],
        (1.5, T_END),
    );
    invalid(
        solve(&past, Ddim, Options::default().grid(vec![0.5])),
        "T > 1",
    );
    // no grid and no step size: the sampler has no error estimate
    let prob = probability_flow(
        model.clone(),
        Parametrisation::Noise,
        s,
        vec![1.0],
        (T, T_END),
    );
    assert!(matches!(
        solve(&prob, DpmSolverPP2M::default(), Options::default()),
        Err(SolveError::NeedsStepSize { .. })
    ));
    invalid(
        solve(
            &prob,
            DpmSolverPP3M::default().lower_order_final(0),
            grid.clone(),
        ),
        "lower_order_final(0)",
    );
    // a non-finite initial noise
    let nan = probability_flow(
        model.clone(),
        Parametrisation::Noise,
        s,
        vec![f64::NAN],
        (T, T_END),
    );
    invalid(solve(&nan, Ddim, grid.clone()), "NaN x_T");
    // a model that returns NaN mid-solve ends with an error, not a panic
    let bad = probability_flow(
        |t: f64, _x: &[f64], _p: &[f64], out: &mut [f64]| {
            out[0] = if t < 0.5 { f64::NAN } else { 0.1 };
        },
        Parametrisation::Noise,
        s,
        vec![1.0],
        (T, T_END),
    );
    assert!(solve(&bad, DpmSolverPP2M::default(), grid.clone()).is_err());
    // grids
    assert!(TimeGrid::UniformT.times(&s, T, T_END, 0).is_err());
    assert!(
        TimeGrid::Karras { rho: -1.0 }
            .times(&s, T, T_END, 4)
            .is_err()
    );
    assert!(TimeGrid::UniformT.times(&s, T_END, T, 4).is_err());
    assert!(TimeGrid::UniformLambda.times(&s, T, 0.0, 4).is_err());
    assert!(TimeGrid::UniformT.times(&s, T, f64::NAN, 4).is_err());
    // schedules and the test bed
    assert!(DiscreteVp::from_betas(&[0.1, 1.5]).is_err());
    assert!(DiscreteVp::from_betas(&[0.1]).is_err());
    assert!(VpLinear::new(20.0, 0.1).is_err());
    assert!(VpCosine::new(0.008, 1.0).is_err());
    assert!(Ve::new(f64::NAN, 50.0).is_err());
    assert!(matches!(
        GaussianMixture::new(&[0.5, 0.5], &[1.0, 2.0, 3.0], &[1.0, 1.0, 1.0]),
        Err(SolveError::DimensionMismatch { .. })
    ));
    assert!(GaussianMixture::new(&[1.0], &[0.0, 0.0], &[1.0, -1.0]).is_err());
    assert!(DiagonalGaussian::new(vec![0.0], vec![0.0]).is_err());
}
