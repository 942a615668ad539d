//! Fields written once, generic over the scalar, and differentiated exactly
//! with forward-mode dual numbers (`num-dual`).
//!
//! Implement [`GenericField`] on a struct, wrap it in [`Generic`], and the
//! result is a [`Drift`] (and [`Diffusion`]) whose Jacobian and
//! Jacobian–vector products are exact — no finite differences, no hand-written
//! derivatives:
//!
//! ```
//! use sdeflow_solvers::dual::{DualNum, Generic, GenericField};
//! use sdeflow_solvers::field::Drift;
//!
//! struct VanDerPol;
//! impl GenericField for VanDerPol {
//!     fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], dy: &mut [D]) {
//!         dy[0] = y[1];
//!         dy[1] = p[0] * (D::from(1.0) - y[0] * y[0]) * y[1] - y[0];
//!     }
//! }
//! let f = Generic(VanDerPol);
//! let mut jac = [0.0; 4];
//! assert!(f.jacobian(0.0, &[2.0, 0.0], &[10.0], &mut jac));
//! // ∂f1/∂y0 = -2 μ y0 y1 - 1 = -1 at y1 = 0
//! assert_eq!(jac[1], -1.0);
//! ```
//!
//! As a diffusion, a `Generic` field also has the exact VJP of Milstein's
//! correction `(∂g/∂y) g` ([`DiffusionVjp::milstein_term_vjp`], second
//! derivatives by hyper-dual numbers), so the discrete adjoint of
//! `Milstein::exact()` works with it.

use num_dual::HyperDual64;
pub use num_dual::{Dual64, DualNum};

use crate::error::SolveError;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};

/// A vector field written generically over the scalar type `D`, so that it
/// can be evaluated on `f64` and on forward-mode dual numbers.
pub trait GenericField {
    /// Writes the field at `(t, y)` with parameters `p` into `out`.
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, y: &[D], p: &[D], out: &mut [D]);

    /// Checks, before any evaluation, that this field fits a state of
    /// length `n`, `n_params` parameters and an output of `len` entries
    /// ([`Drift::check_dims`], [`Diffusion::check_dims`]). The default
    /// accepts anything.
    fn check_dims(&self, _n: usize, _n_params: usize, _len: usize) -> Result<(), SolveError> {
        Ok(())
    }
}

/// Wraps a [`GenericField`] into a [`Drift`] / [`Diffusion`] with exact
/// Jacobians by forward-mode duals (one dual evaluation per Jacobian column
/// or per Jacobian–vector product).
#[derive(Debug, Clone, Copy, Default)]
pub struct Generic<F>(pub F);

/// Which input a dual evaluation differentiates along.
#[derive(Clone, Copy)]
enum Seed<'a> {
    /// The state, along `v`.
    State(&'a [f64]),
    /// The parameters, along `v`.
    Params(&'a [f64]),
    /// State component `j`.
    StateAxis(usize),
    /// Parameter `j`.
    ParamAxis(usize),
}

impl Seed<'_> {
    /// The derivative part this seed gives to component `i` of the state
    /// (`of_state`) or of the parameters.
    #[inline]
    fn eps(self, i: usize, of_state: bool) -> f64 {
        match (self, of_state) {
            (Seed::State(v), true) | (Seed::Params(v), false) => v[i],
            (Seed::StateAxis(j), true) | (Seed::ParamAxis(j), false) if j == i => 1.0,
            _ => 0.0,
        }
    }
}

/// Where a field is evaluated: time, state and parameters.
#[derive(Clone, Copy)]
struct Point<'a> {
    t: f64,
    y: &'a [f64],
    p: &'a [f64],
}

/// Per-thread dual buffers, so that Jacobian products allocate nothing
/// after the first call on a thread.
#[derive(Default)]
struct DualScratch {
    y: Vec<Dual64>,
    p: Vec<Dual64>,
    out: Vec<Dual64>,
    hy: Vec<HyperDual64>,
    hp: Vec<HyperDual64>,
    hout: Vec<HyperDual64>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<DualScratch> = std::cell::RefCell::new(DualScratch::default());
}

/// Runs `f` with this thread's scratch (a fresh one if a field evaluated
/// inside `f` is itself differentiated).
fn with_scratch<R>(f: impl FnOnce(&mut DualScratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut DualScratch::default()),
    })
}

impl<F: GenericField> Generic<F> {
    /// One dual evaluation at `at` along `seed`: writes the derivative part
    /// into `out` (the field's output length).
    fn directional_in(&self, s: &mut DualScratch, at: Point<'_>, seed: Seed<'_>, out: &mut [f64]) {
        self.eval_seeded(s, at, seed, out.len());
        for (o, d) in out.iter_mut().zip(&s.out) {
            *o = d.eps;
        }
    }

