//! The HTML shell shared by the proxy's own pages.

use std::fmt::Write;

/// Escapes text for HTML element content and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `body` (already HTML), titled `title` (plain text).
pub fn page(title: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 512);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><h1>{title}</h1>\n{body}\n\
         <footer>distroweb {version}</footer></body></html>\n",
        title = escape(title),
        version = env!("CARGO_PKG_VERSION"),
    );
    out
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}\
code,td{font-family:ui-monospace,monospace;font-size:13px}table{border-collapse:collapse}\
td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:left}footer{margin-top:3em;color:#888}";

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
