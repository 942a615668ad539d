//! The cached Brownian interval — Kidger, Foster, Li, Lyons, "Efficient and
//! accurate gradients for neural SDEs" (NeurIPS 2021), §4 "Brownian
//! Interval"; torchsde `_brownian/brownian_interval.py` (this is an
//! independent implementation). The bridge at an arbitrary split point is
//! Foster's (DPhil thesis 2020, Thm 6.1.4; `../shared/reference/sde.md`
//! §8(b)), in [`super::bridge`]. See [`BrownianInterval`].

use super::bridge::{FRAC_1_SQRT_12, Split, chen};
use super::path_by_query;
use super::rng::{derive, normals};

/// No node / no slot.
const NONE: u32 = u32::MAX;

/// Smallest cache: a split needs its parent and both children at once.
const MIN_CACHE: usize = 8;

/// Midpoint splits stop at nodes this much shorter than the span (then the
/// query point is split directly).
const MIN_BALANCED: f64 = 1.0 / (1u64 << 60) as f64;

/// A node of the interval tree.
#[derive(Debug, Clone, Copy)]
struct Node {
    a: f64,
    b: f64,
    /// Key of the normals that split this node.
    key: u64,
    parent: u32,
    /// Left child (the right one is `left + 1`), or [`NONE`] for a leaf.
    left: u32,
    /// Cache slot of `W | H̄`, or [`NONE`].
    slot: u32,
}

/// A cached Brownian interval over `[t0, t1]` with `m` components: the
/// Brownian motion (and its space–time Lévy area) on a binary tree of
/// intervals that follows the queries. O(1) amortised per sequential query
/// whatever the number of steps, exact (no resolution), consistent under
/// re-queries in any order.
///
/// Every node is an interval `[a, b]` carrying its own increment `W_{a,b}`
/// and `H̄_{a,b} = (b − a) H_{a,b}`. The root is the whole span, drawn as
/// `N(0, T)` and `T·N(0, T/12)` from the same key as [`BrownianTree`]'s root
/// (so the increment over the whole span is the tree's for the same seed).
/// A query `[s, t]` is answered by the maximal nodes that tile it, joined by
/// Chen's relation; a node holding `s` or `t` strictly inside is split
/// there, its children drawn from the exact joint `(W, H̄)` bridge given the
/// parent (Foster's, at an arbitrary split point) with normals from the
/// parent's key. Nothing of size `O(1)` is ever subtracted, so tiny
/// intervals keep their digits.
///
/// **The path depends on the query points.** Unlike the virtual tree (a
/// pure function of `(seed, t)`), which points get split, and in which
/// order, shapes the tree and so the realised path: two solves that query
/// different times see different (equally Brownian) paths for the same
/// seed. For a given seed and sequence of queries the path is
/// deterministic, and once asked, an interval's answer never changes:
/// re-querying it — forwards, backwards as an adjoint does, in any order —
/// gives the same numbers, and increments add up (`W(s,u) = W(s,t) +
/// W(t,u)`, and Chen's relation for `H̄`) to round-off.
///
/// **Balance.** Splitting only at query points would make sequential steps
/// a comb of depth `O(n)` (each step splits the remaining `[s, t1]`). A node
/// more than [`Self::BALANCE`] times longer than the query being answered is
/// therefore first split at its midpoint (as the dyadic tree would), so the
/// tree is `O(log(span/step))` deep and each sequential query costs `O(1)`
/// amortised splits (about one and a half draws of `2m` normals).
///
/// **Memory.** The tree's *structure* (endpoints, key, links: 40 bytes a
/// node, independent of `m`) is kept for the life of the path: `O(number of
/// distinct query points)`, at most about three nodes a point, since
/// forgetting a split would change the path. The *values* (`2m` numbers a
/// node) live in a least-recently-used cache of [`Self::DEFAULT_CACHE`]
/// nodes ([`Self::with_cache_size`]); an evicted node is recomputed from its
/// nearest cached ancestor, bit for bit (the same draws, the same
/// arithmetic). All storage is in `Vec` arenas with amortised growth: once
/// the queries stop visiting new points, a query allocates nothing.
/// Construction costs `O(m)` (the root draw), whatever the span.
///
/// [`BrownianTree`]: super::BrownianTree
///
/// ```
/// use sdeflow_solvers::brownian::{BrownianInterval, BrownianPath};
/// let mut w = BrownianInterval::new((0.0, 1.0), 2, 7);
/// let (mut a, mut b, mut c) = ([0.0; 2], [0.0; 2], [0.0; 2]);
/// w.increment(0.2, 0.5, &mut b);
/// w.increment(0.5, 0.9, &mut c);
/// w.increment(0.2, 0.9, &mut a);
/// assert!((a[0] - (b[0] + c[0])).abs() < 1e-12);
/// let mut again = [0.0; 2];
/// w.increment(0.2, 0.5, &mut again);
/// assert_eq!(again, b);
/// ```
#[derive(Debug, Clone)]
pub struct BrownianInterval {
    t0: f64,
    t1: f64,
    m: usize,
    seed: u64,
    levy: bool,
    nodes: Vec<Node>,
    cache: usize,
    /// Per slot `2m` values `W | H̄`; slot 0 is the root's, never evicted.
    vals: Vec<f64>,
    /// Per slot: the node it holds, and its neighbours in recency order.
    owner: Vec<u32>,
    newer: Vec<u32>,
    older: Vec<u32>,
    /// Most and least recently used slots (not the root's).
    mru: u32,
    lru: u32,
    /// Last node of the previous answer: where the next search starts.
    last: u32,
    /// Pending right parts of the current search.
    stack: Vec<(u32, f64, f64)>,
    /// Uncached ancestors of a node being recomputed.
    chain: Vec<u32>,
    /// The answer so far (`W | H̄`), and a parent's values while splitting.
    acc: Vec<f64>,
    parent_vals: Vec<f64>,
    noise: Vec<f64>,
    /// Number of splits and of recomputations (each one draw of normals).
    draws: u64,
}

