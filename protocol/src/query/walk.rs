//! How a query's lookup travels, behind one start / advance / finish.
//!
//! A [`Walk`] is started from the contacts the node knows, advanced with what
//! the network said (a reply, a failure, a recursive route's answer), and asked
//! for its next [`WalkStep`] until it says [`WalkStep::Done`] or
//! [`WalkStep::Failed`]. The iterative walk (Kademlia: the origin asks `alpha`
//! peers at a time) and the recursive walk (the original design: the request is
//! forwarded hop by hop and the answer comes back down the path) are its two
//! variants, so the node's query lifecycle (`node/lookup.rs`) is the same for
//! both; a new strategy is a new variant here.
//!
//! The iterative walk may go down `d` disjoint paths at once (S/Kademlia,
//! Baumgart and Mies 2007, §4.4): the contacts it starts from are dealt over
//! the paths, each path keeps its own shortlist with `alpha` requests in
//! flight, and a shared claimed set makes sure no node is asked by two paths.
//! An adversary that answers one path with its friends then steers that path
//! only. With one path it is Kademlia's lookup, step for step.
//!
//! Pure bookkeeping: the node sends what a step asks for and feeds back what
//! came of it.

use std::collections::BTreeMap;

use crate::config::Strategy;
use crate::contact::{Address, Contact};
use crate::distance::Metric;
use crate::id::Id;
use crate::wire::RouteFailure;

use super::closest::{ClosestPeers, Step};
use super::QueryError;

/// What a walk wants next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WalkStep<A> {
    /// Send the query's request to this peer (iterative).
    Ask(Contact<A>),
    /// Send the query as a recursive route, this node its first hop.
    Route,
    /// Nothing to do until a reply, a failure or the query's deadline.
    Wait,
    /// The walk is over: the closest nodes it found, closest first, and the
    /// depth of the closest one (iterative hop counting), if known.
    Done {
        /// Closest first, at most `k`, this node left out; with disjoint paths
        /// the `k` closest over every path's answers.
        closest: Vec<Contact<A>>,
        /// Depth of `closest[0]` (0: from our own table).
        depth: Option<u32>,
    },
    /// The walk failed on its way.
    Failed(QueryError),
}

/// Where a recursive walk is.
#[derive(Clone, Debug)]
enum Route<A> {
    /// Not sent yet.
    Unsent,
    /// Out in the network; waiting for the answer to come back down the path.
    Out,
    /// The answer came back.
    Answered(Result<Vec<Contact<A>>, RouteFailure>),
    /// Its end has been handed out.
    Over,
}

/// One of an iterative walk's disjoint paths.
#[derive(Clone, Debug)]
pub(crate) struct Path<A> {
    /// This path's shortlist.
    peers: ClosestPeers<A>,
    /// Whether the path is over (converged, exhausted, or ended by the node).
    ended: bool,
}

/// A peer's reply, as the walk took it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Answered {
    /// The depth of the peer that answered.
    pub depth: u32,
    /// The path that asked it (0 with one path).
    pub path: usize,
}

/// One query's lookup, by strategy.
#[derive(Clone, Debug)]
pub(crate) enum Walk<A> {
    /// The origin walks towards the target itself, down one or more disjoint paths.
    Iterative {
        /// The paths, at least one.
        paths: Vec<Path<A>>,
        /// Every node a path has asked, and which path: no node is asked by
        /// two paths, and its reply goes back to the path that asked.
        claimed: BTreeMap<Id, usize>,
        /// Paths that must have ended before the walk ends.
        to_finish: usize,
        /// The target and metric, to merge the paths' answers by distance.
        target: Id,
        /// The metric that ranks nodes.
        metric: Metric,
        /// Bootstrap seeds (ids unknown) yet to answer; the walk waits for them.
        seeds_pending: usize,
        /// Nodes in the answer.
        k: usize,
        /// Whether `Done` has been handed out.
        over: bool,
    },
    /// Forwarded hop by hop; the answer travels back down the path.
    Recursive(RecursiveWalk<A>),
}

