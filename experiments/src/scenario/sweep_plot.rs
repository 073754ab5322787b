//! A sweep's declared plot: `[plot]` in a scenario draws two columns of the
//! sweep's combined CSV against each other into `<name>.svg` beside it.
//!
//! ```toml
//! [plot]
//! x = "maintenance_bytes_per_node_s"   # any numeric column: an axis or the experiment's
//! y = "latency_ms_p50"
//! series = "protocol.dht.request_timeout"   # optional: one colour per value
//! label = "protocol.dht.refresh_interval"   # optional: written beside each point (or a list)
//! hull = "lower"                       # optional: the lower-left convex hull (PVC frontier)
//! label_on = "frontier"                # optional: label only the hull's points ("all")
//! x_log = true                         # optional: log axes
//! title = "Cost against latency"       # optional
//!
//! [[plot.reference]]                   # optional, repeatable: a published curve
//! label = "Li et al. 2005, Kademlia (approximate)"
//! points = [[10, 450]]
//! ```
//!
//! The table is checked with the rest of the scenario, before anything runs:
//! unknown keys, columns the sweep will not write and text columns on a
//! numeric axis are refused with the file, the line and the key. The plot is
//! drawn from the CSV file itself, so `experiment merge` draws the same bytes
//! as a run of the whole sweep.

use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use toml::Value;

use super::error::{suggest, Problem};
use crate::error::ExperimentError;
use crate::plot::{draw_legend, plot_error, PALETTE};

/// The keys `[plot]` may have.
const KEYS: &[&str] = &[
    "x",
    "y",
    "series",
    "label",
    "label_on",
    "hull",
    "x_log",
    "y_log",
    "title",
    "reference",
];

/// The keys of one `[[plot.reference]]`.
const REFERENCE_KEYS: &[&str] = &["label", "points"];

/// At most this many reference curves, and points in each: a plot is read by
/// a person, and the file must stay small.
pub const MAX_REFERENCES: usize = 16;
/// At most this many points in one reference curve.
pub const MAX_REFERENCE_POINTS: usize = 1_000;
/// At most this many characters in a title or a label.
pub const MAX_TEXT: usize = 200;
/// At most this many series named in the legend (all are drawn).
pub const MAX_SERIES: usize = 64;
/// At most this many columns in one point's label.
pub const MAX_LABEL_COLUMNS: usize = 4;

/// Whether to draw the frontier through the points.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Hull {
    /// No frontier.
    #[default]
    None,
    /// The lower-left convex hull: from the point of least x to the point of
    /// least y, every point on it not beaten in both x and y by a mix of two
    /// others (Li et al.'s cost–performance frontier, when both are costs).
    Lower,
}

/// Which points are labelled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabelOn {
    /// Every point.
    #[default]
    All,
    /// The points on the frontier (`hull`), which a crowded plot keeps readable.
    Frontier,
}

/// A published curve drawn for comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Its legend entry: say where it comes from, and if it is read off a figure.
    pub label: String,
    /// Its points, `(x, y)`, in the plot's units, drawn joined in this order.
    pub points: Vec<(f64, f64)>,
}

/// A checked `[plot]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepPlot {
    /// The column on the x axis.
    pub x: String,
    /// The column on the y axis.
    pub y: String,
    /// The column whose values colour the points, if any.
    pub series: Option<String>,
    /// The columns whose values are written beside each point, joined by `/`.
    pub label: Vec<String>,
    /// Which points get a label: all, or only those on the frontier.
    #[serde(default)]
    pub label_on: LabelOn,
    /// The frontier to draw.
    pub hull: Hull,
    /// Log scale on x.
    pub x_log: bool,
    /// Log scale on y.
    pub y_log: bool,
    /// The caption; default "`y` against `x`".
    pub title: Option<String>,
    /// Published curves.
    pub references: Vec<Reference>,
}

