//! Verner's "most efficient" 7(6) pair with its lazy continuous extension —
//! the `Vern7` method of OrdinaryDiffEq.jl.
//!
//! Sources:
//!
//! - J. H. Verner, "Numerically optimal Runge–Kutta pairs with interpolants",
//!   *Numerical Algorithms* 53 (2010) 383–396, and the coefficient files on
//!   Verner's page (<https://www.sfu.ca/~jverner/>).
//! - OrdinaryDiffEq.jl (SciML), `lib/OrdinaryDiffEqVerner/src/verner_tableaus.jl`
//!   (`Vern7Tableau`, `Vern7ExtraStages`, `Vern7InterpolationCoefficients`),
//!   with the stage wiring read from `verner_rk_perform_step.jl` /
//!   `verner_addsteps.jl` and the evaluation of `b_i(θ)` from `interpolants.jl`.
//!
//! Every number below is the correctly rounded `f64` of the exact rational or
//! 40-digit value in the generic (`BigFloat`) branch of that file, printed as
//! the shortest literal that round-trips; small exact rationals are kept as
//! divisions. (The file's hard-coded `Float64` branch differs from these in
//! the last bit for a handful of entries.)
//!
//! Properties:
//!
//! - 10 stages, explicit; `c_9 = c_10 = 1`.
//! - Propagated solution of order 7 (uses stages 1, 4–9; `b_2 = b_3 = b_10 = 0`).
//! - Embedded solution of order 6 (uses stages 1, 4–7 and 10). Stage 10 feeds
//!   only the error estimate.
//! - Not FSAL: no step stage is `f(t_n + h, y_{n+1})`. That evaluation is the
//!   first of the interpolant's extra stages (its row equals `b`), so it is
//!   paid only on steps that are actually interpolated.
//! - Continuous extension: 6 extra stages (16 stages in all), polynomial
//!   weights of degree 7 in θ. OrdinaryDiffEq advertises it as the "lazy 7th
//!   order interpolant". For every θ it satisfies all rooted-tree conditions
//!   of order ≤ 6 and the order-7 quadrature condition `Σ b_i(θ) c_i^6 = θ^7/7`,
//!   but 12 of the 48 order-7 trees are missed (by 2.5e-9 to 2.6e-7 at
//!   θ = 0.3; extra stages 12 and 13 do not satisfy some order-6 stage
//!   conditions). Its order for generic θ is therefore 6 in the strict sense,
//!   and `dense.order` says 6. This matches the note Verner now carries on
//!   his 7(6) coefficient files: the interpolant coefficients first posted
//!   "satisfied some but not all conditions of order 7", and the corrected
//!   order-7 interpolant needs a different node `c_12`. OrdinaryDiffEq still
//!   ships the original set, which is the one reproduced here; the tests
//!   below pin both the order-6 conditions and the size of the order-7 gap.

use super::{ButcherTableau, DenseTableau};

/// The weights `b` of the propagated solution; also the row of the first
/// extra stage, `f(t_n + h, y_{n+1})`.
const B: &[f64] = &[
    0.04715561848627222,
    0.0,
    0.0,
    0.25750564298434153,
    0.2621665397741262,
    0.15216092656738558,
    0.49399691700324844,
    -0.29430311714032503,
    0.0813174723249511,
    0.0,
];

