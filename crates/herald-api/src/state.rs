//! Configuration and shared state of the API.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota};
use herald_consumer::config::{ConfigError, Env};
use herald_consumer::delivery::{HttpDeliverer, HttpSettings};
use herald_consumer::outbox::SqsOutbox;
use herald_core::AppId;
use herald_publisher::Publisher;
use herald_store::{AppStore, AttemptStore, IdempotencyStore, SubscriptionStore};

/// API settings, from `HERALD_` variables (docs/configuration.md).
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `HERALD_API_ADDR` (default 127.0.0.1:8080), for `herald serve`.
    pub addr: String,
    /// `HERALD_ADMIN_KEY`: manages apps and keys. Without it, admin routes answer 401.
    pub admin_key: Option<String>,
    pub events_queue_url: String,
    pub dlq_url: String,
    pub subscriptions_table: String,
    pub attempts_table: String,
    pub apps_table: String,
    pub idempotency_table: String,
    /// `HERALD_API_ALLOW_HTTP` (development mode): accept `http://` webhook URLs.
    pub allow_http: bool,
    /// `HERALD_SECRET_ROTATION_WINDOW_SECS` (default 86400): how long a rotated-out
    /// secret keeps signing.
    pub rotation_window: Duration,
    /// `HERALD_API_RATE_LIMIT` (default 100 per second per app, bursts of twice that; 0: off).
    pub rate_limit: u32,
    /// `HERALD_API_MAX_BODY_BYTES` (default 1 MiB).
    pub max_body_bytes: usize,
    pub history_retention: Duration,
    /// The test-ping client: timeouts and the address policy, as the consumer's.
    pub http: HttpSettings,
}

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|v| std::env::var(v).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let http = HttpSettings::from_env(&env)?;
        let allow_http = match env.optional("HERALD_API_ALLOW_HTTP").as_deref() {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "HERALD_API_ALLOW_HTTP",
                    value: other.to_owned(),
                    reason: "must be true or false".into(),
                })
            }
        };
        let admin_key = env.optional("HERALD_ADMIN_KEY");
        if let Some(k) = &admin_key {
            if k.len() < 16 {
                return Err(ConfigError::Invalid {
                    var: "HERALD_ADMIN_KEY",
                    value: "(hidden)".into(),
                    reason: "must be at least 16 characters".into(),
                });
            }
        }
        Ok(Self {
            addr: env
                .optional("HERALD_API_ADDR")
                .unwrap_or_else(|| "127.0.0.1:8080".into()),
            admin_key,
            events_queue_url: env.required("HERALD_EVENTS_QUEUE_URL")?,
            dlq_url: env.required("HERALD_DLQ_URL")?,
            subscriptions_table: env.required("HERALD_SUBSCRIPTIONS_TABLE")?,
            attempts_table: env.required("HERALD_ATTEMPTS_TABLE")?,
            apps_table: env.required("HERALD_APPS_TABLE")?,
            idempotency_table: env.required("HERALD_IDEMPOTENCY_TABLE")?,
            allow_http,
            rotation_window: Duration::from_secs(env.number(
                "HERALD_SECRET_ROTATION_WINDOW_SECS",
                86_400,
                0..=30 * 86_400,
            )?),
            rate_limit: env.number("HERALD_API_RATE_LIMIT", 100, 0..=1_000_000)?,
            max_body_bytes: env.number(
                "HERALD_API_MAX_BODY_BYTES",
                1_048_576,
                1_024..=6_291_456,
            )?,
            history_retention: Duration::from_secs(
                86_400 * env.number("HERALD_HISTORY_RETENTION_DAYS", 30u64, 1..=3_650)?,
            ),
            http,
        })
    }
}

/// Everything a request handler needs.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ApiConfig>,
    pub subscriptions: SubscriptionStore,
    pub attempts: AttemptStore,
    pub apps: AppStore,
    pub idempotency: IdempotencyStore,
    pub publisher: Publisher,
    pub outbox: Arc<SqsOutbox>,
    pub deliverer: Arc<HttpDeliverer>,
    pub limiter: Option<Arc<DefaultKeyedRateLimiter<AppId>>>,
}

impl AppState {
    /// State wired to AWS (or the emulator) through the standard environment.
    pub async fn connect(config: ApiConfig, aws: &aws_config::SdkConfig) -> anyhow::Result<Self> {
        let dynamo = aws_sdk_dynamodb::Client::new(aws);
        let sqs = aws_sdk_sqs::Client::new(aws);
        let publisher = Publisher::connect(sqs.clone(), &config.events_queue_url).await?;
        let limiter = NonZeroU32::new(config.rate_limit).map(|per_sec| {
            let burst = NonZeroU32::new(config.rate_limit.saturating_mul(2)).unwrap_or(per_sec);
            Arc::new(governor::RateLimiter::keyed(
                Quota::per_second(per_sec).allow_burst(burst),
            ))
        });
        Ok(Self {
            subscriptions: SubscriptionStore::new(dynamo.clone(), &config.subscriptions_table),
            attempts: AttemptStore::new(
                dynamo.clone(),
                &config.attempts_table,
                config.history_retention,
            ),
            apps: AppStore::new(dynamo.clone(), &config.apps_table),
            idempotency: IdempotencyStore::new(dynamo, &config.idempotency_table),
            publisher,
            outbox: Arc::new(SqsOutbox::new(
                sqs,
                &config.events_queue_url,
                &config.dlq_url,
                herald_consumer::outbox::MAX_SQS_DELAY,
            )),
            deliverer: Arc::new(HttpDeliverer::new(&config.http)?),
            limiter,
            config: Arc::new(config),
        })
    }
}
