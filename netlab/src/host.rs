//! A host of a lab: a namespace with one address, where a test runs a
//! command or a thread whose sockets live there.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::thread::JoinHandle;

use crate::LabError;

/// A namespace of the lab and the address others reach it at.
#[derive(Clone, Debug)]
pub struct Host {
    pub(crate) namespace: String,
    pub(crate) addr: Ipv4Addr,
}

impl Host {
    /// Its namespace's name (for `ip netns exec`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Its address: on the public network for a public host or a router,
    /// on its home network for a host at home.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// A command that runs `program` in this host's namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.namespace, program]);
        command
    }

    /// Runs `f` on a new thread inside this host's namespace: every socket it
    /// opens, and every thread it starts (a tokio runtime's workers), is there.
    ///
    /// Why a new thread: `setns` moves only the calling thread, and a thread
    /// that has moved must not go back to serving the test's other work.
    pub fn spawn<T, F>(&self, f: F) -> JoinHandle<Result<T, LabError>>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let namespace = self.namespace.clone();
        std::thread::spawn(move || {
            enter(&namespace).map_err(|source| LabError::Enter {
                namespace: namespace.clone(),
                source,
            })?;
            Ok(f())
        })
    }
}

/// Moves the calling thread into network namespace `namespace`.
fn enter(namespace: &str) -> io::Result<()> {
    let file = File::open(format!("/var/run/netns/{namespace}"))?;
    // SAFETY: setns only reads the descriptor, which `file` keeps open for
    // the call, and changes this thread's network namespace, nothing else.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
