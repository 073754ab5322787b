//! Blocks on disk, one file each, named by their hash: the live node's `ContentStore`.
//!
//! Writes are atomic (temporary file, fsync, rename), so a crash leaves a block
//! either whole or absent. Every read is checked against the block's hash; a
//! block that no longer matches (bit rot, a stray edit) is deleted and reported
//! absent, so it is fetched again rather than ever served.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use distroweb_protocol::wire::MAX_BLOCK_BYTES;
use distroweb_protocol::{ContentStore, Id, StoreError};

use crate::data_dir::write_atomic;

/// A bounded block store in one directory: `<root>/<first two hex digits>/<id>`.
///
/// Implementation note: the index sits in a `RefCell` because a read (`get`,
/// which takes `&self`) that finds a corrupt block must forget it at once, so
/// that `contains` never claims a block that is gone.
pub struct DiskStore {
    root: PathBuf,
    /// Every block held and its length: the disk is scanned once at open.
    index: RefCell<BTreeMap<Id, u32>>,
    bytes: Cell<u64>,
    capacity_bytes: u64,
    max_blocks: usize,
    /// Blocks found corrupt and deleted since open.
    corrupt: Cell<u64>,
}

impl DiskStore {
    /// Opens the store at `root` (creating it), indexing the blocks already there.
    /// Leftover temporary files and files that cannot be blocks are removed.
    pub fn open(
        root: impl Into<PathBuf>,
        capacity_bytes: u64,
        max_blocks: usize,
    ) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        let mut store = DiskStore {
            root,
            index: RefCell::new(BTreeMap::new()),
            bytes: Cell::new(0),
            capacity_bytes,
            max_blocks,
            corrupt: Cell::new(0),
        };
        store.scan()?;
        Ok(store)
    }

    fn scan(&mut self) -> io::Result<()> {
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
                        self.index.get_mut().insert(id, len as u32);
                        *self.bytes.get_mut() += len;
                    }
                    _ => {
                        tracing::debug!(path = %path.display(), "removing a stray file from the store");
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        Ok(())
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Blocks found corrupt (and deleted) since the store was opened.
    pub fn corrupt_blocks(&self) -> u64 {
        self.corrupt.get()
    }

    /// Every block id held, in id order.
    pub fn ids(&self) -> Vec<Id> {
        self.index.borrow().keys().copied().collect()
    }

    fn path(&self, id: &Id) -> PathBuf {
        let hex = id.to_string();
        self.root.join(&hex[..2]).join(hex)
    }

    fn forget(&self, id: &Id) {
        if let Some(len) = self.index.borrow_mut().remove(id) {
            self.bytes.set(self.bytes.get() - u64::from(len));
        }
    }
}

impl fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskStore")
            .field("root", &self.root)
            .field("blocks", &self.index.borrow().len())
            .field("bytes", &self.bytes.get())
            .field("capacity_bytes", &self.capacity_bytes)
            .finish()
    }
}

fn backend(what: &str, id: &Id, e: io::Error) -> StoreError {
    StoreError::Backend(format!("{what} block {}: {e}", id.short()))
}

impl ContentStore for DiskStore {
    fn get(&self, id: &Id) -> Result<Option<Bytes>, StoreError> {
        if !self.contains(id) {
            return Ok(None);
        }
        let path = self.path(id);
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::warn!(block = %id.short(), "block vanished from the store");
                self.forget(id);
                return Ok(None);
            }
            Err(e) => return Err(backend("reading", id, e)),
        };
        if Id::hash_of(&data) != *id {
            tracing::warn!(block = %id.short(), path = %path.display(), "discarding a corrupt block");
            let _ = fs::remove_file(&path);
            self.forget(id);
            self.corrupt.set(self.corrupt.get() + 1);
            return Ok(None);
        }
        Ok(Some(Bytes::from(data)))
    }

    fn contains(&self, id: &Id) -> bool {
        self.index.borrow().contains_key(id)
    }

    fn put(&mut self, id: Id, data: Bytes) -> Result<(), StoreError> {
        if self.contains(&id) {
            return Ok(());
        }
        if data.len() > MAX_BLOCK_BYTES {
            return Err(StoreError::BlockTooLarge {
                len: data.len(),
                max: MAX_BLOCK_BYTES,
            });
        }
        if self.block_count() >= self.max_blocks {
            return Err(StoreError::TooManyBlocks {
                max: self.max_blocks,
            });
        }
        if self.bytes.get() + data.len() as u64 > self.capacity_bytes {
            return Err(StoreError::Full {
                capacity_bytes: self.capacity_bytes,
            });
        }
        let path = self.path(&id);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| backend("creating the directory for", &id, e))?;
        }
        write_atomic(&path, &data).map_err(|e| backend("writing", &id, e))?;
        self.index.get_mut().insert(id, data.len() as u32);
        *self.bytes.get_mut() += data.len() as u64;
        Ok(())
    }

    fn remove(&mut self, id: &Id) -> Result<bool, StoreError> {
        if !self.contains(id) {
            return Ok(false);
        }
        match fs::remove_file(self.path(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(backend("removing", id, e)),
        }
        self.forget(id);
        Ok(true)
    }

    fn block_count(&self) -> usize {
        self.index.borrow().len()
    }

    fn byte_count(&self) -> u64 {
        self.bytes.get()
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
            let mut s = DiskStore::open(&root, 1 << 20, 100).unwrap();
            s.put(ia, a.clone()).unwrap();
            s.put(ib, b.clone()).unwrap();
            s.put(ia, a.clone()).unwrap();
            assert_eq!((s.block_count(), s.byte_count()), (2, 22));
        }
        // A stray temporary file from a crash is cleaned up at open.
        fs::write(root.join(&ia.to_string()[..2]).join(".x.tmp"), b"junk").unwrap();
        let mut s = DiskStore::open(&root, 1 << 20, 100).unwrap();
        assert_eq!((s.block_count(), s.byte_count()), (2, 22));
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
    fn bounds_are_enforced() {
        let root = temp("bounds");
        let mut s = DiskStore::open(&root, 10, 2).unwrap();
        let big = Bytes::from_static(b"more than ten bytes");
        assert_eq!(
            s.put(Id::hash_of(&big), big),
            Err(StoreError::Full { capacity_bytes: 10 })
        );
        s.put(Id::hash_of(b"1"), Bytes::from_static(b"1")).unwrap();
        s.put(Id::hash_of(b"2"), Bytes::from_static(b"2")).unwrap();
        assert_eq!(
            s.put(Id::hash_of(b"3"), Bytes::from_static(b"3")),
            Err(StoreError::TooManyBlocks { max: 2 })
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
