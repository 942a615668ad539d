//! The fractional noise driver: a virtual tree over the joint Gauss–Markov
//! process of a Brownian motion, its space–time Lévy area and the `K`
//! Ornstein–Uhlenbeck modes of the Markov approximation
//! (`../shared/reference/fbm.md` §3.3–3.4; the tree as in
//! `brownian/tree.rs`: Li et al., AISTATS 2020, and diffrax's
//! `VirtualBrownianTree`).
//!
//! Every node of a dyadic tree over the span carries the state
//! `X = (ΔW, H̄, ξ_1, …, ξ_K)` of its interval (see `ou_bridge.rs`); a node
//! is split at its midpoint by the exact Gaussian bridge, with standard
//! normals drawn from the node's own key (a pure function of the seed and
//! the node's dyadic position), down to leaves of length `span · 2^-depth`,
//! where a final exact bridge to the queried time is drawn from the leaf's
//! key. So the path is a deterministic function of `(seed, t)`: any query
//! order — adaptive steps, rejected steps, an adjoint walking backwards —
//! sees the same path, and the states of `[a, b]` and `[b, c]` compose
//! exactly (to round-off) into that of `[a, c]`. The bridges' law is exact
//! up to the directions of relative variance below `1e-10` that
//! `ou_bridge.rs` drops (covariances within `~1e-6` of their scale). Only
//! inside one leaf (intervals shorter than the leaf) are two ends
//! differenced, relative to the leaf, as in the Brownian tree.
//!
//! The mode values are `Y_k(t) = e^{−γ_k (t − t0)} Y_k(t0) + ξ_k(t0, t)`
//! with `Y(t0)` drawn from the stationary law `1/(γ_i + γ_j)` for type I
//! and zero for type II, and the fBM approximation is
//! `B̂_H(t) = Σ_k ω_k (Y_k(t) − Y_k(t0))` ([`OuTree::fbm`]).
//!
//! # How solvers use it
//!
//! As a [`Driver`], [`FractionalNoise`] serves every existing SDE solver
//! unchanged: its path answers `ΔW` and the space–time Lévy area like any
//! Brownian path. The OU convolutions are read with
//! [`OuTree::increment_with_convolutions`]. A method that declares
//! [`crate::solver::Increment::DwModes`] (the fBM-driven methods,
//! [`super::FractionalEuler`], [`super::FractionalHeun`]) receives the
//! modes' increments `Y_k(t + h) − Y_k(t)` of each step in
//! [`crate::solver::StepNoise::modes`], drawn by the loop through
//! [`crate::brownian::BrownianPath::increment_with_modes`]. A
//! stochastic exponential-Euler method with its own rates (one rate per
//! Brownian motion for a diagonal linear part and diagonal or additive
//! noise) would build this driver with those rates
//! ([`FractionalNoise::new`]) — the tree takes any finite positive rates,
//! and the `K` rates are shared by all `m` Brownian motions.
//!
//! Cost: building a path draws the root and the type-I start (the bridge
//! coefficients of the tree's levels depend only on the span and the rates
//! and are computed once per driver and span, then shared by all paths);
//! a query splits at most about `2 · depth` nodes, `O(m (K+2)²)` each, plus
//! one leaf bridge per end off the dyadic grid (an `O((K+2)³)` eigen-
//! decomposition). Times inside a leaf are resolved to `span · 2^-44`
//! (a few ulps of `t`) and the leaf bridges are kept by offset (up to 64
//! per path), so fixed steps that do not split the span dyadically (e.g.
//! `h = T/400`) compute a few of them once instead of one per query. No
//! allocation per query once those are built.

use std::fmt;
use std::sync::{Arc, Mutex};

use super::covariance::FbmType;
use super::error::FbmError;
use super::markov::{MarkovApprox, check_rates, stationary_covariance};
use super::ou_bridge::{Split, Workspace, combine, sigma};
use crate::brownian::Driver;
use crate::brownian::rng::{derive, normals};
use crate::error::SolveError;