/// Verner's 7(6) "most efficient" pair (`Vern7`), with the 16-stage
/// continuous extension used by OrdinaryDiffEq.jl.
pub const VERN7: ButcherTableau = ButcherTableau {
    name: "Vern7",
    c: &[
        0.0,
        1.0 / 200.0,
        49.0 / 450.0,
        49.0 / 300.0,
        911.0 / 2000.0,
        3480084980.0 / 5709648941.0,
        221.0 / 250.0,
        37.0 / 40.0,
        1.0,
        1.0,
    ],
    a: &[
        &[],
        &[1.0 / 200.0],
        &[-4361.0 / 4050.0, 2401.0 / 2025.0],
        &[49.0 / 1200.0, 0.0, 49.0 / 400.0],
        &[
            2454451729.0 / 3841600000.0,
            0.0,
            -9433712007.0 / 3841600000.0,
            4364554539.0 / 1920800000.0,
        ],
        &[
            -2.6615773750187572,
            0.0,
            10.804513886456137,
            -8.3539146573962,
            0.820487594956657,
        ],
        &[
            6.067741434696771,
            0.0,
            -24.711273635911084,
            20.427517930788895,
            -1.9061579788166472,
            1.006172249242068,
        ],
        &[
            12.054670076253203,
            0.0,
            -49.75478495046899,
            41.142888638604674,
            -4.461760149974004,
            2.042334822239175,
            -0.09834843665406108,
        ],
        &[
            10.138146522881808,
            0.0,
            -42.6411360317175,
            35.76384003992257,
            -4.3480228403929075,
            2.0098622683770357,
            0.3487490460338272,
            -0.27143900510483127,
        ],
        &[
            -45.030072034298676,
            0.0,
            187.3272437654589,
            -154.02882369350186,
            18.56465306347536,
            -7.141809679295079,
            1.3088085781613785,
            0.0,
            0.0,
        ],
    ],
    b: B,
    // `b − b̂`. OrdinaryDiffEq's `btilde` already has this sign (its
    // `btilde8 = b8` because `b̂_8 = 0`), so the values are taken unchanged.
    b_err: Some(&[
        0.0025470118799310456,
        0.0,
        0.0,
        -0.00965839487279575,
        0.0420647097563969,
        -0.0666822437469301,
        0.26500974646212816,
        -0.29430311714032503,
        0.0813174723249511,
        -0.020295184663356284,
    ]),
    order: 7,
    embedded_order: Some(6),
    fsal: false,
    dense: DenseTableau {
        extra_c: &[1.0, 0.29, 0.125, 0.25, 0.53, 0.79],
        // Stage 11 is f(t_n + h, y_{n+1}) (its row is `b`); stages 12–16 use
        // stages 1, 4–9 and the earlier extra stages. Stage 10 is never used.
        extra_a: &[
            B,
            &[
                0.0523222769159969,
                0.0,
                0.0,
                0.22495861826705715,
                0.017443709248776376,
                -0.007669379876829393,
                0.03435896044073285,
                -0.0410209723009395,
                0.025651133005205617,
                0.0,
                -0.0160443457,
            ],
            &[
                0.053053341257859085,
                0.0,
                0.0,
                0.12195301011401886,
                0.017746840737602496,
                -0.0005928372667681495,
                0.008381833970853752,
                -0.01293369259698612,
                0.009412056815253861,
                0.0,
                -0.005353253107275676,
                -0.06666729992455811,
            ],
            &[
                0.03887903257436304,
                0.0,
                0.0,
                -0.0024403203308301317,
                -0.0013928917214672623,
                -0.00047446291558680135,
                0.00039207932413159514,
                -0.00040554733285128004,
                0.00019897093147716726,
                0.0,
                -0.00010278198793179169,
                0.03385661513870267,
                0.1814893063199928,
            ],
            &[
                0.05723681204690013,
                0.0,
                0.0,
                0.22265948066761182,
                0.12344864200186899,
                0.04006332526666491,
                -0.05269894848581452,
                0.04765971214244523,
                -0.02138895885042213,
                0.0,
                0.015193891064036402,
                0.12060546716289655,
                -0.022779423016187374,
                0.0,
            ],
            &[
                0.051372038802756814,
                0.0,
                0.0,
                0.5414214473439406,
                0.350399806692184,
                0.14193112269692182,
                0.10527377478429423,
                -0.031081847805874016,
                -0.007401883149519145,
                0.0,
                -0.006377932504865363,
                -0.17325495908361865,
                -0.18228156777622026,
                0.0,
                0.0,
            ],
        ],
        // OrdinaryDiffEq evaluates `b_1(θ) = θ·P_1(θ)` and `b_i(θ) = θ²·P_i(θ)`
        // (i ≥ 4) with `P_i` given by `r_{i,1..7}` / `r_{i,2..7}` in ascending
        // powers; the leading zeros below are those factors of θ.
        coeffs: &[
            &[
                0.0,
                1.0,
                -8.413387198332767,
                33.675508884490895,
                -70.80159089484886,
                80.64695108301298,
                -47.19413969837522,
                11.133813442539243,
            ],
            &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            &[
                0.0,
                0.0,
                8.754921980674396,
                -88.4596828699771,
                346.9017638429916,
                -629.2580030059837,
                529.6773755604193,
                -167.35886986514018,
            ],
            &[
                0.0,
                0.0,
                8.913387586637922,
                -90.06081846893218,
                353.1807459217058,
                -640.6476819744374,
                539.2646279047156,
                -170.38809442991547,
            ],
            &[
                0.0,
                0.0,
                5.1733120298478,
                -52.271115900055385,
                204.9853867374073,
                -371.8306118563603,
                312.9880934374529,
                -98.89290352172495,
            ],
            &[
                0.0,
                0.0,
                16.79537744079696,
                -169.70040000059728,
                665.4937727009246,
                -1207.1638892336007,
                1016.1291515818546,
                -321.06001557237494,
            ],
            &[
                0.0,
                0.0,
                -10.005997536098665,
                101.1005433052275,
                -396.47391512378437,
                719.1787707014183,
                -605.3681033918824,
                191.27439892797935,
            ],
            &[
                0.0,
                0.0,
                2.764708833638599,
                -27.934602637390462,
                109.54779186137893,
                -198.7128113064482,
                167.26633571640318,
                -52.85010499525706,
            ],
            &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            &[
                0.0,
                0.0,
                -2.1696320280163506,
                22.016696037569876,
                -86.90152427798948,
                159.22388973861476,
                -135.9618306534588,
                43.792401183280006,
            ],
            &[
                0.0,
                0.0,
                -4.890070188793804,
                22.75407737425176,
                -30.78034218537731,
                -2.797194317207249,
                31.369456637508403,
                -15.655927320381801,
            ],
            &[
                0.0,
                0.0,
                10.862170929551967,
                -50.542971417827104,
                68.37148040407511,
                6.213326521632409,
                -69.68006323194157,
                34.776056794509195,
            ],
            &[
                0.0,
                0.0,
                -11.37286691922923,
                130.79058078246717,
                -488.65113677785604,
                832.2148793276441,
                -664.7743368554426,
                201.79288044241662,
            ],
            &[
                0.0,
                0.0,
                -5.919778732715007,
                63.27679965889219,
                -265.432682088738,
                520.1009254140611,
                -467.412109533902,
                155.3868452824017,
            ],
            &[
                0.0,
                0.0,
                -10.492146197961823,
                105.35538525188011,
                -409.43975011988937,
                732.831448907654,
                -606.3044574733512,
                188.0495196316683,
            ],
        ],
        order: 6,
    },
};

