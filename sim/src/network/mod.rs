//! The network model: latency, bandwidth, loss, partitions and NATs, in one config struct.
//!
//! A message's fate is decided when it is sent: it is lost, cut off by a partition,
//! dropped by the receiver's NAT, or scheduled for delivery once it has crossed the
//! sender's uplink, the wide area (through a relay, for a NATed receiver reached
//! that way) and the receiver's downlink.

mod latency;
pub mod nat;
mod partition;

use core::time::Duration;
use std::collections::BTreeMap;

use distroweb_protocol::Time;
use serde::{Deserialize, Serialize};

use crate::addr::NodeIdx;
use crate::seed::{stream_rng, unit_open, SimRng, Stream};

pub use latency::Placement;
pub use nat::{Nat, NatConfig, NatKind, NatMode, NatStats, Path, PunchTable, Route};
pub use partition::Partition;

/// What a sender learns when its message reaches a node that is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeadPeer {
    /// Nothing: the request times out (a datagram transport, or a host that vanished).
    Silent,
    /// A refusal one round trip later, fed to `handle_send_failed` (a TCP reset from
    /// a host whose process is gone).
    Refused,
}

/// Gilbert–Elliott bursty loss: each sender's access link flips between a good
/// state (loss `loss_rate`) and a bad state (loss `bad_loss_rate`), once per message.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BurstLoss {
    /// Chance per message of moving from good to bad.
    pub enter_bad: f64,
    /// Chance per message of moving from bad back to good.
    pub leave_bad: f64,
    /// Loss rate while bad.
    pub bad_loss_rate: f64,
}

/// Every parameter of the network model. Defaults give a King-like wide area
/// (median RTT near 150 ms) over home broadband, with no loss and no partition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// Nodes sit uniformly in a square this many milliseconds of one-way propagation
    /// across; the delay between two nodes grows with their Euclidean distance.
    pub plane_side_ms: f64,
    /// Median one-way access delay of a node (the last mile), drawn log-normally per node.
    pub access_median_ms: f64,
    /// `σ` of the log-normal access delay; 0 gives every node the median.
    pub access_sigma: f64,
    /// Each message's delay is stretched by a uniform factor in `[1, 1 + jitter]`;
    /// 0 keeps delays fixed per pair (and so messages between a pair in order).
    pub jitter: f64,
    /// Uplink capacity per node in bytes/s; 0 means unlimited.
    pub upload_bytes_per_s: u64,
    /// Downlink capacity per node in bytes/s; 0 means unlimited.
    pub download_bytes_per_s: u64,
    /// Bytes added to every message's encoded length (framing on the wire: the live
    /// node's 4-byte length prefix).
    pub overhead_bytes: u32,
    /// Chance that any one message is lost, independently.
    pub loss_rate: f64,
    /// Bursty loss on top of (instead of, while bad) the independent rate.
    pub burst_loss: Option<BurstLoss>,
    /// Windows of time during which groups of nodes cannot reach each other.
    pub partitions: Vec<Partition>,
    /// What a sender learns about a message to a node that is down.
    pub dead_peer: DeadPeer,
    /// Debug switch: encode and decode every message with the real codec and check
    /// it survives, so codec bugs show up in the simulator. Slower.
    pub codec_roundtrip: bool,
    /// A fault: a message sent to a node that has since restarted reaches its
    /// new run instead of being dropped, as it would reach a live node that came
    /// back at the same address. Off by default.
    pub deliver_stale: bool,
    /// Which nodes sit behind NATs and how they run; by default none does.
    #[serde(default)]
    pub nat: NatConfig,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            plane_side_ms: 110.0,
            access_median_ms: 9.0,
            access_sigma: 0.6,
            jitter: 0.0,
            upload_bytes_per_s: 1_250_000,
            download_bytes_per_s: 6_250_000,
            overhead_bytes: 4,
            loss_rate: 0.0,
            burst_loss: None,
            partitions: Vec::new(),
            dead_peer: DeadPeer::Silent,
            codec_roundtrip: false,
            deliver_stale: false,
            nat: NatConfig::default(),
        }
    }
}

