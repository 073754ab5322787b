//! One fetch's state: which blocks it needs, who may have them, what is in flight.
//!
//! Pure bookkeeping: the node sends the requests this decides on, feeds back the
//! answers, and does the storing, verifying and reporting.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use core::time::Duration;

use crate::contact::Contact;
use crate::content::{FileManifest, Manifest, MediaType};
use crate::id::Id;
use crate::query::QueryId;
use crate::time::Time;

use super::{FetchStats, ProviderStats};

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
    pub stats: ProviderStats<A>,
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
pub(crate) enum SlotState {
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
    pub id: Id,
    pub state: SlotState,
    /// The block is a manifest (the root, or a site's file): decode it once held.
    pub manifest: bool,
    /// The manifest has been decoded and expanded (once is enough).
    pub decoded: bool,
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

/// One file of the content, and how far its verified chunks have been reported.
#[derive(Clone, Debug)]
pub(crate) struct FileProgress {
    pub id: Id,
    /// What the site entry says the file is (`None` when the root is this file).
    pub expect: Option<(u64, MediaType)>,
    /// Shared with the event queue, which reports chunk runs from it.
    pub manifest: Option<Arc<FileManifest>>,
    /// Chunks before this index have been checked and reported, in order.
    pub next_emit: usize,
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
    pub root: Id,
    pub deadline: Time,
    pub phase: Phase,
    /// The earliest timer set for this fetch and not yet fired.
    pub wake: Option<Time>,
    pub sources: Vec<Source<A>>,
    pub slots: Vec<Slot>,
    slot_of: BTreeMap<Id, usize>,
    /// Blocks to ask for, by (urgency, slot): urgent first, then in slot order.
    wanted: BTreeSet<(bool, usize)>,
    /// Files the driver asked to have first.
    pub urgent_files: BTreeSet<Id>,
    pub in_flight: usize,
    pub files: Vec<FileProgress>,
    pub manifest: Option<Manifest>,
    pub stats: FetchStats<A>,
    /// Blocks this fetch put in the store (or shares with another running
    /// fetch), released when it ends.
    pub added: Vec<Id>,
}

impl<A: Clone> Fetch<A> {
    /// A fetch of `root` with no providers yet.
    pub fn new(root: Id, now: Time, deadline: Time) -> Self {
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
            manifest: None,
            stats: FetchStats::new(now),
            added: Vec::new(),
        }
    }

    /// Adds providers not known yet, each with a random rank; returns how many were new.
    pub fn add_sources(&mut self, found: Vec<(Contact<A>, u64)>) -> usize {
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
        let Some(p) = self.files.iter().find(|p| p.id == file) else {
            return false;
        };
        let chunks: Vec<Id> = p
            .manifest
            .as_ref()
            .map(|m| m.chunks().to_vec())
            .unwrap_or_default();
        self.urgent_files.insert(file);
        for id in core::iter::once(file).chain(chunks) {
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
            }
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

    /// Every block held and every file checked and reported to its end.
    pub fn is_complete(&self) -> bool {
        self.manifest.is_some()
            && self.wanted.is_empty()
            && self.in_flight == 0
            && self.files.iter().all(|f| {
                f.manifest
                    .as_ref()
                    .is_some_and(|m| f.next_emit == m.chunks().len())
            })
    }

    /// The next chunk to check and report in file order: (file, index, chunk id).
    pub fn next_ready_chunk(&self) -> Option<(usize, usize, Id)> {
        self.files.iter().enumerate().find_map(|(f, file)| {
            let m = file.manifest.as_ref()?;
            let id = *m.chunks().get(file.next_emit)?;
            let s = self.slot_of(&id)?;
            (self.slots[s].state == SlotState::Held).then_some((f, file.next_emit, id))
        })
    }

    /// Ids of the blocks this fetch needs, in slot order.
    pub fn block_ids(&self) -> impl Iterator<Item = Id> + '_ {
        self.slots.iter().map(|s| s.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::id::test_id as id;

    fn fetch_with_sources(n: u8) -> Fetch<u32> {
        let mut f = Fetch::new(id(0), Time::ZERO, Time::from_secs(60));
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
}
