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

impl<F: DriftVjp> DriftVjp for Offset<F> {
    fn drift_vjp(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], oy: &mut [f64], op: &mut [f64]) {
        let r = self.offset..self.offset + self.len;
        self.field.drift_vjp(t, y, &p[r.clone()], v, oy, &mut op[r]);
    }

    fn tape_len(&self, n: usize, _n_params: usize) -> usize {
        self.field.tape_len(n, self.len)
    }

    fn drift_taped(&self, t: f64, y: &[f64], p: &[f64], dy: &mut [f64], tape: &mut [f64]) {
        self.field.drift_taped(t, y, self.slice(p), dy, tape)
    }

    fn drift_vjp_taped(
        &self,
        t: f64,
        y: &[f64],
        p: &[f64],
        tape: &[f64],
        v: &[f64],
        oy: &mut [f64],
        op: &mut [f64],
    ) {
        let r = self.offset..self.offset + self.len;
        self.field
            .drift_vjp_taped(t, y, &p[r.clone()], tape, v, oy, &mut op[r]);
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
    fn diffusion_vjp(
        &self,
        t: f64,
        y: &[f64],
        p: &[f64],
        v: &[f64],
        oy: &mut [f64],
        op: &mut [f64],
    ) {
        let r = self.offset..self.offset + self.len;
        self.field
            .diffusion_vjp(t, y, &p[r.clone()], v, oy, &mut op[r]);
    }

    fn milstein_term_vjp(
        &self,
        t: f64,
        y: &[f64],
        p: &[f64],
        w: &[f64],
        oy: &mut [f64],
        op: &mut [f64],
    ) -> bool {
        let r = self.offset..self.offset + self.len;
        self.field
            .milstein_term_vjp(t, y, &p[r.clone()], w, oy, &mut op[r])
    }
}
