//! Workloads shared by the `hashring` bench and `compare hashring`: node sets, keys, and
//! every implementation (keel's and the peer crates') behind one lookup interface.

use std::collections::hash_map::RandomState;

use keel_hashring::{
    ConsistentHash, JumpHash, Ketama, KetamaVariant, Maglev, MultiProbe, Rendezvous, Ring,
};

/// Virtual nodes per node for every ring, keel's and the peers'.
pub const VNODES: u32 = 160;

/// A virtual node for the `hashring` crate, which leaves virtual nodes to its users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VNode {
    /// The node.
    pub node: u32,
    /// Its replica index.
    pub vnode: u32,
}

/// Keys `0..count`, as the bench and compare use them.
pub fn keys(count: usize) -> Vec<u64> {
    (0..count as u64)
        .map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect()
}

/// keel's ring with [`VNODES`] points per node.
pub fn keel_ring(nodes: &[u32]) -> Ring<u32> {
    let mut ring = Ring::builder().vnodes(VNODES).build().expect("vnodes > 0");
    ring.extend_weighted(nodes.iter().map(|&n| (n, 1)))
        .expect("distinct nodes");
    ring
}

/// keel's jump hash over `nodes` in order.
pub fn keel_jump(nodes: &[u32]) -> JumpHash<u32> {
    let mut jump = JumpHash::new();
    for &n in nodes {
        jump.add(n).expect("distinct nodes");
    }
    jump
}

/// keel's rendezvous over `nodes`.
pub fn keel_rendezvous(nodes: &[u32]) -> Rendezvous<u32> {
    let mut hrw = Rendezvous::new();
    for &n in nodes {
        hrw.add(n).expect("distinct nodes");
    }
    hrw
}

/// keel's Maglev with its table sized for the node count (`expected_nodes`).
pub fn keel_maglev(nodes: &[u32]) -> Maglev<u32> {
    let mut maglev = Maglev::builder()
        .expected_nodes(nodes.len() as u64)
        .build()
        .expect("at most MAX_EXPECTED_NODES");
    maglev
        .extend_weighted(nodes.iter().map(|&n| (n, 1)))
        .expect("fewer nodes than slots");
    maglev
}

/// keel's Maglev with a fixed 65,537-slot table, the default size.
pub fn keel_maglev_fixed(nodes: &[u32]) -> Maglev<u32> {
    let mut maglev = Maglev::builder()
        .table_size(65_537)
        .build()
        .expect("a prime size");
    maglev
        .extend_weighted(nodes.iter().map(|&n| (n, 1)))
        .expect("fewer nodes than slots");
    maglev
}

/// keel's multi-probe with 21 probes.
pub fn keel_multi_probe(nodes: &[u32]) -> MultiProbe<u32> {
    let mut mp = MultiProbe::new();
    mp.extend(nodes.iter().copied()).expect("distinct nodes");
    mp
}

/// A memcached server for ketama: the label it is hashed by, and its node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `10.0.<hi>.<lo>:11211`.
    pub label: String,
    /// The node id.
    pub id: u32,
}

impl AsRef<str> for Server {
    fn as_ref(&self) -> &str {
        &self.label
    }
}

/// Node `id` as the memcached server `10.0.<hi>.<lo>:11211`.
pub fn server(id: u32) -> Server {
    Server {
        label: format!("10.0.{}.{}:11211", id / 256, id % 256),
        id,
    }
}

/// keel's libketama-compatible continuum over [`server`] labels.
pub fn keel_ketama(nodes: &[u32]) -> Ketama<Server> {
    let mut ketama = Ketama::new(KetamaVariant::Libketama);
    ketama
        .extend_weighted(nodes.iter().map(|&id| (server(id), 1)))
        .expect("distinct labels");
    ketama
}

/// The `hashring` crate with [`VNODES`] virtual nodes per node.
pub fn peer_hashring(nodes: &[u32]) -> hashring::HashRing<VNode> {
    let mut ring = hashring::HashRing::new();
    ring.batch_add(
        nodes
            .iter()
            .flat_map(|&node| (0..VNODES).map(move |vnode| VNode { node, vnode }))
            .collect(),
    );
    ring
}

/// The `consistent_hash_ring` crate with [`VNODES`] virtual nodes per node.
pub fn peer_consistent_hash_ring(nodes: &[u32]) -> consistent_hash_ring::Ring<u32> {
    consistent_hash_ring::RingBuilder::default()
        .vnodes(VNODES as usize)
        .nodes_iter(nodes.iter().copied())
        .build()
}

/// The `maglev` crate with a 65,537-slot table like keel's smallest (its default, the prime after
/// 100 × nodes, changes size and so remaps nearly every key whenever a node comes or goes).
pub fn peer_maglev(nodes: &[u32]) -> maglev::Maglev<u32> {
    maglev::Maglev::with_capacity(nodes.iter().copied(), 65_537)
}

