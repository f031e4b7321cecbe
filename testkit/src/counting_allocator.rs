//! `CountingAllocator`: the system allocator, counting what passes through it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

/// A global allocator that forwards to [`System`] and counts live heap bytes and allocation
/// calls, so a test can measure bytes per entry or prove a path never allocates.
///
/// Install it in a test or bench binary as the global allocator, then read it around the code
/// under measurement. Counts are process-wide: other threads' allocations show too.
///
/// # Example
///
/// ```
/// use keel_testkit::CountingAllocator;
///
/// #[global_allocator]
/// static ALLOCATOR: CountingAllocator = CountingAllocator::new();
///
/// let (bytes, calls) = (ALLOCATOR.live_bytes(), ALLOCATOR.allocations());
/// let buffer = vec![0u8; 4096];
/// assert_eq!(ALLOCATOR.live_bytes() - bytes, 4096);
/// assert_eq!(ALLOCATOR.allocations() - calls, 1);
/// drop(buffer);
/// assert_eq!(ALLOCATOR.live_bytes(), bytes);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct CountingAllocator {
    live_bytes: AtomicIsize,
    allocations: AtomicUsize,
}

impl CountingAllocator {
    /// An allocator with both counts at zero.
    ///
    /// ```
    /// use keel_testkit::CountingAllocator;
    ///
    /// // `const`, so it can initialize the `static` that `#[global_allocator]` needs.
    /// static ALLOCATOR: CountingAllocator = CountingAllocator::new();
    /// // Not installed here, so nothing passes through it.
    /// assert_eq!(ALLOCATOR.live_bytes(), 0);
    /// assert_eq!(ALLOCATOR.allocations(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn new() -> CountingAllocator {
        CountingAllocator {
            live_bytes: AtomicIsize::new(0),
            allocations: AtomicUsize::new(0),
        }
    }

    /// Heap bytes allocated and not yet freed since the process started.
    ///
    /// ```,standalone_crate
    /// use keel_testkit::CountingAllocator;
    ///
    /// #[global_allocator]
    /// static ALLOCATOR: CountingAllocator = CountingAllocator::new();
    ///
    /// let before = ALLOCATOR.live_bytes();
    /// let mut numbers: Vec<u64> = Vec::with_capacity(100);
    /// assert_eq!(ALLOCATOR.live_bytes() - before, 800);
    /// numbers.shrink_to(10); // a realloc counts the difference
    /// assert_eq!(ALLOCATOR.live_bytes() - before, 80);
    /// drop(numbers);
    /// assert_eq!(ALLOCATOR.live_bytes(), before);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn live_bytes(&self) -> isize {
        self.live_bytes.load(Ordering::Relaxed)
    }

    /// Calls to allocate or grow memory (`alloc`, `alloc_zeroed`, `realloc`) so far.
    ///
    /// ```,standalone_crate
    /// use keel_testkit::CountingAllocator;
    ///
    /// #[global_allocator]
    /// static ALLOCATOR: CountingAllocator = CountingAllocator::new();
    ///
    /// let calls = ALLOCATOR.allocations();
    /// let mut bytes: Vec<u8> = Vec::with_capacity(4);
    /// bytes.extend_from_slice(&[1, 2, 3, 4, 5]); // outgrows its capacity: a realloc
    /// assert_eq!(ALLOCATOR.allocations() - calls, 2);
    /// let sum: u32 = bytes.iter().map(|&b| u32::from(b)).sum(); // allocates nothing
    /// assert_eq!(sum, 15);
    /// assert_eq!(ALLOCATOR.allocations() - calls, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allocations(&self) -> usize {
        self.allocations.load(Ordering::Relaxed)
    }
}

impl Default for CountingAllocator {
    fn default() -> CountingAllocator {
        CountingAllocator::new()
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters move.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.allocations.fetch_add(1, Ordering::Relaxed);
        self.live_bytes
            .fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.live_bytes
            .fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with this layout, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.allocations.fetch_add(1, Ordering::Relaxed);
        self.live_bytes.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract, which we pass on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
