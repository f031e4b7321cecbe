//! Consistent hashing that is fast, balanced, stable across processes and interoperable.
//!
//! # Overview
//!
//! Every algorithm implements one small trait, [`ConsistentHash`]: a key maps to a node, and
//! to `n` distinct nodes for replicas written into a buffer the caller owns, so lookups do
//! not allocate (two exceptions, both for more than 16 replicas: among more than 8,192 members
//! a lookup keeps a set of the nodes found, so it stays linear in the buffer; [`Rendezvous`]
//! keeps its best `k` in a heap, so it stays one pass over the nodes). Nodes can be any type that implements [`StableHash`] and `Eq`.
//!
//! Keys and nodes are hashed with SipHash-1-3 under fixed keys ([`hash_key`]), never with
//! `RandomState` or `DefaultHasher`, so every process, platform and release places a key on
//! the same node. A test freezes a table of key → node results for each algorithm. [`Ketama`]
//! hashes keys with MD5, as the C libraries do; each placement names the hash it maps by
//! ([`PlacementHash`]: `u64` or [`KetamaHash`]), so no call path, generic or `dyn`, can hand
//! it a hash made by the other function.
//!
//! For interop debugging, [`jump`] is the raw jump function and [`Ketama::continuum`]
//! lists the continuum's points and their owners.
//!
//! # Example
//!
//! ```
//! use keel_hashring::{ConsistentHash, Ring};
//!
//! let mut ring = Ring::new(); // 160 virtual nodes per unit of weight
//! for server in ["10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"] {
//!     ring.add(server)?;
//! }
//! let owner = ring.node("session:8f2c").ok_or("empty ring")?;
//! let mut replicas = [None; 2];
//! ring.replicas("session:8f2c", &mut replicas);
//! assert_eq!(replicas[0], Some(owner));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Algorithms
//!
//! | type | lookup | memory | weights | remove any node | keys moved on a change |
//! |---|---|---|---|---|---|
//! | [`Ring`] | `O(1)` expected (prefix table + tiny binary search) | about 14 B per point | yes | yes | ideal `w / W` |
//! | [`JumpHash`] | `O(ln n)` | one slot per bucket | no (`add_weighted` takes weight 1 only) | via tombstones | ideal `1/n` |
//! | [`Rendezvous`] | `O(n)` | member list | yes | yes | ideal `w / W` |
//! | [`Maglev`] | `O(1)`, one table read | 2 B per slot (4 B past 65,536 members); 65,537 slots, or `5 n²` for `n` expected nodes, fixed when built | yes | yes | ideal plus at most 1 % of keys; 1.0–1.6× the ideal from 10 to 1,000 nodes in a table sized for 1,000 |
//! | [`MultiProbe`] | `k` binary searches (`k = 21`) | 12 B per point, one point per unit of weight | yes | yes | ideal `w / W` |
//! | [`Ketama`] | MD5 of the key, prefix table + tiny binary search | about 10 B per point | yes | yes | ideal at equal weights, as libketama |
//! | [`BoundedLoads`] | ring walk to the first node under the cap | ring + 8 B per node | yes | yes | `O(1/ε²)` × ideal |
//!
//! Balance (peak-to-mean load): the ring's heaviest node exceeds the mean by about
//! `sqrt(2 ln n / v)` with `v` virtual nodes; jump, rendezvous and Maglev are balanced up to
//! sampling noise (Maglev up to one slot in `M/n`); multi-probe with 21 probes reaches 1.05;
//! bounded loads caps every node at `⌈c × its weighted share⌉` of the keys.
//!
//! Each type's docs state its balance and disruption bounds, and the crate's property
//! tests check them on random membership histories: keys move only to an added node or
//! from a removed one (ring, rendezvous, jump, multi-probe, equal-weight ketama) and as
//! many as the ideal `w / W` within 10 %; Maglev within ideal + 1 %; bounded loads within
//! 2× the ideal at `c = 1.25`; weighted shares within 5 % (Maglev), 6 % (rendezvous) and
//! 30 % (ring, 160 points per unit of weight).
//!
//! ## One vocabulary for membership
//!
//! Every placement has `add`, `add_weighted`, `remove` and `contains` in the same shapes
//! (`Result<(), Error>` to add, `bool` to remove or test), and the [`Membership`] trait
//! names them for generic code. Placement-specific answers are separate methods:
//! [`JumpHash::bucket_of`] for a node's shard number, [`BoundedLoads::load`] for the keys
//! a node holds before it is removed.
//!
//! ## Membership changes under load
//!
//! Wrap any placement in [`Shared`]: lookups load an immutable [`Snapshot`] without
//! locking, while [`Shared::update`] clones the current placement, changes the clone and
//! publishes it with one atomic pointer swap (arc-swap). Readers never block writers or
//! each other; writers take turns, so no change is lost.
//!
//! ## Stable key types
//!
//! [`StableHash`] is implemented for byte strings, strings, integers (little-endian, `usize`
//! widened to 64 bits), `bool`, `char`, IP and socket addresses and references or smart
//! pointers to those. Collections are deliberately left out: std's `Hash` writes their
//! lengths with the platform's `usize`, and `HashMap`/`HashSet` iterate in a random order
//! per process, so their hashes are not stable.
//!
//! # Crate features
//!
//! * `serde`: `Serialize` and `Deserialize` for [`Ring`], [`JumpHash`], [`Rendezvous`],
//!   [`Maglev`], [`MultiProbe`] and [`Ketama`]. They save the configuration and membership
//!   (jump: its buckets, tombstones included) and restoring rebuilds through the validating
//!   constructors, so a restored placement answers exactly as the saved one.
//!
//! The default build has no network dependency and no optional dependency.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod bounded;
mod consistent_hash;
mod error;
mod jump;
mod ketama;
mod key;
mod maglev;
mod members;
mod membership;
mod multi_probe;
#[cfg(feature = "serde")]
mod persist;
mod placement_hash;
mod rendezvous;
mod ring;
mod shared;

pub use bounded::BoundedLoads;
pub use consistent_hash::ConsistentHash;
pub use error::Error;
pub use jump::{JumpHash, jump};
pub use ketama::{Ketama, KetamaHash, KetamaVariant, ketama_hash, libmemcached_label};
pub use key::{StableHash, hash_key};
pub use maglev::{DEFAULT_TABLE_SIZE, MAX_EXPECTED_NODES, MAX_TABLE_SIZE, Maglev, MaglevBuilder};
pub use membership::Membership;
pub use multi_probe::{DEFAULT_PROBES, MAX_PROBES, MultiProbe, MultiProbeBuilder};
pub use placement_hash::PlacementHash;
pub use rendezvous::Rendezvous;
pub use ring::{DEFAULT_VNODES, MAX_POINTS, Ring, RingBuilder};
pub use shared::{Shared, Snapshot};

// The README's example runs as a doctest, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
