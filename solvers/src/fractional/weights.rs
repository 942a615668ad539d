//! The weights an fBM-driven method applies to the OU modes: `ω(H)` of the
//! Markov approximation (`../shared/reference/fbm.md` §3.2–3.3; Daems et
//! al., ICLR 2024), with the Hurst index fixed or read from the problem's
//! parameters so that gradients reach it.
//!
//! The rates `γ_k`, the type and the horizon `T` are fixed (they define the
//! modes the driver serves, the same for every `H`); the weights are solved
//! afresh from `H` once per solve, and `dω/dH` with them
//! ([`MarkovApprox::dweights_dhurst`]: the `γ` grid held fixed). The path
//! `B̂_H(t) = Σ_k ω_k (Y_k(t) − Y_k(t0))` of a solve is read back from its
//! [`Solution`] with [`ModeWeights::fbm_at_saved`].

use std::sync::Arc;

use super::covariance::FbmType;
use super::error::FbmError;
use super::markov::{MarkovApprox, check_rates};
use super::ou_tree::FractionalNoise;
use crate::error::SolveError;
use crate::solution::Solution;

/// Where an fBM-driven method takes the Hurst index `H` from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Hurst {
    /// A fixed value in `(0, 1)`.
    Fixed(f64),
    /// The problem's parameter `p[index]` (so `grad` differentiates in it;
    /// the fields see it too and may ignore it).
    Param(usize),
}

/// The Markov approximation an fBM-driven method uses: the type, the
/// horizon `T` and the rates `γ` (fixed), and where `H` comes from. The
/// weights `ω(H)` are solved from `H` at the start of each solve.
///
/// ```
/// use sdeflow_solvers::fractional::{FbmType, Hurst, ModeWeights, gamma_grid};
/// let gammas = gamma_grid(5, 0.3, 1.0)?;
/// let mw = ModeWeights::new(FbmType::RiemannLiouville, Hurst::Param(2), 1.0, &gammas)?;
/// let (w, dw) = mw.weights(&[0.5, 1.0, 0.3])?; // H = p[2] = 0.3
/// assert_eq!((w.len(), dw.len()), (5, 5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ModeWeights {
    kind: FbmType,
    hurst: Hurst,
    horizon: f64,
    gammas: Arc<[f64]>,
}

impl ModeWeights {
    /// The approximation of `kind` on `[0, horizon]` by OU modes of rates
    /// `gammas` (finite, positive; e.g. [`super::gamma_grid`]), with `H`
    /// from `hurst`. A fixed `H` is checked here, a parameter at each solve.
    pub fn new(
        kind: FbmType,
        hurst: Hurst,
        horizon: f64,
        gammas: &[f64],
    ) -> Result<Self, FbmError> {
        check_rates(gammas)?;
        if !(horizon.is_finite() && horizon > 0.0) {
            return Err(FbmError::invalid(
                "horizon",
                format!("T = {horizon}; give a finite T > 0"),
            ));
        }
        if let Hurst::Fixed(h) = hurst {
            super::error::check_hurst(h)?;
        }
        Ok(ModeWeights {
            kind,
            hurst,
            horizon,
            gammas: gammas.into(),
        })
    }

    /// The approximation `ma` with its Hurst index fixed.
    pub fn of(ma: &MarkovApprox) -> Self {
        ModeWeights {
            kind: ma.kind(),
            hurst: Hurst::Fixed(ma.hurst()),
            horizon: ma.horizon(),
            gammas: ma.gammas().into(),
        }
    }

    /// The same approximation with `H` read from the parameter `p[index]`.
    pub fn hurst_param(mut self, index: usize) -> Self {
        self.hurst = Hurst::Param(index);
        self
    }

    /// The fractional noise driver serving these modes (same rates and
    /// type), to drive the problem with; with a fixed `H` it carries the
    /// weights too (so [`super::OuTree::fbm`] works on its paths).
    pub fn noise(&self) -> FractionalNoise {
        match self.hurst {
            Hurst::Fixed(h) => match MarkovApprox::new(self.kind, h, self.horizon, &self.gammas) {
                Ok(ma) => FractionalNoise::from_markov(&ma),
                // unreachable for checked inputs; the rates were checked too
                Err(_) => self.bare_noise(),
            },
            Hurst::Param(_) => self.bare_noise(),
        }
    }

