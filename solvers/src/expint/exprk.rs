//! One generic exponential Runge–Kutta step for every [`ExpTableau`], and
//! its vector–Jacobian product: the only place an exponential stage is
//! computed (the methods are data, `tableau.rs`).
//!
//! # The step
//!
//! From `(t, y)` with step `h`, `U_0 = y`, `N_0 = N(t, y)`, then for each
//! stage `U_i = φ_0(d_i hL) U_{β_i} + h Σ_j a_ij(hL) N_j`,
//! `N_i = N(t + c_i h, U_i)`, and `y_{n+1} = e^{hL} y + h Σ_j b_j(hL) N_j`
//! (error estimate `h Σ_j e_j(hL) N_j` where the method has one). The
//! operators `a_ij`, `b_j`, `e_j` for the current `h` live in the cache
//! ([`super::ops::PhiOps`]) and are recomputed only when `h` changes. Each
//! evaluation of `N` counts as one drift evaluation. Dense output is the
//! cubic Hermite interpolant through `(y_n, f_n)` and `(y_{n+1}, f_{n+1})`
//! with `f = L y + N` (one more evaluation of `f`, on interpolated steps
//! only).
//!
//! # The step VJP
//!
//! Reverse mode over the stages (Hager, Numer. Math. 87 (2000), for the
//! explicit Runge–Kutta analogue): with `ν_j = ∂L/∂N_j` and
//! `Ū_i = ∂L/∂U_i` accumulated from the output and the later stages, each
//! stage costs one VJP of `N` and the transposed operators. For a
//! parameter-dependent `L` the cotangent of `L` collects, per operator,
//! `∂⟨ȳ, Op(L) v⟩/∂L`: for a diagonal `L` from the φ-functions' derivatives
//! (`φ_k' = φ_k − k φ_{k+1}`), for a dense `L` from adjoint Fréchet
//! derivatives of the φ's (block-triangular augmented exponentials; see
//! `phi.rs`); then `p̄ += (∂L/∂p)ᵀ L̄`. The step size is a constant (the
//! controller is not differentiated).

use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{DiffusionVjp, Drift, DriftVjp, NoDiffusion};
use crate::problem::Problem;
use crate::solution::Stats;
use crate::solver::{
    DenseTable, Increment, OdeProblem, Solver, StepArgs, StepAt, StepOut, StepStatus, StepTaken,
};
use crate::step_vjp::{StepBars, StepVjp, VjpArgs, refuse_err_cotangent};

use super::ops::{MAX_TERMS, OpTerm, PhiOps};
use super::semilinear::{
    LinearPart, Semilinear, SemilinearParts, Structure, check_linear_values, linear_apply_add,
    outer_add,
};
use super::tableau::{Coef, ExpTableau};

/// An exponential Runge–Kutta method defined by a tableau. Every built-in
/// exponential method ([`super::Etd1`], [`super::LawsonEuler`],
/// [`super::Etdrk2`], [`super::Etdrk32`], [`super::Etdrk4`],
/// [`super::Krogstad`]) is one of these.
///
/// ```
/// use sdeflow_solvers::expint::{ExpRk, KROGSTAD};
/// assert_eq!(ExpRk::new(&KROGSTAD).tableau().order, 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExpRk {
    tableau: &'static ExpTableau,
}

impl ExpRk {
    /// The solver of `tableau`.
    pub const fn new(tableau: &'static ExpTableau) -> Self {
        ExpRk { tableau }
    }

    /// The tableau.
    pub fn tableau(&self) -> &'static ExpTableau {
        self.tableau
    }
}

/// Workspace of an exponential solve.
#[derive(Debug, Clone)]
pub struct ExpCache {
    n: usize,
    ops: PhiOps,
    /// Stage inputs `U_i`, `n` each.
    us: Vec<f64>,
    /// Stage values `N_i`, `n` each.
    ns: Vec<f64>,
    /// The interpolant's vectors: `f_n`, `f_{n+1}`, `(y_{n+1} − y_n)/h`.
    dense: Vec<f64>,
    poly: Vec<f64>,
    dense_done: bool,
}

/// Cubic Hermite weights of `(f_n, f_{n+1}, (y_{n+1} − y_n)/h)`, ascending
/// powers of θ.
const HERMITE: [f64; 12] = [
    0.0, 1.0, -2.0, 1.0, //
    0.0, 0.0, -1.0, 1.0, //
    0.0, 0.0, 3.0, -2.0,
];

