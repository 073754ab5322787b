//! `distroweb publish PATH`: a file or a directory (a site), through the local node.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use http::Method;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use distroweb_proxy::origin::{parse_id, site_url, LOCALHOST};

use crate::local_api::{self, LocalApi};

/// Most files a published directory may hold: what the node's site builder
/// takes (a site of more files than one manifest holds is an index of them).
const MAX_FILES: usize = distroweb_protocol::content::MAX_BUILT_SITE_FILES;

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
    /// Also point the name NAME at what is published: a key the node keeps
    /// in its data directory, made on first use (never printed; move it with
    /// `distroweb key export/import`). Publishing again with the same name
    /// updates the site at the name's URL, printed last.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
}

/// Publishes and prints the id (first line) and the URL (second line).
///
/// The file, or the tar of the directory, streams to the node as it is read,
/// so publishing takes a few pieces of memory whatever the size.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(name) = &args.name {
        distroweb_net::name_keys::check_name(name)?;
    }
    let meta = std::fs::metadata(&args.path)
        .with_context(|| format!("cannot read {}", args.path.display()))?;
    let api = LocalApi::new(args.proxy);
    let runtime = tokio::runtime::Runtime::new()?;
    let answer = if meta.is_dir() {
        let files = site_files(&args.path, args.follow_symlinks)?;
        if !files.iter().any(|(rel, _)| rel == "index.html") {
            eprintln!(
                "note: {} has no index.html; link to its files by path",
                args.path.display()
            );
        }
        runtime.block_on(send(
            &api,
            String::new(),
            "application/x-tar",
            None,
            move |out| write_tar(&files, out),
        ))?
    } else {
        let name = args
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .context("the file name is not valid UTF-8")?;
        let query = format!("?name={}", utf8_percent_encode(name, NON_ALPHANUMERIC));
        let path = args.path.clone();
        let len = meta.len();
        runtime.block_on(send(
            &api,
            query,
            "application/octet-stream",
            Some(len),
            move |out| copy_exactly(&path, len, out),
        ))?
    };
    let id = answer["id"]
        .as_str()
        .context("the node's answer has no id")?;
    let root = parse_id(id).context("the node's answer has a malformed id")?;
    // The node knows the port its sites are served on; an older one may not say.
    let url = answer["url"].as_str().map_or_else(
        || site_url(&root, LOCALHOST, api.addr().port()),
        str::to_owned,
    );
    let named = match &args.name {
        Some(name) => {
            let path = format!(
                "/api/v1/name/{}?root={id}",
                utf8_percent_encode(name, NON_ALPHANUMERIC)
            );
            let answer = runtime
                .block_on(api.json(
                    Method::POST,
                    &path,
                    None,
                    local_api::whole(Default::default()),
                    Some(0),
                ))
                .with_context(|| {
                    format!("published {id}, but the name {name:?} was not updated")
                })?;
            let url = answer["url"]
                .as_str()
                .context("the node's answer has no name URL")?
                .to_owned();
            Some(url)
        }
        None => None,
    };
    let printed = match named {
        Some(name_url) => writeln!(std::io::stdout().lock(), "{id}\n{url}\n{name_url}"),
        None => writeln!(std::io::stdout().lock(), "{id}\n{url}"),
    };
    match printed {
        // `distroweb publish DIR | head -1` closes the pipe early; that is fine.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// `POST /api/v1/publish{query}` with a body that `produce` writes as it is sent.
async fn send(
    api: &LocalApi,
    query: String,
    content_type: &str,
    length: Option<u64>,
    produce: impl FnOnce(&mut dyn Write) -> std::io::Result<()> + Send + 'static,
) -> anyhow::Result<serde_json::Value> {
    let (body, producing) = local_api::streamed(produce);
    let answer = api
        .json(
            Method::POST,
            &format!("/api/v1/publish{query}"),
            Some(content_type),
            body,
            length,
        )
        .await;
    let produced = producing.await.context("the upload's reader failed")?;
    match produced {
        // A local file that could not be read explains the failure best, unless
        // the node simply stopped reading (it refused, and says why).
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("publishing stopped"))
        }
        _ => answer,
    }
}

/// Copies exactly `len` bytes of the file at `path` into `out`: a file that
/// shrinks while it is read is an error, never a shorter publication.
fn copy_exactly(path: &Path, len: u64, out: &mut dyn Write) -> std::io::Result<()> {
    let file = std::fs::File::open(path).map_err(|e| about(path, e))?;
    let mut exact = Exact::new(file, len, path);
    std::io::copy(&mut exact, out)?;
    Ok(())
}

/// Writes the tar of `files` into `out`, each read as it is packed.
fn write_tar(files: &[(String, PathBuf)], out: &mut dyn Write) -> std::io::Result<()> {
    let mut builder = tar::Builder::new(out);
    for (rel, path) in files {
        let file = std::fs::File::open(path).map_err(|e| about(path, e))?;
        let len = file.metadata().map_err(|e| about(path, e))?.len();
        let mut header = tar::Header::new_gnu();
        header.set_size(len);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, rel, Exact::new(file, len, path))?;
    }
    builder.finish()
}

/// An I/O error that names the file it is about.
fn about(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Reads exactly `left` bytes: the length a header or `Content-Length`
/// promised. Bytes past it are left unread; an early end is an error.
struct Exact<'a> {
    file: std::io::Take<std::fs::File>,
    left: u64,
    path: &'a Path,
}

impl<'a> Exact<'a> {
    fn new(file: std::fs::File, len: u64, path: &'a Path) -> Self {
        Exact {
            file: file.take(len),
            left: len,
            path,
        }
    }
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf).map_err(|e| about(self.path, e))?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(about(
                self.path,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "it shrank while it was being published",
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
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