    /// The driver without weights.
    fn bare_noise(&self) -> FractionalNoise {
        match FractionalNoise::new(&self.gammas, self.kind) {
            Ok(n) => n,
            Err(_) => unreachable!("the rates were checked by ModeWeights::new"),
        }
    }

    /// The type approximated.
    pub fn kind(&self) -> FbmType {
        self.kind
    }

    /// Where `H` comes from.
    pub fn hurst(&self) -> Hurst {
        self.hurst
    }

    /// The horizon `T` of the weights' objective.
    pub fn horizon(&self) -> f64 {
        self.horizon
    }

    /// The OU rates.
    pub fn gammas(&self) -> &[f64] {
        &self.gammas
    }

    /// The parameter index of `H`, if it is a parameter.
    pub fn hurst_index(&self) -> Option<usize> {
        match self.hurst {
            Hurst::Fixed(_) => None,
            Hurst::Param(i) => Some(i),
        }
    }

    /// `H` for the parameters `p`.
    pub fn hurst_of(&self, p: &[f64]) -> Result<f64, SolveError> {
        match self.hurst {
            Hurst::Fixed(h) => Ok(h),
            Hurst::Param(i) => match p.get(i) {
                Some(&h) => Ok(h),
                None => Err(SolveError::DimensionMismatch {
                    what: "parameters (the Hurst index is a parameter)".into(),
                    expected: i + 1,
                    found: Some(p.len()),
                    hint: format!("put H at p[{i}], or use Hurst::Fixed"),
                }),
            },
        }
    }

    /// The Markov approximation for the parameters `p`.
    pub fn approx(&self, p: &[f64]) -> Result<MarkovApprox, SolveError> {
        let h = self.hurst_of(p)?;
        Ok(MarkovApprox::new(self.kind, h, self.horizon, &self.gammas)?)
    }

    /// The weights `ω(H)` and their derivative `dω/dH` (rates fixed) for
    /// the parameters `p`.
    pub fn weights(&self, p: &[f64]) -> Result<(Vec<f64>, Vec<f64>), SolveError> {
        let ma = self.approx(p)?;
        Ok((ma.weights().to_vec(), ma.dweights_dhurst()))
    }

    /// Whether `driver` serves these modes (same rates and type): what a
    /// solve checks first.
    pub(crate) fn check_driver(
        &self,
        solver: &'static str,
        driver: &FractionalNoise,
    ) -> Result<(), SolveError> {
        if driver.gammas() != &*self.gammas || driver.kind() != self.kind {
            return Err(SolveError::invalid(
                "driver",
                format!(
                    "{solver} weights {} {:?} modes of rates {:?}, but the problem's \
                     FractionalNoise serves {} {:?} modes of rates {:?}; drive the problem \
                     with ModeWeights::noise() of the solver's weights",
                    self.gammas.len(),
                    self.kind,
                    &*self.gammas,
                    driver.gammas().len(),
                    driver.kind(),
                    driver.gammas()
                ),
            ));
        }
        Ok(())
    }

    /// The fBM path `B̂_H(t) − B̂_H(t0) = Σ_k ω_k (Y_k(t) − Y_k(t0))` of the
    /// solve `sol` at its saved times, `m` values per time (time-major,
    /// aligned with [`Solution::ys`]), with the weights for the parameters
    /// `p` the solve used: the fBM path the trajectory was driven by.
    /// Errors when the solution keeps no path, or one without these modes.
    pub fn fbm_at_saved(&self, sol: &Solution, p: &[f64]) -> Result<Vec<f64>, SolveError> {
        let (w, _) = self.weights(p)?;
        let mut path = sol.brownian_path()?;
        let t0 = sol.brownian.as_ref().map_or(sol.ts[0], |k| k.t0);
        let (m, k) = (path.dim(), path.modes_len());
        if k != w.len() {
            return Err(SolveError::invalid(
                "fbm_at_saved",
                format!(
                    "the solution's path serves {k} OU modes per Brownian motion, these \
                     weights {}; read it with the ModeWeights the solve used",
                    w.len()
                ),
            ));
        }
        let (mut dw, mut dy) = (vec![0.0; m], vec![0.0; m * k]);
        let mut out = vec![0.0; sol.ts.len() * m];
        for (i, &t) in sol.ts.iter().enumerate() {
            path.increment_with_modes(t0, t, &mut dw, &mut dy);
            for j in 0..m {
                out[i * m + j] = (0..k).map(|l| w[l] * dy[j * k + l]).sum();
            }
        }
        Ok(out)
    }
}
