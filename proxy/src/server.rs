//! The HTTP server: accepting, the connection cap, and dispatch by route.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use distroweb_net::NodeHandle;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::uri::Authority;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::body::{full, Body};
use crate::config::ProxyConfig;
use crate::error_page::error_page;
use crate::headers::has_looped;
use crate::metrics::{self, ProxyMetrics};
use crate::route::{route, Route};
use crate::upstream::{self, UpstreamClient};
use crate::{api, content, status_page, tunnel};

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A setting is unusable.
    #[error("invalid proxy configuration: {0}")]
    Config(&'static str),
}

/// What every request handler shares.
#[derive(Debug)]
pub struct State {
    /// The configuration.
    pub config: ProxyConfig,
    /// The node behind the proxy.
    pub node: NodeHandle,
    /// The client for origin servers.
    pub client: UpstreamClient,
    /// Counters for `/metrics`, shared with response streams that outlive their handler.
    pub metrics: Arc<ProxyMetrics>,
    /// This proxy's `Via` entry; seeing it on a request means a loop.
    pub via: HeaderValue,
    /// Authorities that name this proxy, so absolute-form requests for it are served here.
    pub local: Vec<Authority>,
    /// One permit per open CONNECT tunnel (`max_tunnels`).
    pub tunnels: Arc<Semaphore>,
}

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Binds `config.listen` and serves until [`Proxy::stop`].
    pub async fn start(config: ProxyConfig, node: NodeHandle) -> Result<Proxy, ProxyError> {
        if config.max_header_bytes < 8192 {
            return Err(ProxyError::Config("max_header_bytes must be at least 8192"));
        }
        if config.max_connections == 0 {
            return Err(ProxyError::Config("max_connections must be at least 1"));
        }
        let bind_error = |source| ProxyError::Bind {
            addr: config.listen,
            source,
        };
        let listener = TcpListener::bind(config.listen).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let mut local: Vec<Authority> = Vec::new();
        for name in [addr.to_string(), format!("localhost:{}", addr.port())] {
            if let Ok(a) = name.parse() {
                local.push(a);
            }
        }
        let via = HeaderValue::from_str(&format!("1.1 distroweb-{}", node.id().short()))
            .unwrap_or(HeaderValue::from_static("1.1 distroweb"));
        let config_tunnels = config.max_tunnels;
        let state = Arc::new(State {
            client: upstream::client(&config),
            config,
            node,
            metrics: Arc::default(),
            via,
            local,
            tunnels: Arc::new(Semaphore::new(config_tunnels)),
        });
        let (shutdown, stop) = watch::channel(false);
        let task = tokio::spawn(accept_loop(state, listener, stop));
        tracing::info!(%addr, "proxy listening: open http://{addr}/");
        Ok(Proxy {
            addr,
            shutdown,
            task,
        })
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets open requests finish within the grace period, then returns.
    pub async fn stop(self) {
        self.shutdown.send_replace(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(state: Arc<State>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let max = state.config.max_connections;
    let permits = Arc::new(Semaphore::new(max));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut stop) => break,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("proxy accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%remote, "refused HTTP connection: at the connection cap");
            continue;
        };
        tokio::spawn(serve_connection(
            state.clone(),
            stream,
            remote,
            permit,
            stop.clone(),
        ));
    }
    drop(listener);
    // Wait for open connections to wind down (each has the grace period).
    let grace = state.config.shutdown_grace + std::time::Duration::from_secs(1);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(grace, permits.acquire_many(all)).await;
}

async fn serve_connection(
    state: Arc<State>,
    stream: TcpStream,
    remote: SocketAddr,
    _permit: OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) {
    let service = {
        let state = state.clone();
        service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(dispatch(&state, remote, req).await) }
        })
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(state.config.header_read_timeout)
        .max_buf_size(state.config.max_header_bytes)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%remote, "HTTP connection ended: {e}");
            }
        }
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(state.config.shutdown_grace, conn).await;
        }
    }
}

async fn dispatch(state: &State, remote: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    ProxyMetrics::bump(&state.metrics.requests);
    let method = req.method().clone();
    let target = req.uri().to_string();
    let response = respond(state, remote, req).await;
    if response.status().is_client_error() {
        ProxyMetrics::bump(&state.metrics.bad_requests);
    }
    tracing::debug!(%remote, %method, %target, status = %response.status(), "request");
    response
}

async fn respond(state: &State, remote: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    if has_looped(req.headers(), &state.via) {
        return error_page(
            StatusCode::LOOP_DETECTED,
            "this request already passed through this proxy: it names the proxy itself as the host",
        );
    }
    if req.method() == Method::CONNECT {
        return tunnel::connect(state, &state.tunnels, req).await;
    }
    let route = match route(req.uri(), &state.local) {
        Ok(r) => r,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let read_only = matches!(*req.method(), Method::GET | Method::HEAD);
    match route {
        Route::Status | Route::Metrics if !read_only => {
            error_page(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD")
        }
        Route::Status => match state.node.status().await {
            Ok(s) => text(status_page::render(&s), "text/html; charset=utf-8"),
            Err(e) => error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        },
        Route::Metrics => match state.node.status().await {
            Ok(s) => text(
                metrics::render(&state.metrics, &s),
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            Err(e) => error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        },
        Route::Favicon => error_page(StatusCode::NOT_FOUND, "this proxy has no favicon"),
        Route::Api(rest) => api::handle(state, remote, req, &rest).await,
        Route::Content { id, path } => content::serve(state, req, id, path).await,
        Route::Upstream(uri) => upstream::relay(state, req, uri).await,
    }
}

fn text(body: String, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(full(body));
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Resolves once the proxy is told to stop (or its owner is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
