//! Vector–Jacobian products of one step of the SDE solvers — what the
//! discrete adjoint of an SDE solve reverses (the exact gradient of the
//! computed solution on a fixed Brownian path). Each reverses the step from
//! the stored state `y_n`, recomputing its stages. Milstein with exact
//! derivatives needs the diffusion's second derivatives, through
//! [`DiffusionVjp::milstein_term_vjp`]; [`SdeStepVjp::check_step_vjp`] says
//! up front whether a diffusion has it.

use super::{EulerHeun, EulerMaruyama, Milstein, MilsteinDerivative, Sra, Sri, add_noise, driver};
use crate::field::{DiffusionVjp, DriftVjp};
use crate::noise::{Interpretation, Noise};
use crate::solver::{Fields, StepAt, StepNoise};

/// One step's VJP: on entry `y_bar = ∂L/∂y_{n+1}`, on exit `∂L/∂y_n`;
/// `∂L/∂p` is added to `p_bar`.
pub trait SdeStepVjp {
    /// Workspace for a state of dimension `n` under `noise`, for a problem
    /// in `interpretation`.
    fn vjp_workspace(&self, n: usize, noise: Noise, interpretation: Interpretation) -> SdeVjpWork;

    /// Whether this configuration has a step VJP for `diffusion`, probed at
    /// `(t, y, p)`: `Ok(())`, or `Err` with what is missing and what to do
    /// instead. Every solver has one except Milstein with exact
    /// derivatives on a diffusion without
    /// [`DiffusionVjp::milstein_term_vjp`] (the default).
    fn check_step_vjp<G: DiffusionVjp>(
        &self,
        _diffusion: &G,
        _t: f64,
        _y: &[f64],
        _p: &[f64],
    ) -> Result<(), String> {
        Ok(())
    }

    /// Reverses the step from `(at.t, at.y)` of size `at.h` with the
    /// increments of `noise`.
    fn sde_step_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut SdeVjpWork,
        fields: &Fields<'_, F, G>,
        at: StepAt<'_>,
        noise: &StepNoise<'_>,
        y_bar: &mut [f64],
        p_bar: &mut [f64],
    );
}

/// Workspace of [`SdeStepVjp`].
#[derive(Debug, Clone)]
pub struct SdeVjpWork {
    noise: Noise,
    n: usize,
    a: Vec<f64>,
    b: Vec<f64>,
    c: Vec<f64>,
    vg: Vec<f64>,
    g: Vec<f64>,
    stages: Vec<f64>,
    /// Per Brownian component: the iterated-integral factors of the step.
    chi: Vec<f64>,
    ito: bool,
}

impl SdeVjpWork {
    fn new(n: usize, noise: Noise, stage_vectors: usize, interpretation: Interpretation) -> Self {
        SdeVjpWork {
            noise,
            n,
            a: vec![0.0; n],
            b: vec![0.0; n],
            c: vec![0.0; n],
            vg: vec![0.0; noise.diffusion_len(n)],
            g: vec![0.0; noise.diffusion_len(n)],
            stages: vec![0.0; stage_vectors * n],
            chi: vec![0.0; 4 * noise.brownian_dim(n)],
            ito: interpretation == Interpretation::Ito,
        }
    }

    /// `vg = scale · v ⊗ ΔW` in the shape of `g`.
    fn outer(&mut self, v: &[f64], dw: &[f64], scale: f64) {
        let n = self.n;
        match self.noise {
            Noise::Scalar => (0..n).for_each(|i| self.vg[i] = scale * v[i] * dw[0]),
            Noise::Diagonal | Noise::Additive => {
                (0..n).for_each(|i| self.vg[i] = scale * v[i] * dw[i])
            }
            Noise::General(m) => {
                for j in 0..m {
                    for i in 0..n {
                        self.vg[i + j * n] = scale * v[i] * dw[j];
                    }
                }
            }
        }
    }
}

impl SdeStepVjp for EulerMaruyama {
    fn vjp_workspace(&self, n: usize, noise: Noise, interp: Interpretation) -> SdeVjpWork {
        SdeVjpWork::new(n, noise, 0, interp)
    }

