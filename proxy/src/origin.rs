//! Which origin a request is for: the node's own (`127.0.0.1`, `localhost`, `[::1]`,
//! or a configured name), one site's (`<base32 id>.localhost`), one name's
//! (`k<base32 key>.localhost`), or none of ours.
//!
//! One origin per site is what makes the browser's same-origin policy protect one
//! site from another and the node's API from every site (kubo's subdomain gateway
//! does the same); the Host allowlist is what stops DNS rebinding: a page whose
//! name resolves to 127.0.0.1 still sends its own name as Host, and is refused.
//!
//! A name (an Ed25519 public key) is 32 bytes like a content id, so its label
//! carries a `k` in front: 53 characters, still a DNS label (at most 63), and
//! never mistaken for an id's 52. A name keeps one origin across its versions,
//! so what a site stores in the browser survives its updates.

use std::net::IpAddr;

use distroweb_protocol::id::ID_BYTES;
use distroweb_protocol::names::NameKey;
use distroweb_protocol::{Id, ParseIdError};
use http::header::{HeaderMap, HeaderValue, ORIGIN, REFERER};
use http::uri::{Authority, Uri};

/// The RFC 4648 base32 alphabet, lowercase (DNS names are case-insensitive, and
/// browsers lowercase them).
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Characters in a base32 id: 256 bits at 5 bits a character, rounded up.
pub const BASE32_ID_LEN: usize = (ID_BYTES * 8).div_ceil(5);
/// The first character of a name's label, which tells it from a content id's.
pub const NAME_LABEL_PREFIX: char = 'k';
/// Characters in a name's label: the prefix and the key's 32 bytes in base32.
pub const NAME_LABEL_LEN: usize = 1 + BASE32_ID_LEN;
/// The name every site origin hangs under by default; browsers resolve it and all
/// its subdomains to loopback themselves (RFC 6761 §6.3).
pub const LOCALHOST: &str = "localhost";

/// Why a typed id is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdFormError {
    /// Neither 64 hex nor 52 base32 characters.
    #[error("a content id is 64 hex or {BASE32_ID_LEN} base32 characters, not {0}")]
    WrongLength(usize),
    /// 64 characters that are not lowercase hex.
    #[error(transparent)]
    Hex(#[from] ParseIdError),
    /// 52 characters that are not base32 (`a`–`z`, `2`–`7`).
    #[error("{0:?} is not a base32 character (a-z, 2-7)")]
    Base32(char),
    /// The last character carries bits past the id's 256: another spelling of an id,
    /// refused so one id has one name.
    #[error("the last base32 character carries bits past the id's end")]
    Trailing,
    /// Not `k` and 52 more characters, the form of a name.
    #[error("a name is {NAME_LABEL_PREFIX:?} and {BASE32_ID_LEN} base32 characters")]
    NotAName,
}

/// The id in lowercase unpadded base32, 52 characters: fits a DNS label (at most
/// 63), which the 64 hex characters do not.
pub fn to_base32(id: &Id) -> String {
    let mut out = String::with_capacity(BASE32_ID_LEN);
    push_base32(id.as_bytes(), &mut out);
    out
}

/// Appends 32 bytes as 52 lowercase base32 characters to `out`.
fn push_base32(bytes: &[u8; ID_BYTES], out: &mut String) {
    let mut buffer: u16 = 0;
    let mut bits = 0u32;
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[usize::from((buffer >> bits) & 31)]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[usize::from((buffer << (5 - bits)) & 31)]));
    }
}

/// Parses 52 base32 characters (either case) into an id.
pub fn parse_base32(s: &str) -> Result<Id, IdFormError> {
    decode_base32(s).map(Id::from_bytes)
}

