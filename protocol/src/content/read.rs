//! Reading stored content back: a manifest, a whole file, or everything a
//! content id names. Drivers use these on their own stores; the node never reads.

use bytes::{Bytes, BytesMut};

use crate::id::Id;

use super::manifest::{Manifest, ManifestError};
use super::store::{BlockSource, StoreError};

/// Why stored content could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// A block of it is not in the store.
    #[error("block {0:?} is not held")]
    NotHeld(Id),
    /// The id names a site, not a file.
    #[error("{0:?} is not a file")]
    NotAFile(Id),
    /// A stored block does not match its id.
    #[error("block {0:?} does not match its id")]
    Corrupt(Id),
    /// A stored manifest does not decode.
    #[error("stored manifest does not decode")]
    Manifest(#[from] ManifestError),
    /// A stored chunk has the wrong length for its file.
    #[error("chunk {index} of {file:?} has the wrong length")]
    ChunkLength {
        /// The file.
        file: Id,
        /// The chunk.
        index: usize,
    },
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
}

/// The stored manifest `id`, checked against its id and decoded.
pub fn read_manifest(store: &(impl BlockSource + ?Sized), id: &Id) -> Result<Manifest, ReadError> {
    let block = store.block(id)?.ok_or(ReadError::NotHeld(*id))?;
    if Id::hash_of(&block) != *id {
        return Err(ReadError::Corrupt(*id));
    }
    Ok(Manifest::decode(&block)?)
}

/// The whole stored file `id`, assembled from its chunks (without a copy when
/// it has one chunk), each checked against its id and length.
pub fn read_file(store: &(impl BlockSource + ?Sized), id: &Id) -> Result<Bytes, ReadError> {
    let Manifest::File(m) = read_manifest(store, id)? else {
        return Err(ReadError::NotAFile(*id));
    };
    let mut parts = Vec::with_capacity(m.chunks().len());
    for (index, c) in m.chunks().iter().enumerate() {
        let data = store.block(c)?.ok_or(ReadError::NotHeld(*c))?;
        if Some(data.len()) != m.chunk_len(index) {
            return Err(ReadError::ChunkLength { file: *id, index });
        }
        if Id::hash_of(&data) != *c {
            return Err(ReadError::Corrupt(*c));
        }
        parts.push(data);
    }
    if parts.len() <= 1 {
        return Ok(parts.pop().unwrap_or_default());
    }
    let mut out = BytesMut::with_capacity(m.len() as usize);
    for p in parts {
        out.extend_from_slice(&p);
    }
    Ok(out.freeze())
}

/// The manifests of the content `root`: its own, and for a site every file's,
/// as [`crate::Node::adopt`] takes them.
pub fn read_content(
    store: &(impl BlockSource + ?Sized),
    root: &Id,
) -> Result<Vec<(Id, Manifest)>, ReadError> {
    let manifest = read_manifest(store, root)?;
    let mut out = Vec::new();
    if let Manifest::Site(s) = &manifest {
        for e in s.entries() {
            match read_manifest(store, &e.file)? {
                m @ Manifest::File(_) => out.push((e.file, m)),
                Manifest::Site(_) => return Err(ReadError::NotAFile(e.file)),
            }
        }
    }
    out.insert(0, (*root, manifest));
    Ok(out)
}
