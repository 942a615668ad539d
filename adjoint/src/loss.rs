//! Losses on the saved states of a solve, and loss helpers that derive
//! their own gradient: the terminal value of a component ([`Terminal`]),
//! the squared error against data at the saved times ([`SquaredError`]),
//! and sums and weighted sums of losses ([`Plus`], [`Weighted`], written
//! `a + b` and `w * a`).
//!
//! ```
//! use sdeflow_adjoint::{Loss, SquaredError, Terminal};
//!
//! // two saved times, two components: ys = [y(0.5), y(1.0)]
//! let (ts, ys) = ([0.5, 1.0], [1.0, 2.0, 3.0, 4.0]);
//! let fit = SquaredError::component(1, [0.5, 1.0], [2.5, 3.0]);
//! let loss = Terminal::new(0) + 0.5 * fit;
//! let mut g = [0.0; 4];
//! // L = y0(1) + 0.5 ((2 - 2.5)² + (4 - 3)²)
//! assert_eq!(loss.eval(&ts, &ys, &mut g), 3.0 + 0.5 * (0.25 + 1.0));
//! assert_eq!(g, [0.0, -0.5, 1.0, 1.0]);
//! ```

use std::ops::{Add, Mul};

use sdeflow_solvers::solution::Solution;

use crate::GradError;

/// A loss `L(ts, ys)` on the saved times and states (`ys` flat, `n` per
/// time) that also writes `∂L/∂ys` (same shape) into `grad`. Any closure
/// `|ts: &[f64], ys: &[f64], grad: &mut [f64]| -> f64` is a loss, so
/// fitting data at many times works; the helpers [`Terminal`],
/// [`SquaredError`] and their sums need no closure.
pub trait Loss {
    /// Returns `L` and writes `∂L/∂ys` into `grad` (zeroed by the caller).
    fn eval(&self, ts: &[f64], ys: &[f64], grad: &mut [f64]) -> f64;

    /// Checks, before the first evaluation, that this loss fits a solution
    /// saved at `ts` with `n` components per time; the message says what
    /// does not. The default accepts anything.
    fn check(&self, _ts: &[f64], _n: usize) -> Result<(), String> {
        Ok(())
    }
}

impl<F: Fn(&[f64], &[f64], &mut [f64]) -> f64> Loss for F {
    fn eval(&self, ts: &[f64], ys: &[f64], grad: &mut [f64]) -> f64 {
        self(ts, ys, grad)
    }
}

/// `L = y_c(t_last)`: component `c` of the last saved state (with
/// `SaveAt::T1`, the state at the end of the span).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terminal {
    /// The component `c`.
    pub component: usize,
}

impl Terminal {
    /// The terminal value of component `component`.
    pub fn new(component: usize) -> Self {
        Terminal { component }
    }
}

impl Loss for Terminal {
    fn eval(&self, ts: &[f64], ys: &[f64], grad: &mut [f64]) -> f64 {
        let Some(n) = per_time(ts, ys) else {
            return f64::NAN;
        };
        match (ts.len() - 1).checked_mul(n).map(|k| k + self.component) {
            Some(k) if self.component < n && k < ys.len() => {
                grad[k] += 1.0;
                ys[k]
            }
            _ => f64::NAN,
        }
    }

    fn check(&self, ts: &[f64], n: usize) -> Result<(), String> {
        if ts.is_empty() {
            return Err("Terminal: the solution saved no state".into());
        }
        if self.component >= n {
            return Err(format!(
                "Terminal: component {} does not exist (the state has {n}); give 0..{n}",
                self.component
            ));
        }
        Ok(())
    }
}

/// `L = Σ_k Σ_i (y_i(t_k) − d_{k,i})²`: the squared error against data
/// `d` at the saved times `t_k`, over every component
/// ([`SquaredError::new`]) or one ([`SquaredError::component`]). Save at
/// the data's times (`SaveAt::Times(times)`); a solution saved elsewhere is
/// refused with a message saying so, not fitted silently.
#[derive(Debug, Clone, PartialEq)]
pub struct SquaredError {
    /// The fitted component; `None`: every component.
    pub component: Option<usize>,
    /// The data's times.
    pub times: Vec<f64>,
    /// The data: `n` values per time (every component) or one.
    pub data: Vec<f64>,
}

impl SquaredError {
    /// The squared error over every component: `data` holds `n` values per
    /// time, in the layout of the solution's `ys`.
    pub fn new(times: impl Into<Vec<f64>>, data: impl Into<Vec<f64>>) -> Self {
        SquaredError {
            component: None,
            times: times.into(),
            data: data.into(),
        }
    }

    /// The squared error of component `component`: `data` holds one value
    /// per time.
    pub fn component(
        component: usize,
        times: impl Into<Vec<f64>>,
        data: impl Into<Vec<f64>>,
    ) -> Self {
        SquaredError {
            component: Some(component),
            times: times.into(),
            data: data.into(),
        }
    }

