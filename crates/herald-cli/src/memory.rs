//! `herald dev --in-memory`: the API (with the console) and the worker in this process
//! on `herald-memory`'s queues and stores, no emulator and no AWS call. Everything is
//! lost when the process exits; only `herald dev` offers it (never `herald serve`,
//! `herald worker` or the Lambda binaries).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use herald_consumer::{worker, Adapters, Consumer, ConsumerConfig};
use herald_delivery::HttpDeliverer;
use herald_memory::{
    MemoryApps, MemoryHistory, MemoryIdempotency, MemoryOutbox, MemoryQueue, MemorySink,
    MemorySubscriptions, QueueSettings,
};
use herald_queue::{MessageSource, Publisher};

use crate::config::Settings;
use crate::failure::Failure;

/// The settings the API's and the worker's loaders require that name AWS resources:
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
const MAX_RECEIVE_COUNT: u32 = 5;

/// The in-memory queues and stores, shared by the API and the worker.
pub struct System {
    events: Arc<MemoryQueue>,
    dlq: Arc<MemoryQueue>,
    subscriptions: Arc<MemorySubscriptions>,
    history: Arc<MemoryHistory>,
    apps: Arc<MemoryApps>,
    idempotency: Arc<MemoryIdempotency>,
    consumer: ConsumerConfig,
}

impl System {
    /// Empty queues and stores, under the worker's settings: the events queue's
    /// visibility timeout exceeds the worst-case batch time (the rule `herald worker`
    /// checks on SQS), by the data plane's margin of a minute.
    pub fn new(settings: &Settings) -> Result<Self> {
        let consumer =
            ConsumerConfig::load(settings.sources()).map_err(|e| Failure::Usage(e.to_string()))?;
        let queue = QueueSettings {
            visibility_timeout: consumer.delivery.worst_case_batch_time() + Duration::from_secs(60),
            max_receive_count: MAX_RECEIVE_COUNT,
        };
        let dlq = MemoryQueue::new(queue);
        Ok(Self {
            events: MemoryQueue::with_dead_letters(queue, Arc::clone(&dlq)),
            dlq,
            subscriptions: Arc::new(MemorySubscriptions::new(consumer.disable_after)),
            history: Arc::new(MemoryHistory::new(consumer.history_retention)),
            apps: Arc::new(MemoryApps::default()),
            idempotency: Arc::new(MemoryIdempotency::default()),
            consumer,
        })
    }

    fn outbox(&self) -> Arc<MemoryOutbox> {
        Arc::new(MemoryOutbox::new(
            Arc::clone(&self.events),
            Arc::clone(&self.dlq),
        ))
    }

    /// The API and console on `addr` until Ctrl-C or SIGTERM.
    pub async fn serve(&self, settings: &Settings, addr: &str) -> Result<()> {
        let mut config: herald_api::ApiConfig = settings
            .sources()
            .load()
            .map_err(|e| Failure::Usage(e.to_string()))?;
        config.addr = addr.to_owned();
        let backends = herald_api::Backends {
            subscriptions: self.subscriptions.clone(),
            history: self.history.clone(),
            apps: self.apps.clone(),
            idempotency: self.idempotency.clone(),
            publisher: Publisher::with_sink(Arc::new(MemorySink::new(Arc::clone(&self.events)))),
            outbox: self.outbox(),
            events_queue: self.events.clone(),
            dlq: self.dlq.clone(),
            redriver: None,
        };
        let state = herald_api::AppState::with_backends(config, backends)?;
        herald_api::serve(state, addr, herald_runtime::shutdown_signal())
            .await
            .map_err(|e| Failure::Failed(format!("{e:#}")).into())
    }

    /// The worker on the in-memory events queue until Ctrl-C or SIGTERM, finishing the
    /// batches in hand.
    pub async fn worker(&self) -> Result<()> {
        let config = &self.consumer;
        let adapters = Adapters {
            subscriptions: self.subscriptions.clone(),
            deliverer: Arc::new(HttpDeliverer::new(&config.http)?),
            outbox: self.outbox(),
            history: self.history.clone(),
        };
        let consumer = Arc::new(Consumer::new(adapters, config.delivery.clone()));
        let settings = worker::PollSettings {
            wait: config.worker_wait,
            batch_size: config.worker_batch_size,
            batch_window: config.worker_batch_window,
            batches_in_flight: worker::batches_in_flight(
                config.delivery.concurrency,
                config.worker_batch_size,
            ),
        };
        let queue: Arc<dyn MessageSource> = self.events.clone();
        worker::run(
            &queue,
            &consumer,
            &settings,
            herald_runtime::shutdown_signal(),
        )
        .await;
        Ok(())
    }
}
