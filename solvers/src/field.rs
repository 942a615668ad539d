//! Vector fields: the drift `f(t, y, p)` and the diffusion `g(t, y, p)`.
//!
//! Fields write into caller-owned buffers (no allocation per evaluation) and
//! receive the parameters `p` explicitly, so gradients have a target. Any
//! closure `Fn(f64, &[f64], &[f64], &mut [f64])` is a field.

/// The drift (right-hand side) `dy = f(t, y, p)` of an ODE or SDE.
///
/// Closures implement this trait, so a problem is usually written as
/// `|t, y, p, dy| { dy[0] = -p[0] * y[0]; }`.
pub trait Drift {
    /// Writes `f(t, y, p)` into `dy` (same length as `y`).
    fn drift(&self, t: f64, y: &[f64], p: &[f64], dy: &mut [f64]);

    /// Writes the Jacobian `∂f/∂y` at `(t, y)` into `jac`, an `n × n` matrix
    /// stored column-major (the storage order of `nalgebra::DMatrix`), and
    /// returns `true`; returns `false` when this field has no Jacobian (the
    /// default), in which case stiff solvers fall back to finite differences.
    fn jacobian(&self, _t: f64, _y: &[f64], _p: &[f64], _jac: &mut [f64]) -> bool {
        false
    }

    /// Writes the Jacobian–vector product `(∂f/∂y) v` into `out` and returns
    /// `true`, or returns `false` when this field cannot (the default). Fields
    /// written generically over the scalar ([`crate::dual::Generic`]) compute
    /// it exactly with one forward-mode dual evaluation.
    fn jacobian_vector(
        &self,
        _t: f64,
        _y: &[f64],
        _p: &[f64],
        _v: &[f64],
        _out: &mut [f64],
    ) -> bool {
        false
    }
}

impl<F> Drift for F
where
    F: Fn(f64, &[f64], &[f64], &mut [f64]),
{
    #[inline(always)]
    fn drift(&self, t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
        self(t, y, p, dy)
    }
}

/// The diffusion `g(t, y, p)` of an SDE. Its shape depends on the
/// [`crate::Noise`] type: `n` entries for scalar, diagonal and additive noise,
/// `n × m` (column-major) for general noise.
pub trait Diffusion {
    /// Writes `g(t, y, p)` into `g`.
    fn diffusion(&self, t: f64, y: &[f64], p: &[f64], g: &mut [f64]);

    /// Writes the directional derivative `(∂g/∂y) v` (same shape as `g`)
    /// into `out` and returns `true`, or returns `false` when this diffusion
    /// cannot (the default). Fields written generically over the scalar
    /// ([`crate::dual::Generic`]) compute it exactly; Milstein with exact
    /// derivatives needs it.
    fn diffusion_jvp(&self, _t: f64, _y: &[f64], _p: &[f64], _v: &[f64], _out: &mut [f64]) -> bool {
        false
    }
}

impl<G> Diffusion for G
where
    G: Fn(f64, &[f64], &[f64], &mut [f64]),
{
    #[inline(always)]
    fn diffusion(&self, t: f64, y: &[f64], p: &[f64], g: &mut [f64]) {
        self(t, y, p, g)
    }
}

/// The diffusion of an ODE: there is none. Never evaluated.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDiffusion;

impl Diffusion for NoDiffusion {
    fn diffusion(&self, _t: f64, _y: &[f64], _p: &[f64], g: &mut [f64]) {
        g.iter_mut().for_each(|x| *x = 0.0);
    }
}

/// A drift paired with a user-written Jacobian closure
/// `|t, y, p, jac| ...` that fills the `n × n` column-major Jacobian.
/// Built by [`crate::Problem::with_jacobian`].
#[derive(Debug, Clone, Copy)]
pub struct WithJacobian<F, J> {
    /// The drift.
    pub field: F,
    /// The Jacobian closure.
    pub jacobian: J,
}

impl<F, J> Drift for WithJacobian<F, J>
where
    F: Drift,
    J: Fn(f64, &[f64], &[f64], &mut [f64]),
{
    #[inline(always)]
    fn drift(&self, t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
        self.field.drift(t, y, p, dy)
    }

    fn jacobian(&self, t: f64, y: &[f64], p: &[f64], jac: &mut [f64]) -> bool {
        (self.jacobian)(t, y, p, jac);
        true
    }
}
