//! The k-bucket routing table.

use core::time::Duration;

use crate::contact::{AddrGroup, Address, Contact};
use core::ops::RangeBounds;

use crate::distance::{Distance, DistanceMetric, Metric};
use crate::id::Id;
use crate::time::Time;

use super::bucket::{Bucket, Entry};

/// The bounds and policies of a [`RoutingTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableConfig {
    /// `k`: the most live contacts a bucket holds.
    pub k: usize,
    /// The most stand-in contacts a full bucket caches for when one of its entries goes.
    pub replacement_cache: usize,
    /// Unanswered requests in a row after which a contact is dropped.
    pub max_failures: u8,
    /// Live contacts (and, apart, stand-ins) from one address group per bucket.
    pub max_per_group_per_bucket: usize,
    /// Live contacts from one address group in the whole table.
    pub max_per_group: usize,
}

/// What [`RoutingTable::observe`] did with a contact that showed signs of life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed<A> {
    /// The contact was known; it is now the freshest in its bucket.
    Refreshed,
    /// The contact was new and had room.
    Inserted,
    /// The bucket is full: the contact waits in the replacement cache, and the
    /// bucket's least-recently-seen contact should be pinged; if that ping fails,
    /// report it with [`RoutingTable::record_failure`] and the stand-in takes its place.
    PingNeeded(Contact<A>),
    /// The bucket is full and a liveness ping is already out; the contact waits in
    /// the replacement cache.
    Cached,
    /// The contact is this node itself and was ignored.
    OwnId,
    /// The contact's address group holds its share of the bucket or the table
    /// (Amino's diversity filter); it was neither added nor cached.
    Refused,
}

/// Kademlia's routing table: contacts sorted into buckets by their distance from
/// the node, at most `k` per bucket, long-lived contacts preferred.
///
/// Buckets are stored sparsely (only those in use), so a node in a network of
/// 100,000 holds a few hundred contacts, not 256 empty buckets.
///
/// Implementation note: beyond the paper, a bucket holds at most
/// `max_per_group_per_bucket` contacts from one address group and the table at
/// most `max_per_group` (Amino's diversity filter, go-libp2p-kbucket's
/// `peerdiversity`), so one operator with one /24 of addresses cannot fill a
/// node's view of the network; addresses without a group are exempt.
#[derive(Clone, Debug)]
pub struct RoutingTable<A> {
    own: Id,
    metric: Metric,
    config: TableConfig,
    /// Buckets in use, sorted by index.
    buckets: Vec<Bucket<A>>,
    len: usize,
    /// Live contacts per address group, folded into a few counters
    /// ([`GroupSketch`]): a bound on any group's count that spares most
    /// admissions a scan of the table.
    sketch: GroupSketch,
}

impl<A> RoutingTable<A> {
    /// Bytes of one bucket, for [`crate::Config::memory_bound`].
    pub(crate) const BUCKET_BYTES: usize = core::mem::size_of::<Bucket<A>>();
    /// Bytes of one live contact in a bucket.
    pub(crate) const ENTRY_BYTES: usize = core::mem::size_of::<Entry<A>>();
    /// Bytes of one stand-in contact.
    pub(crate) const REPLACEMENT_BYTES: usize = core::mem::size_of::<Contact<A>>();
}

impl<A: Address> RoutingTable<A> {
    /// An empty table for the node `own`.
    pub fn new(own: Id, metric: Metric, config: TableConfig) -> Self {
        RoutingTable {
            own,
            metric,
            config,
            buckets: Vec::new(),
            len: 0,
            sketch: GroupSketch::default(),
        }
    }

    /// Live contacts in the table from `group`.
    pub fn group_count(&self, group: &AddrGroup) -> usize {
        group_count(&self.buckets, *group, usize::MAX)
    }

    /// The id of the node that owns this table.
    pub fn own_id(&self) -> Id {
        self.own
    }

    /// The metric that sorts contacts into buckets.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Number of live contacts (stand-ins not counted).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no live contact.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of buckets that hold a contact or a stand-in.
    pub fn buckets_in_use(&self) -> usize {
        self.buckets.len()
    }

