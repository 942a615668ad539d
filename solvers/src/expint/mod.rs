//! Exponential integrators for semilinear ODEs `y' = L(p) y + N(t, y, p)`
//! (`../shared/DESIGN.md`: the `Semilinear<L, N>` family;
//! `../shared/reference/exponential.md` §1–2; Hochbruck & Ostermann,
//! "Exponential integrators", Acta Numerica 19 (2010)).
//!
//! The linear part is treated exactly through the φ-functions of `hL`
//! (`phi.rs`), so a stiff `L` restricts neither stability nor the step:
//!
//! | method | order | error estimate | file |
//! |---|---|---|---|
//! | [`Etd1`] (exponential Euler) | 1 | — | `etd1.rs` |
//! | [`LawsonEuler`] | 1 | — | `lawson_euler.rs` |
//! | [`Etdrk2`] (Cox–Matthews) | 2 | ETD1 embedded (order 2) | `etdrk2.rs` |
//! | [`Etdrk32`] (Cox–Matthews ETD3RK + embedded order 2) | 3 | order 3 | `etdrk32.rs` |
//! | [`Etdrk4`] (Cox–Matthews, Kassam–Trefethen form) | 4 (stiff order 2) | — | `etdrk4.rs` |
//! | [`Krogstad`] | 4 (stiff order 3) | — | `krogstad.rs` |
//! | [`HochbruckOstermann`] (5 stages) | 4 (stiff order 4) | — | `hochbruck_ostermann.rs` |
//!
//! All are one generic step over a coefficient table ([`ExpRk`],
//! `exprk.rs`), run in the one integration loop with fixed steps
//! (`Options::fixed_step`) or — [`Etdrk2`] and [`Etdrk32`], which have an
//! error estimate — with any controller. Their operators are cached per
//! step size (`ops.rs`): a fixed-step solve computes them once. Each has a
//! step VJP ([`crate::step_vjp::StepVjp`]) for gradients in `y0`, in the
//! parameters of `N`, and in those of a parameter-dependent `L`
//! ([`ParamDiagonal`], [`ParamDense`]).
//!
//! The problem is an ODE whose drift is a [`Semilinear`]; the exponential
//! methods implement [`crate::solver::Solver`] for such problems only, so a
//! plain ODE does not compile:
//!
//! ```compile_fail
//! use sdeflow_solvers::prelude::*;
//! use sdeflow_solvers::expint::Etdrk4;
//! let ode = Problem::ode(|_t, y, _p, dy| dy[0] = -y[0], vec![1.0], (0.0, 1.0));
//! let _ = solve(&ode, Etdrk4, Options::default().fixed_step(0.1));
//! ```
//!
//! The same equation written as `L y + N`:
//!
//! ```
//! use sdeflow_solvers::prelude::*;
//! use sdeflow_solvers::expint::{Diagonal, Etdrk4, Semilinear};
//! let f = Semilinear::new(Diagonal(vec![-1.0]), |_t: f64, _y: &[f64], _p: &[f64], n: &mut [f64]| n[0] = 0.0);
//! let ode = Problem::ode_field(f, vec![1.0], (0.0, 1.0));
//! let sol = solve(&ode, Etdrk4, Options::default().fixed_step(0.5))?;
//! assert!((sol.last()[0] - (-1.0f64).exp()).abs() < 1e-15);
//! # Ok::<(), SolveError>(())
//! ```
//!
//! φ-functions of a complex argument are in `phi_complex.rs`
//! ([`phi_complex::phi_all_complex`]). A Fourier operator with odd
//! derivatives (advection `i c k`, KdV's dispersion) is a complex diagonal
//! [`ComplexDiagonal`] over a state of complex coefficients stored as
//! `(re, im)` pairs; every method here takes it (constant only: no
//! parameter gradient inside it), and so do the other ODE solvers through
//! the drift. A real diagonal over the same pairs (each eigenvalue twice)
//! serves an even operator (`examples/kuramoto_sivashinsky.rs`). Not here
//! yet: Krylov φ-products for large sparse `L`, and exponential Rosenbrock
//! methods.
//!
//! An adaptive solve recomputes the operators for every new step size
//! (the last few are kept, `ops.rs`); under the step ladder
//! ([`crate::controller::StepLadder`]), which the adaptive methods suggest
//! in place of the default controller
//! ([`crate::solver::Solver::suggested_controller`]; a controller chosen in
//! the options is used as given), step sizes repeat and the operators are
//! reused: `Etdrk32` at rtol 1e-8 took 11.7 ms on the stiff
//! problem of `benches/expint.rs` under PI and 1.4 ms under the ladder
//! (same steps; 383 ms against 29 ms on Kuramoto–Sivashinsky).
//!
//! Semilinear SDEs `dX = (L X + N) dt + G dW` with a diagonal `L ≤ 0` and
//! additive noise: [`StochasticExpEuler`] (`stochastic_euler.rs`), strong
//! order 1, the exact Ornstein–Uhlenbeck transition when `N = 0`, its
//! stochastic convolutions read with `ΔW` from a [`ConvolutionNoise`]
//! driver (`convolution_noise.rs`); or, driven by a [`CovarianceNoise`]
//! (`covariance_noise.rs`, `stochastic_euler_covariance.rs`), from
//! `L`-free increments with the exact covariance of `L(p)` and `h` — the
//! route that differentiates in a parameter inside `L`.

