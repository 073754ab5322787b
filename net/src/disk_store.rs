//! Blocks on disk, one file each, named by their hash: the live node's `ContentStore`.
//!
//! Writes are atomic (temporary file, rename), so a reader sees a block whole
//! or not at all; fetched blocks are not fsynced, so a crash may lose one or
//! leave it short, while published ones are (`put_durable`).
//!
//! The read verification policy: a block's bytes are checked against its id
//! before it is written (the node verified it on arrival, or hashed it while
//! publishing) and on its first read from disk after every start of the
//! store; after that, a read trusts the file without hashing it again for as
//! long as the file system reports the same file (inode, length, modification
//! and change times, [`Stamp`]). Any write, truncation or replacement of a
//! block file through the file system changes the stamp, so the next read
//! hashes it again; a block that does not match (cut short by a crash, a
//! stray edit) is deleted and reported absent, so it is fetched again rather
//! than ever served. What a read does not catch is corruption beneath the
//! file system (a disk returning other bytes for an unchanged file) while
//! the node runs: that is found on the first read after the next start.
//! Hashing every block on every read is what capped serving held content.
//!
//! Fetched blocks are written with direct I/O where the file system allows
//! it (Linux `O_DIRECT`), and read back the same way while this store is
//! open: a 1 GiB cold fetch through the page cache spent most of its time
//! filling fresh page-cache pages, and the pages would only push out others.
//! Published blocks go through the page cache (the publisher serves them
//! next).

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use distroweb_protocol::wire::MAX_BLOCK_BYTES;
use distroweb_protocol::{Id, StoreError};

use crate::block_store::BlockStore;
use crate::data_dir::write_atomic;

/// What the store knows of one block on disk.
#[derive(Clone, Copy, Debug)]
struct Entry {
    len: u32,
    /// The file as it was when this process last found (or wrote) its bytes
    /// matching the id: a read that finds the same file does not hash it.
    verified: Option<Stamp>,
    /// Written with direct I/O: read the same way, past the page cache.
    direct: bool,
}

impl Entry {
    fn found(len: u32) -> Self {
        Entry {
            len,
            verified: None,
            direct: false,
        }
    }
}

/// A block file's identity as the file system reports it; writing,
/// truncating or replacing the file through the file system changes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Stamp {
    /// The stamp of a file, where the platform reports one (Unix); elsewhere
    /// `None`, and every read hashes.
    fn of(m: &fs::Metadata) -> Option<Stamp> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Some(Stamp {
                ino: m.ino(),
                len: m.len(),
                modified: (m.mtime(), m.mtime_nsec()),
                changed: (m.ctime(), m.ctime_nsec()),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = m;
            None
        }
    }
}

/// Alignment of buffers, offsets and lengths for direct I/O: the largest
/// logical block size a disk uses.
const DIRECT_ALIGN: usize = 4096;
/// Write buffers kept for reuse at most (one per storage worker is the need).
const MAX_SPARE_BUFFERS: usize = 8;

/// A block store in one directory: `<root>/<first two hex digits>/<id>`.
///
/// Thread-safe: the storage pool's workers write and read it while the proxy
/// reads it too. The node keeps the authoritative index and bounds; this store
/// keeps its own to know, at open, what the disk holds, and which files it
/// has verified since (its size is bounded by the node's block count bound).
pub struct DiskStore {
    root: PathBuf,
    /// Every block on disk.
    index: Mutex<BTreeMap<Id, Entry>>,
    /// Blocks found corrupt and deleted since open.
    corrupt: AtomicU64,
    /// Reads that hashed the block (first reads, or a changed file).
    hashed_reads: AtomicU64,
    /// Whether fetched blocks are written with direct I/O; cleared the
    /// first time the file system refuses it.
    direct: AtomicBool,
    /// Aligned buffers for direct writes, reused.
    spare: Mutex<Vec<Vec<u8>>>,
}

impl DiskStore {
    /// Writes a verified block with `how` and indexes it as verified.
    fn write(&self, id: Id, data: Bytes, how: How) -> Result<(), StoreError> {
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
        let (stamp, direct) = match how {
            How::Durable => {
                write_atomic(&path, &data).map_err(|e| backend("writing", &id, e))?;
                (fs::metadata(&path).ok().as_ref().and_then(Stamp::of), false)
            }
            How::Fast => self
                .write_fast(&path, &data)
                .map_err(|e| backend("writing", &id, e))?,
        };
        self.lock().insert(
            id,
            Entry {
                len: data.len() as u32,
                verified: stamp,
                direct,
            },
        );
        Ok(())
    }

