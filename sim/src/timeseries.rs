//! A run watched over time: per fixed interval of virtual time, the nodes up,
//! provider lookups issued, succeeded and failed with their latency
//! percentiles, messages and bytes sent per traffic class, content
//! availability and fetch completions.
//!
//! The engine fills a [`TimeSeries`] from what it sees anyway (commands it
//! runs, the protocol's `QueryFinished` and `FetchFinished` events, the
//! messages nodes hand to the network, joins and leaves), so switching it on
//! ([`TimeSeriesConfig::interval`]) changes nothing in the run: not one event,
//! not the trace digest. Everything is counted in integers (latency
//! percentiles come from an hdrhistogram of whole microseconds) and formatted
//! as fixed point, so a seed gives the same bytes on any machine and any
//! number of threads.
//!
//! Bounded: at most [`TimeSeriesConfig::max_rows`] intervals are kept (the
//! first ones); later intervals are only counted ([`TimeSeries::dropped`]).

use core::time::Duration;

use distroweb_protocol::{QueryError, Time};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::metrics::CLASSES;

/// Largest latency recorded exactly, µs (an hour); larger values saturate.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Rows kept by default: 65,536 (18 hours of 1-second intervals, 7.5 days of
/// 10-second ones), about 12 MiB at most.
pub const DEFAULT_MAX_ROWS: u32 = 1 << 16;

/// Whether and how finely a run records its time series.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeSeriesConfig {
    /// Length of one interval of virtual time; `None` (the default) records
    /// nothing. At least 1 µs.
    pub interval: Option<Duration>,
    /// Intervals kept at most (the first ones; later ones are counted in
    /// [`TimeSeries::dropped`] and not kept). At least 1; default
    /// [`DEFAULT_MAX_ROWS`].
    pub max_rows: u32,
}

impl Default for TimeSeriesConfig {
    fn default() -> Self {
        TimeSeriesConfig {
            interval: None,
            max_rows: DEFAULT_MAX_ROWS,
        }
    }
}

impl TimeSeriesConfig {
    /// A series of `interval`-long rows, with the default bound on rows.
    pub fn every(interval: Duration) -> Self {
        TimeSeriesConfig {
            interval: Some(interval),
            ..TimeSeriesConfig::default()
        }
    }

    /// Whether the configuration is usable: a non-zero interval (whole
    /// microseconds) if any, and room for at least one row.
    pub fn is_valid(&self) -> bool {
        self.max_rows >= 1 && self.interval.is_none_or(|d| d.as_micros() >= 1)
    }
}

/// Messages and bytes sent in one traffic class during one interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassTally {
    /// Messages nodes handed to the network (lost ones included).
    pub messages: u64,
    /// Their bytes (encoded length plus the per-message overhead).
    pub bytes: u64,
}

/// One interval of the series: counts of what happened in `[start, end)`,
/// and the state at `end`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    /// Start of the interval (inclusive).
    pub start: Time,
    /// End of the interval (exclusive); `start` plus the interval, except for
    /// a last row closed early by [`crate::Sim::finish_timeseries`].
    pub end: Time,
    /// Nodes up at `end`.
    pub up_nodes: u32,
    /// Provider lookups (`FindProviders` commands) a node accepted.
    pub lookups_issued: u64,
    /// Provider lookups that ended with a provider that really announced the
    /// key (as [`crate::Metrics`] counts success).
    pub lookups_succeeded: u64,
    /// Provider lookups that ended otherwise: an error, or only providers that
    /// never announced the key.
    pub lookups_failed: u64,
    /// Median start-to-finish time of the lookups that succeeded in the
    /// interval, µs (0 if none did).
    pub latency_us_p50: u64,
    /// 90th percentile, µs.
    pub latency_us_p90: u64,
    /// 99th percentile, µs.
    pub latency_us_p99: u64,
    /// Messages and bytes sent, per traffic class in
    /// [`crate::metrics::CLASS_NAMES`] order.
    pub traffic: [ClassTally; CLASSES],
    /// Keys some node announced so far (synthetic keys and content roots).
    pub content_keys: u32,
    /// Of those, keys with at least one live provider at `end`: a node that
    /// announced the key, is up, and still provides it (a node that lost its
    /// state on leaving no longer does).
    pub content_live_keys: u32,
    /// Content fetches that ended.
    pub fetches_finished: u64,
    /// Content fetches that ended with the whole content, verified.
    pub fetches_succeeded: u64,
}

