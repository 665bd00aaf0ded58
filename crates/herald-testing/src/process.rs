//! Child processes: the worker, and cleaning up after them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::stack::Stack;

/// A built binary of this workspace (run `cargo build --workspace --bins` first;
/// `make test` does).
pub fn binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("locating the target directory")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} is missing: build it with `cargo build --workspace --bins` (make test does)",
            path.display()
        );
    }
    Ok(path)
}

/// The local worker binary running against a stack; killed when dropped.
pub struct Worker {
    child: Child,
}

impl Worker {
    /// Starts `herald-worker` with the stack's settings, a one-second long poll,
    /// deliveries to 127.0.0.1 allowed, and `extra_env`.
    pub fn spawn(stack: &Stack, extra_env: &[(&str, &str)]) -> Result<Self> {
        let mut cmd = Command::new(binary("herald-worker")?);
        cmd.envs(&stack.env)
            .env("HERALD_WORKER_WAIT_SECONDS", "1")
            .env("HERALD_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null());
        Ok(Self {
            child: cmd.spawn().context("starting herald-worker")?,
        })
    }

    /// SIGKILL: the process dies at once, mid-batch if it is in one.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills a child process when dropped, unless taken out.
pub(crate) struct KillOnDrop(pub(crate) Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
