//! Publishing content: its blocks are written through the driver, then it is
//! held and announced. Also adopting content whose blocks a store holds already.

use bytes::Bytes;

use crate::contact::Address;
use crate::content::{
    prepare_file, prepare_site, FileError, Manifest, Prepared, ReadError, SiteError, SiteFile,
    StoreError,
};
use crate::event::Event;
use crate::id::Id;
use crate::time::Time;

use super::{CommandError, Node};

/// Why content could not be published. Nothing was stored or announced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The file cannot be described by a manifest.
    #[error("file cannot be published")]
    File(#[from] FileError),
    /// The site is invalid (a bad path, say).
    #[error("site cannot be published")]
    Site(#[from] SiteError),
    /// The store has no room for the blocks.
    #[error("the store has no room for it")]
    Store(#[from] StoreError),
    /// The node cannot take the publication now.
    #[error("the node refused it")]
    Command(#[from] CommandError),
}

/// A publication waiting for its blocks to be written.
#[derive(Debug)]
pub(super) struct Publishing {
    /// Every block of the content, in id order.
    blocks: Vec<Id>,
    /// Writes still unconfirmed.
    pending: usize,
    /// Blocks this publication had written, dropped again if it fails.
    fresh: Vec<Id>,
    /// Keys to announce once stored: the root, and with `announce_site_files` each file.
    keys: Vec<Id>,
}

impl<A: Address> Node<A> {
    /// Publishes one file: splits it into `chunk_size` chunks, has them and its
    /// manifest stored, and announces its id (returned at once) when they are.
    /// `Event::Published` says when.
    pub fn publish_file(
        &mut self,
        now: Time,
        data: impl Into<Bytes>,
        media_type: &str,
    ) -> Result<Id, PublishError> {
        let prepared = prepare_file(data.into(), media_type, self.config.transfer.chunk_size)?;
        self.publish(now, prepared)
    }

    /// Publishes a site: checks and normalises every path, has every file and
    /// the site manifest stored, and announces the site's id (and, with
    /// `announce_site_files`, each file's). Like [`Node::publish_file`].
    pub fn publish_site(&mut self, now: Time, files: Vec<SiteFile>) -> Result<Id, PublishError> {
        let prepared = prepare_site(files, self.config.transfer.chunk_size)?;
        self.publish(now, prepared)
    }

    /// Publishes content prepared elsewhere ([`crate::content::prepare_file`],
    /// [`crate::content::prepare_site`] with this node's `chunk_size`): the live
    /// node hashes off its node task and hands over the result. The id is
    /// returned at once; `Event::Published` follows once every block is stored.
    pub fn publish(&mut self, now: Time, prepared: Prepared) -> Result<Id, PublishError> {
        let now = self.tick(now);
        let root = prepared.root;
        if self.publishes.contains_key(&root) {
            return Ok(root);
        }
        if self.publishes.len() >= self.config.limits.max_publishes.get() {
            return Err(CommandError::TooManyPublishes {
                max: self.config.limits.max_publishes.get(),
            }
            .into());
        }
        let mut keys = vec![root];
        if let (Manifest::Site(s), true) =
            (&prepared.manifest, self.config.records.announce_site_files)
        {
            keys.extend(s.entries().iter().map(|e| e.file));
        }
        keys.dedup();
        let new_keys = keys.iter().filter(|k| !self.provided.contains(k)).count();
        if self.provided.len() + new_keys > self.config.records.max_provided_keys.get() {
            return Err(CommandError::TooManyProvided {
                max: self.config.records.max_provided_keys.get(),
            }
            .into());
        }
        let new: Vec<&(Id, Bytes)> = prepared
            .blocks
            .iter()
            .filter(|(id, _)| !self.storage.contains(id) && !self.storage.writes.contains_key(id))
            .collect();
        self.storage.room_for(
            new.iter().map(|(_, d)| d.len() as u64).sum(),
            new.len(),
            self.config.transfer.store_capacity_bytes.get(),
            self.config.transfer.store_max_blocks.get(),
        )?;
        let mut blocks: Vec<Id> = prepared.blocks.iter().map(|(id, _)| *id).collect();
        blocks.sort_unstable();
        blocks.dedup();
        let mut pending = 0;
        let mut fresh = Vec::new();
        for (id, data) in prepared.blocks {
            if self.storage.contains(&id) {
                continue;
            }
            let w = match self.storage.writes.get_mut(&id) {
                Some(w) => w,
                None => {
                    fresh.push(id);
                    self.storage.write(id, data)
                }
            };
            if !w.publishes.contains(&root) {
                w.publishes.push(root);
                pending += 1;
            }
        }
        self.publishes.insert(
            root,
            Publishing {
                blocks,
                pending,
                fresh,
                keys,
            },
        );
        if pending == 0 {
            self.publish_done(now, root);
        }
        Ok(root)
    }

    /// One block of the publication `root` is stored.
    pub(super) fn publish_block_stored(&mut self, now: Time, root: Id) {
        let Some(p) = self.publishes.get_mut(&root) else {
            return;
        };
        p.pending = p.pending.saturating_sub(1);
        if p.pending == 0 {
            self.publish_done(now, root);
        }
    }

    /// Every block is stored: the content is held, served and announced.
    fn publish_done(&mut self, now: Time, root: Id) {
        let Some(p) = self.publishes.remove(&root) else {
            return;
        };
        for id in &p.blocks {
            // Part of complete content now, whatever fetch brought it.
            self.partial.remove(id);
        }
        for id in &p.blocks {
            self.release_held(now, id, None);
        }
        self.held_roots.insert(root, p.blocks);
        for key in p.keys {
            self.provide(now, key, false);
        }
        self.push_event(Event::Published {
            root,
            result: Ok(()),
        });
    }

    /// A block of the publication `root` could not be stored: nothing of it is
    /// announced, and the blocks it wrote that nothing else uses are dropped.
    pub(super) fn publish_failed(&mut self, _now: Time, root: Id, error: StoreError) {
        let Some(p) = self.publishes.remove(&root) else {
            return;
        };
        for id in p.fresh {
            let used = self.partial.contains_key(&id)
                || self
                    .held_roots
                    .values()
                    .any(|blocks| blocks.binary_search(&id).is_ok());
            if !used {
                self.storage.remove(id);
            }
        }
        self.push_event(Event::Published {
            root,
            result: Err(error),
        });
    }

    /// Takes content whose every block the store holds already (found on disk
    /// at start) as held, and announces it. `manifests` are its root manifest
    /// and, for a site, every file manifest, as read from the store.
    pub fn adopt(
        &mut self,
        now: Time,
        root: Id,
        manifests: &[(Id, Manifest)],
    ) -> Result<(), ReadError> {
        let now = self.tick(now);
        let mut blocks = vec![root];
        let root_manifest = manifests
            .iter()
            .find(|(id, _)| *id == root)
            .map(|(_, m)| m)
            .ok_or(ReadError::NotHeld(root))?;
        let files: Vec<Id> = match root_manifest {
            Manifest::File(_) => vec![root],
            Manifest::Site(s) => s.entries().iter().map(|e| e.file).collect(),
        };
        for file in &files {
            let Some((_, Manifest::File(m))) = manifests.iter().find(|(id, _)| id == file) else {
                return Err(ReadError::NotHeld(*file));
            };
            blocks.push(*file);
            for (index, c) in m.chunks().iter().enumerate() {
                let len = self.storage.len_of(c).ok_or(ReadError::NotHeld(*c))?;
                if m.chunk_len(index) != Some(len as usize) {
                    return Err(ReadError::ChunkLength { file: *file, index });
                }
                blocks.push(*c);
            }
        }
        if let Some(missing) = blocks.iter().find(|b| !self.storage.contains(b)) {
            return Err(ReadError::NotHeld(*missing));
        }
        blocks.sort_unstable();
        blocks.dedup();
        let mut keys = vec![root];
        if let (Manifest::Site(_), true) = (root_manifest, self.config.records.announce_site_files)
        {
            keys.extend(files);
        }
        for id in &blocks {
            self.partial.remove(id);
        }
        self.held_roots.insert(root, blocks);
        for key in keys {
            let room = self.provided.len() < self.config.records.max_provided_keys.get();
            if self.provided.contains(&key) || room {
                self.provide(now, key, false);
            }
        }
        Ok(())
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
        self.held_roots.contains_key(root)
    }

    /// Content held complete, in id order.
    pub fn held_content(&self) -> impl Iterator<Item = &Id> + '_ {
        self.held_roots.keys()
    }

    /// The blocks of held content `root` (manifests and chunks), in id order.
    pub fn content_blocks(&self, root: &Id) -> Option<&[Id]> {
        self.held_roots.get(root).map(Vec::as_slice)
    }

    /// Publications waiting for their blocks to be stored.
    pub fn publishes_running(&self) -> usize {
        self.publishes.len()
    }

    /// Publications' bookkeeping, for invariant checks.
    pub(super) fn publishing_pending(&self, root: &Id) -> Option<usize> {
        self.publishes.get(root).map(|p| p.pending)
    }
}
