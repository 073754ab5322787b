//! What content fetches measured: outcomes, completion times, and who served the
//! bytes. Every number comes from the protocol's `FetchFinished` events.

use std::collections::BTreeMap;

use distroweb_protocol::{FetchError, FetchStats};
use hdrhistogram::Histogram;

use crate::addr::NodeIdx;

/// Largest completion time recorded exactly, µs (an hour); larger values saturate.
const MAX_FETCH_US: u64 = 3_600_000_000;

/// Outcomes of every content fetch of a run.
#[derive(Clone, Debug)]
pub struct FetchMetrics {
    /// Fetch commands accepted by a node.
    pub issued: u64,
    /// Fetch commands a node refused (too many fetches or queries).
    pub refused: u64,
    /// Fetch commands skipped because their node was down at the time.
    pub skipped: u64,
    /// Fetches that ended (successfully or not).
    pub finished: u64,
    /// Fetches that ended with the whole content, verified.
    pub succeeded: u64,
    /// Failed fetches by cause (the error's name, e.g. `Timeout`).
    pub failures: BTreeMap<&'static str, u64>,
    /// Start-to-finish time of successful fetches, µs.
    pub completion_us: Histogram<u64>,
    /// Start to first verified byte of successful fetches, µs.
    pub first_byte_us: Histogram<u64>,
    /// Verified bytes received by all fetches (successful or not).
    pub bytes: u64,
    /// Verified bytes each node delivered to fetches, in slot order: who served.
    served: Vec<u64>,
    /// Publish commands that succeeded and that failed.
    pub published: u64,
    /// Publish commands refused by the node (or skipped while it was down).
    pub publish_failed: u64,
}

impl FetchMetrics {
    pub(crate) fn new(nodes: usize) -> Self {
        FetchMetrics {
            issued: 0,
            refused: 0,
            skipped: 0,
            finished: 0,
            succeeded: 0,
            failures: BTreeMap::new(),
            completion_us: Histogram::new_with_max(MAX_FETCH_US, 3)
                .expect("constant bounds are valid"),
            first_byte_us: Histogram::new_with_max(MAX_FETCH_US, 3)
                .expect("constant bounds are valid"),
            bytes: 0,
            served: vec![0; nodes],
            published: 0,
            publish_failed: 0,
        }
    }

    /// Records a finished fetch.
    pub(crate) fn record(&mut self, ok: Result<(), &FetchError>, stats: &FetchStats<NodeIdx>) {
        self.finished += 1;
        for p in &stats.providers {
            if let Some(s) = self.served.get_mut(p.provider.addr.index()) {
                *s += p.bytes;
            }
            self.bytes += p.bytes;
        }
        match ok {
            Ok(()) => {
                self.succeeded += 1;
                let us = |d: core::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                self.completion_us.saturating_record(us(stats.duration()));
                if let Some(t) = stats.time_to_first_byte() {
                    self.first_byte_us.saturating_record(us(t));
                }
            }
            Err(e) => *self.failures.entry(error_name(e)).or_default() += 1,
        }
    }

    /// Successful share of the fetches that finished, or 0 if none did.
    pub fn success_rate(&self) -> f64 {
        if self.finished == 0 {
            0.0
        } else {
            self.succeeded as f64 / self.finished as f64
        }
    }

    /// Verified bytes `node` delivered to fetches.
    pub fn served_by(&self, node: NodeIdx) -> u64 {
        self.served.get(node.index()).copied().unwrap_or(0)
    }

    /// Failed fetches, all causes together.
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
}

/// A stable name for a fetch error's kind.
pub fn error_name(e: &FetchError) -> &'static str {
    match e {
        FetchError::NotFound => "NotFound",
        FetchError::AllProvidersFailed => "AllProvidersFailed",
        FetchError::Corrupt(_) => "Corrupt",
        FetchError::Timeout => "Timeout",
        FetchError::Store(_) => "Store",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distroweb_protocol::{Contact, Id, ProviderStats, Time};

    #[test]
    fn fetches_are_tallied_with_who_served() {
        let mut m = FetchMetrics::new(3);
        let provider = |n: u32, bytes| ProviderStats {
            provider: Contact {
                id: Id::hash_of(&n.to_le_bytes()),
                addr: NodeIdx(n),
            },
            bytes,
            requests: 1,
            failures: 0,
            corrupt: 0,
            busy: 0,
            dont_have: 0,
        };
        let mut stats = FetchStats {
            started: Time::from_secs(1),
            first_byte: Some(Time::from_millis(1_100)),
            finished: Time::from_secs(3),
            lookups: 1,
            bytes: 300,
            blocks: 2,
            blocks_local: 0,
            requests: 2,
            chunks_retried: 0,
            providers: vec![provider(0, 100), provider(2, 200)],
        };
        m.record(Ok(()), &stats);
        stats.providers = vec![provider(0, 50)];
        m.record(Err(&FetchError::Timeout), &stats);
        assert_eq!((m.finished, m.succeeded, m.failed()), (2, 1, 1));
        assert_eq!(m.failures.get("Timeout"), Some(&1));
        assert_eq!(m.completion_us.value_at_quantile(0.5) / 1_000, 2_000);
        assert_eq!(m.first_byte_us.max() / 1_000, 100);
        assert_eq!(
            (m.served_by(NodeIdx(0)), m.served_by(NodeIdx(2))),
            (150, 200)
        );
        assert_eq!(m.bytes, 350);
        assert!((m.success_rate() - 0.5).abs() < 1e-12);
    }
}