/// Tag of a leaf's final bridge key.
const LEAF: u64 = 0x1EAF;
/// Tag of the type-I start's key.
const START: u64 = 0x57A7;
/// Default depth of the tree (leaves of `span · 2^-30`).
const DEPTH: usize = 30;
/// Times inside a leaf are resolved to `span · 2^-LEAF_BITS` (`5.7e-14` of
/// the span: a few ulps of `t`), so that a step size that does not split
/// the span dyadically meets the same few leaf offsets again and again.
const LEAF_BITS: i32 = 44;
/// Leaf bridges kept per path, by offset (round robin).
const LEAF_CACHE: usize = 64;

/// The bridge coefficients of the tree's levels for one span.
type Levels = Arc<[Split]>;

/// A noise driver for the Markov approximation of fBM: `m` independent
/// Brownian motions, each driving `K` OU modes with the same rates, served
/// by a virtual tree ([`OuTree`]) with exact bridging.
///
/// ```
/// use sdeflow_solvers::brownian::{BrownianPath, Driver};
/// use sdeflow_solvers::fractional::{FbmType, FractionalNoise, MarkovApprox, gamma_grid};
/// let ma = MarkovApprox::new(FbmType::MandelbrotVanNess, 0.3, 1.0, &gamma_grid(4, 0.3, 1.0)?)?;
/// let noise = FractionalNoise::from_markov(&ma);
/// let mut path = noise.path((0.0, 1.0), 1, 42)?;
/// let (mut dw, mut xi) = ([0.0], [0.0; 4]);
/// path.increment_with_convolutions(0.2, 0.7, &mut dw, &mut xi);
/// let mut b = [0.0];
/// path.fbm(0.7, &mut b)?; // B̂_H(0.7) of this path
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct FractionalNoise {
    gammas: Arc<[f64]>,
    kind: FbmType,
    weights: Option<Arc<[f64]>>,
    depth: usize,
    /// The levels of the last span built, shared by its paths.
    cache: Arc<Mutex<Option<(u64, Levels)>>>,
}

impl fmt::Debug for FractionalNoise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FractionalNoise")
            .field("gammas", &self.gammas)
            .field("kind", &self.kind)
            .field("weights", &self.weights)
            .field("depth", &self.depth)
            .finish()
    }
}

impl FractionalNoise {
    /// OU modes with rates `gammas` (finite, positive), started stationary
    /// for [`FbmType::MandelbrotVanNess`] and at zero for
    /// [`FbmType::RiemannLiouville`]; no weights (so [`OuTree::fbm`] is
    /// unavailable, the modes and convolutions are).
    pub fn new(gammas: &[f64], kind: FbmType) -> Result<Self, FbmError> {
        check_rates(gammas)?;
        Ok(FractionalNoise {
            gammas: gammas.into(),
            kind,
            weights: None,
            depth: DEPTH,
            cache: Arc::new(Mutex::new(None)),
        })
    }

    /// The modes of a Markov approximation, with its weights.
    pub fn from_markov(ma: &MarkovApprox) -> Self {
        FractionalNoise {
            gammas: ma.gammas().into(),
            kind: ma.kind(),
            weights: Some(ma.weights().into()),
            depth: DEPTH,
            cache: Arc::new(Mutex::new(None)),
        }
    }

    /// Sets the tree's depth (leaves of `span · 2^-depth`), `1..=50`
    /// (default 30).
    pub fn with_depth(mut self, depth: usize) -> Result<Self, FbmError> {
        if !(1..=50).contains(&depth) {
            return Err(FbmError::invalid(
                "fractional noise tree depth",
                format!("{depth}; give 1 to 50"),
            ));
        }
        self.depth = depth;
        self.cache = Arc::new(Mutex::new(None));
        Ok(self)
    }

    /// The OU rates.
    pub fn gammas(&self) -> &[f64] {
        &self.gammas
    }

    /// The type of the modes' start (stationary for type I, zero for
    /// type II).
    pub fn kind(&self) -> FbmType {
        self.kind
    }

