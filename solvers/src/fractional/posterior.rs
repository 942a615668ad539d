//! The variational posterior of an fBM-driven SDE (`../shared/reference/fbm.md`
//! §3.3; Daems, Opper, Crevecoeur, Birdal, "Variational inference for SDEs
//! driven by fractional noise", ICLR 2024): a control `u(t, ·)`, one value
//! per driving fBM, enters the drift of that fBM's OU modes,
//!
//! `dY_k = (−γ_k Y_k + u) dt + dW`   (the same `u` for all `k`),
//!
//! and the posterior's divergence from the prior is, by Girsanov,
//! `KL = ½ ∫ |u|² dt`.
//!
//! The modes are linear, so the posterior's modes are the prior's plus a
//! deterministic (given `u`) shift `Z_k = Y_k^post − Y_k^prior`,
//! `dZ_k = (−γ_k Z_k + u) dt`, `Z_k(t0) = 0`, and the posterior's fBM
//! increment is the prior's plus `Σ_k ω_k dZ_k`. The posterior is
//! therefore again an fBM-driven SDE on the prior's driver, for the
//! augmented state `(X, Z, KL)`:
//!
//! `dX = [b + s Σ_k ω_k (u − γ_k Z_k)] dt + s dB̂_H`,
//! `dZ_k = (−γ_k Z_k + u) dt`,  `dKL = ½ |u|² dt`,
//!
//! which [`posterior`] builds as a [`Problem`] for the existing
//! fBM-driven solvers: the driver's path is the prior's (same seed, same
//! `ΔB̂`), no solver changes, and gradients of a loss on `X` plus the `KL`
//! component flow through the same step VJPs (the augmented drift has an
//! exact VJP built from those of `b`, `s` and `u`, with `dω/dH` when `H`
//! is a parameter). With `u ≡ 0` the `X` part of the solve equals the
//! prior solve bit for bit.
//!
//! What the control sees: `u(t, [X, Z], p)` with [`posterior`], the
//! state and the control's own shift of the modes. The prior modes
//! `Y^prior(t)` are then not part of the state (the driver serves their
//! exact increments to the step, not to the fields), so a control of the
//! full posterior modes `Y^post = Y^prior + Z` is not expressible there.
//! [`posterior_with_modes`] adds them: the state `(X, Z, Y, KL)` with the
//! `Y` rows stepped by [`super::FractionalModalEuler`] from the driver's
//! exact increments, and the control `u(t, [X, Z, Y], p)` a function of
//! the full Markov state. The shift `Z` and the `KL` are stepped by the
//! solver's own scheme: Euler for [`super::FractionalEuler`] and
//! [`super::FractionalModalEuler`], so `γ_max · h < 2` for `Z` to be
//! stable (the prior part keeps its exact modes); exactly, with `u` held
//! over each step, by [`super::FractionalModalEuler::exact_shift`], which
//! makes `½ Σ |u|² h` the simulated posterior's exact KL.

use std::cell::RefCell;

use super::ou_tree::FractionalNoise;
use super::weights::{Hurst, ModeWeights};
use crate::error::SolveError;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::noise::Noise;
use crate::problem::Problem;
use crate::sde::{add_noise, noise_outer};

/// Where the parts of the posterior's augmented state sit: `X` (`n`
/// components), the modes' shift `Z` (`m · K`, fBM `j`'s `K` modes
/// contiguous, as the driver orders them), with [`posterior_with_modes`]
/// the prior's modes `Y` (`m · K`, same order), and `KL` (one, last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PosteriorLayout {
    /// The prior's state dimension `n`.
    pub n: usize,
    /// The number of driving fBMs `m`.
    pub m: usize,
    /// The number of OU modes per fBM `K`.
    pub k: usize,
    /// Whether the prior's modes `Y` are part of the state
    /// ([`posterior_with_modes`]).
    pub modes: bool,
}

impl PosteriorLayout {
    /// The augmented dimension: `n + m K + 1`, or `n + 2 m K + 1` with the
    /// modes.
    pub fn dim(&self) -> usize {
        self.kl() + 1
    }

    /// The indices of `Z` in the augmented state.
    pub fn shift(&self) -> std::ops::Range<usize> {
        self.n..self.n + self.m * self.k
    }

    /// The indices of the prior's modes `Y` in the augmented state (empty
    /// unless [`PosteriorLayout::modes`]).
    pub fn prior_modes(&self) -> std::ops::Range<usize> {
        let start = self.n + self.m * self.k;
        start..start + if self.modes { self.m * self.k } else { 0 }
    }

