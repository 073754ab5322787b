//! Asking the home router to forward this node's port: PCP or NAT-PMP, else
//! UPnP-IGD.
//!
//! A node behind a home NAT can be dialled only where its router forwards a
//! port to it, and many routers do so on request: PCP (RFC 6887) and its
//! predecessor NAT-PMP (RFC 6886), a few bytes over UDP to the default
//! gateway (`crab_nat`, which tries PCP and falls back to NAT-PMP), or
//! UPnP-IGD, SSDP discovery on the LAN and then SOAP `AddPortMapping` to the
//! router's web server (`igd-next`). [`map`] asks for a TCP mapping of the
//! listen port, the UPnP discovery running while PCP/NAT-PMP is asked, all
//! within `NetConfig::port_mapping_timeout`; it makes at most one mapping.
//! [`keep`] renews the lease at half its length and deletes the mapping at
//! shutdown (best effort, within a short timeout).
//!
//! The node then advertises the router's address and the mapped port, so the
//! port it states in every handshake is the one that reaches it from outside:
//! a dial-back (`reachability`) goes to the IP a connection came from (the
//! router's) at that port, through the forward, and finds the node public.
//!
//! Implementation note: the advertised address is fixed when the node starts
//! (the protocol's `Node` and the handshake carry it), so the mapping is made
//! before, and a start waits for the router (a few seconds at most). The
//! external port asked for is the listen port; a router may give another,
//! which is then the one advertised. A renewal asks for the same external
//! port again; a router that refuses, or gives another, has lost the mapping:
//! the node says so in its log and status and keeps asking, but does not
//! advertise a new address while it runs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::num::NonZeroU16;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crab_nat::{InternetProtocol, PortMappingOptions, PortMappingType, TimeoutConfig};
use igd_next::aio::tokio::Tokio;
use igd_next::aio::Gateway;
use igd_next::{AddAnyPortError, AddPortError, PortMappingProtocol, SearchOptions};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::NetConfig;

/// How a mapping was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MappingProtocol {
    /// The Port Control Protocol (RFC 6887).
    Pcp,
    /// NAT-PMP (RFC 6886).
    NatPmp,
    /// UPnP Internet Gateway Device (SSDP and SOAP).
    Upnp,
}

impl std::fmt::Display for MappingProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MappingProtocol::Pcp => "PCP",
            MappingProtocol::NatPmp => "NAT-PMP",
            MappingProtocol::Upnp => "UPnP-IGD",
        })
    }
}

/// A port the router forwards to this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortMapping {
    /// How it was asked for.
    pub protocol: MappingProtocol,
    /// The router's public address and the forwarded port: what the node advertises.
    pub external: SocketAddr,
    /// The lease the router granted; `None` for a permanent mapping (some
    /// UPnP routers grant no other).
    pub lease: Option<Duration>,
    /// Time left on the lease when the snapshot was taken.
    pub expires_in: Option<Duration>,
}

/// Port mapping as the status page shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortMapStatus {
    /// The mapping the router holds now, if any.
    pub mapping: Option<PortMapping>,
    /// Requests for a mapping (first asks and renewals) since the node started.
    pub attempts: u64,
    /// Those the router granted.
    pub successes: u64,
}