    /// `y' = y + h f(t, y) + G(t, y) ΔW`.
    fn sde_step_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut SdeVjpWork,
        fields: &Fields<'_, F, G>,
        at: StepAt<'_>,
        noise: &StepNoise<'_>,
        y_bar: &mut [f64],
        p_bar: &mut [f64],
    ) {
        let StepAt { t, h, y } = at;
        let (drift, diffusion, p) = (fields.drift, fields.diffusion, fields.p);
        let n = w.n;
        w.a.copy_from_slice(y_bar);
        for i in 0..n {
            w.b[i] = h * w.a[i];
        }
        drift.drift_vjp(t, y, p, &w.b, y_bar, p_bar);
        let a = std::mem::take(&mut w.a);
        w.outer(&a, noise.dw, 1.0);
        w.a = a;
        diffusion.diffusion_vjp(t, y, p, &w.vg, y_bar, p_bar);
    }
}

impl SdeStepVjp for EulerHeun {
    fn vjp_workspace(&self, n: usize, noise: Noise, interp: Interpretation) -> SdeVjpWork {
        SdeVjpWork::new(n, noise, 1, interp)
    }

    /// `ȳ = y + G(y) ΔW`, `y' = y + h f(y) + ½(G(y) + G(ȳ)) ΔW`.
    fn sde_step_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut SdeVjpWork,
        fields: &Fields<'_, F, G>,
        at: StepAt<'_>,
        noise: &StepNoise<'_>,
        y_bar: &mut [f64],
        p_bar: &mut [f64],
    ) {
        let StepAt { t, h, y } = at;
        let (drift, diffusion, p) = (fields.drift, fields.diffusion, fields.p);
        let n = w.n;
        // recompute ȳ
        diffusion.diffusion(t, y, p, &mut w.g);
        w.stages[..n].copy_from_slice(y);
        add_noise(w.noise, &w.g, noise.dw, 1.0, &mut w.stages[..n]);
        w.a.copy_from_slice(y_bar); // ∂L/∂y'
        // through G(ȳ): cotangent c of ȳ
        w.c.iter_mut().for_each(|v| *v = 0.0);
        let a = std::mem::take(&mut w.a);
        w.outer(&a, noise.dw, 0.5);
        diffusion.diffusion_vjp(t, &w.stages[..n], p, &w.vg, &mut w.c, p_bar);
        // everything at y: identity, f, G (from y' directly and through ȳ)
        for i in 0..n {
            w.b[i] = h * a[i];
        }
        drift.drift_vjp(t, y, p, &w.b, y_bar, p_bar);
        for i in 0..n {
            w.b[i] = 0.5 * a[i] + w.c[i];
            y_bar[i] += w.c[i];
        }
        let b = std::mem::take(&mut w.b);
        w.outer(&b, noise.dw, 1.0);
        w.b = b;
        diffusion.diffusion_vjp(t, y, p, &w.vg, y_bar, p_bar);
        w.a = a;
    }
}

impl SdeStepVjp for Sri {
    fn vjp_workspace(&self, n: usize, noise: Noise, interp: Interpretation) -> SdeVjpWork {
        // H0, H1, f, g per stage and their cotangents F̄, Ḡ
        SdeVjpWork::new(n, noise, 6 * self.tableau().alpha.len(), interp)
    }

