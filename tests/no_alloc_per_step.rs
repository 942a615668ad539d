//! The adaptive loop does not allocate per step: with `SaveAt::T1` the number
//! of heap allocations of a solve does not depend on the number of steps —
//! for the explicit solvers (also under a user's controller and with
//! restarts at discontinuities) and for the native stiff solvers (Newton
//! iterations, Jacobians by finite differences or dual numbers, LU
//! factorisations, BDF's history rescaling and order changes) and for
//! neural fields (`nn::Mlp`, `nn::BatchedMlp`) and every diffusion sampler
//! on the probability-flow ODE — and the SDE step VJPs (the
//! backward step of every SDE solver's discrete adjoint) allocate nothing
//! once their workspace exists.
//! (The allocator counts per thread, so the test harness's own
//! allocations do not enter the counts.)

// A counting global allocator has to implement the unsafe `GlobalAlloc`
// trait; it only forwards to `System`.
#![allow(unsafe_code)]

#[path = "common/counting.rs"]
mod counting;
use counting::count;

use sdeflow::prelude::*;

/// The allocations and the result of solving `problem(10)` and then
/// `problem(100)` by `solver` (the problems are built inside the count).
fn short_and_long<F: Drift, S: Method<Problem<F>> + Copy>(
    problem: impl Fn(f64) -> Problem<F>,
    solver: S,
    opts: &Options,
) -> [(usize, Result<Solution, SolveError>); 2] {
    [10.0, 100.0].map(|t1| count(|| solve(&problem(t1), solver, opts)))
}

