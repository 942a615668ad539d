//! Empirical model statistics (EMS) of DPM-Solver-v3 (Zheng, Lu, Chen,
//! Zhu, "DPM-Solver-v3: Improved Diffusion ODE Solver with Empirical Model
//! Statistics", NeurIPS 2023; thu-ml/DPM-Solver-v3
//! `samplers/dpm_solver_v3.py`; `../shared/reference/diffusion.md` §4).
//!
//! Three coefficient functions of log-SNR `λ`, per state element of one
//! sample: `l_λ`, `s_λ`, `b_λ`. With `f_θ = (σ_λ ε_θ − l_λ x)/α_λ` the
//! probability-flow ODE reads `dx/dλ = (d log α/dλ − l_λ) x − α_λ f_θ`, and
//! `(s_λ, b_λ)` model `d f_θ/dλ ≈ s_λ f_θ + b_λ`. `l = 1, s = b = 0` gives
//! the DPM-Solver++ (data-prediction) form, `l = s = b = 0` the noise form.
//!
//! The statistics are tabulated on a uniform `λ` grid of `points` values
//! from `lambda_min` (the noise end) to `lambda_max` (the data end); each
//! of `l`, `s`, `b` holds `points · dim` values, grid point after grid
//! point, and is broadcast over the samples of a batch (a state of
//! `B · dim` entries, sample after sample).

use crate::error::SolveError;

/// DPM-Solver-v3's empirical model statistics on a uniform `λ` grid.
///
/// ```
/// use sdeflow_solvers::diffusion::Ems;
/// // the DPM-Solver++ form in 2 dimensions on λ ∈ [−5, 8], 101 points
/// let ems = Ems::data_prediction(2, -5.0, 8.0, 101)?;
/// assert_eq!(ems.l_at(50), &[1.0, 1.0]);
/// assert_eq!(ems.lambda(100), 8.0);
/// # Ok::<(), sdeflow_solvers::error::SolveError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Ems {
    dim: usize,
    lambda_min: f64,
    lambda_max: f64,
    points: usize,
    l: Vec<f64>,
    s: Vec<f64>,
    b: Vec<f64>,
    /// The natural cubic splines' second derivatives at the grid points
    /// of `l`, `s`, `b` (laid out as the tables), for samplers that
    /// interpolate the statistics smoothly between the grid points.
    moments: [Vec<f64>; 3],
}

/// The second derivatives at the grid points of the natural cubic spline
/// through each element's values (`points · dim` values, grid point after
/// grid point; zero at both ends), on a uniform grid of spacing `h`.
fn spline_moments(table: &[f64], dim: usize, points: usize, h: f64) -> Vec<f64> {
    let mut m = vec![0.0; table.len()];
    if points < 3 {
        return m;
    }
    // M_{k−1} + 4 M_k + M_{k+1} = 6 (y_{k+1} − 2 y_k + y_{k−1})/h², k = 1..points−2
    let inner = points - 2;
    let mut c = vec![0.0; inner];
    let mut d = vec![0.0; inner];
    for j in 0..dim {
        let y = |k: usize| table[k * dim + j];
        for i in 0..inner {
            let k = i + 1;
            let rhs = 6.0 * (y(k + 1) - 2.0 * y(k) + y(k - 1)) / (h * h);
            let (cp, dp) = if i == 0 {
                (0.0, 0.0)
            } else {
                (c[i - 1], d[i - 1])
            };
            let den = 4.0 - cp;
            c[i] = 1.0 / den;
            d[i] = (rhs - dp) / den;
        }
        for i in (0..inner).rev() {
            let next = if i + 1 < inner {
                m[(i + 2) * dim + j]
            } else {
                0.0
            };
            m[(i + 1) * dim + j] = d[i] - c[i] * next;
        }
    }
    m
}

