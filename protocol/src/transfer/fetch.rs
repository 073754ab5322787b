//! One fetch's state: which blocks it needs, who may have them, what is in
//! flight, and how far its files have been reported.
//!
//! `Fetch` owns its bookkeeping behind private fields: it expands a verified
//! manifest into the blocks it names (checking a site's entries against its
//! files' manifests), picks the next request, and hands out chunks to report in
//! file order once their length checks out. The node sends the requests this
//! decides on, feeds back the answers, and does the storing and the events.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use core::time::Duration;

use crate::contact::Contact;
use crate::content::{
    FileManifest, FileNode, FileTree, Manifest, ManifestError, MediaType, SiteIndex, SiteNode,
    StoreError,
};
use crate::id::Id;
use crate::query::QueryId;
use crate::time::Time;

use super::{Corruption, FetchError, FetchStats, ProviderStats};

/// Where a fetch is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Looking for providers with this query.
    Locating(QueryId),
    /// Moving blocks.
    Transferring,
}

/// A provider as this fetch sees it.
#[derive(Clone, Debug)]
pub(crate) struct Source<A> {
    stats: ProviderStats<A>,
    /// Random tie-breaker, so that a crowd of fetchers spreads over providers.
    rank: u64,
    in_flight: usize,
    /// Failed too often, or lied: never asked again by this fetch.
    dead: bool,
    /// Not asked again before this (it said "busy", or just failed).
    busy_until: Time,
}

/// Where one block is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Wanted,
    InFlight {
        source: usize,
    },
    /// Received and verified (or being written for another fetch); held once
    /// the store confirms the write.
    Storing,
    Held,
}

/// One distinct block the content needs.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    id: Id,
    state: SlotState,
    /// The block is a manifest (the root, or a site's file): decode it once held.
    manifest: bool,
    /// The manifest has been decoded and expanded (once is enough).
    decoded: bool,
    /// Asked for before every block that is not (it belongs to a file the
    /// driver is waiting on).
    urgent: bool,
    /// Sources that said they do not have it (or lied about it), this round.
    refused: Vec<usize>,
    /// Rounds through all sources so far.
    rounds: u32,
    not_before: Time,
    attempts: u32,
}

/// One leaf of the content (a whole small file, or one leaf of a file's
/// tree), and how far its verified chunks have been reported.
#[derive(Clone, Debug)]
pub(crate) struct FileProgress {
    id: Id,
    /// Shared with the event queue, which reports chunk runs from it.
    manifest: Option<Arc<FileManifest>>,
    /// Chunks before this index have been checked and reported, in order.
    next_emit: usize,
}

/// What a manifest block not decoded yet must be, as its parent says.
#[derive(Clone, Debug)]
enum Parent {
    /// A site's file: a file manifest or a file tree of this size and media type.
    Entry(u64, MediaType),
    /// Child `index` of a file tree.
    Tree(Arc<FileTree>, usize),
    /// Shard `index` of a site index.
    Shard(Arc<SiteIndex>, usize),
}

/// A manifest the fetch has just decoded and expanded.
#[derive(Debug)]
pub(crate) struct Expanded {
    /// The manifest, for `Event::ManifestVerified`.
    pub manifest: Manifest,
    /// Slots of the blocks it added: the node takes those the store holds.
    pub new_slots: Vec<usize>,
}

/// A chunk whose length has been checked, next to report in file order.
#[derive(Debug)]
pub(crate) struct ChunkReady {
    /// The file it belongs to.
    pub file: Id,
    /// The file's manifest (shared with the event queue).
    pub manifest: Arc<FileManifest>,
    /// Its index in the file.
    pub index: u32,
}

/// The sizes of a fetch's collections.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FetchSizes {
    /// Providers known.
    pub sources: usize,
    /// Distinct blocks needed.
    pub slots: usize,
    /// Files followed.
    pub files: usize,
    /// Chunk ids listed by the file manifests held.
    pub manifest_chunks: usize,
    /// Whether the root manifest held is a site's.
    pub site_manifest: bool,
    /// Blocks added to the store.
    pub added: usize,
}

/// What a finished fetch leaves behind for the node to settle.
#[derive(Debug)]
pub(crate) struct Ended<A> {
    /// The content id.
    pub root: Id,
    /// The root manifest, once verified.
    pub manifest: Option<Manifest>,
    /// What it cost, providers included.
    pub stats: FetchStats<A>,
    /// Blocks it put in the store or shared with another running fetch.
    pub added: Vec<Id>,
    /// Every block the content needs, in slot order.
    pub blocks: Vec<Id>,
    /// Its provider lookup, if one was still running.
    pub locating: Option<QueryId>,
}

/// What the fetch wants to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Ask `source` for the block in `slot`.
    Send { slot: usize, source: usize },
    /// Nothing to send until this time (backoffs) or an answer arrives.
    WaitUntil(Time),
    /// Nothing to send until an answer arrives (or nothing is wanted).
    Idle,
    /// Some block cannot be had from any source known.
    Exhausted,
}

