//! Building a site from files: paths checked and normalised, one manifest for all.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use bytes::Bytes;

use crate::id::Id;
use crate::wire::MAX_BLOCK_BYTES;

use super::chunking::{split_file, FileError, Prepared};
use super::manifest::{
    file_used_as_directory, FileManifest, Manifest, SiteEntry, SiteManifest, MAX_SITE_FILES,
};
use super::media_type::MediaType;
use super::path::{PathError, SitePath};
use super::tree::{Block, SiteTreeBuilder};

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
    // Every path is checked before any file is split, so a bad path costs no hashing.
    let mut by_path = BTreeMap::new();
    for f in files {
        let path = site_path(&f.path)?;
        if by_path.contains_key(&path) {
            return Err(SiteError::Duplicate(path.to_string()));
        }
        by_path.insert(path, f);
    }
    let mut site = SiteBuilder::new();
    let mut blocks = BTreeMap::new();
    let mut order = Vec::new();
    for (path, f) in by_path {
        let (m, chunks) =
            split_file(f.data, &f.media_type, chunk_size).map_err(|error| SiteError::File {
                path: path.to_string(),
                error,
            })?;
        let encoded = Bytes::from(m.encode());
        let file = Id::hash_of(&encoded);
        site.add(path, file, &m)?;
        for (id, data) in chunks.into_iter().chain([(file, encoded)]) {
            if blocks.insert(id, data).is_none() {
                order.push(id);
            }
        }
    }
    let (manifest, encoded) = site.finish()?;
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

/// A site path checked and normalised.
fn site_path(raw: &[u8]) -> Result<SitePath, SiteError> {
    SitePath::new(raw).map_err(|error| SiteError::Path {
        path: String::from_utf8_lossy(raw).into_owned(),
        error,
    })
}

/// The most files a [`SiteBuilder`] takes. It keeps every entry (path, id,
/// size, media type) until the end to sort them, about 100 to 400 bytes a
/// file, so this bounds it; two million is well past the million-file sites
/// multi-level manifests are for.
pub const MAX_BUILT_SITE_FILES: usize = 1 << 21;

/// Builds a site's manifest file by file, for sites too large to hold in
/// memory: each file is written (see [`super::FileChunker`]) and then added by
/// its manifest; only the entries are kept. [`SiteBuilder::finish`] makes one
/// site manifest (at most [`MAX_SITE_FILES`] files); [`SiteBuilder::finish_tree`]
/// any site up to [`MAX_BUILT_SITE_FILES`], as an index when one manifest
/// cannot hold it.
///
/// The manifest, and so the id, is the one [`prepare_site`] gives for the same
/// files: `prepare_site` uses this too. Files may come in any order.
#[derive(Clone, Debug, Default)]
pub struct SiteBuilder {
    entries: BTreeMap<SitePath, SiteEntry>,
}

impl SiteBuilder {
    /// A site with no files yet.
    pub fn new() -> Self {
        SiteBuilder::default()
    }

    /// Checks a file's path before its content is read: valid, not already in
    /// the site, and room for one more file. Returns it normalised.
    pub fn check(&self, raw: &[u8]) -> Result<SitePath, SiteError> {
        let path = site_path(raw)?;
        if self.entries.contains_key(&path) {
            return Err(SiteError::Duplicate(path.to_string()));
        }
        if self.entries.len() >= MAX_BUILT_SITE_FILES {
            return Err(SiteError::FileCount {
                count: self.entries.len() + 1,
                max: MAX_BUILT_SITE_FILES,
            });
        }
        Ok(path)
    }

    /// Adds the file at `path` whose manifest `manifest` has the id `file`.
    pub fn add(
        &mut self,
        path: SitePath,
        file: Id,
        manifest: &FileManifest,
    ) -> Result<(), SiteError> {
        self.add_file(path, file, manifest.len(), manifest.media_type().clone())
    }

    /// Adds the file at `path` whose root manifest (one level or a tree) has
    /// the id `file`, of `size` bytes and `media_type`.
    pub fn add_file(
        &mut self,
        path: SitePath,
        file: Id,
        size: u64,
        media_type: MediaType,
    ) -> Result<(), SiteError> {
        if self.entries.len() >= MAX_BUILT_SITE_FILES {
            return Err(SiteError::FileCount {
                count: self.entries.len() + 1,
                max: MAX_BUILT_SITE_FILES,
            });
        }
        let entry = SiteEntry {
            path: path.clone(),
            file,
            size,
            media_type,
        };
        match self.entries.entry(path) {
            Entry::Occupied(e) => Err(SiteError::Duplicate(e.key().to_string())),
            Entry::Vacant(e) => {
                e.insert(entry);
                Ok(())
            }
        }
    }

