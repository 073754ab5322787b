//! Recursive routing (the original distroweb design): each hop forwards the
//! request to the closest peer it knows, and the answer travels back down the path.
//!
//! Every forward is acknowledged hop by hop, so a hop whose next peer is dead
//! tries the next-closest one (up to `route_attempts`) instead of losing the
//! request. The request carries its whole path: loops are detected by a node
//! finding itself on it, and the reply needs no state at the hops to find its
//! way back.

use crate::contact::{Address, Contact};
use crate::event::Misbehaviour;
use crate::query::{Phase, QueryError, QueryId, QueryKind};
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
        self.observe(now, sender.clone());
        self.reply(sender.addr, rpc, Body::RouteAck);
        let looped = route.path.iter().any(|c| c.id == self.id);
        route.path.push(self.contact());
        if looped {
            self.answer_route(now, route, RouteOutcome::Failed(RouteFailure::Loop));
            return;
        }
        self.route_step(now, route);
    }

    /// Answers the route here, or forwards it to the closest peer that is closer
    /// to the target than this node. `route.path` ends with this node.
    fn route_step(&mut self, now: Time, route: Route<A>) {
        if route.want == RouteWant::Providers {
            let providers = self.providers_for(now, &route.target);
            if !providers.is_empty() {
                self.answer_found(now, route, providers);
                return;
            }
        }
        let hops = route.path.len() - 1;
        let mut next = self.next_hop(&route, &[], false);
        if next.is_none()
            && route.want == RouteWant::Providers
            && self.detours(&route) < self.config.route_detours
        {
            next = self.next_hop(&route, &[], true);
        }
        match next {
            None => self.answer_found(now, route, Vec::new()),
            Some(_)
                if hops >= self.config.max_route_hops
                    || route.path.len() >= crate::wire::MAX_ROUTE_PATH =>
            {
                self.answer_route(now, route, RouteOutcome::Failed(RouteFailure::HopLimit))
            }
            Some(_) if self.forwards >= self.config.max_forwards => {
                self.answer_route(now, route, RouteOutcome::Failed(RouteFailure::Busy))
            }
            Some(next) => self.forward(now, route, Vec::new(), next),
        }
    }

    /// The closest known peer that is strictly closer to the target than this
    /// node (or, for a detour, any distance), not already on the path and not yet tried.
    fn next_hop(
        &self,
        route: &Route<A>,
        tried: &[crate::id::Id],
        detour: bool,
    ) -> Option<Contact<A>> {
        let metric = self.config.metric;
        let own = metric.distance(&self.id, &route.target);
        self.table
            .closest(&route.target, self.config.k)
            .into_iter()
            .take_while(|c| detour || metric.distance(&c.id, &route.target) < own)
            .find(|c| !tried.contains(&c.id) && !route.path.iter().any(|p| p.id == c.id))
    }

    /// Steps on the path that did not get closer to the target.
    ///
    /// Implementation note: greedy routing can stop at a local minimum, a node
    /// that knows no closer peer yet does not track the key (common under Hamming,
    /// where many ids sit at similar distances). A provider route that meets one
    /// may step sideways to the closest unvisited peer, up to `route_detours` times;
    /// the count is read off the path, so the wire format carries no extra field.
    fn detours(&self, route: &Route<A>) -> usize {
        let metric = self.config.metric;
        route
            .path
            .windows(2)
            .filter(|w| {
                metric.distance(&w[1].id, &route.target) >= metric.distance(&w[0].id, &route.target)
            })
            .count()
    }

    fn forward(
        &mut self,
        now: Time,
        route: Route<A>,
        mut tried: Vec<crate::id::Id>,
        next: Contact<A>,
    ) {
        tried.push(next.id);
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

    /// The next hop did not acknowledge: try the next-closest, or give up.
    pub(super) fn forward_failed(&mut self, now: Time, f: Forward<A>) {
        let Forward { route, tried } = f;
        if let Some(q) = self.own_route_query(&route) {
            q.stats.failures += 1;
        }
        let next = if tried.len() < self.config.route_attempts {
            let detour = route.want == RouteWant::Providers
                && self.detours(&route) < self.config.route_detours;
            self.next_hop(&route, &tried, false).or_else(|| {
                detour
                    .then(|| self.next_hop(&route, &tried, true))
                    .flatten()
            })
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

    /// This node is the last on the path: answer with what it knows.
    fn answer_found(&mut self, now: Time, route: Route<A>, providers: Vec<Contact<A>>) {
        let metric = self.config.metric;
        let mut closest = self.table.closest(&route.target, self.config.k);
        closest.push(self.contact());
        closest.sort_by_key(|c| metric.distance(&c.id, &route.target));
        closest.truncate(self.config.k);
        self.answer_route(now, route, RouteOutcome::Found { closest, providers });
    }

    fn answer_route(&mut self, now: Time, route: Route<A>, outcome: RouteOutcome<A>) {
        let reply = RouteReply {
            tag: route.tag,
            target: route.target,
            path: route.path,
            outcome,
        };
        let pos = reply.path.len() - 1;
        self.pass_back(now, reply, pos);
    }

    /// Sends `reply` one step back down its path from position `pos` (this node).
    fn pass_back(&mut self, now: Time, reply: RouteReply<A>, pos: usize) {
        if pos == 0 {
            self.route_finished(now, reply);
            return;
        }
        let to = reply.path[pos - 1].addr.clone();
        self.transmit(to, Body::RouteReply(reply), RpcId(0));
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

    /// The answer to one of our recursive queries arrived.
    fn route_finished(&mut self, now: Time, reply: RouteReply<A>) {
        let q = QueryId(reply.tag);
        let k = self.config.k;
        let max = self.config.max_providers_returned;
        let own = self.id;
        let Some(query) = self.queries.get_mut(&q) else {
            // The query already ended (timed out); a late answer changes nothing.
            return;
        };
        if !matches!(query.phase, Phase::Recursive) || query.target != reply.target {
            return;
        }
        let hops = (reply.path.len() - 1) as u32;
        query.stats.hops = hops;
        if hops > 0 {
            query.stats.replies += 1;
        }
        query.stats.messages =
            query.stats.requests + query.stats.replies + 3 * hops.saturating_sub(1);
        match reply.outcome {
            RouteOutcome::Failed(f) => self.fail_query(now, q, QueryError::Route(f)),
            RouteOutcome::Found {
                mut closest,
                providers,
            } => {
                closest.retain(|c| c.id != own);
                closest.truncate(k);
                match query.kind {
                    QueryKind::FindProviders => {
                        query.add_providers(providers, max);
                        self.finish(now, q);
                    }
                    QueryKind::Announce => self.store_at(now, q, closest),
                    _ => self.finish_with(now, q, Some(closest)),
                }
            }
        }
    }
}
