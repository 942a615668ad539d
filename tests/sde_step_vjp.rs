//! The SDE step-VJP protocol checked against finite differences of each
//! method's own step: for Euler–Maruyama, Euler–Heun, Milstein
//! (derivative-free and exact, Itô and Stratonovich), SRIW1, SOSRI, SRA1,
//! SRA3 and reversible Heun, under every noise type each takes, random
//! states, parameters, step sizes, increments (and Lévy areas), and random
//! cotangents of the new state, of the error estimate (where the method has
//! one) and of the carried state (reversible Heun's `(ŷ, μ, σ)`), the VJP's
//! `(ȳ, c̄, p̄)` equals central differences of
//! `ȳ_new · y_new + ē · err + c̄_new · c_new` over one step with respect to
//! `y`, `c` and `p`. Methods without an error estimate refuse an error
//! cotangent with a typed error.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use sdeflow::prelude::*;
use sdeflow::sde::{SdeStepBars, SdeStepVjp};
use sdeflow::solver::{Fields, Increment, StepAt, StepNoise, StepOut, StepStatus};

/// A nonlinear, time-dependent two-state drift (parameters `p[0]`, `p[1]`).
#[derive(Clone, Copy)]
struct Drift;
impl GenericField for Drift {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = p[0] * y[1] - y[0] * y[0] * y[0] * 0.1 + t.sin() * 0.2;
        dy[1] = -p[1] * y[0] + (y[1] * 0.5).sin();
    }
}

/// A nonlinear diffusion (parameters `p[2]`, `p[3]`) in the shape of each
/// noise type: `g_i(y_i)` for diagonal noise, `g(t)` for additive noise,
/// `2 × 2` for general noise.
#[derive(Clone, Copy)]
struct Diffusion(Noise);
impl GenericField for Diffusion {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, y: &[D], p: &[D], g: &mut [D]) {
        match self.0 {
            Noise::Scalar => {
                g[0] = p[2] * y[0].sin() + y[1] * 0.3;
                g[1] = p[3] * y[0] * y[1] + t.cos() * 0.2;
            }
            Noise::Diagonal => {
                g[0] = p[2] * y[0].sin() + t * 0.1 + 0.5;
                g[1] = p[3] * y[1] * y[1] * 0.3 + (t * 2.0).cos();
            }
            Noise::Additive => {
                g[0] = p[2] * (t + 1.0);
                g[1] = p[3] * t.cos() + p[2] * p[3];
            }
            Noise::General(_) => {
                g[0] = p[2] * y[0];
                g[1] = p[3] * y[1].sin();
                g[2] = p[2] * y[1].cos() * t;
                g[3] = p[3] + y[0] * y[1] * 0.2;
            }
        }
    }
}

type Prob = Problem<Generic<Drift>, Generic<Diffusion>>;

fn problem(noise: Noise, interp: Interpretation, y: &[f64], p: &[f64]) -> Prob {
    Problem::sde(
        Generic(Drift),
        Generic(Diffusion(noise)),
        noise,
        y.to_vec(),
        (0.0, 1.0),
    )
    .params(p.to_vec())
    .interpretation(interp)
}

/// One random step: where it starts, its increments, and the cotangents.
#[derive(Debug, Clone)]
struct Case {
    t: f64,
    h: f64,
    y: Vec<f64>,
    p: Vec<f64>,
    /// Standard normals and Lévy-area draws, scaled by the step below.
    z: Vec<f64>,
    levy: Vec<f64>,
    /// A carried state for reversible Heun (`ŷ − y`, `μ`, `σ`: 2 + 2 + 4).
    carried: Vec<f64>,
    yb: Vec<f64>,
    eb: Vec<f64>,
    cb: Vec<f64>,
}

