//! Butcher tableaus of explicit Runge–Kutta methods, stored as data.
//!
//! One generic explicit RK step ([`crate::erk`]) serves every tableau here, the
//! way diffrax's `AbstractERK` and OrdinaryDiffEq's tableau files do. Each
//! tableau carries its continuous extension ("dense output") as polynomial
//! weights: `y(t_n + θh) = y_n + h Σ_i b_i(θ) k_i` with
//! `b_i(θ) = Σ_k coeffs[i][k] θ^k`. Methods whose interpolant needs more stages
//! than the step (Verner's) list those stages in [`DenseTableau::extra_c`] /
//! [`DenseTableau::extra_a`]; they are evaluated only for steps that are
//! actually interpolated.
//!
//! Every tableau is checked by tests: row sums `c_i = Σ_j a_ij`, the
//! rooted-tree order conditions of its stated order (and of its embedded
//! method), FSAL where claimed, and `b_i(1) = b_i` for the interpolant.
//!
//! # Built-in and run-time tableaus
//!
//! The built-in methods are [`ButcherTableau`] constants (`&'static` data,
//! no allocation). A tableau known only at run time (read from a file,
//! computed) is an [`OwnedTableau`]: built from `Vec`s with
//! [`OwnedTableau::builder`], validated when built (shapes, finite entries,
//! row sums, `Σ b_i = 1`, the claimed orders of the method, its embedded
//! estimate and its interpolant) and refused with
//! [`crate::error::SolveError::InvalidInput`] otherwise — it never panics on bad
//! data. A run-time tableau without an interpolant gets the cubic Hermite one
//! (see [`TableauBuilder::build`]).
//!
//! [`crate::erk::ExplicitRk`] runs any [`Tableau`]: `ExplicitRk<&'static
//! ButcherTableau>` (the default type, what the built-ins use) or
//! `ExplicitRk<&OwnedTableau>` (a borrowed run-time tableau, which keeps the
//! solver `Copy` so that `grad` differentiates it like a built-in). The step
//! is monomorphised per storage, so the built-ins' hot loop reads the same
//! `&'static` slices as before.
//!
//! ```
//! use sdeflow_solvers::erk::ExplicitRk;
//! use sdeflow_solvers::tableau::{OwnedTableau, Tableau};
//! use sdeflow_solvers::options::{Options, SaveAt};
//! use sdeflow_solvers::problem::Problem;
//! use sdeflow_solvers::solve;
//!
//! // the midpoint rule, built at run time
//! let rk2 = OwnedTableau::builder("Midpoint", vec![0.0, 0.5], vec![vec![], vec![0.5]], vec![0.0, 1.0], 2)
//!     .build()?;
//! assert_eq!(rk2.order(), 2);
//! let decay = Problem::ode(|_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = -y[0], vec![1.0], (0.0, 1.0));
//! let sol = solve(&decay, ExplicitRk::new(&rk2), Options::default().fixed_step(0.01).save_at(SaveAt::T1))?;
//! assert!((sol.last()[0] - (-1.0f64).exp()).abs() < 1e-5);
//! # Ok::<(), sdeflow_solvers::error::SolveError>(())
//! ```

/// A continuous extension of an explicit RK method.
#[derive(Debug, Clone, Copy)]
pub struct DenseTableau {
    /// Nodes of the extra stages needed by the interpolant (empty for most methods).
    pub extra_c: &'static [f64],
    /// Rows of the extra stages; row `j` has `s + j` entries (it may use all
    /// step stages and the earlier extra stages).
    pub extra_a: &'static [&'static [f64]],
    /// Polynomial weights, one row per stage (step stages first, then extra
    /// stages), ascending powers of θ: `b_i(θ) = Σ_k coeffs[i][k] θ^k`.
    pub coeffs: &'static [&'static [f64]],
    /// Order of the interpolant for generic θ.
    pub order: u32,
}

impl DenseTableau {
    /// An interpolant on the step's own stages (no extra stages): the
    /// weight polynomials `coeffs` and their order.
    pub(crate) const fn without_extra_stages(
        coeffs: &'static [&'static [f64]],
        order: u32,
    ) -> Self {
        DenseTableau {
            extra_c: &[],
            extra_a: &[],
            coeffs,
            order,
        }
    }
}

