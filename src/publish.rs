//! `distroweb publish PATH`: a file or a directory (a site), through the local node.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bytes::Bytes;
use http::Method;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::local_api::LocalApi;

/// Most files a published directory may hold (the protocol's site limit).
const MAX_FILES: usize = 16_384;

/// Options of `distroweb publish`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file or directory to publish.
    path: PathBuf,
    /// The running node's proxy.
    #[arg(long, default_value = "127.0.0.1:1234")]
    proxy: SocketAddr,
}

/// Publishes and prints the id (first line) and the URL (second line).
pub fn run(args: Args) -> anyhow::Result<()> {
    let meta = std::fs::metadata(&args.path)
        .with_context(|| format!("cannot read {}", args.path.display()))?;
    let (query, content_type, body) = if meta.is_dir() {
        let files = site_files(&args.path)?;
        if !files.iter().any(|(rel, _)| rel == "index.html") {
            eprintln!(
                "note: {} has no index.html; link to its files by path",
                args.path.display()
            );
        }
        (String::new(), "application/x-tar", tar_of(&files)?)
    } else {
        let name = args
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .context("the file name is not valid UTF-8")?;
        let data = std::fs::read(&args.path)
            .with_context(|| format!("cannot read {}", args.path.display()))?;
        let query = format!("?name={}", utf8_percent_encode(name, NON_ALPHANUMERIC));
        (query, "application/octet-stream", data)
    };
    let api = LocalApi::new(args.proxy);
    let answer = tokio::runtime::Runtime::new()?.block_on(api.json(
        Method::POST,
        &format!("/api/v1/publish{query}"),
        Some(content_type),
        Bytes::from(body),
    ))?;
    let id = answer["id"]
        .as_str()
        .context("the node's answer has no id")?;
    let printed = writeln!(
        std::io::stdout().lock(),
        "{id}\nhttp://{}/distroweb/{id}/",
        api.addr()
    );
    match printed {
        // `distroweb publish DIR | head -1` closes the pipe early; that is fine.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Every regular file under `root` as (path relative to root with `/`, absolute
/// path), in path order; hidden files and directories (`.git`, `.env`) are left out.
fn site_files(root: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut skipped = 0usize;
    let mut stack = vec![(String::new(), root.to_path_buf())];
    while let Some((prefix, dir)) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                bail!("{}: file names must be UTF-8", entry.path().display());
            };
            if name.starts_with('.') {
                skipped += 1;
                continue;
            }
            let rel = format!("{prefix}{name}");
            // metadata() follows symlinks: a link to a file publishes the file.
            let meta = std::fs::metadata(entry.path())
                .with_context(|| format!("cannot read {}", entry.path().display()))?;
            if meta.is_dir() {
                stack.push((format!("{rel}/"), entry.path()));
            } else if meta.is_file() {
                out.push((rel, entry.path()));
                if out.len() > MAX_FILES {
                    bail!("{} holds more than {MAX_FILES} files", root.display());
                }
            }
        }
    }
    if skipped > 0 {
        eprintln!("note: left out {skipped} hidden files or directories");
    }
    if out.is_empty() {
        bail!("{} holds no files to publish", root.display());
    }
    out.sort();
    Ok(out)
}

fn tar_of(files: &[(String, PathBuf)]) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (rel, path) in files {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, rel, data.as_slice())
            .with_context(|| format!("packing {rel}"))?;
    }
    builder.into_inner().context("packing the site")
}
