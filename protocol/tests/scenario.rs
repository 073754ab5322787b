//! Hundreds of nodes looking each other up through an in-memory network.

mod common;

use std::time::Duration;

use common::Net;
use distroweb_protocol::{
    Config, Event, Id, Metric, QueryError, QueryKind, QueryOutput, SiteFile, Strategy,
};
use distroweb_protocol::{CrowdConfig, DhtConfig};
use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};

struct Outcome {
    lookups: usize,
    found: usize,
    hops: Vec<u32>,
    failures: Vec<QueryError>,
    trace: Vec<String>,
}

/// Builds an `n`-node network, announces keys, then looks them up.
fn scenario(n: usize, metric: Metric, strategy: Strategy, seed: u64, lookups: usize) -> Outcome {
    let config = Config {
        dht: DhtConfig {
            metric,
            strategy,
            ..Default::default()
        },
        ..Config::default()
    };
    let mut net = Net::new(n, &config, seed);
    let mut rng = ChaCha12Rng::seed_from_u64(seed ^ 0xD15C0);
    net.join_all(&mut rng);
    // Announcements: 100 keys from random nodes.
    let mut keys = Vec::new();
    for _ in 0..100 {
        let who = (rng.next_u64() % n as u64) as u32;
        let key = Id::random(&mut rng);
        let q = net.command(who, |node, now| node.announce(now, key).unwrap());
        keys.push((who, key, q));
    }
    let t = net.now + Duration::from_secs(30);
    net.run_until(t);
    for &(who, _, q) in &keys {
        match net.finished(who, q) {
            Some(Event::QueryFinished {
                result: Ok(QueryOutput::Announced { stored }),
                ..
            }) => {
                assert!(*stored >= 1)
            }
            other => panic!("announce did not finish well: {other:?}"),
        }
    }
    // Lookups: random nodes look for random announced keys, 10 ms apart.
    let mut asked = Vec::new();
    for _ in 0..lookups {
        let who = (rng.next_u64() % n as u64) as u32;
        let (_, key, _) = keys[(rng.next_u64() % keys.len() as u64) as usize];
        let q = net.command(who, |node, now| node.find_providers(now, key).unwrap());
        asked.push((who, key, q));
        let t = net.now + Duration::from_millis(10);
        net.run_until(t);
    }
    let t = net.now + Duration::from_secs(120);
    net.run_until(t);
    let mut out = Outcome {
        lookups,
        found: 0,
        hops: Vec::new(),
        failures: Vec::new(),
        trace: Vec::new(),
    };
    for &(who, key, q) in &asked {
        match net.finished(who, q) {
            Some(Event::QueryFinished {
                kind: QueryKind::FindProviders,
                result: Ok(QueryOutput::Providers(p)),
                stats,
                ..
            }) => {
                // The announcer of this key must be among the providers.
                let announcers: Vec<u32> = keys
                    .iter()
                    .filter(|(_, k, _)| *k == key)
                    .map(|(w, _, _)| *w)
                    .collect();
                assert!(
                    p.iter().any(|c| announcers.contains(&c.addr)),
                    "wrong providers {p:?}"
                );
                out.found += 1;
                out.hops.push(stats.hops);
            }
            Some(Event::QueryFinished { result: Err(e), .. }) => out.failures.push(*e),
            other => panic!("lookup did not finish: {other:?}"),
        }
    }
    out.trace = net
        .events
        .iter()
        .map(|(n, e)| format!("{n}:{e:?}"))
        .collect();
    out.trace.push(format!("delivered={}", net.delivered));
    out
}

fn check(n: usize, metric: Metric, strategy: Strategy, min_success: f64) {
    let o = scenario(n, metric, strategy, 7, 1000);
    let rate = o.found as f64 / o.lookups as f64;
    let mean = o.hops.iter().map(|&h| h as f64).sum::<f64>() / o.hops.len().max(1) as f64;
    let log2n = (n as f64).log2();
    println!(
        "{metric}/{strategy:?}: n={n} success={:.4} mean_hops={mean:.2} log2(n)={log2n:.2} failures={:?}",
        rate, o.failures
    );
    assert!(
        rate >= min_success,
        "{metric}/{strategy:?}: success {rate} < {min_success}"
    );
    assert!(
        mean > 0.0 && mean <= log2n,
        "{metric}/{strategy:?}: mean hops {mean} vs log2 n {log2n}"
    );
}

#[test]
fn iterative_lookups_succeed_under_every_metric() {
    for &metric in Metric::ALL {
        check(500, metric, Strategy::Iterative, 0.99);
    }
}

#[test]
fn recursive_lookups_succeed_under_every_metric() {
    for &metric in Metric::ALL {
        check(500, metric, Strategy::Recursive, 0.99);
    }
}

#[test]
fn same_seed_same_events_other_seed_different() {
    let a = scenario(200, Metric::Xor, Strategy::Iterative, 11, 100).trace;
    let b = scenario(200, Metric::Xor, Strategy::Iterative, 11, 100).trace;
    let c = scenario(200, Metric::Xor, Strategy::Iterative, 12, 100).trace;
    assert_eq!(a, b);
    assert_ne!(a, c);
    let a = scenario(200, Metric::Hamming, Strategy::Recursive, 11, 100).trace;
    let b = scenario(200, Metric::Hamming, Strategy::Recursive, 11, 100).trace;
    assert_eq!(a, b);
}

