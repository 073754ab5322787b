//! Churn, loss, partitions, dead peers, adversarial wrappers and the progress check.

use core::time::Duration;

use distroweb_protocol::{QueryKind, Time};
use distroweb_sim::{
    Action, ChurnConfig, DeadPeer, Distribution, LookupScenario, NodeIdx, Partition, Rejoin, Sim,
    SimConfig, Unresponsive, Window, Workload,
};

fn config(nodes: u32) -> SimConfig {
    SimConfig {
        seed: 5,
        nodes,
        ..SimConfig::default()
    }
}

/// Grows `nodes` nodes, publishes ten keys, and returns the simulator and keys.
fn grown(config: SimConfig) -> (Sim, Vec<distroweb_protocol::Id>) {
    let n = config.nodes;
    let mut sim = Sim::new(config).expect("valid config");
    let mut w = Workload::new(&sim);
    let end = w.grow(&mut sim, n, Time::ZERO, Duration::from_millis(20), 3);
    sim.run_until(end + Duration::from_secs(20));
    let start = sim.now();
    let keys = w.publish(&mut sim, 10, n, Window::new(start, Duration::from_secs(5)));
    sim.run_for(Duration::from_secs(30));
    (sim, keys)
}

fn look_up(sim: &mut Sim, keys: &[distroweb_protocol::Id], count: u32) {
    let mut w = Workload::new(sim);
    let n = sim.len() as u32;
    let start = sim.now();
    w.lookups(
        sim,
        keys,
        distroweb_sim::workload::Askers::Random(count),
        n,
        distroweb_sim::Popularity::Uniform,
        Window::new(start, Duration::from_secs(20)),
    );
    sim.run_for(Duration::from_secs(90));
}

#[test]
fn lookups_survive_weibull_churn_with_and_without_state() {
    for rejoin in [Rejoin::LoseState, Rejoin::KeepStore] {
        let mut c = config(300);
        c.churn = Some(ChurnConfig {
            session: Distribution::weibull_with_median(0.5, 600.0),
            downtime: Distribution::weibull_with_median(0.5, 120.0),
            rejoin,
            rejoin_seeds: 3,
        });
        let (mut sim, keys) = grown(c.clone());
        look_up(&mut sim, &keys, 300);
        let up = sim.up_count();
        assert!(up < 300 && up > 150, "{rejoin:?}: {up} up");
        let lookups = sim.metrics().kind(QueryKind::FindProviders);
        // Lookups by nodes that were down are skipped, not failed.
        assert!(lookups.skipped > 0, "{rejoin:?}: {lookups:?}");
        assert!(lookups.success_rate() > 0.7, "{rejoin:?}: {lookups:?}");
        // A node that is down keeps its state only with KeepStore.
        let down = (0..300)
            .map(NodeIdx)
            .find(|n| !sim.is_up(*n))
            .expect("someone is down");
        let kept = sim
            .node(down)
            .is_some_and(|n| !n.routing_table().is_empty());
        assert_eq!(kept, rejoin == Rejoin::KeepStore, "{rejoin:?}");
        // And churn is as deterministic as the rest.
        let (mut again, keys) = grown(c);
        look_up(&mut again, &keys, 300);
        assert_eq!(sim.digest(), again.digest());
    }
}

#[test]
fn independent_loss_costs_retries_not_lookups() {
    let mut c = config(200);
    c.network.loss_rate = 0.05;
    let (mut sim, keys) = grown(c);
    look_up(&mut sim, &keys, 200);
    assert!(sim.stats().lost > 100, "{:?}", sim.stats());
    let lookups = sim.metrics().kind(QueryKind::FindProviders);
    assert!(lookups.success_rate() >= 0.95, "{lookups:?}");
}

#[test]
fn a_partition_cuts_traffic_only_while_it_lasts() {
    let mut c = config(200);
    c.network.partitions = vec![Partition {
        start: Duration::from_secs(25),
        end: Duration::from_secs(50),
        island: 0..100,
    }];
    let (mut sim, keys) = grown(c);
    assert!(sim.now() > Time::from_secs(50));
    let cut = sim.stats().partitioned;
    assert!(
        cut > 0,
        "announcements crossed the cut during the partition"
    );
    look_up(&mut sim, &keys, 200);
    assert_eq!(sim.stats().partitioned, cut, "traffic cut after healing");
}

#[test]
fn refused_sends_fail_fast_and_silent_ones_time_out() {
    for dead_peer in [DeadPeer::Silent, DeadPeer::Refused] {
        let mut c = config(200);
        c.network.dead_peer = dead_peer;
        let (mut sim, keys) = grown(c);
        for i in (0..200).step_by(4) {
            sim.crash(NodeIdx(i));
        }
        look_up(&mut sim, &keys, 200);
        assert!(sim.stats().to_dead > 0);
        assert_eq!(
            sim.stats().send_failures > 0,
            dead_peer == DeadPeer::Refused,
            "{:?}",
            sim.stats()
        );
        let lookups = sim.metrics().kind(QueryKind::FindProviders);
        assert!(lookups.success_rate() >= 0.9, "{dead_peer:?}: {lookups:?}");
    }
}

