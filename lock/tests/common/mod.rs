//! A recorded history of critical sections and the checker that judges it.

#![allow(dead_code)]

use std::sync::Mutex;

/// One step of a holder, recorded while it holds the lease.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// Recorded right after the lease was granted.
    Enter { holder: usize, token: u64 },
    /// Recorded right before the lease is released.
    Exit { holder: usize, token: u64 },
}

/// Events in one total order: the order their pushes took the mutex.
#[derive(Debug, Default)]
pub(crate) struct History {
    events: Mutex<Vec<Event>>,
}

impl History {
    pub(crate) fn enter(&self, holder: usize, token: u64) {
        self.push(Event::Enter { holder, token });
    }

    pub(crate) fn exit(&self, holder: usize, token: u64) {
        self.push(Event::Exit { holder, token });
    }

    fn push(&self, event: Event) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
    }

    pub(crate) fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Checks mutual exclusion (no enter while someone is inside, every exit matches the one
/// inside) and token order (each enter's token is greater than every earlier one).
pub(crate) fn check(events: &[Event]) -> Result<(), String> {
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