/// 52 base32 characters (either case) back to their 32 bytes.
fn decode_base32(s: &str) -> Result<[u8; ID_BYTES], IdFormError> {
    if s.len() != BASE32_ID_LEN {
        return Err(IdFormError::WrongLength(s.len()));
    }
    let mut out = [0u8; ID_BYTES];
    let mut buffer: u16 = 0;
    let mut bits = 0u32;
    let mut next = 0usize;
    for c in s.chars() {
        let lower = c.to_ascii_lowercase();
        let value = BASE32
            .iter()
            .position(|&b| char::from(b) == lower)
            .ok_or(IdFormError::Base32(c))?;
        buffer = (buffer << 5) | value as u16;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            if let Some(slot) = out.get_mut(next) {
                *slot = (buffer >> bits) as u8;
            }
            next += 1;
        }
        buffer &= (1 << bits) - 1;
    }
    if buffer != 0 {
        return Err(IdFormError::Trailing);
    }
    Ok(out)
}

/// A name's host label: `k` and the key in lowercase base32, 53 characters.
pub fn name_label(name: &NameKey) -> String {
    let mut out = String::with_capacity(NAME_LABEL_LEN);
    out.push(NAME_LABEL_PREFIX);
    push_base32(&name.0, &mut out);
    out
}

/// Parses a name's label (`k` and 52 base32 characters, either case). Any 32
/// bytes parse: whether they are an Ed25519 key is for the record's signature
/// check to find.
pub fn parse_name(s: &str) -> Result<NameKey, IdFormError> {
    let key = match s.strip_prefix(['k', 'K']) {
        Some(key) if s.len() == NAME_LABEL_LEN => key,
        _ => return Err(IdFormError::NotAName),
    };
    decode_base32(key).map(NameKey)
}

/// Parses an id in either form: 64 lowercase hex characters (the printed form) or
/// 52 base32 characters (the form in a site's host name).
pub fn parse_id(s: &str) -> Result<Id, IdFormError> {
    match s.len() {
        n if n == ID_BYTES * 2 => Ok(s.parse()?),
        BASE32_ID_LEN => parse_base32(s),
        n => Err(IdFormError::WrongLength(n)),
    }
}

/// Whose origin a request's Host names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The node's own pages: status, metrics, API, relay. `name` is the host it was
    /// reached by, which sites hang under (`localhost` for loopback addresses).
    Node {
        /// The name site origins are subdomains of, or `None` when the node was
        /// reached by an address that cannot have subdomains (a configured IP).
        site_parent: Option<String>,
    },
    /// One site: every path is a path inside it.
    Site(Id),
    /// One name's site: every path is a path inside the root the name points at now.
    Name(NameKey),
}

/// Why a Host is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// No Host header on an origin-form request.
    #[error("the request has no Host header")]
    Missing,
    /// A name this proxy does not answer to (421): maybe DNS rebinding.
    #[error(
        "this proxy does not answer to the host {0:?}; it serves 127.0.0.1, localhost, \
         *.localhost and names given with --proxy-host"
    )]
    Foreign(String),
    /// A subdomain of ours whose label is neither a content id nor a name.
    #[error("{host:?} does not name a site: {why}")]
    NotAnId {
        /// The host.
        host: String,
        /// Why its first label is not an id or a name.
        why: IdFormError,
    },
}

/// The names this proxy answers to.
#[derive(Clone, Debug, Default)]
pub struct HostPolicy {
    /// Extra names (`--proxy-host`), lowercase, without a trailing dot.
    names: Vec<String>,
}

impl HostPolicy {
    /// A policy answering to loopback, `localhost`, `*.localhost` and `names`.
    pub fn new(names: &[String]) -> Self {
        HostPolicy {
            names: names.iter().map(|n| normalise(n)).collect(),
        }
    }

    /// Classifies the host of an authority (`Host` header or absolute URI); the
    /// port does not matter.
    pub fn classify(&self, authority: &str) -> Result<Origin, HostError> {
        let parsed: Authority = authority
            .parse()
            .map_err(|_| HostError::Foreign(authority.to_string()))?;
        let host = normalise(parsed.host());
        if let Some(ip) = ip_of(&host) {
            if ip.to_canonical().is_loopback() {
                return Ok(Origin::Node {
                    site_parent: Some(LOCALHOST.to_string()),
                });
            }
            if self.names.iter().any(|n| ip_of(n) == Some(ip)) {
                return Ok(Origin::Node { site_parent: None });
            }
            return Err(HostError::Foreign(host));
        }
        let parents = std::iter::once(LOCALHOST).chain(self.names.iter().map(String::as_str));
        for parent in parents {
            if host == parent {
                return Ok(Origin::Node {
                    site_parent: Some(parent.to_string()),
                });
            }
            let Some(label) = host.strip_suffix(parent).and_then(|h| h.strip_suffix('.')) else {
                continue;
            };
            // The length tells a name from a content id; each is then checked whole.
            let origin = if label.len() == NAME_LABEL_LEN {
                parse_name(label).map(Origin::Name)
            } else {
                parse_base32(label).map(Origin::Site)
            };
            return origin.map_err(|why| HostError::NotAnId {
                host: host.clone(),
                why,
            });
        }
        Err(HostError::Foreign(host))
    }
}

