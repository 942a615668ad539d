//! Tableaus built at run time: owned data, validated once when built.

use super::validate::{Parts, validate};
use super::{ButcherTableau, Tableau, impl_tableau};
use crate::error::SolveError;

/// An explicit RK tableau built at run time (from `Vec`s read from a file or
/// computed), owned and validated: what [`ButcherTableau`] is for constants.
/// Run it with `ExplicitRk::new(&tableau)`; the borrow keeps the solver
/// `Copy`, so `solve`, `Solution::at` and `grad` (discrete adjoint) treat it
/// like a built-in. Read it through [`Tableau`].
///
/// Kutta's 3/8 rule, with an interpolant of its own choosing (the default
/// is the cubic Hermite one):
///
/// ```
/// use sdeflow_solvers::erk::ExplicitRk;
/// use sdeflow_solvers::tableau::{OwnedTableau, Tableau};
///
/// let third = 1.0 / 3.0;
/// let tab = OwnedTableau::builder(
///     "Kutta 3/8",
///     vec![0.0, third, 2.0 * third, 1.0],
///     vec![vec![], vec![third], vec![-third, 1.0], vec![1.0, -1.0, 1.0]],
///     vec![0.125, 0.375, 0.375, 0.125],
///     4,
/// )
/// .build()?;
/// let rk = ExplicitRk::new(&tab);
/// assert_eq!(rk.tableau().stages(), 4);
/// assert_eq!(rk.tableau().dense_order(), 3);
/// # Ok::<(), sdeflow_solvers::error::SolveError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedTableau {
    name: &'static str,
    c: Vec<f64>,
    a: Vec<Vec<f64>>,
    b: Vec<f64>,
    b_err: Option<Vec<f64>>,
    order: u32,
    embedded_order: Option<u32>,
    fsal: bool,
    extra_c: Vec<f64>,
    extra_a: Vec<Vec<f64>>,
    coeffs: Vec<Vec<f64>>,
    dense_order: u32,
}

/// The pieces of an [`OwnedTableau`] before validation; made by
/// [`OwnedTableau::builder`], finished by [`TableauBuilder::build`].
#[derive(Debug, Clone, PartialEq)]
pub struct TableauBuilder {
    name: &'static str,
    c: Vec<f64>,
    a: Vec<Vec<f64>>,
    b: Vec<f64>,
    order: u32,
    embedded: Option<(Vec<f64>, u32)>,
    fsal: bool,
    extra: Option<(Vec<f64>, Vec<Vec<f64>>)>,
    interpolant: Option<(Vec<Vec<f64>>, u32)>,
    tolerance: f64,
}

impl OwnedTableau {
    /// Starts a tableau with nodes `c` (one per stage), rows `a` (row `i`
    /// has `i` entries), weights `b` and the classical `order` of `b`.
    /// `name` is a `&'static str` (a literal) because it becomes the
    /// solver's [`crate::solver::Solver::name`].
    pub fn builder(
        name: &'static str,
        c: Vec<f64>,
        a: Vec<Vec<f64>>,
        b: Vec<f64>,
        order: u32,
    ) -> TableauBuilder {
        TableauBuilder {
            name,
            c,
            a,
            b,
            order,
            embedded: None,
            fsal: false,
            extra: None,
            interpolant: None,
            tolerance: TableauBuilder::DEFAULT_TOLERANCE,
        }
    }

    fn parts(&self) -> Parts<'_> {
        Parts {
            name: self.name,
            c: &self.c,
            a: self.a.iter().map(Vec::as_slice).collect(),
            b: &self.b,
            b_err: self.b_err.as_deref(),
            order: self.order,
            embedded_order: self.embedded_order,
            fsal: self.fsal,
            extra_c: &self.extra_c,
            extra_a: self.extra_a.iter().map(Vec::as_slice).collect(),
            coeffs: self.coeffs.iter().map(Vec::as_slice).collect(),
            dense_order: self.dense_order,
        }
    }
}

impl TableauBuilder {
    /// The default tolerance of the checks in [`TableauBuilder::build`]:
    /// coefficients computed in double precision pass, coefficients printed
    /// with fewer than about 11 significant digits may not (loosen it with
    /// [`TableauBuilder::tolerance`]).
    pub const DEFAULT_TOLERANCE: f64 = 1e-10;

    /// An embedded method `b̂` of order `order`, for the error estimate
    /// `h Σ (b_i − b̂_i) k_i` that adaptive steps need. Without one the
    /// method runs with fixed steps only (`Options::fixed_step`).
    pub fn embedded(mut self, b_hat: Vec<f64>, order: u32) -> Self {
        self.embedded = Some((b_hat, order));
        self
    }

