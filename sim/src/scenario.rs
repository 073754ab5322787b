//! The standard lookup scenario: grow a network, publish keys, look them up, settle.
//!
//! Shared by the scale and hops experiments and by the tests, so that all three
//! measure the same thing.

use core::time::Duration;

use distroweb_protocol::Time;
use serde::{Deserialize, Serialize};

use crate::config::{SimConfig, SimConfigError};
use crate::engine::Sim;
use crate::workload::{Askers, Popularity, Window, Workload};

/// Growth, publications and provider lookups, in that order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LookupScenario {
    /// Nodes that join (all of the simulator's slots unless fewer).
    pub nodes: u32,
    /// Time between two joins.
    pub join_interval: Duration,
    /// Bootstrap peers per join.
    pub join_seeds: usize,
    /// Quiet time after the last join, before publications.
    pub settle: Duration,
    /// Keys published, each by one random node.
    pub keys: u32,
    /// Publications are spread over this window.
    pub publish_window: Duration,
    /// Provider lookups; `None` means exactly one by every node.
    pub lookups: Option<u32>,
    /// Which keys lookups ask for.
    pub popularity: Popularity,
    /// Lookups are spread over this window (after publications end and settle).
    pub lookup_window: Duration,
    /// Time after the last lookup starts for the stragglers to finish (at least the
    /// protocol's query timeout, so that every lookup ends).
    pub tail: Duration,
}

impl LookupScenario {
    /// The scenario for `nodes` nodes with one lookup per node and a key for every
    /// tenth node; joins 10 ms apart, closer above 100,000 nodes so that growth
    /// always ends within 1,000 s, before the first bucket refreshes (an hour)
    /// would add maintenance traffic that smaller runs do not see.
    pub fn per_node(nodes: u32) -> Self {
        let join_interval = (Duration::from_secs(1_000) / nodes.max(1))
            .clamp(Duration::from_millis(1), Duration::from_millis(10));
        LookupScenario {
            nodes,
            join_interval,
            join_seeds: 3,
            settle: Duration::from_secs(30),
            keys: (nodes / 10).max(1),
            publish_window: Duration::from_secs(30),
            lookups: None,
            popularity: Popularity::Uniform,
            lookup_window: Duration::from_secs(60),
            tail: Duration::from_secs(65),
        }
    }

    /// Lookups this scenario issues.
    pub fn lookup_count(&self) -> u32 {
        self.lookups.unwrap_or(self.nodes)
    }

    /// Schedules everything on `sim`; returns the time by which all of it is over.
    pub fn schedule(&self, sim: &mut Sim) -> Time {
        let mut w = Workload::new(sim);
        let nodes = self.nodes.min(sim.len() as u32);
        let last_join = w.grow(sim, nodes, sim.now(), self.join_interval, self.join_seeds);
        let publish = last_join + self.settle;
        let keys = w.publish(
            sim,
            self.keys,
            nodes,
            Window::new(publish, self.publish_window),
        );
        let lookups = Window::new(
            publish + self.publish_window + self.settle,
            self.lookup_window,
        );
        let askers = match self.lookups {
            None => Askers::EveryNode,
            Some(count) => Askers::Random(count),
        };
        w.lookups(sim, &keys, askers, nodes, self.popularity, lookups);
        lookups.end() + self.tail
    }

    /// Builds a simulator for `config`, runs the scenario to its end, and returns
    /// it; `progress` hears the fraction of virtual time done, now and then.
    pub fn run(&self, config: SimConfig, progress: impl FnMut(f64)) -> Result<Sim, SimConfigError> {
        Ok(self.run_on(Sim::new(config)?, progress))
    }

    /// Runs the scenario on a prepared simulator (e.g. one with behaviour wrappers
    /// or a reproduce command set) to its end.
    pub fn run_on(&self, mut sim: Sim, mut progress: impl FnMut(f64)) -> Sim {
        let end = self.schedule(&mut sim);
        let step = Duration::from_secs(1);
        while sim.now() < end {
            let next = (sim.now() + step).min(end);
            sim.run_until(next);
            progress(sim.now().as_micros() as f64 / end.as_micros().max(1) as f64);
        }
        sim
    }
}
