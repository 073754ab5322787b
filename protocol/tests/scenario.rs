//! Hundreds of nodes looking each other up through an in-memory network.

mod common;

use std::time::Duration;

use common::Net;
use distroweb_protocol::{Config, Event, Id, Metric, QueryError, QueryKind, QueryOutput, Strategy};
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
        metric,
        strategy,
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
fn xor_iterative_lookups_succeed() {
    check(500, Metric::Xor, Strategy::Iterative, 0.999);
}

#[test]
fn xor_recursive_lookups_succeed() {
    check(500, Metric::Xor, Strategy::Recursive, 0.99);
}

#[test]
fn hamming_iterative_lookups_succeed() {
    check(500, Metric::Hamming, Strategy::Iterative, 0.99);
}

#[test]
fn hamming_recursive_lookups_succeed() {
    check(500, Metric::Hamming, Strategy::Recursive, 0.99);
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