#[test]
fn unresponsive_nodes_are_routed_around() {
    let (mut sim, keys) = grown(config(200));
    for i in (1..200).step_by(10) {
        sim.set_behaviour(NodeIdx(i), Box::new(Unresponsive));
    }
    look_up(&mut sim, &keys, 200);
    assert!(sim.stats().intercepted > 0);
    let lookups = sim.metrics().kind(QueryKind::FindProviders);
    assert!(lookups.success_rate() >= 0.9, "{lookups:?}");
}

#[test]
#[should_panic(expected = "no progress")]
fn too_many_events_at_one_instant_is_caught() {
    let mut c = config(10);
    c.max_events_per_instant = 50;
    let mut sim = Sim::new(c).expect("valid config");
    sim.set_reproduce("cargo test -p distroweb-sim --test faults too_many_events");
    for _ in 0..100 {
        sim.schedule(
            Time::from_secs(1),
            Action::FindNode {
                node: NodeIdx(0),
                target: distroweb_protocol::Id::ZERO,
            },
        );
    }
    sim.run_until(Time::from_secs(2));
}

#[test]
fn scenario_runs_are_complete() {
    let sim = LookupScenario::per_node(100)
        .run(config(100), |_| {})
        .expect("valid config");
    let k = sim.metrics().kind(QueryKind::FindProviders);
    assert_eq!(k.issued, 100);
    assert_eq!(k.finished, 100, "every lookup ends within the tail");
    assert_eq!(sim.in_flight(), 0);
}

/// The `deliver_stale` fault hands a node's new run a reply meant for its
/// previous one (a live node restarted at the same address sees exactly this).
/// The node must refuse it: its request ids start at a random point of its new
/// stream, so the stale reply matches nothing, and its bootstrap waits for the
/// reply to its own request. (The seed restarted ids at 0, so the stale reply
/// to the old run's bootstrap was taken for the new run's.)
#[test]
fn a_reply_meant_for_a_previous_run_is_refused() {
    use distroweb_protocol::{Event, Misbehaviour, QueryKind};
    use distroweb_sim::Seeds;
    let (a, b) = (NodeIdx(0), NodeIdx(1));
    let mut c = config(2);
    c.keep_events = true;
    c.network.deliver_stale = true;
    let one_way = Sim::new(c.clone())
        .expect("valid")
        .network()
        .placement()
        .one_way_us(a, b);
    let rtt = Duration::from_micros(2 * one_way);
    c.churn = Some(ChurnConfig {
        session: Distribution::Fixed { secs: 1e6 },
        // Back up after b has answered the old run, before that answer arrives.
        downtime: Distribution::Fixed {
            secs: rtt.as_secs_f64() * 0.75,
        },
        rejoin: Rejoin::LoseState,
        rejoin_seeds: 1,
    });
    let mut sim = Sim::new(c).expect("valid");
    sim.schedule(
        Time::ZERO,
        Action::Join {
            node: b,
            seeds: Seeds::Alone,
        },
    );
    let t0 = Time::from_secs(1);
    sim.schedule(
        t0,
        Action::Join {
            node: a,
            seeds: Seeds::List(vec![b]),
        },
    );
    sim.run_until(t0);
    // a has sent its bootstrap request to b; it crashes before the reply.
    sim.crash(a);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.stats().stale_delivered, 1, "{:?}", sim.stats());
    let events = sim.take_events();
    let refused: Vec<Time> = events
        .iter()
        .filter(|(_, n, e)| {
            *n == a
                && matches!(
                    e,
                    Event::PeerMisbehaved {
                        reason: Misbehaviour::UnsolicitedReply,
                        ..
                    }
                )
        })
        .map(|(t, _, _)| *t)
        .collect();
    let joins: Vec<(Time, Duration)> = events
        .iter()
        .filter_map(|(t, n, e)| match e {
            Event::QueryFinished {
                kind: QueryKind::Bootstrap,
                result: Ok(_),
                stats,
                ..
            } if *n == a => Some((*t, stats.finished.saturating_since(stats.started))),
            _ => None,
        })
        .collect();
    // The stale reply arrives one round trip after the first request: refused then.
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0] >= t0 + rtt && refused[0] < t0 + rtt + rtt / 4,
        "{refused:?}"
    );
    // The new run's bootstrap finished on its own reply, a whole round trip after it asked.
    assert_eq!(joins.len(), 1, "{joins:?}");
    assert!(
        joins[0].1 >= rtt,
        "joined after {:?}, rtt {rtt:?}",
        joins[0].1
    );
}
