//! The tracker's table: for each content key, which peers said they hold it.

use std::collections::{BTreeMap, BTreeSet};

use core::time::Duration;

use rand_core::RngCore;

use crate::contact::{AddrGroup, Address, Contact};
use crate::id::Id;
use crate::time::Time;

#[derive(Clone, Debug)]
struct Record<A> {
    contact: Contact<A>,
    /// When the provider last announced; expiry takes the smallest first.
    announced: Time,
    /// When this record was first stored (a refresh keeps it): how long the
    /// provider has stood, which orders and weights answers.
    since: Time,
}

/// The bounds of a [`ProviderStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Keys tracked at most.
    pub max_keys: usize,
    /// Records per key at most.
    pub max_per_key: usize,
    /// Records over all keys at most.
    pub max_records: usize,
    /// Records per key from one address group at most.
    pub max_per_group_per_key: usize,
    /// Records over all keys from one peer id at most.
    pub max_per_peer: usize,
    /// Records over all keys from one address group at most.
    pub max_per_group: usize,
    /// How long a record lives after its last announcement.
    pub ttl: Duration,
}

/// What [`ProviderStore::add`] did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// A new record was stored.
    Stored,
    /// The peer's record for the key was renewed.
    Refreshed,
    /// The record was refused; nothing changed.
    Refused(Refusal),
}

/// Why a tracker refused a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Refusal {
    /// The key's list is full of live records (old records are kept before new ones).
    KeyFull,
    /// The store tracks as many keys, or holds as many records, as it may,
    /// all live.
    StoreFull,
    /// The peer id holds its share of the store's records.
    PeerQuota,
    /// The peer's address group holds its share of the key's or the store's records.
    GroupQuota,
}

/// Provider records for the keys this node tracks, bounded in keys, in
/// providers per key, and in the share one peer id and one address group may
/// hold; records expire `ttl` after their last announcement.
///
/// Implementation note: when a list (or the store) is full, old records are
/// kept and the new one is refused, Kademlia's rule for contacts (paper §2.2)
/// applied to records: a peer that has announced for long is likelier to stay,
/// and a flood of new announcements cannot push it out. A re-announcement
/// always refreshes its record; expiry frees room at the TTL.
#[derive(Clone, Debug)]
pub struct ProviderStore<A> {
    /// Per key, records ordered least recently announced first.
    keys: BTreeMap<Id, Vec<Record<A>>>,
    /// `(announced, key, provider)` for every record: drives expiry.
    by_age: BTreeSet<(Time, Id, Id)>,
    /// Records per peer id (only ids that hold one).
    per_peer: BTreeMap<Id, usize>,
    /// Records per address group (only groups that hold one; exempt addresses
    /// are not counted).
    per_group: BTreeMap<AddrGroup, usize>,
    limits: StoreLimits,
}

impl<A> ProviderStore<A> {
    /// Frees the allocations of emptied maps (see [`crate::shed`]).
    pub(crate) fn shed(&mut self) {
        use crate::shed::Shed;
        self.keys.shed();
        self.by_age.shed();
        self.per_peer.shed();
        self.per_group.shed();
    }
}

