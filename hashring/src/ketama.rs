//! A ketama continuum bit-exact with libketama, libmemcached's weighted ketama and twemproxy.

use core::hash::Hasher;

use md5::{Digest, Md5};

use crate::consistent_hash::{ConsistentHash, Distinct};
use crate::error::Error;
use crate::key::StableHash;
use crate::placement_hash::PlacementHash;

/// Which implementation's point counts to reproduce.
///
/// All three hash `"<label>-<i>"` with MD5 for `i = 0, 1, ...`, take four little-endian
/// 32-bit points from each digest, sort the points and give a key (hashed with MD5, first
/// four bytes little-endian) to the first point at or after it. They differ only in how
/// many digests a server of weight `w` gets out of total weight `W` with `n` servers:
///
/// | variant | digests per server (C float arithmetic, reproduced exactly) |
/// |---|---|
/// | [`Libketama`](Self::Libketama) | `floorf((float)(w/W) * 40.0 * (float)n)` |
/// | [`Libmemcached`](Self::Libmemcached) | `floor((float)((float)(w/W) * 160 / 4 * (float)n + 1e-10))` |
/// | [`Twemproxy`](Self::Twemproxy) | same as libmemcached (`nc_ketama.c`) |
///
/// At equal weights each usually gives 40 digests, 160 points per server; the float
/// arithmetic of libmemcached and twemproxy gives 39 at some server counts (100, for one),
/// and this crate reproduces that too.
///
/// # Example
///
/// ```
/// use keel_hashring::{Ketama, KetamaVariant};
///
/// // 100 servers of equal weight: libketama gives each 40 digests, libmemcached 39.
/// let servers: Vec<String> = (0..100).map(|i| format!("10.0.0.{i}:11211")).collect();
/// let mut libketama = Ketama::new(KetamaVariant::Libketama);
/// libketama.extend_weighted(servers.iter().map(|s| (s.as_str(), 1)))?;
/// let mut libmemcached = Ketama::new(KetamaVariant::Libmemcached);
/// libmemcached.extend_weighted(servers.iter().map(|s| (s.as_str(), 1)))?;
/// assert_eq!(libketama.points(), 100 * 40 * 4);
/// assert_eq!(libmemcached.points(), 100 * 39 * 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum KetamaVariant {
    /// last.fm's libketama (`ketama.c`); labels are `host:port`.
    Libketama,
    /// libmemcached with `MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED`; labels are `host` on the
    /// default port 11211 and `host:port` otherwise (see [`libmemcached_label`]).
    Libmemcached,
    /// twemproxy (nutcracker) with `distribution: ketama` and `hash: md5`; labels are the
    /// server's name in the pool configuration (`host:port:weight name`) when one is given.
    /// Without a name, twemproxy hashes `host` when the port is 11211 and `host:port`
    /// otherwise, as libmemcached does: [`libmemcached_label`] gives that label.
    Twemproxy,
}

/// The label libmemcached hashes for a server: `host` on port 11211, else `host:port`.
///
/// twemproxy hashes the same label for a server configured without a name.
///
/// ```
/// use keel_hashring::libmemcached_label;
///
/// assert_eq!(libmemcached_label("10.0.1.1", 11211), "10.0.1.1");
/// assert_eq!(libmemcached_label("10.0.1.1", 11212), "10.0.1.1:11212");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn libmemcached_label(host: &str, port: u16) -> String {
    if port == 11211 {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    }
}

