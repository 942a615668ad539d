//! The diffusion samplers as [`Solver`]s of the probability-flow family
//! [`DiffusionOde`]: a sampler states which prediction it needs, how many
//! past model outputs it keeps and how it advances one step; this file is
//! the one [`Solver`] implementation they share.
//!
//! The loop's first drift evaluation (the velocity at `(T, x_T)`) is turned
//! into the sampler's first prediction without another model call, so a
//! sampler with `k` model evaluations per step costs `k · steps` in
//! `Stats::drift_evals` (model evaluations, the NFE of the literature).
//! Multistep samplers keep their past outputs as carried state
//! ([`Solver::carried_state`]), restarted (lower-order warm-up) by
//! [`Solver::start`].

use std::fmt::Debug;

use super::model::{DiffusionOde, Model, Parametrisation, ProbabilityFlow};
use super::sampler_vjp::{AdvanceVjp, add_scaled};
use super::schedule::NoiseSchedule;
use crate::brownian::Driver;
use crate::error::SolveError;
use crate::solution::Stats;
use crate::solver::{
    DenseTable, Increment, Solver, StepArgsOf, StepAt, StepNoise, StepStatus, StepTakenOf,
};

/// The past model outputs a multistep sampler keeps, most recent first.
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    outputs: &'a [f64],
    lambdas: &'a [f64],
    len: usize,
    n: usize,
}

impl<'a> History<'a> {
    /// How many past outputs there are (fewer than kept during warm-up).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none (the first step).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `k`-th most recent past output (`k = 0`: the previous step's)
    /// and its `λ`.
    pub fn get(&self, k: usize) -> (&'a [f64], f64) {
        (&self.outputs[k * self.n..(k + 1) * self.n], self.lambdas[k])
    }
}

/// One step of a sampler from `(t, x)` to `t_next`, as
/// [`Sampler::advance`] sees it.
#[derive(Debug)]
pub struct Advance<'a, M, S> {
    /// The model and schedule.
    pub flow: &'a ProbabilityFlow<M, S>,
    /// The problem's parameters (handed to the model).
    pub p: &'a [f64],
    /// Model evaluations are counted here.
    pub stats: &'a mut Stats,
    /// Where the step starts.
    pub t: f64,
    /// Where it ends (`t_next < t`).
    pub t_next: f64,
    /// The state at `t`.
    pub x: &'a [f64],
    /// The model's prediction at `(t, x)` in [`Sampler::prediction`].
    pub m0: &'a [f64],
    /// The past predictions (empty unless [`Sampler::history`] > 0).
    pub history: History<'a>,
    /// `Sampler::scratch() · n` entries of workspace.
    pub scratch: &'a mut [f64],
    /// Where the state at `t_next` goes.
    pub x_new: &'a mut [f64],
    /// Steps taken before this one since the (re)start.
    pub index: usize,
    /// The state the sampler carried out of its previous step
    /// (`Sampler::carried() · n` entries; unset before the first step).
    pub carried: &'a [f64],
    /// Where this step writes the state it carries into the next
    /// (`Sampler::carried() · n` entries, kept when the step is accepted).
    pub carried_new: &'a mut [f64],
    /// The step's standard normal draws from the problem's noise driver
    /// (reverse-SDE samplers, [`Sampler::INCREMENT`]): `ΔW/√|Δt|` (`n`
    /// entries), then, for [`Increment::DwLevyArea`], the space–time Lévy
    /// area `H·√(12/|Δt|)` (`n` more, independent of the first). Empty in
    /// a probability-flow solve.
    pub noise: &'a [f64],
}

impl<M: Model, S: NoiseSchedule> Advance<'_, M, S> {
    /// The schedule.
    pub fn schedule(&self) -> &S {
        &self.flow.schedule
    }
}

