//! The virtual Brownian tree (Li, Wong, Chen, Duvenaud, "Scalable gradients
//! for stochastic differential equations", AISTATS 2020; Kidger et al.,
//! "Efficient and accurate gradients for neural SDEs", NeurIPS 2021; diffrax
//! `_brownian/tree.py`).
//!
//! `W` (and `H̄`) on `[t0, t1]` are defined by a dyadic tree: every node
//! bridges its interval at the midpoint with normals drawn from its own key
//! (Foster's midpoint rule, [`super::bridge::midpoint`]), down to leaves of
//! length `≤ tol`, where a final bridge to the queried time is drawn from the
//! leaf's key ([`super::bridge::Split`]). So `W` is a deterministic function
//! of `(seed, t)`: any query order gives the same path and
//! `W(s,u) = W(s,t) + W(t,u)` to round-off.
//!
//! Precision: every node carries its *own* increment and `H̄` (not values
//! anchored at `t0`). An interval `[s, t]` is the suffix `[s, mid]` of `s`
//! and the prefix `[mid, t]` of `t` below their deepest common node, joined
//! at its midpoint by Chen's relation; each of those is summed bottom-up
//! from the leaf bridge over the siblings along the descent. Nothing of
//! size `O(1)` is subtracted, so `ΔW` and `H` keep full relative precision
//! however small the interval: `1e-15` of their standard deviations at
//! `1e-10` of the span against a double-double evaluation of the tree,
//! where the origin-anchored formula `H̄_t − H̄_s − ½(t W_s − s W_t)` (used
//! by earlier versions of this module) was off by two standard deviations. Only inside one
//! leaf (intervals shorter than `tol`, where the leaf bridge is not
//! Brownian anyway) are the two ends subtracted, relative to the leaf.
//!
//! Cost: the last descent is memoised per level with both children of
//! every node on it, so a query next to the previous one bridges only the
//! levels below their common ancestor (none at the level where the way
//! turns). The three most recently queried times are cached with their
//! prefix/suffix sums, so a sequential query computes one new point.

use super::bridge::{Split, chen, midpoint};
use super::path_by_query;
use super::rng::{derive, normals};

/// Tag of the final (leaf) bridge key.
const LEAF: u64 = 0x1EAF;

/// Number of cached points: the two ends of the last query and one more
/// (the end of a rejected step, which a later query may reach again).
const SLOTS: usize = 3;

/// A queried time with its prefix/suffix sums along its descent.
///
/// At level `k` of the descent only one of `[lo_k, τ]`, `[τ, hi_k]` differs
/// from level `k + 1`: the prefix when `τ` is in the right child (it gains
/// the left child), the suffix otherwise. So `vals` keeps, per level, only
/// the side that changes there; the other is found at the first deeper level
/// where it changes (a bit scan of `leaf`), or at the leaf. The levels are
/// filled from the leaf up only as far as a query has needed them.
#[derive(Debug, Clone)]
struct Point {
    /// `τ = t − t0`; NaN when empty.
    tau: f64,
    /// Node id of the leaf holding `τ`: a leading 1, then one bit per level
    /// (1 = right child), most significant first.
    leaf: u64,
    /// Start of the leaf.
    leaf_lo: f64,
    /// Levels `top..=depth` are filled.
    top: usize,
    /// Per level above the leaves, `2m` values: `W | H̄` of `[lo_k, τ]` if `τ`
    /// is in the right child of node `k`, else of `[τ, hi_k]`; then the
    /// leaf's prefix `[lo, τ]` and suffix `[τ, hi]`.
    vals: Vec<f64>,
    /// Last use (for the least-recently-used replacement).
    used: u64,
}

/// The prefix `[lo_k, τ]` of a point at a level.
const PREFIX: usize = 0;
/// The suffix `[τ, hi_k]` of a point at a level.
const SUFFIX: usize = 1;

impl Point {
    fn new(depth: usize, m: usize) -> Self {
        Point {
            tau: f64::NAN,
            leaf: 0,
            leaf_lo: 0.0,
            top: depth,
            vals: vec![0.0; (depth + 2) * 2 * m],
            used: 0,
        }
    }

