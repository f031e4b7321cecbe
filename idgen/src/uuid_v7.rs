//! The UUIDv7 type of RFC 9562: 48 bits of milliseconds, version, 12 + 62 bits of counter
//! and randomness.

use std::fmt;
use std::str::FromStr;

use crate::ParseError;

/// A version 7 UUID (RFC 9562, section 5.7): `unix_ts_ms` (48 bits), version `7` (4 bits),
/// `rand_a` (12 bits), variant `0b10` (2 bits), `rand_b` (62 bits). Sorted the same way as
/// numbers, bytes and text.
///
/// Text is the usual 36-character hyphenated hex (`8-4-4-4-12`), lower case when written;
/// parsing accepts either case, and refuses UUIDs that are not version 7 with the RFC
/// variant.
///
/// # Example
///
/// RFC 9562's test vector (appendix A.6):
///
/// ```
/// use keel_idgen::UuidV7;
///
/// let uuid = UuidV7::from_parts(0x017F_22E2_79B0, 0xCC3, 0x18C4_DC0C_0C07_398F);
/// assert_eq!(uuid.to_string(), "017f22e2-79b0-7cc3-98c4-dc0c0c07398f");
/// let parsed: UuidV7 = "017F22E2-79B0-7CC3-98C4-DC0C0C07398F".parse()?;
/// assert_eq!(parsed, uuid);
/// assert_eq!(parsed.unix_millis(), 1_645_557_742_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UuidV7(u128);

const TEXT_LEN: usize = 36;
const HYPHENS: [usize; 4] = [8, 13, 18, 23];
const HEX: &[u8; 16] = b"0123456789abcdef";