/// How a block request ended, short of the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    DontHave,
    Busy,
    Corrupt,
    Failed,
}

/// A fetch in progress.
#[derive(Debug)]
pub(crate) struct Fetch<A> {
    root: Id,
    deadline: Time,
    phase: Phase,
    /// The earliest timer set for this fetch and not yet fired.
    wake: Option<Time>,
    sources: Vec<Source<A>>,
    slots: Vec<Slot>,
    slot_of: BTreeMap<Id, usize>,
    /// Blocks to ask for, by (urgency, slot): urgent first, then in slot order.
    wanted: BTreeSet<(bool, usize)>,
    /// Files the driver asked to have first.
    urgent_files: BTreeSet<Id>,
    in_flight: usize,
    /// The leaves (one-level file manifests) whose chunks are reported, in
    /// the order they were decoded.
    files: Vec<FileProgress>,
    /// Where each leaf is in `files`.
    file_index: BTreeMap<Id, usize>,
    /// Leaves whose next chunk to report is held: reported from the first.
    ready: BTreeSet<usize>,
    /// Leaves whose next chunk to report is not held yet, by that chunk: so
    /// that a block landing finds its readers without a scan of every leaf.
    waiting: BTreeMap<Id, Vec<usize>>,
    /// Leaves reported to their end.
    files_done: usize,
    /// Manifest slots not decoded yet: the content is complete only at 0.
    undecoded: usize,
    /// What each manifest block not decoded yet must be, by its parent: a
    /// site file's entry, a tree node's child, or an index node's shard.
    parents: BTreeMap<Id, Parent>,
    manifest: Option<Manifest>,
    stats: FetchStats<A>,
    /// Blocks this fetch put in the store (or shares with another running
    /// fetch), released when it ends.
    added: Vec<Id>,
    /// The most distinct blocks the content may need (the store's block
    /// bound): a manifest naming more fails the fetch before it is tracked.
    max_blocks: usize,
}

impl<A: Clone> Fetch<A> {
    /// A fetch of `root` with no providers yet.
    pub fn new(root: Id, now: Time, deadline: Time, max_blocks: usize) -> Self {
        Fetch {
            root,
            deadline,
            phase: Phase::Transferring,
            wake: None,
            sources: Vec::new(),
            slots: Vec::new(),
            slot_of: BTreeMap::new(),
            wanted: BTreeSet::new(),
            urgent_files: BTreeSet::new(),
            in_flight: 0,
            files: Vec::new(),
            file_index: BTreeMap::new(),
            ready: BTreeSet::new(),
            waiting: BTreeMap::new(),
            files_done: 0,
            undecoded: 0,
            parents: BTreeMap::new(),
            manifest: None,
            stats: FetchStats::new(now),
            added: Vec::new(),
            max_blocks,
        }
    }

    /// The content id.
    pub fn root(&self) -> Id {
        self.root
    }

    /// When the fetch fails with `Timeout`.
    pub fn deadline(&self) -> Time {
        self.deadline
    }

