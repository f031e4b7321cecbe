//! `FencingToken`: the number a protected resource orders lock holders by.

use std::fmt;

/// A fencing token: a number issued with each lease, strictly greater than every token issued
/// before for the same lock name.
///
/// A holder passes its token with every write to the protected resource, and the resource
/// keeps the highest token it has seen in a [`Fence`](crate::Fence): a write carrying an older
/// token comes from a holder whose lease is gone (it paused, its lease expired, someone else
/// acquired), and is rejected. Tokens of different lock names are not comparable.
///
/// # Example
///
/// ```
/// use keel_lock::FencingToken;
///
/// let first = FencingToken::new(7);
/// let second = FencingToken::new(8);
/// assert!(first < second);
/// assert_eq!(second.get(), 8);
/// assert_eq!(second.to_string(), "8");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FencingToken(u64);

impl FencingToken {
    /// Wraps a raw token, as read back from a resource that stored [`get`](FencingToken::get).
    ///
    /// ```
    /// use keel_lock::{Fence, FencingToken};
    ///
    /// let stored: u64 = 17; // read back from beside the data
    /// let fence = Fence::starting_at(FencingToken::new(stored));
    /// assert_eq!(fence.highest(), FencingToken::new(17));
    /// assert_eq!(FencingToken::new(17), FencingToken::from(17));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub const fn new(token: u64) -> FencingToken {
        FencingToken(token)
    }

    /// The raw number, to store beside the data a holder writes.
    ///
    /// ```
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// let service = InMemoryLockService::new();
    /// let lease = service.try_acquire_now("jobs", Duration::from_secs(5))?.ok_or("held")?;
    /// let raw: u64 = lease.token().get(); // store this with the record
    /// assert_eq!(raw, 1); // the first grant of this name
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for FencingToken {
    fn from(token: u64) -> FencingToken {
        FencingToken(token)
    }
}

impl From<FencingToken> for u64 {
    fn from(token: FencingToken) -> u64 {
        token.0
    }
}

impl fmt::Debug for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FencingToken({})", self.0)
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_number() {
        let mut tokens = [3, 1, 2].map(FencingToken::new);
        tokens.sort();
        assert_eq!(tokens.map(u64::from), [1, 2, 3]);
        assert_eq!(format!("{:?}", FencingToken::from(5)), "FencingToken(5)");
    }
}