/// The `anchorhash` crate with room for twice the nodes.
pub fn peer_anchorhash(nodes: &[u32]) -> anchorhash::AnchorHash<u64, u32, RandomState> {
    let capacity = u16::try_from(nodes.len() * 2).unwrap_or(u16::MAX);
    anchorhash::Builder::default()
        .with_resources(nodes.iter().copied())
        .build(capacity)
}

/// The `jumphash` crate with fixed keys.
pub fn peer_jumphash() -> jumphash::JumpHasher {
    jumphash::JumpHasher::new_with_keys(1, 2)
}

/// One implementation built over some nodes: lookups by node id and membership changes.
pub trait Placed {
    /// The node id owning key `k`.
    fn lookup(&self, k: u64) -> u32;
    /// Adds node `id`.
    fn add(&mut self, id: u32);
    /// Removes node `id`.
    fn remove(&mut self, id: u32);
    /// Heap bytes held, when the implementation can say.
    fn heap_bytes(&self) -> Option<usize>;
}

impl Placed for Ring<u32> {
    fn lookup(&self, k: u64) -> u32 {
        *self.node(&k).expect("members")
    }
    fn add(&mut self, id: u32) {
        Ring::add(self, id).expect("new node");
    }
    fn remove(&mut self, id: u32) {
        Ring::remove(self, &id);
    }
    fn heap_bytes(&self) -> Option<usize> {
        Some(Ring::heap_bytes(self))
    }
}

impl Placed for JumpHash<u32> {
    fn lookup(&self, k: u64) -> u32 {
        *self.node(&k).expect("members")
    }
    fn add(&mut self, id: u32) {
        JumpHash::add(self, id).expect("new node");
    }
    fn remove(&mut self, id: u32) {
        JumpHash::remove(self, &id);
    }
    fn heap_bytes(&self) -> Option<usize> {
        Some(JumpHash::heap_bytes(self))
    }
}

impl Placed for Rendezvous<u32> {
    fn lookup(&self, k: u64) -> u32 {
        *self.node(&k).expect("members")
    }
    fn add(&mut self, id: u32) {
        Rendezvous::add(self, id).expect("new node");
    }
    fn remove(&mut self, id: u32) {
        Rendezvous::remove(self, &id);
    }
    fn heap_bytes(&self) -> Option<usize> {
        Some(Rendezvous::heap_bytes(self))
    }
}

impl Placed for Maglev<u32> {
    fn lookup(&self, k: u64) -> u32 {
        *self.node(&k).expect("members")
    }
    fn add(&mut self, id: u32) {
        Maglev::add(self, id).expect("new node");
    }
    fn remove(&mut self, id: u32) {
        Maglev::remove(self, &id);
    }
    fn heap_bytes(&self) -> Option<usize> {
        Some(Maglev::heap_bytes(self))
    }
}

impl Placed for MultiProbe<u32> {
    fn lookup(&self, k: u64) -> u32 {
        *self.node(&k).expect("members")
    }
    fn add(&mut self, id: u32) {
        MultiProbe::add(self, id).expect("new node");
    }
    fn remove(&mut self, id: u32) {
        MultiProbe::remove(self, &id);
    }
    fn heap_bytes(&self) -> Option<usize> {
        Some(MultiProbe::heap_bytes(self))
    }
}

impl Placed for Ketama<Server> {
    fn lookup(&self, k: u64) -> u32 {
        self.node(&k).expect("members").id
    }
    fn add(&mut self, id: u32) {
        Ketama::add_weighted(self, server(id), 1).expect("new server");
    }
    fn remove(&mut self, id: u32) {
        Ketama::remove(self, &server(id));
    }
    fn heap_bytes(&self) -> Option<usize> {
        Some(Ketama::heap_bytes(self) + self.iter().map(|(s, _)| s.label.capacity()).sum::<usize>())
    }
}

impl Placed for hashring::HashRing<VNode> {
    fn lookup(&self, k: u64) -> u32 {
        self.get(&k).expect("members").node
    }
    fn add(&mut self, node: u32) {
        self.batch_add((0..VNODES).map(|vnode| VNode { node, vnode }).collect());
    }
    fn remove(&mut self, node: u32) {
        for vnode in 0..VNODES {
            hashring::HashRing::remove(self, &VNode { node, vnode });
        }
    }
    fn heap_bytes(&self) -> Option<usize> {
        // A Vec of (u64 key, VNode) entries.
        Some(self.len() * 16)
    }
}

impl Placed for consistent_hash_ring::Ring<u32> {
    fn lookup(&self, k: u64) -> u32 {
        *self.get(k)
    }
    fn add(&mut self, id: u32) {
        self.insert(id);
    }
    fn remove(&mut self, id: u32) {
        consistent_hash_ring::Ring::remove(self, &id);
    }
    fn heap_bytes(&self) -> Option<usize> {
        None
    }
}

/// The `jumphash` crate over nodes `0..count`: only the last can be removed.
#[derive(Debug)]
pub struct PeerJump {
    hasher: jumphash::JumpHasher,
    count: u32,
}