impl UuidV7 {
    /// A UUIDv7 from its fields; only the low 48 bits of `unix_millis`, 12 of `rand_a` and 62
    /// of `rand_b` are used.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::UuidV7;
    ///
    /// let uuid = UuidV7::from_parts(1, 0, 0);
    /// // Version 7 and the RFC variant are set whatever the fields.
    /// assert_eq!(uuid.to_string(), "00000000-0001-7000-8000-000000000000");
    /// assert_eq!(UuidV7::from_parts(0, 0xFFFF, u64::MAX).rand_a(), 0xFFF);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn from_parts(unix_millis: u64, rand_a: u16, rand_b: u64) -> UuidV7 {
        let ms = (unix_millis & ((1 << 48) - 1)) as u128;
        let a = (rand_a & 0x0FFF) as u128;
        let b = (rand_b & ((1 << 62) - 1)) as u128;
        UuidV7((ms << 80) | (0x7 << 76) | (a << 64) | (0b10 << 62) | b)
    }

    /// The UUID with this numeric value, if it is version 7 with the RFC 9562 variant.
    ///
    /// # Errors
    ///
    /// [`ParseError::NotV7`] otherwise.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{ParseError, UuidV7};
    ///
    /// let uuid = UuidV7::from_u128(0x017F_22E2_79B0_7CC3_98C4_DC0C_0C07_398F)?;
    /// assert_eq!(uuid.unix_millis(), 0x017F_22E2_79B0);
    /// // A version 4 UUID is refused.
    /// assert_eq!(
    ///     UuidV7::from_u128(0x017F_22E2_79B0_4CC3_98C4_DC0C_0C07_398F),
    ///     Err(ParseError::NotV7 { version: 4 })
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn from_u128(value: u128) -> Result<UuidV7, ParseError> {
        let version = ((value >> 76) & 0xF) as u8;
        if version != 7 || (value >> 62) & 0b11 != 0b10 {
            return Err(ParseError::NotV7 { version });
        }
        Ok(UuidV7(value))
    }

    /// The numeric value.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::UuidV7;
    ///
    /// let uuid = UuidV7::from_parts(0, 0, 5);
    /// assert_eq!(uuid.to_u128(), (0x7 << 76) | (0b10 << 62) | 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn to_u128(self) -> u128 {
        self.0
    }

    /// The UUID in these 16 bytes (network order), if it is version 7.
    ///
    /// # Errors
    ///
    /// [`ParseError::NotV7`] otherwise.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{ParseError, UuidV7};
    ///
    /// let uuid = UuidV7::from_parts(1_645_557_742_000, 0xCC3, 0x18C4_DC0C_0C07_398F);
    /// assert_eq!(UuidV7::from_bytes(uuid.to_bytes())?, uuid);
    /// assert_eq!(UuidV7::from_bytes([0; 16]), Err(ParseError::NotV7 { version: 0 }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn from_bytes(bytes: [u8; 16]) -> Result<UuidV7, ParseError> {
        UuidV7::from_u128(u128::from_be_bytes(bytes))
    }

    /// The 16 bytes, in network order.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::UuidV7;
    ///
    /// let bytes = UuidV7::from_parts(0, 0, 0).to_bytes();
    /// // Byte 6 holds the version, byte 8 the variant.
    /// assert_eq!((bytes[6], bytes[8]), (0x70, 0x80));
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
    /// use keel_idgen::UuidV7;
    ///
    /// let uuid: UuidV7 = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f".parse()?;
    /// assert_eq!(uuid.unix_millis(), 1_645_557_742_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn unix_millis(self) -> u64 {
        (self.0 >> 80) as u64
    }

    /// The 12-bit `rand_a` field.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::UuidV7;
    ///
    /// let uuid: UuidV7 = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f".parse()?;
    /// assert_eq!(uuid.rand_a(), 0xCC3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn rand_a(self) -> u16 {
        ((self.0 >> 64) & 0x0FFF) as u16
    }

    /// The 62-bit `rand_b` field.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::UuidV7;
    ///
    /// let uuid: UuidV7 = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f".parse()?;
    /// // The variant bits (the top two of "98c4") are not part of rand_b.
    /// assert_eq!(uuid.rand_b(), 0x18C4_DC0C_0C07_398F);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn rand_b(self) -> u64 {
        (self.0 & ((1 << 62) - 1)) as u64
    }

    /// Writes the 36 characters into `buffer` and returns them, without allocating.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::UuidV7;
    ///
    /// let uuid = UuidV7::from_parts(0x017F_22E2_79B0, 0xCC3, 0x18C4_DC0C_0C07_398F);
    /// let mut buffer = [0; 36];
    /// assert_eq!(uuid.encode(&mut buffer), "017f22e2-79b0-7cc3-98c4-dc0c0c07398f");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode<'a>(&self, buffer: &'a mut [u8; TEXT_LEN]) -> &'a str {
        let mut nibble = 0;
        for (position, slot) in buffer.iter_mut().enumerate() {
            if HYPHENS.contains(&position) {
                *slot = b'-';
            } else {
                *slot = HEX[((self.0 >> (124 - 4 * nibble)) & 0xF) as usize];
                nibble += 1;
            }
        }
        // SAFETY: every byte was just written as an ASCII hex digit or a hyphen, so the buffer
        // is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(buffer) }
    }

    /// Parses the hyphenated form, `xxxxxxxx-xxxx-7xxx-Nxxx-xxxxxxxxxxxx`, in either case.
    ///
    /// # Errors
    ///
    /// [`ParseError::Length`], [`ParseError::Character`] with the position of the first
    /// character that is not a hex digit (or not a hyphen where one belongs), and
    /// [`ParseError::NotV7`] for a well-formed UUID of another version or variant.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{ParseError, UuidV7};
    ///
    /// let uuid = UuidV7::from_string("017F22E2-79B0-7CC3-98C4-DC0C0C07398F")?;
    /// assert_eq!(uuid.to_string(), "017f22e2-79b0-7cc3-98c4-dc0c0c07398f");
    /// assert_eq!(
    ///     UuidV7::from_string("017f22e2-79b0-7cc3-98c4-dc0c0c07398"),
    ///     Err(ParseError::Length { found: 35, expected: 36 })
    /// );
    /// assert_eq!(
    ///     UuidV7::from_string("017f22e2 79b0-7cc3-98c4-dc0c0c07398f"),
    ///     Err(ParseError::Character { position: 8, found: ' ' })
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_string(text: &str) -> Result<UuidV7, ParseError> {
        let bytes = text.as_bytes();
        if bytes.len() != TEXT_LEN {
            return Err(ParseError::Length {
                found: bytes.len(),
                expected: TEXT_LEN,
            });
        }
        let mut value: u128 = 0;
        for (position, &byte) in bytes.iter().enumerate() {
            let bad = || ParseError::Character {
                position,
                found: text[position..].chars().next().unwrap_or('\u{FFFD}'),
            };
            if HYPHENS.contains(&position) {
                if byte != b'-' {
                    return Err(bad());
                }
                continue;
            }
            let digit = match byte {
                b'0'..=b'9' => byte - b'0',
                b'a'..=b'f' => byte - b'a' + 10,
                b'A'..=b'F' => byte - b'A' + 10,
                _ => return Err(bad()),
            };
            value = (value << 4) | u128::from(digit);
        }
        UuidV7::from_u128(value)
    }
}

