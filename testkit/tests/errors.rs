//! The public error type works with `?` into `Box<dyn Error + Send + Sync>`: it implements
//! `std::error::Error` and is `Send + Sync + 'static` (the test does not build otherwise).

fn is_error<E: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn public_error_is_a_send_sync_error() {
    is_error::<keel_testkit::TestkitError>();
}
