//! The tracker's table: for each content key, which peers said they hold it.

use std::collections::{BTreeMap, BTreeSet};

use core::time::Duration;

use crate::contact::{Address, Contact};
use crate::id::Id;
use crate::time::Time;

#[derive(Clone, Debug)]
struct Record<A> {
    contact: Contact<A>,
    /// When the provider last announced; eviction takes the smallest first.
    announced: Time,
}

/// Provider records for the keys this node tracks, bounded in keys and in
/// providers per key; records expire `ttl` after their last announcement.
///
/// When full, the least recently announced record (or key) is evicted first, so a
/// flood of announcements cannot pin stale entries and the newest data wins.
#[derive(Clone, Debug)]
pub struct ProviderStore<A> {
    /// Per key, records ordered least recently announced first.
    keys: BTreeMap<Id, Vec<Record<A>>>,
    /// `(announced, key, provider)` for every record: drives expiry and eviction.
    by_age: BTreeSet<(Time, Id, Id)>,
    max_keys: usize,
    max_per_key: usize,
    ttl: Duration,
}

impl<A: Address> ProviderStore<A> {
    /// An empty store.
    pub fn new(max_keys: usize, max_per_key: usize, ttl: Duration) -> Self {
        ProviderStore {
            keys: BTreeMap::new(),
            by_age: BTreeSet::new(),
            max_keys,
            max_per_key,
            ttl,
        }
    }

    /// Bytes of one record, for [`crate::Config::memory_bound`].
    pub(crate) const RECORD_BYTES: usize = core::mem::size_of::<Record<A>>();

    /// Number of keys tracked.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Number of records held over all keys.
    pub fn record_count(&self) -> usize {
        self.by_age.len()
    }

    /// Records (or refreshes) that `provider` holds `key`.
    pub fn add(&mut self, now: Time, key: Id, provider: Contact<A>) {
        if let Some(records) = self.keys.get_mut(&key) {
            if let Some(pos) = records.iter().position(|r| r.contact.id == provider.id) {
                let old = records.remove(pos);
                self.by_age.remove(&(old.announced, key, old.contact.id));
            } else if records.len() >= self.max_per_key {
                let old = records.remove(0);
                self.by_age.remove(&(old.announced, key, old.contact.id));
            }
        } else if self.keys.len() >= self.max_keys {
            self.evict_oldest_key();
        }
        self.by_age.insert((now, key, provider.id));
        self.keys.entry(key).or_default().push(Record {
            contact: provider,
            announced: now,
        });
    }

    /// Drops the key whose oldest record is the oldest of all. Implementation note:
    /// "oldest key" is judged by its oldest record, which the age index gives in O(log n).
    fn evict_oldest_key(&mut self) {
        let Some(&(_, key, _)) = self.by_age.first() else {
            return;
        };
        if let Some(records) = self.keys.remove(&key) {
            for r in records {
                self.by_age.remove(&(r.announced, key, r.contact.id));
            }
        }
    }

    /// Up to `max` live providers of `key`, most recently announced first.
    pub fn get(&self, now: Time, key: &Id, max: usize) -> Vec<Contact<A>> {
        let Some(records) = self.keys.get(key) else {
            return Vec::new();
        };
        records
            .iter()
            .rev()
            .filter(|r| r.announced + self.ttl > now)
            .take(max)
            .map(|r| r.contact.clone())
            .collect()
    }

    /// Removes every record whose time-to-live has run out.
    pub fn expire(&mut self, now: Time) {
        while let Some(&(announced, key, provider)) = self.by_age.first() {
            if announced + self.ttl > now {
                break;
            }
            self.by_age.pop_first();
            if let Some(records) = self.keys.get_mut(&key) {
                records.retain(|r| r.contact.id != provider);
                if records.is_empty() {
                    self.keys.remove(&key);
                }
            }
        }
    }

    /// When the next record expires, if any.
    pub fn next_expiry(&self) -> Option<Time> {
        self.by_age.first().map(|&(t, _, _)| t + self.ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::id::test_id as id;

    #[test]
    fn records_expire_after_ttl() {
        let mut s: ProviderStore<u32> = ProviderStore::new(10, 10, Duration::from_secs(100));
        s.add(Time::ZERO, id(1), Contact::new(id(2), 2));
        assert_eq!(s.get(Time::from_secs(99), &id(1), 5).len(), 1);
        assert_eq!(s.next_expiry(), Some(Time::from_secs(100)));
        assert!(s.get(Time::from_secs(100), &id(1), 5).is_empty());
        s.expire(Time::from_secs(100));
        assert_eq!(s.key_count(), 0);
        assert_eq!(s.record_count(), 0);
    }

    #[test]
    fn reannouncing_refreshes_and_oldest_provider_goes_first() {
        let mut s: ProviderStore<u32> = ProviderStore::new(10, 2, Duration::from_secs(100));
        s.add(Time::from_secs(1), id(1), Contact::new(id(10), 10));
        s.add(Time::from_secs(2), id(1), Contact::new(id(11), 11));
        s.add(Time::from_secs(3), id(1), Contact::new(id(10), 10));
        s.add(Time::from_secs(4), id(1), Contact::new(id(12), 12));
        let got: Vec<Id> = s
            .get(Time::from_secs(5), &id(1), 5)
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(got, vec![id(12), id(10)]);
    }

    #[test]
    fn oldest_key_is_evicted_when_full() {
        let mut s: ProviderStore<u32> = ProviderStore::new(2, 2, Duration::from_secs(100));
        s.add(Time::from_secs(1), id(1), Contact::new(id(10), 10));
        s.add(Time::from_secs(2), id(2), Contact::new(id(10), 10));
        s.add(Time::from_secs(3), id(3), Contact::new(id(10), 10));
        assert_eq!(s.key_count(), 2);
        assert!(s.get(Time::from_secs(3), &id(1), 5).is_empty());
        assert_eq!(s.get(Time::from_secs(3), &id(3), 5).len(), 1);
    }

    proptest! {
        #[test]
        fn bounds_hold_and_index_matches(ops in proptest::collection::vec((0u8..8, 0u8..8, 0u64..500), 0..300)) {
            let mut s: ProviderStore<u32> = ProviderStore::new(4, 3, Duration::from_secs(100));
            let mut now = Time::ZERO;
            for (k, p, dt) in ops {
                now += Duration::from_secs(dt % 60);
                if dt % 7 == 0 {
                    s.expire(now);
                } else {
                    s.add(now, id(k), Contact::new(id(100 + p), p as u32));
                }
                prop_assert!(s.key_count() <= 4);
                let total: usize = s.keys.values().map(|r| r.len()).sum();
                prop_assert_eq!(total, s.record_count());
                for r in s.keys.values() {
                    prop_assert!(r.len() <= 3 && !r.is_empty());
                    prop_assert!(r.windows(2).all(|w| w[0].announced <= w[1].announced));
                }
            }
        }
    }
}