/// The recursive variant's state (private, so only [`Walk`] moves it).
#[derive(Clone, Debug)]
pub(crate) struct RecursiveWalk<A> {
    route: Route<A>,
}

/// What a walk needs to start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WalkParams {
    /// How the lookup travels.
    pub strategy: Strategy,
    /// What it looks for.
    pub target: Id,
    /// The metric that ranks nodes.
    pub metric: Metric,
    /// Nodes in the answer.
    pub k: usize,
    /// Requests in flight (iterative).
    pub alpha: usize,
    /// Shortlist bound (iterative), per path.
    pub max_candidates: usize,
    /// `d`: disjoint paths (iterative), at least 1.
    pub paths: usize,
    /// Paths that must have ended before the walk ends, 1 to `paths`.
    pub to_finish: usize,
}

impl<A: Address> Walk<A> {
    /// Starts a walk from the contacts this node knows closest to the target
    /// (closest first): with `d` paths, contact `i` goes to path `i mod d`, so
    /// each path starts from its share of the closest.
    pub fn start(p: WalkParams, known: Vec<Contact<A>>) -> Self {
        match p.strategy {
            Strategy::Iterative => {
                let d = p.paths.max(1);
                let mut paths: Vec<Path<A>> = (0..d)
                    .map(|_| Path {
                        peers: ClosestPeers::new(
                            p.target,
                            p.metric,
                            p.k,
                            p.alpha,
                            p.max_candidates,
                        ),
                        ended: false,
                    })
                    .collect();
                for (i, c) in known.into_iter().enumerate() {
                    paths[i % d].peers.add(c, 0);
                }
                Walk::Iterative {
                    paths,
                    claimed: BTreeMap::new(),
                    to_finish: p.to_finish.clamp(1, d),
                    target: p.target,
                    metric: p.metric,
                    seeds_pending: 0,
                    k: p.k,
                    over: false,
                }
            }
            Strategy::Recursive => Walk::Recursive(RecursiveWalk {
                route: Route::Unsent,
            }),
        }
    }

    /// The walk also waits for `n` bootstrap seeds asked outside it.
    pub fn wait_for_seeds(&mut self, n: usize) {
        if let Walk::Iterative { seeds_pending, .. } = self {
            *seeds_pending = n;
        }
    }

    /// A peer answered with `closer` contacts (`seed`: a bootstrap seed whose id
    /// was unknown). Returns the depth of the peer that answered and its path,
    /// or `None` if the walk was not waiting for it (a late reply, one to a
    /// path already ended, or not an iterative walk).
    pub fn on_reply(
        &mut self,
        own: &Id,
        from: Contact<A>,
        seed: bool,
        closer: Vec<Contact<A>>,
    ) -> Option<Answered> {
        let Walk::Iterative {
            paths,
            claimed,
            seeds_pending,
            ..
        } = self
        else {
            return None;
        };
        let (path, depth) = if seed {
            // A seed counts as an answer of the first path.
            *seeds_pending = seeds_pending.saturating_sub(1);
            paths[0].peers.add_succeeded(from, 0);
            (0, 0)
        } else {
            let path = *claimed.get(&from.id)?;
            let p = &mut paths[path];
            // `None`: a late reply from a peer the walk already gave up on.
            let depth = p.peers.on_success(&from.id)?;
            if p.ended {
                return None;
            }
            (path, depth)
        };
        // A seed's contacts are dealt over the paths, as the table's are at the
        // start; any other reply feeds the path that asked.
        let d = paths.len();
        for (j, c) in closer.into_iter().filter(|c| c.id != *own).enumerate() {
            let to = if seed { j % d } else { path };
            paths[to].peers.add(c, depth + 1);
        }
        Some(Answered { depth, path })
    }

    /// A request failed (`to` is `None` for a bootstrap seed); returns whether
    /// the walk took note (a recursive walk learns of failures from its answer).
    pub fn on_failure(&mut self, to: Option<&Id>) -> bool {
        let Walk::Iterative {
            paths,
            claimed,
            seeds_pending,
            ..
        } = self
        else {
            return false;
        };
        match to {
            None => *seeds_pending = seeds_pending.saturating_sub(1),
            Some(id) => {
                if let Some(&path) = claimed.get(id) {
                    paths[path].peers.on_failure(id);
                }
            }
        }
        true
    }

