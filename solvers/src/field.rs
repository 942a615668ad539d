//! Vector fields: the drift `f(t, y, p)` and the diffusion `g(t, y, p)`.
//!
//! Fields write into caller-owned buffers (no allocation per evaluation) and
//! receive the parameters `p` explicitly, so gradients have a target. Any
//! closure `Fn(f64, &[f64], &[f64], &mut [f64])` is a field.

use crate::error::SolveError;

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

    /// Checks, before any evaluation, that this drift fits a state of
    /// length `n` and `n_params` parameters. The default accepts anything
    /// (the first evaluation is probed instead); fields that know their
    /// shapes (a network) say what does not fit.
    fn check_dims(&self, _n: usize, _n_params: usize) -> Result<(), SolveError> {
        Ok(())
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
/// [`crate::noise::Noise`] type: `n` entries for scalar, diagonal and additive noise,
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

    /// Checks, before any evaluation, that this diffusion fits a state of
    /// length `n`, `n_params` parameters and an output of `len` entries (the
    /// noise type's shape). The default accepts anything.
    fn check_dims(&self, _n: usize, _n_params: usize, _len: usize) -> Result<(), SolveError> {
        Ok(())
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

/// An ODE has no diffusion, so nothing to differentiate: the VJP adds
/// nothing. What lets ODE solvers take the one step-VJP protocol
/// ([`crate::step_vjp::StepVjp`]), whose fields carry a diffusion.
impl DiffusionVjp for NoDiffusion {
    fn diffusion_vjp(&self, _: f64, _: &[f64], _: &[f64], _: &[f64], _: &mut [f64], _: &mut [f64]) {
    }
}

/// A drift paired with a user-written Jacobian closure
/// `|t, y, p, jac| ...` that fills the `n × n` column-major Jacobian.
/// Built by [`crate::problem::Problem::with_jacobian`].
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

    fn check_dims(&self, n: usize, n_params: usize) -> Result<(), SolveError> {
        self.field.check_dims(n, n_params)
    }

    fn jacobian(&self, t: f64, y: &[f64], p: &[f64], jac: &mut [f64]) -> bool {
        (self.jacobian)(t, y, p, jac);
        true
    }
}

/// Vector–Jacobian products of a drift: what gradients through solvers
/// need. Implemented by fields written generically over the scalar
/// ([`crate::dual::Generic`], exact, by forward-mode duals), by closures with
/// a hand-written VJP ([`WithVjp`]), and — approximately, only when asked —
/// by [`FiniteDifferenceVjp`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no vector–Jacobian product, so gradients cannot flow through it",
    note = "write the field generically over the scalar and wrap it in `Generic` (exact, by dual numbers), \
            attach a hand-written VJP with `Problem::with_vjp`, implement `DriftVjp`, \
            or opt into approximate `FiniteDifferenceVjp`"
)]
pub trait DriftVjp: Drift {
    /// Adds `vᵀ ∂f/∂y` to `out_y` and `vᵀ ∂f/∂p` to `out_p` at `(t, y, p)`.
    fn drift_vjp(
        &self,
        t: f64,
        y: &[f64],
        p: &[f64],
        v: &[f64],
        out_y: &mut [f64],
        out_p: &mut [f64],
    );

    /// Length of the tape [`DriftVjp::drift_taped`] writes for a state of
    /// length `n` and `n_params` parameters: intermediate values of an
    /// evaluation that a VJP at the same point can reuse instead of
    /// recomputing them (a network's activations, say). `0` (the default):
    /// no tape.
    fn tape_len(&self, _n: usize, _n_params: usize) -> usize {
        0
    }

    /// Evaluates the drift as [`Drift::drift`] does, also writing the tape
    /// (of [`DriftVjp::tape_len`] entries) for a later
    /// [`DriftVjp::drift_vjp_taped`] at the same point.
    fn drift_taped(&self, t: f64, y: &[f64], p: &[f64], dy: &mut [f64], _tape: &mut [f64]) {
        self.drift(t, y, p, dy)
    }

    /// [`DriftVjp::drift_vjp`] at a point where [`DriftVjp::drift_taped`]
    /// wrote `tape`; the result must be the same.
    fn drift_vjp_taped(
        &self,
        t: f64,
        y: &[f64],
        p: &[f64],
        _tape: &[f64],
        v: &[f64],
        out_y: &mut [f64],
        out_p: &mut [f64],
    ) {
        self.drift_vjp(t, y, p, v, out_y, out_p)
    }

    /// This drift's semilinear structure `L(p) y + N(t, y, p)`, when it has
    /// one ([`crate::expint::Semilinear`] says so): what the step VJPs of
    /// the exponential methods read, as the protocol hands them the drift
    /// as a `DriftVjp`. `None` (the default) for every other drift.
    fn semilinear(&self) -> Option<&dyn crate::expint::SemilinearParts> {
        None
    }

