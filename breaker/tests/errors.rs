//! Every public error type works with `?` into `Box<dyn Error + Send + Sync>`: it implements
//! `std::error::Error` and is `Send + Sync + 'static`.

use keel_breaker::{BreakerConfigError, BulkheadFull, CallError, GiveUp, Rejected, RetryError};

fn is_error<E: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn public_errors_are_send_sync_errors() {
    is_error::<GiveUp>();
    is_error::<BulkheadFull>();
    is_error::<Rejected>();
    is_error::<BreakerConfigError>();
    is_error::<CallError<std::io::Error>>();
    is_error::<RetryError<std::io::Error>>();
}

#[test]
fn give_up_boxes_with_its_message() {
    let boxed: Box<dyn std::error::Error + Send + Sync> = GiveUp::Elapsed.into();
    assert_eq!(
        boxed.to_string(),
        "the time limit would pass before the next attempt"
    );
    assert!(boxed.source().is_none());
}
