//! Starting and stopping a live node: the listener, the node task and their shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use distroweb_protocol::content::{read_content, verify_file};
use distroweb_protocol::wire::MAX_MESSAGE_BYTES;
use distroweb_protocol::{Id, Manifest, Node, QueryError, Time};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::block_cache::CachedStore;
use crate::block_store::{BlockStore, MemoryBlocks};
use crate::clock::Clock;
use crate::config::NetConfig;
use crate::connection::Shared;
use crate::data_dir::{DataDir, DirLock};
use crate::disk_store::DiskStore;
use crate::driver::{Driver, Inbox};
use crate::error::{NetError, StartError};
use crate::handle::{Command, Identity, NodeHandle, QueryDone};
use crate::handshake::LocalIdentity;
use crate::holdings::Holdings;
use crate::listener;
use crate::node_key::{meets_puzzle, NodeKey};
use crate::port_map::{Mapped, PortMapState};
use crate::status::output_size;
use crate::store_pool::StorePool;

/// A running node: its listener, its node task and the handle to command it.
#[derive(Debug)]
pub struct LiveNode {
    handle: NodeHandle,
    shutdown: watch::Sender<bool>,
    stopping: watch::Receiver<bool>,
    driver: JoinHandle<()>,
    listener: JoinHandle<()>,
    /// Renews the port mapping, and deletes it at shutdown.
    port_map: Option<JoinHandle<()>>,
    /// Addresses of the peers remembered from the last run: extra seeds.
    remembered: Vec<SocketAddr>,
    /// The data directory's lock, released when the node is dropped.
    _lock: Option<DirLock>,
}

impl LiveNode {
    /// Binds the listen address and starts the node; it joins no network until
    /// told to with [`NodeHandle::bootstrap`]. Blocks live in the data
    /// directory's [`DiskStore`], or in memory without one.
    pub async fn start(config: NetConfig) -> Result<LiveNode, StartError> {
        LiveNode::start_with_store(config, None).await
    }