#[cfg(test)]
mod tests {
    use super::VERN7;

    /// Relative tolerance for identities evaluated in plain `f64`.
    const TOL: f64 = 1e-12;

    /// Number of step stages.
    const S: usize = 10;

    /// Checks `got ≈ want` relative to `scale`, the sum of the absolute values
    /// of the terms that produced `got` (or `|want|` if that is larger).
    fn assert_close(what: &str, got: f64, want: f64, scale: f64) {
        let scale = scale.max(want.abs());
        let err = (got - want).abs();
        assert!(
            err <= TOL * scale,
            "{what}: got {got:e}, want {want:e} (err {err:e}, scale {scale:e})"
        );
    }

    /// Nodes of all 16 stages (step stages, then extra stages).
    fn all_c() -> Vec<f64> {
        let mut c = VERN7.c.to_vec();
        c.extend_from_slice(VERN7.dense.extra_c);
        c
    }

    /// The full 16×16 strictly lower-triangular coupling matrix.
    fn full_a() -> Vec<Vec<f64>> {
        let n = S + VERN7.dense.extra_c.len();
        let mut a = vec![vec![0.0; n]; n];
        let rows = VERN7.a.iter().chain(VERN7.dense.extra_a.iter());
        for (i, row) in rows.enumerate() {
            a[i][..row.len()].copy_from_slice(row);
        }
        a
    }

