//! Every public error type works with `?` into `Box<dyn Error + Send + Sync>`: it implements
//! `std::error::Error` and is `Send + Sync + 'static` (the test does not build otherwise).

fn is_error<E: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn public_errors_are_send_sync_errors() {
    is_error::<keel_rate_limit::InsufficientCapacity>();
    is_error::<keel_rate_limit::QuotaError>();
    is_error::<keel_rate_limit::KeyedLimiterError>();
}

#[cfg(feature = "redis")]
#[test]
fn redis_errors_are_send_sync_errors() {
    is_error::<keel_rate_limit::RedisLimitError>();
    is_error::<keel_rate_limit::RedisLimiterError>();
}