/// What a flash crowd did to the publisher.
struct Crowd {
    fetchers: usize,
    succeeded: usize,
    publisher_bytes: u64,
    total_bytes: u64,
    /// Seconds to completion of each successful fetch, sorted.
    seconds: Vec<f64>,
}

/// 500 nodes; one publishes a small site, then 300 others ask for it within 3 s.
fn flash_crowd(config: Config, seed: u64) -> Crowd {
    let mut net = Net::new(500, &config, seed);
    let mut rng = ChaCha12Rng::seed_from_u64(seed ^ 0xF1A5);
    net.join_all(&mut rng);
    let publisher = (rng.next_u64() % 500) as u32;
    let mut blob = |len: usize| {
        let mut v = vec![0u8; len];
        rng.fill_bytes(&mut v);
        v
    };
    let files = vec![
        SiteFile::new("index.html", "text/html", blob(30_000)),
        SiteFile::new("css/style.css", "text/css", blob(8_000)),
        SiteFile::new("js/app.js", "text/javascript", blob(100_000)),
        SiteFile::new("img/hero.jpg", "image/jpeg", blob(600_000)),
    ];
    let site = net.command(publisher, |n, now| n.publish_site(now, files).unwrap());
    net.run_for(Duration::from_secs(10));
    let mut fetches = Vec::new();
    while fetches.len() < 300 {
        let who = (rng.next_u64() % 500) as u32;
        if who == publisher || fetches.iter().any(|&(w, _)| w == who) {
            continue;
        }
        let f = net.command(who, |n, now| n.fetch(now, site).unwrap());
        fetches.push((who, f));
        net.run_for(Duration::from_millis(10));
    }
    net.run_for(Duration::from_secs(300));
    let mut seconds = Vec::new();
    for &(who, f) in &fetches {
        match net.fetch_result(who, f) {
            Some((Ok(_), stats)) => seconds.push(stats.duration().as_secs_f64()),
            other => println!("fetch at {who} ended {other:?}"),
        }
    }
    seconds.sort_by(f64::total_cmp);
    Crowd {
        fetchers: fetches.len(),
        succeeded: seconds.len(),
        publisher_bytes: net.nodes[publisher as usize].counters().bytes_uploaded,
        total_bytes: net.nodes.iter().map(|n| n.counters().bytes_uploaded).sum(),
        seconds,
    }
}

impl Crowd {
    fn share(&self) -> f64 {
        self.publisher_bytes as f64 / self.total_bytes.max(1) as f64
    }

    fn report(&self, name: &str) {
        let pct = |p: f64| self.seconds[((self.seconds.len() - 1) as f64 * p) as usize];
        println!(
            "{name}: {}/{} fetched; publisher uploaded {} of {} bytes ({:.1}%); completion p50 {:.2}s p95 {:.2}s max {:.2}s",
            self.succeeded,
            self.fetchers,
            self.publisher_bytes,
            self.total_bytes,
            100.0 * self.share(),
            pct(0.5),
            pct(0.95),
            pct(1.0),
        );
    }
}

#[test]
fn a_flash_crowd_is_served_by_the_crowd() {
    let crowd = flash_crowd(Config::default(), 21);
    crowd.report("swarm");
    assert_eq!(crowd.succeeded, crowd.fetchers);
    assert!(crowd.share() < 0.1, "publisher share {}", crowd.share());
}

#[test]
fn origin_only_baseline_puts_every_byte_on_the_publisher() {
    let config = Config {
        crowd: CrowdConfig {
            serve_after_fetch: false,
            serve_partial: false,
            announce_fetching: false,
            ..Default::default()
        },
        ..Config::default()
    };
    let crowd = flash_crowd(config, 21);
    crowd.report("origin-only");
    assert_eq!(crowd.succeeded, crowd.fetchers);
    assert_eq!(crowd.publisher_bytes, crowd.total_bytes);
}

#[test]
fn each_flash_crowd_switch_alone_still_spares_the_publisher() {
    // Coral alone: fetchers announce themselves and hold requests until their
    // own fetch completes, but serve nothing partial.
    let coral = Config {
        crowd: CrowdConfig {
            serve_partial: false,
            ..Default::default()
        },
        ..Config::default()
    };
    // Neither: only complete downloaders serve (partial serving alone is inert,
    // since without "fetch in progress" records nobody finds a partial holder).
    let after_fetch = Config {
        crowd: CrowdConfig {
            announce_fetching: false,
            serve_partial: false,
            ..Default::default()
        },
        ..Config::default()
    };
    for (name, config) in [("coral-only", coral), ("after-fetch-only", after_fetch)] {
        let crowd = flash_crowd(config, 21);
        crowd.report(name);
        assert_eq!(crowd.succeeded, crowd.fetchers, "{name}");
        assert!(
            crowd.share() < 0.5,
            "{name}: publisher share {}",
            crowd.share()
        );
    }
}
