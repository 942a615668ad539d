//! A small multilayer perceptron with analytic vector–Jacobian products, for
//! neural ODEs and SDEs: `f(t, y, p) = MLP(y; p)`.
//!
//! Parameters live in one flat vector: for each layer, the weights
//! (`out × in`, row-major) and then the biases. Hidden layers apply the
//! activation, the last layer is linear. [`Mlp`] is a [`Drift`] /
//! [`Diffusion`] with an exact [`DriftVjp`] (one forward and one backward
//! pass; with the activation tape of [`DriftVjp::drift_taped`], which the
//! discrete adjoint records while it recomputes a step's stages, the
//! backward pass only), and also a [`GenericField`], so forward-mode dual
//! numbers can check it.

use std::cell::RefCell;

use sdeflow_solvers::brownian::rng::NormalStream;
use sdeflow_solvers::dual::{DualNum, GenericField};
use sdeflow_solvers::{
    error::SolveError, field::Diffusion, field::DiffusionVjp, field::Drift, field::DriftVjp,
};

/// Activation of the hidden layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `tanh(x)`.
    Tanh,
    /// `max(x, 0)`.
    Relu,
    /// `ln(1 + eˣ)`.
    Softplus,
}

impl Activation {
    #[inline]
    fn f(self, x: f64) -> f64 {
        match self {
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.max(0.0),
            Activation::Softplus => {
                if x > 30.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
        }
    }

    /// `σ'(z)` from the activation's output `a = σ(z)` (what the tape keeps):
    /// `1 − a²` (tanh), `[a > 0]` (relu), `1 − e^{−a}` (softplus, since
    /// `e^a = 1 + e^z`).
    #[inline]
    fn df_from_output(self, a: f64) -> f64 {
        match self {
            Activation::Tanh => 1.0 - a * a,
            Activation::Relu => {
                if a > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Softplus => -(-a).exp_m1(),
        }
    }

    fn generic<D: DualNum<Primitive = f64> + Copy>(self, x: D) -> D {
        match self {
            Activation::Tanh => x.tanh(),
            Activation::Relu => {
                if x.re() > 0.0 {
                    x
                } else {
                    x * 0.0
                }
            }
            Activation::Softplus => (x.exp() + 1.0).ln(),
        }
    }
}

/// `Σ_k a[k·stride] b[k]` over `b`'s length, with four independent
/// partial sums (a single running sum would make every product wait for
/// the previous addition).
#[inline]
fn dot(a: &[f64], b: &[f64], stride: usize) -> f64 {
    let mut acc = [0.0; 4];
    let chunks = b.len() / 4;
    for c in 0..chunks {
        for (j, s) in acc.iter_mut().enumerate() {
            let k = 4 * c + j;
            *s += a[k * stride] * b[k];
        }
    }
    let mut tail = 0.0;
    for k in 4 * chunks..b.len() {
        tail += a[k * stride] * b[k];
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// A dense network `sizes[0] → sizes[1] → … → sizes[L]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    sizes: Vec<usize>,
    activation: Activation,
}

thread_local! {
    /// Per-thread scratch for activations (no allocation per evaluation).
    static SCRATCH: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

impl Mlp {
    /// A network with layer widths `sizes` (input first, output last).
    pub fn new(sizes: &[usize], activation: Activation) -> Self {
        Mlp {
            sizes: sizes.to_vec(),
            activation,
        }
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.sizes.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }

    /// Input width.
    pub fn input_dim(&self) -> usize {
        self.sizes[0]
    }

    /// Output width.
    pub fn output_dim(&self) -> usize {
        self.sizes[self.sizes.len() - 1]
    }

    /// Glorot-normal weights (std `sqrt(2/(in+out))`, times `scale`) and zero
    /// biases, from `seed`.
    pub fn init_params(&self, seed: u64, scale: f64) -> Vec<f64> {
        let mut rng = NormalStream::new(seed);
        let mut p = Vec::with_capacity(self.num_params());
        for w in self.sizes.windows(2) {
            let sd = scale * (2.0 / (w[0] + w[1]) as f64).sqrt();
            p.extend((0..w[0] * w[1]).map(|_| sd * rng.next_normal()));
            p.extend(std::iter::repeat_n(0.0, w[1]));
        }
        p
    }

    /// Length of the activation tape: the input, every hidden activation
    /// and the output.
    fn tape_len(&self) -> usize {
        self.sizes.iter().sum()
    }

    /// Widest layer (the backward pass's two work vectors).
    fn width(&self) -> usize {
        self.sizes.iter().max().copied().unwrap_or(0)
    }

    /// Forward pass into `out`, keeping the activations of every layer
    /// (input first, layer-major) in `acts` (length [`Mlp::tape_len`]).
    fn forward_into(&self, x: &[f64], p: &[f64], out: &mut [f64], acts: &mut [f64]) {
        acts[..x.len()].copy_from_slice(x);
        let (mut off_in, mut off_p) = (0, 0);
        let layers = self.sizes.len() - 1;
        for l in 0..layers {
            let (ni, no) = (self.sizes[l], self.sizes[l + 1]);
            let off_out = off_in + ni;
            let (w, b) = (
                &p[off_p..off_p + ni * no],
                &p[off_p + ni * no..off_p + ni * no + no],
            );
            let (inputs, outputs) = acts.split_at_mut(off_out);
            let a_in = &inputs[off_in..];
            for o in 0..no {
                let row = &w[o * ni..(o + 1) * ni];
                let z = b[o] + dot(row, a_in, 1);
                outputs[o] = if l + 1 == layers {
                    z
                } else {
                    self.activation.f(z)
                };
            }
            off_in = off_out;
            off_p += ni * no + no;
        }
        out.copy_from_slice(&acts[off_in..off_in + self.output_dim()]);
    }

    /// Backward pass from the activations `acts` of a forward pass: adds
    /// `vᵀ ∂MLP/∂x` to `out_x` and `vᵀ ∂MLP/∂p` to `out_p`. `work` holds
    /// two vectors of the widest layer.
    fn backward(
        &self,
        p: &[f64],
        acts: &[f64],
        v: &[f64],
        out_x: &mut [f64],
        out_p: &mut [f64],
        work: &mut [f64],
    ) {
        let (delta, prev) = work.split_at_mut(self.width());
        let out_dim = self.output_dim();
        let layers = self.sizes.len() - 1;
        let mut off_out: usize = self.tape_len() - out_dim;
        let mut off_p = self.num_params();
        delta[..out_dim].copy_from_slice(v);
        for l in (0..layers).rev() {
            let (ni, no) = (self.sizes[l], self.sizes[l + 1]);
            let off_in = off_out - ni;
            off_p -= ni * no + no;
            let w = &p[off_p..off_p + ni * no];
            let a_in = &acts[off_in..off_in + ni];
            {
                let (gw, gb) = out_p[off_p..off_p + ni * no + no].split_at_mut(ni * no);
                for o in 0..no {
                    let d = delta[o];
                    gb[o] += d;
                    for (g, a) in gw[o * ni..(o + 1) * ni].iter_mut().zip(a_in) {
                        *g += d * a;
                    }
                }
            }
            // δ_prev = Wᵀ δ ⊙ σ'(z_prev) (no σ' for the input layer)
            for (i, s) in prev[..ni].iter_mut().enumerate() {
                // column i of W: stride ni
                *s = dot(&w[i..], &delta[..no], ni);
            }
            if l > 0 {
                for (s, &a) in prev[..ni].iter_mut().zip(a_in) {
                    *s *= self.activation.df_from_output(a);
                }
            }
            delta[..ni].copy_from_slice(&prev[..ni]);
            off_out = off_in;
        }
        for (o, d) in out_x.iter_mut().zip(&delta[..self.input_dim()]) {
            *o += d;
        }
    }

    /// Whether this network maps a state of length `n` to an output of
    /// `len` entries with `n_params` parameters; the error says what to fix.
    pub fn check_shape(&self, n: usize, n_params: usize, len: usize) -> Result<(), SolveError> {
        let (input, output, want) = (self.input_dim(), self.output_dim(), self.num_params());
        let mismatch = |what: &str, expected: usize, found: usize, hint: String| {
            Err(SolveError::DimensionMismatch {
                what: what.into(),
                expected,
                found: Some(found),
                hint,
            })
        };
        if input != n {
            return mismatch(
                "network input",
                input,
                n,
                format!("the network takes {input} inputs but the state has {n} components"),
            );
        }
        if output != len {
            return mismatch(
                "network output",
                len,
                output,
                format!("the network writes {output} outputs but the field needs {len}"),
            );
        }
        if n_params != want {
            return mismatch(
                "parameters",
                want,
                n_params,
                format!(
                    "the network has {want} parameters but the problem gives {n_params}; \
                     use .params(mlp.init_params(seed, scale))"
                ),
            );
        }
        Ok(())
    }

    /// `MLP(x; p)` into `out`.
    pub fn forward(&self, x: &[f64], p: &[f64], out: &mut [f64]) {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let need = self.tape_len();
            if s.len() < need {
                s.resize(need, 0.0);
            }
            self.forward_into(x, p, out, &mut s[..need]);
        })
    }

    /// Adds `vᵀ ∂MLP/∂x` to `out_x` and `vᵀ ∂MLP/∂p` to `out_p` (one forward
    /// and one backward pass).
    pub fn vjp(&self, x: &[f64], p: &[f64], v: &[f64], out_x: &mut [f64], out_p: &mut [f64]) {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let tape = self.tape_len();
            let need = tape + self.output_dim() + 2 * self.width();
            if s.len() < need {
                s.resize(need, 0.0);
            }
            let (acts, work) = s[..need].split_at_mut(tape);
            // the forward's output is also in the tape: `sink` only receives it
            let (sink, work) = work.split_at_mut(self.output_dim());
            self.forward_into(x, p, sink, acts);
            self.backward(p, acts, v, out_x, out_p, work);
        })
    }

