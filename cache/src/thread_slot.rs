//! Thread slots: a small number that only the calling thread holds while it lives, so a
//! counter indexed by it has one writer and needs no locked read-modify-write to count down.

/// How many slots exist; threads beyond this many alive at once get none.
pub(crate) const SLOTS: usize = 64;

/// This thread's slot, claimed on first use and given back when the thread exits; `None`
/// while every slot is held by other live threads (or during thread teardown).
#[cfg(not(keel_loom))]
#[inline]
pub(crate) fn thread_slot() -> Option<usize> {
    HELD.try_with(|held| held.0).ok().flatten()
}

/// Under loom: the model thread's number, unique among the model's threads and the same in
/// every run of the model (a global registry would differ between runs and break replay).
#[cfg(keel_loom)]
pub(crate) fn thread_slot() -> Option<usize> {
    let id = format!("{:?}", loom::thread::current().id());
    let n = id
        .chars()
        .filter(char::is_ascii_digit)
        .fold(0, |n, c| n * 10 + c as usize - '0' as usize);
    (n < SLOTS).then_some(n)
}

#[cfg(not(keel_loom))]
static TAKEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cfg(not(keel_loom))]
std::thread_local! {
    static HELD: Held = Held::claim();
}

#[cfg(not(keel_loom))]
struct Held(Option<usize>);

#[cfg(not(keel_loom))]
impl Held {
    fn claim() -> Held {
        use std::sync::atomic::Ordering;
        let mut taken = TAKEN.load(Ordering::Relaxed);
        while taken != u64::MAX {
            let slot = (!taken).trailing_zeros();
            // Acquire: the counters of a slot given back were last written by the thread
            // that held it; this thread continues from their values.
            match TAKEN.compare_exchange_weak(
                taken,
                taken | 1 << slot,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Held(Some(slot as usize)),
                Err(now) => taken = now,
            }
        }
        Held(None)
    }
}

#[cfg(not(keel_loom))]
impl Drop for Held {
    fn drop(&mut self) {
        if let Some(slot) = self.0 {
            TAKEN.fetch_and(!(1 << slot), std::sync::atomic::Ordering::Release);
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
