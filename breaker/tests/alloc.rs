//! The closed path allocates nothing: a counting global allocator watches a thousand
//! guarded calls, permits and bulkhead slots.

use keel_breaker::{Bulkhead, CircuitBreaker, Window};
use keel_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator::new();

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

    let before = GLOBAL.allocations();
    for i in 0..1_000u32 {
        let _ = count.call(|| if i % 7 == 0 { Err(i) } else { Ok(i) });
        let _ = time.call(|| if i % 7 == 0 { Err(i) } else { Ok(i) });
        count.try_acquire().unwrap().success();
        let _ = bulkhead.call(|| i);
    }
    let after = GLOBAL.allocations();
    assert_eq!(after - before, 0, "the closed path allocated");
}
