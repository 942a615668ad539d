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

mod batch;
mod layer;
mod offset;
mod stable_sde;

pub use batch::BatchedMlp;
pub use offset::Offset;
pub use stable_sde::{StableKind, StableSde};

use layer::Shape;

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

/// A dense network `sizes[0] → sizes[1] → … → sizes[L]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    sizes: Vec<usize>,
    activation: Activation,
}

thread_local! {
    /// Per-thread scratch for activations (no allocation per evaluation
    /// once it has grown to the largest network and batch on the thread).
    static SCRATCH: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` entries of this thread's scratch.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
    scratch_of(&SCRATCH, len, f)
}

/// Runs `f` on `len` entries of the thread-local buffer `key`, grown on
/// demand (no allocation once it has reached the largest `len`).
fn scratch_of<R>(
    key: &'static std::thread::LocalKey<RefCell<Vec<f64>>>,
    len: usize,
    f: impl FnOnce(&mut [f64]) -> R,
) -> R {
    key.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}

impl Mlp {
    /// A network with layer widths `sizes` (input first, output last). A
    /// network needs at least two nonzero widths: with fewer, or a zero
    /// width, every solve and gradient that uses it returns a typed error
    /// ([`Mlp::check_shape`]); nothing panics.
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
        self.sizes.first().copied().unwrap_or(0)
    }

    /// Output width.
    pub fn output_dim(&self) -> usize {
        self.sizes.last().copied().unwrap_or(0)
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

    /// Length of the activation tape of one sample: the input, every
    /// hidden activation and the output.
    fn tape_len(&self) -> usize {
        self.sizes.iter().sum()
    }

    /// Widest layer (the backward pass's two work vectors).
    fn width(&self) -> usize {
        self.sizes.iter().max().copied().unwrap_or(0)
    }

    /// Forward pass of `batch` samples whose inputs (an `n × batch`
    /// column-major matrix) are at the start of `acts`: writes every
    /// layer's activations after them (layer-major, each a `width × batch`
    /// matrix; `acts` has `batch` times [`Mlp::tape_len`] entries) and
    /// copies the output into `out`. One matrix product per layer.
    fn eval(&self, p: &[f64], out: &mut [f64], acts: &mut [f64], batch: usize) {
        let (mut off_in, mut off_p) = (0, 0);
        let layers = self.sizes.len() - 1;
        for l in 0..layers {
            let s = Shape {
                ni: self.sizes[l],
                no: self.sizes[l + 1],
                batch,
            };
            let off_out = off_in + s.ni * batch;
            let (w, b) = p[off_p..off_p + s.ni * s.no + s.no].split_at(s.ni * s.no);
            let (inputs, outputs) = acts.split_at_mut(off_out);
            let z = &mut outputs[..s.no * batch];
            for col in z.chunks_exact_mut(s.no) {
                col.copy_from_slice(b);
            }
            layer::w_times(z, w, s, &inputs[off_in..]);
            if l + 1 < layers {
                z.iter_mut().for_each(|z| *z = self.activation.f(*z));
            }
            off_in = off_out;
            off_p += s.ni * s.no + s.no;
        }
        out.copy_from_slice(&acts[off_in..off_in + out.len()]);
    }

    /// Backward pass of `batch` samples from the activations `acts` of
    /// [`Mlp::eval`]: adds `vᵀ ∂MLP/∂x` to `out_x` (`n × batch`) and
    /// `vᵀ ∂MLP/∂p` (summed over the samples) to `out_p`. `work` holds
    /// two `width × batch` matrices. Per layer: the weight gradient as a
    /// rank-1 update (one sample) or a matrix product, and `Wᵀ δ`.
    fn backward(
        &self,
        p: &[f64],
        acts: &[f64],
        v: &[f64],
        (out_x, out_p): (&mut [f64], &mut [f64]),
        work: &mut [f64],
        batch: usize,
    ) {
        let (mut delta, mut prev) = work.split_at_mut(self.width() * batch);
        let out_dim = self.output_dim();
        let mut off_out = (self.tape_len() - out_dim) * batch;
        let mut off_p = self.num_params();
        delta[..out_dim * batch].copy_from_slice(v);
        for l in (0..self.sizes.len() - 1).rev() {
            let s = Shape {
                ni: self.sizes[l],
                no: self.sizes[l + 1],
                batch,
            };
            let off_in = off_out - s.ni * batch;
            off_p -= s.ni * s.no + s.no;
            let a_in = &acts[off_in..off_out];
            let d = &delta[..s.no * batch];
            let (gw, gb) = out_p[off_p..off_p + s.ni * s.no + s.no].split_at_mut(s.ni * s.no);
            layer::add_grads(gw, gb, s, d, a_in);
            // δ_prev = Wᵀ δ ⊙ σ'(z_prev) (no σ' for the input layer)
            let g = &mut prev[..s.ni * batch];
            layer::wt_times(g, &p[off_p..off_p + s.ni * s.no], s, d);
            if l > 0 {
                for (g, &a) in g.iter_mut().zip(a_in) {
                    *g *= self.activation.df_from_output(a);
                }
            }
            std::mem::swap(&mut delta, &mut prev);
            off_out = off_in;
        }
        for (o, d) in out_x.iter_mut().zip(&delta[..]) {
            *o += d;
        }
    }

    /// Whether this network maps a state of length `n` to an output of
    /// `len` entries with `n_params` parameters; the error says what to fix.
    pub fn check_shape(&self, n: usize, n_params: usize, len: usize) -> Result<(), SolveError> {
        if self.sizes.len() < 2 || self.sizes.contains(&0) {
            return Err(SolveError::InvalidInput {
                what: "network".into(),
                reason: format!(
                    "layer widths {:?}: a network needs an input and an output width (at \
                     least two sizes), all nonzero, e.g. Mlp::new(&[2, 32, 2], ..)",
                    self.sizes
                ),
            });
        }
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
        self.forward_of_batch(x, p, out, 1)
    }

    /// Adds `vᵀ ∂MLP/∂x` to `out_x` and `vᵀ ∂MLP/∂p` to `out_p` (one forward
    /// and one backward pass).
    pub fn vjp(&self, x: &[f64], p: &[f64], v: &[f64], out_x: &mut [f64], out_p: &mut [f64]) {
        self.vjp_of_batch(x, p, v, (out_x, out_p), 1)
    }

    /// [`Mlp::vjp`] of `batch` samples (shapes checked by the caller).
    fn vjp_of_batch(
        &self,
        x: &[f64],
        p: &[f64],
        v: &[f64],
        (out_x, out_p): (&mut [f64], &mut [f64]),
        batch: usize,
    ) {
        let (tape, out) = (self.tape_len() * batch, self.output_dim() * batch);
        with_scratch(tape + out + 2 * self.width() * batch, |s| {
            let (acts, work) = s.split_at_mut(tape);
            // the forward's output is also in the tape: `sink` only receives it
            let (sink, work) = work.split_at_mut(out);
            acts[..x.len()].copy_from_slice(x);
            self.eval(p, sink, acts, batch);
            self.backward(p, acts, v, (out_x, out_p), work, batch);
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
        self.vjp_taped_of_batch(p, tape, v, (out_x, out_p), 1)
    }

    /// [`Mlp::vjp_taped`] of `batch` samples.
    fn vjp_taped_of_batch(
        &self,
        p: &[f64],
        tape: &[f64],
        v: &[f64],
        (out_x, out_p): (&mut [f64], &mut [f64]),
        batch: usize,
    ) {
        with_scratch(2 * self.width() * batch, |work| {
            self.backward(p, tape, v, (out_x, out_p), work, batch)
        })
    }

    /// [`Mlp::forward`], keeping the activations in `tape` (length: the sum
    /// of the layer widths) for [`Mlp::vjp_taped`].
    pub fn forward_taped(&self, x: &[f64], p: &[f64], out: &mut [f64], tape: &mut [f64]) {
        self.taped_of_batch(x, p, out, tape, 1)
    }

    /// [`Mlp::forward_taped`] of `batch` samples (the tape: every
    /// sample's activations).
    fn taped_of_batch(
        &self,
        x: &[f64],
        p: &[f64],
        out: &mut [f64],
        tape: &mut [f64],
        batch: usize,
    ) {
        tape[..x.len()].copy_from_slice(x);
        self.eval(p, out, tape, batch)
    }

    /// [`Mlp::forward`] of `batch` samples, the tape in the scratch.
    fn forward_of_batch(&self, x: &[f64], p: &[f64], out: &mut [f64], batch: usize) {
        with_scratch(self.tape_len() * batch, |tape| {
            self.taped_of_batch(x, p, out, tape, batch)
        })
    }
}

/// A method of the VJP traits, `$name(&self, t, y, p, args…, out_y,
/// out_p)` (its own arguments between the parameters and the outputs),
/// with `$s` the field in `$body`: the one place their signature is
/// spelled out for the network fields.
macro_rules! vjp_fn {
    ($name:ident, |$s:ident, $t:ident, $y:ident, $p:ident; $($arg:ident: $ty:ty),*; $oy:ident, $op:ident| $body:block) => {
        fn $name(&self, $t: f64, $y: &[f64], $p: &[f64], $($arg: $ty,)* $oy: &mut [f64], $op: &mut [f64]) {
            let $s = self;
            $body
        }
    };
}

/// The field traits of a network evaluated `batch` samples at a time —
/// `$ty` with its network `$net` and sample count `$batch` (expressions of
/// `$s`, the field) and its shape check `$check(n, n_params, len)`: the
/// drift and the diffusion (the network's output), and their exact VJPs
/// with the activations of every layer as the tape (the taped VJP is the
/// backward pass only).
macro_rules! network_field {
    ($ty:ty, |$s:ident| ($net:expr, $batch:expr), $check:ident) => {
        impl Drift for $ty {
            #[inline]
            fn drift(&self, _t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
                let $s = self;
                $net.forward_of_batch(y, p, dy, $batch)
            }

            fn check_dims(&self, n: usize, n_params: usize) -> Result<(), SolveError> {
                self.$check(n, n_params, n)
            }
        }

        impl Diffusion for $ty {
            #[inline]
            fn diffusion(&self, t: f64, y: &[f64], p: &[f64], g: &mut [f64]) {
                self.drift(t, y, p, g)
            }

            fn check_dims(&self, n: usize, n_params: usize, len: usize) -> Result<(), SolveError> {
                self.$check(n, n_params, len)
            }
        }

        impl DriftVjp for $ty {
            vjp_fn!(drift_vjp, |$s, _t, y, p; v: &[f64]; oy, op| {
                $net.vjp_of_batch(y, p, v, (oy, op), $batch)
            });

            /// The activations of every layer (of every sample).
            fn tape_len(&self, _n: usize, _n_params: usize) -> usize {
                let $s = self;
                $net.tape_len() * $batch
            }

            fn drift_taped(&self, _t: f64, y: &[f64], p: &[f64], dy: &mut [f64], tape: &mut [f64]) {
                let $s = self;
                $net.taped_of_batch(y, p, dy, tape, $batch)
            }

            // the backward pass only
            vjp_fn!(drift_vjp_taped, |$s, _t, _y, p; tape: &[f64], v: &[f64]; oy, op| {
                $net.vjp_taped_of_batch(p, tape, v, (oy, op), $batch)
            });
        }

        impl DiffusionVjp for $ty {
            vjp_fn!(diffusion_vjp, |$s, t, y, p; v: &[f64]; oy, op| {
                $s.drift_vjp(t, y, p, v, oy, op)
            });
        }
    };
}

network_field!(Mlp, |s| (s, 1), check_shape);
network_field!(BatchedMlp, |s| (s.mlp(), s.batch()), check_batch);

impl GenericField for Mlp {
    fn check_dims(&self, n: usize, n_params: usize, len: usize) -> Result<(), SolveError> {
        self.check_shape(n, n_params, len)
    }

    fn eval<D: DualNum<Primitive = f64> + Copy>(&self, _t: D, y: &[D], p: &[D], out: &mut [D]) {
        // one buffer per call (two halves, read one and write the other per
        // layer) instead of one vector per layer
        let width = self.sizes.iter().copied().max().unwrap_or(0);
        let mut buf = vec![D::from(0.0); 2 * width];
        let (mut a, mut next) = buf.split_at_mut(width);
        a[..y.len()].copy_from_slice(y);
        let mut off_p = 0;
        let layers = self.sizes.len() - 1;
        for l in 0..layers {
            let (ni, no) = (self.sizes[l], self.sizes[l + 1]);
            for o in 0..no {
                let mut z = p[off_p + ni * no + o];
                for i in 0..ni {
                    z += p[off_p + o * ni + i] * a[i];
                }
                next[o] = if l + 1 == layers {
                    z
                } else {
                    self.activation.generic(z)
                };
            }
            std::mem::swap(&mut a, &mut next);
            off_p += ni * no + no;
        }
        out.copy_from_slice(&a[..out.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdeflow_solvers::dual::Generic;

    /// The scalar-loop network before the matrix-product form (one
    /// explicit sum per output, same parameter layout): `(MLP(x), vᵀ∂/∂x,
    /// vᵀ∂/∂p)`, the reference of the products.
    fn reference(mlp: &Mlp, x: &[f64], p: &[f64], v: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let sizes = &mlp.sizes;
        let mut acts = vec![x.to_vec()];
        let mut off = 0;
        for l in 0..sizes.len() - 1 {
            let (ni, no) = (sizes[l], sizes[l + 1]);
            let a = &acts[l];
            let z: Vec<f64> = (0..no)
                .map(|o| {
                    p[off + ni * no + o] + (0..ni).map(|i| p[off + o * ni + i] * a[i]).sum::<f64>()
                })
                .collect();
            let last = l + 2 == sizes.len();
            acts.push(
                z.iter()
                    .map(|&z| if last { z } else { mlp.activation.f(z) })
                    .collect(),
            );
            off += ni * no + no;
        }
        let mut gp = vec![0.0; p.len()];
        let mut delta = v.to_vec();
        for l in (0..sizes.len() - 1).rev() {
            let (ni, no) = (sizes[l], sizes[l + 1]);
            off -= ni * no + no;
            for o in 0..no {
                gp[off + ni * no + o] += delta[o];
                for i in 0..ni {
                    gp[off + o * ni + i] += delta[o] * acts[l][i];
                }
            }
            delta = (0..ni)
                .map(|i| {
                    let s: f64 = (0..no).map(|o| p[off + o * ni + i] * delta[o]).sum();
                    if l > 0 {
                        s * mlp.activation.df_from_output(acts[l][i])
                    } else {
                        s
                    }
                })
                .collect();
        }
        (acts.pop().unwrap_or_default(), delta, gp)
    }

    /// `max |a − b| ≤ tol · max |b|`.
    fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
        let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        assert!(
            worst <= tol * scale,
            "{what}: max difference {worst:e} over scale {scale:e}"
        );
    }

    #[test]
    fn matrix_products_match_the_scalar_loops() {
        let cases: [&[usize]; 3] = [&[2, 50, 2], &[3, 7, 5, 3], &[9, 4, 12, 6]];
        for (k, sizes) in cases.iter().enumerate() {
            for act in [Activation::Tanh, Activation::Softplus, Activation::Relu] {
                let mlp = Mlp::new(sizes, act);
                let p = mlp.init_params(k as u64 + 11, 1.0);
                let mut bias_rng = NormalStream::new(5);
                // non-zero biases, so that their gradients and sums count
                let p: Vec<f64> = p.iter().map(|v| v + 0.1 * bias_rng.next_normal()).collect();
                let x: Vec<f64> = (0..sizes[0]).map(|i| 0.3 - 0.17 * i as f64).collect();
                let v: Vec<f64> = (0..mlp.output_dim())
                    .map(|i| 0.9 - 0.4 * i as f64)
                    .collect();
                let (f_ref, gx_ref, gp_ref) = reference(&mlp, &x, &p, &v);
                let mut f = vec![0.0; mlp.output_dim()];
                mlp.forward(&x, &p, &mut f);
                let (mut gx, mut gp) = (vec![0.0; x.len()], vec![0.0; p.len()]);
                mlp.vjp(&x, &p, &v, &mut gx, &mut gp);
                let what = format!("{sizes:?} {act:?}");
                assert_close(&f, &f_ref, 1e-13, &format!("{what} forward"));
                assert_close(&gx, &gx_ref, 1e-13, &format!("{what} vjp x"));
                assert_close(&gp, &gp_ref, 1e-13, &format!("{what} vjp p"));
            }
        }
    }

    #[test]
    fn a_batch_is_its_columns_evaluated_one_by_one() {
        // [2, 50, 2]: every layer below nalgebra's gemm threshold (dot
        // products); [7, 9, 6, 7] with 8 samples: every layer by gemm
        for (sizes, batch) in [(&[2usize, 50, 2][..], 5usize), (&[7, 9, 6, 7][..], 8)] {
            let mlp = Mlp::new(sizes, Activation::Tanh);
            let p = mlp.init_params(2, 1.0);
            let (n, m) = (mlp.input_dim(), mlp.output_dim());
            let x: Vec<f64> = (0..n * batch).map(|i| (0.37 * i as f64).sin()).collect();
            let v: Vec<f64> = (0..m * batch).map(|i| (0.23 * i as f64).cos()).collect();
            let mut out = vec![0.0; m * batch];
            mlp.forward_batch(&x, &p, &mut out).expect("shapes fit");
            let (mut gx, mut gp) = (vec![0.0; n * batch], vec![0.0; p.len()]);
            mlp.vjp_batch(&x, &p, &v, &mut gx, &mut gp)
                .expect("shapes fit");
            let (mut one, mut gx1, mut gp1) =
                (vec![0.0; m], vec![0.0; n * batch], vec![0.0; p.len()]);
            for b in 0..batch {
                mlp.forward(&x[b * n..(b + 1) * n], &p, &mut one);
                assert_close(&out[b * m..(b + 1) * m], &one, 1e-13, "batched forward");
                let (xb, vb) = (&x[b * n..(b + 1) * n], &v[b * m..(b + 1) * m]);
                mlp.vjp(xb, &p, vb, &mut gx1[b * n..(b + 1) * n], &mut gp1);
            }
            assert_close(&gx, &gx1, 1e-13, "batched vjp x");
            assert_close(&gp, &gp1, 1e-13, "batched vjp p (summed over samples)");
            // shapes that do not fit are errors, not panics
            assert!(mlp.forward_batch(&x[1..], &p, &mut out).is_err());
            assert!(mlp.forward_batch(&x, &p[1..], &mut out).is_err());
            assert!(mlp.vjp_batch(&x, &p, &v[1..], &mut gx, &mut gp).is_err());
        }
    }

    #[test]
    fn a_network_without_two_nonzero_widths_is_refused_not_a_panic() {
        for sizes in [&[][..], &[3], &[2, 0, 2]] {
            let mlp = Mlp::new(sizes, Activation::Tanh);
            let (n, len) = (mlp.input_dim(), mlp.output_dim());
            let e = mlp.check_shape(n, mlp.num_params(), len).unwrap_err();
            assert!(
                matches!(&e, SolveError::InvalidInput { what, .. } if what == "network"),
                "{sizes:?}: {e}"
            );
        }
        // and through a solve: a typed error, not a panic
        let p = sdeflow_solvers::problem::Problem::ode_field(
            Mlp::new(&[2], Activation::Tanh),
            vec![0.5, -0.3],
            (0.0, 1.0),
        );
        let e =
            crate::solve(&p, sdeflow_solvers::erk::Tsit5, crate::Options::default()).unwrap_err();
        assert!(e.to_string().contains("layer widths"), "{e}");
    }

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
