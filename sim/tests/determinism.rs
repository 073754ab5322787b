//! Same seed and config give the same trace and outputs; another seed does not.

use distroweb_protocol::{Metric, QueryKind, Strategy};
use distroweb_sim::{LookupScenario, Sim, SimConfig};

fn config(seed: u64, metric: Metric, strategy: Strategy) -> SimConfig {
    let mut c = SimConfig {
        seed,
        nodes: 150,
        ..SimConfig::default()
    };
    c.protocol.dht.metric = metric;
    c.protocol.dht.strategy = strategy;
    c
}

fn run(config: SimConfig) -> Sim {
    let mut scenario = LookupScenario::per_node(config.nodes);
    scenario.keys = 15;
    scenario.run(config, |_| {}).expect("valid config")
}

/// Everything a run reports, as text, so two runs can be compared field by field.
fn outputs(sim: &Sim) -> String {
    let m = sim.metrics();
    let mut out = format!("{:?}\n{:?}\n", sim.stats(), m.total_traffic());
    for kind in [
        QueryKind::Bootstrap,
        QueryKind::Announce,
        QueryKind::FindProviders,
    ] {
        let k = m.kind(kind);
        out += &format!(
            "{kind}: {} {} {} {:?} {} {} {}\n",
            k.issued,
            k.succeeded,
            k.wrong,
            k.failures,
            k.hops.mean(),
            k.latency_us.value_at_quantile(0.99),
            k.messages
        );
    }
    out.extend(m.upload_bytes().map(|b| format!("{b},")));
    out
}

#[test]
fn same_seed_same_digest_and_outputs_for_every_metric_and_strategy() {
    for &metric in Metric::ALL {
        for &strategy in Strategy::ALL {
            let a = run(config(7, metric, strategy));
            let b = run(config(7, metric, strategy));
            let c = run(config(8, metric, strategy));
            assert_eq!(a.digest(), b.digest(), "{metric}/{strategy:?}");
            assert_eq!(outputs(&a), outputs(&b), "{metric}/{strategy:?}");
            assert_ne!(a.digest(), c.digest(), "{metric}/{strategy:?}");
            let lookups = a.metrics().kind(QueryKind::FindProviders);
            assert_eq!(lookups.issued, 150);
            assert!(
                lookups.success_rate() >= 0.95,
                "{metric}/{strategy:?}: {lookups:?}"
            );
        }
    }
}

#[test]
fn the_codec_round_trip_changes_nothing() {
    for &strategy in Strategy::ALL {
        let plain = run(config(3, Metric::Xor, strategy));
        let mut c = config(3, Metric::Xor, strategy);
        c.network.codec_roundtrip = true;
        let checked = run(c);
        assert_eq!(plain.digest(), checked.digest(), "{strategy:?}");
    }
}