    /// [`Mlp::vjp`] from the activation tape a [`Mlp::forward_taped`] at the
    /// same `x` wrote (the backward pass only).
    pub fn vjp_taped(
        &self,
        p: &[f64],
        tape: &[f64],
        v: &[f64],
        out_x: &mut [f64],
        out_p: &mut [f64],
    ) {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let need = 2 * self.width();
            if s.len() < need {
                s.resize(need, 0.0);
            }
            self.backward(p, tape, v, out_x, out_p, &mut s[..need]);
        })
    }

    /// [`Mlp::forward`], keeping the activations in `tape` (length: the sum
    /// of the layer widths) for [`Mlp::vjp_taped`].
    pub fn forward_taped(&self, x: &[f64], p: &[f64], out: &mut [f64], tape: &mut [f64]) {
        self.forward_into(x, p, out, tape)
    }
}

impl Drift for Mlp {
    #[inline]
    fn drift(&self, _t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
        self.forward(y, p, dy)
    }

    fn check_dims(&self, n: usize, n_params: usize) -> Result<(), SolveError> {
        self.check_shape(n, n_params, n)
    }
}

impl Diffusion for Mlp {
    #[inline]
    fn diffusion(&self, _t: f64, y: &[f64], p: &[f64], g: &mut [f64]) {
        self.forward(y, p, g)
    }

