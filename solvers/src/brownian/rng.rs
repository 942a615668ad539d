//! A counter-based normal generator: the `k`-th standard normal of a key is a
//! pure function of `(key, k)`, which is what a Brownian tree needs (every
//! node draws from its own key, whatever order it is visited in).
//!
//! Uniforms from the SplitMix64 finaliser (Steele, Lea, Flood, "Fast
//! splittable pseudorandom number generators", OOPSLA 2014), normals by the
//! Box–Muller transform. Written out here (a dozen lines) so that paths are
//! bit-identical across versions of the `rand` crates.

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

/// Uniform in (0, 1), never 0 (53 random bits).
#[inline]
fn uniform(key: u64, k: u64) -> f64 {
    let bits = mix(key.wrapping_add(k.wrapping_mul(GOLDEN))) >> 11;
    (bits as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// Fills `out` with independent standard normals determined by `key`.
pub fn normals(key: u64, out: &mut [f64]) {
    let mut k = 0u64;
    let mut chunks = out.chunks_exact_mut(2);
    for pair in &mut chunks {
        let (a, b) = box_muller(uniform(key, k), uniform(key, k + 1));
        pair[0] = a;
        pair[1] = b;
        k += 2;
    }
    if let [last] = chunks.into_remainder() {
        *last = box_muller(uniform(key, k), uniform(key, k + 1)).0;
    }
}

#[inline]
fn box_muller(u1: f64, u2: f64) -> (f64, f64) {
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}

/// A sequential stream of normals (for fixed-step sampling).
#[derive(Debug, Clone)]
pub struct NormalStream {
    key: u64,
    counter: u64,
    spare: Option<f64>,
}

impl NormalStream {
    /// A stream seeded by `seed`.
    pub fn new(seed: u64) -> Self {
        NormalStream {
            key: derive(seed, 0x5EED),
            counter: 0,
            spare: None,
        }
    }

    /// The next standard normal.
    #[inline]
    pub fn next_normal(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let (a, b) = box_muller(
            uniform(self.key, self.counter),
            uniform(self.key, self.counter + 1),
        );
        self.counter += 2;
        self.spare = Some(b);
        a
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

    #[test]
    fn keyed_normals_are_pure_functions_of_the_key() {
        let mut a = [0.0; 5];
        let mut b = [0.0; 5];
        normals(derive(7, 3), &mut a);
        normals(derive(7, 3), &mut b);
        assert_eq!(a, b);
        normals(derive(7, 4), &mut b);
        assert_ne!(a, b);
    }
}
