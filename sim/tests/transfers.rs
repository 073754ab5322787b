//! Publishing and fetching files and sites through a small network on the test
//! harness: round trips, lying, busy and vanishing providers, and typed refusals.

use std::time::Duration;

use bytes::Bytes;
use distroweb_protocol::content::DEFAULT_CHUNK_BYTES;
use distroweb_protocol::{nonzero, CrowdConfig, LimitsConfig, TransferConfig};
use distroweb_protocol::{
    Body, Config, Event, FetchError, FetchId, FetchStats, Id, Manifest, Misbehaviour, PathError,
    PublishError, SiteError, SiteFile,
};
use distroweb_sim::{Harness, NodeIdx};
use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};

const CS: usize = DEFAULT_CHUNK_BYTES;

// The configurations these tests change, each made from the default in one place.

/// Uploads one block at a time, slowly.
fn slow_uploader() -> Config {
    Config {
        transfer: TransferConfig {
            max_uploads: nonzero!(1),
            upload_bytes_per_s: nonzero!(50_000),
            ..Default::default()
        },
        ..Config::default()
    }
}

/// A store of three chunks.
fn small_store() -> Config {
    Config {
        transfer: TransferConfig {
            store_capacity_bytes: nonzero!(3 * CS as u64),
            ..Default::default()
        },
        ..Config::default()
    }
}

/// Gives a fetch two seconds (and its block requests, and the requests held
/// for it, less).
fn hasty() -> Config {
    Config {
        transfer: TransferConfig {
            fetch_timeout: Duration::from_secs(2),
            block_timeout: Duration::from_millis(1500),
            ..Default::default()
        },
        crowd: CrowdConfig {
            hold_timeout: Duration::from_secs(1),
            ..Default::default()
        },
        ..Config::default()
    }
}

/// Chunks of `chunk` bytes, a 4,096-event bound and room for 100,000 blocks.
fn many_small_chunks(chunk: usize) -> Config {
    Config {
        transfer: TransferConfig {
            chunk_size: chunk,
            store_max_blocks: nonzero!(100_000),
            ..Default::default()
        },
        limits: LimitsConfig {
            max_event_queue: nonzero!(4096),
            ..Default::default()
        },
        ..Config::default()
    }
}

fn joined(configs: Vec<Config>, seed: u64) -> Harness {
    let mut h = Harness::with_configs(configs, seed).expect("valid configs");
    h.join_all();
    h
}

fn random_bytes(len: usize, seed: u64) -> Bytes {
    let mut v = vec![0u8; len];
    ChaCha12Rng::seed_from_u64(seed).fill_bytes(&mut v);
    Bytes::from(v)
}

fn publish(h: &mut Harness, node: u32, data: &Bytes, media_type: &str) -> Id {
    let id = h.command(node, |n, now| {
        n.publish_file(now, data.clone(), media_type).unwrap()
    });
    h.run_for(Duration::from_secs(10));
    id
}

fn fetch(h: &mut Harness, node: u32, id: Id) -> FetchId {
    h.command(node, |n, now| n.fetch(now, id).unwrap())
}

/// Fetches `id` at `node`, runs the network for `time`, and expects success.
fn fetch_ok(h: &mut Harness, node: u32, id: Id, time: Duration) -> (Manifest, FetchStats<NodeIdx>) {
    let f = fetch(h, node, id);
    h.run_for(time);
    match h.fetch_result(node, f) {
        Some((Ok(m), s)) => (m.clone(), s.clone()),
        other => panic!("fetch of {id:?} at node {node}: {other:?}"),
    }
}

fn bytes_from(stats: &FetchStats<NodeIdx>, provider: u32) -> u64 {
    stats
        .providers
        .iter()
        .filter(|p| p.provider.addr == NodeIdx(provider))
        .map(|p| p.bytes)
        .sum()
}