impl BrownianInterval {
    /// A node longer than `BALANCE` times the query being answered is split
    /// at its midpoint before being split at a query point.
    pub const BALANCE: f64 = 4.0;

    /// Default number of nodes whose values are cached.
    pub const DEFAULT_CACHE: usize = 256;

    /// A Brownian interval over `tspan` (either order) with `m` components,
    /// seed `seed`, tracking the space–time Lévy area.
    pub fn new(tspan: (f64, f64), m: usize, seed: u64) -> Self {
        let (t0, t1) = if tspan.0 <= tspan.1 {
            tspan
        } else {
            (tspan.1, tspan.0)
        };
        let mut w = BrownianInterval {
            t0,
            t1,
            m,
            seed,
            levy: true,
            nodes: Vec::new(),
            cache: Self::DEFAULT_CACHE,
            vals: Vec::new(),
            owner: Vec::new(),
            newer: Vec::new(),
            older: Vec::new(),
            mru: NONE,
            lru: NONE,
            last: 0,
            // deeper than a balanced tree gets in practice: no growth in use
            stack: Vec::with_capacity(64),
            chain: Vec::with_capacity(64),
            acc: vec![0.0; 2 * m],
            parent_vals: vec![0.0; 2 * m],
            noise: vec![0.0; 2 * m],
            draws: 0,
        };
        w.reset();
        w
    }

    /// Stops tracking the space–time Lévy area: half the normals per split
    /// (a different, equally valid path for the same seed;
    /// `increment_with_levy_area` then returns `H = 0`). Forgets all
    /// queries so far.
    pub fn without_levy_area(mut self) -> Self {
        self.levy = false;
        self.reset();
        self
    }

    /// Caches the values of at most `nodes` nodes (at least 8; default
    /// [`Self::DEFAULT_CACHE`]). Smaller saves `2m` numbers a node; a cache
    /// shorter than the depth of the tree makes sequential queries
    /// recompute ancestors. Forgets all queries so far (the path does not
    /// depend on the cache size).
    pub fn with_cache_size(mut self, nodes: usize) -> Self {
        self.cache = nodes.max(MIN_CACHE);
        self.reset();
        self
    }

    /// Number of nodes of the tree so far (its memory is 40 bytes a node,
    /// plus `16m` bytes per cached node).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of draws of normals so far (one per split, and one per
    /// recomputation of an evicted node's values).
    pub fn draws(&self) -> u64 {
        self.draws
    }

    /// Forgets everything but the root.
    fn reset(&mut self) {
        let m = self.m;
        let t = self.t1 - self.t0;
        self.nodes.clear();
        self.nodes.push(Node {
            a: self.t0,
            b: self.t1,
            key: derive(self.seed, 1),
            parent: NONE,
            left: NONE,
            slot: 0,
        });
        self.vals.clear();
        self.vals.resize(2 * m, 0.0);
        // the root draw of the virtual tree (key 0 of the seed)
        normals(derive(self.seed, 0), &mut self.noise);
        for i in 0..m {
            self.vals[i] = t.sqrt() * self.noise[i];
            self.vals[m + i] = if self.levy {
                t * t.sqrt() * FRAC_1_SQRT_12 * self.noise[m + i]
            } else {
                0.0
            };
        }
        self.owner.clear();
        self.owner.push(0);
        self.newer.clear();
        self.newer.push(NONE);
        self.older.clear();
        self.older.push(NONE);
        self.mru = NONE;
        self.lru = NONE;
        self.last = 0;
        self.draws = 0;
    }

