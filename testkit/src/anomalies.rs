//! Checkers that count anomalies in a recorded history: what the fault tests and the soak
//! (`scripts/soak`) judge a run by. Each takes plain records, so a test can plant an
//! anomaly and see it counted.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A span in which one holder believed it held a lease: from the moment its grant arrived
/// to the earliest of the lease's expiry (by the holder's clock), a failed renewal, or the
/// start of its release.
///
/// # Example
///
/// ```
/// use std::time::{Duration, Instant};
/// use keel_testkit::anomalies::Holding;
///
/// let from = Instant::now();
/// let held = Holding { holder: 0, token: 1, from, until: from + Duration::from_secs(1) };
/// assert!(held.until > held.from);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    /// Which client held it.
    pub holder: usize,
    /// The fencing token of the grant.
    pub token: u64,
    /// When the grant reached the holder.
    pub from: Instant,
    /// When the holder stopped believing it held the lease.
    pub until: Instant,
}

/// Counts double grants: holdings under different tokens whose spans overlap, so two
/// clients believed they held the lease at once. Each holding that starts while an
/// earlier one (another token) is still held counts once.
///
/// # Example
///
/// ```
/// use std::time::{Duration, Instant};
/// use keel_testkit::anomalies::{Holding, double_grants};
///
/// let t = Instant::now();
/// let ms = Duration::from_millis;
/// let first = Holding { holder: 0, token: 1, from: t, until: t + ms(10) };
/// let next = Holding { holder: 1, token: 2, from: t + ms(11), until: t + ms(20) };
/// assert_eq!(double_grants(&[first, next]), 0);
/// let early = Holding { holder: 1, token: 2, from: t + ms(5), until: t + ms(20) };
/// assert_eq!(double_grants(&[first, early]), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn double_grants(holdings: &[Holding]) -> usize {
    let mut sorted: Vec<&Holding> = holdings.iter().filter(|h| h.until > h.from).collect();
    sorted.sort_by_key(|h| (h.from, h.until));
    let mut count = 0;
    // The held span reaching furthest so far, and its token.
    let mut furthest: Option<(Instant, u64)> = None;
    for h in sorted {
        if let Some((until, token)) = furthest
            && h.from < until
            && h.token != token
        {
            count += 1;
        }
        if furthest.is_none_or(|(until, _)| h.until > until) {
            furthest = Some((h.until, h.token));
        }
    }
    count
}

/// One write through a fence: the token it carried, when it was sent and answered, and
/// whether the fence accepted it.
///
/// # Example
///
/// ```
/// use std::time::Instant;
/// use keel_testkit::anomalies::FencedWrite;
///
/// let now = Instant::now();
/// let write = FencedWrite { token: 3, sent: now, answered: now, accepted: true };
/// assert!(write.accepted);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FencedWrite {
    /// The fencing token the write carried.
    pub token: u64,
    /// When the request was sent.
    pub sent: Instant,
    /// When its answer arrived.
    pub answered: Instant,
    /// Whether the fence accepted it.
    pub accepted: bool,
}

/// Counts stale writes the fence accepted: an accepted write sent after another write
/// with a higher token had been accepted and answered. (Writes that overlap in time have
/// no order the client can see, so they never count.)
///
/// # Example
///
/// ```
/// use std::time::{Duration, Instant};
/// use keel_testkit::anomalies::{FencedWrite, stale_writes_accepted};
///
/// let t = Instant::now();
/// let ms = Duration::from_millis;
/// let new = FencedWrite { token: 5, sent: t, answered: t + ms(1), accepted: true };
/// let late = FencedWrite { token: 4, sent: t + ms(2), answered: t + ms(3), accepted: false };
/// assert_eq!(stale_writes_accepted(&[new, late]), 0);
/// let wrongly = FencedWrite { accepted: true, ..late };
/// assert_eq!(stale_writes_accepted(&[new, wrongly]), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn stale_writes_accepted(writes: &[FencedWrite]) -> usize {
    let mut answered: Vec<&FencedWrite> = writes.iter().filter(|w| w.accepted).collect();
    answered.sort_by_key(|w| w.answered);
    let mut by_sent = answered.clone();
    by_sent.sort_by_key(|w| w.sent);
    let (mut next, mut highest, mut count) = (0, None::<u64>, 0);
    for w in by_sent {
        while next < answered.len() && answered[next].answered < w.sent {
            highest = highest.max(Some(answered[next].token));
            next += 1;
        }
        if highest.is_some_and(|h| w.token < h) {
            count += 1;
        }
    }
    count
}

