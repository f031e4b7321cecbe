//! The cache's metrics, through the `metrics` facade (feature `metrics`).

use metrics::{Counter, Gauge};

/// Handles registered once per cache, so a read costs one counter increment and no label
/// lookup.
pub(crate) struct Emitter {
    hits: Counter,
    misses: Counter,
    evicted_size: Counter,
    evicted_expired: Counter,
    size: Gauge,
}

impl Emitter {
    pub(crate) fn new(name: &str) -> Emitter {
        let evictions = |cause: &'static str| {
            metrics::counter!(
                "keel_cache_evictions_total",
                "name" => name.to_owned(),
                "cause" => cause,
            )
        };
        Emitter {
            hits: metrics::counter!("keel_cache_hits_total", "name" => name.to_owned()),
            misses: metrics::counter!("keel_cache_misses_total", "name" => name.to_owned()),
            evicted_size: evictions("size"),
            evicted_expired: evictions("expired"),
            size: metrics::gauge!("keel_cache_size", "name" => name.to_owned()),
        }
    }

    #[inline]
    pub(crate) fn hit(&self) {
        self.hits.increment(1);
    }

    #[inline]
    pub(crate) fn miss(&self) {
        self.misses.increment(1);
    }

    /// After a write: entries the policy evicted or found expired, and the change in the
    /// shard's weight, so the size gauge moves without reading every shard.
    pub(crate) fn wrote(&self, size: u64, expired: u64, weight_before: u64, weight_after: u64) {
        if size > 0 {
            self.evicted_size.increment(size);
        }
        if expired > 0 {
            self.evicted_expired.increment(expired);
        }
        if weight_after > weight_before {
            self.size.increment((weight_after - weight_before) as f64);
        } else if weight_before > weight_after {
            self.size.decrement((weight_before - weight_after) as f64);
        }
    }
}
