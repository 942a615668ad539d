//! The explicit Runge–Kutta stiffness estimate's ingredients: the pair of
//! stages of a tableau that share a time, and the method's stability size
//! along the negative real axis (Hairer & Wanner, *Solving ODEs II*,
//! §IV.2; Shampine, "Stiffness and nonstiff differential equation
//! solvers", 1977; `../shared/reference/regularizers.md` §1).
//!
//! Two stages `i < j` with `c_i = c_j` evaluate the drift at the same time
//! and at two nearby points `g_i`, `g_j`, so `‖k_j − k_i‖ / ‖g_j − g_i‖`
//! estimates the size of the dominant eigenvalue of the Jacobian there.
//! For the FSAL pairs the pair is the last two stages, both at `t + h`:
//! Tsit5 and Dopri5 use stages 6 and 7 (1-based; stage 7's input is
//! `y_{n+1}`), Vern7 stages 9 and 10. Bs3, Heun and Euler have no such
//! pair.

use crate::step_vjp::StiffnessStages;
use crate::tableau::Tableau;

/// The last pair of stages `(i, j)`, `i < j` (0-based), of the step that
/// share their node `c`; `None` without such a pair.
pub(crate) fn pair_indices<T: Tableau>(tab: &T) -> Option<(usize, usize)> {
    let c = tab.c();
    (1..tab.stages())
        .rev()
        .find_map(|j| (0..j).rev().find(|&i| c[i] == c[j]).map(|i| (i, j)))
}

/// [`pair_indices`] with the stability size of the method (see
/// [`stability_size`]: a few thousand evaluations of the stability
/// function; ask once per solve).
pub(crate) fn stiffness_stages<T: Tableau>(tab: &T) -> Option<StiffnessStages> {
    pair_indices(tab).map(|(first, second)| StiffnessStages {
        first,
        second,
        stability_size: stability_size(tab),
    })
}

/// `R(z) = 1 + z bᵀ (I − zA)⁻¹ 𝟙`, the stability function of the explicit
/// tableau, at the real `z` (forward substitution: `A` is strictly lower
/// triangular).
fn stability_function<T: Tableau>(tab: &T, z: f64, u: &mut [f64]) -> f64 {
    let s = tab.stages();
    for i in 0..s {
        let sum: f64 = tab.a(i).iter().zip(&u[..i]).map(|(a, v)| a * v).sum();
        u[i] = 1.0 + z * sum;
    }
    1.0 + z * tab.b().iter().zip(&u[..s]).map(|(b, v)| b * v).sum::<f64>()
}

/// The stability size of the method along the negative real axis: the
/// largest `ρ` with `|R(−x)| ≤ 1` on `[0, ρ]` (Tsit5 3.5068, Dopri5
/// 3.3066, Vern7 4.64), found by a scan in steps of 1e-3 refined by
/// bisection to 1e-12.
pub(crate) fn stability_size<T: Tableau>(tab: &T) -> f64 {
    let mut u = vec![0.0; tab.stages()];
    let stable = |x: f64, u: &mut [f64]| stability_function(tab, -x, u).abs() <= 1.0;
    let (mut lo, step) = (0.0, 1e-3);
    // every explicit method of order ≥ 1 is stable just left of 0; its
    // region is bounded (|R| grows like |z|^s)
    while lo < 100.0 && stable(lo + step, &mut u) {
        lo += step;
    }
    let mut hi = lo + step;
    while hi - lo > 1e-12 {
        let mid = 0.5 * (lo + hi);
        if stable(mid, &mut u) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tableau::{BS3, DP5, HEUN, TSIT5, VERN7};

    #[test]
    fn pairs_share_a_node() {
        let t = stiffness_stages(&&TSIT5).unwrap();
        assert_eq!((t.first, t.second), (5, 6));
        let d = stiffness_stages(&&DP5).unwrap();
        assert_eq!((d.first, d.second), (5, 6));
        let v = stiffness_stages(&&VERN7).unwrap();
        assert_eq!(VERN7.c[v.first], VERN7.c[v.second]);
        assert!(stiffness_stages(&&BS3).is_none());
        assert!(stiffness_stages(&&HEUN).is_none());
    }

    #[test]
    fn stability_sizes_match_the_literature() {
        // OrdinaryDiffEq's alg_stability_size: Tsit5 3.5068, DP5 3.3066
        assert!((stability_size(&&TSIT5) - 3.5068).abs() < 1e-3);
        assert!((stability_size(&&DP5) - 3.3066).abs() < 1e-3);
        // forward Euler: |1 − x| ≤ 1 on [0, 2]; Heun (RK2): 1 − x + x²/2, also 2
        assert!((stability_size(&&HEUN) - 2.0).abs() < 1e-9);
    }
}