/// A ketama continuum: maps memcached keys to the same servers as libketama, libmemcached's
/// weighted ketama or twemproxy (choose with [`KetamaVariant`]).
///
/// Servers are kept in the order added, as the C libraries keep their server list; that
/// order only breaks ties between equal points (rare: 32-bit points), which are kept in
/// server order as glibc's merge-sort `qsort` keeps them. Keys hash with MD5 here, not
/// SipHash: the trait's [`Hash`](ConsistentHash::Hash) is [`KetamaHash`], so
/// [`ConsistentHash::node`] on a string key gives the libraries' answer, and a SipHash
/// cannot be passed by mistake, also not through `dyn ConsistentHash`. Any membership change rebuilds the continuum,
/// since every server's point count depends on `n` and the total weight: at equal weights
/// only the changed server's keys move, but with unequal weights a change also shifts a
/// few points between the other servers, exactly as in the C libraries.
///
/// # Light servers get no points
///
/// A server of weight `w` out of total `W` with `n` servers gets
/// `floor(w / W × 40 × n)` digests (in the C libraries' float arithmetic, see
/// [`KetamaVariant`]), so a server whose weight is under `W / (40 × n)`, one fortieth of the
/// mean weight, gets **no points**. It stays a member (it counts in
/// [`len`](ConsistentHash::len), `n` and `W`) but never receives a key, and
/// [`replicas`](ConsistentHash::replicas) never returns it, so it returns fewer than
/// `min(out.len(), len())` servers when `out` has room for a pointless one. libketama,
/// libmemcached and twemproxy do exactly the same, and keeping it is what keeps keys on the
/// same servers as they do; [`unplaced`](Self::unplaced) lists such servers so a caller can
/// warn or raise their weights. At least one server always has points, so a non-empty
/// continuum always has an owner.
///
/// ```
/// use keel_hashring::{ConsistentHash, Ketama, KetamaVariant};
///
/// let mut ketama = Ketama::new(KetamaVariant::Libketama);
/// // 1 × 40 × 3 / 2001 < 1: the light server gets no digests.
/// ketama.extend_weighted([("a:11211", 1000), ("b:11211", 1000), ("light:11211", 1)])?;
/// assert_eq!(ketama.unplaced().collect::<Vec<_>>(), [&"light:11211"]);
/// let mut out = [None; 3];
/// assert_eq!(ketama.replicas("user:42", &mut out), 2); // not min(3, 3)
/// assert_eq!(out[2], None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Example
///
/// ```
/// use keel_hashring::{ConsistentHash, Ketama, KetamaVariant};
///
/// let mut ketama = Ketama::new(KetamaVariant::Libketama);
/// ketama.add_weighted("10.0.1.1:11211", 600)?;
/// ketama.add_weighted("10.0.1.2:11211", 300)?;
/// ketama.add_weighted("10.0.1.3:11211", 200)?;
/// let server = ketama.node("user:42").ok_or("no servers")?;
/// assert!(server.starts_with("10.0.1."));
/// assert_eq!(ketama.points(), 4 * (65 + 32 + 21)); // floorf(w/W * 40 * 3) digests each
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Ketama<N> {
    variant: KetamaVariant,
    servers: Vec<N>,
    weights: Vec<u32>,
    /// Server indexes sorted by label (ties in server order), so `contains` and `remove`
    /// binary-search instead of comparing every server.
    by_label: Vec<u32>,
    points: Vec<u32>,
    owners: Vec<u32>,
    /// `index[b]` is the first point whose top `32 - shift` bits are `>= b`, so a lookup
    /// binary-searches only a couple of points.
    index: Vec<u32>,
    shift: u32,
    /// Servers with at least one point: a replica walk stops once it has found them all,
    /// instead of walking the whole continuum when some server has none.
    placed: usize,
}

/// The first four little-endian bytes of the MD5 of `key`: ketama's key hash.
///
/// ```
/// // The MD5 of "" is d41d8cd98f00b204..., so the hash is 0xd98c1dd4.
/// assert_eq!(keel_hashring::ketama_hash(b""), 0xd98c_1dd4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn ketama_hash(key: &[u8]) -> u32 {
    let digest = Md5::digest(key);
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// A key's ketama hash: MD5 of its stable bytes, first four bytes little-endian. The only
/// hash a [`Ketama`] looks up by, so a SipHash (`u64`) cannot reach it by mistake.
///
/// For `str` and `[u8]` keys this is exactly libketama's, libmemcached's and twemproxy's key
/// hash ([`ketama_hash`]).
///
/// ```
/// use keel_hashring::{KetamaHash, PlacementHash, ketama_hash};
///
/// let hash = KetamaHash::of("user:42");
/// assert_eq!(hash.get(), ketama_hash(b"user:42"));
/// assert_eq!(KetamaHash::from_raw(hash.get()), hash); // e.g. a hash from a C client
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KetamaHash(u32);

