//! Memory accounting for expression evaluation. The `stepgate` binary's global allocator
//! is [`Metered`]: it counts, per thread, the bytes allocated while a JSONata evaluation
//! runs there ([`metered`]), and once an evaluation's net allocations pass its budget it
//! cancels the evaluation, which stops at its next checkpoint (the vendored jsonata-core
//! polls its cancel flag in every node and in the loops of its builtins that build large
//! values). So a runaway expression fails its state with an error, instead of the process
//! aborting on an allocation failure and taking every other execution with it.
//!
//! Outside an evaluation the cost is one thread-local flag read per allocation. A program
//! that links the library without this allocator (the library's own unit tests) runs
//! evaluations unmetered: their other bounds (time, depth, sequence length) still hold.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

/// A global allocator that meters what the evaluation running on the current thread
/// allocates, around another allocator (mimalloc in the binary).
pub struct Metered<A>(pub A);

thread_local! {
    /// Whether an evaluation with a budget runs on this thread.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    /// Net bytes allocated on this thread since the evaluation began (frees of older
    /// memory make it negative, which only gives the evaluation more room).
    static USED: Cell<isize> = const { Cell::new(0) };
    static LIMIT: Cell<isize> = const { Cell::new(isize::MAX) };
    static TRIPPED: Cell<bool> = const { Cell::new(false) };
    /// What to call once when the budget is passed: the evaluation's cancel token.
    static ON_TRIP: Cell<Option<&'static (dyn Fn() + Sync)>> = const { Cell::new(None) };
}

#[inline]
fn charge(bytes: isize) {
    // `try_with`: an allocation during thread teardown must not panic in the allocator.
    if !ACTIVE.try_with(Cell::get).unwrap_or(false) {
        return;
    }
    let _ = USED.try_with(|used| {
        let now = used.get().saturating_add(bytes);
        used.set(now);
        if bytes > 0 && now > LIMIT.with(Cell::get) && !TRIPPED.with(Cell::get) {
            TRIPPED.with(|t| t.set(true));
            if let Some(trip) = ON_TRIP.with(Cell::get) {
                trip();
            }
        }
    });
}

// SAFETY: every call is forwarded unchanged to the inner allocator; the metering around it
// touches only const-initialized thread-locals without destructors, and never allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Metered<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        charge(layout.size() as isize);
        self.0.alloc(layout)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        charge(layout.size() as isize);
        self.0.alloc_zeroed(layout)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        charge(-(layout.size() as isize));
        self.0.dealloc(ptr, layout)
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        charge(new_size as isize - layout.size() as isize);
        self.0.realloc(ptr, layout, new_size)
    }
}

/// mimalloc, asked plainly (`mi_malloc`) wherever its natural alignment is enough, which is
/// nearly always: the `mimalloc` crate calls `mi_malloc_aligned` for every allocation, whose
/// extra checks cost a few percent of an interpreter step that allocates (callgrind,
/// BENCHMARKS.md). mimalloc aligns a block to 16 bytes, or to its size when smaller.
pub struct Mimalloc;

/// Whether `mi_malloc` of `size` bytes is aligned to `align` (mimalloc's own test).
#[inline]
fn natural(size: usize, align: usize) -> bool {
    align <= 16 && align <= size
}

// SAFETY: each call goes to the mimalloc function for the same request; a block from either
// kind of call is freed by `mi_free` and resized by either kind of `mi_realloc`.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        if natural(size, align) {
            libmimalloc_sys::mi_malloc(size) as *mut u8
        } else {
            libmimalloc_sys::mi_malloc_aligned(size, align) as *mut u8
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        if natural(size, align) {
            libmimalloc_sys::mi_zalloc(size) as *mut u8
        } else {
            libmimalloc_sys::mi_zalloc_aligned(size, align) as *mut u8
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        libmimalloc_sys::mi_free(ptr as *mut std::ffi::c_void)
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = ptr as *mut std::ffi::c_void;
        if natural(new_size, layout.align()) {
            libmimalloc_sys::mi_realloc(p, new_size) as *mut u8
        } else {
            libmimalloc_sys::mi_realloc_aligned(p, new_size, layout.align()) as *mut u8
        }
    }
}

/// Runs `f` on this thread with a budget of `bytes` net allocations; once they pass it,
/// `on_trip` is called (once). Returns what `f` returned and whether the budget was passed.
/// Nested calls run under the outer budget only.
pub fn metered<R>(bytes: usize, on_trip: &(dyn Fn() + Sync), f: impl FnOnce() -> R) -> (R, bool) {
    if ACTIVE.with(Cell::get) {
        return (f(), false);
    }
    // SAFETY: the reference is only called while `f` runs (the guard below clears it on
    // every way out, unwinding included), and `on_trip` outlives that.
    let trip: &'static (dyn Fn() + Sync) = unsafe { std::mem::transmute(on_trip) };
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            ACTIVE.with(|a| a.set(false));
            ON_TRIP.with(|t| t.set(None));
        }
    }
    USED.with(|u| u.set(0));
    LIMIT.with(|l| l.set(isize::try_from(bytes).unwrap_or(isize::MAX)));
    TRIPPED.with(|t| t.set(false));
    ON_TRIP.with(|t| t.set(Some(trip)));
    ACTIVE.with(|a| a.set(true));
    let reset = Reset;
    let r = f();
    drop(reset);
    (r, TRIPPED.with(Cell::get))
}

/// Whether the evaluation running on this thread has passed its budget: what a loop of
/// ours that builds a value from an evaluation's result polls.
pub fn exhausted() -> bool {
    ACTIVE.with(Cell::get) && TRIPPED.with(Cell::get)
}

/// Hands the pages of the daemon's own code and read-only data back to the kernel once it is
/// up (and after each reload): much of the binary ran once, to read the config, check and
/// compile the workflows and open the store, and the kernel maps code 64 KiB around each page
/// it runs, so after start-up about 12 MiB of it stays resident while the idle daemon needs
/// a quarter of that. What runs again (a request, a message, a tick) comes back from the page
/// cache, or from disk after reclaim, at its first use. Returns the bytes advised; nothing
/// happens outside Linux.
pub fn page_out_startup_code() -> usize {
    #[cfg(target_os = "linux")]
    {
        let (Ok(exe), Ok(maps)) =
            (std::fs::read_link("/proc/self/exe"), std::fs::read_to_string("/proc/self/maps"))
        else {
            return 0;
        };
        let mut advised = 0;
        for line in maps.lines() {
            let mut parts = line.split_whitespace();
            let (Some(range), Some(perms)) = (parts.next(), parts.next()) else { continue };
            // Only the file's own clean pages: never the writable data, which holds state.
            if perms.contains('w') || parts.nth(3).map(std::path::Path::new) != Some(exe.as_path()) {
                continue;
            }
            let Some((a, b)) = range.split_once('-') else { continue };
            let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
                continue;
            };
            // SAFETY: advice on a mapping of this process's own executable, which stays
            // mapped; MADV_PAGEOUT changes no content, only where it is kept.
            if unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_PAGEOUT) } == 0 {
                advised += b - a;
            }
        }
        advised
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}
