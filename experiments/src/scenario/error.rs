//! What is wrong with a scenario, and where: the file, the line and the key.

use core::fmt;
use std::path::PathBuf;

/// Where a setting came from: a line of the file, or a `--set` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// The scenario file as given on the command line.
    pub file: String,
    /// The 1-based line of the key in the file; `None` for `--set` and for
    /// problems of the whole file.
    pub line: Option<usize>,
    /// The dotted key (`protocol.dht.k`), if the problem has one.
    pub key: Option<String>,
    /// True if the value came from `--set` rather than the file.
    pub from_set: bool,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if self.from_set {
            f.write_str(" (--set)")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": `{key}`")?;
        }
        Ok(())
    }
}

/// What is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The file is not TOML.
    #[error("not valid TOML: {0}")]
    Syntax(String),
    /// No such key here.
    #[error("unknown key{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownKey {
        /// The nearest valid key, if one is near.
        suggestion: Option<String>,
    },
    /// A quantity could not be read.
    #[error("{0}")]
    Unit(String),
    /// The value has the wrong type or is out of range.
    #[error("{0}")]
    Value(String),
    /// The configuration breaks one of its own rules (`Config::validate`).
    #[error("{0}")]
    Rule(String),
    /// The experiment itself sets this key per point.
    #[error("{0}")]
    Conflict(String),
    /// Anything else about the scenario's shape.
    #[error("{0}")]
    Shape(String),
}

/// Why a scenario could not be run; every variant but `Read` names the file,
/// and the line and key where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The scenario is wrong at a place.
    #[error("{place}: {problem}")]
    Invalid {
        /// Where.
        place: Box<Place>,
        /// What.
        problem: Problem,
    },
}

impl ScenarioError {
    /// The problem, if the scenario was read.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ScenarioError::Read { .. } => None,
            ScenarioError::Invalid { problem, .. } => Some(problem),
        }
    }
}

/// Edit distance between two strings (Levenshtein, by characters).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The valid key nearest to `given`: one with the same last segment first
/// (`protocol.dht.chunk_size` → `protocol.transfer.chunk_size`), else the
/// nearest by edit distance if it is near enough to be a typo.
pub fn suggest<'a>(given: &str, valid: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let valid: Vec<&str> = valid.into_iter().collect();
    let leaf = given.rsplit('.').next().unwrap_or(given);
    if let Some(same) = valid
        .iter()
        .find(|v| v.rsplit('.').next() == Some(leaf) && **v != given)
    {
        return Some((*same).to_owned());
    }
    let (best, distance) = valid
        .iter()
        .map(|v| (*v, edit_distance(given, v)))
        .min_by_key(|(_, d)| *d)?;
    let leaf_len = leaf.chars().count();
    (distance <= (leaf_len / 3).max(2)).then(|| best.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn suggestions() {
        let valid = [
            "protocol.dht.k",
            "protocol.dht.alpha",
            "protocol.transfer.chunk_size",
        ];
        assert_eq!(
            suggest("protocol.dht.alpah", valid).as_deref(),
            Some("protocol.dht.alpha")
        );
        assert_eq!(
            suggest("protocol.dht.chunk_size", valid).as_deref(),
            Some("protocol.transfer.chunk_size")
        );
        assert_eq!(suggest("protocol.nothing.like.it", valid), None);
    }
}
