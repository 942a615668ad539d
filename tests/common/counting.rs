//! A global allocator that counts allocations, for the tests that check
//! that solves do not allocate per step (included with `#[path]` by those
//! test files only). It counts per thread: the test harness's own thread
//! allocates at random moments (a few allocations while it reports the
//! running test), which a process-wide count saw inside the first
//! measured solve (seen in CI: 19 vs 23 allocations).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Forwards to `System`, counting allocations and reallocations.
pub struct Counting;

thread_local! {
    /// Allocations and reallocations so far on this thread (a constant
    /// initialiser and no destructor: readable at any point of a thread's
    /// life, without allocating).
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

/// Counts one allocation on the current thread.
fn tally() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

/// Allocations and reallocations so far on the current thread.
fn allocs() -> usize {
    ALLOCS.try_with(Cell::get).unwrap_or(0)
}

// SAFETY: forwards every call unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        tally();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        tally();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The allocations made on this thread while `f` runs, and its result.
pub fn count<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = allocs();
    let out = f();
    (allocs() - before, out)
}