    fn bucket_slot(&self, index: usize) -> Result<usize, usize> {
        self.buckets
            .binary_search_by_key(&(index as u16), |b| b.index)
    }

    /// The contact with this id, if the table holds it.
    pub fn get(&self, id: &Id) -> Option<&Contact<A>> {
        let index = self.metric.bucket_index(&self.own, id)?;
        let bucket = &self.buckets[self.bucket_slot(index).ok()?];
        bucket.position(id).map(|p| &bucket.entries[p].contact)
    }

    /// Whether the table holds a live contact with this id.
    pub fn contains(&self, id: &Id) -> bool {
        self.get(id).is_some()
    }

    /// Every live contact, bucket by bucket from the closest, least-recently seen
    /// first within a bucket: a deterministic order.
    pub fn contacts(&self) -> impl Iterator<Item = &Contact<A>> + '_ {
        self.buckets
            .iter()
            .flat_map(|b| b.entries.iter().map(|e| &e.contact))
    }

    /// Records that `contact` is alive (it sent us something, or answered).
    pub fn observe(&mut self, contact: Contact<A>, now: Time) -> Observed<A> {
        let Some(index) = self.metric.bucket_index(&self.own, &contact.id) else {
            return Observed::OwnId;
        };
        let slot = match self.bucket_slot(index) {
            Ok(slot) => slot,
            Err(slot) => {
                self.buckets.insert(slot, Bucket::new(index as u16, now));
                slot
            }
        };
        let config = self.config;
        let group = contact.addr.group();
        let bucket = &mut self.buckets[slot];
        if let Some(pos) = bucket.position(&contact.id) {
            let mut entry = bucket.entries.remove(pos);
            let old_group = entry.contact.addr.group();
            // A contact that moves to another group counts against that one;
            // refused, it keeps the address it had.
            if old_group != group && admits(&config, &self.buckets, &self.sketch, slot, group) {
                self.sketch.remove(old_group);
                self.sketch.add(group);
                entry.contact.addr = contact.addr;
            }
            let bucket = &mut self.buckets[slot];
            entry.failures = 0;
            if bucket.pinging == Some(entry.contact.id) {
                bucket.pinging = None;
            }
            bucket.entries.push(entry);
            return Observed::Refreshed;
        }
        if !admits(&config, &self.buckets, &self.sketch, slot, group) {
            let room = self.buckets[slot].entries.len() < config.k;
            // Implementation note: where Amino refuses a contact whose group
            // holds its share, we let it take the place of that group's
            // farthest contact (in the bucket, or in the table) if it is
            // nearer: the shares stay the same, only that group loses, and the
            // nodes nearest to us, whom lookups of our neighbourhood end at,
            // are never crowded out by far ones of their group that came first.
            if room && self.evict_farther_of_group(index, &contact) {
                return self.observe(contact, now);
            }
            let bucket = &mut self.buckets[slot];
            bucket.replacements.retain(|c| c.id != contact.id);
            let unused = bucket.is_unused();
            if unused {
                self.buckets.remove(slot);
            }
            return Observed::Refused;
        }
        let bucket = &mut self.buckets[slot];
        if bucket.entries.len() < config.k {
            bucket.replacements.retain(|c| c.id != contact.id);
            bucket.push(
                Entry {
                    contact,
                    failures: 0,
                },
                config.k,
            );
            self.sketch.add(group);
            self.len += 1;
            return Observed::Inserted;
        }
        // The cache obeys the per-bucket share too (its own contact aside).
        let cached = bucket
            .replacements
            .iter()
            .filter(|c| c.id != contact.id && group.is_some() && c.addr.group() == group)
            .count();
        if cached >= config.max_per_group_per_bucket {
            return Observed::Refused;
        }
        bucket.cache_replacement(contact, config.replacement_cache);
        if bucket.pinging.is_some() || config.replacement_cache == 0 {
            return Observed::Cached;
        }
        let head = bucket.entries[0].contact.clone();
        bucket.pinging = Some(head.id);
        Observed::PingNeeded(head)
    }

    /// Makes room for `newcomer` (headed for bucket `index`) when its group
    /// holds its share: drops the group's farthest contact, within that bucket
    /// if the bucket's share binds, else within the table, if that one is
    /// farther from us than the newcomer. No stand-in is promoted in its
    /// place: the bucket refills as contacts are seen. Returns whether one went.
    fn evict_farther_of_group(&mut self, index: usize, newcomer: &Contact<A>) -> bool {
        let Some(g) = newcomer.addr.group() else {
            return false;
        };
        let own = self.own;
        let metric = self.metric;
        let in_bucket = self
            .bucket_slot(index)
            .map(|s| {
                self.buckets[s]
                    .entries
                    .iter()
                    .filter(|e| e.contact.addr.group() == Some(g))
                    .count()
            })
            .unwrap_or(0);
        let bucket_binds = in_bucket >= self.config.max_per_group_per_bucket;
        let far = self
            .buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| !bucket_binds || b.index as usize == index)
            .flat_map(|(slot, b)| {
                b.entries
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.contact.addr.group() == Some(g))
                    .map(move |(pos, e)| (metric.distance(&own, &e.contact.id), slot, pos))
            })
            .max();
        let Some((d, slot, pos)) = far else {
            return false;
        };
        if d <= metric.distance(&own, &newcomer.id) {
            return false;
        }
        let bucket = &mut self.buckets[slot];
        let removed = bucket.entries.remove(pos);
        if bucket.pinging == Some(removed.contact.id) {
            bucket.pinging = None;
        }
        self.sketch.remove(Some(g));
        self.len -= 1;
        if self.buckets[slot].is_unused() {
            self.buckets.remove(slot);
        }
        true
    }

    /// Removes the live contact at `pos` of the bucket at `slot` and promotes
    /// the freshest stand-in the diversity limits admit in its place.
    fn remove_entry(&mut self, slot: usize, pos: usize) -> Contact<A> {
        let config = self.config;
        let bucket = &mut self.buckets[slot];
        let removed = bucket.entries.remove(pos);
        if bucket.pinging == Some(removed.contact.id) {
            bucket.pinging = None;
        }
        self.sketch.remove(removed.contact.addr.group());
        self.len -= 1;
        let next = self.buckets[slot]
            .replacements
            .iter()
            .rposition(|c| admits(&config, &self.buckets, &self.sketch, slot, c.addr.group()));
        if let Some(i) = next {
            let bucket = &mut self.buckets[slot];
            let contact = bucket.replacements.remove(i);
            self.sketch.add(contact.addr.group());
            bucket.push(
                Entry {
                    contact,
                    failures: 0,
                },
                config.k,
            );
            self.len += 1;
        }
        removed.contact
    }

    /// Records that a request to `id` went unanswered. Returns the contact if it
    /// was dropped: after `max_failures` failures in a row, or at once if it was
    /// being pinged for eviction.
    pub fn record_failure(&mut self, id: &Id) -> Option<Contact<A>> {
        let index = self.metric.bucket_index(&self.own, id)?;
        let slot = self.bucket_slot(index).ok()?;
        let max_failures = self.config.max_failures;
        let bucket = &mut self.buckets[slot];
        let Some(pos) = bucket.position(id) else {
            // A stand-in that failed is no stand-in.
            bucket.replacements.retain(|c| c.id != *id);
            return None;
        };
        let entry = &mut bucket.entries[pos];
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures < max_failures && bucket.pinging != Some(*id) {
            return None;
        }
        let removed = self.remove_entry(slot, pos);
        if self.buckets[slot].is_unused() {
            self.buckets.remove(slot);
        }
        Some(removed)
    }

    /// Forgets `id` entirely (e.g. a peer that misbehaved).
    pub fn remove(&mut self, id: &Id) -> Option<Contact<A>> {
        let index = self.metric.bucket_index(&self.own, id)?;
        let slot = self.bucket_slot(index).ok()?;
        let bucket = &mut self.buckets[slot];
        bucket.replacements.retain(|c| c.id != *id);
        let removed = bucket.position(id).map(|pos| self.remove_entry(slot, pos));
        if self.buckets[slot].is_unused() {
            self.buckets.remove(slot);
        }
        removed
    }

    /// The `n` live contacts closest to `target`, closest first.
    ///
    /// The metric decides how: by default it sorts the whole table, XOR sorts
    /// only the buckets that can hold the answer (see `distance/xor.rs`).
    pub fn closest(&self, target: &Id, n: usize) -> Vec<Contact<A>> {
        if n == 0 {
            return Vec::new();
        }
        let mut out: Vec<(Distance, &Contact<A>)> = Vec::with_capacity(n.min(self.len));
        let view = BucketView {
            own: &self.own,
            buckets: &self.buckets,
        };
        self.metric.closest(&view, target, n, &mut out);
        out.truncate(n);
        out.into_iter().map(|(_, c)| c.clone()).collect()
    }

    /// The `n` live contacts closest to `target` under `metric`, closest first:
    /// [`RoutingTable::closest`] when `metric` shaped the table, else a scan of
    /// every contact (a node ranks keys under a metric whose buckets do not
    /// funnel, see [`Metric::table_metric`]).
    pub fn closest_by(&self, metric: Metric, target: &Id, n: usize) -> Vec<Contact<A>> {
        if metric == self.metric {
            return self.closest(target, n);
        }
        if n == 0 {
            return Vec::new();
        }
        let mut out: Vec<(Distance, &Contact<A>)> = Vec::with_capacity(n.min(self.len));
        let view = BucketView {
            own: &self.own,
            buckets: &self.buckets,
        };
        metric.closest_in_any_table(&view, target, n, &mut out);
        out.truncate(n);
        out.into_iter().map(|(_, c)| c.clone()).collect()
    }

    /// Notes that a lookup for `target` just ran, so its bucket needs no refresh.
    pub fn mark_refreshed(&mut self, target: &Id, now: Time) {
        if let Some(index) = self.metric.bucket_index(&self.own, target) {
            if let Ok(slot) = self.bucket_slot(index) {
                self.buckets[slot].last_refreshed = now;
            }
        }
    }

    /// Indices of the buckets in use that no lookup has touched for `interval`.
    pub fn stale_buckets(&self, now: Time, interval: Duration) -> Vec<usize> {
        self.buckets
            .iter()
            .filter(|b| now.saturating_since(b.last_refreshed) >= interval)
            .map(|b| b.index as usize)
            .collect()
    }

    /// The bucket index that `id` falls into, if it is not our own id.
    pub fn bucket_index(&self, id: &Id) -> Option<usize> {
        self.metric.bucket_index(&self.own, id)
    }

    /// Sizes of the buckets in use as `(index, live contacts, stand-ins)`.
    pub fn bucket_sizes(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        self.buckets
            .iter()
            .map(|b| (b.index as usize, b.entries.len(), b.replacements.len()))
    }
}

