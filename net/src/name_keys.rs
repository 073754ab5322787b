//! Name keys: the Ed25519 secrets that sign a name's records, kept in the
//! node's data directory so that this machine can point a name at a new root.
//!
//! Layout, under `<data dir>/names/` (mode 0700):
//! - `<name>.key`: the secret key seed as one line of text,
//!   `distroweb-name-key-v1 <64 hex>` (mode 0600), the very text
//!   [`NameKeys::export`] gives and [`NameKeys::import`] takes, so a file and
//!   an export can be checked against each other by eye;
//! - `<name>.seq`: the last sequence number signed under the name on this
//!   machine, in decimal.
//!
//! A key is made on first use from OS randomness and never changes unless an
//! import replaces it on purpose. Creating one is exclusive: two processes that
//! both find no key agree on one of theirs, so neither signs with a key that is
//! then lost.

use core::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use distroweb_protocol::names::{NameKey, NameRecord};
use distroweb_protocol::Id;
use ed25519_dalek::SigningKey;

use crate::data_dir::{write_atomic, write_secret};

/// The subdirectory of the data directory that holds name keys.
pub const NAMES_DIR: &str = "names";
/// Longest name, in characters.
pub const MAX_NAME_LEN: usize = 64;
/// First word of a key's text: the format and its version.
pub const KEY_TEXT_TAG: &str = "distroweb-name-key-v1";
/// Bytes in a name key's secret seed.
const SEED_BYTES: usize = 32;
/// Most bytes read from a key or sequence file: far more than either holds, so
/// a wrong file at that path cannot make us read gigabytes.
const MAX_FILE_BYTES: u64 = 4096;

/// Why a name key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NameKeyError {
    /// The name has characters or a length a key name may not have.
    #[error("{0:?} is not a key name: use 1 to {MAX_NAME_LEN} of a-z, 0-9, '_' and '-'")]
    BadName(String),
    /// There is no key of this name to export.
    #[error("no key named {0:?} in this data directory")]
    Missing(String),
    /// An import would replace a different key of this name.
    #[error("a different key is already stored as {0:?}; replacing it loses that one unless it was exported")]
    Exists(String),
    /// The text given to import is not a key.
    #[error("not a distroweb name key")]
    BadText(#[source] KeyTextError),
    /// A key file holds something other than a key.
    #[error("{} does not hold a name key; move it away to make a new one", path.display())]
    BadKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with its text.
        #[source]
        why: KeyTextError,
    },
    /// A sequence file holds something other than a number.
    #[error("{} does not hold a sequence number", path.display())]
    BadSeqFile {
        /// The file.
        path: PathBuf,
    },
    /// A root file holds something other than a content id.
    #[error("{} does not hold a content id", path.display())]
    BadRootFile {
        /// The file.
        path: PathBuf,
    },
    /// A file or directory could not be read, written or created.
    #[error("{}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The OS would not provide randomness for a new key.
    #[error("no OS randomness for a new name key")]
    Entropy(#[source] getrandom::Error),
}

/// What is wrong with a key's text. The text itself is never repeated: it may
/// be a secret with one typo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyTextError {
    /// The bytes are not UTF-8 text.
    #[error("it is not text")]
    NotText,
    /// The first word is not the format's tag.
    #[error("it does not start with {KEY_TEXT_TAG:?}")]
    NoTag,
    /// The tag names another version of the format.
    #[error("it is another version of the format than {KEY_TEXT_TAG:?}, the one this build reads")]
    Version,
    /// The seed is not 64 characters long.
    #[error("the seed is {0} characters, not {len}", len = 2 * SEED_BYTES)]
    Length(usize),
    /// The seed has a character that is not a hex digit.
    #[error("the seed is not hexadecimal")]
    NotHex,
    /// More text follows the seed.
    #[error("more text follows the seed")]
    Trailing,
    /// A file far longer than a key.
    #[error("it is longer than {MAX_FILE_BYTES} bytes")]
    TooLong,
}