    /// The bits of `leaf` for the levels `a..b` (of `depth`) where `side`
    /// changes: 1 bits for the prefix, 0 bits for the suffix.
    #[inline]
    fn changes(&self, side: usize, a: usize, b: usize, depth: usize) -> u64 {
        // level k is bit depth − 1 − k
        let mask = ((1u64 << (b - a)) - 1) << (depth - b);
        if side == PREFIX {
            self.leaf & mask
        } else {
            !self.leaf & mask
        }
    }

    /// Offset in `vals` of `W | H̄` of `side` at level `k ≥ top`.
    #[inline]
    fn at(&self, side: usize, k: usize, depth: usize, m: usize) -> usize {
        // the shallowest level ≥ k where the side changes, else the leaf
        let bits = self.changes(side, k, depth, depth);
        if bits == 0 {
            (depth + side) * 2 * m
        } else {
            let p = 63 - bits.leading_zeros() as usize;
            (depth - 1 - p) * 2 * m
        }
    }
}

/// One level of the memoised descent: the node `[lo, hi]`, its midpoint and
/// id, and whether the descent takes its right child.
#[derive(Debug, Clone, Copy, Default)]
struct Level {
    lo: f64,
    hi: f64,
    mid: f64,
    id: u64,
    right: bool,
}

/// A virtual Brownian tree over `[t0, t1]` with `m` components.
///
/// Memory `O(depth · m)`, fixed at construction; a query costs at most two
/// descents of `depth` levels (a sequential one, the levels below the
/// common ancestor of its ends).
///
/// ```
/// use sdeflow_solvers::brownian::{BrownianPath, BrownianTree};
/// let mut w = BrownianTree::new((0.0, 1.0), 2, 7);
/// let (mut a, mut b, mut c) = ([0.0; 2], [0.0; 2], [0.0; 2]);
/// w.increment(0.2, 0.9, &mut a);
/// w.increment(0.2, 0.5, &mut b);
/// w.increment(0.5, 0.9, &mut c);
/// assert!((a[0] - (b[0] + c[0])).abs() < 1e-12);
/// ```
#[derive(Debug, Clone)]
pub struct BrownianTree {
    t0: f64,
    span: f64,
    m: usize,
    seed: u64,
    levy: bool,
    depth: usize,
    /// The memoised descent, levels `0..=depth` (`mid` and `right` unused
    /// at the leaf).
    path: Vec<Level>,
    /// Per level below the leaves, the children of the node:
    /// `W_L | H̄_L | W_R | H̄_R` (`4m`).
    kids: Vec<f64>,
    /// `W | H̄` of the whole span.
    root: Vec<f64>,
    /// Number of levels whose `kids` belong to the current descent.
    bridged: usize,
    noise: Vec<f64>,
    points: [Point; SLOTS],
    clock: u64,
}

impl BrownianTree {
    /// A tree over `tspan` (either order) with `m` components, seed `seed`,
    /// resolution `|t1 − t0| · 2^-40` (diffrax calls it `tol`), tracking the
    /// space–time Lévy area.
    pub fn new(tspan: (f64, f64), m: usize, seed: u64) -> Self {
        Self::with_tolerance(tspan, m, seed, (tspan.1 - tspan.0).abs() * 2f64.powi(-40))
    }

    /// A tree whose leaves have length at most `tol` (at most 60 levels).
    pub fn with_tolerance(tspan: (f64, f64), m: usize, seed: u64, tol: f64) -> Self {
        let (a, b) = if tspan.0 <= tspan.1 {
            tspan
        } else {
            (tspan.1, tspan.0)
        };
        let span = (b - a).max(f64::MIN_POSITIVE);
        let tol = if tol.is_finite() && tol > 0.0 {
            tol
        } else {
            span * 2f64.powi(-40)
        };
        let depth = ((span / tol).log2().ceil().max(0.0) as usize).min(60);
        let mut path = vec![Level::default(); depth + 1];
        path[0] = Level {
            lo: 0.0,
            hi: span,
            mid: 0.5 * span,
            id: 1,
            right: false,
        };
        let mut tree = BrownianTree {
            t0: a,
            span,
            m,
            seed,
            levy: true,
            depth,
            path,
            kids: vec![0.0; depth * 4 * m],
            root: vec![0.0; 2 * m],
            bridged: 0,
            noise: vec![0.0; 2 * m],
            points: std::array::from_fn(|_| Point::new(depth, m)),
            clock: 0,
        };
        tree.reset();
        tree
    }