impl KetamaHash {
    /// A ketama hash computed elsewhere (by a C client, or [`ketama_hash`]).
    ///
    /// ```
    /// use keel_hashring::{KetamaHash, PlacementHash};
    ///
    /// assert_eq!(KetamaHash::from_raw(0x9850_0190), KetamaHash::of("abc"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn from_raw(hash: u32) -> Self {
        Self(hash)
    }

    /// The 32-bit value: a position on the continuum.
    ///
    /// ```
    /// use keel_hashring::{KetamaHash, PlacementHash};
    ///
    /// // MD5("abc") = 900150983cd24fb0...
    /// assert_eq!(KetamaHash::of("abc").get(), 0x9850_0190);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl PlacementHash for KetamaHash {
    fn of<K: StableHash + ?Sized>(key: &K) -> Self {
        let mut state = Md5Hasher(Md5::new());
        key.stable_hash(&mut state);
        let digest = state.0.finalize();
        Self(u32::from_le_bytes([
            digest[0], digest[1], digest[2], digest[3],
        ]))
    }
}

/// Feeds a key's stable bytes to MD5.
struct Md5Hasher(Md5);

impl Hasher for Md5Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    // Never called: `KetamaHash::of` finalizes the digest itself.
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from(u32::from_le_bytes([
            digest[0], digest[1], digest[2], digest[3],
        ]))
    }
}

/// Digests (of four points each) a server of weight `w` gets.
fn digests(variant: KetamaVariant, weight: u32, total: u64, servers: usize) -> u32 {
    let pct = weight as f32 / total as f32;
    let n = servers as f32;
    match variant {
        // `pct * 40.0 * (float)n`: pct promoted to double, product rounded to float.
        KetamaVariant::Libketama => ((f64::from(pct) * 40.0 * f64::from(n)) as f32).floor() as u32,
        // `pct * 160 / 4 * (float)n` in float, `+ 1e-10` in double, cast back to float.
        KetamaVariant::Libmemcached | KetamaVariant::Twemproxy => {
            let t = pct * 160.0 / 4.0 * n;
            ((f64::from(t) + 0.000_000_000_1) as f32).floor() as u32
        }
    }
}

