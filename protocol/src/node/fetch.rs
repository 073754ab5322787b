//! Fetching content: find providers, get the manifest, get the chunks from
//! several providers at once, verify everything, keep it and serve it onward.
//!
//! The bookkeeping lives in `transfer::fetch::Fetch`; this file moves it along
//! with messages, timers, the store and events.

use rand_core::RngCore;

use crate::contact::{Address, Contact};
use crate::content::{Manifest, StoreError};
use crate::event::{Event, Misbehaviour};
use crate::id::Id;
use crate::query::{QueryError, QueryKind, QueryOutput};
use crate::time::Time;
use crate::transfer::fetch::{Ended, Fetch, Next, Phase, Refusal};
use crate::transfer::{Corruption, FetchError, FetchId};
use crate::wire::Body;

use super::{CommandError, Node, Purpose};

impl<A: Address> Node<A> {
    /// Fetches the content `root` (a file or a whole site) from whoever holds it,
    /// verifying every block, and keeps it. Progress is reported by
    /// [`Event::ManifestVerified`] and [`Event::ChunkVerified`]; the end, always,
    /// by [`Event::FetchFinished`] (within `fetch_timeout`).
    ///
    /// Content already being fetched returns the running fetch's id; content
    /// already held completes at once from the store.
    pub fn fetch(&mut self, now: Time, root: Id) -> Result<FetchId, CommandError> {
        let now = self.tick(now);
        if let Some(&running) = self.fetch_by_root.get(&root) {
            return Ok(running);
        }
        if self.fetches.len() >= self.config.transfer.max_fetches.get() {
            return Err(CommandError::TooManyFetches {
                max: self.config.transfer.max_fetches.get(),
            });
        }
        // Content not held needs a provider lookup: refuse now rather than fail later.
        if !self.held_roots.contains_key(&root)
            && self.queries.len() >= self.config.limits.max_queries.get()
        {
            return Err(CommandError::TooManyQueries {
                max: self.config.limits.max_queries.get(),
            });
        }
        let fid = FetchId(self.next_fetch);
        self.next_fetch = self.next_fetch.wrapping_add(1);
        let deadline = now + self.config.transfer.fetch_timeout;
        let max_blocks = self.config.transfer.store_max_blocks.get();
        let mut fetch = Fetch::new(root, now, deadline, max_blocks);
        let (slot, _) = fetch.need(root, true, false);
        self.fetches.insert(fid, fetch);
        self.fetch_by_root.insert(root, fid);
        self.fetch_timers.insert((deadline, fid));
        self.take_local(fid, slot);
        // Blocks held here are read and reported as the store answers; a block
        // missing sends the fetch looking for providers (see `pump`).
        self.advance(now, fid);
        Ok(fid)
    }

    /// The running fetch of `root`, if any.
    pub fn fetch_running(&self, root: &Id) -> Option<FetchId> {
        self.fetch_by_root.get(root).copied()
    }

    /// Fetches running.
    pub fn fetches_running(&self) -> usize {
        self.fetches.len()
    }

    /// Moves the block `file` of a running fetch (a site's file, a tree's
    /// node or leaf, a shard, a chunk) ahead of the blocks not asked for yet,
    /// and what it names once decoded: a reader is waiting on it. Returns
    /// `false` if the fetch is not running or needs no such block (yet).
    pub fn prioritise(&mut self, now: Time, fetch: FetchId, file: Id) -> bool {
        let now = self.tick(now);
        let Some(f) = self.fetches.get_mut(&fetch) else {
            return false;
        };
        let known = f.prioritise(file);
        self.pump(now, fetch);
        known
    }

    /// Stores a short-lived "fetch in progress" record for `root` at its trackers.
    fn announce_fetching(&mut self, now: Time, root: Id) {
        if let Ok(q) = self.start(now, QueryKind::Announce, root, self.config.dht.strategy) {
            if let Some(query) = self.queries.get_mut(&q) {
                query.internal = true;
                query.fetching_record = true;
            }
            self.launch(now, q);
        }
    }

    /// Starts a provider lookup for the fetch.
    fn locate(&mut self, now: Time, fid: FetchId) {
        let Some(f) = self.fetches.get_mut(&fid) else {
            return;
        };
        let first = f.count_lookup();
        let root = f.root();
        let enough = self.config.transfer.fetch_providers_wanted.get();
        match self.provider_lookup(now, root, enough, Some(fid)) {
            // The lookup may have ended already (this node tracks the key).
            Ok(q) if self.queries.contains_key(&q) => {
                if let Some(f) = self.fetches.get_mut(&fid) {
                    f.locating(q);
                }
            }
            Ok(_) => {}
            Err(_) => self.fetch_located(now, fid, Err(QueryError::NoPeers)),
        }
        if first && self.config.crowd.announce_fetching && self.fetches.contains_key(&fid) {
            self.announce_fetching(now, root);
        }
    }