#[test]
fn files_of_every_awkward_size_round_trip() {
    let mut h = joined(vec![Config::default(); 30], 1);
    for (i, len) in [0, 1, CS - 1, CS, CS + 1, 10 << 20].into_iter().enumerate() {
        let data = random_bytes(len, i as u64);
        let id = publish(&mut h, 3, &data, "application/octet-stream");
        let fetcher = 10 + i as u32;
        let f = fetch(&mut h, fetcher, id);
        h.run_for(Duration::from_secs(60));
        let Some((Ok(Manifest::File(m)), stats)) = h.fetch_result(fetcher, f) else {
            panic!("size {len}: {:?}", h.fetch_result(fetcher, f));
        };
        assert_eq!(m.len(), len as u64);
        assert_eq!(stats.blocks as usize, len.div_ceil(CS) + 1, "size {len}");
        assert!(stats.bytes >= len as u64);
        assert!(stats
            .time_to_first_byte()
            .is_some_and(|t| t <= stats.duration()));
        assert!(h.node(fetcher).holds(&id));
        assert_eq!(h.read_file(fetcher, &id).unwrap(), data, "size {len}");
        assert_eq!(h.streamed(fetcher, f, id), data, "streamed, size {len}");
        println!(
            "size {len}: {} blocks, {} requests, {:?} to first byte, {:?} in all",
            stats.blocks,
            stats.requests,
            stats.time_to_first_byte(),
            stats.duration()
        );
    }
}

#[test]
fn a_site_with_nested_paths_round_trips() {
    let mut h = joined(vec![Config::default(); 30], 2);
    let files = vec![
        SiteFile::new("index.html", "text/html; charset=utf-8", "<h1>hi</h1>"),
        SiteFile::new("./about.html", "text/html", "<p>about</p>"),
        SiteFile::new("css/site.css", "text/css", "body{}"),
        SiteFile::new("img/a.png", "image/png", random_bytes(CS + 700, 9)),
        SiteFile::new("js/app/main.js", "text/javascript", "go()"),
        SiteFile::new("docs/guide/ch1/intro.txt", "text/plain", ""),
        // The same bytes under two names: one file, stored once.
        SiteFile::new("copy/site.css", "text/css", "body{}"),
    ];
    let site = h.command(4, |n, now| n.publish_site(now, files.clone()).unwrap());
    h.run_for(Duration::from_secs(10));
    let (m, stats) = fetch_ok(&mut h, 21, site, Duration::from_secs(60));
    let Manifest::Site(s) = m else {
        panic!("not a site")
    };
    let paths: Vec<&str> = s.entries().iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "about.html",
            "copy/site.css",
            "css/site.css",
            "docs/guide/ch1/intro.txt",
            "img/a.png",
            "index.html",
            "js/app/main.js"
        ]
    );
    assert_eq!(
        s.get("css/site.css").map(|e| e.media_type.as_str()),
        Some("text/css")
    );
    assert_eq!(
        s.get("copy/site.css").map(|e| e.file),
        s.get("css/site.css").map(|e| e.file)
    );
    // Root + 6 distinct file manifests + 6 distinct chunks (the png has two,
    // the empty file none).
    assert_eq!(stats.blocks, 1 + 6 + 6);
    for f in &files {
        let path = String::from_utf8(f.path.clone()).unwrap();
        let entry = s.get(path.trim_start_matches("./")).unwrap();
        assert_eq!(entry.size, f.data.len() as u64);
        assert_eq!(h.read_file(21, &entry.file).unwrap(), f.data, "{path}");
    }
    let f = h
        .events_of(21)
        .find_map(|e| match e {
            Event::FetchFinished { id, root, .. } if *root == site => Some(*id),
            _ => None,
        })
        .unwrap();
    let png = s.get("img/a.png").unwrap().file;
    assert_eq!(h.streamed(21, f, png), files[3].data);
}

/// Flips the first byte of every block `liar` sends (a modified node lying
/// about its content), outside the protocol.
#[derive(Debug)]
struct FlipBlocks;