/// A diffusion sampler: every type implementing it is a [`Solver`] of the
/// probability-flow family [`DiffusionOde`] (fixed steps on a grid,
/// e.g. [`super::TimeGrid::options`]).
pub trait Sampler: Copy + Debug {
    /// The noise its steps read: [`Increment::None`] for a sampler of the
    /// probability-flow ODE ([`DiffusionOde`]); [`Increment::Dw`] (or
    /// [`Increment::DwLevyArea`] for a second independent draw per step)
    /// for a sampler of the reverse SDE ([`super::DiffusionSde`]). Each
    /// family's solves refuse the other's samplers with a typed error.
    const INCREMENT: Increment = Increment::None;
    /// The method's name.
    fn name(&self) -> &'static str;
    /// Its order of convergence.
    fn order(&self) -> f64;
    /// The prediction its steps start from ([`Advance::m0`]).
    fn prediction(&self) -> Parametrisation;
    /// How many past predictions it keeps ([`Advance::history`]).
    fn history(&self) -> usize {
        0
    }
    /// How many state-sized vectors of workspace its steps need.
    fn scratch(&self) -> usize {
        0
    }
    /// How many state-sized vectors it carries from step to step besides
    /// its past predictions ([`Advance::carried`], e.g. UniPC's corrected
    /// state); part of the solver's carried state.
    fn carried(&self) -> usize {
        0
    }
    /// Whether it can step to a time where `σ = 0` (the data end of an
    /// `α = 1` schedule, as EDM's Heun sampler does).
    fn reaches_zero_noise(&self) -> bool {
        false
    }
    /// Whether its step from `t` reads the prediction at the step's start
    /// ([`Advance::m0`]). A sampler that moves the state before its first
    /// model evaluation (EDM's churn) returns `false` for such steps and
    /// the loop skips that evaluation; only a sampler that keeps no past
    /// predictions ([`Sampler::history`] = 0) may do so (its `m0` is then
    /// stale and must not be read, nor its cotangent written).
    fn uses_start_prediction(&self, _schedule: &dyn NoiseSchedule, _t: f64) -> bool {
        true
    }
    /// Whether its steps read [`Advance::index`] although it keeps no past
    /// predictions and carries nothing (e.g. DPM-Solver-fast's order per
    /// step): the index is then kept in the carried state, so checkpoints
    /// and the step VJP see the step's own index. (A sampler with a
    /// history or carried vectors has it kept anyway.)
    fn reads_step_index(&self) -> bool {
        false
    }
    /// Checks the sampler's own settings.
    fn check_settings(&self) -> Result<(), SolveError> {
        Ok(())
    }
    /// Checks the sampler against the problem it is about to solve: a
    /// state of `n` entries, the schedule `sched` and the span `tspan`
    /// (e.g. per-sample tables that must divide the state, or a range of
    /// `λ` they cover). Nothing by default.
    fn check_problem<S: NoiseSchedule + ?Sized>(
        &self,
        n: usize,
        sched: &S,
        tspan: (f64, f64),
    ) -> Result<(), SolveError> {
        let _ = (n, sched, tspan);
        Ok(())
    }
    /// Takes one step: writes the state at `step.t_next` into `step.x_new`.
    fn advance<M: Model, S: NoiseSchedule>(&self, step: Advance<'_, M, S>);
}

/// Whether the step of `sampler` from `t` reads the prediction at its
/// start, so the loop and the step VJP evaluate it: always for a sampler
/// that keeps past predictions (the prediction joins its history),
/// otherwise as [`Sampler::uses_start_prediction`] says.
pub(crate) fn reads_start_prediction<X: Sampler>(
    sampler: &X,
    schedule: &dyn NoiseSchedule,
    t: f64,
) -> bool {
    sampler.history() > 0 || sampler.uses_start_prediction(schedule, t)
}

/// Workspace of a sampler's solve.
#[derive(Debug, Clone)]
pub struct SamplerCache {
    n: usize,
    /// The prediction at the current `(t, x)`.
    m0: Vec<f64>,
    /// `m0` holds the loop's velocity at the start, still to be converted.
    m0_velocity: bool,
    /// ... or the reverse-SDE drift `2u − f x` ([`super::DiffusionSde`]).
    m0_reverse_drift: bool,
    m0_valid: bool,
    lambda0: f64,
    scratch: Vec<f64>,
    /// The carried state ([`Solver::carried_state`]): past predictions,
    /// most recent first, then the carried vectors, then (when either is
    /// kept) the past predictions' `λ`, the number of past predictions
    /// and the step index, so that a step VJP reads from the carried state
    /// alone what the step read ([`CarriedLayout`]).
    hist: Vec<f64>,
    /// The carried vectors the step being taken writes.
    carried_new: Vec<f64>,
    hist_lambda: Vec<f64>,
    hist_len: usize,
    index: usize,
    lin: Vec<f64>,
    /// The step's normalised noise ([`Advance::noise`]; empty for ODEs).
    z: Vec<f64>,
}

/// Where a sampler's carried state ([`Solver::carried_state`]) keeps what:
/// `history · n` past predictions (most recent first), `carried · n`
/// carried vectors, then — when either count is positive or the sampler
/// reads the step index ([`Sampler::reads_step_index`]) — the `history`
/// past `λ`, the number of past predictions and the index of the next step
/// (as floats). Empty for a sampler that keeps none of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CarriedLayout {
    pub(crate) n: usize,
    pub(crate) history: usize,
    pub(crate) carried: usize,
    pub(crate) indexed: bool,
}

