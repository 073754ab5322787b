//! Adversarial nodes: behaviour wrappers that tamper with a node's own traffic,
//! as a modified live node would, and the driver-side attacks (key grinding,
//! record floods) that need no wrapper.
//!
//! An adversary runs the unmodified protocol inside; its [`Adversary`] wrapper
//! rewrites what it says. Colluding adversaries share a [`Coalition`], a
//! bounded, immutable, ordered list of who they are, so their lies agree
//! (every eclipse answer names fellow adversaries, the closest to the target).
//! The simulator's transport is authenticated (the engine drops a message
//! whose `sender` is not the sending slot's id, [`crate::EngineStats::forged`]),
//! so an adversary can lie about anything but who it is.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use distroweb_protocol::{Body, Contact, Id, Message, Metric, RpcId, Time, Transmit};
use rand_core::RngCore;

use crate::addr::NodeIdx;
use crate::behaviour::Behaviour;
use crate::seed::{below, SimRng};

/// One way an adversary misbehaves; an [`Adversary`] may combine several.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Attack {
    /// Swallow everything sent to it: up, but never answering.
    DropAll,
    /// Answer `FindNode`, `FindNeighbours` and `GetProviders` with fellow
    /// adversaries only, the ones closest to the target, so a lookup that asks
    /// it walks into the coalition.
    Eclipse,
    /// Answer provider lookups with fellow adversaries as the providers (the
    /// records it holds are never shown), and never serve a block.
    FakeProviders,
    /// Serve every block with its bytes flipped, so it fails its hash.
    CorruptBlocks,
}

impl Attack {
    /// The lowercase name, as shown in results.
    pub const fn name(self) -> &'static str {
        match self {
            Attack::DropAll => "drop-all",
            Attack::Eclipse => "eclipse",
            Attack::FakeProviders => "fake-providers",
            Attack::CorruptBlocks => "corrupt-blocks",
        }
    }
}

/// Who the colluding adversaries are: their contacts, ordered by slot, shared
/// (read-only) by every member's wrapper.
#[derive(Debug)]
pub struct Coalition {
    members: Vec<Contact<NodeIdx>>,
}

impl Coalition {
    /// The coalition of these contacts (duplicates by slot are dropped).
    pub fn new(mut members: Vec<Contact<NodeIdx>>) -> Self {
        members.sort_by_key(|c| c.addr);
        members.dedup_by_key(|c| c.addr);
        Coalition { members }
    }

    /// Members, by slot.
    pub fn members(&self) -> &[Contact<NodeIdx>] {
        &self.members
    }

    /// Whether slot `node` is a member.
    pub fn contains(&self, node: NodeIdx) -> bool {
        self.members.binary_search_by_key(&node, |c| c.addr).is_ok()
    }

    /// Up to `n` members closest to `target` under `metric`, closest first,
    /// leaving out `except` (the asker knows itself).
    pub fn closest(
        &self,
        metric: Metric,
        target: &Id,
        n: usize,
        except: &Id,
    ) -> Vec<Contact<NodeIdx>> {
        let mut ranked: Vec<_> = self
            .members
            .iter()
            .filter(|c| c.id != *except)
            .map(|c| (metric.distance(&c.id, target), c))
            .collect();
        if ranked.len() > n {
            ranked.select_nth_unstable_by_key(n, |(d, _)| *d);
            ranked.truncate(n);
        }
        ranked.sort_unstable_by_key(|(d, _)| *d);
        ranked.into_iter().map(|(_, c)| c.clone()).collect()
    }
}

/// Requests an adversary remembers, waiting for its node's reply to rewrite;
/// the oldest is forgotten first (a bound chosen here: far more than a node
/// answers within one instant).
pub const MAX_REMEMBERED_REQUESTS: usize = 4_096;

/// The wrapper of one adversarial node: what it rewrites, with whom it colludes.
#[derive(Debug)]
pub struct Adversary {
    attacks: BTreeSet<Attack>,
    coalition: Arc<Coalition>,
    metric: Metric,
    /// Contacts in an eclipse answer (the protocol's `k`, so the list is valid).
    k: usize,
    /// Providers in a fake provider answer (at most the asker's `max_providers_returned`).
    fake_providers: usize,
    /// Lookup requests seen, by (asker, request id): the target and the asker's id.
    asked: BTreeMap<(NodeIdx, RpcId), (Id, Id)>,
    /// `asked`'s keys, oldest first, to forget the oldest past the bound.
    order: VecDeque<(NodeIdx, RpcId)>,
}