    /// Where the fetch is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// A provider lookup for this fetch is running.
    pub fn locating(&mut self, q: QueryId) {
        self.phase = Phase::Locating(q);
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Provider lookups started so far.
    pub fn lookups(&self) -> u32 {
        self.stats.lookups
    }

    /// Counts one more provider lookup; returns whether it is the first.
    pub fn count_lookup(&mut self) -> bool {
        self.stats.lookups += 1;
        self.stats.lookups == 1
    }

    /// Whether any provider was ever known.
    pub fn had_sources(&self) -> bool {
        !self.sources.is_empty()
    }

    /// Asks to be woken at `t`; returns whether that is earlier than the wake
    /// already set (so the caller arms a timer).
    pub fn wake_at(&mut self, t: Time) -> bool {
        if self.wake.is_some_and(|w| w <= t) {
            return false;
        }
        self.wake = Some(t);
        true
    }

    /// A timer of this fetch fired at `t`.
    pub fn woken(&mut self, t: Time) {
        if self.wake == Some(t) {
            self.wake = None;
        }
    }

    /// The block of `slot` and whether it is a manifest.
    pub fn block(&self, slot: usize) -> Option<(Id, bool)> {
        self.slots.get(slot).map(|s| (s.id, s.manifest))
    }

    /// The provider behind `source`.
    pub fn provider(&self, source: usize) -> &Contact<A> {
        &self.sources[source].stats.provider
    }

    /// Whether the block of `slot` is held (confirmed in the store).
    pub fn is_held(&self, slot: usize) -> bool {
        self.slots
            .get(slot)
            .is_some_and(|s| s.state == SlotState::Held)
    }

    /// Records that this fetch put `id` in the store or shares it with
    /// another running fetch, so it is released when this one ends.
    pub fn share(&mut self, id: Id) {
        if !self.added.contains(&id) {
            self.added.push(id);
        }
    }

    /// Ends the fetch at `now`: its stats are completed and its parts handed over.
    pub fn end(self, now: Time) -> (Ended<A>, Option<Time>) {
        let Fetch {
            root,
            deadline: _,
            phase,
            wake,
            sources,
            slots,
            manifest,
            mut stats,
            added,
            ..
        } = self;
        stats.finished = now;
        stats.blocks = slots.len() as u32;
        stats.providers = sources.into_iter().map(|s| s.stats).collect();
        let locating = match phase {
            Phase::Locating(q) => Some(q),
            Phase::Transferring => None,
        };
        let ended = Ended {
            root,
            manifest,
            stats,
            added,
            blocks: slots.into_iter().map(|s| s.id).collect(),
            locating,
        };
        (ended, wake)
    }

    /// Adds providers not known yet, each with a random rank (the lookup is
    /// over, so the fetch is transferring); returns how many were new.
    pub fn add_sources(&mut self, found: Vec<(Contact<A>, u64)>) -> usize {
        self.phase = Phase::Transferring;
        let mut added = 0;
        for (c, rank) in found {
            if self.sources.iter().any(|s| s.stats.provider.id == c.id) {
                continue;
            }
            self.sources.push(Source {
                stats: ProviderStats {
                    provider: c,
                    bytes: 0,
                    requests: 0,
                    failures: 0,
                    corrupt: 0,
                    busy: 0,
                    dont_have: 0,
                },
                rank,
                in_flight: 0,
                dead: false,
                busy_until: Time::ZERO,
            });
            added += 1;
        }
        added
    }

    /// Refusals remembered over all slots (for `Node::memory_usage`).
    pub fn refusals(&self) -> usize {
        self.slots.iter().map(|s| s.refused.len()).sum()
    }

    /// Sources not given up on.
    pub fn live_sources(&self) -> usize {
        self.sources.iter().filter(|s| !s.dead).count()
    }

    pub fn slot_of(&self, id: &Id) -> Option<usize> {
        self.slot_of.get(id).copied()
    }

    /// Whether the block `id` is needed and not held yet.
    pub fn wants(&self, id: &Id) -> bool {
        self.slot_of(id)
            .is_some_and(|s| self.slots[s].state != SlotState::Held)
    }

    /// The source a request for block `id` is out to, if any.
    pub fn asked_for(&self, id: &Id) -> Option<&Contact<A>> {
        match self.slots[self.slot_of(id)?].state {
            SlotState::InFlight { source } => Some(&self.sources[source].stats.provider),
            _ => None,
        }
    }

    /// Registers a needed block; returns its slot and whether it is new. A new
    /// slot starts wanted; the caller marks it held if the store has it.
    pub fn need(&mut self, id: Id, manifest: bool, urgent: bool) -> (usize, bool) {
        if let Some(&s) = self.slot_of.get(&id) {
            let gained = manifest && !self.slots[s].manifest;
            self.slots[s].manifest |= manifest;
            if gained {
                self.undecoded += 1;
            }
            if urgent {
                self.make_urgent(s);
            }
            return (s, gained);
        }
        let s = self.slots.len();
        self.slots.push(Slot {
            id,
            state: SlotState::Wanted,
            manifest,
            decoded: false,
            urgent,
            refused: Vec::new(),
            rounds: 0,
            not_before: Time::ZERO,
            attempts: 0,
        });
        self.slot_of.insert(id, s);
        self.wanted.insert(self.key(s));
        if manifest {
            self.undecoded += 1;
        }
        (s, true)
    }

    /// The slot's place in `wanted`: urgent ones sort first.
    fn key(&self, s: usize) -> (bool, usize) {
        (!self.slots[s].urgent, s)
    }

    /// Moves a slot ahead of every block that is not urgent.
    fn make_urgent(&mut self, s: usize) {
        if self.slots[s].urgent {
            return;
        }
        let was = self.wanted.remove(&self.key(s));
        self.slots[s].urgent = true;
        if was {
            self.wanted.insert(self.key(s));
        }
    }

    /// Asks for the file `file` (its manifest, then its chunks) before anything
    /// else not yet asked for; returns whether the content has such a file.
    pub fn prioritise(&mut self, file: Id) -> bool {
        let Some(s) = self.slot_of(&file) else {
            return false;
        };
        // What the file's manifest names, once decoded, is urgent too.
        self.urgent_files.insert(file);
        self.make_urgent(s);
        let chunks: Vec<Id> = self
            .file_index
            .get(&file)
            .and_then(|&f| self.files[f].manifest.as_ref())
            .map(|m| m.chunks().to_vec())
            .unwrap_or_default();
        for id in chunks {
            if let Some(s) = self.slot_of(&id) {
                self.make_urgent(s);
            }
        }
        true
    }

    /// A wanted block turned out to be in the store already.
    pub fn held_locally(&mut self, slot: usize) {
        if self.wanted.remove(&self.key(slot)) {
            self.slots[slot].state = SlotState::Held;
            self.stats.blocks_local += 1;
            self.now_held(slot);
        }
    }

    /// A wanted block is being written already (for another fetch or a
    /// publication): wait for that write instead of asking anyone.
    pub fn landing(&mut self, slot: usize) {
        if self.wanted.remove(&self.key(slot)) {
            self.slots[slot].state = SlotState::Storing;
        }
    }

    /// The store confirmed the block of `slot`.
    pub fn stored(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            if s.state == SlotState::Storing {
                s.state = SlotState::Held;
                self.now_held(slot);
            }
        }
    }

