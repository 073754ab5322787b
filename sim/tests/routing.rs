//! Recursive routing under the Hamming metric, at a size where greedy forwarding
//! gets stuck at local minima (docs/RESULTS.md, hops): the best-first rule must
//! find what it looks for.

use distroweb_protocol::{Forwarding, Metric, QueryKind, Strategy};
use distroweb_sim::{LookupScenario, SimConfig};

const NODES: u32 = 3_000;

fn hamming_recursive(forwarding: Option<Forwarding>) -> f64 {
    let mut c = SimConfig {
        seed: 5,
        nodes: NODES,
        ..SimConfig::default()
    };
    c.protocol.dht.metric = Metric::Hamming;
    c.protocol.dht.strategy = Strategy::Recursive;
    c.protocol.routing.route_forwarding = forwarding;
    let scenario = LookupScenario {
        lookups: Some(400),
        ..LookupScenario::per_node(NODES)
    };
    let sim = scenario.run(c, |_| {}).expect("valid config");
    let k = sim.metrics().kind(QueryKind::FindProviders);
    assert_eq!(k.issued, 400);
    k.success_rate()
}

#[test]
fn hamming_recursive_lookups_succeed_where_greedy_gets_stuck() {
    let rate = hamming_recursive(None);
    assert!(rate >= 0.99, "best-first: success {rate}");
}