    fn check_dims(&self, n: usize, n_params: usize, len: usize) -> Result<(), SolveError> {
        self.check_shape(n, n_params, len)
    }
}

impl DriftVjp for Mlp {
    fn drift_vjp(&self, _t: f64, y: &[f64], p: &[f64], v: &[f64], oy: &mut [f64], op: &mut [f64]) {
        self.vjp(y, p, v, oy, op)
    }

    /// The activations of every layer.
    fn tape_len(&self, _n: usize, _n_params: usize) -> usize {
        Mlp::tape_len(self)
    }

    fn drift_taped(&self, _t: f64, y: &[f64], p: &[f64], dy: &mut [f64], tape: &mut [f64]) {
        self.forward_taped(y, p, dy, tape)
    }

    /// The backward pass only.
    fn drift_vjp_taped(
        &self,
        _t: f64,
        _y: &[f64],
        p: &[f64],
        tape: &[f64],
        v: &[f64],
        oy: &mut [f64],
        op: &mut [f64],
    ) {
        self.vjp_taped(p, tape, v, oy, op)
    }
}

impl DiffusionVjp for Mlp {
    fn diffusion_vjp(
        &self,
        _t: f64,
        y: &[f64],
        p: &[f64],
        v: &[f64],
        oy: &mut [f64],
        op: &mut [f64],
    ) {
        self.vjp(y, p, v, oy, op)
    }
}

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

