//! The generators behind sdeflow's Brownian paths.
//!
//! - Counter-based normals ([`normals`], [`NormalStream`]): the `k`-th
//!   standard normal of a key is a pure function of `(key, k)`, which is what
//!   a Brownian tree needs (every node draws from its own key, whatever order
//!   it is visited in). Uniform 64-bit words come from the SplitMix64
//!   finaliser applied to `key + k·φ` (Steele, Lea, Flood, "Fast splittable
//!   pseudorandom number generators", OOPSLA 2014); normals from them by the
//!   ziggurat method (Marsaglia and Tsang, "The ziggurat method for
//!   generating random variables", J. Stat. Softw. 5(8), 2000), as
//!   implemented by `rand_distr::StandardNormal` (Doornik's variant, 256
//!   layers). The ziggurat takes one word for ~99% of normals and has no
//!   `ln`/`sqrt`/`sin_cos` on that path, unlike the Box–Muller transform the
//!   generator used before (the `sde_report` bench times both).
//! - [`IncrementRng`]: the sequential generator of the fixed-step
//!   [`super::Increments`] driver, Xoshiro256++ (Blackman and Vigna,
//!   "Scrambled linear pseudorandom number generators", ACM TOMS 47(4),
//!   2021) seeded by `SeedableRng::seed_from_u64(seed)`, with the same
//!   ziggurat normals: the fastest well-kept pieces, and what the benches'
//!   floor loop uses.
//!
//! Both are reproducible: a path depends only on the seed and on the
//! versions of `rand` (0.10) and `rand_distr` (0.6) pinned by this crate,
//! whose value-stability policy keeps outputs fixed within a minor version.

use std::convert::Infallible;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{SeedableRng, TryRng};
use rand_distr::{Distribution, StandardNormal};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function.
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A key derived from a parent key and a child index.
#[inline]
pub fn derive(key: u64, child: u64) -> u64 {
    mix(key ^ mix(child.wrapping_add(1).wrapping_mul(GOLDEN)))
}

/// The counter-based word source: the `k`-th word of `key` is
/// `mix(key + k·φ)`; the ziggurat reads words in order from `k = 0`.
#[derive(Debug, Clone)]
struct Counter {
    key: u64,
    k: u64,
}

impl TryRng for Counter {
    type Error = Infallible;

    #[inline]
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.try_next_u64()? >> 32) as u32)
    }

    #[inline]
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let w = mix(self.key.wrapping_add(self.k.wrapping_mul(GOLDEN)));
        self.k = self.k.wrapping_add(1);
        Ok(w)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let w = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
        Ok(())
    }
}

/// Fills `out` with independent standard normals determined by `key`:
/// `out[k]` is a pure function of `(key, k)` (the same whatever the length
/// of `out` beyond `k`).
pub fn normals(key: u64, out: &mut [f64]) {
    let mut words = Counter { key, k: 0 };
    for o in out.iter_mut() {
        *o = StandardNormal.sample(&mut words);
    }
}

/// A sequential stream of counter-based normals: the `k`-th draw of
/// `NormalStream::new(seed)` is a pure function of `(seed, k)` (fixed-grid
/// sampling, weight initialisation).
#[derive(Debug, Clone)]
pub struct NormalStream {
    words: Counter,
}

impl NormalStream {
    /// A stream seeded by `seed`.
    pub fn new(seed: u64) -> Self {
        NormalStream {
            words: Counter {
                key: derive(seed, 0x5EED),
                k: 0,
            },
        }
    }

    /// The next standard normal.
    #[inline]
    pub fn next_normal(&mut self) -> f64 {
        StandardNormal.sample(&mut self.words)
    }
}

/// The sequential normal generator of fixed-step increments
/// ([`super::BrownianIncrements`]): Xoshiro256++ seeded by
/// `Xoshiro256PlusPlus::seed_from_u64(seed)`, ziggurat normals
/// (`rand_distr::StandardNormal`). Each seed gives an independent stream
/// (the seed is expanded by SplitMix64), which is how `Ensemble` splits it
/// per trajectory.
#[derive(Debug, Clone)]
pub struct IncrementRng {
    rng: Xoshiro256PlusPlus,
}

