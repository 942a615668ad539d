//! Noise drivers: what an SDE problem is driven by, owned by the problem
//! (`../shared/DESIGN.md`, seam 3; diffrax's `AbstractBrownianPath` and
//! torchsde's `BrownianInterval`/`BrownianTree` play the same part).
//!
//! A [`Driver`] is a description — "a virtual Brownian tree", "fresh i.i.d.
//! increments", "this sampled path" — that builds, for one solve, the path
//! object the loop queries (`Driver::path(tspan, m, seed)`). `solve`, `grad`
//! and `Ensemble` all build their path from the problem's driver and the
//! options' seed, so the same problem and seed always give the same path: no
//! code rebuilds a path by convention, and no default differs between fixed
//! and adaptive steps.
//!
//! | driver | path | re-query (adaptive steps, backward adjoints) | cost per step |
//! |---|---|---|---|
//! | [`VirtualTree`] (default) | pure function of `(seed, t)`: the same path at every step size | yes | `O(log(span/tol))` |
//! | [`CachedInterval`] | a Brownian interval: splits at the query points, LRU-cached; deterministic for a seed and query sequence | yes | `O(1)` amortised |
//! | [`Increments`] | fresh i.i.d. increments, drawn in order | no: fixed steps, discrete adjoint only | `O(1)`, fastest |
//! | [`FixedGrid`] | W sampled on a grid `t0 + k·dt` up front, piecewise linear between | yes | `O(1)` (memory `O(span/dt)`) |
//! | [`SampledPath`] | a path you give: W at your times, piecewise linear between | yes | `O(log samples)` |

use std::fmt;
use std::sync::Arc;

use super::{BrownianIncrements, BrownianInterval, BrownianPath, BrownianTree};
use crate::brownian::rng::NormalStream;
use crate::error::SolveError;

/// A Brownian path that can be cloned behind a pointer: what a
/// [`crate::solution::Solution`] keeps of the path it was driven by.
pub trait DynPath: BrownianPath + fmt::Debug + Send + Sync {
    /// A boxed copy of this path (same values at every query).
    fn clone_box(&self) -> Box<dyn DynPath>;
}

impl<T: BrownianPath + Clone + fmt::Debug + Send + Sync + 'static> DynPath for T {
    fn clone_box(&self) -> Box<dyn DynPath> {
        Box::new(self.clone())
    }
}

/// What drives an SDE: builds the Brownian path of one solve.
///
/// Implement it to drive problems with your own path type; the solvers do
/// not change (they only see increments).
pub trait Driver: fmt::Debug + Clone + Send + Sync {
    /// The path of one solve (kept by the solution, when it can be
    /// re-queried).
    type Path: DynPath + 'static;

    /// The driver's name, for error messages.
    fn name(&self) -> &'static str;

    /// Builds the path of `m` Brownian motions over `tspan` for `seed`.
    /// Errors when the driver cannot serve this span or dimension (e.g. a
    /// sampled path of another dimension).
    fn path(&self, tspan: (f64, f64), m: usize, seed: u64) -> Result<Self::Path, SolveError>;

    /// Whether the path answers a query over an interval it has already
    /// answered, or one that overlaps it, consistently — what rejected
    /// adaptive steps and the continuous adjoints (which walk the path
    /// backwards) need. `false` for drivers that draw each increment once, in
    /// order ([`Increments`]); a driver of your own must say which it is.
    fn requery(&self) -> bool;
}

/// Defines the unit struct `$name` (with its doc), a driver whose paths
/// are `$path`, built by `$new` from `($tspan, $m, $seed)`, that can be
/// re-queried or not (`requery`).
macro_rules! simple_driver {
    (
        $(#[$doc:meta])*
        $name:ident -> $path:ident, |$tspan:pat_param, $m:ident, $seed:ident| $new:expr,
        requery: $requery:expr
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name;

        impl Driver for $name {
            type Path = $path;

            fn name(&self) -> &'static str {
                stringify!($name)
            }

            fn path(&self, $tspan: (f64, f64), $m: usize, $seed: u64) -> Result<$path, SolveError> {
                Ok($new)
            }

            fn requery(&self) -> bool {
                $requery
            }
        }
    };
}

