//! Rößler's SRI stochastic Runge–Kutta methods for Itô SDEs with scalar or
//! diagonal noise, strong order 1.5 (A. Rößler, "Runge–Kutta methods for the
//! strong approximation of solutions of stochastic differential equations",
//! SIAM J. Numer. Anal. 48 (2010) 922–952), with the "natural embedding"
//! error estimate of Rackauckas & Nie ("Adaptive methods for stochastic
//! differential equations via natural embeddings and rejection sampling
//! with memory", DCDS-B 22 (2017) 2731–2761). Tableaus from
//! `../shared/reference/sde.md` §4 (StochasticDiffEq.jl `tableaus.jl`,
//! torchsde `srid1.py`), checked by tests against Rößler's order conditions.
//!
//! Stages (products with `g` component-wise):
//! `H0_i = y + h Σ A0_ij f_j + Σ B0_ij g_j I10/h`,
//! `H1_i = y + h Σ A1_ij f_j + √h Σ B1_ij g_j`,
//! `y⁺ = y + h Σ α_i f_i + Σ g_i (β1_i ΔW + β2_i I11/√h + β3_i I10/h + β4_i I111/h)`,
//! with `I11 = ½(ΔW² − h)`, `I10 = h(½ΔW + H)` (`H` the space–time Lévy
//! area), `I111 = (ΔW³ − 3hΔW)/6`.
//!
//! Error estimate, per component: `δ |h (f_1 − f_2)| + |Σ g_i (β3_i I10/h +
//! β4_i I111/h)|` — the drift part is the paper's alternating-sign sum over
//! the first two drift stages (StochasticDiffEq sums them without signs);
//! the noise part is exactly the order-1.5 correction over an order-1.0
//! method.
//!
//! The step VJP ([`StepVjp`](crate::step_vjp::StepVjp)) recomputes the step with this step
//! itself, then reverses the stages; stages that repeat stage 0 (SRIW1's
//! last two drift stages) take no VJP of their own. The error estimate's
//! absolute values are differentiated as `sign(x)`.

use super::vjp::{StageVjpWork, VjpArgs, VjpOut, abs_slope, drift_err_bar, sde_step_vjp};
use super::{Integrates, Noises, SdeCache, StepArgs, driver, sde_solver};
use crate::brownian::Driver;
use crate::field::{Diffusion, DiffusionVjp, Drift, DriftVjp};
use crate::noise::Noise;
use crate::problem::Problem;
use crate::solver::{StepAt, StepOut, StepStatus, delegate_solver};

/// An SRI method as data (lower-triangular rows: row `i` has `i` entries).
#[derive(Debug, Clone, Copy)]
pub struct SriTableau {
    /// Name.
    pub name: &'static str,
    /// Drift-stage nodes.
    pub c0: &'static [f64],
    /// Diffusion-stage nodes.
    pub c1: &'static [f64],
    /// Drift coefficients of the drift stages.
    pub a0: &'static [&'static [f64]],
    /// Drift coefficients of the diffusion stages.
    pub a1: &'static [&'static [f64]],
    /// Diffusion coefficients of the drift stages (times `I10/h`).
    pub b0: &'static [&'static [f64]],
    /// Diffusion coefficients of the diffusion stages (times `√h`).
    pub b1: &'static [&'static [f64]],
    /// Drift weights.
    pub alpha: &'static [f64],
    /// Weights of `ΔW`.
    pub beta1: &'static [f64],
    /// Weights of `I11/√h`.
    pub beta2: &'static [f64],
    /// Weights of `I10/h`.
    pub beta3: &'static [f64],
    /// Weights of `I111/h`.
    pub beta4: &'static [f64],
    /// Weight `δ` of the drift part of the error estimate.
    pub delta: f64,
}

/// SRIW1: 4 stages, strong order 1.5, weak order 2; 2 drift and 4
/// diffusion evaluations per step.
pub const SRIW1: SriTableau = SriTableau {
    name: "Sriw1",
    c0: &[0.0, 0.75, 0.0, 0.0],
    c1: &[0.0, 0.25, 1.0, 0.25],
    a0: &[&[], &[0.75], &[0.0, 0.0], &[0.0, 0.0, 0.0]],
    a1: &[&[], &[0.25], &[1.0, 0.0], &[0.0, 0.0, 0.25]],
    b0: &[&[], &[1.5], &[0.0, 0.0], &[0.0, 0.0, 0.0]],
    b1: &[&[], &[0.5], &[-1.0, 0.0], &[-5.0, 3.0, 0.5]],
    alpha: &[1.0 / 3.0, 2.0 / 3.0, 0.0, 0.0],
    beta1: &[-1.0, 4.0 / 3.0, 2.0 / 3.0, 0.0],
    beta2: &[-1.0, 4.0 / 3.0, -1.0 / 3.0, 0.0],
    beta3: &[2.0, -4.0 / 3.0, -2.0 / 3.0, 0.0],
    beta4: &[-2.0, 5.0 / 3.0, -2.0 / 3.0, 1.0],
    delta: 1.0 / 6.0,
};