impl GenericField for Mlp {
    fn check_dims(&self, n: usize, n_params: usize, len: usize) -> Result<(), SolveError> {
        self.check_shape(n, n_params, len)
    }

    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], out: &mut [D]) {
        let mut a: Vec<D> = y.to_vec();
        let mut off_p = 0;
        let layers = self.sizes.len() - 1;
        for l in 0..layers {
            let (ni, no) = (self.sizes[l], self.sizes[l + 1]);
            let mut next = Vec::with_capacity(no);
            for o in 0..no {
                let mut z = p[off_p + ni * no + o];
                for i in 0..ni {
                    z += p[off_p + o * ni + i] * a[i];
                }
                next.push(if l + 1 == layers {
                    z
                } else {
                    self.activation.generic(z)
                });
            }
            a = next;
            off_p += ni * no + no;
        }
        out.copy_from_slice(&a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdeflow_solvers::dual::Generic;

    #[test]
    fn analytic_vjp_matches_dual_numbers() {
        for act in [Activation::Tanh, Activation::Softplus, Activation::Relu] {
            // a drift maps R^n to R^n
            let mlp = Mlp::new(&[3, 7, 5, 3], act);
            let p = mlp.init_params(3, 1.0);
            let x = [0.3, -0.7, 1.1];
            let v = [0.9, -1.3, 0.4];
            let (mut gx, mut gp) = (vec![0.0; 3], vec![0.0; p.len()]);
            mlp.vjp(&x, &p, &v, &mut gx, &mut gp);
            let (mut dx, mut dp) = (vec![0.0; 3], vec![0.0; p.len()]);
            Generic(mlp.clone()).drift_vjp(0.0, &x, &p, &v, &mut dx, &mut dp);
            for (a, b) in gx.iter().chain(&gp).zip(dx.iter().chain(&dp)) {
                assert!(
                    (a - b).abs() < 1e-12 * (1.0 + b.abs()),
                    "{act:?}: {a} vs {b}"
                );
            }
            // the taped VJP (backward pass from a recorded forward) is the same
            let mut tape = vec![0.0; DriftVjp::tape_len(&mlp, 3, p.len())];
            let mut f0 = [0.0; 3];
            mlp.drift_taped(0.0, &x, &p, &mut f0, &mut tape);
            let (mut tx, mut tp) = (vec![0.0; 3], vec![0.0; p.len()]);
            mlp.drift_vjp_taped(0.0, &x, &p, &tape, &v, &mut tx, &mut tp);
            assert_eq!(
                (tx, tp),
                (gx.clone(), gp.clone()),
                "{act:?}: taped VJP differs"
            );
            let (mut f1, mut f2) = ([0.0; 3], [0.0; 3]);
            mlp.forward(&x, &p, &mut f1);
            Generic(mlp.clone()).drift(0.0, &x, &p, &mut f2);
            assert!((f1[0] - f2[0]).abs() < 1e-14 && (f1[1] - f2[1]).abs() < 1e-14);
        }
    }
}