    /// The entries of `ys` this loss compares with `data`, in the data's
    /// order, for `n` components per time.
    fn entries(&self, n: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.data.len()).map(move |j| match self.component {
            Some(c) => j * n + c,
            None => j,
        })
    }
}

impl Loss for SquaredError {
    fn eval(&self, ts: &[f64], ys: &[f64], grad: &mut [f64]) -> f64 {
        let Some(n) = per_time(ts, ys) else {
            return f64::NAN;
        };
        if self.check(ts, n).is_err() {
            return f64::NAN;
        }
        let mut value = 0.0;
        for (k, d) in self.entries(n).zip(&self.data) {
            let r = ys[k] - d;
            value += r * r;
            grad[k] += 2.0 * r;
        }
        value
    }

    fn check(&self, ts: &[f64], n: usize) -> Result<(), String> {
        if let Some(c) = self.component.filter(|&c| c >= n) {
            return Err(format!(
                "SquaredError: component {c} does not exist (the state has {n}); give 0..{n}"
            ));
        }
        let per = if self.component.is_some() { 1 } else { n };
        if self.data.len() != self.times.len() * per {
            return Err(format!(
                "SquaredError: {} data values for {} times; give {per} per time",
                self.data.len(),
                self.times.len()
            ));
        }
        let same = ts.len() == self.times.len()
            && ts
                .iter()
                .zip(&self.times)
                .all(|(a, b)| (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0));
        if !same {
            return Err(format!(
                "SquaredError: the solution is saved at {} times that are not the data's {}; \
                 solve with `Options::save_at(SaveAt::Times(times))` at the data's times",
                ts.len(),
                self.times.len()
            ));
        }
        Ok(())
    }
}

/// `L = a + b` (also written `a + b` for the helpers of this module).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plus<A, B>(pub A, pub B);

impl<A: Loss, B: Loss> Loss for Plus<A, B> {
    fn eval(&self, ts: &[f64], ys: &[f64], grad: &mut [f64]) -> f64 {
        let a = self.0.eval(ts, ys, grad);
        // each part writes into a zeroed buffer, as the trait promises
        let mut gb = vec![0.0; grad.len()];
        let b = self.1.eval(ts, ys, &mut gb);
        grad.iter_mut().zip(&gb).for_each(|(g, d)| *g += d);
        a + b
    }

    fn check(&self, ts: &[f64], n: usize) -> Result<(), String> {
        self.0.check(ts, n)?;
        self.1.check(ts, n)
    }
}

/// `L = w · a` (also written `w * a` for the helpers of this module).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weighted<L>(pub f64, pub L);

impl<L: Loss> Loss for Weighted<L> {
    fn eval(&self, ts: &[f64], ys: &[f64], grad: &mut [f64]) -> f64 {
        let value = self.1.eval(ts, ys, grad);
        grad.iter_mut().for_each(|g| *g *= self.0);
        self.0 * value
    }

    fn check(&self, ts: &[f64], n: usize) -> Result<(), String> {
        self.1.check(ts, n)
    }
}

/// `a + b` and `w * a` for the loss helpers.
macro_rules! loss_ops {
    ($(<$($g:ident),*> $ty:ty;)*) => {$(
        impl<$($g,)* R: Loss> Add<R> for $ty {
            type Output = Plus<Self, R>;
            fn add(self, rhs: R) -> Plus<Self, R> {
                Plus(self, rhs)
            }
        }
        impl<$($g),*> Mul<$ty> for f64 {
            type Output = Weighted<$ty>;
            fn mul(self, rhs: $ty) -> Weighted<$ty> {
                Weighted(self, rhs)
            }
        }
    )*};
}

loss_ops! {
    <> Terminal;
    <> SquaredError;
    <A, B> Plus<A, B>;
    <L> Weighted<L>;
}

/// The number of components per saved time, or `None` when `ys` does not
/// split evenly over `ts`.
fn per_time(ts: &[f64], ys: &[f64]) -> Option<usize> {
    (!ts.is_empty() && ys.len().is_multiple_of(ts.len())).then(|| ys.len() / ts.len())
}

/// Evaluates `loss` on the saved states of `sol`: the value and `∂L/∂ys`,
/// or an error if the loss does not fit the solution or either is not
/// finite.
pub(crate) fn evaluate<L: Loss + ?Sized>(
    loss: &L,
    sol: &Solution,
) -> Result<(f64, Vec<f64>), GradError> {
    loss.check(&sol.ts, sol.n).map_err(GradError::Loss)?;
    let mut gy = vec![0.0; sol.ys.len()];
    let value = loss.eval(&sol.ts, &sol.ys, &mut gy);
    if !value.is_finite() || gy.iter().any(|g| !g.is_finite()) {
        return Err(GradError::Loss(format!(
            "the loss or its gradient is not finite (L = {value})"
        )));
    }
    Ok((value, gy))
}
