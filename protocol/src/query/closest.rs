//! The iterative lookup: walk towards a target, `alpha` requests at a time, until
//! the `k` closest nodes seen have all answered.

use std::collections::BTreeMap;

use crate::contact::{Address, Contact};
use crate::distance::{Distance, Metric};
use crate::id::Id;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    NotContacted,
    Waiting,
    Succeeded,
    Failed,
    /// Asked by another of the lookup's disjoint paths: never asked by this one.
    Taken,
}

#[derive(Clone, Debug)]
struct Candidate<A> {
    contact: Contact<A>,
    /// 0 for contacts from our own table; d + 1 for a contact learned from a
    /// depth-d peer's reply. Lookup hops are counted from this.
    depth: u32,
    state: State,
}

/// What the lookup wants to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step<A> {
    /// Send a request to this contact (now marked as waiting).
    Contact(Contact<A>),
    /// Wait for replies or timeouts.
    Wait,
    /// The `k` closest seen have answered, or nobody is left to ask.
    Finished,
}

/// Candidates ordered by distance to the target (Kademlia's shortlist).
///
/// Bounded: it remembers at most `max_candidates` not-yet-contacted peers and
/// forgets the farthest first, since those would never be asked anyway.
#[derive(Clone, Debug)]
pub(crate) struct ClosestPeers<A> {
    target: Id,
    metric: Metric,
    k: usize,
    alpha: usize,
    max_candidates: usize,
    peers: BTreeMap<Distance, Candidate<A>>,
    in_flight: usize,
    /// Candidates in `NotContacted`, kept so that trimming needs no scan.
    not_contacted: usize,
}

impl<A: Address> ClosestPeers<A> {
    pub fn new(target: Id, metric: Metric, k: usize, alpha: usize, max_candidates: usize) -> Self {
        ClosestPeers {
            target,
            metric,
            k,
            alpha,
            max_candidates,
            peers: BTreeMap::new(),
            in_flight: 0,
            not_contacted: 0,
        }
    }

    /// Offers a candidate; a peer already known keeps its state and smaller depth.
    pub fn add(&mut self, contact: Contact<A>, depth: u32) {
        self.insert(contact, depth, State::NotContacted);
    }

    /// Adds a peer that has already answered (a bootstrap seed).
    pub fn add_succeeded(&mut self, contact: Contact<A>, depth: u32) {
        self.insert(contact, depth, State::Succeeded);
    }

    fn insert(&mut self, contact: Contact<A>, depth: u32, state: State) {
        let d = self.metric.distance(&contact.id, &self.target);
        match self.peers.get_mut(&d) {
            Some(c) => {
                c.depth = c.depth.min(depth);
                if state == State::Succeeded && c.state != State::Succeeded {
                    match c.state {
                        State::Waiting => self.in_flight -= 1,
                        State::NotContacted => self.not_contacted -= 1,
                        _ => {}
                    }
                    c.state = State::Succeeded;
                }
            }
            None => {
                if state == State::NotContacted {
                    self.not_contacted += 1;
                }
                self.peers.insert(
                    d,
                    Candidate {
                        contact,
                        depth,
                        state,
                    },
                );
                self.trim();
            }
        }
    }

    fn trim(&mut self) {
        while self.not_contacted > self.max_candidates {
            let farthest = self
                .peers
                .iter()
                .rev()
                .find(|(_, c)| c.state == State::NotContacted)
                .map(|(d, _)| *d);
            match farthest {
                Some(d) => {
                    self.peers.remove(&d);
                    self.not_contacted -= 1;
                }
                None => break,
            }
        }
    }

    /// Decides the next step. Call repeatedly until it returns `Wait` or `Finished`.
    #[cfg(test)]
    pub fn next(&mut self) -> Step<A> {
        self.next_free(|_| true)
    }

    /// Decides the next step, asking only peers that `free` allows: a peer it
    /// refuses (another disjoint path has it) is marked taken and passed over,
    /// as if it had failed, so this path neither asks nor waits for it.
    pub fn next_free(&mut self, free: impl Fn(&Id) -> bool) -> Step<A> {
        loop {
            match self.pick() {
                Some(d) => {
                    let Some(c) = self.peers.get_mut(&d) else {
                        return Step::Wait;
                    };
                    self.not_contacted -= 1;
                    if free(&c.contact.id) {
                        c.state = State::Waiting;
                        self.in_flight += 1;
                        return Step::Contact(c.contact.clone());
                    }
                    c.state = State::Taken;
                }
                None => return self.idle_step(),
            }
        }
    }

