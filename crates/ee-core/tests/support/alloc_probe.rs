//! A global allocator for the fuzz tests: it records the largest single allocation that the
//! current thread asks for while [`largest_allocation`] runs, so a test can assert that a reader
//! never allocates from a length field more than the file it reads can hold.
//!
//! Shared by the fuzz tests of ee-core, ee-data and ee-eval (each includes this file with
//! `#[path]`; a test binary has one global allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// [`System`], recording allocation sizes on threads inside [`largest_allocation`].
pub struct Probe;

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    // `try_with`: thread-locals may be gone while a thread exits.
    let _ = ACTIVE.try_with(|active| {
        if active.get() {
            let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Probe {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` and returns its result with the largest single allocation (in bytes) it made on
/// this thread.
pub fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            ACTIVE.with(|a| a.set(false));
        }
    }
    LARGEST.with(|l| l.set(0));
    ACTIVE.with(|a| a.set(true));
    let reset = Reset;
    let out = f();
    drop(reset);
    (out, LARGEST.with(Cell::get))
}