    /// Stops tracking the space–time Lévy area: half the normals per level,
    /// for solvers that need only increments. (A different, equally valid
    /// path for the same seed; `increment_with_levy_area` then returns
    /// `H = 0`.)
    pub fn without_levy_area(mut self) -> Self {
        self.levy = false;
        self.reset();
        self
    }

    /// Number of tree levels below the root.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Draws the root and forgets the memo and the cached points.
    fn reset(&mut self) {
        let m = self.m;
        // node ids start at 1, so id 0 is free for the root draw
        normals(derive(self.seed, 0), &mut self.noise);
        let t = self.span;
        for i in 0..m {
            self.root[i] = t.sqrt() * self.noise[i];
            self.root[m + i] = if self.levy {
                t * (t / 12.0).sqrt() * self.noise[m + i]
            } else {
                0.0
            };
        }
        self.bridged = 0;
        for p in &mut self.points {
            p.tau = f64::NAN;
        }
    }

    /// Moves the memoised descent to the leaf holding `tau`: levels already
    /// bridged on the way are reused (where the way turns at a bridged
    /// node, its other child is known too), the rest are bridged at their
    /// midpoints (Foster's rule) with their own keys.
    fn descend(&mut self, tau: f64) {
        // one Brownian motion is the common case: a copy of the loop for
        // m = 1 lets the compiler drop the per-component loop machinery
        if self.m == 1 {
            self.descend_m(tau, 1);
        } else {
            self.descend_m(tau, self.m);
        }
    }

    /// [`Self::descend`] with `m` components.
    #[inline(always)]
    fn descend_m(&mut self, tau: f64, m: usize) {
        let d = self.depth;
        let w4 = 4 * m;
        let levy = self.levy;
        let nn = if levy { 2 * m } else { m };
        let mut k = 0;
        while k < self.bridged {
            let lv = self.path[k];
            k += 1;
            let go_right = tau > lv.mid;
            if go_right != lv.right {
                self.turn(k - 1, go_right);
                break;
            }
        }
        while k < d {
            let lv = self.path[k];
            normals(derive(self.seed, lv.id), &mut self.noise[..nn]);
            let t = lv.hi - lv.lo;
            let st = t.sqrt();
            let (above, below) = self.kids.split_at_mut(k * w4);
            let parent = if k == 0 {
                &self.root[..]
            } else {
                let o = (k - 1) * w4 + if self.path[k - 1].right { 2 * m } else { 0 };
                &above[o..o + 2 * m]
            };
            let (child, noise) = (&mut below[..w4], &self.noise[..nn]);
            if levy {
                for i in 0..m {
                    let (wl, hl, wr, hr) =
                        midpoint(t, st, parent[i], parent[m + i], noise[i], noise[m + i]);
                    child[i] = wl;
                    child[m + i] = hl;
                    child[2 * m + i] = wr;
                    child[3 * m + i] = hr;
                }
            } else {
                for i in 0..m {
                    let r = 0.5 * st * noise[i];
                    child[i] = 0.5 * parent[i] + r;
                    child[m + i] = 0.0;
                    child[2 * m + i] = 0.5 * parent[i] - r;
                    child[3 * m + i] = 0.0;
                }
            }
            self.turn(k, tau > lv.mid);
            k += 1;
        }
        self.bridged = d;
    }

    /// Sets the side taken at level `k` and the node of level `k + 1`.
    #[inline]
    fn turn(&mut self, k: usize, go_right: bool) {
        let lv = self.path[k];
        let (lo, hi, id) = if go_right {
            (lv.mid, lv.hi, 2 * lv.id + 1)
        } else {
            (lv.lo, lv.mid, 2 * lv.id)
        };
        self.path[k].right = go_right;
        // the same arithmetic as `common_node`, so the same midpoints
        self.path[k + 1] = Level {
            lo,
            hi,
            mid: lo + 0.5 * (hi - lo),
            id,
            right: false,
        };
        self.bridged = self.bridged.min(k + 1);
    }

