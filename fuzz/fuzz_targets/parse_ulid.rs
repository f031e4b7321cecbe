//! ULID text: the parser never panics, accepts exactly 26 Crockford base32 characters with a
//! first digit of at most 7, and whatever it accepts prints back as the same value.
#![no_main]

use keel_idgen::{ParseError, Ulid};
use libfuzzer_sys::fuzz_target;

const ALPHABET: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

// Crockford's decoding: case-insensitive, with I and L read as 1 and O as 0.
fn reference_digit(c: char) -> Option<u32> {
    let c = c.to_ascii_uppercase();
    match c {
        'I' | 'L' => Some(1),
        'O' => Some(0),
        _ => ALPHABET.find(c).map(|i| i as u32),
    }
}

fn reference(text: &str) -> Option<u128> {
    if text.len() != 26 || !text.is_ascii() {
        return None;
    }
    let mut value: u128 = 0;
    for (i, c) in text.chars().enumerate() {
        let d = reference_digit(c)?;
        if i == 0 && d > 7 {
            return None;
        }
        value = (value << 5) | u128::from(d);
    }
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Ulid::from_string(text);
    let parsed_via_fromstr = text.parse::<Ulid>();
    assert_eq!(parsed, parsed_via_fromstr);
    match parsed {
        Ok(ulid) => {
            let printed = ulid.to_string();
            assert_eq!(printed.len(), 26);
            assert_eq!(Ulid::from_string(&printed), Ok(ulid));
            assert_eq!(Ulid::from(u128::from(ulid)), ulid);
            // What the parser accepts, a reference decoder accepts with the same value
            // (aliases I, L and O may or may not be accepted, but never mean anything else).
            if let Some(value) = reference(text) {
                assert_eq!(u128::from(ulid), value, "{text:?}");
            } else {
                panic!("accepted {text:?}, which the reference refuses");
            }
        }
        Err(ParseError::Length { found, expected }) => {
            assert_eq!(found, text.len());
            assert_eq!(expected, 26);
            assert_ne!(text.len(), 26);
        }
        Err(ParseError::Character { position, found }) => {
            assert!(text.is_char_boundary(position), "{text:?} {position}");
            assert_eq!(text[position..].chars().next(), Some(found));
            // Only ever refused if the reference (which reads aliases) refuses it too,
            // or it is an alias the parser chooses not to read.
            let upper = found.to_ascii_uppercase();
            assert!(
                reference_digit(found).is_none() || matches!(upper, 'I' | 'L' | 'O'),
                "refused {found:?} in {text:?}"
            );
        }
        Err(ParseError::Overflow) => {
            let first = text.chars().next().and_then(reference_digit);
            assert!(first.is_some_and(|d| d > 7), "{text:?}");
        }
        Err(other) => panic!("unexpected error {other:?} for {text:?}"),
    }
});