impl IncrementRng {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        IncrementRng {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }

    /// The next standard normal.
    #[inline]
    pub fn next_normal(&mut self) -> f64 {
        StandardNormal.sample(&mut self.rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normals_have_unit_moments() {
        // 2e5 draws: standard error of the mean 2.2e-3, of the variance 3.2e-3;
        // bounds are 5 standard errors
        let mut s = NormalStream::new(42);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| s.next_normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let kurt = xs.iter().map(|x| x.powi(4)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 5.0 * 2.3e-3, "mean {mean}");
        assert!((var - 1.0).abs() < 5.0 * 3.2e-3, "var {var}");
        // E x^4 = 3, sd of the estimate sqrt(96/n) = 0.022
        assert!((kurt - 3.0).abs() < 5.0 * 0.022, "fourth moment {kurt}");
    }

    /// Mean, variance, fourth moment and the tail fractions beyond 2 and 3.5
    /// of `n` draws, each against 5 standard errors of its estimate.
    fn check_standard_normal(mut draw: impl FnMut() -> f64, what: &str) {
        let n = 400_000usize;
        let xs: Vec<f64> = (0..n).map(|_| draw()).collect();
        let nf = n as f64;
        let mean = xs.iter().sum::<f64>() / nf;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (nf - 1.0);
        let kurt = xs.iter().map(|x| x.powi(4)).sum::<f64>() / nf;
        // standard errors: mean 1/sqrt(n), variance sqrt(2/n), E x^4 sqrt(96/n)
        assert!(mean.abs() < 5.0 / nf.sqrt(), "{what}: mean {mean}");
        assert!(
            (var - 1.0).abs() < 5.0 * (2.0 / nf).sqrt(),
            "{what}: var {var}"
        );
        assert!(
            (kurt - 3.0).abs() < 5.0 * (96.0 / nf).sqrt(),
            "{what}: E x^4 {kurt}"
        );
        // P(|x| > 2) = 0.0455003, P(|x| > 3.5) = 4.6525e-4 (the ziggurat's
        // base layer and tail sampler); binomial standard errors
        for (c, p) in [(2.0, 0.04550026), (3.5, 4.6525e-4)] {
            let frac = xs.iter().filter(|x| x.abs() > c).count() as f64 / nf;
            let se = (p * (1.0 - p) / nf).sqrt();
            assert!(
                (frac - p).abs() < 5.0 * se,
                "{what}: P(|x| > {c}) = {frac}, expected {p}"
            );
        }
    }

    #[test]
    fn all_generators_give_standard_normals() {
        let mut s = NormalStream::new(7);
        check_standard_normal(|| s.next_normal(), "NormalStream");
        let mut r = IncrementRng::new(7);
        check_standard_normal(|| r.next_normal(), "IncrementRng");
        let mut keyed = vec![0.0; 400_000];
        normals(derive(7, 1), &mut keyed);
        let mut it = keyed.into_iter();
        check_standard_normal(|| it.next().unwrap_or(f64::NAN), "normals(key)");
    }

    #[test]
    fn increment_streams_are_reproducible_and_differ_by_seed() {
        let draw = |seed| {
            let mut r = IncrementRng::new(seed);
            (0..8).map(|_| r.next_normal()).collect::<Vec<_>>()
        };
        assert_eq!(draw(11), draw(11));
        assert_ne!(draw(11), draw(12));
    }

    #[test]
    fn keyed_normals_are_pure_functions_of_the_key() {
        let mut a = [0.0; 5];
        let mut b = [0.0; 5];
        normals(derive(7, 3), &mut a);
        normals(derive(7, 3), &mut b);
        assert_eq!(a, b);
        normals(derive(7, 4), &mut b);
        assert_ne!(a, b);
        // out[k] does not depend on how many normals are asked after it
        let mut long = [0.0; 64];
        normals(derive(7, 3), &mut long);
        assert_eq!(&long[..5], &a[..]);
    }
}
