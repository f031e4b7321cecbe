//! Stable key hashing: the same bytes give the same 64-bit hash on every platform, process
//! and release.

use core::hash::Hasher;
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::rc::Rc;
use std::sync::Arc;

use siphasher::sip::SipHasher13;

/// The fixed SipHash keys. Changing them changes every placement, so they never change.
const SIP_KEY0: u64 = 0x6b65_656c_2d68_6173; // "keel-has"
const SIP_KEY1: u64 = 0x6872_696e_672d_7631; // "hring-v1"

/// A value whose hash is the same on every platform, process and release.
///
/// An implementation feeds the value's canonical bytes to the hasher with
/// [`Hasher::write`] only, never with `write_usize` and friends, whose byte order and width
/// follow the platform. Implemented for byte strings, strings, integers (little-endian, with
/// `usize`/`isize` widened to 64 bits), `bool`, `char`, IP and socket addresses, and the usual
/// pointer wrappers around those.
///
/// # Why not std's `Hash`
///
/// `std::hash::Hash` makes no stability promise: `usize` and collection lengths are written
/// with the platform's width and byte order (`write_usize`), `str` appends a `0xff` marker
/// that is an implementation detail, and the hash of a `HashMap` or `HashSet` is not defined
/// at all because its iteration order is random per process. Two processes hashing the same
/// `Vec<String>` through `Hash` may therefore disagree, and so would their rings. Collections
/// are not implemented here for that reason: hash a canonical encoding of them (for example
/// the bytes you would send on the wire) instead.
///
/// # Example
///
/// ```
/// use keel_hashring::{StableHash, hash_key};
///
/// struct UserId(u64);
///
/// impl StableHash for UserId {
///     fn stable_hash<H: core::hash::Hasher>(&self, state: &mut H) {
///         self.0.stable_hash(state);
///     }
/// }
///
/// assert_eq!(hash_key(&UserId(7)), hash_key(&7u64));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait StableHash {
    /// Feeds the value's canonical bytes to `state` through [`Hasher::write`].
    ///
    /// ```
    /// use core::hash::Hasher;
    /// use keel_hashring::StableHash;
    ///
    /// // Records the bytes it is fed.
    /// struct Bytes(Vec<u8>);
    /// impl Hasher for Bytes {
    ///     fn write(&mut self, bytes: &[u8]) {
    ///         self.0.extend_from_slice(bytes);
    ///     }
    ///     fn finish(&self) -> u64 {
    ///         0
    ///     }
    /// }
    ///
    /// let mut seen = Bytes(Vec::new());
    /// 0x0102_0304u32.stable_hash(&mut seen);
    /// "ab".stable_hash(&mut seen);
    /// assert_eq!(seen.0, [4, 3, 2, 1, b'a', b'b']); // little-endian, no length or marker
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn stable_hash<H: Hasher>(&self, state: &mut H);
}

/// Hashes `key` with SipHash-1-3 under keel's fixed keys.
///
/// This is the hash every algorithm in the crate places keys and nodes by, so it is frozen:
/// a test in the crate pins its output for a table of keys.
///
/// ```
/// use keel_hashring::hash_key;
///
/// // Strings and their bytes hash the same.
/// assert_eq!(hash_key("user:42"), hash_key(&b"user:42"[..]));
/// assert_eq!(hash_key("user:42"), hash_key(&String::from("user:42")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[inline]
pub fn hash_key<K: StableHash + ?Sized>(key: &K) -> u64 {
    let mut state = SipHasher13::new_with_keys(SIP_KEY0, SIP_KEY1);
    key.stable_hash(&mut state);
    state.finish()
}

impl StableHash for [u8] {
    #[inline]
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        state.write(self);
    }
}

impl<const N: usize> StableHash for [u8; N] {
    #[inline]
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        state.write(self);
    }
}

impl StableHash for Vec<u8> {
    #[inline]
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        state.write(self);
    }
}

impl StableHash for str {
    #[inline]
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
    }
}

impl StableHash for String {
    #[inline]
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
    }
}