impl Ems {
    /// Statistics from tables: `l`, `s`, `b` each hold `points · dim`
    /// values (grid point after grid point) on the uniform grid from
    /// `lambda_min` to `lambda_max`.
    ///
    /// # Errors
    /// [`SolveError::InvalidInput`] for `dim = 0`, fewer than two points,
    /// a non-finite or empty `λ` range or a non-finite table entry;
    /// [`SolveError::DimensionMismatch`] for a table of the wrong length.
    pub fn from_tables(
        dim: usize,
        lambda_min: f64,
        lambda_max: f64,
        points: usize,
        l: Vec<f64>,
        s: Vec<f64>,
        b: Vec<f64>,
    ) -> Result<Self, SolveError> {
        if dim == 0 {
            return Err(SolveError::invalid(
                "Ems dim",
                "the statistics need at least one state element per sample",
            ));
        }
        if points < 2 {
            return Err(SolveError::invalid(
                "Ems points",
                format!("{points} grid points; use at least 2 (the reference uses 251)"),
            ));
        }
        if !(lambda_min.is_finite() && lambda_max.is_finite() && lambda_min < lambda_max) {
            return Err(SolveError::invalid(
                "Ems λ range",
                format!(
                    "[{lambda_min}, {lambda_max}] must be finite with lambda_min < lambda_max \
                     (λ_T at the noise end first)"
                ),
            ));
        }
        let len = points * dim;
        for (name, table) in [("Ems l", &l), ("Ems s", &s), ("Ems b", &b)] {
            if table.len() != len {
                return Err(SolveError::DimensionMismatch {
                    what: name.into(),
                    expected: len,
                    found: Some(table.len()),
                    hint: "one value per grid point and state element (points · dim)".into(),
                });
            }
            if let Some(i) = table.iter().position(|v| !v.is_finite()) {
                return Err(SolveError::invalid(
                    format!("{name}[{i}]"),
                    "the statistics must be finite",
                ));
            }
        }
        let h = (lambda_max - lambda_min) / (points - 1) as f64;
        let moments = [&l, &s, &b].map(|t| spline_moments(t, dim, points, h));
        Ok(Ems {
            dim,
            lambda_min,
            lambda_max,
            points,
            l,
            s,
            b,
            moments,
        })
    }

    /// Constant statistics `l`, `s`, `b` (every grid point and element).
    ///
    /// # Errors
    /// As [`Ems::from_tables`].
    pub fn constant(
        dim: usize,
        lambda_min: f64,
        lambda_max: f64,
        points: usize,
        (l, s, b): (f64, f64, f64),
    ) -> Result<Self, SolveError> {
        let len = points.saturating_mul(dim);
        Self::from_tables(
            dim,
            lambda_min,
            lambda_max,
            points,
            vec![l; len],
            vec![s; len],
            vec![b; len],
        )
    }

    /// `l = 1, s = b = 0`: DPM-Solver-v3 reduces to the DPM-Solver++
    /// (data-prediction) form.
    ///
    /// # Errors
    /// As [`Ems::from_tables`].
    pub fn data_prediction(
        dim: usize,
        lambda_min: f64,
        lambda_max: f64,
        points: usize,
    ) -> Result<Self, SolveError> {
        Self::constant(dim, lambda_min, lambda_max, points, (1.0, 0.0, 0.0))
    }

    /// `l = s = b = 0`: the noise-prediction form of DPM-Solver.
    ///
    /// # Errors
    /// As [`Ems::from_tables`].
    pub fn noise_prediction(
        dim: usize,
        lambda_min: f64,
        lambda_max: f64,
        points: usize,
    ) -> Result<Self, SolveError> {
        Self::constant(dim, lambda_min, lambda_max, points, (0.0, 0.0, 0.0))
    }

    /// State elements per sample.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of grid points.
    pub fn points(&self) -> usize {
        self.points
    }

    /// The `λ` range `(lambda_min, lambda_max)` of the grid.
    pub fn lambda_range(&self) -> (f64, f64) {
        (self.lambda_min, self.lambda_max)
    }

    /// Grid spacing in `λ`.
    pub fn spacing(&self) -> f64 {
        (self.lambda_max - self.lambda_min) / (self.points - 1) as f64
    }

