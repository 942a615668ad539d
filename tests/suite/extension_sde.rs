//! An SDE method written entirely outside the crates, through their public
//! traits only: the drift-implicit Euler–Maruyama scheme (the θ-method in
//! the drift; Kloeden & Platen, *Numerical Solution of Stochastic
//! Differential Equations*, 1992, §12.2, "drift-implicit Euler scheme"),
//!
//! `y_{n+1} = y_n + h [(1 − θ) f(t_n, y_n) + θ f(t_{n+1}, y_{n+1})] + g(t_n, y_n) ΔW`,
//!
//! Itô, scalar/diagonal/additive noise, strong order 0.5 (1.0 for additive
//! noise), weak order 1; the implicit equation solved by fixed-point
//! iteration to round-off. It implements [`Solver`] (so `solve` and
//! `Ensemble` run it) and the step-VJP protocol [`StepVjp`] (by the
//! implicit-function theorem, the transposed equation solved by the same
//! fixed-point iteration), and gets `grad` from
//! `sdeflow::adjoint::discrete_gradient` in a one-line
//! [`Differentiable`] impl. Checked here: strong order 0.5 on GBM (slope of
//! the mean strong error over six step sizes, on one Brownian path per
//! seed at every step size), the ensemble mean of `X_T` against GBM's exact
//! mean, identical ensembles on 1 and 2 threads, and `dL/dp`, `dL/dy0`
//! against central finite differences of `solve` at the same seed.

use sdeflow::adjoint::GradError;
use sdeflow::field::{DiffusionVjp, DriftVjp};
use sdeflow::noise::{Driver, VirtualTree};
use sdeflow::prelude::*;
use sdeflow::solver::{DenseTable, Increment, StepArgs, StepAt, StepOut, StepStatus, StepTaken};
use sdeflow::solver::{StepVjp, VjpArgs, refuse_err_cotangent, refuse_interp_cotangents};

use crate::common;
use common::fitted_slope;

/// Drift-implicit Euler–Maruyama with weight `theta` on the new drift
/// (`theta = 1`: fully implicit drift).
#[derive(Debug, Clone, Copy)]
struct DriftImplicitEm {
    theta: f64,
}

impl Default for DriftImplicitEm {
    fn default() -> Self {
        DriftImplicitEm { theta: 1.0 }
    }
}

/// Fixed-point iterations: at most this many, until the update is below
/// `TOL` relative to the iterate.
const MAX_ITER: usize = 200;
const TOL: f64 = 1e-14;

#[derive(Debug, Clone)]
struct Cache {
    noise: Noise,
    /// `f(t_n, y_n)`, `g(t_n, y_n)`: the loop's `f0`, `g0` on the first step.
    f: Vec<f64>,
    g: Vec<f64>,
    valid: bool,
    /// The explicit part `y + h(1 − θ) f + g ΔW`, the iterate, `f` at it.
    b: Vec<f64>,
    z: Vec<f64>,
    fz: Vec<f64>,
    /// The dense-output vector.
    k: Vec<f64>,
}

/// The Brownian component driving state component `i`.
fn driver(noise: Noise, i: usize) -> usize {
    if noise == Noise::Scalar { 0 } else { i }
}

/// Iterates `x ← rhs + c · op(x)` from `x` until the update is below
/// `TOL` relative to `x`; `op(x, out)` overwrites `out`. Returns whether
/// it converged.
fn fixed_point(
    x: &mut [f64],
    tmp: &mut [f64],
    rhs: &[f64],
    c: f64,
    mut op: impl FnMut(&[f64], &mut [f64]),
) -> bool {
    for _ in 0..MAX_ITER {
        op(x, tmp);
        let (mut diff, mut size) = (0.0f64, 0.0f64);
        for i in 0..x.len() {
            let new = rhs[i] + c * tmp[i];
            diff = diff.max((new - x[i]).abs());
            size = size.max(new.abs());
            x[i] = new;
        }
        if diff <= TOL * (1.0 + size) {
            return true;
        }
    }
    false
}