/// The CSV columns of a [`Row`], in [`Row::csv_fields`] order.
pub const COLUMNS: [&str; 21] = [
    "start_s",
    "end_s",
    "up_nodes",
    "lookups_issued",
    "lookups_succeeded",
    "lookups_failed",
    "lookup_success_rate",
    "latency_ms_p50",
    "latency_ms_p90",
    "latency_ms_p99",
    "maintenance_messages",
    "maintenance_bytes",
    "lookup_messages",
    "lookup_bytes",
    "transfer_messages",
    "transfer_bytes",
    "content_keys",
    "content_live_keys",
    "content_availability",
    "fetches_finished",
    "fetches_succeeded",
];

impl Row {
    /// The row as CSV cells, one per [`COLUMNS`] entry: times in seconds,
    /// latencies in milliseconds to 0.1 ms, shares to four decimals (empty
    /// when nothing was counted), all from integer arithmetic.
    pub fn csv_fields(&self) -> Vec<String> {
        let mut out = vec![
            seconds(self.start),
            seconds(self.end),
            self.up_nodes.to_string(),
            self.lookups_issued.to_string(),
            self.lookups_succeeded.to_string(),
            self.lookups_failed.to_string(),
            share(self.lookups_succeeded, self.lookups_finished()),
            millis(self.latency_us_p50),
            millis(self.latency_us_p90),
            millis(self.latency_us_p99),
        ];
        for c in &self.traffic {
            out.push(c.messages.to_string());
            out.push(c.bytes.to_string());
        }
        out.push(self.content_keys.to_string());
        out.push(self.content_live_keys.to_string());
        out.push(share(
            u64::from(self.content_live_keys),
            u64::from(self.content_keys),
        ));
        out.push(self.fetches_finished.to_string());
        out.push(self.fetches_succeeded.to_string());
        debug_assert_eq!(out.len(), COLUMNS.len());
        out
    }

    /// Lookups that ended in the interval, successfully or not.
    pub fn lookups_finished(&self) -> u64 {
        self.lookups_succeeded + self.lookups_failed
    }
}

/// `us` as seconds, exact: whole seconds without a point, else up to six
/// decimals with trailing zeros dropped.
fn seconds(t: Time) -> String {
    let us = t.as_micros();
    let (s, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        return s.to_string();
    }
    let digits = format!("{frac:06}");
    format!("{s}.{}", digits.trim_end_matches('0'))
}

/// `us` as milliseconds to one decimal, rounded half up.
fn millis(us: u64) -> String {
    let tenths = us / 100 + u64::from(us % 100 >= 50);
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// `part / whole` to four decimals, rounded half up; empty if `whole` is 0.
fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        return String::new();
    }
    let (part, whole) = (u128::from(part), u128::from(whole));
    let scaled = (part * 20_000 / whole).div_ceil(2);
    let scaled = u64::try_from(scaled).unwrap_or(u64::MAX);
    format!("{}.{:04}", scaled / 10_000, scaled % 10_000)
}

/// The CSV header for rows labelled by `labels` columns first.
pub fn csv_header(labels: &[&str]) -> Vec<String> {
    labels
        .iter()
        .chain(COLUMNS.iter())
        .map(|s| (*s).to_owned())
        .collect()
}

/// The recorder: closed rows, and the counts of the interval still open.
#[derive(Clone, Debug)]
pub struct TimeSeries {
    interval_us: u64,
    max_rows: usize,
    rows: Vec<Row>,
    /// Intervals closed after `rows` was full.
    dropped: u64,
    /// The open interval's counts (its `start` set, `end` not yet).
    open: Row,
    /// Latencies of the open interval's successful lookups, µs.
    latency_us: Histogram<u64>,
}