/// SOSRI (Rackauckas & Nie, "Stability-optimized high order methods and
/// stiffness detection for pathwise stiff SDEs", 2018): 4 stages, strong
/// order 1.5, a larger stability region; 4 drift and 4 diffusion
/// evaluations per step.
pub const SOSRI: SriTableau = SriTableau {
    name: "Sosri",
    c0: &[
        0.0,
        -0.04199224421316468,
        0.7898405466170333,
        3.7504010171562823,
    ],
    c1: &[
        0.0,
        0.26204282091330466,
        0.05879875232001766,
        0.758661169101175,
    ],
    a0: &[
        &[],
        &[-0.04199224421316468],
        &[2.842612915017106, -2.0527723684000727],
        &[4.338237071435815, -2.8895936137439793, 2.3017575594644466],
    ],
    a1: &[
        &[],
        &[0.26204282091330466],
        &[0.20903646383505375, -0.1502377115150361],
        &[0.05836595312746999, 0.6149440396332373, 0.08535117634046772],
    ],
    b0: &[
        &[],
        &[-0.21641093549612528],
        &[1.5336352863679572, 0.26066223492647056],
        &[
            -1.0536037558179159,
            1.7015284721089472,
            -0.20725685784180017,
        ],
    ],
    b1: &[
        &[],
        &[-0.5119011827621657],
        &[2.67767339866713, -4.9395031322250995],
        &[0.15580956238299215, 3.2361551006624674, -1.4223118283355949],
    ],
    alpha: &[
        1.140099274172029,
        -0.6401334255743456,
        0.4736296532772559,
        0.026404498125060714,
    ],
    beta1: &[
        -1.8453464565104432,
        2.688764531100726,
        -0.2523866501071323,
        0.40896857551684956,
    ],
    beta2: &[
        0.4969658141589478,
        -0.5771202869753592,
        -0.12919702470322217,
        0.2093514975196336,
    ],
    beta3: &[
        2.8453464565104425,
        -2.688764531100725,
        0.2523866501071322,
        -0.40896857551684945,
    ],
    beta4: &[
        0.11522663875443433,
        -0.57877086147738,
        0.2857851028163886,
        0.17775911990655704,
    ],
    delta: 1.0,
};

/// Workspace of an SRI solve.
#[derive(Debug, Clone)]
pub struct SriCache {
    noise: Noise,
    n: usize,
    h0: Vec<f64>,
    h1: Vec<f64>,
    fs: Vec<f64>,
    gs: Vec<f64>,
    /// Per Brownian component: ΔW, I11/√h, I10/h, I111/h.
    chi: Vec<f64>,
    /// Stage `i` of `H0` (resp. `H1`) is `y` at the same node as stage 0.
    same_f: Vec<bool>,
    same_g: Vec<bool>,
    /// Stage 0 is `(t, y)`: the loop's `f0`, `g0` serve at the start.
    stage0_at_start: bool,
    first_valid: bool,
    k: Vec<f64>,
}

impl SriCache {
    /// `ΔW, I11/√h, I10/h, I111/h` of the Brownian component driving
    /// state component `k`.
    #[inline(always)]
    fn chi_of(&self, k: usize) -> &[f64] {
        let d = driver(self.noise, k);
        &self.chi[4 * d..4 * d + 4]
    }
}

fn row_is_zero(r: &[f64]) -> bool {
    r.iter().all(|&x| x == 0.0)
}

