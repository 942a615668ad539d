//! Rößler's SRA stochastic Runge–Kutta methods for additive noise
//! (`g = g(t)`), strong order 1.5 (A. Rößler, SIAM J. Numer. Anal. 48
//! (2010) 922–952; StochasticDiffEq.jl `tableaus.jl`). With additive noise
//! Itô and Stratonovich coincide, so either interpretation is accepted.
//! Coefficients from `../shared/reference/sde.md` §5, checked by tests
//! against Rößler's order conditions — including `β2ᵀc1 = −1`, which the
//! SRA3 of torchsde (`tableaus/sra3.py`, `β2 = (1, −1, 0)`) violates; the
//! correct value is `β2 = (−1, 1, 0)`.
//!
//! `H0_i = y + h Σ A0_ij f_j + Σ B0_ij g_j I10/h`,
//! `y⁺ = y + h Σ α_i f_i + Σ g(t + c1_i h) (β1_i ΔW + β2_i I10/h)`,
//! error per component `δ |h (f_1 − f_2)| + |Σ β2_i g_i I10/h|`.
//!
//! The step VJP ([`StepVjp`](crate::step_vjp::StepVjp)) recomputes the
//! step with this step itself, then reverses the stages; diffusion stages
//! at the same node share one VJP. The error estimate's absolute values
//! are differentiated as `sign(x)`.

use super::vjp::{StageVjpWork, VjpArgs, VjpOut, abs_slope, drift_err_bar, sde_step_vjp};
use super::{Integrates, Noises, SdeCache, StepArgs, driver, sde_solver};
use crate::brownian::Driver;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::noise::Noise;
use crate::problem::Problem;
use crate::solver::{StepAt, StepOut, StepStatus, delegate_solver};

/// An SRA method as data.
#[derive(Debug, Clone, Copy)]
pub struct SraTableau {
    /// Name.
    pub name: &'static str,
    /// Drift-stage nodes.
    pub c0: &'static [f64],
    /// Diffusion nodes.
    pub c1: &'static [f64],
    /// Drift coefficients (lower-triangular rows).
    pub a0: &'static [&'static [f64]],
    /// Diffusion coefficients of the stages (times `I10/h`).
    pub b0: &'static [&'static [f64]],
    /// Drift weights.
    pub alpha: &'static [f64],
    /// Weights of `ΔW`.
    pub beta1: &'static [f64],
    /// Weights of `I10/h`.
    pub beta2: &'static [f64],
    /// Weight of the drift part of the error estimate.
    pub delta: f64,
}

/// SRA1: 2 stages; 2 drift and 2 diffusion evaluations per step.
pub const SRA1: SraTableau = SraTableau {
    name: "Sra1",
    c0: &[0.0, 0.75],
    c1: &[1.0, 0.0],
    a0: &[&[], &[0.75]],
    b0: &[&[], &[1.5]],
    alpha: &[1.0 / 3.0, 2.0 / 3.0],
    beta1: &[1.0, 0.0],
    beta2: &[-1.0, 1.0],
    delta: 1.0,
};

/// SRA3: 3 stages, weak order 3 for additive noise; 3 drift and 2
/// diffusion evaluations per step.
pub const SRA3: SraTableau = SraTableau {
    name: "Sra3",
    c0: &[0.0, 1.0, 0.5],
    c1: &[1.0, 0.0, 0.0],
    a0: &[&[], &[1.0], &[0.25, 0.25]],
    b0: &[&[], &[0.0], &[1.0, 0.5]],
    alpha: &[1.0 / 6.0, 1.0 / 6.0, 2.0 / 3.0],
    beta1: &[1.0, 0.0, 0.0],
    beta2: &[-1.0, 1.0, 0.0],
    delta: 1.0,
};

/// Workspace of an SRA solve.
#[derive(Debug, Clone)]
pub struct SraCache {
    noise: Noise,
    n: usize,
    h0: Vec<f64>,
    fs: Vec<f64>,
    gs: Vec<f64>,
    /// Per Brownian component: I10/h.
    chi: Vec<f64>,
    /// For each stage, the earlier stage with the same diffusion node, if any.
    g_alias: Vec<Option<usize>>,
    /// Drift stage 0 is `(t, y)`: the loop's `f0` serves at the start.
    stage0_at_start: bool,
    f0_valid: bool,
    k: Vec<f64>,
}