    /// This drift as the probability flow of a diffusion model with a
    /// model VJP, when it is one ([`crate::diffusion::ProbabilityFlow`]
    /// says so): what the diffusion samplers' step VJPs read, to evaluate
    /// and differentiate the model in the prediction they step with.
    /// `None` (the default) for every other drift.
    fn probability_flow(&self) -> Option<&dyn crate::diffusion::FlowVjp> {
        None
    }
}

/// A drift with a hand-written VJP closure
/// `|t, y, p, v, out_y, out_p|` that adds `vᵀ∂f/∂y` to `out_y` and `vᵀ∂f/∂p`
/// to `out_p`. Built by [`crate::problem::Problem::with_vjp`].
#[derive(Debug, Clone, Copy)]
pub struct WithVjp<F, V> {
    /// The drift.
    pub field: F,
    /// The VJP closure.
    pub vjp: V,
}

impl<F: Drift, V> Drift for WithVjp<F, V> {
    #[inline(always)]
    fn drift(&self, t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
        self.field.drift(t, y, p, dy)
    }

    fn check_dims(&self, n: usize, n_params: usize) -> Result<(), SolveError> {
        self.field.check_dims(n, n_params)
    }
}

impl<F, V> DriftVjp for WithVjp<F, V>
where
    F: Drift,
    V: Fn(f64, &[f64], &[f64], &[f64], &mut [f64], &mut [f64]),
{
    fn drift_vjp(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], oy: &mut [f64], op: &mut [f64]) {
        (self.vjp)(t, y, p, v, oy, op)
    }
}

/// Opt-in, approximate VJPs by central finite differences (`2(n + n_p)`
/// drift evaluations per product, relative step `ε^{1/3}`). Gradients through
/// it are approximations, labelled as such: prefer [`crate::dual::Generic`].
#[derive(Debug, Clone, Copy)]
pub struct FiniteDifferenceVjp<F>(pub F);

impl<F: Drift> Drift for FiniteDifferenceVjp<F> {
    #[inline(always)]
    fn drift(&self, t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
        self.0.drift(t, y, p, dy)
    }

    fn check_dims(&self, n: usize, n_params: usize) -> Result<(), SolveError> {
        self.0.check_dims(n, n_params)
    }
}

impl<F: Drift> DriftVjp for FiniteDifferenceVjp<F> {
    fn drift_vjp(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], oy: &mut [f64], op: &mut [f64]) {
        let n = y.len();
        let (mut yp, mut pp) = (y.to_vec(), p.to_vec());
        let (mut fp, mut fm) = (vec![0.0; n], vec![0.0; n]);
        let eps = f64::EPSILON.cbrt();
        for j in 0..n {
            let h = eps * y[j].abs().max(1.0);
            yp[j] = y[j] + h;
            self.0.drift(t, &yp, p, &mut fp);
            yp[j] = y[j] - h;
            self.0.drift(t, &yp, p, &mut fm);
            yp[j] = y[j];
            oy[j] += (0..n).map(|i| v[i] * (fp[i] - fm[i])).sum::<f64>() / (2.0 * h);
        }
        for j in 0..p.len() {
            let h = eps * p[j].abs().max(1.0);
            pp[j] = p[j] + h;
            self.0.drift(t, y, &pp, &mut fp);
            pp[j] = p[j] - h;
            self.0.drift(t, y, &pp, &mut fm);
            pp[j] = p[j];
            op[j] += (0..n).map(|i| v[i] * (fp[i] - fm[i])).sum::<f64>() / (2.0 * h);
        }
    }
}

/// Vector–Jacobian products of a diffusion, for gradients through SDE
/// solves. `v` has the shape of `g` (`n` entries, or `n × m`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no vector–Jacobian product, so gradients cannot flow through it",
    note = "write the diffusion generically over the scalar and wrap it in `Generic`, or implement `DiffusionVjp`"
)]
pub trait DiffusionVjp: Diffusion {
    /// Adds `vᵀ ∂g/∂y` to `out_y` and `vᵀ ∂g/∂p` to `out_p` at `(t, y, p)`.
    fn diffusion_vjp(
        &self,
        t: f64,
        y: &[f64],
        p: &[f64],
        v: &[f64],
        out_y: &mut [f64],
        out_p: &mut [f64],
    );

    /// The VJP of Milstein's correction term: for a diffusion with `n`
    /// entries (scalar, diagonal or additive noise) and the map
    /// `(y, p) ↦ Lg = (∂g/∂y)(t, y, p) · g(t, y, p)` (which involves second
    /// derivatives of `g`), adds `wᵀ ∂(Lg)/∂y` to `out_y` and
    /// `wᵀ ∂(Lg)/∂p` to `out_p` (`w` has `n` entries) and returns `true`;
    /// returns `false`, touching nothing, when this diffusion cannot (the
    /// default). The discrete adjoint of `Milstein::exact()` needs it;
    /// fields written generically over the scalar
    /// ([`crate::dual::Generic`]) compute it exactly with hyper-dual numbers.
    fn milstein_term_vjp(
        &self,
        _t: f64,
        _y: &[f64],
        _p: &[f64],
        _w: &[f64],
        _out_y: &mut [f64],
        _out_p: &mut [f64],
    ) -> bool {
        false
    }
}