    fn sde_step_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut SdeVjpWork,
        fields: &Fields<'_, F, G>,
        at: StepAt<'_>,
        noise: &StepNoise<'_>,
        y_bar: &mut [f64],
        p_bar: &mut [f64],
    ) {
        let StepAt { t, h, y } = at;
        let (drift, diffusion, p) = (fields.drift, fields.diffusion, fields.p);
        let tab = self.tableau();
        let (n, s) = (w.n, tab.alpha.len());
        let sqh = h.abs().sqrt();
        let m = noise.dw.len();
        let chi = &mut w.chi;
        for j in 0..m {
            let dw = noise.dw[j];
            chi[4 * j] = dw;
            chi[4 * j + 1] = 0.5 * (dw * dw - h) / sqh;
            chi[4 * j + 2] = 0.5 * dw + noise.levy_h[j];
            chi[4 * j + 3] = (dw * dw * dw - 3.0 * h * dw) / (6.0 * h);
        }
        let (h0, rest) = w.stages.split_at_mut(s * n);
        let (h1, rest) = rest.split_at_mut(s * n);
        let (fs, rest) = rest.split_at_mut(s * n);
        let (gs, rest) = rest.split_at_mut(s * n);
        let (fb, gb) = rest.split_at_mut(s * n);
        let chi = &w.chi;
        // forward: stages
        for i in 0..s {
            for k in 0..n {
                let d = driver(w.noise, k);
                let (mut a0, mut b0, mut a1, mut b1) = (0.0, 0.0, 0.0, 0.0);
                for j in 0..i {
                    a0 += tab.a0[i][j] * fs[j * n + k];
                    b0 += tab.b0[i][j] * gs[j * n + k];
                    a1 += tab.a1[i][j] * fs[j * n + k];
                    b1 += tab.b1[i][j] * gs[j * n + k];
                }
                h0[i * n + k] = y[k] + h * a0 + b0 * chi[4 * d + 2];
                h1[i * n + k] = y[k] + h * a1 + sqh * b1;
            }
            drift.drift(
                t + tab.c0[i] * h,
                &h0[i * n..(i + 1) * n],
                p,
                &mut fs[i * n..(i + 1) * n],
            );
            diffusion.diffusion(
                t + tab.c1[i] * h,
                &h1[i * n..(i + 1) * n],
                p,
                &mut gs[i * n..(i + 1) * n],
            );
        }
        // cotangents of f_i and g_i from the output
        for i in 0..s {
            for k in 0..n {
                let d = driver(w.noise, k);
                let ch = &chi[4 * d..4 * d + 4];
                fb[i * n + k] = h * tab.alpha[i] * y_bar[k];
                gb[i * n + k] = y_bar[k]
                    * (tab.beta1[i] * ch[0]
                        + tab.beta2[i] * ch[1]
                        + tab.beta3[i] * ch[2]
                        + tab.beta4[i] * ch[3]);
            }
        }
        // reverse through the stages
        for i in (0..s).rev() {
            w.a.iter_mut().for_each(|v| *v = 0.0);
            w.b.iter_mut().for_each(|v| *v = 0.0);
            drift.drift_vjp(
                t + tab.c0[i] * h,
                &h0[i * n..(i + 1) * n],
                p,
                &fb[i * n..(i + 1) * n],
                &mut w.a,
                p_bar,
            );
            diffusion.diffusion_vjp(
                t + tab.c1[i] * h,
                &h1[i * n..(i + 1) * n],
                p,
                &gb[i * n..(i + 1) * n],
                &mut w.b,
                p_bar,
            );
            // Λ0 = w.a (of H0_i), Λ1 = w.b (of H1_i)
            for j in 0..i {
                for k in 0..n {
                    let d = driver(w.noise, k);
                    fb[j * n + k] += h * (tab.a0[i][j] * w.a[k] + tab.a1[i][j] * w.b[k]);
                    gb[j * n + k] +=
                        tab.b0[i][j] * chi[4 * d + 2] * w.a[k] + sqh * tab.b1[i][j] * w.b[k];
                }
            }
            for k in 0..n {
                w.c[k] = w.a[k] + w.b[k];
            }
            for k in 0..n {
                y_bar[k] += w.c[k];
            }
        }
    }
}

impl SdeStepVjp for Sra {
    fn vjp_workspace(&self, n: usize, noise: Noise, interp: Interpretation) -> SdeVjpWork {
        // H0, f, g per stage and the cotangents of f and g
        SdeVjpWork::new(n, noise, 5 * self.tableau().alpha.len(), interp)
    }

    fn sde_step_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut SdeVjpWork,
        fields: &Fields<'_, F, G>,
        at: StepAt<'_>,
        noise: &StepNoise<'_>,
        y_bar: &mut [f64],
        p_bar: &mut [f64],
    ) {
        let StepAt { t, h, y } = at;
        let (drift, diffusion, p) = (fields.drift, fields.diffusion, fields.p);
        let tab = self.tableau();
        let (n, s) = (w.n, tab.alpha.len());
        for (j, c) in w.chi.iter_mut().take(noise.dw.len()).enumerate() {
            *c = 0.5 * noise.dw[j] + noise.levy_h[j];
        }
        let chi = &w.chi;
        let (h0, rest) = w.stages.split_at_mut(s * n);
        let (fs, rest) = rest.split_at_mut(s * n);
        let (gs, rest) = rest.split_at_mut(s * n);
        let (fb, gbar) = rest.split_at_mut(s * n);
        for i in 0..s {
            diffusion.diffusion(t + tab.c1[i] * h, y, p, &mut gs[i * n..(i + 1) * n]);
        }
        for i in 0..s {
            for k in 0..n {
                let d = driver(w.noise, k);
                let (mut a, mut b) = (0.0, 0.0);
                for j in 0..i {
                    a += tab.a0[i][j] * fs[j * n + k];
                    b += tab.b0[i][j] * gs[j * n + k];
                }
                h0[i * n + k] = y[k] + h * a + b * chi[d];
            }
            drift.drift(
                t + tab.c0[i] * h,
                &h0[i * n..(i + 1) * n],
                p,
                &mut fs[i * n..(i + 1) * n],
            );
        }
        // cotangents of g_i (at y): from the output and from the stages
        for i in 0..s {
            for k in 0..n {
                let d = driver(w.noise, k);
                fb[i * n + k] = h * tab.alpha[i] * y_bar[k];
                gbar[i * n + k] = y_bar[k] * (tab.beta1[i] * noise.dw[d] + tab.beta2[i] * chi[d]);
            }
        }
        for i in (0..s).rev() {
            w.a.iter_mut().for_each(|v| *v = 0.0);
            drift.drift_vjp(
                t + tab.c0[i] * h,
                &h0[i * n..(i + 1) * n],
                p,
                &fb[i * n..(i + 1) * n],
                &mut w.a,
                p_bar,
            );
            for j in 0..i {
                for k in 0..n {
                    let d = driver(w.noise, k);
                    fb[j * n + k] += h * tab.a0[i][j] * w.a[k];
                    gbar[j * n + k] += tab.b0[i][j] * chi[d] * w.a[k];
                }
            }
            for k in 0..n {
                y_bar[k] += w.a[k];
            }
        }
        for i in 0..s {
            diffusion.diffusion_vjp(
                t + tab.c1[i] * h,
                y,
                p,
                &gbar[i * n..(i + 1) * n],
                y_bar,
                p_bar,
            );
        }
    }
}