    /// Writes atomically but not durably, with direct I/O if the file
    /// system allows it; returns the file's stamp and whether it went direct.
    fn write_fast(&self, path: &Path, data: &[u8]) -> io::Result<(Option<Stamp>, bool)> {
        let direct = self.direct.load(Ordering::Relaxed);
        let tmp = temp_path(path);
        // A temp file left by a crashed process with our pid would make `create_new` fail.
        let _ = fs::remove_file(&tmp);
        let result = (|| {
            let mut options = fs::OpenOptions::new();
            options.write(true).create_new(true);
            let mut went_direct = false;
            let mut f = match direct_flag(&mut options, direct).open(&tmp) {
                Ok(f) => {
                    went_direct = direct;
                    f
                }
                // The file system does not do direct I/O (tmpfs): never try again.
                Err(e) if direct && e.raw_os_error() == Some(EINVAL) => {
                    self.direct.store(false, Ordering::Relaxed);
                    tracing::debug!("the store's file system refuses direct I/O");
                    fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&tmp)?
                }
                Err(e) => return Err(e),
            };
            if went_direct {
                self.write_aligned(&mut f, data)?;
            } else {
                f.write_all(data)?;
            }
            fs::rename(&tmp, path)?;
            // After the rename, which changes the file's ctime.
            Ok((Stamp::of(&f.metadata()?), went_direct))
        })();
        match result {
            Ok(done) => Ok(done),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                // The open passed but the file system refused the direct
                // write itself: write through the page cache from now on.
                if direct && e.raw_os_error() == Some(EINVAL) {
                    self.direct.store(false, Ordering::Relaxed);
                    tracing::debug!("the store's file system refuses direct writes");
                    return self.write_fast(path, data);
                }
                Err(e)
            }
        }
    }

    /// Writes `data` to a file opened for direct I/O: from an aligned buffer,
    /// padded to the alignment, then cut to its length.
    fn write_aligned(&self, f: &mut fs::File, data: &[u8]) -> io::Result<()> {
        let padded = data.len().div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
        let mut buf = self
            .spare
            .lock()
            .map(|mut s| s.pop())
            .ok()
            .flatten()
            .unwrap_or_default();
        buf.resize(padded + DIRECT_ALIGN, 0);
        let at = aligned_start(&buf);
        buf[at..at + data.len()].copy_from_slice(data);
        buf[at + data.len()..at + padded].fill(0);
        let written = f.write_all(&buf[at..at + padded]);
        if let Ok(mut spare) = self.spare.lock() {
            if spare.len() < MAX_SPARE_BUFFERS {
                spare.push(buf);
            }
        }
        written?;
        if padded != data.len() {
            f.set_len(data.len() as u64)?;
        }
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
            hashed_reads: AtomicU64::new(0),
            direct: AtomicBool::new(cfg!(target_os = "linux")),
            spare: Mutex::new(Vec::new()),
        };
        let found = store.scan()?;
        *store.lock() = found;
        Ok(store)
    }

    fn scan(&self) -> io::Result<BTreeMap<Id, Entry>> {
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
                        found.insert(id, Entry::found(len as u32));
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

    /// Reads since the store was opened that hashed the block (the first
    /// read of a block found at open, or of a file changed since it was
    /// verified); other reads trust a file verified before.
    pub fn hashed_reads(&self) -> u64 {
        self.hashed_reads.load(Ordering::Relaxed)
    }

    /// Blocks on disk, as far as this store knows.
    pub fn block_count(&self) -> usize {
        self.lock().len()
    }

    /// Bytes on disk, as far as this store knows.
    pub fn byte_count(&self) -> u64 {
        self.lock().values().map(|e| u64::from(e.len)).sum()
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
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Id, Entry>> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops a block whose file no longer matches its id.
    fn discard(&self, id: &Id, path: &Path) {
        tracing::warn!(block = %id.short(), path = %path.display(), "discarding a corrupt block");
        let _ = fs::remove_file(path);
        self.lock().remove(id);
        self.corrupt.fetch_add(1, Ordering::Relaxed);
    }
}

/// How a block is written.
#[derive(Clone, Copy)]
enum How {
    /// Fsynced, through the page cache: content this node publishes.
    Durable,
    /// Not fsynced, direct where possible: fetched content.
    Fast,
}

/// A temporary name beside `path`: the process id and a counter keep
/// concurrent writers off each other's files, and the leading dot and the
/// `.tmp` suffix make it a stray file to the next scan.
fn temp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("block");
    path.with_file_name(format!(".{name}.{}.f{n}.tmp", std::process::id()))
}

