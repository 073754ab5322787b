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
//! Pure bookkeeping: the node sends what a step asks for and feeds back what
//! came of it.

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
        /// Closest first, at most `k`, this node left out.
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

/// One query's lookup, by strategy.
#[derive(Clone, Debug)]
pub(crate) enum Walk<A> {
    /// The origin walks towards the target itself.
    Iterative {
        /// The shortlist.
        peers: ClosestPeers<A>,
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
    /// Shortlist bound (iterative).
    pub max_candidates: usize,
}

impl<A: Address> Walk<A> {
    /// Starts a walk from the contacts this node knows closest to the target.
    pub fn start(p: WalkParams, known: Vec<Contact<A>>) -> Self {
        match p.strategy {
            Strategy::Iterative => {
                let mut peers =
                    ClosestPeers::new(p.target, p.metric, p.k, p.alpha, p.max_candidates);
                for c in known {
                    peers.add(c, 0);
                }
                Walk::Iterative {
                    peers,
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
    /// was unknown). Returns the depth of the peer that answered, or `None` if
    /// the walk was not waiting for it (a late reply, or not an iterative walk).
    pub fn on_reply(
        &mut self,
        own: &Id,
        from: Contact<A>,
        seed: bool,
        closer: Vec<Contact<A>>,
    ) -> Option<u32> {
        let Walk::Iterative {
            peers,
            seeds_pending,
            ..
        } = self
        else {
            return None;
        };
        let depth = if seed {
            *seeds_pending = seeds_pending.saturating_sub(1);
            peers.add_succeeded(from, 0);
            0
        } else {
            // `None`: a late reply from a peer the walk already gave up on.
            peers.on_success(&from.id)?
        };
        for c in closer {
            if c.id != *own {
                peers.add(c, depth + 1);
            }
        }
        Some(depth)
    }

    /// A request failed (`to` is `None` for a bootstrap seed); returns whether
    /// the walk took note (a recursive walk learns of failures from its answer).
    pub fn on_failure(&mut self, to: Option<&Id>) -> bool {
        let Walk::Iterative {
            peers,
            seeds_pending,
            ..
        } = self
        else {
            return false;
        };
        match to {
            None => *seeds_pending = seeds_pending.saturating_sub(1),
            Some(id) => peers.on_failure(id),
        }
        true
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

    /// The iterative shortlist, if this is an iterative walk (for `Node::memory_usage`).
    pub fn shortlist(&self) -> Option<&ClosestPeers<A>> {
        match self {
            Walk::Iterative { peers, .. } => Some(peers),
            Walk::Recursive(_) => None,
        }
    }

    /// What the walk wants next; `Done` and `Failed` are handed out once.
    pub fn next(&mut self) -> WalkStep<A> {
        match self {
            Walk::Iterative {
                peers,
                seeds_pending,
                k,
                over,
            } => {
                if *over || *seeds_pending > 0 {
                    return WalkStep::Wait;
                }
                match peers.next() {
                    Step::Contact(c) => WalkStep::Ask(c),
                    Step::Wait => WalkStep::Wait,
                    Step::Finished => {
                        *over = true;
                        let closest = peers.succeeded(*k);
                        let depth = closest.first().map(|(_, d)| *d);
                        WalkStep::Done {
                            closest: closest.into_iter().map(|(c, _)| c).collect(),
                            depth,
                        }
                    }
                }
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
        assert_eq!(depth, Some(0));
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
}
