//! Running the tools that build a lab (`ip`, `nft`, `sysctl`), with errors
//! that name the command and quote its complaint.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::LabError;

/// At most this much of a failed tool's standard error goes into the error.
const STDERR_BYTES: usize = 2_000;

/// Runs `program args…` and waits for it; a non-zero exit is an error.
pub fn run(program: &str, args: &[&str]) -> Result<(), LabError> {
    run_with_input(program, args, None)
}

/// Runs `program args…` with `input` on its standard input (an nftables
/// ruleset for `nft -f -`).
pub fn run_with_input(program: &str, args: &[&str], input: Option<&str>) -> Result<(), LabError> {
    let command = format!("{program} {}", args.join(" "));
    let spawn = |source| LabError::Spawn {
        command: command.clone(),
        source,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).map_err(spawn)?;
    }
    let out = child.wait_with_output().map_err(spawn)?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let start = stderr.len().saturating_sub(STDERR_BYTES);
    let start = (start..stderr.len())
        .find(|&i| stderr.is_char_boundary(i))
        .unwrap_or(stderr.len());
    Err(LabError::Failed {
        command,
        status: out.status,
        stderr: stderr[start..].trim().to_owned(),
    })
}

/// Runs `program args…` inside namespace `namespace` (`ip netns exec`).
pub fn run_in(namespace: &str, program: &str, args: &[&str]) -> Result<(), LabError> {
    let mut all = vec!["netns", "exec", namespace, program];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// Whether `program` can be found on `PATH` (or in the sbin directories, which
/// a non-login root shell may leave off it).
pub fn have(program: &str) -> bool {
    find(program).is_some()
}

/// Where `program` is on `PATH` or in the sbin directories.
pub fn find(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(Into::into))
        .map(|dir| dir.join(program))
        .find(|file| file.is_file())
}
