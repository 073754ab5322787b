//! Where a node keeps blocks (chunks and manifests), keyed by their hash.

use core::fmt;
use std::collections::BTreeMap;

use bytes::Bytes;

use crate::id::Id;
use crate::io::{StoreDone, StoreOp};
use crate::wire::MAX_BLOCK_BYTES;

/// Why a store refused or failed an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Storing the block would exceed the store's byte capacity.
    #[error("store full ({capacity_bytes} bytes)")]
    Full {
        /// The capacity.
        capacity_bytes: u64,
    },
    /// Storing the block would exceed the store's block count.
    #[error("store holds the most blocks allowed ({max})")]
    TooManyBlocks {
        /// The limit.
        max: usize,
    },
    /// The block is larger than any block may be.
    #[error("block of {len} bytes exceeds {max}")]
    BlockTooLarge {
        /// Its length.
        len: usize,
        /// [`MAX_BLOCK_BYTES`].
        max: usize,
    },
    /// The medium behind the store failed (a disk store's I/O error, say).
    #[error("store backend failed: {0}")]
    Backend(String),
}

/// A bounded, synchronous, content-addressed block store, as a driver keeps one.
///
/// The node never calls a store: it asks its driver through
/// [`StoreOp`](crate::StoreOp)s, and a driver with a synchronous store answers
/// them with [`apply`]. The node only writes blocks it has verified
/// (`Id::hash_of(data) == id`), so a store need not hash again. protocol/ ships
/// [`MemoryStore`]; the live node has its own store on disk.
pub trait ContentStore: fmt::Debug + Send {
    /// The block `id`, if held.
    fn get(&self, id: &Id) -> Result<Option<Bytes>, StoreError>;
    /// Whether the block `id` is held.
    fn contains(&self, id: &Id) -> bool;
    /// Stores a verified block; storing a held block again changes nothing.
    fn put(&mut self, id: Id, data: Bytes) -> Result<(), StoreError>;
    /// Drops the block `id`; returns whether it was held.
    fn remove(&mut self, id: &Id) -> Result<bool, StoreError>;
    /// Blocks held.
    fn block_count(&self) -> usize;
    /// Bytes held, summed over blocks.
    fn byte_count(&self) -> u64;
}

/// Carries out one storage operation on a synchronous store and says how it ended.
pub fn apply(store: &mut dyn ContentStore, op: StoreOp) -> StoreDone {
    match op {
        StoreOp::Read { id } => StoreDone::Read {
            id,
            result: store.get(&id),
        },
        StoreOp::Write { id, data } => StoreDone::Written {
            id,
            result: store.put(id, data),
        },
        StoreOp::Remove { id } => {
            // A block that could not be removed is an orphan, not an error for the node.
            let _ = store.remove(&id);
            StoreDone::Removed { id }
        }
    }
}

/// Where blocks can be read from: any store, as the readers of content
/// ([`read_file`](crate::content::read_file) and friends) see it.
pub trait BlockSource {
    /// The block `id`, if held.
    fn block(&self, id: &Id) -> Result<Option<Bytes>, StoreError>;
}

impl<S: ContentStore + ?Sized> BlockSource for S {
    fn block(&self, id: &Id) -> Result<Option<Bytes>, StoreError> {
        self.get(id)
    }
}

/// Blocks in memory, as [`Bytes`]: a block received from a peer in the
/// simulator shares the sender's buffer, so a page held by thousands of
/// simulated nodes is one allocation. `MemoryStore::default()` is unbounded
/// (the node bounds what it writes); [`MemoryStore::new`] sets bounds of its own.
#[derive(Clone)]
pub struct MemoryStore {
    blocks: BTreeMap<Id, Bytes>,
    bytes: u64,
    capacity_bytes: u64,
    max_blocks: usize,
}

impl MemoryStore {
    /// An empty store holding at most `capacity_bytes` in at most `max_blocks` blocks.
    pub fn new(capacity_bytes: u64, max_blocks: usize) -> Self {
        MemoryStore {
            blocks: BTreeMap::new(),
            bytes: 0,
            capacity_bytes,
            max_blocks,
        }
    }

    /// Every block id held, in id order.
    pub fn ids(&self) -> impl Iterator<Item = &Id> + '_ {
        self.blocks.keys()
    }

    /// Carries out one storage operation (see [`apply`]).
    pub fn apply(&mut self, op: StoreOp) -> StoreDone {
        apply(self, op)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new(u64::MAX, usize::MAX)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("blocks", &self.blocks.len())
            .field("bytes", &self.bytes)
            .field("capacity_bytes", &self.capacity_bytes)
            .finish()
    }
}

impl ContentStore for MemoryStore {
    fn get(&self, id: &Id) -> Result<Option<Bytes>, StoreError> {
        Ok(self.blocks.get(id).cloned())
    }

    fn contains(&self, id: &Id) -> bool {
        self.blocks.contains_key(id)
    }

    fn put(&mut self, id: Id, data: Bytes) -> Result<(), StoreError> {
        if self.blocks.contains_key(&id) {
            return Ok(());
        }
        if data.len() > MAX_BLOCK_BYTES {
            return Err(StoreError::BlockTooLarge {
                len: data.len(),
                max: MAX_BLOCK_BYTES,
            });
        }
        if self.blocks.len() >= self.max_blocks {
            return Err(StoreError::TooManyBlocks {
                max: self.max_blocks,
            });
        }
        if self.bytes.saturating_add(data.len() as u64) > self.capacity_bytes {
            return Err(StoreError::Full {
                capacity_bytes: self.capacity_bytes,
            });
        }
        self.bytes += data.len() as u64;
        self.blocks.insert(id, data);
        Ok(())
    }

    fn remove(&mut self, id: &Id) -> Result<bool, StoreError> {
        Ok(match self.blocks.remove(id) {
            Some(d) => {
                self.bytes -= d.len() as u64;
                true
            }
            None => false,
        })
    }

    fn block_count(&self) -> usize {
        self.blocks.len()
    }

    fn byte_count(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_enforced_and_shared_buffers_kept() {
        let mut s = MemoryStore::new(10, 2);
        let a = Bytes::from_static(b"aaaa");
        s.put(Id::hash_of(&a), a.clone()).unwrap();
        s.put(Id::hash_of(&a), a.clone()).unwrap();
        assert_eq!((s.block_count(), s.byte_count()), (1, 4));
        let got = s.get(&Id::hash_of(&a)).unwrap().unwrap();
        assert_eq!(got.as_ptr(), a.as_ptr(), "no copy");
        let b = Bytes::from_static(b"bbbbbbbb");
        assert_eq!(
            s.put(Id::hash_of(&b), b),
            Err(StoreError::Full { capacity_bytes: 10 })
        );
        s.put(Id::ZERO, Bytes::from_static(b"c")).unwrap();
        assert_eq!(
            s.put(Id::hash_of(b"d"), Bytes::from_static(b"d")),
            Err(StoreError::TooManyBlocks { max: 2 })
        );
        assert_eq!(s.remove(&Id::ZERO), Ok(true));
        assert_eq!(s.remove(&Id::ZERO), Ok(false));
        assert_eq!(s.byte_count(), 4);
    }
}
