//! Which dials the node may make: nobody gets this node to flood a third
//! party by naming it in a message.
//!
//! Addresses come from other peers (provider lists, routes, contacts), so a
//! dial to an (address, id) pair not verified recently is limited: an address
//! whose connect or handshake failed is not dialled again for a while, and per
//! destination IP only a few unverified dials may be in progress and only a few
//! may fail per window. Each pair at an IP that did prove its id raises that
//! IP's allowance by one, so a loopback testnet of many honest nodes on one IP
//! keeps working: failures are limited, successes are not.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use distroweb_protocol::Id;

use crate::config::NetConfig;

/// Why a dial was not made.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DialRefused {
    #[error("its last dial failed recently")]
    RecentlyFailed,
    #[error("{0} unverified dials to its IP in progress")]
    TooManyInProgress(usize),
    #[error("{0} dials to its IP failed recently")]
    TooManyFailures(usize),
}

/// Whether a dial is to a pair verified recently (no limits) or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trust {
    Verified,
    Unverified,
}

#[derive(Debug, Default)]
struct PerIp {
    dialing: usize,
    /// When recent failures happened, oldest first (bounded by the failure cap).
    failures: VecDeque<Instant>,
    /// Pairs at this IP in the verified cache.
    verified: usize,
}

/// The dial limits' state, owned by the node task.
#[derive(Debug)]
pub(crate) struct DialLimits {
    verified: BTreeMap<(SocketAddr, Id), Instant>,
    failed: BTreeMap<SocketAddr, Instant>,
    per_ip: BTreeMap<IpAddr, PerIp>,
    config: Limits,
}

#[derive(Debug)]
struct Limits {
    max_in_progress: usize,
    max_failures: usize,
    window: std::time::Duration,
    backoff: std::time::Duration,
    max_failed: usize,
    verified_ttl: std::time::Duration,
    max_verified: usize,
}

impl DialLimits {
    pub fn new(c: &NetConfig) -> Self {
        DialLimits {
            verified: BTreeMap::new(),
            failed: BTreeMap::new(),
            per_ip: BTreeMap::new(),
            config: Limits {
                max_in_progress: c.max_unverified_dials_per_ip,
                max_failures: c.max_dial_failures_per_ip,
                window: c.dial_failure_window,
                backoff: c.failed_dial_backoff,
                max_failed: c.max_failed_addresses,
                verified_ttl: c.verified_ttl,
                max_verified: c.max_verified_peers,
            },
        }
    }

    /// Decides a dial to `addr` expecting `id` (`None`: a bootstrap seed the
    /// operator named, never limited) and, if allowed, counts it as in progress.
    pub fn start(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        id: Option<Id>,
    ) -> Result<Trust, DialRefused> {
        let Some(id) = id else {
            return Ok(Trust::Verified);
        };
        if self
            .verified
            .get(&(addr, id))
            .is_some_and(|at| now.duration_since(*at) < self.config.verified_ttl)
        {
            return Ok(Trust::Verified);
        }
        if self
            .failed
            .get(&addr)
            .is_some_and(|at| now.duration_since(*at) < self.config.backoff)
        {
            return Err(DialRefused::RecentlyFailed);
        }
        let c = &self.config;
        let ip = self.per_ip.entry(addr.ip()).or_default();
        while ip
            .failures
            .front()
            .is_some_and(|at| now.duration_since(*at) >= c.window)
        {
            ip.failures.pop_front();
        }
        if ip.failures.len() >= c.max_failures + ip.verified {
            return Err(DialRefused::TooManyFailures(ip.failures.len()));
        }
        if ip.dialing >= c.max_in_progress + ip.verified {
            return Err(DialRefused::TooManyInProgress(ip.dialing));
        }
        ip.dialing += 1;
        Ok(Trust::Unverified)
    }

    /// A dial started with `trust` proved `id` at `addr`.
    pub fn succeeded(&mut self, now: Instant, addr: SocketAddr, id: Id, trust: Trust) {
        self.finish(addr, trust);
        self.failed.remove(&addr);
        if self.verified.insert((addr, id), now).is_none() {
            self.per_ip.entry(addr.ip()).or_default().verified += 1;
        }
        if self.verified.len() > self.config.max_verified {
            // Forget the pair verified longest ago.
            if let Some(oldest) = oldest(&self.verified) {
                self.forget_verified(oldest);
            }
        }
    }

