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
    /// Implementation note: the entry list grows four slots at a time and
    /// never past `k`, so a full bucket of 20 holds 20 slots, not `Vec`'s 32
    /// (at a million nodes that slack was 12 unused contacts in every full
    /// bucket), and a partly full one wastes at most three. Buckets fill
    /// once and then mostly refresh in place, so the extra reallocations are
    /// few.
    pub fn push(&mut self, entry: Entry<A>, k: usize) {
        let len = self.entries.len();
        if len == self.entries.capacity() {
            let target = (len + 4).min(k.max(len + 1));
            self.entries.reserve_exact(target - len);
        }
        self.entries.push(entry);
    }

    pub fn is_unused(&self) -> bool {
        self.entries.is_empty() && self.replacements.is_empty()
    }
}

/// Size regressions: a routing entry is the item a node holds most of (a few
/// hundred at a million nodes), so a field added to it costs that many times.
#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn entries_stay_compact() {
        assert_eq!(size_of::<Contact<u32>>(), 36);
        assert_eq!(size_of::<Entry<u32>>(), 40);
        assert!(
            size_of::<Bucket<u32>>() <= 96,
            "{}",
            size_of::<Bucket<u32>>()
        );
    }

    #[test]
    fn a_bucket_grows_to_k_and_no_further() {
        let mut b: Bucket<u32> = Bucket::new(0, Time::ZERO);
        for i in 0..20u8 {
            let mut id = [0u8; 32];
            id[0] = i;
            let entry = Entry {
                contact: Contact::new(Id::from_bytes(id), u32::from(i)),
                failures: 0,
            };
            b.push(entry, 20);
            assert!(b.entries.capacity() - b.entries.len() < 4);
        }
        assert_eq!(b.entries.capacity(), 20);
    }
}
