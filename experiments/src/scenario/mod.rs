//! Scenario files: `distroweb experiment run FILE.toml` runs a built-in
//! measurement with its options, protocol parameters and simulator settings
//! read from a TOML file, and sweeps any of them.
//!
//! ```toml
//! experiment = "churn"          # which built-in measurement
//! seed = 1
//!
//! [args]                        # the experiment's own options (its --flags)
//! nodes = 2000
//! session_median_min = [1.4, 15]
//!
//! [protocol.dht]                # any field of distroweb_protocol::Config
//! request_timeout = "1s"
//!
//! [sim.churn]                   # any field of distroweb_sim::SimConfig
//! rejoin = "LoseState"
//!
//! [quick.args]                  # what --quick changes
//! nodes = 300
//!
//! [sweep]                       # each point is a run; one CSV with a column per axis
//! mode = "cross"                # or "zip"
//! "protocol.dht.alpha" = [1, 3]
//!
//! [plot]                        # optional: two columns of the sweep's CSV, drawn
//! x = "maintenance_bytes_per_node_s"
//! y = "latency_ms_p50"
//! series = "protocol.dht.alpha"
//! ```
//!
//! Everything is checked before anything runs: every key against the real
//! configuration types (a new field of `Config` is a key with no change
//! here), every value by serde and `Config::validate` on every point's
//! configuration, and each error names the file, the line and the key.
//! Protocol and simulator settings are applied after the experiment has built
//! its configuration, so they win over its choices; a key the experiment itself
//! varies between its points is refused (set its option instead).

/// What is wrong with a scenario, and where.
pub mod error;
/// Settable keys and how values with units are read.
pub mod keys;
/// Changes to an experiment's simulator configuration.
pub mod overrides;
/// The glue to the built-in experiments.
mod registry;
/// A sweep's declared plot (`[plot]`).
pub mod sweep_plot;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use toml::Value;

pub use error::{Place, Problem, ScenarioError};
pub use overrides::Overrides;

use crate::builtin::{Entry, Parsed};
use crate::cli::{BuiltInArgs, Common};
use crate::error::ExperimentError;
use crate::runner;

/// `distroweb experiment run FILE [--set key.path=value]... [--seed S] [--out DIR] [--quick]`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The scenario: a TOML file, or the JSON record a scenario run wrote (its
    /// `scenario` is run again).
    pub file: PathBuf,
    /// Sets one key, over the file: `--set protocol.dht.k=16`,
    /// `--set args.nodes=500`, `--set 'protocol.dht.request_timeout="1s"'`
    /// (a value that is not TOML is read as a string). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// The master seed; default the file's `seed`, else 1.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Directory for the results.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Runs the experiment's quick variant, with the file's `[quick]` settings.
    #[arg(long)]
    pub quick: bool,
    /// Runs only share I of N of a sweep's points (points I, I + N, I + 2N, …,
    /// counting from 1), for `distroweb experiment merge` to combine.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
}

/// `--shard I/N`: the points whose index (from 0) is I - 1 modulo N.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// Which share, from 1.
    pub index: usize,
    /// Of how many.
    pub count: usize,
}

impl Shard {
    /// True if point `i` (from 0) is this shard's.
    pub fn has(&self, i: usize) -> bool {
        i % self.count == self.index - 1
    }
}

impl core::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?}: write I/N with 1 <= I <= N, e.g. 2/3");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// `distroweb experiment merge DIR... [--out DIR]`.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// The `--out` directories of the shards of one sweep.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where the merged results go: the files one run of the whole sweep writes.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
}

impl RunArgs {
    /// The command line that reproduces this invocation's results; without
    /// `--shard` and `--out`, which change where results go but not what they
    /// are, so that every shard of a sweep records the same command.
    pub fn command_line(&self) -> String {
        let mut s = format!("distroweb experiment run {}", self.file.display());
        if let Some(seed) = self.seed {
            s += &format!(" --seed {seed}");
        }
        if self.quick {
            s += " --quick";
        }
        for set in &self.set {
            s += &format!(" --set {set}");
        }
        s
    }
}

/// Keys allowed at the top of a scenario.
const TOP: &[&str] = &[
    "experiment",
    "description",
    "seed",
    "quick",
    "args",
    "protocol",
    "sim",
    "sweep",
    "plot",
];

/// One key set to one value, and where that was written.
#[derive(Clone, Debug)]
struct Setting {
    /// `args.nodes`, `protocol.dht.k`, `sim.network.loss_rate`.
    path: String,
    value: Value,
    line: Option<usize>,
    from_set: bool,
}

/// One swept key.
#[derive(Clone, Debug)]
struct Axis {
    path: String,
    values: Vec<Value>,
    line: Option<usize>,
}

/// One run of a resolved scenario, checked and ready.
#[derive(Clone, Debug)]
pub struct Point {
    /// The experiment, with its options, seed, output directory and overrides.
    pub experiment: Box<dyn Parsed>,
    /// The value of each axis at this point, in axis order.
    pub values: Vec<Value>,
    /// This run's scenario, every setting resolved: a scenario file of its own.
    pub resolved: toml::Table,
}

/// A scenario read, resolved and checked: nothing has run yet.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The experiment's name (`churn`).
    pub experiment: String,
    /// The name of its result files (`flash_crowd`).
    pub output: &'static str,
    /// The swept keys, in file order; empty without a `[sweep]`.
    pub axes: Vec<String>,
    /// The runs, in output order.
    pub points: Vec<Point>,
    /// The whole scenario resolved (the sweep included).
    pub resolved: toml::Table,
    /// Where results go.
    pub out: PathBuf,
    /// The sweep's declared plot, if the scenario has a `[plot]`.
    pub plot: Option<sweep_plot::SweepPlot>,
}