impl CarriedLayout {
    pub(crate) fn of<X: Sampler>(sampler: &X, n: usize) -> Self {
        CarriedLayout {
            n,
            history: sampler.history(),
            carried: sampler.carried(),
            indexed: sampler.reads_step_index(),
        }
    }

    /// Where the `λ`s start.
    pub(crate) fn meta(&self) -> usize {
        (self.history + self.carried) * self.n
    }

    pub(crate) fn len(&self) -> usize {
        if self.history + self.carried == 0 && !self.indexed {
            0
        } else {
            self.meta() + self.history + 2
        }
    }

    /// The history, the step index and the carried vectors in `state`, a
    /// carried state of this layout.
    pub(crate) fn read<'a>(&self, state: &'a [f64]) -> (History<'a>, usize, &'a [f64]) {
        let (k, n, m) = (self.history, self.n, self.meta());
        if self.len() == 0 {
            let h = History {
                outputs: &[],
                lambdas: &[],
                len: 0,
                n,
            };
            return (h, 0, &[]);
        }
        let history = History {
            outputs: &state[..k * n],
            lambdas: &state[m..m + k],
            len: state[m + k] as usize,
            n,
        };
        (history, state[m + k + 1] as usize, &state[k * n..m])
    }
}

impl SamplerCache {
    /// Writes the `λ`s, the history length and the step index into the
    /// tail of the carried state.
    fn sync_meta(&mut self) {
        let k = self.hist_lambda.len();
        let m = k * self.n + self.carried_new.len();
        if self.hist.len() > m {
            self.hist[m..m + k].copy_from_slice(&self.hist_lambda);
            self.hist[m + k] = self.hist_len as f64;
            self.hist[m + k + 1] = self.index as f64;
        }
    }
}

impl SamplerCache {
    /// The workspace of `sampler` for a state of `n` entries.
    pub(crate) fn new<X: Sampler>(sampler: &X, n: usize) -> Self {
        let k = sampler.history();
        let carried = sampler.carried() * n;
        let layout = CarriedLayout::of(sampler, n);
        let z = noise_len(X::INCREMENT, n);
        SamplerCache {
            n,
            m0: vec![0.0; n],
            m0_velocity: false,
            m0_reverse_drift: false,
            m0_valid: false,
            lambda0: 0.0,
            scratch: vec![0.0; sampler.scratch() * n],
            hist: vec![0.0; layout.len()],
            carried_new: vec![0.0; carried],
            hist_lambda: vec![0.0; k],
            hist_len: 0,
            index: 0,
            lin: vec![0.0; n],
            z: vec![0.0; z],
        }
    }

