//! One vocabulary for membership changes, shared by every placement.

use crate::error::Error;
use crate::key::StableHash;
use crate::{BoundedLoads, JumpHash, Ketama, Maglev, MultiProbe, Rendezvous, Ring};

/// Adding, removing and testing members, in the same shapes for every placement: `add` and
/// `add_weighted` take the node by value and return `Result<(), Error>`, `remove` and
/// `contains` take it by reference and return `bool`.
///
/// Each placement also has these as inherent methods (no import needed); this trait lets
/// generic code change any of them, and a compile-time check that every placement
/// implements it keeps the shapes from drifting apart. Placement-specific answers have
/// their own methods, e.g. [`JumpHash::bucket_of`] and [`BoundedLoads::load`].
///
/// # Example
///
/// ```
/// use keel_hashring::{ConsistentHash, JumpHash, Maglev, Membership, Ring};
///
/// fn rotate<P: ConsistentHash<Node = &'static str> + Membership<&'static str>>(
///     placement: &mut P,
/// ) -> Result<(), keel_hashring::Error> {
///     placement.add_weighted("new", 1)?;
///     assert!(placement.remove(&"old"));
///     assert!(placement.contains(&"new") && !placement.contains(&"old"));
///     Ok(())
/// }
///
/// let mut ring = Ring::new();
/// let mut jump = JumpHash::new();
/// let mut maglev = Maglev::new();
/// for node in ["old", "a"] {
///     Membership::add(&mut ring, node)?;
///     Membership::add(&mut jump, node)?;
///     Membership::add(&mut maglev, node)?;
/// }
/// rotate(&mut ring)?;
/// rotate(&mut jump)?;
/// rotate(&mut maglev)?;
/// assert_eq!((ring.len(), jump.len(), maglev.len()), (2, 2, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Membership<N> {
    /// Adds `node` with weight 1.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateNode`] if it is a member, or a placement's own limit (see its
    /// inherent `add`).
    ///
    /// ```
    /// use keel_hashring::{Error, Membership, Rendezvous};
    ///
    /// let mut hrw = Rendezvous::new();
    /// Membership::add(&mut hrw, "a")?;
    /// assert_eq!(Membership::add(&mut hrw, "a"), Err(Error::DuplicateNode));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn add(&mut self, node: N) -> Result<(), Error>;

    /// Adds `node` with `weight`.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroWeight`], [`Error::DuplicateNode`], [`Error::WeightsUnsupported`]
    /// from [`JumpHash`] for a weight above 1, or a placement's own limit.
    ///
    /// ```
    /// use keel_hashring::{Error, JumpHash, Membership, MultiProbe};
    ///
    /// let mut mp = MultiProbe::new();
    /// Membership::add_weighted(&mut mp, "big", 3)?;
    /// assert_eq!(Membership::add_weighted(&mut mp, "none", 0), Err(Error::ZeroWeight));
    /// let mut jump = JumpHash::new();
    /// assert!(matches!(
    ///     Membership::add_weighted(&mut jump, "big", 3),
    ///     Err(Error::WeightsUnsupported { .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn add_weighted(&mut self, node: N, weight: u32) -> Result<(), Error>;

    /// Removes `node`; returns whether it was a member.
    ///
    /// ```
    /// use keel_hashring::{BoundedLoads, Membership, Ring};
    ///
    /// let mut bounded = BoundedLoads::new(Ring::new(), 1.25)?;
    /// Membership::add(&mut bounded, "a")?;
    /// assert!(Membership::remove(&mut bounded, &"a"));
    /// assert!(!Membership::remove(&mut bounded, &"a"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn remove(&mut self, node: &N) -> bool;

    /// Whether `node` is a member.
    ///
    /// ```
    /// use keel_hashring::{Ketama, KetamaVariant, Membership};
    ///
    /// let mut ketama = Ketama::new(KetamaVariant::Libketama);
    /// Membership::add(&mut ketama, "10.0.1.1:11211")?;
    /// assert!(Membership::contains(&ketama, &"10.0.1.1:11211"));
    /// assert!(!Membership::contains(&ketama, &"10.0.1.2:11211"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn contains(&self, node: &N) -> bool;
}

// Each impl forwards to the inherent methods of the same name, so the two can never differ.
macro_rules! membership {
    ($($placement:ident where N: $($bound:path)|+;)*) => {$(
        impl<N: $($bound +)+> Membership<N> for $placement<N> {
            fn add(&mut self, node: N) -> Result<(), Error> {
                $placement::add(self, node)
            }
            fn add_weighted(&mut self, node: N, weight: u32) -> Result<(), Error> {
                $placement::add_weighted(self, node, weight)
            }
            fn remove(&mut self, node: &N) -> bool {
                $placement::remove(self, node)
            }
            fn contains(&self, node: &N) -> bool {
                $placement::contains(self, node)
            }
        }
    )*};
}

membership! {
    Ring where N: StableHash | Eq;
    JumpHash where N: StableHash | Eq;
    Rendezvous where N: StableHash | Eq;
    Maglev where N: StableHash | Eq;
    MultiProbe where N: StableHash | Eq;
    Ketama where N: AsRef<str> | Eq;
    BoundedLoads where N: StableHash | Eq;
}