    /// Pads step weights with zeros for the extra stages.
    fn padded(w: &[f64]) -> Vec<f64> {
        let mut v = w.to_vec();
        v.resize(S + VERN7.dense.extra_c.len(), 0.0);
        v
    }

    /// Weights of the embedded method, `b̂ = b − b_err`.
    fn b_hat() -> Vec<f64> {
        let err = VERN7.b_err.expect("Vern7 has an embedded method");
        VERN7.b.iter().zip(err).map(|(b, e)| b - e).collect()
    }

    /// Interpolation weights `b_i(θ)` for all 16 stages.
    fn weights_at(theta: f64) -> Vec<f64> {
        VERN7
            .dense
            .coeffs
            .iter()
            .map(|row| row.iter().rev().fold(0.0, |acc, &k| acc * theta + k))
            .collect()
    }

    /// Σ w_i x_i together with Σ |w_i x_i|.
    fn dot(w: &[f64], x: &[f64]) -> (f64, f64) {
        w.iter().zip(x).fold((0.0, 0.0), |(s, m), (wi, xi)| {
            (s + wi * xi, m + (wi * xi).abs())
        })
    }

    /// A rooted tree: its order, its density γ and its subtrees (indices into
    /// the list that holds it; every subtree comes earlier in that list).
    struct Tree {
        order: u32,
        gamma: f64,
        children: Vec<usize>,
    }

    /// All rooted trees with at most `max_order` vertices, by increasing order.
    fn trees(max_order: u32) -> Vec<Tree> {
        fn children_sets(
            ts: &[Tree],
            remaining: u32,
            max_idx: usize,
            cur: &mut Vec<usize>,
            out: &mut Vec<Vec<usize>>,
        ) {
            if remaining == 0 {
                out.push(cur.clone());
                return;
            }
            // Non-increasing indices list each multiset of subtrees once.
            for idx in 0..=max_idx {
                if ts[idx].order <= remaining {
                    cur.push(idx);
                    children_sets(ts, remaining - ts[idx].order, idx, cur, out);
                    cur.pop();
                }
            }
        }
        let mut ts = vec![Tree {
            order: 1,
            gamma: 1.0,
            children: Vec::new(),
        }];
        for order in 2..=max_order {
            let mut sets = Vec::new();
            children_sets(&ts, order - 1, ts.len() - 1, &mut Vec::new(), &mut sets);
            for children in sets {
                let gamma = children
                    .iter()
                    .fold(f64::from(order), |g, &ch| g * ts[ch].gamma);
                ts.push(Tree {
                    order,
                    gamma,
                    children,
                });
            }
        }
        ts
    }

    /// Elementary weights `Φ_i(t)` for every tree and stage.
    fn elementary_weights(ts: &[Tree], a: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let mut phi: Vec<Vec<f64>> = Vec::with_capacity(ts.len());
        for t in ts {
            let mut p = vec![1.0; a.len()];
            for &ch in &t.children {
                for (pi, row) in p.iter_mut().zip(a) {
                    *pi *= dot(row, &phi[ch]).0;
                }
            }
            phi.push(p);
        }
        phi
    }