    /// The levels' bridges for `span`, from the cache or computed.
    fn levels(&self, span: f64) -> Levels {
        let key = span.to_bits();
        if let Ok(guard) = self.cache.lock()
            && let Some((k, lv)) = guard.as_ref()
            && *k == key
        {
            return lv.clone();
        }
        let d = self.gammas.len() + 2;
        let mut ws = Workspace::new(d);
        let lv: Levels = (0..self.depth)
            .map(|j| {
                let half = span / 2f64.powi(j as i32 + 1);
                let mut s = Split::empty(d);
                s.set(half, half, &self.gammas, &mut ws);
                s
            })
            .collect();
        if let Ok(mut guard) = self.cache.lock() {
            *guard = Some((key, lv.clone()));
        }
        lv
    }
}

impl Driver for FractionalNoise {
    type Path = OuTree;

    fn name(&self) -> &'static str {
        "FractionalNoise"
    }

    fn path(&self, tspan: (f64, f64), m: usize, seed: u64) -> Result<OuTree, SolveError> {
        let (a, b) = if tspan.0 <= tspan.1 {
            tspan
        } else {
            (tspan.1, tspan.0)
        };
        let span = b - a;
        if !(a.is_finite() && span.is_finite() && span > 0.0) {
            return Err(FbmError::invalid(
                "fractional noise span",
                format!(
                    "({}, {}); give a finite span of positive length",
                    tspan.0, tspan.1
                ),
            )
            .into());
        }
        Ok(OuTree::build(self, a, span, m, seed))
    }

    fn requery(&self) -> bool {
        true
    }
}

/// The path of a [`FractionalNoise`] driver: `m` Brownian motions with
/// their Lévy areas and OU convolutions, a pure function of
/// `(seed, t)`. A [`crate::brownian::BrownianPath`] (increments and Lévy area), plus the
/// convolutions, the modes and the fBM approximation.
#[derive(Debug, Clone)]
pub struct OuTree {
    t0: f64,
    span: f64,
    m: usize,
    d: usize,
    seed: u64,
    depth: usize,
    gammas: Arc<[f64]>,
    weights: Option<Arc<[f64]>>,
    levels: Levels,
    /// `Y(t0)`, `m × K`.
    y0: Vec<f64>,
    /// `X` of the whole span, `m × d`.
    root: Vec<f64>,
    ws: Workspace,
    /// Leaf bridges by offset in units of `span · 2^-LEAF_BITS` (at most
    /// [`LEAF_CACHE`], filled on demand, replaced round robin).
    leaves: Vec<(u64, Split)>,
    leaf_next: usize,
    /// Leaf bridges computed so far (cache misses).
    leaf_builds: usize,
    /// The node being descended, its children, normals, scratch (`m × d`
    /// each) and the siblings kept on the way (`depth × m × d`).
    cur: Vec<f64>,
    left: Vec<f64>,
    right: Vec<f64>,
    noise: Vec<f64>,
    acc: Vec<f64>,
    tmp: Vec<f64>,
    parts: [Vec<f64>; 2],
    saved: Vec<f64>,
    stack: Vec<f64>,
    out: Vec<f64>,
    /// `W` and the modes at the first end of a mode query (`m × (K + 1)`).
    ends: Vec<f64>,
}