macro_rules! stable_int {
    ($($t:ty => $wide:ty),* $(,)?) => {$(
        impl StableHash for $t {
            #[inline]
            fn stable_hash<H: Hasher>(&self, state: &mut H) {
                state.write(&(*self as $wide).to_le_bytes());
            }
        }
    )*};
}

stable_int!(
    u8 => u8, u16 => u16, u32 => u32, u64 => u64, u128 => u128, usize => u64,
    i8 => i8, i16 => i16, i32 => i32, i64 => i64, i128 => i128, isize => i64,
);

impl StableHash for bool {
    #[inline]
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        state.write(&[u8::from(*self)]);
    }
}

impl StableHash for char {
    #[inline]
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        state.write(&u32::from(*self).to_le_bytes());
    }
}

impl StableHash for Ipv4Addr {
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.octets());
    }
}

impl StableHash for Ipv6Addr {
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.octets());
    }
}

impl StableHash for IpAddr {
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        // A tag byte keeps an IPv4 address apart from 4 bytes of something else.
        match self {
            IpAddr::V4(ip) => {
                state.write(&[4]);
                ip.stable_hash(state);
            }
            IpAddr::V6(ip) => {
                state.write(&[6]);
                ip.stable_hash(state);
            }
        }
    }
}

impl StableHash for SocketAddrV4 {
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        self.ip().stable_hash(state);
        self.port().stable_hash(state);
    }
}

impl StableHash for SocketAddrV6 {
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        self.ip().stable_hash(state);
        self.port().stable_hash(state);
    }
}

impl StableHash for SocketAddr {
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        self.ip().stable_hash(state);
        self.port().stable_hash(state);
    }
}

impl<T: StableHash + ?Sized> StableHash for &T {
    #[inline]
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        (**self).stable_hash(state);
    }
}

impl<T: StableHash + ?Sized> StableHash for Box<T> {
    #[inline]
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        (**self).stable_hash(state);
    }
}

impl<T: StableHash + ?Sized> StableHash for Rc<T> {
    #[inline]
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        (**self).stable_hash(state);
    }
}

impl<T: StableHash + ?Sized> StableHash for Arc<T> {
    #[inline]
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        (**self).stable_hash(state);
    }
}

impl<T: StableHash + ToOwned + ?Sized> StableHash for Cow<'_, T> {
    #[inline]
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        (**self).stable_hash(state);
    }
}

/// Murmur3's 64-bit finalizer: a bijection that spreads every input bit over the output.
#[inline]
pub(crate) const fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// Derives a well-mixed hash from two hashes (key and node, or key and probe index).
#[inline]
pub(crate) const fn combine(a: u64, b: u64) -> u64 {
    fmix64(a ^ fmix64(b.wrapping_add(0x9e37_79b9_7f4a_7c15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_hash_as_little_endian_bytes() {
        assert_eq!(hash_key(&0x0102_0304u32), hash_key(&[4u8, 3, 2, 1]));
        assert_eq!(hash_key(&7usize), hash_key(&7u64));
        assert_eq!(hash_key(&-1isize), hash_key(&-1i64));
        assert_ne!(hash_key(&7u32), hash_key(&7u64));
    }

    #[test]
    fn wrappers_hash_like_their_contents() {
        let s = String::from("node-a");
        assert_eq!(hash_key(&s), hash_key("node-a"));
        assert_eq!(hash_key(&Arc::<str>::from("node-a")), hash_key("node-a"));
        assert_eq!(hash_key(&Box::new(5u16)), hash_key(&5u16));
        assert_eq!(hash_key(&Cow::Borrowed("x")), hash_key("x"));
    }

    #[test]
    fn addresses_are_tagged() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let sock: SocketAddr = "10.0.0.1:11211".parse().unwrap();
        assert_ne!(hash_key(&v4), hash_key(&[10u8, 0, 0, 1]));
        assert_ne!(hash_key(&v4), hash_key(&sock));
    }

    #[test]
    fn combine_depends_on_both_inputs() {
        assert_ne!(combine(1, 2), combine(2, 1));
        assert_ne!(combine(1, 2), combine(1, 3));
        assert_ne!(fmix64(1), 1);
    }
}