/// An explicit Runge–Kutta method as data.
#[derive(Debug, Clone, Copy)]
pub struct ButcherTableau {
    /// Human-readable name (e.g. `"Tsit5"`).
    pub name: &'static str,
    /// Nodes `c_i`, one per stage.
    pub c: &'static [f64],
    /// Strictly lower-triangular coefficients; row `i` has `i` entries.
    pub a: &'static [&'static [f64]],
    /// Weights of the propagated solution.
    pub b: &'static [f64],
    /// Error weights `b − b̂` of the embedded method, if there is one.
    pub b_err: Option<&'static [f64]>,
    /// Classical order of the propagated solution.
    pub order: u32,
    /// Order of the embedded solution, if there is one.
    pub embedded_order: Option<u32>,
    /// First-same-as-last: the last stage is `f(t_{n+1}, y_{n+1})` and is reused
    /// as the first stage of the next step.
    pub fsal: bool,
    /// The method's own continuous extension.
    pub dense: DenseTableau,
}

mod bs3;
mod dp5;
mod euler;
mod heun;
pub mod order_conditions;
mod owned;
mod tsit5;
mod validate;
mod vern7;

pub use bs3::BS3;
pub use dp5::DP5;
pub use euler::EULER;
pub use heun::HEUN;
pub use owned::{OwnedTableau, TableauBuilder};
pub use tsit5::TSIT5;
pub use vern7::VERN7;

mod sealed {
    /// Keeps [`super::Tableau`] implemented by this crate's storages only, so
    /// that every tableau a step reads has passed the shape checks.
    pub trait Sealed {}
    impl Sealed for super::ButcherTableau {}
    impl Sealed for super::OwnedTableau {}
    impl<T: Sealed + ?Sized> Sealed for &T {}
}

/// Read access to an explicit RK tableau, whatever its storage: what
/// [`crate::erk::ExplicitRk`] needs from a method. Implemented by
/// [`ButcherTableau`] (static data), [`OwnedTableau`] (run-time data) and
/// references to either; sealed.
///
/// Row `i` of `a` has `i` entries; extra interpolation stage `j` has
/// `stages() + j`; the interpolant has one weight polynomial per stage (step
/// stages, then extra stages).
pub trait Tableau: sealed::Sealed {
    /// Human-readable name (the solver's [`crate::solver::Solver::name`]).
    fn name(&self) -> &'static str;
    /// Number of stages of the step.
    #[inline]
    fn stages(&self) -> usize {
        self.c().len()
    }
    /// Nodes `c_i`, one per stage.
    fn c(&self) -> &[f64];
    /// Row `i` of the strictly lower-triangular coefficients (`i` entries).
    fn a(&self, i: usize) -> &[f64];
    /// Weights of the propagated solution.
    fn b(&self) -> &[f64];
    /// Error weights `b − b̂` of the embedded method, if there is one.
    fn b_err(&self) -> Option<&[f64]>;
    /// Classical order of the propagated solution.
    fn order(&self) -> u32;
    /// Order of the embedded solution, if there is one.
    fn embedded_order(&self) -> Option<u32>;
    /// First-same-as-last: the last stage is `f(t_{n+1}, y_{n+1})`.
    fn fsal(&self) -> bool;
    /// Nodes of the interpolant's extra stages (often empty).
    fn extra_c(&self) -> &[f64];
    /// Row `j` of the extra stages (`stages() + j` entries).
    fn extra_a(&self, j: usize) -> &[f64];
    /// Weight polynomial `i` of the interpolant, ascending powers of θ.
    fn dense_coeffs(&self, i: usize) -> &[f64];
    /// Order of the interpolant for generic θ.
    fn dense_order(&self) -> u32;
}

