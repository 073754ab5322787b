//! Recently read blocks in memory, in front of the block store, so a page
//! asked for again is answered without a blocking thread, a file read and a
//! re-hash.
//!
//! The verification policy: a block is checked against its id when it is
//! written (the node verified it on arrival) and whenever it is read from
//! the store into this cache (the disk may have rotted since); a block served
//! from this cache is not hashed again, since memory the process wrote is
//! trusted where a disk is not. A removed block leaves the cache at once.
//!
//! Blocks just written (a fetch landing) are kept apart, in a small
//! first-in first-out window of their own (a quarter of the capacity), so a
//! page being streamed as it is fetched is read from memory rather than back
//! from disk, without a large fetch pushing out what readers ask for.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use distroweb_protocol::{Id, StoreError};

use crate::block_store::BlockStore;

/// Blocks held in memory, least recently used first out, at most `capacity`
/// bytes in all.
#[derive(Default)]
struct Lru {
    /// Each block and the tick it was last used at.
    blocks: BTreeMap<Id, (Bytes, u64)>,
    /// The same blocks by last use, oldest first.
    by_use: BTreeMap<u64, Id>,
    bytes: usize,
    tick: u64,
}

impl Lru {
    fn get(&mut self, id: &Id) -> Option<Bytes> {
        let tick = self.tick.wrapping_add(1);
        let (data, used) = self.blocks.get_mut(id)?;
        self.by_use.remove(used);
        *used = tick;
        self.by_use.insert(tick, *id);
        self.tick = tick;
        Some(data.clone())
    }

    fn insert(&mut self, id: Id, data: Bytes, capacity: usize) {
        if data.len() > capacity {
            return;
        }
        self.remove(&id);
        while self.bytes + data.len() > capacity {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            if let Some((old, _)) = self.blocks.remove(&oldest) {
                self.bytes -= old.len();
            }
        }
        self.tick = self.tick.wrapping_add(1);
        self.bytes += data.len();
        self.by_use.insert(self.tick, id);
        self.blocks.insert(id, (data, self.tick));
    }

    fn remove(&mut self, id: &Id) {
        if let Some((data, used)) = self.blocks.remove(id) {
            self.by_use.remove(&used);
            self.bytes -= data.len();
        }
    }
}

/// Just-written blocks kept at most, whatever their size: a lookup scans them.
const MAX_LANDED_BLOCKS: usize = 256;

/// The blocks written last, oldest first out, at most `capacity` bytes and
/// [`MAX_LANDED_BLOCKS`] blocks.
#[derive(Default)]
struct Landed {
    blocks: VecDeque<(Id, Bytes)>,
    bytes: usize,
}

impl Landed {
    fn get(&self, id: &Id) -> Option<Bytes> {
        // Newest first: a streaming reader asks for what landed last.
        self.blocks
            .iter()
            .rev()
            .find(|(i, _)| i == id)
            .map(|(_, d)| d.clone())
    }

    fn insert(&mut self, id: Id, data: Bytes, capacity: usize) {
        if data.len() > capacity {
            return;
        }
        while self.bytes + data.len() > capacity || self.blocks.len() >= MAX_LANDED_BLOCKS {
            let Some((_, old)) = self.blocks.pop_front() else {
                break;
            };
            self.bytes -= old.len();
        }
        self.bytes += data.len();
        self.blocks.push_back((id, data));
    }

    fn remove(&mut self, id: &Id) {
        let bytes = &mut self.bytes;
        self.blocks.retain(|(i, d)| {
            let keep = i != id;
            if !keep {
                *bytes -= d.len();
            }
            keep
        });
    }
}

/// A [`BlockStore`] with the most recently read blocks in memory, and the
/// most recently written in a window apart.
pub struct CachedStore {
    inner: Arc<dyn BlockStore>,
    cache: Mutex<Lru>,
    capacity: usize,
    landed: Mutex<Landed>,
}

impl fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, bytes) = self
            .cache
            .lock()
            .map(|c| (c.blocks.len(), c.bytes))
            .unwrap_or((0, 0));
        f.debug_struct("CachedStore")
            .field("inner", &self.inner)
            .field("cached_blocks", &n)
            .field("cached_bytes", &bytes)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl CachedStore {
    /// `inner` with up to `capacity` bytes of its blocks kept in memory.
    pub fn new(inner: Arc<dyn BlockStore>, capacity: usize) -> Self {
        CachedStore {
            inner,
            cache: Mutex::new(Lru::default()),
            capacity,
            landed: Mutex::new(Landed::default()),
        }
    }

    /// Bytes of just-written blocks kept in memory at most.
    fn landed_capacity(&self) -> usize {
        self.capacity / 4
    }

    /// The block `id` if it is in memory now; never touches the store, so it
    /// may be called on an async task.
    pub fn cached(&self, id: &Id) -> Option<Bytes> {
        if let Some(data) = self.cache.lock().ok()?.get(id) {
            return Some(data);
        }
        self.landed.lock().ok()?.get(id)
    }

    /// Bytes of blocks in memory now (read, and just written).
    pub fn cached_bytes(&self) -> usize {
        self.cache.lock().map(|c| c.bytes).unwrap_or(0)
            + self.landed.lock().map(|l| l.bytes).unwrap_or(0)
    }
}

