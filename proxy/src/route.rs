//! Where a request goes: pure parsing of the request target, so every rule can
//! be tested without a socket.

use distroweb_protocol::Id;
use http::uri::{Authority, Uri};

use crate::origin::{parse_id, IdFormError};

/// The URL prefix of the seed's content URLs on the node's origin, now redirects.
pub const CONTENT_PREFIX: &str = "distroweb";
/// Most bytes in a path inside a site, after percent-decoding.
pub const MAX_SITE_PATH_BYTES: usize = 1024;

/// What a request to the node's own origin asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: the status page.
    Status,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    /// `/favicon.ico`: answered locally instead of being taken for a host name.
    Favicon,
    /// `/api/v1/<rest>`: the local API.
    Api(String),
    /// `/distroweb/<id>[/<path>]`: the seed's URL form, redirected to the site's own origin.
    Content {
        /// The content id.
        id: Id,
        /// The path inside the site, still percent-encoded, with the query if any.
        rest: String,
    },
    /// `/<host>/<path>`: relayed to this URI.
    Upstream(Uri),
}

/// Why a request target is refused (always a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// `/distroweb/` without an id.
    #[error("missing content id: use /distroweb/<id>, the id in hex or base32")]
    MissingId,
    /// The id is neither 64 hex nor 52 base32 characters.
    #[error("malformed content id")]
    BadId(#[from] IdFormError),
    /// The path inside a site is unsafe or malformed.
    #[error("bad path: {0}")]
    BadPath(&'static str),
    /// The host in `/<host>/...` or in an absolute URI is not a valid authority.
    #[error("bad host {0:?}")]
    BadHost(String),
    /// An absolute-form request for a scheme the proxy does not relay.
    #[error(
        "only http:// URLs can be relayed in absolute form (got {0}://); use CONNECT for https"
    )]
    UnsupportedScheme(String),
}

/// Routes an origin-form request target on the node's own origin.
pub fn route(uri: &Uri) -> Result<Route, RouteError> {
    let path = uri.path();
    let mut segments = path.strip_prefix('/').unwrap_or(path).splitn(2, '/');
    let first = segments.next().unwrap_or("");
    let rest = segments.next();
    match (first, rest) {
        ("", None) => Ok(Route::Status),
        ("metrics", None) => Ok(Route::Metrics),
        ("favicon.ico", None) => Ok(Route::Favicon),
        ("api", Some(rest)) => Ok(Route::Api(
            rest.strip_prefix("v1/").unwrap_or("").to_string(),
        )),
        (CONTENT_PREFIX, rest) => content(rest, uri.query()),
        (host, rest) => {
            let authority: Authority = host
                .parse()
                .map_err(|_| RouteError::BadHost(host.to_string()))?;
            let mut target = format!("http://{authority}/{}", rest.unwrap_or(""));
            if let Some(q) = uri.query() {
                target.push('?');
                target.push_str(q);
            }
            let uri = target
                .parse()
                .map_err(|_| RouteError::BadHost(host.to_string()))?;
            Ok(Route::Upstream(uri))
        }
    }
}

/// Checks an absolute-form (forward proxy) request target: `http://` only, a
/// real host, no user information.
pub fn forward_target(uri: &Uri) -> Result<Uri, RouteError> {
    match uri.scheme_str() {
        Some("http") | None => {}
        Some(other) => return Err(RouteError::UnsupportedScheme(other.to_string())),
    }
    let authority = uri
        .authority()
        .ok_or_else(|| RouteError::BadHost(String::new()))?;
    if authority.host().is_empty() || authority.as_str().contains('@') {
        return Err(RouteError::BadHost(authority.to_string()));
    }
    Ok(uri.clone())
}

fn content(rest: Option<&str>, query: Option<&str>) -> Result<Route, RouteError> {
    let rest = rest.ok_or(RouteError::MissingId)?;
    let (id, path) = rest.split_once('/').unwrap_or((rest, ""));
    if id.is_empty() {
        return Err(RouteError::MissingId);
    }
    let id = parse_id(id)?;
    // Checked here so a bad path is a 400 on this origin, not a redirect to one.
    site_path(path)?;
    let mut rest = path.to_string();
    if let Some(q) = query {
        rest.push('?');
        rest.push_str(q);
    }
    Ok(Route::Content { id, rest })
}