/// Why a network configuration is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NetworkConfigError {
    /// A probability is outside `[0, 1]`.
    #[error("`{0}` must be a probability in [0, 1]")]
    NotAProbability(&'static str),
    /// A length or spread is negative or not finite.
    #[error("`{0}` must be finite and not negative")]
    Negative(&'static str),
    /// A partition ends before it starts.
    #[error("partition {0} ends before it starts")]
    BackwardsPartition(usize),
    /// A NAT share or punch chance is out of range, or a NAT bound is zero.
    #[error("`{0}` is out of range")]
    Nat(&'static str),
}

impl NetworkConfig {
    /// Checks every parameter.
    pub fn validate(&self) -> Result<(), NetworkConfigError> {
        for (name, v) in [
            ("plane_side_ms", self.plane_side_ms),
            ("access_median_ms", self.access_median_ms),
            ("access_sigma", self.access_sigma),
            ("jitter", self.jitter),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(NetworkConfigError::Negative(name));
            }
        }
        let mut probabilities = vec![("loss_rate", self.loss_rate)];
        if let Some(b) = self.burst_loss {
            probabilities.extend([
                ("burst_loss.enter_bad", b.enter_bad),
                ("burst_loss.leave_bad", b.leave_bad),
                ("burst_loss.bad_loss_rate", b.bad_loss_rate),
            ]);
        }
        for (name, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return Err(NetworkConfigError::NotAProbability(name));
            }
        }
        for (i, p) in self.partitions.iter().enumerate() {
            if p.end < p.start {
                return Err(NetworkConfigError::BackwardsPartition(i));
            }
        }
        self.nat.check().map_err(NetworkConfigError::Nat)
    }
}

/// What became of a message handed to the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// It arrives, whole, at this time.
    Arrives(Time),
    /// Dropped by the loss model.
    Lost,
    /// Dropped because a partition separates the two nodes.
    Partitioned,
    /// Dropped by the receiver's NAT: unsolicited, and no relay carried it.
    Blocked,
}

/// The network's state: placement and per-link-end queues, for every slot.
///
/// Per node: two coordinates, an access delay, two busy-until times and a loss
/// state, 29 bytes in all; overrides of single links or uplinks (which tests
/// set) cost only what they hold; the NAT model, when on, its own (see [`Nat`]).
#[derive(Debug)]
pub struct Network {
    config: NetworkConfig,
    placement: Placement,
    /// One-way delays (µs) that replace the placement's for single directed links.
    latency_us: BTreeMap<(NodeIdx, NodeIdx), u64>,
    /// Uplink capacities (bytes/s, 0 unlimited) that replace the configured one.
    upload_bytes_per_s: BTreeMap<NodeIdx, u64>,
    /// When each node's uplink finishes sending what it has queued (µs).
    up_busy_us: Vec<u64>,
    /// When each node's downlink finishes receiving what is headed to it (µs).
    down_busy_us: Vec<u64>,
    /// Gilbert–Elliott state per sender: in the bad state.
    bad: Vec<bool>,
    rng: SimRng,
    /// The NATs, if any node sits behind one.
    nat: Option<Nat>,
}

/// Microseconds to push `bytes` through a link of `bytes_per_s` (0: unlimited), rounded up.
fn transfer_us(bytes: u64, bytes_per_s: u64) -> u64 {
    if bytes_per_s == 0 {
        0
    } else {
        (bytes * 1_000_000).div_ceil(bytes_per_s)
    }
}

