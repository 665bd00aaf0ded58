//! `herald dev --in-memory`: the API (with the console) and the worker in this process
//! on `herald-memory`'s queues and stores ([`herald_memory::System`]), no emulator and
//! no AWS call. Everything is lost when the process exits; only `herald dev` offers it
//! (never `herald serve`, `herald worker` or the Lambda binaries).

use anyhow::Result;
use herald_consumer::ConsumerConfig;
use herald_memory::System;

use crate::config::Settings;
use crate::failure::Failure;

pub use herald_memory::system::{NO_SEAL_KEY, RESOURCE_NAMES};

/// The in-memory system and the worker's settings.
pub struct InMemory {
    system: System,
    consumer: ConsumerConfig,
}

impl InMemory {
    /// Empty queues and stores under the worker's settings.
    pub fn new(settings: &Settings) -> Result<Self> {
        let consumer =
            ConsumerConfig::load(settings.sources()).map_err(|e| Failure::Usage(e.to_string()))?;
        Ok(Self {
            system: System::new(&consumer),
            consumer,
        })
    }

    /// The API and console on `addr` until `shutdown` completes.
    pub async fn serve(
        &self,
        settings: &Settings,
        addr: &str,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let mut config: herald_api::ApiConfig = settings
            .sources()
            .load()
            .map_err(|e| Failure::Usage(e.to_string()))?;
        config.addr = addr.to_owned();
        let state = herald_api::AppState::with_backends(config, self.system.api_backends())?;
        herald_api::serve(state, addr, shutdown)
            .await
            .map_err(|e| Failure::Failed(format!("{e:#}")).into())
    }

    /// The worker until `shutdown` completes; then it finishes the batches in hand.
    pub async fn worker(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        self.system.worker(&self.consumer, shutdown).await
    }
}
