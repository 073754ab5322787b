//! The data directory and the store on live nodes: a restart keeps the id, the
//! content and the peers; a corrupt block is never served; a full store evicts
//! cached content but never what the user published or pinned.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use distroweb_net::{LiveNode, NetConfig, NetError};
use distroweb_protocol::{nonzero, TransferConfig};
use distroweb_protocol::{Config, FetchError, Id, Manifest, QueryOutput, StoreError};

fn bytes(len: usize, salt: u32) -> Bytes {
    (0..len as u32)
        .map(|i| (i.wrapping_add(salt).wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("distroweb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn memory_node(seed: u64) -> LiveNode {
    LiveNode::start(NetConfig {
        seed: Some(seed),
        ..NetConfig::loopback()
    })
    .await
    .unwrap()
}

/// The whole file `id`, fetched by `node` and read back block by block.
async fn read_whole(node: &LiveNode, id: Id) -> Result<Vec<u8>, NetError> {
    let mut f = node.handle().fetch(id).await?;
    let Manifest::File(m) = f.manifest(&id).await? else {
        panic!("not a file");
    };
    let mut out = Vec::new();
    for c in m.chunks() {
        out.extend_from_slice(&f.block(c).await?);
    }
    f.finished().await?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_its_id_content_and_peers() {
    let dir = temp_dir("restart");
    let with_dir = || NetConfig {
        data_dir: Some(dir.clone()),
        ..NetConfig::loopback()
    };
    let a = LiveNode::start(with_dir()).await.unwrap();
    let b = memory_node(2).await;
    b.join(&[a.handle().listen_addr()]).await.unwrap();
    let (kept, spoiled) = (bytes(300_000, 1), bytes(1000, 2));
    let kept_id = a
        .handle()
        .publish_file(kept.clone(), "application/octet-stream".into())
        .await
        .unwrap()
        .id;
    let spoiled_id = a
        .handle()
        .publish_file(spoiled.clone(), "text/plain".into())
        .await
        .unwrap()
        .id;
    let id = a.handle().id();
    let old_addr = a.handle().listen_addr();
    a.stop().await;

    // Bit rot in the small file's only chunk while the node is down.
    let chunk = Id::hash_of(&spoiled).to_string();
    let path = dir.join("blocks").join(&chunk[..2]).join(&chunk);
    let mut raw = std::fs::read(&path).unwrap();
    raw[10] ^= 0x40;
    std::fs::write(&path, raw).unwrap();

    let a = LiveNode::start(with_dir()).await.unwrap();
    assert_eq!(a.handle().id(), id, "same identity");
    assert_ne!(
        a.handle().listen_addr(),
        old_addr,
        "a new port, to be found again"
    );
    // No seed given: it rejoins through the peers it remembered.
    a.join(&[]).await.expect("rejoins through remembered peers");
    let status = a.handle().status().await.unwrap();
    let held: Vec<Id> = status.held.iter().map(|(r, _)| *r).collect();
    assert_eq!(
        held,
        vec![kept_id],
        "the corrupt file is dropped, the other kept"
    );
    assert!(
        !path.exists(),
        "the corrupt block was deleted, never served"
    );

    // It re-announces what it holds at its new address...
    let new_addr = a.handle().listen_addr();
    let mut announced = false;
    for _ in 0..150 {
        if let Ok(done) = b.handle().find_providers(kept_id).await {
            if let QueryOutput::Providers(p) = done.output {
                if p.iter().any(|c| c.id == id && c.addr == new_addr) {
                    announced = true;
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        announced,
        "the restarted node is found again at its new address"
    );
    // ...so a newcomer gets the content, byte for byte.
    let c = memory_node(3).await;
    c.join(&[b.handle().listen_addr()]).await.unwrap();
    assert_eq!(read_whole(&c, kept_id).await.unwrap(), kept.to_vec());
    assert!(
        read_whole(&c, spoiled_id).await.is_err(),
        "nobody can serve the spoiled file"
    );

    for n in [a, b, c] {
        n.stop().await;
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_evicts_cached_content_but_never_pinned() {
    let publisher = memory_node(10).await;
    let small = LiveNode::start(NetConfig {
        seed: Some(11),
        protocol: Config {
            transfer: TransferConfig {
                store_capacity_bytes: nonzero!(700_000),
                ..Default::default()
            },
            ..Config::default()
        },
        eviction_grace: Duration::ZERO,
        ..NetConfig::loopback()
    })
    .await
    .unwrap();
    small
        .join(&[publisher.handle().listen_addr()])
        .await
        .unwrap();
    let p = publisher.handle();
    let s = small.handle();
    let mut ids = Vec::new();
    for salt in 0..3 {
        let id = p
            .publish_file(
                bytes(300_000, 100 + salt),
                "application/octet-stream".into(),
            )
            .await
            .unwrap()
            .id;
        ids.push(id);
    }
    let own = s
        .publish_file(bytes(200_000, 7), "application/octet-stream".into())
        .await
        .unwrap()
        .id;
    let held = || async {
        let mut v: Vec<Id> = s
            .status()
            .await
            .unwrap()
            .held
            .iter()
            .map(|(r, _)| *r)
            .collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<Id>| {
        v.sort();
        v
    };

    read_whole(&small, ids[0]).await.unwrap();
    assert_eq!(held().await, sorted(vec![own, ids[0]]));
    // The next one does not fit beside both: the cached one goes, the published one stays.
    read_whole(&small, ids[1]).await.unwrap();
    assert_eq!(held().await, sorted(vec![own, ids[1]]));
    s.pin(ids[1]).await.unwrap();
    // Now nothing may go: the fetch is refused by the store instead.
    let refused = read_whole(&small, ids[2]).await;
    assert!(
        matches!(
            refused,
            Err(NetError::Fetch(FetchError::Store(StoreError::Full { .. })))
        ),
        "{refused:?}"
    );
    assert_eq!(held().await, sorted(vec![own, ids[1]]));
    assert!(s.status().await.unwrap().store_bytes <= 700_000);
    small.stop().await;
    publisher.stop().await;
}

/// A data directory from before keys: the node makes a key (saved 0600), its id
/// changes to the key's, and the old identity file is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_identity_file_is_replaced_by_a_key() {
    let dir = temp_dir("migrate");
    let old = Id::hash_of(b"an id from before keys");
    distroweb_net::DataDir::open(&dir)
        .unwrap()
        .save_identity(old)
        .unwrap();
    let config = || NetConfig {
        data_dir: Some(dir.clone()),
        ..NetConfig::loopback()
    };
    let a = LiveNode::start(config()).await.unwrap();
    let id = a.handle().id();
    assert_ne!(id, old);
    a.stop().await;
    assert!(!dir.join("identity").exists());
    assert!(dir.join("key").exists());
    let again = LiveNode::start(config()).await.unwrap();
    assert_eq!(again.handle().id(), id, "the key keeps the new id");
    again.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
