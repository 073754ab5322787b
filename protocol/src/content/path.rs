//! Paths inside a site: relative, normalised, bounded.

use core::fmt;

/// The longest site path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// The most segments (directories plus the file name) a site path may have.
pub const MAX_PATH_SEGMENTS: usize = 32;

/// A path of a file inside a site, such as `css/site.css`.
///
/// Always relative, `/`-separated, UTF-8, without empty, `.` or `..` segments,
/// without control characters or backslashes, and bounded in length and depth.
/// Ordering is byte order, which is the order of entries in a site manifest.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SitePath(String);

/// Why a path cannot name a file in a site.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is empty (or only `.` segments).
    #[error("path is empty")]
    Empty,
    /// The path is not valid UTF-8.
    #[error("path is not valid UTF-8")]
    NotUtf8,
    /// The path starts with `/`.
    #[error("path is absolute")]
    Absolute,
    /// A segment is `..`, which would climb out of the site.
    #[error("path has a `..` segment")]
    ParentSegment,
    /// Two slashes in a row, or a trailing slash.
    #[error("path has an empty segment")]
    EmptySegment,
    /// A control character or a backslash (a separator on some systems).
    #[error("character {character:?} at byte {position} is not allowed in a path")]
    BadCharacter {
        /// Zero-based byte position.
        position: usize,
        /// The character.
        character: char,
    },
    /// The path is longer than [`MAX_PATH_BYTES`].
    #[error("path of {len} bytes exceeds {max}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The path has more than [`MAX_PATH_SEGMENTS`] segments.
    #[error("path of {segments} segments exceeds {max}")]
    TooDeep {
        /// Its segment count.
        segments: usize,
        /// The limit.
        max: usize,
    },
}

impl SitePath {
    /// Validates and normalises `raw`: `.` segments are dropped; anything else
    /// unusual is refused with the reason.
    pub fn new(raw: &[u8]) -> Result<Self, PathError> {
        if raw.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong {
                len: raw.len(),
                max: MAX_PATH_BYTES,
            });
        }
        let text = core::str::from_utf8(raw).map_err(|_| PathError::NotUtf8)?;
        if text.is_empty() {
            return Err(PathError::Empty);
        }
        if text.starts_with('/') {
            return Err(PathError::Absolute);
        }
        if let Some((position, character)) = text
            .char_indices()
            .find(|&(_, c)| c.is_control() || c == '\\')
        {
            return Err(PathError::BadCharacter {
                position,
                character,
            });
        }
        let mut kept = Vec::new();
        for segment in text.split('/') {
            match segment {
                "" => return Err(PathError::EmptySegment),
                "." => {}
                ".." => return Err(PathError::ParentSegment),
                s => kept.push(s),
            }
        }
        if kept.is_empty() {
            return Err(PathError::Empty);
        }
        if kept.len() > MAX_PATH_SEGMENTS {
            return Err(PathError::TooDeep {
                segments: kept.len(),
                max: MAX_PATH_SEGMENTS,
            });
        }
        Ok(SitePath(kept.join("/")))
    }

    /// The normalised path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Every directory above the file, shortest first: `a/b/c` gives `a`, `a/b`.
    pub fn parents(&self) -> impl Iterator<Item = &str> + '_ {
        self.0
            .char_indices()
            .filter(|&(_, c)| c == '/')
            .map(|(i, _)| &self.0[..i])
    }
}

impl fmt::Display for SitePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SitePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SitePath({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn good_paths_normalise() {
        let p = |s: &str| SitePath::new(s.as_bytes()).map(|p| p.to_string());
        assert_eq!(p("index.html"), Ok("index.html".into()));
        assert_eq!(p("./css/./site.css"), Ok("css/site.css".into()));
        assert_eq!(p("é/ü.html"), Ok("é/ü.html".into()));
        let path = SitePath::new(b"a/b/c").unwrap();
        let parents: Vec<&str> = path.parents().collect();
        assert_eq!(parents, vec!["a", "a/b"]);
    }

    #[test]
    fn bad_paths_are_typed() {
        let p = |s: &[u8]| SitePath::new(s);
        assert_eq!(p(b""), Err(PathError::Empty));
        assert_eq!(p(b"."), Err(PathError::Empty));
        assert_eq!(p(b"/etc/passwd"), Err(PathError::Absolute));
        assert_eq!(p(b"a/../../b"), Err(PathError::ParentSegment));
        assert_eq!(p(b".."), Err(PathError::ParentSegment));
        assert_eq!(p(b"a//b"), Err(PathError::EmptySegment));
        assert_eq!(p(b"dir/"), Err(PathError::EmptySegment));
        assert_eq!(p(b"a\xffb"), Err(PathError::NotUtf8));
        assert_eq!(
            p(b"a\\b"),
            Err(PathError::BadCharacter {
                position: 1,
                character: '\\'
            })
        );
        assert!(matches!(p(b"a\0b"), Err(PathError::BadCharacter { .. })));
        assert!(matches!(
            p("x".repeat(MAX_PATH_BYTES + 1).as_bytes()),
            Err(PathError::TooLong { .. })
        ));
        assert!(matches!(
            p(format!("{}z", "a/".repeat(MAX_PATH_SEGMENTS)).as_bytes()),
            Err(PathError::TooDeep { .. })
        ));
    }

    proptest! {
        #[test]
        fn normal_form_is_stable(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = SitePath::new(&raw) {
                prop_assert_eq!(SitePath::new(p.as_str().as_bytes()), Ok(p.clone()));
                prop_assert!(!p.as_str().starts_with('/'));
                prop_assert!(p.as_str().split('/').all(|s| !s.is_empty() && s != "." && s != ".."));
            }
        }
    }
}