    /// The `k`-th grid value of `λ` (`k = 0`: `lambda_min`).
    pub fn lambda(&self, k: usize) -> f64 {
        if k + 1 == self.points {
            self.lambda_max
        } else {
            self.lambda_min + k as f64 * self.spacing()
        }
    }

    /// `l` at grid point `k` (`dim` values).
    pub fn l_at(&self, k: usize) -> &[f64] {
        &self.l[k * self.dim..(k + 1) * self.dim]
    }

    /// `s` at grid point `k` (`dim` values).
    pub fn s_at(&self, k: usize) -> &[f64] {
        &self.s[k * self.dim..(k + 1) * self.dim]
    }

    /// `b` at grid point `k` (`dim` values).
    pub fn b_at(&self, k: usize) -> &[f64] {
        &self.b[k * self.dim..(k + 1) * self.dim]
    }

    /// The whole tables `(l, s, b)`, `points · dim` values each.
    pub fn tables(&self) -> (&[f64], &[f64], &[f64]) {
        (&self.l, &self.s, &self.b)
    }

    /// The second derivatives of the natural cubic splines through `l`,
    /// `s`, `b` at the grid points, laid out as [`Ems::tables`].
    pub(crate) fn moments(&self) -> (&[f64], &[f64], &[f64]) {
        let [l, s, b] = &self.moments;
        (l, s, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_tables() {
        assert!(Ems::constant(0, 0.0, 1.0, 5, (1.0, 0.0, 0.0)).is_err());
        assert!(Ems::constant(2, 0.0, 1.0, 1, (1.0, 0.0, 0.0)).is_err());
        assert!(Ems::constant(2, 1.0, 1.0, 5, (1.0, 0.0, 0.0)).is_err());
        assert!(Ems::constant(2, f64::NAN, 1.0, 5, (1.0, 0.0, 0.0)).is_err());
        assert!(Ems::constant(2, 0.0, 1.0, 5, (f64::INFINITY, 0.0, 0.0)).is_err());
        let short = Ems::from_tables(2, 0.0, 1.0, 3, vec![0.0; 6], vec![0.0; 5], vec![0.0; 6]);
        assert!(matches!(
            short,
            Err(SolveError::DimensionMismatch {
                expected: 6,
                found: Some(5),
                ..
            })
        ));
    }

    #[test]
    fn spline_moments_reproduce_a_cubic_inside() {
        // y = λ³ on 9 points: M = 6λ inside a natural spline deviates only
        // near the ends; a quadratic's constant M = 2 likewise. Check the
        // system itself: M_{k−1} + 4 M_k + M_{k+1} = 6 Δ²y/h²
        let (pts, h) = (9, 0.5);
        let y: Vec<f64> = (0..pts).map(|k| (k as f64 * h).powi(3)).collect();
        let m = spline_moments(&y, 1, pts, h);
        assert_eq!((m[0], m[pts - 1]), (0.0, 0.0));
        for k in 1..pts - 1 {
            let lhs = m[k - 1] + 4.0 * m[k] + m[k + 1];
            let rhs = 6.0 * (y[k + 1] - 2.0 * y[k] + y[k - 1]) / (h * h);
            assert!((lhs - rhs).abs() < 1e-12, "{k}: {lhs} vs {rhs}");
        }
        // constant and linear data: zero moments
        let lin: Vec<f64> = (0..pts * 2).map(|i| 0.3 + (i / 2) as f64).collect();
        assert!(
            spline_moments(&lin, 2, pts, h)
                .iter()
                .all(|v| v.abs() < 1e-12)
        );
    }

    #[test]
    fn grid_and_accessors() {
        let e = Ems::noise_prediction(3, -2.0, 2.0, 5).unwrap();
        assert_eq!(e.spacing(), 1.0);
        assert_eq!(e.lambda(0), -2.0);
        assert_eq!(e.lambda(2), 0.0);
        assert_eq!(e.lambda(4), 2.0);
        assert_eq!(e.s_at(4), &[0.0; 3]);
        assert_eq!(e.tables().0.len(), 15);
    }
}
