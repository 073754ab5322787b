//! Building a site from files: paths checked and normalised, one manifest for all.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::id::Id;
use crate::wire::MAX_BLOCK_BYTES;

use super::chunking::{split_file, FileError, Prepared};
use super::manifest::{file_used_as_directory, Manifest, SiteEntry, SiteManifest, MAX_SITE_FILES};
use super::path::{PathError, SitePath};

/// One file to publish as part of a site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteFile {
    /// Its path in the site, as given (raw bytes, so that non-UTF-8 names are
    /// reported rather than mangled).
    pub path: Vec<u8>,
    /// Its media type, such as `text/html`.
    pub media_type: String,
    /// Its content.
    pub data: Bytes,
}

impl SiteFile {
    /// A file at `path` with `media_type` and `data`.
    pub fn new(
        path: impl Into<Vec<u8>>,
        media_type: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Self {
        SiteFile {
            path: path.into(),
            media_type: media_type.into(),
            data: data.into(),
        }
    }
}

/// Why a site cannot be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiteError {
    /// A path is invalid.
    #[error("path {path:?}: {error}")]
    Path {
        /// The path as given (lossily decoded for display).
        path: String,
        /// What is wrong with it.
        error: PathError,
    },
    /// Two files normalise to the same path.
    #[error("path {0:?} appears twice")]
    Duplicate(String),
    /// A file's path is also used as a directory by another file.
    #[error("path {0:?} is both a file and a directory")]
    FileIsDirectory(String),
    /// No files, or more than [`MAX_SITE_FILES`].
    #[error("a site has 1..={max} files, got {count}")]
    FileCount {
        /// Files given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A file cannot be published.
    #[error("file {path:?}: {error}")]
    File {
        /// Its normalised path.
        path: String,
        /// Why.
        error: FileError,
    },
    /// The site manifest would not fit in one block.
    #[error("site manifest of {len} bytes exceeds {max}")]
    TooLarge {
        /// Its encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Checks every path, splits every file, and builds the site manifest.
/// Blocks shared between files are listed once.
pub fn prepare_site(files: Vec<SiteFile>, chunk_size: usize) -> Result<Prepared, SiteError> {
    if files.is_empty() || files.len() > MAX_SITE_FILES {
        return Err(SiteError::FileCount {
            count: files.len(),
            max: MAX_SITE_FILES,
        });
    }
    let mut by_path = BTreeMap::new();
    for f in files {
        let path = SitePath::new(&f.path).map_err(|error| SiteError::Path {
            path: String::from_utf8_lossy(&f.path).into_owned(),
            error,
        })?;
        if by_path.contains_key(&path) {
            return Err(SiteError::Duplicate(path.to_string()));
        }
        by_path.insert(path, f);
    }
    let mut entries = Vec::with_capacity(by_path.len());
    let mut blocks = BTreeMap::new();
    let mut order = Vec::new();
    for (path, f) in by_path {
        let error = |error| SiteError::File {
            path: path.to_string(),
            error,
        };
        let (m, chunks) = split_file(f.data, &f.media_type, chunk_size).map_err(error)?;
        let encoded = Bytes::from(m.encode());
        let file = Id::hash_of(&encoded);
        entries.push(SiteEntry {
            path,
            file,
            size: m.len(),
            media_type: m.media_type().clone(),
        });
        for (id, data) in chunks.into_iter().chain([(file, encoded)]) {
            if blocks.insert(id, data).is_none() {
                order.push(id);
            }
        }
    }
    if let Some(p) = file_used_as_directory(&entries) {
        return Err(SiteError::FileIsDirectory(p.to_string()));
    }
    let manifest = Manifest::Site(SiteManifest::from_sorted(entries));
    let encoded = Bytes::from(manifest.encode());
    if encoded.len() > MAX_BLOCK_BYTES {
        return Err(SiteError::TooLarge {
            len: encoded.len(),
            max: MAX_BLOCK_BYTES,
        });
    }
    let root = Id::hash_of(&encoded);
    let mut out: Vec<_> = order
        .into_iter()
        .filter_map(|id| blocks.remove(&id).map(|d| (id, d)))
        .collect();
    out.push((root, encoded));
    Ok(Prepared {
        root,
        manifest,
        blocks: out,
    })
}