/// Implements [`Tableau`] for the storage `$ty` (generic over `$gen`): each
/// method (the scalars first, then the slices) answers with the expression
/// given for it, in which `$s` is
/// `self` (and `$i`, `$j`, `$k` the row index of `a`, `extra_a` and
/// `dense_coeffs`).
macro_rules! impl_tableau {
    (
        impl[$($gen:tt)*] for $ty:ty, |$s:tt|
        name: $name:expr,
        order: $order:expr,
        embedded_order: $embedded_order:expr,
        fsal: $fsal:expr,
        dense_order: $dense_order:expr,
        c: $c:expr,
        a[$i:ident]: $a:expr,
        b: $b:expr,
        b_err: $b_err:expr,
        extra_c: $extra_c:expr,
        extra_a[$j:ident]: $extra_a:expr,
        dense_coeffs[$k:ident]: $dense_coeffs:expr $(,)?
    ) => {
        impl<$($gen)*> Tableau for $ty {
            #[inline]
            fn name(&$s) -> &'static str {
                $name
            }
            #[inline]
            fn c(&$s) -> &[f64] {
                $c
            }
            #[inline]
            fn a(&$s, $i: usize) -> &[f64] {
                $a
            }
            #[inline]
            fn b(&$s) -> &[f64] {
                $b
            }
            #[inline]
            fn b_err(&$s) -> Option<&[f64]> {
                $b_err
            }
            #[inline]
            fn order(&$s) -> u32 {
                $order
            }
            #[inline]
            fn embedded_order(&$s) -> Option<u32> {
                $embedded_order
            }
            #[inline]
            fn fsal(&$s) -> bool {
                $fsal
            }
            #[inline]
            fn extra_c(&$s) -> &[f64] {
                $extra_c
            }
            #[inline]
            fn extra_a(&$s, $j: usize) -> &[f64] {
                $extra_a
            }
            #[inline]
            fn dense_coeffs(&$s, $k: usize) -> &[f64] {
                $dense_coeffs
            }
            #[inline]
            fn dense_order(&$s) -> u32 {
                $dense_order
            }
        }
    };
}
use impl_tableau;

impl_tableau! {
    impl[] for ButcherTableau, |self|
    name: self.name,
    order: self.order,
    embedded_order: self.embedded_order,
    fsal: self.fsal,
    dense_order: self.dense.order,
    c: self.c,
    a[i]: self.a[i],
    b: self.b,
    b_err: self.b_err,
    extra_c: self.dense.extra_c,
    extra_a[j]: self.dense.extra_a[j],
    dense_coeffs[i]: self.dense.coeffs[i],
}

impl_tableau! {
    impl[T: Tableau + ?Sized] for &T, |self|
    name: (**self).name(),
    order: (**self).order(),
    embedded_order: (**self).embedded_order(),
    fsal: (**self).fsal(),
    dense_order: (**self).dense_order(),
    c: (**self).c(),
    a[i]: (**self).a(i),
    b: (**self).b(),
    b_err: (**self).b_err(),
    extra_c: (**self).extra_c(),
    extra_a[j]: (**self).extra_a(j),
    dense_coeffs[i]: (**self).dense_coeffs(i),
}

impl ButcherTableau {
    /// Number of stages of the step.
    pub fn stages(&self) -> usize {
        self.c.len()
    }

    /// The step's coefficient rows as owned vectors (for the order-condition
    /// checks).
    pub fn a_rows(&self) -> Vec<Vec<f64>> {
        self.a.iter().map(|r| r.to_vec()).collect()
    }

    /// Stages plus extra interpolation stages: rows and nodes.
    pub fn dense_rows(&self) -> (Vec<Vec<f64>>, Vec<f64>) {
        let mut a = self.a_rows();
        a.extend(self.dense.extra_a.iter().map(|r| r.to_vec()));
        let mut c = self.c.to_vec();
        c.extend_from_slice(self.dense.extra_c);
        (a, c)
    }

    /// Weights `b_i(θ)` of the continuous extension (step and extra stages).
    pub fn dense_weights(&self, theta: f64) -> Vec<f64> {
        self.dense
            .coeffs
            .iter()
            .map(|row| row.iter().rev().fold(0.0, |acc, &c| acc * theta + c))
            .collect()
    }

