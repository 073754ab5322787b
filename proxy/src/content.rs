//! Content from the network on its site's origin, `http://<id>.localhost/<path>`,
//! streamed as it lands.
//!
//! The response starts as soon as the file's manifest is verified and sends
//! each chunk the moment it is verified, so a large file plays or renders while
//! it is still arriving. `HEAD`, single byte ranges (206), `ETag` with
//! `If-None-Match` (304) and immutable caching are supported: an id names its
//! bytes forever.

use std::time::Duration;

use bytes::Bytes;
use distroweb_net::{Chain, Fetching, NetError};
use distroweb_protocol::content::{Leaf, LeafWalk, Lookup, PathLookup};
use distroweb_protocol::{
    CommandError, FetchError, FileManifest, Id, Manifest, MediaType, SiteEntry,
};
use http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    IF_RANGE, LOCATION, RANGE,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::body::{empty, full, Body, BoxError};
use crate::error_page::error_page;
use crate::metrics::ProxyMetrics;
use crate::origin::on_purpose;
use crate::range::{parse_range, ByteRange};
use crate::server::State;

/// Content never changes under its id.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Characters escaped when a site path goes back into a URL.
const PATH_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'?')
    .add(b'<')
    .add(b'>');

/// Serves the file `id` (at the path `""`), or the file at `path` inside the site
/// `id`; `path` is decoded and checked ([`crate::route::site_path`]).
pub async fn serve(state: &State, req: Request<Incoming>, id: Id, path: String) -> Response<Body> {
    ProxyMetrics::bump(&state.metrics.content_requests);
    if !on_purpose(req.headers()) {
        match state.node.read_block(id).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return error_page(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "{id} is not on this node, and another website cannot make it fetch: \
                         open the link itself to fetch it"
                    ),
                );
            }
            Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &Chain(&e).to_string()),
        }
    }
    if let Some(response) = from_memory(state, &req, id, &path) {
        return response;
    }
    let deadline = state.config.lookup_deadline;
    let mut fetching = match state.node.fetch(id).await {
        Ok(f) => f,
        Err(e) => return failure(&id, &e, deadline),
    };
    let root = match within(deadline, fetching.manifest(&id)).await {
        Ok(m) => m,
        Err(e) => return failure(&id, &e, deadline),
    };
    let needed = match &root {
        Manifest::File(m) => m.len(),
        Manifest::Site(site) => site.total_size(),
        Manifest::FileTree(t) => t.len(),
        // Implementation note: a site index does not say its total size, and
        // summing it would read every shard; the check is skipped for it.
        Manifest::SiteIndex(_) => 0,
    };
    if let Err(response) = room_for(state, &mut fetching, id, needed).await {
        return response;
    }
    let (file_id, manifest) = match root {
        Manifest::File(_) | Manifest::FileTree(_) if path.is_empty() => (id, root),
        Manifest::File(_) | Manifest::FileTree(_) => {
            return error_page(
                StatusCode::NOT_FOUND,
                &format!("{id} is a single file; it has no paths inside"),
            );
        }
        Manifest::Site(_) | Manifest::SiteIndex(_) => {
            let wanted = site_file(&path);
            let entry = match lookup(&mut fetching, id, root.clone(), &wanted, deadline).await {
                Ok(entry) => entry,
                Err(e) => return failure(&id, &e, deadline),
            };
            let Some(entry) = entry else {
                let index = format!("{wanted}/index.html");
                if let Ok(Some(_)) = lookup(&mut fetching, id, root, &index, deadline).await {
                    let escaped = utf8_percent_encode(&wanted, PATH_ESCAPES);
                    // Without the trailing slash, relative links in the
                    // directory's index would resolve one level too high.
                    return redirect(format!("/{escaped}/"));
                }
                return error_page(
                    StatusCode::NOT_FOUND,
                    &format!("the site {id} has no file {wanted}"),
                );
            };
            let file = entry.file;
            match within(deadline, fetching.manifest(&file)).await {
                Ok(m @ (Manifest::File(_) | Manifest::FileTree(_))) => (file, m),
                Ok(Manifest::Site(_) | Manifest::SiteIndex(_)) => {
                    return error_page(
                        StatusCode::BAD_GATEWAY,
                        "the site lists a site where a file should be",
                    );
                }
                Err(e) => return failure(&file, &e, deadline),
            }
        }
    };
    respond(
        state,
        req.method(),
        req.headers(),
        fetching,
        file_id,
        manifest,
    )
}