    /// Unlinks slot `s` from the recency list.
    fn unlink(&mut self, s: u32) {
        let (n, o) = (self.newer[s as usize], self.older[s as usize]);
        if n == NONE {
            self.mru = o;
        } else {
            self.older[n as usize] = o;
        }
        if o == NONE {
            self.lru = n;
        } else {
            self.newer[o as usize] = n;
        }
    }

    /// Makes slot `s` the most recently used.
    fn push_front(&mut self, s: u32) {
        self.newer[s as usize] = NONE;
        self.older[s as usize] = self.mru;
        if self.mru == NONE {
            self.lru = s;
        } else {
            self.newer[self.mru as usize] = s;
        }
        self.mru = s;
    }

    /// Marks slot `s` as just used.
    fn touch(&mut self, s: u32) {
        if s != 0 && self.mru != s {
            self.unlink(s);
            self.push_front(s);
        }
    }

    /// A slot for the values of node `n`: a new one while the cache grows,
    /// else the least recently used one (its node forgets it).
    fn alloc(&mut self, n: u32) -> u32 {
        let w2 = 2 * self.m;
        let s = if self.owner.len() < self.cache {
            let s = self.owner.len() as u32;
            self.owner.push(n);
            self.newer.push(NONE);
            self.older.push(NONE);
            self.vals.resize(self.vals.len() + w2, 0.0);
            s
        } else {
            let s = self.lru;
            self.unlink(s);
            let old = self.owner[s as usize];
            self.nodes[old as usize].slot = NONE;
            self.owner[s as usize] = n;
            s
        };
        self.nodes[n as usize].slot = s;
        self.push_front(s);
        s
    }

    /// Draws the children of node `p` (which must have children) from its
    /// values and key, and caches both.
    fn bridge_children(&mut self, p: u32) {
        let m = self.m;
        let w2 = 2 * m;
        let ps = self.nodes[p as usize].slot as usize;
        self.parent_vals
            .copy_from_slice(&self.vals[ps * w2..(ps + 1) * w2]);
        let node = self.nodes[p as usize];
        let l = node.left;
        let c = self.nodes[l as usize].b;
        let nn = if self.levy { w2 } else { m };
        normals(node.key, &mut self.noise[..nn]);
        self.draws += 1;
        let split = Split::new(c - node.a, node.b - c);
        let mut slots = [NONE; 2];
        for (side, slot) in slots.iter_mut().enumerate() {
            let child = l + side as u32;
            *slot = match self.nodes[child as usize].slot {
                NONE => self.alloc(child),
                s => {
                    self.touch(s);
                    s
                }
            };
        }
        let (pv, x) = (&self.parent_vals, &self.noise);
        for i in 0..m {
            let (wl, hl, wr, hr) = if self.levy {
                split.levy(pv[i], pv[m + i], x[i], x[m + i])
            } else {
                let (wl, wr) = split.plain(pv[i], x[i]);
                (wl, 0.0, wr, 0.0)
            };
            let (sl, sr) = (slots[0] as usize * w2, slots[1] as usize * w2);
            self.vals[sl + i] = wl;
            self.vals[sl + m + i] = hl;
            self.vals[sr + i] = wr;
            self.vals[sr + m + i] = hr;
        }
    }

    /// The cache slot of node `n`'s values, recomputing them (and those of
    /// its uncached ancestors, top-down) if they were evicted.
    fn values(&mut self, n: u32) -> u32 {
        let s = self.nodes[n as usize].slot;
        if s != NONE {
            self.touch(s);
            return s;
        }
        self.chain.clear();
        let mut x = n;
        while self.nodes[x as usize].slot == NONE {
            self.chain.push(x);
            x = self.nodes[x as usize].parent;
        }
        // the ancestor x is cached (the root always is); each bridge caches
        // the next node down as the most recent slot, so the cache (≥ 8)
        // never evicts the parent it is about to use
        self.touch(self.nodes[x as usize].slot);
        while let Some(c) = self.chain.pop() {
            let p = self.nodes[c as usize].parent;
            self.bridge_children(p);
            self.touch(self.nodes[c as usize].slot);
        }
        self.nodes[n as usize].slot
    }