/// The columns an experiment's CSV has: those that hold numbers and those
/// that hold text. Checked against the `--quick` snapshots by a test, so a
/// new column that is not listed here fails it.
const COLUMNS: &[(&str, &[&str], &[&str])] = &[
    (
        "hops",
        &[
            "nodes",
            "lookups",
            "success_rate",
            "hops_mean",
            "hops_p50",
            "hops_p99",
            "latency_ms_p50",
            "latency_ms_p99",
            "messages_per_lookup",
            "log2_n",
        ],
        &["strategy", "metric"],
    ),
    (
        "churn",
        &[
            "nodes",
            "session_median_s",
            "session_shape",
            "lookups",
            "success_rate",
            "latency_ms_p50",
            "latency_ms_p99",
            "maintenance_bytes_per_node_s",
            "content_availability",
        ],
        &[],
    ),
    (
        "flash_crowd",
        &[
            "requesters",
            "window_s",
            "content_bytes",
            "origin_upload_bytes",
            "origin_copies",
            "completion_s_p50",
            "completion_s_p99",
            "served_by_peers_frac",
            "success_rate",
        ],
        &["mode"],
    ),
    (
        "scale",
        &["nodes", "lookups", "events", "success_rate", "hops_mean"],
        &[],
    ),
    (
        "adversary",
        &[
            "nodes",
            "disjoint_paths",
            "k",
            "alpha",
            "adversary_percent",
            "adversaries",
            "grind_bits",
            "puzzle_bits",
            "closest_adversary_frac",
            "nearest_adversary_frac",
            "flood",
            "lookups",
            "finished",
            "success_rate",
            "fooled_rate",
            "failed_rate",
            "hops_mean",
            "latency_ms_p50",
            "latency_ms_p99",
            "requests_per_lookup",
            "table_adversary_frac",
            "forged",
            "honest_records_per_key",
            "adversary_records_per_key",
            "records_refused",
        ],
        &["lookup", "placement", "seeds"],
    ),
    (
        "update",
        &[
            "session_median_s",
            "nodes",
            "readers",
            "visit_s",
            "name_grace_ms",
            "resolutions",
            "resolution_success",
            "cold_resolution_ms_p50",
            "cold_resolution_ms_p90",
            "warm_resolution_ms_p50",
            "warm_resolution_ms_p90",
            "resolution_ms_p50",
            "resolution_ms_p90",
            "lookups",
            "lookup_success",
            "lookup_ms_p50",
            "lookup_ms_p90",
            "cold_over_lookup_p50",
            "all_over_lookup_p50",
            "readers_up_at_update",
            "update_s_p50",
            "update_s_p90",
            "update_s_p99",
            "updated_1s_frac",
            "updated_10s_frac",
            "updated_60s_frac",
            "updated_end_frac",
            "readers_up_60s",
            "updated_60s_of_up_frac",
            "stale_resolutions",
        ],
        &["churn"],
    ),
    (
        "nat",
        &[
            "nated_percent",
            "nodes",
            "nated_nodes",
            "lookups",
            "lookup_success",
            "lookup_ms_p50",
            "lookup_ms_p90",
            "announce_ms_p50",
            "announce_ms_p90",
            "public_fetches",
            "public_fetch_success",
            "public_fetch_ms_p50",
            "nated_fetches",
            "nated_fetch_success",
            "nated_fetch_ms_p50",
            "via_direct",
            "via_reversed",
            "via_punched",
            "via_relayed",
            "punches",
            "punch_success",
            "nat_blocked",
            "relayed_messages",
        ],
        &["mode"],
    ),
];

/// The numeric and the text columns of the experiment whose files are named
/// `output` (`flash_crowd`); `None` for an experiment not listed, whose
/// columns are then checked when its CSV is read.
pub fn columns(output: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    COLUMNS
        .iter()
        .find(|(name, _, _)| *name == output)
        .map(|(_, numeric, text)| (*numeric, *text))
}

/// A `[plot]` key that is wrong: the key as written (to find its line), as
/// shown to the reader, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wrong {
    /// The dotted key as indexed from the file (`plot.reference.1.points`).
    pub written: String,
    /// The key as the message names it (`plot.reference[1].points`).
    pub shown: String,
    /// What is wrong.
    pub problem: Problem,
}

fn wrong(written: &str, shown: &str, problem: Problem) -> Wrong {
    Wrong {
        written: written.into(),
        shown: shown.into(),
        problem,
    }
}

fn value(message: impl Into<String>) -> Problem {
    Problem::Value(message.into())
}