    /// The leaves waiting on the block of `slot` (held now) are ready.
    fn now_held(&mut self, slot: usize) {
        if let Some(files) = self.waiting.remove(&self.slots[slot].id) {
            self.ready.extend(files);
        }
    }

    /// Files leaf `f` as ready or waiting, by whether its next chunk is held.
    fn queue_next(&mut self, f: usize) {
        let Some(m) = &self.files[f].manifest else {
            return;
        };
        let Some(&chunk) = m.chunks().get(self.files[f].next_emit) else {
            return;
        };
        let held = self
            .slot_of(&chunk)
            .is_some_and(|s| self.slots[s].state == SlotState::Held);
        if held {
            self.ready.insert(f);
        } else {
            self.waiting.entry(chunk).or_default().push(f);
        }
    }

    /// The store lost a block this fetch counted as held: want it again.
    /// Returns whether the fetch was affected.
    pub fn unhold(&mut self, id: &Id) -> bool {
        let Some(slot) = self.slot_of(id) else {
            return false;
        };
        if self.slots[slot].state != SlotState::Held {
            return false;
        }
        self.slots[slot].state = SlotState::Wanted;
        self.wanted.insert(self.key(slot));
        true
    }

    /// Chooses the next request: the earliest wanted block, from the live source
    /// with the fewest requests in flight (random among equals) that has not
    /// refused it. When every live source refused a block, it is retried after
    /// `backoff`, up to `max_rounds` rounds; then the fetch is exhausted.
    pub fn next(
        &mut self,
        now: Time,
        per_source: usize,
        max_rounds: u32,
        backoff: Duration,
    ) -> Next {
        if self.wanted.is_empty() {
            return Next::Idle;
        }
        if self.live_sources() == 0 {
            return Next::Exhausted;
        }
        let mut wake: Option<Time> = None;
        let mut available = Vec::new();
        for (i, s) in self.sources.iter().enumerate() {
            if s.dead || s.in_flight >= per_source {
                continue;
            }
            if s.busy_until > now {
                wake = Some(wake.map_or(s.busy_until, |w| w.min(s.busy_until)));
            } else {
                available.push(i);
            }
        }
        if available.is_empty() {
            return wake.map_or(Next::Idle, Next::WaitUntil);
        }
        let mut cursor = self.wanted.first().copied();
        while let Some(key) = cursor {
            cursor = self
                .wanted
                .range((Bound::Excluded(key), Bound::Unbounded))
                .next()
                .copied();
            let s = key.1;
            let slot = &mut self.slots[s];
            if slot.not_before > now {
                wake = Some(wake.map_or(slot.not_before, |w| w.min(slot.not_before)));
                continue;
            }
            let best = available
                .iter()
                .filter(|i| !slot.refused.contains(i))
                .min_by_key(|&&i| (self.sources[i].in_flight, self.sources[i].rank));
            if let Some(&source) = best {
                return Next::Send { slot: s, source };
            }
            let all_refused = self
                .sources
                .iter()
                .enumerate()
                .all(|(i, src)| src.dead || slot.refused.contains(&i));
            if all_refused {
                slot.rounds += 1;
                if slot.rounds >= max_rounds {
                    return Next::Exhausted;
                }
                // Sources mid-fetch themselves may have it by then.
                slot.refused.clear();
                slot.not_before = now + backoff;
                wake = Some(wake.map_or(slot.not_before, |w| w.min(slot.not_before)));
            }
        }
        match wake {
            Some(t) => Next::WaitUntil(t),
            None if self.in_flight > 0 => Next::Idle,
            None => Next::Exhausted,
        }
    }

    /// A request for `slot` went to `source`.
    pub fn sent(&mut self, slot: usize, source: usize) {
        self.wanted.remove(&self.key(slot));
        let sl = &mut self.slots[slot];
        sl.state = SlotState::InFlight { source };
        sl.attempts += 1;
        if sl.attempts > 1 {
            self.stats.chunks_retried += 1;
        }
        self.stats.requests += 1;
        self.in_flight += 1;
        let src = &mut self.sources[source];
        src.in_flight += 1;
        src.stats.requests += 1;
    }

    /// The request for `slot` is over; returns the source it was out to, or
    /// `None` if it was not in flight (a late or stray answer).
    fn settle(&mut self, slot: usize) -> Option<usize> {
        let SlotState::InFlight { source } = self.slots.get(slot)?.state else {
            return None;
        };
        self.in_flight -= 1;
        self.sources[source].in_flight -= 1;
        Some(source)
    }

