//! `distroweb testnet --bench`: a few nodes publish a few pages each, then
//! provider lookups for them from random other nodes are timed one after
//! another through the node's public API, and their latency percentiles printed.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use distroweb_net::NodeHandle;
use distroweb_protocol::{Id, QueryOutput};
use tokio::task::JoinSet;

/// Nodes that publish (spread evenly over the testnet).
const PUBLISHERS: usize = 8;
/// Pages each publisher publishes.
const PAGES: usize = 4;

/// Publishes, looks up `lookups` times with asking nodes and keys drawn from
/// `seed`, prints the figures; an error if a lookup missed its publisher.
pub async fn run(nodes: &[NodeHandle], lookups: u32, seed: u64) -> anyhow::Result<()> {
    let n = nodes.len();
    let publishers: Vec<usize> = (0..PUBLISHERS.min(n))
        .map(|p| p * n / PUBLISHERS.min(n))
        .collect();
    let began = Instant::now();
    let mut tasks = JoinSet::new();
    for &p in &publishers {
        let node = nodes[p].clone();
        tasks.spawn(async move {
            let mut published = Vec::new();
            for page in 0..PAGES {
                let html = format!("<h1>testnet bench: node {p}, page {page}, seed {seed}</h1>");
                let done = node
                    .publish_file(Bytes::from(html), "text/html".to_string())
                    .await
                    .with_context(|| format!("node {p} publishing"))?;
                published.push((done.id, p, done.stored_at));
            }
            anyhow::Ok(published)
        });
    }
    let mut pages: Vec<(Id, usize, usize)> = Vec::new();
    while let Some(done) = tasks.join_next().await {
        pages.extend(done.context("a publisher panicked")??);
    }
    // Task completion order varies: sort, so a seed picks the same lookups.
    pages.sort_unstable_by_key(|(_, p, _)| *p);
    let mut stored: Vec<usize> = pages.iter().map(|(_, _, s)| *s).collect();
    stored.sort_unstable();
    println!(
        "published {} pages from {} nodes in {} ms; provider records stored at min {}, median {} nodes",
        pages.len(),
        publishers.len(),
        began.elapsed().as_millis(),
        stored.first().copied().unwrap_or(0),
        stored.get(stored.len() / 2).copied().unwrap_or(0),
    );

    let mut rng = SplitMix(seed);
    let mut latencies = Vec::with_capacity(lookups as usize);
    let (mut found, mut hops, mut requests) = (0u32, 0u64, 0u64);
    let mut misses = Vec::new();
    for _ in 0..lookups {
        let (key, publisher, _) = pages[rng.below(pages.len())];
        // Any node but the publisher, which would find itself without asking.
        let asker = (publisher + 1 + rng.below(n - 1)) % n;
        let started = Instant::now();
        let result = nodes[asker].find_providers(key).await;
        latencies.push(started.elapsed());
        match result {
            Ok(done) => {
                hops += u64::from(done.stats.hops);
                requests += u64::from(done.stats.requests);
                let publisher_id = nodes[publisher].id();
                if matches!(&done.output, QueryOutput::Providers(p) if p.iter().any(|c| c.id == publisher_id))
                {
                    found += 1;
                } else {
                    misses.push(format!(
                        "node {asker} for node {publisher}'s page: found {:?}",
                        done.output
                    ));
                }
            }
            Err(e) => misses.push(format!(
                "node {asker} for node {publisher}'s page: {}",
                distroweb_net::Chain(&e)
            )),
        }
    }
    latencies.sort_unstable();
    println!(
        "{found} of {lookups} provider lookups from random nodes found the publisher; latency p50 {}, p90 {}, p99 {}, max {}; mean {:.2} hops, {:.1} requests",
        ms(percentile(&latencies, 50)),
        ms(percentile(&latencies, 90)),
        ms(percentile(&latencies, 99)),
        ms(latencies.last().copied().unwrap_or_default()),
        hops as f64 / f64::from(lookups),
        requests as f64 / f64::from(lookups),
    );
    if let Some(first) = misses.first() {
        anyhow::bail!(
            "{} of {lookups} lookups missed (first: {first})",
            misses.len()
        );
    }
    Ok(())
}

/// The `p`th percentile of `sorted` (nearest rank).
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// SplitMix64: a seed in, a well-spread stream out; a bench needs nothing more.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0), bias under 2^-40 for any n a testnet has.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 50), Duration::from_millis(100));
        assert_eq!(percentile(&d, 99), Duration::from_millis(198));
        assert_eq!(percentile(&d[..1], 99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }
}
