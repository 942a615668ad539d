//! Semilinear drifts `f(t, y, p) = L(p) y + N(t, y, p)`: the problem family
//! of the exponential integrators (`../shared/DESIGN.md`, seam 1).
//!
//! [`Semilinear<L, N>`] carries the linear part `L` (a [`LinearPart`]:
//! [`Diagonal`], [`Dense`], [`ComplexDiagonal`], or parameter-dependent
//! [`ParamDiagonal`] / [`ParamDense`]) and the nonlinearity `N` (any [`Drift`]). It is itself a
//! [`Drift`], so every ODE solver (Tsit5, Bdf, Esdirk34, …) solves the same
//! problem for comparison; the exponential solvers ([`crate::expint`])
//! implement [`crate::solver::Solver`] only for problems whose drift is a
//! `Semilinear`.

use std::cell::RefCell;

use nalgebra::DMatrix;

use crate::dual::{Generic, GenericField};
use crate::error::SolveError;
use crate::field::{Drift, DriftVjp};

/// How a linear part is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structure {
    /// `L = diag(λ)`: `n` values.
    Diagonal,
    /// A dense `n × n` matrix, column-major (`L[i + j n] = L_ij`).
    Dense,
    /// A complex diagonal acting on a state of `n/2` complex values stored
    /// as `(re, im)` pairs (`y[2i] = Re u_i`, `y[2i + 1] = Im u_i`): `n`
    /// values, `(Re λ_i, Im λ_i)` interleaved, `(L y)_i = λ_i u_i`. As a
    /// real matrix it is block diagonal with blocks `[[a, −b], [b, a]]`.
    ComplexDiagonal,
}

impl Structure {
    /// Number of values of a linear part of this structure on a state of
    /// length `n`.
    pub fn len(self, n: usize) -> usize {
        match self {
            Structure::Diagonal | Structure::ComplexDiagonal => n,
            Structure::Dense => n * n,
        }
    }
}

/// The linear part `L(p)` of a semilinear drift.
pub trait LinearPart {
    /// Diagonal or dense.
    fn structure(&self) -> Structure;

    /// Whether `L` depends on the parameters (`false`: constant, and the
    /// step VJPs skip its parameter gradient).
    fn depends_on_params(&self) -> bool {
        false
    }

    /// The values of `L(p)` (`n` for a diagonal, `n × n` column-major for a
    /// dense part): borrowed from `self` when constant, else written into
    /// `scratch` (resized to [`Structure::len`] of `n`).
    fn values<'a>(&'a self, n: usize, p: &[f64], scratch: &'a mut Vec<f64>) -> &'a [f64];

    /// The length of a constant part's values (`None` for a
    /// parameter-dependent one, whose length is its output's).
    fn known_len(&self) -> Option<usize>;
}

/// The parameter gradient of a linear part: what gradients through a
/// parameter-dependent `L` need.
pub trait LinearPartVjp: LinearPart {
    /// Adds `Σ_e w_e ∂L_e/∂p_j` to `out_p[j]`, `w` of the shape of the values.
    fn vjp_params(&self, p: &[f64], w: &[f64], out_p: &mut [f64]);
}

/// A constant diagonal `L = diag(λ)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagonal(pub Vec<f64>);

