//! The fields of the forward sensitivity system (Hairer, Nørsett & Wanner,
//! *Solving ODEs I*, §I.14, the variational equation with respect to
//! parameters): for `dy = f dt + g dW` and directions `(S_k(0), e_k)`, the
//! augmented state `[y, S_1, …, S_K]` with
//! `dS_k = (f_y S_k + f_p e_k) dt + (g_y S_k + g_p e_k) dW`, on the same
//! Brownian motions. Each direction costs one evaluation of the field on
//! dual numbers `(y + ε S_k, p + ε e_k)`, whose `ε` part is the directional
//! derivative; the `y` block is one plain `f64` evaluation, so it is the
//! value [`sdeflow_solvers::solve`] computes.

use std::cell::RefCell;

use sdeflow_solvers::dual::{Dual64, Generic, GenericField};
use sdeflow_solvers::error::SolveError;
use sdeflow_solvers::field::{Diffusion, Drift, NoDiffusion};
use sdeflow_solvers::noise::Noise;

/// What forward sensitivities differentiate with respect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wrt {
    /// The parameters `p`: `dy/dp` (`n × P`) at each saved time.
    #[default]
    Params,
    /// The initial state: `dy/dy0` (`n × n`).
    Y0,
    /// Both: `dy/dp` and `dy/dy0` (`P + n` directions).
    ParamsAndY0,
}

/// The directions of a sensitivity system: the parameter axes first (when
/// asked), then the initial-state axes (when asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Directions {
    /// State dimension `n` of the original problem.
    pub n: usize,
    /// Parameter directions (`P`, or 0 when not asked).
    pub params: usize,
    /// Initial-state directions (`n`, or 0 when not asked).
    pub y0: usize,
}

impl Directions {
    /// The directions `wrt` asks for, for a state of length `n` and
    /// `n_params` parameters.
    pub fn new(wrt: Wrt, n: usize, n_params: usize) -> Self {
        let (params, y0) = match wrt {
            Wrt::Params => (n_params, 0),
            Wrt::Y0 => (0, n),
            Wrt::ParamsAndY0 => (n_params, n),
        };
        Directions { n, params, y0 }
    }

    /// Number of directions `K`.
    pub fn count(&self) -> usize {
        self.params + self.y0
    }

    /// Dimension `n (1 + K)` of the augmented state.
    pub fn augmented_dim(&self) -> usize {
        self.n * (1 + self.count())
    }

    /// The augmented initial state `[y0, S_1(0), …, S_K(0)]`: zero for the
    /// parameter directions, the unit vectors for the initial-state ones.
    pub fn initial_state(&self, y0: &[f64]) -> Vec<f64> {
        let n = self.n;
        let mut z = vec![0.0; self.augmented_dim()];
        z[..n].copy_from_slice(y0);
        for i in 0..self.y0 {
            z[(1 + self.params + i) * n + i] = 1.0;
        }
        z
    }
}

/// Dual-number buffers of one augmented field, allocated once.
#[derive(Debug, Default)]
struct Duals {
    y: Vec<Dual64>,
    p: Vec<Dual64>,
    out: Vec<Dual64>,
    /// The plain value of a diffusion, before it is placed.
    value: Vec<f64>,
}

impl Duals {
    /// Evaluates `field` at `(t, y + ε s, p + ε e_k)` (`k` a parameter
    /// axis, or none) into `self.out` (`len` entries).
    fn tangent<T: GenericField>(
        &mut self,
        field: &T,
        t: f64,
        (y, s): (&[f64], &[f64]),
        p: &[f64],
        k: Option<usize>,
        len: usize,
    ) {
        self.y.clear();
        self.y
            .extend(y.iter().zip(s).map(|(&a, &b)| Dual64::new(a, b)));
        self.p.clear();
        self.p.extend(
            p.iter()
                .enumerate()
                .map(|(j, &a)| Dual64::new(a, if Some(j) == k { 1.0 } else { 0.0 })),
        );
        self.out.clear();
        self.out.resize(len, Dual64::from(0.0));
        field.eval(Dual64::from(t), &self.y, &self.p, &mut self.out);
    }
}

/// Runs `f` with the buffers in `cell` (fresh ones if they are in use: a
/// field evaluated inside its own evaluation).
fn with_duals<R>(cell: &RefCell<Duals>, f: impl FnOnce(&mut Duals) -> R) -> R {
    match cell.try_borrow_mut() {
        Ok(mut d) => f(&mut d),
        Err(_) => f(&mut Duals::default()),
    }
}

/// The parameter axis of direction `k` (`None` for an initial-state
/// direction).
#[inline]
fn axis(dirs: &Directions, k: usize) -> Option<usize> {
    (k < dirs.params).then_some(k)
}

/// The drift of the sensitivity system of a drift written generically over
/// the scalar: `[f, f_y S_1 + f_p e_1, …]`.
#[derive(Debug)]
pub struct TangentDriftOf<'a, T> {
    field: &'a T,
    dirs: Directions,
    duals: RefCell<Duals>,
}

impl<T: GenericField> Drift for TangentDriftOf<'_, T> {
    fn drift(&self, t: f64, z: &[f64], p: &[f64], dz: &mut [f64]) {
        let n = self.dirs.n;
        let (y, s) = z.split_at(n);
        let (fy, fs) = dz.split_at_mut(n);
        self.field.eval(t, y, p, fy);
        with_duals(&self.duals, |d| {
            for (k, (sk, out)) in s.chunks_exact(n).zip(fs.chunks_exact_mut(n)).enumerate() {
                d.tangent(self.field, t, (y, sk), p, axis(&self.dirs, k), n);
                for (o, v) in out.iter_mut().zip(&d.out) {
                    *o = v.eps;
                }
            }
        })
    }

    fn check_dims(&self, _n: usize, n_params: usize) -> Result<(), SolveError> {
        self.field.check_dims(self.dirs.n, n_params, self.dirs.n)
    }
}

