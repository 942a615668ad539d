//! Gradients through diffusion samplers (issue #14): the discrete adjoint
//! (exact for the discrete sampler) against the continuous AdjointDPM
//! adjoint in exponential-integrator form (`sdeflow_adjoint::diffusion`,
//! first order frozen and second order multistep, `y` re-solved backwards or
//! read from the stored sampler states), after DDIM and DPM-Solver++(2M) at
//! 10, 20, 50, 100 and 1000 steps on a uniform-λ grid.
//!
//! The test bed: the Gaussian mixture of `benches/diffusion.rs` (four
//! components with diagonal covariances, means and variances from a fixed
//! seed) in d = 2 and 16, shifted by a parameter `θ ∈ R^d` (data
//! `Σ π_k N(μ_k + θ, V_k)`, evaluated at `θ = 0`), whose exact noise
//! prediction is the model, `ε̂_θ(x, t) = ε*(x − α_t θ, t)`, with its VJP
//! written out (checked against central differences before the run); a
//! batch of four samples is one state; VP-linear schedule from 1 to 1e-3.
//! The loss is `L = Σ_j (x_j²/2 + w_j x_j)` of the sample, fixed `w`.
//!
//! Columns: the relative error (∞-norm) of `dL/dx_T` and of `dL/dθ` against
//! the gradient of the continuous flow (Tsit5 at rtol = atol = 1e-11 with its
//! discrete adjoint, itself checked against rtol 1e-9: the reference's own
//! error is printed), the sampler's forward model evaluations, the backward
//! pass's model evaluations and VJPs, the peak number of state vectors held
//! by the backward pass, and the time per gradient (forward included).
//! Plain `fn main`; `cargo bench --bench diffusion_adjoint` writes
//! `target/bench-report/diffusion_adjoint.csv`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use sdeflow::adjoint::{Adjoint, Gradient};
use sdeflow::diffusion::*;
use sdeflow::ode::Tsit5;
use sdeflow::prelude::*;
use sdeflow_adjoint::diffusion::{DiffusionAdjoint, ExpOrder, StateSource, diffusion_gradient};

#[path = "common/timing.rs"]
mod timing;
use timing::{Timer, measure};

const T: f64 = 1.0;
const T_END: f64 = 1e-3;
const STEPS: [usize; 5] = [10, 20, 50, 100, 1000];
const BATCH: usize = 4;

/// The mixture `Σ π_k N(μ_k + θ, diag v_k)` with `θ = p`.
#[derive(Debug, Clone)]
struct ShiftedMixture {
    d: usize,
    log_weights: Vec<f64>,
    means: Vec<f64>,
    vars: Vec<f64>,
    schedule: VpLinear,
}

impl ShiftedMixture {
    fn new(d: usize) -> ShiftedMixture {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0xD1F + d as u64);
        let gmm = GaussianMixture::random(d, &mut rng).expect("valid mixture");
        ShiftedMixture {
            d,
            log_weights: gmm.log_weights().to_vec(),
            means: gmm.means().to_vec(),
            vars: gmm.vars().to_vec(),
            schedule: VpLinear::default(),
        }
    }

    /// For one sample `x` at `t`: the posterior weights `w` (K), the
    /// `u_k = C_k⁻¹ (x − α(μ_k + θ))` (K × d) and `ū = Σ w_k u_k` (d).
    fn posterior(
        &self,
        t: f64,
        x: &[f64],
        p: &[f64],
        w: &mut [f64],
        u: &mut [f64],
        ubar: &mut [f64],
    ) {
        let (a, s) = (self.schedule.alpha(t), self.schedule.sigma(t));
        let d = self.d;
        let mut lmax = f64::NEG_INFINITY;
        for (k, wk) in w.iter_mut().enumerate() {
            let mut acc = 0.0;
            for i in 0..d {
                let c = a * a * self.vars[k * d + i] + s * s;
                let r = x[i] - a * (self.means[k * d + i] + p[i]);
                u[k * d + i] = r / c;
                acc += r * r / c + c.ln();
            }
            *wk = self.log_weights[k] - 0.5 * acc;
            lmax = lmax.max(*wk);
        }
        let total: f64 = w
            .iter_mut()
            .map(|wk| {
                *wk = (*wk - lmax).exp();
                *wk
            })
            .sum();
        w.iter_mut().for_each(|wk| *wk /= total);
        ubar.fill(0.0);
        for (k, &wk) in w.iter().enumerate() {
            for i in 0..d {
                ubar[i] += wk * u[k * d + i];
            }
        }
    }

    /// `ε̂ = σ ū` per sample.
    fn predict(&self, t: f64, x: &[f64], p: &[f64], out: &mut [f64]) {
        let (d, kk) = (self.d, self.log_weights.len());
        let (mut w, mut u) = (vec![0.0; kk], vec![0.0; kk * d]);
        let s = self.schedule.sigma(t);
        for (xj, oj) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            self.posterior(t, xj, p, &mut w, &mut u, oj);
            oj.iter_mut().for_each(|o| *o *= s);
        }
    }

    /// `(vᵀJ)_i = σ [Σ_k w_k v_i / C_ki + Σ_k w_k (v·u_k)(ū_i − u_ki)]`, and
    /// `vᵀ∂ε̂/∂θ = −α vᵀJ` summed over the batch.
    fn vjp(&self, t: f64, x: &[f64], p: &[f64], v: &[f64], ox: &mut [f64], op: &mut [f64]) {
        let (d, kk) = (self.d, self.log_weights.len());
        let (mut w, mut u, mut ubar) = (vec![0.0; kk], vec![0.0; kk * d], vec![0.0; d]);
        let (a, s) = (self.schedule.alpha(t), self.schedule.sigma(t));
        for ((xj, vj), oj) in x
            .chunks_exact(d)
            .zip(v.chunks_exact(d))
            .zip(ox.chunks_exact_mut(d))
        {
            self.posterior(t, xj, p, &mut w, &mut u, &mut ubar);
            for (k, &wk) in w.iter().enumerate() {
                let uk = &u[k * d..(k + 1) * d];
                let vu: f64 = vj.iter().zip(uk).map(|(a, b)| a * b).sum();
                for i in 0..d {
                    let c = a * a * self.vars[k * d + i] + s * s;
                    let g = s * wk * (vj[i] / c + vu * (ubar[i] - uk[i]));
                    oj[i] += g;
                    op[i] -= a * g;
                }
            }
        }
    }
}