impl fmt::Display for UuidV7 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buffer = [0; TEXT_LEN];
        let text = self.encode(&mut buffer);
        if f.width().is_none() && f.precision().is_none() {
            f.write_str(text)
        } else {
            f.pad(text)
        }
    }
}

impl fmt::Debug for UuidV7 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UuidV7({self})")
    }
}

impl FromStr for UuidV7 {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<UuidV7, ParseError> {
        UuidV7::from_string(text)
    }
}

impl From<UuidV7> for u128 {
    fn from(uuid: UuidV7) -> u128 {
        uuid.0
    }
}

#[cfg(feature = "uuid")]
impl From<UuidV7> for uuid::Uuid {
    fn from(uuid: UuidV7) -> uuid::Uuid {
        uuid::Uuid::from_u128(uuid.0)
    }
}

#[cfg(feature = "uuid")]
impl TryFrom<uuid::Uuid> for UuidV7 {
    type Error = ParseError;

    fn try_from(uuid: uuid::Uuid) -> Result<UuidV7, ParseError> {
        UuidV7::from_u128(uuid.as_u128())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for UuidV7 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buffer = [0; TEXT_LEN];
        serializer.serialize_str(self.encode(&mut buffer))
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for UuidV7 {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<UuidV7, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = UuidV7;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a hyphenated version 7 UUID")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<UuidV7, E> {
                UuidV7::from_string(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_9562_test_vector() {
        let uuid: UuidV7 = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f"
            .parse()
            .expect("valid");
        assert_eq!(uuid.unix_millis(), 0x017F_22E2_79B0);
        assert_eq!(uuid.rand_a(), 0xCC3);
        assert_eq!(uuid.rand_b(), 0x18C4_DC0C_0C07_398F);
        assert_eq!(uuid.to_u128(), 0x017F_22E2_79B0_7CC3_98C4_DC0C_0C07_398F);
    }

    #[test]
    fn malformed_text_is_a_typed_error_with_its_position() {
        assert_eq!(
            "017f22e2-79b0-7cc3-98c4".parse::<UuidV7>(),
            Err(ParseError::Length {
                found: 23,
                expected: 36
            })
        );
        assert_eq!(
            "017f22e2_79b0-7cc3-98c4-dc0c0c07398f".parse::<UuidV7>(),
            Err(ParseError::Character {
                position: 8,
                found: '_'
            })
        );
        assert_eq!(
            "017f22e2-79b0-7cc3-98c4-dc0c0c07398g".parse::<UuidV7>(),
            Err(ParseError::Character {
                position: 35,
                found: 'g'
            })
        );
        // A version 4 UUID is well formed but not a UUIDv7.
        assert_eq!(
            "017f22e2-79b0-4cc3-98c4-dc0c0c07398f".parse::<UuidV7>(),
            Err(ParseError::NotV7 { version: 4 })
        );
        // Version 7 with the wrong variant.
        assert!(
            "017f22e2-79b0-7cc3-c8c4-dc0c0c07398f"
                .parse::<UuidV7>()
                .is_err()
        );
    }
}