impl TimeSeries {
    /// An empty series of `interval`-long rows from time zero, keeping at most
    /// `max_rows` rows; `None` if the configuration records nothing.
    pub fn new(config: &TimeSeriesConfig) -> Option<Self> {
        let interval_us = u64::try_from(config.interval?.as_micros()).unwrap_or(u64::MAX);
        Some(TimeSeries {
            interval_us: interval_us.max(1),
            max_rows: (config.max_rows as usize).max(1),
            rows: Vec::new(),
            dropped: 0,
            open: Row::default(),
            latency_us: Histogram::new_with_max(MAX_LATENCY_US, 3)
                .expect("constant bounds are valid"),
        })
    }

    /// The closed intervals, oldest first (at most `max_rows`). The interval
    /// holding the present is still open and not among them.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Intervals closed after the bound on rows was reached, and not kept.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Length of one interval.
    pub fn interval(&self) -> Duration {
        Duration::from_micros(self.interval_us)
    }

    /// When the open interval ends (and must be closed before anything at or
    /// after it is counted).
    pub fn next_boundary(&self) -> Time {
        Time::from_micros(self.open.start.as_micros().saturating_add(self.interval_us))
    }

    /// Closes every interval that ends at or before `now`, each with the
    /// state `state` gives (the same for all of them: nothing happened in
    /// between); the caller calls this before counting anything at `now`.
    pub(crate) fn roll(&mut self, now: Time, state: impl FnOnce() -> State) {
        if now < self.next_boundary() {
            return;
        }
        let state = state();
        // Intervals that end at or before `now`: the open one, then empty ones.
        let elapsed = now.as_micros() - self.open.start.as_micros();
        let mut due = elapsed / self.interval_us;
        while due > 0 && self.rows.len() < self.max_rows {
            let end = self.next_boundary();
            self.close(end, state);
            due -= 1;
        }
        if due > 0 {
            // Full: skip the rest in one step, counted.
            self.dropped += due;
            let start = self.open.start.as_micros() + due * self.interval_us;
            self.reset(Time::from_micros(start));
        }
        debug_assert!(self.open.start <= now && now < self.next_boundary());
        debug_assert!(self.rows.len() <= self.max_rows);
    }

    /// Closes the open interval early at `now` (a shorter last row), if it
    /// has begun; the next one starts at `now`.
    pub(crate) fn close_at(&mut self, now: Time, state: State) {
        if now > self.open.start && now < self.next_boundary() {
            if self.rows.len() < self.max_rows {
                self.close(now, state);
            } else {
                self.dropped += 1;
                self.reset(now);
            }
        }
    }

    fn close(&mut self, end: Time, state: State) {
        let mut row = core::mem::take(&mut self.open);
        row.end = end;
        row.up_nodes = state.up_nodes;
        row.content_keys = state.content_keys;
        row.content_live_keys = state.content_live_keys;
        if !self.latency_us.is_empty() {
            row.latency_us_p50 = self.latency_us.value_at_quantile(0.5);
            row.latency_us_p90 = self.latency_us.value_at_quantile(0.9);
            row.latency_us_p99 = self.latency_us.value_at_quantile(0.99);
        }
        self.rows.push(row);
        self.reset(end);
    }

    fn reset(&mut self, start: Time) {
        self.open = Row {
            start,
            ..Row::default()
        };
        self.latency_us.reset();
    }

    /// A provider lookup was issued now.
    pub(crate) fn lookup_issued(&mut self) {
        self.open.lookups_issued += 1;
    }

    /// A provider lookup ended now: `Ok(true)` if verified, with its latency.
    pub(crate) fn lookup_finished(&mut self, outcome: Result<bool, QueryError>, latency_us: u64) {
        if outcome == Ok(true) {
            self.open.lookups_succeeded += 1;
            self.latency_us.saturating_record(latency_us);
        } else {
            self.open.lookups_failed += 1;
        }
    }

