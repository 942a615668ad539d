//! The checks a tableau passes before a step reads it: shapes first (so that
//! nothing after them can index out of bounds), then finite entries, row
//! sums, the claimed orders (rooted-tree conditions) and FSAL. Every failure
//! is a [`SolveError::InvalidInput`] naming the tableau and the entry.

use super::order_conditions::residual;
use crate::error::SolveError;

/// Orders above this are checked up to it only (the number of rooted trees
/// grows quickly: 1205 up to order 10).
pub(crate) const MAX_CHECKED_ORDER: u32 = 10;

/// Interpolation points at which an interpolant's order is checked.
const THETAS: [f64; 3] = [0.3, 0.5, 0.8];

/// A tableau's data, borrowed from whichever storage holds it.
pub(crate) struct Parts<'a> {
    pub name: &'static str,
    pub c: &'a [f64],
    pub a: Vec<&'a [f64]>,
    pub b: &'a [f64],
    pub b_err: Option<&'a [f64]>,
    pub order: u32,
    pub embedded_order: Option<u32>,
    pub fsal: bool,
    pub extra_c: &'a [f64],
    pub extra_a: Vec<&'a [f64]>,
    pub coeffs: Vec<&'a [f64]>,
    pub dense_order: u32,
}

fn bad(name: &str, what: impl std::fmt::Display, why: impl Into<String>) -> SolveError {
    SolveError::invalid(format!("tableau {name:?}: {what}"), why)
}

fn shape(name: &str, what: impl std::fmt::Display, expected: usize, found: usize) -> SolveError {
    bad(
        name,
        what,
        format!("has {found} entries, expected {expected}"),
    )
}

/// Scale of a sum's rounding error: `max(1, Σ|x_i|)`.
fn scale(xs: &[f64]) -> f64 {
    xs.iter().map(|x| x.abs()).sum::<f64>().max(1.0)
}

/// The lowest order `k ≤ max` whose conditions fail at `theta`, with the
/// residual, or `None` if all up to `max` hold to `tol`.
fn first_failure(
    a: &[Vec<f64>],
    c: &[f64],
    w: &[f64],
    max: u32,
    theta: f64,
    tol: f64,
) -> Option<(u32, f64)> {
    (1..=max.min(MAX_CHECKED_ORDER)).find_map(|k| {
        let r = residual(a, c, w, k as usize, theta);
        // NaN residuals fail too
        (r.is_nan() || r > tol).then_some((k, r))
    })
}

