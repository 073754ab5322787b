//! Starting and stopping a live node: the listener, the node task and their shutdown.

use std::sync::Arc;

use distroweb_protocol::wire::MAX_MESSAGE_BYTES;
use distroweb_protocol::{Id, Node};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::NetConfig;
use crate::connection::Shared;
use crate::driver::Driver;
use crate::error::StartError;
use crate::handle::{Identity, NodeHandle};
use crate::handshake::Hello;
use crate::listener;

/// A running node: its listener, its node task and the handle to command it.
#[derive(Debug)]
pub struct LiveNode {
    handle: NodeHandle,
    shutdown: watch::Sender<bool>,
    driver: JoinHandle<()>,
    listener: JoinHandle<()>,
}

impl LiveNode {
    /// Binds the listen address and starts the node; it joins no network until
    /// told to with [`NodeHandle::bootstrap`].
    pub async fn start(config: NetConfig) -> Result<LiveNode, StartError> {
        check(&config)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let listen = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let advertised = config.advertise.unwrap_or(listen);
        let id = match config.id {
            Some(id) => id,
            None => Id::from_bytes(random()?),
        };
        let seed = match config.seed {
            Some(seed) => seed,
            None => u64::from_le_bytes(random()?),
        };
        let clock = Clock::start();
        let node = Node::new(config.protocol.clone(), id, advertised, seed, clock.now())?;

        let (inputs_tx, inputs_rx) = mpsc::channel(config.inbound_queue);
        let (commands_tx, commands_rx) = mpsc::channel(config.command_queue);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared::new(
            config,
            Hello::new(id, advertised),
            inputs_tx,
            shutdown_rx.clone(),
        ));
        let identity = Arc::new(Identity {
            id,
            listen,
            advertised,
            stats: shared.stats.clone(),
        });
        let listener = tokio::spawn(listener::accept_loop(shared.clone(), listener));
        let driver = Driver::new(node, clock, shared, listen, inputs_rx, commands_rx);
        let driver = tokio::spawn(driver.run(shutdown_rx));
        tracing::info!(id = %id, %listen, %advertised, "node started");
        Ok(LiveNode {
            handle: NodeHandle::new(commands_tx, identity),
            shutdown,
            driver,
            listener,
        })
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
        tracing::info!(id = %self.handle.id(), "node stopped");
    }
}

fn check(config: &NetConfig) -> Result<(), StartError> {
    let positive = [
        ("max_connections", config.max_connections),
        ("max_queued_frames", config.max_queued_frames),
        ("max_frames_while_dialing", config.max_frames_while_dialing),
        ("inbound_queue", config.inbound_queue),
        ("command_queue", config.command_queue),
    ];
    if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
        return Err(StartError::Transport(name));
    }
    if config.max_frame_bytes > MAX_MESSAGE_BYTES {
        return Err(StartError::Transport(
            "max_frame_bytes exceeds the codec's MAX_MESSAGE_BYTES",
        ));
    }
    Ok(())
}

fn random<const N: usize>() -> Result<[u8; N], StartError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(StartError::Entropy)?;
    Ok(bytes)
}