/// What an import does when the name already holds a different key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnExisting {
    /// Refuse ([`NameKeyError::Exists`]): the stored key would be lost.
    Refuse,
    /// Replace it: the stored key is lost unless it was exported.
    Replace,
}

/// A name's Ed25519 secret key seed; its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct NameSecret([u8; SEED_BYTES]);

impl fmt::Debug for NameSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NameSecret(..)")
    }
}

impl NameSecret {
    /// The name this secret signs for: its public key.
    pub fn public(&self) -> NameKey {
        NameKey(SigningKey::from_bytes(&self.0).verifying_key().to_bytes())
    }

    /// A record pointing the name at `root` with sequence `seq`, void after
    /// `expires_unix` (Unix seconds).
    pub fn sign(&self, root: Id, seq: u64, expires_unix: u64) -> NameRecord {
        NameRecord::sign(&self.0, root, seq, expires_unix)
    }

    /// The key's text: `distroweb-name-key-v1 <64 hex>` and a newline.
    fn to_text(&self) -> String {
        let mut text = String::with_capacity(KEY_TEXT_TAG.len() + 2 + 2 * SEED_BYTES);
        text.push_str(KEY_TEXT_TAG);
        text.push(' ');
        for b in self.0 {
            text.push_str(&format!("{b:02x}"));
        }
        text.push('\n');
        text
    }

    /// Parses a key's text; whitespace around it (a newline, a CRLF, a pasted
    /// indent) is ignored, and hex digits may be of either case.
    fn from_text(text: &str) -> Result<Self, KeyTextError> {
        let text = text.trim();
        let (tag, rest) = text
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((text, ""));
        if tag != KEY_TEXT_TAG {
            return Err(if tag.starts_with("distroweb-name-key-") {
                KeyTextError::Version
            } else {
                KeyTextError::NoTag
            });
        }
        let seed = rest.trim_start();
        if seed.contains(|c: char| c.is_whitespace()) {
            return Err(KeyTextError::Trailing);
        }
        let len = seed.chars().count();
        if len != 2 * SEED_BYTES {
            return Err(KeyTextError::Length(len));
        }
        if !seed.is_ascii() {
            return Err(KeyTextError::NotHex);
        }
        // Bytes, not char indices: nothing can split a character (and there is
        // none past ASCII by now).
        let mut out = [0u8; SEED_BYTES];
        for (slot, pair) in out.iter_mut().zip(seed.as_bytes().chunks_exact(2)) {
            let (Some(hi), Some(lo)) = (hex_value(pair[0]), hex_value(pair[1])) else {
                return Err(KeyTextError::NotHex);
            };
            *slot = hi << 4 | lo;
        }
        Ok(NameSecret(out))
    }
}

/// The name keys in one data directory.
#[derive(Clone, Debug)]
pub struct NameKeys {
    /// `<data dir>/names`, created on the first write.
    dir: PathBuf,
}

impl NameKeys {
    /// The name keys of the data directory `data_dir`; nothing is read or
    /// created until a key is used.
    pub fn new(data_dir: &Path) -> Self {
        NameKeys {
            dir: data_dir.join(NAMES_DIR),
        }
    }

    /// The directory the keys are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key stored as `name`, if there is one.
    pub fn load(&self, name: &str) -> Result<Option<NameSecret>, NameKeyError> {
        check_name(name)?;
        let path = self.key_path(name);
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        let parsed = match core::str::from_utf8(&bytes) {
            _ if bytes.len() as u64 > MAX_FILE_BYTES => Err(KeyTextError::TooLong),
            Ok(text) => NameSecret::from_text(text),
            Err(_) => Err(KeyTextError::NotText),
        };
        parsed
            .map(Some)
            .map_err(|why| NameKeyError::BadKeyFile { path, why })
    }

