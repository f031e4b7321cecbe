//! The history checker has teeth: it fails histories that break either rule.

mod common;

use common::{Event, check};

fn enter(holder: usize, token: u64) -> Event {
    Event::Enter { holder, token }
}

fn exit(holder: usize, token: u64) -> Event {
    Event::Exit { holder, token }
}

#[test]
fn accepts_a_good_history() {
    let events = [
        enter(0, 1),
        exit(0, 1),
        enter(1, 5),
        exit(1, 5),
        enter(0, 6),
    ];
    assert_eq!(check(&events), Ok(()));
}

#[test]
fn rejects_two_holders_at_once() {
    let events = [enter(0, 1), enter(1, 2), exit(1, 2), exit(0, 1)];
    let error = check(&events).unwrap_err();
    assert!(error.contains("while holder 0"), "{error}");
}

#[test]
fn rejects_a_token_going_backwards() {
    let events = [enter(0, 7), exit(0, 7), enter(1, 3), exit(1, 3)];
    let error = check(&events).unwrap_err();
    assert!(error.contains("not above the previous 7"), "{error}");
}

#[test]
fn rejects_a_reused_token() {
    let events = [enter(0, 7), exit(0, 7), enter(1, 7)];
    assert!(check(&events).is_err());
}

#[test]
fn rejects_an_exit_by_someone_not_inside() {
    assert!(check(&[enter(0, 1), exit(1, 1)]).is_err());
    assert!(check(&[exit(0, 1)]).is_err());
}