/// Reads and checks the `[plot]` table `table` of a sweep with `axes` (each
/// key with its values) of the experiment whose files are named `output`.
pub fn read(table: &Value, axes: &[(&str, &[Value])], output: &str) -> Result<SweepPlot, Wrong> {
    let Value::Table(t) = table else {
        return Err(wrong(
            "plot",
            "plot",
            Problem::Shape(format!("must be a table of {}", KEYS.join(", "))),
        ));
    };
    let valid: Vec<String> = KEYS.iter().map(|k| format!("plot.{k}")).collect();
    for key in t.keys() {
        if !KEYS.contains(&key.as_str()) {
            let path = format!("plot.{key}");
            return Err(wrong(
                &path,
                &path,
                Problem::UnknownKey {
                    suggestion: suggest(&path, valid.iter().map(String::as_str)),
                },
            ));
        }
    }
    let experiment = columns(output);
    let mut known: Vec<&str> = axes.iter().map(|(a, _)| *a).collect();
    if let Some((numeric, text)) = experiment {
        known.extend(numeric.iter().chain(text.iter()).copied());
    }
    // A column: named by the sweep or the experiment (when its columns are
    // listed); `numeric` if it is to be an axis of the plot.
    let check = |path: &str, name: &str, numeric: bool| -> Result<(), Wrong> {
        let axis = axes.iter().find(|(a, _)| *a == name);
        let listed = experiment.is_some_and(|(n, t)| n.contains(&name) || t.contains(&name));
        if axis.is_none() && experiment.is_some() && !listed {
            let near = suggest(name, known.iter().copied())
                .map(|s| format!("; did you mean {s:?}?"))
                .unwrap_or_default();
            return Err(wrong(
                path,
                path,
                value(format!(
                    "no column {name:?} in the sweep's CSV{near} (columns: {})",
                    known.join(", ")
                )),
            ));
        }
        if numeric {
            if let Some((_, values)) = axis {
                if !values
                    .iter()
                    .all(|v| matches!(v, Value::Integer(_) | Value::Float(_)))
                {
                    return Err(wrong(
                        path,
                        path,
                        value(format!("the axis {name:?} has values that are not numbers; plot it as `series` or `label`")),
                    ));
                }
            } else if experiment.is_some_and(|(_, t)| t.contains(&name)) {
                return Err(wrong(
                    path,
                    path,
                    value(format!(
                        "the column {name:?} holds text; plot it as `series` or `label`"
                    )),
                ));
            }
        }
        Ok(())
    };
    let column = |key: &str, numeric: bool| -> Result<Option<String>, Wrong> {
        let path = format!("plot.{key}");
        let Some(v) = t.get(key) else {
            return Ok(None);
        };
        let Value::String(name) = v else {
            return Err(wrong(
                &path,
                &path,
                value("must be a column name (a string)"),
            ));
        };
        check(&path, name, numeric)?;
        Ok(Some(name.clone()))
    };
    let x = column("x", true)?.ok_or_else(|| {
        wrong(
            "plot",
            "plot.x",
            Problem::Shape("missing: the column on the x axis".into()),
        )
    })?;
    let y = column("y", true)?.ok_or_else(|| {
        wrong(
            "plot",
            "plot.y",
            Problem::Shape("missing: the column on the y axis".into()),
        )
    })?;
    let series = column("series", false)?;
    let label = match t.get("label") {
        None => Vec::new(),
        Some(Value::String(_)) => column("label", false)?.into_iter().collect(),
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_LABEL_COLUMNS => {
            let mut names = Vec::new();
            for item in items {
                let Value::String(name) = item else {
                    return Err(wrong(
                        "plot.label",
                        "plot.label",
                        value("must be a column name or a list of them"),
                    ));
                };
                check("plot.label", name, false)?;
                names.push(name.clone());
            }
            names
        }
        Some(_) => {
            return Err(wrong(
                "plot.label",
                "plot.label",
                value(format!(
                    "must be a column name or a list of 1 to {MAX_LABEL_COLUMNS} of them"
                )),
            ))
        }
    };
    let label_on = match t.get("label_on") {
        None => LabelOn::All,
        Some(Value::String(s)) if s == "all" => LabelOn::All,
        Some(Value::String(s)) if s == "frontier" => LabelOn::Frontier,
        Some(_) => {
            return Err(wrong(
                "plot.label_on",
                "plot.label_on",
                value("must be \"all\" or \"frontier\""),
            ))
        }
    };
    let hull = match t.get("hull") {
        None => Hull::None,
        Some(Value::String(s)) if s == "lower" => Hull::Lower,
        Some(Value::String(s)) if s == "none" => Hull::None,
        Some(_) => {
            return Err(wrong(
                "plot.hull",
                "plot.hull",
                value("must be \"lower\" or \"none\""),
            ))
        }
    };
    if label_on == LabelOn::Frontier && hull == Hull::None {
        return Err(wrong(
            "plot.label_on",
            "plot.label_on",
            value("\"frontier\" labels the hull's points: set hull = \"lower\""),
        ));
    }
    let flag = |key: &str| -> Result<bool, Wrong> {
        let path = format!("plot.{key}");
        match t.get(key) {
            None => Ok(false),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(_) => Err(wrong(&path, &path, value("must be true or false"))),
        }
    };
    let (x_log, y_log) = (flag("x_log")?, flag("y_log")?);
    let text = |v: &Value, written: &str, shown: &str| -> Result<String, Wrong> {
        match v {
            Value::String(s) if s.chars().count() <= MAX_TEXT => Ok(s.clone()),
            Value::String(_) => Err(wrong(
                written,
                shown,
                value(format!("at most {MAX_TEXT} characters")),
            )),
            _ => Err(wrong(written, shown, value("must be a string"))),
        }
    };
    let title = t
        .get("title")
        .map(|v| text(v, "plot.title", "plot.title"))
        .transpose()?;
    let mut references = Vec::new();
    if let Some(r) = t.get("reference") {
        let Value::Array(items) = r else {
            return Err(wrong(
                "plot.reference",
                "plot.reference",
                Problem::Shape("write each curve as a [[plot.reference]] table".into()),
            ));
        };
        if items.len() > MAX_REFERENCES {
            return Err(wrong(
                "plot.reference",
                "plot.reference",
                value(format!("at most {MAX_REFERENCES} curves")),
            ));
        }
        for (i, item) in items.iter().enumerate() {
            references.push(reference(item, i, x_log, y_log)?);
        }
    }
    Ok(SweepPlot {
        x,
        y,
        series,
        label,
        label_on,
        hull,
        x_log,
        y_log,
        title,
        references,
    })
}

