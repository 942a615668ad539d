//! DPM-Solver-v3: the multistep exponential integrator of the
//! probability-flow ODE in the form set by the empirical model statistics
//! ([`Ems`]), with a UniPC-style corrector (Zheng, Lu, Chen, Zhu,
//! "DPM-Solver-v3: Improved Diffusion ODE Solver with Empirical Model
//! Statistics", NeurIPS 2023, arXiv 2310.13268; thu-ml/DPM-Solver-v3
//! `codebases/score_sde/samplers/dpm_solver_v3.py`,
//! `multistep_predictor_update`, `multistep_corrector_update`, `sample`;
//! `../shared/reference/diffusion.md` §4).
//!
//! With the statistics `l, s, b` (per state element, functions of `λ`),
//! `f_θ = (σ ε_θ − l x)/α = e^{−λ} ε_θ − l x/α`, `L = ∫ l`, `S = ∫ s`,
//! `β(λ) = ∫_{λ_s}^{λ} e^{−(S(μ) − S(λ_s))} b(μ) dμ` and
//! `g(λ) = e^{−(S(λ) − S(λ_s))} f_θ(λ) − β(λ)` (constant when
//! `df_θ/dλ = s f_θ + b` holds), the exact step from `s` to `t` is
//!
//! `x_t = e^{−ΔL_t} [(α_t/α_s) x_s − α_t (∫ E g dλ + ∫ E β dλ)]`,
//! `E(λ) = e^{ΔL(λ) + ΔS(λ)}`, `ΔL = L − L(λ_s)`, `ΔS = S − S(λ_s)`,
//!
//! integrals over `[λ_s, λ_t]`. Order `q` replaces `g` by its interpolating
//! polynomial through the current and the `q − 1` previous points (the
//! reference's Taylor expansion about `λ_s` with the derivatives from a
//! Vandermonde solve, `pseudo=False`: the same polynomial); in the Lagrange
//! form `∫ E g ≈ Σ_i w_i g_i`, `w_i = ∫ E ℓ_i dλ`, so a step is affine in
//! the state and the `f_θ` at the points:
//! `x_t = A x_s + Σ_i K_i f_i + C` per element. The corrector (the
//! reference's `use_corrector`) redoes the previous step `s_1 → s` once
//! `f_θ` has been evaluated at the predicted `x̃_s`, with the polynomial
//! through `λ_s` and the previous predictor's points (one point more than
//! that predictor: order `p + 1`, as UniC-p; the reference's default
//! `c_pseudo=False` uses as many points as the predictor); the next
//! predictor starts from the corrected state with the `f_θ` of `x̃_s`, as
//! the reference (which keeps `σ ε − l x̃` fixed when it replaces `x̃` by
//! the corrected state). The loop carries `x̃`; the corrected state, and the
//! past `x̃/α` that `f_θ` of the past points needs, are this sampler's
//! carried state. The last step is not corrected (no evaluation follows).
//! One model evaluation per step.
//!
//! **Statistics between grid points, integrals.** The reference rounds
//! every time step to the nearest EMS grid point (`convert_to_indexes`) and
//! takes all integrals as trapezoid sums on the EMS grid. Here the steps
//! may lie anywhere (any [`super::TimeGrid`]): `l, s, b` are interpolated
//! between the grid points by natural cubic splines in `λ` (per element;
//! [`Ems`] keeps their second derivatives), so `L`, `S` are piecewise
//! quartic and are integrated exactly, and the integrals `w_i`, `∫ E β`
//! and `β` itself are taken by 8-point Gauss–Legendre on pieces that never
//! cross an EMS cell and are at most 0.5 wide in `λ` (`β` inside `∫ E β`
//! by a nested rule). On each piece the integrands are analytic
//! (exponentials of quartics times polynomials), so the rule's error is far
//! below the solver's (≤ 1e−13 relative on a 0.5-wide piece, against local
//! errors `O(h^{q+1})`); the data-prediction statistics reproduce the
//! closed-form DPM-Solver++ coefficients to rounding (tests:
//! `tests/suite/diffusion_v3.rs`). Why splines: with piecewise-linear
//! statistics `f_θ = e^{−λ} ε − l x/α` has a jump in its derivative at every
//! grid point, a step whose interpolation straddles one errs by
//! `O(Δl' h²)`, and the global order drops to 2 (measured: 2.0–2.3 for
//! orders 2, 3 with and without the corrector on a λ-dependent table);
//! the splines are `C²`, so the jumps move to the third derivative and
//! leave the orders up to 4 intact.
//!
//! **Range and shape.** The statistics are per element of one sample and
//! broadcast over a batch: the state must have a multiple of
//! [`Ems::dim`] entries, and the span's `λ` must lie inside the
//! statistics' range; both are refused with typed errors when the solve
//! starts ([`Sampler::check_problem`]), not clamped (statistics are not
//! extrapolated silently).
//!
//! **Orders.** Warm-up: step `i` (from 0) uses order `min(order, i + 1)`.
//! [`DpmSolverV3::lower_order_final`] lowers the last steps as the
//! reference's `lower_order_final=True` does (order `min(order, steps − i)`
//! at every step count, so the last step is first order, which caps the
//! global order at 2); it is off by default.

