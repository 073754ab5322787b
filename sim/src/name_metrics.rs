//! What name publications and resolutions measured: the records published,
//! what each node resolved and when, and how long resolutions took with and
//! without a record already in hand. Every number comes from the simulator's
//! own actions and the protocol's `QueryFinished` events.

use std::collections::BTreeMap;

use distroweb_protocol::names::{NameKey, NameRecord};
use distroweb_protocol::{Id, QueryId, Time};
use hdrhistogram::Histogram;

use crate::addr::NodeIdx;

/// Names whose publications and resolutions are tracked; a bound chosen here
/// (experiments publish a handful), past which new names go uncounted.
pub const MAX_NAMES: usize = 1_024;
/// Versions kept per tracked name; a bound chosen here, past which new
/// versions go uncounted (and resolving them counts as wrong).
pub const MAX_VERSIONS: usize = 1_024;
/// Resolutions in flight whose start is remembered (whether the node held a
/// record, the latest sequence then); a bound chosen here, far above what a
/// run keeps in flight, past which a resolution goes unclassified.
pub const MAX_PENDING: usize = 1 << 20;
/// Largest latency recorded exactly, µs (an hour); larger values saturate.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// One version of a name, as its publisher's command accepted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// Its sequence number.
    pub seq: u64,
    /// The root it points at.
    pub root: Id,
    /// When the publisher's command ran.
    pub at: Time,
}

/// The newest version of a name a node has resolved, and when it first did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The highest sequence a resolution of this node returned.
    pub seq: u64,
    /// The root of that record.
    pub root: Id,
    /// When a resolution first returned it: the moment this node saw the version.
    pub at: Time,
}

/// What the simulator remembers of a resolution while it runs.
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// The node held a valid record of the name when it asked.
    warm: bool,
    /// The highest sequence published when it asked (0 if none).
    latest: u64,
}

/// Name records published and resolved in a run.
#[derive(Clone)]
pub struct NameMetrics {
    /// Resolutions that ended by nodes that held no record of the name when
    /// they asked: a walk to the name's trackers, comparable with a provider lookup.
    pub cold_finished: u64,
    /// Of those, the ones that returned a record someone published.
    pub cold_succeeded: u64,
    /// Start-to-finish time of successful cold resolutions, µs.
    pub cold_latency_us: Histogram<u64>,
    /// Resolutions that ended by nodes that already held a record of the name
    /// (a reader refreshing what it serves): they end the grace period after
    /// they start, with the best record heard by then.
    pub warm_finished: u64,
    /// Of those, the ones that returned a record someone published.
    pub warm_succeeded: u64,
    /// Start-to-finish time of successful warm resolutions, µs.
    pub warm_latency_us: Histogram<u64>,
    /// Successful resolutions that returned a lower sequence than the highest
    /// published when they started: the update had not reached them.
    pub stale: u64,
    /// Publications, resolutions or versions not tracked because a bound was reached.
    pub untracked: u64,
    published: BTreeMap<NameKey, Vec<Published>>,
    resolved: BTreeMap<(NameKey, NodeIdx), Resolved>,
    pending: BTreeMap<(NodeIdx, QueryId), Pending>,
}

impl Default for NameMetrics {
    fn default() -> Self {
        let histogram = || Histogram::new_with_max(MAX_LATENCY_US, 3);
        NameMetrics {
            cold_finished: 0,
            cold_succeeded: 0,
            cold_latency_us: histogram().expect("constant bounds are valid"),
            warm_finished: 0,
            warm_succeeded: 0,
            warm_latency_us: histogram().expect("constant bounds are valid"),
            stale: 0,
            untracked: 0,
            published: BTreeMap::new(),
            resolved: BTreeMap::new(),
            pending: BTreeMap::new(),
        }
    }
}

