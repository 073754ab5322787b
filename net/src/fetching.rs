//! Following a fetch from outside the node task: a progress signal, and reading
//! blocks as they land so a response can stream before the fetch ends.

use bytes::Bytes;
use distroweb_protocol::{FetchError, Id, Manifest};
use tokio::sync::watch;

use crate::error::NetError;
use crate::handle::NodeHandle;

/// How far a fetch has got, as the node task publishes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchProgress {
    /// Manifests and chunks verified so far; bumps wake whoever waits.
    pub verified: u64,
    /// `None` while running; then the outcome.
    pub outcome: Option<Result<(), FetchError>>,
}

/// A fetch in progress (or already finished) that a caller can read from.
///
/// Every read goes to the node's store first and waits on the progress signal
/// only when the block is not there yet; the signal is marked seen *before*
/// each read, so a block that lands between the read and the wait still wakes
/// the reader. A late joiner thus reads what already landed and waits for the rest.
#[derive(Debug)]
pub struct Fetching {
    root: Id,
    node: NodeHandle,
    progress: watch::Receiver<FetchProgress>,
}

impl Fetching {
    pub(crate) fn new(
        root: Id,
        node: NodeHandle,
        progress: watch::Receiver<FetchProgress>,
    ) -> Self {
        Fetching {
            root,
            node,
            progress,
        }
    }

    /// The content being fetched.
    pub fn root(&self) -> Id {
        self.root
    }

    /// The block `id` of this content, waiting until it has been verified.
    ///
    /// Fails with [`NetError::Fetch`] when the fetch fails first, or
    /// [`NetError::NotHeld`] when the fetch ended without it (it is not part of
    /// this content). Callers bound the wait with their own deadline.
    /// A block not there yet is asked for ahead of the rest of the content
    /// (a reader waits on it): a page of a large site, or the next leaf of a
    /// large file, does not queue behind the whole listing.
    pub async fn block(&mut self, id: &Id) -> Result<Bytes, NetError> {
        let mut asked = false;
        loop {
            let outcome = self.progress.borrow_and_update().outcome.clone();
            if let Some(data) = self.node.read_block(*id).await? {
                return Ok(data);
            }
            match outcome {
                Some(Err(e)) => return Err(NetError::Fetch(e)),
                Some(Ok(())) => return Err(NetError::NotHeld(*id)),
                None => {}
            }
            if !asked {
                self.node.prioritise(self.root, *id);
                asked = true;
            }
            if self.progress.changed().await.is_err() {
                // The node task dropped the signal: the fetch is over (or the
                // node stopped). One more look decides.
                let outcome = self.progress.borrow().outcome.clone();
                if let Some(data) = self.node.read_block(*id).await? {
                    return Ok(data);
                }
                return Err(match outcome {
                    Some(Err(e)) => NetError::Fetch(e),
                    Some(Ok(())) => NetError::NotHeld(*id),
                    None => NetError::Stopped,
                });
            }
        }
    }

    /// The manifest `id` (the root's, or a site file's), once verified.
    pub async fn manifest(&mut self, id: &Id) -> Result<Manifest, NetError> {
        let block = self.block(id).await?;
        Manifest::decode(&block).map_err(|e| NetError::BadManifest(e.to_string()))
    }

    /// Waits until the fetch ends.
    pub async fn finished(&mut self) -> Result<(), NetError> {
        loop {
            if let Some(outcome) = self.progress.borrow_and_update().outcome.clone() {
                return outcome.map_err(NetError::Fetch);
            }
            if self.progress.changed().await.is_err() {
                return match self.progress.borrow().outcome.clone() {
                    Some(outcome) => outcome.map_err(NetError::Fetch),
                    None => Err(NetError::Stopped),
                };
            }
        }
    }
}
