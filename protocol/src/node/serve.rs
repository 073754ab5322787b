//! Serving blocks to peers: from the store, within the upload bound, or held
//! until a block this node is fetching arrives.

use bytes::Bytes;

use crate::contact::{Address, Contact};
use crate::id::Id;
use crate::time::Time;
use crate::transfer::held::HeldRequest;
use crate::wire::{Body, Payload, RpcId};

use super::storage::ReadFor;
use super::Node;

impl<A: Address> Node<A> {
    /// Whether the block may be sent: held, and (unless `serve_partial`) part of
    /// content held complete.
    fn servable(&self, id: &Id) -> bool {
        self.storage.contains(id)
            && (self.config.crowd.serve_partial || !self.partial.contains_key(id))
    }

    pub(super) fn on_get_block(&mut self, now: Time, sender: Contact<A>, rpc: RpcId, id: Id) {
        self.observe(now, sender.clone());
        if self.servable(&id) {
            self.answer_block(now, sender, rpc, id, None);
            return;
        }
        if self.should_hold(&sender, &id) {
            let req = HeldRequest {
                from: sender.clone(),
                rpc,
                deadline: now + self.config.crowd.hold_timeout,
            };
            if self.held.hold(id, req) {
                self.counters.requests_held += 1;
                return;
            }
        }
        self.counters.dont_have_replies += 1;
        self.reply(&sender, rpc, Body::DontHave { id });
    }

    /// Hold a request for a block one of our fetches will have soon, unless the
    /// asker is the very peer we are waiting on for it (the two would wait on
    /// each other until both time out).
    fn should_hold(&self, asker: &Contact<A>, id: &Id) -> bool {
        self.config.crowd.announce_fetching
            && self.fetches.values().any(|f| {
                f.slot_of(id).is_some() && f.asked_for(id).is_none_or(|c| c.id != asker.id)
            })
    }

    /// Sends a held block (`data` if the bytes are at hand, else once the store
    /// has read it), or "busy" when every upload slot is taken.
    fn answer_block(
        &mut self,
        now: Time,
        to: Contact<A>,
        rpc: RpcId,
        id: Id,
        data: Option<&Bytes>,
    ) {
        let Some(len) = self.storage.len_of(&id) else {
            self.send_dont_have(to, rpc, id);
            return;
        };
        if self.storage.serve_reads >= self.config.transfer.max_uploads.get()
            || !self.uploads.try_start(now, len as usize)
        {
            self.counters.busy_replies += 1;
            self.reply(&to, rpc, Body::Busy { id });
            return;
        }
        match data {
            Some(d) => self.send_block(to, rpc, id, d.clone()),
            None => {
                self.storage.serve_reads += 1;
                self.storage.read(id, ReadFor::Serve { to, rpc });
            }
        }
    }

    /// Sends a block's bytes to the peer that asked.
    pub(super) fn send_block(&mut self, to: Contact<A>, rpc: RpcId, id: Id, data: Bytes) {
        self.counters.blocks_uploaded += 1;
        self.counters.bytes_uploaded += data.len() as u64;
        self.reply(
            &to,
            rpc,
            Body::Block {
                id,
                data: Payload(data),
            },
        );
    }

    /// Tells the peer that asked that this node does not have the block.
    pub(super) fn send_dont_have(&mut self, to: Contact<A>, rpc: RpcId, id: Id) {
        self.counters.dont_have_replies += 1;
        self.reply(&to, rpc, Body::DontHave { id });
    }

    /// Answers requests held for `id`, if it can be served now (`data` its
    /// bytes, if at hand).
    pub(super) fn release_held(&mut self, now: Time, id: &Id, data: Option<&Bytes>) {
        if !self.servable(id) {
            return;
        }
        for r in self.held.take(id) {
            self.answer_block(now, r.from, r.rpc, *id, data);
        }
    }

    /// Answers requests held for `id` with "don't have" (our fetch of it failed).
    pub(super) fn refuse_held(&mut self, id: &Id) {
        for r in self.held.take(id) {
            self.counters.dont_have_replies += 1;
            self.reply(&r.from, r.rpc, Body::DontHave { id: *id });
        }
    }

    /// Held requests whose time is up are answered "don't have".
    pub(super) fn holds_expired(&mut self, now: Time) {
        for (id, r) in self.held.expire(now) {
            self.counters.dont_have_replies += 1;
            self.reply(&r.from, r.rpc, Body::DontHave { id });
        }
    }
}
