//! Child processes: `herald worker`, and cleaning up after them.

use std::process::{Child, Stdio};

use anyhow::{Context, Result};

use crate::cli::Herald;

/// `herald worker` as a child process; killed (SIGKILL) when dropped. For the tests
/// whose point is the process (killed mid-batch, refusing to start); the others run
/// the worker in-process.
pub struct WorkerProcess {
    child: Child,
}

impl WorkerProcess {
    /// Starts `herald worker` with `herald`'s settings, a one-second long poll,
    /// deliveries to 127.0.0.1 allowed, and `extra_env`.
    pub fn spawn(herald: &Herald, extra_env: &[(&str, &str)]) -> Result<Self> {
        let mut herald = herald
            .with("HERALD_WORKER_WAIT", "1s")
            .with("HERALD_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32");
        for (k, v) in extra_env {
            herald = herald.with(k, v);
        }
        let child = herald
            .std_command(&["worker"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting herald worker")?;
        Ok(Self { child })
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

impl Drop for WorkerProcess {
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
