//! The coefficient operators of an exponential method for one step size:
//! every `Σ w φ_k(c hL)` its stages and output use (see `tableau.rs`),
//! computed when the step size changes and kept in the solver's cache, so a
//! fixed-step solve computes them once.
//!
//! Those of the last few step sizes are kept too (a small LRU keyed by the
//! step size: [`LRU_DIAGONAL`] sets for a diagonal `L`, [`LRU_DENSE`] for
//! a dense one): an adaptive solve that returns to a step size it used
//! recently — a retry after a rejection, a step that grows back, the
//! step sizes of a geometric ladder ([`crate::controller::StepLadder`]),
//! a backward sweep of the discrete adjoint visiting the forward steps in
//! reverse — swaps them back in instead of recomputing. Switching is `O(1)`
//! (buffers are swapped, not copied) and allocates only while the LRU
//! fills. A step size within [`SAME_H`] (relative) of the current or a kept
//! one counts as it: the ladder's steps are products of its factors, which
//! drift from their rung by round-off, and a relative change of `1e-12` in
//! `h` changes a step by far less than any tolerance.
//!
//! For a diagonal `L` each operator is a vector (scalar φ's element-wise,
//! [`super::phi::phi_all`]) and applying it allocates nothing; for a dense
//! `L` each is an `n × n` matrix from the augmented-matrix exponential
//! ([`super::phi::phi_matrices`], which allocates when `h` changes); for a
//! complex diagonal `L` ([`Structure::ComplexDiagonal`]) each is a vector of
//! complex values, `(re, im)` interleaved
//! ([`super::phi_complex::phi_all_complex`]), applied as complex products
//! on the state's pairs. With
//! `derivatives`, a diagonal `L`'s operators also keep their derivatives in
//! `λ` (`Σ w c h φ_k'(c h λ)`), which the step VJPs use for a
//! parameter-dependent `L`; a dense `L`'s parameter gradient goes through
//! Fréchet derivatives instead ([`PhiOps::frechet_adjoint_add`]).

use nalgebra::DMatrix;

use nalgebra::Complex;

use super::phi::{phi_all, phi_derivatives, phi_frechet, phi_matrices};
use super::phi_complex::phi_all_complex;
use super::semilinear::{Structure, complex_mul_add};
use super::tableau::{ExpTableau, Term};

/// Where each operator of a tableau sits in [`PhiOps`].
#[derive(Debug, Clone)]
pub(crate) struct OpIndex {
    /// Per stage `i ≥ 1` (at `i − 1`): the base's exponential.
    pub(crate) stage_exp: Vec<usize>,
    /// Per stage `i ≥ 1` (at `i − 1`): the first of its coefficients'.
    pub(crate) stage_coefs: Vec<usize>,
    /// `e^{hL}` of the output.
    pub(crate) out_exp: usize,
    /// The first of the output's coefficients.
    pub(crate) b: usize,
    /// The first of the error estimate's coefficients.
    pub(crate) b_err: usize,
}

/// One term `f · Op v` of a linear combination ([`PhiOps::combine`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpTerm<'a> {
    /// The operator.
    pub(crate) op: usize,
    /// The scalar factor.
    pub(crate) f: f64,
    /// The vector.
    pub(crate) v: &'a [f64],
}

/// The most terms a combination of [`PhiOps::combine`] takes at once in
/// the step (a stage's or the output's: the base or `y_n` and one per
/// stage; six for Hochbruck–Ostermann's output).
pub(crate) const MAX_TERMS: usize = 8;

/// Step sizes closer than this (relative) share their operators (module
/// docs).
pub const SAME_H: f64 = 1e-12;

/// Whether the step sizes `a` and `b` share their operators.
#[inline(always)]
fn same_h(a: f64, b: f64) -> bool {
    (a - b).abs() <= SAME_H * a.abs()
}

/// How many earlier step sizes' operators a diagonal `L` keeps.
pub const LRU_DIAGONAL: usize = 8;
/// How many earlier step sizes' operators a dense `L` keeps (each set is
/// `n²` values per operator).
pub const LRU_DENSE: usize = 2;