    /// `(∂f/∂p) v` (parameter direction `v`, length of `p`) by one dual
    /// evaluation.
    pub fn param_jacobian_vector(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], out: &mut [f64]) {
        with_scratch(|s| self.directional_in(s, Point { t, y, p }, Seed::Params(v), out))
    }

    /// Evaluates at `at` along `seed` into the scratch's output buffer (of
    /// length `len`).
    fn eval_seeded(&self, s: &mut DualScratch, at: Point<'_>, seed: Seed<'_>, len: usize) {
        s.y.clear();
        s.y.extend(
            at.y.iter()
                .enumerate()
                .map(|(i, &a)| Dual64::new(a, seed.eps(i, true))),
        );
        s.p.clear();
        s.p.extend(
            at.p.iter()
                .enumerate()
                .map(|(i, &a)| Dual64::new(a, seed.eps(i, false))),
        );
        s.out.clear();
        s.out.resize(len, Dual64::from(0.0));
        self.0.eval(Dual64::from(at.t), &s.y, &s.p, &mut s.out);
    }

    /// `wᵀ ∂(Lg)/∂e` for `Lg = (∂g/∂y) g` and the input axis `e` (a state
    /// or parameter axis), with one dual and one hyper-dual evaluation.
    ///
    /// The dual evaluation along `e` gives `g + ε ∂g/∂e`. The hyper-dual
    /// one evaluates `g` at `y + ε₁ g + ε₂ e_y + ε₁ε₂ ∂g/∂e`, `p + ε₂ e_p`,
    /// whose `ε₁ε₂` part is `∂²g[g, e] + (∂g/∂y) ∂g/∂e = ∂(Lg)/∂e` (the
    /// `ε₁` part is `Lg` itself, the `ε₂` part `∂g/∂e`).
    fn milstein_term_axis(
        &self,
        s: &mut DualScratch,
        at: Point<'_>,
        axis: Seed<'_>,
        w: &[f64],
    ) -> f64 {
        let n = at.y.len();
        self.eval_seeded(s, at, axis, n);
        s.hy.clear();
        s.hy.extend(
            at.y.iter()
                .zip(&s.out)
                .enumerate()
                .map(|(i, (&a, gd))| HyperDual64::new(a, gd.re, axis.eps(i, true), gd.eps)),
        );
        s.hp.clear();
        s.hp.extend(
            at.p.iter()
                .enumerate()
                .map(|(i, &a)| HyperDual64::new(a, 0.0, axis.eps(i, false), 0.0)),
        );
        s.hout.clear();
        s.hout.resize(n, HyperDual64::from_re(0.0));
        self.0
            .eval(HyperDual64::from_re(at.t), &s.hy, &s.hp, &mut s.hout);
        s.hout.iter().zip(w).map(|(d, wi)| d.eps1eps2 * wi).sum()
    }

    /// Adds `vᵀ ∂f/∂y` to `oy` and `vᵀ ∂f/∂p` to `op` for an output of the
    /// length of `v`: one dual evaluation per state and per parameter
    /// component (columns of the Jacobians), each contracted with `v`.
    fn vjp_any(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], oy: &mut [f64], op: &mut [f64]) {
        let at = Point { t, y, p };
        let dot = |s: &DualScratch| s.out.iter().zip(v).map(|(d, w)| d.eps * w).sum::<f64>();
        with_scratch(|s| {
            for (j, o) in oy.iter_mut().enumerate().take(y.len()) {
                self.eval_seeded(s, at, Seed::StateAxis(j), v.len());
                *o += dot(s);
            }
            for (j, o) in op.iter_mut().enumerate().take(p.len()) {
                self.eval_seeded(s, at, Seed::ParamAxis(j), v.len());
                *o += dot(s);
            }
        })
    }
}

impl<F: GenericField> Drift for Generic<F> {
    #[inline]
    fn drift(&self, t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
        self.0.eval(t, y, p, dy)
    }

    fn check_dims(&self, n: usize, n_params: usize) -> Result<(), SolveError> {
        self.0.check_dims(n, n_params, n)
    }

    fn jacobian(&self, t: f64, y: &[f64], p: &[f64], jac: &mut [f64]) -> bool {
        let n = y.len();
        with_scratch(|s| {
            for j in 0..n {
                let column = &mut jac[j * n..(j + 1) * n];
                self.directional_in(s, Point { t, y, p }, Seed::StateAxis(j), column);
            }
        });
        true
    }

    fn jacobian_vector(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], out: &mut [f64]) -> bool {
        with_scratch(|s| self.directional_in(s, Point { t, y, p }, Seed::State(v), out));
        true
    }
}

impl<F: GenericField> Diffusion for Generic<F> {
    #[inline]
    fn diffusion(&self, t: f64, y: &[f64], p: &[f64], g: &mut [f64]) {
        self.0.eval(t, y, p, g)
    }

