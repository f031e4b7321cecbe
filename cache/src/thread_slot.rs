//! Thread slots: a small number that only the calling thread holds while it lives, so a
//! counter indexed by it has one writer and needs no locked read-modify-write to count down.
//!
//! Under loom the same claim and give-back run on loom's atomics, with the registry a
//! `loom::lazy_static` (fresh in every run of a model, so runs replay) and the held slot a
//! `loom::thread_local` (given back when the model thread ends). Loom has two slots, so a
//! model with three reading threads runs out and exercises the shared-counter fallback.

use keel_core::sync::atomic::{AtomicU64, Ordering};

/// How many slots exist; threads beyond this many alive at once get none.
#[cfg(not(keel_loom))]
pub(crate) const SLOTS: usize = 64;
/// How many slots exist under loom: few, so models can exhaust them.
#[cfg(keel_loom)]
pub(crate) const SLOTS: usize = 2;

/// This thread's slot, claimed on first use and given back when the thread exits; `None`
/// while every slot is held by other live threads (or during thread teardown).
#[inline]
pub(crate) fn thread_slot() -> Option<usize> {
    HELD.try_with(|held| held.slot).ok().flatten()
}

/// Bit `s` is set while slot `s` is held.
#[cfg(not(keel_loom))]
static TAKEN: AtomicU64 = AtomicU64::new(0);

// Behind an `Arc` each holder keeps: loom frees its statics before the model's main thread
// gives its slot back.
#[cfg(keel_loom)]
loom::lazy_static! {
    static ref TAKEN: keel_core::sync::Arc<AtomicU64> = keel_core::sync::Arc::new(AtomicU64::new(0));
}

#[cfg(not(keel_loom))]
std::thread_local! {
    static HELD: Held = Held::claim();
}

#[cfg(keel_loom)]
loom::thread_local! {
    static HELD: Held = Held::claim();
}

struct Held {
    slot: Option<usize>,
    #[cfg(keel_loom)]
    taken: keel_core::sync::Arc<AtomicU64>,
}

impl Held {
    fn claim() -> Held {
        #[cfg(keel_loom)]
        let taken_bits = (*TAKEN).clone();
        #[cfg(not(keel_loom))]
        let taken_bits = &TAKEN;
        let mut taken = taken_bits.load(Ordering::Relaxed);
        let mut slot = None;
        while (taken.count_ones() as usize) < SLOTS {
            let free = (!taken).trailing_zeros();
            // Acquire: the counters of a slot given back were last written by the thread
            // that held it; this thread continues from their values.
            match taken_bits.compare_exchange_weak(
                taken,
                taken | 1 << free,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    slot = Some(free as usize);
                    break;
                }
                Err(now) => taken = now,
            }
        }
        Held {
            slot,
            #[cfg(keel_loom)]
            taken: taken_bits,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        #[cfg(keel_loom)]
        let taken_bits = &*self.taken;
        #[cfg(not(keel_loom))]
        let taken_bits = &TAKEN;
        if let Some(slot) = self.slot {
            taken_bits.fetch_and(!(1 << slot), Ordering::Release);
        }
    }
}

#[cfg(all(test, not(keel_loom)))]
mod tests {
    use super::*;

    #[test]
    fn live_threads_hold_distinct_slots_and_exited_ones_give_theirs_back() {
        let barrier = std::sync::Barrier::new(8);
        let slots: Vec<Option<usize>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let slot = thread_slot();
                        assert_eq!(thread_slot(), slot, "a thread keeps its slot");
                        // Hold it until all eight have one.
                        barrier.wait();
                        slot
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut held: Vec<usize> = slots.into_iter().map(Option::unwrap).collect();
        held.sort_unstable();
        held.dedup();
        assert_eq!(held.len(), 8, "no two live threads share a slot");
        // Slots come back when threads exit: far more threads than slots, one after
        // another, all get one.
        for _ in 0..3 * SLOTS {
            assert!(std::thread::spawn(thread_slot).join().unwrap().is_some());
        }
    }
}