impl<A: Address> ProviderStore<A> {
    /// An empty store.
    pub fn new(limits: StoreLimits) -> Self {
        ProviderStore {
            keys: BTreeMap::new(),
            by_age: BTreeSet::new(),
            per_peer: BTreeMap::new(),
            per_group: BTreeMap::new(),
            limits,
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

    /// Peer ids and address groups with a count kept (for memory accounting).
    pub(crate) fn quota_entries(&self) -> (usize, usize) {
        (self.per_peer.len(), self.per_group.len())
    }

    /// Records (or refreshes) that `provider` holds `key`, unless a bound
    /// refuses it; records past their TTL are dropped first.
    pub fn add(&mut self, now: Time, key: Id, provider: Contact<A>) -> Admission {
        self.expire(now);
        let group = provider.addr.group();
        let l = self.limits;
        let records = self.keys.get(&key);
        let existing = records.and_then(|r| r.iter().position(|r| r.contact.id == provider.id));
        if let (Some(pos), Some(records)) = (existing, records) {
            let old_group = records[pos].contact.addr.group();
            // A record that moves to another group counts against the new one.
            if old_group != group && group.is_some() {
                let in_key = records
                    .iter()
                    .filter(|r| r.contact.addr.group() == group)
                    .count();
                if in_key >= l.max_per_group_per_key || self.group_count(group) >= l.max_per_group {
                    return Admission::Refused(Refusal::GroupQuota);
                }
            }
            let since = records[pos].since;
            self.remove_record(key, pos);
            self.insert_record(now, key, provider, since);
            return Admission::Refreshed;
        }
        if self.per_peer.get(&provider.id).copied().unwrap_or(0) >= l.max_per_peer {
            return Admission::Refused(Refusal::PeerQuota);
        }
        if group.is_some() {
            let in_key = records.map_or(0, |r| {
                r.iter().filter(|r| r.contact.addr.group() == group).count()
            });
            if in_key >= l.max_per_group_per_key || self.group_count(group) >= l.max_per_group {
                return Admission::Refused(Refusal::GroupQuota);
            }
        }
        match records {
            Some(r) if r.len() >= l.max_per_key => return Admission::Refused(Refusal::KeyFull),
            None if self.keys.len() >= l.max_keys => return Admission::Refused(Refusal::StoreFull),
            _ if self.by_age.len() >= l.max_records => {
                return Admission::Refused(Refusal::StoreFull)
            }
            _ => {}
        }
        self.insert_record(now, key, provider, now);
        Admission::Stored
    }

    fn group_count(&self, group: Option<AddrGroup>) -> usize {
        group.map_or(0, |g| self.per_group.get(&g).copied().unwrap_or(0))
    }

    /// Appends a record (the most recently announced, first stored at
    /// `since`) and counts it.
    fn insert_record(&mut self, now: Time, key: Id, provider: Contact<A>, since: Time) {
        self.by_age.insert((now, key, provider.id));
        *self.per_peer.entry(provider.id).or_insert(0) += 1;
        if let Some(g) = provider.addr.group() {
            *self.per_group.entry(g).or_insert(0) += 1;
        }
        self.keys.entry(key).or_default().push(Record {
            contact: provider,
            announced: now,
            since,
        });
    }

    /// Removes `key`'s record at `pos` and uncounts it (the key stays, even if empty).
    fn remove_record(&mut self, key: Id, pos: usize) {
        let Some(records) = self.keys.get_mut(&key) else {
            return;
        };
        let old = records.remove(pos);
        self.by_age.remove(&(old.announced, key, old.contact.id));
        uncount(&mut self.per_peer, old.contact.id);
        if let Some(g) = old.contact.addr.group() {
            uncount(&mut self.per_group, g);
        }
    }

    /// Up to `max` live providers of `key`, longest-standing first (first
    /// stored earliest; ties by most recent announcement).
    ///
    /// Implementation note: the order is the store's preference for old
    /// records carried into its answers. A flood of fresh records cannot push
    /// the honest ones out of a list (a full list refuses newcomers), and
    /// with this order it cannot push them to the back of an answer either,
    /// where an asker that takes only the first few (a disjoint lookup's path
    /// takes its share) would never see them.
    pub fn get(&self, now: Time, key: &Id, max: usize) -> Vec<Contact<A>> {
        let mut live = self.live(now, key);
        live.truncate(max);
        live.into_iter().map(|r| r.contact.clone()).collect()
    }

    /// Up to `max` live providers of `key` for an answer: all of them when
    /// they fit, otherwise `max` drawn with `rng`, each with a weight of the
    /// whole seconds it has stood plus one; longest-standing first.
    ///
    /// Why weighted by standing: a full list refuses newcomers, so a flood
    /// cannot push an honest record out; weighting keeps the flood from
    /// drowning it in answers too, since records that came with a flood are
    /// younger than the ones they came to hide. Why a sample at all: named in
    /// every answer, the first providers of a popular key (its publisher
    /// among them) would carry a share of every download for as long as they
    /// stay; a sample spreads the load over the providers the tracker keeps,
    /// as a BitTorrent tracker answers with a random subset of its swarm.
    pub fn sample<R: RngCore>(
        &self,
        now: Time,
        key: &Id,
        max: usize,
        rng: &mut R,
    ) -> Vec<Contact<A>> {
        let mut live = self.live(now, key);
        if live.len() > max {
            let mut weighted: Vec<(u64, &Record<A>)> = live
                .iter()
                .map(|r| ((now - r.since).as_secs().saturating_add(1), *r))
                .collect();
            let mut total: u64 = weighted.iter().map(|(w, _)| *w).sum();
            let mut picked = Vec::with_capacity(max);
            // Weighted draws without replacement: at most `max` passes over a
            // list of at most `max_per_key`.
            for _ in 0..max {
                let mut at = rng.next_u64() % total.max(1);
                let i = weighted
                    .iter()
                    .position(|(w, _)| {
                        let hit = at < *w;
                        at = at.saturating_sub(*w);
                        hit
                    })
                    .unwrap_or(weighted.len() - 1);
                let (w, r) = weighted.swap_remove(i);
                total -= w;
                picked.push(r);
            }
            picked.sort_by_key(|r| r.since);
            live = picked;
        }
        live.into_iter().map(|r| r.contact.clone()).collect()
    }

    /// The live records of `key`, longest-standing first.
    fn live(&self, now: Time, key: &Id) -> Vec<&Record<A>> {
        let Some(records) = self.keys.get(key) else {
            return Vec::new();
        };
        let mut live: Vec<&Record<A>> = records
            .iter()
            .rev()
            .filter(|r| r.announced + self.limits.ttl > now)
            .collect();
        // Stable: records first stored at one instant stay most recent first.
        live.sort_by_key(|r| r.since);
        live
    }

    /// Removes every record whose time-to-live has run out.
    pub fn expire(&mut self, now: Time) {
        while let Some(&(announced, key, provider)) = self.by_age.first() {
            if announced + self.limits.ttl > now {
                break;
            }
            let pos = self
                .keys
                .get(&key)
                .and_then(|r| r.iter().position(|r| r.contact.id == provider));
            match pos {
                Some(pos) => self.remove_record(key, pos),
                None => {
                    self.by_age.pop_first();
                }
            }
            if self.keys.get(&key).is_some_and(Vec::is_empty) {
                self.keys.remove(&key);
            }
        }
    }

    /// When the next record expires, if any.
    pub fn next_expiry(&self) -> Option<Time> {
        self.by_age.first().map(|&(t, _, _)| t + self.limits.ttl)
    }

    /// Panics unless the indexes mirror the records: the age index holds each
    /// record once, the counts per peer and per group match, every bound holds.
    pub fn check(&self) {
        let mut peers: BTreeMap<Id, usize> = BTreeMap::new();
        let mut groups: BTreeMap<AddrGroup, usize> = BTreeMap::new();
        let mut records = 0;
        let l = self.limits;
        assert!(self.keys.len() <= l.max_keys, "keys over their bound");
        assert!(
            self.by_age.len() <= l.max_records,
            "records over their bound"
        );
        for (key, list) in &self.keys {
            assert!(!list.is_empty() && list.len() <= l.max_per_key, "list size");
            assert!(
                list.windows(2).all(|w| w[0].announced <= w[1].announced),
                "list out of age order"
            );
            let mut key_groups: BTreeMap<AddrGroup, usize> = BTreeMap::new();
            for r in list {
                assert!(
                    self.by_age.contains(&(r.announced, *key, r.contact.id)),
                    "a record missing from the age index"
                );
                *peers.entry(r.contact.id).or_insert(0) += 1;
                if let Some(g) = r.contact.addr.group() {
                    *groups.entry(g).or_insert(0) += 1;
                    *key_groups.entry(g).or_insert(0) += 1;
                }
                records += 1;
            }
            assert!(
                key_groups.values().all(|&n| n <= l.max_per_group_per_key),
                "a group over its share of a key"
            );
        }
        assert_eq!(records, self.by_age.len(), "age index size");
        assert_eq!(peers, self.per_peer, "per-peer counts");
        assert_eq!(groups, self.per_group, "per-group counts");
        assert!(
            peers.values().all(|&n| n <= l.max_per_peer),
            "a peer over its share"
        );
        assert!(
            groups.values().all(|&n| n <= l.max_per_group),
            "a group over its share"
        );
    }
}

fn uncount<K: Ord>(map: &mut BTreeMap<K, usize>, k: K) {
    if let Some(n) = map.get_mut(&k) {
        *n -= 1;
        if *n == 0 {
            map.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::id::test_id as id;

    fn limits(max_keys: usize, max_per_key: usize) -> StoreLimits {
        StoreLimits {
            max_keys,
            max_per_key,
            max_records: usize::MAX,
            max_per_group_per_key: usize::MAX,
            max_per_peer: usize::MAX,
            max_per_group: usize::MAX,
            ttl: Duration::from_secs(100),
        }
    }

    fn ids(s: &ProviderStore<u32>, now: u64, key: u8) -> Vec<Id> {
        s.get(Time::from_secs(now), &id(key), 50)
            .iter()
            .map(|c| c.id)
            .collect()
    }

    #[test]
    fn records_expire_after_ttl() {
        let mut s: ProviderStore<u32> = ProviderStore::new(limits(10, 10));
        s.add(Time::ZERO, id(1), Contact::new(id(2), 2));
        assert_eq!(s.get(Time::from_secs(99), &id(1), 5).len(), 1);
        assert_eq!(s.next_expiry(), Some(Time::from_secs(100)));
        assert!(s.get(Time::from_secs(100), &id(1), 5).is_empty());
        s.expire(Time::from_secs(100));
        assert_eq!(s.key_count(), 0);
        assert_eq!(s.record_count(), 0);
        s.check();
    }

    /// Answers over 50 draws from a list of `n` records stored one a second
    /// from `first` (the earliest is provider 0) and asked at `now`: how often
    /// each provider was named.
    fn answers(first: u64, n: u8, now: u64) -> BTreeMap<Id, usize> {
        use rand_chacha::rand_core::SeedableRng;
        let mut s: ProviderStore<u32> = ProviderStore::new(StoreLimits {
            ttl: Duration::from_secs(1_000_000),
            ..limits(10, 256)
        });
        s.add(Time::ZERO, id(1), Contact::new(id(0), 0));
        for p in 1..n {
            let t = Time::from_secs(first + u64::from(p));
            s.add(t, id(1), Contact::new(id(p), u32::from(p)));
        }
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(7);
        let mut seen = BTreeMap::new();
        for _ in 0..50 {
            let got = s.sample(Time::from_secs(now), &id(1), 20, &mut rng);
            let distinct: BTreeSet<Id> = got.iter().map(|c| c.id).collect();
            assert_eq!(
                (got.len(), distinct.len()),
                (20, 20),
                "20 distinct providers"
            );
            for i in distinct {
                *seen.entry(i).or_insert(0) += 1;
            }
        }
        seen
    }

    #[test]
    fn a_crowds_first_provider_is_not_in_every_answer() {
        // A flash crowd: 100 providers came one a second after the first.
        let seen = answers(0, 100, 100);
        assert!(
            seen[&id(0)] < 30,
            "the first provider: {} of 50",
            seen[&id(0)]
        );
        assert!(seen.len() >= 80, "{} of 100 providers named", seen.len());
    }

    #[test]
    fn a_flood_does_not_drown_the_record_it_came_to_hide() {
        // One honest record, then a flood of 255 an hour later.
        let seen = answers(3_600, 255, 3_900);
        assert!(
            seen[&id(0)] >= 40,
            "the honest record: {} of 50",
            seen[&id(0)]
        );
    }

    #[test]
    fn a_short_list_is_answered_whole_longest_standing_first() {
        use rand_chacha::rand_core::SeedableRng;
        let mut s: ProviderStore<u32> = ProviderStore::new(limits(10, 10));
        for (t, p) in [(1, 5), (2, 6), (3, 7)] {
            s.add(Time::from_secs(t), id(1), Contact::new(id(p), 1));
        }
        // 5 re-announces: it keeps its standing.
        s.add(Time::from_secs(4), id(1), Contact::new(id(5), 1));
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(1);
        let got: Vec<Id> = s
            .sample(Time::from_secs(5), &id(1), 20, &mut rng)
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(got, vec![id(5), id(6), id(7)]);
        assert_eq!(ids(&s, 5, 1), got);
        // Expired records are never named: 6 and 7 lapse at 102 and 103.
        let late = s.sample(Time::from_secs(103), &id(1), 20, &mut rng);
        assert_eq!(late, vec![Contact::new(id(5), 1)]);
    }

    #[test]
    fn the_store_holds_at_most_max_records_over_all_keys() {
        let mut s: ProviderStore<u32> = ProviderStore::new(StoreLimits {
            max_records: 5,
            ..limits(10, 10)
        });
        for p in 0..5u8 {
            assert_eq!(
                s.add(Time::ZERO, id(p % 2), Contact::new(id(p), 1)),
                Admission::Stored
            );
        }
        assert_eq!(
            s.add(Time::ZERO, id(9), Contact::new(id(9), 1)),
            Admission::Refused(Refusal::StoreFull)
        );
        assert_eq!(
            s.add(Time::ZERO, id(0), Contact::new(id(0), 1)),
            Admission::Refreshed
        );
        s.check();
    }

    #[test]
    fn a_full_list_keeps_its_old_records_and_reannouncing_refreshes() {
        let mut s: ProviderStore<u32> = ProviderStore::new(limits(10, 2));
        let add = |s: &mut ProviderStore<u32>, t, p| {
            s.add(Time::from_secs(t), id(1), Contact::new(id(p), u32::from(p)))
        };
        assert_eq!(add(&mut s, 1, 10), Admission::Stored);
        assert_eq!(add(&mut s, 2, 11), Admission::Stored);
        assert_eq!(add(&mut s, 3, 10), Admission::Refreshed);
        assert_eq!(add(&mut s, 4, 12), Admission::Refused(Refusal::KeyFull));
        assert_eq!(ids(&s, 5, 1), vec![id(10), id(11)]);
        // Once 11's record lapses (announced at 2, TTL 100), there is room.
        assert_eq!(add(&mut s, 102, 12), Admission::Stored);
        // Longest-standing first: 10 was first stored at 1, 12 at 102.
        assert_eq!(ids(&s, 102, 1), vec![id(10), id(12)]);
        s.check();
    }

    #[test]
    fn a_flood_neither_evicts_nor_buries_the_old_record() {
        let mut s: ProviderStore<u32> = ProviderStore::new(limits(10, 4));
        let add = |s: &mut ProviderStore<u32>, t, p| {
            s.add(Time::from_secs(t), id(1), Contact::new(id(p), u32::from(p)))
        };
        assert_eq!(add(&mut s, 1, 10), Admission::Stored);
        for (t, p) in (2..40).zip(20u8..) {
            let _ = add(&mut s, t, p);
        }
        // The flooders keep refreshing; the honest record stays, first.
        for p in 20u8..23 {
            assert_eq!(add(&mut s, 50, p), Admission::Refreshed);
        }
        assert_eq!(add(&mut s, 51, 40), Admission::Refused(Refusal::KeyFull));
        assert_eq!(ids(&s, 52, 1)[0], id(10));
        assert_eq!(
            s.get(Time::from_secs(52), &id(1), 1),
            vec![Contact::new(id(10), 10)]
        );
        s.check();
    }

    #[test]
    fn a_full_store_refuses_new_keys() {
        let mut s: ProviderStore<u32> = ProviderStore::new(limits(2, 2));
        s.add(Time::from_secs(1), id(1), Contact::new(id(10), 10));
        s.add(Time::from_secs(2), id(2), Contact::new(id(10), 10));
        assert_eq!(
            s.add(Time::from_secs(3), id(3), Contact::new(id(10), 10)),
            Admission::Refused(Refusal::StoreFull)
        );
        assert_eq!(s.key_count(), 2);
        assert_eq!(ids(&s, 3, 1), vec![id(10)]);
        assert!(ids(&s, 3, 3).is_empty());
    }

    #[test]
    fn one_peer_and_one_group_are_held_to_their_share() {
        let mut l = limits(100, 20);
        l.max_per_peer = 3;
        l.max_per_group = 4;
        l.max_per_group_per_key = 2;
        let mut s: ProviderStore<std::net::SocketAddr> = ProviderStore::new(l);
        let at = |host: u8| std::net::SocketAddr::from(([8, 8, 8, host], 4100));
        let t = Time::ZERO;
        // One peer, many keys: three records.
        for key in 0..10 {
            s.add(t, id(key), Contact::new(id(200), at(1)));
        }
        assert_eq!(s.record_count(), 3);
        // Its group, one key: two records in all (the peer has one already).
        let got: Vec<_> = (0..10)
            .map(|p| s.add(t, id(0), Contact::new(id(100 + p), at(2 + p))))
            .collect();
        assert_eq!(got[0], Admission::Stored);
        assert_eq!(got[1], Admission::Refused(Refusal::GroupQuota));
        // The group, other keys: four records in all.
        for key in 50..60 {
            s.add(t, id(key), Contact::new(id(key), at(key)));
        }
        assert_eq!(s.record_count(), 4);
        // Another group is untouched by either share, and a local address is exempt.
        let other = std::net::SocketAddr::from(([9, 9, 9, 9], 1));
        assert_eq!(
            s.add(t, id(0), Contact::new(id(150), other)),
            Admission::Stored
        );
        let local = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        for p in 0..5 {
            assert_eq!(
                s.add(t, id(0), Contact::new(id(160 + p), local)),
                Admission::Stored
            );
        }
        s.check();
    }

    proptest! {
        #[test]
        fn bounds_hold_and_indexes_mirror_the_records(
            ops in proptest::collection::vec((0u8..8, 0u8..12, 0u8..4, 0u64..500), 0..300),
        ) {
            let l = StoreLimits {
                max_keys: 4,
                max_per_key: 3,
                max_records: 8,
                max_per_group_per_key: 2,
                max_per_peer: 3,
                max_per_group: 5,
                ttl: Duration::from_secs(100),
            };
            let mut s: ProviderStore<std::net::SocketAddr> = ProviderStore::new(l);
            let mut now = Time::ZERO;
            for (k, p, g, dt) in ops {
                now += Duration::from_secs(dt % 60);
                if dt % 7 == 0 {
                    s.expire(now);
                } else {
                    // Four groups (the last one exempt), peers moving between them.
                    let ip = if g == 3 { [10, 0, 0, p] } else { [8, 8, g, p] };
                    let addr = std::net::SocketAddr::from((ip, 1));
                    let before = s.get(now, &id(k), 10).len();
                    let full = before >= 3;
                    let known = s.get(now, &id(k), 10).iter().any(|c| c.id == id(100 + p));
                    let got = s.add(now, id(k), Contact::new(id(100 + p), addr));
                    // Old before new: a full list never takes a new provider.
                    if full && !known {
                        prop_assert!(matches!(got, Admission::Refused(_)));
                    }
                    if known && g == 3 {
                        prop_assert_eq!(got, Admission::Refreshed);
                    }
                }
                s.check();
            }
        }
    }
}
