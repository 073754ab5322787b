//! The JSON record written beside every CSV: seed, full configuration, crate
//! version, the command that made it, and each run's digest.

use std::collections::BTreeMap;

use distroweb_protocol::QueryKind;
use distroweb_sim::{EngineStats, Sim, SimConfig};
use serde::Serialize;

/// Identifies one simulation run of an experiment.
#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    /// Which point of the sweep.
    pub label: String,
    /// The run's master seed.
    pub seed: u64,
    /// Trace digest: equal digests mean identical runs.
    pub digest: String,
    /// Events processed.
    pub events: u64,
    /// Virtual time simulated, seconds.
    pub virtual_s: f64,
    /// Provider lookups that failed, by cause; `wrong provider` counts answers
    /// naming a peer that never announced the key.
    pub lookup_failures: BTreeMap<String, u64>,
}

impl RunRecord {
    /// The record of a finished run.
    pub fn of(sim: &Sim, label: String) -> Self {
        let stats: &EngineStats = sim.stats();
        let lookups = sim.metrics().kind(QueryKind::FindProviders);
        let mut lookup_failures: BTreeMap<String, u64> = lookups
            .failures
            .iter()
            .map(|(e, n)| (e.to_string(), *n))
            .collect();
        if lookups.wrong > 0 {
            lookup_failures.insert("wrong provider".into(), lookups.wrong);
        }
        RunRecord {
            lookup_failures,
            label,
            seed: sim.config().seed,
            digest: sim.digest(),
            events: stats.events(),
            virtual_s: sim.now().as_micros() as f64 / 1e6,
        }
    }
}

/// Everything needed to reproduce an experiment's output.
#[derive(Debug, Serialize)]
pub struct Record<'a, P: Serialize, S: Serialize> {
    /// The experiment's name.
    pub experiment: &'a str,
    /// The distroweb version that produced it.
    pub version: &'a str,
    /// The command line that reproduces it.
    pub command: &'a str,
    /// The experiment's own settings after defaults.
    pub plan: &'a P,
    /// The simulator configuration of the first point (the others differ only in
    /// what the plan sweeps).
    pub config: &'a SimConfig,
    /// The workload of the first point (`workload`, not `scenario`: a
    /// scenario run adds the resolved scenario file as `scenario`).
    pub workload: &'a S,
    /// Every run, with its digest.
    pub runs: Vec<RunRecord>,
}

impl<'a, P: Serialize, S: Serialize> Record<'a, P, S> {
    /// Collects a record.
    pub fn new(
        experiment: &'a str,
        command: &'a str,
        plan: &'a P,
        config: &'a SimConfig,
        workload: &'a S,
        runs: Vec<RunRecord>,
    ) -> Self {
        Record {
            experiment,
            version: env!("CARGO_PKG_VERSION"),
            command,
            plan,
            config,
            workload,
            runs,
        }
    }
}
