//! Davies–Harte fBM sampling report (issue #15). Plain `fn main` (no
//! criterion): `cargo bench --bench fbm` (release build); without `--bench`
//! (`cargo test --benches`) every case runs once, untimed.
//!
//! For `N = 2^10 … 2^18` points and `H ∈ {0.3, 0.7}`, the time per fBM
//! point of [`DaviesHarte::sample_pair`] (two paths per call, the embedding
//! built once before timing) next to a hand-written minimal Davies–Harte
//! loop, the floor: the same square-root eigenvalues precomputed, one
//! in-place rustfft of the same length with its scratch kept, Xoshiro256++
//! (`rand::rngs::Xoshiro256PlusPlus`) and ziggurat normals
//! (`rand_distr::StandardNormal`) straight into the complex buffer, the
//! cumulative sums of the real and imaginary parts. The two are timed in
//! alternating batches (`common/timing.rs`, `measure_pair`); the ratio is
//! the median of the per-pair ratios.
//!
//! The cost grows as `N log N`: the last columns are the time per point
//! divided by `log2 N` and the slope of log(time per path) against
//! log N fitted over the table (1 for linear, a little above for `N log N`).
//!
//! The comparison with stochastic-rs (the fastest Rust fBM sampler on
//! crates.io) lives outside the workspace, in
//! `benches/external/fbm_reference/`, so that the workspace never compiles
//! it.

use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand_distr::{Distribution, StandardNormal};
use rustfft::num_complex::Complex64;
use rustfft::{Fft, FftPlanner};
use sdeflow::fractional::{DaviesHarte, fgn_autocovariance};

#[path = "common/timing.rs"]
mod timing;
use timing::{Timer, measure_pair};

/// The floor: a minimal Davies–Harte pair sampler.
struct HandDaviesHarte {
    n: usize,
    sqrt_lambda: Vec<f64>,
    fft: Arc<dyn Fft<f64>>,
    buf: Vec<Complex64>,
    scratch: Vec<Complex64>,
    rng: Xoshiro256PlusPlus,
}

impl HandDaviesHarte {
    fn new(hurst: f64, n: usize, dt: f64) -> Self {
        let m = n.next_power_of_two();
        let len = 2 * m;
        let mut c: Vec<Complex64> = (0..len)
            .map(|j| Complex64::new(fgn_autocovariance(hurst, j.min(len - j)), 0.0))
            .collect();
        let fft = FftPlanner::new().plan_fft_forward(len);
        fft.process(&mut c);
        let s = dt.powf(hurst) / (len as f64).sqrt();
        HandDaviesHarte {
            n,
            sqrt_lambda: c.iter().map(|v| v.re.max(0.0).sqrt() * s).collect(),
            scratch: vec![Complex64::new(0.0, 0.0); fft.get_inplace_scratch_len()],
            buf: vec![Complex64::new(0.0, 0.0); len],
            fft,
            rng: Xoshiro256PlusPlus::seed_from_u64(1),
        }
    }

    fn sample_pair(&mut self, a: &mut [f64], b: &mut [f64]) {
        for (v, &s) in self.buf.iter_mut().zip(&self.sqrt_lambda) {
            let re: f64 = StandardNormal.sample(&mut self.rng);
            let im: f64 = StandardNormal.sample(&mut self.rng);
            *v = Complex64::new(re * s, im * s);
        }
        self.fft
            .process_with_scratch(&mut self.buf, &mut self.scratch);
        let (mut sa, mut sb) = (0.0, 0.0);
        for ((x, y), v) in a.iter_mut().zip(b.iter_mut()).zip(&self.buf[..self.n]) {
            sa += v.re;
            sb += v.im;
            *x = sa;
            *y = sb;
        }
    }
}

/// Least-squares slope of `y` against `x`.
fn slope(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    sxy / sxx
}

fn main() {
    let cfg = Timer::from_args(Duration::from_millis(400), 7);
    if cfg.quick {
        println!("fbm: test mode (no `--bench`): every case runs once, times are single runs");
    }
    println!("== Davies–Harte, two fBM paths per call: sdeflow vs a hand-written loop ==");
    println!(
        "{:>4} {:>8} {:>9} {:>9} {:>7} {:>12} {:>10}",
        "H", "N", "sdeflow", "hand", "ratio", "sdeflow/lgN", "setup ms"
    );
    println!("              (ns per fBM point; setup: the embedding, once per grid)");
    for hurst in [0.3, 0.7] {
        let (mut log_n, mut log_t) = (Vec::new(), Vec::new());
        for k in 10..=18u32 {
            let n = 1usize << k;
            let dt = 1.0 / n as f64;
            let start = std::time::Instant::now();
            let mut dh = DaviesHarte::new(hurst, n, dt).expect("embedding is positive");
            let setup = start.elapsed().as_secs_f64();
            let mut hand = HandDaviesHarte::new(hurst, n, dt);
            let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
            let (mut c, mut d) = (vec![0.0; n], vec![0.0; n]);
            let mut seed = 0u64;
            let (ts, th, ratio) = measure_pair(
                || {
                    seed += 1;
                    dh.sample_pair(seed, &mut a, &mut b).expect("lengths match");
                    a[n - 1] + b[n - 1]
                },
                || {
                    hand.sample_pair(&mut c, &mut d);
                    c[n - 1] + d[n - 1]
                },
                &cfg,
            );
            let per_point = |t: f64| t / (2 * n) as f64 * 1e9;
            println!(
                "{:>4} {:>8} {:>9.2} {:>9.2} {:>7.3} {:>12.3} {:>10.2}",
                hurst,
                format!("2^{k}"),
                per_point(ts.median),
                per_point(th.median),
                ratio,
                per_point(ts.median) / k as f64,
                setup * 1e3
            );
            log_n.push((n as f64).ln());
            log_t.push(ts.median.ln());
        }
        println!(
            "     H = {hurst}: slope of log(time per call) vs log N over 2^10..2^18 = {:.3}",
            slope(&log_n, &log_t)
        );
    }
}
