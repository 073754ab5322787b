//! One k-bucket: up to k live contacts plus a small cache of stand-ins.

use crate::contact::Contact;
use crate::id::Id;
use crate::time::Time;

/// A contact in a bucket, with what the table knows of its liveness.
///
/// Implementation note: no time of last sight is kept; the entry's place in
/// its bucket (least recently seen first) is all the paper's policy reads,
/// and a contact is 8 bytes smaller for it.
#[derive(Clone, Debug)]
pub(super) struct Entry<A> {
    pub contact: Contact<A>,
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
    pub replacements: Vec<Contact<A>>,
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
    pub fn cache_replacement(&mut self, contact: Contact<A>, cap: usize) {
        if cap == 0 {
            return;
        }
        self.replacements.retain(|c| c.id != contact.id);
        if self.replacements.len() >= cap {
            self.replacements.remove(0);
        }
        if self.replacements.capacity() == 0 {
            self.replacements.reserve_exact(cap);
        }
        self.replacements.push(contact);
    }

    /// Appends a live entry to a bucket that holds fewer than `k`.
    ///
    /// Implementation note: the entry list grows by doubling but never past
    /// `k`, so a full bucket of 20 holds 20 slots, not `Vec`'s 32: at a
    /// million nodes that slack was 12 unused contacts in every full bucket.
    pub fn push(&mut self, entry: Entry<A>, k: usize) {
        let (len, cap) = (self.entries.len(), self.entries.capacity());
        if len == cap {
            let target = (cap * 2).max(4).min(k.max(len + 1));
            self.entries.reserve_exact(target - len);
        }
        self.entries.push(entry);
    }

    pub fn is_unused(&self) -> bool {
        self.entries.is_empty() && self.replacements.is_empty()
    }
}