impl LinearPart for Diagonal {
    fn structure(&self) -> Structure {
        Structure::Diagonal
    }
    fn values<'a>(&'a self, _n: usize, _p: &[f64], _s: &'a mut Vec<f64>) -> &'a [f64] {
        &self.0
    }
    fn known_len(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

impl LinearPartVjp for Diagonal {
    fn vjp_params(&self, _p: &[f64], _w: &[f64], _out_p: &mut [f64]) {}
}

/// A constant dense `L` (an `n × n` nalgebra matrix).
#[derive(Debug, Clone, PartialEq)]
pub struct Dense(pub DMatrix<f64>);

impl LinearPart for Dense {
    fn structure(&self) -> Structure {
        Structure::Dense
    }
    fn values<'a>(&'a self, _n: usize, _p: &[f64], _s: &'a mut Vec<f64>) -> &'a [f64] {
        self.0.as_slice()
    }
    fn known_len(&self) -> Option<usize> {
        if self.0.nrows() == self.0.ncols() {
            Some(self.0.len())
        } else {
            // a non-square matrix fits no state: report its row count squared
            // plus one, which no n matches
            Some(usize::MAX)
        }
    }
}

impl LinearPartVjp for Dense {
    fn vjp_params(&self, _p: &[f64], _w: &[f64], _out_p: &mut [f64]) {}
}

/// A constant complex diagonal `L = diag(λ)`, `λ_i ∈ ℂ`, on a state of
/// complex values stored as `(re, im)` pairs ([`Structure::ComplexDiagonal`]):
/// a Fourier operator with odd derivatives (advection `−c ∂_x → −i c k`,
/// KdV's dispersion `−∂_x³ → i k³`) acting on a field's complex
/// coefficients.
///
/// ```
/// use nalgebra::Complex;
/// use sdeflow_solvers::expint::{ComplexDiagonal, Etdrk4, Semilinear};
/// use sdeflow_solvers::prelude::*;
/// // u' = i u (a rotation), u(0) = 1: u(t) = e^{it}
/// let l = ComplexDiagonal::new(&[Complex::new(0.0, 1.0)]);
/// let f = Semilinear::new(l, |_t: f64, _y: &[f64], _p: &[f64], n: &mut [f64]| n.fill(0.0));
/// let sol = solve(&Problem::ode_field(f, vec![1.0, 0.0], (0.0, 1.0)), Etdrk4, Options::default().fixed_step(0.5))?;
/// assert!((sol.last()[0] - 1f64.cos()).abs() < 1e-15 && (sol.last()[1] - 1f64.sin()).abs() < 1e-15);
/// # Ok::<(), SolveError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ComplexDiagonal {
    /// `(Re λ_i, Im λ_i)` interleaved.
    vals: Vec<f64>,
}

impl ComplexDiagonal {
    /// The diagonal `λ`.
    pub fn new(lambda: &[nalgebra::Complex<f64>]) -> Self {
        ComplexDiagonal {
            vals: lambda.iter().flat_map(|z| [z.re, z.im]).collect(),
        }
    }

    /// `λ_i`.
    pub fn get(&self, i: usize) -> nalgebra::Complex<f64> {
        nalgebra::Complex::new(self.vals[2 * i], self.vals[2 * i + 1])
    }

    /// Number of complex entries.
    pub fn len(&self) -> usize {
        self.vals.len() / 2
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.vals.is_empty()
    }
}

impl LinearPart for ComplexDiagonal {
    fn structure(&self) -> Structure {
        Structure::ComplexDiagonal
    }
    fn values<'a>(&'a self, _n: usize, _p: &[f64], _s: &'a mut Vec<f64>) -> &'a [f64] {
        &self.vals
    }
    fn known_len(&self) -> Option<usize> {
        Some(self.vals.len())
    }
}

impl LinearPartVjp for ComplexDiagonal {
    fn vjp_params(&self, _p: &[f64], _w: &[f64], _out_p: &mut [f64]) {}
}

/// A diagonal `L(p)` written generically over the scalar (a
/// [`GenericField`] whose `eval(t, y, p, out)` ignores `t` and `y`, which
/// is empty, and writes the `n` diagonal entries): its parameter gradient is
/// exact, by dual numbers.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParamDiagonal<F>(pub F);

/// A dense `L(p)` written generically over the scalar (a [`GenericField`]
/// writing the `n × n` entries column-major; `t` and `y` as for
/// [`ParamDiagonal`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct ParamDense<F>(pub F);

macro_rules! param_linear {
    ($ty:ident, $structure:expr) => {
        impl<F: GenericField> LinearPart for $ty<F> {
            fn structure(&self) -> Structure {
                $structure
            }
            fn depends_on_params(&self) -> bool {
                true
            }
            fn values<'a>(&'a self, n: usize, p: &[f64], s: &'a mut Vec<f64>) -> &'a [f64] {
                s.clear();
                s.resize($structure.len(n), f64::NAN);
                let none: &[f64] = &[];
                self.0.eval(0.0, none, p, s.as_mut_slice());
                s.as_slice()
            }
            fn known_len(&self) -> Option<usize> {
                None
            }
        }

        impl<F: GenericField> LinearPartVjp for $ty<F> {
            fn vjp_params(&self, p: &[f64], w: &[f64], out_p: &mut [f64]) {
                // the VJP of `p ↦ L(p)` as a field of an empty state
                let g = Generic(ByRef(&self.0));
                g.drift_vjp(0.0, &[], p, w, &mut [], out_p);
            }
        }
    };
}

/// A borrowed generic field (so the VJP needs no clone of it).
struct ByRef<'a, F>(&'a F);