    /// Starts a solve from the loop's first drift `f0` at `(T, x_T)`: the
    /// probability-flow velocity `u`, or the reverse-SDE drift `2u − f x`
    /// when `reverse_drift`; the first step converts it into the sampler's
    /// prediction without a model evaluation.
    pub(crate) fn start(&mut self, f0: &[f64], reverse_drift: bool) {
        self.m0.copy_from_slice(f0);
        self.m0_velocity = true;
        self.m0_reverse_drift = reverse_drift;
        self.m0_valid = true;
        self.hist_len = 0;
        self.index = 0;
        self.sync_meta();
    }

    /// Takes one step of `sampler` on `flow` with the loop's `noise`
    /// (normalised into [`Advance::noise`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn take<X: Sampler, M: Model, S: NoiseSchedule>(
        &mut self,
        sampler: &X,
        flow: &ProbabilityFlow<M, S>,
        p: &[f64],
        stats: &mut Stats,
        at: StepAt<'_>,
        noise: &StepNoise<'_>,
        x_new: &mut [f64],
    ) {
        let c = self;
        let StepAt { t, h, y } = at;
        let want = sampler.prediction();
        if c.m0_velocity {
            if c.m0_reverse_drift {
                // u = (r + f x)/2
                let f = flow.schedule.d_log_alpha(t);
                for (m, &x) in c.m0.iter_mut().zip(y) {
                    *m = 0.5 * (*m + f * x);
                }
            }
            Parametrisation::Velocity.convert(want, &flow.schedule, t, y, &mut c.m0);
            c.m0_velocity = false;
        } else if !c.m0_valid && reads_start_prediction(sampler, &flow.schedule, t) {
            flow.predict_as(want, t, y, p, &mut c.m0, stats);
        }
        c.m0_valid = true;
        c.lambda0 = flow.schedule.lambda(t);
        normalise_noise(h, noise, &mut c.z);
        let hist_end = c.hist_lambda.len() * c.n;
        sampler.advance(Advance {
            flow,
            p,
            stats,
            t,
            t_next: t + h,
            x: y,
            m0: &c.m0,
            history: History {
                outputs: &c.hist[..hist_end],
                lambdas: &c.hist_lambda,
                len: c.hist_len,
                n: c.n,
            },
            scratch: &mut c.scratch,
            x_new,
            index: c.index,
            carried: &c.hist[hist_end..hist_end + c.carried_new.len()],
            carried_new: &mut c.carried_new,
            noise: &c.z,
        });
    }

    /// The step just taken is accepted: its prediction joins the history.
    pub(crate) fn accept(&mut self) {
        let c = self;
        let (n, k) = (c.n, c.hist_lambda.len());
        if k > 0 {
            c.hist.copy_within(0..(k - 1) * n, n);
            c.hist[..n].copy_from_slice(&c.m0);
            c.hist_lambda.copy_within(0..k - 1, 1);
            c.hist_lambda[0] = c.lambda0;
            c.hist_len = (c.hist_len + 1).min(k);
        }
        let cn = c.carried_new.len();
        c.hist[k * n..k * n + cn].copy_from_slice(&c.carried_new);
        c.index += 1;
        c.m0_valid = false;
        c.sync_meta();
    }

    /// The carried state ([`Solver::carried_state`]).
    pub(crate) fn carried_state(&self) -> &[f64] {
        &self.hist
    }

    /// The linear interpolant's vector of the step from `y` to `y_new`.
    pub(crate) fn linear_stage(&mut self, h: f64, y: &[f64], y_new: &[f64]) -> &[f64] {
        crate::sde::linear_stage(h, y, y_new, &mut self.lin);
        &self.lin
    }
}

