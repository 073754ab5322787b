//! Manifests and their canonical encoding, whose BLAKE3 hash is the content id.
//!
//! # Canonical encoding, version 1
//!
//! The encoding is written by hand (not by serde) so that it can never change
//! by accident: `golden_ids_never_change` pins the ids it produces.
//! Integers are little-endian and of fixed width; ids are 32 raw bytes.
//!
//! A **file manifest**:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `b"dwfile\0\x01"` (format name, NUL, version 1) |
//! | 4 | `chunk_size`: u32, from [`MIN_CHUNK_BYTES`] to [`MAX_BLOCK_BYTES`] |
//! | 8 | `length`: u64, the file's length in bytes |
//! | 1 + n | media type: its length n (1..=255), then n bytes of printable ASCII |
//! | 4 | `count`: u32, the number of chunks; must equal ⌈length / chunk_size⌉ and be at most [`MAX_FILE_CHUNKS`] |
//! | 32 × count | the BLAKE3 hash of each chunk, in file order |
//!
//! Chunk `i` is bytes `i·chunk_size .. min((i+1)·chunk_size, length)` of the file.
//!
//! A **site manifest**:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `b"dwsite\0\x01"` |
//! | 4 | `count`: u32, the number of files, 1..=[`MAX_SITE_FILES`] |
//! | per file | `path_len`: u16 (1..=[`MAX_PATH_BYTES`]), the normalised path (UTF-8), 32 bytes of file id (the id of that file's manifest), u64 size, 1 + n bytes of media type |
//!
//! Files appear in strictly ascending byte order of their paths, no path is a
//! directory of another, and every path is in the normal form [`SitePath`]
//! produces, so one site has exactly one encoding.
//! Nothing may follow the last field.
//! A manifest's whole encoding is at most [`MAX_BLOCK_BYTES`], so it travels as one block.

use core::fmt;
use std::collections::BTreeSet;

use crate::id::{Id, ID_BYTES};
use crate::wire::MAX_BLOCK_BYTES;

use super::media_type::{MediaType, MediaTypeError};
use super::path::{PathError, SitePath, MAX_PATH_BYTES};
use super::tree::{FileTree, SiteIndex, TreeError, INDEX_MAGIC, TREE_MAGIC};

/// Leads a file manifest: format name, NUL, version.
pub const FILE_MAGIC: [u8; 8] = *b"dwfile\0\x01";
/// Leads a site manifest: format name, NUL, version.
pub const SITE_MAGIC: [u8; 8] = *b"dwsite\0\x01";
/// The smallest chunk size a file manifest may declare.
pub const MIN_CHUNK_BYTES: usize = 1024;
/// The most chunks one file manifest may list (so that it fits in one block).
pub const MAX_FILE_CHUNKS: usize = 32_000;
/// The most files one site manifest may list.
pub const MAX_SITE_FILES: usize = 16_384;

/// The smallest encoded site entry: path length, one path byte, id, size, media type.
const MIN_ENTRY_BYTES: usize = 2 + 1 + ID_BYTES + 8 + 1 + 3;

/// A file: its length, media type, and the hash of each chunk.
#[derive(Clone, PartialEq, Eq)]
pub struct FileManifest {
    chunk_size: u32,
    length: u64,
    media_type: MediaType,
    chunks: Vec<Id>,
}

/// One file of a site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteEntry {
    /// Where it sits in the site.
    pub path: SitePath,
    /// The id of its file manifest.
    pub file: Id,
    /// Its length in bytes.
    pub size: u64,
    /// How to present it.
    pub media_type: MediaType,
}

/// A site: files by path, in path order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteManifest {
    entries: Vec<SiteEntry>,
}

/// What a content id names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Manifest {
    /// One file.
    File(FileManifest),
    /// A directory of files.
    Site(SiteManifest),
    /// A node of a file's tree: a file of more chunks than one manifest lists
    /// (see [`super::tree`]).
    FileTree(FileTree),
    /// A node of a site's index: a site of more files than one manifest lists.
    SiteIndex(SiteIndex),
}