/// Reads the `i`th `[[plot.reference]]`.
fn reference(item: &Value, i: usize, x_log: bool, y_log: bool) -> Result<Reference, Wrong> {
    let base = format!("plot.reference.{i}");
    let shown = |key: &str| format!("plot.reference[{}].{key}", i + 1);
    let Value::Table(t) = item else {
        return Err(wrong(
            "plot.reference",
            &format!("plot.reference[{}]", i + 1),
            Problem::Shape("must be a table with label and points".into()),
        ));
    };
    for key in t.keys() {
        if !REFERENCE_KEYS.contains(&key.as_str()) {
            return Err(wrong(
                &format!("{base}.{key}"),
                &shown(key),
                Problem::UnknownKey {
                    suggestion: suggest(key, REFERENCE_KEYS.iter().copied()).map(|s| shown(&s)),
                },
            ));
        }
    }
    let label = match t.get("label") {
        Some(Value::String(s)) if s.chars().count() <= MAX_TEXT => s.clone(),
        Some(Value::String(_)) => {
            return Err(wrong(
                &format!("{base}.label"),
                &shown("label"),
                value(format!("at most {MAX_TEXT} characters")),
            ))
        }
        Some(_) => {
            return Err(wrong(
                &format!("{base}.label"),
                &shown("label"),
                value("must be a string"),
            ))
        }
        None => {
            return Err(wrong(
                &base,
                &shown("label"),
                Problem::Shape("missing: say where the curve comes from".into()),
            ))
        }
    };
    let bad = |message: String| wrong(&format!("{base}.points"), &shown("points"), value(message));
    let Some(Value::Array(raw)) = t.get("points") else {
        return Err(bad(
            "must be a list of [x, y] pairs, e.g. [[10, 450]]".into()
        ));
    };
    if raw.is_empty() || raw.len() > MAX_REFERENCE_POINTS {
        return Err(bad(format!("between 1 and {MAX_REFERENCE_POINTS} points")));
    }
    let number = |v: &Value| match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) if f.is_finite() => Some(*f),
        _ => None,
    };
    let mut points = Vec::with_capacity(raw.len());
    for (j, p) in raw.iter().enumerate() {
        let pair = match p {
            Value::Array(xy) if xy.len() == 2 => number(&xy[0]).zip(number(&xy[1])),
            _ => None,
        };
        let Some((x, y)) = pair else {
            return Err(bad(format!(
                "point {} is not a pair of finite numbers [x, y]",
                j + 1
            )));
        };
        if (x_log && x <= 0.0) || (y_log && y <= 0.0) {
            return Err(bad(format!(
                "point {} is not positive, and its axis is a log scale",
                j + 1
            )));
        }
        points.push((x, y));
    }
    Ok(Reference { label, points })
}

