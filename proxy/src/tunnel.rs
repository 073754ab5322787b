//! `CONNECT host:port`: the TCP tunnel a browser asks its proxy for to reach
//! `https://` sites; the proxy only copies bytes and never sees inside.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::body::{empty, Body};
use crate::error_page::error_page;
use crate::metrics::ProxyMetrics;
use crate::server::State;

/// Opens the tunnel: connects to the target first, so a failure is a 502/504
/// the browser can show, then answers 200 and copies bytes both ways.
pub async fn connect(
    state: &State,
    tunnels: &Arc<Semaphore>,
    req: Request<Incoming>,
) -> Response<Body> {
    let Some(target) = req
        .uri()
        .authority()
        .filter(|a| a.port_u16().is_some())
        .cloned()
    else {
        return error_page(StatusCode::BAD_REQUEST, "CONNECT needs a host:port target");
    };
    let Ok(permit) = tunnels.clone().try_acquire_owned() else {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many tunnels open; try again shortly",
        );
    };
    ProxyMetrics::bump(&state.metrics.upstream_requests);
    let timeout = state.config.upstream_connect_timeout;
    let upstream = match tokio::time::timeout(timeout, TcpStream::connect(target.as_str())).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            ProxyMetrics::bump(&state.metrics.upstream_failures);
            return error_page(
                StatusCode::BAD_GATEWAY,
                &format!("cannot connect to {target}: {e}"),
            );
        }
        Err(_) => {
            ProxyMetrics::bump(&state.metrics.upstream_failures);
            return error_page(
                StatusCode::GATEWAY_TIMEOUT,
                &format!("{target} did not accept a connection in time"),
            );
        }
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut upstream = upstream;
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                    tracing::debug!(%target, "tunnel closed: {e}");
                }
            }
            Err(e) => tracing::debug!(%target, "CONNECT upgrade failed: {e}"),
        }
    });
    Response::new(empty())
}