impl<F: Drift, G: Diffusion, D: Driver> Solver<SdeProblem<F, G, D>> for DriftImplicitEm {
    type Cache = Cache;
    const INCREMENT: Increment = Increment::Dw;

    fn name(&self) -> &'static str {
        "DriftImplicitEm"
    }
    fn order(&self) -> f64 {
        0.5
    }
    fn error_order(&self) -> Option<f64> {
        None
    }
    fn check(&self, problem: &SdeProblem<F, G, D>) -> Result<(), SolveError> {
        let unsupported = |what: String| SolveError::Unsupported {
            solver: "DriftImplicitEm",
            what,
            alternatives: "EulerMaruyama".into(),
        };
        match problem.noise {
            None => Err(unsupported("ODEs".into())),
            Some(Noise::General(m)) => Err(unsupported(format!("General({m}) noise"))),
            Some(Noise::Additive) => Ok(()),
            Some(_) if problem.interpretation == Interpretation::Stratonovich => {
                Err(unsupported("Stratonovich SDEs".into()))
            }
            Some(_) => Ok(()),
        }
    }
    fn init(&self, problem: &SdeProblem<F, G, D>) -> Cache {
        let n = problem.dim();
        let v = || vec![0.0; n];
        Cache {
            noise: problem.noise.unwrap_or(Noise::Diagonal),
            f: v(),
            g: v(),
            valid: false,
            b: v(),
            z: v(),
            fz: v(),
            k: v(),
        }
    }
    fn start(&self, c: &mut Cache, f0: &[f64], g0: &[f64]) {
        c.f.copy_from_slice(f0);
        c.g.copy_from_slice(g0);
        c.valid = true;
    }
    fn step(&self, c: &mut Cache, args: StepArgs<'_, F, G>) -> StepStatus {
        let StepArgs {
            fields,
            at: StepAt { t, h, y },
            noise,
            out,
            stats,
        } = args;
        if !c.valid {
            fields.f(t, y, &mut c.f, stats);
            fields.g(t, y, &mut c.g, stats);
            c.valid = true;
        }
        let th = self.theta;
        for i in 0..y.len() {
            c.b[i] = y[i] + h * (1.0 - th) * c.f[i] + c.g[i] * noise.dw[driver(c.noise, i)];
            // the explicit Euler–Maruyama step as the first iterate
            c.z[i] = c.b[i] + h * th * c.f[i];
        }
        let converged = fixed_point(&mut c.z, &mut c.fz, &c.b, h * th, |z, fz| {
            fields.f(t + h, z, fz, stats)
        });
        out.y_new.copy_from_slice(&c.z);
        if converged {
            StepStatus::Taken
        } else {
            StepStatus::Failed
        }
    }
    fn accept(&self, c: &mut Cache) {
        c.valid = false;
    }
    fn dense_table<'c>(&self, _c: &'c Cache) -> DenseTable<'c> {
        DenseTable::new(2, &[0.0, 1.0])
    }
    fn dense_stages<'c>(&self, c: &'c mut Cache, step: StepTaken<'_, F, G>) -> &'c [f64] {
        let (StepAt { h, y, .. }, y_new) = (step.at, step.y_new);
        for i in 0..y.len() {
            c.k[i] = (y_new[i] - y[i]) / h;
        }
        &c.k
    }
}

/// Workspace of the step VJP: the forward cache (the step is recomputed by
/// the step itself), the adjoint iterate and scratch.
struct Work {
    step: Cache,
    y_new: Vec<f64>,
    lambda: Vec<f64>,
    rhs: Vec<f64>,
    tmp: Vec<f64>,
    vg: Vec<f64>,
    p_scratch: Vec<f64>,
}

impl<Fx: Drift, Gx: Diffusion, Dx: Driver> StepVjp<SdeProblem<Fx, Gx, Dx>> for DriftImplicitEm {
    type VjpWork = Work;