/// What the step reads of a semilinear drift: its nonlinearity.
trait Nonlinear {
    fn eval(&self, t: f64, y: &[f64], p: &[f64], out: &mut [f64]);
}

impl<L: LinearPart, N: Drift> Nonlinear for Semilinear<L, N> {
    #[inline(always)]
    fn eval(&self, t: f64, y: &[f64], p: &[f64], out: &mut [f64]) {
        self.nonlinear.drift(t, y, p, out)
    }
}

impl Nonlinear for dyn SemilinearParts + '_ {
    #[inline(always)]
    fn eval(&self, t: f64, y: &[f64], p: &[f64], out: &mut [f64]) {
        self.nonlinear(t, y, p, out)
    }
}

/// The buffers of one step: stage inputs and values, `n × s` each.
struct Stages<'a> {
    us: &'a mut [f64],
    ns: &'a mut [f64],
}

/// One step of `tab` (module docs) from `(t, y)` of size `h` with the
/// operators `ops` (already for `h`) into `y_new` and, where the method has
/// one, `err`.
#[allow(clippy::too_many_arguments)]
fn exp_step<S: Nonlinear + ?Sized>(
    tab: &ExpTableau,
    ops: &PhiOps,
    (field, p): (&S, &[f64]),
    StepAt { t, h, y }: StepAt<'_>,
    st: Stages<'_>,
    y_new: &mut [f64],
    err: Option<&mut [f64]>,
    stats: &mut Stats,
) {
    let n = y.len();
    let Stages { us, ns } = st;
    us[..n].copy_from_slice(y);
    stats.drift_evals += 1;
    field.eval(t, y, p, &mut ns[..n]);
    for (i1, stage) in tab.stages.iter().enumerate() {
        let i = i1 + 1;
        let (done, rest) = us.split_at_mut(i * n);
        let u = &mut rest[..n];
        let base = &done[stage.base * n..(stage.base + 1) * n];
        let (nsd, nrest) = ns.split_at_mut(i * n);
        combine(
            ops,
            (ops.index.stage_exp[i1], base),
            (ops.index.stage_coefs[i1], h, stage.coefs, nsd),
            u,
        );
        stats.drift_evals += 1;
        field.eval(t + stage.c * h, u, p, &mut nrest[..n]);
    }
    combine(
        ops,
        (ops.index.out_exp, y),
        (ops.index.b, h, tab.b, ns),
        y_new,
    );
    if let Some(err) = err {
        combine(ops, (0, &[]), (ops.index.b_err, h, tab.b_err, ns), err);
    }
}

/// `out = Op_exp base + h Σ_c Op_{first + c} N_{coefs[c].stage}` (no
/// exponential term when `base` is empty), through [`PhiOps::combine`].
fn combine(
    ops: &PhiOps,
    (exp_op, base): (usize, &[f64]),
    (first, h, coefs, ns): (usize, f64, &[Coef], &[f64]),
    out: &mut [f64],
) {
    let n = out.len();
    let mut terms = [OpTerm {
        op: 0,
        f: 0.0,
        v: &[],
    }; MAX_TERMS];
    let mut k = 0;
    if !base.is_empty() {
        terms[0] = OpTerm {
            op: exp_op,
            f: 1.0,
            v: base,
        };
        k = 1;
    }
    if k + coefs.len() <= MAX_TERMS {
        for (c, cf) in coefs.iter().enumerate() {
            terms[k] = OpTerm {
                op: first + c,
                f: h,
                v: &ns[cf.stage * n..(cf.stage + 1) * n],
            };
            k += 1;
        }
        ops.combine(&terms[..k], out);
    } else {
        // more terms than the list holds (no built-in method): one by one
        ops.combine(&terms[..k], out);
        for (c, cf) in coefs.iter().enumerate() {
            ops.apply_add(first + c, h, &ns[cf.stage * n..(cf.stage + 1) * n], out);
        }
    }
}

impl<L: LinearPart, N: Drift, D: Driver> Solver<OdeProblem<Semilinear<L, N>, D>> for ExpRk {
    type Cache = ExpCache;
    const INCREMENT: Increment = Increment::None;