impl Case {
    fn dw(&self, noise: Noise) -> Vec<f64> {
        let m = noise.brownian_dim(2);
        self.z[..m].iter().map(|z| z * self.h.sqrt()).collect()
    }
    fn levy_h(&self, noise: Noise) -> Vec<f64> {
        let m = noise.brownian_dim(2);
        self.levy[..m].iter().map(|z| z * self.h.sqrt()).collect()
    }
    /// Reversible Heun's carried state `(ŷ, μ, σ)` near `y`.
    fn carried(&self, noise: Noise) -> Vec<f64> {
        let len = 4 + noise.diffusion_len(2);
        let mut c = self.carried[..len].to_vec();
        c[0] += self.y[0];
        c[1] += self.y[1];
        c
    }
}

/// Sets the carried state in a solver's cache (nothing for methods that
/// carry none).
type SetCarried<S> = fn(&S, &mut <S as Solver<Prob>>::Cache, &[f64]);

/// `(y_new, err, c_new)` of one step of `solver` from `(t, y, c)` with
/// parameters `p`.
fn one_step<S: SdeStepVjp + Solver<Prob>>(
    solver: &S,
    set: SetCarried<S>,
    prob: &Prob,
    (t, h): (f64, f64),
    noise: &StepNoise<'_>,
    carried: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let fields = Fields::new(prob);
    let mut cache = solver.init(prob);
    let mut stats = Stats::default();
    let y = &prob.y0;
    let mut f0 = vec![0.0; 2];
    let mut g0 = vec![0.0; prob.noise.expect("an SDE").diffusion_len(2)];
    fields.f(t, y, &mut f0, &mut stats);
    fields.g(t, y, &mut g0, &mut stats);
    solver.start(&mut cache, &f0, &g0);
    set(solver, &mut cache, carried);
    let (mut y_new, mut err) = (vec![0.0; 2], vec![0.0; 2]);
    let out = StepOut {
        y_new: &mut y_new,
        err: &mut err,
    };
    let status = solver.step(
        &mut cache,
        &fields,
        StepAt { t, h, y },
        noise,
        out,
        &mut stats,
    );
    assert_eq!(status, StepStatus::Taken);
    solver.accept(&mut cache);
    (y_new, err, solver.carried_state(&cache).to_vec())
}

/// The largest relative difference between the step VJP of `solver` and
/// central differences of its step, for `noise` in `interp`, with an error
/// cotangent when `with_err`.
fn check<S: SdeStepVjp + Solver<Prob>>(
    solver: S,
    set: SetCarried<S>,
    (noise, interp): (Noise, Interpretation),
    with_err: bool,
    case: &Case,
) -> f64 {
    let (t, h, y, p) = (case.t, case.h, &case.y, &case.p);
    let (dw, levy_h) = (case.dw(noise), case.levy_h(noise));
    let step_noise = StepNoise {
        dw: &dw,
        levy_h: if S::INCREMENT == Increment::DwLevyArea {
            &levy_h
        } else {
            &[]
        },
    };
    let prob = problem(noise, interp, y, p);
    // the carried state: reversible Heun's, from the case; else none
    let c_len = solver.carried_state(&solver.init(&prob)).len();
    let carried = if c_len == 0 {
        vec![]
    } else {
        case.carried(noise)
    };
    let cb = &case.cb[..c_len];
    let eb = with_err.then_some(&case.eb[..]);
    let (mut y_bar, mut c_bar, mut p_bar) = (case.yb.clone(), cb.to_vec(), vec![0.0; 4]);
    let mut work = solver.vjp_workspace(&prob);
    solver
        .step_vjp(
            &mut work,
            &Fields::new(&prob),
            StepAt { t, h, y },
            &carried,
            &step_noise,
            SdeStepBars {
                y: &mut y_bar,
                carried: &mut c_bar,
                err: eb,
                p: &mut p_bar,
            },
            &mut Stats::default(),
        )
        .expect("step VJP");
    let l = |y: &[f64], p: &[f64], c: &[f64]| {
        let prob = problem(noise, interp, y, p);
        let (yn, e, cn) = one_step(&solver, set, &prob, (t, h), &step_noise, c);
        let mut v: f64 = (0..2).map(|k| case.yb[k] * yn[k]).sum();
        if let Some(eb) = eb {
            v += (0..2).map(|k| eb[k] * e[k]).sum::<f64>();
        }
        v + cn.iter().zip(cb).map(|(a, b)| a * b).sum::<f64>()
    };
    let eps = 1e-6;
    let mut worst = 0.0f64;
    for j in 0..2 + 4 + c_len {
        let (mut yp, mut ym, mut pp, mut pm) = (y.clone(), y.clone(), p.clone(), p.clone());
        let (mut cp, mut cm) = (carried.clone(), carried.clone());
        let adj = if j < 2 {
            yp[j] += eps;
            ym[j] -= eps;
            y_bar[j]
        } else if j < 6 {
            pp[j - 2] += eps;
            pm[j - 2] -= eps;
            p_bar[j - 2]
        } else {
            cp[j - 6] += eps;
            cm[j - 6] -= eps;
            c_bar[j - 6]
        };
        let fd = (l(&yp, &pp, &cp) - l(&ym, &pm, &cm)) / (2.0 * eps);
        worst = worst.max((adj - fd).abs() / fd.abs().max(1.0));
    }
    worst
}