    /// The key stored as `name`, made from OS randomness and stored first if
    /// there is none. A key file that cannot be read is an error, never
    /// silently replaced: it may be the only copy of a name's key.
    pub fn load_or_create(&self, name: &str) -> Result<NameSecret, NameKeyError> {
        if let Some(secret) = self.load(name)? {
            return Ok(secret);
        }
        let mut seed = [0u8; SEED_BYTES];
        getrandom::fill(&mut seed).map_err(NameKeyError::Entropy)?;
        let fresh = NameSecret(seed);
        match self.create(name, &fresh)? {
            Created::Ours => Ok(fresh),
            Created::Theirs(theirs) => Ok(theirs),
        }
    }

    /// The last sequence number signed under `name` on this machine; 0 if none.
    pub fn last_seq(&self, name: &str) -> Result<u64, NameKeyError> {
        check_name(name)?;
        let path = self.seq_path(name);
        let Some(bytes) = read_optional(&path)? else {
            return Ok(0);
        };
        core::str::from_utf8(&bytes)
            .ok()
            .filter(|_| bytes.len() as u64 <= MAX_FILE_BYTES)
            .and_then(|text| text.trim().parse().ok())
            .ok_or(NameKeyError::BadSeqFile { path })
    }

    /// Records `seq` as the last sequence number signed under `name`. Save it
    /// before the signed record leaves the machine: after a crash, the next
    /// publish then never signs another root under the same number.
    pub fn save_seq(&self, name: &str, seq: u64) -> Result<(), NameKeyError> {
        check_name(name)?;
        self.ensure_dir()?;
        let path = self.seq_path(name);
        write_atomic(&path, format!("{seq}\n").as_bytes())
            .map_err(|source| NameKeyError::Io { path, source })
    }

    /// The root `name` was last pointed at from this machine, if any: what
    /// the node re-signs and republishes after a restart and before a record
    /// expires.
    pub fn last_root(&self, name: &str) -> Result<Option<Id>, NameKeyError> {
        check_name(name)?;
        let path = self.root_path(name);
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        core::str::from_utf8(&bytes)
            .ok()
            .filter(|_| bytes.len() as u64 <= MAX_FILE_BYTES)
            .and_then(|text| text.trim().parse().ok())
            .map(Some)
            .ok_or(NameKeyError::BadRootFile { path })
    }

    /// Records `root` as what `name` points at now (see [`NameKeys::last_root`]).
    pub fn save_root(&self, name: &str, root: &Id) -> Result<(), NameKeyError> {
        check_name(name)?;
        self.ensure_dir()?;
        let path = self.root_path(name);
        write_atomic(&path, format!("{root}\n").as_bytes())
            .map_err(|source| NameKeyError::Io { path, source })
    }