impl OuTree {
    fn build(noise: &FractionalNoise, t0: f64, span: f64, m: usize, seed: u64) -> Self {
        let k = noise.gammas.len();
        let d = k + 2;
        let mut ws = Workspace::new(d);
        let mut buf = vec![0.0; d * d];
        let mut sq = vec![0.0; d * d];
        let mut z = vec![0.0; m * d];
        // the root: X of the span ~ N(0, Σ(span))
        sigma(span, &noise.gammas, &mut buf);
        ws.sqrt_psd(&mut buf, &mut sq, d);
        normals(derive(seed, 0), &mut z);
        let mut root = vec![0.0; m * d];
        for j in 0..m {
            matvec(
                &sq,
                &z[j * d..(j + 1) * d],
                &mut root[j * d..(j + 1) * d],
                d,
            );
        }
        // the start: stationary for type I
        let mut y0 = vec![0.0; m * k];
        if noise.kind == FbmType::MandelbrotVanNess {
            let c = stationary_covariance(&noise.gammas);
            let mut cbuf: Vec<f64> = (0..k * k).map(|i| c[(i / k, i % k)]).collect();
            ws.sqrt_psd(&mut cbuf, &mut sq, k);
            normals(derive(seed, START), &mut z[..m * k]);
            for j in 0..m {
                matvec(&sq, &z[j * k..(j + 1) * k], &mut y0[j * k..(j + 1) * k], k);
            }
        }
        let md = m * d;
        OuTree {
            t0,
            span,
            m,
            d,
            seed,
            depth: noise.depth,
            gammas: noise.gammas.clone(),
            weights: noise.weights.clone(),
            levels: noise.levels(span),
            y0,
            root,
            ws,
            leaves: Vec::new(),
            leaf_next: 0,
            leaf_builds: 0,
            cur: vec![0.0; md],
            left: vec![0.0; md],
            right: vec![0.0; md],
            noise: vec![0.0; md],
            acc: vec![0.0; md],
            tmp: vec![0.0; md],
            parts: [vec![0.0; md], vec![0.0; md]],
            saved: vec![0.0; md],
            stack: vec![0.0; noise.depth * md],
            out: vec![0.0; md],
            ends: vec![0.0; m * (k + 1)],
        }
    }

    /// Number of OU modes `K`.
    pub fn modes_len(&self) -> usize {
        self.d - 2
    }

    /// The OU rates.
    pub fn gammas(&self) -> &[f64] {
        &self.gammas
    }

    /// `Y(t0)`, `K` values per Brownian motion (zero for type II).
    pub fn initial_modes(&self) -> &[f64] {
        &self.y0
    }

    /// Leaf bridges computed so far by this path (the others came from its
    /// cache).
    #[cfg(test)]
    pub(super) fn leaf_builds(&self) -> usize {
        self.leaf_builds
    }

    /// `τ = t − t0` clamped to the span.
    fn tau(&self, t: f64) -> f64 {
        (t - self.t0).clamp(0.0, self.span)
    }

    /// Splits `cur` (a node of `level` with `id`) into `left`/`right`.
    fn split_cur(&mut self, level: usize, id: u64) {
        normals(derive(self.seed, id), &mut self.noise);
        let s = &self.levels[level];
        let d = self.d;
        for j in 0..self.m {
            let r = j * d..(j + 1) * d;
            s.apply(
                &self.cur[r.clone()],
                &self.noise[r.clone()],
                &mut self.left[r.clone()],
                &mut self.right[r],
            );
        }
    }

