//! The three stable neural SDE classes of Oh, Lim and Kim, "Stable Neural
//! Stochastic Differential Equations in Analyzing Irregular Time Series
//! Data", ICLR 2024 (arXiv 2402.14989, §3), as one field over two
//! [`Mlp`]s: a drift network `γ` and a time-only noise network `σ`
//! (component-wise, diagonal noise):
//!
//! - **Langevin-type (LSDE)**, paper eq. (4):
//!   `dz = γ(z; θ_γ) dt + σ(t; θ_σ) dW` — an autonomous drift and additive
//!   noise ([`StableSde::langevin`]);
//! - **linear-noise (LNSDE)**, eq. (5):
//!   `dz = γ(t, z; θ_γ) dt + σ(t; θ_σ) ⊙ z dW` — a diffusion linear in the
//!   state ([`StableSde::linear_noise`]);
//! - **geometric (GSDE)**, eq. (6): `dz / z = γ(t, z; θ_γ) dt + σ(t; θ_σ) dW`,
//!   i.e. `dz = z ⊙ γ(t, z) dt + z ⊙ σ(t) dW` — drift and diffusion both
//!   multiplicative in the state, so `z = 0` is absorbing and (Itô,
//!   `z(t) = z(0) exp(∫(γ − σ²/2) ds + ∫σ dW)`) a positive state stays
//!   positive ([`StableSde::geometric`]).
//!
//! Parameters live in one flat vector: the drift network's first, then the
//! noise network's ([`StableSde::num_params`], [`StableSde::init_params`]).
//! The time-dependent networks read `t` as an extra first input. The field
//! is its own [`Drift`] and [`Diffusion`] (pass it twice to
//! `Problem::sde_field` with [`Noise`](sdeflow_solvers::noise::Noise)
//! `Diagonal`, or `Additive` for the LSDE), with exact VJPs from the
//! networks' backward passes, so `grad` and the regularizers differentiate
//! it. The paper also bounds the networks' outputs (tanh) and feeds a
//! controlled path of the data into `γ`; neither is built in here: a caller
//! can wrap the field.

use std::cell::RefCell;

use sdeflow_solvers::{
    error::SolveError, field::Diffusion, field::DiffusionVjp, field::Drift, field::DriftVjp,
};

use super::{Activation, Mlp};

/// Which of the three classes (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StableKind {
    /// LSDE: `dz = γ(z) dt + σ(t) dW`.
    Langevin,
    /// LNSDE: `dz = γ(t, z) dt + σ(t) ⊙ z dW`.
    LinearNoise,
    /// GSDE: `dz = z ⊙ γ(t, z) dt + z ⊙ σ(t) dW`.
    Geometric,
}

/// A stable neural SDE of dimension `n` (module docs): drift network `γ`
/// (`n → n` for the LSDE, `1 + n → n` otherwise, input `(t, z)`) and noise
/// network `σ` (`1 → n`, input `t`).
#[derive(Debug, Clone, PartialEq)]
pub struct StableSde {
    kind: StableKind,
    dim: usize,
    drift: Mlp,
    noise: Mlp,
}