type BoxedModel = ModelWithVjp<
    Box<dyn Fn(f64, &[f64], &[f64], &mut [f64])>,
    Box<dyn Fn(f64, &[f64], &[f64], &[f64], &mut [f64], &mut [f64])>,
>;
type Prob = DiffusionOde<BoxedModel, VpLinear>;

fn problem(d: usize) -> Prob {
    let mix = std::rc::Rc::new(ShiftedMixture::new(d));
    let m2 = mix.clone();
    let model: BoxedModel = ModelWithVjp {
        model: Box::new(move |t, x, p, out| mix.predict(t, x, p, out)),
        vjp: Box::new(move |t, x, p, v, ox, op| m2.vjp(t, x, p, v, ox, op)),
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7 + d as u64);
    let x_t: Vec<f64> = (0..BATCH * d)
        .map(|_| rng.sample::<f64, _>(StandardNormal))
        .collect();
    Problem::ode_field(
        ProbabilityFlow::new(model, Parametrisation::Noise, VpLinear::default()),
        x_t,
        (T, T_END),
    )
    .params(vec![0.0; d])
}

/// The model's VJP against central differences of the model (relative
/// 1e-6): the bench's own model must be right for its figures to mean
/// anything.
fn check_vjp(prob: &Prob) {
    let (n, np) = (prob.y0.len(), prob.params.len());
    let m = &prob.drift.model;
    let (t, x, p) = (0.3, &prob.y0, &prob.params);
    let v: Vec<f64> = (0..n).map(|j| 0.3 + 0.1 * j as f64).collect();
    let (mut ox, mut op) = (vec![0.0; n], vec![0.0; np]);
    m.model_vjp(t, x, p, &v, &mut ox, &mut op);
    let f = |x: &[f64], p: &[f64]| {
        let mut out = vec![0.0; n];
        m.predict(t, x, p, &mut out);
        out.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>()
    };
    let h = 1e-6;
    let check = |what: &str, j: usize, got: f64, plus: f64, minus: f64| {
        let fd = (plus - minus) / (2.0 * h);
        assert!(
            (got - fd).abs() <= 1e-6 * fd.abs().max(1.0),
            "{what}[{j}]: {got} vs FD {fd}"
        );
    };
    for j in 0..n {
        let (mut a, mut b) = (x.clone(), x.clone());
        a[j] += h;
        b[j] -= h;
        check("x", j, ox[j], f(&a, p), f(&b, p));
    }
    for j in 0..np {
        let (mut a, mut b) = (p.clone(), p.clone());
        a[j] += h;
        b[j] -= h;
        check("θ", j, op[j], f(x, &a), f(x, &b));
    }
}

/// The loss on the last saved state (the sample; `SaveAt::T1` saves only
/// it).
fn loss(_ts: &[f64], ys: &[f64], g: &mut [f64]) -> f64 {
    let x0 = &ys[ys.len() - g.len()..];
    let mut l = 0.0;
    for (j, (&x, gj)) in x0.iter().zip(g.iter_mut()).enumerate() {
        let w = 0.5 - 0.1 * (j % 7) as f64;
        l += 0.5 * x * x + w * x;
        *gj = x + w;
    }
    l
}

