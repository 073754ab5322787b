//! The handle everyone else uses to talk to the node task: commands over a
//! bounded queue, each answered on its own oneshot channel.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use distroweb_protocol::names::{NameKey, NameRecord};
use distroweb_protocol::{Contact, Id, Manifest, Prepared, QueryOutput, QueryStats, SiteFile};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};

use crate::fetching::{FetchProgress, Fetching};

use crate::block_store::BlockStore;
use crate::error::NetError;
use crate::stats::TransportStats;
use crate::status::Status;
use crate::upload::{Upload, UploadId};
use crate::upload_blocks::Registration;

/// A finished query: what it found and what it cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryDone {
    /// What the query found.
    pub output: QueryOutput<SocketAddr>,
    /// Its cost, as the protocol counted it.
    pub stats: QueryStats,
}

/// Content just published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// Its id.
    pub id: Id,
    /// Nodes that stored its provider record (0 while this node is alone).
    pub stored_at: usize,
}

/// A query the node task should start.
#[derive(Debug)]
pub(crate) enum QueryCommand {
    Bootstrap(Vec<SocketAddr>),
    FindNode(Id),
    FindProviders(Id),
    Announce(Id),
    ResolveName(NameKey),
    PublishName(NameRecord),
}

/// A request to the node task.
#[derive(Debug)]
pub(crate) enum Command {
    Query {
        what: QueryCommand,
        reply: oneshot::Sender<Result<QueryDone, NetError>>,
    },
    AddContact(Contact<SocketAddr>),
    Status(oneshot::Sender<Status>),
    /// Reachable peers to ask for a relay reservation: routing-table
    /// contacts, closest to this node first, at most a few.
    RelayCandidates(oneshot::Sender<Vec<(SocketAddr, Id)>>),
    /// The record the node holds for a name, valid now.
    NameRecord {
        name: NameKey,
        reply: oneshot::Sender<Option<NameRecord>>,
    },
    Publish {
        what: Publish,
        reply: oneshot::Sender<Result<Id, NetError>>,
    },
    /// A publication chunked and hashed off the node task, ready to store.
    Prepared {
        prepared: Prepared,
        size: u64,
        reply: oneshot::Sender<Result<Id, NetError>>,
    },
    Fetch {
        root: Id,
        reply: oneshot::Sender<Result<watch::Receiver<FetchProgress>, NetError>>,
    },
    /// Content was read: it is recently used, for eviction.
    Touch {
        root: Id,
    },
    /// A reader waits on `block` of the running fetch of `root`: ask for it first.
    Prioritise {
        root: Id,
        block: Id,
    },
    Pin {
        root: Id,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    /// An upload is about to write a block.
    UploadBlock(Registration),
    /// An upload wrote every block of `root`: adopt it as published.
    UploadFinish {
        upload: UploadId,
        root: Id,
        manifests: Vec<(Id, Manifest)>,
        reply: oneshot::Sender<Result<Id, NetError>>,
    },
    /// An upload was abandoned: remove what it wrote that nothing else uses.
    UploadEnd {
        upload: UploadId,
    },
    /// The blocks of ended uploads are removed (from the blocking task that did it).
    UploadCleaned {
        ids: Vec<Id>,
    },
}

/// Content to publish.
#[derive(Debug)]
pub(crate) enum Publish {
    File { data: Bytes, media_type: String },
    Site(Vec<SiteFile>),
}

/// Facts about a node that never change while it runs.
#[derive(Debug)]
pub(crate) struct Identity {
    pub id: Id,
    pub listen: SocketAddr,
    pub advertised: SocketAddr,
    pub stats: Arc<TransportStats>,
    /// The node's block store, read directly (off the node task) by readers.
    pub store: Arc<dyn BlockStore>,
    /// The same store's blocks in memory, read without leaving the task.
    pub cache: Arc<crate::block_cache::CachedStore>,
    /// The runtime the node runs on, where uploads write their blocks.
    pub runtime: Handle,
    /// The node's chunk size, which uploads split files by.
    pub chunk_size: usize,
    /// Writes each upload keeps in flight at most.
    pub upload_writes: usize,
    /// The next upload's id.
    pub next_upload: AtomicU64,
}

/// A cheap, cloneable way to command a running node.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    commands: mpsc::Sender<Command>,
    identity: Arc<Identity>,
}

impl NodeHandle {
    pub(crate) fn new(commands: mpsc::Sender<Command>, identity: Arc<Identity>) -> Self {
        NodeHandle { commands, identity }
    }

    /// The node's id.
    pub fn id(&self) -> Id {
        self.identity.id
    }

    /// The address the node accepts connections at.
    pub fn listen_addr(&self) -> SocketAddr {
        self.identity.listen
    }

    /// The address the node tells peers.
    pub fn advertised_addr(&self) -> SocketAddr {
        self.identity.advertised
    }

    /// The transport's live counters.
    pub fn transport_stats(&self) -> &TransportStats {
        &self.identity.stats
    }

    /// Joins the network through the peers at `seeds`.
    pub async fn bootstrap(&self, seeds: Vec<SocketAddr>) -> Result<QueryDone, NetError> {
        self.query(QueryCommand::Bootstrap(seeds)).await
    }

    /// Finds the nodes closest to `target`.
    pub async fn find_node(&self, target: Id) -> Result<QueryDone, NetError> {
        self.query(QueryCommand::FindNode(target)).await
    }

    /// Finds peers that hold `key`.
    pub async fn find_providers(&self, key: Id) -> Result<QueryDone, NetError> {
        self.query(QueryCommand::FindProviders(key)).await
    }