    /// The index of the `KL` component; the control reads the state before
    /// it, `[X, Z]` or `[X, Z, Y]`.
    pub fn kl(&self) -> usize {
        self.prior_modes().end
    }
}

/// The posterior's augmented drift: the prior drift `b`, diffusion `s`
/// (for the term `s Σ_k ω_k (u − γ_k Z_k)`) and the control `u`.
///
/// The control is any [`Drift`] (a [`DriftVjp`] for gradients) read as
/// `u(t, [X, Z], p)` (or `u(t, [X, Z, Y], p)` with the modes): its input
/// is the components before [`PosteriorLayout::kl`] and it writes `m`
/// values (e.g. a network `nn::Mlp` of input width `n + m K` (`n + 2 m K`)
/// and output width `m`, or a
/// [`crate::generic_field!`]). Its shape is not checked by the solve:
/// build it for [`PosteriorLayout`].
#[derive(Debug, Clone)]
pub struct PosteriorDrift<F, G, U> {
    drift: F,
    diffusion: G,
    control: U,
    weights: ModeWeights,
    noise: Noise,
    layout: PosteriorLayout,
}

/// The posterior problem [`posterior`] and [`posterior_with_modes`] build:
/// the prior `F`, `G` under the control `U`, on the prior's driver.
pub type PosteriorProblem<F, G, U> =
    Problem<PosteriorDrift<F, G, U>, PosteriorDiffusion<G>, FractionalNoise>;

/// The posterior's augmented diffusion: the prior's in the `X` rows of an
/// `(n + m K + 1) × m` general-noise matrix, zero in the `Z` and `KL` rows.
#[derive(Debug, Clone)]
pub struct PosteriorDiffusion<G> {
    diffusion: G,
    noise: Noise,
    layout: PosteriorLayout,
}

/// The posterior of the fBM-driven `prior` (solved by methods with the
/// modes' weights `weights`) under the control `control`: the augmented
/// problem on `(X, Z, KL)` with the prior's driver, parameters, span and
/// interpretation, `Z(t0) = 0` and `KL(t0) = 0`, general noise with the
/// prior's `m` fBMs. Solve it with the same solver and weights as the
/// prior; [`PosteriorDrift::layout`] says where `Z` and `KL` are.
///
/// ```
/// use sdeflow_solvers::fractional::{FbmType, FractionalEuler, Hurst, ModeWeights, gamma_grid, posterior};
/// use sdeflow_solvers::prelude::*;
/// use sdeflow_solvers::generic_field;
/// let mw = ModeWeights::new(FbmType::RiemannLiouville, Hurst::Fixed(0.3), 1.0,
///                           &gamma_grid(5, 0.3, 1.0)?)?;
/// let prior = Problem::sde(
///     |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
///     |_t: f64, _y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = 0.5,
///     Noise::Diagonal,
///     vec![1.0],
///     (0.0, 1.0),
/// )
/// .driver(mw.noise());
/// // a constant control u = 0.7
/// let post = posterior(prior, generic_field!(|_t, _y, _p, u| u[0] = _t * 0.0 + 0.7), &mw)?;
/// let kl = post.drift.layout().kl();
/// let sol = solve(&post, FractionalEuler::new(mw), Options::default().fixed_step(0.01))?;
/// assert!((sol.last()[kl] - 0.5 * 0.7 * 0.7).abs() < 1e-12); // ½ u² T
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn posterior<F, G, U>(
    prior: Problem<F, G, FractionalNoise>,
    control: U,
    weights: &ModeWeights,
) -> Result<PosteriorProblem<F, G, U>, SolveError>
where
    F: Drift + Clone,
    G: Diffusion + Clone,
    U: Drift,
{
    build(prior, control, weights, false)
}

