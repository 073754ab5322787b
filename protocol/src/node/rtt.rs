//! Adaptive request timeouts (`dht.adaptive_timeouts`): per-peer round-trip
//! estimates in the TCP style, and the requests whose adaptive deadline passed
//! before `request_timeout` would have (so a late reply is recognised, not
//! charged as unsolicited).
//!
//! The estimator is RFC 6298's (§2): the first sample R sets SRTT = R and
//! RTTVAR = R/2; each later one sets RTTVAR = 3/4·RTTVAR + 1/4·|SRTT − R|, then
//! SRTT = 7/8·SRTT + 1/8·R; the timeout is RTO = SRTT + 4·RTTVAR, clamped to
//! [`dht.min_request_timeout`, `dht.request_timeout`]. A request that times out
//! doubles its peer's RTO until the next sample (§5.5). Bamboo (Rhea et al.,
//! "Handling Churn in a DHT", USENIX 2004) uses these timeouts for its lookups.
//!
//! Implementation note: time is integer microseconds and the smoothing is
//! integer division, so a steady round trip R is reached to within 7 µs (from
//! below) rather than exactly; no floating point touches a deadline.
//!
//! Everything here is bounded (`dht.max_rtt_peers` peers, least recently
//! sampled forgotten first; `limits.max_pending_requests` expired requests,
//! soonest to lapse forgotten first) and ordered (B-trees only).

use std::collections::{BTreeMap, BTreeSet};

use core::time::Duration;

use crate::config::UnsampledTimeout;
use crate::id::Id;
use crate::time::Time;
use crate::wire::RpcId;

/// Doublings of an RTO after timeouts, at most (2^6 = 64 times the estimate,
/// far past any `request_timeout` a configuration would clamp it to).
const MAX_BACKOFF: u8 = 6;

/// One peer's smoothed round trip (RFC 6298), in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RttEstimate {
    /// SRTT, µs.
    srtt_us: u64,
    /// RTTVAR, µs.
    rttvar_us: u64,
    /// Timeouts since the last sample: the RTO is doubled this many times.
    backoff: u8,
}

impl RttEstimate {
    /// The estimate after a first sample.
    pub(crate) fn new(sample: Duration) -> Self {
        let r = micros(sample);
        RttEstimate {
            srtt_us: r,
            rttvar_us: r / 2,
            backoff: 0,
        }
    }

    /// Folds in one more sample; clears any backoff.
    pub(crate) fn sample(&mut self, sample: Duration) {
        let r = micros(sample);
        let delta = self.srtt_us.abs_diff(r);
        // In u128, so no sum can overflow; each result is at most the larger input.
        let (v, s, d, r) = (
            u128::from(self.rttvar_us),
            u128::from(self.srtt_us),
            u128::from(delta),
            u128::from(r),
        );
        self.rttvar_us = u64::try_from((3 * v + d) / 4).unwrap_or(u64::MAX);
        self.srtt_us = u64::try_from((7 * s + r) / 8).unwrap_or(u64::MAX);
        self.backoff = 0;
    }

    /// A request timed out: double the RTO until the next sample.
    pub(crate) fn back_off(&mut self) {
        self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
    }

    /// SRTT.
    pub(crate) fn srtt(&self) -> Duration {
        Duration::from_micros(self.srtt_us)
    }

    /// RTO = SRTT + 4·RTTVAR, doubled per timeout since the last sample, within
    /// `[floor, ceiling]` (the ceiling wins if they cross).
    pub(crate) fn rto(&self, floor: Duration, ceiling: Duration) -> Duration {
        let base = self
            .srtt_us
            .saturating_add(self.rttvar_us.saturating_mul(4));
        let rto = base.saturating_mul(1u64 << self.backoff);
        Duration::from_micros(rto.clamp(micros(floor).min(micros(ceiling)), micros(ceiling)))
    }
}

/// A request whose adaptive deadline passed before `request_timeout` would have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Expired {
    /// The peer asked.
    to: Id,
    /// When the request left.
    sent: Time,
    /// When `request_timeout` would have ended it: forgotten then.
    until: Time,
}

