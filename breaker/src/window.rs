//! The breaker's sliding windows: the last N outcomes, or the outcomes of the last T seconds.

use keel_core::Instant;
use keel_core::sync::Mutex;
use keel_core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Outcome bits stored per call.
pub(crate) const FAILED: u32 = 1;
pub(crate) const SLOW: u32 = 2;

/// Counts read from a window.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) calls: u64,
    pub(crate) failed: u64,
    pub(crate) slow: u64,
}

// Count window layout. `head` = epoch (20 bits) | sequence (44 bits): one fetch_add hands out
// a slot and the epoch it belongs to. `totals` = epoch (20) | failed (22) | slow (22). A slot
// = epoch << 2 | outcome bits. A reset bumps the epoch, so a racing writer of the old epoch
// cannot corrupt the new totals: its CAS on `totals` sees a different epoch and gives up.
const EPOCH_BITS: u32 = 20;
const EPOCH_MASK: u64 = (1 << EPOCH_BITS) - 1;
const SEQ_BITS: u32 = 64 - EPOCH_BITS;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
const COUNT_BITS: u32 = 22;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// The sequence that folds back: the call that draws it takes `FOLD` off the head, so the
/// sequence never carries into the epoch, however long a breaker stays closed (2^44 calls
/// is about 200 days at a million calls a second). Only the order in which slots are
/// reused changes, as when the low 32 bits wrap; the totals stay exact, and the window
/// stays full (`FOLD` leaves far more than the largest window).
const FOLD_AT: u64 = 1 << (SEQ_BITS - 1);
const FOLD: u64 = 1 << (SEQ_BITS - 2);

/// The largest count window. The 22-bit fields of `totals` count modulo 2^22: a writer can
/// swap out an outcome whose own writer has not yet added it, so a field may dip below zero
/// for a moment. Counts up to 2^21 - 1 are real; the upper half of the range reads as such a
/// dip, that is as zero.
pub(crate) const MAX_COUNT_WINDOW: u32 = (1 << (COUNT_BITS - 1)) - 1;

/// A 22-bit count field read as a count: a transient dip below zero reads as zero.
#[inline]
fn field(value: u64) -> u64 {
    let value = value & COUNT_MASK;
    if value > u64::from(MAX_COUNT_WINDOW) {
        0
    } else {
        value
    }
}

fn pack_totals(epoch: u64, failed: u64, slow: u64) -> u64 {
    (epoch << (2 * COUNT_BITS)) | (failed << COUNT_BITS) | slow
}

/// The outcomes of the last `size` calls, lock-free: a call costs one `fetch_add` and one
/// `swap`, plus a CAS on the totals only when the outcome differs from the one it replaces.
/// Keeps the ring head, written by every call, off the cache line of the breaker's
/// read-mostly state word.
#[derive(Debug)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

#[derive(Debug)]
pub(crate) struct CountWindow {
    head: Padded<AtomicU64>,
    totals: AtomicU64,
    slots: Box<[AtomicU32]>,
    /// `u64::MAX / len + 1`: turns `seq % len` into two multiplications (Lemire's fastmod).
    magic: u64,
}

/// `a % d` for 32-bit `a` and `d`, given `magic = u64::MAX / d + 1` (Lemire, Kaser and Kurz,
/// "Faster remainder by direct computation", 2019): a division would cost more than the
/// rest of the closed path.
#[inline]
fn fastmod(a: u32, magic: u64, d: u32) -> u32 {
    let low = magic.wrapping_mul(u64::from(a));
    ((u128::from(low) * u128::from(d)) >> 64) as u32
}

impl CountWindow {
    pub(crate) fn new(size: u32) -> CountWindow {
        CountWindow {
            head: Padded(AtomicU64::new(0)),
            totals: AtomicU64::new(0),
            slots: (0..size).map(|_| AtomicU32::new(0)).collect(),
            magic: (u64::MAX / u64::from(size)).wrapping_add(1),
        }
    }