    /// Files added so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no file was added yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The site of any size: its id and every manifest block (shards and
    /// index nodes, the root last). A site one manifest holds is that
    /// manifest, with the id [`SiteBuilder::finish`] gives.
    pub fn finish_tree(self) -> Result<(Id, Vec<Block>), SiteError> {
        if self.entries.is_empty() {
            return Err(SiteError::FileCount {
                count: 0,
                max: MAX_BUILT_SITE_FILES,
            });
        }
        let entries: Vec<SiteEntry> = self.entries.into_values().collect();
        if let Some(p) = file_used_as_directory(&entries) {
            return Err(SiteError::FileIsDirectory(p.to_string()));
        }
        let mut tree = SiteTreeBuilder::new();
        let mut blocks = Vec::new();
        for e in entries {
            let path = e.path.to_string();
            let done = tree.push(e).map_err(|_| SiteError::Duplicate(path))?;
            blocks.extend(done);
        }
        let (root, rest) = tree.finish().map_err(|_| SiteError::FileCount {
            count: 0,
            max: MAX_BUILT_SITE_FILES,
        })?;
        blocks.extend(rest);
        Ok((root, blocks))
    }

    /// The site manifest and its canonical encoding, whose hash is the site's
    /// id: one manifest, at most [`MAX_SITE_FILES`] files.
    pub fn finish(self) -> Result<(Manifest, Bytes), SiteError> {
        if self.entries.len() > MAX_SITE_FILES {
            return Err(SiteError::FileCount {
                count: self.entries.len(),
                max: MAX_SITE_FILES,
            });
        }
        if self.entries.is_empty() {
            return Err(SiteError::FileCount {
                count: 0,
                max: MAX_SITE_FILES,
            });
        }
        let entries: Vec<SiteEntry> = self.entries.into_values().collect();
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
        Ok((manifest, encoded))
    }
}

#[cfg(test)]
mod tests {
    use super::super::chunking::FileChunker;
    use super::*;

    /// A site built file by file, in any order, has the id `prepare_site` gives.
    #[test]
    fn a_site_built_file_by_file_has_the_same_id() {
        let cs = 1024;
        let files = vec![
            SiteFile::new("index.html", "text/html", "<h1>hi</h1>"),
            SiteFile::new("./css/a.css", "text/css", "h1{}"),
            SiteFile::new("big.bin", "application/octet-stream", vec![3u8; 3 * cs + 5]),
            SiteFile::new("empty", "text/plain", ""),
        ];
        let whole = prepare_site(files.clone(), cs).unwrap();
        let mut site = SiteBuilder::new();
        for f in files.iter().rev() {
            let path = site.check(&f.path).unwrap();
            let mut c = FileChunker::new(&f.media_type, cs).unwrap();
            for chunk in f.data.chunks(cs) {
                c.push(chunk).unwrap();
            }
            let m = c.finish();
            site.add(path, Id::hash_of(&m.encode()), &m).unwrap();
        }
        assert!(matches!(
            site.check(b"css/a.css"),
            Err(SiteError::Duplicate(_))
        ));
        assert!(matches!(site.check(b"../x"), Err(SiteError::Path { .. })));
        let (manifest, encoded) = site.finish().unwrap();
        assert_eq!(Id::hash_of(&encoded), whole.root);
        assert_eq!(manifest, whole.manifest);

        let mut clash = SiteBuilder::new();
        let m = FileChunker::new("text/plain", cs).unwrap().finish();
        let id = Id::hash_of(&m.encode());
        clash.add(clash.check(b"a").unwrap(), id, &m).unwrap();
        clash.add(clash.check(b"a/b").unwrap(), id, &m).unwrap();
        assert!(matches!(clash.finish(), Err(SiteError::FileIsDirectory(_))));
        assert!(matches!(
            SiteBuilder::new().finish(),
            Err(SiteError::FileCount { count: 0, .. })
        ));
    }
}