use super::ems::Ems;
use super::lagrange::{self, GL8_W, GL8_X, outputs};
use super::model::{Model, Parametrisation};
use super::sampler::{Advance, History, Sampler};
use super::sampler_vjp::{AdvanceVjp, SamplerVjp, add_scaled};
use super::schedule::NoiseSchedule;
use crate::error::SolveError;

/// The widest quadrature piece in `λ`.
const PIECE: f64 = 0.5;
/// The most points of a step (the order-3 corrector's four).
const MAX_POINTS: usize = lagrange::MAX_NODES;

/// DPM-Solver-v3 of order 1, 2 or 3 with the empirical model statistics
/// `ems`, with the corrector (order `order + 1`) unless
/// [`DpmSolverV3::without_corrector`]; one model evaluation per step.
///
/// ```
/// use sdeflow_solvers::diffusion::*;
/// use sdeflow_solvers::prelude::*;
/// // a 1-D Gaussian N(0.5, 0.09): its exact noise prediction and flow map
/// let s = VpLinear::default();
/// let g = DiagonalGaussian::new(vec![0.5], vec![0.09])?;
/// let gm = g.clone();
/// let model = move |t: f64, x: &[f64], _p: &[f64], out: &mut [f64]| gm.noise(&s, t, x, out);
/// let prob = Problem::ode_field(
///     ProbabilityFlow::new(model, Parametrisation::Noise, s),
///     vec![1.0],
///     (1.0, 1e-3),
/// );
/// // the data-prediction statistics over the span's λ
/// let ems = Ems::data_prediction(1, s.lambda(1.0), s.lambda(1e-3), 101)?;
/// let opts = TimeGrid::UniformLambda.options(&s, 1.0, 1e-3, 20)?;
/// let sol = solve(&prob, DpmSolverV3::new(&ems, 3), opts.clone())?;
/// let mut exact = [0.0];
/// g.flow_map(&s, 1.0, 1e-3, &[1.0], &mut exact);
/// assert!((sol.last()[0] - exact[0]).abs() < 1e-3);
/// assert_eq!(sol.stats.drift_evals, 20);
/// // with them, order 1 without the corrector is DDIM
/// let first = solve(&prob, DpmSolverV3::new(&ems, 1).without_corrector(), opts.clone())?;
/// let ddim = solve(&prob, Ddim, opts)?;
/// assert!((first.last()[0] - ddim.last()[0]).abs() < 1e-12);
/// # Ok::<(), sdeflow_solvers::error::SolveError>(())
/// ```
#[derive(Clone, Copy, PartialEq)]
pub struct DpmSolverV3<'a> {
    ems: &'a Ems,
    order: usize,
    corrector: bool,
    lower_order_final: Option<usize>,
}

/// The settings and the statistics' shape (not their tables).
impl std::fmt::Debug for DpmSolverV3<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (lo, hi) = self.ems.lambda_range();
        f.debug_struct("DpmSolverV3")
            .field("order", &self.order)
            .field("corrector", &self.corrector)
            .field("lower_order_final", &self.lower_order_final)
            .field(
                "ems",
                &format_args!(
                    "dim {}, {} points on λ ∈ [{lo}, {hi}]",
                    self.ems.dim(),
                    self.ems.points()
                ),
            )
            .finish()
    }
}

impl<'a> DpmSolverV3<'a> {
    /// DPM-Solver-v3 of order `order` (1, 2 or 3; checked when solving)
    /// with the statistics `ems` and the corrector.
    pub fn new(ems: &'a Ems, order: usize) -> Self {
        DpmSolverV3 {
            ems,
            order,
            corrector: true,
            lower_order_final: None,
        }
    }

    /// The predictor alone (order `order`).
    pub fn without_corrector(mut self) -> Self {
        self.corrector = false;
        self
    }

    /// Lowers the order of the last steps of a solve of `steps` steps as
    /// the reference's `lower_order_final=True`: step `i` (from 0) has
    /// order `min(order, i + 1, steps − i)`. `steps` must be the grid's
    /// step count.
    pub fn lower_order_final(mut self, steps: usize) -> Self {
        self.lower_order_final = Some(steps);
        self
    }