    /// Checks this tableau as [`TableauBuilder::build`] checks a run-time
    /// one (shapes, finite entries, row sums, `Σ b_i = 1`, the stated orders
    /// of the method, its embedded estimate and its interpolant, FSAL), to
    /// [`TableauBuilder::DEFAULT_TOLERANCE`]; for tableau constants of your
    /// own. Every built-in passes.
    ///
    /// ```
    /// use sdeflow_solvers::tableau::VERN7;
    /// assert!(VERN7.validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), crate::error::SolveError> {
        validate::validate(
            &validate::Parts {
                name: self.name,
                c: self.c,
                a: self.a.to_vec(),
                b: self.b,
                b_err: self.b_err,
                order: self.order,
                embedded_order: self.embedded_order,
                fsal: self.fsal,
                extra_c: self.dense.extra_c,
                extra_a: self.dense.extra_a.to_vec(),
                coeffs: self.dense.coeffs.to_vec(),
                dense_order: self.dense.order,
            },
            TableauBuilder::DEFAULT_TOLERANCE,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::order_conditions::{achieved_order, residual};
    use super::*;

    const ALL: [&ButcherTableau; 6] = [&EULER, &HEUN, &BS3, &DP5, &TSIT5, &VERN7];

    #[test]
    fn shapes_are_consistent() {
        for t in ALL {
            let s = t.stages();
            assert_eq!(t.a.len(), s, "{}", t.name);
            for (i, row) in t.a.iter().enumerate() {
                assert_eq!(row.len(), i, "{} row {i}", t.name);
            }
            assert_eq!(t.b.len(), s, "{}", t.name);
            if let Some(e) = t.b_err {
                assert_eq!(e.len(), s, "{}", t.name);
            }
            assert_eq!(t.dense.extra_a.len(), t.dense.extra_c.len(), "{}", t.name);
            for (j, row) in t.dense.extra_a.iter().enumerate() {
                assert_eq!(row.len(), s + j, "{} extra row {j}", t.name);
            }
            assert_eq!(
                t.dense.coeffs.len(),
                s + t.dense.extra_c.len(),
                "{}",
                t.name
            );
        }
    }

    #[test]
    fn row_sums_equal_nodes() {
        for t in ALL {
            let (a, c) = t.dense_rows();
            for (i, row) in a.iter().enumerate() {
                let sum: f64 = row.iter().sum();
                assert!(
                    (sum - c[i]).abs() < 1e-13,
                    "{} row {i}: {sum} vs {}",
                    t.name,
                    c[i]
                );
            }
        }
    }

    #[test]
    fn fsal_methods_end_with_b() {
        for t in ALL.iter().filter(|t| t.fsal) {
            let s = t.stages();
            assert_eq!(t.c[s - 1], 1.0, "{}", t.name);
            for j in 0..s - 1 {
                assert!((t.a[s - 1][j] - t.b[j]).abs() < 1e-15, "{}", t.name);
            }
            assert_eq!(t.b[s - 1], 0.0, "{}", t.name);
        }
    }

    #[test]
    fn stated_orders_hold_and_are_sharp() {
        for t in ALL {
            let a = t.a_rows();
            let p = t.order as usize;
            let got = achieved_order(&a, t.c, t.b, 1.0, 8, 1e-12);
            assert_eq!(got, p, "{}: b has order {got}, stated {p}", t.name);
            if let (Some(e), Some(q)) = (t.b_err, t.embedded_order) {
                let bhat: Vec<f64> = t.b.iter().zip(e).map(|(b, e)| b - e).collect();
                let got = achieved_order(&a, t.c, &bhat, 1.0, 8, 1e-12);
                assert_eq!(got, q as usize, "{}: b̂ has order {got}, stated {q}", t.name);
            }
        }
    }

    #[test]
    fn interpolants_match_step_and_have_their_order() {
        for t in ALL {
            let w1 = t.dense_weights(1.0);
            for (i, w) in w1.iter().enumerate() {
                let b = t.b.get(i).copied().unwrap_or(0.0);
                assert!((w - b).abs() < 1e-12, "{} b_{i}(1) = {w} vs {b}", t.name);
            }
            let w0 = t.dense_weights(0.0);
            assert!(w0.iter().all(|w| w.abs() < 1e-15), "{}", t.name);
            let (a, c) = t.dense_rows();
            let q = t.dense.order as usize;
            for theta in [0.3, 0.5, 0.8] {
                let w = t.dense_weights(theta);
                for k in 1..=q {
                    let r = residual(&a, &c, &w, k, theta);
                    assert!(r < 1e-12, "{} θ={theta} order {k}: residual {r:e}", t.name);
                }
            }
        }
    }
}
