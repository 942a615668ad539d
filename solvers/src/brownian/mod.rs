//! Brownian motion for SDE solvers: a path that can be queried for the
//! increment `W(t) − W(s)` (and the space–time Lévy area `H_{s,t}`) over any
//! interval, in any order.
//!
//! - [`BrownianTree`]: a virtual Brownian tree — `W` is a pure function of
//!   `(seed, t)`, so rejected adaptive steps and backward (adjoint) passes see
//!   the same Brownian motion without storing it.
//! - [`BrownianInterval`]: a cached Brownian interval — a tree of intervals
//!   split at the queried times, O(1) per sequential query whatever the
//!   number of steps, exact, consistent under re-queries in any order; its
//!   path depends on the query points.
//! - [`BrownianIncrements`]: the fast path for fixed steps, drawing each
//!   increment directly from a sequential stream.

mod bridge;
#[cfg(test)]
pub(crate) mod dd;
mod driver;
mod interval;
pub mod rng;
#[cfg(test)]
mod timing;
mod tree;

pub use driver::{
    CachedInterval, Driver, DynPath, FixedGrid, Increments, PiecewiseLinearPath, SampledPath,
    VirtualTree,
};
pub use interval::BrownianInterval;
pub use tree::BrownianTree;

use rng::IncrementRng;

/// A Brownian path with `m` independent components.
pub trait BrownianPath {
    /// Number of independent components `m`.
    fn dim(&self) -> usize;

    /// Writes `W(t) − W(s)` into `dw` (length `m`).
    fn increment(&mut self, s: f64, t: f64, dw: &mut [f64]);

    /// Writes `W(t) − W(s)` and the space–time Lévy area
    /// `H_{s,t} = (1/(t−s)) ∫_s^t (W_{s,r} − (r−s)/(t−s) W_{s,t}) dr` of the
    /// interval between `s` and `t` (each length `m`). `H ~ N(0, |t−s|/12)`
    /// is independent of the increment.
    fn increment_with_levy_area(&mut self, s: f64, t: f64, dw: &mut [f64], h: &mut [f64]);

    /// Number `K` of Ornstein–Uhlenbeck modes each Brownian motion drives
    /// on this path ([`crate::solver::Increment::DwModes`]): 0 for a plain
    /// Brownian path (the default); the fractional noise path
    /// ([`crate::fractional::OuTree`]) says how many it serves.
    fn modes_len(&self) -> usize {
        0
    }

    /// Writes `W(t) − W(s)` into `dw` (length `m`) and the increments
    /// `Y_k(t) − Y_k(s)` of the OU modes into `dy` (length `m · K`,
    /// Brownian-motion-major, `K =` [`BrownianPath::modes_len`]). A path
    /// without modes (the default) writes the increment and leaves `dy`
    /// untouched: the loop never asks it, as it refuses a method that reads
    /// modes on a path with `modes_len() == 0`.
    fn increment_with_modes(&mut self, s: f64, t: f64, dw: &mut [f64], dy: &mut [f64]) {
        let _ = dy;
        self.increment(s, t, dw);
    }
}

/// Implements [`BrownianPath`] for a path type `$ty` with a field `m` (its
/// dimension) and a method `query(s, t, dw, h)` answering both the
/// increment (`h = None`) and the increment with its Lévy area; `$extra`:
/// further methods of the trait (the OU modes of a fractional path).
macro_rules! path_by_query {
    ($ty:ty $(, { $($extra:tt)* })?) => {
        impl $crate::brownian::BrownianPath for $ty {
            fn dim(&self) -> usize {
                self.m
            }

            fn increment(&mut self, s: f64, t: f64, dw: &mut [f64]) {
                self.query(s, t, dw, None);
            }

            fn increment_with_levy_area(&mut self, s: f64, t: f64, dw: &mut [f64], h: &mut [f64]) {
                // H is a property of the interval, whatever the direction of travel
                self.query(s, t, dw, Some(h));
            }

            $($($extra)*)?
        }
    };
}
pub(crate) use path_by_query;

/// Fixed-step fast path: each call draws a fresh increment `N(0, t−s)` (and
/// `H ~ N(0, (t−s)/12)`) from a sequential stream seeded by `seed`.
///
/// Only valid for consecutive, non-overlapping intervals visited once, as
/// in a fixed-step solve; adaptive solves need a [`BrownianTree`].
#[derive(Debug, Clone)]
pub struct BrownianIncrements {
    m: usize,
    stream: IncrementRng,
}

impl BrownianIncrements {
    /// `m` independent components from `seed`.
    pub fn new(m: usize, seed: u64) -> Self {
        BrownianIncrements {
            m,
            stream: IncrementRng::new(seed),
        }
    }
}

impl BrownianPath for BrownianIncrements {
    fn dim(&self) -> usize {
        self.m
    }

    #[inline(always)]
    fn increment(&mut self, s: f64, t: f64, dw: &mut [f64]) {
        // the signed square root of the step (`√|h|·sign h`), computed
        // every step: cheaper than caching it, as rounding makes fixed
        // steps differ in their last bits and the cache test unpredictable
        let h = t - s;
        let sd = h.abs().sqrt().copysign(h);
        for d in dw.iter_mut() {
            *d = sd * self.stream.next_normal();
        }
    }

    #[inline]
    fn increment_with_levy_area(&mut self, s: f64, t: f64, dw: &mut [f64], h: &mut [f64]) {
        self.increment(s, t, dw);
        let sd = ((t - s).abs() / 12.0).sqrt();
        for v in h.iter_mut() {
            *v = sd * self.stream.next_normal();
        }
    }
}

/// The time reversal of a path: `W̃(τ) = W(t_end − τ) − W(t_end)`, a
/// Brownian motion in `τ` built from the same path — what a backward
/// (adjoint) solve in reversed time `τ = t_end − t` must be driven by.
#[derive(Debug)]
pub struct ReversedPath<'a, P: ?Sized> {
    /// The forward path.
    pub path: &'a mut P,
    /// The end of the forward span.
    pub t_end: f64,
}

impl<P: BrownianPath + ?Sized> BrownianPath for ReversedPath<'_, P> {
    fn dim(&self) -> usize {
        self.path.dim()
    }

    fn increment(&mut self, s: f64, t: f64, dw: &mut [f64]) {
        // W̃(t) − W̃(s) = W(t_end − t) − W(t_end − s)
        self.path.increment(self.t_end - s, self.t_end - t, dw);
    }

    fn increment_with_levy_area(&mut self, s: f64, t: f64, dw: &mut [f64], h: &mut [f64]) {
        // the increment flips; the space–time Lévy area of the interval does
        // not (substituting r = t_end − u in its definition gives H back —
        // cf. diffrax PR #599)
        self.path
            .increment_with_levy_area(self.t_end - s, self.t_end - t, dw, h);
    }
}