/// The entry of `path` in the site `root` (whose root manifest is `first`),
/// reading one block per index level as the fetch delivers them.
async fn lookup(
    fetching: &mut Fetching,
    root: Id,
    first: Manifest,
    path: &str,
    deadline: Duration,
) -> Result<Option<SiteEntry>, NetError> {
    let mut walk = PathLookup::new(path);
    let mut next = (root, first);
    loop {
        let (id, block) = next;
        match walk.feed(id, block) {
            Ok(Lookup::Found(entry)) => return Ok(entry),
            Ok(Lookup::Next(shard)) => {
                let block = within(deadline, fetching.manifest(&shard)).await?;
                next = (shard, block);
            }
            Err(e) => return Err(NetError::BadManifest(e.to_string())),
        }
    }
}

/// A file's length and media type, from its root manifest (one level or a tree).
fn shape(m: &Manifest) -> Option<(u64, &MediaType)> {
    match m {
        Manifest::File(f) => Some((f.len(), f.media_type())),
        Manifest::FileTree(t) => Some((t.len(), t.media_type())),
        Manifest::Site(_) | Manifest::SiteIndex(_) => None,
    }
}

/// A response's status and headers, and whether a body follows.
enum Head {
    /// The range of the file to send as the body.
    Send(Response<Body>, ByteRange),
    /// Complete without a body (304, 416, HEAD, an empty range).
    Done(Response<Body>),
}

/// The response's status and headers for `file` of `len` bytes (ETag,
/// caching, type, length, range), with the range to send.
fn head(method: &Method, headers: &HeaderMap, file: Id, len: u64, media_type: &MediaType) -> Head {
    let etag = format!("\"{file}\"");
    let mut response = Response::new(empty());
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(media_type.as_str()) {
        h.insert(CONTENT_TYPE, v);
    }
    if matches_etag(headers.get(IF_NONE_MATCH), &etag) {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return Head::Done(response);
    }
    // A Range applies only if If-Range (when present) still names this content.
    let range_header = headers
        .get(RANGE)
        .filter(|_| {
            headers
                .get(IF_RANGE)
                .is_none_or(|v| v.as_bytes() == etag.as_bytes())
        })
        .and_then(|v| v.to_str().ok());
    let range = match range_header.map(|r| parse_range(r, len)) {
        None | Some(Ok(None)) => ByteRange { start: 0, end: len },
        Some(Ok(Some(r))) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let value = format!("bytes {}-{}/{len}", r.start, r.end - 1);
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(CONTENT_RANGE, v);
            }
            r
        }
        Some(Err(())) => {
            let mut r = error_page(
                StatusCode::RANGE_NOT_SATISFIABLE,
                &format!("the content has {len} bytes"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(CONTENT_RANGE, v);
            }
            return Head::Done(r);
        }
    };
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(range.end - range.start));
    if method == Method::HEAD || range.start == range.end {
        return Head::Done(response);
    }
    Head::Send(response, range)
}

fn respond(
    state: &State,
    method: &Method,
    headers: &HeaderMap,
    fetching: Fetching,
    file: Id,
    m: Manifest,
) -> Response<Body> {
    let Some((len, media_type)) = shape(&m) else {
        return error_page(StatusCode::BAD_GATEWAY, "a site where a file should be");
    };
    let (mut response, range) = match head(method, headers, file, len, media_type) {
        Head::Send(response, range) => (response, range),
        Head::Done(done) => return done,
    };
    // Content whose blocks are all in the node's memory cache goes out whole,
    // at once: a streaming task and its channel cost two task wake-ups per
    // request, which dominated a small hit.
    if let Some(whole) = match &m {
        Manifest::File(leaf) => cached_range(state, leaf, range),
        _ => None,
    } {
        *response.body_mut() = full(whole);
        served(state, range);
        return response;
    }
    let (tx, body) = Channel::<Bytes, BoxError>::new(4);
    *response.body_mut() = body.boxed();
    let deadline = state.config.lookup_deadline;
    tokio::spawn(stream(
        fetching,
        file,
        m,
        range,
        tx,
        deadline,
        state.metrics.clone(),
    ));
    response
}

