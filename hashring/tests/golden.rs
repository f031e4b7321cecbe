//! Frozen key → node tables. Placement must never change between releases: a change that
//! alters any line here breaks every deployed client that shares keys with an older one.

use keel_hashring::{ConsistentHash, JumpHash, Maglev, MultiProbe, Rendezvous, Ring, hash_key};

const KEYS: [&str; 8] = [
    "",
    "a",
    "user:42",
    "session:8f2c",
    "object/2024/01/01/x.png",
    "κλειδί",
    "0",
    "zzzzzzzz",
];

fn nodes() -> Vec<String> {
    (0..10).map(|i| format!("node-{i}")).collect()
}

fn table<H: ConsistentHash<Node = String>>(placement: &H) -> Vec<String> {
    KEYS.iter()
        .map(|k| placement.node(*k).cloned().unwrap_or_default())
        .collect()
}

#[test]
fn hash_key_is_frozen() {
    let got: Vec<u64> = KEYS.iter().map(|k| hash_key(*k)).collect();
    let want: [u64; 8] = GOLDEN_HASH;
    assert_eq!(got, want, "hash_key changed: {got:#x?}");
    assert_eq!(hash_key(&42u64), GOLDEN_U64_42);
}

#[test]
fn ring_table_is_frozen() {
    let mut ring = Ring::new();
    for (i, n) in nodes().into_iter().enumerate() {
        ring.add_weighted(n, 1 + (i as u32 % 3)).unwrap();
    }
    assert_eq!(table(&ring), GOLDEN_RING, "ring placement changed");
}

#[test]
fn jump_table_is_frozen() {
    let mut jump = JumpHash::new();
    for n in nodes() {
        jump.add(n).unwrap();
    }
    jump.remove(&"node-3".to_string());
    assert_eq!(table(&jump), GOLDEN_JUMP, "jump placement changed");
}

#[test]
fn rendezvous_table_is_frozen() {
    let mut hrw = Rendezvous::new();
    for n in nodes() {
        hrw.add(n).unwrap();
    }
    assert_eq!(table(&hrw), GOLDEN_HRW, "rendezvous placement changed");
    let mut weighted = Rendezvous::new();
    for (i, n) in nodes().into_iter().enumerate() {
        weighted.add_weighted(n, 1 + (i as u32 % 3)).unwrap();
    }
    assert_eq!(
        table(&weighted),
        GOLDEN_HRW_WEIGHTED,
        "weighted rendezvous placement changed"
    );
}

#[test]
fn maglev_table_is_frozen() {
    let mut maglev = Maglev::builder().table_size(1009).build().unwrap();
    maglev
        .extend_weighted(
            nodes()
                .into_iter()
                .enumerate()
                .map(|(i, n)| (n, 1 + (i as u32 % 3))),
        )
        .unwrap();
    assert_eq!(table(&maglev), GOLDEN_MAGLEV, "maglev placement changed");
}

#[test]
fn multi_probe_table_is_frozen() {
    let mut mp = MultiProbe::new();
    mp.extend(nodes()).unwrap();
    assert_eq!(
        table(&mp),
        GOLDEN_MULTI_PROBE,
        "multi-probe placement changed"
    );
}

const GOLDEN_MAGLEV: [&str; 8] = [
    "node-4", "node-8", "node-8", "node-5", "node-8", "node-1", "node-2", "node-3",
];
const GOLDEN_MULTI_PROBE: [&str; 8] = [
    "node-3", "node-2", "node-4", "node-3", "node-2", "node-3", "node-2", "node-3",
];
const GOLDEN_HASH: [u64; 8] = [
    0x08c1_c5a9_c509_2bef,
    0xbb68_1fdc_b8c7_c461,
    0x70e0_6fa8_8e42_5895,
    0x3cda_579e_6650_cd79,
    0x7a39_f3ba_8c4f_0e4e,
    0x1990_e240_9173_0542,
    0xb610_490c_1020_d55c,
    0xd7c2_2e37_fa81_904d,
];
const GOLDEN_U64_42: u64 = 0xd918_29dc_e2fe_100d;
const GOLDEN_RING: [&str; 8] = [
    "node-8", "node-0", "node-9", "node-2", "node-0", "node-2", "node-4", "node-8",
];
const GOLDEN_JUMP: [&str; 8] = [
    "node-2", "node-8", "node-0", "node-4", "node-5", "node-1", "node-5", "node-5",
];
const GOLDEN_HRW: [&str; 8] = [
    "node-3", "node-4", "node-6", "node-6", "node-1", "node-6", "node-2", "node-7",
];
const GOLDEN_HRW_WEIGHTED: [&str; 8] = [
    "node-3", "node-4", "node-2", "node-4", "node-1", "node-5", "node-2", "node-7",
];