/// Why no mapping was made (or kept).
#[derive(Debug, thiserror::Error)]
pub enum PortMapError {
    /// The node listens where no home router forwards: loopback, or IPv6.
    #[error("a router cannot forward to {0}")]
    Unmappable(SocketAddr),
    /// The routing table names no IPv4 default gateway to ask.
    #[error("no IPv4 default gateway")]
    NoGateway,
    /// The gateway did not grant a mapping by PCP or NAT-PMP.
    #[error("{0}")]
    Pmp(#[from] crab_nat::MappingFailure),
    /// The gateway's NAT-PMP did not say its external address.
    #[error("NAT-PMP external address: {0}")]
    PmpAddress(#[from] crab_nat::natpmp::Failure),
    /// No UPnP-IGD gateway answered the search.
    #[error("{0}")]
    Search(#[from] igd_next::SearchError),
    /// The UPnP-IGD gateway did not say its external address.
    #[error("external address: {0}")]
    UpnpAddress(#[from] igd_next::GetExternalIpError),
    /// The UPnP-IGD gateway refused the mapping of the listen port.
    #[error("{0}")]
    UpnpPort(#[from] AddPortError),
    /// The UPnP-IGD gateway refused a mapping of any port.
    #[error("{0}")]
    UpnpAnyPort(#[from] AddAnyPortError),
    /// The UPnP-IGD gateway did not delete the mapping.
    #[error("{0}")]
    UpnpRemove(#[from] igd_next::RemovePortError),
    /// A renewal got another external port than the one advertised.
    #[error("the router moved the mapping to port {got}, not the advertised {want}")]
    Moved {
        /// The port advertised.
        want: u16,
        /// The port the router gave.
        got: u16,
    },
    /// Neither way worked.
    #[error("PCP/NAT-PMP: {pmp}; UPnP-IGD: {upnp}")]
    Neither {
        /// Why PCP and NAT-PMP failed.
        pmp: Box<PortMapError>,
        /// Why UPnP-IGD failed.
        upnp: Box<PortMapError>,
    },
    /// The router did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A local socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What each mapping is called on the router (UPnP shows it to its owner).
const DESCRIPTION: &str = "distroweb";
/// PCP and NAT-PMP requests: 250 ms, then twice as long each of two retries
/// (RFC 6886 § 3.1 starts at 250 ms; its nine tries, over a minute, are too
/// many for a start).
const PMP_TIMEOUTS: TimeoutConfig = TimeoutConfig {
    initial_timeout: Duration::from_millis(250),
    max_retries: 2,
    max_retry_timeout: Some(Duration::from_secs(1)),
};
/// How long SSDP discovery waits for a gateway.
const SEARCH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one UPnP SOAP request may take.
const SOAP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a renewal may take.
const RENEW_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the deletion at shutdown may take.
const DELETE_TIMEOUT: Duration = Duration::from_secs(2);
/// Renewals come at least this far apart, whatever lease a router grants.
const MIN_RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// After a lost mapping, the next request comes this long later at most.
const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(60);

/// The mapping, its counters, as the status reads them.
#[derive(Debug, Default)]
pub(crate) struct PortMapState {
    held: Mutex<Option<(PortMapping, Option<Instant>)>>,
    attempts: AtomicU64,
    successes: AtomicU64,
}

impl PortMapState {
    fn lock(&self) -> MutexGuard<'_, Option<(PortMapping, Option<Instant>)>> {
        // Every write leaves the state whole: take it after a panic elsewhere.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the status page shows at `now`.
    pub fn snapshot(&self, now: Instant) -> PortMapStatus {
        let mapping = self.lock().map(|(m, expires)| PortMapping {
            expires_in: expires.map(|at| at.saturating_duration_since(now)),
            ..m
        });
        PortMapStatus {
            mapping,
            attempts: self.attempts.load(Ordering::Relaxed),
            successes: self.successes.load(Ordering::Relaxed),
        }
    }

    fn attempt(&self) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
    }

    /// Notes that the router granted `mapped`; says whether it had been lost.
    fn granted(&self, mapped: &Mapped, now: Instant) -> bool {
        self.successes.fetch_add(1, Ordering::Relaxed);
        let m = PortMapping {
            protocol: mapped.protocol(),
            external: mapped.external,
            lease: mapped.lease,
            expires_in: mapped.lease,
        };
        self.lock()
            .replace((m, mapped.lease.map(|l| now + l)))
            .is_none()
    }

    /// Notes that the router holds no mapping; says whether it had one.
    fn lost(&self) -> bool {
        self.lock().take().is_some()
    }
}

/// A mapping the router granted, and how to renew and delete it.
#[derive(Debug)]
pub(crate) struct Mapped {
    way: Way,
    /// The router's public address and the forwarded port.
    external: SocketAddr,
    /// The lease granted; `None` for a permanent one.
    lease: Option<Duration>,
}

#[derive(Debug)]
enum Way {
    Pmp(crab_nat::PortMapping),
    Upnp {
        gateway: Gateway<Tokio>,
        /// This node's address as the router forwards to it.
        local: SocketAddr,
    },
}

impl Mapped {
    /// The address the node advertises while the mapping stands.
    pub fn external(&self) -> SocketAddr {
        self.external
    }

    fn protocol(&self) -> MappingProtocol {
        match &self.way {
            Way::Pmp(m) => match m.mapping_type() {
                PortMappingType::Pcp { .. } => MappingProtocol::Pcp,
                PortMappingType::NatPmp => MappingProtocol::NatPmp,
            },
            Way::Upnp { .. } => MappingProtocol::Upnp,
        }
    }

    /// Asks the router to extend the mapping, at the same external port.
    async fn renew(&mut self, lease: Duration) -> Result<(), PortMapError> {
        let want = self.external.port();
        match &mut self.way {
            Way::Pmp(m) => {
                let before = m.clone();
                m.renew().await?;
                let got = m.external_port().get();
                if got != want {
                    // Give it back, and ask for the advertised port next time.
                    let moved = std::mem::replace(m, before);
                    let _ = tokio::time::timeout(DELETE_TIMEOUT, moved.try_drop()).await;
                    return Err(PortMapError::Moved { want, got });
                }
                self.lease = Some(Duration::from_secs(m.lifetime().into()));
            }
            Way::Upnp { gateway, local } => {
                self.lease = upnp_add(gateway, want, *local, lease).await?;
            }
        }
        Ok(())
    }

    /// Asks the router to delete the mapping.
    async fn delete(self) -> Result<(), PortMapError> {
        match self.way {
            Way::Pmp(m) => m.try_drop().await.map_err(|(e, _)| e.into()),
            Way::Upnp { gateway, .. } => {
                let remove = gateway.remove_port(PortMappingProtocol::TCP, self.external.port());
                Ok(soap(remove).await??)
            }
        }
    }
}

/// Asks the router for a mapping of `listen`'s port as `config` says, and
/// says in the log what came of it. `None` is a normal outcome: most networks
/// have no router that maps ports, or no NAT at all.
pub(crate) async fn map(
    config: &NetConfig,
    listen: SocketAddr,
    state: &PortMapState,
) -> Option<Mapped> {
    state.attempt();
    let limit = config.port_mapping_timeout;
    let asked = tokio::time::timeout(limit, request(listen, config.port_mapping_lease)).await;
    match asked.unwrap_or(Err(PortMapError::Timeout(limit))) {
        Ok(mapped) => {
            state.granted(&mapped, Instant::now());
            tracing::info!(
                protocol = %mapped.protocol(),
                external = %mapped.external,
                lease = ?mapped.lease,
                "the router forwards this node's port"
            );
            Some(mapped)
        }
        Err(e) => {
            tracing::info!(%listen, "no port mapping: {e}");
            None
        }
    }
}

/// PCP/NAT-PMP first, while UPnP-IGD discovery runs beside it; UPnP only if
/// the first fails, so at most one mapping is made.
async fn request(listen: SocketAddr, lease: Duration) -> Result<Mapped, PortMapError> {
    let (ip, port) = match (listen.ip(), NonZeroU16::new(listen.port())) {
        (IpAddr::V4(ip), Some(port)) if !ip.is_loopback() => (ip, port),
        _ => return Err(PortMapError::Unmappable(listen)),
    };
    // A JoinSet, so the search stops when this future is dropped.
    let mut search = JoinSet::new();
    let mut options = SearchOptions::default();
    options.bind_addr = SocketAddr::new(IpAddr::V4(ip), 0);
    options.timeout = Some(SEARCH_TIMEOUT);
    options.single_search_timeout = Some(SEARCH_TIMEOUT);
    search.spawn(igd_next::aio::tokio::search_gateway(options));
    let pmp = match pmp_map(ip, port, lease).await {
        Ok(mapped) => return Ok(mapped),
        Err(e) => e,
    };
    tracing::debug!("no PCP/NAT-PMP mapping: {pmp}");
    let upnp = match search.join_next().await {
        Some(Ok(Ok(gateway))) => match upnp_map(gateway, ip, port, lease).await {
            Ok(mapped) => return Ok(mapped),
            Err(e) => e,
        },
        Some(Ok(Err(e))) => e.into(),
        // The task cannot be cancelled here, nor panic but by a bug in the crate.
        Some(Err(e)) => PortMapError::Io(std::io::Error::other(e)),
        None => PortMapError::Timeout(SEARCH_TIMEOUT),
    };
    Err(PortMapError::Neither {
        pmp: Box::new(pmp),
        upnp: Box::new(upnp),
    })
}

/// A TCP mapping by PCP or NAT-PMP from the default gateway.
async fn pmp_map(ip: Ipv4Addr, port: NonZeroU16, lease: Duration) -> Result<Mapped, PortMapError> {
    let gateway = default_gateway().ok_or(PortMapError::NoGateway)?;
    let client = match ip.is_unspecified() {
        true => local_ip_toward(IpAddr::V4(gateway))?,
        false => IpAddr::V4(ip),
    };
    let options = PortMappingOptions {
        external_port: Some(port),
        lifetime_seconds: Some(lease_seconds(lease)),
        timeout_config: Some(PMP_TIMEOUTS),
    };
    let m =
        crab_nat::PortMapping::new(gateway.into(), client, InternetProtocol::Tcp, port, options)
            .await?;
    let external_ip = match m.mapping_type() {
        PortMappingType::Pcp { external_ip, .. } => external_ip,
        PortMappingType::NatPmp => {
            let asked = crab_nat::natpmp::external_address(gateway.into(), Some(PMP_TIMEOUTS));
            match asked.await {
                Ok(ip) => IpAddr::V4(ip),
                Err(e) => {
                    let _ = tokio::time::timeout(DELETE_TIMEOUT, m.try_drop()).await;
                    return Err(e.into());
                }
            }
        }
    };
    Ok(Mapped {
        external: SocketAddr::new(external_ip, m.external_port().get()),
        lease: Some(Duration::from_secs(m.lifetime().into())),
        way: Way::Pmp(m),
    })
}

/// A TCP mapping from the UPnP-IGD `gateway`: of the listen port itself, or
/// else of any port the router picks.
async fn upnp_map(
    gateway: Gateway<Tokio>,
    ip: Ipv4Addr,
    port: NonZeroU16,
    lease: Duration,
) -> Result<Mapped, PortMapError> {
    let local_ip = match ip.is_unspecified() {
        true => local_ip_toward(gateway.addr.ip())?,
        false => IpAddr::V4(ip),
    };
    let local = SocketAddr::new(local_ip, port.get());
    let external_ip = soap(gateway.get_external_ip()).await??;
    let (external_port, granted) = match upnp_add(&gateway, port.get(), local, lease).await {
        Ok(granted) => (port.get(), granted),
        // The router answered, but not with this port (in use, taken by
        // another mechanism, or refused): any other will do.
        Err(PortMapError::UpnpPort(e)) if answered(&e) => {
            tracing::debug!("the router will not forward port {port} ({e}); asking for any");
            upnp_add_any(&gateway, local, lease).await?
        }
        Err(e) => return Err(e),
    };
    Ok(Mapped {
        external: SocketAddr::new(external_ip, external_port),
        lease: granted,
        way: Way::Upnp { gateway, local },
    })
}

/// `AddPortMapping` of `external` to `local` for `lease`, or for good where
/// the router grants only permanent leases; returns the lease granted.
async fn upnp_add(
    gateway: &Gateway<Tokio>,
    external: u16,
    local: SocketAddr,
    lease: Duration,
) -> Result<Option<Duration>, PortMapError> {
    let tcp = PortMappingProtocol::TCP;
    let leased = gateway.add_port(tcp, external, local, lease_seconds(lease), DESCRIPTION);
    match soap(leased).await? {
        Ok(()) => Ok(Some(lease)),
        Err(AddPortError::OnlyPermanentLeasesSupported) => {
            let permanent = gateway.add_port(tcp, external, local, 0, DESCRIPTION);
            soap(permanent).await??;
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether `e` is the router's answer (a UPnP error), not a failure to talk to it.
fn answered(e: &AddPortError) -> bool {
    match e {
        AddPortError::RequestError(e) => matches!(e, igd_next::RequestError::ErrorCode(..)),
        _ => true,
    }
}

/// `AddAnyPortMapping` (or its emulation) to `local` for `lease`, or for
/// good; returns the external port and the lease granted.
async fn upnp_add_any(
    gateway: &Gateway<Tokio>,
    local: SocketAddr,
    lease: Duration,
) -> Result<(u16, Option<Duration>), PortMapError> {
    let tcp = PortMappingProtocol::TCP;
    let leased = gateway.add_any_port(tcp, local, lease_seconds(lease), DESCRIPTION);
    match soap(leased).await? {
        Ok(port) => Ok((port, Some(lease))),
        Err(AddAnyPortError::OnlyPermanentLeasesSupported) => {
            let permanent = gateway.add_any_port(tcp, local, 0, DESCRIPTION);
            Ok((soap(permanent).await??, None))
        }
        Err(e) => Err(e.into()),
    }
}

/// One UPnP request, within `SOAP_TIMEOUT`.
async fn soap<T>(request: impl std::future::Future<Output = T>) -> Result<T, PortMapError> {
    tokio::time::timeout(SOAP_TIMEOUT, request)
        .await
        .map_err(|_| PortMapError::Timeout(SOAP_TIMEOUT))
}

/// Keeps `mapped` until shutdown: renews it at half its lease (a lost one
/// sooner), then deletes it. `lease` is the one to ask for.
pub(crate) async fn keep(
    mut mapped: Mapped,
    state: std::sync::Arc<PortMapState>,
    lease: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut next = Instant::now() + renew_interval(mapped.lease.unwrap_or(lease));
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next.into()) => {}
            // A dropped sender means the node is gone too.
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        state.attempt();
        let renewed = tokio::time::timeout(RENEW_TIMEOUT, mapped.renew(lease)).await;
        let now = Instant::now();
        match renewed.unwrap_or(Err(PortMapError::Timeout(RENEW_TIMEOUT))) {
            Ok(()) => {
                if state.granted(&mapped, now) {
                    tracing::info!(external = %mapped.external, "the router forwards this node's port again");
                } else {
                    tracing::debug!(external = %mapped.external, lease = ?mapped.lease, "port mapping renewed");
                }
                next = now + renew_interval(mapped.lease.unwrap_or(lease));
            }
            Err(e) => {
                if state.lost() {
                    tracing::warn!(
                        external = %mapped.external,
                        "the router no longer forwards this node's port ({e}); peers may not reach it"
                    );
                } else {
                    tracing::debug!("port mapping still lost: {e}");
                }
                next = now + renew_interval(lease).min(MAX_RETRY_INTERVAL);
            }
        }
    }
    let external = mapped.external;
    state.lost();
    match tokio::time::timeout(DELETE_TIMEOUT, mapped.delete()).await {
        Ok(Ok(())) => tracing::info!(%external, "port mapping deleted"),
        Ok(Err(e)) => tracing::debug!(%external, "could not delete the port mapping: {e}"),
        Err(_) => tracing::debug!(%external, "the router did not answer the deletion in time"),
    }
}

/// Half the lease, as RFC 6886 § 3.3 suggests, and not too often.
fn renew_interval(lease: Duration) -> Duration {
    (lease / 2).max(MIN_RENEW_INTERVAL)
}

fn lease_seconds(lease: Duration) -> u32 {
    u32::try_from(lease.as_secs()).unwrap_or(u32::MAX).max(1)
}

/// The local IP the kernel would send from toward `to`: a connected UDP
/// socket sends nothing, but has its source chosen.
fn local_ip_toward(to: IpAddr) -> std::io::Result<IpAddr> {
    let socket = UdpSocket::bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0))?;
    socket.connect(SocketAddr::new(to, crab_nat::GATEWAY_PORT))?;
    Ok(socket.local_addr()?.ip())
}

/// The IPv4 default gateway from the kernel's routing table, on Linux.
///
/// `thread-self`, not `self`: a thread may sit in another network namespace
/// than the process's first thread (the namespace tests' nodes do).
#[cfg(target_os = "linux")]
fn default_gateway() -> Option<Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/thread-self/net/route").ok()?;
    gateway_in(&table)
}

/// Elsewhere only UPnP-IGD, which needs no gateway address, is tried.
#[cfg(not(target_os = "linux"))]
fn default_gateway() -> Option<Ipv4Addr> {
    None
}

/// The gateway of the default route with the lowest metric in a table as
/// `/proc/net/route` writes it: fields separated by whitespace, addresses as
/// 8 hex digits of the address's bytes read in the machine's byte order.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn gateway_in(table: &str) -> Option<Ipv4Addr> {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, gateway, flags, metric, mask) = (
                hex(f.get(1)?)?,
                hex(f.get(2)?)?,
                hex(f.get(3)?)?,
                f.get(6)?.parse::<u32>().ok()?,
                hex(f.get(7)?)?,
            );
            let default = dest == 0 && mask == 0 && flags & (RTF_UP | RTF_GATEWAY) == 3;
            default.then_some((metric, Ipv4Addr::from(gateway.to_ne_bytes())))
        })
        .min_by_key(|(metric, _)| *metric)
        .map(|(_, gateway)| gateway)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_gateway_is_read_from_the_routing_table() {
        let ip = |a: [u8; 4]| format!("{:08X}", u32::from_ne_bytes(a));
        let table = format!(
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             eth0\t{net}\t00000000\t0001\t0\t0\t0\t{mask}\t0\t0\t0\n\
             wlan0\t00000000\t{slow}\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
             eth0\t00000000\t{fast}\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
             tun0\t00000000\t{down}\t0002\t0\t0\t0\t00000000\t0\t0\t0\n",
            net = ip([192, 168, 1, 0]),
            mask = ip([255, 255, 255, 0]),
            slow = ip([10, 0, 0, 1]),
            fast = ip([192, 168, 1, 1]),
            down = ip([172, 16, 0, 1]),
        );
        assert_eq!(gateway_in(&table), Some(Ipv4Addr::new(192, 168, 1, 1)));
        assert_eq!(gateway_in("Iface\tDestination\n"), None);
        assert_eq!(gateway_in("header\nbroken line\n"), None);
    }

    #[test]
    fn renewals_come_at_half_the_lease_and_not_too_often() {
        assert_eq!(
            renew_interval(Duration::from_secs(3600)),
            Duration::from_secs(1800)
        );
        assert_eq!(renew_interval(Duration::from_secs(4)), MIN_RENEW_INTERVAL);
        assert_eq!(lease_seconds(Duration::ZERO), 1);
        assert_eq!(lease_seconds(Duration::from_secs(u64::MAX)), u32::MAX);
    }

    #[test]
    fn the_state_counts_and_forgets() {
        let state = PortMapState::default();
        state.attempt();
        assert_eq!(state.snapshot(Instant::now()).attempts, 1);
        assert!(!state.lost(), "nothing to lose yet");
        assert_eq!(state.snapshot(Instant::now()).mapping, None);
    }

    #[tokio::test]
    async fn a_loopback_listener_is_not_mapped() {
        let config = NetConfig {
            port_mapping: true,
            ..NetConfig::loopback()
        };
        let state = PortMapState::default();
        let listen = SocketAddr::from(([127, 0, 0, 1], 4100));
        assert!(map(&config, listen, &state).await.is_none());
        let status = state.snapshot(Instant::now());
        assert_eq!((status.attempts, status.successes), (1, 0));
    }
}
