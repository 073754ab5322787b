//! Every tunable of the proxy, with the bound it sets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The address the proxy listens on unless told otherwise: loopback only, so it
/// is never an open proxy to the world.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    1234,
));

/// How the proxy listens, relays and bounds its work.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Where to accept HTTP connections.
    pub listen: SocketAddr,
    /// Open client connections at most; more are refused.
    pub max_connections: usize,
    /// Largest request head (request line and headers) in bytes; larger gets 431.
    /// hyper needs at least 8192.
    pub max_header_bytes: usize,
    /// CONNECT tunnels open at most.
    pub max_tunnels: usize,
    /// How long a client may take to send its request head.
    pub header_read_timeout: Duration,
    /// How long connecting to an origin server may take before a 504.
    pub upstream_connect_timeout: Duration,
    /// How long an origin server may take to start its response before a 504.
    pub upstream_response_timeout: Duration,
    /// How long a content lookup may take before a 404 (nobody holds it) or 504.
    pub lookup_deadline: Duration,
    /// Largest upload the local API accepts for publishing, in bytes. Uploads
    /// stream to the store, so memory does not grow with this; the store's
    /// capacity bounds what fits. The default, 4 TiB, is past the 1 TiB files
    /// multi-level manifests are for (a file of more than 32,000 chunks is a tree).
    pub max_upload_bytes: u64,
    /// How long open connections get to finish when the proxy stops.
    pub shutdown_grace: Duration,
    /// Open connections from one client IP at most, so one client cannot take
    /// every slot of `max_connections`.
    pub max_connections_per_ip: usize,
    /// How long a client may pause while sending a request body before a 408.
    pub body_read_timeout: Duration,
    /// Uploads to publish read at once; more wait their turn (each holds a few
    /// chunks in memory and keeps a few disk writes in flight).
    pub max_concurrent_uploads: usize,
    /// Names besides loopback, `localhost` and `*.localhost` that this proxy
    /// answers to (`--proxy-host`); sites are served at `<id>.<name>`. Any
    /// other Host is refused with 421 (DNS rebinding).
    pub hosts: Vec<String>,
    /// Let the relay and CONNECT reach loopback, private and link-local
    /// addresses (`--relay-allow-private`); off, any web page could reach the
    /// user's LAN through the relay.
    pub relay_allow_private: bool,
    /// The only ports CONNECT reaches (`--connect-ports`); 443 by default, as Squid's `SSL_ports`.
    pub connect_ports: Vec<u16>,
    /// Serve the relay and CONNECT to clients beyond loopback (`--relay`); off,
    /// a proxy listening on the LAN serves content only.
    pub relay_for_remote_clients: bool,
    /// A second address for the node's status page, metrics and API alone,
    /// served to every client that reaches it (`--api`); `None` keeps them on
    /// `listen`, for clients on this machine only. See `exposure.rs`.
    pub api_listen: Option<SocketAddr>,
    /// The node's data directory, where the keys of the names it publishes
    /// live (`names/<name>.key`); `None`: this proxy cannot publish names
    /// (it still serves them).
    pub data_dir: Option<PathBuf>,
    /// A name served from the record the node holds is resolved again in the
    /// background at most this often (stale-while-revalidate); default 1 s,
    /// so a reader sees an update about a second after it lands.
    pub name_revalidate_after: Duration,
    /// How long a request waits for a name the node has never resolved;
    /// default 10 s.
    pub name_resolve_timeout: Duration,
    /// How long a name record this proxy signs is valid; it is republished
    /// until then, and publishing again signs a fresh one. Default 30 days
    /// less an hour, just inside what trackers accept
    /// (`distroweb_protocol::names::MAX_VALIDITY_S`), so that clocks a little
    /// apart still agree.
    pub name_validity: Duration,
    /// How often the names this node's data directory published are signed
    /// again with a fresh validity (same root, same sequence) and put back
    /// on the network, the first time a minute after start, so a site stays
    /// at its name across restarts and past any one record's expiry;
    /// default a day.
    pub name_resign_interval: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: DEFAULT_LISTEN,
            max_connections: 256,
            max_header_bytes: 16 * 1024,
            max_tunnels: 128,
            header_read_timeout: Duration::from_secs(10),
            upstream_connect_timeout: Duration::from_secs(10),
            upstream_response_timeout: Duration::from_secs(30),
            lookup_deadline: Duration::from_secs(30),
            max_upload_bytes: 4 << 40,
            shutdown_grace: Duration::from_secs(5),
            max_connections_per_ip: 64,
            body_read_timeout: Duration::from_secs(10),
            max_concurrent_uploads: 2,
            hosts: Vec::new(),
            relay_allow_private: false,
            connect_ports: vec![443],
            relay_for_remote_clients: false,
            api_listen: None,
            data_dir: None,
            name_revalidate_after: Duration::from_secs(1),
            name_resolve_timeout: Duration::from_secs(10),
            name_resign_interval: Duration::from_secs(24 * 3600),
            name_validity: Duration::from_secs(distroweb_protocol::names::MAX_VALIDITY_S - 3600),
        }
    }
}
