//! What a run measured: per-query-kind outcomes and histograms, and per-node traffic
//! split by traffic class. Every number comes from the protocol's own events and
//! from the messages it handed to the network.

use std::collections::BTreeMap;

use distroweb_protocol::{QueryError, QueryKind, QueryStats, TrafficClass};
use hdrhistogram::Histogram;

use crate::fetch_metrics::FetchMetrics;
use crate::name_metrics::NameMetrics;

/// Names of the traffic classes, in counter order.
pub const CLASS_NAMES: [&str; CLASSES] = ["maintenance", "lookup", "transfer"];
/// Number of traffic classes counted apart.
pub const CLASSES: usize = 3;

/// The counter slot of a traffic class.
pub fn class_index(class: TrafficClass) -> usize {
    match class {
        TrafficClass::Maintenance => 0,
        TrafficClass::Lookup => 1,
        TrafficClass::Transfer => 2,
    }
}

/// Messages and bytes one node sent and received in one traffic class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassCounters {
    /// Messages sent.
    pub sent_messages: u64,
    /// Bytes sent (encoded length plus the per-message overhead).
    pub sent_bytes: u64,
    /// Messages received.
    pub received_messages: u64,
    /// Bytes received.
    pub received_bytes: u64,
}

/// The query kinds reported in events, in metrics order.
pub const KINDS: [QueryKind; 7] = [
    QueryKind::Bootstrap,
    QueryKind::FindNode,
    QueryKind::FindProviders,
    QueryKind::Announce,
    QueryKind::Refresh,
    QueryKind::ResolveName,
    QueryKind::PublishName,
];

fn kind_index(kind: QueryKind) -> usize {
    match kind {
        QueryKind::Bootstrap => 0,
        QueryKind::FindNode => 1,
        QueryKind::FindProviders => 2,
        QueryKind::Announce => 3,
        QueryKind::Refresh => 4,
        QueryKind::ResolveName => 5,
        QueryKind::PublishName => 6,
    }
}

/// Largest latency recorded exactly, µs (an hour); larger values saturate.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Largest hop count recorded exactly.
const MAX_HOPS: u64 = 1_024;

/// Outcomes of every query of one kind.
#[derive(Clone, Debug)]
pub struct KindMetrics {
    /// Commands accepted by a node.
    pub issued: u64,
    /// Commands a node refused (too many queries or keys).
    pub refused: u64,
    /// Commands skipped because their node was down at the time.
    pub skipped: u64,
    /// Queries that ended (successfully or not).
    pub finished: u64,
    /// Queries that ended with a verified result.
    pub succeeded: u64,
    /// Queries that returned a result the simulator could not verify (e.g. providers
    /// that never announced the key).
    pub wrong: u64,
    /// Failed queries by cause.
    pub failures: BTreeMap<QueryError, u64>,
    /// Hops of successful queries.
    pub hops: Histogram<u64>,
    /// Start-to-finish time of successful queries, µs.
    pub latency_us: Histogram<u64>,
    /// Messages caused by all finished queries (as the protocol counts them).
    pub messages: u64,
    /// Requests sent by all finished queries.
    pub requests: u64,
}

impl Default for KindMetrics {
    fn default() -> Self {
        KindMetrics {
            issued: 0,
            refused: 0,
            skipped: 0,
            finished: 0,
            succeeded: 0,
            wrong: 0,
            failures: BTreeMap::new(),
            hops: Histogram::new_with_max(MAX_HOPS, 3).expect("constant bounds are valid"),
            latency_us: Histogram::new_with_max(MAX_LATENCY_US, 3)
                .expect("constant bounds are valid"),
            messages: 0,
            requests: 0,
        }
    }
}

impl KindMetrics {
    /// Successful share of the queries that finished, or 0 if none did.
    pub fn success_rate(&self) -> f64 {
        if self.finished == 0 {
            0.0
        } else {
            self.succeeded as f64 / self.finished as f64
        }
    }

    /// Messages per finished query, or 0 if none finished.
    pub fn messages_per_query(&self) -> f64 {
        if self.finished == 0 {
            0.0
        } else {
            self.messages as f64 / self.finished as f64
        }
    }

    /// Failed queries, all causes together.
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
}