#[test]
fn allocations_do_not_grow_with_steps() {
    let lv = |t1: f64| {
        Problem::ode(
            |_t: f64, y: &[f64], p: &[f64], dy: &mut [f64]| {
                dy[0] = p[0] * y[0] - p[1] * y[0] * y[1];
                dy[1] = -p[2] * y[1] + p[3] * y[0] * y[1];
            },
            vec![1.0, 1.0],
            (0.0, t1),
        )
        .params(vec![1.5, 1.0, 3.0, 1.0])
    };
    let (short_p, long_p) = (lv(10.0), lv(1000.0));
    /// A user's controller (the I controller), boxed by `Controller::custom`.
    #[derive(Debug, Clone, PartialEq)]
    struct Mine;
    impl sdeflow::control::StepController for Mine {
        fn reset(&mut self) {}
        fn decide(&mut self, err: f64, k: f64) -> sdeflow::control::StepDecision {
            let factor = if err.is_finite() {
                (0.9 * err.max(1e-10).powf(-1.0 / k)).clamp(0.2, 5.0)
            } else {
                0.2
            };
            sdeflow::control::StepDecision {
                accept: err <= 1.0,
                factor,
            }
        }
    }
    for (name, opts) in [
        ("T1", Options::default().tol(1e-8).save_at(SaveAt::T1)),
        (
            "Times",
            Options::default()
                .tol(1e-8)
                .save_at(SaveAt::Times(vec![5.0, 10.0])),
        ),
        (
            "custom controller, discontinuities",
            Options::default()
                .tol(1e-8)
                .save_at(SaveAt::T1)
                .controller(Controller::custom(Mine))
                .discontinuities(vec![2.5, 5.0]),
        ),
    ] {
        let (a_short, s_short) = count(|| solve(&short_p, Tsit5, &opts).expect("short"));
        let (a_long, s_long) = count(|| solve(&long_p, Tsit5, &opts).expect("long"));
        let steps = (s_short.stats.steps(), s_long.stats.steps());
        println!(
            "{name}: allocations {a_short} ({} steps) vs {a_long} ({} steps)",
            steps.0, steps.1
        );
        assert!(
            steps.1 > 50 * steps.0 / 2,
            "the long solve takes many more steps: {steps:?}"
        );
        assert_eq!(
            a_short, a_long,
            "{name}: allocations grew with the number of steps"
        );
    }
    // the same for Vern7 (interpolation stages) and fixed-step Euler
    let opts = Options::default().tol(1e-8).save_at(SaveAt::T1);
    let (a, _) = count(|| solve(&short_p, Vern7, &opts).expect("vern7"));
    let (b, _) = count(|| solve(&long_p, Vern7, &opts).expect("vern7"));
    assert_eq!(a, b);
    let coarse = Options::default().fixed_step(1e-2).save_at(SaveAt::T1);
    let fine = Options::default().fixed_step(1e-4).save_at(SaveAt::T1);
    let (a, _) = count(|| solve(&short_p, Euler, &coarse).expect("euler"));
    let (b, _) = count(|| solve(&short_p, Euler, &fine).expect("euler"));
    assert_eq!(a, b);
    // neural fields: a network and a batch of it (their scratch grows once
    // per thread, in the warm-up solve)
    {
        use sdeflow::nn::{Activation, BatchedMlp, Mlp};
        let mlp = Mlp::new(&[2, 16, 2], Activation::Tanh);
        let p = mlp.init_params(1, 1.0);
        let one = Problem::ode_field(mlp.clone(), vec![0.5, -0.3], (0.0, 1.0)).params(p.clone());
        let batch =
            Problem::ode_field(BatchedMlp::new(mlp, 8), vec![0.1; 16], (0.0, 1.0)).params(p);
        let fine = Options::default().fixed_step(1e-3).save_at(SaveAt::T1);
        let coarse = Options::default().fixed_step(1e-1).save_at(SaveAt::T1);
        solve(&batch, Tsit5, &coarse).expect("warm-up");
        let (a, _) = count(|| solve(&one, Tsit5, &coarse).expect("mlp"));
        let (b, _) = count(|| solve(&one, Tsit5, &fine).expect("mlp"));
        assert_eq!(a, b, "Mlp: allocations grew with the number of steps");
        let (a, _) = count(|| solve(&batch, Tsit5, &coarse).expect("batch"));
        let (b, _) = count(|| solve(&batch, Tsit5, &fine).expect("batch"));
        assert_eq!(
            a, b,
            "BatchedMlp: allocations grew with the number of steps"
        );
    }

    // the exponential methods on a diagonal L: fixed steps (operators once)
    // and adaptive steps (operators recomputed at every new step size)
    {
        use sdeflow::expint::{Diagonal, Etdrk4, Etdrk32, Semilinear};
        let semi = |t1: f64| {
            let n = |t: f64, y: &[f64], _p: &[f64], out: &mut [f64]| {
                out[0] = t.cos() - y[1] * y[1];
                out[1] = y[0];
            };
            Problem::ode_field(
                Semilinear::new(Diagonal(vec![-1.0, -1e3]), n),
                vec![1.0, 0.5],
                (0.0, t1),
            )
        };
        let coarse = Options::default().fixed_step(1e-1).save_at(SaveAt::T1);
        let fine = Options::default().fixed_step(1e-3).save_at(SaveAt::T1);
        let (a, _) = count(|| solve(&semi(1.0), Etdrk4, &coarse).expect("etdrk4"));
        let (b, _) = count(|| solve(&semi(1.0), Etdrk4, &fine).expect("etdrk4"));
        assert_eq!(a, b, "Etdrk4: allocations grew with the number of steps");
        let [(a, _), (b, r)] = short_and_long(semi, Etdrk32, &opts);
        let steps = r.expect("etdrk32").stats.accepted_steps;
        assert!(steps > 100, "{steps}");
        assert_eq!(a, b, "Etdrk32: allocations grew with the number of steps");
    }

    // the native stiff solvers: a stiff forced problem, ten times longer,
    // with the Jacobian by finite differences (a closure) and by dual numbers
    let stiff = |t1: f64| {
        Problem::ode(
            |t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| {
                dy[0] = -50.0 * (y[0] - t.cos()) + y[1];
                dy[1] = -1e3 * (y[1] - y[0] * y[0]);
            },
            vec![1.0, 1.0],
            (0.0, t1),
        )
    };
    struct Stiff;
    impl GenericField for Stiff {
        fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, y: &[D], _p: &[D], dy: &mut [D]) {
            dy[0] = D::from(-50.0) * (y[0] - t.cos()) + y[1];
            dy[1] = D::from(-1e3) * (y[1] - y[0] * y[0]);
        }
    }
    let dual = |t1: f64| Problem::ode_field(Generic(Stiff), vec![1.0, 1.0], (0.0, t1));
    let opts = Options::default().tol(1e-8).save_at(SaveAt::T1);
    // first dual evaluation on this thread allocates its scratch once
    solve(&dual(1.0), Esdirk34::default(), &opts).expect("warm-up");
    for (name, [short, long]) in [
        (
            "Esdirk34 FD",
            short_and_long(stiff, Esdirk34::default(), &opts),
        ),
        ("TrBdf2 FD", short_and_long(stiff, TrBdf2::default(), &opts)),
        (
            "Esdirk34 duals",
            short_and_long(dual, Esdirk34::default(), &opts),
        ),
        (
            "TrBdf2 duals",
            short_and_long(dual, TrBdf2::default(), &opts),
        ),
        ("Bdf FD", short_and_long(stiff, Bdf::default(), &opts)),
        ("Bdf duals", short_and_long(dual, Bdf::default(), &opts)),
    ] {
        let (a_short, s_short) = (short.0, short.1.expect("short"));
        let (a_long, s_long) = (long.0, long.1.expect("long"));
        let st = (s_short.stats, s_long.stats);
        println!(
            "{name}: allocations {a_short} ({} steps, {} Jacobians, {} LU) vs {a_long} ({} steps, \
             {} Jacobians, {} LU)",
            st.0.steps(),
            st.0.jacobian_evals,
            st.0.lu_factorizations,
            st.1.steps(),
            st.1.jacobian_evals,
            st.1.lu_factorizations
        );
        assert!(st.1.steps() > 5 * st.0.steps(), "{name}: {st:?}");
        assert!(st.1.jacobian_evals > st.0.jacobian_evals, "{name}");
        assert!(st.1.lu_factorizations > st.0.lu_factorizations, "{name}");
        assert_eq!(
            a_short, a_long,
            "{name}: allocations grew with the number of steps"
        );
    }
    // Brownian paths: a tree query never allocates; a Brownian interval
    // allocates only to grow its arenas for new points — a second pass over
    // the same intervals (backwards, as an adjoint) allocates nothing
    use sdeflow::noise::{BrownianInterval, BrownianPath, BrownianTree};
    let n = 5_000;
    let ts: Vec<f64> = (0..=n).map(|k| k as f64 / n as f64).collect();
    let (mut dw, mut h) = ([0.0; 2], [0.0; 2]);
    let mut tree = BrownianTree::new((0.0, 1.0), 2, 1);
    let (a, _) = count(|| {
        for k in 0..n {
            tree.increment_with_levy_area(ts[k], ts[k + 1], &mut dw, &mut h);
        }
    });
    assert_eq!(a, 0, "tree queries allocated");
    let mut w = BrownianInterval::new((0.0, 1.0), 2, 1);
    let (a, _) = count(|| {
        for k in 0..n {
            w.increment_with_levy_area(ts[k], ts[k + 1], &mut dw, &mut h);
        }
    });
    println!("Brownian interval: {a} allocations for {n} new steps");
    assert!(a < 200, "arena growth should be amortised: {a}");
    let (a, _) = count(|| {
        for k in (0..n).rev() {
            w.increment_with_levy_area(ts[k + 1], ts[k], &mut dw, &mut h);
        }
    });
    assert_eq!(a, 0, "re-queries of a Brownian interval allocated");

    // SDE step VJPs: nothing per step once the workspace exists
    for (name, a) in [
        (
            "EulerMaruyama",
            sde_vjp_allocs(EulerMaruyama, Interpretation::Ito),
        ),
        (
            "EulerHeun",
            sde_vjp_allocs(EulerHeun, Interpretation::Stratonovich),
        ),
        (
            "Milstein",
            sde_vjp_allocs(Milstein::default(), Interpretation::Ito),
        ),
        (
            "Milstein::exact()",
            sde_vjp_allocs(Milstein::exact(), Interpretation::Stratonovich),
        ),
        ("Sriw1", sde_vjp_allocs(Sriw1, Interpretation::Ito)),
        ("Sosri", sde_vjp_allocs(Sosri, Interpretation::Ito)),
        ("Sra1", sde_vjp_allocs(Sra1, Interpretation::Ito)),
        ("Sra3", sde_vjp_allocs(Sra3, Interpretation::Ito)),
        (
            "ReversibleHeun",
            sde_vjp_allocs(ReversibleHeun, Interpretation::Stratonovich),
        ),
    ] {
        assert_eq!(a, 0, "{name}: its step VJP allocated");
    }
}