    /// The statistics.
    pub fn ems(&self) -> &'a Ems {
        self.ems
    }

    /// The predictor's order at step `index`.
    fn predictor_order(&self, index: usize) -> usize {
        let q = self.order.clamp(1, 3).min(index + 1);
        match self.lower_order_final {
            Some(steps) => q.min(steps.saturating_sub(index).max(1)),
            None => q,
        }
    }

    /// Past points kept: the corrector of order `p + 1` reads `p` of them.
    fn kept(&self) -> usize {
        self.order.clamp(1, 3) - usize::from(!self.corrector)
    }
}

/// Values at a `λ` relative to a step's base point `λ_a`: `ΔL`, `ΔS` and
/// `β` (module docs).
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    dl: f64,
    ds: f64,
    beta: f64,
}

/// The integrals of one step: `w_i = ∫ E ℓ_i` over the `q` nodes and
/// `∫ E β`.
#[derive(Debug, Clone, Copy)]
struct Integrals {
    nodes: [f64; MAX_POINTS],
    q: usize,
    w: [f64; MAX_POINTS],
    e_beta: f64,
}

impl Integrals {
    /// The Lagrange basis polynomial `ℓ_i` at `lam`.
    fn basis(&self, i: usize, lam: f64) -> f64 {
        lagrange::basis(&self.nodes[..self.q], i, lam)
    }
}

/// The tables of [`Element::on_cell`] and [`Element::integral_on_cell`].
const L: usize = 0;
const S: usize = 1;
const B: usize = 2;

/// One state element's statistics, natural cubic splines in `λ`.
#[derive(Debug, Clone, Copy)]
struct Element<'e> {
    ems: &'e Ems,
    j: usize,
}

impl Element<'_> {
    /// The cell `[λ_k, λ_{k+1}]` holding `lam` (the end cells outside).
    fn cell(&self, lam: f64) -> usize {
        let k = ((lam - self.ems.lambda_range().0) / self.ems.spacing()).floor();
        if k.is_nan() || k < 0.0 {
            0
        } else {
            (k as usize).min(self.ems.points() - 2)
        }
    }

    /// The spline of table `table` (`L`, `S` or `B`) and its second
    /// moments, and where element `j` sits at the ends of cell `k`.
    fn spline(&self, k: usize, table: usize) -> (&[f64], &[f64], usize, usize) {
        let (l, s, b) = self.ems.tables();
        let (ml, ms, mb) = self.ems.moments();
        let d = self.ems.dim();
        let (v, m) = [(l, ml), (s, ms), (b, mb)][table];
        (v, m, k * d + self.j, (k + 1) * d + self.j)
    }

    /// Table `table` (`L`, `S` or `B`) at `lam` on cell `k`'s cubic piece
    /// (natural splines).
    fn on_cell(&self, k: usize, lam: f64, table: usize) -> f64 {
        let (v, m, i0, i1) = self.spline(k, table);
        let h = self.ems.spacing();
        let th = (lam - self.ems.lambda(k)) / h;
        let (u, c) = (1.0 - th, h * h / 6.0);
        let (w0, w1) = (c * (u * u * u - u), c * (th * th * th - th));
        u * v[i0] + th * v[i1] + w0 * m[i0] + w1 * m[i1]
    }

    /// `∫ l` (`L`) or `∫ s` (`S`) from `λ_k` to `lam` on cell `k`'s cubic
    /// piece.
    fn integral_on_cell(&self, k: usize, lam: f64, table: usize) -> f64 {
        let (v, m, i0, i1) = self.spline(k, table);
        let h = self.ems.spacing();
        let th = (lam - self.ems.lambda(k)) / h;
        let u = 1.0 - th;
        let (a0, a1) = (th - 0.5 * th * th, 0.5 * th * th);
        let c = h * h / 6.0;
        let w0 = c * (-0.25 * u.powi(4) + 0.5 * u * u - 0.25);
        let w1 = c * (0.25 * th.powi(4) - 0.5 * th * th);
        h * (a0 * v[i0] + a1 * v[i1] + w0 * m[i0] + w1 * m[i1])
    }

    /// `l` at `lam`.
    fn l(&self, lam: f64) -> f64 {
        self.on_cell(self.cell(lam), lam, L)
    }

    /// Whether `b` vanishes on cell `k`.
    fn b_zero_on(&self, k: usize) -> bool {
        let (b, mb) = (self.ems.tables().2, self.ems.moments().2);
        let (i0, i1) = (
            k * self.ems.dim() + self.j,
            (k + 1) * self.ems.dim() + self.j,
        );
        [b[i0], b[i1], mb[i0], mb[i1]].iter().all(|&v| v == 0.0)
    }

    /// The next EMS grid point strictly between `u` and `to`, or `to`.
    fn next_break(&self, u: f64, to: f64) -> f64 {
        let (lo, dl) = (self.ems.lambda_range().0, self.ems.spacing());
        let pos = (u - lo) / dl;
        if to > u {
            let mut k = pos.floor() + 1.0;
            if lo + k * dl <= u {
                k += 1.0;
            }
            let b = lo + k * dl;
            if b > u && b < to { b } else { to }
        } else {
            let mut k = pos.ceil() - 1.0;
            if lo + k * dl >= u {
                k -= 1.0;
            }
            let b = lo + k * dl;
            if b < u && b > to { b } else { to }
        }
    }

    /// From `from` (where the relative values are `acc`) to `to`, either
    /// direction; adds the step integrals to `integ` when given.
    fn sweep(&self, from: f64, to: f64, mut acc: Acc, mut integ: Option<&mut Integrals>) -> Acc {
        let mut u = from;
        while u != to {
            let v = self.next_break(u, to);
            let k = self.cell(0.5 * (u + v));
            let parts = ((v - u).abs() / PIECE).ceil().max(1.0) as usize;
            let has_b = !self.b_zero_on(k);
            for p in 0..parts {
                let pu = u + (v - u) * p as f64 / parts as f64;
                let pv = if p + 1 == parts {
                    v
                } else {
                    u + (v - u) * (p + 1) as f64 / parts as f64
                };
                acc = self.piece(k, (pu, pv), acc, has_b, integ.as_deref_mut());
            }
            u = v;
        }
        acc
    }

    /// One piece `[u, v]` inside cell `k` (signed width).
    fn piece(
        &self,
        k: usize,
        (u, v): (f64, f64),
        acc: Acc,
        has_b: bool,
        integ: Option<&mut Integrals>,
    ) -> Acc {
        let w = v - u;
        if w == 0.0 {
            return acc;
        }
        let (iu_l, iu_s) = (
            self.integral_on_cell(k, u, L),
            self.integral_on_cell(k, u, S),
        );
        // τ = λ − u; the inner quadrature reads one spline at a time
        let ds = |tau: f64| acc.ds + self.integral_on_cell(k, u + tau, S) - iu_s;
        let dls = |tau: f64| {
            (
                acc.dl + self.integral_on_cell(k, u + tau, L) - iu_l,
                ds(tau),
            )
        };
        let b = |tau: f64| self.on_cell(k, u + tau, B);
        // ∫_0^{τ_end} e^{−ΔS} b dτ
        let inner = |tau_end: f64| {
            if !has_b {
                return 0.0;
            }
            let half = 0.5 * tau_end;
            let mut sum = 0.0;
            for (&x, &wq) in GL8_X.iter().zip(&GL8_W) {
                for tau in [half - half * x, half + half * x] {
                    sum += wq * (-ds(tau)).exp() * b(tau);
                }
            }
            half * sum
        };
        if let Some(integ) = integ {
            let half = 0.5 * w;
            for (&x, &wq) in GL8_X.iter().zip(&GL8_W) {
                for tau in [half - half * x, half + half * x] {
                    let (dl, ds) = dls(tau);
                    let e = half * wq * (dl + ds).exp();
                    integ.e_beta += e * (acc.beta + inner(tau));
                    let lam = u + tau;
                    for i in 0..integ.q {
                        integ.w[i] += e * integ.basis(i, lam);
                    }
                }
            }
        }
        let (dl, ds) = dls(w);
        Acc {
            dl,
            ds,
            beta: acc.beta + inner(w),
        }
    }
}

