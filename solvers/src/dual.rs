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

impl<F: GenericField> Generic<F> {
    /// `(∂f/∂y) v` by one dual evaluation: seed `y + ε v`.
    fn directional(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], out: &mut [f64], wrt_y: bool) {
        let n = y.len();
        let yd: Vec<Dual64> = if wrt_y {
            y.iter().zip(v).map(|(&a, &b)| Dual64::new(a, b)).collect()
        } else {
            y.iter().map(|&a| Dual64::from(a)).collect()
        };
        let pd: Vec<Dual64> = if wrt_y {
            p.iter().map(|&a| Dual64::from(a)).collect()
        } else {
            p.iter().zip(v).map(|(&a, &b)| Dual64::new(a, b)).collect()
        };
        let mut od = vec![Dual64::from(0.0); out.len().max(n)];
        self.0.eval(Dual64::from(t), &yd, &pd, &mut od[..out.len()]);
        for (o, d) in out.iter_mut().zip(&od) {
            *o = d.eps;
        }
    }

    /// `(∂f/∂p) v` (parameter direction `v`, length of `p`) by one dual
    /// evaluation.
    pub fn param_jacobian_vector(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], out: &mut [f64]) {
        self.directional(t, y, p, v, out, false)
    }
}

impl<F: GenericField> Drift for Generic<F> {
    #[inline]
    fn drift(&self, t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
        self.0.eval(t, y, p, dy)
    }

    fn jacobian(&self, t: f64, y: &[f64], p: &[f64], jac: &mut [f64]) -> bool {
        let n = y.len();
        let mut e = vec![0.0; n];
        for j in 0..n {
            e[j] = 1.0;
            self.directional(t, y, p, &e, &mut jac[j * n..(j + 1) * n], true);
            e[j] = 0.0;
        }
        true
    }

    fn jacobian_vector(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], out: &mut [f64]) -> bool {
        self.directional(t, y, p, v, out, true);
        true
    }
}

impl<F: GenericField> Diffusion for Generic<F> {
    #[inline]
    fn diffusion(&self, t: f64, y: &[f64], p: &[f64], g: &mut [f64]) {
        self.0.eval(t, y, p, g)
    }

    fn diffusion_jvp(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], out: &mut [f64]) -> bool {
        self.directional(t, y, p, v, out, true);
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

impl<F: GenericField> Generic<F> {
    /// `vᵀ J` for an output of length `out_len` (forward mode, one dual
    /// evaluation per input component).
    fn vjp_any(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], oy: &mut [f64], op: &mut [f64]) {
        let n = y.len();
        let mut col = vec![0.0; v.len()];
        let mut e = vec![0.0; n.max(p.len())];
        for j in 0..n {
            e[j] = 1.0;
            self.directional(t, y, p, &e[..n], &mut col, true);
            e[j] = 0.0;
            oy[j] += col.iter().zip(v).map(|(a, b)| a * b).sum::<f64>();
        }
        for j in 0..p.len() {
            e[j] = 1.0;
            self.directional(t, y, p, &e[..p.len()], &mut col, false);
            e[j] = 0.0;
            op[j] += col.iter().zip(v).map(|(a, b)| a * b).sum::<f64>();
        }
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