    /// Declares the method first-same-as-last (`c_s = 1`, `a_sj = b_j`,
    /// `b_s = 0`): the last stage is reused as the next step's first, saving
    /// a drift evaluation per step. Checked by [`TableauBuilder::build`].
    pub fn fsal(mut self, fsal: bool) -> Self {
        self.fsal = fsal;
        self
    }

    /// The interpolant (dense output) `b_i(θ) = Σ_k coeffs[i][k] θ^k`, one
    /// polynomial per stage (step stages, then the extra stages of
    /// [`TableauBuilder::extra_stages`]), and its order.
    pub fn interpolant(mut self, coeffs: Vec<Vec<f64>>, order: u32) -> Self {
        self.interpolant = Some((coeffs, order));
        self
    }

    /// Extra stages the interpolant needs (nodes, and rows: row `j` has
    /// `s + j` entries); computed only on steps that are interpolated.
    pub fn extra_stages(mut self, c: Vec<f64>, a: Vec<Vec<f64>>) -> Self {
        self.extra = Some((c, a));
        self
    }

    /// The tolerance of the checks (default
    /// [`TableauBuilder::DEFAULT_TOLERANCE`]).
    pub fn tolerance(mut self, tol: f64) -> Self {
        self.tolerance = tol;
        self
    }

    /// Validates the tableau and returns it, or
    /// [`SolveError::InvalidInput`] naming the first problem: row lengths and
    /// vector lengths, non-finite entries, `c_i ≠ Σ_j a_ij`, `Σ b_i ≠ 1`, a
    /// claimed order (of `b`, of `b̂`, of the interpolant) that the rooted-tree
    /// conditions refute (checked up to order 10), embedded weights equal to
    /// `b`, a false FSAL claim, an interpolant that does not start at `y_n`
    /// and end at `y_{n+1}`.
    ///
    /// Without [`TableauBuilder::interpolant`], the interpolant is the cubic
    /// Hermite one through `(y_n, f_n)` and `(y_{n+1}, f_{n+1})` (of order
    /// `min(order, 3)`): FSAL methods have `f_{n+1}` as their last stage;
    /// other methods get one extra stage `f(t_n + h, y_{n+1})`, evaluated
    /// only on steps that are interpolated (`SaveAt::Times`, `SaveAt::Dense`).
    pub fn build(self) -> Result<OwnedTableau, SolveError> {
        let TableauBuilder {
            name,
            c,
            a,
            b,
            order,
            embedded,
            fsal,
            extra,
            interpolant,
            tolerance,
        } = self;
        let (b_err, embedded_order) = match embedded {
            Some((b_hat, q)) => {
                if b_hat.len() != b.len() {
                    return Err(SolveError::invalid(
                        format!("tableau {name:?}: embedded weights"),
                        format!("has {} entries, expected {}", b_hat.len(), b.len()),
                    ));
                }
                (
                    Some(b.iter().zip(&b_hat).map(|(b, bh)| b - bh).collect()),
                    Some(q),
                )
            }
            None => (None, None),
        };
        let (extra_c, extra_a, coeffs, dense_order) = match (interpolant, extra) {
            (Some((coeffs, q)), extra) => {
                let (ec, ea) = extra.unwrap_or_default();
                (ec, ea, coeffs, q)
            }
            (None, Some(_)) => {
                return Err(SolveError::invalid(
                    format!("tableau {name:?}: extra stages"),
                    "are given without the interpolant that uses them (TableauBuilder::interpolant)",
                ));
            }
            (None, None) => hermite(&b, fsal, order),
        };
        let tab = OwnedTableau {
            name,
            c,
            a,
            b,
            b_err,
            order,
            embedded_order,
            fsal,
            extra_c,
            extra_a,
            coeffs,
            dense_order,
        };
        validate(&tab.parts(), tolerance)?;
        Ok(tab)
    }
}