    /// A dial started with `trust` to `addr` failed (connect, handshake or proof).
    pub fn failed(&mut self, now: Instant, addr: SocketAddr, expected: Option<Id>, trust: Trust) {
        self.finish(addr, trust);
        if let Some(id) = expected {
            // A pair that stopped proving itself is not trusted any more.
            self.forget_verified((addr, id));
        }
        self.failed.insert(addr, now);
        if self.failed.len() > self.config.max_failed {
            if let Some(oldest) = oldest(&self.failed) {
                self.failed.remove(&oldest);
            }
        }
        let max = self.config.max_failures;
        let ip = self.per_ip.entry(addr.ip()).or_default();
        ip.failures.push_back(now);
        // Only the count up to the cap (plus the verified allowance) matters.
        while ip.failures.len() > max + ip.verified {
            ip.failures.pop_front();
        }
    }

    /// A dial counted by [`DialLimits::start`] never left (no slot): it neither failed nor succeeded.
    pub fn abandoned(&mut self, addr: SocketAddr, trust: Trust) {
        self.finish(addr, trust);
    }

    fn finish(&mut self, addr: SocketAddr, trust: Trust) {
        if trust == Trust::Unverified {
            if let Some(ip) = self.per_ip.get_mut(&addr.ip()) {
                ip.dialing = ip.dialing.saturating_sub(1);
            }
        }
        self.tidy(addr.ip());
    }

    fn forget_verified(&mut self, pair: (SocketAddr, Id)) {
        if self.verified.remove(&pair).is_some() {
            if let Some(ip) = self.per_ip.get_mut(&pair.0.ip()) {
                ip.verified = ip.verified.saturating_sub(1);
            }
            self.tidy(pair.0.ip());
        }
    }

    /// Drops an IP's entry once it says nothing, so the map stays bounded by
    /// the other maps and the dials in progress.
    fn tidy(&mut self, ip: IpAddr) {
        if self
            .per_ip
            .get(&ip)
            .is_some_and(|s| s.dialing == 0 && s.failures.is_empty() && s.verified == 0)
        {
            self.per_ip.remove(&ip);
        }
    }
}

/// The key stamped longest ago: what a full map forgets first. A scan, but
/// only when the map is over its bound, and the bounds are a few thousand.
fn oldest<K: Copy>(map: &BTreeMap<K, Instant>) -> Option<K> {
    map.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> DialLimits {
        DialLimits::new(&NetConfig {
            max_unverified_dials_per_ip: 2,
            max_dial_failures_per_ip: 2,
            ..NetConfig::default()
        })
    }

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn failures_are_limited_and_successes_are_not() {
        let now = Instant::now();
        let id = |n: u8| Some(Id::hash_of(&[n]));
        let mut l = limits();
        assert_eq!(l.start(now, at(1), id(1)), Ok(Trust::Unverified));
        assert_eq!(l.start(now, at(2), id(2)), Ok(Trust::Unverified));
        assert_eq!(
            l.start(now, at(3), id(3)),
            Err(DialRefused::TooManyInProgress(2))
        );
        l.failed(now, at(1), id(1), Trust::Unverified);
        l.failed(now, at(2), id(2), Trust::Unverified);
        assert_eq!(l.start(now, at(1), id(1)), Err(DialRefused::RecentlyFailed));
        assert_eq!(
            l.start(now, at(3), id(3)),
            Err(DialRefused::TooManyFailures(2))
        );
        // Seeds named by the operator are never limited.
        assert_eq!(l.start(now, at(3), None), Ok(Trust::Verified));
        // The window moves on.
        let later = now + Duration::from_secs(61);
        assert_eq!(l.start(later, at(3), id(3)), Ok(Trust::Unverified));

        // Successes raise the IP's allowance and are trusted after.
        let mut l = limits();
        for port in 10..20 {
            let t = l.start(now, at(port), id(port as u8)).unwrap();
            l.succeeded(now, at(port), Id::hash_of(&[port as u8]), t);
        }
        assert_eq!(l.start(now, at(10), id(10)), Ok(Trust::Verified));
        for port in 20..30 {
            assert_eq!(
                l.start(now, at(port), id(port as u8)),
                Ok(Trust::Unverified)
            );
        }
    }
}