    /// The block in `slot` arrived from `from` and verified.
    pub fn received(&mut self, now: Time, slot: usize, from: &Id, len: usize) -> bool {
        let Some(source) = self.settle(slot) else {
            return false;
        };
        if self.sources[source].stats.provider.id != *from {
            // Not who we asked: undo and let the caller treat it as unsolicited.
            self.in_flight += 1;
            self.sources[source].in_flight += 1;
            return false;
        }
        self.slots[slot].state = SlotState::Storing;
        let src = &mut self.sources[source].stats;
        src.bytes += len as u64;
        self.stats.bytes += len as u64;
        self.stats.first_byte.get_or_insert(now);
        true
    }

    /// The request for `slot` ended without the block; it is wanted again.
    pub fn refused(
        &mut self,
        now: Time,
        slot: usize,
        why: Refusal,
        backoff: Duration,
        max_failures: u32,
    ) {
        let Some(source) = self.settle(slot) else {
            return;
        };
        let key = self.key(slot);
        self.wanted.insert(key);
        let sl = &mut self.slots[slot];
        sl.state = SlotState::Wanted;
        let src = &mut self.sources[source];
        match why {
            Refusal::DontHave => {
                src.stats.dont_have += 1;
                sl.refused.push(source);
            }
            Refusal::Busy => {
                src.stats.busy += 1;
                src.busy_until = now + backoff;
            }
            Refusal::Corrupt => {
                src.stats.corrupt += 1;
                src.dead = true;
                sl.refused.push(source);
            }
            Refusal::Failed => {
                // Try this block elsewhere first: the source may be gone or slow.
                sl.refused.push(source);
                src.stats.failures += 1;
                src.busy_until = now + backoff;
                if src.stats.failures >= max_failures {
                    src.dead = true;
                }
            }
        }
    }

    /// Decodes the held manifest in `slot` (`data` its verified bytes) and
    /// needs every block it names; `None` if the slot is no held manifest or
    /// was decoded already. The root may be a file, a file tree, a site or a
    /// site index; every other manifest must be what its parent says it is
    /// (a site's file of the entry's size and media type, a tree's child, an
    /// index's shard), so a hostile tree cannot lie about lengths or loop.
    /// Urgency passes down: the blocks an urgent manifest names are urgent.
    pub fn expand(&mut self, slot: usize, data: &[u8]) -> Result<Option<Expanded>, FetchError> {
        let Some(s) = self.slots.get_mut(slot) else {
            return Ok(None);
        };
        if !s.manifest || s.decoded || s.state != SlotState::Held {
            return Ok(None);
        }
        s.decoded = true;
        self.undecoded -= 1;
        let id = s.id;
        let urgent = s.urgent || self.urgent_files.contains(&id);
        let corrupt = |error| FetchError::Corrupt(Corruption::Manifest { id, error });
        let manifest = Manifest::decode(data).map_err(corrupt)?;
        let is_root = id == self.root && self.manifest.is_none();
        self.check_parent(id, is_root, &manifest)?;
        let mut new_slots = Vec::new();
        match &manifest {
            Manifest::Site(site) => {
                for e in site.entries() {
                    self.parents
                        .entry(e.file)
                        .or_insert_with(|| Parent::Entry(e.size, e.media_type.clone()));
                    let urgent = urgent || self.urgent_files.contains(&e.file);
                    self.need_new(e.file, true, urgent, &mut new_slots)?;
                }
            }
            Manifest::SiteIndex(index) => {
                let shared = Arc::new(index.clone());
                for (i, shard) in index.shards().iter().enumerate() {
                    self.parents
                        .entry(shard.id)
                        .or_insert_with(|| Parent::Shard(Arc::clone(&shared), i));
                    self.need_new(shard.id, true, urgent, &mut new_slots)?;
                }
            }
            Manifest::FileTree(tree) => {
                let shared = Arc::new(tree.clone());
                for (i, child) in tree.children().iter().enumerate() {
                    self.parents
                        .entry(*child)
                        .or_insert_with(|| Parent::Tree(Arc::clone(&shared), i));
                    self.need_new(*child, true, urgent, &mut new_slots)?;
                }
            }
            Manifest::File(m) => {
                let shared = Arc::new(m.clone());
                let f = match self.file_index.get(&id) {
                    Some(&f) => f,
                    None => {
                        self.files.push(FileProgress {
                            id,
                            manifest: None,
                            next_emit: 0,
                        });
                        self.file_index.insert(id, self.files.len() - 1);
                        self.files.len() - 1
                    }
                };
                if self.files[f].manifest.is_none() {
                    self.files[f].manifest = Some(shared);
                    if m.chunks().is_empty() {
                        self.files_done += 1;
                    }
                }
                let mut chunk_slots = Vec::new();
                for c in m.chunks() {
                    self.need_new(*c, false, urgent, &mut chunk_slots)?;
                }
                new_slots.extend(chunk_slots);
                self.queue_next(f);
            }
        }
        if id == self.root {
            self.manifest.get_or_insert_with(|| manifest.clone());
        }
        Ok(Some(Expanded {
            manifest,
            new_slots,
        }))
    }