simple_driver!(
    /// The virtual Brownian tree ([`BrownianTree`]): `W` is a pure function of
    /// `(seed, t)`, so every step size, any query order, rejected steps and
    /// backward passes see the same path. The default driver.
    VirtualTree -> BrownianTree, |tspan, m, seed| BrownianTree::new(tspan, m, seed),
    requery: true
);

simple_driver!(
    /// The cached Brownian interval ([`BrownianInterval`]; Kidger et al. 2021,
    /// torchsde's `BrownianInterval`): the path is split at the query points,
    /// so sequential queries cost `O(1)` amortised (about 0.15–0.3 µs against
    /// the tree's ~2 µs), rejected steps and backward passes re-query it
    /// consistently, and the solution keeps it. Unlike [`VirtualTree`] the
    /// realised path depends on where it was queried (another step size gives
    /// another Brownian motion), though it is deterministic for a seed and a
    /// query sequence — so `solve` and `grad` with the same problem and options
    /// still see the same path.
    CachedInterval -> BrownianInterval, |tspan, m, seed| BrownianInterval::new(tspan, m, seed),
    requery: true
);

simple_driver!(
    /// Fresh i.i.d. increments `ΔW ~ N(0, h)` drawn in order from a fast stream:
    /// the fastest driver for fixed-step solves. The path depends on the step
    /// size (halving `dt` gives another Brownian motion) and cannot be
    /// re-queried, so adaptive solves and the continuous adjoints refuse it with
    /// a typed error; the discrete adjoint records the increments it needs.
    Increments -> BrownianIncrements, |_, m, seed| BrownianIncrements::new(m, seed),
    requery: false
);

/// A path through given samples: `W` at times `ts` (and the space–time Lévy
/// area inside each cell, zero for a piecewise-linear path), linear in
/// between. Queries at the sample times are exact; elsewhere the path is
/// the linear interpolant, which is a valid (continuous, bounded-variation)
/// driving signal — Stratonovich solves then converge to the Wong–Zakai
/// limit along the samples.
#[derive(Debug, Clone, PartialEq)]
pub struct PiecewiseLinearPath {
    /// Sample times, strictly increasing.
    ts: Arc<[f64]>,
    /// `W(ts[k]) − W(ts[0])`, `m` per sample.
    w: Arc<[f64]>,
    m: usize,
    /// The cell of the last query (sequential queries find it in O(1)).
    cell: usize,
}

impl PiecewiseLinearPath {
    /// A path through `w` (`m` values per time, `W(ts[0])` first) at the
    /// strictly increasing times `ts`.
    pub fn new(ts: Vec<f64>, w: Vec<f64>, m: usize) -> Result<Self, SolveError> {
        if ts.len() < 2 {
            return Err(SolveError::invalid(
                "sampled path",
                format!(
                    "{} sample times; give at least two (the start and end of the span)",
                    ts.len()
                ),
            ));
        }
        if m == 0 || w.len() != ts.len() * m {
            return Err(SolveError::DimensionMismatch {
                what: "sampled path values".into(),
                expected: ts.len() * m.max(1),
                found: Some(w.len()),
                hint: format!("give m = {m} values of W per sample time, time-major"),
            });
        }
        if let Some(k) = ts.windows(2).position(|p| {
            p[1].partial_cmp(&p[0]) != Some(std::cmp::Ordering::Greater) || !p[1].is_finite()
        }) {
            return Err(SolveError::invalid(
                format!("sampled path ts[{}]", k + 1),
                "sample times must be finite and strictly increasing",
            ));
        }
        if let Some(i) = w.iter().position(|v| !v.is_finite()) {
            return Err(SolveError::invalid(
                format!("sampled path w[{i}]"),
                format!("{} is not finite", w[i]),
            ));
        }
        // anchor at the first sample
        let mut w = w;
        let w0: Vec<f64> = w[..m].to_vec();
        for k in 0..ts.len() {
            for j in 0..m {
                w[k * m + j] -= w0[j];
            }
        }
        Ok(PiecewiseLinearPath {
            ts: ts.into(),
            w: w.into(),
            m,
            cell: 0,
        })
    }