/// Counts duplicates: how many values repeat one seen before.
///
/// # Example
///
/// ```
/// use keel_testkit::anomalies::duplicates;
///
/// assert_eq!(duplicates(vec![1_u64, 2, 3]), 0);
/// assert_eq!(duplicates(vec![1_u64, 2, 1, 1]), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn duplicates<T: Ord>(mut values: Vec<T>) -> usize {
    values.sort_unstable();
    values.windows(2).filter(|w| w[0] == w[1]).count()
}

/// Counts what went past a documented bound: `observed - bound`, or 0.
///
/// # Example
///
/// ```
/// use keel_testkit::anomalies::beyond;
///
/// assert_eq!(beyond(10, 12), 0);
/// assert_eq!(beyond(15, 12), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn beyond(observed: u64, bound: u64) -> u64 {
    observed.saturating_sub(bound)
}

/// Counts lost writes: keys whose last acknowledged version is not found (at that version
/// or a later one) in what survived, the store and whatever was handed back.
///
/// Versions of one key must rise with each write, so a later version stands in for an
/// earlier one.
///
/// # Example
///
/// ```
/// use std::collections::HashMap;
/// use keel_testkit::anomalies::lost_writes;
///
/// let acked = HashMap::from([(1, 7_u64), (2, 3)]);
/// let stored = HashMap::from([(1, 7_u64), (2, 4)]);
/// assert_eq!(lost_writes(&acked, &[&stored]), 0);
/// let behind = HashMap::from([(1, 6_u64)]);
/// assert_eq!(lost_writes(&acked, &[&behind]), 2); // 1 is behind, 2 is missing
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn lost_writes<K: Eq + Hash>(
    acknowledged: &HashMap<K, u64>,
    survived: &[&HashMap<K, u64>],
) -> usize {
    acknowledged
        .iter()
        .filter(|(key, version)| {
            !survived
                .iter()
                .any(|place| place.get(key).is_some_and(|v| v >= version))
        })
        .count()
}

/// Counts late returns: calls that took longer than `limit` (a call timeout plus the
/// scheduling slack the caller allows).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use keel_testkit::anomalies::late_returns;
///
/// let ms = Duration::from_millis;
/// assert_eq!(late_returns(&[ms(10), ms(250), ms(400)], ms(300)), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn late_returns(calls: &[Duration], limit: Duration) -> usize {
    calls.iter().filter(|&&took| took > limit).count()
}

/// One step of a lease holder in a critical section, recorded while it holds the lease.
///
/// # Example
///
/// ```
/// use keel_testkit::anomalies::Event;
///
/// let enter = Event::Enter { holder: 0, token: 1 };
/// assert_ne!(enter, Event::Exit { holder: 0, token: 1 });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Recorded right after the lease was granted.
    Enter {
        /// Which holder.
        holder: usize,
        /// Its fencing token.
        token: u64,
    },
    /// Recorded right before the lease is released.
    Exit {
        /// Which holder.
        holder: usize,
        /// Its fencing token.
        token: u64,
    },
}

/// Critical-section events in one total order: the order their pushes took the mutex.
///
/// # Example
///
/// ```
/// use keel_testkit::anomalies::{Event, History};
///
/// let history = History::default();
/// history.enter(0, 1);
/// history.exit(0, 1);
/// assert_eq!(history.events(), [Event::Enter { holder: 0, token: 1 }, Event::Exit { holder: 0, token: 1 }]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct History {
    events: std::sync::Mutex<Vec<Event>>,
}

impl History {
    /// Records that `holder` entered with `token`.
    ///
    /// # Example
    ///
    /// ```
    /// let history = keel_testkit::anomalies::History::default();
    /// history.enter(3, 9);
    /// assert_eq!(history.events().len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn enter(&self, holder: usize, token: u64) {
        self.push(Event::Enter { holder, token });
    }

    /// Records that `holder` is about to leave, holding `token`.
    ///
    /// # Example
    ///
    /// ```
    /// let history = keel_testkit::anomalies::History::default();
    /// history.exit(3, 9);
    /// assert_eq!(history.events().len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn exit(&self, holder: usize, token: u64) {
        self.push(Event::Exit { holder, token });
    }

    fn push(&self, event: Event) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
    }

    /// The events so far, in order.
    ///
    /// # Example
    ///
    /// ```
    /// let history = keel_testkit::anomalies::History::default();
    /// assert!(history.events().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Checks mutual exclusion (no enter while someone is inside, every exit matches the one