impl<N> Ketama<N> {
    /// An empty continuum reproducing `variant`.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Ketama, KetamaVariant};
    ///
    /// let ketama: Ketama<&str> = Ketama::new(KetamaVariant::Twemproxy);
    /// assert_eq!(ketama.variant(), KetamaVariant::Twemproxy);
    /// assert_eq!(ketama.points(), 0);
    /// assert_eq!(ketama.node("k"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(variant: KetamaVariant) -> Self {
        Self {
            variant,
            servers: Vec::new(),
            weights: Vec::new(),
            by_label: Vec::new(),
            points: Vec::new(),
            owners: Vec::new(),
            index: Vec::new(),
            shift: 32,
            placed: 0,
        }
    }

    /// The variant reproduced.
    ///
    /// ```
    /// use keel_hashring::{Ketama, KetamaVariant};
    ///
    /// let ketama = Ketama::<String>::new(KetamaVariant::Libmemcached);
    /// assert_eq!(ketama.variant(), KetamaVariant::Libmemcached);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn variant(&self) -> KetamaVariant {
        self.variant
    }

    /// Servers and weights in the order added.
    ///
    /// ```
    /// use keel_hashring::{Ketama, KetamaVariant};
    ///
    /// let mut ketama = Ketama::new(KetamaVariant::Libketama);
    /// ketama.add_weighted("10.0.1.2:11211", 2)?;
    /// ketama.add_weighted("10.0.1.1:11211", 1)?;
    /// let servers: Vec<_> = ketama.iter().collect();
    /// assert_eq!(servers, [(&"10.0.1.2:11211", 2), (&"10.0.1.1:11211", 1)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&N, u32)> + '_ {
        self.servers.iter().zip(self.weights.iter().copied())
    }

    /// The number of points on the continuum.
    ///
    /// ```
    /// use keel_hashring::{Ketama, KetamaVariant};
    ///
    /// let mut ketama = Ketama::new(KetamaVariant::Libketama);
    /// ketama.extend_weighted([("10.0.1.1:11211", 1), ("10.0.1.2:11211", 1)])?;
    /// assert_eq!(ketama.points(), 2 * 40 * 4); // 40 digests of 4 points per server
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn points(&self) -> usize {
        self.points.len()
    }

    /// The continuum, read-only: every point in ascending order with the server that owns
    /// it, for comparing with another implementation's continuum when debugging interop.
    /// Equal points keep server order, as glibc's `qsort` keeps them.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Ketama, KetamaHash, KetamaVariant};
    ///
    /// let mut ketama = Ketama::new(KetamaVariant::Libketama);
    /// ketama.extend_weighted([("10.0.1.1:11211", 1), ("10.0.1.2:11211", 1)])?;
    /// let continuum: Vec<(u32, &&str)> = ketama.continuum().collect();
    /// assert_eq!(continuum.len(), ketama.points());
    /// assert!(continuum.windows(2).all(|w| w[0].0 <= w[1].0));
    /// // A key belongs to the first point at or after its hash, wrapping to the first.
    /// let (point, owner) = continuum[10];
    /// assert_eq!(ketama.node_for_hash(KetamaHash::from_raw(point)), Some(owner));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn continuum(&self) -> impl ExactSizeIterator<Item = (u32, &N)> + '_ {
        self.points
            .iter()
            .zip(&self.owners)
            .map(|(&point, &owner)| (point, &self.servers[owner as usize]))
    }

    /// Servers with no points on the continuum, in the order added: their weight is under
    /// `W / (40 × n)` (see [Light servers get no points](Self#light-servers-get-no-points)),
    /// so they never receive a key nor appear among replicas. Empty at equal weights.
    ///
    /// ```
    /// use keel_hashring::{Ketama, KetamaVariant};
    ///
    /// let mut ketama = Ketama::new(KetamaVariant::Twemproxy);
    /// ketama.extend_weighted([("a", 100), ("b", 100)])?;
    /// assert_eq!(ketama.unplaced().count(), 0);
    /// ketama.add_weighted("tiny", 1)?; // 1 × 40 × 3 / 201 < 1
    /// assert_eq!(ketama.unplaced().collect::<Vec<_>>(), [&"tiny"]);
    /// ketama.add_weighted("tiny2", 2)?; // n = 4 now: 2 × 160 / 203 >= 1, but 1 × 160 / 203 < 1
    /// assert_eq!(ketama.unplaced().collect::<Vec<_>>(), [&"tiny"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unplaced(&self) -> impl Iterator<Item = &N> + '_ {
        let total: u64 = self.weights.iter().map(|&w| u64::from(w)).sum();
        let n = self.servers.len();
        self.servers
            .iter()
            .zip(&self.weights)
            .filter(move |&(_, &w)| digests(self.variant, w, total, n) == 0)
            .map(|(server, _)| server)
    }

    /// Heap bytes held.
    ///
    /// ```
    /// use keel_hashring::{Ketama, KetamaVariant};
    ///
    /// let mut ketama = Ketama::new(KetamaVariant::Libketama);
    /// assert_eq!(ketama.heap_bytes(), 0);
    /// ketama.add_weighted("10.0.1.1:11211", 1)?;
    /// assert!(ketama.heap_bytes() >= ketama.points() * 8); // a point and its owner
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn heap_bytes(&self) -> usize {
        self.points.capacity() * 4
            + self.owners.capacity() * 4
            + self.servers.capacity() * core::mem::size_of::<N>()
            + self.weights.capacity() * 4
            + self.by_label.capacity() * 4
            + self.index.capacity() * 4
    }

    /// Position of the first point at or after `hash`, wrapping to 0.
    #[inline]
    fn position(&self, hash: u32) -> usize {
        let bucket = (u64::from(hash) >> self.shift) as usize;
        let lo = self.index[bucket] as usize;
        let hi = self.index[bucket + 1] as usize;
        let pos = lo + self.points[lo..hi].partition_point(|&p| p < hash);
        if pos == self.points.len() { 0 } else { pos }
    }

    fn rebuild_index(&mut self) {
        let len = self.points.len();
        self.index.clear();
        if len == 0 {
            self.shift = 32;
            return;
        }
        // About two points per bucket, and at most 2^20 buckets.
        let bits = (usize::BITS - (len / 2).max(1).leading_zeros()).clamp(1, 20);
        self.shift = 32 - bits;
        let buckets = 1usize << bits;
        self.index.reserve_exact(buckets + 1);
        let mut at = 0usize;
        for bucket in 0..buckets {
            while at < len && ((self.points[at] >> self.shift) as usize) < bucket {
                at += 1;
            }
            self.index.push(at as u32);
        }
        self.index.push(len as u32);
    }
}