/// Implements [`Solver`] for every [`Sampler`] on the problem type
/// `$family<M, S, D>` (the probability-flow ODE, the reverse SDE): the
/// increments it draws, how the model's flow is read from the drift
/// (`|drift| flow`), whether the loop's first drift is the reverse-SDE
/// drift, and the family's check `$check(sampler, problem)`.
macro_rules! sampler_solver {
    (
        $family:ident, increment: $inc:expr, flow: |$d:ident| $flow:expr,
        reverse_drift: $rev:expr, check: $check:path
    ) => {
        impl<X: Sampler, M: Model, S: NoiseSchedule, D: Driver> Solver<$family<M, S, D>> for X {
            type Cache = SamplerCache;
            const INCREMENT: Increment = $inc;
            /// The history restarts with the lower-order warm-up.
            const RESTARTS_CARRIED_STATE: bool = true;

            fn name(&self) -> &'static str {
                Sampler::name(self)
            }

            fn order(&self) -> f64 {
                Sampler::order(self)
            }

            fn error_order(&self) -> Option<f64> {
                None
            }

            fn check(&self, problem: &$family<M, S, D>) -> Result<(), SolveError> {
                $check(self, problem)
            }

            fn init(&self, problem: &$family<M, S, D>) -> SamplerCache {
                SamplerCache::new(self, problem.dim())
            }

            fn start(&self, c: &mut SamplerCache, f0: &[f64], _g0: &[f64]) {
                c.start(f0, $rev);
            }

            fn step(
                &self,
                c: &mut SamplerCache,
                args: StepArgsOf<'_, $family<M, S, D>>,
            ) -> StepStatus {
                let $d = args.fields.drift;
                let (flow, p) = ($flow, args.fields.p);
                c.take(
                    self,
                    flow,
                    p,
                    args.stats,
                    args.at,
                    args.noise,
                    args.out.y_new,
                );
                StepStatus::Taken
            }

            fn accept(&self, c: &mut SamplerCache) {
                c.accept();
            }

            fn carried_state<'c>(&self, c: &'c SamplerCache) -> &'c [f64] {
                c.carried_state()
            }

            fn dense_table<'c>(&self, _c: &'c SamplerCache) -> DenseTable<'c> {
                crate::sde::linear_table()
            }

            fn dense_stages<'c>(
                &self,
                c: &'c mut SamplerCache,
                step: StepTakenOf<'_, $family<M, S, D>>,
            ) -> &'c [f64] {
                c.linear_stage(step.at.h, step.at.y, step.y_new)
            }
        }
    };
}
pub(crate) use sampler_solver;

sampler_solver!(
    DiffusionOde, increment: Increment::None, flow: |drift| drift,
    reverse_drift: false, check: check_ode
);

/// What a sampler needs of a probability-flow problem: to draw no noise,
/// an ODE, a span it can run, its own settings.
fn check_ode<X: Sampler, M: Model, S: NoiseSchedule, D: Driver>(
    sampler: &X,
    problem: &DiffusionOde<M, S, D>,
) -> Result<(), SolveError> {
    let name = Sampler::name(sampler);
    if X::INCREMENT != Increment::None {
        return Err(SolveError::Unsupported {
            solver: name,
            what: "the probability-flow ODE (it samples the reverse SDE, drawing noise from \
                   the problem's driver)"
                .into(),
            alternatives: "build the problem with diffusion::reverse_sde, or sample the ODE \
                           with Ddim, DpmSolverPP2M, ..."
                .into(),
        });
    }
    problem.ode_only(name)?;
    let sched = &problem.drift.schedule;
    check_span(name, problem.tspan, sched, sampler.reaches_zero_noise())?;
    sampler.check_settings()?;
    sampler.check_problem(problem.dim(), sched, problem.tspan)
}

/// Checks the span `(t0, t1)` a sampler named `name` runs on under
/// `sched`: from the noise end down to the data end inside the schedule's
/// times (the data end may have `σ = 0` when `reaches_zero_noise`).
pub(crate) fn check_span<S: NoiseSchedule + ?Sized>(
    name: &'static str,
    (t0, t1): (f64, f64),
    sched: &S,
    reaches_zero_noise: bool,
) -> Result<(), SolveError> {
    sched.check_time("tspan.0 (the noise end)", t0)?;
    let zero_ok = reaches_zero_noise && sched.sigma(t1) == 0.0;
    if !zero_ok {
        sched.check_time("tspan.1 (the data end)", t1)?;
    }
    if t1.partial_cmp(&t0) != Some(std::cmp::Ordering::Less) {
        return Err(SolveError::InvalidInput {
            what: "tspan".into(),
            reason: format!(
                "{name} runs from noise to data, from a larger to a smaller time, but the \
                 span is ({t0}, {t1})"
            ),
        });
    }
    Ok(())
}

