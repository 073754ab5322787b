//! Workloads: network growth, publications, lookups with uniform or Zipf key
//! popularity, and flash crowds, scheduled as actions from the workload stream.

use core::time::Duration;

use bytes::Bytes;
use distroweb_protocol::content::{prepare_file, FileError};
use distroweb_protocol::names::{NameKey, NameRecord};
use distroweb_protocol::{Id, Time};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use crate::action::Action;
use crate::addr::NodeIdx;
use crate::engine::Sim;
use crate::membership::Seeds;
use crate::seed::{below, content_key, name_secret, stream_rng, unit_open, SimRng, Stream};

/// Which keys lookups ask for.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Popularity {
    /// Every key equally often.
    Uniform,
    /// Key of rank `r` (from 1) asked with weight `1 / r^exponent`.
    Zipf {
        /// `s`: 0 is uniform, around 1 is typical of web content.
        exponent: f64,
    },
}

/// Draws key ranks from a [`Popularity`] by inverse CDF over a cumulative table.
#[derive(Clone, Debug)]
pub struct KeySampler {
    /// Cumulative weights; empty for uniform.
    cumulative: Vec<f64>,
    keys: u32,
}

impl KeySampler {
    /// A sampler over ranks `0..keys`.
    pub fn new(popularity: Popularity, keys: u32) -> Self {
        let cumulative = match popularity {
            Popularity::Uniform => Vec::new(),
            Popularity::Zipf { exponent } => {
                let mut total = 0.0;
                (1..=keys)
                    .map(|r| {
                        total += 1.0 / f64::from(r).powf(exponent);
                        total
                    })
                    .collect()
            }
        };
        KeySampler { cumulative, keys }
    }

    /// One rank in `0..keys` (0 is the most popular).
    pub fn sample(&self, rng: &mut SimRng) -> u32 {
        match self.cumulative.last() {
            None => below(rng, u64::from(self.keys.max(1))) as u32,
            Some(total) => {
                let x = unit_open(rng) * total;
                self.cumulative.partition_point(|c| *c < x) as u32
            }
        }
        .min(self.keys.saturating_sub(1))
    }
}

/// Who issues the lookups of [`Workload::lookups`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Askers {
    /// This many lookups, each by a random node.
    Random(u32),
    /// One lookup by every node.
    EveryNode,
}

/// A span of virtual time over which actions are spread uniformly at random.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The earliest instant.
    pub start: Time,
    /// How long it lasts; actions fall in `[start, start + length)`.
    pub length: Duration,
}

impl Window {
    /// The window `[start, start + length)`.
    pub fn new(start: Time, length: Duration) -> Self {
        Window { start, length }
    }

    /// When it ends.
    pub fn end(&self) -> Time {
        self.start + self.length
    }
}

/// Plans a run's actions from the workload stream of the master seed.
#[derive(Debug)]
pub struct Workload {
    rng: SimRng,
    seed: u64,
}

impl Workload {
    /// A planner for `sim`'s seed.
    pub fn new(sim: &Sim) -> Self {
        let seed = sim.config().seed;
        Workload {
            rng: stream_rng(seed, Stream::Workload),
            seed,
        }
    }

    /// Nodes `0..nodes` join one after another, `interval` apart from `start`;
    /// node 0 starts alone, every other one bootstraps through `seeds` random
    /// established nodes. Returns when the last one joins.
    pub fn grow(
        &mut self,
        sim: &mut Sim,
        nodes: u32,
        start: Time,
        interval: Duration,
        seeds: usize,
    ) -> Time {
        let mut at = start;
        for i in 0..nodes.min(sim.len() as u32) {
            at = start + interval * i;
            let seeds = if i == 0 {
                Seeds::Alone
            } else {
                Seeds::Established(seeds)
            };
            sim.schedule(
                at,
                Action::Join {
                    node: NodeIdx(i),
                    seeds,
                },
            );
        }
        at
    }

    /// The `n`-th content key of this run.
    pub fn key(&self, n: u32) -> Id {
        content_key(self.seed, n)
    }

    /// A random node among `0..nodes`.
    pub fn node(&mut self, nodes: u32) -> NodeIdx {
        NodeIdx(below(&mut self.rng, u64::from(nodes.max(1))) as u32)
    }

    /// A random instant in the window.
    pub fn instant(&mut self, window: Window) -> Time {
        let w = u64::try_from(window.length.as_micros()).unwrap_or(u64::MAX);
        window.start + Duration::from_micros(below(&mut self.rng, w.max(1)))
    }

    /// Keys `0..keys` are each announced once by a random node among `0..nodes`,
    /// at random times within the window. Returns the keys.
    pub fn publish(&mut self, sim: &mut Sim, keys: u32, nodes: u32, window: Window) -> Vec<Id> {
        (0..keys)
            .map(|n| {
                let key = self.key(n);
                let node = self.node(nodes);
                let at = self.instant(window);
                sim.schedule(at, Action::Announce { node, key });
                key
            })
            .collect()
    }

    /// Provider lookups by `askers` among nodes `0..nodes`, for keys drawn by
    /// `popularity` from `keys` (most popular first), at random times in the window.
    pub fn lookups(
        &mut self,
        sim: &mut Sim,
        keys: &[Id],
        askers: Askers,
        nodes: u32,
        popularity: Popularity,
        window: Window,
    ) {
        if keys.is_empty() {
            return;
        }
        let sampler = KeySampler::new(popularity, keys.len() as u32);
        let count = match askers {
            Askers::Random(count) => count,
            Askers::EveryNode => nodes,
        };
        for i in 0..count {
            let node = match askers {
                Askers::Random(_) => self.node(nodes),
                Askers::EveryNode => NodeIdx(i),
            };
            let key = keys[sampler.sample(&mut self.rng) as usize];
            let at = self.instant(window);
            sim.schedule(at, Action::FindProviders { node, key });
        }
    }

