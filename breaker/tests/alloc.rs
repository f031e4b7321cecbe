//! The closed path allocates nothing: a counting global allocator watches a thousand
//! guarded calls, permits and bulkhead slots.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use keel_breaker::{Bulkhead, CircuitBreaker, Window};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts them.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn guarded_calls_do_not_allocate() {
    let count = CircuitBreaker::builder()
        .window(Window::Count(100))
        .build()
        .unwrap();
    let time = CircuitBreaker::builder()
        .window(Window::Time {
            length: std::time::Duration::from_secs(10),
            buckets: 10,
        })
        .slow_calls(50.0, std::time::Duration::from_secs(1))
        .build()
        .unwrap();
    let bulkhead = Bulkhead::new(4).unwrap();
    // Warm up anything lazily initialised (the clock's origin).
    let _ = count.call(|| Ok::<_, ()>(()));
    let _ = time.call(|| Ok::<_, ()>(()));

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 0..1_000u32 {
        let _ = count.call(|| if i % 7 == 0 { Err(i) } else { Ok(i) });
        let _ = time.call(|| if i % 7 == 0 { Err(i) } else { Ok(i) });
        count.try_acquire().unwrap().success();
        let _ = bulkhead.call(|| i);
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "the closed path allocated");
}