/// Per-peer estimates, one estimate pooled over every sample, and the requests
/// that timed out early. Empty and untouched unless `dht.adaptive_timeouts`.
#[derive(Debug)]
pub(crate) struct RttTable {
    /// The most peers with an estimate.
    max_peers: usize,
    /// The most expired requests remembered.
    max_expired: usize,
    /// Per peer: its estimate and when it was last sampled.
    peers: BTreeMap<Id, (RttEstimate, Time)>,
    /// `peers` by last sample, oldest first: the eviction order.
    by_age: BTreeSet<(Time, Id)>,
    /// Every sample from every peer, for peers without their own.
    pooled: Option<RttEstimate>,
    /// Requests that timed out early, awaiting a late reply.
    expired: BTreeMap<RpcId, Expired>,
    /// `expired` by `until`, soonest first.
    expiry: BTreeSet<(Time, RpcId)>,
}

impl RttTable {
    /// Frees the allocations of emptied maps (see [`crate::shed`]).
    pub(crate) fn shed(&mut self) {
        use crate::shed::Shed;
        self.peers.shed();
        self.by_age.shed();
        self.expired.shed();
        self.expiry.shed();
    }

    /// An empty table holding at most `max_peers` estimates and `max_expired`
    /// expired requests.
    pub(crate) fn new(max_peers: usize, max_expired: usize) -> Self {
        RttTable {
            max_peers,
            max_expired,
            peers: BTreeMap::new(),
            by_age: BTreeSet::new(),
            pooled: None,
            expired: BTreeMap::new(),
            expiry: BTreeSet::new(),
        }
    }

    /// The timeout for a request to `to` (`None`: a peer whose id is not known
    /// yet): its own RTO; else, per `unsampled`, the pooled RTO or `ceiling`.
    pub(crate) fn timeout(
        &self,
        to: Option<&Id>,
        unsampled: UnsampledTimeout,
        floor: Duration,
        ceiling: Duration,
    ) -> Duration {
        if let Some((est, _)) = to.and_then(|id| self.peers.get(id)) {
            return est.rto(floor, ceiling);
        }
        match (unsampled, &self.pooled) {
            (UnsampledTimeout::Pooled, Some(est)) => est.rto(floor, ceiling),
            _ => ceiling,
        }
    }

    /// A reply from `from` came `rtt` after its request left.
    pub(crate) fn sample(&mut self, now: Time, from: Id, rtt: Duration) {
        match &mut self.pooled {
            Some(est) => est.sample(rtt),
            None => self.pooled = Some(RttEstimate::new(rtt)),
        }
        let est = match self.peers.remove(&from) {
            Some((mut est, last)) => {
                self.by_age.remove(&(last, from));
                est.sample(rtt);
                est
            }
            None => {
                if self.peers.len() >= self.max_peers {
                    // Forget the peer sampled longest ago.
                    if let Some((_, old)) = self.by_age.pop_first() {
                        self.peers.remove(&old);
                    }
                }
                RttEstimate::new(rtt)
            }
        };
        self.peers.insert(from, (est, now));
        self.by_age.insert((now, from));
    }

    /// A request to `to` sent at `sent` timed out at `now`, before
    /// `request_timeout` would have ended it at `until`: back off the peer's
    /// RTO and remember the request until `until`, so its reply, if it comes,
    /// is known as late rather than unsolicited.
    pub(crate) fn timed_out(&mut self, now: Time, rpc: RpcId, to: Id, sent: Time, until: Time) {
        if let Some((est, _)) = self.peers.get_mut(&to) {
            est.back_off();
        }
        self.forget_expired(now);
        if until <= now {
            return;
        }
        if self.expired.len() >= self.max_expired {
            if let Some((_, old)) = self.expiry.pop_first() {
                self.expired.remove(&old);
            }
        }
        self.expired.insert(rpc, Expired { to, sent, until });
        self.expiry.insert((until, rpc));
    }

    /// A reply from `from` to a request that timed out early: when that
    /// request left, or `None` if it is no such request.
    pub(crate) fn take_late(&mut self, now: Time, rpc: RpcId, from: &Id) -> Option<Time> {
        self.forget_expired(now);
        let e = self.expired.get(&rpc)?;
        if e.to != *from {
            return None;
        }
        let e = self.expired.remove(&rpc)?;
        self.expiry.remove(&(e.until, rpc));
        Some(e.sent)
    }

    /// Drops expired requests whose `request_timeout` has passed too.
    fn forget_expired(&mut self, now: Time) {
        while let Some(&(until, rpc)) = self.expiry.first() {
            if until > now {
                break;
            }
            self.expiry.pop_first();
            self.expired.remove(&rpc);
        }
    }

    /// Peers with an estimate.
    pub(crate) fn peers(&self) -> usize {
        self.peers.len()
    }

