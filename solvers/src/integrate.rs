//! The integration loop: drives any [`Solver`] with any controller and save
//! policy. It owns the step-size logic (initial step, clipping to `t1` and
//! `dt_max`, underflow and step-budget checks), the error norm and the saving;
//! it knows nothing about a particular method.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::brownian::{BrownianIncrements, BrownianPath, BrownianTree};
use crate::controller::{StepController, StepDecision};
use crate::dense::{DenseOutput, combine, poly_weights};
use crate::error::SolveError;
use crate::field::{Diffusion, Drift};
use crate::initial_step::initial_step;
use crate::norm::scaled_rms;
use crate::options::{BrownianSampling, Options, SaveAt};
use crate::problem::Problem;
use crate::solution::{Solution, Stats, Status};
use crate::solver::{Fields, Solver, StepNoise};

/// A NaN with a payload no arithmetic produces: marks components a field
/// did not write.
const UNWRITTEN: u64 = 0x7ff8_dead_beef_0001;

/// Evaluates a field once on a buffer of `len` entries pre-filled with a
/// marker, turning an out-of-bounds panic or unwritten entries into a
/// [`SolveError::DimensionMismatch`] and non-finite output into
/// [`SolveError::NonFiniteDerivative`]. Used once per solve, before the loop.
pub fn probe_field(
    name: &'static str,
    len: usize,
    t: f64,
    out: &mut [f64],
    eval: impl FnOnce(&mut [f64]),
) -> Result<(), SolveError> {
    debug_assert_eq!(out.len(), len);
    out.iter_mut().for_each(|v| *v = f64::from_bits(UNWRITTEN));
    let res = catch_unwind(AssertUnwindSafe(|| eval(out)));
    if res.is_err() {
        return Err(SolveError::DimensionMismatch {
            what: format!("{name} output"),
            expected: len,
            found: None,
            hint: format!(
                "the {name} panicked on a state of length {}; make y0 (and the noise type) \
                 match the dimension the {name} uses",
                len
            ),
        });
    }
    if let Some(first) = out.iter().position(|v| v.to_bits() == UNWRITTEN) {
        let written = out.iter().filter(|v| v.to_bits() != UNWRITTEN).count();
        return Err(SolveError::DimensionMismatch {
            what: format!("{name} output"),
            expected: len,
            found: Some(written),
            hint: format!(
                "the {name} left component {first} unwritten; make y0 (and the noise type) \
                 match the dimension the {name} writes"
            ),
        });
    }
    if let Some(component) = out.iter().position(|v| !v.is_finite()) {
        return Err(SolveError::NonFiniteDerivative {
            field: name,
            t,
            component,
            step: 0,
        });
    }
    Ok(())
}

/// The Brownian motion of an SDE solve.
enum Path<'p> {
    None,
    Tree(Box<BrownianTree>),
    Increments(BrownianIncrements),
    Given(&'p mut dyn BrownianPath),
}

impl Path<'_> {
    #[inline]
    fn draw(&mut self, s: f64, t: f64, levy: bool, dw: &mut [f64], h: &mut [f64]) {
        #[inline(always)]
        fn from<P: BrownianPath>(
            p: &mut P,
            s: f64,
            t: f64,
            levy: bool,
            dw: &mut [f64],
            h: &mut [f64],
        ) {
            if levy {
                p.increment_with_levy_area(s, t, dw, h);
            } else {
                p.increment(s, t, dw);
            }
        }
        // static dispatch: this runs once per step
        match self {
            Path::None => {}
            Path::Tree(p) => from(p.as_mut(), s, t, levy, dw, h),
            Path::Increments(p) => from(p, s, t, levy, dw, h),
            Path::Given(p) => {
                if levy {
                    p.increment_with_levy_area(s, t, dw, h);
                } else {
                    p.increment(s, t, dw);
                }
            }
        }
    }
}

/// What the loop has saved so far.
struct Saved {
    ts: Vec<f64>,
    ys: Vec<f64>,
    dense: Option<DenseOutput>,
}

