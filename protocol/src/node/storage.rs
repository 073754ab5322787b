//! Storage as I/O: the index of blocks held, the operations asked of the
//! driver, and what happens when they complete.
//!
//! The node never touches a store. It decides what to read, write and remove,
//! queues a [`StoreOp`] for each, and moves on when the driver feeds back the
//! [`StoreDone`]. At most one operation per block is in flight, so a write and
//! a removal of the same block can never overtake each other in a driver's pool.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use crate::contact::{Address, Contact};
use crate::content::StoreError;
use crate::id::Id;
use crate::io::{StoreDone, StoreOp};
use crate::time::Time;
use crate::transfer::{FetchError, FetchId};
use crate::wire::RpcId;

use super::Node;

/// Who waits for a read.
#[derive(Debug)]
pub(super) enum ReadFor<A> {
    /// A peer asked for the block.
    Serve { to: Contact<A>, rpc: RpcId },
    /// A fetch needs the manifest held locally decoded.
    Manifest { fetch: FetchId },
}

/// A write asked of the driver and not yet confirmed.
#[derive(Debug)]
pub(super) struct Write {
    /// The verified bytes, kept to decode a manifest and answer held requests
    /// when the write is confirmed.
    pub data: Bytes,
    /// Fetches that wait for this block.
    pub fetches: Vec<FetchId>,
    /// Publications (by root) that wait for this block.
    pub publishes: Vec<Id>,
    /// Nobody wants the block any more: remove it once written.
    pub then_remove: bool,
}

/// The block index and the storage operations under way.
#[derive(Debug)]
pub(super) struct Storage<A> {
    /// Blocks held (their writes confirmed), with their lengths.
    blocks: BTreeMap<Id, u32>,
    /// Bytes of `blocks`.
    bytes: u64,
    /// Operations not yet handed to the driver, oldest first.
    queue: VecDeque<StoreOp>,
    /// Operations that reached the head of `queue` while their block had one
    /// in flight, in order per block: the next goes when that one completes.
    parked: BTreeMap<Id, VecDeque<StoreOp>>,
    /// Blocks with an operation handed to the driver and not yet completed.
    in_flight: BTreeSet<Id>,
    max_in_flight: usize,
    /// Reads asked for (queued or in flight), with who waits for each.
    pub reads: BTreeMap<Id, Vec<ReadFor<A>>>,
    /// Writes asked for (queued or in flight).
    pub writes: BTreeMap<Id, Write>,
    /// Bytes of `writes`.
    writing_bytes: u64,
    /// Reads waiting to be served to peers, bounded by `max_uploads`.
    pub serve_reads: usize,
    /// Who waits for reads, over all of `reads`.
    waiting: usize,
    /// High-water marks, for [`Node::memory_usage`]: a driver that answers at
    /// once (the simulator) empties these collections within every input.
    pub peaks: StoragePeaks,
}

/// The most the storage bookkeeping has held at once.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct StoragePeaks {
    /// Operations not yet handed to the driver (queued or parked).
    pub queue: usize,
    /// Operations handed to the driver and not yet completed.
    pub in_flight: usize,
    /// Who waits for reads.
    pub waiting: usize,
    /// Writes asked for and not yet confirmed.
    pub writes: usize,
    /// Bytes of those writes.
    pub write_bytes: u64,
}

impl<A> Storage<A> {
    /// Frees the allocations of emptied collections (see [`crate::shed`]).
    pub fn shed(&mut self) {
        use crate::shed::Shed;
        self.blocks.shed();
        self.queue.shed();
        self.parked.shed();
        self.in_flight.shed();
        self.reads.shed();
        self.writes.shed();
    }

    pub fn new(max_in_flight: usize) -> Self {
        Storage {
            blocks: BTreeMap::new(),
            bytes: 0,
            queue: VecDeque::new(),
            parked: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            max_in_flight,
            reads: BTreeMap::new(),
            writes: BTreeMap::new(),
            writing_bytes: 0,
            serve_reads: 0,
            waiting: 0,
            peaks: StoragePeaks::default(),
        }
    }

    /// Queues an operation for the driver.
    fn enqueue(&mut self, op: StoreOp) {
        self.queue.push_back(op);
        let waiting = self.queue.len() + self.parked.values().map(VecDeque::len).sum::<usize>();
        self.peaks.queue = self.peaks.queue.max(waiting);
    }

