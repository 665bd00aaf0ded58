//! Herald's queues and stores in one process, wired as `herald dev --in-memory` (and
//! the end-to-end tests' in-memory backend) use them: the events queue with its DLQ,
//! the stores, the publisher onto the queue, and the worker polling it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use herald_consumer::{worker, Adapters, Consumer, ConsumerConfig};
use herald_delivery::HttpDeliverer;
use herald_queue::{MessageSource, Publisher};

use crate::{
    MemoryApps, MemoryHistory, MemoryIdempotency, MemoryOutbox, MemoryQueue, MemorySink,
    MemorySource, MemorySubscriptions, QueueSettings,
};

/// The settings the API's and the consumer's loaders require that name AWS resources:
/// in memory nothing reads them, so they name the in-memory ones.
pub const RESOURCE_NAMES: [(&str, &str); 6] = [
    ("HERALD_EVENTS_QUEUE_URL", "memory://events"),
    ("HERALD_DLQ_URL", "memory://dlq"),
    ("HERALD_SUBSCRIPTIONS_TABLE", "memory-subscriptions"),
    ("HERALD_HISTORY_TABLE", "memory-history"),
    ("HERALD_APPS_TABLE", "memory-apps"),
    ("HERALD_IDEMPOTENCY_TABLE", "memory-idempotency"),
];

/// The master key setting the loaders require when neither is set: secrets are never
/// written anywhere in memory, so nothing is sealed and no key is read.
pub const NO_SEAL_KEY: (&str, &str) = ("HERALD_KMS_KEY_ID", "memory-nothing-is-sealed");

/// Receives after which the events queue moves a message to the DLQ: the data plane's
/// `MaxReceiveCount` default (infra/data-plane.yaml).
pub const MAX_RECEIVE_COUNT: u32 = 5;

/// The in-memory queues and stores, shared by the API and the worker.
pub struct System {
    /// The events queue (published events, retries, operational events).
    pub events: Arc<MemoryQueue>,
    /// The dead-letter queue.
    pub dlq: Arc<MemoryQueue>,
    /// Webhooks.
    pub subscriptions: Arc<MemorySubscriptions>,
    /// The delivery history.
    pub history: Arc<MemoryHistory>,
    /// Apps and their keys.
    pub apps: Arc<MemoryApps>,
    /// `Idempotency-Key` records.
    pub idempotency: Arc<MemoryIdempotency>,
}

impl System {
    /// Empty queues and stores for consumers configured as `config`: the events
    /// queue's visibility timeout exceeds the worst-case batch time (the rule
    /// `herald worker` checks on SQS) by a minute.
    pub fn new(config: &ConsumerConfig) -> Self {
        let queue = QueueSettings {
            visibility_timeout: config.delivery.worst_case_batch_time() + Duration::from_secs(60),
            max_receive_count: MAX_RECEIVE_COUNT,
        };
        let dlq = MemoryQueue::new(queue);
        Self {
            events: MemoryQueue::with_dead_letters(queue, Arc::clone(&dlq)),
            dlq,
            subscriptions: Arc::default(),
            history: Arc::new(MemoryHistory::new(config.history_retention)),
            apps: Arc::new(MemoryApps::default()),
            idempotency: Arc::new(MemoryIdempotency::default()),
        }
    }

    /// The outbox onto the events queue and the DLQ.
    pub fn outbox(&self) -> Arc<MemoryOutbox> {
        Arc::new(MemoryOutbox::new(
            Arc::clone(&self.events),
            Arc::clone(&self.dlq),
        ))
    }

    /// A publisher onto the events queue.
    pub fn publisher(&self) -> Publisher {
        Publisher::with_sink(Arc::new(MemorySink::new(Arc::clone(&self.events))))
    }

    /// The API's backends on these queues and stores (no inbound sources, no
    /// re-driver): what `herald dev --in-memory` and the tests' in-memory API serve.
    pub fn api_backends(&self) -> herald_api::Backends {
        herald_api::Backends {
            subscriptions: self.subscriptions.clone(),
            history: self.history.clone(),
            apps: self.apps.clone(),
            idempotency: self.idempotency.clone(),
            publisher: self.publisher(),
            outbox: self.outbox(),
            events_queue: self.events.clone(),
            dlq: self.dlq.clone(),
            sources: None,
            redriver: None,
        }
    }

    /// The worker (`herald_consumer::worker`) on the events queue with `config`'s
    /// delivery and polling settings, until `shutdown` completes; then it finishes the
    /// batches in hand.
    pub async fn worker(
        &self,
        config: &ConsumerConfig,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let adapters = Adapters {
            subscriptions: Arc::new(MemorySource::new(
                Arc::clone(&self.subscriptions),
                config.disable_after,
            )),
            deliverer: Arc::new(HttpDeliverer::new(&config.http)?),
            outbox: self.outbox(),
            history: self.history.clone(),
        };
        let consumer = Arc::new(Consumer::new(adapters, config.delivery.clone()));
        let settings = worker::PollSettings::of(config);
        let queue: Arc<dyn MessageSource> = self.events.clone();
        worker::run(&queue, &consumer, &settings, shutdown).await;
        Ok(())
    }
}
