//! `distroweb key export|import NAME`: moves a name's secret key between
//! machines, so a site at a name can be updated from either.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use distroweb_net::{NameKeyError, NameKeys, OnExisting};
use distroweb_proxy::origin::{name_url, LOCALHOST};

/// Most bytes read as a key's text: a key is under 100, so anything far longer
/// is the wrong file and is refused without reading it all.
const MAX_TEXT_BYTES: u64 = 4096;

/// Options of `distroweb key`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do with the key.
    #[command(subcommand)]
    command: Command,
}

/// The key subcommands.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print a name's secret key to stdout, to import on another machine.
    /// Anyone with this text can change the site at the name.
    Export {
        /// The name the key is stored as (what `publish --name` was given).
        name: String,
        /// The node's data directory [default: the platform data dir].
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Store a key printed by `key export` as NAME, and print the name's URL.
    Import {
        /// The name to store the key as.
        name: String,
        /// The file holding the exported text; `-` or nothing reads stdin.
        file: Option<PathBuf>,
        /// The node's data directory [default: the platform data dir].
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Replace a different key already stored as NAME; that key is lost
        /// unless it was exported.
        #[arg(long)]
        force: bool,
        /// The node's proxy, whose port the printed URL uses.
        #[arg(long, default_value = "127.0.0.1:1234")]
        proxy: SocketAddr,
    },
}

/// Runs `distroweb key`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Export { name, data_dir } => export(&name, data_dir),
        Command::Import {
            name,
            file,
            data_dir,
            force,
            proxy,
        } => import(&name, file, data_dir, force, proxy),
    }
}

/// Prints the key's text to stdout, and the warning to stderr so that it
/// never ends up in the file the text is redirected to.
fn export(name: &str, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let data_dir = resolve_data_dir(data_dir)?;
    let text = NameKeys::new(&data_dir)
        .export(name)
        .with_context(|| format!("cannot export the key {name:?} from {}", data_dir.display()))?;
    eprintln!(
        "warning: anyone with this text can change the site at the name {name:?}; keep it secret"
    );
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .context("cannot write the key to stdout")?;
    Ok(())
}

/// Reads the key's text, stores it and prints the name's URL.
fn import(
    name: &str,
    file: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    force: bool,
    proxy: SocketAddr,
) -> anyhow::Result<()> {
    let data_dir = resolve_data_dir(data_dir)?;
    let text = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => read_text(std::fs::File::open(&path), &path.display().to_string())?,
        None => read_text(Ok(std::io::stdin().lock()), "stdin")?,
    };
    let on_existing = if force {
        OnExisting::Replace
    } else {
        OnExisting::Refuse
    };
    let key = match NameKeys::new(&data_dir).import(name, &text, on_existing) {
        Ok(key) => key,
        Err(e @ NameKeyError::Exists(_)) => {
            bail!("{e}; pass --force to replace it")
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!("cannot import the key {name:?} into {}", data_dir.display())
            })
        }
    };
    println!("{}", name_url(&key, LOCALHOST, proxy.port()));
    Ok(())
}

/// Up to [`MAX_TEXT_BYTES`] of text from `source` (named `what` in errors).
fn read_text(source: std::io::Result<impl Read>, what: &str) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    source
        .and_then(|r| r.take(MAX_TEXT_BYTES + 1).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read {what}"))?;
    if bytes.len() as u64 > MAX_TEXT_BYTES {
        bail!("{what} is longer than {MAX_TEXT_BYTES} bytes: not an exported key");
    }
    // The bytes are never shown: they may be a secret with one typo.
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{what} is not text: not an exported key"))
}

/// The directory given, or the one `distroweb node` uses by default.
fn resolve_data_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(dir) => Ok(dir),
        None => crate::node::default_data_dir(),
    }
}
