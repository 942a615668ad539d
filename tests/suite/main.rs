//! The integration tests, as one test binary (one link instead of one per
//! file: most of a fresh `cargo test` is compiling and linking). Tests that
//! install their own global allocator (`no_alloc_per_step`, `sensitivities_alloc`,
//! `adjoint_memory`) stay separate binaries in `tests/`.
//!
//! Run one file's tests with `cargo test --test suite <file>::`, e.g.
//! `cargo test --test suite faults::`.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod brownian;
mod closures;
mod custom_controller;
mod diffusion;
mod diffusion_adjoint;
mod diffusion_conditioning;
mod diffusion_fast;
mod diffusion_gradients;
mod diffusion_multistep;
mod diffusion_sde;
mod diffusion_stochastic;
mod diffusion_v3;
mod discontinuities;
mod drivers;
mod ensemble;
mod expint;
mod expint_complex;
mod expint_sde;
mod expint_sde_covariance;
mod expint_stiff_order;
mod extension;
mod extension_sde;
mod faults;
mod fractional;
mod fractional_modal;
mod fractional_posterior;
mod fractional_sde;
mod gradients;
mod interpolant;
mod kuramoto_sivashinsky;
mod ode_adaptive;
mod ode_convergence;
mod properties;
mod regularize;
mod sde;
mod sde_checkpointing;
mod sde_convergence;
mod sde_gradients;
mod sde_work;
mod sensitivities;
mod stable_sde;
mod step_control;
mod step_vjp;
mod stiff;
mod stiff_gradients;
mod train;
