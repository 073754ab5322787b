//! A busy run stays within the memory bound its configuration states: every
//! node's collections, sampled throughout, against `Config::memory_bound`.

use core::time::Duration;
use std::collections::BTreeMap;

use distroweb_protocol::{nonzero, Basis, MemoryReport, Metric, Strategy, Time};
use distroweb_sim::{Askers, NodeIdx, Popularity, Sim, SimConfig, Window, Workload};

/// 150 nodes whose lookups walk as `strategy` says under `metric`, with bounds
/// low enough that some are reached.
fn busy(metric: Metric, strategy: Strategy) -> SimConfig {
    let mut config = SimConfig {
        seed: 11,
        nodes: 150,
        ..SimConfig::default()
    };
    let p = &mut config.protocol;
    p.dht.metric = metric;
    p.dht.strategy = strategy;
    p.transfer.chunk_size = 16 * 1024;
    p.transfer.max_uploads = nonzero!(2);
    p.transfer.upload_bytes_per_s = nonzero!(1_250_000);
    p.crowd.max_held_requests = 8;
    p.dht.max_lookup_candidates = nonzero!(40);
    // 150 simulated nodes make only 10 address groups; the diversity limits
    // would keep buckets from filling, and this test must see them full (and
    // their replacement lists in use) to check the bound on both.
    p.routing.max_contacts_per_group_per_bucket = nonzero!(64);
    p.routing.max_contacts_per_group = nonzero!(1024);
    config
}

/// The most of each term any node held at any sample, with who and when.
#[derive(Default)]
struct Peaks {
    most: BTreeMap<&'static str, (u64, NodeIdx, Time)>,
    /// The most peers one node's queries had asked, on average per query.
    asked_per_query: u64,
}

impl Peaks {
    fn sample(&mut self, sim: &Sim) {
        let k = sim.config().protocol.dht.k.get() as u64;
        for i in 0..sim.len() as u32 {
            let Some(node) = sim.node(NodeIdx(i)) else {
                continue;
            };
            let usage = node.memory_usage();
            // The assumption behind `queries.asked`, query by query on average.
            let asked = usage.term("queries.asked").map_or(0, |t| t.items);
            let running = node.queries_running() as u64;
            assert!(
                asked <= running * 4 * k,
                "{asked} asked in {running} queries"
            );
            self.asked_per_query = self.asked_per_query.max(asked.div_ceil(running.max(1)));
            for t in usage.terms {
                let peak = self
                    .most
                    .entry(t.name)
                    .or_insert((0, NodeIdx(i), sim.now()));
                if t.items > peak.0 {
                    *peak = (t.items, NodeIdx(i), sim.now());
                }
            }
        }
    }

    fn of(&self, name: &str) -> u64 {
        self.most.get(name).map_or(0, |p| p.0)
    }
}

/// 150 nodes join; 200 keys are announced and looked up; two publishers put
/// out a file each, which 100 nodes fetch in a flash crowd. Every node's
/// collections are sampled every 25 ms of virtual time.
fn stays_within_the_bound(config: SimConfig) -> (Peaks, MemoryReport) {
    let bound: MemoryReport = config.protocol.memory_bound::<NodeIdx>();
    assert!(bound.bytes() <= config.protocol.memory_bound_bytes());
    let mut sim = Sim::new(config).expect("valid config");
    let mut w = Workload::new(&sim);
    let joined = w.grow(&mut sim, 150, Time::ZERO, Duration::from_millis(20), 3);
    let window = Window::new(joined + Duration::from_secs(5), Duration::from_secs(10));
    let keys = w.publish(&mut sim, 200, 150, window);
    let later = Window::new(window.end(), Duration::from_secs(10));
    w.lookups(
        &mut sim,
        &keys,
        Askers::Random(300),
        150,
        Popularity::Uniform,
        later,
    );
    let at = later.end();
    let files: Vec<_> = [(NodeIdx(3), 600_000), (NodeIdx(4), 250_000)]
        .into_iter()
        .map(|(node, len)| {
            let data = w.content(len);
            w.publish_file(&mut sim, node, at, data, "text/html")
                .expect("a file")
        })
        .collect();
    let crowd = Window::new(at + Duration::from_secs(5), Duration::from_secs(3));
    for (root, publisher) in files.iter().zip([NodeIdx(3), NodeIdx(4)]) {
        w.fetch_crowd(&mut sim, *root, 50, 150, Some(publisher), crowd);
    }
    let end = crowd.end() + Duration::from_secs(120);

    let mut peaks = Peaks::default();
    while sim.now() < end {
        sim.run_for(Duration::from_millis(25));
        peaks.sample(&sim);
    }

    let fetches = &sim.metrics().fetches;
    assert_eq!(
        (fetches.issued, fetches.succeeded),
        (100, 100),
        "{fetches:?}"
    );
    for term in &bound.terms {
        let (used, node, when) =
            peaks
                .most
                .get(term.name)
                .copied()
                .unwrap_or((0, NodeIdx(0), Time::ZERO));
        eprintln!(
            "{:26} {:8?} most {:>9} of {:>12} items ({node:?} at {when:?})",
            term.name, term.basis, used, term.items
        );
        assert!(
            used <= term.items,
            "{}: {used} items at {node:?} at {when:?}, bound {} ({})",
            term.name,
            term.items,
            term.note
        );
    }
    eprintln!(
        "most peers asked per query, on average over a node's queries: {}",
        peaks.asked_per_query
    );
    // Whole nodes: the most bytes any node used at a sample stays under the bound.
    let most = (0..sim.len() as u32)
        .filter_map(|i| sim.node(NodeIdx(i)))
        .map(|n| n.memory_usage().bytes())
        .max()
        .unwrap_or(0);
    assert!(0 < most && most < bound.bytes());
    let assumed = bound
        .terms
        .iter()
        .filter(|t| t.basis == Basis::Assumed)
        .count();
    assert!(assumed > 0 && bound.enforced_bytes() < bound.bytes());
    (peaks, bound)
}

#[test]
fn iterative_xor_nodes_stay_within_the_memory_bound_of_their_config() {
    let (peaks, bound) = stays_within_the_bound(busy(Metric::Xor, Strategy::Iterative));
    assert_eq!(peaks.of("pending.forwards"), 0);
    // The crowd reached the bounds on uploads and held requests.
    let full = |name: &str| Some(peaks.of(name)) == bound.term(name).map(|t| t.items);
    assert!(full("transfer.uploads") && full("crowd.held"));
    // The run was busy: it filled many collections.
    for name in [
        "routing.contacts",
        "routing.replacements",
        "queries.shortlist",
        "queries.asked",
        "queries.providers",
        "pending",
        "records.providers",
        "records.provided",
        "crowd.fetching_records",
        "transfer.sources",
        "transfer.slots",
        "transfer.manifest_chunks",
        "storage.blocks",
        "storage.partial",
        "storage.in_flight",
        "storage.reads",
        "storage.queue",
        "storage.writes",
        "storage.write_bytes",
        "content.root_blocks",
        "queues.transmits",
        "queues.transmit_blocks",
        "queues.events",
    ] {
        assert!(peaks.of(name) > 0, "{name} stayed empty");
    }
}

#[test]
fn recursive_hamming_nodes_stay_within_the_memory_bound_of_their_config() {
    let (peaks, _) = stays_within_the_bound(busy(Metric::Hamming, Strategy::Recursive));
    for name in ["pending.forwards", "transfer.slots", "queues.transmits"] {
        assert!(peaks.of(name) > 0, "{name} stayed empty");
    }
}
