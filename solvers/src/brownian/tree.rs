//! The virtual Brownian tree (Li, Wong, Chen, Duvenaud, "Scalable gradients
//! for stochastic differential equations", AISTATS 2020; Kidger et al.,
//! "Efficient and accurate gradients for neural SDEs", NeurIPS 2021; diffrax
//! `_brownian/tree.py`).
//!
//! `W(t)` (anchored at `W(t0) = 0`) is computed by descending a dyadic tree
//! over `[t0, t1]`: every node bridges its interval at the midpoint with
//! normals drawn from its own key, and the descent stops at intervals of
//! length `≤ tol`, where a final bridge to `t` is drawn from the leaf's key.
//! So `W` is a deterministic function of `(seed, t)`: any query order gives
//! the same path and `W(s,u) = W(s,t) + W(t,u)` to round-off.
//!
//! With the space–time Lévy area the bridge is the joint `(W, H)` bridge of
//! Foster (DPhil thesis 2020, Thm 6.1.4; `../shared/reference/sde.md` §8):
//! midpoint `W_{s,m} = ½W_{s,u} + (3/(2T)) H̄_{s,u} + Z`,
//! `H̄_{s,m} = H̄_{s,u}/8 − (T/4)Z + (T/4)N`, `H̄_{m,u} = H̄_{s,u}/8 − (T/4)Z − (T/4)N`
//! with `Z ~ N(0, T/16)`, `N ~ N(0, T/12)`, `H̄ = (t−s)H`, and origin-anchored
//! values chained by `H̄_u = H̄_s + H̄_{s,u} + ½(u W_s − s W_u)`.
//!
//! The last descent is memoised per level, so a query close to the previous
//! one only redoes the levels below their common ancestor.

use super::BrownianPath;
use super::rng::{derive, normals};

/// Tag of the final (leaf) bridge key.
const LEAF: u64 = 0x1EAF;

/// A virtual Brownian tree over `[t0, t1]` with `m` components.
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
    /// Memo of the last descent: per level the interval `[a, b]` (relative
    /// to t0) and its node id.
    lo: Vec<f64>,
    hi: Vec<f64>,
    id: Vec<u64>,
    /// Per level, 4m values: W_a | W_b | H̄_a (origin-anchored) | H̄_{a,b}.
    vals: Vec<f64>,
    valid: usize,
    noise: Vec<f64>,
    /// The two most recent point evaluations: (τ, W(τ), H̄(τ)).
    recent: [(f64, Vec<f64>, Vec<f64>); 2],
    next_slot: usize,
    scratch: Vec<f64>,
}

impl BrownianTree {
    /// A tree over `tspan` (either order) with `m` components, seed `seed`,
    /// resolution `|t1 − t0| · 2^-40` (diffrax calls it `tol`), tracking the
    /// space–time Lévy area.
    pub fn new(tspan: (f64, f64), m: usize, seed: u64) -> Self {
        Self::with_tolerance(tspan, m, seed, (tspan.1 - tspan.0).abs() * 2f64.powi(-40))
    }

