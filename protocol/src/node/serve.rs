//! Serving blocks to peers: from the store, within the upload bound, or held
//! until a block this node is fetching arrives.

use crate::contact::{Address, Contact};
use crate::id::Id;
use crate::time::Time;
use crate::transfer::held::HeldRequest;
use crate::wire::{Body, Payload, RpcId};

use super::Node;

impl<A: Address> Node<A> {
    /// A peer says it is fetching `key`: track it for `fetching_ttl`.
    pub(super) fn on_add_fetching(&mut self, now: Time, sender: Contact<A>, rpc: RpcId, key: Id) {
        // As with provider records, a peer can only name itself.
        self.fetching.add(now, key, sender.clone());
        self.observe(now, sender.clone());
        self.reply(sender.addr, rpc, Body::ProviderAdded { key });
    }

    /// Whether the block may be sent: held, and (unless `serve_partial`) part of
    /// content held complete.
    fn servable(&self, id: &Id) -> bool {
        self.store.contains(id) && (self.config.serve_partial || !self.partial.contains_key(id))
    }

    pub(super) fn on_get_block(&mut self, now: Time, sender: Contact<A>, rpc: RpcId, id: Id) {
        self.observe(now, sender.clone());
        if self.servable(&id) {
            self.answer_block(now, sender, rpc, id);
            return;
        }
        if self.should_hold(&sender, &id) {
            let req = HeldRequest {
                from: sender.clone(),
                rpc,
                deadline: now + self.config.hold_timeout,
            };
            if self.held.hold(id, req) {
                self.counters.requests_held += 1;
                return;
            }
        }
        self.counters.dont_have_replies += 1;
        self.reply(sender.addr, rpc, Body::DontHave { id });
    }

    /// Hold a request for a block one of our fetches will have soon, unless the
    /// asker is the very peer we are waiting on for it (the two would wait on
    /// each other until both time out).
    fn should_hold(&self, asker: &Contact<A>, id: &Id) -> bool {
        self.config.announce_fetching
            && self.fetches.values().any(|f| {
                f.slot_of(id).is_some() && f.asked_for(id).is_none_or(|c| c.id != asker.id)
            })
    }

    /// Sends a held block, or "busy" when every upload slot is taken.
    fn answer_block(&mut self, now: Time, to: Contact<A>, rpc: RpcId, id: Id) {
        let data = match self.store.get(&id) {
            Ok(Some(data)) => data,
            // A store that lost the block (or failed) simply does not have it.
            Ok(None) | Err(_) => {
                self.counters.dont_have_replies += 1;
                self.reply(to.addr, rpc, Body::DontHave { id });
                return;
            }
        };
        if !self.uploads.try_start(now, data.len()) {
            self.counters.busy_replies += 1;
            self.reply(to.addr, rpc, Body::Busy { id });
            return;
        }
        self.counters.blocks_uploaded += 1;
        self.counters.bytes_uploaded += data.len() as u64;
        self.reply(
            to.addr,
            rpc,
            Body::Block {
                id,
                data: Payload(data),
            },
        );
    }

    /// Answers requests held for `id`, if it can be served now.
    pub(super) fn release_held(&mut self, now: Time, id: &Id) {
        if !self.servable(id) {
            return;
        }
        for r in self.held.take(id) {
            self.answer_block(now, r.from, r.rpc, *id);
        }
    }

    /// Answers requests held for `id` with "don't have" (our fetch of it failed).
    pub(super) fn refuse_held(&mut self, id: &Id) {
        for r in self.held.take(id) {
            self.counters.dont_have_replies += 1;
            self.reply(r.from.addr, r.rpc, Body::DontHave { id: *id });
        }
    }

    /// Held requests whose time is up are answered "don't have".
    pub(super) fn holds_expired(&mut self, now: Time) {
        for (id, r) in self.held.expire(now) {
            self.counters.dont_have_replies += 1;
            self.reply(r.from.addr, r.rpc, Body::DontHave { id });
        }
    }
}
