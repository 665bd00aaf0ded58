//! The two backends an end-to-end test runs against from the same test code: the
//! emulator (a stack deployed from infra/, SQS and DynamoDB) and memory
//! (`herald_memory::System`, no emulator). [`both_backends!`](crate::both_backends)
//! makes one `#[tokio::test]` per backend of a scenario.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_sqs::types::Message;
use herald_memory::System;
use herald_queue::{MessageSource, Publisher};
use herald_store::{SubscriptionStorage, SubscriptionStore};

use crate::{aws, drain, queue_depth, ApiServer, Stack, Worker};

/// Which backend a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The emulator (`make test` starts it): a stack per test.
    Emulator,
    /// Queues and stores in this process.
    Memory,
}

/// One test's Herald data plane on a backend.
pub struct Deployment {
    backend: Inner,
    subscriptions: Arc<dyn SubscriptionStorage>,
}

enum Inner {
    Emulator {
        stack: Stack,
        sqs: aws_sdk_sqs::Client,
    },
    Memory(Arc<System>),
}

/// The settings of an in-memory deployment's consumers, before a worker's own.
fn memory_vars() -> HashMap<String, String> {
    herald_memory::system::RESOURCE_NAMES
        .iter()
        .chain([&herald_memory::system::NO_SEAL_KEY])
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Deployment {
    /// A fresh data plane named after `test` (on the emulator, a stack of its own).
    pub async fn deploy(backend: Backend, test: &str) -> Result<Self> {
        match backend {
            Backend::Emulator => {
                let stack = Stack::deploy(test)?;
                let aws = aws().await;
                let store: SubscriptionStore = stack.subscription_store(&aws)?;
                Ok(Self {
                    subscriptions: Arc::new(store),
                    backend: Inner::Emulator {
                        stack,
                        sqs: aws_sdk_sqs::Client::new(&aws),
                    },
                })
            }
            Backend::Memory => {
                let config = herald_consumer::ConsumerConfig::from_vars(memory_vars())
                    .context("the in-memory consumer's settings")?;
                let system = Arc::new(System::new(&config));
                Ok(Self {
                    subscriptions: system.subscriptions.clone(),
                    backend: Inner::Memory(system),
                })
            }
        }
    }

    /// The webhooks store, as the API writes it.
    pub fn subscriptions(&self) -> &dyn SubscriptionStorage {
        self.subscriptions.as_ref()
    }

    /// A publisher onto the events queue.
    pub async fn publisher(&self) -> Result<Publisher> {
        match &self.backend {
            Inner::Emulator { stack, sqs } => {
                Ok(Publisher::connect(sqs.clone(), stack.events_queue()).await?)
            }
            Inner::Memory(system) => Ok(system.publisher()),
        }
    }

    /// Puts a raw message on the events queue (garbage, say).
    pub async fn inject(&self, body: &str) -> Result<()> {
        match &self.backend {
            Inner::Emulator { stack, sqs } => {
                sqs.send_message()
                    .queue_url(stack.events_queue())
                    .message_body(body)
                    .send()
                    .await?;
            }
            Inner::Memory(system) => {
                system.events.send(body, &[], Duration::ZERO)?;
            }
        }
        Ok(())
    }

    /// Starts the worker with the test settings of [`Worker::spawn`] and `extra_env`.
    pub fn worker(&self, extra_env: &[(&str, &str)]) -> Result<Worker> {
        match &self.backend {
            Inner::Emulator { stack, .. } => Worker::spawn(stack, extra_env),
            Inner::Memory(system) => Worker::spawn_in_memory(system, memory_vars(), extra_env),
        }
    }

    /// The management API on this data plane, as [`ApiServer::start`] serves it.
    pub async fn api(&self, overrides: &[(&str, &str)]) -> Result<ApiServer> {
        match &self.backend {
            Inner::Emulator { stack, .. } => ApiServer::start(stack, overrides).await,
            Inner::Memory(system) => {
                ApiServer::start_in_memory(system, memory_vars(), overrides).await
            }
        }
    }

    /// Messages on the DLQ, whatever their state.
    pub async fn dlq_depth(&self) -> Result<u64> {
        match &self.backend {
            Inner::Emulator { stack, sqs } => queue_depth(sqs, stack.dlq()).await,
            Inner::Memory(system) => Ok(system.dlq.counts().total()),
        }
    }

    /// Messages on the events queue, whatever their state.
    pub async fn events_depth(&self) -> Result<u64> {
        match &self.backend {
            Inner::Emulator { stack, sqs } => queue_depth(sqs, stack.events_queue()).await,
            Inner::Memory(system) => Ok(system.events.counts().total()),
        }
    }

    /// Receives and deletes everything on the DLQ.
    pub async fn drain_dlq(&self) -> Result<Vec<Message>> {
        match &self.backend {
            Inner::Emulator { stack, sqs } => drain(sqs, stack.dlq()).await,
            Inner::Memory(system) => {
                let mut all = Vec::new();
                loop {
                    let got = system.dlq.receive(10, Duration::ZERO).await?;
                    if got.is_empty() {
                        return Ok(all);
                    }
                    let handles: Vec<&str> =
                        got.iter().filter_map(|m| m.receipt_handle()).collect();
                    system.dlq.delete_batch(&handles);
                    all.extend(got);
                }
            }
        }
    }
}

/// One `#[tokio::test]` per backend of the scenario `async fn $name(Backend)`: a module
/// `$name` with the tests `emulator` and `in_memory`.
#[macro_export]
macro_rules! both_backends {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn emulator() {
                super::$name($crate::Backend::Emulator).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn in_memory() {
                super::$name($crate::Backend::Memory).await
            }
        }
    };
}
