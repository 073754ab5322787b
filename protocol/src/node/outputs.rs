//! The event queue: terminal events are never dropped, and chunk progress is
//! coalesced into runs, so a 32,000-chunk file costs one queue entry, not 32,000.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::content::FileManifest;
use crate::event::Event;
use crate::id::Id;
use crate::transfer::FetchId;

/// A run of consecutive verified chunks of one file, reported one by one as
/// the driver pulls them.
#[derive(Debug)]
struct ChunkRun {
    fetch: FetchId,
    file: Id,
    manifest: Arc<FileManifest>,
    /// The next chunk to report.
    next: u32,
    /// One past the last chunk of the run.
    end: u32,
}

#[derive(Debug)]
enum Entry<A> {
    Event(Event<A>),
    Chunks(ChunkRun),
}

/// Events waiting for the driver, in the order they happened.
///
/// Implementation note: the seed dropped the oldest event past a bound, which
/// lost `ManifestVerified` and the first chunks of any large local fetch. Here
/// only misbehaviour reports are dropped (past `max_misbehaviour` waiting);
/// everything else is bounded by what produces it: one terminal event per
/// query or fetch (`max_queries`, `max_fetches`) and one run per file a fetch
/// reports at a time.
#[derive(Debug)]
pub(super) struct Events<A> {
    queue: VecDeque<Entry<A>>,
    misbehaviour: usize,
    max_misbehaviour: usize,
    /// The longest `queue` has been, for [`super::Node::memory_usage`].
    peak: usize,
}

impl<A> Events<A> {
    pub fn new(max_misbehaviour: usize) -> Self {
        Events {
            queue: VecDeque::new(),
            misbehaviour: 0,
            max_misbehaviour,
            peak: 0,
        }
    }

    /// Frees the queue's allocation if it is empty.
    pub fn shed(&mut self) {
        crate::shed::Shed::shed(&mut self.queue);
    }

    /// Bytes of one queued entry.
    pub const ENTRY_BYTES: usize = core::mem::size_of::<Entry<A>>();

    /// The longest the queue has been.
    pub fn peak(&self) -> usize {
        self.peak
    }

    fn noted(&mut self) {
        self.peak = self.peak.max(self.queue.len());
    }

    /// Queues an event; returns `false` if it was a misbehaviour report
    /// dropped for lack of room.
    pub fn push(&mut self, event: Event<A>) -> bool {
        if matches!(event, Event::PeerMisbehaved { .. }) {
            if self.misbehaviour >= self.max_misbehaviour {
                return false;
            }
            self.misbehaviour += 1;
        }
        self.queue.push_back(Entry::Event(event));
        self.noted();
        true
    }

    /// Queues the report of chunk `index` of `file`, joining the run before it
    /// when it is the next chunk of the same file.
    pub fn push_chunk(
        &mut self,
        fetch: FetchId,
        file: Id,
        manifest: &Arc<FileManifest>,
        index: u32,
    ) {
        if let Some(Entry::Chunks(run)) = self.queue.back_mut() {
            if run.fetch == fetch && run.file == file && run.end == index {
                run.end += 1;
                return;
            }
        }
        self.queue.push_back(Entry::Chunks(ChunkRun {
            fetch,
            file,
            manifest: Arc::clone(manifest),
            next: index,
            end: index + 1,
        }));
        self.noted();
    }

    /// The next event, if any.
    pub fn pop(&mut self) -> Option<Event<A>> {
        match self.queue.front_mut()? {
            Entry::Chunks(run) => {
                let index = run.next;
                let i = index as usize;
                let m = &run.manifest;
                let event = m.chunks().get(i).map(|&id| Event::ChunkVerified {
                    fetch: run.fetch,
                    file: run.file,
                    index,
                    offset: m.chunk_offset(i),
                    id,
                    len: m.chunk_len(i).unwrap_or(0) as u32,
                });
                run.next += 1;
                if run.next >= run.end {
                    self.queue.pop_front();
                }
                debug_assert!(event.is_some(), "a chunk run past its file's end");
                // A run past its file's end (a bug) reports nothing rather than panic.
                event.or_else(|| self.pop())
            }
            Entry::Event(_) => match self.queue.pop_front() {
                Some(Entry::Event(e)) => {
                    if matches!(e, Event::PeerMisbehaved { .. }) {
                        self.misbehaviour -= 1;
                    }
                    Some(e)
                }
                _ => None,
            },
        }
    }

    /// Misbehaviour reports waiting, as counted.
    pub fn misbehaviour_waiting(&self) -> usize {
        self.misbehaviour
    }

    /// Misbehaviour reports waiting, counted from the queue itself.
    pub fn count_misbehaviour(&self) -> usize {
        self.queue
            .iter()
            .filter(|e| matches!(e, Entry::Event(Event::PeerMisbehaved { .. })))
            .count()
    }
}