impl SdeStepVjp for Milstein {
    fn vjp_workspace(&self, n: usize, noise: Noise, interp: Interpretation) -> SdeVjpWork {
        // derivative-free: ȳ (or ȳ±), g at them, and the cotangents c±;
        // exact: nothing beyond the common vectors
        let stages = match self.derivative {
            MilsteinDerivative::DerivativeFree => 5,
            MilsteinDerivative::Exact => 0,
        };
        SdeVjpWork::new(n, noise, stages, interp)
    }

    /// Exact derivatives need [`DiffusionVjp::milstein_term_vjp`]: probed
    /// once with `w = 0` (which adds nothing).
    fn check_step_vjp<G: DiffusionVjp>(
        &self,
        diffusion: &G,
        t: f64,
        y: &[f64],
        p: &[f64],
    ) -> Result<(), String> {
        if self.derivative == MilsteinDerivative::DerivativeFree {
            return Ok(());
        }
        let (w, mut oy, mut op) = (vec![0.0; y.len()], vec![0.0; y.len()], vec![0.0; p.len()]);
        if diffusion.milstein_term_vjp(t, y, p, &w, &mut oy, &mut op) {
            Ok(())
        } else {
            Err(
                "Milstein::exact() has no step VJP for this diffusion: reversing its \
                 correction (∂g/∂y) g needs second derivatives of g, which the diffusion \
                 does not provide. Write it generically over the scalar and wrap it in \
                 Generic (exact, by hyper-dual numbers), implement \
                 DiffusionVjp::milstein_term_vjp, or use Milstein::derivative_free()"
                    .into(),
            )
        }
    }