/// Checks `p` to tolerance `tol` (absolute, scaled by the entries'
/// magnitudes where rounding scales with them).
pub(crate) fn validate(p: &Parts<'_>, tol: f64) -> Result<(), SolveError> {
    let name = p.name;
    if !(tol.is_finite() && tol > 0.0) {
        return Err(bad(
            name,
            "tolerance",
            format!("is {tol}; use a small positive number such as 1e-10"),
        ));
    }
    // shapes
    let s = p.c.len();
    if s == 0 {
        return Err(bad(
            name,
            "c",
            "is empty; a method needs at least one stage",
        ));
    }
    if p.a.len() != s {
        return Err(shape(name, "a (rows)", s, p.a.len()));
    }
    for (i, row) in p.a.iter().enumerate() {
        if row.len() != i {
            return Err(bad(
                name,
                format_args!("a[{i}]"),
                format!(
                    "has {} entries; row {i} of an explicit tableau has {i} (strictly lower \
                     triangular)",
                    row.len()
                ),
            ));
        }
    }
    if p.b.len() != s {
        return Err(shape(name, "b", s, p.b.len()));
    }
    if let Some(e) = p.b_err
        && e.len() != s
    {
        return Err(shape(name, "embedded weights", s, e.len()));
    }
    if p.extra_a.len() != p.extra_c.len() {
        return Err(shape(
            name,
            "extra stage rows",
            p.extra_c.len(),
            p.extra_a.len(),
        ));
    }
    for (j, row) in p.extra_a.iter().enumerate() {
        if row.len() != s + j {
            return Err(shape(
                name,
                format_args!("extra stage row {j}"),
                s + j,
                row.len(),
            ));
        }
    }
    let s_all = s + p.extra_c.len();
    if p.coeffs.len() != s_all {
        return Err(bad(
            name,
            "interpolant",
            format!(
                "has {} weight polynomials, expected one per stage ({s} step + {} extra)",
                p.coeffs.len(),
                p.extra_c.len()
            ),
        ));
    }
    // finite entries
    let mut entries: Vec<(String, &[f64])> = vec![("c".into(), p.c), ("b".into(), p.b)];
    entries.extend(p.a.iter().enumerate().map(|(i, r)| (format!("a[{i}]"), *r)));
    if let Some(e) = p.b_err {
        entries.push(("embedded weights".into(), e));
    }
    entries.push(("extra stage nodes".into(), p.extra_c));
    entries.extend(
        p.extra_a
            .iter()
            .enumerate()
            .map(|(j, r)| (format!("extra stage row {j}"), *r)),
    );
    entries.extend(
        p.coeffs
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("interpolant weight {i}"), *r)),
    );
    for (what, xs) in &entries {
        if let Some(k) = xs.iter().position(|x| !x.is_finite()) {
            return Err(bad(
                name,
                format_args!("{what}[{k}]"),
                format!("is {}; every coefficient must be finite", xs[k]),
            ));
        }
    }
    // row sums
    let (rows, nodes): (Vec<&[f64]>, Vec<f64>) = (
        p.a.iter().chain(&p.extra_a).copied().collect(),
        p.c.iter().chain(p.extra_c).copied().collect(),
    );
    for (i, (row, &ci)) in rows.iter().zip(&nodes).enumerate() {
        let sum: f64 = row.iter().sum();
        if (sum - ci).abs() > tol * scale(row).max(ci.abs()) {
            let what = if i < s {
                format!("c[{i}]")
            } else {
                format!("extra stage node {}", i - s)
            };
            return Err(bad(
                name,
                what,
                format!(
                    "is {ci} but its row sums to {sum}: an explicit tableau has c_i = Σ_j a_ij"
                ),
            ));
        }
    }
    // the method's order
    if p.order == 0 {
        return Err(bad(
            name,
            "order",
            "is 0; a consistent method has order ≥ 1",
        ));
    }
    let sum_b: f64 = p.b.iter().sum();
    if (sum_b - 1.0).abs() > tol * scale(p.b) {
        return Err(bad(
            name,
            "b",
            format!("sums to {sum_b}; the weights of a consistent method sum to 1"),
        ));
    }
    let a_rows: Vec<Vec<f64>> = p.a.iter().map(|r| r.to_vec()).collect();
    if let Some((k, r)) = first_failure(&a_rows, p.c, p.b, p.order, 1.0, tol) {
        return Err(bad(
            name,
            "order",
            format!(
                "is claimed to be {}, but the order-{k} conditions fail (residual {r:e}); the \
                 method has order {}",
                p.order,
                k - 1
            ),
        ));
    }
    // the embedded method
    match (p.b_err, p.embedded_order) {
        (None, None) => {}
        (Some(_), None) | (None, Some(_)) => {
            return Err(bad(
                name,
                "embedded method",
                "needs both its weights and its order",
            ));
        }
        (Some(e), Some(q)) => {
            if q == 0 {
                return Err(bad(
                    name,
                    "embedded order",
                    "is 0; the embedded method must have order ≥ 1",
                ));
            }
            if e.iter().all(|x| x.abs() <= tol) {
                return Err(bad(
                    name,
                    "embedded weights",
                    "equal b, so the error estimate is zero; drop the embedded method (fixed \
                     steps) or give different weights",
                ));
            }
            let bhat: Vec<f64> = p.b.iter().zip(e).map(|(b, e)| b - e).collect();
            if let Some((k, r)) = first_failure(&a_rows, p.c, &bhat, q, 1.0, tol) {
                return Err(bad(
                    name,
                    "embedded order",
                    format!(
                        "is claimed to be {q}, but the embedded weights fail the order-{k} \
                         conditions (residual {r:e})"
                    ),
                ));
            }
        }
    }
    // FSAL: the step computes the last stage at y_{n+1} instead of from its row
    if p.fsal {
        let last = s - 1;
        let ok = s >= 2
            && (p.c[last] - 1.0).abs() <= tol
            && p.b[last].abs() <= tol
            && p.a[last].iter().zip(p.b).all(|(a, b)| (a - b).abs() <= tol);
        if !ok {
            return Err(bad(
                name,
                "fsal",
                "is claimed, but a first-same-as-last method has at least two stages, \
                 c_s = 1, a_sj = b_j and b_s = 0",
            ));
        }
    }
    // the interpolant
    if p.dense_order == 0 {
        return Err(bad(
            name,
            "interpolant order",
            "is 0; an interpolant has order ≥ 1",
        ));
    }
    for (i, row) in p.coeffs.iter().enumerate() {
        let at0 = row.first().copied().unwrap_or(0.0);
        let at1: f64 = row.iter().sum();
        let bi = p.b.get(i).copied().unwrap_or(0.0);
        if at0.abs() > tol || (at1 - bi).abs() > tol * scale(row) {
            return Err(bad(
                name,
                format_args!("interpolant weight {i}"),
                format!(
                    "is {at0} at θ = 0 and {at1} at θ = 1; it must be 0 and b_{i} = {bi} (the \
                     interpolant joins y_n to y_(n+1))"
                ),
            ));
        }
    }
    let all_rows: Vec<Vec<f64>> = rows.iter().map(|r| r.to_vec()).collect();
    for theta in THETAS {
        let w: Vec<f64> = p
            .coeffs
            .iter()
            .map(|row| row.iter().rev().fold(0.0, |acc, &q| acc * theta + q))
            .collect();
        if let Some((k, r)) = first_failure(&all_rows, &nodes, &w, p.dense_order, theta, tol) {
            return Err(bad(
                name,
                "interpolant order",
                format!(
                    "is claimed to be {}, but the order-{k} conditions fail at θ = {theta} \
                     (residual {r:e})",
                    p.dense_order
                ),
            ));
        }
    }
    Ok(())
}
