//! `/distroweb/<id>[/<path>]`: content from the network.

use distroweb_protocol::Id;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::Body;
use crate::error_page::error_page;
use crate::metrics::ProxyMetrics;
use crate::server::State;

/// Serves the file `id`, or the file at `path` inside the site `id`.
pub async fn serve(
    state: &State,
    _req: Request<Incoming>,
    id: Id,
    _path: Option<String>,
) -> Response<Body> {
    ProxyMetrics::bump(&state.metrics.content_requests);
    error_page(
        StatusCode::NOT_IMPLEMENTED,
        &format!("content {id} cannot be fetched: this build has no content transfer yet"),
    )
}