    /// A tree whose leaves have length at most `tol`.
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
        let levels = depth + 1;
        BrownianTree {
            t0: a,
            span,
            m,
            seed,
            levy: true,
            depth,
            lo: vec![0.0; levels],
            hi: vec![0.0; levels],
            id: vec![0; levels],
            vals: vec![0.0; levels * 4 * m],
            valid: 0,
            noise: vec![0.0; 2 * m],
            recent: [
                (f64::NAN, vec![0.0; m], vec![0.0; m]),
                (f64::NAN, vec![0.0; m], vec![0.0; m]),
            ],
            next_slot: 0,
            scratch: vec![0.0; 4 * m],
        }
    }

    /// Stops tracking the space–time Lévy area: half the normals per level,
    /// for solvers that need only increments. (A different, equally valid
    /// path for the same seed; `increment_with_levy_area` then returns
    /// `H = 0`.)
    pub fn without_levy_area(mut self) -> Self {
        self.levy = false;
        self.valid = 0;
        self.recent[0].0 = f64::NAN;
        self.recent[1].0 = f64::NAN;
        self
    }

    /// Number of tree levels below the root.
    pub fn depth(&self) -> usize {
        self.depth
    }

    fn init_root(&mut self) {
        let m = self.m;
        let t = self.span;
        // node ids start at 1, so id 0 is free for the root draw
        let key = derive(self.seed, 0);
        normals(key, &mut self.noise);
        let levy = self.levy;
        let (noise, vals) = (&self.noise, &mut self.vals[..4 * m]);
        for i in 0..m {
            vals[i] = 0.0; // W_a
            vals[m + i] = t.sqrt() * noise[i]; // W_b
            vals[2 * m + i] = 0.0; // H̄_a
            vals[3 * m + i] = if levy {
                t * (t / 12.0).sqrt() * noise[m + i]
            } else {
                0.0
            };
        }
        self.lo[0] = 0.0;
        self.hi[0] = t;
        self.id[0] = 1;
        self.valid = 1;
    }

    /// Bridges level `k` at its midpoint into level `k + 1` on the side of `tau`.
    fn descend(&mut self, k: usize, tau: f64) {
        let m = self.m;
        let (a, b) = (self.lo[k], self.hi[k]);
        let t = b - a;
        let mid = a + 0.5 * t;
        let left = tau <= mid;
        let id = self.id[k];
        normals(derive(self.seed, id), &mut self.noise);
        let w = 4 * m;
        let (parent, child) = self.vals.split_at_mut((k + 1) * w);
        let parent = &parent[k * w..];
        let child = &mut child[..w];
        for i in 0..m {
            let (wa, wb, hba, hbab) = (
                parent[i],
                parent[m + i],
                parent[2 * m + i],
                parent[3 * m + i],
            );
            let wab = wb - wa;
            let (w_am, hb_am, hb_mb) = if self.levy {
                let z = 0.25 * t.sqrt() * self.noise[i];
                let nn = (t / 12.0).sqrt() * self.noise[m + i];
                (
                    0.5 * wab + 1.5 / t * hbab + z,
                    hbab / 8.0 - 0.25 * t * z + 0.25 * t * nn,
                    hbab / 8.0 - 0.25 * t * z - 0.25 * t * nn,
                )
            } else {
                (0.5 * wab + 0.5 * t.sqrt() * self.noise[i], 0.0, 0.0)
            };
            let wm = wa + w_am;
            if left {
                child[i] = wa;
                child[m + i] = wm;
                child[2 * m + i] = hba;
                child[3 * m + i] = hb_am;
            } else {
                child[i] = wm;
                child[m + i] = wb;
                child[2 * m + i] = if self.levy {
                    hba + hb_am + 0.5 * (mid * wa - a * wm)
                } else {
                    0.0
                };
                child[3 * m + i] = hb_mb;
            }
        }
        if left {
            self.lo[k + 1] = a;
            self.hi[k + 1] = mid;
            self.id[k + 1] = 2 * id;
        } else {
            self.lo[k + 1] = mid;
            self.hi[k + 1] = b;
            self.id[k + 1] = 2 * id + 1;
        }
        self.valid = k + 2;
    }

    /// Origin-anchored `W(τ)` and `H̄(τ)` for `τ = t − t0 ∈ [0, span]`.
    fn point(&mut self, tau: f64, w_out: &mut [f64], hb_out: &mut [f64]) {
        let tau = tau.clamp(0.0, self.span);
        for slot in &self.recent {
            if slot.0 == tau {
                w_out.copy_from_slice(&slot.1);
                hb_out.copy_from_slice(&slot.2);
                return;
            }
        }
        if self.valid == 0 {
            self.init_root();
        }
        // deepest memoised level that still contains tau
        let mut k = 0;
        while k + 1 < self.valid && self.lo[k + 1] <= tau && tau <= self.hi[k + 1] {
            k += 1;
        }
        while k < self.depth {
            self.descend(k, tau);
            k += 1;
        }
        // final bridge inside the leaf
        let m = self.m;
        let (a, b) = (self.lo[k], self.hi[k]);
        let t = b - a;
        let l = (tau - a).max(0.0);
        let rho = (b - tau).max(0.0);
        let leaf_key = derive(derive(self.seed, self.id[k]), LEAF);
        normals(leaf_key, &mut self.noise);
        let levy = self.levy;
        let vals = &self.vals[k * 4 * m..(k + 1) * 4 * m];
        for i in 0..m {
            let (wa, wb, hba, hbab) = (vals[i], vals[m + i], vals[2 * m + i], vals[3 * m + i]);
            let wab = wb - wa;
            let (w_at, hb_at) = if levy {
                let hab = hbab / t;
                let d = (l * l * l + rho * rho * rho).sqrt();
                let slr = (l * rho).sqrt();
                let (x1, x2) = (self.noise[i], self.noise[m + i]);
                let w_at = l / t * wab + 6.0 * l * rho / (t * t) * hab + slr * d / (t * t) * x1;
                let h_at = (l / t).powi(2) * hab - l * l * slr / (2.0 * t * d) * x1
                    + rho * slr / (2.0 * 3f64.sqrt() * d) * x2;
                (w_at, l * h_at)
            } else {
                (l / t * wab + (l * rho / t).sqrt() * self.noise[i], 0.0)
            };
            let wt = wa + w_at;
            w_out[i] = wt;
            hb_out[i] = if levy {
                hba + hb_at + 0.5 * (tau * wa - a * wt)
            } else {
                0.0
            };
        }
        let slot = &mut self.recent[self.next_slot];
        slot.0 = tau;
        slot.1.copy_from_slice(w_out);
        slot.2.copy_from_slice(hb_out);
        self.next_slot = 1 - self.next_slot;
    }

    /// Origin-anchored values at `s` and `t` into the scratch buffer:
    /// `[W_s | H̄_s | W_t | H̄_t]`; returns `(τ_s, τ_t)`.
    fn two_points(&mut self, s: f64, t: f64) -> (f64, f64) {
        let m = self.m;
        let (ts, tt) = (s - self.t0, t - self.t0);
        let mut scratch = std::mem::take(&mut self.scratch);
        {
            let (ws, rest) = scratch.split_at_mut(m);
            let (hs, rest) = rest.split_at_mut(m);
            let (wt, ht) = rest.split_at_mut(m);
            self.point(ts, ws, hs);
            self.point(tt, wt, ht);
        }
        self.scratch = scratch;
        (ts.clamp(0.0, self.span), tt.clamp(0.0, self.span))
    }
}