    /// Exact derivatives: `y'_i = y_i + h f_i + g_i D_i + ½ (Lg)_i c_i` with
    /// `Lg = (∂g/∂y) g` and `c_i = D_i² − h` (Itô) or `D_i²`
    /// (Stratonovich), reversed with `Y = ∂L/∂y'` as the drift's VJP with
    /// `h Y`, the diffusion's with `Y ⊗ ΔW` and
    /// [`DiffusionVjp::milstein_term_vjp`] with `w_i = ½ Y_i c_i`.
    ///
    /// Derivative-free: Itô
    /// `y'_i = y_i + h f_i + g_i D_i + ½(D_i² − h)/√h (g_i(ȳ) − g_i(y))` with
    /// `ȳ = y + h f + √h g`; Stratonovich
    /// `y'_i = y_i + h f_i + g_i D_i + D_i²/(4√h) (g_i(y + √h g) − g_i(y − √h g))`.
    fn sde_step_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        w: &mut SdeVjpWork,
        fields: &Fields<'_, F, G>,
        at: StepAt<'_>,
        noise: &StepNoise<'_>,
        y_bar: &mut [f64],
        p_bar: &mut [f64],
    ) {
        let StepAt { t, h, y } = at;
        let (drift, diffusion, p) = (fields.drift, fields.diffusion, fields.p);
        let n = w.n;
        if self.derivative == MilsteinDerivative::Exact {
            w.b.copy_from_slice(y_bar); // Y = ∂L/∂y'
            for i in 0..n {
                let d = noise.dw[driver(w.noise, i)];
                let c = if w.ito { d * d - h } else { d * d };
                w.a[i] = h * w.b[i];
                w.c[i] = 0.5 * w.b[i] * c;
            }
            drift.drift_vjp(t, y, p, &w.a, y_bar, p_bar);
            let b = std::mem::take(&mut w.b);
            w.outer(&b, noise.dw, 1.0);
            w.b = b;
            diffusion.diffusion_vjp(t, y, p, &w.vg, y_bar, p_bar);
            let done = diffusion.milstein_term_vjp(t, y, p, &w.c, y_bar, p_bar);
            assert!(
                done,
                "Milstein::exact(): the diffusion's milstein_term_vjp declined at t = {t} \
                 after accepting the check (check_step_vjp) at the start"
            );
            return;
        }
        let sqh = h.abs().sqrt();
        let (pt_a, rest) = w.stages.split_at_mut(n);
        let (pt_b, rest) = rest.split_at_mut(n);
        let (c_a, rest) = rest.split_at_mut(n);
        let (c_b, f) = rest.split_at_mut(n);
        let f = &mut f[..n];
        diffusion.diffusion(t, y, p, &mut w.g);
        w.b.copy_from_slice(y_bar);
        let big_y = &w.b;
        c_a.iter_mut().for_each(|v| *v = 0.0);
        c_b.iter_mut().for_each(|v| *v = 0.0);
        if w.ito {
            drift.drift(t, y, p, f);
            for i in 0..n {
                pt_a[i] = y[i] + h * f[i] + sqh * w.g[i];
            }
            // cotangent of g(ȳ): Y ∘ Q
            for i in 0..n {
                let d = noise.dw[driver(w.noise, i)];
                w.vg[i] = big_y[i] * 0.5 * (d * d - h) / sqh;
            }
            diffusion.diffusion_vjp(t, pt_a, p, &w.vg, c_a, p_bar);
            // everything at y
            for i in 0..n {
                w.a[i] = h * (big_y[i] + c_a[i]);
                let d = noise.dw[driver(w.noise, i)];
                w.vg[i] = big_y[i] * d - big_y[i] * 0.5 * (d * d - h) / sqh + sqh * c_a[i];
                y_bar[i] += c_a[i];
            }
            drift.drift_vjp(t, y, p, &w.a, y_bar, p_bar);
            diffusion.diffusion_vjp(t, y, p, &w.vg, y_bar, p_bar);
        } else {
            for i in 0..n {
                pt_a[i] = y[i] + sqh * w.g[i];
                pt_b[i] = y[i] - sqh * w.g[i];
            }
            for i in 0..n {
                let d = noise.dw[driver(w.noise, i)];
                w.vg[i] = big_y[i] * d * d / (4.0 * sqh);
            }
            diffusion.diffusion_vjp(t, pt_a, p, &w.vg, c_a, p_bar);
            for v in w.vg.iter_mut() {
                *v = -*v;
            }
            diffusion.diffusion_vjp(t, pt_b, p, &w.vg, c_b, p_bar);
            for i in 0..n {
                w.a[i] = h * big_y[i];
                let d = noise.dw[driver(w.noise, i)];
                w.vg[i] = big_y[i] * d + sqh * (c_a[i] - c_b[i]);
                y_bar[i] += c_a[i] + c_b[i];
            }
            drift.drift_vjp(t, y, p, &w.a, y_bar, p_bar);
            diffusion.diffusion_vjp(t, y, p, &w.vg, y_bar, p_bar);
        }
    }
}

macro_rules! delegate_vjp {
    ($($name:ident => $inner:expr),*) => {
        $(impl SdeStepVjp for super::$name {
            fn vjp_workspace(&self, n: usize, noise: Noise, interp: Interpretation) -> SdeVjpWork {
                $inner.vjp_workspace(n, noise, interp)
            }
            fn sde_step_vjp<F: DriftVjp, G: DiffusionVjp>(
                &self,
                w: &mut SdeVjpWork,
                fields: &Fields<'_, F, G>,
                at: StepAt<'_>,
                noise: &StepNoise<'_>,
                y_bar: &mut [f64],
                p_bar: &mut [f64],
            ) {
                $inner.sde_step_vjp(w, fields, at, noise, y_bar, p_bar)
            }
        })*
    };
}
delegate_vjp!(
    Sriw1 => Sri::new(&super::SRIW1),
    Sosri => Sri::new(&super::SOSRI),
    Sra1 => Sra::new(&super::SRA1),
    Sra3 => Sra::new(&super::SRA3)
);
