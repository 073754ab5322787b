//! Commands that start queries, and the driving of queries to their end.

use crate::config::Strategy;
use crate::contact::{Address, Contact, Reach};
use crate::event::Event;
use crate::id::Id;
use crate::names::NameKey;
use crate::query::walk::{Answered, Walk, WalkParams, WalkStep};
use crate::query::{Phase, Query, QueryError, QueryId, QueryKind, QueryOutput, QueryStats};
use crate::time::Time;
use crate::transfer::FetchId;
use crate::wire::{Body, RouteWant};

use super::{CommandError, Node, Purpose};

impl<A: Address> Node<A> {
    /// Joins the network through peers at `seeds` (their ids need not be known),
    /// then walks towards its own id so that its neighbours learn of it.
    ///
    /// Implementation note: joins use the iterative walk under both strategies; a
    /// recursive walk would not introduce the newcomer to the nodes near its id.
    pub fn bootstrap(&mut self, now: Time, seeds: &[A]) -> Result<QueryId, CommandError> {
        let now = self.tick(now);
        let q = self.start(now, QueryKind::Bootstrap, self.id, Strategy::Iterative)?;
        let mut sent = 0;
        for seed in seeds {
            let body = self.ask_body(QueryKind::Bootstrap, self.id, None);
            if self.send_request(now, seed.clone(), None, body, Purpose::Query(q), false) {
                sent += 1;
            }
        }
        if let Some(query) = self.queries.get_mut(&q) {
            query.stats.requests += sent;
            if let Phase::Walking(walk) = &mut query.phase {
                walk.wait_for_seeds(sent as usize);
            }
        }
        self.step_walk(now, q);
        Ok(q)
    }

    /// Finds the `k` nodes closest to `target`.
    pub fn find_node(&mut self, now: Time, target: Id) -> Result<QueryId, CommandError> {
        let now = self.tick(now);
        let q = self.start(now, QueryKind::FindNode, target, self.config.dht.strategy)?;
        self.launch(now, q);
        Ok(q)
    }

    /// Finds peers that hold `key` (with `announce_fetching`, possibly peers
    /// still fetching it, who serve what they hold so far).
    pub fn find_providers(&mut self, now: Time, key: Id) -> Result<QueryId, CommandError> {
        let now = self.tick(now);
        self.provider_lookup(now, key, self.config.records.providers_enough.get(), None)
    }

    /// Starts a provider lookup that stops at `enough` providers, reporting to
    /// `owner` (a fetch) instead of by event when it has one.
    pub(super) fn provider_lookup(
        &mut self,
        now: Time,
        key: Id,
        enough: usize,
        owner: Option<FetchId>,
    ) -> Result<QueryId, CommandError> {
        let q = self.start(now, QueryKind::FindProviders, key, self.config.dht.strategy)?;
        let own = self.id;
        let mut local = self.providers_for(now, &key);
        local.retain(|c| c.id != own);
        let max = self.config.records.max_providers_returned.get();
        if let Some(query) = self.queries.get_mut(&q) {
            query.enough = enough;
            query.owner = owner;
            query.internal = owner.is_some();
            query.add_providers(local, max);
            if query.providers.len() >= enough {
                // This node tracks the key itself: no hop needed.
                query.completed_depth = None;
                self.finish(now, q);
                return Ok(q);
            }
        }
        self.launch(now, q);
        Ok(q)
    }

    /// Providers of `key` this node tracks, complete holders first, then peers
    /// with a fetch in progress; at most `max_providers_returned`, sampled
    /// when more are kept ([`crate::records::ProviderStore::sample`]).
    pub(super) fn providers_for(&mut self, now: Time, key: &Id) -> Vec<Contact<A>> {
        let max = self.config.records.max_providers_returned.get();
        let mut out = self.providers.sample(now, key, max, &mut self.rng);
        if out.len() < max {
            for c in self.fetching.sample(now, key, max, &mut self.rng) {
                if out.len() >= max {
                    break;
                }
                if !out.iter().any(|p| p.id == c.id) {
                    out.push(c);
                }
            }
        }
        out
    }

