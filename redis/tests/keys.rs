//! Every key of one name lands in one cluster slot, for any name: checked against a CRC16
//! reference of Redis's hash-slot rule and against a real server's `CLUSTER KEYSLOT`.

use keel_redis::{KeyBuilder, tag};
use keel_testkit::{RedisServer, Reply};
use proptest::prelude::*;

/// CRC16-CCITT (XMODEM), bit by bit, as in the Redis Cluster specification.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Redis's `keyHashSlot`: hash the text between the first `{` and the next `}` if it is not
/// empty, else the whole key.
fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match bytes.iter().position(|&b| b == b'{') {
        Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    crc16(hashed) % 16384
}

fn cluster_node() -> RedisServer {
    RedisServer::builder()
        .config("cluster-enabled", "yes")
        .start()
        .expect("redis-server with cluster support starts")
}

fn server_slot(server: &RedisServer, key: &str) -> u16 {
    match server.command(&["CLUSTER", "KEYSLOT", key]) {
        Ok(Reply::Integer(slot)) => u16::try_from(slot).expect("slot fits u16"),
        other => panic!("CLUSTER KEYSLOT {key:?}: {other:?}"),
    }
}

/// Names rich in the characters that matter.
fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => Just('{'),
            3 => Just('}'),
            2 => Just('%'),
            1 => Just(':'),
            4 => any::<char>(),
        ],
        0..12,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

#[test]
fn reference_matches_published_values() {
    // From the Redis Cluster specification and `CLUSTER KEYSLOT`.
    assert_eq!(crc16(b"123456789"), 0x31C3);
    assert_eq!(slot("foo"), 12182);
    assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
    assert_eq!(slot("foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
}

#[test]
fn the_old_scheme_splits_a_name_starting_with_a_brace() {
    // Why the escaping exists: `{` + name + `}` with name `}x` gives the empty tag `{}`.
    let old = |name: &str, suffix: &str| format!("rl:{{{name}}}{suffix}");
    assert_ne!(slot(&old("}x", ":log")), slot(&old("}x", ":meta")));
    let keys = KeyBuilder::new("rl:").unwrap();
    assert_eq!(
        slot(&keys.key_with("}x", ":log")),
        slot(&keys.key_with("}x", ":meta"))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_key_of_a_name_shares_a_slot(
        name in name(),
        prefix in "[a-z:_-]{0,8}",
        suffixes in prop::collection::vec(".{0,6}", 1..4),
    ) {
        let keys = KeyBuilder::new(prefix).unwrap();
        let expected = slot(&keys.key(&name));
        for suffix in &suffixes {
            prop_assert_eq!(slot(&keys.key_with(&name, suffix)), expected);
        }
        // The tag is what gets hashed.
        prop_assert_eq!(expected, crc16(tag(&name).as_bytes()) % 16384);
    }

    #[test]
    fn distinct_names_get_distinct_tags(a in name(), b in name()) {
        prop_assume!(a != b);
        prop_assert_ne!(tag(&a), tag(&b));
    }
}

#[test]
fn server_agrees_for_random_names() {
    let server = cluster_node();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(256));
    runner
        .run(
            &(name(), prop::collection::vec("[a-z:{}]{0,5}", 1..4)),
            |(name, suffixes)| {
                let keys = KeyBuilder::new("keel:").unwrap();
                let first = keys.key(&name);
                let slot_of_first = server_slot(&server, &first);
                prop_assert_eq!(slot_of_first, slot(&first));
                for suffix in &suffixes {
                    let key = keys.key_with(&name, suffix);
                    prop_assert_eq!(server_slot(&server, &key), slot_of_first, "{:?}", key);
                }
                Ok(())
            },
        )
        .unwrap();
}