    /// The closest peer not contacted yet among the `k` closest not failed, if
    /// one may be asked now.
    fn pick(&self) -> Option<Distance> {
        let mut considered = 0;
        for (d, c) in &self.peers {
            if considered == self.k {
                return None;
            }
            match c.state {
                State::Failed | State::Taken => continue,
                State::Succeeded | State::Waiting => considered += 1,
                State::NotContacted => return (self.in_flight < self.alpha).then_some(*d),
            }
        }
        None
    }

    /// `Wait` or `Finished`, when no peer is to be asked now.
    fn idle_step(&self) -> Step<A> {
        let mut considered = 0;
        let mut waiting = false;
        for c in self.peers.values() {
            if considered == self.k {
                break;
            }
            match c.state {
                State::Failed | State::Taken => continue,
                State::Succeeded => considered += 1,
                State::Waiting => {
                    considered += 1;
                    waiting = true;
                }
                State::NotContacted => {
                    waiting = true;
                    break;
                }
            }
        }
        if waiting || self.in_flight > 0 && considered < self.k {
            Step::Wait
        } else {
            Step::Finished
        }
    }

    fn settle(&mut self, id: &Id, to: State) -> Option<u32> {
        let d = self.metric.distance(id, &self.target);
        let c = self.peers.get_mut(&d)?;
        if c.state != State::Waiting {
            return None;
        }
        c.state = to;
        self.in_flight -= 1;
        Some(c.depth)
    }

    /// Records a reply from `id`; returns its depth if it was awaited.
    pub fn on_success(&mut self, id: &Id) -> Option<u32> {
        self.settle(id, State::Succeeded)
    }

    /// Records that `id` failed to answer.
    pub fn on_failure(&mut self, id: &Id) {
        self.settle(id, State::Failed);
    }

    /// Candidates remembered and not asked yet (for `Node::memory_usage`).
    pub fn not_asked(&self) -> usize {
        self.not_contacted
    }

    /// Candidates remembered and asked already (for `Node::memory_usage`).
    pub fn asked(&self) -> usize {
        self.peers.len() - self.not_contacted
    }

    /// Bytes of one remembered candidate and its key.
    pub(crate) const CANDIDATE_BYTES: usize = core::mem::size_of::<(Distance, Candidate<A>)>();

    /// The `n` closest peers that answered, closest first, with their depths.
    pub fn succeeded(&self, n: usize) -> Vec<(Contact<A>, u32)> {
        self.peers
            .values()
            .filter(|c| c.state == State::Succeeded)
            .take(n)
            .map(|c| (c.contact.clone(), c.depth))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::id::test_id as id;

    #[test]
    fn asks_alpha_at_a_time_and_finishes_when_k_closest_answered() {
        let mut q: ClosestPeers<u32> = ClosestPeers::new(Id::ZERO, Metric::Xor, 2, 2, 10);
        for n in [8, 4, 2] {
            q.add(Contact::new(id(n), n as u32), 0);
        }
        assert_eq!(q.next(), Step::Contact(Contact::new(id(2), 2)));
        assert_eq!(q.next(), Step::Contact(Contact::new(id(4), 4)));
        assert_eq!(q.next(), Step::Wait);
        assert_eq!(q.on_success(&id(2)), Some(0));
        q.add(Contact::new(id(1), 1), 1);
        assert_eq!(q.next(), Step::Contact(Contact::new(id(1), 1)));
        q.on_failure(&id(4));
        // 1 is waiting and among the two closest non-failed; 8 may be asked meanwhile.
        assert_eq!(q.next(), Step::Wait);
        assert_eq!(q.on_success(&id(1)), Some(1));
        assert_eq!(q.next(), Step::Finished);
        let got: Vec<u32> = q.succeeded(5).into_iter().map(|(c, _)| c.addr).collect();
        assert_eq!(got, vec![1, 2]);
    }

    #[test]
    fn exhausts_when_everyone_failed() {
        let mut q: ClosestPeers<u32> = ClosestPeers::new(Id::ZERO, Metric::Xor, 3, 3, 10);
        q.add(Contact::new(id(1), 1), 0);
        assert!(matches!(q.next(), Step::Contact(_)));
        assert_eq!(q.next(), Step::Wait);
        q.on_failure(&id(1));
        assert_eq!(q.next(), Step::Finished);
        assert!(q.succeeded(3).is_empty());
    }

    #[test]
    fn forgets_farthest_candidates_beyond_the_cap() {
        let mut q: ClosestPeers<u32> = ClosestPeers::new(Id::ZERO, Metric::Xor, 2, 1, 3);
        for n in 1..=10 {
            q.add(Contact::new(id(n), n as u32), 0);
        }
        assert_eq!(q.peers.len(), 3);
        assert_eq!(q.next(), Step::Contact(Contact::new(id(1), 1)));
    }
}
