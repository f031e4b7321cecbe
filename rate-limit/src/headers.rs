//! HTTP headers for a decision: the IETF `RateLimit` fields, legacy `X-RateLimit-*`, `Retry-After`.

use crate::Decision;
use crate::decision::ceil_secs;

/// Which rate-limit headers [`Decision::headers`] renders. `Retry-After` is added to every
/// style for a denial.
///
/// ```
/// use keel_rate_limit::{Decision, HeaderStyle};
/// use std::time::Duration;
///
/// let secs = Duration::from_secs;
/// let d = Decision::from_parts(true, 100, 99, secs(60), secs(1), Duration::ZERO);
/// assert_eq!(HeaderStyle::default(), HeaderStyle::Ietf);
/// let names = |style| d.headers(style).into_iter().map(|(name, _)| name).collect::<Vec<_>>();
/// assert_eq!(names(HeaderStyle::Ietf), ["RateLimit-Policy", "RateLimit"]);
/// assert_eq!(
///     names(HeaderStyle::Legacy),
///     ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]
/// );
/// assert_eq!(names(HeaderStyle::Both).len(), 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderStyle {
    /// The IETF httpapi draft (`draft-ietf-httpapi-ratelimit-headers`):
    /// `RateLimit-Policy: "default";q=<limit>;w=<window s>` and
    /// `RateLimit: "default";r=<remaining>;t=<reset s>`.
    #[default]
    Ietf,
    /// The de-facto headers: `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
    /// `X-RateLimit-Reset` (seconds until reset, not an epoch time).
    Legacy,
    /// Both of the above.
    Both,
}

impl Decision {
    /// The response headers for this decision, as `(name, value)` pairs.
    ///
    /// Every time is in whole seconds rounded up, so a client that waits `Retry-After` is
    /// never early.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{HeaderStyle, Limiter, Quota, RateLimit, SlidingLog};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let limiter = Limiter::<SlidingLog, _>::with_clock(Quota::per_minute(1)?, clock.clone());
    /// assert!(limiter.check().is_allowed());
    /// clock.advance(Duration::from_millis(500));
    /// let denied = limiter.check();
    /// assert_eq!(
    ///     denied.headers(HeaderStyle::Both),
    ///     vec![
    ///         ("RateLimit-Policy", "\"default\";q=1;w=60".to_string()),
    ///         ("RateLimit", "\"default\";r=0;t=60".to_string()),
    ///         ("X-RateLimit-Limit", "1".to_string()),
    ///         ("X-RateLimit-Remaining", "0".to_string()),
    ///         ("X-RateLimit-Reset", "60".to_string()),
    ///         ("Retry-After", "60".to_string()), // 59.5 s, rounded up
    ///     ]
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn headers(&self, style: HeaderStyle) -> Vec<(&'static str, String)> {
        let mut out = Vec::with_capacity(6);
        let reset = ceil_secs(self.reset_after());
        if matches!(style, HeaderStyle::Ietf | HeaderStyle::Both) {
            out.push((
                "RateLimit-Policy",
                format!(
                    "\"default\";q={};w={}",
                    self.limit(),
                    ceil_secs(self.window())
                ),
            ));
            out.push((
                "RateLimit",
                format!("\"default\";r={};t={reset}", self.remaining()),
            ));
        }
        if matches!(style, HeaderStyle::Legacy | HeaderStyle::Both) {
            out.push(("X-RateLimit-Limit", self.limit().to_string()));
            out.push(("X-RateLimit-Remaining", self.remaining().to_string()));
            out.push(("X-RateLimit-Reset", reset.to_string()));
        }
        if let Some(retry) = self.retry_after() {
            out.push(("Retry-After", ceil_secs(retry).to_string()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn admitted_has_no_retry_after_and_rounds_up() {
        let d = Decision::from_parts(
            true,
            10,
            9,
            Duration::from_millis(1500),
            Duration::from_nanos(1),
            Duration::ZERO,
        );
        assert_eq!(
            d.headers(HeaderStyle::Ietf),
            vec![
                ("RateLimit-Policy", "\"default\";q=10;w=2".to_string()),
                ("RateLimit", "\"default\";r=9;t=1".to_string()),
            ]
        );
        assert_eq!(d.headers(HeaderStyle::Legacy).len(), 3);
    }
}
