//! `CONNECT host:port`: the TCP tunnel a browser asks its proxy for to reach
//! `https://` sites; the proxy only copies bytes and never sees inside.

use std::sync::Arc;

use distroweb_net::Chain;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;

use crate::body::{empty, Body};
use crate::destination::DestinationError;
use crate::error_page::error_page;
use crate::metrics::ProxyMetrics;
use crate::server::State;

/// Opens the tunnel: checks the port and the resolved address, connects to that
/// address first, so a failure is a 403/502/504 the browser can show, then
/// answers 200 and copies bytes both ways.
pub async fn connect(
    state: &State,
    tunnels: &Arc<Semaphore>,
    req: Request<Incoming>,
) -> Response<Body> {
    let Some((target, port)) = req
        .uri()
        .authority()
        .and_then(|a| Some((a.clone(), a.port_u16()?)))
    else {
        return error_page(StatusCode::BAD_REQUEST, "CONNECT needs a host:port target");
    };
    if !state.config.connect_ports.contains(&port) {
        let e = DestinationError::Port {
            port,
            allowed: state.config.connect_ports.clone(),
        };
        return error_page(e.status(), &e.to_string());
    }
    let Ok(permit) = tunnels.clone().try_acquire_owned() else {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many tunnels open; try again shortly",
        );
    };
    ProxyMetrics::bump(&state.metrics.upstream_requests);
    let connected = state
        .destinations
        .connect(target.host(), port, state.config.upstream_connect_timeout)
        .await;
    let upstream = match connected {
        Ok((stream, _)) => stream,
        Err(e) => {
            ProxyMetrics::bump(&state.metrics.upstream_failures);
            return error_page(e.status(), &Chain(&e).to_string());
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
