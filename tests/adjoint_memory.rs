//! Memory of the adjoints, measured rather than reported: a global
//! allocator tracks the peak of live heap bytes during a gradient call, for
//! 500 and 5000 steps (5000 and 50000 for the checkpointed discrete
//! adjoints) of an 8-dimensional problem (a state is 64 bytes).
//! The checkpointed discrete adjoint stores nothing per step, for every
//! solver — reversible Heun too, whose carried state `(ŷ, f(ŷ), g(ŷ))` is
//! in its snapshots and records (the snapshots restart a replay that
//! regenerates the step sequence, so not even step times are kept: the
//! peak grows only with the levels of recomputation, logarithmically);
//! the reversible and stochastic adjoints
//! grow by far less than one state per step (the reversible one keeps the
//! accepted step times, 8 bytes a step), while storing every step grows by
//! at least a state per step. (This file holds a single test, so no other
//! test thread allocates while it measures.)

// A measuring global allocator has to implement the unsafe `GlobalAlloc`
// trait; it only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use sdeflow::prelude::*;

mod common;
use common::{Proportional, Ring, sum_loss as loss};

struct Measuring;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grow(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards every call unchanged to the system allocator.
unsafe impl GlobalAlloc for Measuring {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grow(new_size);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Measuring = Measuring;

/// Peak live bytes above the level at the call's start.
fn peak_bytes<T>(f: impl FnOnce() -> T) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    drop(out);
    PEAK.load(Ordering::Relaxed) - base
}

const N: usize = 8;

/// Bytes per extra step between `small` and `10 · small` steps.
fn per_step_from(small: usize, run: impl Fn(usize) -> usize) -> f64 {
    // warm up thread-local scratch buffers first
    run(10);
    let (lo, hi) = (run(small), run(10 * small));
    (hi as f64 - lo as f64) / (9 * small) as f64
}

/// Bytes per extra step between 500 and 5000 steps.
fn per_step(run: impl Fn(usize) -> usize) -> f64 {
    per_step_from(500, run)
}

#[test]
fn adjoint_memory_per_step() {
    let state = (N * 8) as f64;
    let sde = Problem::sde_field(
        Generic(Ring),
        Generic(Proportional),
        Noise::Diagonal,
        vec![0.1; N],
        (0.0, 1.0),
    )
    .params(vec![0.5, 0.2, 0.3])
    .interpretation(Interpretation::Stratonovich);
    let opts = |steps: usize| {
        Options::default()
            .fixed_step(1.0 / steps as f64)
            .max_steps(1_000_000)
            .save_at(SaveAt::T1)
    };
    let sde = &sde;
    let sde_grad = |adjoint: Adjoint| {
        move |steps: usize| {
            peak_bytes(|| grad(sde, ReversibleHeun, opts(steps), &loss, adjoint).expect("grad"))
        }
    };
    let rev = per_step(sde_grad(Adjoint::Reversible));
    let sto = per_step(sde_grad(Adjoint::Stochastic));
    let dis = per_step_from(5000, sde_grad(Adjoint::Discrete { checkpoints: 16 }));
    let dis_all = per_step(sde_grad(Adjoint::STORE_ALL));
    let ito = sde.clone().interpretation(Interpretation::Ito);
    let em_ckpt = per_step_from(5000, |steps| {
        peak_bytes(|| {
            grad(
                &ito,
                EulerMaruyama,
                opts(steps),
                &loss,
                Adjoint::Discrete { checkpoints: 16 },
            )
            .expect("grad")
        })
    });
    let em_all = per_step(|steps| {
        peak_bytes(|| {
            grad(&ito, EulerMaruyama, opts(steps), &loss, Adjoint::STORE_ALL).expect("grad")
        })
    });
    let ode =
        Problem::ode_field(Generic(Ring), vec![0.1; N], (0.0, 1.0)).params(vec![0.5, 0.2, 0.3]);
    let ode = &ode;
    let ode_grad = |checkpoints: usize| {
        move |steps: usize| {
            peak_bytes(|| {
                grad(
                    ode,
                    Tsit5,
                    opts(steps),
                    &loss,
                    Adjoint::Discrete { checkpoints },
                )
                .expect("grad")
            })
        }
    };
    let ode_ckpt = per_step_from(5000, ode_grad(16));
    let ode_all = per_step(ode_grad(usize::MAX));
    println!(
        "bytes per extra step (a state is {state} bytes): reversible {rev:.1}, stochastic {sto:.1}, \
         reversible-Heun discrete budget 16 {dis:.1}, store all {dis_all:.1}; Euler–Maruyama \
         discrete budget 16 {em_ckpt:.1}, store all {em_all:.1}; Tsit5 discrete budget 16 \
         {ode_ckpt:.1}, store all {ode_all:.1}"
    );
    // nothing per step: less than a byte a step (step times alone would be
    // 8 bytes, up to twice that while a vector grows)
    for (name, b) in [
        ("reversible-Heun discrete budget 16", dis),
        ("Euler–Maruyama budget 16", em_ckpt),
        ("Tsit5 budget 16", ode_ckpt),
    ] {
        assert!(b < 1.0, "{name}: {b} bytes per step");
    }
    // bounded: step times at most — 8 bytes a step, up to twice that while
    // their vector doubles — far below a state per step
    for (name, b) in [("reversible", rev), ("stochastic", sto)] {
        assert!(
            b <= 2.0 * 8.0 && b < state / 4.0,
            "{name}: {b} bytes per step"
        );
    }
    // storing everything: at least a state per step
    for (name, b) in [
        ("reversible-Heun discrete store all", dis_all),
        ("Euler–Maruyama store all", em_all),
        ("Tsit5 store all", ode_all),
    ] {
        assert!(b >= state, "{name}: {b} bytes per step");
    }
}
