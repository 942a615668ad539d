//! The Kuramoto–Sivashinsky equation `u_t = −u_xx − u_xxxx − ½(u²)_x` on
//! the periodic domain `[0, 32π]` in Fourier pseudo-spectral form, the
//! setup of Kassam & Trefethen, "Fourth-order time-stepping for stiff PDEs",
//! SIAM J. Sci. Comput. 26 (2005) (`../shared/reference/exponential.md` §2):
//! `u0 = cos(x/16)(1 + sin(x/16))`, `N` grid points, wavenumbers
//! `k = [0, 1, …, N/2 − 1, 0, −N/2 + 1, …, −1]/16` (the Nyquist mode's
//! wavenumber set to 0, as in their code), and for the Fourier coefficients
//! `v = fft(u)`
//!
//! `v' = L v + g · fft(real(ifft(v))²)`, `L = k² − k⁴`, `g = −i k/2`.
//!
//! `L` is real, so the state is the `N` complex coefficients stored as real
//! and imaginary parts interleaved (`y[2j] = Re v_j`, `y[2j + 1] = Im v_j`,
//! `2N` reals) and the linear part is the real diagonal with every `L_j`
//! twice. No dealiasing (as in Kassam–Trefethen; the product is not
//! truncated). The nonlinear term runs through rustfft with its plans and
//! buffers made once: an evaluation allocates nothing.

#![allow(dead_code)]

use std::cell::RefCell;
use std::f64::consts::PI;
use std::sync::Arc;

use rustfft::num_complex::Complex64;
use rustfft::{Fft, FftPlanner};
use sdeflow::expint::{Diagonal, Semilinear};
use sdeflow::prelude::*;

/// The length of the periodic domain, `32π`.
pub const KS_LENGTH: f64 = 32.0 * PI;
/// The final time of Kassam–Trefethen's run.
pub const KS_T1: f64 = 150.0;
/// Their step.
pub const KS_H: f64 = 0.25;

/// The wavenumbers of `n` points on `[0, 32π]` (Nyquist set to 0).
pub fn ks_wavenumbers(n: usize) -> Vec<f64> {
    (0..n)
        .map(|j| {
            if j < n / 2 {
                j as f64 / 16.0
            } else if j == n / 2 {
                0.0
            } else {
                (j as f64 - n as f64) / 16.0
            }
        })
        .collect()
}

/// The eigenvalues `k² − k⁴` of the linear part, one per Fourier mode.
pub fn ks_linear(n: usize) -> Vec<f64> {
    ks_wavenumbers(n)
        .iter()
        .map(|&k| k * k - k.powi(4))
        .collect()
}

/// FFT plans and buffers, shared by the nonlinear term and the conversions.
pub struct Spectral {
    n: usize,
    fwd: Arc<dyn Fft<f64>>,
    inv: Arc<dyn Fft<f64>>,
}

impl Spectral {
    /// Plans for `n` points.
    pub fn new(n: usize) -> Self {
        let mut planner = FftPlanner::new();
        Spectral {
            n,
            fwd: planner.plan_fft_forward(n),
            inv: planner.plan_fft_inverse(n),
        }
    }

    /// The scratch length the plans need.
    pub fn scratch_len(&self) -> usize {
        self.fwd
            .get_inplace_scratch_len()
            .max(self.inv.get_inplace_scratch_len())
    }

    /// `fft(u)` of real grid values, as interleaved real and imaginary parts.
    pub fn to_state(&self, u: &[f64]) -> Vec<f64> {
        let mut c: Vec<Complex64> = u.iter().map(|&x| Complex64::new(x, 0.0)).collect();
        self.fwd.process(&mut c);
        c.iter().flat_map(|z| [z.re, z.im]).collect()
    }

    /// `real(ifft(v))` of an interleaved state, written into `u`.
    pub fn to_grid(&self, y: &[f64], u: &mut [f64]) {
        let mut c: Vec<Complex64> = y
            .chunks_exact(2)
            .map(|p| Complex64::new(p[0], p[1]))
            .collect();
        self.inv.process(&mut c);
        for (o, z) in u.iter_mut().zip(&c) {
            *o = z.re / self.n as f64;
        }
    }
}

/// The nonlinear term `g · fft(real(ifft(v))²)` on an interleaved state.
pub struct KsNonlinear {
    spectral: Spectral,
    /// `−k/2` per mode (`g = i · (−k/2)`).
    half_k: Vec<f64>,
    /// The complex work buffer and the FFT scratch.
    buf: RefCell<(Vec<Complex64>, Vec<Complex64>)>,
}

impl KsNonlinear {
    /// The nonlinear term on `n` points.
    pub fn new(n: usize) -> Self {
        let spectral = Spectral::new(n);
        let scratch = vec![Complex64::new(0.0, 0.0); spectral.scratch_len()];
        KsNonlinear {
            half_k: ks_wavenumbers(n).iter().map(|k| -0.5 * k).collect(),
            buf: RefCell::new((vec![Complex64::new(0.0, 0.0); n], scratch)),
            spectral,
        }
    }
}

impl Drift for KsNonlinear {
    fn drift(&self, _t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]) {
        let mut guard = self.buf.borrow_mut();
        let (c, scratch) = &mut *guard;
        let n = self.spectral.n;
        let (pairs, _) = y.as_chunks::<2>();
        for (z, p) in c.iter_mut().zip(pairs) {
            *z = Complex64::new(p[0], p[1]);
        }
        self.spectral.inv.process_with_scratch(c, scratch);
        // u = real(ifft(v)) (rustfft does not normalise): u² with 1/n²
        let s = 1.0 / (n as f64 * n as f64);
        for z in c.iter_mut() {
            *z = Complex64::new(z.re * z.re * s, 0.0);
        }
        self.spectral.fwd.process_with_scratch(c, scratch);
        // i·(−k/2)·(a + ib) = (k/2) b − i (k/2) a
        let (out, _) = dy.as_chunks_mut::<2>();
        for ((o, z), &g) in out.iter_mut().zip(c.iter()).zip(&self.half_k) {
            *o = [-g * z.im, g * z.re];
        }
    }
}

/// The drift `L v + N(v)` of Kuramoto–Sivashinsky on `n` points.
pub type KsField = Semilinear<Diagonal, KsNonlinear>;

/// The initial grid values `cos(x/16)(1 + sin(x/16))`, `x_j = 32π j/n`.
pub fn ks_initial_grid(n: usize) -> Vec<f64> {
    (0..n)
        .map(|j| {
            let x = KS_LENGTH * j as f64 / n as f64;
            (x / 16.0).cos() * (1.0 + (x / 16.0).sin())
        })
        .collect()
}

/// Kuramoto–Sivashinsky on `n` points (even) over `[0, t1]`, in the
/// interleaved Fourier state (module docs).
pub fn kuramoto_sivashinsky(n: usize, t1: f64) -> Problem<KsField> {
    let lin: Vec<f64> = ks_linear(n).iter().flat_map(|&l| [l, l]).collect();
    let y0 = Spectral::new(n).to_state(&ks_initial_grid(n));
    Problem::ode_field(
        Semilinear::new(Diagonal(lin), KsNonlinear::new(n)),
        y0,
        (0.0, t1),
    )
}