    fn name(&self) -> &'static str {
        self.tableau.name
    }

    fn order(&self) -> f64 {
        f64::from(self.tableau.order)
    }

    fn error_order(&self) -> Option<f64> {
        self.tableau.embedded_order.map(|q| f64::from(q) + 1.0)
    }

    /// The step ladder (4 rungs per octave around the default PI) for a
    /// method with an error estimate: its steps repeat, so its φ operators
    /// are reused from the cache instead of computed on every new step size
    /// (module docs of `mod.rs`). A controller chosen in the options is
    /// used as given.
    fn suggested_controller(&self) -> Option<crate::controller::Controller> {
        self.tableau.embedded_order.map(|_| {
            crate::controller::Controller::custom(crate::controller::StepLadder::default())
        })
    }

    fn check(&self, problem: &OdeProblem<Semilinear<L, N>, D>) -> Result<(), SolveError> {
        problem.ode_only(self.tableau.name)?;
        let n = problem.dim();
        let linear = &problem.drift.linear;
        let structure = linear.structure();
        check_linear_values(structure, n, linear.known_len(), None)?;
        if structure == Structure::ComplexDiagonal && linear.depends_on_params() {
            return Err(SolveError::Unsupported {
                solver: self.tableau.name,
                what: "a parameter-dependent complex diagonal L (its parameter gradient through \
                       the complex φ-functions is not implemented)"
                    .into(),
                alternatives: "a constant ComplexDiagonal, or the real 2 × 2 blocks as a \
                               ParamDense L"
                    .into(),
            });
        }
        let mut scratch = Vec::new();
        let vals = linear.values(n, &problem.params, &mut scratch);
        check_linear_values(structure, n, Some(vals.len()), Some(vals))
    }

    fn init(&self, problem: &OdeProblem<Semilinear<L, N>, D>) -> ExpCache {
        let n = problem.dim();
        let s = self.tableau.stages();
        let linear = &problem.drift.linear;
        let mut scratch = Vec::new();
        let lin = linear.values(n, &problem.params, &mut scratch).to_vec();
        ExpCache {
            n,
            ops: PhiOps::new(self.tableau, linear.structure(), n, lin, false),
            us: vec![0.0; s * n],
            ns: vec![0.0; s * n],
            dense: vec![0.0; 3 * n],
            poly: HERMITE.to_vec(),
            dense_done: false,
        }
    }

    fn start(&self, _cache: &mut ExpCache, _f0: &[f64], _g0: &[f64]) {}

    #[inline]
    fn step(
        &self,
        cache: &mut ExpCache,
        args: StepArgs<'_, Semilinear<L, N>, NoDiffusion>,
    ) -> StepStatus {
        let (at, StepOut { y_new, err }) = (args.at, args.out);
        let (fields, stats) = (args.fields, args.stats);
        cache.ops.ensure(at.h);
        cache.dense_done = false;
        let err = (!self.tableau.b_err.is_empty()).then_some(err);
        exp_step(
            self.tableau,
            &cache.ops,
            (fields.drift, fields.p),
            at,
            Stages {
                us: &mut cache.us,
                ns: &mut cache.ns,
            },
            y_new,
            err,
            stats,
        );
        StepStatus::Taken
    }

    fn accept(&self, _cache: &mut ExpCache) {}

    fn dense_table<'c>(&self, cache: &'c ExpCache) -> DenseTable<'c> {
        DenseTable::new(4, &cache.poly)
    }

    fn dense_stages<'c>(
        &self,
        cache: &'c mut ExpCache,
        step: StepTaken<'_, Semilinear<L, N>, NoDiffusion>,
    ) -> &'c [f64] {
        if !cache.dense_done {
            let n = cache.n;
            let StepAt { t, h, y } = step.at;
            let (f0, rest) = cache.dense.split_at_mut(n);
            let (f1, dy) = rest.split_at_mut(n);
            // f_n = L y_n + N_0 (N_0 from the step), f_{n+1} evaluated
            f0.copy_from_slice(&cache.ns[..n]);
            linear_apply_add(cache.ops.structure(), cache.ops.linear(), y, f0);
            step.fields.f(t + h, step.y_new, f1, step.stats);
            for ((d, &y1), &y0) in dy.iter_mut().zip(step.y_new).zip(y) {
                *d = (y1 - y0) / h;
            }
            cache.dense_done = true;
        }
        &cache.dense
    }
}

