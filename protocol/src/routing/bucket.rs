//! One k-bucket: up to k live contacts plus a small cache of stand-ins.

use crate::contact::Contact;
use crate::id::Id;
use crate::time::Time;

/// A contact in a bucket, with what the table knows of its liveness.
#[derive(Clone, Debug)]
pub(super) struct Entry<A> {
    pub contact: Contact<A>,
    pub last_seen: Time,
    /// Requests in a row that went unanswered.
    pub failures: u8,
}

/// The contacts at one distance range from the node.
///
/// `entries` is ordered least-recently seen first, as in the Kademlia paper: the
/// head is the eviction candidate, the tail the freshest contact.
#[derive(Clone, Debug)]
pub(super) struct Bucket<A> {
    pub index: u16,
    pub entries: Vec<Entry<A>>,
    /// Contacts seen while the bucket was full, most recent last; bounded.
    pub replacements: Vec<(Contact<A>, Time)>,
    /// The head contact being pinged to decide whether it may be evicted.
    pub pinging: Option<Id>,
    /// When a lookup last targeted this bucket's range, or a contact joined it.
    pub last_refreshed: Time,
}

impl<A: Clone> Bucket<A> {
    pub fn new(index: u16, now: Time) -> Self {
        Bucket {
            index,
            entries: Vec::new(),
            replacements: Vec::new(),
            pinging: None,
            last_refreshed: now,
        }
    }

    pub fn position(&self, id: &Id) -> Option<usize> {
        self.entries.iter().position(|e| e.contact.id == *id)
    }

    /// Caches `contact` as a stand-in, replacing an older copy of it and
    /// dropping the stalest stand-in when the cache is full.
    pub fn cache_replacement(&mut self, contact: Contact<A>, now: Time, cap: usize) {
        if cap == 0 {
            return;
        }
        self.replacements.retain(|(c, _)| c.id != contact.id);
        if self.replacements.len() >= cap {
            self.replacements.remove(0);
        }
        self.replacements.push((contact, now));
    }

    pub fn is_unused(&self) -> bool {
        self.entries.is_empty() && self.replacements.is_empty()
    }
}
