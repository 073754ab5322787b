//! The event queue: one binary heap ordered by (virtual time, sequence number).
//!
//! The sequence number breaks ties in insertion order, so two events at the same
//! instant always run in the same order. Payloads too big to move around the heap
//! (messages, actions) sit in slabs and the heap holds their index.

use core::cmp::Ordering;
use std::collections::BinaryHeap;

use distroweb_protocol::Time;

use crate::addr::NodeIdx;

/// What happens when an entry comes due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// Deliver the message in this message-slab slot.
    Deliver(u32),
    /// Call the node's `handle_timeout`; stale (lazily cancelled) unless the slot's
    /// armed time is this entry's time.
    Wake(NodeIdx),
    /// Tell `node` (if still this incarnation) that its message to `to` bounced.
    SendFailed {
        /// Who sent the message.
        node: NodeIdx,
        /// The sender's incarnation when it sent.
        incarnation: u32,
        /// The peer that was down.
        to: NodeIdx,
    },
    /// Run the action in this action-slab slot.
    Action(u32),
}

#[derive(Debug)]
struct Entry {
    at: Time,
    seq: u64,
    due: Due,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The pending events of a run.
#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    heap: BinaryHeap<Entry>,
    seq: u64,
}

impl EventQueue {
    pub fn push(&mut self, at: Time, due: Due) {
        self.heap.push(Entry {
            at,
            seq: self.seq,
            due,
        });
        self.seq += 1;
    }

    pub fn peek_time(&self) -> Option<Time> {
        self.heap.peek().map(|e| e.at)
    }

    pub fn pop(&mut self) -> Option<(Time, Due)> {
        self.heap.pop().map(|e| (e.at, e.due))
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

/// A vector of reusable slots: payloads are parked here while their heap entry waits.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    pub fn insert(&mut self, item: T) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.items[i as usize] = Some(item);
                i
            }
            None => {
                self.items.push(Some(item));
                (self.items.len() - 1) as u32
            }
        }
    }

    /// Takes the item out; `None` if the slot was empty (a bug in the caller).
    pub fn take(&mut self, i: u32) -> Option<T> {
        let item = self.items.get_mut(i as usize)?.take();
        if item.is_some() {
            self.free.push(i);
        }
        item
    }

    pub fn len(&self) -> usize {
        self.items.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_ties_in_insertion_order() {
        let mut q = EventQueue::default();
        q.push(Time::from_secs(2), Due::Action(0));
        q.push(Time::from_secs(1), Due::Action(1));
        q.push(Time::from_secs(1), Due::Action(2));
        q.push(Time::from_secs(1), Due::Wake(NodeIdx(3)));
        let order: Vec<Due> = std::iter::from_fn(|| q.pop().map(|(_, d)| d)).collect();
        assert_eq!(
            order,
            vec![
                Due::Action(1),
                Due::Action(2),
                Due::Wake(NodeIdx(3)),
                Due::Action(0)
            ]
        );
    }

    /// Size regressions: two queue entries and two actions wait per node
    /// before a scale run starts.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn queued_items_stay_compact() {
        assert!(core::mem::size_of::<Entry>() <= 32);
        assert!(core::mem::size_of::<crate::Action>() <= 64);
    }

    #[test]
    fn slab_reuses_freed_slots() {
        let mut s = Slab::default();
        let a = s.insert("a");
        let b = s.insert("b");
        assert_eq!(s.take(a), Some("a"));
        assert_eq!(s.take(a), None);
        let c = s.insert("c");
        assert_eq!(c, a);
        assert_eq!(s.len(), 2);
        assert_eq!(s.take(b), Some("b"));
    }
}