/// Whether a new live contact in `group` fits the diversity limits of a bucket
/// holding `entries` and of a table holding `groups`; no group, no limit.
fn admits<A: Address>(
    config: &TableConfig,
    buckets: &[Bucket<A>],
    sketch: &GroupSketch,
    slot: usize,
    group: Option<AddrGroup>,
) -> bool {
    let Some(g) = group else {
        return true;
    };
    let in_bucket = buckets[slot]
        .entries
        .iter()
        .filter(|e| e.contact.addr.group() == Some(g))
        .count();
    in_bucket < config.max_per_group_per_bucket
        && (sketch.bound(g) < config.max_per_group
            || group_count(buckets, g, config.max_per_group) < config.max_per_group)
}

/// Cells of a [`GroupSketch`].
const SKETCH_CELLS: usize = 64;

/// Live contacts per address group, hashed into 64 counters: a cell counts
/// every contact whose group falls in it, so it bounds each of those groups'
/// counts from above. A group whose cell is below the table's share cannot
/// hold its share, and is admitted without counting; only a full-looking
/// cell (a few hundred contacts over 64 cells seldom fill one to 6) sends
/// the admission to the exact scan. 128 bytes, where the per-group map it
/// replaces cost a B-tree entry per contact.
#[derive(Clone, Debug)]
struct GroupSketch([u16; SKETCH_CELLS]);