#[inline]
fn sra_step<F: Drift, G: Diffusion>(
    tab: &SraTableau,
    c: &mut SraCache,
    a: StepArgs<'_, F, G>,
) -> StepStatus {
    let (StepAt { t, h, y }, StepOut { y_new, err }) = (a.at, a.out);
    let (fields, noise, stats) = (a.fields, a.noise, a.stats);
    let n = c.n;
    let s = tab.alpha.len();
    for (j, ch) in c.chi.iter_mut().enumerate() {
        *ch = 0.5 * noise.dw[j] + noise.levy_h[j];
    }
    // additive noise: g depends on t only (evaluated at y)
    for i in 0..s {
        match c.g_alias[i] {
            Some(j) => c.gs.copy_within(j * n..(j + 1) * n, i * n),
            None => fields.g(t + tab.c1[i] * h, y, &mut c.gs[i * n..(i + 1) * n], stats),
        }
    }
    for i in 0..s {
        if i == 0 && c.f0_valid {
            continue;
        }
        for k in 0..n {
            let d = driver(c.noise, k);
            let (mut a, mut b) = (0.0, 0.0);
            for j in 0..i {
                a += tab.a0[i][j] * c.fs[j * n + k];
                b += tab.b0[i][j] * c.gs[j * n + k];
            }
            c.h0[i * n + k] = y[k] + h * a + b * c.chi[d];
        }
        fields.f(
            t + tab.c0[i] * h,
            &c.h0[i * n..(i + 1) * n],
            &mut c.fs[i * n..(i + 1) * n],
            stats,
        );
    }
    c.f0_valid = true;
    for k in 0..n {
        let (drift, diff, corr) = sra_sums(tab, c, noise.dw, k);
        y_new[k] = y[k] + h * drift + diff + corr;
        err[k] = tab.delta * (h * (c.fs[k] - c.fs[n + k])).abs() + corr.abs();
    }
    StepStatus::Taken
}

/// The stage sums of component `k` once the stages are in `c`:
/// `(Σ α_i f_i, Σ β1_i g_i ΔW, Σ β2_i g_i I10/h)`.
#[inline(always)]
fn sra_sums(tab: &SraTableau, c: &SraCache, dw: &[f64], k: usize) -> (f64, f64, f64) {
    let (n, d) = (c.n, driver(c.noise, k));
    let (mut drift, mut diff, mut corr) = (0.0, 0.0, 0.0);
    for i in 0..tab.alpha.len() {
        let g = c.gs[i * n + k];
        drift += tab.alpha[i] * c.fs[i * n + k];
        diff += tab.beta1[i] * g * dw[d];
        corr += tab.beta2[i] * g * c.chi[d];
    }
    (drift, diff, corr)
}

/// A SRA method given by its tableau; [`Sra1`] and [`Sra3`] are two.
/// Custom tableaus work the same way.
#[derive(Debug, Clone, Copy)]
pub struct Sra {
    tableau: &'static SraTableau,
}

impl Sra {
    /// A solver for `tableau`.
    pub const fn new(tableau: &'static SraTableau) -> Self {
        Sra { tableau }
    }

    /// The tableau.
    pub fn tableau(&self) -> &'static SraTableau {
        self.tableau
    }
}

sde_solver!(
    Sra, SraCache, |s| s.tableau.name,
    order: 1.5, error_order: Some(2.0), levy: true,
    takes: (Noises::ADDITIVE, Integrates::Either),
);

impl SdeCache for SraCache {
    fn start(&mut self, f0: &[f64], _g0: &[f64]) {
        if self.stage0_at_start {
            let n = self.n;
            self.fs[..n].copy_from_slice(f0);
            self.f0_valid = true;
        }
    }
    fn accept(&mut self) {
        self.f0_valid = false;
    }
    fn dense(&mut self) -> &mut [f64] {
        &mut self.k
    }
}

impl Sra {
    fn new_cache<F: Drift, G: Diffusion, D: Driver>(&self, problem: &Problem<F, G, D>) -> SraCache {
        let (n, noise) = super::shape(problem);
        let (s, c1) = (self.tableau.alpha.len(), self.tableau.c1);
        SraCache {
            noise,
            n,
            h0: vec![0.0; s * n],
            fs: vec![0.0; s * n],
            gs: vec![0.0; s * n],
            chi: vec![0.0; noise.brownian_dim(n)],
            g_alias: (0..s).map(|i| (0..i).find(|&j| c1[j] == c1[i])).collect(),
            // drift stage 0 is (t0, y0) for every SRA tableau
            stage0_at_start: self.tableau.c0[0] == 0.0,
            f0_valid: false,
            k: vec![0.0; n],
        }
    }

    #[inline]
    fn take<F: Drift, G: Diffusion>(&self, c: &mut SraCache, a: StepArgs<'_, F, G>) -> StepStatus {
        sra_step(self.tableau, c, a)
    }
}

/// Workspace of the step VJP of an SRA method.
pub type SraVjpWork = StageVjpWork<SraCache>;

impl Sra {
    fn workspace<F: Drift, G: Diffusion, D: Driver>(&self, p: &Problem<F, G, D>) -> SraVjpWork {
        StageVjpWork::new(self.new_cache(p), p.dim(), self.tableau.alpha.len())
    }

