//! Queries: what a lookup is for, how far it got, and how it ended.
//!
//! A query's lookup is a [`walk::Walk`], one start / advance / finish over
//! both strategies; the iterative shortlist lives in [`closest`] and the
//! recursive forwarding rule (applied at every hop) in [`route`]; this module
//! holds the bookkeeping both share.

pub(crate) mod closest;
pub(crate) mod route;
pub(crate) mod walk;

pub use route::{Forwarding, ParseForwardingError};

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::config::Strategy;
use crate::contact::Contact;
use crate::id::Id;
use crate::time::Time;
use crate::transfer::FetchId;
use crate::wire::RouteFailure;

use walk::Walk;

/// Names a query started by a command; unique within one node's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueryId(pub u64);

/// What a query was started for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QueryKind {
    /// Joining the network through seed addresses.
    Bootstrap,
    /// Finding the nodes closest to an id.
    FindNode,
    /// Finding the providers of a key.
    FindProviders,
    /// Storing a provider record for a key at the closest nodes.
    Announce,
    /// Keeping a bucket fresh (internal; never reported as an event).
    Refresh,
    /// Finding the latest record of a name.
    ResolveName,
    /// Storing a name record at the nodes closest to the name.
    PublishName,
}

impl fmt::Display for QueryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueryKind::Bootstrap => "bootstrap",
            QueryKind::FindNode => "find_node",
            QueryKind::FindProviders => "find_providers",
            QueryKind::Announce => "announce",
            QueryKind::Refresh => "refresh",
            QueryKind::ResolveName => "resolve_name",
            QueryKind::PublishName => "publish_name",
        })
    }
}

/// Counts that describe one query's cost, for experiments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryStats {
    /// Requests this node sent for the query.
    pub requests: u32,
    /// Replies this node received for it.
    pub replies: u32,
    /// Requests that timed out or could not be sent.
    pub failures: u32,
    /// Iterative: 1 + the depth of the peer whose reply completed the lookup (a
    /// contact from our own table has depth 0, one learned from a depth-d reply
    /// d + 1). Recursive: forwards from the origin to the answering node.
    pub hops: u32,
    /// Messages the query caused, counted as they were sent. Iterative:
    /// requests plus replies. Recursive: the tally the route and its reply
    /// carry, to which every hop adds what it sent for them (forwards with
    /// their retries, acknowledgements, each step of the reply back down the
    /// path); when no reply came back, only the origin's requests and replies.
    pub messages: u32,
    /// When the query started.
    pub started: Time,
    /// When it ended.
    pub finished: Time,
}

/// What a successful query found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryOutput<A> {
    /// The node joined; its routing table now holds this many contacts.
    Bootstrapped {
        /// Live contacts in the routing table.
        contacts: usize,
    },
    /// The closest nodes to the target, closest first.
    Closest(Vec<Contact<A>>),
    /// Peers that hold the key.
    Providers(Vec<Contact<A>>),
    /// The record was stored at this many nodes (this node included, if it is one of the closest).
    Announced {
        /// Nodes that acknowledged the record.
        stored: usize,
    },
    /// The latest valid record of a name heard (signature checked).
    Name(crate::names::NameRecord),
}

/// Why a query failed.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    thiserror::Error,
)]
pub enum QueryError {
    /// The lookup finished without finding any provider.
    #[error("no provider found")]
    NotFound,
    /// No peer was known, or none answered.
    #[error("no peer answered")]
    NoPeers,
    /// The query ran past its deadline.
    #[error("query timed out")]
    Timeout,
    /// A recursive lookup failed on its way.
    #[error("recursive route failed: {0}")]
    Route(RouteFailure),
}

/// What one disjoint path of a provider lookup has heard so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PathTally {
    /// Providers the path has been told of (its share of the answer).
    pub providers: usize,
    /// Peers on the path that named providers.
    pub answers: usize,
}

/// Where a query is.
#[derive(Debug)]
pub(crate) enum Phase<A> {
    /// Looking up its target, by either strategy.
    Walking(Walk<A>),
    /// Announce after its lookup: waiting for provider-record acknowledgements.
    Storing { pending: usize, stored: usize },
}

/// A query in progress.
#[derive(Debug)]
pub(crate) struct Query<A> {
    pub kind: QueryKind,
    pub strategy: Strategy,
    pub target: Id,
    pub deadline: Time,
    pub stats: QueryStats,
    pub phase: Phase<A>,
    /// Providers found so far (provider lookups), deduplicated by id.
    pub providers: Vec<Contact<A>>,
    /// Providers each disjoint path contributed to `providers` (one entry per path).
    pub path_providers: Vec<u32>,
    /// Peers on each disjoint path that named providers (one entry per path).
    pub path_answers: Vec<u32>,
    /// Depth of the peer whose reply completed the lookup, once known.
    pub completed_depth: Option<u32>,
    /// Started by the node itself (refresh, republish): no event when it ends.
    pub internal: bool,
    /// The fetch this provider lookup works for; its result goes there, not to an event.
    pub owner: Option<FetchId>,
    /// A provider lookup stops once it knows this many providers.
    pub enough: usize,
    /// An announce that stores "fetch in progress" records instead of provider records.
    pub fetching_record: bool,
    /// The name a resolution or publication is about.
    pub name: Option<crate::names::NameKey>,
    /// A resolution: the best record heard so far (or held here). A
    /// publication: the record it stores.
    pub record: Option<crate::names::NameRecord>,
    /// Valid records peers gave a resolution; its grace starts at the first.
    pub name_answers: u32,
}

impl<A> Query<A> {
    /// Adds providers not seen before, up to `max` in all.
    pub fn add_providers(&mut self, found: impl IntoIterator<Item = Contact<A>>, max: usize) {
        for p in found {
            if self.providers.len() >= max {
                break;
            }
            if !self.providers.iter().any(|q| q.id == p.id) {
                self.providers.push(p);
            }
        }
    }

    /// Takes providers that one peer on disjoint path `path` named, up to
    /// `per_answer` from this answer, `share` from the path and `max` in all;
    /// returns how many providers that path has been told of and how many of
    /// its peers named any. A provider another path found already counts for
    /// this path too (it is in the answer either way), so a path ends as soon
    /// as it has heard of enough, whoever added them first.
    pub fn add_path_providers(
        &mut self,
        path: usize,
        found: impl IntoIterator<Item = Contact<A>>,
        per_answer: usize,
        share: usize,
        max: usize,
    ) -> PathTally {
        let (Some(&count), Some(&answers)) =
            (self.path_providers.get(path), self.path_answers.get(path))
        else {
            return PathTally::default();
        };
        let (mut count, mut taken) = (count as usize, 0);
        for p in found {
            if count >= share || taken >= per_answer {
                break;
            }
            if self.providers.iter().any(|q| q.id == p.id) {
                count += 1;
                taken += 1;
            } else if self.providers.len() < max {
                self.providers.push(p);
                count += 1;
                taken += 1;
            }
        }
        let answers = answers.saturating_add(1);
        self.path_providers[path] = count as u32;
        self.path_answers[path] = answers;
        PathTally {
            providers: count,
            answers: answers as usize,
        }
    }
}