/// Writes the step's normalised noise ([`Advance::noise`]) into `z`:
/// `ΔW/√|h|` into the first half, then, when `z` has room for it, the
/// Lévy area `H √(12/|h|)`; nothing for an empty `z` (an ODE sampler).
pub(crate) fn normalise_noise(h: f64, noise: &StepNoise<'_>, z: &mut [f64]) {
    if z.is_empty() {
        return;
    }
    let n = noise.dw.len().min(z.len());
    let r = 1.0 / h.abs().sqrt();
    for (z, &w) in z[..n].iter_mut().zip(noise.dw) {
        *z = r * w;
    }
    if z.len() > n {
        let r = (12.0 / h.abs()).sqrt();
        for (z, &w) in z[n..].iter_mut().zip(noise.levy_h) {
            *z = r * w;
        }
    }
}

/// The length of a sampler's normalised noise ([`Advance::noise`]) for a
/// state of `n` entries.
pub(crate) fn noise_len(increment: Increment, n: usize) -> usize {
    match increment {
        Increment::None => 0,
        Increment::DwLevyArea => 2 * n,
        _ => n,
    }
}

/// `x_new = a x + b m`, elementwise.
#[inline(always)]
pub(crate) fn lin2(x_new: &mut [f64], a: f64, x: &[f64], b: f64, m: &[f64]) {
    for ((o, &xv), &mv) in x_new.iter_mut().zip(x).zip(m) {
        *o = a * xv + b * mv;
    }
}

/// `α_t/α_s`, `σ_t/σ_s` and `h = λ_t − λ_s` of a step from `s` to `t`.
#[inline]
pub(crate) fn ratios<S: NoiseSchedule + ?Sized>(sched: &S, s: f64, t: f64) -> (f64, f64, f64) {
    let (las, lat) = (sched.log_alpha(s), sched.log_alpha(t));
    let (ss, st) = (sched.sigma(s), sched.sigma(t));
    (
        (lat - las).exp(),
        st / ss,
        sched.lambda(t) - sched.lambda(s),
    )
}

/// `φ1 = e^{−h} − 1`, `φ2 = φ1/h + 1`, `φ3 = φ2/h − ½` of the data-prediction
/// (DPM-Solver++) steps: `−h φ_1(−h)`, `h φ_2(−h)`, `−h φ_3(−h)` in the
/// exponential integrators' φ-functions ([`crate::expint::phi`], accurate
/// near `h = 0` where the direct formulas lose digits).
pub(crate) fn data_phis(h: f64) -> (f64, f64, f64) {
    let mut phi = [0.0; 4];
    crate::expint::phi::phi_all(-h, &mut phi);
    ((-h).exp_m1(), h * phi[2], -h * phi[3])
}

/// The two exponential-integrator forms of a step from `s` to `t` of the
/// probability-flow ODE with a frozen prediction (Lu et al., DPM-Solver
/// and DPM-Solver++; `../shared/reference/exponential.md` §4): the state
/// ratio and the coefficient of the prediction in `x_t = r x_s + c m_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// Noise prediction: `r = α_t/α_s`, `c = −σ_t (e^h − 1)`.
    Noise,
    /// Data prediction: `r = σ_t/σ_s`, `c = −α_t (e^{−h} − 1)`.
    Data,
}

impl Form {
    /// The prediction this form steps with.
    pub(crate) fn parametrisation(self) -> Parametrisation {
        match self {
            Form::Noise => Parametrisation::Noise,
            Form::Data => Parametrisation::Data,
        }
    }