    /// Records an outcome; returns how many calls this epoch has seen, this one included.
    #[inline]
    pub(crate) fn record(&self, outcome: u32) -> u64 {
        let head = self.head.fetch_add(1, Ordering::AcqRel);
        let epoch = head >> SEQ_BITS;
        let seq = head & SEQ_MASK;
        if seq == FOLD_AT {
            self.fold(epoch);
        }
        // The index follows the low 32 bits of the sequence: once every 2^32 calls it jumps,
        // which swaps one recent outcome for another and keeps the totals exact.
        let len = self.slots.len() as u32;
        let slot = &self.slots[fastmod(seq as u32, self.magic, len) as usize];
        let tag = (epoch as u32) << 2;
        // A healthy breaker writes the value the slot already holds (same epoch, success):
        // skip the write, so the common case costs one RMW and keeps the slot's line shared.
        // Equivalent to a swap that wrote the same value, whatever the interleaving.
        if slot.load(Ordering::Acquire) == tag | outcome {
            return seq + 1;
        }
        self.replace(slot, epoch, seq, outcome)
    }

    /// The rest of `record` when the slot's outcome changes: kept out of line so the
    /// healthy path stays small enough to inline into the caller.
    #[inline(never)]
    fn replace(&self, slot: &AtomicU32, epoch: u64, seq: u64, outcome: u32) -> u64 {
        let tag = (epoch as u32) << 2;
        let old = slot.swap(tag | outcome, Ordering::AcqRel);
        // A slot written in another epoch holds nothing of this window.
        let old = if old >> 2 == epoch as u32 { old & 3 } else { 0 };
        let seen = seq + 1;
        if old == outcome {
            return seen;
        }
        let mut current = self.totals.load(Ordering::Acquire);
        loop {
            if current >> (2 * COUNT_BITS) != epoch {
                return seen; // reset meanwhile: this call belongs to a window that is gone
            }
            let mut failed = (current >> COUNT_BITS) & COUNT_MASK;
            let mut slow = current & COUNT_MASK;
            // Modular: the old outcome's writer may not have added it yet (see MAX_COUNT_WINDOW).
            failed = failed
                .wrapping_add(u64::from(outcome & FAILED))
                .wrapping_sub(u64::from(old & FAILED));
            slow = slow
                .wrapping_add(u64::from((outcome & SLOW) >> 1))
                .wrapping_sub(u64::from((old & SLOW) >> 1));
            let next = pack_totals(epoch, failed & COUNT_MASK, slow & COUNT_MASK);
            match self.totals.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return seen,
                Err(actual) => {
                    current = actual;
                    keel_core::sync::spin_loop();
                }
            }
        }
    }

    /// Takes [`FOLD`] off the head's sequence, unless a reset has started a new epoch
    /// meanwhile (which restarts the sequence anyway).
    #[cold]
    fn fold(&self, epoch: u64) {
        let mut current = self.head.load(Ordering::Acquire);
        // Only the call that drew FOLD_AT gets here, and the sequence is at least that
        // until this folds it: the subtraction cannot borrow from the epoch.
        while current >> SEQ_BITS == epoch && current & SEQ_MASK >= FOLD_AT {
            match self.head.compare_exchange_weak(
                current,
                current - FOLD,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    pub(crate) fn counts(&self) -> Counts {
        let totals = self.totals.load(Ordering::Acquire);
        let head = self.head.load(Ordering::Acquire);
        let calls = (head & SEQ_MASK).min(self.slots.len() as u64);
        let failed = field(totals >> COUNT_BITS).min(calls);
        let slow = field(totals).min(calls);
        Counts {
            calls,
            failed,
            slow,
        }
    }

    /// Empties the window. Callers serialize resets (the breaker's transition lock).
    pub(crate) fn reset(&self) {
        let epoch = ((self.head.load(Ordering::Acquire) >> SEQ_BITS) + 1) & EPOCH_MASK;
        // Slots first, so no write of the new epoch is wiped; a late write of the old epoch
        // leaves a stale tag, which counts as empty. Clearing keeps an untouched slot from
        // aliasing a future epoch after 2^20 resets.
        // Swaps rather than stores, so each reset write is ordered after the RMWs a racing
        // writer already made: the loom model of a reset racing a record loses plain stores.
        for slot in self.slots.iter() {
            slot.swap(0, Ordering::AcqRel);
        }
        // Totals before head: a writer that still draws the old epoch then fails its CAS.
        self.totals.swap(pack_totals(epoch, 0, 0), Ordering::AcqRel);
        self.head.swap(epoch << SEQ_BITS, Ordering::AcqRel);
    }
}

/// Success counters a time window keeps beside its ring: a power of two, so a thread's slot
/// picks one with a mask.
const STRIPES: usize = 8;

thread_local! {
    /// This thread's stripe, assigned round-robin on first use.
    static STRIPE: usize = {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & (STRIPES - 1)
    };
}

/// The outcomes of the last `buckets` × `bucket_nanos` of time, in a ring of buckets with
/// running totals behind a short lock (O(1) work, amortized: a bucket is cleared once per
/// lap).
///
/// A success that can change no decision skips the lock: it adds one to its thread's
/// stripe, a counter on a cache line of its own, and the stripes are folded into the ring
/// under the lock by the next call that takes it. That holds while the call falls in the
/// newest bucket (nothing expires) and the window is quiet: no failure or slow call in it,
/// or at least the minimum of calls already, so a success can only lower a rate. Both facts
/// are one word, `quiet_until`, so the check is one load and one comparison.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    bucket_nanos: u64,
    /// `floor(2^64 / bucket_nanos)`, to find a bucket with a multiplication.
    reciprocal: u64,
    minimum_calls: u64,
    inner: Mutex<TimeRing>,
    /// The end (exclusive, in nanoseconds) of the newest bucket while the window is quiet;
    /// 0 otherwise, and while a call holds the lock. Only the end is checked: a success read
    /// before a racing thread opened the newest bucket counts in it, a bucket late at most
    /// by the race.
    quiet_until: Padded<AtomicU64>,
    stripes: Box<[Padded<AtomicUsize>]>,
}

#[derive(Debug)]
struct TimeRing {
    buckets: Box<[Counts]>,
    /// Absolute index (time / bucket length) of the newest bucket.
    newest: u64,
    /// The bucket the stripes count for (`u64::MAX`: none).
    striped: u64,
    totals: Counts,
}

impl TimeRing {
    fn advance(&mut self, index: u64) {
        if index <= self.newest {
            return;
        }
        let len = self.buckets.len() as u64;
        let steps = (index - self.newest).min(len);
        for step in 1..=steps {
            let position = ((index - steps + step) % len) as usize;
            let old = std::mem::take(&mut self.buckets[position]);
            self.totals.calls -= old.calls;
            self.totals.failed -= old.failed;
            self.totals.slow -= old.slow;
        }
        self.newest = index;
    }
}

impl TimeWindow {
    pub(crate) fn new(buckets: u32, bucket_nanos: u64, minimum_calls: u32) -> TimeWindow {
        TimeWindow {
            bucket_nanos,
            reciprocal: (u128::from(u64::MAX) + 1)
                .checked_div(u128::from(bucket_nanos))
                .map_or(0, |r| u64::try_from(r).unwrap_or(u64::MAX)),
            minimum_calls: u64::from(minimum_calls),
            inner: Mutex::new(TimeRing {
                buckets: vec![Counts::default(); buckets as usize].into_boxed_slice(),
                newest: 0,
                striped: u64::MAX,
                totals: Counts::default(),
            }),
            quiet_until: Padded(AtomicU64::new(0)),
            stripes: (0..STRIPES).map(|_| Padded(AtomicUsize::new(0))).collect(),
        }
    }

    /// Runs `f` on the ring under its lock, after folding the stripes' successes in.
    fn with<R>(&self, f: impl FnOnce(&mut TimeRing) -> R) -> R {
        // Nothing panics while the lock is held, so a poisoned lock still guards good data.
        let mut ring = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Before the stripes are read: a success added to a stripe after this fold then sees
        // the window change and checks itself (see `record`).
        self.quiet_until.store(0, Ordering::Release);
        let mut successes = 0u64;
        for stripe in self.stripes.iter() {
            successes += stripe.swap(0, Ordering::AcqRel) as u64;
        }
        let striped = ring.striped;
        let len = ring.buckets.len() as u64;
        // Successes of a bucket that has left the window meanwhile are gone with it.
        if successes > 0 && striped <= ring.newest && ring.newest - striped < len {
            ring.buckets[(striped % len) as usize].calls += successes;
            ring.totals.calls += successes;
        }
        f(&mut ring)
    }

    /// `now / bucket_nanos` without a 64-bit division: the reciprocal's estimate is exact
    /// or one short, and one comparison corrects it.
    #[inline]
    fn bucket_of(&self, now: Instant) -> u64 {
        let nanos = now.as_nanos();
        let estimate = ((u128::from(nanos) * u128::from(self.reciprocal)) >> 64) as u64;
        let next = estimate + 1; // estimate <= nanos / 1 < u64::MAX, never overflows
        match next.checked_mul(self.bucket_nanos) {
            Some(start) if start <= nanos => next,
            _ => estimate,
        }
    }

    /// Records an outcome observed at `now` and returns the window's counts after it, or
    /// `None` for a success that cannot trip a rate (see the type's docs).
    #[inline]
    pub(crate) fn record(&self, now: Instant, outcome: u32) -> Option<Counts> {
        if outcome == 0 {
            let quiet_until = self.quiet_until.load(Ordering::Acquire);
            if now.as_nanos() < quiet_until {
                let stripe = STRIPE.with(|stripe| *stripe);
                self.stripes[stripe].fetch_add(1, Ordering::AcqRel);
                // Unchanged: whoever takes the lock next folds this success in. Changed: a
                // locked call may have read the stripes before this success and decided
                // without it, so check the rates as a locked call would.
                if self.quiet_until.load(Ordering::Acquire) == quiet_until {
                    return None;
                }
                return Some(self.counts(now));
            }
        }
        Some(self.record_locked(self.bucket_of(now), outcome))
    }

    #[inline(never)]
    fn record_locked(&self, index: u64, outcome: u32) -> Counts {
        self.with(|ring| {
            ring.advance(index);
            let len = ring.buckets.len() as u64;
            // A call timed by a thread that lost the race to the lock may land one bucket back.
            if ring.newest - index < len {
                let position = (index % len) as usize;
                let failed = u64::from(outcome & FAILED);
                let slow = u64::from((outcome & SLOW) >> 1);
                let bucket = &mut ring.buckets[position];
                bucket.calls += 1;
                bucket.failed += failed;
                bucket.slow += slow;
                ring.totals.calls += 1;
                ring.totals.failed += failed;
                ring.totals.slow += slow;
            }
            self.settle(ring);
            ring.totals
        })
    }

    /// Points the stripes at the ring's newest bucket and says until when successes there
    /// may skip the lock; the ring is locked and its stripes folded in.
    fn settle(&self, ring: &mut TimeRing) {
        let totals = ring.totals;
        let quiet = (totals.failed == 0 && totals.slow == 0) || totals.calls >= self.minimum_calls;
        ring.striped = ring.newest;
        let end = ring
            .newest
            .saturating_add(1)
            .saturating_mul(self.bucket_nanos);
        self.quiet_until
            .store(if quiet { end } else { 0 }, Ordering::Release);
    }

    #[inline(never)]
    pub(crate) fn counts(&self, now: Instant) -> Counts {
        self.with(|ring| {
            ring.advance(self.bucket_of(now));
            self.settle(ring);
            ring.totals
        })
    }

    pub(crate) fn reset(&self) {
        self.with(|ring| {
            ring.buckets.iter_mut().for_each(|b| *b = Counts::default());
            ring.totals = Counts::default();
            self.settle(ring);
        });
    }
}

#[cfg(all(test, not(keel_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn model_counts(outcomes: &VecDeque<u32>) -> Counts {
        Counts {
            calls: outcomes.len() as u64,
            failed: outcomes.iter().filter(|o| *o & FAILED != 0).count() as u64,
            slow: outcomes.iter().filter(|o| *o & SLOW != 0).count() as u64,
        }
    }

    #[test]
    fn racing_writers_of_one_slot_keep_the_totals_exact() {
        // With one slot, a writer can swap out an outcome whose writer has not yet added it
        // to the totals, so a total dips below zero for a moment: that must not overflow
        // (a panic in debug builds), must read as zero rather than as a window of failures,
        // and must leave the totals exact once the writers are done.
        let window = std::sync::Arc::new(CountWindow::new(1));
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let window = window.clone();
                std::thread::spawn(move || {
                    for i in 0..200_000u32 {
                        window.record(if (i + t) % 2 == 0 { FAILED } else { SLOW });
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("a writer panicked");
        }
        let slot = window.slots[0].load(Ordering::Acquire) & 3;
        let counts = window.counts();
        assert_eq!(counts.failed, u64::from(slot & FAILED));
        assert_eq!(counts.slow, u64::from((slot & SLOW) >> 1));
        assert_eq!(field(COUNT_MASK), 0, "minus one reads as zero");
        assert_eq!(
            field(u64::from(MAX_COUNT_WINDOW)),
            u64::from(MAX_COUNT_WINDOW)
        );
    }

    #[test]
    fn fastmod_matches_the_remainder() {
        for d in [1u32, 2, 3, 7, 100, 1_000, MAX_COUNT_WINDOW, 4_194_303] {
            let magic = (u64::MAX / u64::from(d)).wrapping_add(1);
            for a in [0u32, 1, 2, 99, 100, 101, 12_345_678, u32::MAX - 1, u32::MAX] {
                assert_eq!(fastmod(a, magic, d), a % d, "{a} % {d}");
            }
        }
    }

    proptest! {
        #[test]
        fn fastmod_is_a_remainder(a in any::<u32>(), d in 1u32..=4_194_303) {
            prop_assert_eq!(fastmod(a, (u64::MAX / u64::from(d)).wrapping_add(1), d), a % d);
        }
    }

    #[test]
    fn bucket_of_divides_exactly() {
        for bucket_nanos in [
            1u64,
            2,
            3,
            7,
            1_000,
            999_999_937,
            1 << 40,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let window = TimeWindow::new(1, bucket_nanos, 1);
            for nanos in [
                0u64,
                1,
                bucket_nanos - 1,
                bucket_nanos,
                bucket_nanos.saturating_add(1),
                u64::MAX / 2,
                u64::MAX - 1,
                u64::MAX,
            ] {
                assert_eq!(
                    window.bucket_of(Instant::from_nanos(nanos)),
                    nanos / bucket_nanos,
                    "{nanos} / {bucket_nanos}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn bucket_of_is_a_quotient(nanos in any::<u64>(), bucket_nanos in 1u64..) {
            let window = TimeWindow::new(1, bucket_nanos, 1);
            prop_assert_eq!(window.bucket_of(Instant::from_nanos(nanos)), nanos / bucket_nanos);
        }
    }

    /// A window whose sequence starts at `seq`, as after that many calls in its epoch.
    fn count_window_at(size: u32, seq: u64) -> CountWindow {
        let window = CountWindow::new(size);
        window.head.store(seq, Ordering::Release);
        window
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]

        /// A breaker that stays closed for 2^43 calls folds its sequence back and keeps
        /// counting the last `size` outcomes exactly; before the fold, the sequence carried
        /// into the epoch at 2^44 calls and froze the failure counts. Sizes are powers of two:
        /// the fold comes as the low 32 bits wrap, where any other size reuses one slot early
        /// (by design, see `record`), which a model of the last `size` outcomes would flag.
        #[test]
        fn the_sequence_folds_back_and_the_window_stays_exact(
            size in (0u32..5).prop_map(|bits| 1 << bits),
            before in 0u64..40,
            outcomes in proptest::collection::vec(0u32..4, 1..80),
        ) {
            // Full of successes, as after FOLD_AT - before healthy calls.
            let window = count_window_at(size, FOLD_AT - before);
            let mut model: VecDeque<u32> = std::iter::repeat_n(0, size as usize).collect();
            for (calls, outcome) in (1..).zip(outcomes) {
                window.record(outcome);
                model.push_back(outcome);
                model.pop_front();
                prop_assert_eq!(window.counts(), model_counts(&model));
                let seq = FOLD_AT - before + calls;
                let folded = if seq > FOLD_AT { seq - FOLD } else { seq };
                prop_assert_eq!(window.head.load(Ordering::Acquire), folded, "epoch 0, folded once");
            }
        }
    }

    #[test]
    fn a_fold_after_a_reset_leaves_the_new_epoch_alone() {
        let window = count_window_at(3, FOLD_AT);
        window.reset();
        window.fold(0); // as if the call that drew FOLD_AT ran only now
        assert_eq!(window.head.load(Ordering::Acquire), 1 << SEQ_BITS);
        window.record(FAILED);
        assert_eq!(
            window.counts(),
            Counts {
                calls: 1,
                failed: 1,
                slow: 0
            }
        );
    }

    #[test]
    fn count_window_forgets_the_oldest() {
        let window = CountWindow::new(3);
        window.record(FAILED);
        window.record(0);
        window.record(SLOW);
        assert_eq!(
            window.counts(),
            Counts {
                calls: 3,
                failed: 1,
                slow: 1
            }
        );
        window.record(0); // pushes out the failure
        assert_eq!(
            window.counts(),
            Counts {
                calls: 3,
                failed: 0,
                slow: 1
            }
        );
        window.reset();
        assert_eq!(window.counts(), Counts::default());
        window.record(FAILED | SLOW);
        assert_eq!(
            window.counts(),
            Counts {
                calls: 1,
                failed: 1,
                slow: 1
            }
        );
    }

    #[test]
    fn time_window_expires_buckets() {
        let window = TimeWindow::new(4, 1_000, 1);
        window.record(Instant::from_nanos(0), FAILED);
        window.record(Instant::from_nanos(1_500), 0);
        assert_eq!(window.counts(Instant::from_nanos(3_999)).calls, 2);
        assert_eq!(
            window.counts(Instant::from_nanos(4_000)),
            Counts {
                calls: 1,
                failed: 0,
                slow: 0
            }
        );
        assert_eq!(
            window.counts(Instant::from_nanos(100_000)),
            Counts::default()
        );
    }

    #[test]
    fn successes_skip_the_lock_only_when_they_cannot_trip() {
        let window = TimeWindow::new(4, 1_000, 3);
        let at = Instant::from_nanos;
        // A failure below the minimum: the next successes must be checked.
        assert!(window.record(at(0), FAILED).is_some());
        assert_eq!(window.record(at(1), 0).map(|c| c.calls), Some(2));
        assert_eq!(window.record(at(2), 0).map(|c| c.calls), Some(3));
        // At the minimum a success can only lower the rate: it takes the stripe.
        assert_eq!(window.record(at(3), 0), None);
        assert_eq!(window.record(at(4), 0), None);
        // A new bucket may expire outcomes, so its first call is checked; folding is exact.
        let counts = window
            .record(at(1_000), 0)
            .expect("a new bucket is checked");
        assert_eq!((counts.calls, counts.failed), (6, 1));
        assert_eq!(window.record(at(1_001), 0), None);
        assert_eq!(
            window.counts(at(4_000)).calls,
            2,
            "bucket 0 expired, 1 kept"
        );
        window.reset();
        assert_eq!(window.counts(at(4_000)), Counts::default());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Record(u32),
        Reset,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            20 => (0u32..4).prop_map(Op::Record),
            1 => Just(Op::Reset),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn count_window_matches_a_deque(size in 1u32..12, ops in proptest::collection::vec(op(), 0..200)) {
            let window = CountWindow::new(size);
            let mut model = VecDeque::new();
            for op in ops {
                match op {
                    Op::Record(outcome) => {
                        window.record(outcome);
                        model.push_back(outcome);
                        if model.len() > size as usize {
                            model.pop_front();
                        }
                    }
                    Op::Reset => {
                        window.reset();
                        model.clear();
                    }
                }
                prop_assert_eq!(window.counts(), model_counts(&model));
            }
        }

        #[test]
        fn time_window_matches_a_list_of_timestamps(
            buckets in 1u32..8,
            bucket_nanos in 1u64..50,
            minimum in 1u32..6,
            steps in proptest::collection::vec((0u64..40, 0u32..4, any::<bool>()), 0..150),
        ) {
            let window = TimeWindow::new(buckets, bucket_nanos, minimum);
            let mut model: Vec<(u64, u32)> = Vec::new();
            let mut now = 0u64;
            for (advance, outcome, reset) in steps {
                now += advance;
                if reset {
                    window.reset();
                    model.clear();
                }
                window.record(Instant::from_nanos(now), outcome);
                model.push((now, outcome));
                // The reference: every call whose bucket is one of the last `buckets`.
                let newest = now / bucket_nanos;
                let live: VecDeque<u32> = model
                    .iter()
                    .filter(|(at, _)| newest - at / bucket_nanos < u64::from(buckets))
                    .map(|(_, o)| *o)
                    .collect();
                prop_assert_eq!(window.counts(Instant::from_nanos(now)), model_counts(&live));
            }
        }
    }
}
