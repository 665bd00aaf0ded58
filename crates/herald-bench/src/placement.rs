//! Where the in-process runs poll their futures: in the bench's task on one of the
//! runtime's workers, or by `block_on` from a thread outside them
//! (docs/perf/README.md, "Where the handler runs").

use anyhow::{Context, Result};
use serde::Serialize;

/// Where a run's futures are polled. The bench runs in a task on the runtime's
/// workers ([`on_a_worker`]), and Herald's side is always polled there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// In the bench's task on one of the runtime's worker threads, as `herald worker`
    /// runs its batches and the consumer's Lambda its invocations: the wake-ups
    /// between the run and hyper's connection tasks mostly stay on that worker.
    Worker,
    /// By `Handle::block_on` on a thread outside the workers, as `#[tokio::main]` polls
    /// its main future: every wake-up between the run and a connection task crosses
    /// threads.
    BlockOn,
}

impl Placement {
    /// How the report names it.
    pub fn describe(self) -> &'static str {
        match self {
            Placement::Worker => "on a worker",
            Placement::BlockOn => "by `block_on`",
        }
    }

    /// The other placement.
    pub fn other(self) -> Self {
        match self {
            Placement::Worker => Placement::BlockOn,
            Placement::BlockOn => Placement::Worker,
        }
    }
}

/// Awaits `run` placed as `placement` says. `BlockOn` hands the current worker's
/// duties to another thread for the while (`block_in_place`) and polls `run` on this
/// one, which is then outside the workers.
pub async fn placed<F: std::future::Future>(placement: Placement, run: F) -> F::Output {
    match placement {
        Placement::Worker => run.await,
        Placement::BlockOn => {
            tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(run))
        }
    }
}

/// Runs `work` to its end in a task on `runtime`'s worker threads rather than on the
/// calling thread (`block_on`), as `herald worker` runs its batches and the consumer's
/// Lambda its invocations: a task on a worker wakes the tasks of hyper's connections
/// onto its own thread, where a future polled by `block_on` hands every wake-up to
/// another thread (docs/perf/README.md, "Where the handler runs").
pub fn on_a_worker<F>(runtime: tokio::runtime::Runtime, work: F) -> Result<()>
where
    F: std::future::Future<Output = Result<()>> + Send + 'static,
{
    runtime.block_on(async {
        tokio::spawn(work)
            .await
            .context("the bench's task panicked")?
    })
}