/// Workspace of the step VJP of [`ExpRk`].
#[derive(Debug, Clone)]
pub struct ExpVjpWork {
    n: usize,
    /// The operators (with their derivatives in `λ` for a diagonal `L`);
    /// `None` when the drift has no semilinear structure.
    ops: Option<PhiOps>,
    us: Vec<f64>,
    ns: Vec<f64>,
    /// `∂L/∂N_j` and `∂L/∂U_i`, `n` each.
    nu: Vec<f64>,
    ubar: Vec<f64>,
    y_new: Vec<f64>,
    scratch: Vec<f64>,
    /// The cotangent of `L`'s values, and (dense `L`) the weights `Σ ȳ vᵀ`
    /// of each operator.
    lbar: Vec<f64>,
    weights: Vec<f64>,
}

/// Where the cotangent of `L` collects: its values' cotangent, and (dense
/// `L`) the weights `Σ ȳ vᵀ` of each operator, with scratch of length `n`.
struct Lbar<'a> {
    lbar: &'a mut [f64],
    weights: &'a mut [f64],
    scratch: &'a mut [f64],
}

impl Lbar<'_> {
    /// Records `out += f · Op v` with output cotangent `ȳ`.
    #[inline]
    fn add(&mut self, ops: &PhiOps, op: usize, f: f64, ybar: &[f64], v: &[f64]) {
        match ops.structure() {
            Structure::Diagonal => ops.diagonal_lbar_add(op, f, ybar, v, self.lbar),
            // refused by `check`: a complex diagonal L has no parameter
            // gradient here
            Structure::ComplexDiagonal => {}
            Structure::Dense => {
                let len = v.len() * v.len();
                let w = &mut self.weights[op * len..(op + 1) * len];
                for (s, &x) in self.scratch.iter_mut().zip(v) {
                    *s = f * x;
                }
                outer_add(Structure::Dense, ybar, self.scratch, w);
            }
        }
    }
}

impl<L: LinearPart, N: Drift, D: Driver> StepVjp<OdeProblem<Semilinear<L, N>, D>> for ExpRk {
    type VjpWork = ExpVjpWork;

    fn vjp_workspace<F: DriftVjp, G: DiffusionVjp, Dx: Driver>(
        &self,
        problem: &Problem<F, G, Dx>,
    ) -> ExpVjpWork {
        let n = problem.dim();
        let s = self.tableau.stages();
        let ops = problem.drift.semilinear().map(|parts| {
            let mut lin = Vec::new();
            parts.linear_values(n, &problem.params, &mut lin);
            PhiOps::new(
                self.tableau,
                parts.structure(),
                n,
                lin,
                parts.linear_depends_on_params(),
            )
        });
        let (len, nops) = ops
            .as_ref()
            .map_or((0, 0), |o| (o.structure().len(n), o.count()));
        let dense = ops
            .as_ref()
            .is_some_and(|o| o.structure() == Structure::Dense);
        ExpVjpWork {
            n,
            us: vec![0.0; s * n],
            ns: vec![0.0; s * n],
            nu: vec![0.0; s * n],
            ubar: vec![0.0; s * n],
            y_new: vec![0.0; n],
            scratch: vec![0.0; n],
            lbar: vec![0.0; len],
            weights: if dense {
                vec![0.0; nops * len]
            } else {
                Vec::new()
            },
            ops,
        }
    }