    /// Ends one path early (a provider lookup's path that found enough
    /// providers); the walk ends once `to_finish` paths have.
    pub fn end_path(&mut self, path: usize) {
        if let Walk::Iterative { paths, .. } = self {
            if let Some(p) = paths.get_mut(path) {
                p.ended = true;
            }
        }
    }

    /// Disjoint paths this walk goes down (1 for a recursive walk).
    pub fn path_count(&self) -> usize {
        match self {
            Walk::Iterative { paths, .. } => paths.len(),
            Walk::Recursive(_) => 1,
        }
    }

    /// The nodes asked so far, each by the one path that asked it (for tests
    /// and `Node::memory_usage`).
    pub fn claimed(&self) -> Option<&BTreeMap<Id, usize>> {
        match self {
            Walk::Iterative { claimed, .. } => Some(claimed),
            Walk::Recursive(_) => None,
        }
    }

    /// The recursive route's answer came back: the closest nodes it found
    /// (this node left out, at most `k`), or why it failed. Returns whether the
    /// walk was waiting for it.
    pub fn on_answer(&mut self, answer: Result<Vec<Contact<A>>, RouteFailure>) -> bool {
        match self {
            Walk::Recursive(r) if matches!(r.route, Route::Out) => {
                r.route = Route::Answered(answer);
                true
            }
            _ => false,
        }
    }

    /// Whether this walk waits for a recursive answer (not sent, or out).
    pub fn awaits_answer(&self) -> bool {
        matches!(self, Walk::Recursive(r) if matches!(r.route, Route::Out))
    }

    /// The iterative shortlists, one per path (none for a recursive walk; for
    /// `Node::memory_usage`).
    pub fn shortlists(&self) -> impl Iterator<Item = &ClosestPeers<A>> + '_ {
        let paths: &[Path<A>] = match self {
            Walk::Iterative { paths, .. } => paths,
            Walk::Recursive(_) => &[],
        };
        paths.iter().map(|p| &p.peers)
    }

    /// What the walk wants next; `Done` and `Failed` are handed out once.
    pub fn next(&mut self) -> WalkStep<A> {
        match self {
            Walk::Iterative {
                paths,
                claimed,
                to_finish,
                target,
                metric,
                seeds_pending,
                k,
                over,
            } => {
                if *over || *seeds_pending > 0 {
                    return WalkStep::Wait;
                }
                for (i, path) in paths.iter_mut().enumerate() {
                    if path.ended {
                        continue;
                    }
                    match path.peers.next_free(|id| !claimed.contains_key(id)) {
                        Step::Contact(c) => {
                            claimed.insert(c.id, i);
                            return WalkStep::Ask(c);
                        }
                        Step::Wait => {}
                        Step::Finished => path.ended = true,
                    }
                }
                let ended = paths.iter().filter(|p| p.ended).count();
                if ended < *to_finish {
                    return WalkStep::Wait;
                }
                *over = true;
                let (closest, depth) = merge(paths, target, *metric, *k);
                WalkStep::Done { closest, depth }
            }
            Walk::Recursive(r) => match core::mem::replace(&mut r.route, Route::Over) {
                Route::Unsent => {
                    r.route = Route::Out;
                    WalkStep::Route
                }
                Route::Out => {
                    r.route = Route::Out;
                    WalkStep::Wait
                }
                Route::Answered(Ok(closest)) => WalkStep::Done {
                    closest,
                    depth: None,
                },
                Route::Answered(Err(f)) => WalkStep::Failed(QueryError::Route(f)),
                Route::Over => WalkStep::Wait,
            },
        }
    }
}

