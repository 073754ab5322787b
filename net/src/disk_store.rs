//! Blocks on disk, one file each, named by their hash: the live node's `ContentStore`.
//!
//! Writes are atomic (temporary file, rename), so a reader sees a block whole
//! or not at all; fetched blocks are not fsynced, so a crash may lose one or
//! leave it short, while published ones are (`put_durable`). Every read is checked against the block's hash; a block that does not
//! match (cut short by a crash, bit rot, a stray edit) is deleted and reported
//! absent, so it is fetched again rather than ever served.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use distroweb_protocol::wire::MAX_BLOCK_BYTES;
use distroweb_protocol::{Id, StoreError};

use crate::block_store::BlockStore;
use crate::data_dir::{write_atomic, write_replace};

/// A block store in one directory: `<root>/<first two hex digits>/<id>`.
///
/// Thread-safe: the storage pool's workers write and read it while the proxy
/// reads it too. The node keeps the authoritative index and bounds; this store
/// keeps its own only to know, at open, what the disk holds.
pub struct DiskStore {
    root: PathBuf,
    /// Every block on disk and its length.
    index: Mutex<BTreeMap<Id, u32>>,
    /// Blocks found corrupt and deleted since open.
    corrupt: AtomicU64,
}

impl DiskStore {
    /// Writes a block with `how` and indexes it.
    fn write(
        &self,
        id: Id,
        data: Bytes,
        how: fn(&Path, &[u8]) -> io::Result<()>,
    ) -> Result<(), StoreError> {
        if data.len() > MAX_BLOCK_BYTES {
            return Err(StoreError::BlockTooLarge {
                len: data.len(),
                max: MAX_BLOCK_BYTES,
            });
        }
        let path = self.path(&id);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| backend("creating the directory for", &id, e))?;
        }
        how(&path, &data).map_err(|e| backend("writing", &id, e))?;
        self.lock().insert(id, data.len() as u32);
        Ok(())
    }

    /// Opens the store at `root` (creating it), indexing the blocks already there.
    /// Leftover temporary files and files that cannot be blocks are removed.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        let store = DiskStore {
            root,
            index: Mutex::new(BTreeMap::new()),
            corrupt: AtomicU64::new(0),
        };
        let found = store.scan()?;
        *store.lock() = found;
        Ok(store)
    }

    fn scan(&self) -> io::Result<BTreeMap<Id, u32>> {
        let mut found = BTreeMap::new();
        for shard in fs::read_dir(&self.root)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(shard.path())? {
                let entry = entry?;
                let path = entry.path();
                let name = entry.file_name();
                let id = name.to_str().and_then(|n| n.parse::<Id>().ok());
                let len = entry.metadata()?.len();
                match id {
                    Some(id) if len <= MAX_BLOCK_BYTES as u64 && path == self.path(&id) => {
                        found.insert(id, len as u32);
                    }
                    _ => {
                        tracing::debug!(path = %path.display(), "removing a stray file from the store");
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        Ok(found)
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Blocks found corrupt (and deleted) since the store was opened.
    pub fn corrupt_blocks(&self) -> u64 {
        self.corrupt.load(Ordering::Relaxed)
    }

    /// Blocks on disk, as far as this store knows.
    pub fn block_count(&self) -> usize {
        self.lock().len()
    }

    /// Bytes on disk, as far as this store knows.
    pub fn byte_count(&self) -> u64 {
        self.lock().values().map(|&l| u64::from(l)).sum()
    }

    /// Whether the block is on disk, as far as this store knows.
    pub fn contains(&self, id: &Id) -> bool {
        self.lock().contains_key(id)
    }

    fn path(&self, id: &Id) -> PathBuf {
        let hex = id.to_string();
        self.root.join(&hex[..2]).join(hex)
    }

    /// The index; a thread that panicked while holding it left it consistent
    /// (every change is one insert or remove), so a poisoned lock is taken as is.
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Id, u32>> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskStore")
            .field("root", &self.root)
            .field("blocks", &self.block_count())
            .finish()
    }
}

fn backend(what: &str, id: &Id, e: io::Error) -> StoreError {
    StoreError::Backend(format!("{what} block {}: {e}", id.short()))
}

impl BlockStore for DiskStore {
    fn get(&self, id: &Id) -> Result<Option<Bytes>, StoreError> {
        let path = self.path(id);
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if self.lock().remove(id).is_some() {
                    tracing::warn!(block = %id.short(), "block vanished from the store");
                }
                return Ok(None);
            }
            Err(e) => return Err(backend("reading", id, e)),
        };
        if Id::hash_of(&data) != *id {
            tracing::warn!(block = %id.short(), path = %path.display(), "discarding a corrupt block");
            let _ = fs::remove_file(&path);
            self.lock().remove(id);
            self.corrupt.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        Ok(Some(Bytes::from(data)))
    }

    fn put(&self, id: Id, data: Bytes) -> Result<(), StoreError> {
        // Atomic but not durable: a block lost or cut short by a crash fails
        // its hash check on the next read and is fetched again.
        self.write(id, data, write_replace)
    }

    fn put_durable(&self, id: Id, data: Bytes) -> Result<(), StoreError> {
        self.write(id, data, write_atomic)
    }

    fn remove(&self, id: &Id) -> Result<bool, StoreError> {
        let held = self.lock().remove(id).is_some();
        match fs::remove_file(self.path(id)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(held),
            Err(e) => Err(backend("removing", id, e)),
        }
    }

    fn blocks(&self) -> Vec<(Id, u32)> {
        self.lock().iter().map(|(id, len)| (*id, *len)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("distroweb-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn blocks_survive_reopen_and_corruption_is_never_served() {
        let root = temp("reopen");
        let a = Bytes::from_static(b"block a");
        let b = Bytes::from_static(b"block b, longer");
        let (ia, ib) = (Id::hash_of(&a), Id::hash_of(&b));
        {
            let s = DiskStore::open(&root).unwrap();
            s.put(ia, a.clone()).unwrap();
            s.put(ib, b.clone()).unwrap();
            s.put(ia, a.clone()).unwrap();
            assert_eq!((s.block_count(), s.byte_count()), (2, 22));
        }
        // A stray temporary file from a crash is cleaned up at open.
        fs::write(root.join(&ia.to_string()[..2]).join(".x.tmp"), b"junk").unwrap();
        let s = DiskStore::open(&root).unwrap();
        assert_eq!((s.block_count(), s.byte_count()), (2, 22));
        assert_eq!(s.blocks(), {
            let mut v = vec![(ia, 7), (ib, 15)];
            v.sort();
            v
        });
        assert_eq!(s.get(&ia).unwrap(), Some(a.clone()));

        // Flip a byte on disk: the block is discarded, not served.
        let path = s.path(&ib);
        let mut raw = fs::read(&path).unwrap();
        raw[0] ^= 1;
        fs::write(&path, raw).unwrap();
        assert_eq!(s.get(&ib).unwrap(), None);
        assert!(!path.exists());
        assert!(!s.contains(&ib));
        assert_eq!(s.byte_count(), 7);
        // It can be stored again, and then it is good.
        s.put(ib, b.clone()).unwrap();
        assert_eq!(s.get(&ib).unwrap(), Some(b));
        assert_eq!(s.corrupt_blocks(), 1);

        assert!(s.remove(&ia).unwrap());
        assert!(!s.remove(&ia).unwrap());
        assert_eq!(s.byte_count(), 15);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn oversized_blocks_are_refused() {
        let root = temp("bounds");
        let s = DiskStore::open(&root).unwrap();
        let big = Bytes::from(vec![0u8; MAX_BLOCK_BYTES + 1]);
        assert!(matches!(
            s.put(Id::hash_of(&big), big),
            Err(StoreError::BlockTooLarge { .. })
        ));
        assert_eq!(s.block_count(), 0);
        fs::remove_dir_all(&root).unwrap();
    }
}