impl<N: AsRef<str> + Eq> Ketama<N> {
    /// Adds `server` (its label is the string hashed, see [`KetamaVariant`]) with `weight`
    /// (libketama's memory, or the configured weight) and rebuilds the continuum.
    ///
    /// A server (this one or another) whose weight ends up under `W / (40 × n)` is accepted
    /// but gets no points, as in the C libraries: see
    /// [Light servers get no points](Self#light-servers-get-no-points) and
    /// [`unplaced`](Self::unplaced).
    ///
    /// # Errors
    ///
    /// [`Error::ZeroWeight`], [`Error::EmptyServerName`] or [`Error::DuplicateNode`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, Ketama, KetamaVariant, libmemcached_label};
    ///
    /// let mut ketama = Ketama::new(KetamaVariant::Libmemcached);
    /// ketama.add_weighted(libmemcached_label("10.0.1.1", 11211), 1)?;
    /// assert_eq!(ketama.node("user:42").map(String::as_str), Some("10.0.1.1"));
    /// assert_eq!(ketama.add_weighted(String::new(), 1), Err(Error::EmptyServerName));
    /// assert_eq!(ketama.add_weighted("10.0.1.2".to_owned(), 0), Err(Error::ZeroWeight));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_weighted(&mut self, server: N, weight: u32) -> Result<(), Error> {
        self.extend_weighted([(server, weight)])
    }

    /// Adds `server` with weight 1, as [`add_weighted`](Self::add_weighted)`(server, 1)`.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyServerName`] or [`Error::DuplicateNode`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, Ketama, KetamaVariant};
    ///
    /// let mut ketama = Ketama::new(KetamaVariant::Twemproxy);
    /// ketama.add("cache-a")?;
    /// assert_eq!(ketama.node("user:42"), Some(&"cache-a"));
    /// assert_eq!(ketama.add("cache-a"), Err(Error::DuplicateNode));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add(&mut self, server: N) -> Result<(), Error> {
        self.add_weighted(server, 1)
    }

    /// Whether `server` is a member (it may still hold no points: see
    /// [`unplaced`](Self::unplaced)).
    ///
    /// ```
    /// use keel_hashring::{Ketama, KetamaVariant};
    ///
    /// let mut ketama = Ketama::new(KetamaVariant::Libketama);
    /// ketama.add("10.0.1.1:11211")?;
    /// assert!(ketama.contains(&"10.0.1.1:11211"));
    /// assert!(!ketama.contains(&"10.0.1.2:11211"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn contains(&self, server: &N) -> bool {
        self.label_rank(server).is_some()
    }

    /// Where `server` is in `by_label`, found by its label in `O(log n)`.
    fn label_rank(&self, server: &N) -> Option<usize> {
        let label = server.as_ref();
        let start = self
            .by_label
            .partition_point(|&i| self.servers[i as usize].as_ref() < label);
        self.by_label[start..]
            .iter()
            .take_while(|&&i| self.servers[i as usize].as_ref() == label)
            .position(|&i| self.servers[i as usize] == *server)
            .map(|offset| start + offset)
    }

    /// Adds every `(server, weight)` in order and rebuilds once, in `O(n log n)`. On error
    /// nothing is added. Servers are compared by label first, so two equal servers must
    /// have equal labels (true of strings).
    /// As with [`add_weighted`](Self::add_weighted), a server lighter than `W / (40 × n)` gets no points.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroWeight`], [`Error::EmptyServerName`] or [`Error::DuplicateNode`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, Ketama, KetamaVariant};
    ///
    /// let mut ketama = Ketama::new(KetamaVariant::Twemproxy);
    /// ketama.extend_weighted([("cache-a", 1), ("cache-b", 1)])?;
    /// assert_eq!(ketama.len(), 2);
    /// // One bad entry and nothing is added.
    /// assert_eq!(
    ///     ketama.extend_weighted([("cache-c", 1), ("cache-a", 1)]),
    ///     Err(Error::DuplicateNode)
    /// );
    /// assert_eq!(ketama.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extend_weighted<I: IntoIterator<Item = (N, u32)>>(
        &mut self,
        servers: I,
    ) -> Result<(), Error> {
        let before = self.servers.len();
        let mut failed = None;
        for (server, weight) in servers {
            let problem = if weight == 0 {
                Some(Error::ZeroWeight)
            } else if server.as_ref().is_empty() {
                Some(Error::EmptyServerName)
            } else {
                None
            };
            if let Some(e) = problem {
                failed = Some(e);
                break;
            }
            self.servers.push(server);
            self.weights.push(weight);
        }
        // Duplicates by sorting labels, `O(n log n)` rather than a scan per server; equal
        // servers have equal labels. Every server read precedes the failing entry, so a
        // duplicate among them is the first error, as one-by-one checks would find.
        // Stable, so equal labels stay in server order. More than `u32::MAX` servers would
        // need 2^32 × 160 points, far past memory, so indexes fit.
        let mut by_label: Vec<u32> = (0..self.servers.len() as u32).collect();
        let label = |i: u32| self.servers[i as usize].as_ref();
        by_label.sort_by(|&a, &b| label(a).cmp(label(b)));
        let mut run = 0;
        let duplicate = (0..by_label.len()).any(|k| {
            if k > 0 && label(by_label[k - 1]) != label(by_label[k]) {
                run = k;
            }
            let server = &self.servers[by_label[k] as usize];
            by_label[run..k]
                .iter()
                .any(|&i| self.servers[i as usize] == *server)
        });
        if let Some(e) = duplicate.then_some(Error::DuplicateNode).or(failed) {
            self.servers.truncate(before);
            self.weights.truncate(before);
            return Err(e);
        }
        self.by_label = by_label;
        self.rebuild();
        Ok(())
    }

    /// Removes `server` and rebuilds; returns whether it was a member.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Ketama, KetamaVariant};
    ///
    /// let mut ketama = Ketama::new(KetamaVariant::Libketama);
    /// ketama.extend_weighted([("10.0.1.1:11211", 1), ("10.0.1.2:11211", 1)])?;
    /// assert!(ketama.remove(&"10.0.1.1:11211"));
    /// assert!(!ketama.remove(&"10.0.1.1:11211"));
    /// assert_eq!(ketama.node("user:42"), Some(&"10.0.1.2:11211"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&mut self, server: &N) -> bool {
        let Some(rank) = self.label_rank(server) else {
            return false;
        };
        let at = self.by_label.remove(rank);
        for i in &mut self.by_label {
            *i -= u32::from(*i > at);
        }
        let at = at as usize;
        self.servers.remove(at);
        self.weights.remove(at);
        self.rebuild();
        true
    }

    fn rebuild(&mut self) {
        let total: u64 = self.weights.iter().map(|&w| u64::from(w)).sum();
        let n = self.servers.len();
        let counts: Vec<u32> = self
            .weights
            .iter()
            .map(|&weight| digests(self.variant, weight, total, n))
            .collect();
        let mut pairs: Vec<(u32, u32)> =
            Vec::with_capacity(counts.iter().map(|&c| 4 * c as usize).sum());
        let mut label = String::new();
        self.placed = 0;
        for (i, (server, &count)) in self.servers.iter().zip(&counts).enumerate() {
            self.placed += usize::from(count > 0);
            for d in 0..count {
                label.clear();
                label.push_str(server.as_ref());
                label.push('-');
                push_decimal(&mut label, d);
                let digest = Md5::digest(label.as_bytes());
                for h in 0..4 {
                    let b = &digest[h * 4..h * 4 + 4];
                    pairs.push((u32::from_le_bytes([b[0], b[1], b[2], b[3]]), i as u32));
                }
            }
        }
        // Equal points stay in server order, as with glibc's merge-sort qsort: pairs were
        // pushed in server order, so sorting by (point, server) is that stable order.
        pairs.sort_unstable();
        self.points = pairs.iter().map(|p| p.0).collect();
        self.owners = pairs.iter().map(|p| p.1).collect();
        self.rebuild_index();
    }
}