    /// The fetch's provider lookup ended.
    pub(super) fn fetch_located(
        &mut self,
        now: Time,
        fid: FetchId,
        result: Result<QueryOutput<A>, QueryError>,
    ) {
        let own = self.id;
        let found: Vec<Contact<A>> = match &result {
            Ok(QueryOutput::Providers(p)) => p.iter().filter(|c| c.id != own).cloned().collect(),
            _ => Vec::new(),
        };
        let ranked: Vec<(Contact<A>, u64)> = found
            .into_iter()
            .map(|c| (c, self.rng.next_u64()))
            .collect();
        let Some(f) = self.fetches.get_mut(&fid) else {
            return;
        };
        f.add_sources(ranked);
        if f.live_sources() > 0 {
            self.pump(now, fid);
            return;
        }
        let error = match (!f.had_sources(), result) {
            (false, _) => FetchError::AllProvidersFailed,
            (true, Err(QueryError::Timeout)) => FetchError::Timeout,
            (true, _) => FetchError::NotFound,
        };
        self.fetch_failed(now, fid, error);
    }

    /// Sends block requests while the fetch may; looks for more providers, or
    /// gives up, when no provider is left for some block.
    fn pump(&mut self, now: Time, fid: FetchId) {
        let per_provider = self.config.transfer.max_blocks_per_provider.get();
        let rounds = self.config.transfer.block_rounds.get();
        let backoff = self.config.transfer.busy_backoff;
        loop {
            let Some(f) = self.fetches.get_mut(&fid) else {
                return;
            };
            if f.phase() != Phase::Transferring
                || f.in_flight() >= self.config.transfer.max_blocks_in_flight.get()
            {
                return;
            }
            match f.next(now, per_provider, rounds, backoff) {
                Next::Send { slot, source } => {
                    f.sent(slot, source);
                    let Some((block, _)) = f.block(slot) else {
                        return;
                    };
                    let to = f.provider(source).clone();
                    let deadline = now + self.config.transfer.block_timeout;
                    let purpose = Purpose::Block { fetch: fid, block };
                    let body = Body::GetBlock { id: block };
                    self.send_request_until(to.addr, Some(to.id), body, purpose, deadline);
                }
                Next::WaitUntil(t) => {
                    if f.wake_at(t) {
                        self.fetch_timers.insert((t, fid));
                    }
                    return;
                }
                Next::Idle => return,
                Next::Exhausted => {
                    if f.lookups() < self.config.transfer.max_lookups_per_fetch.get() {
                        self.locate(now, fid);
                    } else if f.in_flight() == 0 {
                        self.fetch_failed(now, fid, FetchError::AllProvidersFailed);
                    }
                    return;
                }
            }
        }
    }

    /// A provider answered a block request.
    pub(super) fn block_reply(
        &mut self,
        now: Time,
        fid: FetchId,
        block: Id,
        sender: Contact<A>,
        body: Body<A>,
    ) {
        let backoff = self.config.transfer.busy_backoff;
        let max_failures = u32::from(self.config.dht.max_failures.get());
        let Some(f) = self.fetches.get_mut(&fid) else {
            // The fetch ended meanwhile; the answer changes nothing.
            return;
        };
        let Some(slot) = f.slot_of(&block) else {
            return;
        };
        match body {
            Body::Block { id, data } if id == block && Id::hash_of(&data.0) == block => {
                if !f.received(now, slot, &sender.id, data.0.len()) {
                    return;
                }
                self.counters.blocks_downloaded += 1;
                self.counters.bytes_downloaded += data.0.len() as u64;
                match self.keep_block(now, fid, block, data.0) {
                    // The block was held already and the fetch has moved on.
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(e) => {
                        self.fetch_failed(now, fid, FetchError::Store(e));
                        return;
                    }
                }
            }
            Body::Block { .. } => {
                f.refused(now, slot, Refusal::Corrupt, backoff, max_failures);
                self.counters.corrupt_blocks += 1;
                self.misbehaved(sender, Misbehaviour::CorruptBlock);
            }
            Body::Busy { .. } => f.refused(now, slot, Refusal::Busy, backoff, max_failures),
            _ => f.refused(now, slot, Refusal::DontHave, backoff, max_failures),
        }
        self.advance(now, fid);
    }

