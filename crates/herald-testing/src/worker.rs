//! The worker in-process: `herald_consumer::run_worker_until` in a tokio task.

use std::collections::HashMap;
use std::sync::{Arc, Once};

use anyhow::{Context, Result};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::stack::Stack;

/// The settings every test worker runs with, before the test's own: a one-second long
/// poll, so a stop is never long in coming, and deliveries to 127.0.0.1 allowed.
const WORKER_ENV: [(&str, &str); 2] = [
    ("HERALD_WORKER_WAIT", "1s"),
    ("HERALD_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32"),
];

/// The local worker (the loop of `herald worker`) running in-process against a stack,
/// configured from the stack's settings as `herald worker` would be. Dropping it asks
/// it to stop; [`Worker::stop`] also waits until it has.
pub struct Worker {
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<()>>>,
}

impl Worker {
    /// Starts the worker with the stack's settings, a one-second long poll, deliveries
    /// to 127.0.0.1 allowed, and `extra_env` (which wins). Must be called within a
    /// tokio runtime; fails on settings the worker would refuse.
    pub fn spawn(stack: &Stack, extra_env: &[(&str, &str)]) -> Result<Self> {
        init_logging();
        let mut vars: HashMap<String, String> = stack.env.clone();
        for (k, v) in WORKER_ENV.iter().chain(extra_env) {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = herald_consumer::ConsumerConfig::from_vars(vars.clone())
            .context("the worker's settings")?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let result = herald_consumer::run_worker_until(config, async {
                // A stop, or the Worker dropped.
                let _ = rx.await;
            })
            .await;
            if let Err(e) = &result {
                eprintln!("[worker] stopped with an error: {e:#}");
            }
            result
        });
        Ok(Self {
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Starts the worker on an in-memory system (`herald dev --in-memory`'s), with
    /// `vars`, the test settings above and `extra_env` (which wins).
    pub fn spawn_in_memory(
        system: &Arc<herald_memory::System>,
        mut vars: HashMap<String, String>,
        extra_env: &[(&str, &str)],
    ) -> Result<Self> {
        init_logging();
        for (k, v) in WORKER_ENV.iter().chain(extra_env) {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let config =
            herald_consumer::ConsumerConfig::from_vars(vars).context("the worker's settings")?;
        let (tx, rx) = oneshot::channel::<()>();
        let system = Arc::clone(system);
        let task = tokio::spawn(async move {
            system
                .worker(&config, async {
                    let _ = rx.await;
                })
                .await
        });
        Ok(Self {
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Asks the worker to stop and waits until it has: the batches in hand are finished
    /// (delivered, retried or parked, their history written, their messages deleted), so
    /// nothing the worker started is still under way when this returns. Returns how
    /// the worker ended.
    pub async fn stop(mut self) -> Result<()> {
        self.shutdown.take();
        let task = self.task.take().context("the worker was already stopped")?;
        task.await.context("the worker task panicked")?
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Dropping the sender completes the shutdown future: the worker finishes its
        // batch and stops (or is dropped with the test's runtime).
        self.shutdown.take();
    }
}

/// Logs of in-process workers and servers, at `RUST_LOG` (default `warn`), through
/// the test harness's capture. One subscriber for the whole test binary, installed by
/// the first worker; never one per test.
fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        // Another subscriber may be installed already (by the test binary): keep it.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .with_ansi(false)
            .try_init();
    });
}