/// Cubic Hermite weights on the stages: `y_n + h Σ b_i(θ) k_i` with
/// `b_i(θ) = (3θ² − 2θ³) b_i` plus `θ − 2θ² + θ³` on `k_1 = f_n` and
/// `θ³ − θ²` on the stage that is `f_{n+1}` (the FSAL stage, or an extra
/// stage with row `b`).
#[allow(clippy::type_complexity)]
fn hermite(b: &[f64], fsal: bool, order: u32) -> (Vec<f64>, Vec<Vec<f64>>, Vec<Vec<f64>>, u32) {
    let s = b.len();
    let (extra_c, extra_a) = if fsal {
        (Vec::new(), Vec::new())
    } else {
        (vec![1.0], vec![b.to_vec()])
    };
    let s_all = s + extra_c.len();
    let mut coeffs: Vec<Vec<f64>> = b
        .iter()
        .map(|&bi| vec![0.0, 0.0, 3.0 * bi, -2.0 * bi])
        .collect();
    coeffs.resize(s_all, vec![0.0; 4]);
    if let Some(first) = coeffs.first_mut() {
        for (w, h10) in first.iter_mut().zip([0.0, 1.0, -2.0, 1.0]) {
            *w += h10;
        }
    }
    if let Some(last) = coeffs.last_mut() {
        for (w, h11) in last.iter_mut().zip([0.0, 0.0, -1.0, 1.0]) {
            *w += h11;
        }
    }
    (extra_c, extra_a, coeffs, order.clamp(1, 3))
}

impl TryFrom<&ButcherTableau> for OwnedTableau {
    type Error = SolveError;

    /// An owned, validated copy of a tableau constant (its own interpolant
    /// included).
    fn try_from(t: &ButcherTableau) -> Result<Self, SolveError> {
        let tab = OwnedTableau {
            name: t.name,
            c: t.c.to_vec(),
            a: t.a_rows(),
            b: t.b.to_vec(),
            b_err: t.b_err.map(<[f64]>::to_vec),
            order: t.order,
            embedded_order: t.embedded_order,
            fsal: t.fsal,
            extra_c: t.dense.extra_c.to_vec(),
            extra_a: t.dense.extra_a.iter().map(|r| r.to_vec()).collect(),
            coeffs: t.dense.coeffs.iter().map(|r| r.to_vec()).collect(),
            dense_order: t.dense.order,
        };
        validate(&tab.parts(), TableauBuilder::DEFAULT_TOLERANCE)?;
        Ok(tab)
    }
}

impl_tableau! {
    impl[] for OwnedTableau, |self|
    name: self.name,
    order: self.order,
    embedded_order: self.embedded_order,
    fsal: self.fsal,
    dense_order: self.dense_order,
    c: &self.c,
    a[i]: &self.a[i],
    b: &self.b,
    b_err: self.b_err.as_deref(),
    extra_c: &self.extra_c,
    extra_a[j]: &self.extra_a[j],
    dense_coeffs[i]: &self.coeffs[i],
}

#[cfg(test)]
mod tests {
    use super::super::order_conditions::residual;
    use super::super::{BS3, DP5, EULER, HEUN, TSIT5, VERN7};
    use super::*;

    const ALL: [&ButcherTableau; 6] = [&EULER, &HEUN, &BS3, &DP5, &TSIT5, &VERN7];

