//! What can go wrong making or using a lab.

use std::io;

/// An error making a lab, changing it, or entering one of its namespaces.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Namespaces cannot be made here: not root, or a tool is missing.
    #[error("network namespaces are unavailable: {0}")]
    Unavailable(String),
    /// A tool could not be started.
    #[error("could not run `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it did not start.
        #[source]
        source: io::Error,
    },
    /// A tool ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of what it wrote to standard error.
        stderr: String,
    },
    /// A thread could not enter a namespace.
    #[error("could not enter namespace {namespace}")]
    Enter {
        /// The namespace's name.
        namespace: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A service the lab runs (a router's `miniupnpd`) did not start.
    #[error("{service} did not start: {reason}; its log ends: {log}")]
    Service {
        /// Which service.
        service: &'static str,
        /// Why: it exited, or did not get ready in time.
        reason: String,
        /// The end of its log.
        log: String,
    },
    /// The lab has no room for another host or home.
    #[error("the lab holds at most {0} hosts and homes")]
    Full(usize),
}