/// Everything a run measured.
#[derive(Clone, Debug)]
pub struct Metrics {
    kinds: [KindMetrics; KINDS.len()],
    traffic: Vec<[ClassCounters; CLASSES]>,
    /// `PeerMisbehaved` events seen.
    pub misbehaviour: u64,
    /// Content publications and fetches.
    pub fetches: FetchMetrics,
    /// Name publications and resolutions: who saw which version when.
    pub names: NameMetrics,
}

impl Metrics {
    pub(crate) fn new(nodes: usize) -> Self {
        Metrics {
            kinds: Default::default(),
            traffic: vec![[ClassCounters::default(); CLASSES]; nodes],
            misbehaviour: 0,
            fetches: FetchMetrics::new(nodes),
            names: NameMetrics::default(),
        }
    }

    /// The outcomes of one query kind.
    pub fn kind(&self, kind: QueryKind) -> &KindMetrics {
        &self.kinds[kind_index(kind)]
    }

    pub(crate) fn kind_mut(&mut self, kind: QueryKind) -> &mut KindMetrics {
        &mut self.kinds[kind_index(kind)]
    }

    /// Records a finished query; `verified` says whether its result checked out.
    pub(crate) fn record_query(
        &mut self,
        kind: QueryKind,
        outcome: Result<bool, QueryError>,
        stats: &QueryStats,
    ) {
        let k = self.kind_mut(kind);
        k.finished += 1;
        k.messages += u64::from(stats.messages);
        k.requests += u64::from(stats.requests);
        match outcome {
            Ok(true) => {
                k.succeeded += 1;
                k.hops.saturating_record(u64::from(stats.hops));
                let latency = stats.finished.saturating_since(stats.started);
                k.latency_us
                    .saturating_record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
            }
            Ok(false) => k.wrong += 1,
            Err(e) => *k.failures.entry(e).or_default() += 1,
        }
    }

    pub(crate) fn sent(&mut self, node: usize, class: usize, bytes: u64) {
        let c = &mut self.traffic[node][class];
        c.sent_messages += 1;
        c.sent_bytes += bytes;
    }

    pub(crate) fn received(&mut self, node: usize, class: usize, bytes: u64) {
        let c = &mut self.traffic[node][class];
        c.received_messages += 1;
        c.received_bytes += bytes;
    }

    /// One node's traffic, per class in [`CLASS_NAMES`] order.
    pub fn traffic(&self, node: usize) -> &[ClassCounters; CLASSES] {
        &self.traffic[node]
    }

    /// Traffic of all nodes together, per class.
    pub fn total_traffic(&self) -> [ClassCounters; CLASSES] {
        let mut total = [ClassCounters::default(); CLASSES];
        for node in &self.traffic {
            for (t, c) in total.iter_mut().zip(node) {
                t.sent_messages += c.sent_messages;
                t.sent_bytes += c.sent_bytes;
                t.received_messages += c.received_messages;
                t.received_bytes += c.received_bytes;
            }
        }
        total
    }

    /// Bytes each node uploaded (all classes), in slot order: the per-node load.
    pub fn upload_bytes(&self) -> impl Iterator<Item = u64> + '_ {
        self.traffic
            .iter()
            .map(|n| n.iter().map(|c| c.sent_bytes).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distroweb_protocol::Time;

    #[test]
    fn queries_are_tallied_by_outcome() {
        let mut m = Metrics::new(2);
        let stats = QueryStats {
            hops: 3,
            messages: 10,
            requests: 5,
            started: Time::from_secs(1),
            finished: Time::from_millis(1_250),
            ..QueryStats::default()
        };
        m.record_query(QueryKind::FindProviders, Ok(true), &stats);
        m.record_query(QueryKind::FindProviders, Ok(false), &stats);
        m.record_query(QueryKind::FindProviders, Err(QueryError::NotFound), &stats);
        let k = m.kind(QueryKind::FindProviders);
        assert_eq!((k.finished, k.succeeded, k.wrong, k.failed()), (3, 1, 1, 1));
        assert_eq!(k.hops.max(), 3);
        assert_eq!(k.latency_us.value_at_quantile(0.5) / 1_000, 250);
        assert!((k.success_rate() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(k.messages_per_query(), 10.0);
        m.sent(1, class_index(TrafficClass::Lookup), 100);
        m.received(0, class_index(TrafficClass::Lookup), 100);
        assert_eq!(m.total_traffic()[1].sent_bytes, 100);
        assert_eq!(m.upload_bytes().collect::<Vec<_>>(), vec![0, 100]);
    }
}