    /// Residuals `Σ w_i Φ_i(t) − θ^ρ(t) / γ(t)`, one per tree.
    ///
    /// The right-hand sides are at most 1 and the residuals of satisfied
    /// conditions come out near 1e-15, so these are compared with `TOL` as an
    /// absolute bound. (A scale built from `|a_ij|` products is useless here:
    /// it reaches 1e10 for deep trees because of the large entries of row 10.)
    fn tree_residuals(w: &[f64], theta: f64, ts: &[Tree], a: &[Vec<f64>]) -> Vec<f64> {
        let phi = elementary_weights(ts, a);
        ts.iter()
            .zip(&phi)
            .map(|(t, p)| dot(w, p).0 - theta.powi(t.order as i32) / t.gamma)
            .collect()
    }

    #[test]
    fn shapes() {
        assert_eq!(VERN7.c.len(), S);
        assert_eq!(VERN7.a.len(), S);
        for (i, row) in VERN7.a.iter().enumerate() {
            assert_eq!(row.len(), i, "row {i} of a");
        }
        assert_eq!(VERN7.b.len(), S);
        assert_eq!(VERN7.b_err.map(<[f64]>::len), Some(S));
        let dense = &VERN7.dense;
        assert_eq!(dense.extra_c.len(), 6);
        assert_eq!(dense.extra_a.len(), 6);
        for (j, row) in dense.extra_a.iter().enumerate() {
            assert_eq!(row.len(), S + j, "extra row {j}");
        }
        assert_eq!(dense.coeffs.len(), S + 6);
        for row in dense.coeffs {
            assert_eq!(row.len(), 8);
        }
        assert_eq!(trees(7).len(), 85);
    }

    #[test]
    fn row_sums_equal_nodes() {
        for (i, row) in VERN7.a.iter().enumerate() {
            let sum: f64 = row.iter().sum();
            assert!(
                (sum - VERN7.c[i]).abs() < 1e-13,
                "row {i}: {sum} vs {}",
                VERN7.c[i]
            );
        }
        for (j, row) in VERN7.dense.extra_a.iter().enumerate() {
            let sum: f64 = row.iter().sum();
            let c = VERN7.dense.extra_c[j];
            assert!((sum - c).abs() < 1e-13, "extra row {j}: {sum} vs {c}");
        }
    }

    #[test]
    fn first_extra_stage_is_the_end_point_derivative() {
        // Row 11 reproduces y_{n+1}, so k11 = f(t_n + h, y_{n+1}).
        assert_eq!(VERN7.dense.extra_c[0], 1.0);
        for (x, b) in VERN7.dense.extra_a[0].iter().zip(VERN7.b) {
            assert!((x - b).abs() < 1e-16, "{x} vs {b}");
        }
    }

    #[test]
    fn weights_sum_to_one() {
        let sum: f64 = VERN7.b.iter().sum();
        assert!((sum - 1.0).abs() < TOL, "Σ b = {sum}");
        let sum: f64 = b_hat().iter().sum();
        assert!((sum - 1.0).abs() < TOL, "Σ b̂ = {sum}");
    }

    #[test]
    fn error_weights_are_b_minus_b_hat() {
        // Verner's embedded formula has no weight on stages 8 and 9, so
        // `b − b̂` equals `b` there; the opposite sign convention would not.
        let err = VERN7.b_err.expect("Vern7 has an embedded method");
        assert_eq!(err[7], VERN7.b[7]);
        assert_eq!(err[8], VERN7.b[8]);
        assert_eq!(VERN7.b[9], 0.0);
        assert!(err[9] < 0.0, "b̂_10 > 0, so (b − b̂)_10 < 0");
    }

    #[test]
    fn quadrature_conditions() {
        for q in 1..=7 {
            let cq: Vec<f64> = VERN7.c.iter().map(|c| c.powi(q - 1)).collect();
            let (got, scale) = dot(VERN7.b, &cq);
            assert_close(&format!("Σ b c^{}", q - 1), got, 1.0 / f64::from(q), scale);
        }
        // …and not at order 8: the method is exactly of order 7.
        let c7: Vec<f64> = VERN7.c.iter().map(|c| c.powi(7)).collect();
        assert!((dot(VERN7.b, &c7).0 - 1.0 / 8.0).abs() > 1e-7);
    }

