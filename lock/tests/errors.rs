//! Every public error type works with `?` into `Box<dyn Error + Send + Sync>`: it implements
//! `std::error::Error` and is `Send + Sync + 'static`.

use keel_lock::{LockConfigError, LockError, StaleToken};

fn is_error<E: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn public_errors_are_send_sync_errors() {
    is_error::<LockError>();
    is_error::<LockConfigError>();
    is_error::<StaleToken>();
}