/// One element's step `x_b = a x_a + Σ_i k_i f_i + c`.
#[derive(Debug, Clone, Copy, Default)]
struct ElemStep {
    a: f64,
    k: [f64; MAX_POINTS],
    c: f64,
}

/// The points of a step from base `λ_a` to `λ_b`: `nodes[0]` is `λ_b` for
/// a corrector (`with_end`), otherwise `λ_a`; then `λ_a` (corrector), then
/// the older points (decreasing `λ`, below `λ_a`). `alphas = (α_a, α_b)`.
fn elem_step(
    el: Element<'_>,
    (lam_a, lam_b): (f64, f64),
    with_end: bool,
    older: &[f64],
    (alpha_a, alpha_b): (f64, f64),
) -> ElemStep {
    let mut integ = Integrals {
        nodes: [0.0; MAX_POINTS],
        q: 0,
        w: [0.0; MAX_POINTS],
        e_beta: 0.0,
    };
    let mut accs = [Acc::default(); MAX_POINTS];
    let first = usize::from(with_end);
    if with_end {
        integ.nodes[0] = lam_b;
    }
    integ.nodes[first] = lam_a;
    integ.q = first + 1 + older.len();
    integ.nodes[first + 1..integ.q].copy_from_slice(older);
    let end = el.sweep(lam_a, lam_b, Acc::default(), Some(&mut integ));
    if with_end {
        accs[0] = end;
    }
    let (mut at, mut acc) = (lam_a, Acc::default());
    for (i, &lam) in older.iter().enumerate() {
        acc = el.sweep(at, lam, acc, None);
        accs[first + 1 + i] = acc;
        at = lam;
    }
    let e_l = (-end.dl).exp();
    let mut out = ElemStep {
        a: e_l * alpha_b / alpha_a,
        ..ElemStep::default()
    };
    let mut beta_sum = 0.0;
    for i in 0..integ.q {
        out.k[i] = -alpha_b * e_l * integ.w[i] * (-accs[i].ds).exp();
        beta_sum += integ.w[i] * accs[i].beta;
    }
    out.c = -alpha_b * e_l * (integ.e_beta - beta_sum);
    out
}