impl Saved {
    fn into_solution(
        mut self,
        n: usize,
        t: f64,
        y: &[f64],
        stats: Stats,
        status: Status,
        name: &str,
    ) -> Solution {
        if self.ts.last() != Some(&t) {
            self.ts.push(t);
            self.ys.extend_from_slice(y);
        }
        Solution {
            ts: self.ts,
            ys: self.ys,
            n,
            stats,
            status,
            solver: name.to_string(),
            dense: self.dense,
        }
    }
}

/// Sees every accepted step of a solve (for example, an adjoint recording
/// its step times and checkpoints). Called after the step is saved.
pub trait StepObserver {
    /// Step `index` went from `(t, y)` to `(t_next, y_next)`.
    fn accepted(&mut self, index: usize, t: f64, t_next: f64, y: &[f64], y_next: &[f64]);

    /// The Brownian increments of the step about to be reported to
    /// [`StepObserver::accepted`] (SDE solves only; empty `levy_h` unless the
    /// solver uses the Lévy area). Ignored by default.
    #[inline(always)]
    fn accepted_noise(&mut self, _noise: &StepNoise<'_>) {}

    /// The method's carried state ([`Solver::carried_state`]) after the
    /// step just reported to [`StepObserver::accepted`]. Ignored by default.
    #[inline(always)]
    fn accepted_carried(&mut self, _carried: &[f64]) {}
}

/// Observes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl StepObserver for NoObserver {
    #[inline(always)]
    fn accepted(&mut self, _: usize, _: f64, _: f64, _: &[f64], _: &[f64]) {}
}

/// Solves `problem` with `solver` under `opts`.
pub fn integrate<F: Drift, G: Diffusion, S: Solver>(
    problem: &Problem<F, G>,
    solver: &S,
    opts: &Options,
) -> Result<Solution, SolveError> {
    integrate_observed(problem, solver, opts, &mut NoObserver)
}

/// [`integrate`], reporting every accepted step to `observer`.
pub fn integrate_observed<F: Drift, G: Diffusion, S: Solver, O: StepObserver>(
    problem: &Problem<F, G>,
    solver: &S,
    opts: &Options,
    observer: &mut O,
) -> Result<Solution, SolveError> {
    integrate_on_path(problem, solver, opts, observer, None)
}

