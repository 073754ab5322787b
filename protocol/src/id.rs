//! 256-bit identifiers shared by nodes and content.

use core::fmt;
use core::str::FromStr;

use rand_core::RngCore;
use serde::{Deserialize, Serialize};

/// Length of an [`Id`] in bytes.
pub const ID_BYTES: usize = 32;
/// Length of an [`Id`] in bits.
pub const ID_BITS: usize = ID_BYTES * 8;

/// A 256-bit identifier: a node's id or a content hash.
///
/// Node ids and content ids live in one space so that a node can be "close" to
/// content; which ids are close is decided by a [`crate::Metric`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Id([u8; ID_BYTES]);

/// Why a text is not an [`Id`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    /// The text is not exactly 64 bytes long.
    #[error("an id is 64 hex characters, got {0} bytes")]
    WrongLength(usize),
    /// A character is not a lowercase hex digit.
    #[error("character {character:?} at position {position} is not a lowercase hex digit")]
    BadCharacter {
        /// Zero-based byte position of the offending character.
        position: usize,
        /// The offending character.
        character: char,
    },
}

impl Id {
    /// The all-zero id.
    pub const ZERO: Id = Id([0; ID_BYTES]);

    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; ID_BYTES]) -> Self {
        Id(bytes)
    }

    /// The raw bytes, most significant first.
    pub const fn as_bytes(&self) -> &[u8; ID_BYTES] {
        &self.0
    }

    /// The BLAKE3 hash of `data`: how content is named.
    pub fn hash_of(data: &[u8]) -> Self {
        Id(*blake3::hash(data).as_bytes())
    }

    /// A uniformly random id drawn from `rng`.
    pub fn random(rng: &mut impl RngCore) -> Self {
        let mut bytes = [0u8; ID_BYTES];
        rng.fill_bytes(&mut bytes);
        Id(bytes)
    }

    /// Bit `i`, counting from the most significant bit (bit 0) of byte 0.
    pub fn bit(&self, i: usize) -> bool {
        self.0[i / 8] & (0x80 >> (i % 8)) != 0
    }

    /// This id with bit `i` (most significant first) flipped.
    pub fn with_bit_flipped(mut self, i: usize) -> Self {
        self.0[i / 8] ^= 0x80 >> (i % 8);
        self
    }

    /// Bitwise exclusive or.
    pub fn xor(&self, other: &Id) -> Id {
        let mut out = [0u8; ID_BYTES];
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(other.0.iter())) {
            *o = a ^ b;
        }
        Id(out)
    }

    /// Number of leading zero bits.
    pub fn leading_zeros(&self) -> u32 {
        let mut n = 0;
        for b in self.0 {
            if b == 0 {
                n += 8;
            } else {
                return n + b.leading_zeros();
            }
        }
        n
    }

    /// Number of set bits.
    pub fn count_ones(&self) -> u32 {
        self.0.iter().map(|b| b.count_ones()).sum()
    }

    /// The first 8 hex characters: enough to tell ids apart in logs.
    pub fn short(&self) -> String {
        self.to_string()[..8].to_string()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl FromStr for Id {
    type Err = ParseIdError;

    /// Parses exactly 64 lowercase hex characters; anything else is refused so
    /// that one id has exactly one spelling (it appears in URLs).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != ID_BYTES * 2 {
            return Err(ParseIdError::WrongLength(s.len()));
        }
        let mut out = [0u8; ID_BYTES];
        let bytes = s.as_bytes();
        for (i, o) in out.iter_mut().enumerate() {
            let hi = hex_value(bytes, 2 * i)?;
            let lo = hex_value(bytes, 2 * i + 1)?;
            *o = (hi << 4) | lo;
        }
        Ok(Id(out))
    }
}

fn hex_value(bytes: &[u8], position: usize) -> Result<u8, ParseIdError> {
    match bytes[position] {
        c @ b'0'..=b'9' => Ok(c - b'0'),
        c @ b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(ParseIdError::BadCharacter {
            position,
            // The text is valid UTF-8 and 64 bytes long; report the char that starts
            // at or covers this byte.
            character: char_at_byte(bytes, position),
        }),
    }
}

fn char_at_byte(bytes: &[u8], position: usize) -> char {
    let mut start = position;
    while start > 0 && (bytes[start] & 0xC0) == 0x80 {
        start -= 1;
    }
    core::str::from_utf8(&bytes[start..])
        .ok()
        .and_then(|s| s.chars().next())
        .unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// An id that is zero but for its last byte: small, readable ids for unit tests.
#[cfg(test)]
pub(crate) fn test_id(last: u8) -> Id {
    let mut bytes = [0u8; ID_BYTES];
    bytes[ID_BYTES - 1] = last;
    Id(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn display_parse_round_trip(bytes in any::<[u8; 32]>()) {
            let id = Id::from_bytes(bytes);
            let text = id.to_string();
            prop_assert_eq!(text.len(), 64);
            prop_assert!(text.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
            prop_assert_eq!(text.parse::<Id>(), Ok(id));
        }

        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            let _ = s.parse::<Id>();
        }

        #[test]
        fn wrong_length_is_rejected(s in "[0-9a-f]{0,63}|[0-9a-f]{65,80}") {
            prop_assert!(matches!(s.parse::<Id>(), Err(ParseIdError::WrongLength(_))));
        }

        #[test]
        fn bad_character_is_rejected(bytes in any::<[u8; 32]>(), pos in 0usize..64, c in "[g-zA-Z!/. ]") {
            let mut text = Id::from_bytes(bytes).to_string();
            text.replace_range(pos..pos + 1, &c);
            prop_assert_eq!(
                text.parse::<Id>(),
                Err(ParseIdError::BadCharacter { position: pos, character: c.chars().next().unwrap() })
            );
        }
    }

    #[test]
    fn uppercase_is_rejected() {
        let upper = "A".repeat(64);
        assert!(matches!(
            upper.parse::<Id>(),
            Err(ParseIdError::BadCharacter { position: 0, .. })
        ));
    }

    #[test]
    fn multibyte_text_gives_typed_error() {
        let text = format!("{}é", "0".repeat(62));
        assert_eq!(text.len(), 64);
        assert_eq!(
            text.parse::<Id>(),
            Err(ParseIdError::BadCharacter {
                position: 62,
                character: 'é'
            })
        );
    }

    #[test]
    fn hash_is_blake3() {
        assert_eq!(
            Id::hash_of(b"").to_string(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }
}