/// Counts a response's bytes as served.
fn served(state: &State, range: ByteRange) {
    ProxyMetrics::bump(&state.metrics.content_served);
    state.metrics.content_bytes.fetch_add(
        range.end - range.start,
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// The file a path of a site names: a directory's `index.html`.
fn site_file(path: &str) -> String {
    if path.is_empty() || path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path.to_owned()
    }
}

/// Held content answered from the node's memory cache alone, without a
/// round trip to the node task: the root manifest, the file's manifest and
/// every chunk of the range must be cached (each was verified on its way in).
/// `None` sends the request the long way (fetch, stream, redirects, errors).
fn from_memory(
    state: &State,
    req: &Request<Incoming>,
    id: Id,
    path: &str,
) -> Option<Response<Body>> {
    let root = Manifest::decode(&state.node.cached_block(&id)?).ok()?;
    // Only one-level content: a tree or an index goes the long way.
    let (file, m) = match root {
        Manifest::File(m) if path.is_empty() => (id, m),
        Manifest::Site(site) => {
            let file = site.get(&site_file(path))?.file;
            match Manifest::decode(&state.node.cached_block(&file)?).ok()? {
                Manifest::File(m) => (file, m),
                _ => return None,
            }
        }
        _ => return None,
    };
    let response = match head(req.method(), req.headers(), file, m.len(), m.media_type()) {
        Head::Send(mut response, range) => {
            *response.body_mut() = full(cached_range(state, &m, range)?);
            served(state, range);
            response
        }
        Head::Done(done) => done,
    };
    touch(state, id);
    Some(response)
}

/// How often one root read from memory is reported to the node as recently
/// used: its place in the eviction order needs no finer grain.
const TOUCH_EVERY: Duration = Duration::from_secs(1);
/// Roots remembered as reported; past this the memory starts again.
const MAX_TOUCHED: usize = 4096;

/// Tells the node `root` was read, at most every [`TOUCH_EVERY`].
fn touch(state: &State, root: Id) {
    let now = std::time::Instant::now();
    let Ok(mut touched) = state.touched.lock() else {
        return;
    };
    if touched
        .get(&root)
        .is_some_and(|at| now.duration_since(*at) < TOUCH_EVERY)
    {
        return;
    }
    if touched.len() >= MAX_TOUCHED {
        touched.clear();
    }
    touched.insert(root, now);
    drop(touched);
    state.node.touch(root);
}

/// Chunks served whole from memory at most: above, a response streams.
const MAX_WHOLE_CHUNKS: usize = 4;

/// The bytes of `range` if every chunk covering it (at most
/// [`MAX_WHOLE_CHUNKS`]) is in the node's memory cache.
fn cached_range(state: &State, m: &FileManifest, range: ByteRange) -> Option<Bytes> {
    let chunk_size = u64::from(m.chunk_size()).max(1);
    let first = (range.start / chunk_size) as usize;
    let last = ((range.end - 1) / chunk_size) as usize;
    if last - first >= MAX_WHOLE_CHUNKS {
        return None;
    }
    let mut pieces = Vec::with_capacity(last - first + 1);
    for index in first..=last {
        let data = state.node.cached_block(m.chunks().get(index)?)?;
        let offset = m.chunk_offset(index);
        let from = range.start.saturating_sub(offset).min(data.len() as u64) as usize;
        let to = (range.end - offset).min(data.len() as u64) as usize;
        pieces.push(data.slice(from..to));
    }
    match pieces.len() {
        1 => pieces.pop(),
        _ => Some(Bytes::from(pieces.concat())),
    }
}

/// Sends the chunks covering `range`, each as soon as it is verified. A
/// file's tree is walked leaf by leaf as the response goes (one node per
/// level held), from the leaf holding the range's first byte.
async fn stream(
    mut fetching: Fetching,
    file: Id,
    first: Manifest,
    range: ByteRange,
    mut tx: http_body_util::channel::Sender<Bytes, BoxError>,
    chunk_deadline: Duration,
    metrics: std::sync::Arc<ProxyMetrics>,
) {
    let mut walk = LeafWalk::from_offset(file, range.start);
    let mut block = Some(first);
    while let Some(want) = walk.want() {
        let manifest = match block.take() {
            Some(m) => m,
            None => match within(chunk_deadline, fetching.manifest(&want)).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::info!(block = %want.short(), "transfer broke off: {e}");
                    tx.abort(Box::new(e));
                    return;
                }
            },
        };
        let leaf = match walk.feed(manifest) {
            Ok(Some(leaf)) => leaf,
            Ok(None) => continue,
            Err(e) => {
                tx.abort(Box::new(e));
                return;
            }
        };
        if leaf.offset >= range.end {
            break;
        }
        match send_leaf(
            &mut fetching,
            &leaf,
            range,
            &mut tx,
            chunk_deadline,
            &metrics,
        )
        .await
        {
            Ok(()) => {}
            Err(Some(e)) => {
                tx.abort(e);
                return;
            }
            Err(None) => return, // the client went away
        }
    }
    ProxyMetrics::bump(&metrics.content_served);
}

