//! UUIDv7 text: the parser never panics and agrees with the `uuid` crate, the reference:
//! it accepts a 36-character hyphenated UUID exactly when `uuid` parses it as version 7 with
//! the RFC variant, with the same value, and prints it back in lower case.
#![no_main]

use keel_idgen::{ParseError, UuidV7};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = UuidV7::from_string(text);
    assert_eq!(parsed, text.parse::<UuidV7>());
    // The reference, restricted to the one form keel reads: 8-4-4-4-12 hex digits.
    let hyphenated = text.len() == 36
        && text.bytes().enumerate().all(|(i, b)| {
            if [8, 13, 18, 23].contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        });
    let reference = uuid::Uuid::parse_str(text)
        .ok()
        .filter(|_| hyphenated)
        .filter(|u| u.get_version_num() == 7 && u.get_variant() == uuid::Variant::RFC4122);
    match parsed {
        Ok(id) => {
            let reference = reference.unwrap_or_else(|| panic!("accepted {text:?}"));
            assert_eq!(u128::from(id), reference.as_u128());
            let printed = id.to_string();
            assert_eq!(printed, text.to_ascii_lowercase());
            assert_eq!(UuidV7::from_string(&printed), Ok(id));
            assert_eq!(uuid::Uuid::from(id), reference);
        }
        Err(error) => {
            assert!(reference.is_none(), "refused {text:?}: {error}");
            match error {
                ParseError::Length { found, expected } => {
                    assert_eq!((found, expected), (text.len(), 36));
                }
                ParseError::Character { position, found } => {
                    assert!(text.is_char_boundary(position));
                    assert_eq!(text[position..].chars().next(), Some(found));
                }
                ParseError::NotV7 { .. } => assert!(hyphenated),
                other => panic!("unexpected {other:?} for {text:?}"),
            }
        }
    }
});
