//! Recursive routing (the original distroweb design): each hop forwards the
//! request to the next hop that the forwarding rule (`query/route.rs`: greedy,
//! or best-first with a frontier carried in the request) picks, and the answer
//! travels back down the path.
//!
//! Every forward is acknowledged hop by hop, so a hop whose next peer is dead
//! tries the next-closest one (up to `route_attempts`) instead of losing the
//! request. The request carries its whole path: loops are detected by a node
//! finding itself on it, and the reply needs no state at the hops to find its
//! way back.

use crate::contact::{Address, Contact};
use crate::event::Misbehaviour;
use crate::query::route::HopRule;
use crate::query::{Phase, QueryId, QueryKind};
use crate::time::Time;
use crate::wire::{Body, Route, RouteFailure, RouteOutcome, RouteReply, RouteWant, RpcId};

use super::{Forward, Node, Purpose};

impl<A: Address> Node<A> {
    /// Starts a recursive lookup with this node as the first hop.
    pub(super) fn start_route(
        &mut self,
        now: Time,
        q: QueryId,
        target: crate::id::Id,
        want: RouteWant,
    ) {
        let route = Route {
            tag: q.0,
            target,
            want,
            path: vec![self.contact()],
            frontier: Vec::new(),
            messages: 0,
        };
        self.route_step(now, route);
    }

    /// A recursive request from the previous hop.
    pub(super) fn on_route(
        &mut self,
        now: Time,
        sender: Contact<A>,
        rpc: RpcId,
        mut route: Route<A>,
    ) {
        if route.path.last().map(|c| c.id) != Some(sender.id) {
            self.misbehaved(sender, Misbehaviour::MalformedPath);
            return;
        }
        // The reply will travel back to the previous hop at the address its
        // route came from, never to one the path merely names (a reflection).
        if let Some(last) = route.path.last_mut() {
            last.addr = sender.addr.clone();
        }
        self.observe(now, sender.clone());
        self.reply(&sender, rpc, Body::RouteAck);
        route.messages = route.messages.saturating_add(1);
        let looped = route.path.iter().any(|c| c.id == self.id);
        route.path.push(self.contact());
        if looped {
            self.answer_route(now, route, RouteOutcome::Failed(RouteFailure::Loop));
            return;
        }
        self.route_step(now, route);
    }

    /// Answers the route here, or forwards it to the next hop the forwarding
    /// rule picks. `route.path` ends with this node.
    fn route_step(&mut self, now: Time, mut route: Route<A>) {
        if route.want == RouteWant::Providers {
            let providers = self.providers_for(now, &route.target);
            if !providers.is_empty() {
                self.answer_found(now, route, providers);
                return;
            }
        }
        let hops = route.path.len() - 1;
        let (k, target) = (self.config.dht.k.get(), route.target);
        let mine = |m| self.table.closest_by(m, &target, k);
        match self.hop_rule().next_hop(&self.id, &mut route, mine, &[]) {
            None => self.answer_found(now, route, Vec::new()),
            Some(_)
                if hops >= self.config.routing.max_route_hops.get()
                    || route.path.len() >= crate::wire::MAX_ROUTE_PATH =>
            {
                self.answer_route(now, route, RouteOutcome::Failed(RouteFailure::HopLimit))
            }
            Some(_) if self.forwards >= self.config.routing.max_forwards => {
                self.answer_route(now, route, RouteOutcome::Failed(RouteFailure::Busy))
            }
            Some(next) => self.forward(now, route, Vec::new(), next),
        }
    }

    fn hop_rule(&self) -> HopRule {
        HopRule {
            metric: self.config.dht.metric,
            table: self.table.metric(),
            forwarding: self.config.forwarding(),
            k: self.config.dht.k.get(),
            width: self.config.routing.route_width.get(),
            detours: self.config.routing.route_detours,
        }
    }

    fn forward(
        &mut self,
        now: Time,
        mut route: Route<A>,
        mut tried: Vec<crate::id::Id>,
        next: Contact<A>,
    ) {
        tried.push(next.id);
        route.messages = route.messages.saturating_add(1);
        if let Some(q) = self.own_route_query(&route) {
            q.stats.requests += 1;
        }
        let body = Body::Route(route.clone());
        // Forwards have their own bound (`max_forwards`, checked by the caller).
        self.send_request(
            now,
            next.addr,
            Some(next.id),
            body,
            Purpose::Forward(Box::new(Forward { route, tried })),
            true,
        );
    }

    /// The next hop did not acknowledge: try the next one the rule picks, or give up.
    pub(super) fn forward_failed(&mut self, now: Time, f: Forward<A>) {
        let Forward { mut route, tried } = f;
        if let Some(q) = self.own_route_query(&route) {
            q.stats.failures += 1;
        }
        let next = if tried.len() < self.config.routing.route_attempts.get() {
            let (k, target) = (self.config.dht.k.get(), route.target);
            let mine = |m| self.table.closest_by(m, &target, k);
            self.hop_rule().next_hop(&self.id, &mut route, mine, &tried)
        } else {
            None
        };
        match next {
            Some(next) => self.forward(now, route, tried, next),
            None => self.answer_route(now, route, RouteOutcome::Failed(RouteFailure::DeadEnd)),
        }
    }

