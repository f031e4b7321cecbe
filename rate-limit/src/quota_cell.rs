//! `QuotaCell`: the live quota of a limiter, read on every check without a lock.

use keel_core::sync::atomic::{AtomicU64, Ordering, fence};

use crate::Quota;

/// A seqlock over the quota's three words, private to one limiter.
///
/// Every check reads the quota, and `set_quota` may replace it at any time, so reads must see
/// one whole quota, never half of two. A per-limiter seqlock costs a reader five plain loads
/// of one cache line that nobody writes in steady state; `crossbeam`'s `AtomicCell` did the
/// same through a global lock table (an address hash and a second cache line per check).
pub(crate) struct QuotaCell {
    // Even: stable. Odd: a writer is between its first and last word.
    seq: AtomicU64,
    words: [AtomicU64; 3],
}

impl QuotaCell {
    pub(crate) fn new(quota: Quota) -> QuotaCell {
        let [a, b, c] = quota.to_words();
        QuotaCell {
            seq: AtomicU64::new(0),
            words: [AtomicU64::new(a), AtomicU64::new(b), AtomicU64::new(c)],
        }
    }

    #[inline]
    pub(crate) fn load(&self) -> Quota {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            let a = self.words[0].load(Ordering::Relaxed);
            let b = self.words[1].load(Ordering::Relaxed);
            let c = self.words[2].load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            let after = self.seq.load(Ordering::Relaxed);
            if before == after && before & 1 == 0 {
                return Quota::from_words([a, b, c]);
            }
            keel_core::sync::spin_loop();
        }
    }

    pub(crate) fn store(&self, quota: Quota) {
        // Writers take the odd stamp in turn, so two stores never interleave their words.
        let mut seq = self.seq.load(Ordering::Relaxed);
        loop {
            if seq & 1 == 1 {
                keel_core::sync::spin_loop();
                seq = self.seq.load(Ordering::Relaxed);
                continue;
            }
            match self.seq.compare_exchange_weak(
                seq,
                seq.wrapping_add(1),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => seq = actual,
            }
        }
        fence(Ordering::Release);
        for (word, value) in self.words.iter().zip(quota.to_words()) {
            word.store(value, Ordering::Relaxed);
        }
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }
}

#[cfg(all(test, not(keel_loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stores_and_loads_whole_quotas() {
        let first = Quota::per_second(10).unwrap().with_burst(3).unwrap();
        let second = Quota::with_period(7, Duration::from_millis(700)).unwrap();
        let cell = QuotaCell::new(first);
        assert_eq!(cell.load(), first);
        cell.store(second);
        assert_eq!(cell.load(), second);
    }

    #[test]
    fn readers_never_see_half_a_quota() {
        let a = Quota::per_second(10).unwrap().with_burst(3).unwrap();
        let b = Quota::per_hour(1_000).unwrap();
        let cell = std::sync::Arc::new(QuotaCell::new(a));
        let writer = {
            let cell = cell.clone();
            std::thread::spawn(move || {
                for i in 0..20_000 {
                    cell.store(if i % 2 == 0 { b } else { a });
                }
            })
        };
        for _ in 0..20_000 {
            let seen = cell.load();
            assert!(seen == a || seen == b, "{seen:?}");
        }
        writer.join().unwrap();
    }
}
