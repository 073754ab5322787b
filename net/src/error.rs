//! What can go wrong starting a node or asking it something.
//!
//! Each error's message says only its own layer's context; the cause is its
//! `source()`. Show an error to a person with [`Chain`], which prints the whole
//! chain on one line.

use core::fmt;
use std::error::Error;
use std::net::SocketAddr;

use distroweb_protocol::{
    CommandError, ConfigError, FetchError, Id, PublishError, QueryError, StoreError,
};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The protocol configuration is unusable.
    #[error("invalid protocol configuration")]
    Protocol(#[from] ConfigError),
    /// A transport setting is unusable.
    #[error("invalid transport configuration: {0}")]
    Transport(&'static str),
    /// The data directory is unusable.
    #[error(transparent)]
    DataDir(#[from] crate::data_dir::DataDirError),
    /// The content store could not be opened.
    #[error("cannot open the content store at {}", path.display())]
    Store {
        /// Its directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The OS would not provide randomness for the node key or seed.
    #[error("no OS randomness for the node key: {0}")]
    Entropy(getrandom::Error),
    /// The configured or saved key's id does not meet the network's puzzle.
    #[error("the node key's id does not meet the {bits}-bit id puzzle (id_difficulty_bits)")]
    WeakKey {
        /// The puzzle's difficulty.
        bits: u32,
    },
    /// The Noise static key could not be made.
    #[error("cannot make the Noise static key: {0}")]
    Noise(snow::Error),
}

/// Why a request to a running node failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// The node has stopped (or is stopping) and will answer no more.
    #[error("the node has stopped")]
    Stopped,
    /// The node refused the command (a bound was reached).
    #[error("command refused")]
    Refused(#[from] CommandError),
    /// The query ran and failed.
    #[error("query failed")]
    Query(#[from] QueryError),
    /// The fetch ran and failed.
    #[error("fetch failed")]
    Fetch(#[from] FetchError),
    /// Publishing was refused; nothing was stored or announced.
    #[error("cannot publish")]
    Publish(#[from] PublishError),
    /// The content store failed.
    #[error("the content store failed")]
    Store(#[from] StoreError),
    /// The fetch ended without this block: it is not part of the content.
    #[error("block {0:?} is not part of the content")]
    NotHeld(Id),
    /// A stored manifest does not decode (the store was tampered with).
    #[error("stored manifest is unreadable: {0}")]
    BadManifest(String),
    /// The content is not held here.
    #[error("content {0:?} is not held by this node")]
    NotHeldHere(Id),
}

/// Shows an error and every cause below it on one line, `outer: cause: root`:
/// the outermost message alone names only its own layer.
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a dyn Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_names_every_layer_once() {
        let e = NetError::Refused(CommandError::TooManyFetches { max: 3 });
        assert_eq!(e.to_string(), "command refused");
        assert_eq!(
            Chain(&e).to_string(),
            "command refused: too many fetches running (at most 3)"
        );
    }
}