impl distroweb_sim::Behaviour for FlipBlocks {
    fn outbound(
        &mut self,
        _: distroweb_protocol::Time,
        mut t: distroweb_protocol::Transmit<NodeIdx>,
    ) -> Option<distroweb_protocol::Transmit<NodeIdx>> {
        if let Body::Block { data, .. } = &mut t.msg.body {
            let mut v = data.0.to_vec();
            if let Some(b) = v.first_mut() {
                *b ^= 0xff;
            }
            data.0 = Bytes::from(v);
        }
        Some(t)
    }
}

#[test]
fn a_lying_provider_is_caught_and_the_fetch_completes_from_an_honest_one() {
    let mut h = joined(vec![Config::default(); 30], 3);
    let (honest, liar, fetcher) = (5, 9, 20);
    let data = random_bytes(2 << 20, 33);
    let id = publish(&mut h, honest, &data, "video/mp4");
    assert_eq!(publish(&mut h, liar, &data, "video/mp4"), id);
    h.sim_mut()
        .set_behaviour(NodeIdx(liar), Box::new(FlipBlocks));
    let (_, stats) = fetch_ok(&mut h, fetcher, id, Duration::from_secs(60));
    assert_eq!(h.read_file(fetcher, &id).unwrap(), data);
    let lied = stats
        .providers
        .iter()
        .find(|p| p.provider.addr == NodeIdx(liar))
        .unwrap();
    assert!(lied.corrupt >= 1 && lied.bytes == 0, "{lied:?}");
    assert_eq!(bytes_from(&stats, honest), stats.bytes);
    assert!(h.events_of(fetcher).any(|e| matches!(e,
        Event::PeerMisbehaved { peer, reason: Misbehaviour::CorruptBlock } if peer.addr == NodeIdx(liar))));
    assert!(h.node(fetcher).counters().corrupt_blocks >= 1);
}

#[test]
fn a_busy_provider_makes_the_fetch_fall_back() {
    let mut configs = vec![Config::default(); 30];
    configs[7] = slow_uploader();
    let mut h = joined(configs, 4);
    let data = random_bytes(1 << 20, 44);
    let id = publish(&mut h, 7, &data, "image/jpeg");
    assert_eq!(publish(&mut h, 8, &data, "image/jpeg"), id);
    let (_, stats) = fetch_ok(&mut h, 25, id, Duration::from_secs(60));
    assert_eq!(h.read_file(25, &id).unwrap(), data);
    let busy: u32 = stats.providers.iter().map(|p| p.busy).sum();
    assert!(busy >= 1, "{stats:?}");
    assert!(bytes_from(&stats, 8) > bytes_from(&stats, 7), "{stats:?}");
    assert!(h.node(7).counters().busy_replies >= 1);
}

#[test]
fn a_provider_vanishing_mid_fetch_is_replaced() {
    let mut h = joined(vec![Config::default(); 30], 5);
    let data = random_bytes(10 << 20, 55);
    let id = publish(&mut h, 11, &data, "application/zip");
    assert_eq!(publish(&mut h, 12, &data, "application/zip"), id);
    let f = fetch(&mut h, 27, id);
    // Let the transfer get going, then pull one provider out.
    h.run_until_event(|n, e| n == NodeIdx(27) && matches!(e, Event::ChunkVerified { .. }));
    h.take_down(12);
    h.run_for(Duration::from_secs(120));
    let Some((Ok(_), stats)) = h.fetch_result(27, f) else {
        panic!("{:?}", h.fetch_result(27, f));
    };
    assert_eq!(h.read_file(27, &id).unwrap(), data);
    let gone = stats
        .providers
        .iter()
        .find(|p| p.provider.addr == NodeIdx(12))
        .unwrap();
    assert!(gone.failures >= 1, "{gone:?}");
    assert!(stats.chunks_retried >= 1);
    assert!(
        stats.duration() < Duration::from_secs(60),
        "{:?}",
        stats.duration()
    );
}

