//! The joint Gaussian increment of a Brownian motion, its space–time Lévy
//! area and `K` exact Ornstein–Uhlenbeck convolutions over an interval,
//! and its exact bridge (`../shared/reference/fbm.md` §3.4).
//!
//! Over an interval `[a, b]` of length `T` the state is
//! `X = (ΔW, H̄, ξ_1, …, ξ_K)` with `ΔW = W_b − W_a`,
//! `H̄ = ∫_a^b (W_u − W_a) du − (T/2) ΔW = ∫_a^b ((b − u) − T/2) dW_u`
//! (`T` times the space–time Lévy area) and
//! `ξ_k = ∫_a^b e^{−γ_k (b − u)} dW_u`: a centred Gaussian vector, as all
//! are Wiener integrals of one `W`, with covariance `Σ(T)`:
//!
//! ```text
//! Var ΔW = T, Var H̄ = T³/12, Cov(ΔW, H̄) = 0,
//! Cov(ΔW, ξ_k) = (1 − e^{−γ_k T})/γ_k,
//! Cov(ξ_i, ξ_j) = (1 − e^{−(γ_i+γ_j) T})/(γ_i + γ_j),
//! Cov(H̄, ξ_k) = ∫_0^T (v − T/2) e^{−γ_k v} dv = T² f(γ_k T),
//! f(x) = (1 − e^{−x}(1 + x))/x² − (1 − e^{−x})/(2x)
//!      = Σ_{n≥1} (−x)ⁿ n / (2 n! (n+1)(n+2))   (used for x < 1).
//! ```
//!
//! Adjacent intervals `[a, m]` (length `l`, state `X_L`) and `[m, b]`
//! (length `ρ`, `X_R`, independent of `X_L`) compose linearly,
//! `X = M X_L + N X_R`: `ΔW = ΔW_L + ΔW_R`,
//! `H̄ = H̄_L + H̄_R + ½(ρ ΔW_L − l ΔW_R)` (Chen's relation, as in
//! `brownian/bridge.rs`), `ξ_k = e^{−γ_k ρ} ξ_L,k + ξ_R,k` — nothing of the
//! size of the whole is subtracted, so small intervals keep their relative
//! precision.
//!
//! The bridge: given `X`, `X_L` is Gaussian with mean `G X`,
//! `G = Σ(l) Mᵀ Σ(T)⁺`, and covariance
//! `P = (I − GM) Σ(l) (I − GM)ᵀ + (GN) Σ(ρ) (GN)ᵀ` (the Joseph form: the
//! covariance of Matheron's update `Z_L − G(M Z_L + N Z_R)`, positive
//! semidefinite by construction whatever the rounding); `X_R` is then the
//! remainder `N⁻¹(X − M X_L)`, so `X_L` and `X_R` always compose back to
//! `X` exactly, whatever the rounding.
//!
//! Precision: `Σ(T)` is nearly singular (all `ξ_k` approach
//! `ΔW − γ_k(H̄ + TΔW/2)` as `γ_k T → 0`, and modes with close rates are
//! nearly collinear). Its pseudo-inverse and the square root of `P` are
//! taken by a cyclic Jacobi eigen-decomposition after diagonal scaling,
//! dropping the directions whose scaled variance is below `1e-10` of the
//! largest. Keeping smaller ones does not help: their eigenvalues are
//! known only to `~1e-16` absolute, so `G` would carry relative errors of
//! `1e-16/λ` that its large entries turn into visible errors of the
//! variances (tried: with `1e-13`, a mode with `γh = 40` came out 20% too
//! variable). With `1e-10` the gains stay moderate, and the law of `X_L`
//! is exact up to the dropped directions: what is not conditioned on is a
//! combination of `X` with at most `1e-10` of its variance, so the
//! covariances of `(X_L, X)` are off by at most `~1e-5` of their scale
//! (measured: `1e-6`; the tests bound `1e-5` and `1e-6`), and only in
//! combinations that are that small. All of it runs on preallocated
//! buffers (no allocation per query).