/// One SRI step of `tab` (shared by [`Sriw1`] and [`Sosri`], and by the
/// step VJP, which recomputes the stages with it).
#[inline]
fn sri_step<F: Drift, G: Diffusion>(
    tab: &SriTableau,
    c: &mut SriCache,
    a: StepArgs<'_, F, G>,
) -> StepStatus {
    let (StepAt { t, h, y }, StepOut { y_new, err }) = (a.at, a.out);
    let (fields, noise, stats) = (a.fields, a.noise, a.stats);
    let n = c.n;
    let s = tab.alpha.len();
    let m = noise.dw.len();
    let sqh = h.abs().sqrt();
    for j in 0..m {
        let dw = noise.dw[j];
        c.chi[4 * j] = dw;
        c.chi[4 * j + 1] = 0.5 * (dw * dw - h) / sqh;
        c.chi[4 * j + 2] = 0.5 * dw + noise.levy_h[j];
        c.chi[4 * j + 3] = (dw * dw * dw - 3.0 * h * dw) / (6.0 * h);
    }
    for i in 0..s {
        // stage inputs
        for k in 0..n {
            let d = driver(c.noise, k);
            let (mut a0, mut b0, mut a1, mut b1) = (0.0, 0.0, 0.0, 0.0);
            for j in 0..i {
                let (fj, gj) = (c.fs[j * n + k], c.gs[j * n + k]);
                a0 += tab.a0[i][j] * fj;
                b0 += tab.b0[i][j] * gj;
                a1 += tab.a1[i][j] * fj;
                b1 += tab.b1[i][j] * gj;
            }
            c.h0[i * n + k] = y[k] + h * a0 + b0 * c.chi[4 * d + 2];
            c.h1[i * n + k] = y[k] + h * a1 + sqh * b1;
        }
        let (f_i, g_i) = (i * n..(i + 1) * n, i * n..(i + 1) * n);
        if i == 0 {
            if !c.first_valid {
                fields.f(t + tab.c0[0] * h, &c.h0[..n], &mut c.fs[..n], stats);
                fields.g(t + tab.c1[0] * h, &c.h1[..n], &mut c.gs[..n], stats);
                c.first_valid = true;
            }
            continue;
        }
        if c.same_f[i] {
            c.fs.copy_within(0..n, i * n);
        } else {
            fields.f(t + tab.c0[i] * h, &c.h0[f_i.clone()], &mut c.fs[f_i], stats);
        }
        if c.same_g[i] {
            c.gs.copy_within(0..n, i * n);
        } else {
            fields.g(t + tab.c1[i] * h, &c.h1[g_i.clone()], &mut c.gs[g_i], stats);
        }
    }
    for k in 0..n {
        let (drift, diff, corr) = sri_sums(tab, c, k);
        y_new[k] = y[k] + h * drift + diff + corr;
        let e_drift = h * (c.fs[k] - c.fs[n + k]);
        err[k] = tab.delta * e_drift.abs() + corr.abs();
    }
    StepStatus::Taken
}

/// The stage sums of component `k` once the stages are in `c`:
/// `(Σ α_i f_i, Σ g_i (β1_i ΔW + β2_i I11/√h), Σ g_i (β3_i I10/h + β4_i I111/h))`.
#[inline(always)]
fn sri_sums(tab: &SriTableau, c: &SriCache, k: usize) -> (f64, f64, f64) {
    let n = c.n;
    let ch = c.chi_of(k);
    let (mut drift, mut diff, mut corr) = (0.0, 0.0, 0.0);
    for i in 0..tab.alpha.len() {
        let (f, g) = (c.fs[i * n + k], c.gs[i * n + k]);
        drift += tab.alpha[i] * f;
        diff += g * (tab.beta1[i] * ch[0] + tab.beta2[i] * ch[1]);
        corr += g * (tab.beta3[i] * ch[2] + tab.beta4[i] * ch[3]);
    }
    (drift, diff, corr)
}

/// A SRI method given by its tableau; [`Sriw1`] and [`Sosri`] are two.
/// Custom tableaus work the same way.
#[derive(Debug, Clone, Copy)]
pub struct Sri {
    tableau: &'static SriTableau,
}

impl Sri {
    /// A solver for `tableau`.
    pub const fn new(tableau: &'static SriTableau) -> Self {
        Sri { tableau }
    }

    /// The tableau.
    pub fn tableau(&self) -> &'static SriTableau {
        self.tableau
    }
}

sde_solver!(
    Sri, SriCache, |s| s.tableau.name,
    order: 1.5, error_order: Some(1.5), levy: true,
    takes: (Noises::DIAGONAL, Integrates::Ito),
);

impl SdeCache for SriCache {
    fn start(&mut self, f0: &[f64], g0: &[f64]) {
        if self.stage0_at_start {
            let n = self.n;
            self.fs[..n].copy_from_slice(f0);
            self.gs[..n].copy_from_slice(&g0[..n]);
            self.first_valid = true;
        }
    }
    fn accept(&mut self) {
        self.first_valid = false;
    }
    fn dense(&mut self) -> &mut [f64] {
        &mut self.k
    }
}