    fn rk4(fsal: bool) -> TableauBuilder {
        let (mut c, mut a, mut b) = (
            vec![0.0, 0.5, 0.5, 1.0],
            vec![vec![], vec![0.5], vec![0.0, 0.5], vec![0.0, 0.0, 1.0]],
            vec![1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
        );
        if fsal {
            c.push(1.0);
            a.push(b.clone());
            b.push(0.0);
        }
        OwnedTableau::builder("RK4", c, a, b, 4).fsal(fsal)
    }

    fn invalid(r: Result<OwnedTableau, SolveError>) -> String {
        match r {
            Err(SolveError::InvalidInput { what, reason }) => format!("{what}: {reason}"),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn builtins_validate_and_copy() {
        for t in ALL {
            t.validate().unwrap_or_else(|e| panic!("{}: {e}", t.name));
            let o = OwnedTableau::try_from(t).unwrap_or_else(|e| panic!("{}: {e}", t.name));
            assert_eq!(o.name(), t.name);
            assert_eq!(o.stages(), t.stages());
            assert_eq!(o.b(), t.b);
            assert_eq!(o.dense_order(), t.dense.order);
        }
    }

    #[test]
    fn hermite_fallback_has_its_order_with_and_without_fsal() {
        for fsal in [false, true] {
            let t = rk4(fsal).build().expect("rk4");
            assert_eq!(t.dense_order(), 3);
            assert_eq!(t.extra_c().len(), usize::from(!fsal));
            let s_all = t.stages() + t.extra_c().len();
            let mut a: Vec<Vec<f64>> = (0..t.stages()).map(|i| t.a(i).to_vec()).collect();
            a.extend((0..t.extra_c().len()).map(|j| t.extra_a(j).to_vec()));
            let c: Vec<f64> = t.c().iter().chain(t.extra_c()).copied().collect();
            for theta in [0.1, 0.5, 0.9] {
                let w: Vec<f64> = (0..s_all)
                    .map(|i| {
                        t.dense_coeffs(i)
                            .iter()
                            .rev()
                            .fold(0.0, |acc, &q| acc * theta + q)
                    })
                    .collect();
                for k in 1..=3 {
                    assert!(
                        residual(&a, &c, &w, k, theta) < 1e-15,
                        "fsal {fsal} θ {theta}"
                    );
                }
                // and not order 4: the interpolant's order is stated sharply
                assert!(residual(&a, &c, &w, 4, theta) > 1e-4);
            }
        }
        // a first-order method gets a first-order interpolant
        let euler = OwnedTableau::builder("E", vec![0.0], vec![vec![]], vec![1.0], 1)
            .build()
            .expect("euler");
        assert_eq!(euler.dense_order(), 1);
    }

    /// The midpoint rule `c = (0, c1)`, `a = ((), (a10))`, `b = (b0, 1)` of
    /// the stated order: with (0.5, 0.5, 0.0, 2), a valid tableau.
    fn midpoint(c1: f64, a10: f64, b0: f64, order: u32) -> TableauBuilder {
        OwnedTableau::builder(
            "x",
            vec![0.0, c1],
            vec![vec![], vec![a10]],
            vec![b0, 1.0],
            order,
        )
    }

    #[test]
    fn malformed_tableaus_are_typed_errors() {
        let cases: Vec<(TableauBuilder, &str)> = vec![
            (
                OwnedTableau::builder("x", vec![], vec![], vec![], 1),
                "at least one stage",
            ),
            (
                OwnedTableau::builder(
                    "x",
                    vec![0.0, 0.5],
                    vec![vec![], vec![0.5, 0.0]],
                    vec![0.0, 1.0],
                    2,
                ),
                "a[1]",
            ),
            (
                OwnedTableau::builder("x", vec![0.0, 0.5], vec![vec![]], vec![0.0, 1.0], 2),
                "rows",
            ),
            (
                OwnedTableau::builder("x", vec![0.0, 0.5], vec![vec![], vec![0.5]], vec![1.0], 2),
                "b",
            ),
            (midpoint(0.6, 0.5, 0.0, 2), "c[1]"),
            (midpoint(0.5, f64::NAN, 0.0, 2), "finite"),
            (midpoint(0.5, 0.5, 0.1, 2), "sums to"),
            (midpoint(0.5, 0.5, 0.0, 3), "order-3"),
            (midpoint(0.5, 0.5, 0.0, 0), "order"),
            (
                rk4(false).embedded(vec![1.0, 0.0, 0.0, 0.0], 2),
                "embedded order",
            ),
            (
                rk4(false).embedded(vec![1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0], 3),
                "equal b",
            ),
            (rk4(false).embedded(vec![1.0, 0.0], 1), "embedded weights"),
            (rk4(false).fsal(true), "fsal"),
            (rk4(false).tolerance(f64::NAN), "tolerance"),
            (
                rk4(false).extra_stages(vec![1.0], vec![vec![0.0; 4]]),
                "extra stages",
            ),
            (
                rk4(false).interpolant(vec![vec![0.0, 1.0]; 3], 1),
                "weight polynomials",
            ),
            (
                // linear interpolation of each weight, but with a wrong end
                rk4(false).interpolant(vec![vec![0.0, 0.25]; 4], 1),
                "θ = 1",
            ),
            (
                // linear interpolation claimed to be of order 2
                rk4(false).interpolant(
                    vec![
                        vec![0.0, 1.0 / 6.0],
                        vec![0.0, 1.0 / 3.0],
                        vec![0.0, 1.0 / 3.0],
                        vec![0.0, 1.0 / 6.0],
                    ],
                    2,
                ),
                "interpolant order",
            ),
        ];
        for (builder, needle) in cases {
            let msg = invalid(builder.build());
            assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
        }
        // the linear interpolant at its true order is accepted
        let lin = rk4(false)
            .interpolant(
                vec![
                    vec![0.0, 1.0 / 6.0],
                    vec![0.0, 1.0 / 3.0],
                    vec![0.0, 1.0 / 3.0],
                    vec![0.0, 1.0 / 6.0],
                ],
                1,
            )
            .build()
            .expect("linear interpolant");
        assert_eq!(lin.dense_order(), 1);
    }

    #[test]
    fn a_bad_builtin_style_constant_is_refused_too() {
        let mut bad = HEUN;
        bad.order = 3;
        assert!(matches!(
            bad.validate(),
            Err(SolveError::InvalidInput { .. })
        ));
        assert!(OwnedTableau::try_from(&bad).is_err());
        let mut short = HEUN;
        short.b = &[1.0];
        assert!(short.validate().is_err());
    }
}
