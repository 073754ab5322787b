//! The node's directory on disk: its key and the peers it knew, written
//! atomically so a crash leaves either the old file or the new one, never half.
//!
//! Layout: `key` (the Ed25519 secret key seed, 64 hex characters, mode 0600;
//! the node id is derived from it), `peers` (one `id addr` per line), and the
//! content store's own subdirectory. An `identity` file (a bare node id, from
//! before ids were bound to keys) is read only to migrate it, then removed.

use std::fs;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use distroweb_protocol::{Contact, Id};

use crate::node_key::{KeySeed, SEED_BYTES};

/// Most peers remembered across restarts.
pub const MAX_REMEMBERED_PEERS: usize = 1024;

/// Why the data directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// A file or directory could not be read, written or created.
    #[error("{}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Another running node uses the directory.
    #[error("{path} is held by another running distroweb node ({holder}); stop it, or use another --data-dir")]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as far as the file says ("pid N").
        holder: String,
    },
    /// The key file holds something other than a key seed.
    #[error("{path} does not hold a node key; move it away to start with a new identity")]
    BadKey {
        /// The file.
        path: PathBuf,
    },
    /// The identity file holds something other than a node id.
    #[error(
        "{path} does not hold a node id ({reason}); move it away to start with a new identity"
    )]
    BadIdentity {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A node's data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Opens (creating if needed) the directory at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, DataDirError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|source| DataDirError::Io {
            path: root.clone(),
            source,
        })?;
        Ok(DataDir { root })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Claims the directory for this process until the returned guard drops, so
    /// that two nodes never share one store.
    ///
    /// The claim is an exclusive `flock` on the open file `lock`: the kernel drops
    /// it when the process ends, however it ends, so a crash leaves nothing stale,
    /// and a zombie or a reused pid cannot hold it. The pid written inside only
    /// names the holder in the error.
    pub fn lock(&self) -> Result<DirLock, DataDirError> {
        let path = self.root.join("lock");
        let io = |source| DataDirError::Io {
            path: path.clone(),
            source,
        };
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.trim().parse::<u32>().ok())
                    .map_or_else(|| "pid unknown".to_string(), |pid| format!("pid {pid}"));
                return Err(DataDirError::Locked { path, holder });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DirLock { _file: file })
    }

    /// The node id saved by an earlier run, if any.
    pub fn load_identity(&self) -> Result<Option<Id>, DataDirError> {
        let Some((path, text)) = self.read_optional("identity")? else {
            return Ok(None);
        };
        text.trim()
            .parse()
            .map(Some)
            .map_err(
                |e: distroweb_protocol::ParseIdError| DataDirError::BadIdentity {
                    path,
                    reason: e.to_string(),
                },
            )
    }

    /// Saves the node id for later runs (the layout before keys; tests of the migration use it).
    pub fn save_identity(&self, id: Id) -> Result<(), DataDirError> {
        self.write_file("identity", format!("{id}\n").as_bytes())
    }

    /// Removes the pre-key `identity` file once its id has been replaced.
    pub fn remove_identity(&self) -> Result<(), DataDirError> {
        let path = self.root.join("identity");
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(DataDirError::Io { path, source: e })
            }
            _ => Ok(()),
        }
    }

    /// The key seed saved by an earlier run, if any.
    pub fn load_key(&self) -> Result<Option<KeySeed>, DataDirError> {
        let Some((path, text)) = self.read_optional("key")? else {
            return Ok(None);
        };
        parse_seed(text.trim())
            .map(Some)
            .ok_or(DataDirError::BadKey { path })
    }

    /// Saves the key seed, readable by the owner only.
    pub fn save_key(&self, seed: &KeySeed) -> Result<(), DataDirError> {
        let path = self.root.join("key");
        let mut text = String::with_capacity(2 * SEED_BYTES + 1);
        for b in seed.0 {
            text.push_str(&format!("{b:02x}"));
        }
        text.push('\n');
        write_secret(&path, text.as_bytes()).map_err(|source| DataDirError::Io { path, source })
    }

    /// The peers saved by an earlier run; unreadable lines are skipped.
    pub fn load_peers(&self) -> Vec<Contact<SocketAddr>> {
        let path = self.root.join("peers");
        let Ok(text) = fs::read_to_string(&path) else {
            return Vec::new();
        };
        let mut peers = Vec::new();
        for line in text.lines().take(MAX_REMEMBERED_PEERS) {
            let parsed = line.split_once(' ').and_then(|(id, addr)| {
                Some(Contact::new(id.parse().ok()?, addr.trim().parse().ok()?))
            });
            match parsed {
                Some(contact) => peers.push(contact),
                None => {
                    tracing::warn!(path = %path.display(), "skipping unreadable peer line {line:?}")
                }
            }
        }
        peers
    }

    /// Saves up to [`MAX_REMEMBERED_PEERS`] peers for the next run.
    pub fn save_peers(&self, peers: &[Contact<SocketAddr>]) -> Result<(), DataDirError> {
        let mut text = String::with_capacity(peers.len() * 90);
        for p in peers.iter().take(MAX_REMEMBERED_PEERS) {
            text.push_str(&format!("{} {}\n", p.id, p.addr));
        }
        self.write_file("peers", text.as_bytes())
    }

    /// The file `name` and its text, or `None` if it does not exist.
    fn read_optional(&self, name: &str) -> Result<Option<(PathBuf, String)>, DataDirError> {
        let path = self.root.join(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some((path, text))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(DataDirError::Io { path, source }),
        }
    }

    /// The lines of the file `name`, or none if it cannot be read.
    pub fn read_lines(&self, name: &str) -> Vec<String> {
        fs::read_to_string(self.root.join(name))
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Replaces the file `name` atomically.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), DataDirError> {
        let path = self.root.join(name);
        write_atomic(&path, bytes).map_err(|source| DataDirError::Io { path, source })
    }
}