impl Sri {
    fn new_cache<F: Drift, G: Diffusion, D: Driver>(&self, problem: &Problem<F, G, D>) -> SriCache {
        let tab = self.tableau;
        let (n, noise) = super::shape(problem);
        let s = tab.alpha.len();
        let m = noise.brownian_dim(n);
        let same = |a: &[&[f64]], b: &[&[f64]], c: &[f64], i: usize| {
            row_is_zero(a[i]) && row_is_zero(b[i]) && c[i] == c[0]
        };
        SriCache {
            noise,
            n,
            h0: vec![0.0; s * n],
            h1: vec![0.0; s * n],
            fs: vec![0.0; s * n],
            gs: vec![0.0; s * n],
            chi: vec![0.0; 4 * m],
            same_f: (0..s).map(|i| same(tab.a0, tab.b0, tab.c0, i)).collect(),
            same_g: (0..s).map(|i| same(tab.a1, tab.b1, tab.c1, i)).collect(),
            // stage 0 is (t0, y0) for every SRI tableau (row 0 is empty, c = 0)
            stage0_at_start: tab.c0[0] == 0.0 && tab.c1[0] == 0.0,
            first_valid: false,
            k: vec![0.0; n],
        }
    }

    #[inline]
    fn take<F: Drift, G: Diffusion>(&self, c: &mut SriCache, a: StepArgs<'_, F, G>) -> StepStatus {
        sri_step(self.tableau, c, a)
    }
}

/// Workspace of the step VJP of an SRI method.
pub type SriVjpWork = StageVjpWork<SriCache>;

impl Sri {
    fn workspace<F: Drift, G: Diffusion, D: Driver>(&self, p: &Problem<F, G, D>) -> SriVjpWork {
        StageVjpWork::new(self.new_cache(p), p.dim(), self.tableau.alpha.len())
    }

    /// The step retaken, the cotangents of `f_i`, `g_i` from `y⁺` (and the
    /// error estimate), then the stages reversed last to first.
    fn vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut SriVjpWork,
        mut a: VjpArgs<'_, F, G>,
    ) -> VjpOut {
        let tab = self.tableau;
        w.retake(&mut a, |c, args| sri_step(tab, c, args));
        let (StepAt { t, h, .. }, fields, bars) = (a.at, a.fields, a.bars);
        let (c, fb, gb) = (&w.step, &mut w.fb, &mut w.gb);
        let (n, s, sqh) = (c.n, tab.alpha.len(), h.abs().sqrt());
        for k in 0..n {
            let ch = c.chi_of(k);
            for i in 0..s {
                fb[i * n + k] = h * tab.alpha[i] * bars.y[k];
                gb[i * n + k] = bars.y[k]
                    * (tab.beta1[i] * ch[0]
                        + tab.beta2[i] * ch[1]
                        + tab.beta3[i] * ch[2]
                        + tab.beta4[i] * ch[3]);
            }
        }
        // err_k = δ |h (f_0 − f_1)_k| + |corr_k|
        if let Some(e) = bars.err {
            drift_err_bar(tab.delta, h, &c.fs, e, fb);
            for k in 0..n {
                let ch = c.chi_of(k);
                let sc = abs_slope(sri_sums(tab, c, k).2) * e[k];
                for i in 0..s {
                    gb[i * n + k] += sc * (tab.beta3[i] * ch[2] + tab.beta4[i] * ch[3]);
                }
            }
        }
        let (la0, la1) = (&mut w.la0, &mut w.la1);
        let mut vjps = 0;
        for i in (0..s).rev() {
            let r = i * n..(i + 1) * n;
            la0.fill(0.0);
            la1.fill(0.0);
            // a stage that repeats stage 0 passes its cotangent on to it
            if i > 0 && c.same_f[i] {
                (0..n).for_each(|k| fb[k] += fb[i * n + k]);
            } else {
                let ti = t + tab.c0[i] * h;
                fields
                    .drift
                    .drift_vjp(ti, &c.h0[r.clone()], fields.p, &fb[r.clone()], la0, bars.p);
                vjps += 1;
            }
            if i > 0 && c.same_g[i] {
                (0..n).for_each(|k| gb[k] += gb[i * n + k]);
            } else {
                let ti = t + tab.c1[i] * h;
                let (h1, gbi) = (&c.h1[r.clone()], &gb[r]);
                fields
                    .diffusion
                    .diffusion_vjp(ti, h1, fields.p, gbi, la1, bars.p);
            }
            for k in 0..n {
                let i10 = c.chi_of(k)[2];
                for j in 0..i {
                    fb[j * n + k] += h * (tab.a0[i][j] * la0[k] + tab.a1[i][j] * la1[k]);
                    gb[j * n + k] += tab.b0[i][j] * i10 * la0[k] + sqh * tab.b1[i][j] * la1[k];
                }
                bars.y[k] += la0[k] + la1[k];
            }
        }
        Ok(vjps)
    }
}