/// The drift and diffusion of [`sde_vjp_allocs`].
#[derive(Clone, Copy)]
struct VjpField;

impl GenericField for VjpField {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, y: &[D], p: &[D], o: &mut [D]) {
        o[0] = p[0] * y[0].sin() + t;
        o[1] = p[1] * y[1] * y[1];
    }
}

/// Allocations of 1000 step VJPs of `solver` (after one to warm up the dual
/// numbers' scratch) on a diagonal-noise SDE (additive for SRA), with an
/// error cotangent where the method has an error estimate.
fn sde_vjp_allocs<S>(solver: S, interp: Interpretation) -> usize
where
    S: sdeflow::solver::StepVjp<Problem<Generic<VjpField>, Generic<VjpField>>>,
{
    use VjpField as F;
    use sdeflow::solver::{Fields, StepAt, StepNoise};
    use sdeflow::solver::{StepBars, VjpArgs};
    let name = solver.name();
    let noise = if name.starts_with("Sra") {
        Noise::Additive
    } else {
        Noise::Diagonal
    };
    let prob = Problem::sde_field(Generic(F), Generic(F), noise, vec![0.3, 0.5], (0.0, 1.0))
        .params(vec![0.7, 0.2])
        .interpretation(interp);
    let fields = Fields::new(&prob);
    let mut work = solver.vjp_workspace(&prob);
    let carried = solver.carried_state(&solver.init(&prob)).to_vec();
    let (mut yb, mut cb, mut pb) = (vec![1.0; 2], vec![0.5; carried.len()], vec![0.0; 2]);
    let has_err = solver.error_order().is_some();
    let (eb, dw, levy) = ([0.3, -0.2], [0.1, -0.05], [0.01, 0.02]);
    let mut stats = Stats::default();
    let mut vjp = || {
        let bars = StepBars {
            y: &mut yb,
            carried: &mut cb,
            err: has_err.then_some(&eb[..]),
            interp: &[],
            p: &mut pb,
        };
        let at = StepAt {
            t: 0.1,
            h: 0.01,
            y: &[0.3, 0.5],
        };
        let noise = StepNoise {
            dw: &dw,
            levy_h: &levy,
            modes: &[],
        };
        let args = VjpArgs {
            fields: &fields,
            at,
            carried: &carried,
            noise: &noise,
            bars,
            stats: &mut stats,
        };
        solver.step_vjp(&mut work, args).expect("step VJP");
    };
    vjp();
    count(|| (0..1000).for_each(|_| vjp())).0
}