    /// Reverses one step (module docs). On entry `bars.y = ∂L/∂y_{n+1}`; on
    /// exit `bars.y = ∂L/∂y_n`; `∂L/∂p` (through `N` and a
    /// parameter-dependent `L`) is added to `bars.p`. Takes an error
    /// cotangent when the method has an error estimate. Returns the number
    /// of VJPs of `N`.
    fn step_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut ExpVjpWork,
        args: VjpArgs<'_, F, G>,
    ) -> Result<usize, SolveError> {
        let tab = self.tableau;
        let bars = args.bars;
        if tab.b_err.is_empty() {
            refuse_err_cotangent(tab.name, bars.err)?;
        }
        crate::step_vjp::refuse_interp_cotangents(tab.name, bars.interp)?;
        let Some(parts) = args.fields.drift.semilinear() else {
            return Err(SolveError::Unsupported {
                solver: tab.name,
                what: "a drift without a semilinear structure".into(),
                alternatives: "write the drift as Semilinear::new(L, N)".into(),
            });
        };
        let p = args.fields.p;
        let StepAt { t, h, y } = args.at;
        let StepBars {
            y: lambda,
            err: err_bar,
            p: p_bar,
            ..
        } = bars;
        let ExpVjpWork {
            n,
            ops,
            us,
            ns,
            nu,
            ubar,
            y_new,
            scratch,
            lbar,
            weights,
        } = w;
        let n = *n;
        let Some(ops) = ops.as_mut() else {
            return Err(SolveError::Unsupported {
                solver: tab.name,
                what: "a workspace made for a drift without a semilinear structure".into(),
                alternatives: "write the drift as Semilinear::new(L, N)".into(),
            });
        };
        ops.ensure(h);
        let ops = &*ops;
        let idx = &ops.index;
        let with_l = parts.linear_depends_on_params();
        let mut lb = Lbar {
            lbar,
            weights,
            scratch,
        };
        // forward: the stages again
        exp_step(
            tab,
            ops,
            (parts, p),
            args.at,
            Stages {
                us: &mut *us,
                ns: &mut *ns,
            },
            y_new,
            None,
            args.stats,
        );
        nu.iter_mut().for_each(|v| *v = 0.0);
        ubar.iter_mut().for_each(|v| *v = 0.0);
        if with_l {
            lb.lbar.iter_mut().for_each(|v| *v = 0.0);
            lb.weights.iter_mut().for_each(|v| *v = 0.0);
        }
        // the output: y_new = e^{hL} y + h Σ b_j N_j (+ err = h Σ e_j N_j)
        ops.apply_t_add(idx.out_exp, 1.0, lambda, &mut ubar[..n]);
        if with_l {
            lb.add(ops, idx.out_exp, 1.0, lambda, y);
        }
        for (c, cf) in tab.b.iter().enumerate() {
            let r = cf.stage * n..(cf.stage + 1) * n;
            ops.apply_t_add(idx.b + c, h, lambda, &mut nu[r.clone()]);
            if with_l {
                lb.add(ops, idx.b + c, h, lambda, &ns[r]);
            }
        }
        if let Some(eb) = err_bar {
            for (c, cf) in tab.b_err.iter().enumerate() {
                let r = cf.stage * n..(cf.stage + 1) * n;
                ops.apply_t_add(idx.b_err + c, h, eb, &mut nu[r.clone()]);
                if with_l {
                    lb.add(ops, idx.b_err + c, h, eb, &ns[r]);
                }
            }
        }
        // the stages, last first
        let mut vjps = 0;
        for (i1, st) in tab.stages.iter().enumerate().rev() {
            let i = i1 + 1;
            let (before, rest) = ubar.split_at_mut(i * n);
            let ubar_i = &mut rest[..n];
            parts.nonlinear_vjp(
                t + st.c * h,
                &us[i * n..(i + 1) * n],
                p,
                &nu[i * n..(i + 1) * n],
                ubar_i,
                p_bar,
            );
            vjps += 1;
            let b = st.base;
            ops.apply_t_add(
                idx.stage_exp[i1],
                1.0,
                ubar_i,
                &mut before[b * n..(b + 1) * n],
            );
            if with_l {
                lb.add(ops, idx.stage_exp[i1], 1.0, ubar_i, &us[b * n..(b + 1) * n]);
            }
            for (c, cf) in st.coefs.iter().enumerate() {
                let r = cf.stage * n..(cf.stage + 1) * n;
                ops.apply_t_add(idx.stage_coefs[i1] + c, h, ubar_i, &mut nu[r.clone()]);
                if with_l {
                    lb.add(ops, idx.stage_coefs[i1] + c, h, ubar_i, &ns[r]);
                }
            }
        }
        parts.nonlinear_vjp(t, y, p, &nu[..n], &mut ubar[..n], p_bar);
        vjps += 1;
        lambda.copy_from_slice(&ubar[..n]);
        if with_l {
            if ops.structure() == Structure::Dense {
                let len = n * n;
                for op in 0..ops.count() {
                    let wo = &lb.weights[op * len..(op + 1) * len];
                    if wo.iter().any(|&v| v != 0.0) {
                        ops.frechet_adjoint_add(op, wo, lb.lbar);
                    }
                }
            }
            parts.linear_vjp_params(p, lb.lbar, p_bar);
        }
        Ok(vjps)
    }
}