impl core::fmt::Debug for NameMetrics {
    /// The counters and latency quantiles; the histograms' buckets and the
    /// per-node table would fill a screen.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let q = |h: &Histogram<u64>| [0.5, 0.9, 0.99].map(|x| h.value_at_quantile(x));
        f.debug_struct("NameMetrics")
            .field("cold_finished", &self.cold_finished)
            .field("cold_succeeded", &self.cold_succeeded)
            .field("cold_latency_us_p50_p90_p99", &q(&self.cold_latency_us))
            .field("warm_finished", &self.warm_finished)
            .field("warm_succeeded", &self.warm_succeeded)
            .field("warm_latency_us_p50_p90_p99", &q(&self.warm_latency_us))
            .field("stale", &self.stale)
            .field("untracked", &self.untracked)
            .field("names", &self.published.len())
            .field("resolved", &self.resolved.len())
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl NameMetrics {
    /// Every version of `name` published so far, in the order published.
    pub fn versions(&self, name: &NameKey) -> &[Published] {
        self.published.get(name).map_or(&[], Vec::as_slice)
    }

    /// The highest version of `name` published so far.
    pub fn latest(&self, name: &NameKey) -> Option<Published> {
        self.versions(name).iter().max_by_key(|p| p.seq).copied()
    }

    /// The newest version of `name` that `node` has resolved, and when it first did.
    pub fn resolved(&self, name: &NameKey, node: NodeIdx) -> Option<Resolved> {
        self.resolved.get(&(*name, node)).copied()
    }

    /// Whether `record` is one a publisher's command accepted: a resolution
    /// that returns anything else is wrong.
    pub fn is_published(&self, record: &NameRecord) -> bool {
        self.versions(&record.name)
            .iter()
            .any(|p| p.seq == record.seq && p.root == record.root)
    }

    /// Resolutions running now whose start is remembered.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A publisher's command accepted `record` at `now`.
    pub(crate) fn publish(&mut self, record: &NameRecord, now: Time) {
        if !self.published.contains_key(&record.name) && self.published.len() >= MAX_NAMES {
            self.untracked += 1;
            return;
        }
        let versions = self.published.entry(record.name).or_default();
        if versions.len() >= MAX_VERSIONS {
            self.untracked += 1;
            return;
        }
        versions.push(Published {
            seq: record.seq,
            root: record.root,
            at: now,
        });
    }

    /// `node` started resolution `q` of `name`; `warm` if it held a record of it.
    pub(crate) fn start(&mut self, node: NodeIdx, q: QueryId, name: &NameKey, warm: bool) {
        if self.pending.len() >= MAX_PENDING {
            self.untracked += 1;
            return;
        }
        let latest = self.latest(name).map_or(0, |p| p.seq);
        self.pending.insert((node, q), Pending { warm, latest });
    }

    /// Resolution `q` of `node` ended at `now` after `latency_us`, with
    /// `record` if it found one and `verified` if that record was published.
    pub(crate) fn finish(
        &mut self,
        node: NodeIdx,
        q: QueryId,
        now: Time,
        latency_us: u64,
        record: Option<&NameRecord>,
        verified: bool,
    ) {
        let Some(p) = self.pending.remove(&(node, q)) else {
            return;
        };
        let ok = verified && record.is_some();
        if p.warm {
            self.warm_finished += 1;
            if ok {
                self.warm_succeeded += 1;
                self.warm_latency_us.saturating_record(latency_us);
            }
        } else {
            self.cold_finished += 1;
            if ok {
                self.cold_succeeded += 1;
                self.cold_latency_us.saturating_record(latency_us);
            }
        }
        let Some(r) = record.filter(|_| verified) else {
            return;
        };
        if r.seq < p.latest {
            self.stale += 1;
        }
        let newer = self
            .resolved
            .get(&(r.name, node))
            .is_none_or(|seen| r.seq > seen.seq);
        if newer {
            if !self.published.contains_key(&r.name) {
                self.untracked += 1;
                return;
            }
            self.resolved.insert(
                (r.name, node),
                Resolved {
                    seq: r.seq,
                    root: r.root,
                    at: now,
                },
            );
        }
    }

    /// `node` lost its state: its resolutions in flight never end.
    pub(crate) fn forget_node(&mut self, node: NodeIdx) {
        let gone: Vec<(NodeIdx, QueryId)> = self
            .pending
            .range((node, QueryId(0))..=(node, QueryId(u64::MAX)))
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            self.pending.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, root: u32) -> NameRecord {
        NameRecord::sign(&[7; 32], Id::hash_of(&root.to_le_bytes()), seq, 10_000)
    }

    #[test]
    fn resolutions_are_split_by_warmth_and_the_newest_version_is_kept() {
        let mut m = NameMetrics::default();
        let (one, two) = (record(1, 1), record(2, 2));
        m.publish(&one, Time::from_secs(1));
        let name = one.name;
        let n = NodeIdx(3);
        m.start(n, QueryId(9), &name, false);
        m.finish(n, QueryId(9), Time::from_secs(2), 400_000, Some(&one), true);
        m.publish(&two, Time::from_secs(3));
        // Started after the update, returned the old version: stale.
        m.start(n, QueryId(10), &name, true);
        m.finish(
            n,
            QueryId(10),
            Time::from_secs(4),
            150_000,
            Some(&one),
            true,
        );
        assert_eq!(
            m.resolved(&name, n).map(|r| (r.seq, r.at)),
            Some((1, Time::from_secs(2)))
        );
        m.start(n, QueryId(11), &name, true);
        m.finish(
            n,
            QueryId(11),
            Time::from_secs(5),
            150_000,
            Some(&two),
            true,
        );
        assert_eq!(
            m.resolved(&name, n).map(|r| (r.seq, r.at)),
            Some((2, Time::from_secs(5)))
        );
        assert_eq!((m.cold_finished, m.warm_finished, m.stale), (1, 2, 1));
        assert_eq!(m.cold_latency_us.value_at_quantile(0.5) / 1_000, 400);
        assert!(m.is_published(&two) && !m.is_published(&record(3, 2)));
        // A node that lost its state leaves nothing behind.
        m.start(n, QueryId(12), &name, true);
        m.forget_node(n);
        assert_eq!(m.pending(), 0);
    }
}