sde_step_vjp!(Sri, SriVjpWork, |s| s);
sde_step_vjp!(Sriw1, SriVjpWork, |s| Sri::new(s.tableau()));
sde_step_vjp!(Sosri, SriVjpWork, |s| Sri::new(s.tableau()));

delegate_solver!(
    /// SRIW1 (Rößler 2010): Itô, scalar/diagonal noise, strong order 1.5,
    /// adaptive with the natural-embedding error estimate.
    Sriw1,
    Sri::new(&SRIW1),
    Sri,
    SriCache,
    SRIW1,
    SriTableau
);
delegate_solver!(
    /// SOSRI (Rackauckas & Nie 2018): stability-optimised SRI, Itô,
    /// scalar/diagonal noise, strong order 1.5, adaptive.
    Sosri,
    Sri::new(&SOSRI),
    Sri,
    SriCache,
    SOSRI,
    SriTableau
);

#[cfg(test)]
mod tests {
    use super::*;

    fn mat(rows: &[&[f64]], s: usize) -> Vec<Vec<f64>> {
        (0..s)
            .map(|i| {
                (0..s)
                    .map(|j| rows[i].get(j).copied().unwrap_or(0.0))
                    .collect()
            })
            .collect()
    }
    fn mv(a: &[Vec<f64>], v: &[f64]) -> Vec<f64> {
        a.iter()
            .map(|r| r.iter().zip(v).map(|(x, y)| x * y).sum())
            .collect()
    }
    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }
    fn sq(v: &[f64]) -> Vec<f64> {
        v.iter().map(|x| x * x).collect()
    }

    /// Rößler's order conditions for strong order 1.5 (as in
    /// StochasticDiffEq's `checkSRIOrder`; `../shared/reference/checks/check_sde_tableaux.py`).
    #[test]
    fn sri_tableaus_satisfy_the_order_conditions() {
        for tab in [&SRIW1, &SOSRI] {
            let s = tab.alpha.len();
            let (a0, a1, b0, b1) = (
                mat(tab.a0, s),
                mat(tab.a1, s),
                mat(tab.b0, s),
                mat(tab.b1, s),
            );
            let e = vec![1.0; s];
            let (b0e, b1e, a0e, a1e) = (mv(&b0, &e), mv(&b1, &e), mv(&a0, &e), mv(&a1, &e));
            let b1b1e = mv(&b1, &b1e);
            let a1b0e = mv(&a1, &b0e);
            let (al, be1, be2, be3, be4) = (tab.alpha, tab.beta1, tab.beta2, tab.beta3, tab.beta4);
            let conds = [
                dot(al, &e) - 1.0,
                dot(be1, &e) - 1.0,
                dot(be2, &e),
                dot(be3, &e),
                dot(be4, &e),
                dot(be1, &b1e),
                dot(be2, &b1e) - 1.0,
                dot(be3, &b1e),
                dot(be4, &b1e),
                dot(al, &a0e) - 0.5,
                dot(al, &b0e) - 1.0,
                dot(al, &sq(&b0e)) - 1.5,
                dot(be1, &a1e) - 1.0,
                dot(be2, &a1e),
                dot(be3, &a1e) + 1.0,
                dot(be4, &a1e),
                dot(be1, &sq(&b1e)) - 1.0,
                dot(be2, &sq(&b1e)),
                dot(be3, &sq(&b1e)) + 1.0,
                dot(be4, &sq(&b1e)) - 2.0,
                dot(be1, &b1b1e),
                dot(be2, &b1b1e),
                dot(be3, &b1b1e),
                dot(be4, &b1b1e) - 1.0,
                0.5 * dot(be1, &a1b0e) + dot(be3, &a1b0e) / 3.0,
            ];
            for (k, c) in conds.iter().enumerate() {
                assert!(
                    c.abs() < 1e-13,
                    "{} condition {k}: residual {c:e}",
                    tab.name
                );
            }
            for i in 0..s {
                assert!((a0e[i] - tab.c0[i]).abs() < 1e-13, "{} c0[{i}]", tab.name);
                assert!((a1e[i] - tab.c1[i]).abs() < 1e-13, "{} c1[{i}]", tab.name);
            }
        }
    }
}
