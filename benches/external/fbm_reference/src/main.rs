//! sdeflow's cached Davies–Harte sampler against stochastic-rs, the fastest
//! Rust fBM sampler on crates.io (issue #15), in one binary: ns per fBM
//! point for `N = 2^10 … 2^18`, single thread, `f64`.
//!
//! stochastic-rs (3.0.0-rc.4, `stochastic-rs-stochastic`) is timed through
//! its three CPU paths, each with its FFT plan and eigenvalues cached in
//! the process object:
//! - `fbm`: `Fbm::sampler().sample_into(out)`, one fBM path per call;
//! - `fgn`: `Fgn::sampler().sample_into(out)`, one fGn path per call, plus
//!   the cumulative sum written here;
//! - `pair`: `Fgn::sample_pair_with_seed`, two fGn paths per FFT, plus the
//!   cumulative sums.
//!
//! sdeflow is timed through `DaviesHarte::sample` (one path per call) and
//! `DaviesHarte::sample_pair` (two). Both libraries embed the `N`
//! increments in a circulant of length `2·N.next_power_of_two()`.
//! The cases are timed in rounds of alternating batches
//! (`benches/common/timing.rs`, `measure_many`); the ratio is sdeflow's
//! fastest over stochastic-rs's fastest. Run with
//! `RAYON_NUM_THREADS=1 cargo run --release` from this directory.

use std::time::Duration;

use ndarray::Array1;
use sdeflow_solvers::fractional::DaviesHarte;
use stochastic_rs_stochastic::noise::fgn::Fgn;
use stochastic_rs_stochastic::process::fbm::Fbm;
use stochastic_rs_stochastic::simd_rng::{Deterministic, Unseeded};
use stochastic_rs_stochastic::traits::{PathSampler, ProcessExt};

#[path = "../../../common/timing.rs"]
mod timing;
use timing::{Timer, measure_many};

fn cumsum(out: &mut [f64], inc: &[f64]) {
    let mut s = 0.0;
    for (o, &x) in out.iter_mut().zip(inc) {
        s += x;
        *o = s;
    }
}

fn main() {
    let cfg = Timer {
        quick: std::env::args().any(|a| a == "--quick"),
        budget: Duration::from_millis(400),
        batch: Duration::from_millis(2),
        min_batches: 7,
    };
    let hurst = std::env::var("FBM_HURST")
        .ok()
        .and_then(|h| h.parse().ok())
        .unwrap_or(0.7);
    println!("fBM, H = {hurst}, ns per point (median over batches), single thread");
    println!(
        "{:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "N", "srs fbm", "srs fgn", "srs pair", "sdf one", "sdf pair", "ratio"
    );
    for k in 10..=18u32 {
        let n = 1usize << k;
        let dt = 1.0 / n as f64;
        // stochastic-rs: Fbm with n points has n − 1 increments; with n + 1
        // points it has n, like the others here.
        let fbm = Fbm::<f64, Deterministic>::new(hurst, n + 1, Some(1.0), Deterministic::new(1));
        let mut fbm_sampler = fbm.sampler();
        let mut fbm_out = Array1::<f64>::zeros(n + 1);
        let fgn = Fgn::<f64, Deterministic>::new(hurst, n, Some(1.0), Deterministic::new(2));
        let mut fgn_sampler = fgn.sampler();
        let mut fgn_out = Array1::<f64>::zeros(n);
        let pair_fgn = Fgn::<f64, Unseeded>::new(hurst, n, Some(1.0), Unseeded);
        let mut dh = DaviesHarte::new(hurst, n, dt).expect("the embedding is positive");
        let mut dh_one = dh.clone();
        let [mut a, mut b, mut c, mut d, mut e, mut f]: [Vec<f64>; 6] =
            std::array::from_fn(|_| vec![0.0; n]);
        let (mut s1, mut s2, mut s3) = (0u64, 0u64, 0u64);
        let mut cases: Vec<Box<dyn FnMut() + '_>> = vec![
            Box::new(|| fbm_sampler.sample_into(&mut fbm_out)),
            Box::new(|| {
                fgn_sampler.sample_into(&mut fgn_out);
                cumsum(&mut a, fgn_out.as_slice().expect("contiguous"));
            }),
            Box::new(|| {
                s1 += 1;
                let (x, y) = pair_fgn.sample_pair_with_seed(s1);
                cumsum(&mut b, x.as_slice().expect("contiguous"));
                cumsum(&mut c, y.as_slice().expect("contiguous"));
            }),
            Box::new(|| {
                s2 += 1;
                dh_one.sample(s2, &mut d).expect("lengths match");
            }),
            Box::new(|| {
                s3 += 1;
                dh.sample_pair(s3, &mut e, &mut f).expect("lengths match");
            }),
        ];
        let t = measure_many(&mut cases, &cfg);
        drop(cases);
        let per = [1.0, 1.0, 2.0, 1.0, 2.0];
        let ns: Vec<f64> = t
            .iter()
            .zip(per)
            .map(|(t, p)| t.median / (p * n as f64) * 1e9)
            .collect();
        let srs = ns[0].min(ns[1]).min(ns[2]);
        let sdf = ns[3].min(ns[4]);
        println!(
            "{:>6} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7.3}",
            format!("2^{k}"),
            ns[0],
            ns[1],
            ns[2],
            ns[3],
            ns[4],
            sdf / srs
        );
    }
}