    /// Announces that this node holds `key`: stores a provider record at the `r`
    /// closest nodes, and republishes it every `republish_interval` until
    /// [`Node::stop_providing`].
    pub fn announce(&mut self, now: Time, key: Id) -> Result<QueryId, CommandError> {
        let now = self.tick(now);
        if !self.provided.contains(&key)
            && self.provided.len() >= self.config.records.max_provided_keys.get()
        {
            return Err(CommandError::TooManyProvided {
                max: self.config.records.max_provided_keys.get(),
            });
        }
        let q = self.start(now, QueryKind::Announce, key, self.config.dht.strategy)?;
        self.provided
            .insert(key, now + self.config.records.republish_interval);
        self.launch(now, q);
        Ok(q)
    }

    /// Stops announcing `key`; records already stored elsewhere lapse at their TTL.
    pub fn stop_providing(&mut self, key: &Id) -> bool {
        self.provided.remove(key)
    }

    /// The metric a walk of this kind ranks nodes by: the table's for walks
    /// that keep tables fresh (joins, refreshes), the key metric for the rest.
    ///
    /// The two differ only for a metric whose buckets do not funnel
    /// ([`crate::Metric::table_metric`]): there a node must still learn its
    /// neighbourhood under the table's metric, or the funnel has no end.
    fn walk_metric(&self, kind: QueryKind) -> crate::Metric {
        match kind {
            QueryKind::Bootstrap | QueryKind::Refresh => self.table.metric(),
            QueryKind::FindNode
            | QueryKind::FindProviders
            | QueryKind::Announce
            | QueryKind::ResolveName
            | QueryKind::PublishName => self.config.dht.metric,
        }
    }

    /// Disjoint paths a walk of this kind goes down: `disjoint_paths` for
    /// every iterative walk, joins and refreshes included (an eclipsed join
    /// would otherwise fill the table with the adversaries it asked), one for
    /// recursive routes (`Config::validate` refuses d > 1 with them anyway).
    fn walk_paths(&self, strategy: Strategy) -> usize {
        match strategy {
            Strategy::Iterative => self.config.dht.disjoint_paths.get(),
            Strategy::Recursive => 1,
        }
    }

    /// The request an iterative walk of this kind sends each peer it asks.
    fn ask_body(&self, kind: QueryKind, target: Id, name: Option<NameKey>) -> Body<A> {
        if let (QueryKind::ResolveName, Some(name)) = (kind, name) {
            Body::GetName { name }
        } else if kind == QueryKind::FindProviders {
            Body::GetProviders { key: target }
        } else if self.walk_metric(kind) == self.config.dht.metric {
            Body::FindNode { target }
        } else {
            Body::FindNeighbours { target }
        }
    }

    /// Registers a query and sets it on its walk.
    pub(super) fn start(
        &mut self,
        now: Time,
        kind: QueryKind,
        target: Id,
        strategy: Strategy,
    ) -> Result<QueryId, CommandError> {
        if self.queries.len() >= self.config.limits.max_queries.get() {
            return Err(CommandError::TooManyQueries {
                max: self.config.limits.max_queries.get(),
            });
        }
        let id = self.new_query_id();
        self.table.mark_refreshed(&target, now);
        let metric = self.walk_metric(kind);
        let paths = self.walk_paths(strategy);
        let to_finish = match self.config.dht.paths_to_finish {
            Some(n) if paths > 1 => n.get(),
            _ => paths,
        };
        let params = WalkParams {
            strategy,
            target,
            metric,
            k: self.config.dht.k.get(),
            alpha: self.config.dht.alpha.get(),
            max_candidates: self.config.dht.max_lookup_candidates.get(),
            paths,
            to_finish,
        };
        let known = match strategy {
            Strategy::Iterative => self
                .table
                .closest_by(metric, &target, self.config.dht.k.get()),
            // The first hop (this node) picks from its table as it forwards.
            Strategy::Recursive => Vec::new(),
        };
        let phase = Phase::Walking(Walk::start(params, known));
        let deadline = now + self.config.dht.query_timeout;
        self.queries.insert(
            id,
            Query {
                kind,
                strategy,
                target,
                deadline,
                stats: QueryStats {
                    started: now,
                    ..QueryStats::default()
                },
                phase,
                providers: Vec::new(),
                path_providers: vec![0; paths],
                path_answers: vec![0; paths],
                completed_depth: None,
                internal: kind == QueryKind::Refresh,
                owner: None,
                enough: self.config.records.providers_enough.get(),
                fetching_record: false,
                name: None,
                record: None,
                name_answers: 0,
            },
        );
        self.query_deadlines.insert((deadline, id));
        Ok(id)
    }

