//! Answering peers' requests, and matching their replies to ours.

use crate::contact::{Address, Contact};
use crate::distance::Metric;
use crate::event::Misbehaviour;
use crate::id::Id;
use crate::time::Time;
use crate::wire::{Body, RpcId};

use super::{Node, Purpose};

impl<A: Address> Node<A> {
    /// The `k` contacts closest to `target` under `metric`, leaving out the peer
    /// that asked (it knows itself).
    fn closest_for(&self, metric: Metric, target: &Id, asker: &Id) -> Vec<Contact<A>> {
        let k = self.config.dht.k.get();
        let mut closer = self.table.closest_by(metric, target, k + 1);
        closer.retain(|c| c.id != *asker);
        closer.truncate(k);
        closer
    }

    /// `FindNode` (ranked by the key metric) and `FindNeighbours` (by the table's).
    pub(super) fn on_find_node(
        &mut self,
        now: Time,
        sender: Contact<A>,
        rpc: RpcId,
        target: Id,
        metric: Metric,
    ) {
        let closer = self.closest_for(metric, &target, &sender.id);
        let token = self.issue_token(now, &sender);
        self.observe(now, sender.clone());
        self.reply(&sender, rpc, Body::Nodes { closer, token });
    }

    pub(super) fn on_get_providers(&mut self, now: Time, sender: Contact<A>, rpc: RpcId, key: Id) {
        let providers = self.providers_for(now, &key);
        let closer = self.closest_for(self.config.dht.metric, &key, &sender.id);
        let token = self.issue_token(now, &sender);
        self.observe(now, sender.clone());
        self.reply(
            &sender,
            rpc,
            Body::Providers {
                key,
                providers,
                closer,
                token,
            },
        );
    }

    /// A reply: valid only from the peer we asked, and of the kind we asked for.
    pub(super) fn on_reply(&mut self, now: Time, sender: Contact<A>, rpc: RpcId, body: Body<A>) {
        let Some(p) = self.take_pending(rpc, &sender) else {
            if self.config.dht.adaptive_timeouts {
                if let Some(sent) = self.rtt.take_late(now, rpc, &sender.id) {
                    // Implementation note: a reply after its adaptive deadline
                    // is a round trip the estimate was too short for, so it is
                    // a sample; the query it was for has moved on without it.
                    self.counters.late_replies += 1;
                    self.rtt.sample(now, sender.id, now.saturating_since(sent));
                    self.observe(now, sender);
                    return;
                }
            }
            self.misbehaved(sender, Misbehaviour::UnsolicitedReply);
            return;
        };
        self.note_reply(now, &p);
        let k = self.config.dht.k.get();
        let max_providers = self.config.records.max_providers_returned.get();
        let seed = p.to_id.is_none();
        match (p.purpose, body) {
            (Purpose::EvictionPing, Body::Pong) => self.observe(now, sender),
            (Purpose::Forward(f), Body::RouteAck) => {
                self.forward_acked(&f);
                self.observe(now, sender);
            }
            (Purpose::Query(q), Body::Nodes { closer, token }) if closer.len() <= k => {
                self.observe(now, sender.clone());
                self.keep_token(q, sender.id, token);
                self.query_reply(now, q, sender, seed, closer, Vec::new());
            }
            (
                Purpose::Query(q),
                Body::Providers {
                    providers,
                    closer,
                    token,
                    ..
                },
            ) if closer.len() <= k && providers.len() <= max_providers => {
                self.observe(now, sender.clone());
                self.keep_token(q, sender.id, token);
                self.query_reply(now, q, sender, seed, closer, providers);
            }
            (
                Purpose::Query(q),
                Body::Name {
                    name,
                    record,
                    closer,
                    token,
                },
            ) if closer.len() <= k => {
                self.observe(now, sender.clone());
                self.keep_token(q, sender.id, token);
                let answer = super::names::NameAnswer {
                    name,
                    record,
                    closer,
                };
                self.name_reply(now, q, sender, seed, answer);
            }
            (Purpose::Query(q), Body::NameStored { .. }) => {
                self.observe(now, sender);
                self.stored_ack(now, q, true);
            }
            (Purpose::Query(q), Body::ProviderAdded { .. }) => {
                self.observe(now, sender);
                self.stored_ack(now, q, true);
            }
            (Purpose::Query(q), Body::RecordRefused { key, token }) => {
                self.observe(now, sender.clone());
                self.on_record_refused(now, q, sender, key, token);
            }
            (
                Purpose::Block { fetch, block },
                reply @ (Body::Block { .. } | Body::DontHave { .. } | Body::Busy { .. }),
            ) => {
                self.observe(now, sender.clone());
                self.block_reply(now, fetch, block, sender, reply);
            }
            (purpose, body) => {
                let reason = match body {
                    Body::Nodes { .. } | Body::Providers { .. } | Body::Name { .. } => {
                        Misbehaviour::OversizedList
                    }
                    _ => Misbehaviour::WrongReply,
                };
                // The request is answered, though uselessly: let its purpose move on.
                let to_id = (!seed).then_some(sender.id);
                self.misbehaved(sender, reason);
                match purpose {
                    Purpose::Query(q) => self.query_request_failed(now, q, to_id),
                    Purpose::Forward(f) => self.forward_failed(now, *f),
                    Purpose::Block { fetch, block } => self.block_failed(now, fetch, block),
                    Purpose::EvictionPing => {}
                }
            }
        }
    }
}