/// The noise prediction of data N(0, ¼) per coordinate under the VP-linear
/// schedule, in closed form (no allocation of its own).
fn quarter_normal_noise(t: f64, x: &[f64], _p: &[f64], out: &mut [f64]) {
    use sdeflow::diffusion::{NoiseSchedule, VpLinear};
    let s = VpLinear::default();
    let (a, sg) = (s.alpha(t), s.sigma(t));
    let k = sg / (0.25 * a * a + sg * sg);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = k * v;
    }
}

/// Every diffusion sampler: a probability-flow solve of 10 and of 100 grid
/// steps (4 samples of dimension 2 in one state, `SaveAt::T1`) allocates
/// the same number of times — the samplers' steps (multistep history,
/// corrector state, DPM-Solver-v3's per-element coefficients,
/// DPM-Solver-fast's sub-grid fractions) use their workspace only.
#[test]
fn diffusion_samplers_do_not_allocate_per_step() {
    use sdeflow::diffusion::*;
    type Model = fn(f64, &[f64], &[f64], &mut [f64]);
    let s = VpLinear::default();
    let prob = probability_flow(
        quarter_normal_noise as Model,
        Parametrisation::Noise,
        s,
        vec![0.3, -1.2, 0.8, 0.1, -0.4, 1.5, 2.0, -0.7],
        (1.0, 1e-3),
    );
    let ems = Ems::data_prediction(2, s.lambda(1.0), s.lambda(1e-3), 64).expect("statistics");
    let grid = |n: usize| {
        TimeGrid::UniformLambda
            .options(&s, 1.0, 1e-3, n)
            .expect("grid")
            .save_at(SaveAt::T1)
    };
    fn per_steps<X: Method<DiffusionOde<Model, VpLinear>> + Copy>(
        name: &str,
        prob: &DiffusionOde<Model, VpLinear>,
        runs: [(X, Options); 2],
    ) {
        let [short, long] = runs.map(|(x, opts)| {
            count(|| {
                let sol = solve(prob, x, opts);
                assert!(sol.is_ok(), "{name}: {sol:?}");
            })
            .0
        });
        assert_eq!(
            short, long,
            "{name}: 10 steps {short} allocations, 100 steps {long}"
        );
    }
    macro_rules! check {
        ($($name:literal => $x:expr),* $(,)?) => {
            $(per_steps($name, &prob, [($x, grid(10)), ($x, grid(100))]);)*
        };
    }
    check!(
        "DDIM" => Ddim,
        "PF-Euler" => PfEuler,
        "EDM Heun" => EdmHeun,
        "DPM-Solver-2" => DpmSolver2,
        "DPM-Solver-3" => DpmSolver3,
        "++2S" => DpmSolverPP2S,
        "++2M" => DpmSolverPP2M::default(),
        "++3M" => DpmSolverPP3M::default(),
        "2M" => DpmSolver2M::default(),
        "3M" => DpmSolver3M::default(),
        "DEIS" => Deis::t_ab(3),
        "PNDM" => Pndm,
        "PLMS" => Plms,
        "iPNDM" => IPndm,
        "LMS" => Lms::default(),
        "UniPC" => UniPc::new(3),
        "DPM-Solver-v3" => DpmSolverV3::new(&ems, 3),
    );
    let fast = |nfe: usize| {
        let x = DpmSolverFast::new(nfe, TimeGrid::TimeQuadratic);
        let opts = x.options(&s, 1.0, 1e-3).expect("grid").save_at(SaveAt::T1);
        (x, opts)
    };
    per_steps("DPM-Solver-fast", &prob, [fast(30), fast(300)]);
}
