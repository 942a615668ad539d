//! Diffusion-model samplers: the probability-flow ODE of a diffusion model
//! as a problem family ([`DiffusionOde`]), noise schedules, model
//! parametrisations and their conversions, time grids, and the samplers as
//! solvers of that family, driven by the same loop (fixed steps on a grid)
//! with the same statistics as every other solver. Any ODE solver (Tsit5,
//! Vern7) solves the same problem as a reference.
//!
//! Sources and formulas: `../shared/reference/diffusion.md` (schedules,
//! parametrisations, grids, samplers, test bed) and `exponential.md` §4–5
//! (DPM-Solver, DPM-Solver++, the Gaussian-mixture test). Each sampler's
//! file cites its paper.
//!
//! - schedules: [`VpLinear`], [`VpCosine`], [`DiscreteVp`], [`Ve`], [`Edm`],
//!   [`RectifiedFlow`] ([`NoiseSchedule`]);
//! - models: closures in any [`Parametrisation`], [`ProbabilityFlow`],
//!   [`probability_flow`];
//! - grids: [`TimeGrid`];
//! - samplers ([`Sampler`]): [`Ddim`] (= [`DpmSolver1`]), [`PfEuler`],
//!   [`EdmHeun`], [`DpmSolver2`], [`DpmSolver3`], [`DpmSolverFast`]
//!   (singlestep, exactly a budget of evaluations), [`DpmSolverPP2S`],
//!   [`DpmSolverPP2M`], [`DpmSolverPP3M`], [`DpmSolver2M`] and
//!   [`DpmSolver3M`] (multistep on the noise prediction), [`Deis`] (tAB), [`Pndm`],
//!   [`Plms`], [`IPndm`], [`Lms`], [`UniPc`], [`DpmSolverV3`] (with the
//!   empirical model statistics [`Ems`], any grid);
//! - reverse-SDE samplers (the family [`DiffusionSde`], noise from the
//!   problem's driver): [`ReverseEulerMaruyama`], [`DdpmAncestral`],
//!   [`SdeDpmSolver1`], [`SdeDpmSolverPP2M`], [`LangevinPc`];
//! - stochastic DDIM and EDM on the reverse SDE: [`DdimEta`] (`η ∈ [0, 1]`)
//!   and [`EdmChurn`] (EDM's churn + Heun), both with a step VJP;
//! - DPM-Solver-v3's empirical model statistics: [`Ems`], estimated from
//!   a model by [`Ems::estimate`] ([`EmsOptions`], [`EmsStats`]);
//! - adaptive (a [`crate::solver::Solver`] of the adaptive loop):
//!   [`AdaptiveDpmSolver`] (DPM-Solver-12 and -23);
//! - gradients: models with a VJP ([`ModelVjp`], [`ModelWithVjp`], or
//!   `Generic` fields) make the flow differentiable; every sampler has a
//!   step VJP for the discrete adjoint ([`SamplerVjp`]: DDIM,
//!   probability-flow Euler, EDM Heun, DPM-Solver-2, -3 and -fast, ++2S, ++2M,
//!   ++3M, 2M, 3M, DEIS, PNDM, PLMS, iPNDM, LMS, UniPC and DPM-Solver-v3 — their
//!   corrected states' cotangents carried —; on the reverse SDE, Euler–Maruyama, DDPM
//!   ancestral, SDE-DPM-Solver-1, ++(2M) and the Langevin
//!   predictor–corrector, whose noise the discrete adjoint replays), and
//!   so does [`AdaptiveDpmSolver`] on the accepted steps it replays
//!   (`grad` differentiates with respect to the initial noise `x_T` and
//!   the parameters `p`);
//! - closed-form test bed: [`GaussianMixture`], [`DiagonalGaussian`],
//!   [`sliced_wasserstein`];
//! - stochastic interpolants ([`Interpolant`]: [`Linear`],
//!   [`Trigonometric`], noise scales [`Gamma`]): the probability-flow ODE
//!   [`interpolant_ode`] for any ODE solver, the SDE family
//!   [`interpolant_sde`] (tunable `ε(t)`, noise from the driver) for the SDE
//!   solvers, `b` from `v` and `s` ([`VelocityFromVs`]), and the closed-form
//!   bed [`InterpolantMixture`].
//!
//! # Conditioning
//!
//! There is no separate conditioning input: a conditional model reads its
//! condition `c` (a class embedding, a prompt vector, …) from a slice of
//! the problem's parameter vector that it documents, e.g.
//! `p = [weights…, c…]` with `c = p[w..]`. Sampling for another condition
//! is a solve with other parameters, and the gradient of a loss of the
//! samples with respect to `c` is the matching slice of `grad`'s `dp`,
//! through any sampler with a step VJP, on the probability-flow ODE or the
//! reverse SDE alike (`tests/suite/diffusion_conditioning.rs` checks it
//! against central differences).

