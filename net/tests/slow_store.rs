//! Storage runs off the node task: a node whose store takes a second for every
//! operation keeps answering lookups at once while it publishes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use distroweb_net::{BlockStore, KeySeed, LiveNode, MemoryBlocks, NetConfig};
use distroweb_protocol::TransferConfig;
use distroweb_protocol::{Config, Id, StoreError};

/// A memory store that sleeps a second in every operation, like a disk that
/// stalls on every fsync.
#[derive(Debug, Default)]
struct SlowStore {
    inner: MemoryBlocks,
    ops: AtomicU64,
}

impl SlowStore {
    fn stall(&self) {
        self.ops.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(1));
    }
}

impl BlockStore for SlowStore {
    fn get(&self, id: &Id) -> Result<Option<Bytes>, StoreError> {
        self.stall();
        self.inner.get(id)
    }
    fn put(&self, id: Id, data: Bytes) -> Result<(), StoreError> {
        self.stall();
        self.inner.put(id, data)
    }
    fn remove(&self, id: &Id) -> Result<bool, StoreError> {
        self.stall();
        self.inner.remove(id)
    }
    fn blocks(&self) -> Vec<(Id, u32)> {
        self.inner.blocks()
    }
}

fn config(n: u8) -> NetConfig {
    NetConfig {
        key: Some(KeySeed::search(&[n], 8)),
        seed: Some(u64::from(n)),
        protocol: Config {
            transfer: TransferConfig {
                chunk_size: 1024,
                ..Default::default()
            },
            ..Config::default()
        },
        ..NetConfig::loopback()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_stalling_store_still_answers_lookups_at_once() {
    let store = Arc::new(SlowStore::default());
    let slow = LiveNode::start_with_store(config(1), Some(store.clone()))
        .await
        .expect("starts");
    let asker = LiveNode::start(config(2)).await.expect("starts");
    asker
        .join(&[slow.handle().listen_addr()])
        .await
        .expect("joins");

    // Eight chunks and a manifest: nine writes of a second each, four at a time.
    let data: Vec<u8> = (0..8 * 1024).map(|i| (i / 1024) as u8).collect();
    let data = Bytes::from(data);
    let publisher = slow.handle();
    let started = Instant::now();
    let publishing = tokio::spawn(async move {
        publisher
            .publish_file(data, "application/octet-stream".into())
            .await
    });
    // Let the writes get under way.
    while store.ops.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for i in 0..5u8 {
        let t = Instant::now();
        let done = asker
            .handle()
            .find_node(Id::hash_of(&[100 + i]))
            .await
            .expect("the lookup succeeds");
        let took = t.elapsed();
        assert!(
            took < Duration::from_millis(100),
            "lookup {i} took {took:?} while the store stalls"
        );
        assert!(done.stats.replies >= 1, "the slow node answered");
        assert!(
            !publishing.is_finished(),
            "the publication is still writing"
        );
    }
    let published = publishing.await.expect("joins").expect("published");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the writes really stalled"
    );
    assert!(store.ops.load(Ordering::SeqCst) >= 9);
    // And the content is really there: the asker fetches it from the slow node.
    let mut fetching = asker
        .handle()
        .fetch(published.id)
        .await
        .expect("fetch starts");
    tokio::time::timeout(Duration::from_secs(30), fetching.finished())
        .await
        .expect("in time")
        .expect("fetched");
    slow.stop().await;
    asker.stop().await;
}