/// inside) and token order (each enter's token is greater than every earlier one).
///
/// # Errors
///
/// The first event that breaks either rule, described.
///
/// # Example
///
/// ```
/// use keel_testkit::anomalies::{Event, check_sections};
///
/// let enter = |holder, token| Event::Enter { holder, token };
/// let exit = |holder, token| Event::Exit { holder, token };
/// assert!(check_sections(&[enter(0, 1), exit(0, 1), enter(1, 2)]).is_ok());
/// assert!(check_sections(&[enter(0, 1), enter(1, 2)]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_sections(events: &[Event]) -> Result<(), String> {
    let mut inside: Option<(usize, u64)> = None;
    let mut last_token: Option<u64> = None;
    for (at, event) in events.iter().enumerate() {
        match *event {
            Event::Enter { holder, token } => {
                if let Some((other, other_token)) = inside {
                    return Err(format!(
                        "event {at}: holder {holder} entered with token {token} while holder \
                         {other} (token {other_token}) was inside"
                    ));
                }
                if let Some(last) = last_token.filter(|&last| token <= last) {
                    return Err(format!(
                        "event {at}: holder {holder} got token {token}, not above the \
                         previous {last}"
                    ));
                }
                inside = Some((holder, token));
                last_token = Some(token);
            }
            Event::Exit { holder, token } => {
                if inside != Some((holder, token)) {
                    return Err(format!(
                        "event {at}: holder {holder} (token {token}) left, but {inside:?} was inside"
                    ));
                }
                inside = None;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn held(t: Instant, holder: usize, token: u64, from: u64, until: u64) -> Holding {
        Holding {
            holder,
            token,
            from: t + ms(from),
            until: t + ms(until),
        }
    }

    #[test]
    fn double_grants_counts_each_overlapping_holding() {
        let t = Instant::now();
        let good = [
            held(t, 0, 1, 0, 10),
            held(t, 1, 2, 10, 20),
            held(t, 0, 3, 25, 30),
        ];
        assert_eq!(double_grants(&good), 0);
        // Holder 1 granted while holder 0's long span still runs, then holder 2 too.
        let bad = [
            held(t, 0, 1, 0, 100),
            held(t, 1, 2, 50, 60),
            held(t, 2, 3, 70, 80),
        ];
        assert_eq!(double_grants(&bad), 2);
        // A renewal by the same grant (same token) is not a second holder.
        assert_eq!(
            double_grants(&[held(t, 0, 1, 0, 10), held(t, 0, 1, 5, 20)]),
            0
        );
    }

    #[test]
    fn stale_writes_accepted_needs_a_visible_order() {
        let t = Instant::now();
        let w = |token, sent, answered, accepted| FencedWrite {
            token,
            sent: t + ms(sent),
            answered: t + ms(answered),
            accepted,
        };
        // Overlapping writes have no order: a lower token accepted is fine.
        assert_eq!(
            stale_writes_accepted(&[w(5, 0, 10, true), w(4, 5, 15, true)]),
            0
        );
        // A lower token sent after the higher one was answered, accepted: stale.
        assert_eq!(
            stale_writes_accepted(&[w(5, 0, 10, true), w(4, 11, 12, true), w(3, 20, 21, true)]),
            2
        );
        // Equal tokens (one holder writing twice) are not stale.
        assert_eq!(
            stale_writes_accepted(&[w(5, 0, 1, true), w(5, 2, 3, true)]),
            0
        );
        // Refused stale writes are the fence doing its job.
        assert_eq!(
            stale_writes_accepted(&[w(5, 0, 1, true), w(4, 2, 3, false)]),
            0
        );
    }

    #[test]
    fn the_other_counters_count() {
        assert_eq!(duplicates(vec![3, 1, 2, 3, 3]), 2);
        assert_eq!(beyond(7, 7), 0);
        let acked = HashMap::from([(1, 2_u64), (2, 2), (3, 2)]);
        let store = HashMap::from([(1, 2_u64), (2, 1)]);
        let back = HashMap::from([(2, 2_u64)]);
        assert_eq!(lost_writes(&acked, &[&store, &back]), 1); // key 3
        assert_eq!(late_returns(&[ms(1), ms(2)], ms(1)), 1);
    }
}