    /// Splits leaf `n` at `c` (strictly inside) and draws its children.
    fn split(&mut self, n: u32, c: f64) {
        let node = self.nodes[n as usize];
        let l = self.nodes.len() as u32;
        for (side, (a, b)) in [(node.a, c), (c, node.b)].into_iter().enumerate() {
            self.nodes.push(Node {
                a,
                b,
                key: derive(node.key, side as u64),
                parent: n,
                left: NONE,
                slot: NONE,
            });
        }
        self.nodes[n as usize].left = l;
        self.values(n);
        self.bridge_children(n);
    }

    /// Splits leaf `n`, which holds `s` or `t` strictly inside, towards
    /// answering `[s, t]` (the part in `n` of a query of length `q`): at its
    /// midpoint if it is much longer than the query, else at the query
    /// point. (The whole query's length, not the part's: a query that ends
    /// just past a node boundary must not halve the next node down to the
    /// sliver.)
    fn split_for(&mut self, n: u32, s: f64, t: f64, q: f64) {
        let Node { a, b, .. } = self.nodes[n as usize];
        let len = b - a;
        let mid = a + 0.5 * len;
        if len > Self::BALANCE * q && len > MIN_BALANCED * (self.t1 - self.t0) && a < mid && mid < b
        {
            self.split(n, mid);
        } else {
            self.split(n, if s > a { s } else { t });
        }
    }

    /// Adds node `n` (the next tile, starting at `acc_end`) to the answer
    /// `acc` of the interval starting at `s`.
    fn join(&mut self, n: u32, s: f64) {
        let m = self.m;
        let w2 = 2 * m;
        let slot = self.values(n) as usize;
        let Node { a, b, .. } = self.nodes[n as usize];
        let (before, len) = (a - s, b - a);
        let v = &self.vals[slot * w2..(slot + 1) * w2];
        for i in 0..m {
            let (w, h) = chen(self.acc[i], self.acc[m + i], before, v[i], v[m + i], len);
            self.acc[i] = w;
            self.acc[m + i] = if self.levy { h } else { 0.0 };
        }
    }

    /// `W_{s,t}` and `H̄_{s,t}` into `acc`, for `t0 ≤ s < t ≤ t1`.
    fn answer(&mut self, s: f64, t: f64) {
        // from the last answer up to the first node holding [s, t]
        let mut n = self.last;
        loop {
            let node = &self.nodes[n as usize];
            if (node.a <= s && t <= node.b) || node.parent == NONE {
                break;
            }
            n = node.parent;
        }
        self.acc.fill(0.0);
        self.stack.clear();
        self.stack.push((n, s, t));
        while let Some((mut n, lo, mut hi)) = self.stack.pop() {
            loop {
                let node = self.nodes[n as usize];
                if lo == node.a && hi == node.b {
                    self.join(n, s);
                    self.last = n;
                    break;
                }
                if node.left == NONE {
                    self.split_for(n, lo, hi, t - s);
                }
                let l = self.nodes[n as usize].left;
                let c = self.nodes[l as usize].b;
                if hi <= c {
                    n = l;
                } else if lo >= c {
                    n = l + 1;
                } else {
                    // both children: the left part now, the right one after
                    self.stack.push((l + 1, c, hi));
                    n = l;
                    hi = c;
                }
            }
        }
    }

    fn query(&mut self, s: f64, t: f64, dw: &mut [f64], h: Option<&mut [f64]>) {
        let m = self.m;
        let sign = if s <= t { 1.0 } else { -1.0 };
        let (a, b) = if s <= t { (s, t) } else { (t, s) };
        // NaN times (and empty intervals) are answered with zeros; max/min
        // rather than clamp, which panics on a NaN span
        let (a, b) = (a.max(self.t0).min(self.t1), b.max(self.t0).min(self.t1));
        if s.is_nan() || t.is_nan() || a.partial_cmp(&b) != Some(std::cmp::Ordering::Less) {
            dw.fill(0.0);
            if let Some(h) = h {
                h.fill(0.0);
            }
            return;
        }
        self.answer(a, b);
        for i in 0..m {
            dw[i] = sign * self.acc[i];
        }
        if let Some(h) = h {
            let scale = if self.levy { 1.0 / (b - a) } else { 0.0 };
            for i in 0..m {
                h[i] = scale * self.acc[m + i];
            }
        }
    }
}

path_by_query!(BrownianInterval);
