//! ETDRK3(2): Cox & Matthews' ETD3RK (J. Comput. Phys. 176 (2002),
//! eqs. (23)–(25)) with an embedded second-order solution on the same
//! stages, the adaptive exponential method. With `z = hL`:
//!
//! * `a = e^{z/2} y_n + (h/2) φ_1(z/2) N_n` (at `t_n + h/2`),
//! * `b = e^{z} y_n + h φ_1(z) (2 N(a) − N_n)` (at `t_n + h`),
//! * `y_{n+1} = e^{z} y_n + h [(φ_1 − 3φ_2 + 4φ_3) N_n + 4(φ_2 − 2φ_3) N(a) + (4φ_3 − φ_2) N(b)]`;
//! * embedded: `ŷ = e^{z} y_n + h [(φ_1 − 2φ_2) N_n + 2φ_2 N(a)]`, which
//!   meets `Σ b̂ = φ_1`, `Σ b̂ c = φ_2` (order 2; an exponential midpoint
//!   rule in the weights of Hochbruck & Ostermann, Acta Numerica 2010,
//!   §2.3), so the error estimate `y_{n+1} − ŷ` is of order 3.
//!
//! The φ-weights of the output are those of ETDRK4's `f1, f2, f3`
//! (`../shared/reference/exponential.md` §2). Not an exponential
//! Rosenbrock pair: `L` stays the problem's linear part, so no Jacobian is
//! needed.
//!
//! Each new step size costs a set of φ operators (`ops.rs`), several times
//! a step's arithmetic; under a plain PI controller every step has a new
//! size. So the method suggests the step ladder
//! ([`crate::controller::StepLadder`]: factors rounded down to `2^{j/4}`)
//! in place of the options' default controller
//! ([`crate::solver::Solver::suggested_controller`]): the step sizes
//! repeat and the operators are reused: on the problems of
//! `benches/expint.rs` (section 3 of its report, idle 2-core machine,
//! 2026-12-04) 8–17x faster than plain PI on Kuramoto–Sivashinsky at rtol
//! 1e-4–1e-8 (e.g. 1e-8: 29 ms against 383 ms) and 1.4–8.5x on the stiff
//! 32-component problem, with the same number of steps (±0.3%). A controller chosen in the options is used as given
//! (`Controller::custom(PiController::default())` for plain PI).

use super::tableau::{Coef, ExpStage, ExpTableau, F1, F3, HALF_ETD1, t};

/// The coefficients of ETDRK3(2).
pub static ETDRK32: ExpTableau = ExpTableau {
    name: "Etdrk32",
    order: 3,
    embedded_order: Some(2),
    stages: &[
        HALF_ETD1,
        ExpStage {
            c: 1.0,
            base: 0,
            base_scale: 1.0,
            coefs: &[
                Coef {
                    stage: 0,
                    terms: &[t(1.0, 1, -1.0)],
                },
                Coef {
                    stage: 1,
                    terms: &[t(1.0, 1, 2.0)],
                },
            ],
        },
    ],
    b: &[
        Coef {
            stage: 0,
            terms: &F1,
        },
        Coef {
            stage: 1,
            terms: &[t(1.0, 2, 4.0), t(1.0, 3, -8.0)],
        },
        Coef {
            stage: 2,
            terms: &F3,
        },
    ],
    b_err: &[
        Coef {
            stage: 0,
            terms: &F3,
        },
        Coef {
            stage: 1,
            terms: &[t(1.0, 2, 2.0), t(1.0, 3, -8.0)],
        },
        Coef {
            stage: 2,
            terms: &F3,
        },
    ],
};