    /// Needs a block named by a manifest, noting its slot if new; fails once
    /// the content names more blocks than the store may hold.
    fn need_new(
        &mut self,
        id: Id,
        manifest: bool,
        urgent: bool,
        new_slots: &mut Vec<usize>,
    ) -> Result<(), FetchError> {
        let (s, new) = self.need(id, manifest, urgent);
        if new {
            new_slots.push(s);
        }
        self.check_size()
    }

    /// Checks a decoded manifest against what its parent says it must be; the
    /// root may be any kind.
    fn check_parent(
        &mut self,
        id: Id,
        is_root: bool,
        manifest: &Manifest,
    ) -> Result<(), FetchError> {
        let parent = self.parents.remove(&id);
        let corrupt = |error| FetchError::Corrupt(Corruption::Manifest { id, error });
        let file_node = || match manifest {
            Manifest::File(m) => Some(FileNode::Leaf(m.clone())),
            Manifest::FileTree(t) => Some(FileNode::Tree(t.clone())),
            _ => None,
        };
        match (parent, manifest) {
            (None, _) if is_root => Ok(()),
            (Some(Parent::Entry(size, media_type)), Manifest::File(_) | Manifest::FileTree(_)) => {
                let (len, mt) = match manifest {
                    Manifest::File(m) => (m.len(), m.media_type()),
                    Manifest::FileTree(t) => (t.len(), t.media_type()),
                    _ => return Err(FetchError::Corrupt(Corruption::NotAFile(id))),
                };
                if len != size || *mt != media_type {
                    return Err(FetchError::Corrupt(Corruption::EntryMismatch(id)));
                }
                Ok(())
            }
            (Some(Parent::Tree(tree, index)), Manifest::File(_) | Manifest::FileTree(_)) => {
                let node = file_node().ok_or(FetchError::Corrupt(Corruption::NotAFile(id)))?;
                tree.check_child(index, &node)
                    .map_err(|e| corrupt(ManifestError::from(e)))
            }
            (
                Some(Parent::Shard(index_node, index)),
                Manifest::Site(_) | Manifest::SiteIndex(_),
            ) => {
                let node = match manifest {
                    Manifest::Site(s) => SiteNode::Leaf(s.clone()),
                    Manifest::SiteIndex(i) => SiteNode::Index(i.clone()),
                    _ => return Err(FetchError::Corrupt(Corruption::NotAFile(id))),
                };
                index_node
                    .check_child(index, &node)
                    .map_err(|e| corrupt(ManifestError::from(e)))
            }
            // A block named where no manifest of its kind may be (a site as a
            // site's file, a file as a shard), or a manifest nothing named.
            _ => Err(FetchError::Corrupt(Corruption::NotAFile(id))),
        }
    }

    /// Fails once the content needs more blocks than the store may hold: a
    /// hostile site of 16,384 files of 32,000 chunks each would otherwise
    /// make the fetch track half a billion blocks.
    fn check_size(&self) -> Result<(), FetchError> {
        if self.slots.len() > self.max_blocks {
            return Err(FetchError::Store(StoreError::TooManyBlocks {
                max: self.max_blocks,
            }));
        }
        Ok(())
    }

    /// The next chunk to report in file order, if it is held; its length
    /// (`held_len`, from the store's index) must be the one its manifest allows.
    pub fn next_report(
        &mut self,
        held_len: impl Fn(&Id) -> Option<u32>,
    ) -> Result<Option<ChunkReady>, FetchError> {
        let Some((file, index, chunk)) = self.next_ready_chunk() else {
            return Ok(None);
        };
        let p = &mut self.files[file];
        let Some(m) = &p.manifest else {
            return Ok(None);
        };
        let held = held_len(&chunk).map(|l| l as usize);
        if held.is_none() || m.chunk_len(index) != held {
            return Err(FetchError::Corrupt(Corruption::ChunkLength {
                file: p.id,
                index: index as u32,
            }));
        }
        p.next_emit += 1;
        if p.next_emit == m.chunks().len() {
            self.files_done += 1;
        }
        let ready = ChunkReady {
            file: p.id,
            manifest: Arc::clone(m),
            index: index as u32,
        };
        self.queue_next(file);
        Ok(Some(ready))
    }

    /// Every block held and every file checked and reported to its end.
    pub fn is_complete(&self) -> bool {
        self.manifest.is_some()
            && self.wanted.is_empty()
            && self.in_flight == 0
            && self.undecoded == 0
            && self.files_done == self.files.len()
    }