impl<F: GenericField> GenericField for ByRef<'_, F> {
    fn eval<D: crate::dual::DualNum<Primitive = f64> + Copy>(
        &self,
        t: D,
        y: &[D],
        p: &[D],
        out: &mut [D],
    ) {
        self.0.eval(t, y, p, out)
    }
}

param_linear!(ParamDiagonal, Structure::Diagonal);
param_linear!(ParamDense, Structure::Dense);

/// Checks the values `vals` of a linear part of `structure` for a state of
/// length `n`: their number (`found`, when known before evaluating) and
/// that every one is finite (an entry left unwritten is NaN).
pub fn check_linear_values(
    structure: Structure,
    n: usize,
    found: Option<usize>,
    vals: Option<&[f64]>,
) -> Result<(), SolveError> {
    let want = structure.len(n);
    let shape = match structure {
        Structure::Diagonal => format!("{n} diagonal entries"),
        Structure::Dense => format!("a {n} × {n} matrix ({want} entries)"),
        Structure::ComplexDiagonal => format!(
            "{} complex diagonal entries ({want} values, re and im interleaved)",
            n / 2
        ),
    };
    if structure == Structure::ComplexDiagonal && !n.is_multiple_of(2) {
        return Err(SolveError::invalid(
            "state for a complex diagonal L",
            format!(
                "{n} components; a complex diagonal L acts on (re, im) pairs, so the state \
                 needs an even length"
            ),
        ));
    }
    if let Some(found) = found
        && found != want
    {
        return Err(SolveError::DimensionMismatch {
            what: "linear part L".into(),
            expected: want,
            found: (found != usize::MAX).then_some(found),
            hint: format!(
                "the state has {n} components, so L must be {shape}; make y0 and L agree"
            ),
        });
    }
    if let Some(vals) = vals
        && let Some(i) = vals.iter().position(|v| !v.is_finite())
    {
        let at = match structure {
            Structure::Diagonal => format!("L[{i}]"),
            Structure::ComplexDiagonal => {
                format!("L[{}].{}", i / 2, if i % 2 == 0 { "re" } else { "im" })
            }
            Structure::Dense => format!("L[({}, {})]", i % n, i / n),
        };
        return Err(SolveError::invalid(
            at,
            format!(
                "{} is not finite (or was not written); every entry of the linear part must \
                 be a finite number",
                vals[i]
            ),
        ));
    }
    Ok(())
}

/// A semilinear drift `f(t, y, p) = L(p) y + N(t, y, p)`.
///
/// ```
/// use sdeflow_solvers::expint::{Diagonal, Semilinear, Etdrk4};
/// use sdeflow_solvers::prelude::*;
/// // y' = -100 y + sin(t), y(0) = 1
/// let f = Semilinear::new(Diagonal(vec![-100.0]), |t: f64, _y: &[f64], _p: &[f64], n: &mut [f64]| {
///     n[0] = t.sin()
/// });
/// let problem = Problem::ode_field(f, vec![1.0], (0.0, 1.0));
/// let exp = solve(&problem, Etdrk4, Options::default().fixed_step(0.1))?;
/// let rk = solve(&problem, Tsit5, Options::default().tol(1e-10))?;
/// assert!((exp.last()[0] - rk.last()[0]).abs() < 1e-6);
/// # Ok::<(), SolveError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Semilinear<L, N> {
    /// The linear part `L(p)`.
    pub linear: L,
    /// The nonlinearity `N(t, y, p)`.
    pub nonlinear: N,
}

impl<L: LinearPart, N: Drift> Semilinear<L, N> {
    /// The drift `L y + N(t, y, p)`.
    pub fn new(linear: L, nonlinear: N) -> Self {
        Semilinear { linear, nonlinear }
    }
}