    /// A flash crowd: `requesters` distinct random nodes among `0..nodes` ask for
    /// `key` within the window. Content fetch arrives with the content issue; until
    /// then the crowd looks up providers.
    pub fn flash_crowd(
        &mut self,
        sim: &mut Sim,
        key: Id,
        requesters: u32,
        nodes: u32,
        window: Window,
    ) -> Vec<NodeIdx> {
        self.crowd(sim, requesters, nodes, None, window, |node| {
            Action::FindProviders { node, key }
        })
    }

    /// A fetching flash crowd: `requesters` distinct random nodes among `0..nodes`,
    /// never `except`, each fetch `root` at a random time within the window.
    pub fn fetch_crowd(
        &mut self,
        sim: &mut Sim,
        root: Id,
        requesters: u32,
        nodes: u32,
        except: Option<NodeIdx>,
        window: Window,
    ) -> Vec<NodeIdx> {
        self.crowd(sim, requesters, nodes, except, window, |node| {
            Action::Fetch { node, root }
        })
    }

    fn crowd(
        &mut self,
        sim: &mut Sim,
        requesters: u32,
        nodes: u32,
        except: Option<NodeIdx>,
        window: Window,
        action: impl Fn(NodeIdx) -> Action,
    ) -> Vec<NodeIdx> {
        let picked = self.distinct_nodes(requesters, nodes, except);
        for &n in &picked {
            let at = self.instant(window);
            sim.schedule(at, action(n));
        }
        picked
    }

    /// `count` distinct random nodes among `0..nodes`, never `except` (fewer
    /// if there are not that many), in the order drawn.
    pub fn distinct_nodes(
        &mut self,
        count: u32,
        nodes: u32,
        except: Option<NodeIdx>,
    ) -> Vec<NodeIdx> {
        // A partial Fisher–Yates shuffle picks distinct nodes.
        let mut pool: Vec<u32> = (0..nodes).filter(|n| Some(NodeIdx(*n)) != except).collect();
        let m = (count as usize).min(pool.len());
        for i in 0..m {
            let j = i + below(&mut self.rng, (pool.len() - i) as u64) as usize;
            pool.swap(i, j);
        }
        pool.truncate(m);
        pool.into_iter().map(NodeIdx).collect()
    }

    /// `len` random bytes from the workload stream: a file whose id no other run shares.
    pub fn content(&mut self, len: usize) -> Bytes {
        let mut v = vec![0u8; len];
        self.rng.fill_bytes(&mut v);
        Bytes::from(v)
    }

    /// `node` publishes `data` at `at`; returns the content id it will have (the
    /// file chunked with the run's `chunk_size`), computed now so that fetches can
    /// be scheduled before the publication runs.
    pub fn publish_file(
        &mut self,
        sim: &mut Sim,
        node: NodeIdx,
        at: Time,
        data: Bytes,
        media_type: &str,
    ) -> Result<Id, FileError> {
        let chunk = sim.config().protocol.transfer.chunk_size;
        let root = prepare_file(data.clone(), media_type, chunk)?.root;
        sim.schedule(
            at,
            Action::Publish {
                node,
                data,
                media_type: media_type.to_string(),
            },
        );
        Ok(root)
    }

    /// The `n`-th name of this run: the public key of a secret derived from
    /// the seed.
    pub fn name(&self, n: u32) -> NameKey {
        NameRecord::sign(&name_secret(self.seed, n), Id::ZERO, 0, 0).name
    }

    /// A record of the `n`-th name pointing at `root` with sequence `seq`,
    /// signed with the name's key, valid for `valid_for` (at most the
    /// protocol's 30 days) from calendar time at `at` on `sim`.
    pub fn name_record(
        &self,
        sim: &Sim,
        n: u32,
        root: Id,
        seq: u64,
        at: Time,
        valid_for: Duration,
    ) -> NameRecord {
        let unix = sim.config().calendar_epoch + at.as_micros() / 1_000_000;
        let expires = unix.saturating_add(valid_for.as_secs());
        NameRecord::sign(&name_secret(self.seed, n), root, seq, expires)
    }

    /// `node` publishes `record` at `at`.
    pub fn publish_name(&mut self, sim: &mut Sim, node: NodeIdx, at: Time, record: NameRecord) {
        sim.schedule(
            at,
            Action::PublishName {
                node,
                record: Box::new(record),
            },
        );
    }

    /// `node` resolves `name` at `at`.
    pub fn resolve_name(&mut self, sim: &mut Sim, node: NodeIdx, at: Time, name: NameKey) {
        sim.schedule(at, Action::ResolveName { node, name });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_favours_low_ranks_and_uniform_does_not() {
        let mut rng = stream_rng(5, Stream::Workload);
        let zipf = KeySampler::new(Popularity::Zipf { exponent: 1.0 }, 100);
        let mut counts = [0u32; 100];
        for _ in 0..100_000 {
            counts[zipf.sample(&mut rng) as usize] += 1;
        }
        // Rank 1 gets 1/H(100) ≈ 19.3 %, rank 2 half that.
        assert!((18_000..20_500).contains(&counts[0]), "{}", counts[0]);
        assert!((8_800..10_500).contains(&counts[1]), "{}", counts[1]);
        let uniform = KeySampler::new(Popularity::Uniform, 100);
        let mut counts = [0u32; 100];
        for _ in 0..100_000 {
            counts[uniform.sample(&mut rng) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..1_200).contains(c)));
    }
}