    /// Expired requests remembered.
    pub(crate) fn expired(&self) -> usize {
        self.expired.len()
    }

    /// The estimate for `peer`, if it has one (for tests and status).
    pub(crate) fn estimate(&self, peer: &Id) -> Option<RttEstimate> {
        self.peers.get(peer).map(|(e, _)| *e)
    }

    /// Bytes of one peer's entry (key and value), for `Node::memory_usage`.
    pub(crate) const PEER_BYTES: usize = core::mem::size_of::<(Id, (RttEstimate, Time))>();
    /// Bytes of one entry of the eviction index.
    pub(crate) const AGE_BYTES: usize = core::mem::size_of::<(Time, Id)>();
    /// Bytes of one expired request and its index entry.
    pub(crate) const EXPIRED_BYTES: usize = core::mem::size_of::<(RpcId, Expired)>();
    /// Bytes of one entry of the expiry index.
    pub(crate) const EXPIRY_BYTES: usize = core::mem::size_of::<(Time, RpcId)>();

    /// Panics if an index disagrees with its map or a bound is exceeded.
    pub(crate) fn check(&self) {
        assert!(self.peers.len() <= self.max_peers, "rtt peers over bound");
        assert_eq!(self.peers.len(), self.by_age.len(), "rtt age index");
        for (last, id) in &self.by_age {
            assert!(
                self.peers.get(id).is_some_and(|(_, t)| t == last),
                "rtt age index entry without its peer"
            );
        }
        assert!(self.expired.len() <= self.max_expired, "expired over bound");
        assert_eq!(self.expired.len(), self.expiry.len(), "expiry index");
        for (until, rpc) in &self.expiry {
            assert!(
                self.expired.get(rpc).is_some_and(|e| e.until == *until),
                "expiry index entry without its request"
            );
        }
    }
}