    /// Everyone waiting for the read of `id`, which is done.
    pub fn take_reads(&mut self, id: &Id) -> Vec<ReadFor<A>> {
        let waiters = self.reads.remove(id).unwrap_or_default();
        self.waiting -= waiters.len();
        waiters
    }

    /// Whether the block is held (its write confirmed).
    pub fn contains(&self, id: &Id) -> bool {
        self.blocks.contains_key(id)
    }

    /// The length of a held block.
    pub fn len_of(&self, id: &Id) -> Option<u32> {
        self.blocks.get(id).copied()
    }

    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    pub fn byte_count(&self) -> u64 {
        self.bytes
    }

    pub fn ids(&self) -> impl Iterator<Item = (&Id, &u32)> + '_ {
        self.blocks.iter()
    }

    /// Whether `bytes` more in `blocks` more blocks fit beside what is held and
    /// being written.
    pub fn room_for(
        &self,
        bytes: u64,
        blocks: usize,
        capacity_bytes: u64,
        max_blocks: usize,
    ) -> Result<(), StoreError> {
        if self.blocks.len() + self.writes.len() + blocks > max_blocks {
            return Err(StoreError::TooManyBlocks { max: max_blocks });
        }
        if self.bytes + self.writing_bytes + bytes > capacity_bytes {
            return Err(StoreError::Full { capacity_bytes });
        }
        Ok(())
    }

    /// Counts a block as held.
    pub fn insert(&mut self, id: Id, len: u32) {
        if self.blocks.insert(id, len).is_none() {
            self.bytes += u64::from(len);
        }
    }

    /// Stops counting a block as held; returns whether it was.
    pub fn forget(&mut self, id: &Id) -> bool {
        match self.blocks.remove(id) {
            Some(len) => {
                self.bytes -= u64::from(len);
                true
            }
            None => false,
        }
    }

    /// Asks for a read of `id` on behalf of `waiter` (one read serves every waiter).
    pub fn read(&mut self, id: Id, waiter: ReadFor<A>) {
        let waiters = self.reads.entry(id).or_default();
        let first = waiters.is_empty();
        waiters.push(waiter);
        self.waiting += 1;
        self.peaks.waiting = self.peaks.waiting.max(self.waiting);
        if first {
            self.enqueue(StoreOp::Read { id });
        }
    }

    /// Asks for a write of a verified block not yet held nor being written.
    pub fn write(&mut self, id: Id, data: Bytes) -> &mut Write {
        debug_assert!(!self.blocks.contains_key(&id) && !self.writes.contains_key(&id));
        self.writing_bytes += data.len() as u64;
        self.enqueue(StoreOp::Write {
            id,
            data: data.clone(),
        });
        let len = self.writes.len() + 1;
        self.peaks.writes = self.peaks.writes.max(len);
        self.peaks.write_bytes = self.peaks.write_bytes.max(self.writing_bytes);
        self.writes.entry(id).or_insert(Write {
            data,
            fetches: Vec::new(),
            publishes: Vec::new(),
            then_remove: false,
        })
    }

    /// The write of `id`, now done.
    pub fn take_write(&mut self, id: &Id) -> Option<Write> {
        let w = self.writes.remove(id)?;
        self.writing_bytes -= w.data.len() as u64;
        Some(w)
    }

    /// Drops a block: from the index at once, from the store when the driver
    /// gets to it (after any operation on it already under way).
    pub fn remove(&mut self, id: Id) {
        self.forget(&id);
        if let Some(w) = self.writes.get_mut(&id) {
            w.then_remove = true;
            return;
        }
        self.enqueue(StoreOp::Remove { id });
    }

    /// Queues the removal of a block that was never indexed (an unwanted write).
    pub fn remove_unindexed(&mut self, id: Id) {
        self.enqueue(StoreOp::Remove { id });
    }

    /// The next operation for the driver: the oldest whose block has nothing in
    /// flight, while fewer than `max_store_ops` are in flight.
    ///
    /// Each operation is looked at once: one whose block is busy is parked
    /// behind it, so polling costs no scan of the queue.
    pub fn poll(&mut self) -> Option<StoreOp> {
        if self.in_flight.len() >= self.max_in_flight {
            return None;
        }
        while let Some(op) = self.queue.pop_front() {
            let id = op.id();
            if self.in_flight.contains(&id) {
                self.parked.entry(id).or_default().push_back(op);
                continue;
            }
            self.in_flight.insert(id);
            self.peaks.in_flight = self.peaks.in_flight.max(self.in_flight.len());
            return Some(op);
        }
        None
    }

    /// Marks the operation on `id` done, and lets the ones parked on that
    /// block go first; `false` if none was in flight (a completion the node
    /// never asked for, which it ignores).
    pub fn complete(&mut self, id: &Id) -> bool {
        if !self.in_flight.remove(id) {
            return false;
        }
        // Back to the head in their order: the first goes next, the others
        // park again behind it. Nothing is parked on a block not in flight.
        if let Some(ops) = self.parked.remove(id) {
            for op in ops.into_iter().rev() {
                self.queue.push_front(op);
            }
        }
        true
    }

    /// Operations queued, parked or in flight.
    pub fn outstanding(&self) -> usize {
        self.queue.len()
            + self.parked.values().map(VecDeque::len).sum::<usize>()
            + self.in_flight.len()
    }

    /// Checks that the counters mirror the collections.
    pub fn check(&self) {
        assert_eq!(
            self.bytes,
            self.blocks.values().map(|&l| u64::from(l)).sum::<u64>()
        );
        assert_eq!(
            self.writing_bytes,
            self.writes
                .values()
                .map(|w| w.data.len() as u64)
                .sum::<u64>()
        );
        assert!(self.in_flight.len() <= self.max_in_flight);
        for (id, ops) in &self.parked {
            assert!(self.in_flight.contains(id), "parked behind nothing");
            assert!(!ops.is_empty() && ops.iter().all(|op| op.id() == *id));
        }
        let serving = self
            .reads
            .values()
            .flatten()
            .filter(|r| matches!(r, ReadFor::Serve { .. }))
            .count();
        assert_eq!(serving, self.serve_reads);
        assert_eq!(
            self.waiting,
            self.reads.values().map(Vec::len).sum::<usize>()
        );
        for (id, waiters) in &self.reads {
            assert!(!waiters.is_empty());
            let is_read = |op: &StoreOp| matches!(op, StoreOp::Read { id: r } if r == id);
            let queued = self.queue.iter().any(is_read)
                || self
                    .parked
                    .get(id)
                    .is_some_and(|ops| ops.iter().any(is_read));
            assert!(
                queued || self.in_flight.contains(id),
                "a read nobody will answer"
            );
        }
    }
}