    /// First and last sample time.
    pub fn span(&self) -> (f64, f64) {
        (self.ts[0], self.ts[self.ts.len() - 1])
    }

    /// The cell `k` with `ts[k] <= t <= ts[k+1]` (clamped to the ends).
    #[inline]
    fn locate(&mut self, t: f64) -> usize {
        let last = self.ts.len() - 2;
        let c = self.cell.min(last);
        if self.ts[c] <= t && t <= self.ts[c + 1] {
            return c;
        }
        if c < last && self.ts[c + 1] <= t && t <= self.ts[c + 2] {
            self.cell = c + 1;
            return c + 1;
        }
        let k = self
            .ts
            .partition_point(|&s| s <= t)
            .saturating_sub(1)
            .min(last);
        self.cell = k;
        k
    }
}

impl BrownianPath for PiecewiseLinearPath {
    fn dim(&self) -> usize {
        self.m
    }

    fn increment(&mut self, s: f64, t: f64, dw: &mut [f64]) {
        for (j, d) in dw.iter_mut().enumerate().take(self.m) {
            *d = self.value(t, j) - self.value(s, j);
        }
    }

    fn increment_with_levy_area(&mut self, s: f64, t: f64, dw: &mut [f64], h: &mut [f64]) {
        self.increment(s, t, dw);
        // H_{s,t} = (1/(t−s)) ∫_s^t (W_u − W_s − (u−s)/(t−s) W_{s,t}) du, a
        // property of the interval whatever the direction
        let (lo, hi) = if s <= t { (s, t) } else { (t, s) };
        let len = hi - lo;
        for j in 0..self.m {
            if len <= 0.0 {
                h[j] = 0.0;
                continue;
            }
            let (w_lo, w_hi) = (self.value(lo, j), self.value(hi, j));
            let integral = self.integral(lo, hi, j);
            h[j] = (integral - len * w_lo - 0.5 * len * (w_hi - w_lo)) / len;
        }
    }
}

impl PiecewiseLinearPath {
    /// `W_j(t)`.
    fn value(&mut self, t: f64, j: usize) -> f64 {
        let m = self.m;
        let k = self.locate(t);
        let (a, b) = (self.ts[k], self.ts[k + 1]);
        let theta = ((t - a) / (b - a)).clamp(0.0, 1.0);
        let (wa, wb) = (self.w[k * m + j], self.w[(k + 1) * m + j]);
        wa + theta * (wb - wa)
    }

    /// `∫_lo^hi W_j(u) du` (trapezoidal over the cells: exact for the
    /// piecewise-linear path).
    fn integral(&mut self, lo: f64, hi: f64, j: usize) -> f64 {
        // outside the samples the path is flat (held at its end values)
        let (first, end) = self.span();
        let mut sum = 0.0;
        if lo < first {
            sum += (hi.min(first) - lo) * self.value(first, j);
        }
        if hi > end {
            sum += (hi - lo.max(end)) * self.value(end, j);
        }
        let (lo, hi) = (lo.max(first), hi.min(end));
        if lo >= hi {
            return sum;
        }
        let last = self.ts.len() - 2;
        let (mut a, mut wa) = (lo, self.value(lo, j));
        let mut k = self.locate(lo);
        while a < hi {
            while k < last && self.ts[k + 1] <= a {
                k += 1;
            }
            let b = if k < last { self.ts[k + 1].min(hi) } else { hi };
            let wb = self.value(b, j);
            sum += 0.5 * (wa + wb) * (b - a);
            (a, wa) = (b, wb);
            k += 1;
        }
        sum
    }
}