    /// `(r, c)` of the first-order step from `s` to `t` over `h` in λ
    /// (`h` given, so that a sub-step to `t(λ_s + r h)` uses `r h`).
    pub(crate) fn first_order<S: NoiseSchedule + ?Sized>(
        self,
        sched: &S,
        (s, t): (f64, f64),
        h: f64,
    ) -> (f64, f64) {
        let (ra, rs, _) = ratios(sched, s, t);
        match self {
            Form::Noise => (ra, -sched.sigma(t) * h.exp_m1()),
            Form::Data => (rs, -sched.alpha(t) * (-h).exp_m1()),
        }
    }

    /// The singlestep second-order step (DPM-Solver-2 in the noise form,
    /// DPM-Solver++(2S) in the data form) with the intermediate point at
    /// `λ_s + r1 h`: `u = r_1 x + c_1 m_s`, then
    /// `x_t = r x + c (m_s + (m(u) − m_s)/(2 r1))`.
    pub(crate) fn singlestep2<M: Model, S: NoiseSchedule>(self, r1: f64, st: Advance<'_, M, S>) {
        let Advance {
            flow,
            p,
            stats,
            t,
            t_next,
            x,
            m0,
            scratch,
            x_new,
            ..
        } = st;
        let sched = &flow.schedule;
        let h = sched.lambda(t_next) - sched.lambda(t);
        let s1 = sched.t_of_lambda(sched.lambda(t) + r1 * h);
        let (r_1, c_1) = self.first_order(sched, (t, s1), r1 * h);
        let n = x.len();
        let (u, m1) = scratch.split_at_mut(n);
        lin2(u, r_1, x, c_1, m0);
        flow.predict_as(self.parametrisation(), s1, u, p, &mut m1[..n], stats);
        let (r, c) = self.first_order(sched, (t, t_next), h);
        let w = 1.0 / (2.0 * r1);
        for i in 0..n {
            x_new[i] = r * x[i] + c * (m0[i] + w * (m1[i] - m0[i]));
        }
    }

    /// The VJP of [`Form::singlestep2`]: with
    /// `x_t = r x + c (1 − w) m_s + c w m(u)`, `w = 1/(2 r1)`, the
    /// cotangent `c w x̄_t` of `m(u)` goes back through the model at
    /// `(s1, u)` to `ū`, and `u = r_1 x + c_1 m_s` sends `r_1 ū` to `x̄`
    /// and `c_1 ū` to `m̄_s`. One model VJP; `u` is recomputed from `m_s`
    /// without a model evaluation. Needs 4 vectors of scratch.
    pub(crate) fn singlestep2_vjp(self, r1: f64, st: AdvanceVjp<'_>) -> usize {
        let sched = st.flow.schedule();
        let (t, t_next) = (st.t, st.t_next);
        let h = sched.lambda(t_next) - sched.lambda(t);
        let s1 = sched.t_of_lambda(sched.lambda(t) + r1 * h);
        let (r_1, c_1) = self.first_order(sched, (t, s1), r1 * h);
        let (r, c) = self.first_order(sched, (t, t_next), h);
        let w = 1.0 / (2.0 * r1);
        let n = st.x.len();
        let (u, rest) = st.scratch.split_at_mut(n);
        let (m1_bar, rest) = rest.split_at_mut(n);
        let (u_bar, scaled) = rest.split_at_mut(n);
        lin2(u, r_1, st.x, c_1, st.m0);
        for (mb, &xb) in m1_bar.iter_mut().zip(st.x_bar_new) {
            *mb = c * w * xb;
        }
        u_bar.fill(0.0);
        let want = self.parametrisation();
        st.flow
            .predict_vjp(want, s1, u, st.p, m1_bar, &mut scaled[..n], u_bar, st.p_bar);
        add_scaled(st.x_bar, r, st.x_bar_new);
        add_scaled(st.x_bar, r_1, u_bar);
        add_scaled(st.m0_bar, c * (1.0 - w), st.x_bar_new);
        add_scaled(st.m0_bar, c_1, u_bar);
        1
    }
}
