//! The batched form of [`Mlp`]: `B` samples as the columns of an `n × B`
//! matrix (column-major, so sample `b` is entries `b·n .. (b+1)·n` of a
//! flat slice), one matrix–matrix product (`gemm`) per layer instead of
//! `B` matrix–vector ones; and [`BatchedMlp`], the drift of `B` copies of
//! a neural ODE `y' = MLP(y)` stacked into one state of length `n·B` — so
//! one solve (one integrator, one step-size sequence) advances the whole
//! batch, as a diffusion sampler or an ensemble of a neural field over
//! many initial states wants.
//!
//! With fixed steps the batched solve equals `B` independent solves to
//! rounding; with adaptive steps the batch shares one step-size sequence,
//! chosen by the error norm over all `n·B` components (so each sample is
//! solved at least as accurately as the tolerance asks, usually with more
//! steps than it alone would take).

use sdeflow_solvers::error::SolveError;

use super::Mlp;

impl Mlp {
    /// The number of samples in `len` entries of inputs (a multiple of the
    /// input width), or what does not fit.
    fn batch_of(&self, len: usize) -> Result<usize, SolveError> {
        let n = self.input_dim();
        if n == 0 || len == 0 || !len.is_multiple_of(n) {
            return Err(SolveError::DimensionMismatch {
                what: "batched network input".into(),
                expected: n.max(1) * (len / n.max(1)).max(1),
                found: Some(len),
                hint: format!(
                    "a batch is an n × B column-major matrix with n = {n} (the network's input \
                     width): give a non-empty slice whose length is a multiple of {n}"
                ),
            });
        }
        Ok(len / n)
    }

    /// `Err` unless `found` entries are `expected` (`what` names them).
    fn check_len(what: &str, expected: usize, found: usize) -> Result<(), SolveError> {
        if expected == found {
            return Ok(());
        }
        Err(SolveError::DimensionMismatch {
            what: what.into(),
            expected,
            found: Some(found),
            hint: format!("{what} of a batch of B samples has (its width) × B entries"),
        })
    }

    /// `MLP(x; p)` of every column of `x`, an `n × B` column-major matrix
    /// (`n` the input width; `DMatrix::as_slice` gives this layout), into
    /// the columns of `out` (`m × B`, `m` the output width): one matrix
    /// product per layer. Errors when the shapes do not fit.
    ///
    /// ```
    /// use sdeflow::nn::{Activation, Mlp};
    /// let mlp = Mlp::new(&[2, 8, 2], Activation::Tanh);
    /// let p = mlp.init_params(1, 1.0);
    /// let x = [0.1, 0.2, -0.3, 0.4, 0.5, -0.6]; // three samples
    /// let mut out = [0.0; 6];
    /// mlp.forward_batch(&x, &p, &mut out)?;
    /// let mut one = [0.0; 2];
    /// mlp.forward(&x[2..4], &p, &mut one);
    /// assert!((one[0] - out[2]).abs() < 1e-14 && (one[1] - out[3]).abs() < 1e-14);
    /// # Ok::<(), sdeflow::SolveError>(())
    /// ```
    pub fn forward_batch(&self, x: &[f64], p: &[f64], out: &mut [f64]) -> Result<(), SolveError> {
        let batch = self.batch_of(x.len())?;
        Self::check_len("output", self.output_dim() * batch, out.len())?;
        self.check_shape(self.input_dim(), p.len(), self.output_dim())?;
        self.forward_of_batch(x, p, out, batch);
        Ok(())
    }

    /// The VJP of [`Mlp::forward_batch`]: adds `vᵀ ∂MLP/∂x` of every sample
    /// (column) to `out_x` (`n × B`) and the sum over the samples of
    /// `vᵀ ∂MLP/∂p` to `out_p`; `v` is `m × B`. One forward and one
    /// backward pass, a matrix product per layer and direction.
    pub fn vjp_batch(
        &self,
        x: &[f64],
        p: &[f64],
        v: &[f64],
        out_x: &mut [f64],
        out_p: &mut [f64],
    ) -> Result<(), SolveError> {
        let batch = self.batch_of(x.len())?;
        Self::check_len("cotangent", self.output_dim() * batch, v.len())?;
        Self::check_len("input gradient", x.len(), out_x.len())?;
        Self::check_len("parameter gradient", self.num_params(), out_p.len())?;
        self.check_shape(self.input_dim(), p.len(), self.output_dim())?;
        self.vjp_of_batch(x, p, v, (out_x, out_p), batch);
        Ok(())
    }
}

/// `B` copies of the neural ODE `y' = MLP(y; p)` (shared parameters) as one
/// drift of dimension `n·B`: the state is the `n × B` column-major matrix
/// of the samples, evaluated by [`Mlp::forward_batch`]'s one matrix
/// product per layer. Its exact VJP (backward pass of the batch, parameter
/// gradients summed over the samples) makes gradients of a loss over the
/// whole batch flow through any solver, with the activation tape as for
/// [`Mlp`].
///
/// ```
/// use sdeflow::nn::{Activation, BatchedMlp, Mlp};
/// use sdeflow::prelude::*;
/// let mlp = Mlp::new(&[2, 16, 2], Activation::Tanh);
/// let p = mlp.init_params(3, 1.0);
/// let starts = [[0.5, -0.3], [0.1, 0.2], [-0.4, 0.8]];
/// let field = BatchedMlp::new(mlp.clone(), starts.len());
/// let problem = Problem::ode_field(field, starts.concat(), (0.0, 1.0)).params(p.clone());
/// let opts = Options::default().fixed_step(0.05).save_at(SaveAt::T1);
/// let batched = solve(&problem, Tsit5, &opts)?;
/// // sample 1 alone, the same fixed steps: the same end state
/// let one = Problem::ode_field(mlp, starts[1].to_vec(), (0.0, 1.0)).params(p);
/// let alone = solve(&one, Tsit5, &opts)?;
/// assert!((batched.last()[2] - alone.last()[0]).abs() < 1e-12);
/// # Ok::<(), sdeflow::SolveError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BatchedMlp {
    mlp: Mlp,
    batch: usize,
}

impl BatchedMlp {
    /// `batch` samples of `mlp` (a drift: input and output widths equal).
    pub fn new(mlp: Mlp, batch: usize) -> Self {
        BatchedMlp { mlp, batch }
    }

    /// The network.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// The number of samples.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Whether a state of `n` entries, `n_params` parameters and an output
    /// of `len` entries fit `batch` samples of the network (a drift, or a
    /// diagonal-noise diffusion: `len = n`); the error says what to fix.
    pub fn check_batch(&self, n: usize, n_params: usize, len: usize) -> Result<(), SolveError> {
        let (width, b) = (self.mlp.input_dim(), self.batch);
        if b == 0 || n != width * b || len != n {
            return Err(SolveError::DimensionMismatch {
                what: "batched state".into(),
                expected: width * b.max(1),
                found: Some(if n != width * b { n } else { len }),
                hint: format!(
                    "a BatchedMlp of {b} samples of a network with {width} inputs maps a state \
                     of {width} × {b} entries (the samples' states one after another) to as \
                     many, and needs at least one sample"
                ),
            });
        }
        self.mlp.check_shape(width, n_params, width)
    }
}