/// A path you supply, as samples of `W` at your times (e.g. a recorded
/// driving signal, or a path from another program), linear in between; see
/// [`PiecewiseLinearPath`]. Its span must cover the problem's. It ignores
/// the seed: every trajectory of an ensemble sees this same path.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledPath {
    path: PiecewiseLinearPath,
}

impl SampledPath {
    /// `W` at the strictly increasing times `ts`, `m` values per time
    /// (time-major).
    pub fn new(ts: Vec<f64>, w: Vec<f64>, m: usize) -> Result<Self, SolveError> {
        Ok(SampledPath {
            path: PiecewiseLinearPath::new(ts, w, m)?,
        })
    }
}

impl Driver for SampledPath {
    type Path = PiecewiseLinearPath;

    fn name(&self) -> &'static str {
        "SampledPath"
    }

    fn path(&self, tspan: (f64, f64), m: usize, _seed: u64) -> Result<Self::Path, SolveError> {
        if m != self.path.m {
            return Err(SolveError::DimensionMismatch {
                what: "sampled path Brownian motions".into(),
                expected: m,
                found: Some(self.path.m),
                hint: "give one sampled W per Brownian motion of the noise type".into(),
            });
        }
        let (a, b) = self.path.span();
        let (lo, hi) = if tspan.0 <= tspan.1 {
            tspan
        } else {
            (tspan.1, tspan.0)
        };
        if lo < a || hi > b {
            return Err(SolveError::invalid(
                "driver",
                format!("the sampled path covers ({a}, {b}), not the span ({lo}, {hi})"),
            ));
        }
        Ok(self.path.clone())
    }

    fn requery(&self) -> bool {
        true
    }
}

/// Brownian motion sampled once on the grid `t0 + k·dt` (the last cell ends
/// at `t1`) from fresh i.i.d. increments, kept, and linear in between: as
/// fast per step as [`Increments`] for a fixed-step solve on the same grid,
/// and re-queryable (adaptive steps, backward adjoints, `Solution` queries)
/// at the price of `O(span/dt)` memory. Off-grid queries see the linear
/// interpolant, not a Brownian bridge, so use it with fixed steps on the
/// grid: adaptive steps between grid points see increments of too little
/// variance (use [`VirtualTree`] or [`CachedInterval`] for those).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedGrid {
    /// The grid spacing.
    pub dt: f64,
}

impl FixedGrid {
    /// A grid of spacing `dt`.
    pub fn new(dt: f64) -> Self {
        FixedGrid { dt }
    }
}

impl Driver for FixedGrid {
    type Path = PiecewiseLinearPath;

    fn name(&self) -> &'static str {
        "FixedGrid"
    }

    fn path(&self, tspan: (f64, f64), m: usize, seed: u64) -> Result<Self::Path, SolveError> {
        let dt = self.dt.abs();
        let (lo, hi) = if tspan.0 <= tspan.1 {
            tspan
        } else {
            (tspan.1, tspan.0)
        };
        let cells = (hi - lo) / dt;
        let values = cells * m.max(1) as f64;
        let ok = dt.is_finite() && dt > 0.0 && cells.is_finite() && values <= 1e8;
        if !ok {
            return Err(SolveError::invalid(
                "driver",
                format!(
                    "FixedGrid dt = {} gives {cells} cells of {m} values over ({lo}, {hi}); \
                     give 0 < dt with at most 1e8 values in all",
                    self.dt
                ),
            ));
        }
        let k = (cells * (1.0 - 1e-12)).ceil().max(1.0) as usize;
        let mut ts = Vec::with_capacity(k + 1);
        let mut w = vec![0.0; (k + 1) * m];
        let mut stream = NormalStream::new(seed);
        ts.push(lo);
        for c in 1..=k {
            let t = if c == k { hi } else { lo + c as f64 * dt };
            let sd = (t - ts[c - 1]).sqrt();
            for j in 0..m {
                w[c * m + j] = w[(c - 1) * m + j] + sd * stream.next_normal();
            }
            ts.push(t);
        }
        PiecewiseLinearPath::new(ts, w, m)
    }

    fn requery(&self) -> bool {
        true
    }
}
