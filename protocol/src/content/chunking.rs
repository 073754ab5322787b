//! Splitting a file into chunks and describing it with a manifest.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::id::Id;
use crate::wire::MAX_BLOCK_BYTES;

use super::manifest::{FileManifest, Manifest, MAX_FILE_CHUNKS, MIN_CHUNK_BYTES};
use super::media_type::{MediaType, MediaTypeError};

/// Content split into blocks, ready to store: the manifest, its id, and every
/// block (chunks and manifests) under its BLAKE3 hash.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The content id: the hash of the root manifest's encoding.
    pub root: Id,
    /// The root manifest.
    pub manifest: Manifest,
    /// Each distinct block once, the root manifest last.
    pub blocks: Vec<(Id, Bytes)>,
}

/// Why a file cannot be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The media type is invalid.
    #[error("bad media type")]
    MediaType(#[from] MediaTypeError),
    /// The chunk size is outside what manifests allow.
    #[error("chunk size {size} is outside {min}..={max}")]
    ChunkSize {
        /// The size asked for.
        size: usize,
        /// The smallest allowed.
        min: usize,
        /// The largest allowed (one block).
        max: usize,
    },
    /// The file needs more chunks than one manifest may list.
    #[error("file of {len} bytes exceeds {max} bytes at this chunk size")]
    TooLarge {
        /// Its length.
        len: u64,
        /// The most one manifest can describe at this chunk size.
        max: u64,
    },
}

/// Checks a chunk size against what manifests allow.
pub fn check_chunk_size(size: usize) -> Result<u32, FileError> {
    if !(MIN_CHUNK_BYTES..=MAX_BLOCK_BYTES).contains(&size) {
        return Err(FileError::ChunkSize {
            size,
            min: MIN_CHUNK_BYTES,
            max: MAX_BLOCK_BYTES,
        });
    }
    Ok(size as u32)
}

/// Splits `data` into `chunk_size` chunks and builds its manifest. The chunks
/// share `data`'s buffer; nothing is copied.
pub fn prepare_file(
    data: Bytes,
    media_type: &str,
    chunk_size: usize,
) -> Result<Prepared, FileError> {
    let (manifest, mut blocks) = split_file(data, media_type, chunk_size)?;
    let manifest = Manifest::File(manifest);
    let encoded = Bytes::from(manifest.encode());
    let root = Id::hash_of(&encoded);
    blocks.push((root, encoded));
    Ok(Prepared {
        root,
        manifest,
        blocks,
    })
}

/// The file manifest of `data` and its distinct chunks, in file order.
pub(crate) fn split_file(
    data: Bytes,
    media_type: &str,
    chunk_size: usize,
) -> Result<(FileManifest, Vec<(Id, Bytes)>), FileError> {
    let media_type = MediaType::new(media_type)?;
    let size = check_chunk_size(chunk_size)?;
    let max = MAX_FILE_CHUNKS as u64 * u64::from(size);
    if data.len() as u64 > max {
        return Err(FileError::TooLarge {
            len: data.len() as u64,
            max,
        });
    }
    let mut ids = Vec::with_capacity(data.len().div_ceil(chunk_size));
    let mut blocks = Vec::new();
    let mut seen = BTreeSet::new();
    for start in (0..data.len()).step_by(chunk_size) {
        let chunk = data.slice(start..(start + chunk_size).min(data.len()));
        let id = Id::hash_of(&chunk);
        ids.push(id);
        // A file with repeated chunks (zeros, say) stores each distinct one once.
        if seen.insert(id) {
            blocks.push((id, chunk));
        }
    }
    let manifest = FileManifest::from_parts(size, data.len() as u64, media_type, ids);
    Ok((manifest, blocks))
}