impl BlockStore for CachedStore {
    fn get(&self, id: &Id) -> Result<Option<Bytes>, StoreError> {
        if let Some(data) = self.cached(id) {
            return Ok(Some(data));
        }
        // The store checks the block against its id as it reads it.
        let data = self.inner.get(id)?;
        if let (Some(d), Ok(mut cache)) = (&data, self.cache.lock()) {
            cache.insert(*id, d.clone(), self.capacity);
        }
        Ok(data)
    }

    fn put(&self, id: Id, data: Bytes) -> Result<(), StoreError> {
        // Not in the read cache on write: a fetch of a large file would push
        // out the pages readers ask for; a block enters it on its first read.
        // It waits in the landing window, where a streaming reader finds it.
        self.inner.put(id, data.clone())?;
        if let Ok(mut landed) = self.landed.lock() {
            landed.insert(id, data, self.landed_capacity());
        }
        Ok(())
    }

    fn put_durable(&self, id: Id, data: Bytes) -> Result<(), StoreError> {
        self.inner.put_durable(id, data)
    }

    fn remove(&self, id: &Id) -> Result<bool, StoreError> {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(id);
        }
        if let Ok(mut landed) = self.landed.lock() {
            landed.remove(id);
        }
        self.inner.remove(id)
    }

    fn blocks(&self) -> Vec<(Id, u32)> {
        self.inner.blocks()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_store::MemoryBlocks;
    use proptest::prelude::*;

    fn block(n: u8, len: usize) -> (Id, Bytes) {
        let data = Bytes::from(vec![n; len]);
        (Id::hash_of(&data), data)
    }

    #[test]
    fn a_read_fills_the_cache_and_a_removal_empties_it() {
        let inner: Arc<dyn BlockStore> = Arc::new(MemoryBlocks::default());
        let store = CachedStore::new(inner.clone(), 1000);
        let (id, data) = block(1, 100);
        store.put(id, data.clone()).unwrap();
        assert!(
            store.cache.lock().unwrap().blocks.is_empty(),
            "not read-cached on write"
        );
        assert_eq!(store.cached(&id), Some(data.clone()), "but landed");
        assert_eq!(store.get(&id).unwrap(), Some(data.clone()));
        assert_eq!(store.cached(&id), Some(data));
        assert!(store.remove(&id).unwrap());
        assert_eq!(store.cached(&id), None);
        assert_eq!(store.get(&id).unwrap(), None);
    }

    #[test]
    fn the_least_recently_used_block_goes_first() {
        let inner: Arc<dyn BlockStore> = Arc::new(MemoryBlocks::default());
        let store = CachedStore::new(inner, 250);
        let blocks: Vec<_> = (0..3).map(|n| block(n, 100)).collect();
        for (id, data) in &blocks {
            store.put(*id, data.clone()).unwrap();
        }
        store.get(&blocks[0].0).unwrap();
        store.get(&blocks[1].0).unwrap();
        store.get(&blocks[0].0).unwrap(); // 0 is now the most recent
        store.get(&blocks[2].0).unwrap(); // evicts 1
        assert!(store.cached(&blocks[0].0).is_some());
        assert!(store.cached(&blocks[1].0).is_none());
        assert!(store.cached(&blocks[2].0).is_some());
        assert_eq!(store.cached_bytes(), 200);
    }

    proptest! {
        /// Whatever is read, removed or re-read, the cache stays within its
        /// capacity, its byte count matches what it holds, and every block it
        /// answers is the block stored under that id.
        #[test]
        fn the_cache_stays_bounded_and_true(
            ops in proptest::collection::vec((0u8..12, 1usize..120, 0u8..3), 1..200),
            capacity in 1usize..400,
        ) {
            let inner: Arc<dyn BlockStore> = Arc::new(MemoryBlocks::default());
            let store = CachedStore::new(inner, capacity);
            for (n, len, op) in ops {
                let (id, data) = block(n, len);
                match op {
                    0 => { store.put(id, data).unwrap(); }
                    1 => { let _ = store.get(&id).unwrap(); }
                    _ => { let _ = store.remove(&id).unwrap(); }
                }
                let landed = store.landed.lock().unwrap();
                prop_assert!(landed.bytes <= capacity / 4);
                prop_assert!(landed.blocks.len() <= MAX_LANDED_BLOCKS);
                prop_assert_eq!(landed.bytes, landed.blocks.iter().map(|(_, d)| d.len()).sum::<usize>());
                for (id, d) in &landed.blocks {
                    prop_assert_eq!(Id::hash_of(d), *id);
                }
                drop(landed);
                let cache = store.cache.lock().unwrap();
                prop_assert!(cache.bytes <= capacity);
                prop_assert_eq!(cache.bytes, cache.blocks.values().map(|(d, _)| d.len()).sum::<usize>());
                prop_assert_eq!(cache.blocks.len(), cache.by_use.len());
                for (id, (d, _)) in &cache.blocks {
                    prop_assert_eq!(Id::hash_of(d), *id);
                }
            }
        }
    }
}