impl HostPolicy {
    /// Whether a request to the node's own origin comes from somewhere else: a
    /// site, a relayed page or any other website. Browsers say so in
    /// `Sec-Fetch-Site` and, on CORS and form requests, `Origin`; the CLI sends neither.
    pub fn from_elsewhere(&self, headers: &HeaderMap) -> bool {
        let fetch_site = headers.get("sec-fetch-site").map(HeaderValue::as_bytes);
        if matches!(fetch_site, Some(b"cross-site" | b"same-site")) {
            return true;
        }
        headers
            .get(ORIGIN)
            .is_some_and(|o| !matches!(self.origin_of(o), Some(Origin::Node { .. })))
    }

    /// Whether a request was sent by a page of a site (by `Origin` or `Referer`):
    /// the relay refuses those, so no site reaches other hosts in the node's name.
    pub fn from_site(&self, headers: &HeaderMap) -> bool {
        [ORIGIN, REFERER].iter().any(|name| {
            headers.get(name).is_some_and(|v| {
                matches!(self.origin_of(v), Some(Origin::Site(_) | Origin::Name(_)))
            })
        })
    }

    /// The origin a URL-valued header (`Origin`, `Referer`) names, if it is ours.
    fn origin_of(&self, value: &HeaderValue) -> Option<Origin> {
        let uri: Uri = value.to_str().ok()?.parse().ok()?;
        self.classify(uri.authority()?.as_str()).ok()
    }
}

/// Whether a request for content was made on purpose: typed, followed by hand,
/// or loaded by the site itself. A subresource that another website embeds
/// (`Sec-Fetch-Site: cross-site` or `same-site`, not a top-level navigation) is
/// not, and gets only content the node already holds: otherwise any page could
/// make the node fetch, store and announce ids of its choosing.
pub fn on_purpose(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).map(HeaderValue::as_bytes);
    let elsewhere = matches!(get("sec-fetch-site"), Some(b"cross-site" | b"same-site"));
    let navigation =
        get("sec-fetch-mode") == Some(b"navigate") && get("sec-fetch-dest") != Some(b"iframe");
    !elsewhere || navigation
}

/// The URL of a site's own origin: `http://<base32 id>.<parent>:<port>/`.
pub fn site_url(id: &Id, parent: &str, port: u16) -> String {
    format!("http://{}.{parent}:{port}/", to_base32(id))
}

/// The URL of a name's own origin: `http://k<base32 key>.<parent>:<port>/`.
pub fn name_url(name: &NameKey, parent: &str, port: u16) -> String {
    format!("http://{}.{parent}:{port}/", name_label(name))
}

fn normalise(host: &str) -> String {
    let lower = host.to_ascii_lowercase();
    lower.strip_suffix('.').unwrap_or(&lower).to_string()
}