/// Decodes and checks a path inside a site: relative, no `.` or `..` segments, no
/// empty segments, no NUL or backslash, valid UTF-8, bounded length.
pub fn site_path(raw: &str) -> Result<String, RouteError> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| RouteError::BadPath("not valid UTF-8"))?;
    if decoded.len() > MAX_SITE_PATH_BYTES {
        return Err(RouteError::BadPath("too long"));
    }
    if decoded.is_empty() {
        return Ok(String::new());
    }
    if decoded.contains(['\0', '\\']) {
        return Err(RouteError::BadPath("contains NUL or a backslash"));
    }
    // A trailing slash names a directory's index; every other segment must be a real name.
    let trimmed = decoded.strip_suffix('/').unwrap_or(&decoded);
    for segment in trimmed.split('/') {
        match segment {
            "" => return Err(RouteError::BadPath("empty segment")),
            "." | ".." => return Err(RouteError::BadPath("`.` or `..` segment")),
            _ => {}
        }
    }
    Ok(decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::to_base32;

    const ID: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn r(target: &str) -> Result<Route, RouteError> {
        route(&target.parse().unwrap())
    }

    #[test]
    fn local_pages() {
        assert_eq!(r("/"), Ok(Route::Status));
        assert_eq!(r("/metrics"), Ok(Route::Metrics));
        assert_eq!(r("/api/v1/status"), Ok(Route::Api("status".into())));
    }

    #[test]
    fn content_ids_and_paths() {
        let id: Id = ID.parse().unwrap();
        let content = |rest: &str| {
            Ok(Route::Content {
                id,
                rest: rest.into(),
            })
        };
        assert_eq!(r(&format!("/distroweb/{ID}")), content(""));
        assert_eq!(r(&format!("/distroweb/{ID}/")), content(""));
        assert_eq!(
            r(&format!("/distroweb/{ID}/css/a%20b.css?v=1")),
            content("css/a%20b.css?v=1")
        );
        assert_eq!(r(&format!("/distroweb/{}/x", to_base32(&id))), content("x"));
        assert_eq!(r("/distroweb/"), Err(RouteError::MissingId));
        assert_eq!(r("/distroweb"), Err(RouteError::MissingId));
        assert!(matches!(r("/distroweb/abc"), Err(RouteError::BadId(_))));
        assert!(matches!(
            r(&format!("/distroweb/{}", ID.to_uppercase())),
            Err(RouteError::BadId(_))
        ));
        for bad in [
            "../etc/passwd",
            "a/../../b",
            "%2e%2e/x",
            "a//b",
            "./a",
            "a/%00",
            "%ff",
        ] {
            assert!(
                matches!(
                    r(&format!("/distroweb/{ID}/{bad}")),
                    Err(RouteError::BadPath(_))
                ),
                "{bad}"
            );
            assert!(
                matches!(site_path(bad), Err(RouteError::BadPath(_))),
                "{bad}"
            );
        }
        assert_eq!(site_path("css/a%20b.css"), Ok("css/a b.css".into()));
        assert_eq!(site_path("dir/"), Ok("dir/".into()));
        let long = "a".repeat(MAX_SITE_PATH_BYTES + 1);
        assert!(r(&format!("/distroweb/{ID}/{long}")).is_err());
    }

    #[test]
    fn pass_through_forms() {
        assert_eq!(
            r("/example.org:8080/a/b?x=1"),
            Ok(Route::Upstream(
                "http://example.org:8080/a/b?x=1".parse().unwrap()
            ))
        );
        assert_eq!(
            r("/example.org"),
            Ok(Route::Upstream("http://example.org/".parse().unwrap()))
        );
        let f = |t: &str| forward_target(&t.parse().unwrap());
        assert_eq!(
            f("http://example.org/x?y"),
            Ok("http://example.org/x?y".parse().unwrap())
        );
        assert!(matches!(
            f("https://example.org/"),
            Err(RouteError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            f("http://u@example.org/"),
            Err(RouteError::BadHost(_))
        ));
        assert!(matches!(r("/exa%20mple/"), Err(RouteError::BadHost(_))));
        assert_eq!(r("/favicon.ico"), Ok(Route::Favicon));
    }
}