/// Holds a data directory's lock: the open, `flock`ed lock file; closing it
/// (dropping this) releases the lock. The file stays: removing it would let a
/// second node lock a new file while a third still waits on the old one.
#[derive(Debug)]
pub struct DirLock {
    _file: fs::File,
}

/// Writes `bytes` to `path` so that readers (and a crash) see the old content or
/// the new, never a mix: write a temporary file beside it, fsync it, rename it
/// over `path`, then fsync the directory so the rename itself is durable.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(
        path,
        bytes,
        fs::OpenOptions::new().write(true).create_new(true),
    )
}

/// Like [`write_atomic`], for a secret: the file is created readable and
/// writable by its owner only (0600), so the secret is never readable by others,
/// not even for a moment before a `chmod`.
pub fn write_secret(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    write_atomic_with(path, bytes, &options)
}

fn write_atomic_with(path: &Path, bytes: &[u8], options: &fs::OpenOptions) -> io::Result<()> {
    write_with(path, bytes, options, true)
}

fn write_with(
    path: &Path,
    bytes: &[u8],
    options: &fs::OpenOptions,
    durable: bool,
) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    // The process id and a counter keep concurrent writers off each other's temp files.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    // A temp file left by a crashed process with our pid would make `create_new` fail.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        // Directory fsync is what makes the rename durable on Linux; other
        // platforms may refuse to open a directory, which is harmless there.
        if durable {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A seed from its 64 hex characters.
fn parse_seed(text: &str) -> Option<KeySeed> {
    if text.len() != 2 * SEED_BYTES || !text.is_ascii() {
        return None;
    }
    let mut seed = [0u8; SEED_BYTES];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(KeySeed(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("distroweb-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn identity_and_peers_survive_a_reopen() {
        let root = temp_dir("data-dir");
        let dir = DataDir::open(&root).unwrap();
        assert_eq!(dir.load_identity().unwrap(), None);
        assert!(dir.load_peers().is_empty());
        let id = Id::hash_of(b"me");
        let peers = vec![
            Contact::new(Id::hash_of(b"a"), "127.0.0.1:4100".parse().unwrap()),
            Contact::new(Id::hash_of(b"b"), "[::1]:4101".parse().unwrap()),
        ];
        dir.save_identity(id).unwrap();
        dir.save_peers(&peers).unwrap();

        let again = DataDir::open(&root).unwrap();
        assert_eq!(again.load_identity().unwrap(), Some(id));
        assert_eq!(again.load_peers(), peers);
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");

        fs::write(root.join("identity"), "not an id").unwrap();
        assert!(matches!(
            again.load_identity(),
            Err(DataDirError::BadIdentity { .. })
        ));
        fs::write(root.join("peers"), "garbage\nmore garbage here\n").unwrap();
        assert!(again.load_peers().is_empty());

        let lock = dir.lock().unwrap();
        let refused = again.lock().unwrap_err();
        assert!(
            matches!(&refused, DataDirError::Locked { holder, .. } if *holder == format!("pid {}", std::process::id())),
            "{refused}"
        );
        drop(lock);
        drop(again.lock().unwrap());
        // A lock file left by a process that is gone (or whose pid now names
        // another process) holds no flock, so it is simply taken.
        fs::write(root.join("lock"), "1\n").unwrap();
        let taken = again.lock().unwrap();
        assert_eq!(
            fs::read_to_string(root.join("lock")).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(taken);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_key_is_private_and_survives_a_reopen() {
        let root = temp_dir("data-dir-key");
        let dir = DataDir::open(&root).unwrap();
        assert_eq!(dir.load_key().unwrap(), None);
        let seed = KeySeed([0xa5; SEED_BYTES]);
        dir.save_key(&seed).unwrap();
        assert_eq!(
            DataDir::open(&root).unwrap().load_key().unwrap(),
            Some(seed)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(root.join("key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::write(root.join("key"), "zz").unwrap();
        assert!(matches!(dir.load_key(), Err(DataDirError::BadKey { .. })));
        fs::remove_dir_all(&root).unwrap();
    }
}