    /// A block request got no answer in time, or could not be sent.
    pub(super) fn block_failed(&mut self, now: Time, fid: FetchId, block: Id) {
        let backoff = self.config.transfer.busy_backoff;
        let max_failures = u32::from(self.config.dht.max_failures.get());
        let Some(f) = self.fetches.get_mut(&fid) else {
            return;
        };
        if let Some(slot) = f.slot_of(&block) {
            f.refused(now, slot, Refusal::Failed, backoff, max_failures);
        }
        self.advance(now, fid);
    }

    /// Has a verified block written for a fetch (or shares one held or being
    /// written already); the fetch moves on when the write is confirmed.
    /// Returns `true` if the block was held already, so the fetch has moved
    /// on inside this call (moving it twice would start a second lookup when
    /// its sources are exhausted).
    fn keep_block(
        &mut self,
        now: Time,
        fid: FetchId,
        block: Id,
        data: bytes::Bytes,
    ) -> Result<bool, StoreError> {
        if self.storage.contains(&block) {
            // Another fetch or a publication brought it meanwhile: share it.
            if let Some(n) = self.partial.get_mut(&block) {
                *n += 1;
                if let Some(f) = self.fetches.get_mut(&fid) {
                    f.share(block);
                }
            }
            self.fetch_block_stored(now, fid, block, &data);
            return Ok(true);
        }
        if let Some(w) = self.storage.writes.get_mut(&block) {
            if !w.fetches.contains(&fid) {
                w.fetches.push(fid);
            }
            return Ok(false);
        }
        self.storage.room_for(
            data.len() as u64,
            1,
            self.config.transfer.store_capacity_bytes.get(),
            self.config.transfer.store_max_blocks.get(),
        )?;
        self.storage.write(block, data).fetches.push(fid);
        Ok(false)
    }

    /// The block `id` of fetch `fid` is in the store now (`data` its bytes).
    pub(super) fn fetch_block_stored(
        &mut self,
        now: Time,
        fid: FetchId,
        id: Id,
        data: &bytes::Bytes,
    ) {
        let Some(f) = self.fetches.get_mut(&fid) else {
            return;
        };
        let Some(slot) = f.slot_of(&id) else {
            return;
        };
        if self.partial.contains_key(&id) {
            f.share(id);
        }
        f.stored(slot);
        if let Err(e) = self.absorb(fid, slot, data) {
            self.fetch_failed(now, fid, e);
            return;
        }
        self.advance(now, fid);
    }

    /// If the store holds the block of `slot`, marks it held (and asks for a
    /// manifest to be read); a block being written already is waited for.
    fn take_local(&mut self, fid: FetchId, slot: usize) {
        let Some(f) = self.fetches.get_mut(&fid) else {
            return;
        };
        let Some((id, manifest)) = f.block(slot) else {
            return;
        };
        if let Some(w) = self.storage.writes.get_mut(&id) {
            f.landing(slot);
            if !w.fetches.contains(&fid) {
                w.fetches.push(fid);
            }
            return;
        }
        if !self.storage.contains(&id) {
            return;
        }
        f.held_locally(slot);
        if let Some(n) = self.partial.get_mut(&id) {
            // Brought by another running fetch: share it, so its failure does
            // not drop it under us.
            *n += 1;
            f.share(id);
        }
        if manifest {
            self.storage
                .read(id, super::storage::ReadFor::Manifest { fetch: fid });
        }
    }

    /// A manifest held locally was read for fetch `fid`.
    pub(super) fn manifest_read(&mut self, now: Time, fid: FetchId, id: Id, data: bytes::Bytes) {
        if Id::hash_of(&data) != id {
            // The store handed back other bytes than it was given.
            self.block_lost(now, id);
            return;
        }
        let Some(f) = self.fetches.get(&fid) else {
            return;
        };
        let Some(slot) = f.slot_of(&id) else {
            return;
        };
        if !f.is_held(slot) {
            return;
        }
        if let Err(e) = self.absorb(fid, slot, &data) {
            self.fetch_failed(now, fid, e);
            return;
        }
        self.advance(now, fid);
    }

    /// Has the fetch expand the held manifest of `slot` (if it is one not yet
    /// decoded), reports it, and takes the blocks it names that the store holds.
    fn absorb(&mut self, fid: FetchId, slot: usize, data: &[u8]) -> Result<(), FetchError> {
        let Some(f) = self.fetches.get_mut(&fid) else {
            return Ok(());
        };
        let Some(expanded) = f.expand(slot, data)? else {
            return Ok(());
        };
        let Some((id, _)) = f.block(slot) else {
            return Ok(());
        };
        self.push_event(Event::ManifestVerified {
            fetch: fid,
            id,
            manifest: expanded.manifest,
        });
        for s in expanded.new_slots {
            self.take_local(fid, s);
        }
        Ok(())
    }

