//! `Cache` op sequences on a manual clock, against a reference map of what may be live.
//! The cache may forget (evict) an entry, but it must never hold more than its capacity
//! (count and weight), never return a value that was replaced, removed or cleared, and never
//! return one past its time-to-live or time-to-idle.
#![no_main]

use std::collections::HashMap;
use std::time::Duration;

use arbitrary::Arbitrary;
use keel_cache::Cache;
use keel_core::ManualClock;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Config {
    capacity: u8,
    shards_log: u8,
    ttl: Option<u16>,
    tti: Option<u16>,
    weighted: bool,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Insert(u8, u32),
    InsertTtl(u8, u32, u16),
    Get(u8),
    Peek(u8),
    Contains(u8),
    Remove(u8),
    Advance(u16),
    Clear,
    PurgeExpired,
    ForEach,
}

// The value is stored with its key folded in, so a value from another key is caught too.
fn value(k: u8, v: u32) -> u64 {
    (u64::from(k) << 32) | u64::from(v)
}

fn weight(v: &u64) -> u32 {
    (*v as u32 % 3) + 1
}

/// One model entry: value, write deadline and idle deadline, in nanoseconds.
#[derive(Clone, Copy, Debug)]
struct Entry {
    value: u64,
    dies: u64,
    idles: u64,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        now < self.dies && now < self.idles
    }
}

fuzz_target!(|input: (Config, Vec<Op>)| {
    let (config, ops) = input;
    let capacity = u64::from(config.capacity % 32) + 1;
    let shards = 1usize << (config.shards_log % 3);
    let clock = ManualClock::new();
    let mut builder = Cache::builder()
        .max_capacity(capacity)
        .shards(shards)
        .per_entry_expiry()
        .clock(clock.clone());
    // Durations in milliseconds, so a few advances cross them.
    let ms = |n: u16| u64::from(n) * 1_000_000;
    if let Some(t) = config.ttl {
        builder = builder.time_to_live(Duration::from_nanos(ms(t)));
    }
    if let Some(t) = config.tti {
        builder = builder.time_to_idle(Duration::from_nanos(ms(t)));
    }
    if config.weighted {
        builder = builder.weigher(|_k: &u8, v: &u64| weight(v));
    }
    let Ok(cache) = builder.build() else {
        // Only a shard count above the capacity may be refused here.
        assert!(shards as u64 > capacity || config.ttl == Some(0) || config.tti == Some(0));
        return;
    };
    let max_weight = capacity / shards as u64;
    let mut model: HashMap<u8, Entry> = HashMap::new();
    let mut now = 0u64;
    let idle = |now: u64| config.tti.map_or(u64::MAX, |t| now + ms(t));
    let write = |now: u64| config.ttl.map_or(u64::MAX, |t| now + ms(t));
    for op in ops {
        match op {
            Op::Insert(k, v) => {
                let v = value(k, v);
                let heavy = config.weighted && u64::from(weight(&v)) > max_weight;
                assert_eq!(cache.try_insert(k, v).is_err(), heavy);
                if !heavy {
                    model.insert(
                        k,
                        Entry {
                            value: v,
                            dies: write(now),
                            idles: idle(now),
                        },
                    );
                }
            }
            Op::InsertTtl(k, v, t) => {
                let v = value(k, v);
                let heavy = config.weighted && u64::from(weight(&v)) > max_weight;
                let result = cache.insert_with_ttl(k, v, Duration::from_nanos(ms(t)));
                assert_eq!(result.is_err(), heavy);
                if !heavy {
                    let dies = (now + ms(t)).min(write(now));
                    model.insert(
                        k,
                        Entry {
                            value: v,
                            dies,
                            idles: idle(now),
                        },
                    );
                }
            }
            Op::Get(k) => {
                let got = cache.get(&k);
                let live = model.get(&k).filter(|e| e.live(now)).map(|e| e.value);
                if let Some(g) = got {
                    assert_eq!(Some(g), live, "key {k} at {now}: {:?}", model.get(&k));
                    // A read extends the idle deadline.
                    if let Some(e) = model.get_mut(&k) {
                        e.idles = idle(now);
                    }
                }
            }
            Op::Peek(k) => {
                if let Some(g) = cache.peek(&k) {
                    let live = model.get(&k).filter(|e| e.live(now)).map(|e| e.value);
                    assert_eq!(Some(g), live, "peek {k} at {now}");
                }
            }
            Op::Contains(k) => {
                if cache.contains_key(&k) {
                    assert!(
                        model.get(&k).is_some_and(|e| e.live(now)),
                        "contains {k} at {now}"
                    );
                }
            }
            Op::Remove(k) => {
                let got = cache.remove(&k);
                let live = model.remove(&k).filter(|e| e.live(now)).map(|e| e.value);
                if got.is_some() {
                    assert_eq!(got, live, "remove {k} at {now}");
                }
                assert_eq!(cache.get(&k), None, "a removed key came back");
            }
            Op::Advance(t) => {
                let by = u64::from(t) * 10_000;
                clock.advance(Duration::from_nanos(by));
                now += by;
            }
            Op::Clear => {
                cache.clear();
                model.clear();
                assert_eq!(cache.entry_count(), 0);
            }
            Op::PurgeExpired => {
                cache.purge_expired();
                model.retain(|_, e| e.live(now));
            }
            Op::ForEach => {
                let mut seen = Vec::new();
                cache.for_each(|k, v| seen.push((*k, *v)));
                for (k, v) in seen {
                    let live = model.get(&k).filter(|e| e.live(now)).map(|e| e.value);
                    assert_eq!(Some(v), live, "for_each gave {k} at {now}");
                }
            }
        }
        assert!(
            cache.entry_count() <= capacity,
            "{} over {capacity}",
            cache.entry_count()
        );
        assert!(cache.weighted_size() <= capacity);
        if !config.weighted {
            assert_eq!(cache.weighted_size(), cache.entry_count());
        }
    }
});
