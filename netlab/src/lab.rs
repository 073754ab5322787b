//! A lab: namespaces wired as a public network of hosts and routers, each
//! router with its own home network behind NAT.
//!
//! ```text
//!   public host 10.77.0.2 ─┐                 ┌─ router 10.77.0.100 ─ NAT ─ home 192.168.1.2
//!   public host 10.77.0.3 ─┼── bridge (hub) ─┤
//!                          …                 └─ router 10.77.0.101 ─ NAT ─ home 192.168.2.2
//! ```
//!
//! Public hosts and routers share one segment, so they reach one another
//! directly; a home host reaches the public network only through its router,
//! and nothing outside reaches a home but replies and forwarded ports. No
//! namespace has a route to anything else, so a test's traffic stays inside.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::command::{have, run, run_in, run_with_input};
use crate::igd::{PortMapping, Service, RULESET};
use crate::nat::{ruleset, Nat};
use crate::{Host, LabError};

/// Public hosts get 10.77.0.2 onwards, routers 10.77.0.100 onwards.
const PUBLIC_HOSTS: usize = 90;
/// Homes get 192.168.1.0/24 onwards.
const HOMES: usize = 100;
/// Every lab's namespaces start with this, then the process id.
const PREFIX: &str = "dwlab";

/// Labs made by this process so far, to name the next one apart.
static LABS: AtomicUsize = AtomicUsize::new(0);

/// A set of namespaces forming a public network and home networks; dropping
/// it deletes them all.
#[derive(Debug)]
pub struct Lab {
    /// Every namespace's name starts with this.
    name: String,
    /// The namespace holding the public segment's bridge.
    hub: String,
    /// Namespaces made so far, the hub first; deleted in reverse.
    namespaces: Vec<String>,
    /// Public hosts made so far.
    public_hosts: usize,
    /// Homes made so far.
    homes: usize,
    /// Port-mapping services running on routers, stopped before the
    /// namespaces go.
    services: Vec<Service>,
}

/// A home network: the router that is its public face, and the host inside.
#[derive(Clone, Debug)]
pub struct Home {
    /// The router; its address is the home's public address.
    pub router: Host,
    /// The host inside, at the home's private address.
    pub host: Host,
}