    /// The step retaken, the cotangents of `f_i`, `g_i` from `y⁺` (and the
    /// error estimate), the drift stages reversed last to first, then the
    /// diffusion (at `y`: additive noise) once per distinct node.
    fn vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut SraVjpWork,
        mut a: VjpArgs<'_, F, G>,
    ) -> VjpOut {
        let tab = self.tableau;
        w.retake(&mut a, |c, args| sra_step(tab, c, args));
        let (StepAt { t, h, y }, fields, bars, dw) = (a.at, a.fields, a.bars, a.noise.dw);
        let (c, fb, gb) = (&w.step, &mut w.fb, &mut w.gb);
        let (n, s) = (c.n, tab.alpha.len());
        for k in 0..n {
            let d = driver(c.noise, k);
            for i in 0..s {
                fb[i * n + k] = h * tab.alpha[i] * bars.y[k];
                gb[i * n + k] = bars.y[k] * (tab.beta1[i] * dw[d] + tab.beta2[i] * c.chi[d]);
            }
        }
        // err_k = δ |h (f_0 − f_1)_k| + |corr_k|
        if let Some(e) = bars.err {
            drift_err_bar(tab.delta, h, &c.fs, e, fb);
            for k in 0..n {
                let sc = abs_slope(sra_sums(tab, c, dw, k).2) * e[k];
                let i10 = c.chi[driver(c.noise, k)];
                for i in 0..s {
                    gb[i * n + k] += sc * tab.beta2[i] * i10;
                }
            }
        }
        let la = &mut w.la0;
        for i in (0..s).rev() {
            let r = i * n..(i + 1) * n;
            la.fill(0.0);
            let ti = t + tab.c0[i] * h;
            fields
                .drift
                .drift_vjp(ti, &c.h0[r.clone()], fields.p, &fb[r], la, bars.p);
            for k in 0..n {
                let i10 = c.chi[driver(c.noise, k)];
                for j in 0..i {
                    fb[j * n + k] += h * tab.a0[i][j] * la[k];
                    gb[j * n + k] += tab.b0[i][j] * i10 * la[k];
                }
                bars.y[k] += la[k];
            }
        }
        for i in (0..s).rev() {
            let r = i * n..(i + 1) * n;
            match c.g_alias[i] {
                // the same g: its cotangent joins the earlier stage's
                Some(j) => (0..n).for_each(|k| gb[j * n + k] += gb[i * n + k]),
                None => {
                    let ti = t + tab.c1[i] * h;
                    fields
                        .diffusion
                        .diffusion_vjp(ti, y, fields.p, &gb[r], bars.y, bars.p);
                }
            }
        }
        Ok(s)
    }
}

sde_step_vjp!(Sra, SraVjpWork, |s| s);
sde_step_vjp!(Sra1, SraVjpWork, |s| Sra::new(s.tableau()));
sde_step_vjp!(Sra3, SraVjpWork, |s| Sra::new(s.tableau()));

delegate_solver!(
    /// SRA1 (Rößler 2010): additive noise, strong order 1.5, adaptive.
    Sra1,
    Sra::new(&SRA1),
    Sra,
    SraCache,
    SRA1,
    SraTableau
);
delegate_solver!(
    /// SRA3 (Rößler 2010): additive noise, strong order 1.5 (weak 3),
    /// adaptive.
    Sra3,
    Sra::new(&SRA3),
    Sra,
    SraCache,
    SRA3,
    SraTableau
);

#[cfg(test)]
mod tests {
    use super::*;

    fn row_sum(r: &[f64]) -> f64 {
        r.iter().sum()
    }

    /// Rößler's conditions for SRA (StochasticDiffEq `checkSRAOrder`).
    #[test]
    fn sra_tableaus_satisfy_the_order_conditions() {
        for tab in [&SRA1, &SRA3] {
            let s = tab.alpha.len();
            let a0e: Vec<f64> = tab.a0.iter().map(|r| row_sum(r)).collect();
            let b0e: Vec<f64> = tab.b0.iter().map(|r| row_sum(r)).collect();
            let dot = |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(x, y)| x * y).sum() };
            let e = vec![1.0; s];
            let b0e2: Vec<f64> = b0e.iter().map(|x| x * x).collect();
            let conds = [
                dot(tab.alpha, &e) - 1.0,
                dot(tab.beta1, &e) - 1.0,
                dot(tab.beta2, &e),
                dot(tab.alpha, &b0e) - 1.0,
                dot(tab.alpha, &a0e) - 0.5,
                dot(tab.alpha, &b0e2) - 1.5,
                dot(tab.beta1, tab.c1) - 1.0,
                dot(tab.beta2, tab.c1) + 1.0,
            ];
            for (k, c) in conds.iter().enumerate() {
                assert!(
                    c.abs() < 1e-14,
                    "{} condition {k}: residual {c:e}",
                    tab.name
                );
            }
            for i in 0..s {
                assert!((a0e[i] - tab.c0[i]).abs() < 1e-14, "{} c0[{i}]", tab.name);
            }
        }
        // the torchsde SRA3 sign error is caught by the last condition
        let wrong_beta2 = [1.0, -1.0, 0.0];
        let r: f64 = wrong_beta2
            .iter()
            .zip(SRA3.c1)
            .map(|(b, c)| b * c)
            .sum::<f64>()
            + 1.0;
        assert!(r.abs() > 1.0);
    }
}