    /// Like [`LiveNode::start`], keeping blocks in `store` instead (a test's
    /// slow or failing store, say); the data directory then holds only the
    /// identity, peers and the list of held content.
    pub async fn start_with_store(
        config: NetConfig,
        store: Option<Arc<dyn BlockStore>>,
    ) -> Result<LiveNode, StartError> {
        check(&config)?;
        let listener = bind(&config).map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let listen = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let data_dir = config.data_dir.as_ref().map(DataDir::open).transpose()?;
        let lock = data_dir.as_ref().map(DataDir::lock).transpose()?;
        let key = node_key(&config, data_dir.as_ref())?;
        let id = key.id();
        let seed = match config.seed {
            Some(seed) => seed,
            None => u64::from_le_bytes(random()?),
        };
        let clock = Clock::start();
        let store: Arc<dyn BlockStore> = match (store, &data_dir) {
            (Some(store), _) => store,
            (None, Some(dir)) => {
                let blocks = dir.root().join("blocks");
                let opened = {
                    let blocks = blocks.clone();
                    let held = Holdings::load(dir);
                    tokio::task::spawn_blocking(move || {
                        let store = DiskStore::open(blocks)?;
                        crate::orphans::collect(&store, &held);
                        Ok::<_, std::io::Error>(store)
                    })
                    .await
                };
                match opened {
                    Ok(Ok(store)) => Arc::new(store),
                    Ok(Err(source)) => {
                        return Err(StartError::Store {
                            path: blocks,
                            source,
                        })
                    }
                    Err(e) => {
                        return Err(StartError::Store {
                            path: blocks,
                            source: std::io::Error::other(e),
                        })
                    }
                }
            }
            (None, None) => Arc::new(MemoryBlocks::default()),
        };
        // Last before the address is told to anyone, so that a start that
        // fails earlier leaves no mapping behind.
        let port_map = Arc::new(PortMapState::default());
        let mapped = if config.port_mapping && config.advertise.is_none() && !config.client_mode {
            crate::port_map::map(&config, listen, &port_map).await
        } else {
            None
        };
        let advertised = (config.advertise)
            .or(mapped.as_ref().map(Mapped::external))
            .unwrap_or(listen);
        let mut node = Node::new(config.protocol.clone(), id, advertised, seed, clock.now())?;
        node.set_client_mode(config.client_mode);
        let holdings = match &data_dir {
            Some(dir) => {
                let saved = Holdings::load(dir);
                let found = {
                    let store = store.clone();
                    tokio::task::spawn_blocking(move || check_held(store.as_ref(), saved))
                        .await
                        .unwrap_or_default()
                };
                let holdings = restore(&mut node, store.as_ref(), found, clock.now());
                holdings.save(dir);
                holdings
            }
            None => {
                node.restore_blocks(store.blocks());
                Holdings::default()
            }
        };
        // After the start-up check, which reads every held block once: that
        // read says nothing about what readers will ask for.
        let cache = Arc::new(CachedStore::new(store, config.block_cache_bytes));
        let store: Arc<dyn BlockStore> = cache.clone();
        let remembered = data_dir
            .as_ref()
            .map(DataDir::load_peers)
            .unwrap_or_default();
        for contact in &remembered {
            node.add_contact(clock.now(), contact.clone());
        }
        if !remembered.is_empty() {
            tracing::info!(
                peers = remembered.len(),
                "remembered peers from the last run"
            );
        }

        let (inputs_tx, inputs_rx) = mpsc::channel(config.inbound_queue);
        let (commands_tx, commands_rx) = mpsc::channel(config.command_queue);
        let (pool, stored) = StorePool::new(
            store.clone(),
            config.store_workers,
            config.protocol.limits.max_store_ops.get(),
        );
        let (shutdown, shutdown_rx) = watch::channel(false);
        let local = LocalIdentity::new(key, advertised, config.id_difficulty_bits)
            .map_err(StartError::Noise)?;
        local.set_client(config.client_mode);
        let shared = Arc::new(
            Shared::new(
                config,
                local,
                advertised,
                listen,
                inputs_tx,
                shutdown_rx.clone(),
            )
            .with_port_map(port_map.clone()),
        );
        let lease = shared.config.port_mapping_lease;
        let port_map = mapped.map(|m| {
            tokio::spawn(crate::port_map::keep(
                m,
                port_map,
                lease,
                shutdown_rx.clone(),
            ))
        });
        let identity = Arc::new(Identity {
            id,
            listen,
            advertised,
            stats: shared.stats.clone(),
            store,
            cache,
            runtime: tokio::runtime::Handle::current(),
            chunk_size: shared.config.protocol.transfer.chunk_size,
            upload_writes: shared.config.store_workers,
            next_upload: Default::default(),
        });
        if shared.probes.probing() {
            shared.local.set_probe(true);
            // It ends when the node finds out, or at shutdown.
            tokio::spawn(crate::reachability::watch(shared.clone()));
        }
        if shared.config.relay.use_relays {
            // It asks the node task for reachable peers whenever it needs a
            // relay, and ends at shutdown.
            let commands = commands_tx.clone();
            tokio::spawn(crate::relay::keep_reservation(shared.clone(), move || {
                let (reply, candidates) = oneshot::channel();
                let _ = commands.try_send(Command::RelayCandidates(reply));
                candidates
            }));
        }
        let listener = tokio::spawn(listener::accept_loop(shared.clone(), listener));
        let driver = Driver::new(
            node,
            clock,
            shared,
            listen,
            Inbox {
                inputs: inputs_rx,
                commands: commands_rx,
                commands_tx: commands_tx.clone(),
                pool,
                stored,
            },
            data_dir,
            holdings,
        );
        let driver = tokio::spawn(driver.run(shutdown_rx.clone()));
        tracing::info!(id = %id, %listen, %advertised, "node started");
        Ok(LiveNode {
            handle: NodeHandle::new(commands_tx, identity),
            shutdown,
            stopping: shutdown_rx,
            driver,
            listener,
            port_map,
            remembered: remembered.into_iter().map(|c| c.addr).collect(),
            _lock: lock,
        })
    }

