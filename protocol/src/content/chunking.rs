//! Splitting a file into chunks and describing it with a manifest.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::id::Id;
use crate::wire::MAX_BLOCK_BYTES;

use super::manifest::{FileManifest, Manifest, ManifestError, MAX_FILE_CHUNKS, MIN_CHUNK_BYTES};
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
        /// Its length (so far, when it arrives in chunks).
        len: u64,
        /// The most one manifest can describe at this chunk size.
        max: u64,
    },
    /// The file's tree of manifests could not be built (past the deepest
    /// tree, which no real file reaches).
    #[error("the file's manifests: {0}")]
    Tree(ManifestError),
    /// A chunk handed to a [`FileChunker`] cannot be where it is: empty,
    /// longer than the chunk size, or after the file's shorter last chunk.
    #[error("chunk {index} of {len} bytes does not fit chunks of {chunk_size} bytes")]
    ChunkLength {
        /// Where it would go.
        index: usize,
        /// Its length.
        len: usize,
        /// The chunk size.
        chunk_size: u32,
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
    let mut chunker = FileChunker::new(media_type, chunk_size)?;
    // Refuse a file too large before hashing any of it.
    if data.len() as u64 > chunker.max_len() {
        return Err(FileError::TooLarge {
            len: data.len() as u64,
            max: chunker.max_len(),
        });
    }
    let mut blocks = Vec::new();
    let mut seen = BTreeSet::new();
    for start in (0..data.len()).step_by(chunk_size) {
        let chunk = data.slice(start..(start + chunk_size).min(data.len()));
        let id = chunker.push(&chunk)?;
        // A file with repeated chunks (zeros, say) stores each distinct one once.
        if seen.insert(id) {
            blocks.push((id, chunk));
        }
    }
    Ok((chunker.finish(), blocks))
}

/// Builds a file's manifest from its chunks as they arrive, for files too large
/// to hold in memory: every chunk is hashed and forgotten, only its id is kept.
///
/// Feed the chunks in file order, each `chunk_size` bytes but the last, which
/// may be shorter (a file of a whole number of chunks has no shorter one); then
/// [`FileChunker::finish`]. The manifest, and so the id, is the one
/// [`prepare_file`] gives for the same bytes: `prepare_file` uses this too.
#[derive(Clone, Debug)]
pub struct FileChunker {
    chunk_size: u32,
    media_type: MediaType,
    length: u64,
    chunks: Vec<Id>,
    /// Whether a chunk shorter than `chunk_size` came: it must be the last.
    ended: bool,
}

impl FileChunker {
    /// A file of `media_type`, to be split into `chunk_size` chunks.
    pub fn new(media_type: &str, chunk_size: usize) -> Result<Self, FileError> {
        Ok(FileChunker {
            media_type: MediaType::new(media_type)?,
            chunk_size: check_chunk_size(chunk_size)?,
            length: 0,
            chunks: Vec::new(),
            ended: false,
        })
    }

    /// The chunk size every chunk but the last must have.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size as usize
    }

    /// The longest file one manifest can describe at this chunk size.
    pub fn max_len(&self) -> u64 {
        MAX_FILE_CHUNKS as u64 * u64::from(self.chunk_size)
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.length
    }

    /// Whether nothing was fed yet.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Hashes the next chunk and notes its id, which it returns (the block's name).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Id, FileError> {
        let index = self.chunks.len();
        if self.ended || chunk.is_empty() || chunk.len() > self.chunk_size() {
            return Err(FileError::ChunkLength {
                index,
                len: chunk.len(),
                chunk_size: self.chunk_size,
            });
        }
        let len = self.length + chunk.len() as u64;
        if index >= MAX_FILE_CHUNKS {
            return Err(FileError::TooLarge {
                len,
                max: self.max_len(),
            });
        }
        let id = Id::hash_of(chunk);
        self.chunks.push(id);
        self.length = len;
        self.ended = chunk.len() < self.chunk_size();
        Ok(id)
    }

    /// The file's manifest.
    pub fn finish(self) -> FileManifest {
        FileManifest::from_parts(self.chunk_size, self.length, self.media_type, self.chunks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeding chunks gives the manifest `prepare_file` gives, at every size
    /// around a chunk boundary, and refuses chunks out of shape.
    #[test]
    fn chunks_fed_one_by_one_give_the_same_id() {
        let cs = 1024;
        for len in [0, 1, cs - 1, cs, cs + 1, 3 * cs, 3 * cs + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let whole = prepare_file(Bytes::from(data.clone()), "text/plain", cs).unwrap();
            let mut c = FileChunker::new("text/plain", cs).unwrap();
            for chunk in data.chunks(cs) {
                c.push(chunk).unwrap();
            }
            assert_eq!(c.len(), len as u64);
            let m = Manifest::File(c.finish());
            assert_eq!(m.id(), whole.root, "{len} bytes");
            assert_eq!(m, whole.manifest);
        }
        let mut c = FileChunker::new("text/plain", cs).unwrap();
        assert!(matches!(
            c.push(&[]),
            Err(FileError::ChunkLength { index: 0, .. })
        ));
        assert!(matches!(
            c.push(&vec![0; cs + 1]),
            Err(FileError::ChunkLength { .. })
        ));
        c.push(&[1; 10]).unwrap();
        assert!(matches!(
            c.push(&[1; 10]),
            Err(FileError::ChunkLength {
                index: 1,
                len: 10,
                ..
            })
        ));
        assert!(FileChunker::new("no type", cs).is_err());
        assert!(FileChunker::new("text/plain", 10).is_err());
    }
}