/// Appends `n` in decimal, as `format!("{n}")` would, without allocating.
fn push_decimal(out: &mut String, n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}

impl<N> ConsistentHash for Ketama<N> {
    type Node = N;
    /// MD5: ketama's key hash, so [`ConsistentHash::node`] gives the C libraries' answer.
    type Hash = KetamaHash;

    fn len(&self) -> usize {
        self.servers.len()
    }

    #[inline]
    fn node_for_hash(&self, hash: KetamaHash) -> Option<&N> {
        if self.points.is_empty() {
            return None;
        }
        let pos = self.position(hash.get());
        Some(&self.servers[self.owners[pos] as usize])
    }

    /// Distinct servers in continuum order from the key's point, the owner first. A server
    /// with no points ([`unplaced`](Ketama::unplaced)) is never written, so this returns
    /// `min(out.len(), len() - unplaced().count())`, which is less than
    /// `min(out.len(), len())` when `out` has room for an unplaced server; libketama-based
    /// clients walking the continuum give the same servers.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Ketama, KetamaHash, KetamaVariant, PlacementHash};
    ///
    /// let mut ketama = Ketama::new(KetamaVariant::Libmemcached);
    /// ketama.extend_weighted([("a", 1000), ("b", 1000), ("light", 1)])?;
    /// let mut out = [None; 3];
    /// assert_eq!(ketama.replicas_for_hash(KetamaHash::of("k"), &mut out), 2);
    /// assert!(!out.contains(&Some(&"light")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn replicas_for_hash<'a>(&'a self, hash: KetamaHash, out: &mut [Option<&'a N>]) -> usize {
        let mut distinct = Distinct::new(out, self.placed, self.servers.len());
        if self.points.is_empty() {
            return 0;
        }
        let start = self.position(hash.get());
        let len = self.points.len();
        for step in 0..len {
            if distinct.full() {
                break;
            }
            let owner = self.owners[(start + step) % len] as usize;
            distinct.push(owner, &self.servers[owner]);
        }
        distinct.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_give_40_digests_but_for_float_rounding() {
        for variant in [
            KetamaVariant::Libketama,
            KetamaVariant::Libmemcached,
            KetamaVariant::Twemproxy,
        ] {
            for n in [1usize, 3, 7, 10] {
                assert_eq!(digests(variant, 1, n as u64, n), 40, "{variant:?} n={n}");
            }
        }
        // 1/100 in float times 40 times 100 is 39.999996 in float arithmetic.
        assert_eq!(digests(KetamaVariant::Libmemcached, 1, 100, 100), 39);
        assert_eq!(digests(KetamaVariant::Twemproxy, 1, 100, 100), 39);
        assert_eq!(digests(KetamaVariant::Libketama, 1, 100, 100), 40);
    }