    /// The deepest node holding both `ta < tb`: its level and midpoint, or
    /// `None` if they share a leaf. Geometry only (no normals).
    fn common_node(&self, ta: f64, tb: f64) -> Option<(usize, f64)> {
        let (mut lo, mut hi) = (0.0, self.span);
        for k in 0..self.depth {
            let mid = lo + 0.5 * (hi - lo);
            let (ra, rb) = (ta > mid, tb > mid);
            if ra != rb {
                return Some((k, mid));
            }
            if ra {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        None
    }

    /// The cache slot of `tau` filled at levels `need..=depth`: extends a
    /// cached point while the memo still holds its path there, else
    /// (re)computes it, into its own slot or the least recently used one
    /// other than `keep`.
    fn ensure(&mut self, tau: f64, need: usize, keep: Option<usize>) -> usize {
        let d = self.depth;
        let j = match self.points.iter().position(|p| p.tau == tau) {
            Some(i) => {
                let p = &self.points[i];
                let top = p.top;
                if top <= need {
                    return i;
                }
                // kids[k] for k in need..top are its own iff the memo's node
                // at level top − 1 is its node there
                let k = top - 1;
                if self.bridged > k && self.path[k].id == p.leaf >> (d - k) {
                    self.climb(i, need);
                    return i;
                }
                i
            }
            None => {
                let mut j = usize::from(keep == Some(0));
                for (i, p) in self.points.iter().enumerate() {
                    if Some(i) != keep && p.used < self.points[j].used {
                        j = i;
                    }
                }
                j
            }
        };
        self.descend(tau);
        self.leaf(tau, j);
        self.climb(j, need);
        j
    }

    /// The leaf bridge of the current descent at `tau` into slot `j`.
    fn leaf(&mut self, tau: f64, j: usize) {
        let (m, d) = (self.m, self.depth);
        let (w2, w4) = (2 * m, 4 * m);
        let nn = if self.levy { 2 * m } else { m };
        let lv = self.path[d];
        normals(
            derive(derive(self.seed, lv.id), LEAF),
            &mut self.noise[..nn],
        );
        let pt = &mut self.points[j];
        pt.tau = tau;
        pt.leaf = lv.id;
        pt.leaf_lo = lv.lo;
        pt.top = d;
        let split = Split::new((tau - lv.lo).max(0.0), (lv.hi - tau).max(0.0));
        let leaf = if d == 0 {
            &self.root[..]
        } else {
            let o = (d - 1) * w4 + if self.path[d - 1].right { w2 } else { 0 };
            &self.kids[o..o + w2]
        };
        let ends = &mut pt.vals[d * w2..];
        for i in 0..m {
            if self.levy {
                let (wl, hl, wr, hr) =
                    split.levy(leaf[i], leaf[m + i], self.noise[i], self.noise[m + i]);
                ends[i] = wl;
                ends[m + i] = hl;
                ends[w2 + i] = wr;
                ends[w2 + m + i] = hr;
            } else {
                let (wl, wr) = split.plain(leaf[i], self.noise[i]);
                ends[i] = wl;
                ends[m + i] = 0.0;
                ends[w2 + i] = wr;
                ends[w2 + m + i] = 0.0;
            }
        }
    }

    /// Fills slot `j` at levels `need..top`, bottom-up, from the memoised
    /// descent (which must be the slot's path there).
    ///
    /// Per component the running prefix and suffix climb from level `top`;
    /// at level `k` one of them gains the sibling of the node below by
    /// Chen's relation: `[lo_k, τ] = [lo_k, mid_k] ⊕ [mid_k, τ]` when `τ` is
    /// in the right child (`r = 1`), `[τ, hi_k] = [τ, mid_k] ⊕ [mid_k, hi_k]`
    /// otherwise (`r = 0`). Both updates are computed and weighted by `r`
    /// and `1 − r` (`0·x` and `1·x` are exact): the side bits are random, so
    /// a branch would mispredict half the time.
    fn climb(&mut self, j: usize, need: usize) {
        if self.m == 1 {
            self.climb_m(j, need, 1);
        } else {
            self.climb_m(j, need, self.m);
        }
    }

    /// [`Self::climb`] with `m` components.
    #[inline(always)]
    fn climb_m(&mut self, j: usize, need: usize, m: usize) {
        let d = self.depth;
        let (w2, w4) = (2 * m, 4 * m);
        let levy = self.levy;
        let pt = &mut self.points[j];
        let top = pt.top;
        if need >= top {
            return;
        }
        let tau = pt.tau;
        let (op, os) = (pt.at(PREFIX, top, d, m), pt.at(SUFFIX, top, d, m));
        let leaf = pt.leaf;
        let (upper, lower) = pt.vals.split_at_mut(top * w2);
        let (pre0, suf0) = (&lower[op - top * w2..], &lower[os - top * w2..]);
        let kids = &self.kids[need * w4..top * w4];
        let path = &self.path[need..top];
        let out = &mut upper[need * w2..];
        for c in 0..m {
            let (mut pw, mut ph) = (pre0[c], pre0[m + c]);
            let (mut sw, mut sh) = (suf0[c], suf0[m + c]);
            let mut k = top;
            for ((kid, lv), out) in kids
                .chunks_exact(w4)
                .rev()
                .zip(path.iter().rev())
                .zip(out.chunks_exact_mut(w2).rev())
            {
                k -= 1;
                let r = ((leaf >> (d - 1 - k)) & 1) as f64;
                let q = 1.0 - r;
                let (wl, wr) = (r * kid[c], q * kid[w2 + c]);
                if levy {
                    let (hl, hr) = (r * kid[m + c], q * kid[w2 + m + c]);
                    ph += (hl + 0.5 * (tau - lv.mid) * wl) - (0.5 * r * (lv.mid - lv.lo)) * pw;
                    sh += (hr - 0.5 * (lv.mid - tau) * wr) + (0.5 * q * (lv.hi - lv.mid)) * sw;
                }
                pw += wl;
                sw += wr;
                out[c] = r * pw + q * sw;
                out[m + c] = r * ph + q * sh;
            }
        }
        pt.top = need;
    }

    /// `W_{s,t}` into `dw` and, when given, `H_{s,t}` into `h`.
    fn query(&mut self, s: f64, t: f64, dw: &mut [f64], h: Option<&mut [f64]>) {
        let (m, d) = (self.m, self.depth);
        let w2 = 2 * m;
        let sign = if s <= t { 1.0 } else { -1.0 };
        let (a, b) = if s <= t { (s, t) } else { (t, s) };
        let ta = (a - self.t0).clamp(0.0, self.span);
        let tb = (b - self.t0).clamp(0.0, self.span);
        // NaN times are answered as an empty interval
        if ta.partial_cmp(&tb) != Some(std::cmp::Ordering::Less) {
            dw.fill(0.0);
            if let Some(h) = h {
                h.fill(0.0);
            }
            return;
        }
        let split = self.common_node(ta, tb);
        // the suffix of `a` and the prefix of `b` below the common node
        let need = split.map_or(d, |(k, _)| k + 1);
        // a cached end first: the memo may still be on its path
        let cached_b = self.points.iter().position(|p| p.tau == tb);
        let (i, j) = if cached_b.is_some() && !self.points.iter().any(|p| p.tau == ta) {
            let j = self.ensure(tb, need, None);
            (self.ensure(ta, need, Some(j)), j)
        } else {
            let i = self.ensure(ta, need, cached_b);
            (i, self.ensure(tb, need, Some(i)))
        };
        self.clock += 1;
        self.points[i].used = self.clock;
        self.points[j].used = self.clock;
        let (pa, pb) = (&self.points[i], &self.points[j]);
        let scale = if self.levy { 1.0 / (tb - ta) } else { 0.0 };
        let mut h = h;
        match split {
            None => {
                // both in one leaf: the prefixes of the leaf, subtracted
                let base = d * w2;
                let (la, lb) = (ta - pa.leaf_lo, tb - pa.leaf_lo);
                let (va, vb) = (&pa.vals[base..base + w2], &pb.vals[base..base + w2]);
                for c in 0..m {
                    dw[c] = sign * (vb[c] - va[c]);
                    if let Some(h) = h.as_deref_mut() {
                        let hb = vb[m + c] - va[m + c] - 0.5 * (lb * va[c] - la * vb[c]);
                        h[c] = scale * hb;
                    }
                }
            }
            Some((k, mid)) => {
                // the deepest common node (level k) splits at its midpoint
                // between them: the suffix of `a` and the prefix of `b` one
                // level below, joined there
                let (la, lb) = (mid - ta, tb - mid);
                let oa = pa.at(SUFFIX, k + 1, d, m);
                let ob = pb.at(PREFIX, k + 1, d, m);
                let (va, vb) = (&pa.vals[oa..oa + w2], &pb.vals[ob..ob + w2]);
                for c in 0..m {
                    let (w, hb) = chen(va[c], va[m + c], la, vb[c], vb[m + c], lb);
                    dw[c] = sign * w;
                    if let Some(h) = h.as_deref_mut() {
                        h[c] = scale * hb;
                    }
                }
            }
        }
    }
}

path_by_query!(BrownianTree);

#[cfg(test)]
mod tests {
    use super::super::BrownianPath;
    use super::super::dd::Dd;
    use super::*;

    /// The tree's definition evaluated in double-double: origin-anchored
    /// `W(τ)` and `H̄(τ)` by the descent and the leaf bridge, with the node
    /// boundaries and the normals of the tree. Subtracting two such values
    /// keeps ~30 digits, so it is an exact reference for a tiny interval.
    fn reference_point(
        seed: u64,
        span: f64,
        depth: usize,
        levy: bool,
        m: usize,
        tau: f64,
    ) -> (Vec<Dd>, Vec<Dd>) {
        let d = Dd::new;
        let half = d(0.5);
        let mut noise = vec![0.0; 2 * m];
        normals(derive(seed, 0), &mut noise);
        let sp = d(span);
        let mut wa = vec![d(0.0); m];
        let mut wb: Vec<Dd> = (0..m).map(|i| sp.sqrt() * d(noise[i])).collect();
        let mut hba = vec![d(0.0); m];
        let mut hbab: Vec<Dd> = (0..m)
            .map(|i| {
                if levy {
                    sp * (sp / d(12.0)).sqrt() * d(noise[m + i])
                } else {
                    d(0.0)
                }
            })
            .collect();
        let (mut lo, mut hi, mut id) = (0.0f64, span, 1u64);
        for _ in 0..depth {
            let mid = lo + 0.5 * (hi - lo);
            let t = d(hi) - d(lo);
            let left = tau <= mid;
            normals(derive(seed, id), &mut noise);
            for i in 0..m {
                let wab = wb[i] - wa[i];
                let (w_am, hb_am, hb_mb) = if levy {
                    let z = d(0.25) * t.sqrt() * d(noise[i]);
                    let nn = (t / d(12.0)).sqrt() * d(noise[m + i]);
                    let q = d(0.25) * t;
                    (
                        half * wab + d(1.5) / t * hbab[i] + z,
                        hbab[i] / d(8.0) - q * z + q * nn,
                        hbab[i] / d(8.0) - q * z - q * nn,
                    )
                } else {
                    (half * wab + half * t.sqrt() * d(noise[i]), d(0.0), d(0.0))
                };
                let wm = wa[i] + w_am;
                if left {
                    wb[i] = wm;
                    hbab[i] = hb_am;
                } else {
                    hba[i] = hba[i] + hb_am + half * (d(mid) * wa[i] - d(lo) * wm);
                    wa[i] = wm;
                    hbab[i] = hb_mb;
                }
            }
            if left {
                hi = mid;
                id *= 2;
            } else {
                lo = mid;
                id = 2 * id + 1;
            }
        }
        normals(derive(derive(seed, id), LEAF), &mut noise);
        let t = d(hi) - d(lo);
        let l = d(tau) - d(lo);
        let rho = d(hi) - d(tau);
        let (mut w, mut hb) = (vec![d(0.0); m], vec![d(0.0); m]);
        for i in 0..m {
            let wab = wb[i] - wa[i];
            let (x1, x2) = (d(noise[i]), d(noise[m + i]));
            let (w_at, hb_at) = if levy {
                let hab = hbab[i] / t;
                let dd = (l * l * l + rho * rho * rho).sqrt();
                let slr = (l * rho).sqrt();
                let w_at = l / t * wab + d(6.0) * l * rho / (t * t) * hab + slr * dd / (t * t) * x1;
                let h_at = (l / t) * (l / t) * hab - l * l * slr / (d(2.0) * t * dd) * x1
                    + rho * slr / (d(2.0) * d(3.0).sqrt() * dd) * x2;
                (w_at, l * h_at)
            } else {
                (l / t * wab + (l * rho / t).sqrt() * x1, d(0.0))
            };
            w[i] = wa[i] + w_at;
            hb[i] = hba[i] + hb_at + half * (d(tau) * wa[i] - d(lo) * w[i]);
        }
        (w, hb)
    }

    /// Worst errors of `(W_{s,t}, H_{s,t})` over intervals of length
    /// `frac · span`, in units of their standard deviations
    /// (`√len`, `√(len/12)`).
    fn worst_errors(tspan: (f64, f64), frac: f64, levy: bool) -> (f64, f64) {
        let m = 2;
        let span = tspan.1 - tspan.0;
        let (mut ew, mut eh) = (0.0f64, 0.0f64);
        let mut u = crate::brownian::rng::NormalStream::new(99);
        for seed in 0..40u64 {
            let mut tree = BrownianTree::new(tspan, m, seed);
            if !levy {
                tree = tree.without_levy_area();
            }
            // random positions, and intervals straddling dyadic points,
            // where the origin-anchored difference is worst
            let mut starts: Vec<f64> = (0..6)
                .map(|_| {
                    let x = 0.5 + 0.2 * u.next_normal();
                    x.clamp(0.01, 0.98)
                })
                .collect();
            starts.extend([0.5, 0.25, 0.75, 0.625].map(|c| c - 0.3 * frac));
            for x in starts {
                let s = tspan.0 + x * span;
                let t = s + frac * span;
                let (ts, tt) = (s - tspan.0, t - tspan.0);
                let len = tt - ts;
                let (mut dw, mut h) = (vec![0.0; m], vec![0.0; m]);
                tree.increment_with_levy_area(s, t, &mut dw, &mut h);
                let (w0, h0) = reference_point(seed, span, tree.depth(), levy, m, ts);
                let (w1, h1) = reference_point(seed, span, tree.depth(), levy, m, tt);
                for i in 0..m {
                    let rw = (w1[i] - w0[i]).to_f64();
                    let rhb =
                        h1[i] - h0[i] - Dd::new(0.5) * (Dd::new(tt) * w0[i] - Dd::new(ts) * w1[i]);
                    let rh = (rhb / (Dd::new(tt) - Dd::new(ts))).to_f64();
                    ew = ew.max((dw[i] - rw).abs() / len.sqrt());
                    if levy {
                        eh = eh.max((h[i] - rh).abs() / (len / 12.0).sqrt());
                    }
                }
            }
        }
        (ew, eh)
    }

    #[test]
    fn tiny_intervals_keep_their_digits() {
        // all rows are printed before any assertion
        let mut rows = Vec::new();
        for tspan in [(0.0, 1.0), (-2.0, 3.0)] {
            for frac in [1e-6, 1e-8, 1e-10, 1e-12] {
                let (ew, eh) = worst_errors(tspan, frac, true);
                let (ew0, _) = worst_errors(tspan, frac, false);
                println!(
                    "span {tspan:?}, interval {frac:e} of it: worst error of W {ew:.1e} sd, of H {eh:.1e} sd (without Lévy area: W {ew0:.1e} sd)"
                );
                rows.push((ew, eh, ew0));
            }
        }
        for (ew, eh, ew0) in rows {
            assert!(ew < 1e-12 && ew0 < 1e-12, "W error {ew:e} / {ew0:e} sd");
            assert!(eh < 1e-6, "H error {eh:e} sd");
        }
    }
}