/// A duration in whole microseconds, saturating.
fn micros(d: Duration) -> u64 {
    super::micros(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOOR: Duration = Duration::from_millis(100);
    const CEILING: Duration = Duration::from_secs(2);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_sample_gives_three_round_trips() {
        // SRTT = R, RTTVAR = R/2: RTO = 3R (RFC 6298 §2.2).
        let e = RttEstimate::new(ms(50));
        assert_eq!(e.rto(FLOOR, CEILING), ms(150));
        assert_eq!(e.srtt(), ms(50));
    }

    #[test]
    fn steady_round_trips_shrink_the_timeout_to_the_floor() {
        let mut e = RttEstimate::new(ms(50));
        for _ in 0..100 {
            e.sample(ms(50));
        }
        assert_eq!(e.srtt(), ms(50));
        assert_eq!(e.rto(FLOOR, CEILING), FLOOR);
        assert!(e.rto(Duration::ZERO, CEILING) < ms(51));
    }

    #[test]
    fn timeouts_double_the_rto_until_the_ceiling_and_a_sample_resets_it() {
        let mut e = RttEstimate::new(ms(100));
        assert_eq!(e.rto(FLOOR, CEILING), ms(300));
        e.back_off();
        assert_eq!(e.rto(FLOOR, CEILING), ms(600));
        for _ in 0..20 {
            e.back_off();
        }
        assert_eq!(e.rto(FLOOR, CEILING), CEILING);
        e.sample(ms(100));
        assert!(e.rto(FLOOR, CEILING) < ms(300));
    }

    #[test]
    fn unsampled_peers_get_the_pooled_estimate_or_the_ceiling() {
        let (a, b) = (Id::hash_of(b"a"), Id::hash_of(b"b"));
        let mut t = RttTable::new(4, 4);
        assert_eq!(
            t.timeout(Some(&b), UnsampledTimeout::Pooled, FLOOR, CEILING),
            CEILING,
            "nothing sampled yet"
        );
        t.sample(Time::ZERO, a, ms(80));
        assert_eq!(
            t.timeout(Some(&a), UnsampledTimeout::Fixed, FLOOR, CEILING),
            ms(240)
        );
        assert_eq!(
            t.timeout(Some(&b), UnsampledTimeout::Fixed, FLOOR, CEILING),
            CEILING
        );
        assert_eq!(
            t.timeout(Some(&b), UnsampledTimeout::Pooled, FLOOR, CEILING),
            ms(240)
        );
        assert_eq!(
            t.timeout(None, UnsampledTimeout::Pooled, FLOOR, CEILING),
            ms(240)
        );
    }

    #[test]
    fn the_peer_sampled_longest_ago_is_forgotten_first() {
        let ids: Vec<Id> = (0u8..4).map(|i| Id::hash_of(&[i])).collect();
        let mut t = RttTable::new(3, 4);
        for (i, id) in ids.iter().take(3).enumerate() {
            t.sample(Time::from_micros(i as u64), *id, ms(10));
        }
        // Peer 0 is sampled again, so peer 1 is now the oldest.
        t.sample(Time::from_micros(10), ids[0], ms(10));
        t.sample(Time::from_micros(11), ids[3], ms(10));
        t.check();
        assert_eq!(t.peers(), 3);
        assert!(t.estimate(&ids[1]).is_none());
        assert!(t.estimate(&ids[0]).is_some() && t.estimate(&ids[3]).is_some());
    }

    #[test]
    fn a_late_reply_is_known_until_the_full_timeout() {
        let (a, b) = (Id::hash_of(b"a"), Id::hash_of(b"b"));
        let mut t = RttTable::new(4, 2);
        let at = |ms: u64| Time::from_micros(ms * 1000);
        t.timed_out(at(300), RpcId(1), a, at(0), at(2000));
        assert_eq!(t.take_late(at(400), RpcId(1), &b), None, "not from b");
        assert_eq!(t.take_late(at(400), RpcId(1), &a), Some(at(0)));
        assert_eq!(t.take_late(at(400), RpcId(1), &a), None, "taken once");
        t.timed_out(at(300), RpcId(2), a, at(0), at(2000));
        assert_eq!(t.take_late(at(2000), RpcId(2), &a), None, "lapsed");
        // Bounded: the one that lapses soonest goes first.
        t.timed_out(at(300), RpcId(3), a, at(0), at(2000));
        t.timed_out(at(300), RpcId(4), a, at(100), at(2100));
        t.timed_out(at(300), RpcId(5), a, at(200), at(2200));
        t.check();
        assert_eq!(t.expired(), 2);
        assert_eq!(t.take_late(at(400), RpcId(3), &a), None);
        assert_eq!(t.take_late(at(400), RpcId(5), &a), Some(at(200)));
    }

    proptest::proptest! {
        /// Whatever the samples and timeouts, the RTO stays within its bounds.
        #[test]
        fn rto_stays_within_its_bounds(
            first in 0u64..20_000_000,
            steps in proptest::collection::vec((0u64..20_000_000, proptest::bool::ANY), 0..64),
            floor_ms in 0u64..1_000,
            ceiling_ms in 1u64..10_000,
        ) {
            let (floor, ceiling) = (ms(floor_ms), ms(ceiling_ms));
            let mut e = RttEstimate::new(Duration::from_micros(first));
            for (us, timeout) in steps {
                if timeout {
                    e.back_off();
                } else {
                    e.sample(Duration::from_micros(us));
                }
                let rto = e.rto(floor, ceiling);
                proptest::prop_assert!(rto <= ceiling);
                proptest::prop_assert!(rto >= floor.min(ceiling));
            }
        }

        /// From any start, a steady round trip R brings SRTT to R (within the
        /// integer rounding) and the RTO down to max(floor, about R).
        #[test]
        fn a_steady_round_trip_is_converged_on(
            first_us in 0u64..10_000_000,
            r_us in 1_000u64..1_000_000,
        ) {
            let mut e = RttEstimate::new(Duration::from_micros(first_us));
            for _ in 0..300 {
                e.sample(Duration::from_micros(r_us));
            }
            let srtt = micros(e.srtt());
            proptest::prop_assert!(srtt <= r_us && r_us - srtt <= 7, "srtt {srtt} for {r_us}");
            let rto = micros(e.rto(Duration::ZERO, Duration::from_secs(60)));
            proptest::prop_assert!(rto >= srtt && rto <= r_us + 64, "rto {rto} for {r_us}");
        }

        /// The table never holds more than its bounds, and its indexes agree.
        #[test]
        fn the_table_stays_bounded(
            ops in proptest::collection::vec((0u8..16, 0u64..1_000, proptest::bool::ANY), 0..200),
        ) {
            let mut t = RttTable::new(5, 3);
            let mut now = Time::ZERO;
            for (i, (peer, ms_, timeout)) in ops.into_iter().enumerate() {
                now += ms(1);
                let id = Id::hash_of(&[peer]);
                if timeout {
                    t.timed_out(now, RpcId(i as u64), id, now, now + ms(ms_));
                } else {
                    t.sample(now, id, ms(ms_));
                }
                t.check();
            }
        }
    }
}