thread_local! {
    /// Scratch of the drift's evaluations (a parameter-dependent `L`'s
    /// values, and the weights of its VJP).
    static SCRATCH: RefCell<(Vec<f64>, Vec<f64>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` with this thread's scratch (fresh ones when already borrowed).
fn with_scratch<R>(f: impl FnOnce(&mut Vec<f64>, &mut Vec<f64>) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => {
            let (a, b) = &mut *s;
            f(a, b)
        }
        Err(_) => f(&mut Vec::new(), &mut Vec::new()),
    })
}

/// `out += L y` for the values `vals` of a linear part of `structure`.
pub fn linear_apply_add(structure: Structure, vals: &[f64], y: &[f64], out: &mut [f64]) {
    let n = y.len();
    match structure {
        Structure::Diagonal => {
            for ((o, &l), &v) in out.iter_mut().zip(vals).zip(y) {
                *o += l * v;
            }
        }
        Structure::Dense => {
            for (j, &yj) in y.iter().enumerate() {
                let col = &vals[j * n..(j + 1) * n];
                for (o, &l) in out.iter_mut().zip(col) {
                    *o += l * yj;
                }
            }
        }
        Structure::ComplexDiagonal => complex_mul_add(vals, 1.0, y, out, false),
    }
}

/// `out += f · d v` pairwise in the `(re, im)` representation (`d v` the
/// complex product; with `conj`, `conj(d) v`: the transpose of the real
/// form).
#[inline]
pub(crate) fn complex_mul_add(d: &[f64], f: f64, v: &[f64], out: &mut [f64], conj: bool) {
    let s = if conj { -1.0 } else { 1.0 };
    for ((o, d), v) in out
        .chunks_exact_mut(2)
        .zip(d.chunks_exact(2))
        .zip(v.chunks_exact(2))
    {
        let (a, b) = (d[0], s * d[1]);
        o[0] += f * (a * v[0] - b * v[1]);
        o[1] += f * (b * v[0] + a * v[1]);
    }
}

/// `out += Lᵀ v` for the values `vals` of a linear part of `structure`.
pub fn linear_apply_t_add(structure: Structure, vals: &[f64], v: &[f64], out: &mut [f64]) {
    let n = v.len();
    match structure {
        Structure::Diagonal => linear_apply_add(structure, vals, v, out),
        Structure::Dense => {
            for (j, o) in out.iter_mut().enumerate() {
                let col = &vals[j * n..(j + 1) * n];
                *o += col.iter().zip(v).map(|(l, x)| l * x).sum::<f64>();
            }
        }
        Structure::ComplexDiagonal => complex_mul_add(vals, 1.0, v, out, true),
    }
}

/// `w += a bᵀ` in the shape of a linear part of `structure` (for a
/// diagonal, only the diagonal: `w_i += a_i b_i`).
pub fn outer_add(structure: Structure, a: &[f64], b: &[f64], w: &mut [f64]) {
    let n = a.len();
    match structure {
        Structure::Diagonal => {
            for ((o, &x), &y) in w.iter_mut().zip(a).zip(b) {
                *o += x * y;
            }
        }
        Structure::Dense => {
            for (j, &bj) in b.iter().enumerate() {
                if bj != 0.0 {
                    for (o, &ai) in w[j * n..(j + 1) * n].iter_mut().zip(a) {
                        *o += ai * bj;
                    }
                }
            }
        }
        Structure::ComplexDiagonal => {
            // (L b) = λ b pairwise: ∂/∂Re λ = (b_re, b_im), ∂/∂Im λ = (−b_im, b_re)
            for ((o, a), b) in w
                .chunks_exact_mut(2)
                .zip(a.chunks_exact(2))
                .zip(b.chunks_exact(2))
            {
                o[0] += a[0] * b[0] + a[1] * b[1];
                o[1] += a[1] * b[0] - a[0] * b[1];
            }
        }
    }
}

impl<L: LinearPart, N: Drift> Drift for Semilinear<L, N> {
    #[inline]
    fn drift(&self, t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
        self.nonlinear.drift(t, y, p, dy);
        let n = y.len();
        if self.linear.depends_on_params() {
            with_scratch(|s, _| {
                let vals = self.linear.values(n, p, s);
                linear_apply_add(self.linear.structure(), vals, y, dy)
            });
        } else {
            let mut none = Vec::new();
            let vals = self.linear.values(n, p, &mut none);
            linear_apply_add(self.linear.structure(), vals, y, dy);
        }
    }

    fn check_dims(&self, n: usize, n_params: usize) -> Result<(), SolveError> {
        let structure = self.linear.structure();
        if let Some(len) = self.linear.known_len() {
            check_linear_values(structure, n, Some(len), None)?;
            let mut none = Vec::new();
            let vals = self.linear.values(n, &[], &mut none);
            check_linear_values(structure, n, None, Some(vals))?;
        }
        self.nonlinear.check_dims(n, n_params)
    }

    fn jacobian(&self, t: f64, y: &[f64], p: &[f64], jac: &mut [f64]) -> bool {
        if !self.nonlinear.jacobian(t, y, p, jac) {
            return false;
        }
        let n = y.len();
        let structure = self.linear.structure();
        with_scratch(|s, _| {
            let vals = self.linear.values(n, p, s);
            match structure {
                Structure::Diagonal => {
                    for (i, &l) in vals.iter().enumerate() {
                        jac[i + i * n] += l;
                    }
                }
                Structure::Dense => {
                    for (j, &l) in jac.iter_mut().zip(vals) {
                        *j += l;
                    }
                }
                Structure::ComplexDiagonal => {
                    for i in (0..n).step_by(2) {
                        let (a, b) = (vals[i], vals[i + 1]);
                        jac[i + i * n] += a;
                        jac[i + 1 + (i + 1) * n] += a;
                        jac[i + 1 + i * n] += b;
                        jac[i + (i + 1) * n] -= b;
                    }
                }
            }
        });
        true
    }

    fn jacobian_vector(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], out: &mut [f64]) -> bool {
        if !self.nonlinear.jacobian_vector(t, y, p, v, out) {
            return false;
        }
        let n = y.len();
        with_scratch(|s, _| {
            let vals = self.linear.values(n, p, s);
            linear_apply_add(self.linear.structure(), vals, v, out)
        });
        true
    }
}

impl<L: LinearPartVjp, N: DriftVjp> DriftVjp for Semilinear<L, N> {
    fn drift_vjp(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], oy: &mut [f64], op: &mut [f64]) {
        self.nonlinear.drift_vjp(t, y, p, v, oy, op);
        let n = y.len();
        let structure = self.linear.structure();
        with_scratch(|s, w| {
            let vals = self.linear.values(n, p, s);
            linear_apply_t_add(structure, vals, v, oy);
            if self.linear.depends_on_params() {
                // ∂(L y)_i/∂L_ik = y_k: the weights v yᵀ
                w.clear();
                w.resize(structure.len(n), 0.0);
                outer_add(structure, v, y, w);
                self.linear.vjp_params(p, w, op);
            }
        });
    }

    fn semilinear(&self) -> Option<&dyn SemilinearParts> {
        Some(self)
    }
}

/// A semilinear drift seen through its parts, object-safe: what the step
/// VJPs of the exponential methods read from a drift (the protocol's
/// [`crate::step_vjp::StepVjp::step_vjp`] sees the drift as a
/// [`DriftVjp`], whose [`DriftVjp::semilinear`] hands out this view).
pub trait SemilinearParts {
    /// The linear part's structure.
    fn structure(&self) -> Structure;
    /// Whether the linear part depends on the parameters.
    fn linear_depends_on_params(&self) -> bool;
    /// Writes `L(p)` into `out` (resized to [`Structure::len`] of `n`).
    fn linear_values(&self, n: usize, p: &[f64], out: &mut Vec<f64>);
    /// Adds `Σ_e w_e ∂L_e/∂p_j` to `out_p[j]`.
    fn linear_vjp_params(&self, p: &[f64], w: &[f64], out_p: &mut [f64]);
    /// Writes `N(t, y, p)` into `out`.
    fn nonlinear(&self, t: f64, y: &[f64], p: &[f64], out: &mut [f64]);
    /// Adds `vᵀ ∂N/∂y` to `out_y` and `vᵀ ∂N/∂p` to `out_p`.
    fn nonlinear_vjp(
        &self,
        t: f64,
        y: &[f64],
        p: &[f64],
        v: &[f64],
        out_y: &mut [f64],
        out_p: &mut [f64],
    );
}

impl<L: LinearPartVjp, N: DriftVjp> SemilinearParts for Semilinear<L, N> {
    fn structure(&self) -> Structure {
        self.linear.structure()
    }
    fn linear_depends_on_params(&self) -> bool {
        self.linear.depends_on_params()
    }
    fn linear_values(&self, n: usize, p: &[f64], out: &mut Vec<f64>) {
        let mut s = Vec::new();
        let vals = self.linear.values(n, p, &mut s);
        out.clear();
        out.extend_from_slice(vals);
    }
    fn linear_vjp_params(&self, p: &[f64], w: &[f64], out_p: &mut [f64]) {
        self.linear.vjp_params(p, w, out_p)
    }
    fn nonlinear(&self, t: f64, y: &[f64], p: &[f64], out: &mut [f64]) {
        self.nonlinear.drift(t, y, p, out)
    }
    fn nonlinear_vjp(
        &self,
        t: f64,
        y: &[f64],
        p: &[f64],
        v: &[f64],
        oy: &mut [f64],
        op: &mut [f64],
    ) {
        self.nonlinear.drift_vjp(t, y, p, v, oy, op)
    }
}
