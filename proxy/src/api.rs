//! `/api/v1/`: the local API the CLI uses. Loopback clients only, and never a web page.

use std::net::SocketAddr;

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::body::{full, Body};
use crate::server::State;

/// Answers one API request; `rest` is the path after `/api/v1/`.
pub async fn handle(
    state: &State,
    remote: SocketAddr,
    req: Request<Incoming>,
    rest: &str,
) -> Response<Body> {
    if let Err((status, why)) = allowed(remote, req.method(), req.headers()) {
        return error(status, why);
    }
    match (req.method(), rest) {
        (&Method::GET, "status") => match state.node.status().await {
            Ok(s) => reply(StatusCode::OK, &status_json(&s)),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        },
        (_, "status") => error(StatusCode::METHOD_NOT_ALLOWED, "use GET"),
        _ => error(StatusCode::NOT_FOUND, "no such API endpoint"),
    }
}

/// Whether a request may use the API at all.
///
/// Only loopback clients: the proxy may be told to listen more widely. And no
/// web page may change anything: a page served by this very proxy is on the
/// API's origin, so the browser's same-origin policy does not protect it;
/// browsers mark their requests with `Origin` or `Sec-Fetch-*`, the CLI does not.
pub fn allowed(
    remote: SocketAddr,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), (StatusCode, &'static str)> {
    if !remote.ip().to_canonical().is_loopback() {
        return Err((
            StatusCode::FORBIDDEN,
            "the local API answers loopback clients only",
        ));
    }
    let from_browser = headers.contains_key("origin")
        || headers.keys().any(|k| k.as_str().starts_with("sec-fetch-"));
    if method != Method::GET && method != Method::HEAD && from_browser {
        return Err((
            StatusCode::FORBIDDEN,
            "the local API does not accept changes from web pages",
        ));
    }
    Ok(())
}

fn status_json(s: &distroweb_net::Status) -> Value {
    json!({
        "id": s.id.to_string(),
        "listen": s.listen.to_string(),
        "advertised": s.advertised.to_string(),
        "uptime_s": s.uptime.as_secs(),
        "routing_table": s.routing_table_len,
        "buckets_in_use": s.buckets_in_use,
        "connected_peers": s.connected_peers,
        "open_connections": s.open_connections,
        "provided_keys": s.provided_keys,
        "tracked_keys": s.tracked_keys,
        "tracked_records": s.tracked_records,
        "queries_running": s.queries_running,
        "queries_succeeded": s.queries_succeeded,
        "queries_failed": s.queries_failed,
        "peers": s.peers.iter().map(|p| json!({"id": p.id.to_string(), "addr": p.addr.to_string()})).collect::<Vec<_>>(),
        "recent": s.recent.iter().map(|q| json!({
            "kind": q.kind.to_string(),
            "target": q.target.to_string(),
            "ok": q.outcome.is_ok(),
            "found": q.outcome.as_ref().ok(),
            "error": q.outcome.as_ref().err().map(ToString::to_string),
            "hops": q.hops,
            "requests": q.requests,
            "elapsed_ms": q.elapsed.as_millis() as u64,
        })).collect::<Vec<_>>(),
        "transport": s.transport.fields().into_iter().map(|(k, v)| (k.to_string(), Value::from(v))).collect::<serde_json::Map<String, Value>>(),
    })
}

/// A JSON response.
pub fn reply(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A JSON error: `{"error": "..."}`.
pub fn error(status: StatusCode, message: &str) -> Response<Body> {
    reply(status, &json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_and_only_reads_from_browsers() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let none = HeaderMap::new();
        let mut page = HeaderMap::new();
        page.insert("origin", HeaderValue::from_static("http://127.0.0.1:1234"));
        assert!(allowed(local, &Method::POST, &none).is_ok());
        assert!(allowed(local, &Method::GET, &page).is_ok());
        assert_eq!(
            allowed(local, &Method::POST, &page).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            allowed(remote, &Method::GET, &none).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
    }
}