    /// Sets a registered query on its walk.
    pub(super) fn launch(&mut self, now: Time, q: QueryId) {
        self.step_walk(now, q);
    }

    /// Moves a query's walk forward: sends what it asks for while it may, and
    /// ends the walk when it says so. The one place both strategies advance.
    pub(super) fn step_walk(&mut self, now: Time, q: QueryId) {
        loop {
            let Some(query) = self.queries.get_mut(&q) else {
                return;
            };
            let Phase::Walking(walk) = &mut query.phase else {
                return;
            };
            match walk.next() {
                WalkStep::Ask(c) => {
                    let (kind, target, name) = (query.kind, query.target, query.name);
                    let body = self.ask_body(kind, target, name);
                    let Some(query) = self.queries.get_mut(&q) else {
                        return;
                    };
                    query.stats.requests += 1;
                    let id = c.id;
                    if !self.send_request(now, c.addr, Some(id), body, Purpose::Query(q), false) {
                        // Over the pending-request bound: skip this peer rather than stall.
                        self.query_request_failed(now, q, Some(id));
                        return;
                    }
                }
                WalkStep::Route => {
                    let want = match query.kind {
                        QueryKind::FindProviders => RouteWant::Providers,
                        _ => RouteWant::Closest,
                    };
                    let target = query.target;
                    self.start_route(now, q, target, want);
                    return;
                }
                WalkStep::Wait => return,
                WalkStep::Done { closest, depth } => {
                    self.walk_done(now, q, closest, depth);
                    return;
                }
                WalkStep::Failed(e) => {
                    self.fail_query(now, q, e);
                    return;
                }
            }
        }
    }

    /// A reply to one of a query's requests.
    pub(super) fn query_reply(
        &mut self,
        now: Time,
        q: QueryId,
        sender: Contact<A>,
        seed: bool,
        closer: Vec<Contact<A>>,
        providers: Vec<Contact<A>>,
    ) {
        let own = self.id;
        let max = self.config.records.max_providers_returned.get();
        let Some(query) = self.queries.get_mut(&q) else {
            return;
        };
        let enough = query.enough;
        query.stats.replies += 1;
        let kind = query.kind;
        let Phase::Walking(walk) = &mut query.phase else {
            return;
        };
        let paths = walk.path_count();
        // Implementation note: with disjoint paths, a peer that names
        // providers is where its path arrived, not a signpost: its contacts
        // are not followed. An honest tracker's contacts add little (the path
        // got there from contacts just as close); a liar's are its colluders
        // (S/Kademlia's eclipse), and following them would spend the rest of
        // the path asking liars.
        let disjoint_answer =
            paths > 1 && kind == QueryKind::FindProviders && !providers.is_empty();
        let closer = if disjoint_answer { Vec::new() } else { closer };
        let Some(Answered { depth, path }) = walk.on_reply(&own, sender, seed, closer) else {
            return;
        };
        if !providers.is_empty() && paths == 1 {
            query.add_providers(providers, max);
            if kind == QueryKind::FindProviders && query.providers.len() >= enough {
                query.completed_depth = Some(depth);
                self.finish(now, q);
                return;
            }
        } else if disjoint_answer {
            // Disjoint paths: the answer is the union of every path's
            // providers, each path holding at most its share of
            // `max_providers_returned` (split again over the answers it
            // waits for), so a path full of an adversary's fakes cannot crowd
            // out what an honest path found, nor a liar's answer what an
            // honest tracker on the same path said. A path ends once
            // `path_provider_answers` of its peers named providers: one liar
            // no longer ends it.
            let answers = self.config.records.path_provider_answers.get();
            let share = (max / paths).max(1);
            let per_answer = (share / answers).max(1);
            let tally = query.add_path_providers(path, providers, per_answer, share, max);
            if tally.providers >= enough.min(share) && tally.answers >= answers {
                if query.completed_depth.is_none() {
                    query.completed_depth = Some(depth);
                }
                if let Phase::Walking(walk) = &mut query.phase {
                    walk.end_path(path);
                }
            }
        }
        self.step_walk(now, q);
    }

