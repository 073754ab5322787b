//! Which root a name points at, for the requests on its origin: the record the
//! node holds is served at once and checked again in the background
//! (stale-while-revalidate); a name never seen is resolved while the reader
//! waits.
//!
//! Why the node's own record comes first: a reader who resolved a name before
//! keeps its site even when the publisher and every tracker of the name are
//! gone, and a resolution that costs a lookup is never in the way of a page
//! the node can already serve.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use distroweb_net::{NetError, NodeHandle};
use distroweb_protocol::names::{NameKey, NameRecord};
use tokio::time::Instant;

/// Names whose revalidation this proxy remembers; past it, the one checked
/// longest ago is forgotten (and is simply checked again on its next request).
pub const MAX_TRACKED_NAMES: usize = 4096;
/// Background resolutions running at once, over all names.
pub const MAX_REVALIDATIONS: usize = 16;

/// When each name was last checked, and which checks are running.
#[derive(Debug, Default)]
struct Checks {
    /// The name, and when its last resolution started.
    started: BTreeMap<NameKey, Instant>,
    /// Resolutions running now.
    running: usize,
}

/// Resolves names for the proxy, with a background refresh of what is known.
#[derive(Clone, Debug)]
pub struct Names {
    checks: Arc<Mutex<Checks>>,
    /// A name served from the node's record is resolved again at most this
    /// often.
    revalidate_after: Duration,
    /// How long a reader waits for a name it has never resolved.
    resolve_timeout: Duration,
}

/// Why a name has no root to serve.
#[derive(Debug, thiserror::Error)]
pub enum NameLookupError {
    /// No tracker answered with a valid record in time.
    #[error("no record of this name was found on the network")]
    NotFound(#[source] NetError),
    /// The resolution took longer than the reader may wait.
    #[error("resolving the name took longer than {0:?}")]
    Timeout(Duration),
}

impl Names {
    /// A resolver that refreshes a known name at most every `revalidate_after`
    /// and lets a reader wait `resolve_timeout` for an unknown one.
    pub fn new(revalidate_after: Duration, resolve_timeout: Duration) -> Self {
        Names {
            checks: Arc::new(Mutex::new(Checks::default())),
            revalidate_after,
            resolve_timeout,
        }
    }

    /// The record to serve `name` from now: the node's own (refreshed in the
    /// background when due), or a fresh resolution.
    pub async fn current(
        &self,
        node: &NodeHandle,
        name: NameKey,
    ) -> Result<NameRecord, NameLookupError> {
        if let Ok(Some(known)) = node.name_record(name).await {
            if self.due(name) {
                let this = self.clone();
                let node = node.clone();
                tokio::spawn(async move {
                    // The result lands in the node's store, where the next
                    // request finds it; a failure leaves the known record.
                    let _ =
                        tokio::time::timeout(this.resolve_timeout, node.resolve_name(name)).await;
                    this.finished();
                });
            }
            return Ok(known);
        }
        self.note_started(name);
        match tokio::time::timeout(self.resolve_timeout, node.resolve_name(name)).await {
            Ok(Ok(record)) => Ok(record),
            Ok(Err(e)) => Err(NameLookupError::NotFound(e)),
            Err(_) => Err(NameLookupError::Timeout(self.resolve_timeout)),
        }
    }

    /// Whether `name` should be checked again now; if so, counts the check
    /// as running.
    fn due(&self, name: NameKey) -> bool {
        let Ok(mut checks) = self.checks.lock() else {
            return false;
        };
        let now = Instant::now();
        let fresh = checks
            .started
            .get(&name)
            .is_some_and(|at| now.duration_since(*at) < self.revalidate_after);
        if fresh || checks.running >= MAX_REVALIDATIONS {
            return false;
        }
        checks.running += 1;
        remember(&mut checks, name, now);
        true
    }

    /// A foreground resolution starts: the background one need not follow it.
    fn note_started(&self, name: NameKey) {
        if let Ok(mut checks) = self.checks.lock() {
            remember(&mut checks, name, Instant::now());
        }
    }

    fn finished(&self) {
        if let Ok(mut checks) = self.checks.lock() {
            checks.running = checks.running.saturating_sub(1);
        }
    }
}

/// Notes when `name` was checked, forgetting the stalest name when full.
fn remember(checks: &mut Checks, name: NameKey, at: Instant) {
    if !checks.started.contains_key(&name) && checks.started.len() >= MAX_TRACKED_NAMES {
        let stalest = checks
            .started
            .iter()
            .min_by_key(|(key, at)| (**at, **key))
            .map(|(key, _)| *key);
        if let Some(key) = stalest {
            checks.started.remove(&key);
        }
    }
    checks.started.insert(name, at);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_remembered_are_bounded_and_the_stalest_goes() {
        let mut checks = Checks::default();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED_NAMES + 10 {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            remember(
                &mut checks,
                NameKey(key),
                t0 + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(checks.started.len(), MAX_TRACKED_NAMES);
        let mut first = [0u8; 32];
        first[..8].copy_from_slice(&0u64.to_le_bytes());
        assert!(!checks.started.contains_key(&NameKey(first)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_name_is_checked_again_only_when_due() {
        let names = Names::new(Duration::from_secs(1), Duration::from_secs(5));
        let key = NameKey([1; 32]);
        assert!(names.due(key));
        names.finished();
        assert!(!names.due(key), "checked a moment ago");
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(names.due(key));
        // Running checks are bounded over all names.
        for i in 0..MAX_REVALIDATIONS {
            let _ = names.due(NameKey([i as u8 + 2; 32]));
        }
        assert!(!names.due(NameKey([200; 32])));
    }
}
