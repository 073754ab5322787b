//! The keys this node announces as a provider, and when each is due again.

use std::collections::{BTreeMap, BTreeSet};

use crate::id::Id;
use crate::time::Time;

/// Keys this node provides, each with its next republish time; bounded by the caller.
#[derive(Clone, Debug, Default)]
pub struct Provided {
    due: BTreeMap<Id, Time>,
    by_time: BTreeSet<(Time, Id)>,
}

impl Provided {
    /// Frees the allocations of emptied maps (see [`crate::shed`]).
    pub(crate) fn shed(&mut self) {
        use crate::shed::Shed;
        self.due.shed();
        self.by_time.shed();
    }

    /// Number of keys provided.
    pub fn len(&self) -> usize {
        self.due.len()
    }

    /// Whether no key is provided.
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }

    /// Whether `key` is provided.
    pub fn contains(&self, key: &Id) -> bool {
        self.due.contains_key(key)
    }

    /// Provides `key`, next due at `due` (replacing any earlier schedule).
    pub fn insert(&mut self, key: Id, due: Time) {
        if let Some(old) = self.due.insert(key, due) {
            self.by_time.remove(&(old, key));
        }
        self.by_time.insert((due, key));
    }

    /// Stops providing `key`; returns whether it was provided.
    pub fn remove(&mut self, key: &Id) -> bool {
        match self.due.remove(key) {
            Some(t) => {
                self.by_time.remove(&(t, *key));
                true
            }
            None => false,
        }
    }

    /// The earliest republish time, if any key is provided.
    pub fn next_due(&self) -> Option<Time> {
        self.by_time.first().map(|&(t, _)| t)
    }

    /// Removes and returns up to `max` keys due at or before `now`, earliest first.
    /// The caller reschedules them with [`Provided::insert`].
    pub fn take_due(&mut self, now: Time, max: usize) -> Vec<Id> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.by_time.first() {
                Some(&(t, key)) if t <= now => {
                    self.by_time.pop_first();
                    self.due.remove(&key);
                    out.push(key);
                }
                _ => break,
            }
        }
        out
    }

    /// Every provided key, in id order.
    pub fn keys(&self) -> impl Iterator<Item = &Id> + '_ {
        self.due.keys()
    }
}
