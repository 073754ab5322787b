//! Relaying requests to the ordinary web: `/<host>/<path>` and absolute-form
//! forward-proxy requests, with hop-by-hop headers handled per RFC 9110.
//!
//! Every destination is resolved and checked by [`crate::destination`] and the
//! connection goes to the checked address, one connection per request (no pool:
//! a pooled connection would skip the check). The path form serves other
//! hosts on the node's own origin, so its responses are sandboxed into an opaque
//! origin and carry no cookies either way: one relayed host cannot read another,
//! nor the node's pages, nor fill the node's origin with cookies.

use http::header::{AUTHORIZATION, COOKIE, HOST, SET_COOKIE};
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::body::{relayed, Body};
use crate::error_page::{chain, error_page};
use crate::headers::{add_via, strip_hop_by_hop};
use crate::metrics::ProxyMetrics;
use crate::server::State;

/// The CSP that puts a relayed page in an opaque origin: its scripts run, but it
/// shares no storage, cookies or same-origin reads with anything.
pub const SANDBOX: &str = "sandbox allow-scripts allow-forms allow-popups";

/// How a request reached the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `/<host>/<path>` on the node's origin: sandboxed, cookies dropped.
    Path,
    /// An absolute-form request from a browser using this as its HTTP proxy: the
    /// browser keeps each host on its own origin, so cookies stay.
    Forward,
}

/// Sends `req` to `target` and relays the answer, or explains with a 403/502/504.
pub async fn relay(
    state: &State,
    mut req: Request<Incoming>,
    target: Uri,
    form: Form,
) -> Response<Body> {
    ProxyMetrics::bump(&state.metrics.upstream_requests);
    let Some(authority) = target.authority().cloned() else {
        return error_page(StatusCode::BAD_REQUEST, "the relay needs a host");
    };
    let host = authority.to_string();
    let connected = state
        .destinations
        .connect(
            authority.host(),
            authority.port_u16().unwrap_or(80),
            state.config.upstream_connect_timeout,
        )
        .await;
    let stream = match connected {
        Ok((stream, _)) => stream,
        Err(e) => {
            ProxyMetrics::bump(&state.metrics.upstream_failures);
            tracing::debug!(%host, "relay refused or failed: {e}");
            return error_page(e.status(), &e.to_string());
        }
    };
    // An origin server gets the origin form; the Host header names it.
    *req.uri_mut() = target
        .path_and_query()
        .cloned()
        .unwrap_or(PathAndQuery::from_static("/"))
        .into();
    *req.version_mut() = Version::HTTP_11;
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    if let Ok(v) = HeaderValue::from_str(&host) {
        headers.insert(HOST, v);
    }
    if form == Form::Path {
        // The browser sends the node origin's cookies and credentials: none of
        // them belong to this host.
        headers.remove(COOKIE);
        headers.remove(AUTHORIZATION);
    }
    add_via(headers, &state.via);
    let timeout = state.config.upstream_response_timeout;
    let exchange = async {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // The connection task drives the response body too; it ends with it.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("relay connection ended: {e}");
            }
        });
        sender.send_request(req).await
    };
    let failure = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(response)) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            // A relayed script must never widen a service worker's scope.
            parts.headers.remove("service-worker-allowed");
            if form == Form::Path {
                parts.headers.remove(SET_COOKIE);
                parts.headers.insert(
                    http::header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(SANDBOX),
                );
            }
            add_via(&mut parts.headers, &state.via);
            return Response::from_parts(parts, relayed(body));
        }
        Ok(Err(e)) => (
            StatusCode::BAD_GATEWAY,
            format!("could not get an answer from {host}: {}", chain(&e)),
        ),
        Err(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            format!("{host} did not answer within {} s", timeout.as_secs()),
        ),
    };
    ProxyMetrics::bump(&state.metrics.upstream_failures);
    tracing::debug!(%host, status = %failure.0, "relay failed: {}", failure.1);
    error_page(failure.0, &failure.1)
}