/// The operators of an earlier step size.
#[derive(Debug, Clone)]
struct Kept {
    h: f64,
    vals: Vec<f64>,
    dvals: Vec<f64>,
    /// When it was last current (a tick of [`PhiOps::ensure`]'s misses).
    used: u64,
}

/// The operators of one tableau for one step size.
#[derive(Debug, Clone)]
pub struct PhiOps {
    structure: Structure,
    n: usize,
    /// The values of `L` (diagonal or column-major dense).
    lin: Vec<f64>,
    /// The terms of each operator.
    terms: Vec<Vec<Term>>,
    pub(crate) index: OpIndex,
    scales: Vec<f64>,
    kmax: usize,
    /// The step size the operators are for (NaN: none yet).
    h: f64,
    /// Operator values, `len` each.
    vals: Vec<f64>,
    /// Their derivatives in `λ` (diagonal `L`, when asked).
    dvals: Vec<f64>,
    derivatives: bool,
    /// How many times the operators were computed.
    computed: usize,
    /// The operators of earlier step sizes (at most [`LRU_DIAGONAL`] or
    /// [`LRU_DENSE`]), and a clock for their use.
    kept: Vec<Kept>,
    tick: u64,
    scratch: Vec<f64>,
    dscratch: Vec<f64>,
    cscratch: Vec<Complex<f64>>,
}

impl PhiOps {
    /// The operators of `tab` for the linear part `lin` of `structure` on
    /// `n` components (`derivatives`: also keep those in `λ`).
    pub fn new(
        tab: &ExpTableau,
        structure: Structure,
        n: usize,
        lin: Vec<f64>,
        derivatives: bool,
    ) -> Self {
        let mut terms: Vec<Vec<Term>> = Vec::new();
        let mut stage_exp = Vec::new();
        let mut stage_coefs = Vec::new();
        let exp_of = |c: f64| {
            vec![Term {
                scale: c,
                k: 0,
                w: 1.0,
            }]
        };
        for st in tab.stages {
            stage_exp.push(terms.len());
            terms.push(exp_of(st.base_scale));
            stage_coefs.push(terms.len());
            terms.extend(st.coefs.iter().map(|c| c.terms.to_vec()));
        }
        let out_exp = terms.len();
        terms.push(exp_of(1.0));
        let b = terms.len();
        terms.extend(tab.b.iter().map(|c| c.terms.to_vec()));
        let b_err = terms.len();
        terms.extend(tab.b_err.iter().map(|c| c.terms.to_vec()));
        let (scales, kmax) = tab.scales_and_kmax();
        let len = structure.len(n);
        let nops = terms.len();
        PhiOps {
            structure,
            n,
            lin,
            index: OpIndex {
                stage_exp,
                stage_coefs,
                out_exp,
                b,
                b_err,
            },
            scales,
            kmax,
            h: f64::NAN,
            vals: vec![0.0; nops * len],
            dvals: if derivatives && structure == Structure::Diagonal {
                vec![0.0; nops * len]
            } else {
                Vec::new()
            },
            derivatives,
            computed: 0,
            kept: Vec::new(),
            tick: 0,
            scratch: vec![0.0; (kmax + 2) * 4],
            dscratch: vec![0.0; (kmax + 2) * 4],
            cscratch: vec![Complex::new(0.0, 0.0); kmax + 1],
            terms,
        }
    }

    /// The linear part's values.
    pub fn linear(&self) -> &[f64] {
        &self.lin
    }

    /// The linear part's structure.
    pub fn structure(&self) -> Structure {
        self.structure
    }

    /// Makes the operators those of the step size `h`: nothing to do when
    /// they already are, a swap when `h` is one of the kept earlier step
    /// sizes, else computed (module docs).
    #[inline]
    pub fn ensure(&mut self, h: f64) {
        if h != self.h {
            self.switch(h);
        }
    }