    /// The next chunk to check and report in file order: (file, index, chunk
    /// id), from the first ready leaf. A leaf whose chunk was lost since goes
    /// back to waiting.
    fn next_ready_chunk(&mut self) -> Option<(usize, usize, Id)> {
        while let Some(f) = self.ready.pop_first() {
            let file = &self.files[f];
            let Some(m) = file.manifest.as_ref() else {
                continue;
            };
            let Some(&id) = m.chunks().get(file.next_emit) else {
                continue;
            };
            let held = self
                .slot_of(&id)
                .is_some_and(|s| self.slots[s].state == SlotState::Held);
            if held {
                return Some((f, file.next_emit, id));
            }
            self.waiting.entry(id).or_default().push(f);
        }
        None
    }

    /// How much the fetch holds, collection by collection (for `Node::memory_usage`).
    pub fn sizes(&self) -> FetchSizes {
        FetchSizes {
            sources: self.sources.len(),
            slots: self.slots.len(),
            files: self.files.len(),
            manifest_chunks: self
                .files
                .iter()
                .filter_map(|p| p.manifest.as_ref())
                .map(|m| m.chunks().len())
                .sum(),
            site_manifest: matches!(self.manifest, Some(Manifest::Site(_))),
            added: self.added.len(),
        }
    }