    /// Bridges the leaf in `cur` (`[lo, hi]`, `id`) at `p`, resolved to
    /// `span · 2^-LEAF_BITS`: the prefix into `left`, the suffix into
    /// `right`; returns the prefix's length. The bridge of each offset is
    /// computed once (an eigen-decomposition) and kept, so fixed steps
    /// that do not split the span dyadically reuse a few of them.
    fn split_leaf(&mut self, lo: f64, hi: f64, id: u64, p: f64) -> f64 {
        let q = self.span * 2f64.powi(-LEAF_BITS);
        let len = hi - lo;
        let units = ((p - lo).max(0.0) / q).round();
        let l = (units * q).min(len);
        let rho = len - l;
        if l == 0.0 || rho <= 0.0 {
            let (zero, whole) = if l == 0.0 {
                (&mut self.left, &mut self.right)
            } else {
                (&mut self.right, &mut self.left)
            };
            zero.fill(0.0);
            whole.copy_from_slice(&self.cur);
            return if l == 0.0 { 0.0 } else { len };
        }
        let key = units as u64;
        let slot = match self.leaves.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                let i = if self.leaves.len() < LEAF_CACHE {
                    self.leaves.push((key, Split::empty(self.d)));
                    self.leaves.len() - 1
                } else {
                    let i = self.leaf_next;
                    self.leaf_next = (i + 1) % LEAF_CACHE;
                    i
                };
                self.leaves[i].0 = key;
                self.leaf_builds += 1;
                self.leaves[i].1.set(l, rho, &self.gammas, &mut self.ws);
                i
            }
        };
        normals(derive(derive(self.seed, id), LEAF), &mut self.noise);
        let d = self.d;
        let leaf = &self.leaves[slot].1;
        for j in 0..self.m {
            let r = j * d..(j + 1) * d;
            leaf.apply(
                &self.cur[r.clone()],
                &self.noise[r.clone()],
                &mut self.left[r.clone()],
                &mut self.right[r],
            );
        }
        l
    }

    /// Combines per Brownian motion: `out = X_a (len la) ⊕ X_b (len lb)`.
    fn compose(&self, xa: &[f64], la: f64, xb: &[f64], lb: f64, out: &mut [f64]) {
        let d = self.d;
        for j in 0..self.m {
            let r = j * d..(j + 1) * d;
            combine(
                &xa[r.clone()],
                la,
                &xb[r.clone()],
                lb,
                &self.gammas,
                &mut out[r],
            );
        }
    }

    /// The part of the node in `cur` (`[lo, hi]`, `id`, at `level0`) on
    /// one side of `p`: the suffix `X(p, hi)` into `parts[0]`
    /// (`suffix = true`) or the prefix `X(lo, p)` into `parts[1]`. Descends
    /// towards `p`, keeping the siblings on the wanted side, then composes
    /// them bottom-up with the leaf's part.
    fn part(&mut self, lo0: f64, hi0: f64, mut id: u64, level0: usize, p: f64, suffix: bool) {
        let md = self.m * self.d;
        let out = usize::from(!suffix);
        let (mut lo, mut hi) = (lo0, hi0);
        let mut level = level0;
        let mut pushed = [false; 64];
        if (suffix && p <= lo) || (!suffix && p >= hi) {
            self.parts[out].copy_from_slice(&self.cur);
            return;
        }
        let acc_len;
        loop {
            if level == self.depth {
                let l = self.split_leaf(lo, hi, id, p);
                let (part, len) = if suffix {
                    (&self.right, (hi - lo) - l)
                } else {
                    (&self.left, l)
                };
                self.acc.copy_from_slice(part);
                acc_len = len;
                break;
            }
            self.split_cur(level, id);
            let mid = lo + 0.5 * (hi - lo);
            let go_right = if suffix { p >= mid } else { p > mid };
            // keep the sibling on the wanted side of the way down
            if suffix != go_right {
                let sib = if suffix { &self.right } else { &self.left };
                self.stack[level * md..(level + 1) * md].copy_from_slice(sib);
                pushed[level] = true;
            }
            if go_right {
                std::mem::swap(&mut self.cur, &mut self.right);
                lo = mid;
                id = 2 * id + 1;
            } else {
                std::mem::swap(&mut self.cur, &mut self.left);
                hi = mid;
                id *= 2;
            }
            level += 1;
            if (suffix && p == lo) || (!suffix && p == hi) {
                self.acc.copy_from_slice(&self.cur);
                acc_len = hi - lo;
                break;
            }
        }
        // climb: each kept sibling lies right after (suffix) or right before
        // (prefix) the accumulated part
        let mut len = acc_len;
        for lv in (level0..level).rev() {
            if pushed[lv] {
                let sib_len = self.span / 2f64.powi(lv as i32 + 1);
                let mut sum = std::mem::take(&mut self.tmp);
                let sib = &self.stack[lv * md..(lv + 1) * md];
                if suffix {
                    self.compose(&self.acc, len, sib, sib_len, &mut sum);
                } else {
                    self.compose(sib, sib_len, &self.acc, len, &mut sum);
                }
                self.tmp = std::mem::replace(&mut self.acc, sum);
                len += sib_len;
            }
        }
        self.parts[out].copy_from_slice(&self.acc);
    }

    /// `X(a, b)` for `0 ≤ a ≤ b ≤ span` (tree coordinates) into `out`.
    fn interval(&mut self, a: f64, b: f64) {
        if a >= b {
            self.out.fill(0.0);
            return;
        }
        self.cur.copy_from_slice(&self.root);
        let (mut lo, mut hi, mut id) = (0.0, self.span, 1u64);
        for level in 0..=self.depth {
            if a <= lo && b >= hi {
                self.out.copy_from_slice(&self.cur);
                return;
            }
            if level == self.depth {
                // both ends in one leaf: difference the two prefixes
                self.leaf_interval(lo, hi, id, a, b);
                return;
            }
            let mid = lo + 0.5 * (hi - lo);
            if b <= mid || a >= mid {
                self.split_cur(level, id);
                if b <= mid {
                    std::mem::swap(&mut self.cur, &mut self.left);
                    hi = mid;
                    id *= 2;
                } else {
                    std::mem::swap(&mut self.cur, &mut self.right);
                    lo = mid;
                    id = 2 * id + 1;
                }
                continue;
            }
            // the ends straddle the midpoint: suffix of the left child, prefix
            // of the right child
            self.split_cur(level, id);
            self.saved.copy_from_slice(&self.right);
            std::mem::swap(&mut self.cur, &mut self.left);
            self.part(lo, mid, 2 * id, level + 1, a, true);
            std::mem::swap(&mut self.cur, &mut self.saved);
            self.part(mid, hi, 2 * id + 1, level + 1, b, false);
            let (p0, p1) = (
                std::mem::take(&mut self.parts[0]),
                std::mem::take(&mut self.parts[1]),
            );
            let mut out = std::mem::take(&mut self.out);
            self.compose(&p0, mid - a, &p1, b - mid, &mut out);
            self.out = out;
            self.parts = [p0, p1];
            return;
        }
    }

    /// `X(a, b)` with both ends in the leaf in `cur`: the prefixes
    /// `X(lo, a)`, `X(lo, b)` drawn from the leaf's key, differenced.
    fn leaf_interval(&mut self, lo: f64, hi: f64, id: u64, a: f64, b: f64) {
        let d = self.d;
        let la = self.split_leaf(lo, hi, id, a);
        self.acc.copy_from_slice(&self.left);
        let lab = self.split_leaf(lo, hi, id, b) - la;
        for j in 0..self.m {
            let (pa, pb) = (
                &self.acc[j * d..(j + 1) * d],
                &self.left[j * d..(j + 1) * d],
            );
            let o = &mut self.out[j * d..(j + 1) * d];
            o[0] = pb[0] - pa[0];
            // Chen: H̄(lo,b) = H̄(lo,a) + H̄(a,b) + ½(lab ΔW(lo,a) − la ΔW(a,b))
            o[1] = pb[1] - pa[1] - 0.5 * (lab * pa[0] - la * o[0]);
            for (k, &g) in self.gammas.iter().enumerate() {
                o[2 + k] = pb[2 + k] - (-g * lab).exp() * pa[2 + k];
            }
        }
    }

    /// The state over `[s, t]` (any order; that of `[min, max]`), into
    /// `self.out`; returns the signed length `t − s` of the clamped query.
    fn query_state(&mut self, s: f64, t: f64) -> f64 {
        let (ts, tt) = (self.tau(s), self.tau(t));
        let (a, b) = if ts <= tt { (ts, tt) } else { (tt, ts) };
        self.interval(a, b);
        tt - ts
    }

    /// Writes `W(t) − W(s)` into `dw` (`m`) and the OU convolutions
    /// `ξ_k = ∫_s^t e^{−γ_k (t − u)} dW_u` into `xi` (`m × K`, Brownian
    /// motion-major). For `s > t`, `dw` is `W(t) − W(s)` and `xi` is the
    /// convolution over the forward interval `[t, s]`.
    pub fn increment_with_convolutions(&mut self, s: f64, t: f64, dw: &mut [f64], xi: &mut [f64]) {
        let len = self.query_state(s, t);
        let (d, k) = (self.d, self.d - 2);
        for j in 0..self.m {
            let x = &self.out[j * d..(j + 1) * d];
            dw[j] = if len < 0.0 { -x[0] } else { x[0] };
            xi[j * k..(j + 1) * k].copy_from_slice(&x[2..]);
        }
    }

    /// The modes `Y_k(t)`, `m × K`.
    pub fn modes(&mut self, t: f64, y: &mut [f64]) {
        let tau = self.tau(t);
        self.interval(0.0, tau);
        let (d, k) = (self.d, self.d - 2);
        for j in 0..self.m {
            for (i, &g) in self.gammas.iter().enumerate() {
                y[j * k + i] = (-g * tau).exp() * self.y0[j * k + i] + self.out[j * d + 2 + i];
            }
        }
    }

    /// The fBM approximation `B̂_H(t) = Σ_k ω_k (Y_k(t) − Y_k(t0))`, one
    /// value per Brownian motion, with the weights of the Markov
    /// approximation the driver was built from.
    pub fn fbm(&mut self, t: f64, out: &mut [f64]) -> Result<(), FbmError> {
        let Some(w) = self.weights.clone() else {
            return Err(FbmError::invalid(
                "fractional noise path",
                "it has no weights; build the driver with FractionalNoise::from_markov",
            ));
        };
        if out.len() != self.m {
            return Err(FbmError::DimensionMismatch {
                what: "fBM output".into(),
                expected: self.m,
                found: out.len(),
            });
        }
        let tau = self.tau(t);
        self.interval(0.0, tau);
        let (d, k) = (self.d, self.d - 2);
        for j in 0..self.m {
            let mut acc = 0.0;
            for (i, &g) in self.gammas.iter().enumerate() {
                let y0 = self.y0[j * k + i];
                // Y(t) − Y(0) = (e^{−γτ} − 1) Y(0) + ξ(0, τ)
                acc += w[i] * ((-g * tau).exp_m1() * y0 + self.out[j * d + 2 + i]);
            }
            out[j] = acc;
        }
        Ok(())
    }

    /// `ΔW` and `H` of `[s, t]` (`h` optional).
    fn query(&mut self, s: f64, t: f64, dw: &mut [f64], h: Option<&mut [f64]>) {
        let len = self.query_state(s, t);
        let d = self.d;
        for j in 0..self.m {
            let x = self.out[j * d];
            dw[j] = if len < 0.0 { -x } else { x };
        }
        if let Some(h) = h {
            for j in 0..self.m {
                h[j] = if len == 0.0 {
                    0.0
                } else {
                    self.out[j * d + 1] / len.abs()
                };
            }
        }
    }
}