impl<A: Address> Node<A> {
    /// Blocks held, counted in the index.
    pub fn block_count(&self) -> usize {
        self.storage.block_count()
    }

    /// Bytes of the blocks held.
    pub fn byte_count(&self) -> u64 {
        self.storage.byte_count()
    }

    /// Whether the block `id` is held (its write confirmed).
    pub fn has_block(&self, id: &Id) -> bool {
        self.storage.contains(id)
    }

    /// Every block held and its length, in id order.
    pub fn blocks(&self) -> impl Iterator<Item = (&Id, &u32)> + '_ {
        self.storage.ids()
    }

    /// Storage operations asked for and not yet completed.
    pub fn store_ops_outstanding(&self) -> usize {
        self.storage.outstanding()
    }

    /// Adds blocks a store already holds (found on disk at start) to the index.
    /// They are served to peers that ask; to announce content made of them,
    /// [`Node::adopt`] it.
    pub fn restore_blocks(&mut self, blocks: impl IntoIterator<Item = (Id, u32)>) {
        for (id, len) in blocks {
            if len as usize <= crate::wire::MAX_BLOCK_BYTES {
                self.storage.insert(id, len);
            }
        }
    }

    /// A storage operation finished.
    pub(super) fn handle_stored(&mut self, now: Time, done: StoreDone) {
        if !self.storage.complete(&done.id()) {
            // Not an operation of ours (a driver bug, or a completion from
            // before a restart): ignore it rather than trust it.
            return;
        }
        self.counters.store_ops += 1;
        match done {
            StoreDone::Read { id, result } => self.on_read(now, id, result),
            StoreDone::Written { id, result } => self.on_written(now, id, result),
            StoreDone::Removed { .. } => {}
        }
    }

    fn on_read(&mut self, now: Time, id: Id, result: Result<Option<Bytes>, StoreError>) {
        let waiters = self.storage.take_reads(&id);
        let expected = self.storage.len_of(&id);
        let data = match result {
            Ok(Some(d)) if expected == Some(d.len() as u32) => Some(d),
            _ => None,
        };
        if data.is_none() && expected.is_some() {
            self.block_lost(now, id);
        }
        for w in waiters {
            match w {
                ReadFor::Serve { to, rpc } => {
                    self.storage.serve_reads -= 1;
                    match &data {
                        Some(d) => self.send_block(to, rpc, id, d.clone()),
                        None => self.send_dont_have(to, rpc, id),
                    }
                }
                ReadFor::Manifest { fetch } => {
                    if let Some(d) = &data {
                        self.manifest_read(now, fetch, id, d.clone());
                    }
                }
            }
        }
    }

    fn on_written(&mut self, now: Time, id: Id, result: Result<(), StoreError>) {
        let Some(w) = self.storage.take_write(&id) else {
            return;
        };
        let error = match result {
            Ok(()) => {
                self.block_written(now, id, w);
                return;
            }
            Err(e) => e,
        };
        for fid in w.fetches {
            self.fetch_failed(now, fid, FetchError::Store(error.clone()));
        }
        for root in w.publishes {
            self.publish_failed(now, root, error.clone());
        }
    }

    /// A write is confirmed: the block is held, and whoever waited moves on.
    fn block_written(&mut self, now: Time, id: Id, w: Write) {
        let fetches: Vec<FetchId> = w
            .fetches
            .into_iter()
            .filter(|f| self.fetches.get(f).is_some_and(|f| f.wants(&id)))
            .collect();
        let publishes: Vec<Id> = w
            .publishes
            .into_iter()
            .filter(|r| self.publishes.contains_key(r))
            .collect();
        if w.then_remove || (fetches.is_empty() && publishes.is_empty()) {
            // Everyone who wanted it gave up meanwhile: do not leave an orphan.
            self.storage.remove_unindexed(id);
            return;
        }
        self.storage.insert(id, w.data.len() as u32);
        if !fetches.is_empty() {
            *self.partial.entry(id).or_insert(0) += fetches.len() as u32;
        }
        self.release_held(now, &id, Some(&w.data));
        for fid in fetches {
            self.fetch_block_stored(now, fid, id, &w.data);
        }
        for root in publishes {
            self.publish_block_stored(now, root);
        }
    }

    /// The store does not have a block the index claims (lost, or corrupt and
    /// dropped): forget it, so it is fetched again rather than promised.
    pub(super) fn block_lost(&mut self, now: Time, id: Id) {
        self.storage.remove(id);
        self.partial.remove(&id);
        self.counters.blocks_lost += 1;
        let affected: Vec<FetchId> = self
            .fetches
            .iter_mut()
            .filter_map(|(fid, f)| f.unhold(&id).then_some(*fid))
            .collect();
        for fid in affected {
            self.advance(now, fid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::test_id as id;

    #[test]
    fn an_operation_on_a_busy_block_waits_without_holding_up_the_others() {
        let mut s: Storage<u32> = Storage::new(8);
        s.write(id(1), Bytes::from_static(b"a"));
        s.read(id(1), ReadFor::Manifest { fetch: FetchId(0) });
        s.remove_unindexed(id(1));
        s.write(id(2), Bytes::from_static(b"b"));
        assert_eq!(s.poll().map(|op| op.id()), Some(id(1)));
        assert_eq!(s.poll().map(|op| op.id()), Some(id(2)), "block 2 overtakes");
        assert_eq!(s.poll(), None, "block 1's read and removal wait");
        assert_eq!(s.outstanding(), 4);
        s.check();
        assert!(s.complete(&id(1)));
        assert_eq!(s.poll(), Some(StoreOp::Read { id: id(1) }), "in order");
        assert_eq!(s.poll(), None, "the removal waits for the read");
        assert!(s.complete(&id(1)));
        assert_eq!(s.poll(), Some(StoreOp::Remove { id: id(1) }));
        assert!(!s.complete(&id(3)), "a completion never asked for");
    }
}
