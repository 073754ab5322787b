//! Header handling for relayed messages: hop-by-hop fields (RFC 9110 §7.6.1) and `Via`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Fields that describe one connection, never the message: a proxy must not forward them.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes the hop-by-hop fields, including every field the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Appends this proxy to the `Via` chain (RFC 9110 §7.6.3).
pub fn add_via(headers: &mut HeaderMap, token: &HeaderValue) {
    headers.append(header::VIA, token.clone());
}

/// Whether the message has already passed through this proxy: relaying it again would loop.
pub fn has_looped(headers: &HeaderMap, token: &HeaderValue) -> bool {
    let ours = token.as_bytes();
    headers
        .get_all(header::VIA)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|entry| entry.trim_ascii() == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_fields_and_connection_options_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-secret".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("proxy-authorization", "Basic x".parse().unwrap());
        h.insert("content-type", "text/html".parse().unwrap());
        h.insert("cache-control", "no-cache".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["content-type", "cache-control"]);
    }

    #[test]
    fn via_detects_loops() {
        let token = HeaderValue::from_static("1.1 distroweb-abcd1234");
        let mut h = HeaderMap::new();
        h.insert("via", "1.0 fred, 1.1 other".parse().unwrap());
        assert!(!has_looped(&h, &token));
        add_via(&mut h, &token);
        assert!(has_looped(&h, &token));
    }
}