thread_local! {
    /// Per-thread scratch: the network input `(t, z)`, its cotangent and a
    /// product buffer (apart from the networks' own scratch, which their
    /// evaluations borrow meanwhile).
    static SCRATCH: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` zeroed entries of this thread's scratch.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
    super::scratch_of(&SCRATCH, len, |s| {
        s.iter_mut().for_each(|x| *x = 0.0);
        f(s)
    })
}

impl StableSde {
    fn build(kind: StableKind, dim: usize, hidden: &[usize], activation: Activation) -> Self {
        let input = if kind == StableKind::Langevin {
            dim
        } else {
            dim + 1
        };
        let widths = |first: usize| {
            let mut w = vec![first];
            w.extend(hidden);
            w.push(dim);
            w
        };
        StableSde {
            kind,
            dim,
            drift: Mlp::new(&widths(input), activation),
            noise: Mlp::new(&widths(1), activation),
        }
    }

    /// The Langevin-type SDE (LSDE, Oh et al. 2024 eq. (4)) of dimension
    /// `dim`: `dz = γ(z) dt + σ(t) dW`, both networks with hidden widths
    /// `hidden` and activation `activation`.
    ///
    /// ```
    /// use sdeflow::nn::{Activation, StableSde};
    /// use sdeflow::prelude::*;
    /// let model = StableSde::langevin(2, &[8], Activation::Tanh);
    /// let prob = Problem::sde_field(model.clone(), model.clone(), Noise::Additive, vec![0.5, -0.5], (0.0, 1.0))
    ///     .params(model.init_params(1, 0.5));
    /// let sol = solve(&prob, Sra1, Options::default().seed(3)).unwrap();
    /// assert!(sol.ys.iter().all(|y| y.is_finite()));
    /// ```
    pub fn langevin(dim: usize, hidden: &[usize], activation: Activation) -> Self {
        Self::build(StableKind::Langevin, dim, hidden, activation)
    }

    /// The linear-noise SDE (LNSDE, eq. (5)): `dz = γ(t, z) dt + σ(t) ⊙ z dW`.
    pub fn linear_noise(dim: usize, hidden: &[usize], activation: Activation) -> Self {
        Self::build(StableKind::LinearNoise, dim, hidden, activation)
    }

    /// The geometric SDE (GSDE, eq. (6)): `dz = z ⊙ γ(t, z) dt + z ⊙ σ(t) dW`.
    pub fn geometric(dim: usize, hidden: &[usize], activation: Activation) -> Self {
        Self::build(StableKind::Geometric, dim, hidden, activation)
    }

    /// Which class this is.
    pub fn kind(&self) -> StableKind {
        self.kind
    }

    /// The state's dimension `n`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The drift network `γ`.
    pub fn drift_net(&self) -> &Mlp {
        &self.drift
    }

    /// The noise network `σ`.
    pub fn noise_net(&self) -> &Mlp {
        &self.noise
    }

    /// Number of parameters: the drift network's, then the noise network's.
    pub fn num_params(&self) -> usize {
        self.drift.num_params() + self.noise.num_params()
    }

    /// Initial parameters for a seed: each network's
    /// [`Mlp::init_params`] with `scale` (the noise network's from
    /// `seed + 1`), drift first.
    pub fn init_params(&self, seed: u64, scale: f64) -> Vec<f64> {
        let mut p = self.drift.init_params(seed, scale);
        p.extend(self.noise.init_params(seed.wrapping_add(1), scale));
        p
    }

    /// The drift's and the noise network's parameter slices of `p`.
    fn split<'a>(&self, p: &'a [f64]) -> (&'a [f64], &'a [f64]) {
        p.split_at(self.drift.num_params())
    }

    /// Whether a state of length `n`, `n_params` parameters and a diffusion
    /// of `len` entries fit this model.
    pub fn check_shape(&self, n: usize, n_params: usize, len: usize) -> Result<(), SolveError> {
        let (name, want, found, hint) = if n != self.dim {
            (
                "state",
                self.dim,
                n,
                format!("this {:?} model has dimension {}", self.kind, self.dim),
            )
        } else if n_params != self.num_params() {
            (
                "parameters",
                self.num_params(),
                n_params,
                "use .params(model.init_params(seed, scale))".to_string(),
            )
        } else if len != self.dim {
            (
                "diffusion entries",
                self.dim,
                len,
                "the model's noise is diagonal: use Noise::Diagonal (or Noise::Additive for \
                 the Langevin-type model)"
                    .to_string(),
            )
        } else {
            return Ok(());
        };
        Err(SolveError::DimensionMismatch {
            what: name.into(),
            expected: want,
            found: Some(found),
            hint,
        })
    }

    /// Writes the drift network's input `(t, y)` (or `y` for the LSDE) into
    /// `x` and returns its length.
    fn drift_input(&self, t: f64, y: &[f64], x: &mut [f64]) -> usize {
        if self.kind == StableKind::Langevin {
            x[..y.len()].copy_from_slice(y);
            y.len()
        } else {
            x[0] = t;
            x[1..=y.len()].copy_from_slice(y);
            y.len() + 1
        }
    }
}