    fn vjp_workspace<F: DriftVjp, G: DiffusionVjp, D: Driver>(
        &self,
        problem: &Problem<F, G, D>,
    ) -> Work {
        let n = problem.dim();
        Work {
            step: self.init(problem),
            y_new: vec![0.0; n],
            lambda: vec![0.0; n],
            rhs: vec![0.0; n],
            tmp: vec![0.0; n],
            vg: vec![0.0; n],
            p_scratch: vec![0.0; problem.params.len()],
        }
    }

    /// `z = b + hθ f(t + h, z)` with `b = y + h(1 − θ) f(t, y) + g(t, y) ΔW`:
    /// `λ = (I − hθ J(z))⁻ᵀ z̄` by the fixed-point iteration
    /// `λ ← z̄ + hθ Jᵀλ` (one drift VJP each), then `p̄ += hθ λᵀ ∂f/∂p` at
    /// `z`, and `b̄ = λ` flows to `y` and `p` through the explicit part.
    fn step_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut Work,
        mut args: VjpArgs<'_, F, G>,
    ) -> Result<usize, SolveError> {
        refuse_err_cotangent("DriftImplicitEm", args.bars.err)?;
        refuse_interp_cotangents("DriftImplicitEm", args.bars.interp)?;
        let StepAt { t, h, y } = args.at;
        let fields = args.fields;
        let (th, p, n) = (self.theta, fields.p, y.len());
        let fail = |what: &str| SolveError::NonlinearSolve {
            solver: "DriftImplicitEm",
            t,
            h,
            reason: format!("the {what} fixed-point iteration did not converge"),
        };
        let out = StepOut {
            y_new: &mut w.y_new,
            err: &mut w.tmp,
        };
        // the forward step (the same for any driver: name one)
        type P<F, G> = SdeProblem<F, G, VirtualTree>;
        if Solver::<P<F, G>>::step(self, &mut w.step, args.forward(out)) == StepStatus::Failed {
            return Err(fail("step's"));
        }
        Solver::<P<F, G>>::accept(self, &mut w.step);
        let (bars, noise, z) = (args.bars, args.noise, &w.y_new);
        w.rhs.copy_from_slice(bars.y);
        w.lambda.copy_from_slice(bars.y);
        let mut vjps = 0;
        let (lambda, tmp, ps) = (&mut w.lambda, &mut w.tmp, &mut w.p_scratch);
        let converged = fixed_point(lambda, tmp, &w.rhs, h * th, |l, jt_l| {
            jt_l.fill(0.0);
            vjps += 1;
            fields.drift.drift_vjp(t + h, z, p, l, jt_l, ps);
        });
        if !converged {
            return Err(fail("adjoint"));
        }
        // p̄ from f(t + h, z): one more VJP with hθλ
        for i in 0..n {
            w.tmp[i] = h * th * w.lambda[i];
        }
        w.rhs.fill(0.0);
        fields
            .drift
            .drift_vjp(t + h, z, p, &w.tmp, &mut w.rhs, bars.p);
        // through b: ȳ = λ + h(1 − θ) J(y)ᵀλ + (∂g/∂y)ᵀ(λ ⊙ ΔW)
        bars.y.copy_from_slice(&w.lambda);
        if th != 1.0 {
            for i in 0..n {
                w.tmp[i] = h * (1.0 - th) * w.lambda[i];
            }
            fields.drift.drift_vjp(t, y, p, &w.tmp, bars.y, bars.p);
            vjps += 1;
        }
        for i in 0..n {
            w.vg[i] = w.lambda[i] * noise.dw[driver(w.step.noise, i)];
        }
        fields
            .diffusion
            .diffusion_vjp(t, y, p, &w.vg, bars.y, bars.p);
        Ok(vjps + 1)
    }
}

/// `grad` for every problem whose fields have VJPs: the SDE discrete
/// adjoint through the step VJP above.
impl<F: DriftVjp, G: DiffusionVjp, D: Driver> Differentiable<F, G, D> for DriftImplicitEm {
    fn gradient<L: Loss + ?Sized>(
        &self,
        problem: &Problem<F, G, D>,
        options: &Options,
        loss: &L,
        adjoint: Adjoint,
    ) -> Result<Gradient, GradError> {
        sdeflow::adjoint::discrete_gradient(problem, self, options, loss, adjoint)
    }
}