/// The posterior of [`posterior`] whose state also carries the prior's OU
/// modes `Y` (after `Z`: `(X, Z, Y, KL)`, [`PosteriorLayout::prior_modes`]),
/// so that the control reads the full Markov state, `u(t, [X, Z, Y], p)`,
/// and through `Y + Z` the posterior's modes (Daems et al., ICLR 2024: the
/// posterior of the Markov-approximated system is a Markov process in
/// `(X, Y)`). The `Y` rows of the drift and diffusion are zero: solve it
/// with [`super::FractionalModalEuler`], which writes the driver's exact
/// mode increments into them. `Y` starts at `0`: for type II that is the
/// prior's modes exactly; for type I (whose modes start from their
/// stationary law) it is `Y(t) − Y(t0)`.
///
/// ```
/// use sdeflow_solvers::fractional::{FbmType, FractionalModalEuler, Hurst, ModeWeights, gamma_grid, posterior_with_modes};
/// use sdeflow_solvers::prelude::*;
/// use sdeflow_solvers::generic_field;
/// let mw = ModeWeights::new(FbmType::RiemannLiouville, Hurst::Fixed(0.7), 1.0,
///                           &gamma_grid(4, 0.3, 1.0)?)?;
/// let prior = Problem::sde(
///     |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0],
///     |_t: f64, _y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = 0.5,
///     Noise::Diagonal,
///     vec![1.0],
///     (0.0, 1.0),
/// )
/// .driver(mw.noise());
/// // a control that pulls the posterior's first mode back: u = −(Y_1 + Z_1)
/// let post = posterior_with_modes(prior, generic_field!(|_t, y, _p, u| u[0] = -(y[1] + y[5])), &mw)?;
/// let layout = post.drift.layout();
/// assert_eq!((layout.shift(), layout.prior_modes(), layout.kl()), (1..5, 5..9, 9));
/// let solver = FractionalModalEuler::new(mw, layout.prior_modes().start);
/// let sol = solve(&post, solver, Options::default().fixed_step(1.0 / 64.0))?;
/// assert!(sol.last()[9] > 0.0); // the KL it cost
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn posterior_with_modes<F, G, U>(
    prior: Problem<F, G, FractionalNoise>,
    control: U,
    weights: &ModeWeights,
) -> Result<PosteriorProblem<F, G, U>, SolveError>
where
    F: Drift + Clone,
    G: Diffusion + Clone,
    U: Drift,
{
    build(prior, control, weights, true)
}

fn build<F, G, U>(
    prior: Problem<F, G, FractionalNoise>,
    control: U,
    weights: &ModeWeights,
    modes: bool,
) -> Result<PosteriorProblem<F, G, U>, SolveError>
where
    F: Drift + Clone,
    G: Diffusion + Clone,
    U: Drift,
{
    weights.check_driver("posterior", &prior.driver)?;
    let n = prior.y0.len();
    let noise = prior.noise.ok_or_else(|| {
        SolveError::invalid(
            "posterior",
            "the prior is an ODE (no noise); give an fBM-driven SDE (Problem::sde ... .driver(mw.noise()))"
                .to_string(),
        )
    })?;
    let layout = PosteriorLayout {
        n,
        m: noise.brownian_dim(n),
        k: weights.gammas().len(),
        modes,
    };
    let mut y0 = vec![0.0; layout.dim()];
    y0[..n].copy_from_slice(&prior.y0);
    let drift = PosteriorDrift {
        drift: prior.drift.clone(),
        diffusion: prior.diffusion.clone(),
        control,
        weights: weights.clone(),
        noise,
        layout,
    };
    let diffusion = PosteriorDiffusion {
        diffusion: prior.diffusion,
        noise,
        layout,
    };
    Ok(Problem {
        drift,
        diffusion,
        noise: Some(Noise::General(layout.m)),
        interpretation: prior.interpretation,
        y0,
        tspan: prior.tspan,
        params: prior.params,
        driver: prior.driver,
    })
}

impl<F, G, U> PosteriorDrift<F, G, U> {
    /// Where `X`, `Z` and `KL` sit in the augmented state.
    pub fn layout(&self) -> PosteriorLayout {
        self.layout
    }

    /// The control.
    pub fn control(&self) -> &U {
        &self.control
    }
}