/// Options from the command line that shape the scenario.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--set key=value`, in order.
    pub set: Vec<String>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--out`.
    pub out: PathBuf,
    /// `--quick`.
    pub quick: bool,
}

/// Reads `args.file`, checks everything, runs every point and writes the results.
pub fn run(args: &RunArgs) -> Result<(), ExperimentError> {
    let text = read(&args.file)?;
    let options = Options {
        set: args.set.clone(),
        seed: args.seed,
        out: args.out.clone(),
        quick: args.quick,
    };
    let plan = plan(&text, &args.file.display().to_string(), &options)?;
    match args.shard {
        None => execute(&plan, &args.command_line()),
        Some(shard) => execute_shard(&plan, &args.command_line(), shard),
    }
}

/// `distroweb experiment <name> [options]`: the built-in's shipped scenario,
/// with the options given on the command line over its `[args]`.
pub fn run_built_in(b: &BuiltInArgs) -> Result<(), ExperimentError> {
    let name = b.args.name();
    let entry = crate::built_in(name)
        .ok_or_else(|| ExperimentError::Usage(format!("no experiment {name:?}")))?;
    let set: Vec<&str> = b.given.iter().map(String::as_str).collect();
    run_shipped(entry, b.args.common(), &set, &b.command)
}

/// Runs `entry`'s shipped scenario with the shared options and `set` over it.
pub fn run_shipped(
    entry: &dyn Entry,
    common: &Common,
    set: &[&str],
    command: &str,
) -> Result<(), ExperimentError> {
    let options = Options {
        set: set.iter().map(|s| (*s).to_owned()).collect(),
        seed: Some(common.seed),
        out: common.out.clone(),
        quick: common.quick,
    };
    let file = format!("experiments/scenarios/{}.toml (built in)", entry.name());
    let plan = plan(entry.scenario(), &file, &options)?;
    execute(&plan, command)
}

/// The scenario text of `path`: the file itself, or the `scenario` of a JSON record.
pub fn read(path: &Path) -> Result<String, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if path.extension().is_none_or(|e| e != "json") {
        return Ok(text);
    }
    let invalid = |message: String| ScenarioError::Invalid {
        place: Box::new(Place {
            file: path.display().to_string(),
            line: None,
            key: Some("scenario".into()),
            from_set: false,
        }),
        problem: Problem::Shape(message),
    };
    let json: Json =
        serde_json::from_str(&text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
    let scenario = json.get("scenario").cloned().ok_or_else(|| {
        invalid("a JSON record written by a scenario run has a `scenario`".into())
    })?;
    let table: toml::Table =
        serde_json::from_value(scenario).map_err(|e| invalid(format!("not a scenario: {e}")))?;
    toml::to_string(&table).map_err(|e| invalid(format!("not a scenario: {e}")))
}

/// Reads, resolves and checks a scenario: every point's configuration is built
/// and validated, and nothing runs.
pub fn plan(text: &str, file: &str, options: &Options) -> Result<Plan, ScenarioError> {
    let reader = Reader::new(text, file)?;
    reader.plan(options)
}

/// The file being read, with the line of every key.
struct Reader {
    file: String,
    table: toml::Table,
    lines: BTreeMap<String, usize>,
    schema: Json,
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |before| {
        before.bytes().filter(|b| *b == b'\n').count() + 1
    })
}

fn index_lines(
    table: &toml::de::DeTable<'_>,
    prefix: &str,
    text: &str,
    out: &mut BTreeMap<String, usize>,
) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        out.entry(path.clone())
            .or_insert_with(|| line_of(text, key.span().start));
        match value.get_ref() {
            toml::de::DeValue::Table(inner) => index_lines(inner, &path, text, out),
            // Arrays of tables (`[[plot.reference]]`) by index: `plot.reference.0.label`.
            toml::de::DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let toml::de::DeValue::Table(inner) = item.get_ref() {
                        index_lines(inner, &format!("{path}.{i}"), text, out);
                    }
                }
            }
            _ => {}
        }
    }
}

impl Reader {
    fn new(text: &str, file: &str) -> Result<Self, ScenarioError> {
        let syntax = |e: toml::de::Error| ScenarioError::Invalid {
            place: Box::new(Place {
                file: file.into(),
                line: e.span().map(|s| line_of(text, s.start)),
                key: None,
                from_set: false,
            }),
            problem: Problem::Syntax(e.message().trim().to_owned()),
        };
        let spanned = toml::de::DeTable::parse(text).map_err(syntax)?;
        let mut lines = BTreeMap::new();
        index_lines(spanned.get_ref(), "", text, &mut lines);
        let table: toml::Table = toml::from_str(text).map_err(syntax)?;
        Ok(Reader {
            file: file.into(),
            table,
            lines,
            schema: keys::schema(),
        })
    }

    /// An error at the key `key` as written in the file (`sweep.args.nodes`),
    /// reported as `shown`.
    fn at(&self, written: &str, shown: &str, problem: Problem) -> ScenarioError {
        ScenarioError::Invalid {
            place: Box::new(Place {
                file: self.file.clone(),
                line: self.lines.get(written).copied(),
                key: Some(shown.into()),
                from_set: false,
            }),
            problem,
        }
    }

    fn at_setting(&self, s: &Setting, problem: Problem) -> ScenarioError {
        ScenarioError::Invalid {
            place: Box::new(Place {
                file: self.file.clone(),
                line: s.line,
                key: Some(s.path.clone()),
                from_set: s.from_set,
            }),
            problem,
        }
    }

    fn plan(&self, options: &Options) -> Result<Plan, ScenarioError> {
        for key in self.table.keys() {
            if !TOP.contains(&key.as_str()) {
                return Err(self.at(
                    key,
                    key,
                    Problem::UnknownKey {
                        suggestion: error::suggest(key, TOP.iter().copied()),
                    },
                ));
            }
        }
        let name = match self.table.get("experiment") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(self.at(
                    "experiment",
                    "experiment",
                    Problem::Value("must be a string".into()),
                ))
            }
            None => {
                return Err(ScenarioError::Invalid {
                    place: Box::new(Place {
                        file: self.file.clone(),
                        line: None,
                        key: Some("experiment".into()),
                        from_set: false,
                    }),
                    problem: Problem::Shape(format!(
                        "missing: name the measurement, one of {}",
                        registry::names().join(", ")
                    )),
                })
            }
        };
        if !registry::names().contains(&name.as_str()) {
            return Err(self.at(
                "experiment",
                "experiment",
                Problem::Value(format!(
                    "no experiment {name:?}{} (known: {})",
                    error::suggest(&name, registry::names())
                        .map(|s| format!("; did you mean {s:?}?"))
                        .unwrap_or_default(),
                    registry::names().join(", ")
                )),
            ));
        }
        let seed = match (options.seed, self.table.get("seed")) {
            (Some(seed), _) => seed,
            (None, None) => 1,
            (None, Some(Value::Integer(i))) => u64::try_from(*i).map_err(|_| {
                self.at("seed", "seed", Problem::Value("must be at least 0".into()))
            })?,
            (None, Some(_)) => {
                return Err(self.at("seed", "seed", Problem::Value("must be an integer".into())))
            }
        };
        let quick = options.quick
            || match self.table.get("quick") {
                Some(Value::Boolean(b)) => *b,
                Some(Value::Table(_)) | None => false,
                Some(_) => {
                    return Err(self.at(
                        "quick",
                        "quick",
                        Problem::Value("must be true, false or a table of quick settings".into()),
                    ))
                }
            };
        let arg_names = registry::arg_names(&name);
        let mut settings = Vec::new();
        for group in ["args", "protocol", "sim"] {
            if let Some(v) = self.table.get(group) {
                self.add(group, group, v, None, &arg_names, &mut settings)?;
            }
        }
        if quick {
            if let Some(Value::Table(q)) = self.table.get("quick") {
                for (key, v) in q {
                    let written = format!("quick.{key}");
                    if !["args", "protocol", "sim"].contains(&key.as_str()) {
                        return Err(self.at(
                            &written,
                            &written,
                            Problem::UnknownKey {
                                suggestion: error::suggest(
                                    &written,
                                    ["quick.args", "quick.protocol", "quick.sim"],
                                ),
                            },
                        ));
                    }
                    self.add(key, &written, v, None, &arg_names, &mut settings)?;
                }
            }
        }
        for set in &options.set {
            settings.extend(self.parse_set(set, &arg_names)?);
        }
        let (axes, zip) = self.axes(&arg_names)?;
        let combos = self.combinations(&axes, zip)?;
        let output = registry::output_name(&name);
        let mut points = Vec::new();
        for (i, combo) in combos.iter().enumerate() {
            let mut all = settings.clone();
            for (axis, value) in axes.iter().zip(combo) {
                all.push(Setting {
                    path: axis.path.clone(),
                    value: value.clone(),
                    line: axis.line,
                    from_set: false,
                });
            }
            let out = if axes.is_empty() {
                options.out.clone()
            } else {
                options.out.join(point_dir(output, i))
            };
            let experiment = self.experiment(&name, seed, quick, &out, &all)?;
            points.push(Point {
                experiment,
                values: combo.clone(),
                resolved: resolved(&name, seed, quick, &all),
            });
        }
        let plot = self.sweep_plot(&axes, output)?;
        let mut whole = resolved(&name, seed, quick, &settings);
        if let (Some(_), Some(table)) = (&plot, self.table.get("plot")) {
            whole.insert("plot".into(), table.clone());
        }
        if !axes.is_empty() {
            let mut sweep = toml::Table::new();
            sweep.insert(
                "mode".into(),
                Value::String(if zip { "zip" } else { "cross" }.into()),
            );
            for axis in &axes {
                sweep.insert(axis.path.clone(), Value::Array(axis.values.clone()));
            }
            whole.insert("sweep".into(), Value::Table(sweep));
        }
        Ok(Plan {
            experiment: name,
            output,
            axes: axes.iter().map(|a| a.path.clone()).collect(),
            points,
            resolved: whole,
            out: options.out.clone(),
            plot,
        })
    }

    /// The `[plot]` table, checked against the sweep's axes and the
    /// experiment's columns; a plot needs a sweep.
    fn sweep_plot(
        &self,
        axes: &[Axis],
        output: &str,
    ) -> Result<Option<sweep_plot::SweepPlot>, ScenarioError> {
        let Some(table) = self.table.get("plot") else {
            return Ok(None);
        };
        if axes.is_empty() {
            return Err(self.at(
                "plot",
                "plot",
                Problem::Shape(
                    "draws a sweep's combined CSV: add a [sweep] (a single run has its experiment's own plot)"
                        .into(),
                ),
            ));
        }
        let axes: Vec<(&str, &[Value])> = axes
            .iter()
            .map(|a| (a.path.as_str(), a.values.as_slice()))
            .collect();
        sweep_plot::read(table, &axes, output)
            .map(Some)
            .map_err(|w| self.at(&w.written, &w.shown, w.problem))
    }

    /// Adds the setting `path = value` (a table adds each of its keys), after
    /// checking the key; `written` is the key as written in the file.
    fn add(
        &self,
        path: &str,
        written: &str,
        value: &Value,
        set: Option<&str>,
        arg_names: &[String],
        out: &mut Vec<Setting>,
    ) -> Result<(), ScenarioError> {
        let unknown = |valid: Vec<String>| {
            let problem = Problem::UnknownKey {
                suggestion: error::suggest(path, valid.iter().map(String::as_str)),
            };
            match set {
                Some(_) => self.set_error(path, problem),
                None => self.at(written, path, problem),
            }
        };
        let table_needed = |what: &str| {
            let problem = Problem::Shape(format!("is a table of {what}: set its keys"));
            match set {
                Some(_) => self.set_error(path, problem),
                None => self.at(written, path, problem),
            }
        };
        let segments: Vec<&str> = path.split('.').collect();
        let line = match set {
            Some(_) => None,
            None => self.lines.get(written).copied(),
        };
        let leaf = |out: &mut Vec<Setting>| {
            out.push(Setting {
                path: path.into(),
                value: value.clone(),
                line,
                from_set: set.is_some(),
            });
        };
        match segments.as_slice() {
            ["args"] | ["protocol"] | ["sim"] => {
                let Value::Table(t) = value else {
                    return Err(table_needed("settings"));
                };
                for (k, v) in t {
                    self.add(
                        &format!("{path}.{k}"),
                        &format!("{written}.{k}"),
                        v,
                        set,
                        arg_names,
                        out,
                    )?;
                }
                Ok(())
            }
            ["args", name] => {
                if !arg_names.iter().any(|a| a == name) {
                    return Err(unknown(
                        arg_names.iter().map(|a| format!("args.{a}")).collect(),
                    ));
                }
                leaf(out);
                Ok(())
            }
            ["sim", first, ..] | ["protocol", first, ..] => {
                if segments[0] == "sim" {
                    if let Some((_, instead)) =
                        keys::OWNED_BY_OTHERS.iter().find(|(k, _)| k == first)
                    {
                        let problem = Problem::Shape(format!("not set here: use {instead}"));
                        return Err(match set {
                            Some(_) => self.set_error(path, problem),
                            None => self.at(written, path, problem),
                        });
                    }
                }
                let mut schema = if segments[0] == "sim" {
                    &self.schema
                } else {
                    self.schema.get("protocol").unwrap_or(&Json::Null)
                };
                for (i, segment) in segments.iter().enumerate().skip(1) {
                    match schema.get(segment) {
                        Some(inner) => schema = inner,
                        None => {
                            let mut valid = Vec::new();
                            for group in ["protocol", "sim"] {
                                let root = if group == "sim" {
                                    &self.schema
                                } else {
                                    self.schema.get("protocol").unwrap_or(&Json::Null)
                                };
                                keys::keys(group, root, &mut valid);
                            }
                            return Err(unknown(valid));
                        }
                    }
                    if keys::is_whole(schema) && i + 1 < segments.len() {
                        return Err(unknown(Vec::new()));
                    }
                }
                if keys::is_whole(schema) {
                    leaf(out);
                    return Ok(());
                }
                let Value::Table(t) = value else {
                    return Err(table_needed("settings"));
                };
                for (k, v) in t {
                    self.add(
                        &format!("{path}.{k}"),
                        &format!("{written}.{k}"),
                        v,
                        set,
                        arg_names,
                        out,
                    )?;
                }
                Ok(())
            }
            _ => Err(unknown(
                ["args", "protocol", "sim"]
                    .iter()
                    .map(|g| format!("{g}.{}", segments.get(1).copied().unwrap_or("")))
                    .collect(),
            )),
        }
    }

    fn set_error(&self, key: &str, problem: Problem) -> ScenarioError {
        ScenarioError::Invalid {
            place: Box::new(Place {
                file: self.file.clone(),
                line: None,
                key: Some(key.into()),
                from_set: true,
            }),
            problem,
        }
    }

    /// `--set key.path=value`.
    fn parse_set(&self, given: &str, arg_names: &[String]) -> Result<Vec<Setting>, ScenarioError> {
        let Some((key, raw)) = given.split_once('=') else {
            return Err(self.set_error(given, Problem::Shape("write --set key.path=value".into())));
        };
        let key = key.trim();
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| Value::String(raw.trim().to_owned()));
        let mut out = Vec::new();
        self.add(key, key, &value, Some(given), arg_names, &mut out)?;
        Ok(out)
    }

    /// The `[sweep]` axes, and whether they are zipped.
    fn axes(&self, arg_names: &[String]) -> Result<(Vec<Axis>, bool), ScenarioError> {
        let Some(sweep) = self.table.get("sweep") else {
            return Ok((Vec::new(), false));
        };
        let Value::Table(sweep) = sweep else {
            return Err(self.at(
                "sweep",
                "sweep",
                Problem::Shape("must be a table of keys and their values".into()),
            ));
        };
        let mut zip = false;
        let mut axes = Vec::new();
        let mut flat = Vec::new();
        flatten_sweep("", sweep, &mut flat);
        for (path, value) in flat {
            let written = format!("sweep.{path}");
            if path == "mode" {
                zip = match value {
                    Value::String(s) if s == "cross" => false,
                    Value::String(s) if s == "zip" => true,
                    _ => {
                        return Err(self.at(
                            &written,
                            &written,
                            Problem::Value("must be \"cross\" or \"zip\"".into()),
                        ))
                    }
                };
                continue;
            }
            let Value::Array(values) = value else {
                return Err(self.at(
                    &written,
                    &path,
                    Problem::Shape("an axis is a list of values".into()),
                ));
            };
            if values.is_empty() {
                return Err(self.at(
                    &written,
                    &path,
                    Problem::Shape("an axis needs at least one value".into()),
                ));
            }
            // Check the key and each value's shape as a setting would be.
            for v in &values {
                let mut scratch = Vec::new();
                self.add(&path, &written, v, None, arg_names, &mut scratch)?;
            }
            axes.push(Axis {
                path: path.clone(),
                values,
                line: self.lines.get(&written).copied(),
            });
        }
        Ok((axes, zip))
    }

    /// The points of the sweep, each the value of every axis; one empty point
    /// without a sweep.
    fn combinations(&self, axes: &[Axis], zip: bool) -> Result<Vec<Vec<Value>>, ScenarioError> {
        if axes.is_empty() {
            return Ok(vec![Vec::new()]);
        }
        if zip {
            let len = axes[0].values.len();
            if let Some(other) = axes.iter().find(|a| a.values.len() != len) {
                return Err(ScenarioError::Invalid {
                    place: Box::new(Place {
                        file: self.file.clone(),
                        line: other.line,
                        key: Some(other.path.clone()),
                        from_set: false,
                    }),
                    problem: Problem::Shape(format!(
                        "has {} values, but `{}` has {len}: zipped axes need equally many",
                        other.values.len(),
                        axes[0].path
                    )),
                });
            }
            return Ok((0..len)
                .map(|i| axes.iter().map(|a| a.values[i].clone()).collect())
                .collect());
        }
        let mut points: Vec<Vec<Value>> = vec![Vec::new()];
        for axis in axes {
            points = points
                .into_iter()
                .flat_map(|p| {
                    axis.values.iter().map(move |v| {
                        let mut q = p.clone();
                        q.push(v.clone());
                        q
                    })
                })
                .collect();
            if points.len() > MAX_POINTS {
                return Err(ScenarioError::Invalid {
                    place: Box::new(Place {
                        file: self.file.clone(),
                        line: axis.line,
                        key: Some("sweep".into()),
                        from_set: false,
                    }),
                    problem: Problem::Shape(format!("more than {MAX_POINTS} points")),
                });
            }
        }
        Ok(points)
    }

    /// The experiment of one point, its options parsed and every configuration checked.
    fn experiment(
        &self,
        name: &str,
        seed: u64,
        quick: bool,
        out: &Path,
        settings: &[Setting],
    ) -> Result<Box<dyn Parsed>, ScenarioError> {
        // The options, last setting of each winning, in order of first appearance.
        let mut args: Vec<(&Setting, &str)> = Vec::new();
        let mut leaves: Vec<&Setting> = Vec::new();
        for s in settings {
            if let Some(name) = s.path.strip_prefix("args.") {
                match args.iter_mut().find(|(_, n)| *n == name) {
                    Some(slot) => slot.0 = s,
                    None => args.push((s, name)),
                }
            } else {
                leaves.retain(|l| l.path != s.path);
                leaves.push(s);
            }
        }
        let mut argv: Vec<String> = vec![
            "distroweb".into(),
            name.into(),
            "--seed".into(),
            seed.to_string(),
            "--out".into(),
            out.display().to_string(),
        ];
        if quick {
            argv.push("--quick".into());
        }
        let mut longs: Vec<(String, &Setting)> = Vec::new();
        for (s, arg) in &args {
            let (long, flag) = registry::long_of(name, arg);
            longs.push((format!("--{long}"), s));
            let values: Vec<&Value> = match &s.value {
                Value::Array(items) => items.iter().collect(),
                one => vec![one],
            };
            for v in values {
                if flag {
                    match v {
                        Value::Boolean(true) => argv.push(format!("--{long}")),
                        Value::Boolean(false) => {}
                        _ => {
                            return Err(
                                self.at_setting(s, Problem::Value("must be true or false".into()))
                            )
                        }
                    }
                    continue;
                }
                let text =
                    keys::to_arg(arg, v).map_err(|m| self.at_setting(s, Problem::Value(m)))?;
                argv.push(format!("--{long}"));
                argv.push(text);
            }
        }
        let blame = |message: &str| {
            longs
                .iter()
                .filter(|(long, _)| {
                    message.contains(&format!("{long} "))
                        || message.contains(&format!("{long}:"))
                        || message.contains(&format!("{long}'"))
                        || message.contains(&format!("{long}>"))
                        || message.ends_with(long.as_str())
                })
                .map(|(_, s)| *s)
                .next()
        };
        let mut experiment = registry::parse(&argv).map_err(|message| match blame(&message) {
            Some(s) => self.at_setting(s, Problem::Value(message.clone())),
            None => self.at("args", "args", Problem::Value(message.clone())),
        })?;
        // Protocol and simulator settings, as serde leaves.
        let mut overrides = Vec::new();
        for s in &leaves {
            let (root, rest) = match s.path.split_once('.') {
                Some(("protocol", rest)) => (Some("protocol"), rest),
                Some((_, rest)) => (None, rest),
                None => (None, s.path.as_str()),
            };
            let mut path: Vec<String> = root.map(str::to_owned).into_iter().collect();
            path.extend(rest.split('.').map(str::to_owned));
            let schema = overrides::get(&self.schema, &path).unwrap_or(&Json::Null);
            let leaf_name = path.last().map(String::as_str).unwrap_or("");
            let json = keys::to_json(leaf_name, &s.value, schema)
                .map_err(|m| self.at_setting(s, Problem::Unit(m)))?;
            overrides.push((path, json));
        }
        let mut overrides = Overrides::new(overrides);
        let configs = registry::configs(experiment.as_ref()).map_err(|e| {
            let message = chain(&e);
            match blame(&message) {
                Some(s) => self.at_setting(s, Problem::Value(message)),
                None => self.at("args", "args", Problem::Value(message)),
            }
        })?;
        let as_json: Vec<Json> = configs
            .iter()
            .map(|c| serde_json::to_value(c).unwrap_or(Json::Null))
            .collect();
        overrides.mark_where_present(&as_json);
        self.check(&configs, &overrides, &leaves, name)?;
        registry::set_overrides(experiment.as_mut(), overrides);
        Ok(experiment)
    }

    /// Checks the overrides on every configuration the experiment builds: the
    /// experiment must not vary a key the scenario sets, each value must have
    /// the field's type, and the result must pass `SimConfig::validate`.
    fn check(
        &self,
        configs: &[distroweb_sim::SimConfig],
        overrides: &Overrides,
        leaves: &[&Setting],
        name: &str,
    ) -> Result<(), ScenarioError> {
        if overrides.is_empty() {
            return Ok(());
        }
        let values: Vec<Json> = configs
            .iter()
            .map(|c| serde_json::to_value(c).unwrap_or(Json::Null))
            .collect();
        for (i, ((path, _), s)) in overrides.leaves().iter().zip(leaves).enumerate() {
            // Points without the leaf's parent (update's run without churn,
            // for `sim.churn.*`) are left as they are.
            let mut present = values.iter().filter(|v| overrides.applies(i, v));
            let first = present.next().and_then(|v| overrides::get(v, path));
            if present.any(|v| overrides::get(v, path) != first) {
                return Err(self.at_setting(
                    s,
                    Problem::Conflict(format!(
                        "the {name} experiment sets this itself, differently for each of its points; use its own option (under [args]) instead"
                    )),
                ));
            }
        }
        for base in &values {
            let mut patched = base.clone();
            for (i, (path, leaf)) in overrides.leaves().iter().enumerate() {
                if overrides.applies(i, base) {
                    overrides::set(&mut patched, path, leaf.clone());
                }
            }
            let config = match serde_json::from_value::<distroweb_sim::SimConfig>(patched) {
                Ok(c) => c,
                Err(e) => {
                    // Blame the first leaf that fails on its own.
                    let culprit =
                        overrides
                            .leaves()
                            .iter()
                            .zip(leaves)
                            .find_map(|((path, leaf), s)| {
                                let mut alone = base.clone();
                                overrides::set(&mut alone, path, leaf.clone());
                                serde_json::from_value::<distroweb_sim::SimConfig>(alone)
                                    .err()
                                    .map(|e| (*s, e))
                            });
                    let (s, e) = culprit.unwrap_or((leaves[0], e));
                    return Err(self.at_setting(s, Problem::Value(serde_message(&e))));
                }
            };
            if let Err(e) = config.validate() {
                let message = chain(&e);
                let s = blame_rule(&message, leaves).unwrap_or(leaves[0]);
                return Err(self.at_setting(s, Problem::Rule(message)));
            }
        }
        Ok(())
    }
}

/// The most points one sweep may have.
pub const MAX_POINTS: usize = 10_000;

/// The leaves of a `[sweep]` table: quoted dotted keys and nested tables alike.
fn flatten_sweep(prefix: &str, table: &toml::Table, out: &mut Vec<(String, Value)>) {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Table(t) => flatten_sweep(&path, t, out),
            other => out.push((path, other.clone())),
        }
    }
}

/// The setting a rule's message is about: the one whose key's last segment
/// (or the whole `group.field`) the message names as a word, earliest in the file.
fn blame_rule<'a>(message: &str, leaves: &[&'a Setting]) -> Option<&'a Setting> {
    let words: Vec<&str> = message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .collect();
    let mut named: Vec<&Setting> = leaves
        .iter()
        .copied()
        .filter(|s| {
            let leaf = s.path.rsplit('.').next().unwrap_or("");
            let group_field = s.path.split_once('.').map_or("", |(_, rest)| rest);
            words.iter().any(|w| *w == leaf || *w == group_field)
        })
        .collect();
    named.sort_by_key(|s| (s.from_set, s.line));
    named.first().copied()
}

/// serde's message without its position in the JSON it was read from.
fn serde_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// An error and its causes, `outer: cause: root`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text += &format!(": {s}");
        source = s.source();
    }
    text
}

/// A run's scenario as a table: the settings nested by key, last one winning.
fn resolved(name: &str, seed: u64, quick: bool, settings: &[Setting]) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("experiment".into(), Value::String(name.into()));
    t.insert(
        "seed".into(),
        Value::Integer(i64::try_from(seed).unwrap_or(i64::MAX)),
    );
    t.insert("quick".into(), Value::Boolean(quick));
    for s in settings {
        let segments: Vec<&str> = s.path.split('.').collect();
        insert(&mut t, &segments, s.value.clone());
    }
    t
}

/// Sets the nested key `path` of `table` to `value`, making tables on the way.
fn insert(table: &mut toml::Table, path: &[&str], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        table.insert((*first).to_owned(), value);
        return;
    }
    let entry = table
        .entry((*first).to_owned())
        .or_insert_with(|| Value::Table(toml::Table::new()));
    if !entry.is_table() {
        *entry = Value::Table(toml::Table::new());
    }
    if let Value::Table(inner) = entry {
        insert(inner, rest, value);
    }
}

/// Runs every point of `plan` (in parallel, results in point order) and writes
/// the results: for one point, the experiment's own files with the resolved
/// scenario added to its JSON; for a sweep, each point's files in
/// `<name>-sweep/NNN/` and one CSV with a column per axis.
pub fn execute(plan: &Plan, command: &str) -> Result<(), ExperimentError> {
    let scenario = serde_json::to_value(&plan.resolved)
        .map_err(|e| ExperimentError::Usage(format!("scenario record: {e}")))?;
    if plan.axes.is_empty() {
        let point = plan
            .points
            .first()
            .ok_or_else(|| ExperimentError::Usage("a scenario without points".into()))?;
        registry::execute(point.experiment.as_ref(), command)?;
        return add_scenario(&plan.out, plan.output, scenario);
    }
    run_points(plan, command, |_| true)?;
    combine(&sweep_of(plan, command, scenario))
}

/// Runs the points `mine` picks, in parallel, each writing its own directory.
fn run_points(
    plan: &Plan,
    command: &str,
    mine: impl Fn(usize) -> bool,
) -> Result<(), ExperimentError> {
    let points: Vec<&Point> = (plan.points.iter().enumerate())
        .filter(|(i, _)| mine(*i))
        .map(|(_, p)| p)
        .collect();
    let cores = runner::threads();
    let outer = cores.min(points.len()).max(1);
    let inner = (cores / outer).max(1);
    let name = format!("{} ({} points)", plan.experiment, points.len());
    let progress = crate::progress::Progress::new(&name, 0);
    let results = runner::parallel(
        &points,
        outer,
        |_| 0,
        |p| {
            crate::progress::within_sweep(&progress, || {
                runner::with_threads(inner, || {
                    registry::execute(p.experiment.as_ref(), command)?;
                    let json = serde_json::to_value(&p.resolved)
                        .map_err(|e| ExperimentError::Usage(format!("scenario record: {e}")))?;
                    add_scenario(registry::out_of(p.experiment.as_ref()), plan.output, json)
                })
            })
        },
    );
    progress.finish();
    results.into_iter().collect()
}

/// A sweep's shape: what `combine` needs, and what a shard writes for `merge`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Sweep {
    experiment: String,
    output: String,
    command: String,
    scenario: Json,
    axes: Vec<String>,
    /// Each point's axis values.
    values: Vec<Vec<Value>>,
    /// The declared plot; absent from the manifests of sweeps without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plot: Option<sweep_plot::SweepPlot>,
    /// Where the sweep's results go (not written to a manifest).
    #[serde(skip)]
    out: PathBuf,
}

fn sweep_of(plan: &Plan, command: &str, scenario: Json) -> Sweep {
    Sweep {
        experiment: plan.experiment.clone(),
        output: plan.output.to_owned(),
        command: command.to_owned(),
        scenario,
        axes: plan.axes.clone(),
        values: plan.points.iter().map(|p| p.values.clone()).collect(),
        plot: plan.plot.clone(),
        out: plan.out.clone(),
    }
}

/// A point's directory, relative to the sweep's output directory.
fn point_dir(output: &str, i: usize) -> PathBuf {
    Path::new(&format!("{output}-sweep")).join(format!("{i:03}"))
}

/// What a shard writes beside its points: the whole sweep and which share it ran.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Manifest {
    shard: Shard,
    sweep: Sweep,
}

/// Runs one shard of a sweep: its points, and a manifest
/// `<name>.shard-I-of-N.json` for `merge`.
pub fn execute_shard(plan: &Plan, command: &str, shard: Shard) -> Result<(), ExperimentError> {
    if plan.axes.is_empty() {
        return Err(ExperimentError::Usage(
            "--shard splits a sweep: the scenario has no [sweep]".into(),
        ));
    }
    let scenario = serde_json::to_value(&plan.resolved)
        .map_err(|e| ExperimentError::Usage(format!("scenario record: {e}")))?;
    run_points(plan, command, |i| shard.has(i))?;
    let manifest = Manifest {
        shard,
        sweep: sweep_of(plan, command, scenario),
    };
    let name = format!("{}.shard-{}-of-{}", plan.output, shard.index, shard.count);
    let path = crate::output::Output::new(&plan.out)?.json(&name, &manifest)?;
    println!(
        "shard {}/{}: wrote {}; combine the shards with `distroweb experiment merge`",
        shard.index,
        shard.count,
        path.display()
    );
    Ok(())
}

/// Combines the shards in `args.dirs` into `args.out`: every point's directory
/// copied, then the sweep's CSV and JSON, byte for byte what one run writes.
pub fn merge(args: &MergeArgs) -> Result<(), ExperimentError> {
    let usage = ExperimentError::Usage;
    let mut found: Vec<(Manifest, PathBuf)> = Vec::new();
    for dir in &args.dirs {
        let entries = std::fs::read_dir(dir).map_err(|source| ExperimentError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut names: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains(".shard-") && n.ends_with(".json"))
            })
            .collect();
        names.sort();
        for path in names {
            let text = std::fs::read_to_string(&path).map_err(|source| ExperimentError::Io {
                path: path.clone(),
                source,
            })?;
            let manifest: Manifest =
                serde_json::from_str(&text).map_err(|source| ExperimentError::Json {
                    path: path.clone(),
                    source,
                })?;
            found.push((manifest, dir.clone()));
        }
    }
    let Some((first, _)) = found.first() else {
        return Err(usage(
            "no shard manifests (<name>.shard-I-of-N.json) in the directories".into(),
        ));
    };
    let mut sweep = first.sweep.clone();
    let count = first.shard.count;
    let mut owner: Vec<Option<PathBuf>> = vec![None; count];
    for (m, dir) in &found {
        let same = m.shard.count == count
            && m.sweep.scenario == sweep.scenario
            && m.sweep.axes == sweep.axes;
        if !same {
            return Err(usage(format!(
                "{}: shard {}/{} is of another sweep than shard {}/{count}",
                dir.display(),
                m.shard.index,
                m.shard.count,
                first.shard.index
            )));
        }
        let slot = &mut owner[m.shard.index - 1];
        if slot.is_some() {
            return Err(usage(format!(
                "shard {}/{count} given twice",
                m.shard.index
            )));
        }
        *slot = Some(dir.clone());
    }
    if let Some(missing) = owner.iter().position(Option::is_none) {
        return Err(usage(format!("shard {}/{count} is missing", missing + 1)));
    }
    for i in 0..sweep.values.len() {
        let Some(Some(from)) = owner.get(i % count) else {
            continue;
        };
        let rel = point_dir(&sweep.output, i);
        copy_dir(&from.join(&rel), &args.out.join(&rel))?;
    }
    sweep.out = args.out.clone();
    combine(&sweep)
}

/// Copies the files of `from` into `to` (one level: a point's results).
fn copy_dir(from: &Path, to: &Path) -> Result<(), ExperimentError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExperimentError::Io { path, source }
    };
    if from == to {
        return Ok(());
    }
    std::fs::create_dir_all(to).map_err(io(to))?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(from)
        .map_err(io(from))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for f in files {
        if let Some(name) = f.file_name() {
            std::fs::copy(&f, to.join(name)).map_err(io(&f))?;
        }
    }
    Ok(())
}

/// Adds `"scenario"` to the JSON record an experiment wrote in `dir`.
fn add_scenario(dir: &Path, name: &str, scenario: Json) -> Result<(), ExperimentError> {
    let path = dir.join(format!("{name}.json"));
    let io = |source| ExperimentError::Io {
        path: path.clone(),
        source,
    };
    let text = std::fs::read_to_string(&path).map_err(io)?;
    let mut record: Json = serde_json::from_str(&text).map_err(|source| ExperimentError::Json {
        path: path.clone(),
        source,
    })?;
    if let Json::Object(map) = &mut record {
        map.insert("scenario".into(), scenario);
    }
    crate::output::Output::new(dir)?.json(name, &record)?;
    Ok(())
}

/// A value as one CSV cell: strings bare, lists joined by `;`.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

/// Writes the sweep's `<name>.csv` (axis columns, then the experiment's) and
/// `<name>.json` (the scenario, the axes, and every point's record).
fn combine(plan: &Sweep) -> Result<(), ExperimentError> {
    let name = plan.output.as_str();
    let out = crate::output::Output::new(&plan.out)?;
    let path = out.path(name, "csv");
    let csv_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExperimentError::Csv { path, source }
    };
    let mut writer = csv::Writer::from_path(&path).map_err(csv_error(&path))?;
    let mut header: Option<csv::StringRecord> = None;
    // The sweep's table on the terminal: every point's rows, axes first.
    let mut shown_header: Vec<String> = Vec::new();
    let mut shown: Vec<Vec<String>> = Vec::new();
    let mut points = Vec::new();
    for (i, values) in plan.values.iter().enumerate() {
        let rel = point_dir(name, i);
        let dir = plan.out.join(&rel);
        let part = dir.join(format!("{name}.csv"));
        let mut reader = csv::Reader::from_path(&part).map_err(csv_error(&part))?;
        let head = reader.headers().map_err(csv_error(&part))?.clone();
        match &header {
            None => {
                let mut full = csv::StringRecord::new();
                for a in &plan.axes {
                    full.push_field(a);
                }
                full.extend(head.iter());
                writer.write_record(&full).map_err(csv_error(&path))?;
                shown_header = full.iter().map(str::to_owned).collect();
                header = Some(head);
            }
            Some(h) if *h != head => {
                return Err(ExperimentError::Usage(format!(
                    "{}: columns differ from the first point's",
                    part.display()
                )))
            }
            Some(_) => {}
        }
        for row in reader.records() {
            let row = row.map_err(csv_error(&part))?;
            let mut full = csv::StringRecord::new();
            for v in values {
                full.push_field(&cell(v));
            }
            full.extend(row.iter());
            writer.write_record(&full).map_err(csv_error(&path))?;
            shown.push(full.iter().map(str::to_owned).collect());
        }
        let record_path = dir.join(format!("{name}.json"));
        let record: Json = std::fs::read_to_string(&record_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Json::Null);
        let values: serde_json::Map<String, Json> = plan
            .axes
            .iter()
            .zip(values)
            .map(|(a, v)| (a.clone(), serde_json::to_value(v).unwrap_or(Json::Null)))
            .collect();
        points.push(serde_json::json!({
            "values": values,
            "dir": rel.display().to_string(),
            "record": record,
        }));
    }
    writer.flush().map_err(|source| ExperimentError::Io {
        path: path.clone(),
        source,
    })?;
    let mut record = serde_json::json!({
        "experiment": plan.experiment,
        "version": env!("CARGO_PKG_VERSION"),
        "command": plan.command,
        "scenario": plan.scenario,
        "axes": plan.axes,
        "points": points,
    });
    // Drawn from the CSV just written, so a merge draws the same bytes.
    let svg = match &plan.plot {
        Some(spec) => {
            let svg = out.path(name, "svg");
            let frontier = sweep_plot::draw(&path, &svg, spec)?;
            if let Json::Object(map) = &mut record {
                map.insert("frontier_rows".into(), serde_json::json!(frontier));
            }
            if !frontier.is_empty() {
                let rows: Vec<String> = frontier.iter().map(|r| (r + 1).to_string()).collect();
                println!(
                    "frontier: data rows {} of {}",
                    rows.join(", "),
                    path.display()
                );
            }
            format!(", {}", svg.display())
        }
        None => String::new(),
    };
    let json = out.json(name, &record)?;
    let head: Vec<&str> = shown_header.iter().map(String::as_str).collect();
    print!("{}", crate::table::render(&head, &shown));
    println!(
        "sweep of {} points: wrote {}{svg}, {}",
        plan.values.len(),
        path.display(),
        json.display()
    );
    Ok(())
}

/// The names of the scenario's experiments' options, for tests and errors.
pub fn option_names(experiment: &str) -> Vec<String> {
    registry::arg_names(experiment)
}
