//! Publishing content, and reading what this node holds.

use bytes::{Bytes, BytesMut};

use crate::contact::Address;
use crate::content::{
    prepare_file, prepare_site, ContentStore, FileError, Manifest, ManifestError, Prepared,
    SiteError, SiteFile, StoreError,
};
use crate::id::Id;
use crate::time::Time;

use super::{CommandError, Node};

/// Why content could not be published. Nothing was stored or announced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The file cannot be described by a manifest.
    #[error("file: {0}")]
    File(#[from] FileError),
    /// The site is invalid (a bad path, say).
    #[error("site: {0}")]
    Site(#[from] SiteError),
    /// The store refused the blocks.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The node cannot announce more keys.
    #[error("{0}")]
    Command(#[from] CommandError),
}

/// Why held content could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// A block of it is not in the store.
    #[error("block {0:?} is not held")]
    NotHeld(Id),
    /// The id names a site, not a file.
    #[error("{0:?} is not a file")]
    NotAFile(Id),
    /// A stored manifest does not decode.
    #[error("manifest: {0}")]
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
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl<A: Address> Node<A> {
    /// Publishes one file: splits it into `chunk_size` chunks, stores them and
    /// its manifest, and announces its id, which is returned.
    pub fn publish_file(
        &mut self,
        now: Time,
        data: impl Into<Bytes>,
        media_type: &str,
    ) -> Result<Id, PublishError> {
        let prepared = prepare_file(data.into(), media_type, self.config.chunk_size)?;
        self.publish_prepared(now, prepared, Vec::new())
    }

    /// Publishes a site: checks and normalises every path, stores every file
    /// and the site manifest, and announces the site's id (and, with
    /// `announce_site_files`, each file's), which is returned.
    pub fn publish_site(&mut self, now: Time, files: Vec<SiteFile>) -> Result<Id, PublishError> {
        let prepared = prepare_site(files, self.config.chunk_size)?;
        let files = match (&prepared.manifest, self.config.announce_site_files) {
            (Manifest::Site(s), true) => s.entries().iter().map(|e| e.file).collect(),
            _ => Vec::new(),
        };
        self.publish_prepared(now, prepared, files)
    }

    fn publish_prepared(
        &mut self,
        now: Time,
        prepared: Prepared,
        mut also: Vec<Id>,
    ) -> Result<Id, PublishError> {
        also.insert(0, prepared.root);
        also.dedup();
        let new_keys = also.iter().filter(|k| !self.provided.contains(k)).count();
        if self.provided.len() + new_keys > self.config.max_provided_keys {
            return Err(CommandError::TooManyProvided {
                max: self.config.max_provided_keys,
            }
            .into());
        }
        let mut put = Vec::new();
        for (id, data) in &prepared.blocks {
            if self.store.contains(id) {
                continue;
            }
            if let Err(e) = self.store.put(*id, data.clone()) {
                for id in put {
                    let _ = self.store.remove(&id);
                }
                return Err(e.into());
            }
            put.push(*id);
        }
        for (id, _) in &prepared.blocks {
            // Part of complete content now, whatever fetch brought it.
            self.partial.remove(id);
        }
        self.held_roots.insert(prepared.root);
        for (id, _) in &prepared.blocks {
            self.release_held(now, id);
        }
        for key in also {
            self.provide(now, key, false);
        }
        Ok(prepared.root)
    }

    /// Announces `key`, or, with no query slot free, schedules it for the next
    /// maintenance round. The caller has checked `max_provided_keys`.
    pub(super) fn provide(&mut self, now: Time, key: Id, internal: bool) {
        match self.announce(now, key) {
            Ok(q) => {
                if let Some(query) = self.queries.get_mut(&q) {
                    query.internal = internal;
                }
            }
            Err(CommandError::TooManyQueries { .. }) => self.provided.insert(key, now),
            Err(_) => {}
        }
    }

    /// Whether this node holds the content `root` complete (published or fetched).
    pub fn holds(&self, root: &Id) -> bool {
        self.held_roots.contains(root)
    }

    /// Content held complete, in id order.
    pub fn held_content(&self) -> impl Iterator<Item = &Id> + '_ {
        self.held_roots.iter()
    }

    /// The block store.
    pub fn content_store(&self) -> &dyn ContentStore {
        self.store.as_ref()
    }

    /// One stored block (a chunk or a manifest), if held.
    pub fn read_block(&self, id: &Id) -> Result<Option<Bytes>, StoreError> {
        self.store.get(id)
    }

    /// The stored manifest `id`, decoded.
    pub fn read_manifest(&self, id: &Id) -> Result<Manifest, ReadError> {
        let block = self.store.get(id)?.ok_or(ReadError::NotHeld(*id))?;
        Ok(Manifest::decode(&block)?)
    }

    /// The whole stored file `id`, assembled from its chunks (without a copy
    /// when it has one chunk).
    pub fn read_file(&self, id: &Id) -> Result<Bytes, ReadError> {
        let Manifest::File(m) = self.read_manifest(id)? else {
            return Err(ReadError::NotAFile(*id));
        };
        let mut parts = Vec::with_capacity(m.chunks().len());
        for (index, c) in m.chunks().iter().enumerate() {
            let data = self.store.get(c)?.ok_or(ReadError::NotHeld(*c))?;
            if Some(data.len()) != m.chunk_len(index) {
                return Err(ReadError::ChunkLength { file: *id, index });
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
}