    /// A query's request failed (`to_id` is `None` for a bootstrap seed).
    pub(super) fn query_request_failed(&mut self, now: Time, q: QueryId, to_id: Option<Id>) {
        let Some(query) = self.queries.get_mut(&q) else {
            return;
        };
        query.stats.failures += 1;
        match &mut query.phase {
            Phase::Walking(walk) => {
                if walk.on_failure(to_id.as_ref()) {
                    self.step_walk(now, q);
                }
            }
            Phase::Storing { .. } => self.stored_ack(now, q, false),
        }
    }

    /// A query's walk is over, by either strategy: finish it, or (announce) store.
    fn walk_done(&mut self, now: Time, q: QueryId, closest: Vec<Contact<A>>, depth: Option<u32>) {
        let Some(query) = self.queries.get_mut(&q) else {
            return;
        };
        if query.completed_depth.is_none() {
            query.completed_depth = depth;
        }
        let kind = query.kind;
        if kind == QueryKind::Bootstrap {
            self.join_refresh(now);
        }
        if matches!(kind, QueryKind::Announce | QueryKind::PublishName) {
            self.store_at(now, q, closest);
        } else {
            self.finish_with(now, q, Some(closest));
        }
    }

    /// Second phase of an announce: ask the `r` closest of `closest` (and this
    /// node, if it is one of them) to record us as a provider.
    pub(super) fn store_at(&mut self, now: Time, q: QueryId, closest: Vec<Contact<A>>) {
        let Some(query) = self.queries.get(&q) else {
            return;
        };
        let key = query.target;
        let kind = match (query.kind, query.record) {
            (QueryKind::PublishName, Some(record)) => super::trust::RecordKind::Name(record),
            _ if query.fetching_record => super::trust::RecordKind::Fetching,
            _ => super::trust::RecordKind::Provider,
        };
        let r = self.config.dht.replication.get();
        let metric = self.config.dht.metric;
        let own_distance = metric.distance(&self.id, &key);
        // A node in client mode cannot be dialled where a record would say:
        // it writes only name records, which name no address. A relayed one
        // is reached at the address its trackers see, never at its own.
        let names_address = !matches!(kind, super::trust::RecordKind::Name(_));
        let take = if self.reach == Reach::Client && names_address {
            0
        } else {
            r
        };
        let mut targets: Vec<Contact<A>> = closest
            .into_iter()
            .filter(|c| c.id != self.id)
            .take(take)
            .collect();
        let mut stored = 0;
        let self_is_close = take > 0
            && (self.reach == Reach::Direct || !names_address)
            && (targets.len() < r
                || targets
                    .last()
                    .is_some_and(|c| metric.distance(&c.id, &key) > own_distance));
        if self_is_close {
            let me = self.contact();
            match kind {
                super::trust::RecordKind::Fetching => {
                    self.fetching.add(now, key, me);
                }
                super::trust::RecordKind::Provider => {
                    self.providers.add(now, key, me);
                }
                // Kept here already, when it was published.
                super::trust::RecordKind::Name(_) => {}
            }
            stored += 1;
            if targets.len() >= r {
                targets.pop();
            }
        }
        let mut pending = 0;
        self.keep_tokens_of(q, &targets);
        for c in targets {
            let body = kind.body(key, self.token_for(q, &c.id));
            if self.send_request(now, c.addr, Some(c.id), body, Purpose::Query(q), false) {
                pending += 1;
            }
        }
        if let Some(query) = self.queries.get_mut(&q) {
            query.stats.requests += pending as u32;
            query.phase = Phase::Storing { pending, stored };
        }
        if pending == 0 {
            self.finish(now, q);
        }
    }