fn ip_of(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Id {
        Id::hash_of(&[n])
    }

    #[test]
    fn base32_round_trips_and_has_one_spelling() {
        assert_eq!(to_base32(&Id::ZERO), "a".repeat(52));
        assert_eq!(
            to_base32(&Id::from_bytes([0xff; 32])),
            format!("{}q", "7".repeat(51))
        );
        for n in 0..50 {
            let s = to_base32(&id(n));
            assert_eq!(s.len(), BASE32_ID_LEN);
            assert_eq!(parse_base32(&s), Ok(id(n)));
            assert_eq!(parse_base32(&s.to_uppercase()), Ok(id(n)));
            assert_eq!(parse_id(&s), Ok(id(n)));
            assert_eq!(parse_id(&id(n).to_string()), Ok(id(n)));
        }
        // The last character of 0xff.. is `q` (1 data bit); `r` sets a padding bit.
        assert_eq!(
            parse_base32(&format!("{}r", "7".repeat(51))),
            Err(IdFormError::Trailing)
        );
        assert_eq!(
            parse_base32(&format!("{}1", "a".repeat(51))),
            Err(IdFormError::Base32('1'))
        );
        assert_eq!(parse_id("abc"), Err(IdFormError::WrongLength(3)));
        assert!(matches!(
            parse_id(&"G".repeat(64)),
            Err(IdFormError::Hex(_))
        ));
    }

    fn name(n: u8) -> NameKey {
        NameKey(*id(n).as_bytes())
    }

    #[test]
    fn name_labels_round_trip_and_have_one_spelling() {
        let zero = NameKey([0; 32]);
        assert_eq!(name_label(&zero), format!("k{}", "a".repeat(52)));
        assert_eq!(
            name_label(&NameKey([0xff; 32])),
            format!("k{}q", "7".repeat(51))
        );
        for n in 0..50 {
            let label = name_label(&name(n));
            assert_eq!(label.len(), NAME_LABEL_LEN);
            assert!(label.len() <= 63, "a DNS label");
            assert_eq!(label[1..], to_base32(&id(n)));
            assert_eq!(parse_name(&label), Ok(name(n)));
            assert_eq!(parse_name(&label.to_uppercase()), Ok(name(n)));
        }
        let b = to_base32(&id(1));
        // Wrong lengths, a missing or wrong prefix: not a name.
        for bad in [
            String::new(),
            "k".to_string(),
            b.clone(),
            format!("k{}", &b[1..]),
            format!("k{b}a"),
            format!("a{b}"),
            format!("2{b}"),
            format!("k{b}").replacen('k', "é", 1),
        ] {
            assert_eq!(parse_name(&bad), Err(IdFormError::NotAName), "{bad:?}");
        }
        assert_eq!(
            parse_name(&format!("k{}1", "a".repeat(51))),
            Err(IdFormError::Base32('1'))
        );
        assert_eq!(
            parse_name(&format!("k{}é", "a".repeat(50))),
            Err(IdFormError::Base32('é'))
        );
        // The last character of 0xff.. is `q` (1 data bit); `r` sets a padding bit.
        assert_eq!(
            parse_name(&format!("k{}r", "7".repeat(51))),
            Err(IdFormError::Trailing)
        );
        assert_eq!(
            name_url(&name(1), "localhost", 1234),
            format!("http://k{b}.localhost:1234/")
        );
    }

    #[test]
    fn name_hosts_follow_the_site_hosts_rules() {
        let p = HostPolicy::new(&["mybox.lan".to_string(), "192.0.2.7".to_string()]);
        let label = name_label(&name(1));
        let b = to_base32(&id(1));
        for host in [
            format!("{label}.localhost:1234"),
            format!("{}.LocalHost.", label.to_uppercase()),
            format!("{label}.mybox.lan"),
        ] {
            assert_eq!(p.classify(&host), Ok(Origin::Name(name(1))), "{host}");
        }
        // A content id's label is still a site, whatever its first character.
        let k_id = (0..=255u8)
            .map(id)
            .find(|i| to_base32(i).starts_with('k'))
            .unwrap();
        assert_eq!(
            p.classify(&format!("{}.localhost", to_base32(&k_id))),
            Ok(Origin::Site(k_id))
        );
        assert_eq!(
            p.classify(&format!("{b}.localhost")),
            Ok(Origin::Site(id(1)))
        );
        // 53 characters that are not `k` and a key name nothing.
        for bad in [
            format!("a{b}.localhost"),
            format!("k{}r.localhost", "7".repeat(51)),
            format!("k{}1.localhost", "a".repeat(51)),
            format!("x.{label}.localhost"),
        ] {
            assert!(
                matches!(p.classify(&bad), Err(HostError::NotAnId { .. })),
                "{bad}"
            );
        }
        // Under a name that is not ours, or an IP, a name label is foreign.
        for foreign in [
            format!("{label}.evil.example"),
            format!("{label}.localhost.evil.example"),
            format!("{label}localhost"),
        ] {
            assert!(
                matches!(p.classify(&foreign), Err(HostError::Foreign(_))),
                "{foreign}"
            );
        }
        // A name's pages count as a site's: the relay refuses them, and the
        // node's own origin sees them as elsewhere.
        let mut headers = HeaderMap::new();
        let origin = format!("http://{label}.localhost:1234");
        headers.insert(ORIGIN, HeaderValue::from_str(&origin).unwrap());
        assert!(p.from_site(&headers));
        assert!(p.from_elsewhere(&headers));
        let mut headers = HeaderMap::new();
        let referer = format!("{origin}/a/b.html");
        headers.insert(REFERER, HeaderValue::from_str(&referer).unwrap());
        assert!(p.from_site(&headers));
    }

    #[test]
    fn hosts_are_classified() {
        let p = HostPolicy::new(&["MyBox.lan.".to_string(), "192.0.2.7".to_string()]);
        let node = |parent: &str| Origin::Node {
            site_parent: Some(parent.to_string()),
        };
        for h in [
            "127.0.0.1:1234",
            "127.9.9.9",
            "[::1]:1234",
            "localhost:1",
            "LOCALHOST.",
        ] {
            assert_eq!(p.classify(h), Ok(node("localhost")), "{h}");
        }
        assert_eq!(p.classify("mybox.lan:80"), Ok(node("mybox.lan")));
        assert_eq!(
            p.classify("192.0.2.7:1234"),
            Ok(Origin::Node { site_parent: None })
        );
        let b = to_base32(&id(1));
        assert_eq!(
            p.classify(&format!("{b}.localhost:1234")),
            Ok(Origin::Site(id(1)))
        );
        assert_eq!(
            p.classify(&format!("{}.LocalHost", b.to_uppercase())),
            Ok(Origin::Site(id(1)))
        );
        assert_eq!(
            p.classify(&format!("{b}.mybox.lan")),
            Ok(Origin::Site(id(1)))
        );
        assert!(matches!(
            p.classify("www.localhost"),
            Err(HostError::NotAnId { .. })
        ));
        assert!(matches!(
            p.classify(&format!("x.{b}.localhost")),
            Err(HostError::NotAnId { .. })
        ));
        for foreign in [
            "evil.example",
            "evil.example:1234",
            "localhost.evil.example",
            "evillocalhost",
            "192.168.1.1",
            "[fe80::1]",
            "0.0.0.0",
            "",
            "a b",
        ] {
            assert!(
                matches!(p.classify(foreign), Err(HostError::Foreign(_))),
                "{foreign}"
            );
        }
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_str(v).unwrap());
            }
            h
        };
        let site_origin = format!("http://{b}.localhost:1234");
        assert!(!p.from_elsewhere(&headers(&[])));
        assert!(!p.from_elsewhere(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!p.from_elsewhere(&headers(&[("sec-fetch-site", "none")])));
        assert!(!p.from_elsewhere(&headers(&[("origin", "http://127.0.0.1:1234")])));
        assert!(p.from_elsewhere(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(p.from_elsewhere(&headers(&[("origin", &site_origin)])));
        assert!(p.from_elsewhere(&headers(&[("origin", "null")])));
        assert!(p.from_elsewhere(&headers(&[("origin", "http://evil.example")])));
        assert!(p.from_site(&headers(&[("referer", &format!("{site_origin}/x.html"))])));
        assert!(p.from_site(&headers(&[("origin", &site_origin)])));
        assert!(!p.from_site(&headers(&[
            ("origin", "null"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(on_purpose(&headers(&[])));
        assert!(on_purpose(&headers(&[
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-mode", "no-cors")
        ])));
        assert!(on_purpose(&headers(&[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document")
        ])));
        assert!(!on_purpose(&headers(&[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "no-cors"),
            ("sec-fetch-dest", "image")
        ])));
        assert!(!on_purpose(&headers(&[
            ("sec-fetch-site", "same-site"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "iframe")
        ])));
        assert_eq!(
            site_url(&id(1), "localhost", 1234),
            format!("http://{b}.localhost:1234/")
        );
    }
}
