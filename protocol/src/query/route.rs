//! The recursive walk's forwarding rule: at one hop, given the route as it
//! arrived and this node's own closest contacts, where the route goes next.
//!
//! Pure and per hop: the route message carries all the walk's state (its path,
//! and for best-first forwarding its frontier), so a hop keeps nothing once the
//! next hop has acknowledged.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::contact::{Address, Contact};
use crate::distance::Metric;
use crate::id::Id;
use crate::wire::{Route, RouteWant};

/// How a recursive route picks its next hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Forwarding {
    /// Each hop forwards to its own closest contact that is closer to the target
    /// than itself; the route carries no candidates. Enough where the buckets
    /// funnel towards any target (XOR's prefixes, the ring's offsets).
    Greedy,
    /// A best-first walk: the route carries a bounded frontier of the best
    /// candidates seen so far (at most `k`, none on the path); each hop merges
    /// its own closest contacts into it and forwards to the best one, and the
    /// walk ends once the `route_width` closest nodes it has seen were all
    /// visited. Finds close nodes where tables are no funnel, but an
    /// announce and a lookup from different origins are two independent
    /// searches that need not meet (Hamming at 100,000 nodes).
    BestFirst,
    /// Greedy under the routing table's metric until a node knows no closer
    /// contact (the key's anchor, the same node whoever starts the walk), then
    /// best-first under the key metric from there. For a key metric whose
    /// tables are shaped by another ([`Metric::table_metric`], Hamming): every
    /// walk for a key retraces the same best-first search from the same start,
    /// so a lookup visits the nodes an announce stored at.
    Anchored,
}

impl Forwarding {
    /// Every rule, for experiments that sweep them.
    pub const ALL: &'static [Forwarding] = &[
        Forwarding::Greedy,
        Forwarding::BestFirst,
        Forwarding::Anchored,
    ];

    /// The lowercase name, as shown and parsed.
    pub const fn name(self) -> &'static str {
        match self {
            Forwarding::Greedy => "greedy",
            Forwarding::BestFirst => "best-first",
            Forwarding::Anchored => "anchored",
        }
    }
}

