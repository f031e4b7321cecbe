//! The ULID type: 48 bits of milliseconds and 80 random bits, written as 26 characters of
//! Crockford base32.

use std::fmt;
use std::str::FromStr;

use crate::{GenerateError, ParseError};

/// A ULID: a 128-bit ID whose top 48 bits are milliseconds since the Unix epoch and whose low
/// 80 bits are random, sorted the same way as numbers, bytes (big-endian) and text.
///
/// Text is 26 characters of Crockford's base32 (`0123456789ABCDEFGHJKMNPQRSTVWXYZ`, no `I`,
/// `L`, `O` or `U`), upper case when written; parsing also accepts lower case. 26 characters
/// hold 130 bits, so the first character is at most `7`: text above
/// `7ZZZZZZZZZZZZZZZZZZZZZZZZZ` is refused with [`ParseError::Overflow`].
///
/// # Example
///
/// ```
/// use keel_idgen::Ulid;
///
/// let ulid: Ulid = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse()?;
/// assert_eq!(ulid.timestamp_ms(), 1_469_922_850_259);
/// assert_eq!(ulid.to_string(), "01ARZ3NDEKTSV4RRFFQ69G5FAV");
/// assert_eq!(Ulid::from_bytes(ulid.to_bytes()), ulid);
///
/// let error = "01ARZ3NDEKTSV4RRFFQ69G5FAU".parse::<Ulid>().unwrap_err();
/// assert_eq!(error.to_string(), "invalid character 'U' at position 25");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ulid(u128);

/// The length of a ULID's text.
pub(crate) const ULID_LEN: usize = 26;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

const INVALID: u8 = 0xFF;

const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 32 {
        let c = ALPHABET[i];
        table[c as usize] = i as u8;
        table[c.to_ascii_lowercase() as usize] = i as u8;
        i += 1;
    }
    table
};

const CHUNK_MASK: u64 = (1 << 60) - 1;
const RANDOM_BITS: u32 = 80;
const RANDOM_MASK: u128 = (1 << RANDOM_BITS) - 1;
const TIME_MASK: u64 = (1 << 48) - 1;

impl Ulid {
    /// The smallest ULID, all zeros.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Ulid;
    ///
    /// assert_eq!(Ulid::MIN.to_string(), "00000000000000000000000000");
    /// assert_eq!(Ulid::MIN.to_u128(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const MIN: Ulid = Ulid(0);
    /// The largest ULID, `7ZZZZZZZZZZZZZZZZZZZZZZZZZ`.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Ulid;
    ///
    /// assert_eq!(Ulid::MAX.to_string(), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    /// assert_eq!(Ulid::MAX.timestamp_ms(), (1 << 48) - 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const MAX: Ulid = Ulid(u128::MAX);

