//! `distroweb get ID`: content through the local node, to a file, a directory or stdout.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use indicatif::{ProgressBar, ProgressStyle};

use distroweb_protocol::Id;
use distroweb_proxy::origin::parse_id;

use crate::local_api::{content_error, LocalApi};

/// Files at least this large get a progress bar.
const PROGRESS_MIN_BYTES: u64 = 1 << 20;

/// Options of `distroweb get`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The content id: 64 hex or 52 base32 characters.
    id: String,
    /// Where to write a file (default: stdout), or the directory for a site
    /// (default: a new directory named after the id).
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// The running node's proxy.
    #[arg(long, default_value = "127.0.0.1:1234")]
    proxy: SocketAddr,
}

/// Fetches `id` and writes it out.
pub fn run(args: Args) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(get(args))
}

async fn get(args: Args) -> anyhow::Result<()> {
    let api = LocalApi::new(args.proxy);
    let id =
        parse_id(args.id.trim()).with_context(|| format!("{:?} is not a content id", args.id))?;
    // What the content is arrives with its root manifest; the fetch goes on meanwhile.
    let listing = api
        .json(
            Method::GET,
            &format!("/api/v1/content/{id}"),
            None,
            crate::local_api::whole(Bytes::new()),
            None,
        )
        .await?;
    if listing["kind"] == "site" {
        let dir = args.output.unwrap_or_else(|| PathBuf::from(id.to_string()));
        return get_site(&api, &id, &listing, &dir).await;
    }
    let response = api.get_from_site(&id, "/").await?;
    if response.status() != StatusCode::OK {
        return Err(content_error(response.status(), &id.to_string()));
    }
    let len = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    match &args.output {
        Some(path) => save(response.into_body(), len, path).await,
        None => {
            let mut out = std::io::stdout().lock();
            copy(response.into_body(), len, &mut out).await?;
            out.flush().context("writing to stdout")
        }
    }
}

async fn get_site(
    api: &LocalApi,
    id: &Id,
    listing: &serde_json::Value,
    dir: &Path,
) -> anyhow::Result<()> {
    let files = listing["files"]
        .as_array()
        .context("the node's answer lists no files")?;
    for file in files {
        let path = file["path"].as_str().context("a file without a path")?;
        if path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
            || path.starts_with('/')
        {
            bail!("refusing unsafe path {path:?} in the site");
        }
        let target = dir.join(path);
        let encoded: String = path
            .split('/')
            .map(|s| {
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("/");
        let response = api.get_from_site(id, &format!("/{encoded}")).await?;
        if response.status() != StatusCode::OK {
            return Err(content_error(response.status(), &format!("{id}/{path}")));
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let len = file["size"].as_u64();
        save(response.into_body(), len, &target).await?;
    }
    eprintln!("{} files written to {}", files.len(), dir.display());
    Ok(())
}

async fn save(body: Incoming, len: Option<u64>, path: &Path) -> anyhow::Result<()> {
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let mut file =
        std::fs::File::create(&part).with_context(|| format!("creating {}", part.display()))?;
    copy(body, len, &mut file).await?;
    file.sync_all()
        .with_context(|| format!("writing {}", part.display()))?;
    std::fs::rename(&part, path).with_context(|| format!("renaming to {}", path.display()))
}

async fn copy(mut body: Incoming, len: Option<u64>, out: &mut impl Write) -> anyhow::Result<u64> {
    let bar = match len {
        Some(n) if n >= PROGRESS_MIN_BYTES => {
            let bar = ProgressBar::new(n);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        }
        _ => ProgressBar::hidden(),
    };
    let mut written = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.context("the transfer broke off")?;
        if let Some(data) = frame.data_ref() {
            out.write_all(data).context("writing the output")?;
            written += data.len() as u64;
            bar.set_position(written);
        }
    }
    bar.finish_and_clear();
    if let Some(n) = len {
        if written != n {
            bail!("the transfer ended after {written} of {n} bytes");
        }
    }
    Ok(written)
}