/// Why bytes are not a valid manifest. Checked before anything is allocated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Longer than one block may be.
    #[error("manifest of {len} bytes exceeds {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Neither a file nor a site manifest of a known version.
    #[error("unknown manifest magic")]
    UnknownMagic,
    /// The bytes end inside a field.
    #[error("manifest is truncated")]
    Truncated,
    /// Bytes follow the last field.
    #[error("{0} bytes after the manifest")]
    TrailingBytes(usize),
    /// The chunk size is outside the allowed range.
    #[error("chunk size {0} is out of range")]
    BadChunkSize(u32),
    /// More chunks than [`MAX_FILE_CHUNKS`].
    #[error("{count} chunks exceed {max}")]
    TooManyChunks {
        /// Declared count.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// The chunk count does not fit the length and chunk size.
    #[error("{count} chunks declared, the length needs {expected}")]
    ChunkCount {
        /// Declared count.
        count: u64,
        /// What the length implies.
        expected: u64,
    },
    /// A site with no files, or more than [`MAX_SITE_FILES`].
    #[error("a site lists {count} files (1..={max} allowed)")]
    FileCount {
        /// Declared count.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// A media type is invalid.
    #[error("bad media type")]
    MediaType(#[from] MediaTypeError),
    /// A path is invalid, or not in normal form.
    #[error("bad path: {0}")]
    Path(PathError),
    /// A path is valid but not written in its normal form.
    #[error("path not in normal form")]
    NotNormal,
    /// Paths are not in strictly ascending order (or repeat).
    #[error("paths out of order or repeated")]
    Unsorted,
    /// A path uses another file's path as a directory.
    #[error("path {0:?} is also a directory of another file")]
    FileIsDirectory(String),
    /// A file tree or site index node is malformed, or does not match its parent.
    #[error("tree: {0}")]
    Tree(Box<TreeError>),
}

impl From<TreeError> for ManifestError {
    /// A tree error that is a plain manifest error stays one.
    fn from(e: TreeError) -> Self {
        match e {
            TreeError::Manifest(m) => m,
            e => ManifestError::Tree(Box::new(e)),
        }
    }
}

impl FileManifest {
    /// A manifest for chunks already hashed. `chunks` must have ⌈length / chunk_size⌉ ids.
    pub(crate) fn from_parts(
        chunk_size: u32,
        length: u64,
        media_type: MediaType,
        chunks: Vec<Id>,
    ) -> Self {
        FileManifest {
            chunk_size,
            length,
            media_type,
            chunks,
        }
    }

    /// The chunk size the file was split with.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.length
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Its media type.
    pub fn media_type(&self) -> &MediaType {
        &self.media_type
    }

    /// The chunk ids, in file order.
    pub fn chunks(&self) -> &[Id] {
        &self.chunks
    }

    /// The canonical encoding (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 4 + 8 + 256 + 4 + self.chunks.len() * ID_BYTES);
        out.extend_from_slice(&FILE_MAGIC);
        out.extend_from_slice(&self.chunk_size.to_le_bytes());
        out.extend_from_slice(&self.length.to_le_bytes());
        put_media_type(&mut out, &self.media_type);
        out.extend_from_slice(&(self.chunks.len() as u32).to_le_bytes());
        for c in &self.chunks {
            out.extend_from_slice(c.as_bytes());
        }
        out
    }

    /// Where chunk `index` starts in the file.
    pub fn chunk_offset(&self, index: usize) -> u64 {
        index as u64 * u64::from(self.chunk_size)
    }

    /// The length chunk `index` must have, or `None` past the end.
    pub fn chunk_len(&self, index: usize) -> Option<usize> {
        if index >= self.chunks.len() {
            return None;
        }
        let rest = self.length - self.chunk_offset(index);
        Some(rest.min(u64::from(self.chunk_size)) as usize)
    }
}

impl fmt::Debug for FileManifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileManifest")
            .field("length", &self.length)
            .field("media_type", &self.media_type)
            .field("chunk_size", &self.chunk_size)
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

impl SiteManifest {
    /// A site from entries already sorted, unique and free of file/directory
    /// clashes (see `content::site` for the checked way in).
    pub(crate) fn from_sorted(entries: Vec<SiteEntry>) -> Self {
        SiteManifest { entries }
    }

    /// The canonical encoding (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&SITE_MAGIC);
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            let path = e.path.as_str().as_bytes();
            out.extend_from_slice(&(path.len() as u16).to_le_bytes());
            out.extend_from_slice(path);
            out.extend_from_slice(e.file.as_bytes());
            out.extend_from_slice(&e.size.to_le_bytes());
            put_media_type(&mut out, &e.media_type);
        }
        out
    }

    /// The files, in path order.
    pub fn entries(&self) -> &[SiteEntry] {
        &self.entries
    }

    /// The file at `path` (already normalised), if any.
    pub fn get(&self, path: &str) -> Option<&SiteEntry> {
        self.entries
            .binary_search_by(|e| e.path.as_str().as_bytes().cmp(path.as_bytes()))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// The sum of the files' sizes.
    pub fn total_size(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| e.size)
            .fold(0, u64::saturating_add)
    }
}

/// The first path in sorted `entries` that some other path uses as a directory.
pub(crate) fn file_used_as_directory(entries: &[SiteEntry]) -> Option<&SitePath> {
    let files: BTreeSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    entries
        .iter()
        .find_map(|e| e.path.parents().find(|p| files.contains(p)))
        .and_then(|dir| entries.iter().map(|e| &e.path).find(|p| p.as_str() == dir))
}

