//! The error every fallible constructor and membership change returns.

use core::fmt;

/// What is wrong with a configuration or a membership change.
///
/// ```
/// use keel_hashring::{Error, Ring};
///
/// let mut ring = Ring::new();
/// ring.add("a")?;
/// assert_eq!(ring.add("a"), Err(Error::DuplicateNode));
/// assert_eq!(Error::DuplicateNode.to_string(), "node is already a member");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A node was given weight 0; remove it instead.
    ZeroWeight,
    /// The node is already a member.
    DuplicateNode,
    /// A ring was configured with 0 virtual nodes per unit of weight.
    ZeroVirtualNodes,
    /// A ring was configured with more virtual nodes per unit of weight than a whole ring may
    /// hold ([`MAX_POINTS`](crate::MAX_POINTS)), so no node could be added.
    TooManyVirtualNodes {
        /// The virtual nodes per unit of weight asked for.
        vnodes: u64,
        /// The most points a ring holds.
        max: u64,
    },
    /// The ring would hold more points than its limit ([`MAX_POINTS`](crate::MAX_POINTS)).
    TooManyPoints {
        /// Points the ring would hold after the change.
        points: u64,
        /// The most points a ring holds.
        max: u64,
    },
    /// Membership would exceed what the algorithm can index.
    TooManyNodes {
        /// The most nodes the algorithm takes.
        max: u64,
    },
    /// A Maglev table size that is not prime.
    TableSizeNotPrime {
        /// The size given.
        size: u64,
    },
    /// A fixed Maglev table larger than [`MAX_TABLE_SIZE`](crate::MAX_TABLE_SIZE) slots.
    TableTooLarge {
        /// The size given.
        size: u64,
        /// The largest table size taken.
        max: u64,
    },
    /// A Maglev table with fewer slots than nodes.
    TableTooSmall {
        /// The table size.
        size: u64,
        /// The number of nodes.
        nodes: u64,
    },
    /// A Maglev table sized for more expected nodes than the largest table holds at `5 n²`
    /// slots ([`MAX_EXPECTED_NODES`](crate::MAX_EXPECTED_NODES)); fix a size with
    /// [`MaglevBuilder::table_size`](crate::MaglevBuilder::table_size) instead.
    TooManyExpectedNodes {
        /// The expected nodes given.
        nodes: u64,
        /// The most expected nodes taken.
        max: u64,
    },
    /// Multi-probe hashing was configured with 0 probes.
    ZeroProbes,
    /// Multi-probe hashing was configured with more than [`MAX_PROBES`](crate::MAX_PROBES)
    /// probes (each lookup does one binary search per probe).
    TooManyProbes {
        /// The probes asked for.
        probes: u64,
        /// The most probes taken.
        max: u64,
    },
    /// A bounded-load factor that is not a finite number >= 1.
    InvalidLoadFactor {
        /// The factor given.
        factor: f64,
    },
    /// A ketama server name that is empty.
    EmptyServerName,
    /// A weight other than 1 given to a placement that has no weights:
    /// [`JumpHash`](crate::JumpHash), whose buckets are its shard numbers, one per node (see
    /// [`JumpHash::add_weighted`](crate::JumpHash::add_weighted)).
    WeightsUnsupported {
        /// The placement, for the message.
        placement: &'static str,
        /// The weight given.
        weight: u32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ZeroWeight => f.write_str("weight must be > 0"),
            Error::DuplicateNode => f.write_str("node is already a member"),
            Error::ZeroVirtualNodes => f.write_str("virtual nodes per weight must be > 0"),
            Error::TooManyVirtualNodes { vnodes, max } => write!(
                f,
                "{vnodes} virtual nodes per weight is more than the {max} points a ring holds"
            ),
            Error::TooManyPoints { points, max } => write!(
                f,
                "ring would hold {points} points, more than the limit of {max}"
            ),
            Error::TooManyNodes { max } => write!(f, "membership is limited to {max} nodes"),
            Error::TableSizeNotPrime { size } => {
                write!(f, "table size {size} is not prime")
            }
            Error::TableTooLarge { size, max } => {
                write!(
                    f,
                    "table size {size} is larger than the limit of {max} slots"
                )
            }
            Error::TableTooSmall { size, nodes } => {
                write!(f, "table size {size} is smaller than the {nodes} nodes")
            }
            Error::TooManyExpectedNodes { nodes, max } => write!(
                f,
                "a Maglev table for {nodes} expected nodes is over the size limit \
                 (at most {max} nodes); fix a table size instead"
            ),
            Error::ZeroProbes => f.write_str("probes must be > 0"),
            Error::TooManyProbes { probes, max } => {
                write!(f, "{probes} probes is more than the limit of {max}")
            }
            Error::InvalidLoadFactor { factor } => {
                write!(f, "load factor {factor} must be a finite number >= 1")
            }
            Error::EmptyServerName => f.write_str("server name must not be empty"),
            Error::WeightsUnsupported { placement, weight } => write!(
                f,
                "{placement} has no weights: every node holds one bucket, so weight {weight} \
                 cannot be honoured (use weight 1, or a weighted placement)"
            ),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_is_wrong() {
        assert_eq!(
            Error::TableSizeNotPrime { size: 100 }.to_string(),
            "table size 100 is not prime"
        );
        assert_eq!(
            Error::InvalidLoadFactor { factor: 0.5 }.to_string(),
            "load factor 0.5 must be a finite number >= 1"
        );
        assert_eq!(
            Error::TooManyPoints {
                points: 20,
                max: 16
            }
            .to_string(),
            "ring would hold 20 points, more than the limit of 16"
        );
        assert_eq!(
            Error::TooManyVirtualNodes {
                vnodes: 20,
                max: 16
            }
            .to_string(),
            "20 virtual nodes per weight is more than the 16 points a ring holds"
        );
        assert_eq!(
            Error::TableTooLarge { size: 20, max: 16 }.to_string(),
            "table size 20 is larger than the limit of 16 slots"
        );
        assert_eq!(
            Error::TooManyProbes {
                probes: 20,
                max: 16
            }
            .to_string(),
            "20 probes is more than the limit of 16"
        );
        assert_eq!(
            Error::TooManyExpectedNodes {
                nodes: 2000,
                max: 1831
            }
            .to_string(),
            "a Maglev table for 2000 expected nodes is over the size limit (at most 1831 \
             nodes); fix a table size instead"
        );
        fn assert_send_sync<T: Send + Sync + std::error::Error>() {}
        assert_send_sync::<Error>();
    }
}
