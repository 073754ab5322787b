//! `/api/v1/`: the local API the CLI uses. Loopback clients only, and never a web page.

use distroweb_net::{Chain, NetError, Published};
use distroweb_protocol::content::FileError;
use distroweb_protocol::{FetchError, Id, Manifest, PublishError, StoreError};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::body::{full, Body};
use crate::origin::{parse_id, site_url, LOCALHOST};
use crate::server::State;
use crate::upload::{self, BodyReader, Piece, UploadError};

/// Answers one API request; `rest` is the path after `/api/v1/`, and
/// `client_served` whether this listener serves the API to this client (see
/// `exposure.rs`).
pub async fn handle(
    state: &State,
    client_served: bool,
    req: Request<Incoming>,
    rest: &str,
) -> Response<Body> {
    if let Err((status, why)) = allowed(client_served, req.method(), req.headers()) {
        return error(status, why);
    }
    let method = req.method().clone();
    let (action, target) = rest.split_once('/').unwrap_or((rest, ""));
    match (&method, action) {
        (&Method::GET, "status") => match state.node.status().await {
            Ok(s) => reply(StatusCode::OK, &status_json(&s)),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &Chain(&e).to_string()),
        },
        (&Method::POST, "publish") => publish(state, req).await,
        (&Method::POST, "name") => {
            let root = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("root=")))
                .unwrap_or("");
            match parse_id(root) {
                Ok(root) => crate::api_names::publish_name(state, target, root).await,
                Err(e) => error(
                    StatusCode::BAD_REQUEST,
                    &format!("`?root=` needs the content id the name should point at: {e}"),
                ),
            }
        }
        (&Method::GET, "content") => match parse_id(target) {
            Ok(id) => listing(state, id).await,
            Err(e) => error(
                StatusCode::BAD_REQUEST,
                &format!("malformed content id: {e}"),
            ),
        },
        (&Method::POST, "fetch") => match parse_id(target) {
            Ok(id) => fetch(state, id, req.uri().query() == Some("pin=1")).await,
            Err(e) => error(
                StatusCode::BAD_REQUEST,
                &format!("malformed content id: {e}"),
            ),
        },
        (&Method::POST, "pin") => match parse_id(target) {
            Ok(id) => match state.node.pin(id).await {
                Ok(()) => reply(
                    StatusCode::OK,
                    &json!({ "id": id.to_string(), "pinned": true }),
                ),
                Err(e) => error(StatusCode::NOT_FOUND, &Chain(&e).to_string()),
            },
            Err(e) => error(
                StatusCode::BAD_REQUEST,
                &format!("malformed content id: {e}"),
            ),
        },
        (_, "status" | "publish" | "fetch" | "pin" | "content" | "name") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "wrong method for this endpoint",
        ),
        _ => error(StatusCode::NOT_FOUND, "no such API endpoint"),
    }
}

/// Pieces of an upload queued between the HTTP body and its writer: with
/// hyper's frames of at most a read buffer each, a few hundred KiB per upload.
const PIECES_IN_FLIGHT: usize = 16;

/// `POST /api/v1/publish`: a tar archive (`Content-Type: application/x-tar`) is a
/// site; anything else is one file, named by `?name=` for its media type.
///
/// The body streams to the store: a blocking thread parses it (tar) and writes
/// each chunk as it completes, reading from a bounded channel this task fills
/// from the body, so memory does not grow with the upload. The node announces
/// the content once every block is on disk.
async fn publish(state: &State, req: Request<Incoming>) -> Response<Body> {
    let is_tar = req
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/x-tar"));
    let name = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("name=")))
        .map(|n| {
            percent_encoding::percent_decode_str(n)
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    let limit = state.config.max_upload_bytes;
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return error(StatusCode::PAYLOAD_TOO_LARGE, &too_large(limit));
    }
    // Uploads past `max_concurrent_uploads` wait here, holding nothing.
    let Ok(_permit) = state.uploads.acquire().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the proxy is stopping");
    };
    let mut upload = state.node.upload();
    let (pieces, received) = mpsc::channel(PIECES_IN_FLIGHT);
    let media_type = upload::media_type(&name);
    let writer = tokio::task::spawn_blocking(move || {
        let mut body = BodyReader::new(received);
        let written = if is_tar {
            upload::write_site(&mut upload, &mut body).map(|(id, files)| (id, "site", files))
        } else {
            upload
                .write_file(&media_type, &mut body)
                .map(|(id, _, _)| (id, "file", 1))
                .map_err(UploadError::from)
        };
        (upload, written)
    });
    let fed = feed(
        req.into_body(),
        &pieces,
        limit,
        state.config.body_read_timeout,
    )
    .await;
    // Without `End`, the writer takes the body as broken off and stops.
    drop(pieces);
    let Ok((upload, written)) = writer.await else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the upload's writer failed",
        );
    };
    // The client's fault first: the writer only saw its upload break off.
    let size = match fed {
        Ok(size) => size,
        Err((status, why)) => return error(status, &why),
    };
    let (root, kind, files) = match written {
        Ok(w) => w,
        Err(e) => return refused(&e),
    };
    match upload.publish(root).await {
        Ok(Published { id, stored_at }) => reply(
            StatusCode::CREATED,
            &json!({
                "id": id.to_string(),
                "kind": kind,
                "files": files,
                "upload_bytes": size,
                "announced_to": stored_at,
                "url": site_url(&id, LOCALHOST, state.port),
            }),
        ),
        Err(e) => refused(&UploadError::from(e)),
    }
}