    /// The names with a key here, in name order, at most `max`; files that
    /// are not keys are skipped.
    pub fn list(&self, max: usize) -> Result<Vec<String>, NameKeyError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(NameKeyError::Io {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let file = e.file_name();
                let name = file.to_str()?.strip_suffix(".key")?;
                check_name(name).ok().map(|()| name.to_owned())
            })
            .collect();
        names.sort();
        names.truncate(max);
        Ok(names)
    }

    /// The text of the key stored as `name`, for [`NameKeys::import`] on
    /// another machine. It is the secret itself: whoever holds it can change
    /// the site at the name.
    pub fn export(&self, name: &str) -> Result<String, NameKeyError> {
        match self.load(name)? {
            Some(secret) => Ok(secret.to_text()),
            None => Err(NameKeyError::Missing(name.to_string())),
        }
    }

    /// Stores the key in `text` (as [`NameKeys::export`] gives it) as `name`
    /// and returns its public key. Importing the key already stored is a no-op;
    /// a different one is refused or replaces it, as `on_existing` says.
    ///
    /// The name's sequence file is kept even when the key is replaced: a
    /// sequence need only grow, so starting above the old key's is harmless.
    pub fn import(
        &self,
        name: &str,
        text: &str,
        on_existing: OnExisting,
    ) -> Result<NameKey, NameKeyError> {
        check_name(name)?;
        let secret = NameSecret::from_text(text).map_err(NameKeyError::BadText)?;
        match on_existing {
            OnExisting::Replace => {
                self.ensure_dir()?;
                let path = self.key_path(name);
                write_secret(&path, secret.to_text().as_bytes())
                    .map_err(|source| NameKeyError::Io { path, source })?;
            }
            OnExisting::Refuse => {
                let stored = match self.load(name)? {
                    Some(stored) => stored,
                    None => match self.create(name, &secret)? {
                        Created::Ours => secret.clone(),
                        Created::Theirs(theirs) => theirs,
                    },
                };
                if stored != secret {
                    return Err(NameKeyError::Exists(name.to_string()));
                }
            }
        }
        Ok(secret.public())
    }

    /// Stores `secret` as `name` unless a key is already there, atomically:
    /// the key is written whole under a temporary name, then hard-linked to
    /// its own name, which fails if that exists. A rename would replace a key
    /// another process stored a moment before.
    fn create(&self, name: &str, secret: &NameSecret) -> Result<Created, NameKeyError> {
        self.ensure_dir()?;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!(".{name}.key.new.{}.{n}", std::process::id()));
        write_secret(&tmp, secret.to_text().as_bytes()).map_err(|source| NameKeyError::Io {
            path: tmp.clone(),
            source,
        })?;
        let path = self.key_path(name);
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        sync_dir(&self.dir);
        match linked {
            Ok(()) => Ok(Created::Ours),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match self.load(name)? {
                Some(theirs) => Ok(Created::Theirs(theirs)),
                // Removed again in between: rare enough to report, not retry.
                None => Err(NameKeyError::Io { path, source: e }),
            },
            Err(source) => Err(NameKeyError::Io { path, source }),
        }
    }

    /// Creates the keys' directory, readable by its owner only: the names a
    /// machine holds keys for are its own business.
    fn ensure_dir(&self) -> Result<(), NameKeyError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&self.dir)
            .map_err(|source| NameKeyError::Io {
                path: self.dir.clone(),
                source,
            })
    }

    fn key_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }

    fn seq_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.seq"))
    }

    fn root_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.root"))
    }
}

/// Whether `name` may name a key: 1 to [`MAX_NAME_LEN`] of `a`–`z`, `0`–`9`,
/// `_` and `-`. The set keeps names safe as file names (no `/`, no `.`) and
/// the same on every file system (no case).
pub fn check_name(name: &str) -> Result<(), NameKeyError> {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-';
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.bytes().all(allowed) {
        return Err(NameKeyError::BadName(name.to_string()));
    }
    Ok(())
}

/// Who stored the key [`NameKeys::create`] looked at.
enum Created {
    /// This call did.
    Ours,
    /// Someone else did first; this is their key.
    Theirs(NameSecret),
}

/// The first [`MAX_FILE_BYTES`] (and one more) of the file at `path`, or
/// `None` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, NameKeyError> {
    let io_error = |source| NameKeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(e)),
    };
    let mut bytes = Vec::new();
    // One byte past the limit is read so that an oversized file fails to
    // parse rather than parsing its beginning.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    Ok(Some(bytes))
}