/// What a step reads for each element: the corrector's and predictor's
/// affine maps and `l` at the current and past points.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// `λ` of the current point, then of the past ones.
    lams: [f64; MAX_POINTS],
    alpha_s: f64,
    /// Points of the corrector (0: not corrected) and of the predictor.
    qc: usize,
    q: usize,
    /// Past points read (`y_m`, `ε_m` for `m = 1..=past`).
    past: usize,
    alpha_1: f64,
    alpha_t: f64,
    lam_t: f64,
}

impl DpmSolverV3<'_> {
    fn plan<S: NoiseSchedule + ?Sized>(
        &self,
        sched: &S,
        (t, t_next): (f64, f64),
        history: History<'_>,
        index: usize,
    ) -> Plan {
        let mut lams = [0.0; MAX_POINTS];
        lams[0] = sched.lambda(t);
        for (m, l) in lams.iter_mut().enumerate().skip(1).take(history.len()) {
            *l = history.get(m - 1).1;
        }
        let q = self.predictor_order(index);
        let qc = if self.corrector && index > 0 && !history.is_empty() {
            self.predictor_order(index - 1) + 1
        } else {
            0
        };
        let alpha_1 = if qc > 0 {
            sched.alpha(sched.t_of_lambda(lams[1]))
        } else {
            1.0
        };
        Plan {
            lams,
            alpha_s: sched.alpha(t),
            qc,
            q,
            past: (q - 1).max(qc.saturating_sub(1)),
            alpha_1,
            alpha_t: sched.alpha(t_next),
            lam_t: sched.lambda(t_next),
        }
    }

    /// Element `j`'s corrector and predictor maps and `l` at the points.
    fn element(&self, plan: &Plan, j: usize) -> (ElemStep, ElemStep, [f64; MAX_POINTS]) {
        let el = Element { ems: self.ems, j };
        let lams = &plan.lams;
        let mut l = [0.0; MAX_POINTS];
        for m in 0..=plan.past {
            l[m] = el.l(lams[m]);
        }
        let corr = if plan.qc > 0 {
            elem_step(
                el,
                (lams[1], lams[0]),
                true,
                &lams[2..plan.qc],
                (plan.alpha_1, plan.alpha_s),
            )
        } else {
            ElemStep::default()
        };
        let pred = elem_step(
            el,
            (lams[0], plan.lam_t),
            false,
            &lams[1..plan.q],
            (plan.alpha_s, plan.alpha_t),
        );
        (corr, pred, l)
    }
}

