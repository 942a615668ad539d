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
//! use sdeflow_solvers::Drift;
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

pub use num_dual::{Dual64, DualNum};

use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};

/// A vector field written generically over the scalar type `D`, so that it
/// can be evaluated on `f64` and on forward-mode dual numbers.
pub trait GenericField {
    /// Writes the field at `(t, y)` with parameters `p` into `out`.
    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, t: D, y: &[D], p: &[D], out: &mut [D]);
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

/// Per-thread dual buffers, so that Jacobian products allocate nothing
/// after the first call on a thread.
#[derive(Default)]
struct DualScratch {
    y: Vec<Dual64>,
    p: Vec<Dual64>,
    out: Vec<Dual64>,
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
    /// One dual evaluation along `seed`: writes the derivative part into
    /// `out` (the field's output length).
    fn directional_in(
        &self,
        s: &mut DualScratch,
        t: f64,
        y: &[f64],
        p: &[f64],
        seed: Seed<'_>,
        out: &mut [f64],
    ) {
        self.eval_seeded(s, t, y, p, seed, out.len());
        for (o, d) in out.iter_mut().zip(&s.out) {
            *o = d.eps;
        }
    }

    /// `(∂f/∂p) v` (parameter direction `v`, length of `p`) by one dual
    /// evaluation.
    pub fn param_jacobian_vector(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], out: &mut [f64]) {
        with_scratch(|s| self.directional_in(s, t, y, p, Seed::Params(v), out))
    }

    /// Evaluates along `seed` into the scratch's output buffer (of length
    /// `len`).
    fn eval_seeded(
        &self,
        s: &mut DualScratch,
        t: f64,
        y: &[f64],
        p: &[f64],
        seed: Seed<'_>,
        len: usize,
    ) {
        s.y.clear();
        s.y.extend(y.iter().enumerate().map(|(i, &a)| {
            let eps = match seed {
                Seed::State(v) => v[i],
                Seed::StateAxis(j) if j == i => 1.0,
                _ => 0.0,
            };
            Dual64::new(a, eps)
        }));
        s.p.clear();
        s.p.extend(p.iter().enumerate().map(|(i, &a)| {
            let eps = match seed {
                Seed::Params(v) => v[i],
                Seed::ParamAxis(j) if j == i => 1.0,
                _ => 0.0,
            };
            Dual64::new(a, eps)
        }));
        s.out.clear();
        s.out.resize(len, Dual64::from(0.0));
        self.0.eval(Dual64::from(t), &s.y, &s.p, &mut s.out);
    }

    /// Adds `vᵀ ∂f/∂y` to `oy` and `vᵀ ∂f/∂p` to `op` for an output of the
    /// length of `v`: one dual evaluation per state and per parameter
    /// component (columns of the Jacobians), each contracted with `v`.
    fn vjp_any(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], oy: &mut [f64], op: &mut [f64]) {
        let dot = |s: &DualScratch| s.out.iter().zip(v).map(|(d, w)| d.eps * w).sum::<f64>();
        with_scratch(|s| {
            for (j, o) in oy.iter_mut().enumerate().take(y.len()) {
                self.eval_seeded(s, t, y, p, Seed::StateAxis(j), v.len());
                *o += dot(s);
            }
            for (j, o) in op.iter_mut().enumerate().take(p.len()) {
                self.eval_seeded(s, t, y, p, Seed::ParamAxis(j), v.len());
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

    fn jacobian(&self, t: f64, y: &[f64], p: &[f64], jac: &mut [f64]) -> bool {
        let n = y.len();
        with_scratch(|s| {
            for j in 0..n {
                self.directional_in(s, t, y, p, Seed::StateAxis(j), &mut jac[j * n..(j + 1) * n]);
            }
        });
        true
    }

    fn jacobian_vector(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], out: &mut [f64]) -> bool {
        with_scratch(|s| self.directional_in(s, t, y, p, Seed::State(v), out));
        true
    }
}

impl<F: GenericField> Diffusion for Generic<F> {
    #[inline]
    fn diffusion(&self, t: f64, y: &[f64], p: &[f64], g: &mut [f64]) {
        self.0.eval(t, y, p, g)
    }

    fn diffusion_jvp(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], out: &mut [f64]) -> bool {
        with_scratch(|s| self.directional_in(s, t, y, p, Seed::State(v), out));
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
}