    /// An acknowledgement (or failure) of a provider record.
    pub(super) fn stored_ack(&mut self, now: Time, q: QueryId, ok: bool) {
        let Some(query) = self.queries.get_mut(&q) else {
            return;
        };
        let Phase::Storing { pending, stored } = &mut query.phase else {
            return;
        };
        *pending = pending.saturating_sub(1);
        if ok {
            *stored += 1;
        }
        if *pending == 0 {
            self.finish(now, q);
        }
    }

    /// Ends a query from whatever it has gathered.
    pub(super) fn finish(&mut self, now: Time, q: QueryId) {
        self.finish_with(now, q, None);
    }

    pub(super) fn finish_with(&mut self, now: Time, q: QueryId, closest: Option<Vec<Contact<A>>>) {
        let Some(query) = self.queries.get(&q) else {
            return;
        };
        let result = match (query.kind, &query.phase) {
            (_, Phase::Storing { stored, .. }) if *stored > 0 => {
                Ok(QueryOutput::Announced { stored: *stored })
            }
            (_, Phase::Storing { .. }) => Err(QueryError::NoPeers),
            (QueryKind::FindProviders, _) if !query.providers.is_empty() => {
                Ok(QueryOutput::Providers(query.providers.clone()))
            }
            (QueryKind::FindProviders, _) => Err(QueryError::NotFound),
            (QueryKind::ResolveName, _) => match query.record {
                Some(record) => Ok(QueryOutput::Name(record)),
                None => Err(QueryError::NotFound),
            },
            (QueryKind::Bootstrap, _) if !self.table.is_empty() => Ok(QueryOutput::Bootstrapped {
                contacts: self.table.len(),
            }),
            (_, _) => match closest {
                Some(c) if !c.is_empty() => Ok(QueryOutput::Closest(c)),
                _ => Err(QueryError::NoPeers),
            },
        };
        self.complete(now, q, result);
    }

    pub(super) fn fail_query(&mut self, now: Time, q: QueryId, error: QueryError) {
        self.complete(now, q, Err(error));
    }

    /// Removes the query and reports it (unless it was internal).
    pub(super) fn complete(
        &mut self,
        now: Time,
        q: QueryId,
        result: Result<QueryOutput<A>, QueryError>,
    ) {
        let Some(mut query) = self.queries.remove(&q) else {
            return;
        };
        self.query_deadlines.remove(&(query.deadline, q));
        self.announce_tokens.remove(&q);
        query.stats.finished = now;
        match query.strategy {
            Strategy::Iterative => {
                query.stats.hops = query.completed_depth.map_or(0, |d| d + 1);
                query.stats.messages = query.stats.requests + query.stats.replies;
            }
            // No reply came back down the path (a timeout): count what we saw.
            Strategy::Recursive if query.stats.messages == 0 => {
                query.stats.messages = query.stats.requests + query.stats.replies;
            }
            Strategy::Recursive => {}
        }
        if let Some(fetch) = query.owner {
            self.fetch_located(now, fetch, result);
            return;
        }
        if query.internal {
            return;
        }
        self.push_event(Event::QueryFinished {
            id: q,
            kind: query.kind,
            target: query.target,
            result,
            stats: query.stats,
        });
    }
}