#[test]
fn a_downloader_serves_others_after_the_publisher_leaves() {
    let mut h = joined(vec![Config::default(); 30], 6);
    let data = random_bytes(3 * CS + 5, 66);
    let id = publish(&mut h, 2, &data, "text/html");
    let (_, first) = fetch_ok(&mut h, 14, id, Duration::from_secs(30));
    assert_eq!(bytes_from(&first, 2), first.bytes);
    h.take_down(2);
    let (_, second) = fetch_ok(&mut h, 23, id, Duration::from_secs(120));
    assert_eq!(h.read_file(23, &id).unwrap(), data);
    assert_eq!(bytes_from(&second, 14), second.bytes, "{second:?}");
    assert!(h.node(14).counters().bytes_uploaded >= data.len() as u64);
}

#[test]
fn missing_and_unreachable_content_fail_with_a_reason() {
    let mut h = joined(vec![Config::default(); 20], 7);
    let f = fetch(&mut h, 5, Id::hash_of(b"nobody has this"));
    h.run_for(Duration::from_secs(120));
    assert!(matches!(
        h.fetch_result(5, f),
        Some((Err(FetchError::NotFound), _))
    ));
    // Published, then its only holder goes before anyone fetched it.
    let id = publish(&mut h, 6, &random_bytes(1000, 77), "text/plain");
    h.take_down(6);
    let f = fetch(&mut h, 9, id);
    h.run_for(Duration::from_secs(400));
    let Some((Err(FetchError::AllProvidersFailed), stats)) = h.fetch_result(9, f) else {
        panic!("{:?}", h.fetch_result(9, f));
    };
    assert!(stats.duration() <= Config::default().transfer.fetch_timeout);
    assert!(!h.node(9).holds(&id));
    assert_eq!(h.node(9).block_count(), 0, "partial blocks dropped");
}

#[test]
fn invalid_sites_are_refused_with_typed_errors_and_nothing_stored() {
    let mut h = Harness::new(1, &Config::default(), 8).expect("valid config");
    h.join(0, &[]);
    let bad = |path: &[u8]| vec![SiteFile::new(path, "text/html", "x")];
    let cases: Vec<(Vec<SiteFile>, PathError)> = vec![
        (bad(b"../etc/passwd"), PathError::ParentSegment),
        (bad(b"/abs.html"), PathError::Absolute),
        (bad(b"a//b.html"), PathError::EmptySegment),
        (bad(b"dir/"), PathError::EmptySegment),
        (bad(b"bad\xff.html"), PathError::NotUtf8),
        (bad(b""), PathError::Empty),
        (
            bad("x".repeat(2000).as_bytes()),
            PathError::TooLong {
                len: 2000,
                max: distroweb_protocol::content::MAX_PATH_BYTES,
            },
        ),
    ];
    for (files, want) in cases {
        let got = h.command(0, |n, now| n.publish_site(now, files));
        assert!(
            matches!(&got, Err(PublishError::Site(SiteError::Path { error, .. })) if *error == want),
            "{got:?}"
        );
    }
    let dup = vec![
        SiteFile::new("a.html", "text/html", "1"),
        SiteFile::new("./a.html", "text/html", "2"),
    ];
    assert!(matches!(
        h.command(0, |n, now| n.publish_site(now, dup)),
        Err(PublishError::Site(SiteError::Duplicate(_)))
    ));
    let clash = vec![
        SiteFile::new("a", "text/html", "1"),
        SiteFile::new("a/b.html", "text/html", "2"),
    ];
    assert!(matches!(
        h.command(0, |n, now| n.publish_site(now, clash)),
        Err(PublishError::Site(SiteError::FileIsDirectory(_)))
    ));
    assert!(matches!(
        h.command(0, |n, now| n.publish_site(now, Vec::new())),
        Err(PublishError::Site(SiteError::FileCount { .. }))
    ));
    assert!(matches!(
        h.command(0, |n, now| n.publish_file(now, "x", "nonsense")),
        Err(PublishError::File(_))
    ));
    assert_eq!(h.node(0).block_count(), 0);
    assert_eq!(h.node(0).provided_keys().count(), 0);
}