/// Sends the chunks of `leaf` within `range`. Fails with the reason to abort
/// the body when a chunk did not come, or `None` when the client went away.
async fn send_leaf(
    fetching: &mut Fetching,
    leaf: &Leaf,
    range: ByteRange,
    tx: &mut http_body_util::channel::Sender<Bytes, BoxError>,
    chunk_deadline: Duration,
    metrics: &ProxyMetrics,
) -> Result<(), Option<BoxError>> {
    let m = &leaf.manifest;
    let end = leaf.offset + m.len();
    let (start, stop) = (range.start.max(leaf.offset), range.end.min(end));
    if start >= stop {
        return Ok(());
    }
    let chunk_size = u64::from(m.chunk_size()).max(1);
    let first = ((start - leaf.offset) / chunk_size) as usize;
    let last = ((stop - 1 - leaf.offset) / chunk_size) as usize;
    for index in first..=last {
        let Some(&chunk) = m.chunks().get(index) else {
            return Err(Some("chunk index past the manifest".into()));
        };
        let data = match within(chunk_deadline, fetching.block(&chunk)).await {
            Ok(data) => data,
            Err(e) => {
                tracing::info!(chunk = %chunk.short(), "transfer broke off: {e}");
                return Err(Some(Box::new(e)));
            }
        };
        let offset = leaf.offset + m.chunk_offset(index);
        let from = range.start.saturating_sub(offset).min(data.len() as u64) as usize;
        let to = (range.end - offset).min(data.len() as u64) as usize;
        let piece = data.slice(from..to);
        let n = piece.len();
        if tx.send_data(piece).await.is_err() {
            return Err(None);
        }
        metrics
            .content_bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(())
}

/// Refuses, before any header, content that cannot fit in the store: the node
/// evicts cached content to make room but never published or pinned content,
/// and a fetch that runs out of room would break off after a 200 with the full
/// length. Content already held, or a fetch already ended, needs no check.
async fn room_for(
    state: &State,
    fetching: &mut Fetching,
    root: Id,
    needed: u64,
) -> Result<(), Response<Body>> {
    let deadline = state.config.lookup_deadline;
    // `finished` answers at once when the outcome is known; otherwise it is running.
    match tokio::time::timeout(Duration::ZERO, fetching.finished()).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => return Err(failure(&root, &e, deadline)),
        Err(_) => {}
    }
    let status = match state.node.status().await {
        Ok(s) => s,
        Err(e) => return Err(failure(&root, &e, deadline)),
    };
    if status.held.iter().any(|(r, _)| *r == root) {
        return Ok(());
    }
    // Implementation note: the blocks of this fetch that already landed count
    // twice here (in the store and in `needed`), so a nearly full store may
    // refuse content that would just fit; the mistake is on the safe side.
    let evictable: u64 = status
        .held
        .iter()
        .filter(|(_, h)| !h.pinned)
        .map(|(_, h)| h.size)
        .sum();
    let kept = status.store_bytes.saturating_sub(evictable);
    if kept.saturating_add(needed) > status.store_capacity_bytes {
        return Err(error_page(
            StatusCode::INSUFFICIENT_STORAGE,
            &format!(
                "{root} needs {needed} bytes, and this node's store keeps {kept} of its {} bytes \
                 for published and pinned content",
                status.store_capacity_bytes
            ),
        ));
    }
    Ok(())
}

/// Runs `f` with a deadline; running out is a [`FetchError::Timeout`].
async fn within<T>(
    deadline: Duration,
    f: impl std::future::Future<Output = Result<T, NetError>>,
) -> Result<T, NetError> {
    tokio::time::timeout(deadline, f)
        .await
        .unwrap_or(Err(NetError::Fetch(FetchError::Timeout)))
}

fn matches_etag(header: Option<&HeaderValue>, etag: &str) -> bool {
    let Some(v) = header.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    v.split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

fn redirect(location: String) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// The page for a fetch that could not deliver.
fn failure(id: &Id, e: &NetError, deadline: Duration) -> Response<Body> {
    let (status, detail) = match e {
        NetError::Fetch(FetchError::NotFound) => (
            StatusCode::NOT_FOUND,
            format!("nobody on the network holds {id}: the lookup found no provider"),
        ),
        NetError::Fetch(FetchError::Timeout) => (
            StatusCode::GATEWAY_TIMEOUT,
            format!("{id} did not arrive within {} s", deadline.as_secs()),
        ),
        NetError::Fetch(FetchError::AllProvidersFailed) => (
            StatusCode::BAD_GATEWAY,
            format!("providers of {id} were found, but none delivered it"),
        ),
        NetError::Fetch(FetchError::Corrupt(c)) => (
            StatusCode::BAD_GATEWAY,
            format!("{id} is corrupt as published: {c}"),
        ),
        NetError::Fetch(FetchError::Store(s)) => (
            StatusCode::INSUFFICIENT_STORAGE,
            format!("this node cannot store {id}: {s}"),
        ),
        NetError::Refused(CommandError::TooManyFetches { .. }) | NetError::Stopped => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot fetch {id} now: {}", Chain(e)),
        ),
        other => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{id}: {}", Chain(other)),
        ),
    };
    error_page(status, &detail)
}