    /// Announces this node as a provider of `key` (and keeps republishing it).
    pub async fn announce(&self, key: Id) -> Result<QueryDone, NetError> {
        self.query(QueryCommand::Announce(key)).await
    }

    /// Finds the latest record of a name: the highest sequence heard within
    /// the protocol's short grace after the first valid record.
    pub async fn resolve_name(&self, name: NameKey) -> Result<NameRecord, NetError> {
        match self.query(QueryCommand::ResolveName(name)).await?.output {
            QueryOutput::Name(record) => Ok(record),
            _ => Err(NetError::Query(distroweb_protocol::QueryError::NotFound)),
        }
    }

    /// Publishes a signed name record: kept here, stored at the name's
    /// trackers, republished while it is valid. Returns how many nodes
    /// stored it (this one included).
    pub async fn publish_name(&self, record: NameRecord) -> Result<usize, NetError> {
        match self.query(QueryCommand::PublishName(record)).await?.output {
            QueryOutput::Announced { stored } => Ok(stored),
            _ => Ok(0),
        }
    }

    /// The record this node holds for `name` (published, tracked or resolved
    /// before), valid now: what a reader serves at once while it resolves again.
    pub async fn name_record(&self, name: NameKey) -> Result<Option<NameRecord>, NetError> {
        self.ask(|reply| Command::NameRecord { name, reply }).await
    }

    /// Adds a peer known out of band, e.g. remembered from an earlier run.
    pub async fn add_contact(&self, contact: Contact<SocketAddr>) -> Result<(), NetError> {
        self.commands
            .send(Command::AddContact(contact))
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// A snapshot of the node.
    pub async fn status(&self) -> Result<Status, NetError> {
        self.ask(Command::Status).await
    }

    /// Publishes one file: stores and pins it, and returns once its
    /// announcement has finished, so other nodes can find it at once.
    pub async fn publish_file(
        &self,
        data: Bytes,
        media_type: String,
    ) -> Result<Published, NetError> {
        self.publish(Publish::File { data, media_type }).await
    }

    /// Publishes a site (a directory of files), like [`NodeHandle::publish_file`].
    pub async fn publish_site(&self, files: Vec<SiteFile>) -> Result<Published, NetError> {
        self.publish(Publish::Site(files)).await
    }

    /// Starts publishing content that streams in (an upload of any size):
    /// see [`Upload`].
    pub fn upload(&self) -> Upload {
        let id = self.identity.next_upload.fetch_add(1, Ordering::Relaxed);
        Upload::new(id, self.clone())
    }

    async fn publish(&self, what: Publish) -> Result<Published, NetError> {
        let id = self.ask(|reply| Command::Publish { what, reply }).await??;
        self.announced(id).await
    }

    /// Waits for `id`'s announcement, just published.
    pub(crate) async fn announced(&self, id: Id) -> Result<Published, NetError> {
        // Publishing started an announcement already; waiting on a second one
        // is how a caller outside the node task learns when records are stored.
        let stored_at = match self.announce(id).await {
            Ok(QueryDone {
                output: QueryOutput::Announced { stored },
                ..
            }) => stored,
            Ok(_) => 0,
            Err(NetError::Stopped) => return Err(NetError::Stopped),
            Err(e) => {
                tracing::warn!(id = %id, "published, but not announced yet: {e}");
                0
            }
        };
        Ok(Published { id, stored_at })
    }

    /// Starts fetching `root` (or joins the fetch already running; content held
    /// already completes at once) and returns a way to read it as it lands.
    pub async fn fetch(&self, root: Id) -> Result<Fetching, NetError> {
        let progress = self.ask(|reply| Command::Fetch { root, reply }).await??;
        Ok(Fetching::new(root, self.clone(), progress))
    }

    /// Marks `root` recently read, for the store's eviction order, without
    /// waiting; dropped when the node's command queue is full (it is a hint).
    pub fn touch(&self, root: Id) {
        let _ = self.commands.try_send(Command::Touch { root });
    }

    /// Asks the running fetch of `root` for `block` (and what it names) before
    /// anything else, without waiting; dropped when the node's command queue
    /// is full (it is a hint).
    pub fn prioritise(&self, root: Id, block: Id) {
        let _ = self.commands.try_send(Command::Prioritise { root, block });
    }

    /// One block if it is in the node's memory cache now, without waiting:
    /// the cache holds only blocks verified on their way in.
    pub fn cached_block(&self, id: &Id) -> Option<Bytes> {
        self.identity.cache.cached(id)
    }

    /// One block from the store, if held: read on a blocking thread straight
    /// from the store, so a slow disk never holds up the node task.
    pub async fn read_block(&self, id: Id) -> Result<Option<Bytes>, NetError> {
        if let Some(data) = self.identity.cache.cached(&id) {
            return Ok(Some(data));
        }
        let store = self.identity.store.clone();
        tokio::task::spawn_blocking(move || store.get(&id))
            .await
            .map_err(|_| NetError::Stopped)?
            .map_err(NetError::Store)
    }

    /// Keeps `root` for good: it is never evicted from the store.
    pub async fn pin(&self, root: Id) -> Result<(), NetError> {
        self.ask(|reply| Command::Pin { root, reply }).await?
    }

    async fn query(&self, what: QueryCommand) -> Result<QueryDone, NetError> {
        self.ask(|reply| Command::Query { what, reply }).await?
    }

    /// Facts about the node that never change while it runs.
    pub(crate) fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The node task's command queue.
    pub(crate) fn commands(&self) -> &mpsc::Sender<Command> {
        &self.commands
    }

    /// Sends a command built around a fresh reply channel and waits for the answer.
    pub(crate) async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }
}
