//! A run's whole configuration: the master seed, the protocol, the network model
//! and churn. Printed in full at the start of every run.

use core::fmt;
use core::time::Duration;

use distroweb_protocol::{Config, ConfigError};
use serde::{Deserialize, Serialize};

use crate::dist::{Distribution, DistributionError};
use crate::network::{NetworkConfig, NetworkConfigError};
use crate::timeseries::TimeSeriesConfig;

/// What a node keeps when it leaves and later comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejoin {
    /// It restarts empty (same id, new RNG stream): routing table, provider records
    /// and announced keys are gone.
    LoseState,
    /// It was suspended: routing table, provider records and announced keys are as
    /// it left them, and it bootstraps again on return.
    KeepStore,
}

/// Nodes leave and come back: alternating session and down times, per node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChurnConfig {
    /// How long a node stays up each time it joins.
    pub session: Distribution,
    /// How long it stays away before rejoining.
    pub downtime: Distribution,
    /// What it keeps meanwhile.
    pub rejoin: Rejoin,
    /// Bootstrap peers a rejoining node is given (random established nodes).
    pub rejoin_seeds: usize,
}

impl Default for ChurnConfig {
    fn default() -> Self {
        ChurnConfig {
            session: Distribution::weibull_with_median(0.5, 3_600.0),
            downtime: Distribution::weibull_with_median(0.5, 3_600.0),
            rejoin: Rejoin::LoseState,
            rejoin_seeds: 3,
        }
    }
}

/// Everything that determines a run, with the seed that drives all of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// The master seed; every random stream derives from it.
    pub seed: u64,
    /// Node slots; node indices run from 0 to `nodes - 1`.
    pub nodes: u32,
    /// The protocol configuration every node runs.
    pub protocol: Config,
    /// The network model.
    pub network: NetworkConfig,
    /// Churn, if any; without it a node that joined stays.
    pub churn: Option<ChurnConfig>,
    /// A joining node's bootstrap peers are picked among nodes up at least this long
    /// (when there are any), as a real seed list names established peers.
    pub seed_min_age: Duration,
    /// Progress check: more events than this at one virtual instant is a bug (a
    /// timer that fires forever), and the run panics with its reproduce command.
    pub max_events_per_instant: u64,
    /// Keep every node event for the caller ([`crate::Sim::take_events`]); off by
    /// default, since metrics are tallied anyway.
    pub keep_events: bool,
    /// Call `Node::check_invariants` after every drain, in release builds too
    /// (debug builds check inside `protocol::drain` anyway). The test harness
    /// turns it on; off by default, since it costs time at scale.
    #[serde(default)]
    pub check_invariants: bool,
    /// Calendar time at virtual time zero, Unix seconds: every node's calendar
    /// is anchored to it when the node starts, as a live driver anchors it to
    /// the system clock, so that name records can expire. A constant (not the
    /// date of the run), so the same seed gives the same run on any day.
    #[serde(default = "default_calendar_epoch")]
    pub calendar_epoch: u64,
    /// A time series of the run, one row per interval ([`crate::timeseries`]);
    /// off by default. It only watches: on or off, the run is the same.
    #[serde(default)]
    pub timeseries: TimeSeriesConfig,
}

/// 2027-01-01T00:00:00Z: an arbitrary fixed date after every record format in use.
pub const DEFAULT_CALENDAR_EPOCH: u64 = 1_798_761_600;

fn default_calendar_epoch() -> u64 {
    DEFAULT_CALENDAR_EPOCH
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            nodes: 1_000,
            protocol: Config::default(),
            network: NetworkConfig::default(),
            churn: None,
            seed_min_age: Duration::from_secs(5),
            max_events_per_instant: 10_000_000,
            keep_events: false,
            check_invariants: false,
            calendar_epoch: DEFAULT_CALENDAR_EPOCH,
            timeseries: TimeSeriesConfig::default(),
        }
    }
}

/// Why a simulator configuration is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimConfigError {
    /// The protocol configuration is invalid.
    #[error("invalid protocol configuration")]
    Protocol(#[from] ConfigError),
    /// The network model is invalid.
    #[error("invalid network model")]
    Network(#[from] NetworkConfigError),
    /// A churn distribution is invalid.
    #[error("invalid churn distribution")]
    Churn(#[from] DistributionError),
    /// No node slots.
    #[error("`nodes` must be at least 1")]
    NoNodes,
    /// A time series with a zero interval or no room for rows.
    #[error("`timeseries.interval` must be at least 1 µs and `timeseries.max_rows` at least 1")]
    TimeSeries,
}

impl SimConfig {
    /// Checks the whole configuration.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        if self.nodes == 0 {
            return Err(SimConfigError::NoNodes);
        }
        self.protocol.validate()?;
        self.network.validate()?;
        if !self.timeseries.is_valid() {
            return Err(SimConfigError::TimeSeries);
        }
        if let Some(c) = &self.churn {
            c.session.validate()?;
            c.downtime.validate()?;
        }
        Ok(())
    }
}

impl fmt::Display for SimConfig {
    /// One line, `seed=` first, then every parameter by name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = one_line_debug(self);
        write!(f, "seed={} nodes={} config={json}", self.seed, self.nodes)
    }
}

/// `Debug` output squeezed onto one line: it names every field.
fn one_line_debug(c: &SimConfig) -> String {
    format!("{c:?}")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
