//! Publications and fetching flash crowds, driven through actions.

use core::time::Duration;

use distroweb_protocol::Time;
use distroweb_sim::{NodeIdx, Sim, SimConfig, Window, Workload};

/// 200 nodes; node 3 publishes 300 kB, 120 others fetch it within 5 s.
fn crowd(serve: bool) -> Sim {
    let mut config = SimConfig {
        seed: 5,
        nodes: 200,
        ..SimConfig::default()
    };
    config.protocol.transfer.chunk_size = 32 * 1024;
    config.protocol.crowd.serve_after_fetch = serve;
    config.protocol.crowd.announce_fetching = serve;
    config.protocol.crowd.serve_partial = serve;
    let mut sim = Sim::new(config).expect("valid config");
    let mut w = Workload::new(&sim);
    let end = w.grow(&mut sim, 200, Time::ZERO, Duration::from_millis(20), 3);
    let publisher = NodeIdx(3);
    let data = w.content(300_000);
    let at = end + Duration::from_secs(10);
    let root = w
        .publish_file(&mut sim, publisher, at, data, "text/html")
        .expect("a valid file");
    let window = Window::new(at + Duration::from_secs(10), Duration::from_secs(5));
    let fetchers = w.fetch_crowd(&mut sim, root, 120, 200, Some(publisher), window);
    assert_eq!(fetchers.len(), 120);
    assert!(!fetchers.contains(&publisher));
    sim.run_until(window.end() + Duration::from_secs(300));
    assert!(sim.node(publisher).is_some_and(|n| n.holds(&root)));
    sim
}

#[test]
fn a_fetching_crowd_is_measured_and_serves_itself() {
    let swarm = crowd(true);
    let f = &swarm.metrics().fetches;
    assert_eq!((f.published, f.issued, f.finished), (1, 120, 120), "{f:?}");
    assert_eq!(f.succeeded, 120, "{:?}", f.failures);
    assert!(f.completion_us.value_at_quantile(0.5) > 0);
    let origin = f.served_by(NodeIdx(3));
    assert!(origin * 4 < f.bytes, "origin {origin} of {}", f.bytes);

    let baseline = crowd(false);
    let b = &baseline.metrics().fetches;
    assert_eq!(b.succeeded, 120, "{:?}", b.failures);
    assert_eq!(b.served_by(NodeIdx(3)), b.bytes, "only the origin serves");
    assert!(b.bytes >= 120 * 300_000);
}
