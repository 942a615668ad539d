//! The SDE discrete adjoint with recursive checkpointing: memory stays
//! within `budget · (levels + 1)` records as the number of steps grows, and
//! the gradient equals the one that stores every step (same Brownian tree,
//! recomputed steps re-query it).

use sdeflow::field::{DiffusionVjp, DriftVjp};
use sdeflow::prelude::*;

use crate::common;
use common::{Diff2, Drift2};

/// `Σ_i Σ_k y_k(t_i)²` over the saved states (every step with
/// `SaveAt::Steps`, so cotangents enter inside recomputed segments too).
fn loss(_ts: &[f64], ys: &[f64], g: &mut [f64]) -> f64 {
    let mut v = 0.0;
    for (i, y) in ys.iter().enumerate() {
        v += y * y;
        g[i] = 2.0 * y;
    }
    v
}

fn compare<F, G, S>(label: &str, prob: &Problem<F, G>, solver: S, save_at: SaveAt)
where
    F: DriftVjp,
    G: DiffusionVjp,
    S: Solver<Problem<F, G>> + Differentiable<F, G, VirtualTree> + Copy,
{
    let budget = 8;
    for steps in [50usize, 400, 4000] {
        let opts = Options::default()
            .fixed_step(1.0 / steps as f64)
            .seed(11)
            .save_at(save_at.clone())
            .max_steps(1_000_000);
        let all = grad(prob, solver, &opts, &loss, Adjoint::STORE_ALL).expect(label);
        let small = grad(
            prob,
            solver,
            &opts,
            &loss,
            Adjoint::Discrete {
                checkpoints: budget,
            },
        )
        .expect(label);
        let levels = (steps as f64).log(budget as f64).ceil() as usize;
        println!(
            "{label}, {steps} steps: peak records {} with budget {budget} (bound {}), {} storing all; \
             backward drift evals {} vs {}",
            small.peak_stored_states,
            budget * (levels + 1),
            all.peak_stored_states,
            small.backward_drift_evals,
            all.backward_drift_evals
        );
        assert!(small.peak_stored_states <= budget * (levels + 1), "{label}");
        assert!(all.peak_stored_states >= steps, "{label}");
        // storing everything recomputes nothing
        assert_eq!(all.backward_drift_evals, 0, "{label}");
        assert!(small.backward_drift_evals > 0, "{label}");
        assert_eq!(small.loss, all.loss);
        // (the case is named in the output above)
        common::assert_gradients_agree(&all, &small, 1e-12, 1.0);
    }
}

fn problem() -> Problem<Generic<Drift2>, Generic<Diff2>> {
    Problem::sde_field(
        Generic(Drift2),
        Generic(Diff2),
        Noise::Diagonal,
        vec![0.4, -0.2],
        (0.0, 1.0),
    )
    .params(vec![1.2, 0.8, 0.3, 0.2])
}

#[test]
fn euler_maruyama_checkpointed_equals_store_all() {
    compare("Euler–Maruyama", &problem(), EulerMaruyama, SaveAt::Steps);
}

#[test]
fn reversible_heun_checkpointed_equals_store_all() {
    // its carried state (ŷ, f(ŷ), g(ŷ)) is in the snapshots and records:
    // replays regenerate it, and its cotangent flows through every step
    let strat = problem().interpretation(Interpretation::Stratonovich);
    compare("ReversibleHeun", &strat, ReversibleHeun, SaveAt::Steps);
}

#[test]
fn sriw1_checkpointed_equals_store_all() {
    // SRIW1 reads the Lévy area: the records carry it
    compare("SRIW1", &problem(), Sriw1, SaveAt::T1);
}

#[test]
fn milstein_checkpointed_equals_store_all() {
    compare(
        "Milstein (derivative-free)",
        &problem(),
        Milstein::derivative_free(),
        SaveAt::Steps,
    );
    compare(
        "Milstein (exact derivatives)",
        &problem(),
        Milstein::exact(),
        SaveAt::Steps,
    );
}
