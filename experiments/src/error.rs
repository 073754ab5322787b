//! Why an experiment could not produce its results.

use std::path::PathBuf;

use distroweb_sim::SimConfigError;

/// An experiment failed; nothing here is a simulation outcome, only I/O and setup.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// The simulator refused the configuration.
    #[error("invalid simulation config")]
    Config(#[from] SimConfigError),
    /// A result file could not be written.
    #[error("cannot write {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A CSV row could not be written.
    #[error("cannot write CSV {path}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: csv::Error,
    },
    /// The JSON record could not be written.
    #[error("cannot write JSON {path}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The plot could not be drawn.
    #[error("cannot draw {path}: {message}")]
    Plot {
        /// The file.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
    /// A scenario file is wrong (it names the file, line and key).
    #[error(transparent)]
    Scenario(#[from] crate::scenario::ScenarioError),
    /// A command-line value makes no sense.
    #[error("{0}")]
    Usage(String),
}