/// `‖a − b‖∞ / ‖b‖∞`.
fn rel(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// The flow's gradient: Tsit5's discrete adjoint at tolerance `tol`.
fn reference(prob: &Prob, tol: f64) -> Gradient {
    let opts = Options::default().tol(tol).save_at(SaveAt::T1);
    sdeflow::grad(prob, Tsit5, &opts, &loss, Adjoint::STORE_ALL).expect("Tsit5 reference gradient")
}

#[derive(Clone, Copy)]
enum Sampler {
    Ddim,
    PP2M,
}

#[derive(Clone, Copy)]
enum Method {
    Discrete,
    Continuous(DiffusionAdjoint),
}

fn gradient(prob: &Prob, sampler: Sampler, method: Method, steps: usize) -> Gradient {
    let s = VpLinear::default();
    match method {
        Method::Discrete => {
            let opts = TimeGrid::UniformLambda
                .options(&s, T, T_END, steps)
                .expect("grid")
                .save_at(SaveAt::T1);
            match sampler {
                Sampler::Ddim => sdeflow::grad(prob, Ddim, &opts, &loss, Adjoint::STORE_ALL),
                Sampler::PP2M => sdeflow::grad(
                    prob,
                    DpmSolverPP2M::default(),
                    &opts,
                    &loss,
                    Adjoint::STORE_ALL,
                ),
            }
        }
        Method::Continuous(adj) => {
            let times = TimeGrid::UniformLambda
                .times(&s, T, T_END, steps)
                .expect("grid");
            match sampler {
                Sampler::Ddim => diffusion_gradient(prob, Ddim, &times, &loss, adj),
                Sampler::PP2M => {
                    diffusion_gradient(prob, DpmSolverPP2M::default(), &times, &loss, adj)
                }
            }
        }
    }
    .expect("gradient")
}

fn main() {
    let started = Instant::now();
    let timer = Timer::from_args(Duration::from_millis(150), 3);
    let methods: [(&str, Method); 4] = [
        ("discrete (all states)", Method::Discrete),
        (
            "continuous 1st, backsolve",
            Method::Continuous(DiffusionAdjoint::Exponential {
                order: ExpOrder::First,
                states: StateSource::Backsolve,
            }),
        ),
        (
            "continuous 2nd, backsolve",
            Method::Continuous(DiffusionAdjoint::Exponential {
                order: ExpOrder::Second,
                states: StateSource::Backsolve,
            }),
        ),
        (
            "continuous 2nd, stored",
            Method::Continuous(DiffusionAdjoint::Exponential {
                order: ExpOrder::Second,
                states: StateSource::Stored,
            }),
        ),
    ];
    let mut csv = String::from(
        "d,sampler,steps,method,rel_err_dxT,rel_err_dtheta,forward_nfe,backward_evals,vjps,peak_states,time_us\n",
    );
    for d in [2, 16] {
        let prob = problem(d);
        check_vjp(&prob);
        let exact = reference(&prob, 1e-11);
        let looser = reference(&prob, 1e-9);
        println!(
            "\n== GMM d = {d}, batch {BATCH} (state {}): reference Tsit5 rtol 1e-11, {} NFE; \
             its distance to rtol 1e-9: dx_T {:.1e}, dθ {:.1e} ==",
            prob.y0.len(),
            exact.solution.stats.drift_evals,
            rel(&looser.dy0, &exact.dy0),
            rel(&looser.dp, &exact.dp)
        );
        println!(
            "{:<7} {:>5}  {:<26} {:>10} {:>10} {:>7} {:>8} {:>6} {:>6} {:>10}",
            "sampler",
            "steps",
            "gradient",
            "err dx_T",
            "err dθ",
            "fwd NFE",
            "bwd eval",
            "VJPs",
            "peak",
            "time"
        );
        for (sname, sampler) in [("DDIM", Sampler::Ddim), ("++2M", Sampler::PP2M)] {
            for &steps in &STEPS {
                for (mname, method) in methods {
                    let g = gradient(&prob, sampler, method, steps);
                    let (ex, ep) = (rel(&g.dy0, &exact.dy0), rel(&g.dp, &exact.dp));
                    let t = measure(|| gradient(&prob, sampler, method, steps), &timer);
                    println!(
                        "{sname:<7} {steps:>5}  {mname:<26} {ex:>10.2e} {ep:>10.2e} {:>7} {:>8} {:>6} {:>6} {:>8.0}µs",
                        g.solution.stats.drift_evals,
                        g.backward_drift_evals,
                        g.vjps,
                        g.peak_stored_states,
                        t.median * 1e6
                    );
                    csv.push_str(&format!(
                        "{d},{sname},{steps},{mname},{ex:e},{ep:e},{},{},{},{},{:.3}\n",
                        g.solution.stats.drift_evals,
                        g.backward_drift_evals,
                        g.vjps,
                        g.peak_stored_states,
                        t.median * 1e6
                    ));
                }
            }
        }
    }
    if !timer.quick {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-report");
        let path = dir.join("diffusion_adjoint.csv");
        match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &csv)) {
            Ok(()) => println!("\nwritten: {}", path.display()),
            Err(e) => eprintln!("\ncould not write the report: {e}"),
        }
    }
    println!("report took {:.1} s", started.elapsed().as_secs_f64());
}
