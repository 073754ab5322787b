//! Moving content between nodes: fetches (many providers, verified blocks) and
//! the admission of uploads. The node glues these to its messages and timers.

pub(crate) mod fetch;
pub(crate) mod held;
pub(crate) mod uploads;

use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::contact::Contact;
use crate::content::{ManifestError, StoreError};
use crate::id::Id;
use crate::time::Time;

/// Names a fetch started by [`crate::Node::fetch`]; unique within one node's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FetchId(pub u64);

/// Why a fetch ended without the content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// No provider of the content could be found.
    #[error("no provider found")]
    NotFound,
    /// Providers were found, but some block could not be had from any of them
    /// (they were gone, busy, lying, or did not hold it).
    #[error("every provider failed")]
    AllProvidersFailed,
    /// The content verifies against its id but does not make sense: its manifest
    /// is malformed, or a file's chunks or size disagree with what names it.
    #[error("content is corrupt: {0}")]
    Corrupt(Corruption),
    /// The fetch ran past `fetch_timeout`.
    #[error("fetch timed out")]
    Timeout,
    /// The local store refused the content.
    #[error("store: {0}")]
    Store(StoreError),
}

/// How verified content can still be unusable (the publisher's doing, not a peer's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// A manifest block does not decode.
    #[error("manifest {id:?}: {error}")]
    Manifest {
        /// The block.
        id: Id,
        /// Why.
        error: ManifestError,
    },
    /// A site lists a site where a file should be.
    #[error("site entry {0:?} is not a file")]
    NotAFile(Id),
    /// A file's manifest disagrees with the site entry naming it (size or media type).
    #[error("file {0:?} disagrees with its site entry")]
    EntryMismatch(Id),
    /// A chunk has a length its file's manifest does not allow.
    #[error("chunk {index} of file {file:?} has the wrong length")]
    ChunkLength {
        /// The file.
        file: Id,
        /// The chunk's index.
        index: u32,
    },
}

/// What one provider contributed to a fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderStats<A> {
    /// The provider.
    pub provider: Contact<A>,
    /// Verified bytes received from it.
    pub bytes: u64,
    /// Block requests sent to it.
    pub requests: u32,
    /// Requests it failed: no reply in time, or the connection failed.
    pub failures: u32,
    /// Blocks it sent that did not match their hash.
    pub corrupt: u32,
    /// "Busy" answers.
    pub busy: u32,
    /// "Don't have" answers.
    pub dont_have: u32,
}

/// What a fetch cost and how it went, for experiments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchStats<A> {
    /// When the fetch started.
    pub started: Time,
    /// When the first verified block arrived from a peer (`None` if none did).
    pub first_byte: Option<Time>,
    /// When it ended.
    pub finished: Time,
    /// Provider lookups made (more than one when providers ran out).
    pub lookups: u32,
    /// Verified bytes received from peers (blocks held beforehand not counted).
    pub bytes: u64,
    /// Blocks the content has (manifests and distinct chunks).
    pub blocks: u32,
    /// Blocks already held locally when they were needed.
    pub blocks_local: u32,
    /// Block requests sent.
    pub requests: u32,
    /// Requests for a block that had been asked for before.
    pub chunks_retried: u32,
    /// Every provider found, with what it gave (see [`FetchStats::providers_tried`]).
    pub providers: Vec<ProviderStats<A>>,
}

impl<A> FetchStats<A> {
    pub(crate) fn new(started: Time) -> Self {
        FetchStats {
            started,
            first_byte: None,
            finished: started,
            lookups: 0,
            bytes: 0,
            blocks: 0,
            blocks_local: 0,
            requests: 0,
            chunks_retried: 0,
            providers: Vec::new(),
        }
    }

    /// Time from the start to the first verified byte from a peer.
    pub fn time_to_first_byte(&self) -> Option<Duration> {
        self.first_byte.map(|t| t - self.started)
    }

    /// Time from the start to the end.
    pub fn duration(&self) -> Duration {
        self.finished - self.started
    }

    /// Providers that were sent at least one request.
    pub fn providers_tried(&self) -> usize {
        self.providers.iter().filter(|p| p.requests > 0).count()
    }
}
