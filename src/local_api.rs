//! The CLI's side of the node's local API: HTTP to the proxy on loopback.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use bytes::Bytes;
use distroweb_protocol::Id;
use distroweb_proxy::origin::to_base32;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A client for the node whose proxy listens at one address.
pub struct LocalApi {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
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

    /// Sends a request for `path` (starting with `/`); the response body is left to stream.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<Response<Incoming>> {
        self.send_to(None, method, path, content_type, body).await
    }

    /// `GET path` on the site `id`'s own origin (`Host: <base32 id>.localhost`),
    /// through the same proxy address.
    pub async fn get_from_site(&self, id: &Id, path: &str) -> anyhow::Result<Response<Incoming>> {
        let host = format!("{}.localhost:{}", to_base32(id), self.addr.port());
        self.send_to(Some(&host), Method::GET, path, None, Bytes::new())
            .await
    }

    async fn send_to(
        &self,
        host: Option<&str>,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
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
        let req = req.body(Full::new(body)).context("building the request")?;
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
        body: Bytes,
    ) -> anyhow::Result<serde_json::Value> {
        let response = self.send(method, path, content_type, body).await?;
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