/// The points on the lower-left convex hull of `points`, by index, from the
/// one of least x (the lowest of those) to the one of least y (the leftmost
/// of those): Andrew's monotone chain, cut where the chain stops falling.
/// Points with a coordinate that is not finite are left out.
pub fn frontier(points: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].0.is_finite() && points[i].1.is_finite())
        .collect();
    order.sort_by(|&a, &b| {
        (points[a].0.total_cmp(&points[b].0))
            .then(points[a].1.total_cmp(&points[b].1))
            .then(a.cmp(&b))
    });
    let cross = |o: usize, a: usize, b: usize| {
        let (o, a, b) = (points[o], points[a], points[b]);
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    let mut hull: Vec<usize> = Vec::new();
    for i in order {
        // Of points with the same x only the lowest can be on the frontier.
        if hull.last().is_some_and(|&l| points[l].0 == points[i].0) {
            continue;
        }
        while hull.len() >= 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], i) <= 0.0 {
            hull.pop();
        }
        hull.push(i);
    }
    // Past the lowest point the hull rises again: more cost for no gain.
    let lowest = hull
        .iter()
        .enumerate()
        .min_by(|a, b| {
            points[*a.1]
                .1
                .total_cmp(&points[*b.1].1)
                .then(a.0.cmp(&b.0))
        })
        .map_or(0, |(k, _)| k);
    hull.truncate(lowest + 1);
    hull
}

/// One row of the CSV as the plot sees it.
struct Row {
    x: f64,
    y: f64,
    series: String,
    label: String,
}