    /// Joins the network through `seeds` and the peers remembered from the last
    /// run, whichever answer.
    pub async fn join(&self, seeds: &[SocketAddr]) -> Result<QueryDone, NetError> {
        let mut all: Vec<SocketAddr> = seeds.to_vec();
        all.extend(self.remembered.iter().copied());
        all.sort();
        all.dedup();
        all.retain(|a| *a != self.handle.advertised_addr());
        if all.is_empty() {
            return Err(NetError::Query(QueryError::NoPeers));
        }
        self.handle.bootstrap(all).await
    }

    /// Joins in the background, retrying with backoff (up to a minute apart)
    /// until a bootstrap succeeds, so a node started before its seeds
    /// still finds them; gives up only when the node stops.
    pub fn spawn_join(&self, seeds: Vec<SocketAddr>) {
        let mut all = seeds;
        all.extend(self.remembered.iter().copied());
        if all.is_empty() {
            tracing::info!("no seeds: waiting for peers to join through this node");
            return;
        }
        let handle = self.handle.clone();
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_secs(2);
            loop {
                match handle.bootstrap(all.clone()).await {
                    Ok(done) => {
                        tracing::info!(contacts = output_size(&done.output), "joined the network");
                        return;
                    }
                    Err(NetError::Stopped) => return,
                    Err(e) => {
                        tracing::warn!(?all, "could not join ({e}); retrying in {backoff:?}");
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        });
    }

    /// A handle to command the node; clone it freely.
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Stops accepting, closes every connection, ends the node task and waits for
    /// both; callers still waiting on a query get [`crate::NetError::Stopped`].
    pub async fn stop(self) {
        self.shutdown.send_replace(true);
        let _ = self.listener.await;
        let _ = self.driver.await;
        if let Some(port_map) = self.port_map {
            // At most the deletion's timeout: the router is asked to forget.
            let _ = port_map.await;
        }
        tracing::info!(id = %self.handle.id(), "node stopped");
    }
}

fn check(config: &NetConfig) -> Result<(), StartError> {
    let positive = [
        ("max_inbound_connections", config.max_inbound_connections),
        ("max_outbound_connections", config.max_outbound_connections),
        ("max_handshaking_per_ip", config.max_handshaking_per_ip),
        ("max_inbound_per_ip", config.max_inbound_per_ip),
        (
            "max_unverified_dials_per_ip",
            config.max_unverified_dials_per_ip,
        ),
        ("max_dial_failures_per_ip", config.max_dial_failures_per_ip),
        ("max_failed_addresses", config.max_failed_addresses),
        ("max_verified_peers", config.max_verified_peers),
        ("max_queued_frames", config.max_queued_frames),
        ("max_queued_bytes", config.max_queued_bytes),
        ("max_frames_while_dialing", config.max_frames_while_dialing),
        ("inbound_queue", config.inbound_queue),
        ("command_queue", config.command_queue),
        ("max_uploads", config.max_uploads),
    ];
    if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
        return Err(StartError::Transport(name));
    }
    if config.max_frame_bytes > MAX_MESSAGE_BYTES {
        return Err(StartError::Transport(
            "max_frame_bytes exceeds the codec's MAX_MESSAGE_BYTES",
        ));
    }
    // Past 32 bits a key takes days to make; a typo, not a choice.
    if config.id_difficulty_bits > MAX_DIFFICULTY_BITS {
        return Err(StartError::Transport(
            "id_difficulty_bits is over 32: making a key would take days",
        ));
    }
    Ok(())
}

/// Held content read back from the store: its root, its manifests, and what
/// the holdings list said of it.
struct Found {
    root: Id,
    manifests: Vec<(Id, Manifest)>,
    holding: crate::holdings::Holding,
}

