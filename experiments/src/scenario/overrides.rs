//! Changes a scenario makes to the simulator configuration an experiment builds:
//! protocol parameters and simulator settings, applied last, so the scenario's
//! value wins over the experiment's own choice.

use distroweb_sim::SimConfig;
use serde_json::Value;

use crate::error::ExperimentError;

/// Leaves of `SimConfig` to replace, each a path of field names and the value
/// in serde's JSON form. Empty by default: the experiment's configuration as is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    leaves: Vec<(Vec<String>, Value)>,
    /// Per leaf: true if it applies only to configurations that have its
    /// parent (an optional part such as `sim.churn` that some of the
    /// experiment's points turn off, like update's run without churn).
    where_present: Vec<bool>,
}

impl Overrides {
    /// Overrides of these leaves, applied in order.
    pub fn new(leaves: Vec<(Vec<String>, Value)>) -> Self {
        let where_present = vec![false; leaves.len()];
        Overrides {
            leaves,
            where_present,
        }
    }

    /// Marks each leaf whose parent is absent (null) in some of `configs` but
    /// not all: it applies where the parent is present and is left out
    /// elsewhere. (A parent absent everywhere is made, so a scenario can turn
    /// on, say, churn for an experiment without it by setting all of it.)
    pub fn mark_where_present(&mut self, configs: &[Value]) {
        for (i, (path, _)) in self.leaves.iter().enumerate() {
            let absent = configs.iter().filter(|c| !has_parent(c, path)).count();
            self.where_present[i] = absent > 0 && absent < configs.len();
        }
    }

    /// True if leaf `i` applies to the configuration `config`.
    pub fn applies(&self, i: usize, config: &Value) -> bool {
        !self.where_present.get(i).copied().unwrap_or(false)
            || has_parent(config, &self.leaves[i].0)
    }

    /// True if nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// The leaves, in order.
    pub fn leaves(&self) -> &[(Vec<String>, Value)] {
        &self.leaves
    }

    /// `config` with every leaf replaced. The scenario checks every point's
    /// configuration before a run starts, so an error here is not expected.
    pub fn apply(&self, config: SimConfig) -> Result<SimConfig, ExperimentError> {
        if self.leaves.is_empty() {
            return Ok(config);
        }
        let mut value = serde_json::to_value(&config)
            .map_err(|e| ExperimentError::Usage(format!("configuration: {e}")))?;
        for (i, (path, leaf)) in self.leaves.iter().enumerate() {
            if self.applies(i, &value) {
                set(&mut value, path, leaf.clone());
            }
        }
        serde_json::from_value(value)
            .map_err(|e| ExperimentError::Usage(format!("configuration override: {e}")))
    }
}

/// Sets `path` in `root` to `leaf`, making objects of missing or null parents.
pub fn set(root: &mut Value, path: &[String], leaf: Value) {
    let mut at = root;
    for key in path {
        if !at.is_object() {
            *at = Value::Object(serde_json::Map::new());
        }
        let Value::Object(map) = at else {
            return;
        };
        at = map.entry(key.clone()).or_insert(Value::Null);
    }
    *at = leaf;
}

/// True if the parent of `path` in `root` is there and not null.
fn has_parent(root: &Value, path: &[String]) -> bool {
    let parent = &path[..path.len().saturating_sub(1)];
    get(root, parent).is_some_and(|v| !v.is_null())
}

/// The value at `path` in `root`, if there is one.
pub fn get<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(root, |at, key| at.get(key))
}
