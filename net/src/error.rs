//! What can go wrong starting a node or asking it something.

use std::net::SocketAddr;

use distroweb_protocol::{CommandError, ConfigError, QueryError};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The protocol configuration is unusable.
    #[error("invalid protocol configuration: {0}")]
    Protocol(#[from] ConfigError),
    /// A transport setting is unusable.
    #[error("invalid transport configuration: {0}")]
    Transport(&'static str),
    /// The data directory is unusable.
    #[error("data directory: {0}")]
    DataDir(#[from] crate::data_dir::DataDirError),
    /// The OS would not provide randomness for the node id or seed.
    #[error("no OS randomness for the node id: {0}")]
    Entropy(getrandom::Error),
}

/// Why a request to a running node failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// The node has stopped (or is stopping) and will answer no more.
    #[error("the node has stopped")]
    Stopped,
    /// The node refused the command (a bound was reached).
    #[error("command refused: {0}")]
    Refused(#[from] CommandError),
    /// The query ran and failed.
    #[error("query failed: {0}")]
    Query(#[from] QueryError),
}