    /// Panics if the fetch's counters disagree with its collections: requests
    /// in flight per source and in all, the wanted set, the slot index.
    pub fn check(&self) {
        let flying = self
            .slots
            .iter()
            .filter(|s| matches!(s.state, SlotState::InFlight { .. }))
            .count();
        assert_eq!(self.in_flight, flying, "fetch in_flight");
        for (i, src) in self.sources.iter().enumerate() {
            let n = self
                .slots
                .iter()
                .filter(|s| s.state == SlotState::InFlight { source: i })
                .count();
            assert_eq!(src.in_flight, n, "a source's in_flight");
        }
        for &(_, s) in &self.wanted {
            assert_eq!(self.slots[s].state, SlotState::Wanted, "a wanted slot");
        }
        assert_eq!(self.slot_of.len(), self.slots.len(), "slot index");
        for (id, &s) in &self.slot_of {
            assert_eq!(self.slots[s].id, *id, "slot index");
        }
        assert!(self.files.iter().all(|f| f
            .manifest
            .as_ref()
            .is_none_or(|m| f.next_emit <= m.chunks().len())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::id::test_id as id;

    fn fetch_with_sources(n: u8) -> Fetch<u32> {
        let mut f = Fetch::new(id(0), Time::ZERO, Time::from_secs(60), 1_000);
        f.add_sources(
            (1..=n)
                .map(|i| (Contact::new(id(100 + i), u32::from(i)), u64::from(i)))
                .collect(),
        );
        f
    }

    #[test]
    fn requests_spread_over_sources_and_respect_the_per_source_cap() {
        let mut f = fetch_with_sources(2);
        for i in 1..=5 {
            f.need(id(i), false, false);
        }
        let mut per = [0usize; 2];
        let backoff = Duration::from_millis(100);
        while let Next::Send { slot, source } = f.next(Time::ZERO, 2, 3, backoff) {
            f.sent(slot, source);
            per[source] += 1;
        }
        assert_eq!(per, [2, 2]);
        assert_eq!(f.next(Time::ZERO, 2, 3, backoff), Next::Idle);
    }

    #[test]
    fn a_block_every_source_refuses_exhausts_after_the_rounds() {
        let mut f = fetch_with_sources(2);
        f.need(id(1), false, false);
        let backoff = Duration::from_millis(100);
        let mut now = Time::ZERO;
        let mut asked = 0;
        loop {
            match f.next(now, 4, 2, backoff) {
                Next::Send { slot, source } => {
                    f.sent(slot, source);
                    f.refused(now, slot, Refusal::DontHave, backoff, 3);
                    asked += 1;
                }
                Next::WaitUntil(t) => now = t,
                Next::Exhausted => break,
                Next::Idle => panic!("stalled"),
            }
        }
        assert_eq!(asked, 4, "two rounds over two sources");
        assert_eq!(f.stats.chunks_retried, 3);
    }

    #[test]
    fn urgent_blocks_jump_the_queue() {
        let mut f = fetch_with_sources(1);
        for i in 1..=3 {
            f.need(id(i), false, false);
        }
        f.need(id(3), false, true);
        let Next::Send { slot, .. } = f.next(Time::ZERO, 4, 3, Duration::ZERO) else {
            panic!()
        };
        assert_eq!(f.slots[slot].id, id(3));
    }

    #[test]
    fn a_liar_is_never_asked_again() {
        let mut f = fetch_with_sources(2);
        f.need(id(1), false, false);
        f.need(id(2), false, false);
        let backoff = Duration::from_millis(100);
        let Next::Send { slot, source } = f.next(Time::ZERO, 4, 3, backoff) else {
            panic!()
        };
        f.sent(slot, source);
        f.refused(Time::ZERO, slot, Refusal::Corrupt, backoff, 3);
        for _ in 0..2 {
            let Next::Send { slot, source: s } = f.next(Time::ZERO, 4, 3, backoff) else {
                panic!()
            };
            assert_ne!(s, source);
            f.sent(slot, s);
        }
    }

    #[test]
    fn a_manifest_naming_more_blocks_than_the_store_holds_fails_the_fetch() {
        use crate::content::{prepare_file, MIN_CHUNK_BYTES};
        // Ten distinct chunks, against a store of at most 4 blocks.
        let data: Vec<u8> = (0..10 * MIN_CHUNK_BYTES)
            .map(|i| (i / MIN_CHUNK_BYTES) as u8)
            .collect();
        let prepared = prepare_file(data.into(), "text/plain", MIN_CHUNK_BYTES).unwrap();
        let mut f: Fetch<u32> = Fetch::new(prepared.root, Time::ZERO, Time::from_secs(60), 4);
        let (slot, _) = f.need(prepared.root, true, false);
        f.held_locally(slot);
        let encoded = prepared.manifest.encode();
        let err = f.expand(slot, &encoded).unwrap_err();
        assert_eq!(err, FetchError::Store(StoreError::TooManyBlocks { max: 4 }));
        assert!(f.sizes().slots <= 5, "tracking stopped at the bound");

        let mut roomy: Fetch<u32> = Fetch::new(prepared.root, Time::ZERO, Time::from_secs(60), 11);
        let (slot, _) = roomy.need(prepared.root, true, false);
        roomy.held_locally(slot);
        let expanded = roomy.expand(slot, &encoded).unwrap().unwrap();
        assert_eq!(expanded.new_slots.len(), 10);
    }

    /// Blocks of a tree file of `n` 1 KiB chunks, by id, and its root.
    fn tree_blocks(n: u64) -> (Id, BTreeMap<Id, Vec<u8>>) {
        use crate::content::{FileTreeBuilder, MediaType};
        let mut b = FileTreeBuilder::new(1024, MediaType::new("text/plain").unwrap()).unwrap();
        let mut blocks = BTreeMap::new();
        for i in 0..n {
            blocks.extend(b.push(Id::hash_of(&i.to_le_bytes()), 1024).unwrap());
        }
        let (root, rest) = b.finish().unwrap();
        blocks.extend(rest);
        (root, blocks)
    }

    /// Expands every manifest the fetch needs from `blocks` (as if each were
    /// held locally), then reports every chunk; returns the chunks reported
    /// in order, or the first error.
    fn run(f: &mut Fetch<u32>, blocks: &BTreeMap<Id, Vec<u8>>) -> Result<Vec<Id>, FetchError> {
        let mut s = 0;
        while s < f.slots.len() {
            f.held_locally(s);
            if let Some(bytes) = blocks.get(&f.slots[s].id) {
                f.expand(s, bytes)?;
            }
            s += 1;
        }
        let mut out = Vec::new();
        while let Some(c) = f.next_report(|_| Some(1024))? {
            out.push(c.manifest.chunks()[c.index as usize]);
        }
        Ok(out)
    }

    /// A tree file's fetch needs its leaves, then their chunks, and reports
    /// every chunk in file order before it is complete.
    #[test]
    fn a_tree_file_is_expanded_leaf_by_leaf_and_reported_in_order() {
        let n = crate::content::MAX_FILE_CHUNKS as u64 + 3;
        let (root, blocks) = tree_blocks(n);
        let mut f: Fetch<u32> = Fetch::new(root, Time::ZERO, Time::from_secs(60), 100_000);
        f.need(root, true, false);
        let reported = run(&mut f, &blocks).unwrap();
        let expected: Vec<Id> = (0..n).map(|i| Id::hash_of(&i.to_le_bytes())).collect();
        assert_eq!(reported, expected);
        assert!(f.is_complete());
        assert_eq!(
            f.sizes().slots as u64,
            1 + 2 + n,
            "root, two leaves, chunks"
        );
    }

    /// A leaf where another should be, or a tree as its own child, fails the
    /// fetch as corrupt instead of being followed.
    #[test]
    fn a_hostile_tree_fails_the_fetch() {
        let (root, blocks) = tree_blocks(crate::content::MAX_FILE_CHUNKS as u64 + 3);
        let Ok(Manifest::FileTree(tree)) = Manifest::decode(&blocks[&root]) else {
            panic!("a tree");
        };
        let (first, second) = (tree.children()[0], tree.children()[1]);
        for (what, at, bytes) in [
            ("swapped leaves", first, blocks[&second].clone()),
            ("a loop", second, blocks[&root].clone()),
        ] {
            let mut lying = blocks.clone();
            lying.insert(at, bytes);
            let mut f: Fetch<u32> = Fetch::new(root, Time::ZERO, Time::from_secs(60), 100_000);
            f.need(root, true, false);
            let e = run(&mut f, &lying).unwrap_err();
            assert!(
                matches!(e, FetchError::Corrupt(Corruption::Manifest { id, .. }) if id == at),
                "{what}: {e:?}"
            );
        }
    }
}