/// The `k` closest nodes that answered any path, closest first (the paths
/// are disjoint, so no node appears twice), and the depth of the closest.
fn merge<A: Address>(
    paths: &[Path<A>],
    target: &Id,
    metric: Metric,
    k: usize,
) -> (Vec<Contact<A>>, Option<u32>) {
    let mut all: Vec<(Contact<A>, u32)> = paths.iter().flat_map(|p| p.peers.succeeded(k)).collect();
    if paths.len() > 1 {
        all.sort_by_key(|(c, _)| metric.distance(&c.id, target));
        all.truncate(k);
    }
    let depth = all.first().map(|(_, d)| *d);
    (all.into_iter().map(|(c, _)| c).collect(), depth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::test_id as id;

    fn params(strategy: Strategy) -> WalkParams {
        WalkParams {
            strategy,
            target: id(0),
            metric: Metric::Xor,
            k: 2,
            alpha: 1,
            max_candidates: 10,
            paths: 1,
            to_finish: 1,
        }
    }

    #[test]
    fn an_iterative_walk_asks_then_ends_once_with_the_closest_that_answered() {
        let mut w = Walk::start(params(Strategy::Iterative), vec![Contact::new(id(4), 4u32)]);
        let WalkStep::Ask(c) = w.next() else {
            panic!("the known contact is asked first");
        };
        assert_eq!(c.id, id(4));
        assert_eq!(w.next(), WalkStep::Wait, "alpha = 1 is in flight");
        let depth = w.on_reply(
            &id(9),
            c,
            false,
            vec![Contact::new(id(1), 1), Contact::new(id(9), 9)],
        );
        assert_eq!(depth, Some(Answered { depth: 0, path: 0 }));
        let WalkStep::Ask(c) = w.next() else {
            panic!("the closer contact is asked next");
        };
        assert_eq!(c.id, id(1));
        assert!(w.on_failure(Some(&c.id)));
        match w.next() {
            WalkStep::Done { closest, depth } => {
                assert_eq!(
                    closest.iter().map(|c| c.id).collect::<Vec<_>>(),
                    vec![id(4)]
                );
                assert_eq!(depth, Some(0));
            }
            other => panic!("expected the end, got {other:?}"),
        }
        assert_eq!(w.next(), WalkStep::Wait, "the end is handed out once");
    }

    #[test]
    fn an_iterative_walk_waits_for_its_seeds() {
        let mut w: Walk<u32> = Walk::start(params(Strategy::Iterative), Vec::new());
        w.wait_for_seeds(1);
        assert_eq!(w.next(), WalkStep::Wait);
        assert!(w.on_failure(None));
        assert!(matches!(w.next(), WalkStep::Done { .. }));
    }

    #[test]
    fn a_recursive_walk_routes_once_and_ends_with_its_answer() {
        let mut w: Walk<u32> = Walk::start(params(Strategy::Recursive), Vec::new());
        assert!(
            !w.on_answer(Ok(Vec::new())),
            "no answer before the route is out"
        );
        assert_eq!(w.next(), WalkStep::Route);
        assert_eq!(w.next(), WalkStep::Wait);
        assert!(w.awaits_answer());
        assert!(w.on_answer(Err(RouteFailure::DeadEnd)));
        assert!(!w.on_answer(Ok(Vec::new())), "a second answer is ignored");
        assert_eq!(
            w.next(),
            WalkStep::Failed(QueryError::Route(RouteFailure::DeadEnd))
        );
        assert_eq!(w.next(), WalkStep::Wait);
    }

    fn disjoint(paths: usize, k: usize, alpha: usize) -> WalkParams {
        WalkParams {
            strategy: Strategy::Iterative,
            target: id(0),
            metric: Metric::Xor,
            k,
            alpha,
            max_candidates: 5 * k,
            paths,
            to_finish: paths,
        }
    }

    #[test]
    fn the_closest_are_dealt_over_the_paths_and_the_answer_merges_them() {
        let known: Vec<Contact<u32>> = (1..=4).map(|n| Contact::new(id(n), n as u32)).collect();
        let mut w = Walk::start(disjoint(2, 4, 1), known);
        // Path 0 starts from 1 and 3, path 1 from 2 and 4: each asks its closest.
        let mut asked = Vec::new();
        while let WalkStep::Ask(c) = w.next() {
            asked.push(c.id);
        }
        assert_eq!(asked, vec![id(1), id(2)]);
        // 1 names 2, which path 1 holds: path 0 passes it over and asks 3.
        let a = w.on_reply(
            &id(99),
            Contact::new(id(1), 1),
            false,
            vec![Contact::new(id(2), 2)],
        );
        assert_eq!(a, Some(Answered { depth: 0, path: 0 }));
        assert_eq!(w.next(), WalkStep::Ask(Contact::new(id(3), 3)));
        assert_eq!(w.claimed().map(|c| c.get(&id(3)).copied()), Some(Some(0)));
        for n in [2, 3] {
            assert!(w
                .on_reply(&id(99), Contact::new(id(n), n as u32), false, Vec::new())
                .is_some());
        }
        assert_eq!(w.next(), WalkStep::Ask(Contact::new(id(4), 4)));
        assert!(w.on_failure(Some(&id(4))));
        match w.next() {
            WalkStep::Done { closest, .. } => assert_eq!(
                closest.iter().map(|c| c.id).collect::<Vec<_>>(),
                vec![id(1), id(2), id(3)]
            ),
            other => panic!("expected the end, got {other:?}"),
        }
    }

    #[test]
    fn a_walk_ends_once_enough_paths_have() {
        let known: Vec<Contact<u32>> = (1..=4).map(|n| Contact::new(id(n), n as u32)).collect();
        let mut p = disjoint(2, 4, 1);
        p.to_finish = 1;
        let mut w = Walk::start(p, known);
        while let WalkStep::Ask(_) = w.next() {}
        w.end_path(1);
        assert!(matches!(w.next(), WalkStep::Done { .. }));
    }

    proptest::proptest! {
        /// Whatever the peers answer (and answers name nodes on other paths
        /// all the time), no node is ever asked by two paths, and every reply
        /// goes back to the path that asked.
        #[test]
        fn no_node_is_asked_by_two_paths(
            paths in 1usize..=8,
            alpha in 1usize..=3,
            answers in proptest::collection::vec(proptest::collection::vec(1u8..=120, 0..12), 1..200),
            fail_every in 2usize..9,
        ) {
            let k = 8usize.max(paths);
            let known: Vec<Contact<u32>> =
                (1..=k as u8).map(|n| Contact::new(id(n * 2), u32::from(n) * 2)).collect();
            let mut w = Walk::start(disjoint(paths, k, alpha.min(k)), known);
            let mut asked: std::collections::BTreeSet<Id> = std::collections::BTreeSet::new();
            let mut waiting: Vec<Contact<u32>> = Vec::new();
            let mut turn = 0usize;
            loop {
                let mut done = false;
                loop {
                    match w.next() {
                        WalkStep::Ask(c) => {
                            proptest::prop_assert!(asked.insert(c.id), "{:?} asked twice", c.id);
                            waiting.push(c);
                        }
                        WalkStep::Done { closest, .. } => {
                            let ids: std::collections::BTreeSet<Id> =
                                closest.iter().map(|c| c.id).collect();
                            proptest::prop_assert_eq!(ids.len(), closest.len());
                            proptest::prop_assert!(closest.len() <= k);
                            done = true;
                            break;
                        }
                        _ => break,
                    }
                }
                if done || waiting.is_empty() {
                    break;
                }
                let c = waiting.remove(turn % waiting.len());
                turn += 1;
                let path = w.claimed().and_then(|m| m.get(&c.id).copied());
                proptest::prop_assert!(path.is_some());
                if turn.is_multiple_of(fail_every) {
                    w.on_failure(Some(&c.id));
                } else {
                    let closer = answers[turn % answers.len()]
                        .iter()
                        .map(|n| Contact::new(id(*n), u32::from(*n)))
                        .collect();
                    if let Some(a) = w.on_reply(&id(255), c, false, closer) {
                        proptest::prop_assert_eq!(Some(a.path), path);
                    }
                }
            }
        }
    }
}