/// Per-thread scratch of the posterior fields, with the weights `ω(H)` and
/// `dω/dH` of the last `(ModeWeights, H)` seen (solved again only when
/// they change: no allocation per evaluation once warm).
#[derive(Default)]
struct Scratch {
    buf: Vec<f64>,
    key: Option<(ModeWeights, u64)>,
    w: Vec<f64>,
    dw: Vec<f64>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Scratch {
    /// Brings `w`, `dw` up to date for `mw` at `p` (`NaN` if the weights
    /// cannot be solved: the solver's check refuses such a problem first).
    fn weights(&mut self, mw: &ModeWeights, p: &[f64]) {
        let h = match mw.hurst() {
            Hurst::Fixed(h) => h,
            Hurst::Param(i) => p.get(i).copied().unwrap_or(f64::NAN),
        };
        let fresh = matches!(&self.key, Some((k, bits)) if k == mw && *bits == h.to_bits());
        if !fresh {
            let kk = mw.gammas().len();
            let (w, dw) = mw
                .weights(p)
                .unwrap_or_else(|_| (vec![f64::NAN; kk], vec![f64::NAN; kk]));
            self.w = w;
            self.dw = dw;
            self.key = Some((mw.clone(), h.to_bits()));
        }
    }

    fn take(&mut self, len: usize) -> &mut [f64] {
        if self.buf.len() < len {
            self.buf.resize(len, 0.0);
        }
        &mut self.buf[..len]
    }
}

/// `out_j = Σ_i S_ij v_i`: the transpose of [`add_noise`] in the noise.
pub(super) fn noise_transpose(noise: Noise, g: &[f64], v: &[f64], out: &mut [f64]) {
    let n = v.len();
    match noise {
        Noise::Scalar => out[0] = g.iter().zip(v).map(|(a, b)| a * b).sum(),
        Noise::Diagonal | Noise::Additive => {
            for i in 0..n {
                out[i] = g[i] * v[i];
            }
        }
        Noise::General(m) => {
            for (j, o) in out.iter_mut().enumerate().take(m) {
                *o = g[j * n..(j + 1) * n]
                    .iter()
                    .zip(v)
                    .map(|(a, b)| a * b)
                    .sum();
            }
        }
    }
}

impl<F: Drift, G: Diffusion, U: Drift> Drift for PosteriorDrift<F, G, U> {
    fn drift(&self, t: f64, y: &[f64], p: &[f64], dy: &mut [f64]) {
        let PosteriorLayout { n, m, k, .. } = self.layout;
        let nc = self.layout.kl();
        let len = self.noise.diffusion_len(n);
        let gammas = self.weights.gammas();
        SCRATCH.with(|s| {
            let s = &mut *s.borrow_mut();
            s.weights(&self.weights, p);
            let Scratch { buf, w, .. } = s;
            if buf.len() < 2 * m + len {
                buf.resize(2 * m + len, 0.0);
            }
            let (u, rest) = buf.split_at_mut(m);
            let (v, rest) = rest.split_at_mut(m);
            let g = &mut rest[..len];
            let (x, z) = y[..n + m * k].split_at(n);
            self.control.drift(t, &y[..nc], p, u);
            self.drift.drift(t, x, p, &mut dy[..n]);
            self.diffusion.diffusion(t, x, p, g);
            for j in 0..m {
                let zj = &z[j * k..(j + 1) * k];
                v[j] = (0..k).map(|i| w[i] * (u[j] - gammas[i] * zj[i])).sum();
                for i in 0..k {
                    dy[n + j * k + i] = -gammas[i] * zj[i] + u[j];
                }
            }
            add_noise(self.noise, g, v, 1.0, &mut dy[..n]);
            // the prior's modes (if any) are stepped by the solver
            dy[self.layout.prior_modes()].fill(0.0);
            dy[nc] = 0.5 * u.iter().map(|a| a * a).sum::<f64>();
        })
    }