#[test]
fn same_seed_same_fetch_trace() {
    let trace = |seed: u64| {
        let mut h = joined(vec![Config::default(); 25], seed);
        let data = random_bytes(CS * 3, 88);
        let id = publish(&mut h, 1, &data, "text/plain");
        publish(&mut h, 2, &data, "text/plain");
        for node in [10, 11, 12] {
            fetch(&mut h, node, id);
        }
        h.run_for(Duration::from_secs(30));
        let mut t: Vec<String> = h
            .events()
            .iter()
            .map(|(at, n, e)| format!("{at:?} {n}:{e:?}"))
            .collect();
        t.push(format!("delivered={}", h.delivered()));
        t.push(format!("digest={}", h.sim().digest()));
        t
    };
    assert_eq!(trace(9), trace(9));
    assert_ne!(trace(9), trace(10));
}

#[test]
fn held_content_is_fetched_from_the_store_and_fetches_are_shared() {
    let mut h = joined(vec![Config::default(); 12], 10);
    let data = random_bytes(2 * CS + 1, 99);
    let id = publish(&mut h, 3, &data, "text/plain");
    // The publisher's own fetch needs no network: it ends inside the command.
    let f = fetch(&mut h, 3, id);
    let Some((Ok(_), stats)) = h.fetch_result(3, f) else {
        panic!("{:?}", h.fetch_result(3, f));
    };
    assert_eq!((stats.bytes, stats.requests), (0, 0));
    assert_eq!(stats.blocks_local, stats.blocks);
    assert_eq!(h.streamed(3, f, id), data);
    // Asking twice for content on its way joins the fetch already running.
    let a = fetch(&mut h, 7, id);
    assert_eq!(fetch(&mut h, 7, id), a);
    assert_eq!(h.node(7).fetches_running(), 1);
    h.run_for(Duration::from_secs(30));
    assert!(matches!(h.fetch_result(7, a), Some((Ok(_), _))));
    assert_eq!(h.node(7).fetches_running(), 0);
}

#[test]
fn a_live_node_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<distroweb_protocol::Node<std::net::SocketAddr>>();
}

#[test]
fn a_full_store_and_a_slow_fetch_fail_cleanly() {
    let mut configs = vec![Config::default(); 16];
    configs[5] = small_store();
    configs[6] = hasty();
    let mut h = joined(configs, 11);
    let data = random_bytes(8 * CS, 111);
    // Publishing more than the store holds stores nothing.
    let refused = h.command(5, |n, now| n.publish_file(now, data.clone(), "text/plain"));
    assert!(
        matches!(refused, Err(PublishError::Store(_))),
        "{refused:?}"
    );
    assert_eq!(h.node(5).byte_count(), 0);
    let id = publish(&mut h, 2, &data, "text/plain");
    // Fetching it fills the store part way, then fails and gives the room back.
    let f = fetch(&mut h, 5, id);
    h.run_for(Duration::from_secs(30));
    assert!(
        matches!(h.fetch_result(5, f), Some((Err(FetchError::Store(_)), _))),
        "{:?}",
        h.fetch_result(5, f)
    );
    assert_eq!(h.node(5).byte_count(), 0);
    // Links too slow for the fetch's deadline end it on time.
    for node in 0..16 {
        h.set_upload(node, 100_000);
    }
    let f = fetch(&mut h, 6, id);
    h.run_for(Duration::from_secs(30));
    let Some((Err(FetchError::Timeout), stats)) = h.fetch_result(6, f) else {
        panic!("{:?}", h.fetch_result(6, f));
    };
    assert_eq!(stats.duration(), Duration::from_secs(2));
    assert_eq!(h.node(6).block_count(), 0);
}