/// Moves a request body of at most `limit` bytes into `pieces`, ending with
/// [`Piece::End`], and returns its length. A client that pauses longer than
/// `pause` between two frames gets a 408, so a slow upload cannot hold its
/// slot for ever. If the writer stops taking pieces (it refused the upload),
/// reading stops too; the writer says why.
async fn feed(
    mut body: Incoming,
    pieces: &mpsc::Sender<Piece>,
    limit: u64,
    pause: std::time::Duration,
) -> Result<u64, (StatusCode, String)> {
    let mut size = 0u64;
    loop {
        let frame = match tokio::time::timeout(pause, body.frame()).await {
            Err(_) => return Err(stalled(pause)),
            Ok(None) => {
                let _ = pieces.send(Piece::End).await;
                return Ok(size);
            }
            Ok(Some(Err(e))) => {
                return Err((StatusCode::BAD_REQUEST, format!("reading the upload: {e}")))
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        size += data.len() as u64;
        if size > limit {
            return Err((StatusCode::PAYLOAD_TOO_LARGE, too_large(limit)));
        }
        // The writer is slower than the client: waiting here is the
        // backpressure, and it too is bounded by `pause`.
        match tokio::time::timeout(pause, pieces.send(Piece::Data(data))).await {
            Err(_) => return Err(stalled(pause)),
            Ok(Err(_)) => return Ok(size),
            Ok(Ok(())) => {}
        }
    }
}

fn too_large(limit: u64) -> String {
    format!("uploads are limited to {limit} bytes")
}

fn stalled(pause: std::time::Duration) -> (StatusCode, String) {
    (
        StatusCode::REQUEST_TIMEOUT,
        format!("the upload stalled for {} s", pause.as_secs()),
    )
}

/// The answer to an upload the node did not take, by why.
fn refused(e: &UploadError) -> Response<Body> {
    use distroweb_net::UploadError as Write;
    let status = match e {
        UploadError::BadArchive(_)
        | UploadError::NotUtf8
        | UploadError::TooManyFiles
        | UploadError::Empty
        | UploadError::Node(Write::Read(_)) => StatusCode::BAD_REQUEST,
        UploadError::Node(Write::Publish(p)) => match p {
            PublishError::File(FileError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            PublishError::File(_) | PublishError::Site(_) => StatusCode::BAD_REQUEST,
            PublishError::Store(StoreError::Full { .. } | StoreError::TooManyBlocks { .. }) => {
                StatusCode::INSUFFICIENT_STORAGE
            }
            PublishError::Command(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
        UploadError::Node(Write::Node(_)) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, &Chain(e).to_string())
}

/// `GET /api/v1/content/<id>`: what the content is (a file, or a site and its
/// files), as soon as its root manifest arrives; the fetch goes on.
async fn listing(state: &State, id: Id) -> Response<Body> {
    let deadline = state.config.lookup_deadline;
    let result = tokio::time::timeout(deadline, async {
        let mut f = state.node.fetch(id).await?;
        f.manifest(&id).await
    })
    .await
    .unwrap_or(Err(NetError::Fetch(FetchError::Timeout)));
    describe(state, id, result)
}

/// `POST /api/v1/fetch/<id>[?pin=1]`: fetches the whole content, keeps it (and
/// pins it if asked), and lists what it holds.
async fn fetch(state: &State, id: Id, pin: bool) -> Response<Body> {
    let result = async {
        let mut f = state.node.fetch(id).await?;
        f.finished().await?;
        let manifest = f.manifest(&id).await?;
        if pin {
            state.node.pin(id).await?;
        }
        Ok::<_, NetError>(manifest)
    }
    .await;
    describe(state, id, result)
}

/// The JSON listing of content, or the error that kept it away.
fn describe(state: &State, id: Id, result: Result<Manifest, NetError>) -> Response<Body> {
    let url = site_url(&id, LOCALHOST, state.port);
    match result {
        Ok(Manifest::File(m)) => reply(
            StatusCode::OK,
            &json!({ "id": id.to_string(), "kind": "file", "bytes": m.len(), "media_type": m.media_type().as_str(), "url": url }),
        ),
        Ok(Manifest::Site(s)) => reply(
            StatusCode::OK,
            &json!({
                "id": id.to_string(),
                "kind": "site",
                "url": url,
                "bytes": s.total_size(),
                "files": s.entries().iter().map(|e| json!({
                    "path": e.path.as_str(),
                    "id": e.file.to_string(),
                    "size": e.size,
                    "media_type": e.media_type.as_str(),
                })).collect::<Vec<_>>(),
            }),
        ),
        Ok(Manifest::FileTree(t)) => reply(
            StatusCode::OK,
            &json!({ "id": id.to_string(), "kind": "file", "bytes": t.len(), "media_type": t.media_type().as_str(), "url": url }),
        ),
        // A site too large for one manifest is listed by its size, not its
        // files: the listing would be the whole index.
        Ok(Manifest::SiteIndex(i)) => reply(
            StatusCode::OK,
            &json!({ "id": id.to_string(), "kind": "site", "url": url, "file_count": i.files() }),
        ),
        Err(NetError::Fetch(FetchError::NotFound)) => {
            error(StatusCode::NOT_FOUND, "nobody holds it")
        }
        Err(NetError::Fetch(FetchError::Timeout)) => {
            error(StatusCode::GATEWAY_TIMEOUT, "the fetch timed out")
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, &Chain(&e).to_string()),
    }
}

/// Whether a request may use the API at all.
///
/// Only clients the listener serves the API to (`client_served`: loopback
/// clients on the proxy's address, anyone on the API's own): the proxy may be
/// told to listen more widely. And no web page may change anything: a page
/// served by this very proxy is on the API's origin, so the browser's
/// same-origin policy does not protect it; browsers mark their requests with
/// `Origin` or `Sec-Fetch-*`, the CLI does not.
pub fn allowed(
    client_served: bool,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), (StatusCode, &'static str)> {
    if !client_served {
        return Err((
            StatusCode::FORBIDDEN,
            "the local API answers clients on this machine only",
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

/// The relay part of the status: where the node is reached, what it relays,
/// and how each open connection was made.
fn relay_json(s: &distroweb_net::Status) -> Value {
    json!({
        "relayed_at": s.relayed_at.map(|a| a.to_string()),
        "public_addr": s.public_addr.map(|a| a.to_string()),
        "reservations": s.relay_reservations,
        "circuits": s.relay_circuits,
        "connections": s.connections.iter().map(|c| json!({
            "peer": c.peer.to_string(),
            "addr": c.addr.to_string(),
            "inbound": c.inbound,
            "via": c.via.to_string(),
        })).collect::<Vec<_>>(),
    })
}

fn status_json(s: &distroweb_net::Status) -> Value {
    json!({
        "id": s.id.to_string(),
        "listen": s.listen.to_string(),
        "advertised": s.advertised.to_string(),
        "client_mode": s.client_mode,
        "reachability": s.reachability.to_string(),
        "public_ip": s.public_ip.map(|ip| ip.to_string()),
        "relay": relay_json(s),
        "port_mapping": s.port_mapping.mapping.map(|m| json!({
            "protocol": m.protocol.to_string(),
            "external": m.external.to_string(),
            "lease_s": m.lease.map(|l| l.as_secs()),
            "expires_in_s": m.expires_in.map(|e| e.as_secs()),
        })),
        "port_mappings_attempted": s.port_mapping.attempts,
        "port_mappings_succeeded": s.port_mapping.successes,
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
        "held": s.held.iter().map(|(id, h)| json!({"id": id.to_string(), "pinned": h.pinned, "size": h.size})).collect::<Vec<_>>(),
        "held_count": s.held_count,
        "store_bytes": s.store_bytes,
        "store_blocks": s.store_blocks,
        "store_capacity_bytes": s.store_capacity_bytes,
        "fetches_running": s.fetches_running,
        "fetches": s.fetches.iter().map(|f| json!({
            "root": f.root.to_string(),
            "ok": f.outcome.is_ok(),
            "bytes": f.outcome.as_ref().ok(),
            "error": f.outcome.as_ref().err().map(ToString::to_string),
            "bytes_from_peers": f.bytes_from_peers,
            "providers_used": f.providers_used,
            "lookups": f.lookups,
            "first_byte_ms": f.first_byte.map(|d| d.as_millis() as u64),
            "elapsed_ms": f.elapsed.as_millis() as u64,
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
    fn only_served_clients_and_only_reads_from_browsers() {
        let (local, remote) = (true, false);
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