mod adaptive;
mod ddim;
mod ddim_eta;
mod ddpm;
mod deis;
mod discrete;
mod dpm_solver2;
mod dpm_solver3;
mod dpm_solver_fast;
mod dpm_solver_multistep;
mod dpm_solver_v3;
mod dpmpp_2s;
mod edm_churn;
mod edm_heun;
mod ems;
mod ems_estimate;
mod grid;
mod interpolant;
mod interpolant_flow;
mod interpolant_testbed;
mod lagrange;
mod langevin_pc;
mod lms;
mod model;
mod model_vjp;
mod pf_euler;
mod pndm;
mod reverse_em;
mod reverse_sde;
mod sampler;
mod sampler_vjp;
mod schedule;
mod sde_dpm_solver1;
mod sde_dpmpp_2m;
mod testbed;
mod unipc;

pub use adaptive::{AdaptiveCache, AdaptiveDpmSolver, AdaptivePair};
pub use ddim::{Ddim, DpmSolver1};
pub use ddim_eta::DdimEta;
pub use ddpm::{DdpmAncestral, DdpmVariance};
pub use deis::Deis;
pub use discrete::DiscreteVp;
pub use dpm_solver_fast::DpmSolverFast;
pub use dpm_solver_multistep::{
    DpmSolver2M, DpmSolver3M, DpmSolverPP2M, DpmSolverPP3M, SecondDifference,
};
pub use dpm_solver_v3::DpmSolverV3;
pub use dpm_solver2::DpmSolver2;
pub use dpm_solver3::DpmSolver3;
pub use dpmpp_2s::DpmSolverPP2S;
pub use edm_churn::EdmChurn;
pub use edm_heun::EdmHeun;
pub use ems::Ems;
pub use ems_estimate::{EmsEstimate, EmsOptions, EmsStats};
pub use grid::TimeGrid;
pub use interpolant::{Gamma, Interpolant, InterpolantCoefficients, Linear, Trigonometric};
pub use interpolant_flow::{
    Diffusivity, InterpolantDrift, InterpolantNoise, InterpolantSde, SdeDirection, VelocityFromVs,
    interpolant_ode, interpolant_sde,
};
pub use interpolant_testbed::{InterpolantMixture, InterpolantMixtureScore};
pub use langevin_pc::LangevinPc;
pub use lms::Lms;
pub use model::{DiffusionOde, Model, Parametrisation, ProbabilityFlow, probability_flow};
pub use model_vjp::{FlowVjp, ModelVjp, ModelWithVjp};
pub use pf_euler::PfEuler;
pub use pndm::{IPndm, Plms, Pndm};
pub use reverse_em::ReverseEulerMaruyama;
pub use reverse_sde::{DiffusionSde, ReverseNoise, ReverseSde, reverse_sde, reverse_sde_field};
pub use sampler::{Advance, History, Sampler, SamplerCache};
pub use sampler_vjp::{AdvanceVjp, SamplerVjp, SamplerVjpWork};
pub use schedule::{Edm, NoiseSchedule, RectifiedFlow, Ve, VpCosine, VpLinear};
pub use sde_dpm_solver1::SdeDpmSolver1;
pub use sde_dpmpp_2m::{SdeDpmSolverPP2M, SdeSolverType};
pub use testbed::{DiagonalGaussian, GaussianMixture, sliced_wasserstein};
pub use unipc::{BhVariant, UniPc};