    /// [`PhiOps::ensure`] for a new `h`: from the LRU or computed, the
    /// current operators kept.
    fn switch(&mut self, h: f64) {
        if same_h(self.h, h) {
            return;
        }
        self.tick += 1;
        let cap = match self.structure {
            Structure::Diagonal | Structure::ComplexDiagonal => LRU_DIAGONAL,
            Structure::Dense => LRU_DENSE,
        };
        let found = self.kept.iter().position(|k| same_h(k.h, h));
        // the slot the current operators go to: the found one (a swap), an
        // empty one while the LRU fills, else the least recently used
        let slot = match found {
            Some(i) => Some(i),
            None if self.h.is_nan() => None,
            None if self.kept.len() < cap => {
                self.kept.push(Kept {
                    h: f64::NAN,
                    vals: vec![0.0; self.vals.len()],
                    dvals: vec![0.0; self.dvals.len()],
                    used: 0,
                });
                Some(self.kept.len() - 1)
            }
            None => (0..self.kept.len()).min_by_key(|&i| self.kept[i].used),
        };
        if let Some(i) = slot {
            let k = &mut self.kept[i];
            std::mem::swap(&mut k.vals, &mut self.vals);
            std::mem::swap(&mut k.dvals, &mut self.dvals);
            std::mem::swap(&mut k.h, &mut self.h);
            k.used = self.tick;
        }
        if found.is_none() {
            self.compute(h);
        }
    }

    fn compute(&mut self, h: f64) {
        self.h = h;
        self.computed += 1;
        let (n, len) = (self.n, self.structure.len(self.n));
        self.vals.iter_mut().for_each(|v| *v = 0.0);
        match self.structure {
            Structure::Diagonal => {
                let m = self.kmax + 1;
                self.dvals.iter_mut().for_each(|v| *v = 0.0);
                for (i, &lam) in self.lin.iter().enumerate() {
                    // a repeated eigenvalue (a complex mode stored as its
                    // real and imaginary parts) repeats its operators
                    if i > 0 && self.lin[i - 1] == lam {
                        for o in 0..self.terms.len() {
                            self.vals[o * len + i] = self.vals[o * len + i - 1];
                            if self.derivatives {
                                self.dvals[o * len + i] = self.dvals[o * len + i - 1];
                            }
                        }
                        continue;
                    }
                    for &c in &self.scales {
                        let z = c * h * lam;
                        phi_all(z, &mut self.scratch[..m]);
                        if self.derivatives {
                            let (d, s) = self.dscratch.split_at_mut(m);
                            phi_derivatives(z, d, &mut s[..m + 1]);
                        }
                        for (o, terms) in self.terms.iter().enumerate() {
                            for term in terms.iter().filter(|t| t.scale == c) {
                                self.vals[o * len + i] += term.w * self.scratch[term.k];
                                if self.derivatives {
                                    self.dvals[o * len + i] +=
                                        term.w * c * h * self.dscratch[term.k];
                                }
                            }
                        }
                    }
                }
            }
            Structure::ComplexDiagonal => {
                let m = self.kmax + 1;
                for i in (0..n).step_by(2) {
                    let lam = Complex::new(self.lin[i], self.lin[i + 1]);
                    for &c in &self.scales {
                        phi_all_complex(lam * (c * h), &mut self.cscratch[..m]);
                        for (o, terms) in self.terms.iter().enumerate() {
                            for term in terms.iter().filter(|t| t.scale == c) {
                                let p = self.cscratch[term.k] * term.w;
                                self.vals[o * len + i] += p.re;
                                self.vals[o * len + i + 1] += p.im;
                            }
                        }
                    }
                }
            }
            Structure::Dense => {
                let l = DMatrix::from_column_slice(n, n, &self.lin);
                for &c in &self.scales {
                    let phis = phi_matrices(&(&l * (c * h)), self.kmax);
                    for (o, terms) in self.terms.iter().enumerate() {
                        for term in terms.iter().filter(|t| t.scale == c) {
                            let dst = &mut self.vals[o * len..(o + 1) * len];
                            for (d, &v) in dst.iter_mut().zip(phis[term.k].as_slice()) {
                                *d += term.w * v;
                            }
                        }
                    }
                }
            }
        }
    }

