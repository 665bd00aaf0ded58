//! Herald's test harness: an isolated stack per test (deployed from infra/ into the
//! running emulator), real HTTP receivers on 127.0.0.1, the worker, the management
//! API, and the Lambda bootstraps under an emulated Lambda Runtime API.
//!
//! The emulator itself is started by `make test` (see localstack/with-emulator), which
//! exports `AWS_ENDPOINT_URL`. End-to-end scenarios can also run in memory, with no
//! emulator: [`Deployment`] on a [`Backend`], and [`both_backends!`] for one test each.

#![warn(missing_docs)]

mod api;
mod aws;
mod backend;
mod browser;
mod cli;
mod lambda;
mod lambda_events;
mod process;
mod proxy;
mod receiver;
mod stack;
mod wait;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;

pub use api::{ApiServer, ADMIN_KEY};
pub use aws::{aws, aws_at, drain, queue_counts, queue_depth, QueueCounts};
pub use backend::{Backend, Deployment};
pub use browser::{browser_installed, browser_or_skip, console_session, Browser, ConsoleSession};
pub use cli::{Herald, Out, RUN_TIMEOUT};
pub use lambda::{cargo_lambda, lambda_bootstrap, LambdaFunction};
pub use lambda_events::{http_event, sqs_event};
pub use process::{free_port, WorkerProcess};
pub use proxy::{is_dynamodb_write, Fault, FaultProxy, Observer, Rule};
pub use receiver::{Accounting, Behaviour, Received, Receiver, Reply, Seen};
pub use stack::{template, Stack};
pub use wait::{wait_for, wait_until};
pub use worker::Worker;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/herald-testing is two levels below the root")
        .to_path_buf()
}

/// A fresh directory under `target/tmp` for one test's files.
pub fn scratch_dir(label: &str) -> Result<PathBuf> {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let dir = root().join("target/tmp").join(format!(
        "{label}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
