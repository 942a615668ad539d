//! [`Offset`]: a field over a slice of the problem's parameters, so that
//! two networks (a neural SDE's drift and diffusion) share one flat vector.

use sdeflow_solvers::{
    error::SolveError, field::Diffusion, field::DiffusionVjp, field::Drift, field::DriftVjp,
};

/// A field that reads its parameters from `p[offset..offset + len]` of the
/// problem's parameter vector — so a drift and a diffusion (two networks)
/// can share one flat vector, as a neural SDE needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Offset<F> {
    /// The field.
    pub field: F,
    /// Where its parameters start.
    pub offset: usize,
    /// How many it has.
    pub len: usize,
}

impl<F> Offset<F> {
    fn slice<'a>(&self, p: &'a [f64]) -> &'a [f64] {
        &p[self.offset..self.offset + self.len]
    }

    /// Whether `p[offset..offset + len]` exists in `n_params` parameters.
    fn check_range(&self, n_params: usize) -> Result<(), SolveError> {
        let end = self.offset + self.len;
        if end > n_params {
            return Err(SolveError::DimensionMismatch {
                what: "parameters".into(),
                expected: end,
                found: Some(n_params),
                hint: format!(
                    "an Offset field reads p[{}..{end}], but the problem has {n_params} \
                     parameters; give .params(...) with at least {end}",
                    self.offset
                ),
            });
        }
        Ok(())
    }
}

impl<F: Drift> Drift for Offset<F> {
    #[inline]
    fn drift(&self, t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
        self.field.drift(t, y, self.slice(p), dy)
    }

    fn check_dims(&self, n: usize, n_params: usize) -> Result<(), SolveError> {
        self.check_range(n_params)?;
        self.field.check_dims(n, self.len)
    }
}

/// A VJP method of the wrapped field, called with `p` and `out_p`
/// restricted to `[offset, offset + len)`: `$method(t, y, p, args…, oy,
/// op)`, its own arguments `args` between `p` and the outputs.
macro_rules! on_the_slice {
    ($method:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        fn $method(&self, t: f64, y: &[f64], p: &[f64], $($arg: $ty,)* oy: &mut [f64], op: &mut [f64]) $(-> $ret)? {
            let r = self.offset..self.offset + self.len;
            self.field.$method(t, y, &p[r.clone()], $($arg,)* oy, &mut op[r])
        }
    };
}

impl<F: DriftVjp> DriftVjp for Offset<F> {
    on_the_slice!(drift_vjp(v: &[f64]));
    on_the_slice!(drift_vjp_taped(tape: &[f64], v: &[f64]));

    fn tape_len(&self, n: usize, _n_params: usize) -> usize {
        self.field.tape_len(n, self.len)
    }

    fn drift_taped(&self, t: f64, y: &[f64], p: &[f64], dy: &mut [f64], tape: &mut [f64]) {
        self.field.drift_taped(t, y, self.slice(p), dy, tape)
    }
}

impl<F: Diffusion> Diffusion for Offset<F> {
    #[inline]
    fn diffusion(&self, t: f64, y: &[f64], p: &[f64], g: &mut [f64]) {
        self.field.diffusion(t, y, self.slice(p), g)
    }

    fn check_dims(&self, n: usize, n_params: usize, len: usize) -> Result<(), SolveError> {
        self.check_range(n_params)?;
        self.field.check_dims(n, self.len, len)
    }

    fn diffusion_jvp(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], out: &mut [f64]) -> bool {
        self.field.diffusion_jvp(t, y, self.slice(p), v, out)
    }
}

impl<F: DiffusionVjp> DiffusionVjp for Offset<F> {
    on_the_slice!(diffusion_vjp(v: &[f64]));
    on_the_slice!(milstein_term_vjp(w: &[f64]) -> bool);
}
