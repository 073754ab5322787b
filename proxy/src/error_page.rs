//! Error responses a person can read: the status, what went wrong, what to try.

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};

use crate::body::{full, Body};
use crate::html;

/// An HTML error page with `status` and a one-line explanation.
pub fn error_page(status: StatusCode, detail: &str) -> Response<Body> {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let body = format!(
        "<p>{}</p>\n<p><a href=\"/\">Node status</a></p>",
        html::escape(detail)
    );
    let mut response = Response::new(full(html::page(&title, &body)));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An error and its causes on one line: the outermost alone says little.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        out.push_str(": ");
        out.push_str(&err.to_string());
        source = err.source();
    }
    out
}