    fn check_dims(&self, n: usize, n_params: usize) -> Result<(), SolveError> {
        if n != self.layout.dim() {
            return Err(SolveError::DimensionMismatch {
                what: "posterior state".into(),
                expected: self.layout.dim(),
                found: Some(n),
                hint: "the posterior's state is (X, Z, KL) of PosteriorLayout::dim(); \
                       keep the y0 that posterior() built"
                    .into(),
            });
        }
        self.drift.check_dims(self.layout.n, n_params)
    }
}

impl<F: DriftVjp, G: DiffusionVjp, U: DriftVjp> DriftVjp for PosteriorDrift<F, G, U> {
    /// With `V_j = Σ_k ω_k (u_j − γ_k Z_jk)`, `w = sᵀ v_X`: the control's
    /// cotangent `ū_j = (Σ_k ω_k) w_j + Σ_k v_Zjk + v_KL u_j`; `Z̄_jk =
    /// −γ_k (ω_k w_j + v_Zjk)`; `b`'s VJP with `v_X`, `s`'s with `v_X ⊗ V`,
    /// `u`'s with `ū`; and `∂/∂H += Σ_j w_j Σ_k (dω_k/dH)(u_j − γ_k Z_jk)`
    /// when `H` is a parameter.
    fn drift_vjp(&self, t: f64, y: &[f64], p: &[f64], v: &[f64], oy: &mut [f64], op: &mut [f64]) {
        let PosteriorLayout { n, m, k, .. } = self.layout;
        let nc = self.layout.kl();
        let len = self.noise.diffusion_len(n);
        let gammas = self.weights.gammas();
        SCRATCH.with(|s| {
            let s = &mut *s.borrow_mut();
            s.weights(&self.weights, p);
            let Scratch { buf, w, dw, .. } = s;
            let need = 4 * m + 2 * len;
            if buf.len() < need {
                buf.resize(need, 0.0);
            }
            let (u, rest) = buf.split_at_mut(m);
            let (big_v, rest) = rest.split_at_mut(m);
            let (sw, rest) = rest.split_at_mut(m);
            let (ubar, rest) = rest.split_at_mut(m);
            let (g, rest) = rest.split_at_mut(len);
            let vg = &mut rest[..len];
            let (x, z) = y[..n + m * k].split_at(n);
            let (vx, vz, vkl) = (&v[..n], &v[n..n + m * k], v[nc]);
            self.control.drift(t, &y[..nc], p, u);
            self.diffusion.diffusion(t, x, p, g);
            noise_transpose(self.noise, g, vx, sw);
            let wsum: f64 = w.iter().sum();
            let mut dh = 0.0;
            for j in 0..m {
                let zj = &z[j * k..(j + 1) * k];
                big_v[j] = (0..k).map(|i| w[i] * (u[j] - gammas[i] * zj[i])).sum();
                dh += sw[j]
                    * (0..k)
                        .map(|i| dw[i] * (u[j] - gammas[i] * zj[i]))
                        .sum::<f64>();
                let vzj = &vz[j * k..(j + 1) * k];
                ubar[j] = wsum * sw[j] + vzj.iter().sum::<f64>() + vkl * u[j];
                for i in 0..k {
                    oy[n + j * k + i] -= gammas[i] * (w[i] * sw[j] + vzj[i]);
                }
            }
            self.drift.drift_vjp(t, x, p, vx, &mut oy[..n], op);
            noise_outer(self.noise, vx, big_v, 1.0, vg);
            self.diffusion.diffusion_vjp(t, x, p, vg, &mut oy[..n], op);
            self.control
                .drift_vjp(t, &y[..nc], p, ubar, &mut oy[..nc], op);
            if let Some(i) = self.weights.hurst_index() {
                op[i] += dh;
            }
        })
    }
}

impl<G: Diffusion> Diffusion for PosteriorDiffusion<G> {
    fn diffusion(&self, t: f64, y: &[f64], p: &[f64], g: &mut [f64]) {
        let (n, na) = (self.layout.n, self.layout.dim());
        let len = self.noise.diffusion_len(n);
        g.fill(0.0);
        SCRATCH.with(|s| {
            let s = &mut *s.borrow_mut();
            let inner = s.take(len);
            self.diffusion.diffusion(t, &y[..n], p, inner);
            match self.noise {
                Noise::Scalar => g[..n].copy_from_slice(inner),
                Noise::Diagonal | Noise::Additive => {
                    for i in 0..n {
                        g[i * na + i] = inner[i];
                    }
                }
                Noise::General(m) => {
                    for j in 0..m {
                        g[j * na..j * na + n].copy_from_slice(&inner[j * n..(j + 1) * n]);
                    }
                }
            }
        })
    }

    fn check_dims(&self, n: usize, n_params: usize, len: usize) -> Result<(), SolveError> {
        let (nx, m) = (self.layout.n, self.layout.m);
        if n != self.layout.dim() || len != n * m {
            return Err(SolveError::DimensionMismatch {
                what: "posterior diffusion".into(),
                expected: self.layout.dim() * m,
                found: Some(len),
                hint: "keep the noise and y0 that posterior() built".into(),
            });
        }
        self.diffusion
            .check_dims(nx, n_params, self.noise.diffusion_len(nx))
    }
}

impl<G: DiffusionVjp> DiffusionVjp for PosteriorDiffusion<G> {
    /// The prior diffusion's VJP with the `X` rows of the cotangent (the
    /// other rows are constant zeros).
    fn diffusion_vjp(
        &self,
        t: f64,
        y: &[f64],
        p: &[f64],
        v: &[f64],
        oy: &mut [f64],
        op: &mut [f64],
    ) {
        let (n, na) = (self.layout.n, self.layout.dim());
        let len = self.noise.diffusion_len(n);
        SCRATCH.with(|s| {
            let s = &mut *s.borrow_mut();
            let inner = s.take(len);
            match self.noise {
                Noise::Scalar => inner.copy_from_slice(&v[..n]),
                Noise::Diagonal | Noise::Additive => {
                    for i in 0..n {
                        inner[i] = v[i * na + i];
                    }
                }
                Noise::General(m) => {
                    for j in 0..m {
                        inner[j * n..(j + 1) * n].copy_from_slice(&v[j * na..j * na + n]);
                    }
                }
            }
            self.diffusion
                .diffusion_vjp(t, &y[..n], p, inner, &mut oy[..n], op);
        })
    }
}
