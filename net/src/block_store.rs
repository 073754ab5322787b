//! The live node's block stores, behind one thread-safe API: the disk store,
//! and a memory store for nodes without a data directory.
//!
//! The node task never calls a store. It hands the protocol's storage
//! operations to the [`StorePool`](crate::store_pool), whose workers call the
//! store; readers outside the node (the proxy streaming a page) call it directly.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use bytes::Bytes;
use distroweb_protocol::wire::MAX_BLOCK_BYTES;
use distroweb_protocol::{BlockSource, Id, StoreError};

/// A content-addressed block store that many threads may use at once.
///
/// Blocks are written only after the node verified them; a store that finds a
/// block no longer matching its id on a read must drop it and report it absent.
pub trait BlockStore: fmt::Debug + Send + Sync + 'static {
    /// The block `id`, if held (and intact).
    fn get(&self, id: &Id) -> Result<Option<Bytes>, StoreError>;
    /// Stores a verified block, atomically (a reader sees all of it or none)
    /// but not necessarily durably: a block lost in a crash fails its check on
    /// the next read and is fetched again. Storing a held block again changes
    /// nothing.
    fn put(&self, id: Id, data: Bytes) -> Result<(), StoreError>;
    /// Stores a block durably, for content this node publishes (it may be
    /// the only copy); by default as [`BlockStore::put`].
    fn put_durable(&self, id: Id, data: Bytes) -> Result<(), StoreError> {
        self.put(id, data)
    }
    /// Drops the block `id`; returns whether it was held.
    fn remove(&self, id: &Id) -> Result<bool, StoreError>;
    /// Every block held and its length, in id order (read once, at start).
    fn blocks(&self) -> Vec<(Id, u32)>;
}

impl BlockSource for dyn BlockStore {
    fn block(&self, id: &Id) -> Result<Option<Bytes>, StoreError> {
        self.get(id)
    }
}

/// Blocks in memory: the store of a node without a data directory. The node
/// bounds what it writes (`store_capacity_bytes`), so this store does not.
#[derive(Default)]
pub struct MemoryBlocks {
    blocks: Mutex<BTreeMap<Id, Bytes>>,
}

impl fmt::Debug for MemoryBlocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.blocks.lock().map(|b| b.len()).unwrap_or(0);
        f.debug_struct("MemoryBlocks").field("blocks", &n).finish()
    }
}

impl MemoryBlocks {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<Id, Bytes>) -> T) -> Result<T, StoreError> {
        let mut blocks = self
            .blocks
            .lock()
            .map_err(|_| StoreError::Backend("memory store poisoned".into()))?;
        Ok(f(&mut blocks))
    }
}

impl BlockStore for MemoryBlocks {
    fn get(&self, id: &Id) -> Result<Option<Bytes>, StoreError> {
        self.with(|b| b.get(id).cloned())
    }

    fn put(&self, id: Id, data: Bytes) -> Result<(), StoreError> {
        if data.len() > MAX_BLOCK_BYTES {
            return Err(StoreError::BlockTooLarge {
                len: data.len(),
                max: MAX_BLOCK_BYTES,
            });
        }
        self.with(|b| {
            b.entry(id).or_insert(data);
        })
    }

    fn remove(&self, id: &Id) -> Result<bool, StoreError> {
        self.with(|b| b.remove(id).is_some())
    }

    fn blocks(&self) -> Vec<(Id, u32)> {
        self.with(|b| b.iter().map(|(id, d)| (*id, d.len() as u32)).collect())
            .unwrap_or_default()
    }
}
