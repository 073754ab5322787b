//! Relaying requests to the ordinary web: `/<host>/<path>` and absolute-form
//! forward-proxy requests, with hop-by-hop headers handled per RFC 9110.

use std::error::Error as _;

use http::header::HOST;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::body::{relayed, Body};
use crate::config::ProxyConfig;
use crate::error_page::error_page;
use crate::headers::{add_via, strip_hop_by_hop};
use crate::metrics::ProxyMetrics;
use crate::server::State;

/// The HTTP client that talks to origin servers (plain HTTP only).
pub type UpstreamClient = Client<HttpConnector, Incoming>;

/// A client with the configured connect timeout and a small idle pool.
pub fn client(config: &ProxyConfig) -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(config.upstream_connect_timeout));
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(8)
        .build(http)
}

/// Sends `req` to `target` and relays the answer, or explains with a 502/504.
pub async fn relay(state: &State, mut req: Request<Incoming>, target: Uri) -> Response<Body> {
    ProxyMetrics::bump(&state.metrics.upstream_requests);
    let host = target
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    *req.uri_mut() = target;
    *req.version_mut() = Version::HTTP_11;
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    // The client sets Host from the target URI, which is what the origin must see.
    headers.remove(HOST);
    add_via(headers, &state.via);
    let timeout = state.config.upstream_response_timeout;
    let failure = match tokio::time::timeout(timeout, state.client.request(req)).await {
        Ok(Ok(response)) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            add_via(&mut parts.headers, &state.via);
            return Response::from_parts(parts, relayed(body));
        }
        Ok(Err(e)) if is_timeout(&e) => (
            StatusCode::GATEWAY_TIMEOUT,
            format!("{host} did not accept a connection in time"),
        ),
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

fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(err) = source {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// The error and its causes on one line: the outermost alone says little.
fn chain(e: &hyper_util::client::legacy::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        out.push_str(": ");
        out.push_str(&err.to_string());
        source = err.source();
    }
    out
}
