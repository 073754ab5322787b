//! What each listener serves to whom: the proxy's whole exposure policy, and
//! the words that tell the user what they exposed.
//!
//! The proxy's address (`--proxy`) serves content to every client that
//! reaches it, but the relay and CONNECT only to this machine (unless
//! `--relay`), and the node's status page, metrics and API only to this
//! machine. The API's own address (`--api`), when there is one, serves the
//! status page, metrics and API to every client that reaches it, and nothing
//! else: no content, no relay. So exposing content to a network never exposes
//! the API, and the API is exposed only where the user named an address for it.

use std::net::SocketAddr;

use crate::config::ProxyConfig;

/// Which listener a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// The proxy's address (`listen`, `--proxy`): content, relay, node pages.
    Proxy,
    /// The API's own address (`api_listen`, `--api`): node pages only.
    Api,
}

/// What a listener serves one client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exposure {
    /// Sites' content, and the redirects to their origins.
    pub content: bool,
    /// The relay to the ordinary web and CONNECT tunnels.
    pub relay: bool,
    /// The node's status page, `/metrics` and the local API.
    pub node_pages: bool,
}

impl Listener {
    /// What this listener serves a client, by whether the client is on this
    /// machine (a loopback address).
    pub fn exposure(self, loopback_client: bool, config: &ProxyConfig) -> Exposure {
        match self {
            Listener::Proxy => Exposure {
                content: true,
                relay: loopback_client || config.relay_for_remote_clients,
                node_pages: loopback_client,
            },
            Listener::Api => Exposure {
                content: false,
                relay: false,
                node_pages: true,
            },
        }
    }

    /// Why a request for something this listener does not serve is refused.
    pub fn refusal(self, what: Refused) -> &'static str {
        match (self, what) {
            (Listener::Api, _) => {
                "this address serves the node's status, metrics and API only; \
                 content and the relay are at the proxy's address"
            }
            (Listener::Proxy, Refused::Relay) => {
                "this proxy relays for clients on this machine only \
                 (start the node with --relay to change that)"
            }
            (Listener::Proxy, Refused::NodePages | Refused::Content) => {
                "the node's status, metrics and API answer clients on this machine only \
                 (start the node with --api ADDR to serve them at an address of their own)"
            }
        }
    }
}

/// What was asked for and refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Content.
    Content,
    /// The relay or CONNECT.
    Relay,
    /// The status page, metrics or API.
    NodePages,
}

/// What the configuration exposes beyond this machine, one warning a line;
/// nothing when everything listens on loopback.
pub fn warnings(config: &ProxyConfig) -> Vec<String> {
    let mut out = Vec::new();
    if !config.listen.ip().is_loopback() {
        let relay = if config.relay_for_remote_clients {
            format!(
                ", and, because of --relay, it relays HTTP and opens CONNECT tunnels (to ports {}) \
                 for them to any public host, in this machine's name",
                ports(&config.connect_ports)
            )
        } else {
            "; the relay and CONNECT answer this machine only".to_string()
        };
        let pages = match config.api_listen {
            Some(api) => {
                format!("answer this machine only here, and whoever reaches {api} (--api)")
            }
            None => "answer this machine only".to_string(),
        };
        out.push(format!(
            "the proxy at {} serves content to anyone who reaches it: any id they ask for is \
             fetched, stored and served by this node{relay}; the status page, metrics and API {pages}",
            config.listen,
        ));
    }
    if let Some(api) = config.api_listen.filter(|a| !a.ip().is_loopback()) {
        out.push(api_warning(api));
    }
    out
}

fn api_warning(api: SocketAddr) -> String {
    format!(
        "the API at {api} answers anyone who reaches it, without a password: they can read the \
         node's status and metrics, publish, fetch and pin content, and fill its store"
    )
}

fn ports(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_listener_serves_what_the_policy_says() {
        let strict = ProxyConfig::default();
        let relay = ProxyConfig {
            relay_for_remote_clients: true,
            ..ProxyConfig::default()
        };
        let all = Exposure {
            content: true,
            relay: true,
            node_pages: true,
        };
        assert_eq!(Listener::Proxy.exposure(true, &strict), all);
        assert_eq!(
            Listener::Proxy.exposure(false, &strict),
            Exposure {
                content: true,
                relay: false,
                node_pages: false
            }
        );
        assert_eq!(
            Listener::Proxy.exposure(false, &relay),
            Exposure {
                content: true,
                relay: true,
                node_pages: false
            }
        );
        let api_only = Exposure {
            content: false,
            relay: false,
            node_pages: true,
        };
        for client in [true, false] {
            for config in [&strict, &relay] {
                assert_eq!(Listener::Api.exposure(client, config), api_only);
            }
        }
    }

    #[test]
    fn the_warnings_say_what_is_exposed() {
        assert!(warnings(&ProxyConfig::default()).is_empty());
        let lan: SocketAddr = "0.0.0.0:1234".parse().unwrap();
        let mut c = ProxyConfig {
            listen: lan,
            ..ProxyConfig::default()
        };
        let w = warnings(&c);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("serves content to anyone"), "{}", w[0]);
        assert!(w[0].contains("the relay and CONNECT answer this machine only"));
        assert!(w[0].contains("status page, metrics and API answer this machine only"));
        c.relay_for_remote_clients = true;
        c.connect_ports = vec![443, 8443];
        c.api_listen = Some("192.0.2.1:1235".parse().unwrap());
        let w = warnings(&c);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("to ports 443, 8443"), "{}", w[0]);
        assert!(
            w[0].contains("this machine only here, and whoever reaches 192.0.2.1:1235 (--api)"),
            "{}",
            w[0]
        );
        assert!(w[1].contains("publish, fetch and pin"), "{}", w[1]);
        // The API alone on the LAN, content on loopback.
        let api_only = ProxyConfig {
            api_listen: Some(lan),
            ..ProxyConfig::default()
        };
        assert_eq!(warnings(&api_only), vec![api_warning(lan)]);
    }
}