/// Makes renames, links and removals in `dir` durable (Linux); other platforms
/// may refuse to open a directory, which is harmless there.
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distroweb_protocol::names::NameRecord;
    use proptest::prelude::*;

    const NOW: u64 = 1_800_000_000;

    fn text_of(byte: u8) -> String {
        format!("{KEY_TEXT_TAG} {}\n", format!("{byte:02x}").repeat(32))
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_key_is_made_once_kept_private_and_signs_for_its_name() {
        let data = tempfile::tempdir().unwrap();
        let keys = NameKeys::new(data.path());
        assert_eq!(keys.load("blog").unwrap(), None);
        assert!(!keys.dir().exists(), "nothing is created by a read");
        let secret = keys.load_or_create("blog").unwrap();
        assert_eq!(format!("{secret:?}"), "NameSecret(..)");
        let again = NameKeys::new(data.path());
        assert_eq!(again.load_or_create("blog").unwrap(), secret);
        assert_eq!(again.load("blog").unwrap(), Some(secret.clone()));
        assert_ne!(again.load_or_create("other").unwrap(), secret);
        #[cfg(unix)]
        {
            assert_eq!(mode(&keys.dir().join("blog.key")), 0o600);
            assert_eq!(mode(keys.dir()), 0o700);
        }
        // Only the two keys remain: no temporary file is left behind.
        let mut names: Vec<_> = fs::read_dir(keys.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["blog.key", "other.key"]);

        let root = Id::hash_of(b"site");
        let record = secret.sign(root, 7, NOW + 3600);
        assert_eq!(record.name, secret.public());
        assert_eq!(
            (record.root, record.seq, record.expires),
            (root, 7, NOW + 3600)
        );
        assert_eq!(record.verify(NOW), Ok(()));
    }

    #[test]
    fn racing_creators_agree_on_one_key() {
        let data = tempfile::tempdir().unwrap();
        let barrier = std::sync::Barrier::new(8);
        let secrets: Vec<NameSecret> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let keys = NameKeys::new(data.path());
                        barrier.wait();
                        keys.load_or_create("blog").unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let stored = NameKeys::new(data.path()).load("blog").unwrap().unwrap();
        assert!(secrets.iter().all(|s| *s == stored));
    }

    #[test]
    fn sequence_numbers_are_kept() {
        let data = tempfile::tempdir().unwrap();
        let keys = NameKeys::new(data.path());
        assert_eq!(keys.last_seq("blog").unwrap(), 0);
        keys.save_seq("blog", 41).unwrap();
        keys.save_seq("blog", u64::MAX).unwrap();
        assert_eq!(
            NameKeys::new(data.path()).last_seq("blog").unwrap(),
            u64::MAX
        );
        assert_eq!(
            fs::read_to_string(keys.dir().join("blog.seq")).unwrap(),
            format!("{}\n", u64::MAX)
        );
        for bad in [&b"-1"[..], b"", b"12x", b"\xff", b"18446744073709551616"] {
            fs::write(keys.dir().join("blog.seq"), bad).unwrap();
            assert!(
                matches!(keys.last_seq("blog"), Err(NameKeyError::BadSeqFile { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn roots_are_kept_and_names_listed() {
        let data = tempfile::tempdir().unwrap();
        let keys = NameKeys::new(data.path());
        assert_eq!(keys.list(10).unwrap(), Vec::<String>::new());
        assert_eq!(keys.last_root("blog").unwrap(), None);
        let root = Id::hash_of(b"site");
        keys.save_root("blog", &root).unwrap();
        assert_eq!(keys.last_root("blog").unwrap(), Some(root));
        for bad in [&b"nope"[..], b"", b"\xff"] {
            fs::write(keys.dir().join("blog.root"), bad).unwrap();
            assert!(matches!(
                keys.last_root("blog"),
                Err(NameKeyError::BadRootFile { .. })
            ));
        }
        for name in ["zine", "blog", "a-b"] {
            keys.load_or_create(name).unwrap();
        }
        fs::write(keys.dir().join("Not A Name.key"), "x").unwrap();
        fs::write(keys.dir().join("notes.txt"), "x").unwrap();
        assert_eq!(keys.list(10).unwrap(), ["a-b", "blog", "zine"]);
        assert_eq!(keys.list(2).unwrap(), ["a-b", "blog"]);
    }

    #[test]
    fn a_key_moves_between_machines_and_never_silently_replaces_another() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (here, there) = (NameKeys::new(a.path()), NameKeys::new(b.path()));
        assert!(matches!(here.export("blog"), Err(NameKeyError::Missing(n)) if n == "blog"));
        let secret = here.load_or_create("blog").unwrap();
        let text = here.export("blog").unwrap();
        assert!(text.starts_with("distroweb-name-key-v1 ") && text.ends_with('\n'));
        assert_eq!(text.len(), KEY_TEXT_TAG.len() + 1 + 64 + 1);
        // The export is the key file's own text.
        assert_eq!(
            fs::read_to_string(here.dir().join("blog.key")).unwrap(),
            text
        );

        assert_eq!(
            there.import("blog", &text, OnExisting::Refuse).unwrap(),
            secret.public()
        );
        assert_eq!(there.load("blog").unwrap(), Some(secret.clone()));
        #[cfg(unix)]
        assert_eq!(mode(&there.dir().join("blog.key")), 0o600);
        // Again: the same key is no change.
        let hex = &text.trim()[KEY_TEXT_TAG.len() + 1..];
        let pasted = format!("  {KEY_TEXT_TAG}\t {}\r\n", hex.to_uppercase());
        assert_eq!(
            there.import("blog", &pasted, OnExisting::Refuse).unwrap(),
            secret.public()
        );

        // Another key under the same name is refused, then replaced on request.
        there.save_seq("blog", 9).unwrap();
        let other = text_of(0x42);
        assert!(matches!(
            there.import("blog", &other, OnExisting::Refuse),
            Err(NameKeyError::Exists(n)) if n == "blog"
        ));
        assert_eq!(there.load("blog").unwrap(), Some(secret.clone()));
        let replaced = there.import("blog", &other, OnExisting::Replace).unwrap();
        assert_ne!(replaced, secret.public());
        assert_eq!(there.load("blog").unwrap().unwrap().public(), replaced);
        assert_eq!(there.last_seq("blog").unwrap(), 9);
        #[cfg(unix)]
        assert_eq!(mode(&there.dir().join("blog.key")), 0o600);
    }

    #[test]
    fn malformed_text_is_refused_with_its_reason() {
        let data = tempfile::tempdir().unwrap();
        let keys = NameKeys::new(data.path());
        let hex = "ab".repeat(32);
        let cases = [
            (String::new(), KeyTextError::NoTag),
            (hex.clone(), KeyTextError::NoTag),
            (
                format!("distroweb-name-key-v2 {hex}"),
                KeyTextError::Version,
            ),
            (KEY_TEXT_TAG.to_string(), KeyTextError::Length(0)),
            (
                format!("{KEY_TEXT_TAG} {}", &hex[1..]),
                KeyTextError::Length(63),
            ),
            (format!("{KEY_TEXT_TAG} {hex}0"), KeyTextError::Length(65)),
            (
                format!("{KEY_TEXT_TAG} {}zz", &hex[2..]),
                KeyTextError::NotHex,
            ),
            (
                format!("{KEY_TEXT_TAG} {}é", &hex[2..]),
                KeyTextError::Length(63),
            ),
            (
                format!("{KEY_TEXT_TAG} {}éa", &hex[2..]),
                KeyTextError::NotHex,
            ),
            (
                format!("{KEY_TEXT_TAG} {hex} extra"),
                KeyTextError::Trailing,
            ),
            (
                format!("{KEY_TEXT_TAG} {hex}\n{KEY_TEXT_TAG} {hex}"),
                KeyTextError::Trailing,
            ),
        ];
        for (text, why) in cases {
            match keys.import("blog", &text, OnExisting::Replace) {
                Err(NameKeyError::BadText(got)) => assert_eq!(got, why, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(!keys.dir().exists(), "a refused import writes nothing");
        // The message says what is wrong without repeating the secret.
        let e = keys.import(
            "blog",
            &format!("{KEY_TEXT_TAG} {hex}x"),
            OnExisting::Refuse,
        );
        let e = e.unwrap_err();
        assert_eq!(e.to_string(), "not a distroweb name key");
        let cause = std::error::Error::source(&e).unwrap().to_string();
        assert_eq!(cause, "the seed is 65 characters, not 64");
    }

    #[test]
    fn a_bad_key_file_is_reported_never_replaced() {
        let data = tempfile::tempdir().unwrap();
        let keys = NameKeys::new(data.path());
        keys.load_or_create("blog").unwrap();
        let path = keys.dir().join("blog.key");
        for (bytes, why) in [
            (&b"\xff\xfe"[..], KeyTextError::NotText),
            (b"zz", KeyTextError::NoTag),
        ] {
            fs::write(&path, bytes).unwrap();
            for result in [
                keys.load("blog").map(|_| ()),
                keys.load_or_create("blog").map(|_| ()),
            ] {
                assert!(
                    matches!(&result, Err(NameKeyError::BadKeyFile { why: w, .. }) if *w == why),
                    "{result:?}"
                );
            }
            assert_eq!(fs::read(&path).unwrap(), bytes);
        }
        // An oversized file does not parse from its beginning.
        let mut big = text_of(1).into_bytes();
        big.resize(MAX_FILE_BYTES as usize + 10, b' ');
        fs::write(&path, &big).unwrap();
        assert!(matches!(
            keys.load("blog"),
            Err(NameKeyError::BadKeyFile {
                why: KeyTextError::TooLong,
                ..
            })
        ));
    }

    #[test]
    fn names_are_checked() {
        let data = tempfile::tempdir().unwrap();
        let keys = NameKeys::new(data.path());
        for good in ["a", "blog", "my_site-2", &"x".repeat(MAX_NAME_LEN)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            &"x".repeat(MAX_NAME_LEN + 1),
            "Blog",
            "a/b",
            "..",
            ".hidden",
            "a.key",
            "a b",
            "é",
            "a\0",
        ] {
            assert!(
                matches!(check_name(bad), Err(NameKeyError::BadName(_))),
                "{bad:?}"
            );
            assert!(matches!(
                keys.load_or_create(bad),
                Err(NameKeyError::BadName(_))
            ));
            assert!(matches!(
                keys.save_seq(bad, 1),
                Err(NameKeyError::BadName(_))
            ));
            assert!(matches!(
                keys.import(bad, &text_of(1), OnExisting::Replace),
                Err(NameKeyError::BadName(_))
            ));
        }
        assert!(!keys.dir().exists());
    }

    #[test]
    fn a_known_seed_gives_the_protocols_key() {
        let data = tempfile::tempdir().unwrap();
        let keys = NameKeys::new(data.path());
        let public = keys.import("n", &text_of(7), OnExisting::Refuse).unwrap();
        // The protocol's own signer derives the same name from the same seed.
        assert_eq!(public, NameRecord::sign(&[7; 32], Id::ZERO, 1, NOW).name);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any text at all: refused with a reason or taken, never a panic, and
        /// whatever is taken is the key the text spells.
        #[test]
        fn any_text_is_parsed_or_refused(text in any::<String>()) {
            if let Ok(secret) = NameSecret::from_text(&text) {
                prop_assert_eq!(NameSecret::from_text(&secret.to_text()), Ok(secret.clone()));
                prop_assert!(text.trim().to_ascii_lowercase().ends_with(&secret.to_text().trim()[KEY_TEXT_TAG.len() + 1..]));
            }
        }

        /// Near misses of a valid text: one byte changed, cut or inserted.
        #[test]
        fn near_misses_are_parsed_or_refused(
            seed in any::<[u8; 32]>(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            edit in 0..3u8,
        ) {
            let mut bytes = NameSecret(seed).to_text().into_bytes();
            let i = at.index(bytes.len());
            match edit {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
            let data = tempfile::tempdir().unwrap();
            let keys = NameKeys::new(data.path());
            let text = String::from_utf8_lossy(&bytes);
            let imported = keys.import("k", &text, OnExisting::Refuse);
            // The same bytes as a key file on disk.
            fs::create_dir_all(keys.dir()).unwrap();
            fs::write(keys.dir().join("f.key"), &bytes).unwrap();
            let loaded = keys.load("f");
            if let Ok(public) = imported {
                prop_assert_eq!(keys.load("k").unwrap().map(|s| s.public()), Some(public));
            }
            let loaded_ok = matches!(loaded, Ok(Some(_)) | Err(NameKeyError::BadKeyFile { .. }));
            prop_assert!(loaded_ok, "{:?}", loaded);
        }
    }
}