/// Draws `spec` from the sweep's CSV at `csv` into `svg`; returns the
/// frontier's rows (0-based, counting data rows) when `spec.hull` asks for one.
/// A row whose x or y cell is empty (a figure the run could not measure) is
/// left out; any other cell that is not a number is an error.
pub fn draw(csv_path: &Path, svg: &Path, spec: &SweepPlot) -> Result<Vec<usize>, ExperimentError> {
    let usage = |m: String| ExperimentError::Usage(format!("{}: [plot]: {m}", csv_path.display()));
    let mut reader = csv::Reader::from_path(csv_path).map_err(|source| ExperimentError::Csv {
        path: csv_path.to_path_buf(),
        source,
    })?;
    let head = reader
        .headers()
        .map_err(|source| ExperimentError::Csv {
            path: csv_path.to_path_buf(),
            source,
        })?
        .clone();
    let index = |name: &str| {
        head.iter().position(|h| h == name).ok_or_else(|| {
            usage(format!(
                "no column {name:?} (columns: {})",
                head.iter().collect::<Vec<_>>().join(", ")
            ))
        })
    };
    let (xi, yi) = (index(&spec.x)?, index(&spec.y)?);
    let si = spec.series.as_deref().map(index).transpose()?;
    let li: Vec<usize> = spec
        .label
        .iter()
        .map(|l| index(l))
        .collect::<Result<_, _>>()?;
    // Row numbers of the CSV's data rows, kept for the frontier's report.
    let mut rows: Vec<(usize, Row)> = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|source| ExperimentError::Csv {
            path: csv_path.to_path_buf(),
            source,
        })?;
        let cell = |i: usize| record.get(i).unwrap_or("");
        let number = |i: usize, name: &str| -> Result<Option<f64>, ExperimentError> {
            let text = cell(i).trim();
            if text.is_empty() {
                return Ok(None);
            }
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(Some(v)),
                _ => Err(usage(format!(
                    "column {name:?}, row {}: {text:?} is not a number",
                    n + 1
                ))),
            }
        };
        let (Some(x), Some(y)) = (number(xi, &spec.x)?, number(yi, &spec.y)?) else {
            continue;
        };
        if (spec.x_log && x <= 0.0) || (spec.y_log && y <= 0.0) {
            return Err(usage(format!(
                "row {}: a value at or below 0 on a log axis",
                n + 1
            )));
        }
        rows.push((
            n,
            Row {
                x,
                y,
                series: si.map(|i| cell(i).to_owned()).unwrap_or_default(),
                label: li.iter().map(|&i| cell(i)).collect::<Vec<_>>().join("/"),
            },
        ));
    }
    let xy: Vec<(f64, f64)> = rows.iter().map(|(_, r)| (r.x, r.y)).collect();
    let hull: Vec<usize> = match spec.hull {
        Hull::None => Vec::new(),
        Hull::Lower => frontier(&xy),
    };
    let all = xy.iter().copied().chain(
        spec.references
            .iter()
            .flat_map(|r| r.points.iter().copied()),
    );
    let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in all {
        x_lo = x_lo.min(x);
        x_hi = x_hi.max(x);
        y_lo = y_lo.min(y);
        y_hi = y_hi.max(y);
    }
    if x_lo > x_hi {
        // Nothing to draw: an empty frame rather than no file.
        (x_lo, x_hi, y_lo, y_hi) = (1.0, 10.0, 1.0, 10.0);
    }
    let x_range = padded(x_lo, x_hi, spec.x_log);
    let y_range = padded(y_lo, y_hi, spec.y_log);
    let data = Data {
        rows: rows.iter().map(|(_, r)| r).collect(),
        hull: &hull,
    };
    let result = match (spec.x_log, spec.y_log) {
        (false, false) => chart(svg, spec, &data, x_range.0..x_range.1, y_range.0..y_range.1),
        (true, false) => chart(
            svg,
            spec,
            &data,
            (x_range.0..x_range.1).log_scale(),
            y_range.0..y_range.1,
        ),
        (false, true) => chart(
            svg,
            spec,
            &data,
            x_range.0..x_range.1,
            (y_range.0..y_range.1).log_scale(),
        ),
        (true, true) => chart(
            svg,
            spec,
            &data,
            (x_range.0..x_range.1).log_scale(),
            (y_range.0..y_range.1).log_scale(),
        ),
    };
    result.map_err(|m| plot_error(svg, m))?;
    Ok(hull.iter().map(|&k| rows[k].0).collect())
}

/// `lo..hi` widened so that no point sits on the frame: by a factor on a log
/// axis, by a share of the span (or of the value, if all are equal) otherwise.
fn padded(lo: f64, hi: f64, log: bool) -> (f64, f64) {
    if log {
        return (lo / 1.5, hi * 1.5);
    }
    let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) };
    let lo = lo - 0.08 * span;
    // A range that starts a little below 0 only because of the padding starts at 0.
    let lo = if lo < 0.0 && lo + 0.08 * span >= 0.0 {
        0.0
    } else {
        lo
    };
    (lo, hi + 0.12 * span)
}

/// A tick label with as few digits as its size needs.
fn tick(v: &f64) -> String {
    let a = v.abs();
    if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// What `chart` draws.
struct Data<'a> {
    rows: Vec<&'a Row>,
    /// Indices into `rows`.
    hull: &'a [usize],
}