    /// A ULID from a timestamp and random bits; only the low 48 bits of `timestamp_ms` and
    /// the low 80 bits of `random` are used.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Ulid;
    ///
    /// let ulid = Ulid::from_parts(1_469_922_850_259, 0x8C5_3B9C_7E8B_72CF_6A8B);
    /// assert_eq!(ulid.timestamp_ms(), 1_469_922_850_259);
    /// assert_eq!(ulid.random(), 0x8C5_3B9C_7E8B_72CF_6A8B);
    /// // Bits above 48 and 80 are dropped.
    /// assert_eq!(Ulid::from_parts(1 << 48, 1 << 80), Ulid::MIN);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn from_parts(timestamp_ms: u64, random: u128) -> Ulid {
        Ulid((((timestamp_ms & TIME_MASK) as u128) << RANDOM_BITS) | (random & RANDOM_MASK))
    }

    /// The ULID with this numeric value.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Ulid;
    ///
    /// assert_eq!(Ulid::from_u128(1).to_string(), "00000000000000000000000001");
    /// assert_eq!(Ulid::from_u128(u128::MAX), Ulid::MAX);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn from_u128(value: u128) -> Ulid {
        Ulid(value)
    }

    /// The numeric value.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Ulid;
    ///
    /// let ulid: Ulid = "0000000000000000000000000Z".parse()?;
    /// assert_eq!(ulid.to_u128(), 31);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn to_u128(self) -> u128 {
        self.0
    }

    /// The ULID stored in these 16 bytes, big-endian (the spec's binary layout).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Ulid;
    ///
    /// let mut bytes = [0; 16];
    /// bytes[15] = 32;
    /// assert_eq!(Ulid::from_bytes(bytes).to_string(), "00000000000000000000000010");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn from_bytes(bytes: [u8; 16]) -> Ulid {
        Ulid(u128::from_be_bytes(bytes))
    }

    /// The 16 bytes, big-endian, which sort as the ULID does.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Ulid;
    ///
    /// let ulid = Ulid::from_parts(1, 0);
    /// // The millisecond is in the first six bytes, big-endian.
    /// assert_eq!(ulid.to_bytes()[..6], [0, 0, 0, 0, 0, 1]);
    /// assert_eq!(Ulid::from_bytes(ulid.to_bytes()), ulid);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// Milliseconds since the Unix epoch.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Ulid;
    ///
    /// let ulid: Ulid = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse()?;
    /// assert_eq!(ulid.timestamp_ms(), 1_469_922_850_259);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn timestamp_ms(self) -> u64 {
        (self.0 >> RANDOM_BITS) as u64
    }

    /// The 80 random bits.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Ulid;
    ///
    /// let ulid: Ulid = "01ARZ3NDEK0000000000000001".parse()?;
    /// assert_eq!(ulid.random(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn random(self) -> u128 {
        self.0 & RANDOM_MASK
    }

    /// The specification's monotonic step: the same timestamp, with the random part plus
    /// one. A generator issuing several ULIDs in one millisecond issues them this way.
    ///
    /// # Errors
    ///
    /// [`GenerateError::Overflow`] when the random part is already all ones (2^80 − 1): the
    /// specification says generation fails then, rather than carrying into the timestamp.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{GenerateError, Ulid};
    ///
    /// let ulid: Ulid = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse()?;
    /// let next = ulid.increment()?;
    /// assert_eq!(next.to_string(), "01ARZ3NDEKTSV4RRFFQ69G5FAW");
    /// assert_eq!(next.timestamp_ms(), ulid.timestamp_ms());
    ///
    /// let last = Ulid::from_parts(ulid.timestamp_ms(), (1 << 80) - 1);
    /// assert_eq!(last.increment(), Err(GenerateError::Overflow));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn increment(self) -> Result<Ulid, GenerateError> {
        if self.random() == RANDOM_MASK {
            Err(GenerateError::Overflow)
        } else {
            Ok(Ulid(self.0 + 1))
        }
    }

    /// Writes the 26 characters into `buffer` and returns them as a `str`, without
    /// allocating.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Ulid;
    ///
    /// let ulid = Ulid::from_parts(1_469_922_850_259, 0);
    /// let mut buffer = [0; 26];
    /// let text = ulid.encode(&mut buffer);
    /// assert_eq!(text, "01ARZ3NDEK0000000000000000");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode<'a>(&self, buffer: &'a mut [u8; ULID_LEN]) -> &'a str {
        // 26 characters of 5 bits hold 130 bits: 2 characters for the top 8 bits, then two
        // runs of 12 for 60 bits each, so the work is on u64s.
        let hi = (self.0 >> 120) as u64;
        let mid = (self.0 >> 60) as u64 & CHUNK_MASK;
        let lo = self.0 as u64 & CHUNK_MASK;
        buffer[0] = ALPHABET[(hi >> 5) as usize];
        buffer[1] = ALPHABET[(hi & 31) as usize];
        for i in 0..12 {
            let shift = 55 - 5 * i;
            buffer[2 + i] = ALPHABET[((mid >> shift) & 31) as usize];
            buffer[14 + i] = ALPHABET[((lo >> shift) & 31) as usize];
        }
        // SAFETY: every byte was just written from ALPHABET, which is ASCII, so the buffer
        // is valid UTF-8 (checking it again costs as much as the encoding).
        unsafe { std::str::from_utf8_unchecked(buffer) }
    }

    /// Parses 26 characters of Crockford base32 (either case).
    ///
    /// # Errors
    ///
    /// [`ParseError::Length`] for a string of another length, [`ParseError::Character`] with
    /// the position of the first character outside the alphabet, and
    /// [`ParseError::Overflow`] for a value above `7ZZZZZZZZZZZZZZZZZZZZZZZZZ`.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{ParseError, Ulid};
    ///
    /// let upper = Ulid::from_string("01ARZ3NDEKTSV4RRFFQ69G5FAV")?;
    /// let lower = Ulid::from_string("01arz3ndektsv4rrffq69g5fav")?;
    /// assert_eq!(upper, lower);
    /// assert_eq!(
    ///     Ulid::from_string("01ARZ3NDEKTSV4RRFFQ69G5FAL"),
    ///     Err(ParseError::Character { position: 25, found: 'L' })
    /// );
    /// assert_eq!(Ulid::from_string("80000000000000000000000000"), Err(ParseError::Overflow));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_string(text: &str) -> Result<Ulid, ParseError> {
        let bytes = text.as_bytes();
        if bytes.len() != ULID_LEN {
            return Err(ParseError::Length {
                found: bytes.len(),
                expected: ULID_LEN,
            });
        }
        let digit = |i: usize| u64::from(DECODE[usize::from(bytes[i])]);
        let (mut mid, mut lo, mut seen) = (0u64, 0u64, digit(0) | digit(1));
        for i in 0..12 {
            let (m, l) = (digit(2 + i), digit(14 + i));
            mid = (mid << 5) | m;
            lo = (lo << 5) | l;
            seen |= m | l;
        }
        // Digits are below 32; an invalid byte decodes to 0xFF, so bit 7 flags it.
        if seen & 0x80 != 0 {
            return Err(invalid_character(text));
        }
        if digit(0) > 7 {
            return Err(ParseError::Overflow);
        }
        let hi = (digit(0) << 5) | digit(1);
        let value = (u128::from(hi) << 120) | (u128::from(mid) << 60) | u128::from(lo);
        Ok(Ulid(value))
    }
}