impl Drift for StableSde {
    fn drift(&self, t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
        let (pd, _) = self.split(p);
        with_scratch(y.len() + 1, |x| {
            let m = self.drift_input(t, y, x);
            self.drift.forward(&x[..m], pd, dy);
        });
        if self.kind == StableKind::Geometric {
            dy.iter_mut().zip(y).for_each(|(d, z)| *d *= z);
        }
    }

    fn check_dims(&self, n: usize, n_params: usize) -> Result<(), SolveError> {
        self.check_shape(n, n_params, n)
    }
}

impl DriftVjp for StableSde {
    fn drift_vjp(
        &self,
        t: f64,
        y: &[f64],
        p: &[f64],
        v: &[f64],
        out_y: &mut [f64],
        out_p: &mut [f64],
    ) {
        let n = y.len();
        let (pd, _) = self.split(p);
        let kd = self.drift.num_params();
        // x: the input; gx: its cotangent; u: the cotangent of γ's output
        with_scratch(4 * n + 2, |s| {
            let (x, rest) = s.split_at_mut(n + 1);
            let (gx, rest) = rest.split_at_mut(n + 1);
            let (u, gamma) = rest.split_at_mut(n);
            let m = self.drift_input(t, y, x);
            if self.kind == StableKind::Geometric {
                // f = z ⊙ γ: ∂/∂z_i gets v_i γ_i, γ gets v ⊙ z
                self.drift.forward(&x[..m], pd, gamma);
                for i in 0..n {
                    out_y[i] += v[i] * gamma[i];
                    u[i] = v[i] * y[i];
                }
            } else {
                u.copy_from_slice(v);
            }
            self.drift
                .vjp(&x[..m], pd, u, &mut gx[..m], &mut out_p[..kd]);
            let from = m - n;
            for i in 0..n {
                out_y[i] += gx[from + i];
            }
        });
    }
}

impl Diffusion for StableSde {
    fn diffusion(&self, t: f64, y: &[f64], p: &[f64], g: &mut [f64]) {
        let (_, ps) = self.split(p);
        self.noise.forward(&[t], ps, g);
        if self.kind != StableKind::Langevin {
            g.iter_mut().zip(y).for_each(|(s, z)| *s *= z);
        }
    }

    fn diffusion_jvp(&self, t: f64, _y: &[f64], p: &[f64], v: &[f64], out: &mut [f64]) -> bool {
        // (∂g/∂y) v: 0 for the LSDE, σ(t) ⊙ v otherwise
        if self.kind == StableKind::Langevin {
            out.iter_mut().for_each(|o| *o = 0.0);
        } else {
            let (_, ps) = self.split(p);
            self.noise.forward(&[t], ps, out);
            out.iter_mut().zip(v).for_each(|(o, w)| *o *= w);
        }
        true
    }

    fn check_dims(&self, n: usize, n_params: usize, len: usize) -> Result<(), SolveError> {
        self.check_shape(n, n_params, len)
    }
}

impl DiffusionVjp for StableSde {
    fn diffusion_vjp(
        &self,
        t: f64,
        y: &[f64],
        p: &[f64],
        v: &[f64],
        out_y: &mut [f64],
        out_p: &mut [f64],
    ) {
        let n = y.len();
        let (_, ps) = self.split(p);
        let kd = self.drift.num_params();
        with_scratch(2 * n + 1, |s| {
            let (u, rest) = s.split_at_mut(n);
            let (sigma, gt) = rest.split_at_mut(n);
            if self.kind == StableKind::Langevin {
                u.copy_from_slice(v);
            } else {
                // g = σ(t) ⊙ z: ∂/∂z_i gets v_i σ_i, σ gets v ⊙ z
                self.noise.forward(&[t], ps, sigma);
                for i in 0..n {
                    out_y[i] += v[i] * sigma[i];
                    u[i] = v[i] * y[i];
                }
            }
            self.noise.vjp(&[t], ps, u, &mut gt[..1], &mut out_p[kd..]);
        });
    }
}