/// Scaled eigenvalues below this fraction of the largest are dropped (see
/// the module docs).
const CUTOFF: f64 = 1e-10;

/// `f(x)` of the module docs: `Cov(H̄, ξ) / T²` at `x = γT`.
pub(crate) fn levy_xi(x: f64) -> f64 {
    if x < 1.0 {
        // Σ_{n≥1} (−x)ⁿ n / (2 n! (n+1)(n+2)); terms fall by x/n
        let mut pow = 1.0; // (−x)ⁿ / n!
        let mut sum = 0.0;
        for n in 1..40 {
            let nf = n as f64;
            pow *= -x / nf;
            let term = pow * nf / (2.0 * (nf + 1.0) * (nf + 2.0));
            sum += term;
            if term.abs() < 1e-18 * sum.abs() {
                break;
            }
        }
        sum
    } else {
        let e = (-x).exp();
        (1.0 - e * (1.0 + x)) / (x * x) - (1.0 - e) / (2.0 * x)
    }
}

/// Writes `Σ(len)` (row-major, `d = K + 2`) for the rates `g`.
pub(crate) fn sigma(len: f64, g: &[f64], out: &mut [f64]) {
    let d = g.len() + 2;
    out[..d * d].fill(0.0);
    out[0] = len;
    out[d + 1] = len * len * len / 12.0;
    for (i, &gi) in g.iter().enumerate() {
        let w = -(-gi * len).exp_m1() / gi;
        let h = len * len * levy_xi(gi * len);
        let r = 2 + i;
        out[r] = w;
        out[r * d] = w;
        out[d + r] = h;
        out[r * d + 1] = h;
        for (j, &gj) in g.iter().enumerate().skip(i) {
            let s = gi + gj;
            let v = -(-s * len).exp_m1() / s;
            out[r * d + 2 + j] = v;
            out[(2 + j) * d + r] = v;
        }
    }
}