impl Placed for PeerJump {
    fn lookup(&self, k: u64) -> u32 {
        self.hasher.slot(&k, self.count)
    }
    fn add(&mut self, _: u32) {
        self.count += 1;
    }
    fn remove(&mut self, _: u32) {
        self.count -= 1;
    }
    fn heap_bytes(&self) -> Option<usize> {
        Some(0)
    }
}

/// The `maglev` crate, which has no membership changes: every change rebuilds it.
#[derive(Debug)]
pub struct PeerMaglev {
    nodes: Vec<u32>,
    table: maglev::Maglev<u32>,
}

impl PeerMaglev {
    fn new(nodes: Vec<u32>) -> Self {
        let table = peer_maglev(&nodes);
        Self { nodes, table }
    }
}

impl Placed for PeerMaglev {
    fn lookup(&self, k: u64) -> u32 {
        *maglev::ConsistentHasher::get(&self.table, &k).expect("members")
    }
    fn add(&mut self, id: u32) {
        self.nodes.push(id);
        self.table = peer_maglev(&self.nodes);
    }
    fn remove(&mut self, id: u32) {
        self.nodes.retain(|&n| n != id);
        self.table = peer_maglev(&self.nodes);
    }
    fn heap_bytes(&self) -> Option<usize> {
        None
    }
}

impl Placed for anchorhash::AnchorHash<u64, u32, RandomState> {
    fn lookup(&self, k: u64) -> u32 {
        *self.get_resource(k).expect("members")
    }
    fn add(&mut self, id: u32) {
        self.add_resource(id).expect("capacity");
    }
    fn remove(&mut self, id: u32) {
        self.remove_resource(&id).expect("member");
    }
    fn heap_bytes(&self) -> Option<usize> {
        None
    }
}

/// An implementation the compare program measures.
pub struct Implementation {
    /// Row name.
    pub name: &'static str,
    /// Builds it over `nodes`.
    pub build: fn(&[u32]) -> Box<dyn Placed>,
    /// Whether it takes node weights.
    pub weights: bool,
    /// Whether it returns `n` distinct replicas, and how.
    pub replicas: &'static str,
    /// Whether any node can be removed, and how.
    pub removal: &'static str,
    /// Whether it can be built at 1,000 nodes on this machine.
    pub scales_to_1000: bool,
}

impl std::fmt::Debug for Implementation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Implementation")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Every implementation, keel's first.
pub fn implementations() -> Vec<Implementation> {
    let row =
        |name, build: fn(&[u32]) -> Box<dyn Placed>, weights, replicas, removal| Implementation {
            name,
            build,
            weights,
            replicas,
            removal,
            scales_to_1000: true,
        };
    vec![
        row(
            "keel Ring (160 vnodes)",
            |n| Box::new(keel_ring(n)),
            true,
            "into a buffer",
            "any",
        ),
        row(
            "keel JumpHash",
            |n| Box::new(keel_jump(n)),
            false,
            "into a buffer",
            "any (tombstones)",
        ),
        row(
            "keel Rendezvous",
            |n| Box::new(keel_rendezvous(n)),
            true,
            "top-k into a buffer",
            "any",
        ),
        row(
            "keel Maglev (sized with nodes)",
            |n| Box::new(keel_maglev(n)),
            true,
            "into a buffer",
            "any",
        ),
        row(
            "keel Maglev (fixed 65,537)",
            |n| Box::new(keel_maglev_fixed(n)),
            true,
            "into a buffer",
            "any",
        ),
        row(
            "keel MultiProbe (21)",
            |n| Box::new(keel_multi_probe(n)),
            true,
            "into a buffer",
            "any",
        ),
        row(
            "keel Ketama (libketama)",
            |n| Box::new(keel_ketama(n)),
            true,
            "into a buffer",
            "any",
        ),
        row(
            "hashring 0.3 (160 vnodes)",
            |n| Box::new(peer_hashring(n)),
            false,
            "clones the ring",
            "any",
        ),
        row(
            "consistent_hash_ring 0.8 (160)",
            |n| Box::new(peer_consistent_hash_ring(n)),
            true,
            "iterator (allocates)",
            "any",
        ),
        row(
            "jumphash 0.1",
            |n| {
                Box::new(PeerJump {
                    hasher: peer_jumphash(),
                    count: n.len() as u32,
                })
            },
            false,
            "no",
            "last only",
        ),
        Implementation {
            // Its build keeps an n × M permutation table: 500 MB at 1,000 nodes.
            scales_to_1000: false,
            ..row(
                "maglev 0.2 (65,537)",
                |n| Box::new(PeerMaglev::new(n.to_vec())),
                false,
                "no",
                "rebuild",
            )
        },
        row(
            "anchorhash 0.2",
            |n| Box::new(peer_anchorhash(n)),
            false,
            "no",
            "any",
        ),
    ]
}
