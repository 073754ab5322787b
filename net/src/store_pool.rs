//! Storage off the node task: a bounded pool of blocking workers carries out
//! the protocol's storage operations and reports each completion back.
//!
//! One slow disk must not stall every lookup the node answers, so the node
//! task only hands operations over; writes, fsyncs, reads and hashing run on
//! tokio's blocking threads, at most `workers` at once.

use std::sync::Arc;

use distroweb_protocol::{StoreDone, StoreOp};
use tokio::sync::{mpsc, Semaphore};

use crate::block_store::BlockStore;

/// Hands storage operations to blocking workers; completions arrive on the
/// receiver given at construction.
#[derive(Debug)]
pub(crate) struct StorePool {
    store: Arc<dyn BlockStore>,
    workers: Arc<Semaphore>,
    done: mpsc::Sender<StoreDone>,
}

impl StorePool {
    /// A pool of `workers` over `store`; its completion channel holds `capacity`,
    /// which must be at least the node's `max_store_ops` (the node never has
    /// more in flight, so a worker never waits to report).
    pub fn new(
        store: Arc<dyn BlockStore>,
        workers: usize,
        capacity: usize,
    ) -> (StorePool, mpsc::Receiver<StoreDone>) {
        let (done, rx) = mpsc::channel(capacity.max(1));
        let pool = StorePool {
            store,
            workers: Arc::new(Semaphore::new(workers.max(1))),
            done,
        };
        (pool, rx)
    }

    /// The store the workers use.
    pub fn store(&self) -> &Arc<dyn BlockStore> {
        &self.store
    }

    /// Carries out `op` in the background.
    pub fn submit(&self, op: StoreOp) {
        let store = self.store.clone();
        let workers = self.workers.clone();
        let done = self.done.clone();
        tokio::spawn(async move {
            let Ok(_permit) = workers.acquire_owned().await else {
                return;
            };
            let finished = tokio::task::spawn_blocking(move || run(store.as_ref(), op)).await;
            if let Ok(finished) = finished {
                // The node task is gone when this fails: nobody needs the answer.
                let _ = done.send(finished).await;
            }
        });
    }
}

/// One operation, on a blocking thread.
fn run(store: &dyn BlockStore, op: StoreOp) -> StoreDone {
    match op {
        StoreOp::Read { id } => StoreDone::Read {
            id,
            result: store.get(&id),
        },
        StoreOp::Write { id, data } => StoreDone::Written {
            id,
            result: store.put(id, data),
        },
        StoreOp::Remove { id } => {
            if let Err(e) = store.remove(&id) {
                tracing::warn!(block = %id.short(), "could not remove a block: {e}");
            }
            StoreDone::Removed { id }
        }
    }
}