/// `EINVAL`: what Linux answers an `O_DIRECT` open on a file system without it.
const EINVAL: i32 = 22;

/// Adds `O_DIRECT` to `options` when `direct` (Linux only).
fn direct_flag(options: &mut fs::OpenOptions, direct: bool) -> &mut fs::OpenOptions {
    #[cfg(target_os = "linux")]
    if direct {
        std::os::unix::fs::OpenOptionsExt::custom_flags(options, libc::O_DIRECT);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = direct;
    options
}

/// The first index of `buf` at an address aligned for direct I/O (`buf`
/// has at least `DIRECT_ALIGN` bytes of slack for it).
fn aligned_start(buf: &[u8]) -> usize {
    let addr = buf.as_ptr() as usize;
    (DIRECT_ALIGN - addr % DIRECT_ALIGN) % DIRECT_ALIGN
}

/// Reads a whole file of `len` bytes (as its metadata said) opened for
/// direct I/O into an aligned buffer; returns fewer bytes if it is shorter.
fn read_aligned(f: &mut fs::File, len: usize) -> io::Result<Bytes> {
    let padded = len.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
    let mut buf = vec![0u8; padded + DIRECT_ALIGN];
    let at = aligned_start(&buf);
    let mut filled = 0;
    // Each read but the last (at the end of the file) is a whole number of
    // aligned blocks, so the next starts aligned.
    while filled < len {
        let n = f.read(&mut buf[at + filled..at + padded])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(Bytes::from(buf).slice(at..at + filled.min(len)))
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
        let known = self.lock().get(id).copied();
        let direct = known.is_some_and(|e| e.direct);
        let mut options = fs::OpenOptions::new();
        options.read(true);
        let opened = direct_flag(&mut options, direct).open(&path);
        let mut file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if self.lock().remove(id).is_some() {
                    tracing::warn!(block = %id.short(), "block vanished from the store");
                }
                return Ok(None);
            }
            Err(e) => return Err(backend("reading", id, e)),
        };
        let meta = file.metadata().map_err(|e| backend("reading", id, e))?;
        if meta.len() > MAX_BLOCK_BYTES as u64 {
            self.discard(id, &path);
            return Ok(None);
        }
        let len = meta.len() as usize;
        let data = if direct {
            read_aligned(&mut file, len)
        } else {
            let mut data = Vec::with_capacity(len);
            file.read_to_end(&mut data).map(|_| Bytes::from(data))
        }
        .map_err(|e| backend("reading", id, e))?;
        let stamp = Stamp::of(&meta);
        if stamp.is_some() && known.and_then(|e| e.verified) == stamp {
            return Ok(Some(data));
        }
        self.hashed_reads.fetch_add(1, Ordering::Relaxed);
        if Id::hash_of(&data) != *id {
            self.discard(id, &path);
            return Ok(None);
        }
        if let Some(e) = self.lock().get_mut(id) {
            e.verified = stamp;
        }
        Ok(Some(data))
    }

    fn put(&self, id: Id, data: Bytes) -> Result<(), StoreError> {
        // Atomic but not durable: a block lost or cut short by a crash fails
        // its hash check on the first read after the next start and is
        // fetched again.
        self.write(id, data, How::Fast)
    }

    fn put_durable(&self, id: Id, data: Bytes) -> Result<(), StoreError> {
        self.write(id, data, How::Durable)
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
        self.lock().iter().map(|(id, e)| (*id, e.len)).collect()
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

    /// Rewrites the file of `id` with one byte flipped, and gives it a
    /// modification time of its own: a change within the file system's
    /// timestamp granularity of the store's write could keep the stamp,
    /// which the policy does not claim to catch.
    fn corrupt(s: &DiskStore, id: &Id) {
        let path = s.path(id);
        let mut raw = fs::read(&path).unwrap();
        raw[0] ^= 1;
        fs::write(&path, raw).unwrap();
        let f = fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1))
            .unwrap();
    }

    fn blocks_survive_reopen_and_corruption_is_never_served(name: &str, direct: bool) {
        let root = temp(name);
        let a = Bytes::from_static(b"block a");
        // Longer than one direct I/O alignment unit, and not a multiple of it.
        let b = Bytes::from(vec![7u8; DIRECT_ALIGN + 5]);
        let (ia, ib) = (Id::hash_of(&a), Id::hash_of(&b));
        let both = a.len() as u64 + b.len() as u64;
        {
            let s = DiskStore::open(&root).unwrap();
            s.direct.store(direct, Ordering::Relaxed);
            s.put(ia, a.clone()).unwrap();
            s.put_durable(ib, b.clone()).unwrap();
            s.put(ia, a.clone()).unwrap();
            assert_eq!((s.block_count(), s.byte_count()), (2, both));
            // Written verified by this store: read back without hashing.
            assert_eq!(s.get(&ia).unwrap(), Some(a.clone()));
            assert_eq!(s.get(&ib).unwrap(), Some(b.clone()));
            assert_eq!(s.hashed_reads(), 0);
        }
        // A stray temporary file from a crash is cleaned up at open.
        fs::write(root.join(&ia.to_string()[..2]).join(".x.tmp"), b"junk").unwrap();
        let s = DiskStore::open(&root).unwrap();
        s.direct.store(direct, Ordering::Relaxed);
        assert_eq!((s.block_count(), s.byte_count()), (2, both));
        assert_eq!(s.blocks(), {
            let mut v = vec![(ia, a.len() as u32), (ib, b.len() as u32)];
            v.sort();
            v
        });
        // The first read after a start hashes; the next trusts the file.
        assert_eq!(s.get(&ia).unwrap(), Some(a.clone()));
        assert_eq!(s.get(&ia).unwrap(), Some(a.clone()));
        assert_eq!(s.hashed_reads(), 1);

        // A block corrupted while the store was closed is found on its
        // first read after the start: discarded, not served.
        drop(s);
        let s0 = DiskStore::open(&root).unwrap();
        corrupt(&s0, &ib);
        drop(s0);
        let s = DiskStore::open(&root).unwrap();
        s.direct.store(direct, Ordering::Relaxed);
        let path = s.path(&ib);
        assert_eq!(s.get(&ib).unwrap(), None);
        assert!(!path.exists());
        assert!(!s.contains(&ib));
        assert_eq!(s.byte_count(), a.len() as u64);
        assert_eq!(s.corrupt_blocks(), 1);
        // It can be stored again, and then it is good.
        s.put(ib, b.clone()).unwrap();
        assert_eq!(s.get(&ib).unwrap(), Some(b.clone()));

        // A block changed on disk while the store is open (verified before,
        // by its write and by a read) is hashed again on its next read.
        corrupt(&s, &ib);
        assert_eq!(s.get(&ib).unwrap(), None);
        assert_eq!(s.corrupt_blocks(), 2);
        s.put(ib, b.clone()).unwrap();
        // Cut short: the length differs, so it is hashed, and refused.
        let f = fs::File::options().write(true).open(s.path(&ib)).unwrap();
        f.set_len(10).unwrap();
        assert_eq!(s.get(&ib).unwrap(), None);
        assert_eq!(s.corrupt_blocks(), 3);
        // Replaced by another file: refused too.
        s.put(ia, a.clone()).unwrap();
        fs::remove_file(s.path(&ia)).unwrap();
        fs::write(s.path(&ia), b"block A").unwrap();
        // (A new file may reuse the inode number within the timestamp
        // granularity; its own time makes the test not depend on that.)
        let f = fs::File::options().write(true).open(s.path(&ia)).unwrap();
        f.set_modified(std::time::UNIX_EPOCH).unwrap();
        assert_eq!(s.get(&ia).unwrap(), None);
        assert_eq!(s.corrupt_blocks(), 4);

        s.put(ia, a.clone()).unwrap();
        assert!(s.remove(&ia).unwrap());
        assert!(!s.remove(&ia).unwrap());
        assert_eq!(s.byte_count(), 0);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn blocks_survive_reopen_and_corruption_is_never_served_direct() {
        blocks_survive_reopen_and_corruption_is_never_served("reopen-direct", true);
    }

    #[test]
    fn blocks_survive_reopen_and_corruption_is_never_served_buffered() {
        blocks_survive_reopen_and_corruption_is_never_served("reopen-buffered", false);
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