impl Network {
    /// Places `nodes` nodes; placement draws only from the placement stream of `seed`.
    pub fn new(config: NetworkConfig, nodes: usize, seed: u64) -> Self {
        let mut placement_rng = stream_rng(seed, Stream::Placement);
        let placement = Placement::new(&config, nodes, &mut placement_rng);
        let nat =
            (config.nat.nated_share() > 0.0).then(|| Nat::new(config.nat.clone(), nodes, seed));
        Network {
            nat,
            placement,
            latency_us: BTreeMap::new(),
            upload_bytes_per_s: BTreeMap::new(),
            up_busy_us: vec![0; nodes],
            down_busy_us: vec![0; nodes],
            bad: vec![false; nodes],
            rng: stream_rng(seed, Stream::Network),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// The placement (coordinates and access delays).
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The NATs, if the configuration puts any node behind one.
    pub fn nat(&self) -> Option<&Nat> {
        self.nat.as_ref()
    }

    /// The same, to change (reservations follow joins and leaves).
    pub fn nat_mut(&mut self) -> Option<&mut Nat> {
        self.nat.as_mut()
    }

    /// Whether `node` sits behind a NAT.
    pub fn is_nated(&self, node: NodeIdx) -> bool {
        self.nat.as_ref().is_some_and(|n| n.is_nated(node))
    }

    /// Fixes the one-way delay of the directed link `from` → `to` (before jitter
    /// and link queues), or with `None` gives it back to the placement.
    pub fn set_latency(&mut self, from: NodeIdx, to: NodeIdx, delay: Option<Duration>) {
        match delay {
            Some(d) => {
                let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                self.latency_us.insert((from, to), us);
            }
            None => {
                self.latency_us.remove(&(from, to));
            }
        }
    }

    /// Sets `node`'s uplink capacity in bytes/s (0: unlimited), or with `None`
    /// gives it back the configured `upload_bytes_per_s`.
    pub fn set_upload_bytes_per_s(&mut self, node: NodeIdx, bytes_per_s: Option<u64>) {
        match bytes_per_s {
            Some(b) => {
                self.upload_bytes_per_s.insert(node, b);
            }
            None => {
                self.upload_bytes_per_s.remove(&node);
            }
        }
    }

    /// The one-way delay from `a` to `b` in µs, without queueing or jitter: the
    /// link's fixed delay if one is set, else the placement's.
    pub fn one_way_us(&self, a: NodeIdx, b: NodeIdx) -> u64 {
        if !self.latency_us.is_empty() {
            if let Some(us) = self.latency_us.get(&(a, b)) {
                return *us;
            }
        }
        self.placement.one_way_us(a, b)
    }

    /// Decides the fate of a `bytes`-long message sent at `now` from `from` to `to`,
    /// and charges the links it crosses.
    ///
    /// Implementation note: the receiver's downlink is reserved when the message is
    /// sent rather than when it arrives, so one event per message suffices; messages
    /// to one receiver queue in send order, which can differ from arrival order by
    /// at most the difference of their propagation delays. A relayed message
    /// likewise reserves the relay's downlink and uplink at send time.
    pub fn send(&mut self, now: Time, from: NodeIdx, to: NodeIdx, bytes: u64) -> Fate {
        let (f, t) = (from.index(), to.index());
        let now_us = now.as_micros();
        let uplink = self.uplink(from);
        let depart = now_us.max(self.up_busy_us[f]) + transfer_us(bytes, uplink);
        self.up_busy_us[f] = depart;
        if self.lost(f) {
            return Fate::Lost;
        }
        let route = match self.nat.as_mut() {
            Some(nat) => nat.route(now, from, to),
            None => Route::Direct,
        };
        let cut = |a, b| {
            self.config
                .partitions
                .iter()
                .any(|p| p.separates(now, a, b))
        };
        let (delay, at_relay) = match route {
            Route::Blocked => return Fate::Blocked,
            Route::Direct if cut(from, to) => return Fate::Partitioned,
            Route::Via(r) if cut(from, r) || cut(r, to) => return Fate::Partitioned,
            Route::Direct => (self.one_way_us(from, to), None),
            Route::Via(r) => (self.one_way_us(from, r), Some((r, self.one_way_us(r, to)))),
        };
        let mut arrive = depart + self.stretch(delay);
        if let Some((r, onward)) = at_relay {
            // The relay receives the message whole, then sends it on.
            let ri = r.index();
            let down = self.config.download_bytes_per_s;
            let received = arrive.max(self.down_busy_us[ri]) + transfer_us(bytes, down);
            self.down_busy_us[ri] = received;
            let sent = received.max(self.up_busy_us[ri]) + transfer_us(bytes, self.uplink(r));
            self.up_busy_us[ri] = sent;
            arrive = sent + self.stretch(onward);
        }
        let done =
            arrive.max(self.down_busy_us[t]) + transfer_us(bytes, self.config.download_bytes_per_s);
        self.down_busy_us[t] = done;
        Fate::Arrives(Time::from_micros(done))
    }

    /// `node`'s uplink capacity, bytes/s (0 unlimited).
    fn uplink(&self, node: NodeIdx) -> u64 {
        if self.upload_bytes_per_s.is_empty() {
            self.config.upload_bytes_per_s
        } else {
            self.upload_bytes_per_s
                .get(&node)
                .copied()
                .unwrap_or(self.config.upload_bytes_per_s)
        }
    }

    /// A one-way delay stretched by the jitter draw, if jitter is on.
    fn stretch(&mut self, delay: u64) -> u64 {
        if self.config.jitter > 0.0 {
            let stretch = 1.0 + self.config.jitter * unit_open(&mut self.rng);
            (delay as f64 * stretch) as u64
        } else {
            delay
        }
    }

    /// Draws whether the next message from sender `f` is lost.
    fn lost(&mut self, f: usize) -> bool {
        let mut rate = self.config.loss_rate;
        if let Some(b) = self.config.burst_loss {
            let flip = if self.bad[f] {
                b.leave_bad
            } else {
                b.enter_bad
            };
            if flip > 0.0 && unit_open(&mut self.rng) < flip {
                self.bad[f] = !self.bad[f];
            }
            if self.bad[f] {
                rate = b.bad_loss_rate;
            }
        }
        rate > 0.0 && unit_open(&mut self.rng) < rate
    }

    /// The round-trip time between two nodes without queueing or jitter.
    pub fn rtt(&self, a: NodeIdx, b: NodeIdx) -> Duration {
        Duration::from_micros(self.one_way_us(a, b) + self.one_way_us(b, a))
    }

    /// A node's queued upload backlog at `now`: how long until its uplink is idle.
    pub fn upload_backlog(&self, node: NodeIdx, now: Time) -> Duration {
        Duration::from_micros(self.up_busy_us[node.index()].saturating_sub(now.as_micros()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_rtt_is_king_like() {
        let net = Network::new(NetworkConfig::default(), 2_000, 1);
        let mut rtts: Vec<u128> = (0..2_000u32)
            .flat_map(|a| (0..10u32).map(move |k| (a, (a * 7 + k * 191 + 1) % 2_000)))
            .filter(|(a, b)| a != b)
            .map(|(a, b)| net.rtt(NodeIdx(a), NodeIdx(b)).as_millis())
            .collect();
        rtts.sort_unstable();
        let median = rtts[rtts.len() / 2];
        assert!((140..=160).contains(&median), "median RTT {median} ms");
    }

    #[test]
    fn a_busy_uplink_queues_messages() {
        let config = NetworkConfig {
            upload_bytes_per_s: 1_000,
            download_bytes_per_s: 0,
            ..NetworkConfig::default()
        };
        let mut net = Network::new(config, 3, 1);
        let delay = net.placement().one_way_us(NodeIdx(0), NodeIdx(1));
        // 1,000 bytes at 1,000 B/s take a second each; the second waits for the first.
        let first = net.send(Time::ZERO, NodeIdx(0), NodeIdx(1), 1_000);
        let second = net.send(Time::ZERO, NodeIdx(0), NodeIdx(1), 1_000);
        assert_eq!(first, Fate::Arrives(Time::from_micros(1_000_000 + delay)));
        assert_eq!(second, Fate::Arrives(Time::from_micros(2_000_000 + delay)));
        assert_eq!(
            net.upload_backlog(NodeIdx(0), Time::ZERO),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn a_fixed_link_delay_and_uplink_override_one_direction_only() {
        let config = NetworkConfig {
            upload_bytes_per_s: 0,
            download_bytes_per_s: 0,
            ..NetworkConfig::default()
        };
        let mut net = Network::new(config, 3, 1);
        let (a, b) = (NodeIdx(0), NodeIdx(1));
        let back = net.one_way_us(b, a);
        net.set_latency(a, b, Some(Duration::from_millis(700)));
        assert_eq!(
            net.send(Time::ZERO, a, b, 10),
            Fate::Arrives(Time::from_millis(700))
        );
        assert_eq!(net.one_way_us(b, a), back, "the way back keeps its delay");
        assert_eq!(net.rtt(a, b), Duration::from_micros(700_000 + back));
        net.set_upload_bytes_per_s(a, Some(1_000));
        assert_eq!(
            net.send(Time::ZERO, a, b, 1_000),
            Fate::Arrives(Time::from_millis(1_700))
        );
        net.set_latency(a, b, None);
        net.set_upload_bytes_per_s(a, None);
        let placed = net.placement().one_way_us(a, b);
        assert_eq!(
            net.send(Time::from_secs(5), a, b, 1_000),
            Fate::Arrives(Time::from_micros(5_000_000 + placed))
        );
    }

    #[test]
    fn a_busy_downlink_queues_messages_from_different_senders() {
        let config = NetworkConfig {
            upload_bytes_per_s: 0,
            download_bytes_per_s: 1_000,
            ..NetworkConfig::default()
        };
        let mut net = Network::new(config, 3, 1);
        let Fate::Arrives(a) = net.send(Time::ZERO, NodeIdx(0), NodeIdx(2), 1_000) else {
            panic!("lost")
        };
        let Fate::Arrives(b) = net.send(Time::ZERO, NodeIdx(1), NodeIdx(2), 1_000) else {
            panic!("lost")
        };
        assert!(b.as_micros() >= a.as_micros() + 1_000_000, "{a:?} {b:?}");
    }

    #[test]
    fn loss_rates_are_honoured() {
        let config = NetworkConfig {
            loss_rate: 0.25,
            ..NetworkConfig::default()
        };
        let mut net = Network::new(config, 2, 1);
        let lost = (0..10_000)
            .filter(|_| net.send(Time::ZERO, NodeIdx(0), NodeIdx(1), 10) == Fate::Lost)
            .count();
        assert!((2_200..2_800).contains(&lost), "{lost}");
    }

    #[test]
    fn bursty_loss_clusters() {
        let config = NetworkConfig {
            burst_loss: Some(BurstLoss {
                enter_bad: 0.01,
                leave_bad: 0.1,
                bad_loss_rate: 1.0,
            }),
            ..NetworkConfig::default()
        };
        let mut net = Network::new(config, 2, 1);
        let fates: Vec<bool> = (0..20_000)
            .map(|_| net.send(Time::ZERO, NodeIdx(0), NodeIdx(1), 10) == Fate::Lost)
            .collect();
        let lost = fates.iter().filter(|l| **l).count();
        // Stationary bad share is 0.01 / 0.11 ≈ 9 %; losses come in runs (mean 10).
        assert!((1_200..2_500).contains(&lost), "{lost}");
        let runs = fates.windows(2).filter(|w| w[1] && !w[0]).count();
        assert!(lost / runs.max(1) >= 5, "{lost} losses in {runs} runs");
    }

    #[test]
    fn a_nat_blocks_the_unsolicited_and_a_relay_adds_its_hop() {
        let config = NetworkConfig {
            upload_bytes_per_s: 0,
            download_bytes_per_s: 0,
            nat: NatConfig {
                endpoint_independent: 0.5,
                mode: NatMode::Relays,
                ..NatConfig::default()
            },
            ..NetworkConfig::default()
        };
        let mut net = Network::new(config, 10, 1);
        let nated = net
            .nat()
            .and_then(|n| n.nated().next())
            .expect("a NATed node");
        let public: Vec<NodeIdx> = (0..10).map(NodeIdx).filter(|n| !net.is_nated(*n)).collect();
        let (a, b) = (public[0], public[1]);
        assert_eq!(net.send(Time::ZERO, a, nated, 10), Fate::Blocked);
        let relay = net
            .nat_mut()
            .and_then(|n| n.reserve(nated, &[b]))
            .expect("b relays");
        assert_eq!(relay, b);
        let via = net.one_way_us(a, b) + net.one_way_us(b, nated);
        assert_eq!(
            net.send(Time::ZERO, a, nated, 10),
            Fate::Arrives(Time::from_micros(via)),
            "through the relay: two hops"
        );
        // Later (the receiver's queue keeps messages in order).
        let direct = net.one_way_us(a, nated);
        assert_eq!(
            net.send(Time::from_secs(1), a, nated, 10),
            Fate::Arrives(Time::from_micros(1_000_000 + direct)),
            "dialled back: direct"
        );
    }

    #[test]
    fn invalid_configs_are_named() {
        let c = NetworkConfig {
            loss_rate: 1.5,
            ..NetworkConfig::default()
        };
        assert_eq!(
            c.validate(),
            Err(NetworkConfigError::NotAProbability("loss_rate"))
        );
        assert_eq!(NetworkConfig::default().validate(), Ok(()));
    }
}