    #[test]
    fn second_level_conditions() {
        for q in 1..=6 {
            let inner: Vec<f64> = VERN7
                .a
                .iter()
                .map(|row| {
                    let cq: Vec<f64> = VERN7.c[..row.len()].iter().map(|c| c.powi(q - 1)).collect();
                    dot(row, &cq).0
                })
                .collect();
            let (got, scale) = dot(VERN7.b, &inner);
            let want = 1.0 / f64::from(q * (q + 1));
            assert_close(&format!("Σ b a c^{}", q - 1), got, want, scale);
        }
    }

    #[test]
    fn rooted_tree_conditions_of_the_pair() {
        let ts = trees(7);
        let a = full_a();
        for (k, res) in tree_residuals(&padded(VERN7.b), 1.0, &ts, &a)
            .into_iter()
            .enumerate()
        {
            assert!(res.abs() <= TOL, "b, tree {k}: {res:e}");
        }
        let res_hat = tree_residuals(&padded(&b_hat()), 1.0, &ts, &a);
        let mut worst7: f64 = 0.0;
        for (k, res) in res_hat.into_iter().enumerate() {
            if ts[k].order <= 6 {
                assert!(res.abs() <= TOL, "b̂, tree {k}: {res:e}");
            } else {
                worst7 = worst7.max(res.abs());
            }
        }
        assert!(
            worst7 > 1e-6,
            "the embedded method should be of order 6 only"
        );
    }

    #[test]
    fn interpolant_end_points() {
        let w0 = weights_at(0.0);
        let w1 = weights_at(1.0);
        for i in 0..w0.len() {
            assert_eq!(VERN7.dense.coeffs[i][0], 0.0);
            assert_eq!(w0[i], 0.0, "b_{}(0)", i + 1);
            let want = VERN7.b.get(i).copied().unwrap_or(0.0);
            assert!(
                (w1[i] - want).abs() < 1e-12,
                "b_{}(1) = {} vs {want}",
                i + 1,
                w1[i]
            );
        }
    }

    #[test]
    fn interpolant_quadrature_conditions() {
        let c = all_c();
        for theta in [0.3, 0.7] {
            let w = weights_at(theta);
            for q in 1..=7 {
                let cq: Vec<f64> = c.iter().map(|c| c.powi(q - 1)).collect();
                let (got, scale) = dot(&w, &cq);
                let want = theta.powi(q) / f64::from(q);
                assert_close(
                    &format!("θ = {theta}, Σ b(θ) c^{}", q - 1),
                    got,
                    want,
                    scale,
                );
            }
        }
    }

    #[test]
    fn interpolant_rooted_tree_conditions() {
        // Every tree of order ≤ 6 holds for generic θ; a dozen trees of
        // order 7 are missed by a small but genuine amount, which is why the
        // tableau states `dense.order = 6`.
        assert_eq!(VERN7.dense.order, 6);
        let ts = trees(7);
        let a = full_a();
        for theta in [0.3, 0.5, 0.7] {
            let res = tree_residuals(&weights_at(theta), theta, &ts, &a);
            let mut worst7: f64 = 0.0;
            let mut missed7 = 0;
            for (k, r) in res.into_iter().enumerate() {
                if ts[k].order <= 6 {
                    assert!(r.abs() <= TOL, "θ = {theta}, tree {k}: {r:e}");
                } else if r.abs() > TOL {
                    worst7 = worst7.max(r.abs());
                    missed7 += 1;
                }
            }
            assert_eq!(missed7, 12, "θ = {theta}");
            assert!(worst7 > 1e-9 && worst7 < 1e-6, "θ = {theta}: {worst7:e}");
        }
    }
}