impl Manifest {
    /// The canonical encoding (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Manifest::File(m) => m.encode(),
            Manifest::Site(s) => s.encode(),
            Manifest::FileTree(t) => t.encode(),
            Manifest::SiteIndex(i) => i.encode(),
        }
    }

    /// The content id: the BLAKE3 hash of [`Manifest::encode`].
    pub fn id(&self) -> Id {
        Id::hash_of(&self.encode())
    }

    /// Decodes a canonical encoding, refusing anything else; never allocates
    /// more than the input could describe.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_BLOCK_BYTES {
            return Err(ManifestError::TooLarge {
                len: bytes.len(),
                max: MAX_BLOCK_BYTES,
            });
        }
        let mut r = Reader(bytes);
        let magic: [u8; 8] = r.array()?;
        let manifest = match magic {
            FILE_MAGIC => Manifest::File(decode_file(&mut r)?),
            SITE_MAGIC => Manifest::Site(decode_site(&mut r)?),
            TREE_MAGIC => return Ok(Manifest::FileTree(FileTree::decode(bytes)?)),
            INDEX_MAGIC => return Ok(Manifest::SiteIndex(SiteIndex::decode(bytes)?)),
            _ => return Err(ManifestError::UnknownMagic),
        };
        if !r.0.is_empty() {
            return Err(ManifestError::TrailingBytes(r.0.len()));
        }
        Ok(manifest)
    }
}

fn put_media_type(out: &mut Vec<u8>, m: &MediaType) {
    out.push(m.as_str().len() as u8);
    out.extend_from_slice(m.as_str().as_bytes());
}

fn decode_file(r: &mut Reader<'_>) -> Result<FileManifest, ManifestError> {
    let chunk_size = u32::from_le_bytes(r.array()?);
    if !(MIN_CHUNK_BYTES..=MAX_BLOCK_BYTES).contains(&(chunk_size as usize)) {
        return Err(ManifestError::BadChunkSize(chunk_size));
    }
    let length = u64::from_le_bytes(r.array()?);
    let media_type = r.media_type()?;
    let count = u64::from(u32::from_le_bytes(r.array()?));
    if count > MAX_FILE_CHUNKS as u64 {
        return Err(ManifestError::TooManyChunks {
            count,
            max: MAX_FILE_CHUNKS,
        });
    }
    let expected = length.div_ceil(u64::from(chunk_size));
    if count != expected {
        return Err(ManifestError::ChunkCount { count, expected });
    }
    // The ids must all be present before room is made for them.
    let count = count as usize;
    if r.0.len() < count * ID_BYTES {
        return Err(ManifestError::Truncated);
    }
    let mut chunks = Vec::with_capacity(count);
    for _ in 0..count {
        chunks.push(Id::from_bytes(r.array()?));
    }
    Ok(FileManifest {
        chunk_size,
        length,
        media_type,
        chunks,
    })
}

fn decode_site(r: &mut Reader<'_>) -> Result<SiteManifest, ManifestError> {
    let count = u64::from(u32::from_le_bytes(r.array()?));
    if count == 0 || count > MAX_SITE_FILES as u64 {
        return Err(ManifestError::FileCount {
            count,
            max: MAX_SITE_FILES,
        });
    }
    if (r.0.len() as u64) < count * MIN_ENTRY_BYTES as u64 {
        return Err(ManifestError::Truncated);
    }
    let mut entries: Vec<SiteEntry> = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let path_len = usize::from(u16::from_le_bytes(r.array()?));
        if path_len > MAX_PATH_BYTES {
            return Err(ManifestError::Path(PathError::TooLong {
                len: path_len,
                max: MAX_PATH_BYTES,
            }));
        }
        let raw = r.take(path_len)?;
        let path = SitePath::new(raw).map_err(ManifestError::Path)?;
        if path.as_str().as_bytes() != raw {
            return Err(ManifestError::NotNormal);
        }
        if entries.last().is_some_and(|prev| prev.path >= path) {
            return Err(ManifestError::Unsorted);
        }
        let file = Id::from_bytes(r.array()?);
        let size = u64::from_le_bytes(r.array()?);
        let media_type = r.media_type()?;
        entries.push(SiteEntry {
            path,
            file,
            size,
            media_type,
        });
    }
    if let Some(p) = file_used_as_directory(&entries) {
        return Err(ManifestError::FileIsDirectory(p.to_string()));
    }
    Ok(SiteManifest { entries })
}

/// A cursor over the input that fails with `Truncated` instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ManifestError> {
        if self.0.len() < n {
            return Err(ManifestError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ManifestError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn media_type(&mut self) -> Result<MediaType, ManifestError> {
        let [len] = self.array::<1>()?;
        Ok(MediaType::from_bytes(self.take(usize::from(len))?)?)
    }
}
