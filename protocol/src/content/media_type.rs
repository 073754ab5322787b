//! Media types as the manifests carry them: short, printable ASCII, kept verbatim.

use core::fmt;

/// The longest media type a manifest may carry, in bytes (its length is one byte on the wire).
pub const MAX_MEDIA_TYPE_BYTES: usize = 255;

/// A media type such as `text/html; charset=utf-8`, checked but not rewritten.
///
/// Implementation note: the text is kept byte for byte (no case folding) because
/// it is hashed into the content id; two spellings are two different contents.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MediaType(String);

/// Why a text is not a usable media type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaTypeError {
    /// The text is empty.
    #[error("media type is empty")]
    Empty,
    /// The text is longer than [`MAX_MEDIA_TYPE_BYTES`].
    #[error("media type of {len} bytes exceeds {max}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A byte is not printable ASCII (space allowed, for parameters).
    #[error("byte {byte:#04x} at position {position} is not printable ASCII")]
    BadByte {
        /// Zero-based position.
        position: usize,
        /// The byte.
        byte: u8,
    },
    /// There is no `type/subtype` shape: no `/`, or nothing before it.
    #[error("media type has no `type/subtype` form")]
    NoSubtype,
}

impl MediaType {
    /// Checks `text` and wraps it.
    pub fn new(text: &str) -> Result<Self, MediaTypeError> {
        Self::from_bytes(text.as_bytes())
    }

    /// Checks raw bytes (as read from a manifest) and wraps them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MediaTypeError> {
        if bytes.is_empty() {
            return Err(MediaTypeError::Empty);
        }
        if bytes.len() > MAX_MEDIA_TYPE_BYTES {
            return Err(MediaTypeError::TooLong {
                len: bytes.len(),
                max: MAX_MEDIA_TYPE_BYTES,
            });
        }
        if let Some(position) = bytes.iter().position(|b| !(0x20..=0x7e).contains(b)) {
            return Err(MediaTypeError::BadByte {
                position,
                byte: bytes[position],
            });
        }
        match bytes.iter().position(|&b| b == b'/') {
            Some(slash) if slash > 0 && slash + 1 < bytes.len() => {}
            _ => return Err(MediaTypeError::NoSubtype),
        }
        // Every byte is ASCII, so this cannot fail; stay typed anyway.
        let text = core::str::from_utf8(bytes).map_err(|_| MediaTypeError::BadByte {
            position: 0,
            byte: bytes[0],
        })?;
        Ok(MediaType(text.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MediaType({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_types_verbatim() {
        for t in ["text/html", "text/html; charset=utf-8", "image/svg+xml"] {
            assert_eq!(
                MediaType::new(t).map(|m| m.as_str().to_owned()),
                Ok(t.into())
            );
        }
    }

    #[test]
    fn rejects_bad_ones_with_a_reason() {
        assert_eq!(MediaType::new(""), Err(MediaTypeError::Empty));
        assert_eq!(MediaType::new("html"), Err(MediaTypeError::NoSubtype));
        assert_eq!(MediaType::new("/html"), Err(MediaTypeError::NoSubtype));
        assert_eq!(MediaType::new("text/"), Err(MediaTypeError::NoSubtype));
        assert!(matches!(
            MediaType::new("text/h\ntml"),
            Err(MediaTypeError::BadByte { position: 6, .. })
        ));
        assert!(matches!(
            MediaType::new(&format!("a/{}", "b".repeat(300))),
            Err(MediaTypeError::TooLong { .. })
        ));
    }
}