    /// A message of traffic class slot `class` went out now.
    pub(crate) fn sent(&mut self, class: usize, bytes: u64) {
        if let Some(c) = self.open.traffic.get_mut(class) {
            c.messages += 1;
            c.bytes += bytes;
        }
    }

    /// A fetch ended now.
    pub(crate) fn fetch_finished(&mut self, ok: bool) {
        self.open.fetches_finished += 1;
        self.open.fetches_succeeded += u64::from(ok);
    }
}

/// What the simulator holds at an interval's end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) up_nodes: u32,
    pub(crate) content_keys: u32,
    pub(crate) content_live_keys: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, ChurnConfig, Distribution, NodeIdx, Rejoin, Sim, SimConfig, Workload};

    fn series(interval_s: u64, max_rows: u32) -> TimeSeries {
        TimeSeries::new(&TimeSeriesConfig {
            interval: Some(Duration::from_secs(interval_s)),
            max_rows,
        })
        .expect("on")
    }

    fn state(up: u32) -> impl FnOnce() -> State {
        move || State {
            up_nodes: up,
            content_keys: 4,
            content_live_keys: 3,
        }
    }

    #[test]
    fn off_by_default() {
        assert!(TimeSeries::new(&TimeSeriesConfig::default()).is_none());
        assert!(TimeSeriesConfig::default().is_valid());
        let zero = TimeSeriesConfig::every(Duration::ZERO);
        assert!(!zero.is_valid());
    }

    #[test]
    fn counts_land_in_the_interval_they_happen_in() {
        let mut ts = series(10, 100);
        ts.lookup_issued();
        ts.lookup_finished(Ok(true), 100_000);
        ts.lookup_finished(Ok(true), 300_000);
        ts.lookup_finished(Err(QueryError::Timeout), 2_000_000);
        ts.sent(1, 120);
        ts.fetch_finished(true);
        ts.roll(Time::from_secs(9), state(5));
        assert!(ts.rows().is_empty(), "the first interval is still open");
        // At exactly 10 s the first interval closes; what happens now counts in the next.
        ts.roll(Time::from_secs(10), state(7));
        ts.lookup_issued();
        // A jump over two boundaries closes the second interval and an empty third.
        ts.roll(Time::from_secs(35), state(8));
        let rows = ts.rows();
        assert_eq!(rows.len(), 3);
        let r = &rows[0];
        assert_eq!((r.start, r.end), (Time::ZERO, Time::from_secs(10)));
        assert_eq!((r.up_nodes, r.lookups_issued), (7, 1));
        assert_eq!((r.lookups_succeeded, r.lookups_failed), (2, 1));
        assert_eq!(r.latency_us_p50 / 1_000, 100);
        assert_eq!(r.latency_us_p99 / 1_000, 300);
        assert_eq!(
            r.traffic[1],
            ClassTally {
                messages: 1,
                bytes: 120
            }
        );
        assert_eq!((r.fetches_finished, r.fetches_succeeded), (1, 1));
        assert_eq!(rows[1].lookups_issued, 1);
        assert_eq!(rows[1].up_nodes, 8);
        assert_eq!(
            rows[2],
            Row {
                start: Time::from_secs(20),
                end: Time::from_secs(30),
                up_nodes: 8,
                content_keys: 4,
                content_live_keys: 3,
                ..Row::default()
            }
        );
        assert_eq!(rows[2].latency_us_p50, 0, "no success, no latency");
        assert_eq!(ts.next_boundary(), Time::from_secs(40));
    }

    #[test]
    fn the_bound_keeps_the_first_rows_and_counts_the_rest() {
        let mut ts = series(1, 3);
        ts.roll(Time::from_secs(2), state(1));
        assert_eq!((ts.rows().len(), ts.dropped()), (2, 0));
        ts.roll(Time::from_secs(1_000_000), state(2));
        assert_eq!((ts.rows().len(), ts.dropped()), (3, 999_997));
        assert_eq!(ts.next_boundary(), Time::from_secs(1_000_001));
        ts.close_at(Time::from_millis(1_000_000_500), State::default());
        assert_eq!((ts.rows().len(), ts.dropped()), (3, 999_998));
    }

    #[test]
    fn a_last_row_can_close_early() {
        let mut ts = series(10, 10);
        ts.close_at(Time::ZERO, State::default());
        assert!(ts.rows().is_empty(), "nothing has begun");
        ts.close_at(Time::from_millis(4_500), State::default());
        assert_eq!(ts.rows()[0].end, Time::from_millis(4_500));
        assert_eq!(ts.next_boundary(), Time::from_millis(14_500));
    }

    #[test]
    fn fields_are_fixed_point() {
        assert_eq!(seconds(Time::from_secs(60)), "60");
        assert_eq!(seconds(Time::from_micros(1_500_000)), "1.5");
        assert_eq!(seconds(Time::from_micros(7)), "0.000007");
        assert_eq!(millis(212_449), "212.4");
        assert_eq!(millis(212_450), "212.5");
        assert_eq!(millis(0), "0.0");
        assert_eq!(share(2, 3), "0.6667");
        assert_eq!(share(1, 3), "0.3333");
        assert_eq!(share(5, 5), "1.0000");
        assert_eq!(share(0, 0), "");
        let row = Row {
            end: Time::from_secs(10),
            lookups_succeeded: 1,
            lookups_failed: 3,
            ..Row::default()
        };
        let fields = row.csv_fields();
        assert_eq!(fields.len(), COLUMNS.len());
        assert_eq!(fields[6], "0.2500");
        assert_eq!(csv_header(&["median"]).len(), COLUMNS.len() + 1);
    }

    /// A small churned run with lookups and a fetch workload, its series.
    fn run(seed: u64, timeseries: TimeSeriesConfig) -> (Vec<Row>, String) {
        let config = SimConfig {
            seed,
            nodes: 60,
            churn: Some(ChurnConfig {
                session: Distribution::weibull_with_median(0.5, 60.0),
                downtime: Distribution::weibull_with_median(0.5, 60.0),
                rejoin: Rejoin::KeepStore,
                rejoin_seeds: 3,
            }),
            timeseries,
            ..SimConfig::default()
        };
        let mut sim = Sim::new(config).expect("valid");
        let mut w = Workload::new(&sim);
        let grown = w.grow(&mut sim, 60, Time::ZERO, Duration::from_millis(100), 3);
        sim.run_until(grown + Duration::from_secs(5));
        let now = sim.now();
        let keys: Vec<_> = (0..6).map(|n| w.key(n)).collect();
        for (i, key) in keys.iter().enumerate() {
            let node = NodeIdx(i as u32);
            sim.schedule(now, Action::Announce { node, key: *key });
        }
        for s in 0..120u64 {
            let node = w.node(60);
            let key = keys[w.node(6).index()];
            sim.schedule(
                now + Duration::from_secs(s),
                Action::FindProviders { node, key },
            );
        }
        sim.run_until(now + Duration::from_secs(150));
        sim.finish_timeseries();
        let rows = sim.timeseries().map_or(Vec::new(), |t| t.rows().to_vec());
        (rows, sim.digest())
    }

    #[test]
    fn one_seed_one_series_and_the_series_changes_nothing() {
        let every = || TimeSeriesConfig::every(Duration::from_secs(20));
        let (a, digest) = run(3, every());
        let (b, _) = run(3, every());
        assert_eq!(a, b);
        let lookups: u64 = a.iter().map(|r| r.lookups_finished()).sum();
        assert!(lookups > 60, "{a:?}");
        assert!(a.iter().any(|r| r.up_nodes > 0 && r.up_nodes < 60));
        assert!(a.iter().all(|r| r.content_keys <= 6));
        assert!(a.iter().any(|r| r.traffic[0].bytes > 0));
        // The same run without the series has the same trace.
        let (none, off) = run(3, TimeSeriesConfig::default());
        assert!(none.is_empty());
        assert_eq!(digest, off);
        let (c, _) = run(4, every());
        assert_ne!(a, c);
    }
}