impl Adversary {
    /// An adversary with these attacks, colluding with `coalition`, answering
    /// `k` contacts and `fake_providers` providers per lie (take both from the
    /// protocol configuration the honest nodes run, so the lies pass their checks).
    pub fn new(
        attacks: &[Attack],
        coalition: Arc<Coalition>,
        metric: Metric,
        k: usize,
        fake_providers: usize,
    ) -> Self {
        Adversary {
            attacks: attacks.iter().copied().collect(),
            coalition,
            metric,
            k,
            fake_providers,
            asked: BTreeMap::new(),
            order: VecDeque::new(),
        }
    }

    fn does(&self, a: Attack) -> bool {
        self.attacks.contains(&a)
    }

    fn remember(&mut self, key: (NodeIdx, RpcId), target: Id, asker: Id) {
        if self.asked.insert(key, (target, asker)).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > MAX_REMEMBERED_REQUESTS {
            if let Some(old) = self.order.pop_front() {
                self.asked.remove(&old);
            }
        }
    }

    fn recall(&mut self, key: (NodeIdx, RpcId)) -> Option<(Id, Id)> {
        // The order queue keeps the key until it ages out; a stale entry there
        // only makes the bound a little conservative.
        self.asked.remove(&key)
    }
}

impl Behaviour for Adversary {
    fn inbound(
        &mut self,
        _: Time,
        from: NodeIdx,
        msg: Message<NodeIdx>,
    ) -> Option<Message<NodeIdx>> {
        if self.does(Attack::DropAll) {
            return None;
        }
        let lies = self.does(Attack::Eclipse) || self.does(Attack::FakeProviders);
        match &msg.body {
            Body::FindNode { target } | Body::FindNeighbours { target } if lies => {
                self.remember((from, msg.rpc), *target, msg.sender);
            }
            Body::GetProviders { key } if lies => {
                self.remember((from, msg.rpc), *key, msg.sender);
            }
            // A fake provider never serves: the fetcher waits out its timeout.
            Body::GetBlock { .. } if self.does(Attack::FakeProviders) => return None,
            _ => {}
        }
        Some(msg)
    }

    fn outbound(&mut self, _: Time, mut t: Transmit<NodeIdx>) -> Option<Transmit<NodeIdx>> {
        let key = (t.to, t.msg.rpc);
        match &mut t.msg.body {
            Body::Nodes { closer, .. } => {
                if let Some((target, asker)) = self.recall(key) {
                    if self.does(Attack::Eclipse) {
                        *closer = self.coalition.closest(self.metric, &target, self.k, &asker);
                    }
                }
            }
            Body::Providers {
                providers, closer, ..
            } => {
                if let Some((target, asker)) = self.recall(key) {
                    if self.does(Attack::Eclipse) {
                        *closer = self.coalition.closest(self.metric, &target, self.k, &asker);
                    }
                    if self.does(Attack::FakeProviders) {
                        *providers = self.coalition.closest(
                            self.metric,
                            &target,
                            self.fake_providers,
                            &asker,
                        );
                    }
                }
            }
            Body::Block { data, .. } if self.does(Attack::CorruptBlocks) => {
                let flipped: Vec<u8> = data.0.iter().map(|b| !b).collect();
                data.0 = Bytes::from(flipped);
            }
            _ => {}
        }
        Some(t)
    }

    /// An adversary's announcements (a record flood) name no real provider:
    /// it never serves a correct block, whatever its attacks.
    fn serves(&self) -> bool {
        false
    }
}

/// Makes `nodes` colluding adversaries with `attacks`: builds their
/// [`Coalition`] from the ids they run (set any ground id first,
/// [`crate::Sim::set_node_id`]) and installs an [`Adversary`] on each, sized
/// from the run's protocol configuration. Returns the coalition.
pub fn install(sim: &mut crate::Sim, nodes: &[NodeIdx], attacks: &[Attack]) -> Arc<Coalition> {
    let members = nodes
        .iter()
        .map(|&n| Contact::new(sim.node_id(n), n))
        .collect();
    let coalition = Arc::new(Coalition::new(members));
    let p = &sim.config().protocol;
    let (metric, k) = (p.dht.metric, p.dht.k.get());
    let fake = p.records.max_providers_returned.get();
    for &n in nodes {
        let a = Adversary::new(attacks, Arc::clone(&coalition), metric, k, fake);
        sim.set_behaviour(n, Box::new(a));
    }
    coalition
}

