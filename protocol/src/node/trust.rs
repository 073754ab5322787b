//! Who may write records here, and how this node earns the right to write
//! elsewhere: write tokens (BEP 5) on both sides.
//!
//! As a tracker, the node hands a token to every peer that looks something up
//! (`Nodes`, `Providers`, a recursive route's answer) and stores a record only
//! with a token it issued to that id at that address; a write without one is
//! answered with one ([`Body::RecordRefused`]), a write with a wrong one is
//! dropped and its sender charged ([`Misbehaviour::BadToken`]).
//!
//! As an announcer, the node keeps the token each peer of an announce's walk
//! gave it, and sends it with its `AddProvider` (or `AddFetching`); a target it
//! holds no token for (a recursive walk hears only from the route's last hop)
//! is written to without one, and tried once more with the token its refusal
//! carries.

use crate::contact::{Address, Contact, Reach};
use crate::distance::Distance;
use crate::event::Misbehaviour;
use crate::id::Id;
use crate::names::NameRecord;
use crate::query::{Phase, QueryId, QueryKind};
use crate::records::{Admission, Token};
use crate::time::Time;
use crate::wire::{Body, RpcId};

use super::{Node, Purpose};

/// Which of a tracker's two stores a write is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RecordKind {
    /// A provider record (`AddProvider`).
    Provider,
    /// A "fetch in progress" record (`AddFetching`).
    Fetching,
    /// A name record (`PutName`), which names itself.
    Name(NameRecord),
}

impl RecordKind {
    /// The write that stores a record of this kind.
    pub(super) fn body<A>(self, key: Id, token: Option<Token>) -> Body<A> {
        match self {
            RecordKind::Provider => Body::AddProvider { key, token },
            RecordKind::Fetching => Body::AddFetching { key, token },
            RecordKind::Name(record) => Body::PutName { record, token },
        }
    }
}

/// The tokens one announce holds: per peer, closest to the key first, at most `k`.
pub(super) type QueryTokens = Vec<(Distance, Id, Token)>;

impl<A: Address> Node<A> {
    /// A token for `peer` at the id and address it asked from.
    pub(super) fn issue_token(&mut self, now: Time, peer: &Contact<A>) -> Token {
        self.tokens.issue(now, &peer.id, &peer.addr)
    }

    /// `AddProvider` or `AddFetching`: stored only with a token this node gave
    /// the sender at this id and address, and only within the store's bounds.
    pub(super) fn on_add_record(
        &mut self,
        now: Time,
        sender: Contact<A>,
        rpc: RpcId,
        key: Id,
        token: Option<Token>,
        kind: RecordKind,
    ) {
        if self.unlisted_sender == Some((sender.id, Reach::Client)) {
            // A record would name an address nobody can dial.
            self.counters.records_refused += 1;
            return;
        }
        let valid = match token {
            None => false,
            Some(t) => {
                if !self.tokens.check(now, &t, &sender.id, &sender.addr) {
                    // A token we never gave this peer here: forged, replayed
                    // from another address, or older than two rotations.
                    self.counters.bad_tokens += 1;
                    self.misbehaved(sender, Misbehaviour::BadToken);
                    return;
                }
                true
            }
        };
        // A peer can only name itself, at the address it wrote from.
        let admission = match (valid, kind) {
            (false, _) => None,
            (true, RecordKind::Provider) => Some(self.providers.add(now, key, sender.clone())),
            (true, RecordKind::Fetching) => Some(self.fetching.add(now, key, sender.clone())),
            // Name records arrive as `PutName` (`on_put_name`), never here.
            (true, RecordKind::Name(_)) => None,
        };
        match admission {
            Some(Admission::Stored | Admission::Refreshed) => {
                self.observe(now, sender.clone());
                self.reply(&sender, rpc, Body::ProviderAdded { key });
            }
            // No token yet (it gets one), or no room (old records stay).
            None | Some(Admission::Refused(_)) => {
                self.counters.records_refused += 1;
                let token = self.issue_token(now, &sender);
                self.reply(&sender, rpc, Body::RecordRefused { key, token });
            }
        }
    }

    /// Keeps the token `from` gave one of our announces (other queries write
    /// nothing and keep none), closest to the key first, at most `k`.
    pub(super) fn keep_token(&mut self, q: QueryId, from: Id, token: Token) {
        let Some(query) = self.queries.get(&q) else {
            return;
        };
        if !matches!(query.kind, QueryKind::Announce | QueryKind::PublishName) {
            return;
        }
        let d = self.config.dht.metric.distance(&from, &query.target);
        let k = self.config.dht.k.get();
        let list = self.announce_tokens.entry(q).or_default();
        list.retain(|(_, id, _)| *id != from);
        let at = list.partition_point(|(e, _, _)| *e < d);
        if at < k {
            list.insert(at, (d, from, token));
            list.truncate(k);
        }
    }

    /// The token `peer` gave announce `q`, if any.
    pub(super) fn token_for(&self, q: QueryId, peer: &Id) -> Option<Token> {
        self.announce_tokens
            .get(&q)?
            .iter()
            .find(|(_, id, _)| id == peer)
            .map(|(_, _, t)| *t)
    }

    /// An announce moves on to its writes: it keeps only the tokens of the
    /// peers it writes to, so a refusal can tell whether it sent one.
    pub(super) fn keep_tokens_of(&mut self, q: QueryId, targets: &[Contact<A>]) {
        if let Some(list) = self.announce_tokens.get_mut(&q) {
            list.retain(|(_, id, _)| targets.iter().any(|c| c.id == *id));
            if list.is_empty() {
                self.announce_tokens.remove(&q);
            }
        }
    }

    /// A tracker refused one of our writes. Written without a token, the write
    /// is sent once more with the token the refusal carries; written with one,
    /// the tracker had no room (or our address changed), and the write failed.
    pub(super) fn on_record_refused(
        &mut self,
        now: Time,
        q: QueryId,
        sender: Contact<A>,
        key: Id,
        token: Token,
    ) {
        let Some(query) = self.queries.get(&q) else {
            return;
        };
        let storing = matches!(query.phase, Phase::Storing { .. }) && query.target == key;
        let kind = match (query.kind, query.record) {
            (QueryKind::PublishName, Some(record)) => RecordKind::Name(record),
            _ if query.fetching_record => RecordKind::Fetching,
            _ => RecordKind::Provider,
        };
        if !storing || self.token_for(q, &sender.id).is_some() {
            self.stored_ack(now, q, false);
            return;
        }
        self.keep_token(q, sender.id, token);
        let body = kind.body(key, Some(token));
        if self.send_request(
            now,
            sender.addr,
            Some(sender.id),
            body,
            Purpose::Query(q),
            false,
        ) {
            if let Some(query) = self.queries.get_mut(&q) {
                query.stats.requests += 1;
            }
        } else {
            self.stored_ack(now, q, false);
        }
    }
}