impl fmt::Display for Forwarding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A forwarding rule name that is not one of [`Forwarding::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown forwarding rule {given:?} (known: greedy, best-first, anchored)")]
pub struct ParseForwardingError {
    /// What was given.
    pub given: String,
}

impl FromStr for Forwarding {
    type Err = ParseForwardingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Forwarding::ALL
            .iter()
            .copied()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseForwardingError { given: s.into() })
    }
}

/// The settings one hop needs to apply the rule.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HopRule {
    /// The key metric: how close a node is to the target.
    pub metric: Metric,
    /// The metric that shaped the routing tables (anchored forwarding funnels by it).
    pub table: Metric,
    pub forwarding: Forwarding,
    /// `k`: the frontier's bound.
    pub k: usize,
    /// Best-first: the walk ends once this many of the closest nodes seen were visited.
    pub width: usize,
    /// Greedy: sideways steps a provider route may take out of a local minimum.
    pub detours: usize,
}

impl HopRule {
    /// The next hop for `route` at node `own` (the last on its path), or `None`
    /// when the walk ends here. `mine(m)` gives `own`'s closest contacts to the
    /// target under metric `m`, closest first; `tried` the next hops that
    /// already failed from here. Best-first forwarding rewrites
    /// `route.frontier` to what the next hop inherits.
    pub fn next_hop<A: Address>(
        &self,
        own: &Id,
        route: &mut Route<A>,
        mine: impl Fn(Metric) -> Vec<Contact<A>>,
        tried: &[Id],
    ) -> Option<Contact<A>> {
        match self.forwarding {
            Forwarding::Greedy => self.greedy(self.metric, own, route, mine(self.metric), tried),
            Forwarding::BestFirst => self.best_first(own, route, mine(self.metric), tried),
            Forwarding::Anchored => self.anchored(own, route, mine, tried),
        }
    }

    /// Greedy by the table's metric while the route is still funnelling, then
    /// best-first by the key metric.
    ///
    /// Implementation note: the phase is read off the route, so the wire format
    /// carries no extra field. A route is still funnelling while its frontier
    /// is empty and every hop on its path was closer to the target under the
    /// table's metric than the one before. The anchor knows no closer contact,
    /// so the hop it forwards to is farther than itself and every later hop
    /// sees a path that turned.
    fn anchored<A: Address>(
        &self,
        own: &Id,
        route: &mut Route<A>,
        mine: impl Fn(Metric) -> Vec<Contact<A>>,
        tried: &[Id],
    ) -> Option<Contact<A>> {
        let funnel = self.table;
        let target = route.target;
        let descending = route
            .path
            .windows(2)
            .all(|w| funnel.distance(&w[1].id, &target) < funnel.distance(&w[0].id, &target));
        if route.frontier.is_empty() && descending {
            let here = funnel.distance(own, &target);
            let closer = mine(funnel)
                .into_iter()
                .take_while(|c| funnel.distance(&c.id, &target) < here)
                .find(|c| !tried.contains(&c.id) && !on_path(route, &c.id));
            if closer.is_some() {
                return closer;
            }
        }
        // Here is the anchor, or the route left it already.
        self.best_first(own, route, mine(self.metric), tried)
    }

    fn greedy<A: Address>(
        &self,
        metric: Metric,
        own: &Id,
        route: &Route<A>,
        mine: Vec<Contact<A>>,
        tried: &[Id],
    ) -> Option<Contact<A>> {
        let target = route.target;
        let here = metric.distance(own, &target);
        let fresh = |c: &Contact<A>| !tried.contains(&c.id) && !on_path(route, &c.id);
        let closer = mine
            .iter()
            .take_while(|c| metric.distance(&c.id, &target) < here)
            .find(|c| fresh(c));
        if let Some(c) = closer {
            return Some(c.clone());
        }
        if route.want == RouteWant::Providers && self.detours_taken(route) < self.detours {
            return mine.into_iter().find(|c| fresh(c));
        }
        None
    }

    /// Steps on the path that did not get closer to the target.
    ///
    /// Implementation note: greedy routing can stop at a local minimum, a node
    /// that knows no closer peer yet does not track the key. A provider route
    /// that meets one may step sideways to the closest unvisited peer, up to
    /// `route_detours` times; the count is read off the path, so the wire format
    /// carries no extra field.
    fn detours_taken<A>(&self, route: &Route<A>) -> usize {
        let d = |c: &Contact<A>| self.metric.distance(&c.id, &route.target);
        route
            .path
            .windows(2)
            .filter(|w| d(&w[1]) >= d(&w[0]))
            .count()
    }

    fn best_first<A: Address>(
        &self,
        own: &Id,
        route: &mut Route<A>,
        mine: Vec<Contact<A>>,
        tried: &[Id],
    ) -> Option<Contact<A>> {
        let metric = self.metric;
        let target = route.target;
        let mut frontier = core::mem::take(&mut route.frontier);
        frontier.extend(mine);
        // A frontier from the network may name us, the path, or one peer twice.
        frontier.retain(|c| c.id != *own && !tried.contains(&c.id) && !on_path(route, &c.id));
        frontier.sort_by_key(|c| metric.distance(&c.id, &target));
        frontier.dedup_by(|a, b| a.id == b.id);
        let best = metric.distance(&frontier.first()?.id, &target);
        let visited_closer = route
            .path
            .iter()
            .filter(|c| metric.distance(&c.id, &target) < best)
            .count();
        let next = (visited_closer < self.width).then(|| frontier.remove(0));
        frontier.truncate(self.k);
        route.frontier = frontier;
        next
    }
}

fn on_path<A>(route: &Route<A>, id: &Id) -> bool {
    route.path.iter().any(|c| c.id == *id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::test_id as id;

    fn rule(forwarding: Forwarding, width: usize) -> HopRule {
        HopRule {
            metric: Metric::Xor,
            table: Metric::Xor,
            forwarding,
            k: 3,
            width,
            detours: 0,
        }
    }

    fn route(path: &[u8], frontier: &[u8]) -> Route<u32> {
        let c = |n: &u8| Contact::new(id(*n), u32::from(*n));
        Route {
            tag: 1,
            target: Id::ZERO,
            want: RouteWant::Providers,
            path: path.iter().map(c).collect(),
            frontier: frontier.iter().map(c).collect(),
            messages: 0,
        }
    }

    fn contacts(ns: &[u8]) -> Vec<Contact<u32>> {
        ns.iter()
            .map(|n| Contact::new(id(*n), u32::from(*n)))
            .collect()
    }

    #[test]
    fn greedy_stops_at_a_local_minimum_and_best_first_does_not() {
        // We are 8; our contacts (16, 32) are all farther from the target 0.
        let mut r = route(&[64, 8], &[4]);
        let g = rule(Forwarding::Greedy, 1).next_hop(&id(8), &mut r, |_| contacts(&[16, 32]), &[]);
        assert_eq!(g, None);
        // Best-first remembers 4 from an earlier hop and goes back to it.
        let mut r = route(&[64, 8], &[4]);
        let b =
            rule(Forwarding::BestFirst, 1).next_hop(&id(8), &mut r, |_| contacts(&[16, 32]), &[]);
        assert_eq!(b.map(|c| c.addr), Some(4));
        assert_eq!(r.frontier, contacts(&[16, 32]));
    }

    #[test]
    fn best_first_ends_when_the_width_closest_were_visited() {
        // 2 and 4 are on the path and closer than anything left.
        let mut r = route(&[4, 2], &[8]);
        let rule2 = rule(Forwarding::BestFirst, 2);
        assert_eq!(
            rule2.next_hop(&id(2), &mut r, |_| contacts(&[16]), &[]),
            None
        );
        // With width 3 it goes on to the best unvisited candidate.
        let mut r = route(&[4, 2], &[8]);
        let rule3 = rule(Forwarding::BestFirst, 3);
        let next = rule3.next_hop(&id(2), &mut r, |_| contacts(&[16]), &[]);
        assert_eq!(next.map(|c| c.addr), Some(8));
    }

    /// Hamming keys over XOR-shaped tables: `mine` answers by the metric asked.
    fn anchored_rule(width: usize) -> HopRule {
        HopRule {
            metric: Metric::Hamming,
            table: Metric::Xor,
            forwarding: Forwarding::Anchored,
            k: 3,
            width,
            detours: 0,
        }
    }

    fn by_metric(
        xor: &'static [u8],
        hamming: &'static [u8],
    ) -> impl Fn(Metric) -> Vec<Contact<u32>> {
        move |m| match m {
            Metric::Xor => contacts(xor),
            _ => contacts(hamming),
        }
    }

    #[test]
    fn anchored_funnels_by_the_table_metric_then_goes_best_first_by_the_key_metric() {
        // At 96 (XOR 96 from the target 0): 7 is XOR-closer, so the route funnels
        // to it although 64 is closer in Hamming (1 bit against 3).
        let mut r = route(&[96], &[]);
        let next = anchored_rule(5).next_hop(&id(96), &mut r, by_metric(&[7, 48], &[64, 7]), &[]);
        assert_eq!(next.map(|c| c.addr), Some(7));
        assert!(r.frontier.is_empty(), "funnelling carries no frontier");

        // At 7 nothing is XOR-closer: 7 is the anchor and the walk turns best-first
        // by Hamming, carrying the rest as its frontier.
        let mut r = route(&[96, 7], &[]);
        let next = anchored_rule(5).next_hop(&id(7), &mut r, by_metric(&[8, 12], &[8, 12]), &[]);
        assert_eq!(next.map(|c| c.addr), Some(8));
        assert_eq!(r.frontier, contacts(&[12]));

        // Past the anchor the path has turned (8 is farther than 7): even with an
        // empty frontier and an XOR-closer contact, the rule stays best-first.
        let mut r = route(&[96, 7, 8], &[]);
        let next = anchored_rule(5).next_hop(&id(8), &mut r, by_metric(&[1], &[48]), &[]);
        assert_eq!(next.map(|c| c.addr), Some(48));
    }

    #[test]
    fn anchored_funnelling_routes_around_a_dead_next_hop() {
        // 7 did not acknowledge: the next XOR-closer contact, 9, is taken instead.
        let mut r = route(&[96], &[]);
        let next =
            anchored_rule(5).next_hop(&id(96), &mut r, by_metric(&[7, 9, 48], &[64]), &[id(7)]);
        assert_eq!(next.map(|c| c.addr), Some(9));
    }

    #[test]
    fn best_first_frontier_is_bounded_deduplicated_and_skips_path_and_tried() {
        let mut r = route(&[64, 9], &[3, 9, 5, 5, 64]);
        let got = rule(Forwarding::BestFirst, 5).next_hop(
            &id(9),
            &mut r,
            |_| contacts(&[1, 3, 7, 6]),
            &[id(1)],
        );
        assert_eq!(got.map(|c| c.addr), Some(3));
        // 1 was tried, 9 and 64 are on the path, 5 came twice; k = 3 remain at most.
        assert_eq!(r.frontier, contacts(&[5, 6, 7]));
    }
}