impl Sampler for DpmSolverV3<'_> {
    fn name(&self) -> &'static str {
        if self.corrector {
            "DPM-Solver-v3"
        } else {
            "DPM-Solver-v3 (predictor)"
        }
    }
    fn order(&self) -> f64 {
        (self.order + usize::from(self.corrector)) as f64
    }
    fn prediction(&self) -> Parametrisation {
        Parametrisation::Noise
    }
    fn history(&self) -> usize {
        self.kept()
    }
    /// The corrected state, then the past `x̃/α` (most recent first).
    fn carried(&self) -> usize {
        1 + self.kept()
    }
    fn check_settings(&self) -> Result<(), SolveError> {
        if !(1..=3).contains(&self.order) {
            return Err(SolveError::InvalidInput {
                what: "DpmSolverV3 order".into(),
                reason: format!("{} is not 1, 2 or 3", self.order),
            });
        }
        if self.lower_order_final == Some(0) {
            return Err(SolveError::InvalidInput {
                what: "DpmSolverV3 lower_order_final".into(),
                reason: "0 steps; give the number of steps of the grid".into(),
            });
        }
        Ok(())
    }
    fn check_problem<S: NoiseSchedule + ?Sized>(
        &self,
        n: usize,
        sched: &S,
        (t0, t1): (f64, f64),
    ) -> Result<(), SolveError> {
        let d = self.ems.dim();
        if !n.is_multiple_of(d) {
            return Err(SolveError::DimensionMismatch {
                what: "DpmSolverV3 state (samples of Ems::dim entries)".into(),
                expected: (n / d + 1) * d,
                found: Some(n),
                hint: format!(
                    "the statistics describe one sample of {d} entries and are broadcast over \
                     the batch: give a state of a multiple of {d} entries, or statistics \
                     estimated for this sample size"
                ),
            });
        }
        let (lo, hi) = self.ems.lambda_range();
        let slack = 1e-9 * (hi - lo);
        let (l0, l1) = (sched.lambda(t0), sched.lambda(t1));
        if l0 < lo - slack || l1 > hi + slack {
            return Err(SolveError::InvalidInput {
                what: "DpmSolverV3 span".into(),
                reason: format!(
                    "the span's λ runs over [{l0}, {l1}] but the statistics cover [{lo}, {hi}] \
                     (they are not extrapolated): estimate them over the span, or shorten \
                     the span to the statistics' range"
                ),
            });
        }
        Ok(())
    }
    fn advance<M: Model, S: NoiseSchedule>(&self, st: Advance<'_, M, S>) {
        let Advance {
            flow,
            t,
            t_next,
            x,
            m0,
            history,
            x_new,
            index,
            carried,
            carried_new,
            ..
        } = st;
        let plan = self.plan(&flow.schedule, (t, t_next), history, index);
        let (n, d) = (x.len(), self.ems.dim());
        let e_lam = plan.lams.map(|l| (-l).exp());
        // the current and past predictions, looked up once per step
        let outs = outputs(m0, history, plan.past + 1);
        for j in 0..d {
            let (corr, pred, l) = self.element(&plan, j);
            for i in (j..n).step_by(d) {
                let mut f = [0.0; MAX_POINTS];
                f[0] = e_lam[0] * m0[i] - l[0] * x[i] / plan.alpha_s;
                for m in 1..=plan.past {
                    f[m] = e_lam[m] * outs[m][i] - l[m] * carried[m * n + i];
                }
                let xc = if plan.qc > 0 {
                    let mut acc = corr.a * carried[i] + corr.c;
                    for m in 0..plan.qc {
                        acc += corr.k[m] * f[m];
                    }
                    acc
                } else {
                    x[i]
                };
                carried_new[i] = xc;
                let mut acc = pred.a * xc + pred.c;
                for m in 0..plan.q {
                    acc += pred.k[m] * f[m];
                }
                x_new[i] = acc;
            }
        }
        // the past x̃/α, shifted
        let k = self.kept();
        if k > 0 {
            for (y, &xv) in carried_new[n..2 * n].iter_mut().zip(x) {
                *y = xv / plan.alpha_s;
            }
            carried_new[2 * n..].copy_from_slice(&carried[n..k * n]);
        }
    }
}

