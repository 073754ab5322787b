//! What the engine does with a node's events: tally, verify, hash, keep; and
//! the time series it fills from them.

use distroweb_protocol::{Event, QueryError, QueryKind, QueryOutput};

use super::Sim;
use crate::addr::NodeIdx;
use crate::timeseries::{State, TimeSeries};

impl Sim {
    pub(super) fn on_event(&mut self, idx: NodeIdx, e: Event<NodeIdx>) {
        let now = self.now;
        match &e {
            Event::QueryFinished {
                id,
                kind,
                target,
                result,
                stats,
            } => {
                let outcome = match result {
                    Ok(QueryOutput::Providers(p)) => {
                        let holders = self.announcers(target);
                        Ok(p.iter().any(|c| holders.contains(&c.addr)))
                    }
                    // A record is right if a publisher's command put it out.
                    Ok(QueryOutput::Name(r)) => {
                        Ok(r.name.id() == *target && self.metrics.names.is_published(r))
                    }
                    Ok(_) => Ok(true),
                    Err(e) => Err(*e),
                };
                self.metrics.record_query(*kind, outcome, stats);
                if let (Some(ts), QueryKind::FindProviders) = (self.timeseries.as_mut(), kind) {
                    let latency = stats.finished.saturating_since(stats.started);
                    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                    ts.lookup_finished(outcome, latency_us);
                }
                if *kind == QueryKind::ResolveName {
                    let record = match result {
                        Ok(QueryOutput::Name(r)) => Some(r),
                        _ => None,
                    };
                    let latency = stats.finished.saturating_since(stats.started);
                    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                    let verified = outcome == Ok(true);
                    self.metrics
                        .names
                        .finish(idx, *id, now, latency_us, record, verified);
                }
                self.digest.record(&[
                    now.as_micros(),
                    4,
                    u64::from(idx.0),
                    kind_code(*kind),
                    outcome_code(outcome),
                    u64::from(stats.hops),
                    u64::from(stats.messages),
                ]);
            }
            Event::PeerMisbehaved { .. } => {
                self.metrics.misbehaviour += 1;
                self.digest.record(&[now.as_micros(), 5, u64::from(idx.0)]);
            }
            Event::FetchFinished {
                result,
                stats,
                root,
                ..
            } => {
                self.metrics
                    .fetches
                    .record(result.as_ref().map(drop), stats);
                if let Some(ts) = self.timeseries.as_mut() {
                    ts.fetch_finished(result.is_ok());
                }
                if result.is_ok()
                    && self.config.protocol.crowd.serve_after_fetch
                    && self.serves(idx)
                {
                    // It announces itself now: a provider lookup that finds it is right.
                    self.add_announcer(*root, idx);
                }
                self.digest.record(&[
                    now.as_micros(),
                    6,
                    u64::from(idx.0),
                    u64::from(result.is_ok()),
                    stats.bytes,
                    u64::from(stats.requests),
                ]);
            }
            Event::Published { root, result } => {
                if result.is_ok() {
                    self.metrics.fetches.published += 1;
                    // It announces itself now: a provider lookup that finds it is right.
                    if self.serves(idx) {
                        self.add_announcer(*root, idx);
                    }
                } else {
                    self.metrics.fetches.publish_failed += 1;
                }
            }
            // Per-chunk progress is for streaming drivers; the finish event carries the totals.
            Event::ManifestVerified { .. } | Event::ChunkVerified { .. } => {}
        }
        if self.config.keep_events {
            self.events.push((now, idx, e));
        }
    }
}

impl Sim {
    /// The run over time so far, if `SimConfig::timeseries` switched it on:
    /// every interval that ended by now.
    pub fn timeseries(&self) -> Option<&TimeSeries> {
        self.timeseries.as_ref()
    }

    /// Closes the time series' open interval now, as a shorter last row, so
    /// that a run that ends between two boundaries keeps its last counts.
    /// Counting goes on in a new interval from now.
    pub fn finish_timeseries(&mut self) {
        self.roll_timeseries();
        if self.timeseries.is_some() {
            let state = self.timeseries_state();
            if let Some(ts) = self.timeseries.as_mut() {
                ts.close_at(self.now, state);
            }
        }
    }

    /// Closes the series' intervals that ended by now; called whenever the
    /// clock moves, before anything at the new time is counted.
    pub(super) fn roll_timeseries(&mut self) {
        // The common case, on every event: the open interval goes on.
        let due = (self.timeseries.as_ref()).is_some_and(|ts| self.now >= ts.next_boundary());
        let Some(mut ts) = self.timeseries.take_if(|_| due) else {
            return;
        };
        ts.roll(self.now, || self.timeseries_state());
        self.timeseries = Some(ts);
    }

    /// Nodes up, and keys announced with at least one live provider: an
    /// announcer that is up and still provides the key.
    fn timeseries_state(&self) -> State {
        let live = self
            .announcers
            .iter()
            .filter(|(key, holders)| {
                holders.iter().any(|h| {
                    self.slots.get(h.index()).is_some_and(|s| {
                        s.up && s
                            .node
                            .as_ref()
                            .is_some_and(|n| n.provided_keys().any(|k| k == *key))
                    })
                })
            })
            .count();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        State {
            up_nodes: count(self.membership.len()),
            content_keys: count(self.announcers.len()),
            content_live_keys: count(live),
        }
    }
}

fn kind_code(kind: QueryKind) -> u64 {
    crate::metrics::KINDS
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(usize::MAX) as u64
}

fn outcome_code(outcome: Result<bool, QueryError>) -> u64 {
    match outcome {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(QueryError::NotFound) => 2,
        Err(QueryError::NoPeers) => 3,
        Err(QueryError::Timeout) => 4,
        Err(QueryError::Route(_)) => 5,
    }
}
