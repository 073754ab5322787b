//! A 10,000-node run: every node joins, a thousand keys are announced, every node
//! looks one up, and the overlay stays in one piece.

use distroweb_protocol::QueryKind;
use distroweb_sim::{LookupScenario, NodeIdx, Overlay, SimConfig};

#[test]
fn ten_thousand_nodes_find_what_was_published() {
    let n = 10_000;
    let mut config = SimConfig {
        seed: 42,
        nodes: n,
        ..SimConfig::default()
    };
    // Joins do their self-lookup only (no bucket refreshes), as in the scale
    // experiment; this keeps the test to a few seconds.
    config.protocol.dht.join_refreshes = 0;
    let sim = LookupScenario::per_node(n)
        .run(config, |_| {})
        .expect("valid config");
    assert_eq!(sim.up_count(), n as usize);
    let m = sim.metrics();
    let boot = m.kind(QueryKind::Bootstrap);
    assert_eq!(
        (boot.issued, boot.succeeded),
        (u64::from(n) - 1, u64::from(n) - 1)
    );
    assert_eq!(m.kind(QueryKind::Announce).succeeded, 1_000);
    let lookups = m.kind(QueryKind::FindProviders);
    assert_eq!(lookups.finished, u64::from(n));
    assert!(lookups.success_rate() >= 0.999, "{lookups:?}");
    assert_eq!(lookups.wrong, 0);
    let log2n = f64::from(n).log2();
    assert!(lookups.hops.mean() > 1.0 && lookups.hops.mean() < log2n);
    // Latencies are King-like: a lookup takes a few round trips of ~150 ms.
    let p50_ms = lookups.latency_us.value_at_quantile(0.5) / 1_000;
    assert!((150..1_500).contains(&p50_ms), "p50 {p50_ms} ms");
    assert!(sim.node(NodeIdx(0)).is_some());
    let overlay = Overlay::of(&sim).stats();
    assert_eq!(overlay.nodes, n as usize);
    assert_eq!(overlay.scc_count, 1, "the overlay split: {overlay:?}");
    assert_eq!(overlay.in_degree.first(), Some(&0), "a node nobody knows");
}