    fn check_dims(&self, n: usize, n_params: usize, len: usize) -> Result<(), SolveError> {
        self.0.check_dims(n, n_params, len)
    }

    fn diffusion_jvp(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], out: &mut [f64]) -> bool {
        with_scratch(|s| self.directional_in(s, Point { t, y, p }, Seed::State(v), out));
        true
    }
}

impl<F: GenericField> DriftVjp for Generic<F> {
    /// Exact: one forward-mode dual evaluation per state and per parameter
    /// component (columns of the Jacobians), contracted with `v`.
    fn drift_vjp(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], oy: &mut [f64], op: &mut [f64]) {
        self.vjp_any(t, y, p, v, oy, op)
    }
}

impl<F: GenericField> DiffusionVjp for Generic<F> {
    fn diffusion_vjp(
        &self,
        t: f64,
        y: &[f64],
        p: &[f64],
        v: &[f64],
        oy: &mut [f64],
        op: &mut [f64],
    ) {
        self.vjp_any(t, y, p, v, oy, op)
    }

    /// Exact, for a diffusion with `n` entries (returns `false` when `w` is
    /// not of the state's length; a general-noise diffusion, which writes
    /// `n × m` entries, must not be asked — Milstein refuses general noise
    /// before it gets here): per state and per parameter component one dual and one
    /// hyper-dual evaluation, `2(n + n_p)` in all; no allocation after the
    /// first call on a thread.
    fn milstein_term_vjp(
        &self,
        t: f64,
        y: &[f64],
        p: &[f64],
        w: &[f64],
        oy: &mut [f64],
        op: &mut [f64],
    ) -> bool {
        if w.len() != y.len() {
            return false;
        }
        let at = Point { t, y, p };
        with_scratch(|s| {
            for (j, o) in oy.iter_mut().enumerate().take(y.len()) {
                *o += self.milstein_term_axis(s, at, Seed::StateAxis(j), w);
            }
            for (j, o) in op.iter_mut().enumerate().take(p.len()) {
                *o += self.milstein_term_axis(s, at, Seed::ParamAxis(j), w);
            }
        });
        true
    }
}