impl Default for GroupSketch {
    fn default() -> Self {
        GroupSketch([0; SKETCH_CELLS])
    }
}

impl GroupSketch {
    fn cell(g: AddrGroup) -> usize {
        // Fibonacci hashing: neighbouring groups land in different cells.
        (g.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize
    }

    /// A bound on the live contacts of `g` (`u16::MAX`: no bound known).
    fn bound(&self, g: AddrGroup) -> usize {
        usize::from(self.0[Self::cell(g)])
    }

    fn add(&mut self, group: Option<AddrGroup>) {
        if let Some(g) = group {
            let c = &mut self.0[Self::cell(g)];
            *c = c.saturating_add(1);
        }
    }

    fn remove(&mut self, group: Option<AddrGroup>) {
        if let Some(g) = group {
            let c = &mut self.0[Self::cell(g)];
            // A saturated cell stays saturated: it no longer knows its count,
            // and an overestimate only costs a scan.
            if *c != u16::MAX {
                *c = c.saturating_sub(1);
            }
        }
    }
}

/// Live contacts of group `g` in the table, counting no further than `enough`.
///
/// Implementation note: counted by a scan rather than kept in a per-group map.
/// The map cost a B-tree entry per live contact (about 30 bytes each, a third of
/// a contact's own size) on every node, all the time, while the scan runs only
/// when a contact not yet in the table arrives, over a few hundred entries.
fn group_count<A: Address>(buckets: &[Bucket<A>], g: AddrGroup, enough: usize) -> usize {
    let mut n = 0;
    for b in buckets {
        for e in &b.entries {
            if e.contact.addr.group() == Some(g) {
                n += 1;
                if n >= enough {
                    return n;
                }
            }
        }
    }
    n
}

/// A routing table's buckets as a metric's `closest` sees them: read-only, in
/// index order, so a metric can sort only the buckets that hold its answer.
pub(crate) struct BucketView<'a, A> {
    own: &'a Id,
    /// Buckets in use, sorted by index.
    buckets: &'a [Bucket<A>],
}