/// The step is affine in `(x̃_s, ε_s, x^c_{s_1}, ε_m, y_m)` per element:
/// `x_t = a_p x^c_s + Σ k_p f + c_p`, `x^c_s = a_c x^c_{s_1} + Σ k_c f + c_c`
/// (or `x̃_s`), `f_0 = e^{−λ_s} ε_s − l_s x̃_s/α_s`,
/// `f_m = e^{−λ_m} ε_m − l_m y_m`, and the carried `y_0 = x̃_s/α_s`,
/// `y_m` shifted; the cotangents go back through these maps with the same
/// coefficients (the statistics are constants). No model VJP of its own.
impl SamplerVjp for DpmSolverV3<'_> {
    fn advance_vjp(&self, st: AdvanceVjp<'_>) -> usize {
        let plan = self.plan(st.schedule(), (st.t, st.t_next), st.history, st.index);
        let (n, d) = (st.x.len(), self.ems.dim());
        let e_lam = plan.lams.map(|l| (-l).exp());
        let k = self.kept();
        for j in 0..d {
            let (corr, pred, l) = self.element(&plan, j);
            for i in (j..n).step_by(d) {
                let xb_new = st.x_bar_new[i];
                let xc_bar = st.carried_bar_new[i] + pred.a * xb_new;
                let mut f_bar = [0.0; MAX_POINTS];
                for m in 0..plan.q {
                    f_bar[m] += pred.k[m] * xb_new;
                }
                if plan.qc > 0 {
                    for m in 0..plan.qc {
                        f_bar[m] += corr.k[m] * xc_bar;
                    }
                    st.carried_bar[i] += corr.a * xc_bar;
                } else {
                    st.x_bar[i] += xc_bar;
                }
                st.m0_bar[i] += e_lam[0] * f_bar[0];
                st.x_bar[i] -= l[0] / plan.alpha_s * f_bar[0];
                for m in 1..=plan.past {
                    st.history_bar[(m - 1) * n + i] += e_lam[m] * f_bar[m];
                    st.carried_bar[m * n + i] -= l[m] * f_bar[m];
                }
            }
        }
        // the carried shift (y_0 = x̃_s/α_s, y_m moved down one place) does
        // not depend on the element: once per step, after the maps above
        if k > 0 {
            for (xb, &cb) in st.x_bar.iter_mut().zip(&st.carried_bar_new[n..2 * n]) {
                *xb += cb / plan.alpha_s;
            }
            for m in 1..k {
                add_scaled(
                    &mut st.carried_bar[m * n..(m + 1) * n],
                    1.0,
                    &st.carried_bar_new[(m + 1) * n..(m + 2) * n],
                );
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `l = 1, s = b = 0`: the one-point step is DPM-Solver++1's
    /// `x_t = (σ_t/σ_s) x + α_t (1 − e^{−h}) x̂0`, here `f = −x̂0`.
    #[test]
    fn data_prediction_first_order_coefficients_are_closed_form() {
        let ems = Ems::data_prediction(1, -6.0, 6.0, 7).unwrap();
        let el = Element { ems: &ems, j: 0 };
        for (a, b) in [(-5.3, -4.1), (-1.0, 2.7), (0.3, 0.35), (-5.9, 5.9)] {
            let (al_a, al_b) = (0.7, 0.9);
            let st = elem_step(el, (a, b), false, &[], (al_a, al_b));
            let h: f64 = b - a;
            assert!((st.a - (-h).exp() * al_b / al_a).abs() < 1e-14 * st.a.abs());
            let want = -al_b * (-(-h).exp_m1());
            assert!((st.k[0] - want).abs() < 1e-13 * want.abs(), "{st:?}");
            assert_eq!(st.c, 0.0);
        }
    }

    /// The local errors of one step from exact states on a single
    /// Gaussian (its flow map is closed form), with non-trivial constant
    /// statistics (`l = 0.5, s = 0.3, b = 0.1`, where `f_θ` varies at
    /// `O(1)` rate): the predictor of order `p` is `O(h^{p+1})`, the
    /// corrected state `O(h^{p+2})`. Fitted over five `h` (a factor 16),
    /// asserted within 0.3 of theory. (The global fits of
    /// `tests/suite/diffusion_v3.rs` are capped by the warm-up's first
    /// order-1 step; this isolates the steps.)
    #[test]
    fn local_errors_of_the_steps_have_their_orders() {
        use super::super::sampler::CarriedLayout;
        use super::super::{DiagonalGaussian, ProbabilityFlow, VpLinear};
        use crate::solution::Stats;
        let s = VpLinear::default();
        let g = DiagonalGaussian::new(vec![0.5, -1.0], vec![0.09, 2.0]).unwrap();
        let gm = g.clone();
        let model = move |t: f64, x: &[f64], _p: &[f64], out: &mut [f64]| gm.noise(&s, t, x, out);
        let flow = ProbabilityFlow::new(model, Parametrisation::Noise, s);
        let ems = Ems::constant(2, -6.0, 6.0, 25, (0.5, 0.3, 0.1)).unwrap();
        let t0 = s.t_of_lambda(-4.0);
        let x_start = [1.3, -0.7];
        let exact = |lam: f64| {
            let mut out = [0.0; 2];
            g.flow_map(&s, t0, s.t_of_lambda(lam), &x_start, &mut out);
            out
        };
        let eps = |lam: f64, x: &[f64]| {
            let mut out = [0.0; 2];
            g.noise(&s, s.t_of_lambda(lam), x, &mut out);
            out
        };
        let n = 2;
        let lam_s = 0.5;
        let hs = [0.4, 0.2, 0.1, 0.05, 0.025];
        let slope = |errs: &[f64]| {
            let xs: Vec<f64> = hs.iter().map(|h: &f64| h.ln()).collect();
            let ys: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
            let (mx, my) = (xs.iter().sum::<f64>() / 5.0, ys.iter().sum::<f64>() / 5.0);
            let num: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
            num / xs.iter().map(|x| (x - mx).powi(2)).sum::<f64>()
        };
        for order in 1..=3 {
            for corrector in [false, true] {
                let mut v3 = DpmSolverV3::new(&ems, order);
                if !corrector {
                    v3 = v3.without_corrector();
                }
                let k = v3.kept();
                let layout = CarriedLayout {
                    n,
                    history: k,
                    carried: 1 + k,
                    indexed: false,
                };
                let (mut pred_err, mut corr_err) = (Vec::new(), Vec::new());
                for h in hs {
                    // past outputs, then [corrected x at λ_1, x(λ_m)/α_m], λ_m, len, index
                    let mut state = vec![0.0; layout.len()];
                    for m in 1..=k {
                        let lam = lam_s - m as f64 * h;
                        let x = exact(lam);
                        state[(m - 1) * n..m * n].copy_from_slice(&eps(lam, &x));
                        let a = s.alpha(s.t_of_lambda(lam));
                        let y = (k + m) * n;
                        state[y..y + n].copy_from_slice(&[x[0] / a, x[1] / a]);
                        state[layout.meta() + m - 1] = lam;
                    }
                    if k > 0 {
                        state[k * n..(k + 1) * n].copy_from_slice(&exact(lam_s - h));
                        state[layout.meta() + k] = k as f64;
                        state[layout.meta() + k + 1] = 5.0;
                    }
                    let (history, _, carried) = layout.read(&state);
                    let x = exact(lam_s);
                    let m0 = eps(lam_s, &x);
                    let (mut x_new, mut carried_new) = ([0.0; 2], vec![0.0; (1 + k) * n]);
                    let mut stats = Stats::default();
                    let t_next = s.t_of_lambda(lam_s + h);
                    v3.advance(Advance {
                        flow: &flow,
                        p: &[],
                        stats: &mut stats,
                        t: s.t_of_lambda(lam_s),
                        t_next,
                        x: &x,
                        m0: &m0,
                        history,
                        scratch: &mut [],
                        x_new: &mut x_new,
                        index: 5,
                        carried,
                        carried_new: &mut carried_new,
                        noise: &[],
                    });
                    let err = |a: &[f64], b: &[f64]| (a[0] - b[0]).abs().max((a[1] - b[1]).abs());
                    pred_err.push(err(&x_new, &exact(lam_s + h)));
                    corr_err.push(err(&carried_new[..n], &x));
                }
                let p = slope(&pred_err);
                println!("v3-{order} (corrector {corrector}) predictor: {p:.3}, {pred_err:?}");
                assert!((p - order as f64 - 1.0).abs() < 0.3, "{order}: {p}");
                if corrector {
                    let c = slope(&corr_err);
                    println!("  corrected state: {c:.3}, {corr_err:?}");
                    assert!((c - order as f64 - 2.0).abs() < 0.3, "{order}: {c}");
                }
            }
        }
    }

    /// The splines between the grid points: `l = sin λ` on 41 points
    /// (spacing 0.3) is matched to `O(δ⁴)` away from the natural ends,
    /// and the cell integrals are the antiderivative's differences.
    #[test]
    fn spline_values_and_integrals_follow_a_smooth_table() {
        let (lo, hi, pts) = (-6.0, 6.0, 41);
        let l: Vec<f64> = (0..pts).map(|k| (lo + 0.3 * k as f64).sin()).collect();
        let ems = Ems::from_tables(1, lo, hi, pts, l, vec![0.0; pts], vec![0.0; pts]).unwrap();
        let el = Element { ems: &ems, j: 0 };
        for k in 5..pts - 6 {
            let lam = ems.lambda(k) + 0.13;
            let v = el.on_cell(k, lam, L);
            assert!((v - lam.sin()).abs() < 2e-4, "{k}: {v} vs {}", lam.sin());
            let int = el.integral_on_cell(k, lam, L);
            let want = ems.lambda(k).cos() - lam.cos();
            assert!((int - want).abs() < 2e-5, "{k}: {int} vs {want}");
            // the sweep sums the cells: ∫ over several cells
            let acc = el.sweep(ems.lambda(k), lam + 1.0, Acc::default(), None);
            let want = ems.lambda(k).cos() - (lam + 1.0).cos();
            assert!((acc.dl - want).abs() < 1e-4, "{k}: {} vs {want}", acc.dl);
        }
    }

    /// Constant `s`, `b`: `β(λ) = b (e^{−s τ} − 1)/(−s)`, `τ = λ − λ_a`,
    /// and `∫ E β` in closed form with constant `l`.
    #[test]
    fn beta_and_its_integral_are_closed_form() {
        let (l, s, b) = (0.5, 0.3, 0.1);
        let ems = Ems::constant(1, -6.0, 6.0, 4, (l, s, b)).unwrap();
        let el = Element { ems: &ems, j: 0 };
        let (a, bb) = (-2.2, 1.9);
        let h: f64 = bb - a;
        let end = el.sweep(a, bb, Acc::default(), None);
        let beta = b * (-s * h).exp_m1() / (-s);
        assert!((end.beta - beta).abs() < 1e-14, "{end:?} vs {beta}");
        assert!((end.dl - l * h).abs() < 1e-14 && (end.ds - s * h).abs() < 1e-14);
        // backwards: τ < 0
        let back = el.sweep(a, a - 1.3, Acc::default(), None);
        assert!((back.beta - b * (s * 1.3f64).exp_m1() / (-s)).abs() < 1e-14);
        // ∫_0^h e^{(l+s)τ} b (e^{−sτ} − 1)/(−s) dτ
        let st = elem_step(el, (a, bb), false, &[], (1.0, 1.0));
        let e_beta = b / (-s) * ((l * h).exp_m1() / l - ((l + s) * h).exp_m1() / (l + s));
        let want_c = -(-l * h).exp() * e_beta;
        assert!(
            (st.c - want_c).abs() < 1e-14 * want_c.abs(),
            "{} vs {want_c}",
            st.c
        );
    }
}
