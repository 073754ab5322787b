//! `distroweb publish PATH`: a file or a directory (a site), through the local node.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bytes::Bytes;
use http::Method;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use distroweb_proxy::origin::{parse_id, site_url, LOCALHOST};

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
    /// Publish what symbolic links point to even outside the directory (by
    /// default such a link is an error: it may lead to a private file).
    #[arg(long)]
    follow_symlinks: bool,
}

/// Publishes and prints the id (first line) and the URL (second line).
pub fn run(args: Args) -> anyhow::Result<()> {
    let meta = std::fs::metadata(&args.path)
        .with_context(|| format!("cannot read {}", args.path.display()))?;
    let (query, content_type, body) = if meta.is_dir() {
        let files = site_files(&args.path, args.follow_symlinks)?;
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
    let root = parse_id(id).context("the node's answer has a malformed id")?;
    let printed = writeln!(
        std::io::stdout().lock(),
        "{id}\n{}",
        site_url(&root, LOCALHOST, api.addr().port())
    );
    match printed {
        // `distroweb publish DIR | head -1` closes the pipe early; that is fine.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Every regular file under `root` as (path relative to root with `/`, absolute
/// path), in path order; hidden files and directories (`.git`, `.env`) are left out.
/// A symbolic link is followed only if it stays inside `root` (or with
/// `follow_symlinks`); links that lead out are an error naming every one of
/// them, so a link to `~/.ssh` is never published by accident.
fn site_files(root: &Path, follow_symlinks: bool) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let real_root = std::fs::canonicalize(root)
        .with_context(|| format!("cannot resolve {}", root.display()))?;
    let mut out = Vec::new();
    let mut skipped = 0usize;
    let mut escaping = Vec::new();
    // Directories already listed, by real path: a link back up cannot loop.
    let mut seen = std::collections::BTreeSet::from([real_root.clone()]);
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
            let path = entry.path();
            let link = std::fs::symlink_metadata(&path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .file_type()
                .is_symlink();
            if link {
                let target = std::fs::canonicalize(&path)
                    .with_context(|| format!("{} is a broken symbolic link", path.display()))?;
                if !follow_symlinks && !target.starts_with(&real_root) {
                    escaping.push(format!("{} -> {}", path.display(), target.display()));
                    continue;
                }
            }
            // metadata() follows the link checked above.
            let meta = std::fs::metadata(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if meta.is_dir() {
                let real = std::fs::canonicalize(&path)
                    .with_context(|| format!("cannot resolve {}", path.display()))?;
                if seen.insert(real) {
                    stack.push((format!("{rel}/"), path));
                }
            } else if meta.is_file() {
                out.push((rel, path));
                if out.len() > MAX_FILES {
                    bail!("{} holds more than {MAX_FILES} files", root.display());
                }
            }
        }
    }
    if !escaping.is_empty() {
        escaping.sort();
        bail!(
            "refusing symbolic links that lead out of {}:\n  {}\n\
             remove them, or pass --follow-symlinks to publish what they point to",
            root.display(),
            escaping.join("\n  ")
        );
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