const A: f64 = 0.5;
const B: f64 = 0.5;
const X0: f64 = 1.0;

/// GBM `dX = A X dt + B X dW`, scalar noise, `X0 = 1` on `[0, 1]`: exact
/// `X_T = X0 exp((A − B²/2) T + B W_T)`, `E[X_T] = X0 e^{A T}`.
fn gbm() -> Problem<impl Drift + Clone + Sync, impl Diffusion + Clone + Sync> {
    Problem::sde(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = A * y[0],
        |_t: f64, y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = B * y[0],
        Noise::Scalar,
        vec![X0],
        (0.0, 1.0),
    )
}

/// Mean strong error `E|X_N − X_T|` over 200 seeds at 8, 16, …, 256 steps;
/// every step size of a seed sees the same Brownian path (the problem's
/// virtual Brownian tree), and `W_T` is read from the path the solve kept.
/// The least-squares slope of log error against log h must be within 0.1
/// of 0.5 (measured: printed).
#[test]
fn strong_order_one_half_on_gbm() {
    let p = gbm();
    let steps = [8usize, 16, 32, 64, 128, 256];
    let hs: Vec<f64> = steps.iter().map(|&n| 1.0 / n as f64).collect();
    let paths = 200u64;
    let errs: Vec<f64> = hs
        .iter()
        .map(|&h| {
            let mut sum = 0.0;
            for seed in 0..paths {
                let opts = Options::default()
                    .fixed_step(h)
                    .seed(seed)
                    .save_at(SaveAt::T1);
                let sol = solve(&p, DriftImplicitEm::default(), &opts).expect("solve");
                let mut w = [0.0];
                sol.brownian_increment(0.0, 1.0, &mut w, None)
                    .expect("kept path");
                let exact = X0 * ((A - 0.5 * B * B) + B * w[0]).exp();
                sum += (sol.last()[0] - exact).abs();
            }
            sum / paths as f64
        })
        .collect();
    let slope = fitted_slope(&hs, &errs);
    println!("drift-implicit EM on GBM: strong slope {slope:.3} (theory 0.5); errors {errs:?}");
    assert!((slope - 0.5).abs() < 0.1, "strong slope {slope}");
}

/// 20 000 trajectories with h = 0.01: the mean of `X_T` is within 4
/// standard errors (plus the scheme's own bias, known exactly: its mean is
/// `X0 (1 − A h)^{-N}`, 0.0021 above `e^{A}`, a third of a standard error)
/// of GBM's `E[X_T] = X0 e^{A}`, and within 4 standard errors of the
/// scheme's exact mean; the summary is bit-identical on 1 and 2 threads.
#[test]
fn ensemble_mean_matches_gbm_and_threads_agree() {
    let p = gbm();
    let h = 0.01;
    let opts = Options::default().fixed_step(h).save_at(SaveAt::T1);
    let n = 20_000;
    let ens = Ensemble::new(&p, DriftImplicitEm::default(), opts.clone(), n).seed(17);
    let est = ens.expectation(|x| x[0], 0.99).expect("ensemble");
    let exact = X0 * A.exp();
    let scheme = X0 * (1.0 - A * h).powi(-100);
    let bias = scheme - exact;
    println!(
        "ensemble mean {:.5} ± {:.5} (SE); exact GBM mean {exact:.5}; the scheme's mean \
         {scheme:.5} (bias {bias:.2e})",
        est.mean, est.std_error
    );
    assert!(est.samples == n as u64);
    assert!((est.mean - exact).abs() < 4.0 * est.std_error + bias.abs());
    assert!((est.mean - scheme).abs() < 4.0 * est.std_error);
    let stats = |threads: usize| {
        Ensemble::new(&p, DriftImplicitEm::default(), opts.clone(), 2000)
            .seed(3)
            .threads(threads)
            .statistics(&[0.1, 0.5, 0.9])
            .expect("statistics")
    };
    assert_eq!(stats(1), stats(2));
}