/// Content an earlier run held, read back and checked off the runtime's
/// threads: every block present and matching its id, every chunk the length
/// its manifest says. Content that fails is dropped from the list (it will be
/// fetched again when someone asks for it); the store deletes blocks it found
/// corrupt on the way.
fn check_held(store: &dyn BlockStore, saved: Holdings) -> Vec<Found> {
    let mut found = Vec::new();
    for (root, h) in saved.iter() {
        let checked = read_content(store, root).and_then(|manifests| {
            for (id, m) in &manifests {
                // Each leaf once (a tree's leaves are among the manifests).
                if let Manifest::File(_) = m {
                    verify_file(store, id)?;
                }
            }
            Ok(manifests)
        });
        match checked {
            Ok(manifests) => found.push(Found {
                root: *root,
                manifests,
                holding: *h,
            }),
            Err(e) => {
                tracing::warn!(root = %root, "dropping held content that cannot be restored: {e}")
            }
        }
    }
    found
}

/// Makes the node hold again what an earlier run held: it learns which blocks
/// are on disk, then adopts (and queues the announcement of) each content
/// whose blocks all are.
fn restore(
    node: &mut Node<SocketAddr>,
    store: &dyn BlockStore,
    found: Vec<Found>,
    now: Time,
) -> Holdings {
    node.restore_blocks(store.blocks());
    let mut kept = Holdings::default();
    for Found {
        root,
        manifests,
        holding: h,
    } in found
    {
        match node.adopt(now, root, &manifests) {
            Ok(()) => kept.insert(root, h.pinned, h.size, h.last_used),
            Err(e) => {
                tracing::warn!(root = %root, "dropping held content that cannot be restored: {e}")
            }
        }
    }
    let restored = node.held_content().count();
    if restored > 0 {
        tracing::info!(
            contents = restored,
            "restored held content from the data directory"
        );
    }
    kept
}

/// The largest puzzle a configuration may ask for.
const MAX_DIFFICULTY_BITS: u32 = 32;

/// The node's key: the configured one, else the data directory's, else a new
/// one (saved there). A data directory from before keys holds an `identity`
/// file instead: the new key gets a new id (an id is now a key's hash, so the
/// old one cannot be kept), the operator is warned, and the file is removed.
fn node_key(config: &NetConfig, data_dir: Option<&DataDir>) -> Result<NodeKey, StartError> {
    let bits = config.id_difficulty_bits;
    let saved = match &config.key {
        Some(_) => None,
        None => data_dir.map(DataDir::load_key).transpose()?.flatten(),
    };
    let key = match config.key.as_ref().or(saved.as_ref()) {
        Some(seed) => NodeKey::from_seed(seed),
        None => {
            let (key, seed) = NodeKey::generate(bits).map_err(StartError::Entropy)?;
            if let Some(dir) = data_dir {
                dir.save_key(&seed)?;
                match dir.load_identity() {
                    Ok(Some(old)) => {
                        tracing::warn!(
                            old_id = %old,
                            new_id = %key.id(),
                            dir = %dir.root().display(),
                            "node ids are now proven by a key: this node's id changed; the old identity file is removed"
                        );
                        dir.remove_identity()?;
                    }
                    Ok(None) => {
                        tracing::info!(id = %key.id(), dir = %dir.root().display(), "created a new node key")
                    }
                    Err(e) => {
                        tracing::warn!("replacing an unreadable identity file with a key: {e}");
                        dir.remove_identity()?;
                    }
                }
            }
            key
        }
    };
    if !meets_puzzle(&key.id(), bits) {
        return Err(StartError::WeakKey { bits });
    }
    Ok(key)
}

/// The listening socket; with hole punching on, shared (`SO_REUSEPORT`) with
/// the connections a node behind a NAT dials from the same port.
///
/// Implementation note: on Linux `SO_REUSEPORT` lets another socket of the
/// same user bind the port too; a node that must not allow that turns hole
/// punching off.
fn bind(config: &NetConfig) -> std::io::Result<TcpListener> {
    let addr = config.listen;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if config.relay.hole_punching {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(1024)
}

fn random<const N: usize>() -> Result<[u8; N], StartError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(StartError::Entropy)?;
    Ok(bytes)
}
