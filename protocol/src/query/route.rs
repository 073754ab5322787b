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
    /// visited. For metrics whose tables are no funnel (Hamming).
    BestFirst,
}

impl Forwarding {
    /// Every rule, for experiments that sweep them.
    pub const ALL: &'static [Forwarding] = &[Forwarding::Greedy, Forwarding::BestFirst];

    /// The lowercase name, as shown and parsed.
    pub const fn name(self) -> &'static str {
        match self {
            Forwarding::Greedy => "greedy",
            Forwarding::BestFirst => "best-first",
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
#[error("unknown forwarding rule {given:?} (known: greedy, best-first)")]
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
    pub metric: Metric,
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
    /// when the walk ends here. `mine` are `own`'s closest contacts to the
    /// target, closest first; `tried` the next hops that already failed from
    /// here. Best-first forwarding rewrites `route.frontier` to what the next
    /// hop inherits.
    pub fn next_hop<A: Address>(
        &self,
        own: &Id,
        route: &mut Route<A>,
        mine: Vec<Contact<A>>,
        tried: &[Id],
    ) -> Option<Contact<A>> {
        match self.forwarding {
            Forwarding::Greedy => self.greedy(own, route, mine, tried),
            Forwarding::BestFirst => self.best_first(own, route, mine, tried),
        }
    }

    fn greedy<A: Address>(
        &self,
        own: &Id,
        route: &Route<A>,
        mine: Vec<Contact<A>>,
        tried: &[Id],
    ) -> Option<Contact<A>> {
        let metric = self.metric;
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
        let g = rule(Forwarding::Greedy, 1).next_hop(&id(8), &mut r, contacts(&[16, 32]), &[]);
        assert_eq!(g, None);
        // Best-first remembers 4 from an earlier hop and goes back to it.
        let mut r = route(&[64, 8], &[4]);
        let b = rule(Forwarding::BestFirst, 1).next_hop(&id(8), &mut r, contacts(&[16, 32]), &[]);
        assert_eq!(b.map(|c| c.addr), Some(4));
        assert_eq!(r.frontier, contacts(&[16, 32]));
    }

    #[test]
    fn best_first_ends_when_the_width_closest_were_visited() {
        // 2 and 4 are on the path and closer than anything left.
        let mut r = route(&[4, 2], &[8]);
        let rule2 = rule(Forwarding::BestFirst, 2);
        assert_eq!(rule2.next_hop(&id(2), &mut r, contacts(&[16]), &[]), None);
        // With width 3 it goes on to the best unvisited candidate.
        let mut r = route(&[4, 2], &[8]);
        let rule3 = rule(Forwarding::BestFirst, 3);
        let next = rule3.next_hop(&id(2), &mut r, contacts(&[16]), &[]);
        assert_eq!(next.map(|c| c.addr), Some(8));
    }

    #[test]
    fn best_first_frontier_is_bounded_deduplicated_and_skips_path_and_tried() {
        let mut r = route(&[64, 9], &[3, 9, 5, 5, 64]);
        let got = rule(Forwarding::BestFirst, 5).next_hop(
            &id(9),
            &mut r,
            contacts(&[1, 3, 7, 6]),
            &[id(1)],
        );
        assert_eq!(got.map(|c| c.addr), Some(3));
        // 1 was tried, 9 and 64 are on the path, 5 came twice; k = 3 remain at most.
        assert_eq!(r.frontier, contacts(&[5, 6, 7]));
    }
}