    /// Counts the acknowledgement of a forward this node made as the origin.
    pub(super) fn forward_acked(&mut self, f: &Forward<A>) {
        if let Some(q) = self.own_route_query(&f.route) {
            q.stats.replies += 1;
        }
    }

    /// The query behind `route`, if this node is its origin.
    fn own_route_query(&mut self, route: &Route<A>) -> Option<&mut crate::query::Query<A>> {
        if route.path.len() != 1 || route.path[0].id != self.id {
            return None;
        }
        self.queries.get_mut(&QueryId(route.tag))
    }

    /// This node is the last on the path: answer with what it knows, and what
    /// the route learned on its way (its path and frontier).
    fn answer_found(&mut self, now: Time, route: Route<A>, providers: Vec<Contact<A>>) {
        let metric = self.config.dht.metric;
        let mut closest = self
            .table
            .closest_by(metric, &route.target, self.config.dht.k.get());
        closest.extend(route.path.iter().skip(1).cloned());
        closest.extend(route.frontier.iter().cloned());
        closest.sort_by_key(|c| metric.distance(&c.id, &route.target));
        closest.dedup_by(|a, b| a.id == b.id);
        closest.truncate(self.config.dht.k.get());
        // A token for the origin at the address the path names for it (the
        // first hop wrote in the address the route came from): the origin
        // then writes to this node directly, proving that id at that address.
        let token = self.issue_token(now, &route.path[0]);
        let outcome = RouteOutcome::Found {
            closest,
            providers,
            token,
        };
        self.answer_route(now, route, outcome);
    }

    fn answer_route(&mut self, now: Time, route: Route<A>, outcome: RouteOutcome<A>) {
        let reply = RouteReply {
            tag: route.tag,
            target: route.target,
            path: route.path,
            outcome,
            messages: route.messages,
        };
        let pos = reply.path.len() - 1;
        self.pass_back(now, reply, pos);
    }

    /// Sends `reply` one step back down its path from position `pos` (this node).
    fn pass_back(&mut self, now: Time, mut reply: RouteReply<A>, pos: usize) {
        if pos == 0 {
            self.route_finished(now, reply);
            return;
        }
        reply.messages = reply.messages.saturating_add(1);
        let prev = &reply.path[pos - 1];
        let (to, to_id) = (prev.addr.clone(), prev.id);
        self.transmit(to, Some(to_id), Body::RouteReply(reply), RpcId(0));
    }

    /// A reply on its way back: pass it on, or finish our query if we are the origin.
    pub(super) fn on_route_reply(&mut self, now: Time, sender: Contact<A>, reply: RouteReply<A>) {
        let pos = reply.path.iter().position(|c| c.id == self.id);
        let fits = pos.is_some_and(|p| {
            reply
                .path
                .get(p + 1)
                .is_some_and(|next| next.id == sender.id)
        });
        let (Some(pos), true) = (pos, fits) else {
            self.misbehaved(sender, Misbehaviour::MalformedPath);
            return;
        };
        self.observe(now, sender);
        self.pass_back(now, reply, pos);
    }

    /// The answer to one of our recursive queries arrived: the walk takes it.
    fn route_finished(&mut self, now: Time, reply: RouteReply<A>) {
        let q = QueryId(reply.tag);
        let k = self.config.dht.k.get();
        let max = self.config.records.max_providers_returned.get();
        let own = self.id;
        let mut answered_by = None;
        let Some(query) = self.queries.get_mut(&q) else {
            // The query already ended (timed out); a late answer changes nothing.
            return;
        };
        let Phase::Walking(walk) = &mut query.phase else {
            return;
        };
        if !walk.awaits_answer() || query.target != reply.target {
            return;
        }
        let answer = match reply.outcome {
            RouteOutcome::Failed(f) => Err(f),
            RouteOutcome::Found {
                mut closest,
                providers,
                token,
            } => {
                if let Some(last) = reply.path.last() {
                    answered_by = Some((last.id, token));
                }
                closest.retain(|c| c.id != own);
                closest.truncate(k);
                if query.kind == QueryKind::FindProviders {
                    query.add_providers(providers, max);
                }
                Ok(closest)
            }
        };
        let Phase::Walking(walk) = &mut query.phase else {
            return;
        };
        walk.on_answer(answer);
        let hops = (reply.path.len() - 1) as u32;
        query.stats.hops = hops;
        if hops > 0 {
            query.stats.replies += 1;
        }
        query.stats.messages = reply.messages;
        if let Some((id, token)) = answered_by {
            self.keep_token(q, id, token);
        }
        self.step_walk(now, q);
    }
}