impl<'a, A> BucketView<'a, A> {
    /// The id of the table's owner.
    pub(crate) fn own(&self) -> &'a Id {
        self.own
    }

    /// Indices of the buckets in use, ascending.
    pub(crate) fn indices(&self) -> impl Iterator<Item = usize> + 'a {
        self.buckets.iter().map(|b| b.index as usize)
    }

    /// Appends the live contacts of the buckets whose index is in `range`,
    /// sorted among themselves by `M`'s distance to `target`.
    pub(crate) fn take<M: DistanceMetric + ?Sized>(
        &self,
        range: impl RangeBounds<usize>,
        target: &Id,
        out: &mut Vec<(Distance, &'a Contact<A>)>,
    ) {
        let start = out.len();
        self.extend::<M>(range, target, out);
        // Ids in the table are unique, so distances are too and the order is total.
        out[start..].sort_unstable_by_key(|(d, _)| *d);
    }

    /// Appends the live contacts of the buckets whose index is in `range`, each
    /// with `M`'s distance to `target`, in table order.
    pub(crate) fn extend<M: DistanceMetric + ?Sized>(
        &self,
        range: impl RangeBounds<usize>,
        target: &Id,
        out: &mut Vec<(Distance, &'a Contact<A>)>,
    ) {
        for b in self.buckets {
            if range.contains(&(b.index as usize)) {
                out.extend(
                    b.entries
                        .iter()
                        .map(|e| (M::distance(&e.contact.id, target), &e.contact)),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(k: usize) -> TableConfig {
        TableConfig {
            k,
            replacement_cache: 3,
            max_failures: 2,
            max_per_group_per_bucket: usize::MAX,
            max_per_group: usize::MAX,
        }
    }

    fn id_from(byte: u8, last: u8) -> Id {
        let mut b = [0u8; 32];
        b[0] = byte;
        b[31] = last;
        Id::from_bytes(b)
    }

    #[derive(Debug, Clone)]
    enum Op {
        Observe([u8; 32]),
        Fail(usize),
        Remove(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => any::<[u8; 32]>().prop_map(Op::Observe),
            // Ids close to the owner's so that they collide in the small buckets.
            3 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| {
                let mut x = [0u8; 32];
                x[0] = a & 0x03;
                x[31] = b;
                Op::Observe(x)
            }),
            2 => any::<usize>().prop_map(Op::Fail),
            1 => any::<usize>().prop_map(Op::Remove),
        ]
    }

    proptest! {
        #[test]
        fn invariants_hold_under_any_operations(
            m in crate::distance::any_metric(),
            k in 1usize..6,
            ops in proptest::collection::vec(op(), 0..200),
            target in any::<[u8; 32]>(),
            n in 0usize..40,
        ) {
            let own = Id::ZERO;
            let mut table: RoutingTable<u32> = RoutingTable::new(own, m, config(k));
            let mut seen: Vec<Id> = Vec::new();
            for (t, op) in ops.into_iter().enumerate() {
                let now = Time::from_secs(t as u64);
                match op {
                    Op::Observe(bytes) => {
                        let id = Id::from_bytes(bytes);
                        seen.push(id);
                        let _ = table.observe(Contact::new(id, t as u32), now);
                    }
                    Op::Fail(i) if !seen.is_empty() => { table.record_failure(&seen[i % seen.len()]); }
                    Op::Remove(i) if !seen.is_empty() => { table.remove(&seen[i % seen.len()]); }
                    _ => {}
                }
                // No self, buckets within k, every contact in its right bucket, len consistent.
                prop_assert!(!table.contains(&own));
                let mut count = 0;
                for b in &table.buckets {
                    prop_assert!(b.entries.len() <= k);
                    prop_assert!(b.replacements.len() <= 3);
                    for e in &b.entries {
                        prop_assert_eq!(m.bucket_index(&own, &e.contact.id), Some(b.index as usize));
                    }
                    count += b.entries.len();
                }
                prop_assert_eq!(count, table.len());
                let mut ids: Vec<Id> = table.contacts().map(|c| c.id).collect();
                ids.sort();
                ids.dedup();
                prop_assert_eq!(ids.len(), table.len());
                prop_assert!(table.buckets.windows(2).all(|w| w[0].index < w[1].index));
            }
            // closest equals a brute-force sort of the whole table, for any target
            // and for our own id.
            for t in [Id::from_bytes(target), own] {
                let mut reference: Vec<Contact<u32>> = table.contacts().cloned().collect();
                reference.sort_by_key(|c| m.distance(&c.id, &t));
                reference.truncate(n);
                prop_assert_eq!(table.closest(&t, n), reference);
            }
            // closest: sorted by distance, the right size, and nothing closer left out.
            let target = Id::from_bytes(target);
            let closest = table.closest(&target, n);
            prop_assert_eq!(closest.len(), n.min(table.len()));
            prop_assert!(closest.windows(2).all(|w| m.distance(&w[0].id, &target) < m.distance(&w[1].id, &target)));
            if let Some(last) = closest.last() {
                let worst = m.distance(&last.id, &target);
                let included: Vec<Id> = closest.iter().map(|c| c.id).collect();
                for c in table.contacts() {
                    if !included.contains(&c.id) {
                        prop_assert!(m.distance(&c.id, &target) > worst);
                    }
                }
            }
        }
    }

    use std::collections::BTreeMap;

    /// Counts per (bucket, group).
    type PerBucket = BTreeMap<(u16, AddrGroup), usize>;

    /// Brute force: live contacts per group in each bucket and in the table,
    /// and stand-ins per group in each bucket.
    fn tally(t: &RoutingTable<u32>) -> (PerBucket, BTreeMap<AddrGroup, usize>, PerBucket) {
        let (mut per_bucket, mut per_table, mut cached) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for b in &t.buckets {
            for e in &b.entries {
                let g = e.contact.addr.group().unwrap();
                *per_bucket.entry((b.index, g)).or_insert(0) += 1;
                *per_table.entry(g).or_insert(0) += 1;
            }
            for c in &b.replacements {
                *cached
                    .entry((b.index, c.addr.group().unwrap()))
                    .or_insert(0) += 1;
            }
        }
        (per_bucket, per_table, cached)
    }

    proptest! {
        /// The diversity limits against a brute-force count: never exceeded,
        /// the table's own counts agree, and a contact is refused only when
        /// its group really holds its share.
        #[test]
        fn diversity_limits_hold_against_a_brute_force_count(
            k in 1usize..6,
            per_bucket in 1usize..3,
            per_table in 1usize..5,
            ops in proptest::collection::vec((op(), 0u32..5), 0..200),
        ) {
            let own = Id::ZERO;
            let mut cfg = config(k);
            cfg.max_per_group_per_bucket = per_bucket;
            cfg.max_per_group = per_table;
            let mut table: RoutingTable<u32> = RoutingTable::new(own, Metric::Xor, cfg);
            let mut seen: Vec<Id> = Vec::new();
            for (t, (op, addr)) in ops.into_iter().enumerate() {
                let now = Time::from_secs(t as u64);
                let (before_bucket, before_table, before_cached) = tally(&table);
                match op {
                    Op::Observe(bytes) => {
                        let id = Id::from_bytes(bytes);
                        seen.push(id);
                        let known = table.contains(&id);
                        let before: Vec<Contact<u32>> = table.contacts().cloned().collect();
                        let got = table.observe(Contact::new(id, addr), now);
                        if let (false, Some(index)) = (known, table.bucket_index(&id)) {
                            let g = AddrGroup(u64::from(addr));
                            let in_bucket = before_bucket.get(&(index as u16, g)).copied().unwrap_or(0);
                            let in_table = before_table.get(&g).copied().unwrap_or(0);
                            let over = in_bucket >= per_bucket || in_table >= per_table;
                            match got {
                                Observed::Inserted if over => {
                                    // The group's share gave way to a nearer newcomer:
                                    // exactly one of its contacts went, a farther one.
                                    let gone: Vec<&Contact<u32>> = before
                                        .iter()
                                        .filter(|c| !table.contains(&c.id))
                                        .collect();
                                    prop_assert_eq!(gone.len(), 1);
                                    prop_assert_eq!(gone[0].addr, addr);
                                    let d = |x: &Id| Metric::Xor.distance(&own, x);
                                    prop_assert!(d(&gone[0].id) > d(&id));
                                    if in_bucket >= per_bucket {
                                        prop_assert_eq!(table.bucket_index(&gone[0].id), Some(index));
                                    }
                                }
                                Observed::Refused => {
                                    let in_cache = before_cached.get(&(index as u16, g)).copied().unwrap_or(0);
                                    prop_assert!(over || in_cache >= per_bucket);
                                    prop_assert!(!table.contains(&id));
                                }
                                _ => prop_assert!(!over),
                            }
                        }
                    }
                    Op::Fail(i) if !seen.is_empty() => { table.record_failure(&seen[i % seen.len()]); }
                    Op::Remove(i) if !seen.is_empty() => { table.remove(&seen[i % seen.len()]); }
                    _ => {}
                }
                let (per_b, per_t, cached) = tally(&table);
                prop_assert!(per_b.values().all(|&n| n <= per_bucket));
                prop_assert!(per_t.values().all(|&n| n <= per_table));
                prop_assert!(cached.values().all(|&n| n <= per_bucket));
                prop_assert_eq!(per_t.values().sum::<usize>(), table.len());
                // The sketch bounds every group's count from above.
                for (g, n) in &per_t {
                    prop_assert!(table.sketch.bound(*g) >= *n);
                }
            }
        }
    }

    #[test]
    fn a_table_fed_one_group_keeps_two_a_bucket_and_three_in_all() {
        let mut cfg = config(20);
        cfg.max_per_group_per_bucket = 2;
        cfg.max_per_group = 3;
        let mut t: RoutingTable<u32> = RoutingTable::new(Id::ZERO, Metric::Xor, cfg);
        // 50 contacts at one address (so one group): 25 in bucket 255, 25 in 254.
        for i in 0..50u8 {
            let first = if i % 2 == 0 { 0x80 } else { 0x40 };
            t.observe(Contact::new(id_from(first, i), 7), Time::ZERO);
        }
        assert_eq!(t.len(), 3);
        assert!(t.bucket_sizes().all(|(_, live, _)| live <= 2));
        // Another group still gets in.
        assert_eq!(
            t.observe(Contact::new(id_from(0x80, 200), 8), Time::ZERO),
            Observed::Inserted
        );
        // A nearer one of the full group takes the place of its farthest.
        let near = id_from(0x01, 1);
        assert_eq!(
            t.observe(Contact::new(near, 7), Time::ZERO),
            Observed::Inserted
        );
        assert_eq!(t.group_count(&AddrGroup(7)), 3);
        assert!(t.contains(&near));
        let in_255 = t
            .bucket_sizes()
            .find(|(i, _, _)| *i == 255)
            .map(|(_, live, _)| live);
        assert_eq!(
            in_255,
            Some(1),
            "the group's contact in bucket 255 gave way"
        );
    }

    #[test]
    fn full_bucket_pings_head_and_keeps_it_when_it_answers() {
        let own = Id::ZERO;
        let mut t: RoutingTable<u32> = RoutingTable::new(own, Metric::Xor, config(2));
        // Ids 0x80.., all in bucket 255.
        let a = id_from(0x80, 1);
        let b = id_from(0x81, 2);
        let c = id_from(0x82, 3);
        let d = id_from(0x83, 4);
        assert_eq!(
            t.observe(Contact::new(a, 1), Time::ZERO),
            Observed::Inserted
        );
        assert_eq!(
            t.observe(Contact::new(b, 2), Time::ZERO),
            Observed::Inserted
        );
        assert_eq!(
            t.observe(Contact::new(c, 3), Time::ZERO),
            Observed::PingNeeded(Contact::new(a, 1))
        );
        assert_eq!(t.observe(Contact::new(d, 4), Time::ZERO), Observed::Cached);
        // a answers: it stays, the newcomers wait.
        assert_eq!(
            t.observe(Contact::new(a, 1), Time::from_secs(1)),
            Observed::Refreshed
        );
        assert!(t.contains(&a) && t.contains(&b) && !t.contains(&c));
        // Now b is the head; the next newcomer triggers a ping to b, which fails.
        let e = id_from(0x84, 5);
        assert_eq!(
            t.observe(Contact::new(e, 5), Time::from_secs(2)),
            Observed::PingNeeded(Contact::new(b, 2))
        );
        assert_eq!(t.record_failure(&b), Some(Contact::new(b, 2)));
        // The freshest stand-in took b's place.
        assert!(t.contains(&e) && t.contains(&a) && !t.contains(&b));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn repeated_failures_drop_a_contact() {
        let mut t: RoutingTable<u32> = RoutingTable::new(Id::ZERO, Metric::Xor, config(4));
        let a = id_from(0x80, 1);
        t.observe(Contact::new(a, 1), Time::ZERO);
        assert_eq!(t.record_failure(&a), None);
        assert!(t.contains(&a));
        assert_eq!(t.record_failure(&a), Some(Contact::new(a, 1)));
        assert!(t.is_empty());
        assert_eq!(t.buckets_in_use(), 0);
    }

    #[test]
    fn an_answer_resets_the_failure_count() {
        let mut t: RoutingTable<u32> = RoutingTable::new(Id::ZERO, Metric::Xor, config(4));
        let a = id_from(0x80, 1);
        t.observe(Contact::new(a, 1), Time::ZERO);
        t.record_failure(&a);
        t.observe(Contact::new(a, 1), Time::ZERO);
        assert_eq!(t.record_failure(&a), None);
        assert!(t.contains(&a));
    }

    #[test]
    fn stale_buckets_are_reported_until_refreshed() {
        let mut t: RoutingTable<u32> = RoutingTable::new(Id::ZERO, Metric::Xor, config(4));
        let a = id_from(0x80, 1);
        t.observe(Contact::new(a, 1), Time::ZERO);
        let hour = Duration::from_secs(3600);
        assert!(t.stale_buckets(Time::from_secs(10), hour).is_empty());
        assert_eq!(t.stale_buckets(Time::from_secs(3600), hour), vec![255]);
        t.mark_refreshed(&id_from(0xff, 0), Time::from_secs(3600));
        assert!(t.stale_buckets(Time::from_secs(3700), hour).is_empty());
    }
}