/// Cyclic Jacobi eigen-decomposition of the symmetric `d × d` matrix `a`
/// (row-major, destroyed: its diagonal ends as the eigenvalues);
/// eigenvectors into the columns of `v`.
pub(crate) fn jacobi_eigen(a: &mut [f64], v: &mut [f64], d: usize) {
    v[..d * d].fill(0.0);
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    for _sweep in 0..60 {
        let mut off = 0.0;
        let mut diag = 0.0;
        for p in 0..d {
            diag += a[p * d + p] * a[p * d + p];
            for q in p + 1..d {
                off += a[p * d + q] * a[p * d + q];
            }
        }
        if off <= 1e-34 * diag || off == 0.0 {
            return;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                let (app, aqq) = (a[p * d + p], a[q * d + q]);
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
}

/// `out = a b` for `d × d` row-major matrices.
fn matmul(a: &[f64], b: &[f64], out: &mut [f64], d: usize) {
    for i in 0..d {
        for j in 0..d {
            let mut acc = 0.0;
            for k in 0..d {
                acc += a[i * d + k] * b[k * d + j];
            }
            out[i * d + j] = acc;
        }
    }
}

/// `out = a b aᵀ` (`tmp` scratch).
fn sandwich(a: &[f64], b: &[f64], out: &mut [f64], tmp: &mut [f64], d: usize) {
    matmul(a, b, tmp, d);
    for i in 0..d {
        for j in 0..d {
            let mut acc = 0.0;
            for k in 0..d {
                acc += tmp[i * d + k] * a[j * d + k];
            }
            out[i * d + j] = acc;
        }
    }
}

/// Scratch for [`Workspace::split`] and [`Workspace::sqrt_psd`], sized once
/// for `d = K + 2`.
#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    d: usize,
    bufs: [Vec<f64>; 7],
    scale: Vec<f64>,
}

impl Workspace {
    pub(crate) fn new(d: usize) -> Self {
        Workspace {
            d,
            bufs: std::array::from_fn(|_| vec![0.0; d * d]),
            scale: vec![0.0; d],
        }
    }

    /// `out = a square root of the PSD matrix c` (`out outᵀ = c` up to the
    /// dropped directions), by the scaled Jacobi decomposition; `c` is
    /// consumed. `n ≤ d` is the order.
    pub(crate) fn sqrt_psd(&mut self, c: &mut [f64], out: &mut [f64], n: usize) {
        let [v, ..] = &mut self.bufs;
        for i in 0..n {
            let di = c[i * n + i];
            self.scale[i] = if di > 0.0 { di.sqrt() } else { 0.0 };
        }
        for i in 0..n {
            for j in 0..n {
                let s = self.scale[i] * self.scale[j];
                c[i * n + j] = if s > 0.0 { c[i * n + j] / s } else { 0.0 };
            }
        }
        jacobi_eigen(c, v, n);
        let max = (0..n).map(|l| c[l * n + l]).fold(0.0, f64::max);
        for l in 0..n {
            let lam = c[l * n + l];
            let r = if lam > CUTOFF * max { lam.sqrt() } else { 0.0 };
            for i in 0..n {
                out[i * n + l] = self.scale[i] * v[i * n + l] * r;
            }
        }
    }

    /// The bridge of an interval of length `l + rho` at `l`: writes the
    /// gain `G` and a square root `S` of the conditional covariance
    /// (`X_L = G X + S z`), both `d × d` row-major. `l, rho > 0`.
    pub(crate) fn split(
        &mut self,
        l: f64,
        rho: f64,
        g: &[f64],
        gain: &mut [f64],
        sqrt: &mut [f64],
    ) {
        let d = self.d;
        let [sl, sr, st, c, e, f, v] = &mut self.bufs;
        sigma(l, g, sl);
        sigma(rho, g, sr);
        sigma(l + rho, g, st);
        // pseudo-inverse of Σ(T) into st, by the scaled decomposition
        for i in 0..d {
            self.scale[i] = 1.0 / st[i * d + i].sqrt();
        }
        for i in 0..d {
            for j in 0..d {
                st[i * d + j] *= self.scale[i] * self.scale[j];
            }
        }
        jacobi_eigen(st, v, d);
        let max = (0..d).map(|k| st[k * d + k]).fold(0.0, f64::max);
        // inverse eigenvalues into e's diagonal
        for k in 0..d {
            let lam = st[k * d + k];
            e[k] = if lam > CUTOFF * max { 1.0 / lam } else { 0.0 };
        }
        for i in 0..d {
            for j in 0..d {
                let mut acc = 0.0;
                for k in 0..d {
                    acc += v[i * d + k] * e[k] * v[j * d + k];
                }
                st[i * d + j] = acc * self.scale[i] * self.scale[j];
            }
        }
        // C = Σ(l) Mᵀ: column j of C is Σ(l) times row j of M
        for i in 0..d {
            c[i * d] = sl[i * d];
            c[i * d + 1] = sl[i * d + 1] + 0.5 * rho * sl[i * d];
            for (k, &gk) in g.iter().enumerate() {
                c[i * d + 2 + k] = (-gk * rho).exp() * sl[i * d + 2 + k];
            }
        }
        // G = C Σ(T)⁺
        matmul(c, st, gain, d);
        // E = I − G M, F = G N
        for i in 0..d {
            for j in 0..d {
                let gij = gain[i * d + j];
                let gm = match j {
                    0 => gij + 0.5 * rho * gain[i * d + 1],
                    1 => gij,
                    _ => gij * (-g[j - 2] * rho).exp(),
                };
                e[i * d + j] = f64::from(u8::from(i == j)) - gm;
                f[i * d + j] = if j == 0 {
                    gij - 0.5 * l * gain[i * d + 1]
                } else {
                    gij
                };
            }
        }
        // P = E Σ(l) Eᵀ + F Σ(ρ) Fᵀ into sl (c is scratch)
        sandwich(e, sl, st, c, d);
        sandwich(f, sr, sl, c, d);
        for i in 0..d {
            for j in 0..d {
                sr[i * d + j] =
                    0.5 * (st[i * d + j] + st[j * d + i] + sl[i * d + j] + sl[j * d + i]);
            }
        }
        let mut p = std::mem::take(sr);
        self.sqrt_psd(&mut p, sqrt, d);
        self.bufs[1] = p;
    }
}

/// The bridge coefficients of one split (a level of the tree, or a leaf
/// split), with the decay factors `e^{−γ_k ρ}`.
#[derive(Debug, Clone)]
pub(crate) struct Split {
    pub(crate) l: f64,
    pub(crate) rho: f64,
    pub(crate) gain: Vec<f64>,
    pub(crate) sqrt: Vec<f64>,
    /// `e^{−γ_k ρ}`.
    pub(crate) decay: Vec<f64>,
}

impl Split {
    pub(crate) fn empty(d: usize) -> Self {
        Split {
            l: 0.0,
            rho: 0.0,
            gain: vec![0.0; d * d],
            sqrt: vec![0.0; d * d],
            decay: vec![0.0; d - 2],
        }
    }

    /// Recomputes this split for `(l, rho)`.
    pub(crate) fn set(&mut self, l: f64, rho: f64, g: &[f64], ws: &mut Workspace) {
        self.l = l;
        self.rho = rho;
        ws.split(l, rho, g, &mut self.gain, &mut self.sqrt);
        for (dk, &gk) in self.decay.iter_mut().zip(g) {
            *dk = (-gk * rho).exp();
        }
    }

    /// `(X_L, X_R)` of one Brownian motion from its `X` and `d` normals.
    #[inline]
    pub(crate) fn apply(&self, x: &[f64], z: &[f64], xl: &mut [f64], xr: &mut [f64]) {
        let d = x.len();
        for i in 0..d {
            let mut acc = 0.0;
            let (gr, sr) = (
                &self.gain[i * d..(i + 1) * d],
                &self.sqrt[i * d..(i + 1) * d],
            );
            for k in 0..d {
                acc += gr[k] * x[k] + sr[k] * z[k];
            }
            xl[i] = acc;
        }
        xr[0] = x[0] - xl[0];
        xr[1] = x[1] - xl[1] - 0.5 * (self.rho * xl[0] - self.l * xr[0]);
        for k in 0..d - 2 {
            xr[2 + k] = x[2 + k] - self.decay[k] * xl[2 + k];
        }
    }
}

/// `X` of `[a, c]` from `X_L` of `[a, b]` (length `l`) and `X_R` of
/// `[b, c]` (length `rho`), into `out` (may not alias); `g` the rates.
#[inline]
pub(crate) fn combine(xl: &[f64], l: f64, xr: &[f64], rho: f64, g: &[f64], out: &mut [f64]) {
    out[0] = xl[0] + xr[0];
    out[1] = xl[1] + xr[1] + 0.5 * (rho * xl[0] - l * xr[0]);
    for (k, &gk) in g.iter().enumerate() {
        out[2 + k] = (-gk * rho).exp() * xl[2 + k] + xr[2 + k];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levy_xi_series_and_closed_form_agree_and_match_quadrature() {
        // continuity across the switch, and the small-x limit −x/12
        let below = levy_xi(1.0 - 1e-12);
        let e = (-1.0f64).exp();
        let closed = (1.0 - 2.0 * e) - (1.0 - e) / 2.0;
        assert!((below - closed).abs() < 1e-12, "{below} vs {closed}");
        // f(x) = −x/12 + x²/24 − …
        assert!((levy_xi(1e-8) - (-1e-8 / 12.0 + 1e-16 / 24.0)).abs() < 1e-26);
        // ∫_0^1 (v − ½) e^{−x v} dv by quadrature
        for x in [1e-3, 0.3, 0.9, 2.0, 30.0] {
            let q = super::super::special::tanh_sinh(|v, _| (v - 0.5) * (-x * v).exp(), 1e-14);
            assert!(
                (levy_xi(x) - q).abs() < 1e-14,
                "x {x}: {} vs {q}",
                levy_xi(x)
            );
        }
    }

    #[test]
    fn jacobi_diagonalises() {
        let d = 4;
        let a0 = [
            4.0, 1.0, 0.5, 0.0, 1.0, 3.0, 0.2, 0.1, 0.5, 0.2, 2.0, 0.3, 0.0, 0.1, 0.3, 1.0,
        ];
        let mut a = a0;
        let mut v = [0.0; 16];
        jacobi_eigen(&mut a, &mut v, d);
        // A V = V Λ
        for i in 0..d {
            for l in 0..d {
                let av: f64 = (0..d).map(|k| a0[i * d + k] * v[k * d + l]).sum();
                assert!((av - v[i * d + l] * a[l * d + l]).abs() < 1e-13);
            }
        }
    }

    #[test]
    fn split_reproduces_the_conditional_law() {
        // Cov(X_L) from the bridge = G Σ(T) Gᵀ + S Sᵀ must equal Σ(l), and
        // Cov(X_L, X) = G Σ(T) must equal Σ(l) Mᵀ
        for g in [
            vec![0.01, 1.0, 30.0, 500.0],
            vec![0.1, 1.0, 10.0, 100.0, 1e3, 1e4],
        ] {
            let d = g.len() + 2;
            let mut ws = Workspace::new(d);
            for (l, rho) in [
                (0.5, 0.5),
                (0.1, 0.9),
                (1e-4, 3e-4),
                (2.0, 0.01),
                (1.0, 1.0),
                (0.004, 0.006),
                (2e-9, 1e-9),
            ] {
                let mut sp = Split::empty(d);
                sp.set(l, rho, &g, &mut ws);
                let (mut sl, mut st) = (vec![0.0; d * d], vec![0.0; d * d]);
                sigma(l, &g, &mut sl);
                sigma(l + rho, &g, &mut st);
                let mut gs = vec![0.0; d * d];
                matmul(&sp.gain, &st, &mut gs, d);
                // Cov(X_L, X) = G Σ(T) = Σ(l) Mᵀ, row i: (Σ_i0, Σ_i1 + ρ/2 Σ_i0, e^{−γρ} Σ_i,2+k)
                for i in 0..d {
                    let want = |j: usize| match j {
                        0 => sl[i * d],
                        1 => sl[i * d + 1] + 0.5 * rho * sl[i * d],
                        _ => (-g[j - 2] * rho).exp() * sl[i * d + j],
                    };
                    for j in 0..d {
                        let scale = (sl[i * d + i] * st[j * d + j]).sqrt();
                        assert!(
                            (gs[i * d + j] - want(j)).abs() < 1e-5 * scale,
                            "({l}, {rho}) C[{i}][{j}] {} vs {}",
                            gs[i * d + j],
                            want(j)
                        );
                    }
                }
                for i in 0..d {
                    for j in 0..d {
                        let mut cov = 0.0;
                        for k in 0..d {
                            cov += gs[i * d + k] * sp.gain[j * d + k]
                                + sp.sqrt[i * d + k] * sp.sqrt[j * d + k];
                        }
                        let scale = (sl[i * d + i] * sl[j * d + j]).sqrt();
                        assert!(
                            (cov - sl[i * d + j]).abs() < 1e-6 * scale,
                            "({l}, {rho}) [{i}][{j}]: {cov} vs {}",
                            sl[i * d + j]
                        );
                    }
                }
            }
        }
    }
}