/// A nonlinear diagonal SDE with parameters in the drift and the
/// diffusion, fields written generically over the scalar (exact VJPs).
#[derive(Clone, Copy)]
struct Drift2;
impl GenericField for Drift2 {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, y: &[D], p: &[D], dy: &mut [D]) {
        dy[0] = -p[0] * y[0] - y[0] * y[0] * y[0] * 0.5 + t.sin() * 0.3;
        dy[1] = -p[1] * y[1] + (y[0] * 0.5).sin();
    }
}
#[derive(Clone, Copy)]
struct Diff2;
impl GenericField for Diff2 {
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], g: &mut [D]) {
        g[0] = p[2] * y[0].sin() + 0.1;
        g[1] = p[3] * y[1];
    }
}

/// `dL/dp` and `dL/dy0` by `grad` (storing every step, and with 8
/// checkpoints) against central differences (step 1e-6) of `solve` at the
/// same seed, for a loss on every step and on `T1`: within 1e-6 relative.
#[test]
fn grad_matches_finite_differences_of_solve() {
    let p0 = [1.5, 2.0, 0.4, 0.3];
    let y0 = [0.8, -0.5];
    let problem = |p: &[f64], y0: &[f64]| common::diagonal_sde(Drift2, Diff2, p, y0);
    let loss = |_ts: &[f64], ys: &[f64], g: &mut [f64]| {
        let mut v = 0.0;
        for (i, y) in ys.iter().enumerate() {
            v += y * y + 0.5 * y;
            g[i] = 2.0 * y + 0.5;
        }
        v
    };
    let mut worst = 0.0f64;
    for save_at in [SaveAt::Steps, SaveAt::T1] {
        let opts = Options::default()
            .fixed_step(0.02)
            .seed(9)
            .save_at(save_at.clone());
        let prob = problem(&p0, &y0);
        let all = grad(
            &prob,
            DriftImplicitEm::default(),
            &opts,
            &loss,
            Adjoint::STORE_ALL,
        )
        .expect("grad");
        let ckpt = Adjoint::Discrete { checkpoints: 8 };
        let small = grad(&prob, DriftImplicitEm::default(), &opts, &loss, ckpt).expect("grad");
        let l_at = |p: &[f64], y0: &[f64]| {
            let sol = solve(&problem(p, y0), DriftImplicitEm::default(), &opts).expect("solve");
            let mut g = vec![0.0; sol.ys.len()];
            loss(&sol.ts, &sol.ys, &mut g)
        };
        let eps = 1e-6;
        let ours: Vec<f64> = all.dp.iter().chain(&all.dy0).copied().collect();
        for (j, &adj) in ours.iter().enumerate() {
            let (mut pp, mut pm, mut yp, mut ym) = (p0, p0, y0, y0);
            if j < 4 {
                pp[j] += eps;
                pm[j] -= eps;
            } else {
                yp[j - 4] += eps;
                ym[j - 4] -= eps;
            }
            let fd = (l_at(&pp, &yp) - l_at(&pm, &ym)) / (2.0 * eps);
            let rel = (adj - fd).abs() / fd.abs().max(1e-3);
            println!("{save_at:?} component {j}: adjoint {adj:.10e}, FD {fd:.10e}, rel {rel:.1e}");
            worst = worst.max(rel);
        }
        for (a, b) in small.dp.iter().chain(&small.dy0).zip(&ours) {
            assert!(
                (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                "checkpointed {a} vs {b}"
            );
        }
        assert_eq!(small.loss, all.loss);
    }
    println!("drift-implicit EM: worst relative error of grad vs FD of solve {worst:.1e}");
    assert!(worst < 1e-6, "{worst:e}");
    // a Stratonovich problem is refused by the solver's check, as a typed
    // error of the forward solve
    let strat = problem(&p0, &y0).interpretation(Interpretation::Stratonovich);
    let opts = Options::default().fixed_step(0.02);
    let e = grad(
        &strat,
        DriftImplicitEm::default(),
        &opts,
        &loss,
        Adjoint::STORE_ALL,
    );
    assert!(matches!(
        e,
        Err(GradError::Solve(SolveError::Unsupported { .. }))
    ));
}