/// Where entry `i` of a diffusion with noise `noise` (state dimension `n`)
/// sits in `G`: its row and its Brownian column.
#[inline]
fn place(noise: Noise, n: usize, i: usize) -> (usize, usize) {
    match noise {
        Noise::Scalar => (i, 0),
        Noise::Diagonal | Noise::Additive => (i, i),
        Noise::General(_) => (i % n, i / n),
    }
}

/// The diffusion of the sensitivity system of a diffusion written
/// generically over the scalar: `G_aug = [g; g_y S_1 + g_p e_1; …]` on the
/// same `m` Brownian motions. Scalar noise stays scalar; diagonal and
/// additive noise become general noise with `n` columns (the block of
/// direction `k` is diagonal, but the augmented matrix is not), general
/// noise stays general.
#[derive(Debug)]
pub struct TangentDiffusionOf<'a, H> {
    field: &'a H,
    dirs: Directions,
    noise: Noise,
    duals: RefCell<Duals>,
}

impl<H: GenericField> Diffusion for TangentDiffusionOf<'_, H> {
    fn diffusion(&self, t: f64, z: &[f64], p: &[f64], g: &mut [f64]) {
        let (n, noise) = (self.dirs.n, self.noise);
        let rows = self.dirs.augmented_dim();
        let len = noise.diffusion_len(n);
        let (y, s) = z.split_at(n);
        if matches!(noise, Noise::Diagonal | Noise::Additive) {
            g.iter_mut().for_each(|v| *v = 0.0);
        }
        with_duals(&self.duals, |d| {
            d.value.resize(len, 0.0);
            self.field.eval(t, y, p, &mut d.value);
            for (i, &v) in d.value.iter().enumerate() {
                let (r, c) = place(noise, n, i);
                g[c * rows + r] = v;
            }
            for (k, sk) in s.chunks_exact(n).enumerate() {
                d.tangent(self.field, t, (y, sk), p, axis(&self.dirs, k), len);
                for (i, v) in d.out.iter().enumerate() {
                    let (r, c) = place(noise, n, i);
                    g[c * rows + (1 + k) * n + r] = v.eps;
                }
            }
        })
    }

    fn check_dims(&self, _n: usize, n_params: usize, _len: usize) -> Result<(), SolveError> {
        let n = self.dirs.n;
        self.field
            .check_dims(n, n_params, self.noise.diffusion_len(n))
    }
}

/// A drift whose forward sensitivities can be computed: fields written
/// generically over the scalar ([`Generic`], `generic_field!`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not written generically over the scalar, so forward sensitivities \
               cannot differentiate it",
    note = "write the drift with `generic_field!`, or implement `GenericField` and wrap it in \
            `Generic`, and build the problem with `Problem::ode_field` / `Problem::sde_field`"
)]
pub trait TangentDrift: Drift {
    /// The drift of the sensitivity system.
    type Tangent<'a>: Drift
    where
        Self: 'a;

    /// The drift of the sensitivity system along `dirs`.
    fn tangent(&self, dirs: Directions) -> Self::Tangent<'_>;
}

impl<T: GenericField> TangentDrift for Generic<T> {
    type Tangent<'a>
        = TangentDriftOf<'a, T>
    where
        Self: 'a;

    fn tangent(&self, dirs: Directions) -> TangentDriftOf<'_, T> {
        TangentDriftOf {
            field: &self.0,
            dirs,
            duals: RefCell::new(Duals::default()),
        }
    }
}

/// A diffusion whose forward sensitivities can be computed: none (an ODE)
/// or one written generically over the scalar ([`Generic`],
/// `generic_field!`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not written generically over the scalar, so forward sensitivities \
               cannot differentiate it",
    note = "write the diffusion with `generic_field!`, or implement `GenericField` and wrap it \
            in `Generic`, and build the problem with `Problem::sde_field`"
)]
pub trait TangentDiffusion: Diffusion {
    /// The diffusion of the sensitivity system.
    type Tangent<'a>: Diffusion
    where
        Self: 'a;

    /// The diffusion of the sensitivity system along `dirs` for a problem
    /// with noise `noise`, and the noise structure of that system.
    fn tangent(&self, dirs: Directions, noise: Option<Noise>)
    -> (Self::Tangent<'_>, Option<Noise>);
}

impl TangentDiffusion for NoDiffusion {
    type Tangent<'a> = NoDiffusion;

    fn tangent(&self, _dirs: Directions, noise: Option<Noise>) -> (NoDiffusion, Option<Noise>) {
        (NoDiffusion, noise)
    }
}

impl<H: GenericField> TangentDiffusion for Generic<H> {
    type Tangent<'a>
        = TangentDiffusionOf<'a, H>
    where
        Self: 'a;

    fn tangent(
        &self,
        dirs: Directions,
        noise: Option<Noise>,
    ) -> (TangentDiffusionOf<'_, H>, Option<Noise>) {
        // a problem without noise never evaluates its diffusion
        let base = noise.unwrap_or(Noise::Scalar);
        let augmented = match base {
            Noise::Scalar => Noise::Scalar,
            Noise::Diagonal | Noise::Additive => Noise::General(dirs.n),
            Noise::General(m) => Noise::General(m),
        };
        let field = TangentDiffusionOf {
            field: &self.0,
            dirs,
            noise: base,
            duals: RefCell::new(Duals::default()),
        };
        (field, noise.map(|_| augmented))
    }
}