    #[test]
    fn prefix_index_agrees_with_a_plain_binary_search() {
        let mut k = Ketama::new(KetamaVariant::Libketama);
        k.extend_weighted((0..40).map(|i| (format!("10.0.0.{i}:11211"), 1)))
            .unwrap();
        for h in (0..20_000u32).map(|i| i.wrapping_mul(0x9e37_79b9)).chain([
            0,
            1,
            u32::MAX,
            k.points[0],
            k.points[7],
        ]) {
            let plain = k.points.partition_point(|&p| p < h);
            let plain = if plain == k.points.len() { 0 } else { plain };
            assert_eq!(k.position(h), plain);
        }
    }

    #[test]
    fn decimal_labels_match_format() {
        for n in [0, 7, 10, 39, 40, 159, 1_000, 65_535, u32::MAX] {
            let mut label = String::from("s-");
            push_decimal(&mut label, n);
            assert_eq!(label, format!("s-{n}"));
        }
    }

    #[test]
    fn key_hash_is_md5_of_the_key_bytes() {
        assert_eq!(KetamaHash::of("abc").get(), ketama_hash(b"abc"));
        // MD5("abc") = 900150983cd24fb0...
        assert_eq!(ketama_hash(b"abc"), 0x9850_0190);
    }

    /// With an unplaced server the walk stops after the placed ones, and gives what walking
    /// the whole continuum gives.
    #[test]
    fn replica_walk_stops_after_the_placed_servers() {
        let mut k = Ketama::new(KetamaVariant::Libketama);
        k.extend_weighted([("a:1", 500), ("b:1", 400), ("c:1", 300), ("light:1", 1)])
            .unwrap();
        assert_eq!((k.len(), k.placed), (4, 3));
        let mut out = [None; 4];
        for i in 0..3_000u32 {
            let hash = KetamaHash::from_raw(i.wrapping_mul(0x9e37_79b9));
            let start = k.position(hash.get());
            let mut reference: Vec<&&str> = Vec::new();
            for step in 0..k.points.len() {
                let server = &k.servers[k.owners[(start + step) % k.points.len()] as usize];
                if !reference.contains(&server) {
                    reference.push(server);
                }
            }
            assert_eq!(k.replicas_for_hash(hash, &mut out), 3);
            let got: Vec<&&str> = out.iter().flatten().copied().collect();
            assert_eq!(got, reference);
        }
        assert!(k.remove(&"light:1"));
        assert_eq!(k.placed, 3);
        assert!(k.remove(&"a:1") && k.remove(&"b:1") && k.remove(&"c:1"));
        assert_eq!(k.placed, 0);
    }

    #[test]
    fn rejects_bad_servers() {
        let mut k = Ketama::new(KetamaVariant::Twemproxy);
        assert_eq!(k.add_weighted("", 1), Err(Error::EmptyServerName));
        assert_eq!(k.add_weighted("a:1", 0), Err(Error::ZeroWeight));
        k.add_weighted("a:1", 1).unwrap();
        assert_eq!(k.add_weighted("a:1", 2), Err(Error::DuplicateNode));
        assert!(k.remove(&"a:1"));
        assert!(!k.remove(&"a:1"));
        assert_eq!(k.node("x"), None);
    }
}