/// Draws the chart on axes `x` and `y`; errors are plotters' messages.
fn chart<X, Y>(svg: &Path, spec: &SweepPlot, data: &Data<'_>, x: X, y: Y) -> Result<(), String>
where
    X: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    X::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
    Y::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let root = SVGBackend::new(svg, (1000, 650)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let title = spec
        .title
        .clone()
        .unwrap_or_else(|| format!("{} against {}", spec.y, spec.x));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(|x| e(&x))?;
    let scale = |log: bool| if log { " (log scale)" } else { "" };
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc(format!("{}{}", spec.x, scale(spec.x_log)))
        .y_desc(format!("{}{}", spec.y, scale(spec.y_log)))
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .draw()
        .map_err(|x| e(&x))?;
    // The series in order of first appearance in the CSV: the sweep's order.
    let mut names: Vec<&str> = Vec::new();
    for r in &data.rows {
        if !names.contains(&r.series.as_str()) {
            names.push(&r.series);
        }
    }
    let key = spec
        .series
        .as_deref()
        .map(|s| s.rsplit('.').next().unwrap_or(s));
    if !data.hull.is_empty() {
        let grey = RGBColor(90, 90, 90);
        let line: Vec<(f64, f64)> = data
            .hull
            .iter()
            .map(|&k| (data.rows[k].x, data.rows[k].y))
            .collect();
        chart
            .draw_series(LineSeries::new(line.clone(), grey.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label("frontier (lower-left convex hull)")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(2))
            });
        chart
            .draw_series(
                line.iter()
                    .map(|&p| Circle::new(p, 8, grey.stroke_width(1))),
            )
            .map_err(|x| e(&x))?;
    }
    for (i, name) in names.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points: Vec<(f64, f64)> = (data.rows.iter())
            .filter(|r| r.series == *name)
            .map(|r| (r.x, r.y))
            .collect();
        // After the colours run out, other markers: a triangle, then a cross.
        let shape = (i / PALETTE.len()) % 3;
        let drawn = match shape {
            0 => chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled()))),
            1 => chart
                .draw_series((points.iter()).map(|&p| TriangleMarker::new(p, 5, color.filled()))),
            _ => {
                chart.draw_series((points.iter()).map(|&p| Cross::new(p, 4, color.stroke_width(2))))
            }
        }
        .map_err(|x| e(&x))?;
        // Every series is drawn; the legend names the first MAX_SERIES.
        if let Some(key) = key.filter(|_| i < MAX_SERIES) {
            let anno = drawn.label(format!("{key} = {name}"));
            match shape {
                0 => anno.legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled())),
                1 => anno.legend(move |(x, y)| TriangleMarker::new((x + 10, y), 5, color.filled())),
                _ => anno.legend(move |(x, y)| Cross::new((x + 10, y), 4, color.stroke_width(2))),
            };
        }
    }
    if !spec.label.is_empty() {
        let labelled: Vec<&Row> = match spec.label_on {
            LabelOn::All => data.rows.clone(),
            LabelOn::Frontier => data.hull.iter().map(|&k| data.rows[k]).collect(),
        };
        chart
            .draw_series(labelled.iter().map(|r| {
                EmptyElement::at((r.x, r.y))
                    + Text::new(r.label.clone(), (7, -15), ("sans-serif", 12).into_font())
            }))
            .map_err(|x| e(&x))?;
    }
    for (i, reference) in spec.references.iter().enumerate() {
        // Black and greys, apart from the sweep's colours.
        let shade = [0u8, 110, 160][i % 3];
        let color = RGBColor(shade, shade, shade);
        let points = reference.points.clone();
        chart
            .draw_series(DashedLineSeries::new(
                points.clone(),
                6,
                4,
                color.stroke_width(1),
            ))
            .map_err(|x| e(&x))?;
        chart
            .draw_series(points.iter().map(|&p| {
                EmptyElement::at(p)
                    + Polygon::new(vec![(0, -6), (6, 0), (0, 6), (-6, 0)], color.filled())
            }))
            .map_err(|x| e(&x))?
            .label(reference.label.clone())
            .legend(move |(x, y)| {
                Polygon::new(
                    vec![(x + 10, y - 6), (x + 16, y), (x + 10, y + 6), (x + 4, y)],
                    color.filled(),
                )
            });
    }
    // Without a labelled element the legend would be an empty box.
    let labelled = !data.hull.is_empty()
        || (key.is_some() && !names.is_empty())
        || !spec.references.is_empty();
    if labelled {
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