/// [`integrate_observed`] driving an SDE with a given Brownian path
/// (`None`: the path `opts` asks for). The stochastic adjoint uses it to
/// replay the forward path backwards in time.
pub fn integrate_on_path<F: Drift, G: Diffusion, S: Solver, O: StepObserver>(
    problem: &Problem<F, G>,
    solver: &S,
    opts: &Options,
    observer: &mut O,
    given: Option<&mut dyn BrownianPath>,
) -> Result<Solution, SolveError> {
    problem.validate()?;
    let n = problem.dim();
    let (t0, t1) = problem.tspan;
    opts.validate(n, problem.tspan)?;
    solver.check(problem)?;
    let m = problem.noise.map_or(0, |nz| nz.brownian_dim(n));
    let fields = Fields::new(problem);
    let mut controller = opts.controller;
    controller.reset();
    let k_err = match (controller.is_adaptive(), solver.error_order()) {
        (true, Some(k)) => Some(k),
        (_, _) if opts.dt0.is_some() => None,
        (false, _) => {
            return Err(SolveError::NeedsStepSize {
                solver: solver.name(),
            });
        }
        (true, None) => {
            return Err(SolveError::NeedsStepSize {
                solver: solver.name(),
            });
        }
    };
    let adaptive = k_err.is_some();
    let dir = (t1 - t0).signum();

    let mut stats = Stats::default();
    let mut y = problem.y0.clone();
    let mut f0 = vec![0.0; n];
    probe_field("drift", n, t0, &mut f0, |out| {
        problem.drift.drift(t0, &y, &problem.params, out)
    })?;
    stats.drift_evals += 1;

    // SDEs: check the diffusion's shape once, and set up the Brownian path
    let needs_levy = solver.needs_levy_area();
    let mut path = Path::None;
    let mut g0 = Vec::new();
    if let Some(noise) = problem.noise {
        g0 = vec![0.0; noise.diffusion_len(n)];
        probe_field("diffusion", g0.len(), t0, &mut g0, |out| {
            problem.diffusion.diffusion(t0, &y, &problem.params, out)
        })?;
        stats.diffusion_evals += 1;
        path = match (opts.brownian, adaptive, given) {
            (_, _, Some(p)) => Path::Given(p),
            (BrownianSampling::Increments, true, None) => {
                return Err(SolveError::invalid(
                    "brownian",
                    "Increments sampling needs fixed steps (rejected adaptive steps must \
                     re-query the same path); use BrownianSampling::Tree or Auto",
                ));
            }
            (BrownianSampling::Increments, false, None) | (BrownianSampling::Auto, false, None) => {
                Path::Increments(BrownianIncrements::new(m, opts.seed))
            }
            // always with the Lévy area, so that every solver sees the same
            // path for the same seed
            _ => Path::Tree(Box::new(BrownianTree::new(problem.tspan, m, opts.seed))),
        };
    }
    let mut dw = vec![0.0; m];
    let mut levy_h = vec![0.0; if needs_levy { m } else { 0 }];

    let mut cache = solver.init(problem);
    solver.start(&mut cache, &f0, &g0);

    let h_abs = match opts.dt0 {
        Some(dt) => dt.abs().min(opts.dt_max),
        None => {
            let mut scratch = vec![0.0; 2 * n];
            initial_step(
                &fields,
                t0,
                &y,
                &f0,
                t1,
                solver.order(),
                opts,
                &mut scratch,
                &mut stats,
            )
        }
    };
    let mut h = dir * h_abs;

    let table = solver.dense_table(&cache);
    let (nk, ncoef) = (table.nk, table.ncoef);
    let poly = table.poly.to_vec();
    let mut saved = Saved {
        ts: Vec::new(),
        ys: Vec::new(),
        dense: match opts.save_at {
            SaveAt::Dense => Some(DenseOutput::new(n, nk, ncoef, poly.clone())),
            _ => None,
        },
    };
    let save_times: &[f64] = match &opts.save_at {
        SaveAt::Times(ts) => ts,
        _ => &[],
    };
    let mut next_save = 0;
    match opts.save_at {
        SaveAt::Steps | SaveAt::Dense => {
            saved.ts.push(t0);
            saved.ys.extend_from_slice(&y);
        }
        SaveAt::Times(_) => {
            while next_save < save_times.len() && save_times[next_save] == t0 {
                saved.ts.push(t0);
                saved.ys.extend_from_slice(&y);
                next_save += 1;
            }
            saved.ts.reserve(save_times.len());
            saved.ys.reserve(save_times.len() * n);
        }
        SaveAt::T1 => {}
    }

    let mut y_new = vec![0.0; n];
    let mut err = vec![0.0; n];
    let mut w = vec![0.0; nk];
    let mut t = t0;
    let mut attempts = 0usize;
    let mut fixed_index = 0usize;
    let span = (t1 - t0).abs();
    // fixed steps: the number of steps, decided once (the last one ends at t1)
    let fixed_steps = {
        let reach = |k: usize| k as f64 * h_abs >= span * (1.0 - 1e-12);
        let estimate = span / h_abs;
        if adaptive || estimate.is_nan() || estimate >= 1e15 {
            // adaptive, or more steps than any budget allows (max_steps stops it)
            usize::MAX
        } else {
            let mut k = (estimate.ceil() as usize).max(1);
            while k > 1 && reach(k - 1) {
                k -= 1;
            }
            while !reach(k) {
                k += 1;
            }
            k
        }
    };

    loop {
        if attempts >= opts.max_steps {
            let partial = saved.into_solution(n, t, &y, stats, Status::Incomplete, solver.name());
            return Err(SolveError::MaxStepsReached {
                t,
                max_steps: opts.max_steps,
                partial: Box::new(partial),
            });
        }
        // the end of this step
        let (t_next, last) = if adaptive {
            let cand = t + h;
            if (cand - t1) * dir >= -0.01 * h.abs() {
                (t1, true)
            } else {
                (cand, false)
            }
        } else if fixed_index + 1 == fixed_steps {
            (t1, true)
        } else {
            (t0 + dir * (fixed_index + 1) as f64 * h_abs, false)
        };
        let h_step = t_next - t;
        let floor = if adaptive {
            opts.dt_min.max(16.0 * f64::EPSILON * t.abs().max(1e-300))
        } else {
            0.0
        };
        if adaptive && (h_step.abs() < floor && !last || h_step == 0.0) {
            let partial = saved.into_solution(n, t, &y, stats, Status::Incomplete, solver.name());
            return Err(SolveError::StepSizeUnderflow {
                t,
                dt: h_step.abs(),
                step: stats.accepted_steps,
                partial: Box::new(partial),
            });
        }

        path.draw(t, t_next, needs_levy, &mut dw, &mut levy_h);
        let noise = StepNoise {
            dw: &dw,
            levy_h: &levy_h,
        };
        solver.step(
            &mut cache, &fields, t, h_step, &y, &noise, &mut y_new, &mut err, &mut stats,
        );
        attempts += 1;

        let decision = match k_err {
            Some(k) => {
                let e = scaled_rms(&err, &y, &y_new, &opts.rtol, &opts.atol);
                controller.decide(e, k)
            }
            None => StepDecision {
                accept: true,
                factor: 1.0,
            },
        };

        if !decision.accept {
            stats.rejected_steps += 1;
            h = h_step * decision.factor;
            if h.abs() < floor {
                if let Some(component) = y_new.iter().position(|v| !v.is_finite()) {
                    return Err(SolveError::NonFiniteDerivative {
                        field: "solution",
                        t,
                        component,
                        step: stats.accepted_steps,
                    });
                }
                let partial =
                    saved.into_solution(n, t, &y, stats, Status::Incomplete, solver.name());
                return Err(SolveError::StepSizeUnderflow {
                    t,
                    dt: h.abs(),
                    step: stats.accepted_steps,
                    partial: Box::new(partial),
                });
            }
            continue;
        }

        if !adaptive && let Some(component) = y_new.iter().position(|v| !v.is_finite()) {
            return Err(SolveError::NonFiniteDerivative {
                field: "solution",
                t,
                component,
                step: stats.accepted_steps,
            });
        }

        // save what this step covers
        match opts.save_at {
            SaveAt::T1 => {}
            SaveAt::Steps => {
                saved.ts.push(t_next);
                saved.ys.extend_from_slice(&y_new);
            }
            SaveAt::Dense => {
                let ks =
                    solver.dense_stages(&mut cache, &fields, t, h_step, &y, &y_new, &mut stats);
                if let Some(d) = saved.dense.as_mut() {
                    d.push(t, h_step, &y, &ks[..nk * n]);
                }
                saved.ts.push(t_next);
                saved.ys.extend_from_slice(&y_new);
            }
            SaveAt::Times(_) => {
                while next_save < save_times.len() && (save_times[next_save] - t_next) * dir <= 0.0
                {
                    let ts = save_times[next_save];
                    saved.ts.push(ts);
                    if ts == t_next {
                        saved.ys.extend_from_slice(&y_new);
                    } else {
                        let ks = solver
                            .dense_stages(&mut cache, &fields, t, h_step, &y, &y_new, &mut stats);
                        poly_weights(&poly, ncoef, (ts - t) / h_step, &mut w);
                        let start = saved.ys.len();
                        saved.ys.resize(start + n, 0.0);
                        combine(&y, h_step, &w, ks, &mut saved.ys[start..]);
                    }
                    next_save += 1;
                }
            }
        }

        if !dw.is_empty() {
            observer.accepted_noise(&StepNoise {
                dw: &dw,
                levy_h: &levy_h,
            });
        }
        observer.accepted(stats.accepted_steps, t, t_next, &y, &y_new);
        solver.accept(&mut cache);
        observer.accepted_carried(solver.carried_state(&cache));
        stats.accepted_steps += 1;
        fixed_index += 1;
        t = t_next;
        std::mem::swap(&mut y, &mut y_new);
        if last {
            break;
        }
        if adaptive {
            h = (h_step * decision.factor).clamp(-opts.dt_max, opts.dt_max);
        }
    }

    if !matches!(opts.save_at, SaveAt::T1) {
        // Steps/Dense saved t1 already; Times saves only what was asked for.
        return Ok(Solution {
            ts: saved.ts,
            ys: saved.ys,
            n,
            stats,
            status: Status::Success,
            solver: solver.name().to_string(),
            dense: saved.dense,
        });
    }
    Ok(saved.into_solution(n, t, &y, stats, Status::Success, solver.name()))
}