impl BrownianPath for BrownianTree {
    fn dim(&self) -> usize {
        self.m
    }

    fn increment(&mut self, s: f64, t: f64, dw: &mut [f64]) {
        let m = self.m;
        self.two_points(s, t);
        for i in 0..m {
            dw[i] = self.scratch[2 * m + i] - self.scratch[i];
        }
    }

    fn increment_with_levy_area(&mut self, s: f64, t: f64, dw: &mut [f64], h: &mut [f64]) {
        let m = self.m;
        // H is a property of the interval, whatever the direction of travel
        let (lo, hi) = if s <= t { (s, t) } else { (t, s) };
        let (ts, tt) = self.two_points(lo, hi);
        let len = tt - ts;
        for i in 0..m {
            let (ws, hs, wt, ht) = (
                self.scratch[i],
                self.scratch[m + i],
                self.scratch[2 * m + i],
                self.scratch[3 * m + i],
            );
            let d = wt - ws;
            dw[i] = if s <= t { d } else { -d };
            // H̄_{s,t} = H̄_t − H̄_s − ½(t W_s − s W_t)
            let hb = ht - hs - 0.5 * (tt * ws - ts * wt);
            h[i] = if len > 0.0 && self.levy {
                hb / len
            } else {
                0.0
            };
        }
    }
}

#[cfg(test)]
mod tests {
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
            assert!(ew < 1e-9 && ew0 < 1e-9, "W error {ew:e} / {ew0:e} sd");
            assert!(eh < 1e-6, "H error {eh:e} sd");
        }
    }
}
