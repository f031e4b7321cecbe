//! Building a cache allocates by its shard count, not by its capacity, and a cache then
//! grows with what it holds: no accepted configuration allocates its capacity up front.
//! Measured with a counting global allocator (this binary's only test, so no other test's
//! allocations are counted).

use keel_cache::{Cache, MAX_CACHE_CAPACITY};
use keel_testkit::CountingAllocator;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator::new();

/// Live bytes `f`'s result holds.
fn held<T>(f: impl FnOnce() -> T) -> (T, isize) {
    let before = ALLOCATOR.live_bytes();
    let value = f();
    (value, ALLOCATOR.live_bytes() - before)
}

/// What one shard may cost before it holds anything: its lock and counters, its policy's
/// lists and a 16-entry sketch.
const PER_SHARD: isize = 1_024;

/// The same for a shard under 128 entries, whose sketch is four times wider.
const TINY_PER_SHARD: isize = 1_536;

#[test]
fn building_allocates_by_shards_and_inserting_by_entries() {
    // 8 billion entries: about 8 GiB of sketch if sized up front.
    let (cache, bytes) = held(|| Cache::<u64, u64>::new(8_000_000_000).unwrap());
    let shards = format!("{cache:?}");
    println!("build 8e9: {bytes} bytes ({shards})");
    assert!(bytes < 64 * 1024, "{bytes} bytes at build: {shards}");
    let (_, bytes) = held(|| {
        for k in 0..10_000u64 {
            cache.insert(k, k);
        }
    });
    // Nodes, table, slab growth and sketch for 10,000 entries: well under 200 bytes each.
    assert!(bytes < 2_000_000, "{bytes} bytes for 10,000 entries");
    assert_eq!(cache.entry_count(), 10_000);
    drop(cache);

    // The largest capacity with the most shards: 65,536 policies, each empty.
    let (cache, bytes) = held(|| {
        Cache::<u64, u64>::builder()
            .max_capacity(MAX_CACHE_CAPACITY)
            .shards(1 << 16)
            .build()
            .unwrap()
    });
    assert!(bytes < PER_SHARD * (1 << 16), "{bytes} bytes at build");
    let (_, grown) = held(|| {
        for k in 0..100_000u64 {
            cache.insert(k, k);
        }
    });
    // About 1.5 entries per shard: each shard's first slab and table, no more (measured 69 bytes each).
    println!("65,536 shards: {bytes} bytes at build, {grown} for 100,000 entries");
    assert!(grown < 200 * 100_000, "{grown} bytes for 100,000 entries");
    drop(cache);

    // 65,536 shards of 127 entries, whose sketch is four words per entry (`shard.rs`,
    // `TINY_SKETCH_WIDTH`): a 16-entry sketch of 512 bytes instead of 128 at build.
    let (cache, bytes) = held(|| {
        Cache::<u64, u64>::builder()
            .max_capacity(127 << 16)
            .shards(1 << 16)
            .build()
            .unwrap()
    });
    println!("65,536 shards of 127: {bytes} bytes at build");
    assert!(bytes < TINY_PER_SHARD * (1 << 16), "{bytes} bytes at build");
    drop(cache);

    // The same with a weigher (capacity in bytes).
    let (cache, bytes) = held(|| {
        Cache::<u64, Vec<u8>>::builder()
            .max_capacity(MAX_CACHE_CAPACITY)
            .weigher(|_k, v: &Vec<u8>| v.len() as u32)
            .shards(1 << 16)
            .build()
            .unwrap()
    });
    assert!(bytes < PER_SHARD * (1 << 16), "{bytes} bytes at build");
    cache.insert(1, vec![0; 10]);
    assert_eq!(cache.weighted_size(), 10);
}