impl Lab {
    /// Makes an empty lab (the public segment only) for `test`, after
    /// deleting any left behind by processes that have exited.
    pub fn new(test: &str) -> Result<Lab, LabError> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err(LabError::Unavailable("not running as root".into()));
        }
        for tool in ["ip", "nft"] {
            if !have(tool) {
                return Err(LabError::Unavailable(format!(
                    "`{tool}` is not installed (apt-get install iproute2 nftables)"
                )));
            }
        }
        sweep_stale();
        let seq = LABS.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}-{}-{seq}", std::process::id());
        let hub = format!("{name}-hub");
        let mut lab = Lab {
            name,
            hub: hub.clone(),
            namespaces: Vec::new(),
            public_hosts: 0,
            homes: 0,
            services: Vec::new(),
        };
        lab.namespace(&hub).map_err(|e| match e {
            LabError::Failed { stderr, .. } => {
                LabError::Unavailable(format!("`ip netns add` failed for {test}: {stderr}"))
            }
            other => other,
        })?;
        run("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &hub, "link", "set", "br0", "up"])?;
        Ok(lab)
    }

    /// Adds a host on the public network.
    pub fn public_host(&mut self) -> Result<Host, LabError> {
        if self.public_hosts == PUBLIC_HOSTS {
            return Err(LabError::Full(PUBLIC_HOSTS));
        }
        let k = self.public_hosts;
        let addr = Ipv4Addr::new(10, 77, 0, 2 + k as u8);
        let namespace = format!("{}-pub{k}", self.name);
        self.namespace(&namespace)?;
        self.attach(&namespace, "eth0", &format!("p{k}"), addr)?;
        self.public_hosts += 1;
        Ok(Host { namespace, addr })
    }

    /// Adds a home network behind a router doing `nat`, with each TCP port
    /// in `forwards` forwarded from the router's public address to the host.
    pub fn home(&mut self, nat: Nat, forwards: &[u16]) -> Result<Home, LabError> {
        self.make_home(nat, forwards, None)
    }

    /// Adds a home network behind a router doing `nat` that forwards no port
    /// of its own but runs `miniupnpd` (`igd`), which forwards the ports the
    /// home's hosts ask for by `protocols`. Fails with
    /// [`LabError::Unavailable`] where `miniupnpd` is not installed.
    pub fn home_with_port_mapping(
        &mut self,
        nat: Nat,
        protocols: PortMapping,
    ) -> Result<Home, LabError> {
        self.make_home(nat, &[], Some(protocols))
    }

    fn make_home(
        &mut self,
        nat: Nat,
        forwards: &[u16],
        port_mapping: Option<PortMapping>,
    ) -> Result<Home, LabError> {
        if self.homes == HOMES {
            return Err(LabError::Full(HOMES));
        }
        let k = self.homes;
        let public = Ipv4Addr::new(10, 77, 0, 100 + k as u8);
        let gateway = Ipv4Addr::new(192, 168, 1 + k as u8, 1);
        let private = Ipv4Addr::new(192, 168, 1 + k as u8, 2);
        let router = format!("{}-rt{k}", self.name);
        let inside = format!("{}-home{k}", self.name);
        self.namespace(&router)?;
        self.namespace(&inside)?;
        self.attach(&router, "wan", &format!("r{k}"), public)?;
        run(
            "ip",
            &[
                "link", "add", "name", "lan", "netns", &router, "type", "veth", "peer", "name",
                "eth0", "netns", &inside,
            ],
        )?;
        address(&router, "lan", gateway)?;
        address(&inside, "eth0", private)?;
        run(
            "ip",
            &[
                "-n",
                &inside,
                "route",
                "add",
                "default",
                "via",
                &gateway.to_string(),
            ],
        )?;
        run_in(&router, "sysctl", &["-q", "-w", "net.ipv4.ip_forward=1"])?;
        let mut rules = ruleset(nat, private, forwards);
        if port_mapping.is_some() {
            rules.push_str(RULESET);
        }
        run_with_input(
            "ip",
            &["netns", "exec", &router, "nft", "-f", "-"],
            Some(&rules),
        )?;
        self.homes += 1;
        let home = Home {
            router: Host {
                namespace: router,
                addr: public,
            },
            host: Host {
                namespace: inside,
                addr: private,
            },
        };
        if let Some(protocols) = port_mapping {
            let name = format!("{}-igd{k}", self.name);
            let service = Service::start(&name, &home.router, gateway, protocols)?;
            self.services.push(service);
        }
        Ok(home)
    }

    /// Makes namespace `namespace` with its loopback up, to be deleted with the lab.
    fn namespace(&mut self, namespace: &str) -> Result<(), LabError> {
        run("ip", &["netns", "add", namespace])?;
        self.namespaces.push(namespace.to_owned());
        run("ip", &["-n", namespace, "link", "set", "lo", "up"])
    }

    /// Wires `namespace` to the public bridge through interface `inside`
    /// (the hub's end named `port`) and gives it `addr`.
    fn attach(
        &self,
        namespace: &str,
        inside: &str,
        port: &str,
        addr: Ipv4Addr,
    ) -> Result<(), LabError> {
        let hub = self.hub.as_str();
        run(
            "ip",
            &[
                "link", "add", "name", inside, "netns", namespace, "type", "veth", "peer", "name",
                port, "netns", hub,
            ],
        )?;
        run("ip", &["-n", hub, "link", "set", port, "master", "br0"])?;
        run("ip", &["-n", hub, "link", "set", port, "up"])?;
        address(namespace, inside, addr)
    }
}

/// Gives interface `dev` of `namespace` address `addr`/24 and brings it up.
fn address(namespace: &str, dev: &str, addr: Ipv4Addr) -> Result<(), LabError> {
    let cidr = format!("{addr}/24");
    run("ip", &["-n", namespace, "addr", "add", &cidr, "dev", dev])?;
    run("ip", &["-n", namespace, "link", "set", dev, "up"])
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.services.clear();
        for namespace in self.namespaces.iter().rev() {
            // Nothing to do about a failure here but leave it to the next
            // lab's sweep.
            let _ = run("ip", &["netns", "del", namespace]);
        }
    }
}

/// Deletes labs' namespaces whose process has exited (a test killed before
/// its drop ran).
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/var/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = run("ip", &["netns", "del", &name]);
        }
    }
}
