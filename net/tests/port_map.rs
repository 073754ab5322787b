//! Port mapping, for real: nodes at home behind NAT routers that run
//! `miniupnpd` (`distroweb-netlab`), one answering PCP/NAT-PMP only, one
//! UPnP-IGD only, none forwarding a port of its own. A node that asks gets
//! the router's public address and a port (its listen port, or another where
//! the router's is taken), advertises that, is found
//! reachable by the dial-backs of public peers, sits in their routing tables
//! at that address, and a public node that never met it dials it there. A
//! node at such a home that does not ask is found unreachable. A node that
//! stops deletes its mapping.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::lab::{found, start_with, InLab};
use distroweb_net::port_map::MappingProtocol;
use distroweb_net::reachability::Reachability;
use distroweb_net::NetConfig;
use distroweb_netlab::{require_port_mapping, Host, Nat, PortMapping};

/// Node `n`, probing its reachability quickly, asking for a port mapping or not.
fn probing(n: u8, port_mapping: bool) -> NetConfig {
    NetConfig {
        probe_reachability: true,
        reachability_probes: 2,
        reachability_timeout: Duration::from_secs(2),
        port_mapping,
        ..common::config(n)
    }
}

/// Whether `router`'s `miniupnpd` holds a forward (a DNAT rule) now.
fn forwards(router: &Host) -> bool {
    let out = router
        .command("nft")
        .args(["list", "chain", "inet", "miniupnpd", "prerouting_miniupnpd"])
        .output()
        .expect("nft runs");
    assert!(out.status.success(), "nft lists miniupnpd's chain");
    String::from_utf8_lossy(&out.stdout).contains("dnat")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_router_maps_its_port_is_found_reachable() {
    let Some(mut lab) = require_port_mapping("a_node_whose_router_maps_its_port") else {
        return;
    };
    let (p, q) = (
        lab.public_host().expect("host"),
        lab.public_host().expect("host"),
    );
    let by_pmp = lab
        .home_with_port_mapping(Nat::EndpointIndependent, PortMapping::NatPmp)
        .expect("a home whose router answers PCP and NAT-PMP");
    let by_upnp = lab
        .home_with_port_mapping(Nat::EndpointIndependent, PortMapping::Upnp)
        .expect("a home whose router answers UPnP-IGD");
    let not_asked = lab
        .home_with_port_mapping(Nat::EndpointIndependent, PortMapping::All)
        .expect("a home whose router answers all three");
    assert!(!forwards(&by_pmp.router), "no forward before a node asks");
    // The UPnP router's own port 4100 is taken, so it forwards another.
    let router_ip = by_upnp.router.addr();
    let _taken = by_upnp
        .router
        .spawn(move || std::net::TcpListener::bind((router_ip, 4100)))
        .join()
        .expect("the thread runs")
        .expect("enters the router")
        .expect("binds");

    let seed = start_with(&p, common::config(1)).await;
    let other = start_with(&q, common::config(2)).await;
    other
        .handle
        .bootstrap(vec![seed.addr])
        .await
        .expect("joins");
    let seeds = vec![seed.addr, other.addr];

    let pmp = start_with(&by_pmp.host, probing(3, true)).await;
    let upnp = start_with(&by_upnp.host, probing(4, true)).await;
    let unmapped = start_with(&not_asked.host, probing(5, false)).await;
    let external = |node: &InLab| node.handle.advertised_addr();
    let mapped = [
        (&pmp, by_pmp.router.addr(), MappingProtocol::Pcp, 6),
        (&upnp, by_upnp.router.addr(), MappingProtocol::Upnp, 7),
    ];
    for (node, router, protocol, _) in mapped {
        let status = node.handle.status().await.expect("status");
        let mapping = status
            .port_mapping
            .mapping
            .expect("the router mapped the port");
        assert_eq!(mapping.protocol, protocol);
        assert_eq!(
            mapping.external.ip(),
            IpAddr::V4(router),
            "the router's address"
        );
        let external = mapping.external;
        if protocol == MappingProtocol::Upnp {
            assert_ne!(
                external.port(),
                4100,
                "another port, the router's being taken"
            );
        } else {
            assert_eq!(external.port(), 4100, "the listen port");
        }
        assert_eq!(mapping.lease, Some(Duration::from_secs(3600)));
        assert!(mapping.expires_in > Some(Duration::from_secs(3500)));
        assert_eq!(node.handle.advertised_addr(), external, "advertised");
        assert_eq!(status.advertised, external);
        assert_eq!(
            (status.port_mapping.attempts, status.port_mapping.successes),
            (1, 1)
        );
    }
    let status = unmapped.handle.status().await.expect("status");
    assert_eq!(status.port_mapping.mapping, None);
    assert_eq!(status.port_mapping.attempts, 0, "port mapping is off");

    for node in [&pmp, &upnp, &unmapped] {
        node.handle.bootstrap(seeds.clone()).await.expect("joins");
    }
    let t = Duration::from_secs(10);
    for (node, _, protocol, _) in mapped {
        assert!(
            found(node, Reachability::Public, t).await,
            "dial-backs reach the node through its {protocol} mapping"
        );
    }
    assert!(
        found(&unmapped, Reachability::Private, t).await,
        "without a mapping the same router lets no dial-back in"
    );

    // Public nodes hold the mapped nodes at their routers' addresses, and
    // one that never met them dials them there.
    for (node, _, _, n) in mapped {
        let external = external(node);
        let id = node.handle.id();
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let status = seed.handle.status().await.expect("status");
            if status
                .peers
                .iter()
                .any(|c| c.id == id && c.addr == external)
            {
                break;
            }
            assert!(
                Instant::now() < end,
                "{external} is not in the seed's table"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let host = lab.public_host().expect("host");
        let stranger = start_with(&host, common::config(n)).await;
        stranger
            .handle
            .bootstrap(vec![external])
            .await
            .expect("a public node joins through the mapped node alone");
    }

    // A node that stops asks its router to forget the mapping.
    assert!(forwards(&by_pmp.router));
    drop(pmp);
    let end = Instant::now() + Duration::from_secs(5);
    while forwards(&by_pmp.router) {
        assert!(Instant::now() < end, "the mapping outlived the node");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