/// Whether `solver` refuses an error cotangent with a typed error.
fn refuses_err<S: SdeStepVjp + Solver<Prob>>(solver: S, noise: Noise, case: &Case) -> bool {
    let prob = problem(noise, Interpretation::Ito, &case.y, &case.p);
    let dw = case.dw(noise);
    let (mut y_bar, mut p_bar) = (case.yb.clone(), vec![0.0; 4]);
    let r = solver.step_vjp(
        &mut solver.vjp_workspace(&prob),
        &Fields::new(&prob),
        StepAt {
            t: case.t,
            h: case.h,
            y: &case.y,
        },
        &[],
        &StepNoise {
            dw: &dw,
            levy_h: &[],
        },
        SdeStepBars {
            y: &mut y_bar,
            carried: &mut [],
            err: Some(&case.eb),
            p: &mut p_bar,
        },
        &mut Stats::default(),
    );
    matches!(r, Err(SolveError::Unsupported { what, .. }) if what.contains("error estimate"))
}

fn nothing<S: Solver<Prob>>(_: &S, _: &mut S::Cache, _: &[f64]) {}

fn case() -> impl Strategy<Value = Case> {
    use proptest::collection::vec;
    (
        (0.0f64..2.0, 0.01f64..0.3),
        (vec(-1.2f64..1.2, 2), vec(0.2f64..1.5, 4)),
        (
            vec(-2.5f64..2.5, 2),
            vec(-0.5f64..0.5, 2),
            vec(-1.0f64..1.0, 8),
        ),
        (
            vec(-1.0f64..1.0, 2),
            vec(-5.0f64..5.0, 2),
            vec(-1.0f64..1.0, 8),
        ),
    )
        .prop_map(|((t, h), (y, p), (z, levy, carried), (yb, eb, cb))| Case {
            t,
            h,
            y,
            p,
            z,
            levy,
            carried,
            yb,
            eb,
            cb,
        })
}

