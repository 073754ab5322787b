//! The CLI's side of the node's local API: HTTP to the proxy on loopback.

use std::io::{self, Write};
use std::net::SocketAddr;

use anyhow::{bail, Context};
use bytes::Bytes;
use distroweb_protocol::Id;
use distroweb_proxy::origin::to_base32;
use http::{Method, Request, Response, StatusCode};
use http_body_util::channel::{Channel, Sender};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// A request body: whole, or streamed as a producer writes it.
pub type RequestBody = BoxBody<Bytes, io::Error>;

/// Bytes a streamed body sends at once: one chunk of the node's default size.
const PIECE_BYTES: usize = 256 * 1024;

/// A body holding `bytes`.
pub fn whole(bytes: Bytes) -> RequestBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// A body that `produce` writes on a blocking thread and that is sent as it is
/// written, a few pieces in memory at most, whatever its size. If `produce`
/// fails, the request is aborted rather than sent short; the handle says why.
pub fn streamed(
    produce: impl FnOnce(&mut dyn Write) -> io::Result<()> + Send + 'static,
) -> (RequestBody, JoinHandle<io::Result<()>>) {
    let (sender, body) = Channel::<Bytes, io::Error>::new(4);
    let runtime = Handle::current();
    let producing = tokio::task::spawn_blocking(move || {
        let mut out = io::BufWriter::with_capacity(PIECE_BYTES, Pieces { sender, runtime });
        let result = produce(&mut out).and_then(|()| out.flush());
        let Ok(Pieces { sender, .. }) = out.into_inner().map_err(|e| e.into_error()) else {
            return result;
        };
        match &result {
            Err(e) => sender.abort(io::Error::new(e.kind(), e.to_string())),
            // Dropping the sender ends the body.
            Ok(()) => drop(sender),
        }
        result
    });
    (body.boxed(), producing)
}

/// Writes into a streamed body, waiting while the connection is behind.
struct Pieces {
    sender: Sender<Bytes, io::Error>,
    runtime: Handle,
}

impl Write for Pieces {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let piece = Bytes::copy_from_slice(buf);
        self.runtime
            .block_on(self.sender.send_data(piece))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the node stopped reading"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A client for the node whose proxy listens at one address.
pub struct LocalApi {
    addr: SocketAddr,
    client: Client<HttpConnector, RequestBody>,
}

impl LocalApi {
    /// A client for the proxy at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        LocalApi {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends a request for `path` (starting with `/`), with a body of
    /// `length` bytes if known; the response body is left to stream.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: RequestBody,
        length: Option<u64>,
    ) -> anyhow::Result<Response<Incoming>> {
        self.send_to(None, method, path, content_type, body, length)
            .await
    }

    /// `GET path` on the site `id`'s own origin (`Host: <base32 id>.localhost`),
    /// through the same proxy address.
    pub async fn get_from_site(&self, id: &Id, path: &str) -> anyhow::Result<Response<Incoming>> {
        let host = format!("{}.localhost:{}", to_base32(id), self.addr.port());
        self.send_to(
            Some(&host),
            Method::GET,
            path,
            None,
            whole(Bytes::new()),
            None,
        )
        .await
    }

    async fn send_to(
        &self,
        host: Option<&str>,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: RequestBody,
        length: Option<u64>,
    ) -> anyhow::Result<Response<Incoming>> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        if let Some(host) = host {
            req = req.header(http::header::HOST, host);
        }
        if let Some(ct) = content_type {
            req = req.header(http::header::CONTENT_TYPE, ct);
        }
        if let Some(length) = length {
            req = req.header(http::header::CONTENT_LENGTH, length);
        }
        let req = req.body(body).context("building the request")?;
        self.client.request(req).await.map_err(|e| {
            if e.is_connect() {
                anyhow::anyhow!(
                    "no distroweb node is running with its proxy at {addr}.\n\
                     Start one with `distroweb node` (or try `distroweb testnet`), \
                     or point --proxy at a running node's proxy.",
                    addr = self.addr
                )
            } else {
                anyhow::Error::new(e).context(format!("talking to the node at {}", self.addr))
            }
        })
    }

    /// Sends a request and reads its JSON answer; an error status becomes an error
    /// carrying the node's explanation.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: RequestBody,
        length: Option<u64>,
    ) -> anyhow::Result<serde_json::Value> {
        let response = self.send(method, path, content_type, body, length).await?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .context("reading the node's answer")?
            .to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "the node answered {status} with something other than JSON: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            )
        })?;
        if !status.is_success() {
            let why = value["error"].as_str().unwrap_or("no explanation");
            bail!("the node refused ({status}): {why}");
        }
        Ok(value)
    }
}

/// Explains a non-success response from the content URL.
pub fn content_error(status: StatusCode, id: &str) -> anyhow::Error {
    match status {
        StatusCode::NOT_FOUND => anyhow::anyhow!("{id}: nobody on the network holds it (404)"),
        StatusCode::BAD_REQUEST => anyhow::anyhow!("{id}: not a valid content id (400)"),
        StatusCode::GATEWAY_TIMEOUT => {
            anyhow::anyhow!("{id}: the lookup or transfer timed out (504)")
        }
        other => anyhow::anyhow!("{id}: the node answered {other}"),
    }
}