impl OuTree {
    /// `W(t) − W(t0)` and the modes `Y(t)` into `w` (`m`) and `y`
    /// (`m × K`).
    fn w_and_modes(&mut self, t: f64, w: &mut [f64], y: &mut [f64]) {
        let tau = self.tau(t);
        self.interval(0.0, tau);
        let (d, k) = (self.d, self.d - 2);
        for j in 0..self.m {
            w[j] = self.out[j * d];
            for (i, &g) in self.gammas.iter().enumerate() {
                y[j * k + i] = (-g * tau).exp() * self.y0[j * k + i] + self.out[j * d + 2 + i];
            }
        }
    }
}

crate::brownian::path_by_query!(OuTree, {
    fn modes_len(&self) -> usize {
        self.d - 2
    }

    /// `W(t) − W(s)` and `Y_k(t) − Y_k(s)`, each end read from the root
    /// (`Y(t) = e^{−γ (t − t0)} Y(t0) + ξ(t0, t)`), so that the increments of
    /// consecutive steps telescope to `Y(t) − Y(t0)` whatever the steps.
    fn increment_with_modes(&mut self, s: f64, t: f64, dw: &mut [f64], dy: &mut [f64]) {
        let (m, k) = (self.m, self.d - 2);
        let mut ends = std::mem::take(&mut self.ends);
        let (ws, ys) = ends.split_at_mut(m);
        self.w_and_modes(s, ws, ys);
        self.w_and_modes(t, dw, dy);
        for j in 0..m {
            dw[j] -= ws[j];
        }
        for (d, y) in dy[..m * k].iter_mut().zip(ys.iter()) {
            *d -= y;
        }
        self.ends = ends;
    }
});

/// `y = a x` for a row-major `n × n` matrix.
fn matvec(a: &[f64], x: &[f64], y: &mut [f64], n: usize) {
    for i in 0..n {
        y[i] = (0..n).map(|k| a[i * n + k] * x[k]).sum();
    }
}