/// Key grinding, the attack S/Kademlia's crypto puzzles price: an attacker
/// that can afford `2^budget_bits` key generations places its id next to
/// `target`, sharing `budget_bits - puzzle_bits` leading bits with it, because
/// each key costs `2^puzzle_bits` work under a puzzle of difficulty
/// `puzzle_bits` (S/Kademlia §4.1, the static puzzle's `c1`). The remaining
/// bits are random, from `rng`.
///
/// Implementation note: the grinding itself is not run (2^b hashes per
/// attacker); its outcome is drawn directly, which is what a search for a
/// prefix match of that length yields.
pub fn grind(target: &Id, budget_bits: u32, puzzle_bits: u32, rng: &mut SimRng) -> Id {
    let shared = budget_bits.saturating_sub(puzzle_bits).min(256) as usize;
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    let t = target.as_bytes();
    for (i, b) in bytes.iter_mut().enumerate() {
        let bits = shared.saturating_sub(i * 8).min(8);
        let mask = if bits == 8 { 0xff } else { !(0xffu8 >> bits) };
        *b = (t[i] & mask) | (*b & !mask);
    }
    Id::from_bytes(bytes)
}

/// Picks `count` distinct slots among `0..nodes` as adversaries, uniformly, in
/// slot order, from `rng` (a stream of their own, so the choice moves nothing else).
pub fn pick(nodes: u32, count: u32, rng: &mut SimRng) -> Vec<NodeIdx> {
    // Floyd's algorithm: `count` draws, no retries, no shuffle of every slot.
    let mut chosen = BTreeSet::new();
    let count = count.min(nodes);
    for j in (nodes - count)..nodes {
        let t = below(rng, u64::from(j) + 1) as u32;
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    chosen.into_iter().map(NodeIdx).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{stream_rng, Stream};

    fn leading_bits(a: &Id, b: &Id) -> u32 {
        a.xor(b).leading_zeros()
    }

    #[test]
    fn grinding_shares_budget_minus_puzzle_bits() {
        let mut rng = stream_rng(1, Stream::Adversary);
        let target = Id::from_bytes([0xa5; 32]);
        for (b, c) in [(24, 0), (24, 8), (24, 24), (40, 4), (10, 20)] {
            let id = grind(&target, b, c, &mut rng);
            assert!(leading_bits(&id, &target) >= b.saturating_sub(c), "{b} {c}");
        }
    }

    #[test]
    fn picks_are_distinct_sorted_and_seeded() {
        let a = pick(100, 30, &mut stream_rng(5, Stream::Adversary));
        assert_eq!(a.len(), 30);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert!(a.iter().all(|n| n.0 < 100));
        assert_eq!(a, pick(100, 30, &mut stream_rng(5, Stream::Adversary)));
        assert_eq!(
            pick(10, 10, &mut stream_rng(5, Stream::Adversary)).len(),
            10
        );
    }

    #[test]
    fn an_eclipse_names_the_coalition_closest_to_the_target() {
        let members: Vec<_> = (1..=6u8)
            .map(|n| Contact::new(Id::from_bytes([n; 32]), NodeIdx(u32::from(n))))
            .collect();
        let c = Arc::new(Coalition::new(members));
        let mut a = Adversary::new(
            &[Attack::Eclipse, Attack::FakeProviders],
            c,
            Metric::Xor,
            2,
            1,
        );
        let asker = Id::from_bytes([0xff; 32]);
        let target = Id::from_bytes([3; 32]);
        let req = Message {
            sender: asker,
            rpc: RpcId(7),
            body: Body::GetProviders { key: target },
        };
        assert!(a.inbound(Time::ZERO, NodeIdx(9), req).is_some());
        let reply = Transmit {
            to: NodeIdx(9),
            to_id: Some(asker),
            msg: Message {
                sender: Id::from_bytes([1; 32]),
                rpc: RpcId(7),
                body: Body::Providers {
                    key: target,
                    providers: Vec::new(),
                    closer: Vec::new(),
                    token: distroweb_protocol::records::Token([0; 8]),
                },
            },
        };
        let out = a.outbound(Time::ZERO, reply).expect("passes");
        let Body::Providers {
            providers, closer, ..
        } = out.msg.body
        else {
            panic!("still a providers answer");
        };
        let ids = |v: &[Contact<NodeIdx>]| v.iter().map(|c| c.addr.0).collect::<Vec<_>>();
        assert_eq!(ids(&closer), vec![3, 2]);
        assert_eq!(ids(&providers), vec![3]);
    }
}