#[test]
fn a_prioritised_file_of_a_site_arrives_first() {
    let mut h = joined(vec![Config::default(); 12], 12);
    let files = vec![
        SiteFile::new(
            "a.bin",
            "application/octet-stream",
            random_bytes(10 << 20, 1),
        ),
        SiteFile::new(
            "z.bin",
            "application/octet-stream",
            random_bytes(10 << 20, 2),
        ),
    ];
    let site = h.command(1, |n, now| n.publish_site(now, files).unwrap());
    h.run_for(Duration::from_secs(10));
    let f = fetch(&mut h, 9, site);
    // A proxy learns the site's layout, then asks for z.bin first.
    let z = match &h
        .run_until_event(|n, e| {
            n == NodeIdx(9)
                && matches!(
                    e,
                    Event::ManifestVerified {
                        manifest: Manifest::Site(_),
                        ..
                    }
                )
        })
        .2
    {
        Event::ManifestVerified {
            manifest: Manifest::Site(s),
            ..
        } => s.get("z.bin").unwrap().file,
        other => unreachable!("{other:?}"),
    };
    assert!(h.command(9, |n, now| n.prioritise(now, f, z)));
    h.run_for(Duration::from_secs(60));
    assert!(matches!(h.fetch_result(9, f), Some((Ok(_), _))));
    let last_chunk_of = |file: Id| {
        h.events()
            .iter()
            .rposition(|(_, n, e)| {
                *n == NodeIdx(9)
                    && matches!(e, Event::ChunkVerified { file: fl, .. } if *fl == file)
            })
            .unwrap()
    };
    let a = match h.read_manifest(9, &site).unwrap() {
        Manifest::Site(s) => s.get("a.bin").unwrap().file,
        _ => unreachable!(),
    };
    assert!(last_chunk_of(z) < last_chunk_of(a));
    assert!(
        !h.command(9, |n, now| n.prioritise(now, f, z)),
        "fetch over"
    );
}

/// A site of 40,000 chunks held locally is fetched in one command: every
/// manifest and every chunk is reported, in file order, then `FetchFinished`,
/// although 40,000 events are ten times the event bound. (The seed dropped the
/// oldest events past 4,096, losing the manifests and the first chunks.)
#[test]
fn a_local_fetch_of_forty_thousand_chunks_reports_every_chunk_in_order() {
    const CHUNK: usize = 1024;
    const PER_FILE: usize = 20_000;
    let mut h = Harness::new(1, &many_small_chunks(CHUNK), 5).expect("valid config");
    h.join(0, &[]);
    // Every chunk distinct, so that the store holds 40,000 of them.
    let file = |n: u8| {
        let mut v = vec![0u8; PER_FILE * CHUNK];
        for (i, c) in v.chunks_mut(CHUNK).enumerate() {
            c[..4].copy_from_slice(&(i as u32).to_le_bytes());
            c[4] = n;
        }
        Bytes::from(v)
    };
    let files = vec![
        SiteFile::new("a.bin", "application/octet-stream", file(1)),
        SiteFile::new("b.bin", "application/octet-stream", file(2)),
    ];
    let site = h.command(0, |n, now| n.publish_site(now, files).unwrap());
    assert!(h.node(0).holds(&site));
    assert_eq!(h.node(0).block_count(), 2 * PER_FILE + 3);
    h.clear_events();
    let f = h.command(0, |n, now| n.fetch(now, site).unwrap());
    let mine: Vec<&Event<NodeIdx>> = h
        .events_of(0)
        .filter(|e| match e {
            Event::ManifestVerified { fetch, .. }
            | Event::ChunkVerified { fetch, .. }
            | Event::FetchFinished { id: fetch, .. } => *fetch == f,
            _ => false,
        })
        .collect();
    let manifests = mine
        .iter()
        .filter(|e| matches!(e, Event::ManifestVerified { .. }))
        .count();
    assert_eq!(manifests, 3, "the site's manifest and both files'");
    let mut next: std::collections::BTreeMap<Id, u32> = Default::default();
    let mut chunks = 0;
    for e in &mine {
        if let Event::ChunkVerified {
            file, index, len, ..
        } = e
        {
            let n = next.entry(*file).or_insert(0);
            assert_eq!(*index, *n, "chunks of a file come in order, none missing");
            assert_eq!(*len as usize, CHUNK);
            *n += 1;
            chunks += 1;
        }
    }
    assert_eq!(chunks, 2 * PER_FILE);
    assert!(
        matches!(
            mine.last(),
            Some(Event::FetchFinished { result: Ok(_), .. })
        ),
        "the fetch ends last, successfully"
    );
    assert_eq!(h.node(0).counters().events_dropped, 0);
}