mod convolution_noise;
mod covariance_noise;
mod etd1;
mod etdrk2;
mod etdrk32;
mod etdrk4;
mod exprk;
mod hochbruck_ostermann;
mod krogstad;
mod lawson_euler;
mod ops;
pub mod phi;
pub mod phi_complex;
mod semilinear;
mod stochastic_euler;
mod stochastic_euler_covariance;
pub mod tableau;

pub use convolution_noise::{ConvolutionNoise, ConvolutionPath};
pub use covariance_noise::{CovarianceNoise, CovariancePath};
pub use etd1::ETD1;
pub use etdrk2::ETDRK2;
pub use etdrk4::ETDRK4;
pub use etdrk32::ETDRK32;
pub use exprk::{ExpCache, ExpRk, ExpVjpWork};
pub use hochbruck_ostermann::HOCHBRUCK_OSTERMANN;
pub use krogstad::KROGSTAD;
pub use lawson_euler::LAWSON_EULER;
pub use ops::PhiOps;
pub use semilinear::{
    ComplexDiagonal, Dense, Diagonal, LinearPart, LinearPartVjp, ParamDense, ParamDiagonal,
    Semilinear, SemilinearParts, Structure, check_linear_values,
};
pub use stochastic_euler::{StochasticExpCache, StochasticExpEuler, StochasticExpVjpWork};
pub use stochastic_euler_covariance::{StochasticExpCovCache, StochasticExpCovVjpWork};
pub use tableau::ExpTableau;

use crate::solver::delegate_solver;
use crate::step_vjp::delegate_step_vjp;

macro_rules! exp_method {
    ($(#[$doc:meta])* $name:ident, $tab:ident) => {
        delegate_solver!(
            $(#[$doc])*
            $name,
            ExpRk::new(&$tab),
            ExpRk,
            ExpCache,
            $tab,
            ExpTableau
        );
        delegate_step_vjp!($name, ExpRk, ExpVjpWork, |s| ExpRk::new(s.tableau()));
    };
}

exp_method!(
    /// Exponential Euler (ETD1), order 1, fixed steps (`etd1.rs`).
    Etd1,
    ETD1
);
exp_method!(
    /// Lawson–Euler (integrating-factor Euler), order 1, fixed steps
    /// (`lawson_euler.rs`).
    LawsonEuler,
    LAWSON_EULER
);
exp_method!(
    /// ETDRK2 (Cox–Matthews), order 2, with ETD1 embedded: fixed or
    /// adaptive steps (`etdrk2.rs`).
    Etdrk2,
    ETDRK2
);
exp_method!(
    /// ETDRK3(2): Cox–Matthews ETD3RK with an embedded order-2 solution,
    /// the adaptive exponential method (`etdrk32.rs`).
    Etdrk32,
    ETDRK32
);
exp_method!(
    /// ETDRK4 (Cox–Matthews, Kassam–Trefethen form), order 4, fixed steps
    /// (`etdrk4.rs`).
    Etdrk4,
    ETDRK4
);
exp_method!(
    /// Krogstad's fourth-order method (stiff order 3), fixed steps
    /// (`krogstad.rs`).
    Krogstad,
    KROGSTAD
);
exp_method!(
    /// Hochbruck & Ostermann's five-stage method of stiff order 4, fixed
    /// steps (`hochbruck_ostermann.rs`).
    HochbruckOstermann,
    HOCHBRUCK_OSTERMANN
);
