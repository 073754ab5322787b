//! Reading stored content back: a manifest, a whole file, or everything a
//! content id names. Drivers use these on their own stores; the node never reads.

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};

use crate::id::Id;

use super::manifest::{Manifest, ManifestError, SiteEntry};
use super::store::{BlockSource, StoreError};
use super::walk::{content_blocks, LeafWalk, Lookup, PathLookup};

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

/// Checks every chunk of the stored file `id` (of one level or a tree)
/// against its id and length, one chunk in memory at a time; returns the
/// file's length. How a node checks what it holds at start without reading
/// a large file into memory.
pub fn verify_file(store: &(impl BlockSource + ?Sized), id: &Id) -> Result<u64, ReadError> {
    let mut total = 0u64;
    each_chunk(store, id, |data| total += data.len() as u64)?;
    Ok(total)
}

/// The whole stored file `id` (of one level or a tree), assembled from its
/// chunks (without a copy when it has one chunk), each checked against its id
/// and length.
pub fn read_file(store: &(impl BlockSource + ?Sized), id: &Id) -> Result<Bytes, ReadError> {
    let mut parts = Vec::new();
    let mut total = 0u64;
    each_chunk(store, id, |data| {
        total += data.len() as u64;
        parts.push(data);
    })?;
    if parts.len() <= 1 {
        return Ok(parts.pop().unwrap_or_default());
    }
    let mut out = BytesMut::with_capacity(total as usize);
    for p in parts {
        out.extend_from_slice(&p);
    }
    Ok(out.freeze())
}

/// Hands `each` every chunk of the stored file `id` in order, once it has
/// checked the chunk against its id and its length in the manifest.
fn each_chunk(
    store: &(impl BlockSource + ?Sized),
    id: &Id,
    mut each: impl FnMut(Bytes),
) -> Result<(), ReadError> {
    let mut walk = LeafWalk::new(*id);
    while let Some(next) = walk.want() {
        let manifest = match read_manifest(store, &next)? {
            Manifest::Site(_) | Manifest::SiteIndex(_) => return Err(ReadError::NotAFile(*id)),
            m => m,
        };
        let Some(leaf) = walk.feed(manifest)? else {
            continue;
        };
        for (index, c) in leaf.manifest.chunks().iter().enumerate() {
            let data = store.block(c)?.ok_or(ReadError::NotHeld(*c))?;
            if Some(data.len()) != leaf.manifest.chunk_len(index) {
                return Err(ReadError::ChunkLength {
                    file: leaf.id,
                    index,
                });
            }
            if Id::hash_of(&data) != *c {
                return Err(ReadError::Corrupt(*c));
            }
            each(data);
        }
    }
    Ok(())
}

/// The entry of `path` (normalised) in the stored site `root`, read one block
/// per index level; `None` if the site has no such file.
pub fn read_entry(
    store: &(impl BlockSource + ?Sized),
    root: &Id,
    path: &str,
) -> Result<Option<SiteEntry>, ReadError> {
    let mut lookup = PathLookup::new(path);
    let mut next = *root;
    loop {
        match lookup.feed(next, read_manifest(store, &next)?)? {
            Lookup::Found(entry) => return Ok(entry),
            Lookup::Next(id) => next = id,
        }
    }
}

/// The manifests of the content `root`: every manifest block it has (its
/// root, a site's index nodes and shards, every file's tree nodes and
/// leaves), each checked against its parent, as [`crate::Node::adopt`] takes them.
pub fn read_content(
    store: &(impl BlockSource + ?Sized),
    root: &Id,
) -> Result<Vec<(Id, Manifest)>, ReadError> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    content_blocks(root, |id| {
        let m = read_manifest(store, id)?;
        if seen.insert(*id) {
            out.push((*id, m.clone()));
        }
        Ok::<_, ReadError>(m)
    })?;
    Ok(out)
}
