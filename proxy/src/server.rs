//! The HTTP server: accepting, the connection cap, and dispatch by route.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use distroweb_net::{Chain, NodeHandle};
use distroweb_protocol::names::NameKey;
use distroweb_protocol::Id;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST};
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
use crate::destination::Destinations;
use crate::error_page::error_page;
use crate::exposure::{Exposure, Listener, Refused};
use crate::headers::has_looped;
use crate::metrics::{self, ProxyMetrics};
use crate::names::{NameLookupError, Names};
use crate::origin::{site_url, HostError, HostPolicy, Origin};
use crate::per_ip::{PerIp, PerIpPermit};
use crate::route::{forward_target, route, site_path, Route};
use crate::upstream::{self, Form};
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
    /// Counters for `/metrics`, shared with response streams that outlive their handler.
    pub metrics: Arc<ProxyMetrics>,
    /// This proxy's `Via` entry; seeing it on a request means a loop.
    pub via: HeaderValue,
    /// The names this proxy answers to, and which origin each is.
    pub hosts: HostPolicy,
    /// Where the relay and CONNECT may go.
    pub destinations: Destinations,
    /// The port the proxy listens on, for site URLs.
    pub port: u16,
    /// One permit per open CONNECT tunnel (`max_tunnels`).
    pub tunnels: Arc<Semaphore>,
    /// One permit per upload being read (`max_concurrent_uploads`).
    pub uploads: Arc<Semaphore>,
    /// The roots names point at, refreshed in the background.
    pub names: Names,
    /// When each root served from memory was last reported to the node as
    /// read (bounded; see `content::touch`).
    pub touched: std::sync::Mutex<std::collections::BTreeMap<Id, std::time::Instant>>,
}

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    api_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// Binds `config.listen` (and `config.api_listen`, if set) and serves until [`Proxy::stop`].
    pub async fn start(config: ProxyConfig, node: NodeHandle) -> Result<Proxy, ProxyError> {
        if config.max_header_bytes < 8192 {
            return Err(ProxyError::Config("max_header_bytes must be at least 8192"));
        }
        if config.max_connections == 0 || config.max_connections_per_ip == 0 {
            return Err(ProxyError::Config(
                "max_connections and max_connections_per_ip must be at least 1",
            ));
        }
        if config.max_concurrent_uploads == 0 {
            return Err(ProxyError::Config(
                "max_concurrent_uploads must be at least 1",
            ));
        }
        let (listener, addr) = bind(config.listen).await?;
        let api = match config.api_listen {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        let api_addr = api.as_ref().map(|(_, a)| *a);
        let mut own = vec![addr, node.listen_addr(), node.advertised_addr()];
        own.extend(api_addr);
        let destinations = Destinations {
            allow_private: config.relay_allow_private,
            own,
        };
        let via = HeaderValue::from_str(&format!("1.1 distroweb-{}", node.id().short()))
            .unwrap_or(HeaderValue::from_static("1.1 distroweb"));
        let state = Arc::new(State {
            hosts: HostPolicy::new(&config.hosts),
            destinations,
            port: addr.port(),
            tunnels: Arc::new(Semaphore::new(config.max_tunnels)),
            uploads: Arc::new(Semaphore::new(config.max_concurrent_uploads)),
            names: Names::new(config.name_revalidate_after, config.name_resolve_timeout),
            config,
            node,
            metrics: Arc::default(),
            via,
            touched: std::sync::Mutex::default(),
        });
        let (shutdown, stop) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(accept_loop(
            state.clone(),
            listener,
            Listener::Proxy,
            stop.clone(),
        ))];
        tracing::info!(%addr, "proxy listening: the node's pages at http://{addr}/, sites at http://<id>.localhost:{}/", addr.port());
        if state.config.data_dir.is_some() {
            tasks.push(tokio::spawn(crate::api_names::keep_alive(
                state.clone(),
                stop.clone(),
            )));
        }
        if let Some((listener, api)) = api {
            tasks.push(tokio::spawn(accept_loop(
                state,
                listener,
                Listener::Api,
                stop,
            )));
            tracing::info!(%api, "the node's status, metrics and API also at http://{api}/");
        }
        Ok(Proxy {
            addr,
            api_addr,
            shutdown,
            tasks,
        })
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's own address, if it has one (`api_listen`).
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api_addr
    }

    /// Stops accepting, lets open requests finish within the grace period, then returns.
    pub async fn stop(self) {
        self.shutdown.send_replace(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Binds one listening address, returning the listener and the address it got.
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ProxyError> {
    let bind_error = |source| ProxyError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

async fn accept_loop(
    state: Arc<State>,
    listener: TcpListener,
    role: Listener,
    mut stop: watch::Receiver<bool>,
) {
    let max = state.config.max_connections;
    let permits = Arc::new(Semaphore::new(max));
    let per_ip = PerIp::new(state.config.max_connections_per_ip);
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
        // A response goes out as its head, then its body chunk by chunk:
        // with Nagle's algorithm the second small write waits for the ACK of
        // the first, which the client delays by up to 40 ms, so every
        // keep-alive request took 44 ms (issue 16).
        let _ = stream.set_nodelay(true);
        let Some(per_ip) = per_ip.admit(remote.ip()) else {
            tracing::debug!(%remote, "refused HTTP connection: this client is at its connection cap");
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%remote, "refused HTTP connection: at the connection cap");
            continue;
        };
        tokio::spawn(serve_connection(
            state.clone(),
            stream,
            (remote, role),
            (permit, per_ip),
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
    (remote, role): (SocketAddr, Listener),
    _permits: (OwnedSemaphorePermit, PerIpPermit),
    mut stop: watch::Receiver<bool>,
) {
    let service = {
        let state = state.clone();
        service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(dispatch(&state, remote, role, req).await) }
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

async fn dispatch(
    state: &State,
    remote: SocketAddr,
    role: Listener,
    req: Request<Incoming>,
) -> Response<Body> {
    ProxyMetrics::bump(&state.metrics.requests);
    let method = req.method().clone();
    let target = req.uri().to_string();
    let response = respond(state, remote, role, req).await;
    if response.status().is_client_error() {
        ProxyMetrics::bump(&state.metrics.bad_requests);
    }
    tracing::debug!(%remote, %method, %target, status = %response.status(), "request");
    response
}

async fn respond(
    state: &State,
    remote: SocketAddr,
    role: Listener,
    req: Request<Incoming>,
) -> Response<Body> {
    if has_looped(req.headers(), &state.via) {
        return error_page(
            StatusCode::LOOP_DETECTED,
            "this request already passed through this proxy: it names the proxy itself as the host",
        );
    }
    let serves = role.exposure(remote.ip().to_canonical().is_loopback(), &state.config);
    let refuse = |what| error_page(StatusCode::FORBIDDEN, role.refusal(what));
    if req.method() == Method::CONNECT {
        if !serves.relay {
            return refuse(Refused::Relay);
        }
        return tunnel::connect(state, &state.tunnels, req).await;
    }
    // An absolute-form request names its target; one for another port than
    // ours is for the relay whatever its host, as a forward proxy must. The
    // API's own address relays nothing, so there every request is for it.
    let absolute = req.uri().authority().cloned();
    let for_us = absolute
        .as_ref()
        .is_none_or(|a| a.port_u16().unwrap_or(80) == state.port || role == Listener::Api);
    let authority = match &absolute {
        Some(a) => Some(a.as_str()),
        None => req.headers().get(HOST).and_then(|h| h.to_str().ok()),
    };
    let origin = match authority {
        None => Err(HostError::Missing),
        Some(_) if !for_us => Err(HostError::Foreign(String::new())),
        Some(a) => match state.hosts.classify(a) {
            // The API's own address is reached by its IP, whatever that is; a
            // rebinding page would send its own name.
            Err(HostError::Foreign(h)) if role == Listener::Api && is_ip_literal(&h) => {
                Ok(Origin::Node { site_parent: None })
            }
            other => other,
        },
    };
    match origin {
        Ok(Origin::Site(_)) if !serves.content => refuse(Refused::Content),
        Ok(Origin::Site(id)) => site(state, req, id).await,
        Ok(Origin::Name(_)) if !serves.content => refuse(Refused::Content),
        Ok(Origin::Name(key)) => name(state, req, key).await,
        Ok(Origin::Node { site_parent }) => node(state, serves, role, req, site_parent).await,
        Err(HostError::Foreign(_)) if absolute.is_some() => {
            if !serves.relay {
                return refuse(Refused::Relay);
            }
            if let Some(refused) = refuse_service_worker(req.headers()) {
                return refused;
            }
            match forward_target(req.uri()) {
                Ok(uri) => upstream::relay(state, req, uri, Form::Forward).await,
                Err(e) => error_page(StatusCode::BAD_REQUEST, &Chain(&e).to_string()),
            }
        }
        Err(e @ HostError::Foreign(_)) => {
            error_page(StatusCode::MISDIRECTED_REQUEST, &e.to_string())
        }
        Err(e @ HostError::NotAnId { .. }) => error_page(StatusCode::NOT_FOUND, &e.to_string()),
        Err(e @ HostError::Missing) => error_page(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// Whether a host (as `HostError::Foreign` gives it: lowercase, no port) is an IP literal.
fn is_ip_literal(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<std::net::IpAddr>().is_ok()
}

/// A request on a site's own origin: every path is a path of that site.
async fn site(state: &State, req: Request<Incoming>, id: Id) -> Response<Body> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return error_page(
            StatusCode::METHOD_NOT_ALLOWED,
            "content is read-only: use GET or HEAD",
        );
    }
    let raw = req.uri().path();
    match site_path(raw.strip_prefix('/').unwrap_or(raw)) {
        Ok(path) => content::serve(state, req, id, path).await,
        Err(e) => error_page(StatusCode::BAD_REQUEST, &Chain(&e).to_string()),
    }
}

/// A request on a name's origin: served from the root its latest record
/// names, as a site's origin is, but never cached as immutable: the browser
/// asks again each time (a 304 while the file is unchanged, by its ETag).
async fn name(state: &State, req: Request<Incoming>, key: NameKey) -> Response<Body> {
    let record = match state.names.current(&state.node, key).await {
        Ok(r) => r,
        Err(e) => {
            let status = match e {
                NameLookupError::NotFound(_) => StatusCode::NOT_FOUND,
                NameLookupError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            };
            return error_page(status, &Chain(&e).to_string());
        }
    };
    let mut response = site(state, req, record.root).await;
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static(NAME_CACHE_CONTROL));
    if let Ok(v) = HeaderValue::from_str(&record.seq.to_string()) {
        h.insert("x-distroweb-seq", v);
    }
    if let Ok(v) = HeaderValue::from_str(&record.root.to_string()) {
        h.insert("x-distroweb-root", v);
    }
    response
}

/// What a name's responses may be cached for: nothing without asking again,
/// since the name may point elsewhere at any moment.
const NAME_CACHE_CONTROL: &str = "no-cache";

/// A request on the node's own origin: its pages, the API, the relay, and the
/// seed's content URLs redirected to each site's origin; each as far as this
/// listener serves it to this client.
async fn node(
    state: &State,
    serves: Exposure,
    role: Listener,
    req: Request<Incoming>,
    site_parent: Option<String>,
) -> Response<Body> {
    // One service worker here would answer for every relayed host.
    if let Some(refused) = refuse_service_worker(req.headers()) {
        return refused;
    }
    let route = match route(req.uri()) {
        Ok(r) => r,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &Chain(&e).to_string()),
    };
    let refuse = |what| error_page(StatusCode::FORBIDDEN, role.refusal(what));
    match route {
        Route::Content { .. } if !serves.content => refuse(Refused::Content),
        Route::Content { id, rest } => {
            let Some(parent) = site_parent else {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "sites need a name to hang under: reach this proxy by a name given with --proxy-host, \
                     with a wildcard DNS entry for its subdomains",
                );
            };
            let port = req
                .headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.parse::<Authority>().ok())
                .and_then(|a| a.port_u16())
                .unwrap_or(state.port);
            redirect(&format!("{}{rest}", site_url(&id, &parent, port)))
        }
        Route::Upstream(_) if !serves.relay => refuse(Refused::Relay),
        Route::Upstream(uri) => {
            if state.hosts.from_site(req.headers()) {
                return error_page(
                    StatusCode::FORBIDDEN,
                    "a site's pages cannot use the relay: it would reach other hosts in this node's name",
                );
            }
            upstream::relay(state, req, uri, Form::Path).await
        }
        _ if !serves.node_pages => refuse(Refused::NodePages),
        _ if state.hosts.from_elsewhere(req.headers()) => error_page(
            StatusCode::FORBIDDEN,
            "the node's status, metrics and API do not answer requests from other origins",
        ),
        Route::Status | Route::Metrics if !matches!(*req.method(), Method::GET | Method::HEAD) => {
            error_page(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD")
        }
        Route::Status => match state.node.status().await {
            Ok(s) => own_page(text(status_page::render(&s), "text/html; charset=utf-8")),
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
        Route::Api(rest) => api::handle(state, serves.node_pages, req, &rest).await,
    }
}

/// Refuses a service worker's script fetch (`Service-Worker: script`) where one
/// registration would cover more than one site.
fn refuse_service_worker(headers: &http::HeaderMap) -> Option<Response<Body>> {
    (headers.get("service-worker").map(HeaderValue::as_bytes) == Some(b"script")).then(|| {
        error_page(
            StatusCode::FORBIDDEN,
            "no service workers on the node's origin or the relay: one would answer for every site",
        )
    })
}

/// The node's status page may not be framed by another page (clickjacking).
fn own_page(mut response: Response<Body>) -> Response<Body> {
    response.headers_mut().insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    response
}

fn redirect(location: &str) -> Response<Body> {
    let mut r = Response::new(crate::body::empty());
    *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r
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