use Interpretation::{Ito, Stratonovich as Strat};
const ALL: [Noise; 4] = [
    Noise::Scalar,
    Noise::Diagonal,
    Noise::Additive,
    Noise::General(2),
];
const DIAGONAL: [Noise; 3] = [Noise::Scalar, Noise::Diagonal, Noise::Additive];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Central differences with step 1e-6 of O(1) functions leave
    /// round-off of about 1e-16·|cotangents|·Σ|coefficients|/1e-6 ≲ 1e-8
    /// (error cotangents up to 5; SOSRI's coefficients reach ~5) and
    /// truncation of ~1e-12: 1e-6 relative is a bound that a missing or
    /// wrong term fails by orders of magnitude.
    #[test]
    fn sde_step_vjps_match_finite_differences(case in case()) {
        let mut results: Vec<(String, f64)> = Vec::new();
        let mut add = |name: &str, noise: Noise, interp: Interpretation, e: f64| {
            results.push((format!("{name} {noise:?} {interp:?}"), e));
        };
        for noise in ALL {
            add("EulerMaruyama", noise, Ito, check(EulerMaruyama, nothing, (noise, Ito), false, &case));
            add("EulerHeun", noise, Strat, check(EulerHeun, nothing, (noise, Strat), false, &case));
            let set: SetCarried<ReversibleHeun> = |s, c, carried| s.set_carried(c, carried);
            add("ReversibleHeun", noise, Strat, check(ReversibleHeun, set, (noise, Strat), true, &case));
        }
        for noise in DIAGONAL {
            for interp in [Ito, Strat] {
                for (name, m) in [("Milstein::derivative_free()", Milstein::derivative_free()), ("Milstein::exact()", Milstein::exact())] {
                    add(name, noise, interp, check(m, nothing, (noise, interp), false, &case));
                }
            }
            add("Sriw1", noise, Ito, check(Sriw1, nothing, (noise, Ito), true, &case));
            add("Sosri", noise, Ito, check(Sosri, nothing, (noise, Ito), true, &case));
        }
        let additive = (Noise::Additive, Ito);
        add("Sra1", additive.0, Ito, check(Sra1, nothing, additive, true, &case));
        add("Sra3", additive.0, Ito, check(Sra3, nothing, additive, true, &case));
        for (name, err) in results {
            prop_assert!(err < 1e-6, "{name}: VJP vs FD relative error {err:e}");
        }
        // no error estimate: an error cotangent is refused by name
        prop_assert!(refuses_err(EulerMaruyama, Noise::Diagonal, &case));
        prop_assert!(refuses_err(EulerHeun, Noise::Diagonal, &case));
        prop_assert!(refuses_err(Milstein::default(), Noise::Diagonal, &case));
    }
}

/// The largest errors over a fixed set of cases, printed for the record.
#[test]
fn sde_step_vjp_errors_for_the_record() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut worst: Vec<(&str, f64)> = Vec::new();
    for _ in 0..32 {
        let c = case().new_tree(&mut runner).expect("case").current();
        let set: SetCarried<ReversibleHeun> = |s, c, carried| s.set_carried(c, carried);
        let errs = [
            (
                "EulerMaruyama",
                check(EulerMaruyama, nothing, (Noise::General(2), Ito), false, &c),
            ),
            (
                "EulerHeun",
                check(EulerHeun, nothing, (Noise::General(2), Strat), false, &c),
            ),
            (
                "Milstein::exact()",
                check(
                    Milstein::exact(),
                    nothing,
                    (Noise::Diagonal, Strat),
                    false,
                    &c,
                ),
            ),
            (
                "Milstein::derivative_free()",
                check(
                    Milstein::derivative_free(),
                    nothing,
                    (Noise::Diagonal, Ito),
                    false,
                    &c,
                ),
            ),
            (
                "Sriw1",
                check(Sriw1, nothing, (Noise::Diagonal, Ito), true, &c),
            ),
            (
                "Sosri",
                check(Sosri, nothing, (Noise::Scalar, Ito), true, &c),
            ),
            (
                "Sra1",
                check(Sra1, nothing, (Noise::Additive, Ito), true, &c),
            ),
            (
                "Sra3",
                check(Sra3, nothing, (Noise::Additive, Ito), true, &c),
            ),
            (
                "ReversibleHeun",
                check(ReversibleHeun, set, (Noise::General(2), Strat), true, &c),
            ),
        ];
        for (name, e) in errs {
            match worst.iter_mut().find(|(n, _)| *n == name) {
                Some(w) => w.1 = w.1.max(e),
                None => worst.push((name, e)),
            }
        }
    }
    for (name, e) in &worst {
        println!("{name}: worst relative VJP vs FD error {e:.1e}");
        assert!(*e < 1e-6, "{name}: {e:e}");
    }
}
