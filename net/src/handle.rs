//! The handle everyone else uses to talk to the node task: commands over a
//! bounded queue, each answered on its own oneshot channel.

use std::net::SocketAddr;
use std::sync::Arc;

use distroweb_protocol::{Contact, Id, QueryOutput, QueryStats};
use tokio::sync::{mpsc, oneshot};

use crate::error::NetError;
use crate::stats::TransportStats;
use crate::status::Status;

/// A finished query: what it found and what it cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryDone {
    /// What the query found.
    pub output: QueryOutput<SocketAddr>,
    /// Its cost, as the protocol counted it.
    pub stats: QueryStats,
}

/// A query the node task should start.
#[derive(Debug)]
pub(crate) enum QueryCommand {
    Bootstrap(Vec<SocketAddr>),
    FindNode(Id),
    FindProviders(Id),
    Announce(Id),
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
}

/// Facts about a node that never change while it runs.
#[derive(Debug)]
pub(crate) struct Identity {
    pub id: Id,
    pub listen: SocketAddr,
    pub advertised: SocketAddr,
    pub stats: Arc<TransportStats>,
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

    /// Adds a peer known out of band, e.g. remembered from an earlier run.
    pub async fn add_contact(&self, contact: Contact<SocketAddr>) -> Result<(), NetError> {
        self.commands
            .send(Command::AddContact(contact))
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// A snapshot of the node.
    pub async fn status(&self) -> Result<Status, NetError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Status(reply))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    async fn query(&self, what: QueryCommand) -> Result<QueryDone, NetError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Query { what, reply })
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)?
    }
}