/// A field written like a closure, generic over the scalar: expands to a
/// [`Generic`] value whose [`GenericField::eval`] runs the body with the
/// scalar type `D` (`f64` when solving, dual numbers when differentiating),
/// so that it has exact Jacobians and VJPs and gradients flow through it.
///
/// ```
/// use sdeflow_solvers::generic_field;
/// use sdeflow_solvers::field::{Drift, DriftVjp};
///
/// // dy = p0 y0 (1 - y0): the body sees y, p as &[D] and writes dy: &mut [D]
/// let logistic = generic_field!(|_t, y, p, dy| dy[0] = p[0] * y[0] * (-y[0] + 1.0));
/// let (mut oy, mut op) = ([0.0], [0.0]);
/// logistic.drift_vjp(0.0, &[0.25], &[2.0], &[1.0], &mut oy, &mut op);
/// assert_eq!(oy[0], 2.0 * (1.0 - 2.0 * 0.25)); // ∂f/∂y = p (1 - 2y)
/// assert_eq!(op[0], 0.25 * 0.75); //              ∂f/∂p = y (1 - y)
///
/// // values from outside are listed with their types (they must be `Copy`)
/// let k = 3.0;
/// let scaled = generic_field!([k: f64] |_t, y, _p, dy| dy[0] = y[0] * k);
/// let mut dy = [0.0];
/// scaled.drift(0.0, &[2.0], &[], &mut dy);
/// assert_eq!(dy[0], 6.0);
/// ```
///
/// The body is ordinary Rust over `D`: `D * f64`, `D + f64`, `D::from(1.0)`
/// and the functions of [`DualNum`] (`sin`, `exp`, `powi`, ...) work; write
/// a constant first as `D::from(c)` (`f64 - D` does not exist), or put it
/// second (`-y[0] + 1.0`). A closure captures its environment; this field
/// cannot, so the values it uses from outside are listed in brackets with
/// their types (`[k: f64, w: [f64; 2]]`), or passed as parameters `p` (which
/// gradients then cover).
#[macro_export]
macro_rules! generic_field {
    ([$($c:ident : $ct:ty),* $(,)?] |$t:pat_param, $y:pat_param, $p:pat_param, $out:pat_param| $body:expr) => {{
        #[derive(Debug, Clone, Copy)]
        #[allow(non_camel_case_types)]
        struct GenericClosure {
            $($c: $ct,)*
        }
        impl $crate::dual::GenericField for GenericClosure {
            #[allow(unused_variables, clippy::unused_unit)]
            fn eval<D: $crate::dual::DualNum<Primitive = f64> + Copy>(
                &self,
                $t: D,
                $y: &[D],
                $p: &[D],
                $out: &mut [D],
            ) {
                $(let $c: $ct = self.$c;)*
                $body;
            }
        }
        $crate::dual::Generic(GenericClosure { $($c,)* })
    }};
    (|$t:pat_param, $y:pat_param, $p:pat_param, $out:pat_param| $body:expr) => {
        $crate::generic_field!([] |$t, $y, $p, $out| $body)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A diffusion with nonzero second derivatives in `y` and `p` and
    /// coupling between the components.
    struct G2;
    impl GenericField for G2 {
        fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, y: &[D], p: &[D], g: &mut [D]) {
            g[0] = p[0] * y[0].sin() + p[1] * y[1] * y[1] + t * 0.1;
            g[1] = p[1] * y[0] * y[1] + (p[0] * y[1]).exp() * 0.3;
        }
    }

    /// `Lg = (∂g/∂y) g` through the diffusion's JVP.
    fn lg<G: Diffusion>(g: &G, t: f64, y: &[f64], p: &[f64]) -> Vec<f64> {
        let mut gv = vec![0.0; y.len()];
        g.diffusion(t, y, p, &mut gv);
        let mut out = vec![0.0; y.len()];
        assert!(g.diffusion_jvp(t, y, p, &gv, &mut out));
        out
    }

    #[test]
    fn milstein_term_vjp_matches_finite_differences_of_lg() {
        let g = Generic(G2);
        let (t, y, p, w) = (0.4, [0.7, -0.5], [1.3, 0.6], [0.9, -1.7]);
        let (mut oy, mut op) = ([0.25, -0.5], [1.0, 2.0]);
        assert!(g.milstein_term_vjp(t, &y, &p, &w, &mut oy, &mut op));
        // it adds to what the outputs held
        let got = [oy[0] - 0.25, oy[1] + 0.5, op[0] - 1.0, op[1] - 2.0];
        // wᵀ Lg at (y, p) with x_k moved by d, x = (y, p)
        let wl = |k: usize, d: f64| -> f64 {
            let mut x = [y[0], y[1], p[0], p[1]];
            x[k] += d;
            let (y, p) = x.split_at(2);
            lg(&g, t, y, p).iter().zip(&w).map(|(a, b)| a * b).sum()
        };
        let h = 1e-5;
        let mut worst = 0.0f64;
        for (k, &adj) in got.iter().enumerate() {
            let fd = (wl(k, h) - wl(k, -h)) / (2.0 * h);
            let rel = (adj - fd).abs() / fd.abs().max(1e-3);
            worst = worst.max(rel);
            assert!(rel < 1e-7, "component {k}: {adj} vs FD {fd} (rel {rel:e})");
        }
        println!("milstein_term_vjp vs FD of Lg: max rel {worst:e}");
    }

    #[test]
    fn milstein_term_vjp_matches_the_scalar_formula() {
        // g = p0 sin y + p1 y²: Lg = g g', ∂(Lg)/∂y = g'² + g g'',
        // ∂(Lg)/∂p0 = sin y · g' + g cos y, ∂(Lg)/∂p1 = y² g' + 2 y g
        struct G1;
        impl GenericField for G1 {
            fn eval<D: DualNum<Primitive = f64> + Copy>(
                &self,
                _t: D,
                y: &[D],
                p: &[D],
                g: &mut [D],
            ) {
                g[0] = p[0] * y[0].sin() + p[1] * y[0] * y[0];
            }
        }
        let (y, p, w) = (0.8f64, [1.1, -0.7], 1.9);
        let g = p[0] * y.sin() + p[1] * y * y;
        let g1 = p[0] * y.cos() + 2.0 * p[1] * y;
        let g2 = -p[0] * y.sin() + 2.0 * p[1];
        let exact = [
            w * (g1 * g1 + g * g2),
            w * (y.sin() * g1 + g * y.cos()),
            w * (y * y * g1 + 2.0 * y * g),
        ];
        let (mut oy, mut op) = ([0.0], [0.0; 2]);
        assert!(Generic(G1).milstein_term_vjp(0.0, &[y], &p, &[w], &mut oy, &mut op));
        for (a, e) in [oy[0], op[0], op[1]].iter().zip(&exact) {
            assert!((a - e).abs() <= 1e-14 * e.abs().max(1.0), "{a} vs {e}");
        }
    }

    #[test]
    fn milstein_term_vjp_declines_general_noise() {
        // g with n × m entries: Lg is not defined, nothing is touched
        let (mut oy, mut op) = ([0.0; 2], [0.0; 2]);
        let w = [1.0; 4];
        assert!(!Generic(G2).milstein_term_vjp(
            0.0,
            &[0.1, 0.2],
            &[1.0, 1.0],
            &w,
            &mut oy,
            &mut op
        ));
        assert_eq!((oy, op), ([0.0; 2], [0.0; 2]));
    }
}