    /// Reports, in file order, every chunk now held and not yet reported, each
    /// checked against the length its manifest allows.
    fn report_chunks(&mut self, fid: FetchId) -> Result<(), FetchError> {
        let emit = self.config.transfer.emit_chunk_events;
        loop {
            let Some(f) = self.fetches.get_mut(&fid) else {
                return Ok(());
            };
            let storage = &self.storage;
            let Some(chunk) = f.next_report(|id| storage.len_of(id))? else {
                return Ok(());
            };
            if emit {
                self.events
                    .push_chunk(fid, chunk.file, &chunk.manifest, chunk.index);
            }
        }
    }

    /// After any progress: report chunks, finish the fetch if it is complete,
    /// else send more requests.
    pub(super) fn advance(&mut self, now: Time, fid: FetchId) {
        if let Err(e) = self.report_chunks(fid) {
            self.fetch_failed(now, fid, e);
            return;
        }
        match self.fetches.get(&fid) {
            Some(f) if f.is_complete() => self.fetch_succeeded(now, fid),
            Some(_) => self.pump(now, fid),
            None => {}
        }
    }

    /// Fetch deadlines and backoff wake-ups that have come.
    pub(super) fn fetch_timers_due(&mut self, now: Time) {
        while let Some(&(t, fid)) = self.fetch_timers.first() {
            if t > now {
                break;
            }
            self.fetch_timers.pop_first();
            let Some(f) = self.fetches.get_mut(&fid) else {
                continue;
            };
            f.woken(t);
            if now >= f.deadline() {
                self.fetch_failed(now, fid, FetchError::Timeout);
            } else {
                self.pump(now, fid);
            }
        }
    }

    /// Removes a finished fetch and its timers.
    fn take_fetch(&mut self, now: Time, fid: FetchId) -> Option<Ended<A>> {
        let f = self.fetches.remove(&fid)?;
        self.fetch_by_root.remove(&f.root());
        self.fetch_timers.remove(&(f.deadline(), fid));
        let (ended, wake) = f.end(now);
        if let Some(w) = wake {
            self.fetch_timers.remove(&(w, fid));
        }
        if let Some(q) = ended.locating {
            // Its lookup is of no use now; end it without a report.
            if let Some(query) = self.queries.get_mut(&q) {
                query.owner = None;
                query.internal = true;
            }
        }
        Some(ended)
    }

    /// The content is complete and verified: keep it, announce it, serve it.
    fn fetch_succeeded(&mut self, now: Time, fid: FetchId) {
        let Some(f) = self.take_fetch(now, fid) else {
            return;
        };
        for b in &f.added {
            // Part of complete content now, whichever fetches shared it.
            self.partial.remove(b);
        }
        let mut blocks = f.blocks;
        blocks.sort_unstable();
        for b in &blocks {
            self.release_held(now, b, None);
        }
        self.held_roots.insert(f.root, blocks);
        if self.config.crowd.serve_after_fetch {
            let mut keys = vec![f.root];
            if let (Some(Manifest::Site(s)), true) =
                (&f.manifest, self.config.records.announce_site_files)
            {
                keys.extend(s.entries().iter().map(|e| e.file));
            }
            for key in keys {
                let room = self.provided.len() < self.config.records.max_provided_keys.get();
                if !self.provided.contains(&key) && room {
                    self.provide(now, key, true);
                }
            }
        }
        let Ended {
            root,
            manifest,
            stats,
            ..
        } = f;
        let result = manifest.ok_or(FetchError::Corrupt(Corruption::NotAFile(root)));
        self.push_event(Event::FetchFinished {
            id: fid,
            root,
            result,
            stats,
        });
    }

    /// The fetch failed: drop the blocks only it wanted, tell whoever waits on it.
    pub(super) fn fetch_failed(&mut self, now: Time, fid: FetchId, error: FetchError) {
        let Some(f) = self.take_fetch(now, fid) else {
            return;
        };
        for b in &f.added {
            if let Some(n) = self.partial.get_mut(b) {
                *n -= 1;
                if *n == 0 {
                    self.partial.remove(b);
                    self.storage.remove(*b);
                }
            }
        }
        for b in f.blocks {
            if self.fetches.values().any(|g| g.wants(&b)) {
                continue;
            }
            self.release_held(now, &b, None);
            self.refuse_held(&b);
        }
        self.push_event(Event::FetchFinished {
            id: fid,
            root: f.root,
            result: Err(error),
            stats: f.stats,
        });
    }
}
