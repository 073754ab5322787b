//! Publishing content: its blocks are written through the driver, then it is
//! held and announced. Also adopting content whose blocks a store holds already:
//! found on disk at start, or written there by the driver as they streamed in.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::contact::Address;
use crate::content::{
    content_blocks, prepare_file, prepare_site, FileError, Manifest, Prepared, ReadError,
    SiteError, SiteFile, StoreError,
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
    /// Content handed over as written ([`Node::adopt_written`]) lacks a block,
    /// or a manifest does not match its id.
    #[error("the content is incomplete")]
    Incomplete(#[from] ReadError),
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
        self.room_for_keys(&keys)?;
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
        let by_id: BTreeMap<Id, &Manifest> = manifests.iter().map(|(id, m)| (*id, m)).collect();
        let walked = content_blocks(&root, |id| {
            by_id
                .get(id)
                .map(|m| (*m).clone())
                .ok_or(ReadError::NotHeld(*id))
        })?;
        let mut blocks = walked.manifests;
        for c in &walked.chunks {
            let len = self.storage.len_of(&c.id).ok_or(ReadError::NotHeld(c.id))?;
            if len != c.len {
                return Err(ReadError::ChunkLength {
                    file: c.leaf,
                    index: c.index,
                });
            }
            blocks.push(c.id);
        }
        if let Some(missing) = blocks.iter().find(|b| !self.storage.contains(b)) {
            return Err(ReadError::NotHeld(*missing));
        }
        let files = walked.files;
        blocks.sort_unstable();
        blocks.dedup();
        let mut keys = vec![root];
        if self.config.records.announce_site_files {
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

    /// Whether the driver may write `bytes` more in `blocks` more blocks, beside
    /// what the node holds and is writing, within `store_capacity_bytes` and
    /// `store_max_blocks`: how a driver that writes content itself (see
    /// [`Node::adopt_written`]) refuses it as it arrives rather than at the end.
    pub fn room_for(&self, bytes: u64, blocks: usize) -> Result<(), StoreError> {
        self.storage.room_for(
            bytes,
            blocks,
            self.config.transfer.store_capacity_bytes.get(),
            self.config.transfer.store_max_blocks.get(),
        )
    }

    /// Takes content whose blocks the driver wrote to the store itself (as an
    /// upload streamed in, so that no more than a few chunks were ever in
    /// memory) as published: its blocks join the index, it is held, served and
    /// announced, and `Event::Published` follows, as after [`Node::publish`].
    ///
    /// `manifests` are its root manifest and, for a site, every file manifest,
    /// each under its id; `written` names the blocks written and their lengths.
    /// Every block the content consists of must be written or held already,
    /// every manifest must hash to its id and every chunk have the length its
    /// manifest gives; blocks in `written` that the content does not name are
    /// not indexed.
    ///
    /// Refused, with nothing changed, when the new blocks do not fit the store
    /// (`PublishError::Store`), too many keys are provided already, or the
    /// content is incomplete. The driver then removes the blocks it wrote that
    /// the node does not hold.
    pub fn adopt_written(
        &mut self,
        now: Time,
        root: Id,
        manifests: &[(Id, Manifest)],
        written: impl IntoIterator<Item = (Id, u32)>,
    ) -> Result<(), PublishError> {
        let now = self.tick(now);
        let written: BTreeMap<Id, u32> = written.into_iter().collect();
        let by_id: BTreeMap<Id, &Manifest> = manifests.iter().map(|(id, m)| (*id, m)).collect();
        // (id, length) of every block of the content, manifests first.
        let mut blocks: Vec<(Id, u32)> = Vec::new();
        let walked = content_blocks(&root, |id| {
            let m = by_id.get(id).ok_or(ReadError::NotHeld(*id))?;
            let encoded = m.encode();
            if Id::hash_of(&encoded) != *id {
                return Err(ReadError::Corrupt(*id));
            }
            blocks.push((*id, encoded.len() as u32));
            Ok((*m).clone())
        })?;
        for c in &walked.chunks {
            let found = self
                .storage
                .len_of(&c.id)
                .or_else(|| written.get(&c.id).copied());
            match found {
                None => return Err(ReadError::NotHeld(c.id).into()),
                Some(l) if l != c.len => {
                    return Err(ReadError::ChunkLength {
                        file: c.leaf,
                        index: c.index,
                    }
                    .into())
                }
                Some(_) => blocks.push((c.id, c.len)),
            }
        }
        for (id, len) in &blocks {
            let present = self.storage.contains(id) || written.get(id) == Some(len);
            if !present {
                return Err(ReadError::NotHeld(*id).into());
            }
        }
        let files = walked.files;
        blocks.sort_unstable();
        blocks.dedup();
        let new: Vec<(Id, u32)> = blocks
            .iter()
            .filter(|(id, _)| !self.storage.contains(id))
            .copied()
            .collect();
        self.room_for(new.iter().map(|(_, len)| u64::from(*len)).sum(), new.len())?;
        let mut keys = vec![root];
        if self.config.records.announce_site_files {
            keys.extend(files);
        }
        keys.sort_unstable();
        keys.dedup();
        self.room_for_keys(&keys)?;
        for (id, len) in new {
            self.storage.insert(id, len);
        }
        let ids: Vec<Id> = blocks.into_iter().map(|(id, _)| id).collect();
        for id in &ids {
            // Part of complete content now, whatever fetch brought it; peers
            // waiting for it are answered.
            self.partial.remove(id);
            self.release_held(now, id, None);
        }
        self.held_roots.insert(root, ids);
        for key in keys {
            self.provide(now, key, false);
        }
        self.push_event(Event::Published {
            root,
            result: Ok(()),
        });
        Ok(())
    }

    /// Whether `keys` can be provided beside those already, within `max_provided_keys`.
    fn room_for_keys(&self, keys: &[Id]) -> Result<(), CommandError> {
        let new_keys = keys.iter().filter(|k| !self.provided.contains(k)).count();
        if self.provided.len() + new_keys > self.config.records.max_provided_keys.get() {
            return Err(CommandError::TooManyProvided {
                max: self.config.records.max_provided_keys.get(),
            });
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use crate::config::TransferConfig;
    use crate::content::{prepare_site, ContentStore, FileChunker, MemoryStore, SiteBuilder};
    use crate::{
        drain, Config, Driver, Event, Id, Input, Manifest, Node, PublishError, SiteFile,
        StoreError, StoreOp, Time, Transmit,
    };

    /// A driver with a memory store and no network, keeping the events.
    #[derive(Default)]
    struct Alone {
        store: MemoryStore,
        events: Vec<Event<u32>>,
    }

    impl Driver<u32> for Alone {
        fn transmit(&mut self, _: &mut Node<u32>, _: Time, _: Transmit<u32>) {}
        fn store(&mut self, node: &mut Node<u32>, now: Time, op: StoreOp) {
            let done = self.store.apply(op);
            node.handle_input(now, Input::Stored(done));
        }
        fn event(&mut self, _: &mut Node<u32>, _: Time, e: Event<u32>) {
            self.events.push(e);
        }
    }

    fn node(capacity_bytes: u64) -> Node<u32> {
        let config = Config {
            transfer: TransferConfig {
                chunk_size: 1024,
                store_capacity_bytes: core::num::NonZeroU64::new(capacity_bytes).unwrap(),
                ..Default::default()
            },
            ..Config::default()
        };
        Node::new(config, Id::hash_of(b"n"), 1, 7, Time::ZERO).unwrap()
    }

    /// A site as a streaming driver hands it over: root, manifests, blocks written.
    type Written = (Id, Vec<(Id, Manifest)>, Vec<(Id, u32)>);

    /// Writes a site into `store` file by file as a streaming driver would.
    fn write_site(store: &mut MemoryStore, files: &[SiteFile]) -> Written {
        let mut written = Vec::new();
        let mut manifests = Vec::new();
        let mut put = |store: &mut MemoryStore, data: Bytes| {
            let id = Id::hash_of(&data);
            // A repeated chunk is written once.
            if !written.contains(&(id, data.len() as u32)) {
                written.push((id, data.len() as u32));
                store.put(id, data).unwrap();
            }
            id
        };
        let mut site = SiteBuilder::new();
        for f in files {
            let path = site.check(&f.path).unwrap();
            let mut c = FileChunker::new(&f.media_type, 1024).unwrap();
            for chunk in f.data.chunks(1024) {
                c.push(chunk).unwrap();
                put(store, Bytes::copy_from_slice(chunk));
            }
            let m = c.finish();
            let id = put(store, Bytes::from(m.encode()));
            site.add(path, id, &m).unwrap();
            manifests.push((id, Manifest::File(m)));
        }
        let (m, encoded) = site.finish().unwrap();
        let root = put(store, encoded);
        manifests.push((root, m));
        (root, manifests, written)
    }

    #[test]
    fn content_written_by_the_driver_is_adopted_like_a_publication() {
        let files = vec![
            SiteFile::new("index.html", "text/html", "<h1>hi</h1>"),
            SiteFile::new("a.bin", "application/octet-stream", vec![9u8; 2500]),
            SiteFile::new("b.bin", "application/octet-stream", vec![9u8; 2500]),
        ];
        let prepared = prepare_site(files.clone(), 1024).unwrap();
        let mut published = node(1 << 20);
        let mut io = Alone::default();
        published.publish(Time::ZERO, prepared.clone()).unwrap();
        drain(&mut published, Time::ZERO, &mut io);

        let mut n = node(1 << 20);
        let mut io = Alone::default();
        let (root, manifests, written) = write_site(&mut io.store, &files);
        assert_eq!(root, prepared.root, "the same id as prepare_site");
        n.adopt_written(Time::ZERO, root, &manifests, written)
            .unwrap();
        drain(&mut n, Time::ZERO, &mut io);
        n.check_invariants();
        assert!(n.holds(&root));
        assert_eq!(n.content_blocks(&root), published.content_blocks(&root));
        assert_eq!(n.byte_count(), published.byte_count());
        assert!(n.provided_keys().any(|k| *k == root));
        assert!(io
            .events
            .iter()
            .any(|e| matches!(e, Event::Published { root: r, result: Ok(()) } if *r == root)));
    }

    #[test]
    fn content_written_by_the_driver_is_refused_whole_when_it_does_not_fit_or_lacks_a_block() {
        let files = vec![SiteFile::new(
            "a.bin",
            "application/octet-stream",
            vec![1u8; 5000],
        )];
        let mut io = Alone::default();
        let (root, manifests, written) = write_site(&mut io.store, &files);
        let total: u64 = written.iter().map(|(_, l)| u64::from(*l)).sum();

        let mut small = node(total - 1);
        assert!(small.room_for(total - 1, 1).is_ok());
        assert!(matches!(
            small.room_for(total, 1),
            Err(StoreError::Full { .. })
        ));
        assert!(matches!(
            small.adopt_written(Time::ZERO, root, &manifests, written.clone()),
            Err(PublishError::Store(StoreError::Full { .. }))
        ));
        assert_eq!((small.block_count(), small.holds(&root)), (0, false));

        let mut n = node(1 << 20);
        let lacking: Vec<_> = written.iter().skip(1).copied().collect();
        assert!(matches!(
            n.adopt_written(Time::ZERO, root, &manifests, lacking),
            Err(PublishError::Incomplete(_))
        ));
        let mut forged = manifests.clone();
        forged[0].0 = Id::hash_of(b"not that manifest");
        assert!(n
            .adopt_written(Time::ZERO, root, &forged, written.clone())
            .is_err());
        assert_eq!((n.block_count(), n.holds(&root)), (0, false));
        drain(&mut n, Time::ZERO, &mut io);
        assert!(io.events.is_empty(), "a refusal is no event");
        n.adopt_written(Time::ZERO, root, &manifests, written)
            .unwrap();
        assert!(n.holds(&root));
    }
}
