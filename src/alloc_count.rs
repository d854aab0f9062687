//! Allocation counting for benchmarks (cargo feature `alloc-count`, off by
//! default). `main.rs` installs [`Counting`] as the global allocator; the
//! Prometheus endpoint exports [`allocations`] as
//! `shardmq_allocations_total`, and the broker prints `allocations: N` on
//! stderr when it exits. `scripts/bench-peers.sh` reads the counter before
//! and after a fixed number of sends to get allocations per request.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

/// `std::alloc::System` plus two relaxed counters: calls to `alloc`,
/// `alloc_zeroed` and `realloc` (each a request for new memory), and the
/// bytes they asked for.
pub struct Counting;

// SAFETY: every method forwards its arguments unchanged to the matching
// method of `System`, which upholds the `GlobalAlloc` contract, and returns
// System's result unchanged. The only other work is a relaxed atomic add on
// a static, which neither allocates nor unwinds, so no allocator re-entry
// and no panic can happen inside these methods.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: `ptr` came from `System` with `layout`; the caller's
        // contract for `realloc` is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count(bytes: usize) {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    ALLOCATED_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// Allocations (alloc, alloc_zeroed, realloc) since the process started.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Bytes requested by those allocations.
pub fn allocated_bytes() -> u64 {
    ALLOCATED_BYTES.load(Ordering::Relaxed)
}