// The first byte outside the alphabet, for the error (the slow path).
#[cold]
fn invalid_character(text: &str) -> ParseError {
    for (position, found) in text.char_indices() {
        if !found.is_ascii() || DECODE[found as usize] == INVALID {
            return ParseError::Character { position, found };
        }
    }
    ParseError::Length {
        found: text.len(),
        expected: ULID_LEN,
    }
}

impl fmt::Display for Ulid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buffer = [0; ULID_LEN];
        let text = self.encode(&mut buffer);
        // Padding is rare; skip its bookkeeping when no width is asked for.
        if f.width().is_none() && f.precision().is_none() {
            f.write_str(text)
        } else {
            f.pad(text)
        }
    }
}

impl fmt::Debug for Ulid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ulid({self})")
    }
}

impl FromStr for Ulid {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Ulid, ParseError> {
        Ulid::from_string(text)
    }
}

impl From<u128> for Ulid {
    fn from(value: u128) -> Ulid {
        Ulid(value)
    }
}

impl From<Ulid> for u128 {
    fn from(ulid: Ulid) -> u128 {
        ulid.0
    }
}

impl From<[u8; 16]> for Ulid {
    fn from(bytes: [u8; 16]) -> Ulid {
        Ulid::from_bytes(bytes)
    }
}

impl From<Ulid> for [u8; 16] {
    fn from(ulid: Ulid) -> [u8; 16] {
        ulid.to_bytes()
    }
}

#[cfg(feature = "uuid")]
impl From<Ulid> for uuid::Uuid {
    /// The same 128 bits as a UUID (which is then neither version 4 nor 7).
    fn from(ulid: Ulid) -> uuid::Uuid {
        uuid::Uuid::from_u128(ulid.0)
    }
}

#[cfg(feature = "uuid")]
impl From<uuid::Uuid> for Ulid {
    fn from(uuid: uuid::Uuid) -> Ulid {
        Ulid(uuid.as_u128())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Ulid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buffer = [0; ULID_LEN];
        serializer.serialize_str(self.encode(&mut buffer))
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Ulid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Ulid, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Ulid;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 26-character ULID")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Ulid, E> {
                Ulid::from_string(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_ulid_is_7zzz() {
        assert_eq!(Ulid::MAX.to_string(), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
        assert_eq!(Ulid::MIN.to_string(), "00000000000000000000000000");
        assert_eq!("7ZZZZZZZZZZZZZZZZZZZZZZZZZ".parse::<Ulid>(), Ok(Ulid::MAX));
        assert_eq!(Ulid::MAX.timestamp_ms(), 281_474_976_710_655);
        assert_eq!(
            "80000000000000000000000000".parse::<Ulid>(),
            Err(ParseError::Overflow)
        );
    }

    #[test]
    fn malformed_text_is_a_typed_error_with_its_position() {
        assert_eq!(
            "01ARZ3NDEK".parse::<Ulid>(),
            Err(ParseError::Length {
                found: 10,
                expected: 26
            })
        );
        assert_eq!(
            "01ARZ3NDEKTSV4RRFFQ69G5FA!".parse::<Ulid>(),
            Err(ParseError::Character {
                position: 25,
                found: '!'
            })
        );
        assert_eq!(
            "0IARZ3NDEKTSV4RRFFQ69G5FAV".parse::<Ulid>(),
            Err(ParseError::Character {
                position: 1,
                found: 'I'
            })
        );
        // A multi-byte character is reported whole, at its byte position.
        assert_eq!(
            "01ARZ3NDEKTSV4RRFFQ69G5é".parse::<Ulid>(),
            Err(ParseError::Length {
                found: 25,
                expected: 26
            })
        );
        assert_eq!(
            "01ARZ3NDEKTSV4RRFFQ69G5Fé".parse::<Ulid>(),
            Err(ParseError::Character {
                position: 24,
                found: 'é'
            })
        );
    }

    #[test]
    fn lower_case_parses_and_parts_split() {
        let ulid: Ulid = "01arz3ndektsv4rrffq69g5fav".parse().expect("valid");
        assert_eq!(ulid.to_string(), "01ARZ3NDEKTSV4RRFFQ69G5FAV");
        let rebuilt = Ulid::from_parts(ulid.timestamp_ms(), ulid.random());
        assert_eq!(rebuilt, ulid);
        assert_eq!(format!("{ulid:?}"), "Ulid(01ARZ3NDEKTSV4RRFFQ69G5FAV)");
        assert_eq!(format!("{ulid:>28}"), "  01ARZ3NDEKTSV4RRFFQ69G5FAV");
    }
}