    /// The values of operator `op`.
    #[inline(always)]
    pub(crate) fn op(&self, op: usize) -> &[f64] {
        let len = self.structure.len(self.n);
        &self.vals[op * len..(op + 1) * len]
    }

    /// `out += f · Op v`.
    #[inline]
    pub fn apply_add(&self, op: usize, f: f64, v: &[f64], out: &mut [f64]) {
        let (n, a) = (self.n, self.op(op));
        match self.structure {
            Structure::Diagonal => {
                for ((o, &d), &x) in out.iter_mut().zip(a).zip(v) {
                    *o += f * d * x;
                }
            }
            Structure::Dense => {
                for (j, &x) in v.iter().enumerate() {
                    let fx = f * x;
                    if fx != 0.0 {
                        for (o, &m) in out.iter_mut().zip(&a[j * n..(j + 1) * n]) {
                            *o += m * fx;
                        }
                    }
                }
            }
            Structure::ComplexDiagonal => complex_mul_add(a, f, v, out, false),
        }
    }

    /// `out = Σ f · Op v` over `terms`: one pass over the components per
    /// two terms for a diagonal `L` (what the step's stages and output
    /// are), with no separate clearing of `out`.
    #[inline]
    pub(crate) fn combine(&self, terms: &[OpTerm<'_>], out: &mut [f64]) {
        match self.structure {
            Structure::Diagonal => {
                let n = out.len();
                let mut rest = terms;
                match rest {
                    [] => out.iter_mut().for_each(|v| *v = 0.0),
                    [a] => {
                        let (da, va) = (&self.op(a.op)[..n], &a.v[..n]);
                        for j in 0..n {
                            out[j] = a.f * da[j] * va[j];
                        }
                        rest = &[];
                    }
                    [a, b, ..] => {
                        let (da, va) = (&self.op(a.op)[..n], &a.v[..n]);
                        let (db, vb) = (&self.op(b.op)[..n], &b.v[..n]);
                        for j in 0..n {
                            out[j] = a.f * da[j] * va[j] + b.f * db[j] * vb[j];
                        }
                        rest = &rest[2..];
                    }
                }
                while let [a, b, tail @ ..] = rest {
                    let (da, va) = (&self.op(a.op)[..n], &a.v[..n]);
                    let (db, vb) = (&self.op(b.op)[..n], &b.v[..n]);
                    for j in 0..n {
                        out[j] += a.f * da[j] * va[j] + b.f * db[j] * vb[j];
                    }
                    rest = tail;
                }
                if let [a] = rest {
                    self.apply_add(a.op, a.f, a.v, out);
                }
            }
            Structure::Dense | Structure::ComplexDiagonal => {
                out.iter_mut().for_each(|v| *v = 0.0);
                for t in terms {
                    self.apply_add(t.op, t.f, t.v, out);
                }
            }
        }
    }

    /// `out += f · Opᵀ v`.
    #[inline]
    pub fn apply_t_add(&self, op: usize, f: f64, v: &[f64], out: &mut [f64]) {
        let (n, a) = (self.n, self.op(op));
        match self.structure {
            Structure::Diagonal => self.apply_add(op, f, v, out),
            Structure::Dense => {
                for (j, o) in out.iter_mut().enumerate() {
                    let col = &a[j * n..(j + 1) * n];
                    *o += f * col.iter().zip(v).map(|(m, x)| m * x).sum::<f64>();
                }
            }
            Structure::ComplexDiagonal => complex_mul_add(a, f, v, out, true),
        }
    }

    /// For a diagonal `L`: `lbar_i += f · ȳ_i v_i ∂Op_i/∂λ_i`, the
    /// cotangent of `λ` from `out = f · Op v` with output cotangent `ȳ`.
    #[inline]
    pub fn diagonal_lbar_add(&self, op: usize, f: f64, ybar: &[f64], v: &[f64], lbar: &mut [f64]) {
        let len = self.n;
        let d = &self.dvals[op * len..(op + 1) * len];
        for (((l, &yb), &x), &di) in lbar.iter_mut().zip(ybar).zip(v).zip(d) {
            *l += f * yb * x * di;
        }
    }

    /// For a dense `L`: adds to `lbar` the cotangent of `L` from the weights
    /// `w` (`Σ ȳ vᵀ` over the products `Op v` with output cotangents `ȳ`)
    /// of operator `op`: `Σ_terms w_t c h Dφ_k(c h Lᵀ)[W]` (adjoint Fréchet
    /// derivatives; allocates).
    pub fn frechet_adjoint_add(&self, op: usize, w: &[f64], lbar: &mut [f64]) {
        let n = self.n;
        let wm = DMatrix::from_column_slice(n, n, w);
        let lt = DMatrix::from_column_slice(n, n, &self.lin).transpose();
        for term in &self.terms[op] {
            let ch = term.scale * self.h;
            let g = phi_frechet(&(&lt * ch), &wm, term.k);
            for (l, &gv) in lbar.iter_mut().zip(g.as_slice()) {
                *l += term.w * ch * gv;
            }
        }
    }

    /// How many times the operators have been computed (once per step size
    /// not among the current and the kept ones).
    pub fn computations(&self) -> usize {
        self.computed
    }

    /// Number of operators.
    pub fn count(&self) -> usize {
        self.terms.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expint::ETDRK4;

    #[test]
    fn operators_are_computed_once_per_step_size_and_match_closed_forms() {
        let lam = vec![-5.0, -0.3, -2e3];
        let mut ops = PhiOps::new(&ETDRK4, Structure::Diagonal, 3, lam.clone(), false);
        ops.ensure(1.0);
        ops.ensure(1.0);
        assert_eq!(ops.computations(), 1);
        // ETDRK4's f1 = [−4 − z + e^z (4 − 3z + z²)]/z³ (Kassam–Trefethen)
        let b0 = ops.op(ops.index.b);
        for (i, &z) in lam.iter().enumerate() {
            let f1 = (-4.0 - z + z.exp() * (4.0 - 3.0 * z + z * z)) / (z * z * z);
            assert!((b0[i] - f1).abs() < 1e-12 * f1.abs(), "{} vs {f1}", b0[i]);
        }
        ops.ensure(0.5);
        ops.ensure(0.5);
        assert_eq!(ops.computations(), 2);
    }

    #[test]
    fn earlier_step_sizes_are_swapped_back_in_and_the_least_recent_evicted() {
        let lam = vec![-5.0, -0.3, -2e3];
        let mut ops = PhiOps::new(&ETDRK4, Structure::Diagonal, 3, lam.clone(), true);
        let mut fresh = ops.clone();
        let hs: Vec<f64> = (0..LRU_DIAGONAL + 1)
            .map(|i| 0.1 * (i + 1) as f64)
            .collect();
        for &h in &hs {
            ops.ensure(h);
        }
        assert_eq!(ops.computations(), hs.len());
        // every one of them is kept: back in any order, no computation, and
        // the same values as computed afresh
        for &h in hs.iter().rev().chain(&hs) {
            ops.ensure(h);
            fresh.ensure(h);
            assert_eq!(ops.vals, fresh.vals, "h = {h}");
            assert_eq!(ops.dvals, fresh.dvals, "h = {h}");
        }
        assert_eq!(ops.computations(), hs.len());
        // one more evicts the least recently current (hs[0]) only
        ops.ensure(7.0);
        ops.ensure(hs[1]);
        assert_eq!(ops.computations(), hs.len() + 1);
        ops.ensure(hs[0]);
        assert_eq!(ops.computations(), hs.len() + 2);
    }
}
