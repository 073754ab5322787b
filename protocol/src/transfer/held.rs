//! Requests for blocks this node is fetching itself, held until they arrive
//! (CoralCDN's answer to a flash crowd: wait for the fetch in progress rather
//! than stampede the origin).

use std::collections::{BTreeMap, BTreeSet};

use crate::contact::Contact;
use crate::id::Id;
use crate::time::Time;
use crate::wire::RpcId;

/// A peer's block request, answered later.
#[derive(Clone, Debug)]
pub(crate) struct HeldRequest<A> {
    pub from: Contact<A>,
    pub rpc: RpcId,
    pub deadline: Time,
}

/// Held requests by block, bounded in number, each until its deadline.
#[derive(Debug)]
pub(crate) struct Held<A> {
    by_block: BTreeMap<Id, Vec<HeldRequest<A>>>,
    deadlines: BTreeSet<(Time, Id)>,
    count: usize,
    max: usize,
}

impl<A> Held<A> {
    pub fn new(max: usize) -> Self {
        Held {
            by_block: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            count: 0,
            max,
        }
    }

    /// Holds `req` for `block`; `false` if `max` requests are held already.
    pub fn hold(&mut self, block: Id, req: HeldRequest<A>) -> bool {
        if self.count >= self.max {
            return false;
        }
        self.count += 1;
        self.deadlines.insert((req.deadline, block));
        self.by_block.entry(block).or_default().push(req);
        true
    }

    /// Every request held for `block`, oldest first.
    pub fn take(&mut self, block: &Id) -> Vec<HeldRequest<A>> {
        let reqs = self.by_block.remove(block).unwrap_or_default();
        for r in &reqs {
            self.deadlines.remove(&(r.deadline, *block));
        }
        self.count -= reqs.len();
        reqs
    }

    /// Removes and returns the requests whose deadline has come.
    pub fn expire(&mut self, now: Time) -> Vec<(Id, HeldRequest<A>)> {
        let mut out = Vec::new();
        while let Some(&(t, block)) = self.deadlines.first() {
            if t > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(reqs) = self.by_block.get_mut(&block) {
                let (due, keep): (Vec<_>, Vec<_>) = reqs.drain(..).partition(|r| r.deadline <= now);
                *reqs = keep;
                if reqs.is_empty() {
                    self.by_block.remove(&block);
                }
                self.count -= due.len();
                out.extend(due.into_iter().map(|r| (block, r)));
            }
        }
        out
    }

    /// Requests held.
    pub fn len(&self) -> usize {
        self.count
    }

    /// When the next held request runs out.
    pub fn next_deadline(&self) -> Option<Time> {
        self.deadlines.first().map(|&(t, _)| t)
    }
}
