//! Configuration and shared state of the API.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota};
use herald_core::{settings, AppId};
use herald_delivery::{HttpDeliverer, HttpSettings};
use herald_queue::{MessageSource, Outbox, Publisher, QueueSettings, SqsOutbox, SqsSource};
use herald_runtime::config::{duration_in_range, in_range, ConfigError, Validate};
use herald_seal::{SealSettings, Sealer};
use herald_store::{
    AppStorage, AppStore, DeliveryTables, HistoryStorage, HistoryStore, IdempotencyStorage,
    IdempotencyStore, SourceStore, SubscriptionStorage, SubscriptionStore,
};
use serde::{Deserialize, Serialize};

use crate::console::SessionKey;

/// API settings, from `HERALD_*` variables (docs/configuration.md) through the one
/// loader, validated at start.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ApiConfig {
    /// `HERALD_API_ADDR` (default 127.0.0.1:8080), for `herald serve`.
    #[serde(
        default = "defaults::addr",
        rename = "api_addr",
        deserialize_with = "settings::text"
    )]
    pub addr: String,
    /// `HERALD_ADMIN_KEY`: manages apps and keys. Without it (and without
    /// `HERALD_ADMIN_KEY_PARAMETER`), admin routes answer 401.
    #[serde(default, deserialize_with = "settings::optional_text")]
    pub admin_key: Option<String>,
    /// `HERALD_ADMIN_KEY_PARAMETER`: the name of an SSM Parameter Store `SecureString`
    /// holding the admin key, read once at start (how infra/herald.yaml passes it, so
    /// the key is never a plain Lambda environment variable).
    #[serde(default, deserialize_with = "settings::optional_text")]
    pub admin_key_parameter: Option<String>,
    /// `HERALD_EVENTS_QUEUE_URL` (where published events go) and `HERALD_DLQ_URL`.
    #[serde(flatten)]
    pub queues: QueueSettings,
    /// `HERALD_SUBSCRIPTIONS_TABLE`, `HERALD_HISTORY_TABLE` and
    /// `HERALD_HISTORY_RETENTION` (for the test pings' records).
    #[serde(flatten)]
    pub tables: DeliveryTables,
    /// `HERALD_KMS_KEY_ID` or `HERALD_SEAL_KEY_FILE`: the master key of the sealed
    /// webhook secrets.
    #[serde(flatten)]
    pub seal: SealSettings,
    /// `HERALD_APPS_TABLE`.
    #[serde(deserialize_with = "settings::text")]
    pub apps_table: String,
    /// `HERALD_IDEMPOTENCY_TABLE`.
    #[serde(deserialize_with = "settings::text")]
    pub idempotency_table: String,
    /// `HERALD_API_ALLOW_HTTP` (development mode): accept `http://` webhook URLs.
    #[serde(
        default,
        rename = "api_allow_http",
        deserialize_with = "settings::flag"
    )]
    pub allow_http: bool,
    /// `HERALD_SECRET_ROTATION_WINDOW` (default 24h): how long a rotated-out secret
    /// keeps signing.
    #[serde(
        default = "defaults::rotation_window",
        rename = "secret_rotation_window",
        deserialize_with = "settings::duration",
        serialize_with = "settings::write_duration"
    )]
    pub rotation_window: Duration,
    /// `HERALD_API_RATE_LIMIT` (default 100 per second per app, bursts of twice that; 0: off).
    #[serde(
        default = "defaults::rate_limit",
        rename = "api_rate_limit",
        deserialize_with = "settings::parsed"
    )]
    pub rate_limit: u32,
    /// `HERALD_API_MAX_BODY_BYTES` (default 1 MiB).
    #[serde(
        default = "defaults::max_body_bytes",
        rename = "api_max_body_bytes",
        deserialize_with = "settings::parsed"
    )]
    pub max_body_bytes: usize,
    /// `HERALD_MAX_WEBHOOKS_PER_APP` (default 100): webhooks one app may have; creating
    /// one more answers 422.
    #[serde(
        default = "defaults::max_webhooks_per_app",
        deserialize_with = "settings::parsed"
    )]
    pub max_webhooks_per_app: usize,
    /// The test-ping client: timeouts and the address policy, as the consumer's.
    #[serde(flatten)]
    pub http: HttpSettings,
    /// `HERALD_CONSOLE_SESSION_KEY`: signs the web console's session cookies (at least
    /// 32 characters). Without it each process makes a random key at start, so
    /// sessions end with the process and do not span processes (Lambda instances).
    #[serde(default, deserialize_with = "settings::optional_text")]
    pub console_session_key: Option<String>,
    /// `HERALD_CONSOLE_INSECURE_COOKIE` (development over http://127.0.0.1 only): the
    /// console's session cookie without `Secure`; refused unless `HERALD_API_ALLOW_HTTP`.
    #[serde(default, deserialize_with = "settings::flag")]
    pub console_insecure_cookie: bool,
}

mod defaults {
    use std::time::Duration;

    pub fn addr() -> String {
        "127.0.0.1:8080".to_owned()
    }
    pub fn rotation_window() -> Duration {
        Duration::from_secs(86_400)
    }
    pub fn max_webhooks_per_app() -> usize {
        100
    }
    pub fn rate_limit() -> u32 {
        100
    }
    pub fn max_body_bytes() -> usize {
        1_048_576
    }
}

impl Validate for ApiConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.http.validate()?;
        self.seal.validate()?;
        if self.admin_key.is_some() && self.admin_key_parameter.is_some() {
            return Err(ConfigError::invalid(
                "admin_key_parameter",
                self.admin_key_parameter.as_deref().unwrap_or_default(),
                "set HERALD_ADMIN_KEY or HERALD_ADMIN_KEY_PARAMETER, not both",
            ));
        }
        if let Some(k) = &self.admin_key {
            if k.len() < 16 {
                return Err(ConfigError::invalid(
                    "admin_key",
                    k,
                    "must be at least 16 characters",
                ));
            }
        }
        let days = |d: u64| Duration::from_secs(d * 86_400);
        duration_in_range(
            "secret_rotation_window",
            self.rotation_window,
            Duration::ZERO..=days(30),
        )?;
        in_range("api_rate_limit", self.rate_limit, 0..=1_000_000)?;
        in_range(
            "max_webhooks_per_app",
            self.max_webhooks_per_app,
            1..=100_000,
        )?;
        in_range("api_max_body_bytes", self.max_body_bytes, 1_024..=6_291_456)?;
        if let Some(k) = &self.console_session_key {
            if k.len() < 32 {
                return Err(ConfigError::invalid(
                    "console_session_key",
                    k,
                    "must be at least 32 characters",
                ));
            }
        }
        if self.console_insecure_cookie && !self.allow_http {
            return Err(ConfigError::invalid(
                "console_insecure_cookie",
                "true",
                "is for development over http://127.0.0.1 only: set HERALD_API_ALLOW_HTTP too",
            ));
        }
        self.tables.validate()
    }
}

/// Everything a request handler needs.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ApiConfig>,
    pub subscriptions: Arc<dyn SubscriptionStorage>,
    pub history: Arc<dyn HistoryStorage>,
    pub apps: Arc<dyn AppStorage>,
    pub idempotency: Arc<dyn IdempotencyStorage>,
    /// Inbound sources, their request logs and the delivery ids they saw; none in
    /// memory mode (see [`AppState::sources`]).
    pub sources: Option<SourceStore>,
    pub publisher: Publisher,
    pub outbox: Arc<dyn Outbox>,
    pub deliverer: Arc<HttpDeliverer>,
    pub limiter: Option<Arc<DefaultKeyedRateLimiter<AppId>>>,
    /// The events queue and the DLQ, for the operator's pages (their depths).
    pub events_queue: Arc<dyn MessageSource>,
    pub dlq: Arc<dyn MessageSource>,
    /// The re-driver from the DLQ to the events queue, for the operator's DLQ page
    /// (its dry run reads the DLQ without losing anything); none in memory mode.
    pub redriver: Option<herald_redriver::Redriver>,
    /// The key of the web console's session cookies and CSRF tokens.
    pub console_key: Arc<SessionKey>,
    /// The compiled JSON Schemas of event types, kept a few seconds for publishing.
    pub schemas: crate::schemas::SchemaCache,
}

/// The stores and queues an [`AppState`] is built on: DynamoDB and SQS
/// ([`AppState::connect`]), or in process (`herald dev --in-memory`).
pub struct Backends {
    pub subscriptions: Arc<dyn SubscriptionStorage>,
    pub history: Arc<dyn HistoryStorage>,
    pub apps: Arc<dyn AppStorage>,
    pub idempotency: Arc<dyn IdempotencyStorage>,
    /// Inbound sources; none in memory mode.
    pub sources: Option<SourceStore>,
    pub publisher: Publisher,
    pub outbox: Arc<dyn Outbox>,
    pub events_queue: Arc<dyn MessageSource>,
    pub dlq: Arc<dyn MessageSource>,
    pub redriver: Option<herald_redriver::Redriver>,
}

impl AppState {
    /// State wired to AWS (or the emulator) through the standard environment.
    pub async fn connect(
        mut config: ApiConfig,
        aws: &aws_config::SdkConfig,
    ) -> anyhow::Result<Self> {
        if let Some(name) = config.admin_key_parameter.clone() {
            config.admin_key = Some(admin_key_from_ssm(aws, &name).await?);
        }
        let dynamo = aws_sdk_dynamodb::Client::new(aws);
        let sqs = aws_sdk_sqs::Client::new(aws);
        let mut publisher =
            Publisher::connect(sqs.clone(), &config.queues.events_queue_url).await?;
        if let Some(url) = &config.queues.ordered_queue_url {
            publisher = publisher.with_ordered_queue(sqs.clone(), url);
        }
        let sealer = Sealer::connect(&config.seal, aws)
            .map_err(|e| anyhow::anyhow!("the master key of webhook secrets: {e}"))?;
        let backends = Backends {
            sources: Some(SourceStore::new(
                dynamo.clone(),
                &config.tables.subscriptions_table,
                &config.tables.history_table,
                &config.idempotency_table,
                config.tables.history_retention,
                sealer.clone(),
            )),
            subscriptions: Arc::new(SubscriptionStore::new(
                dynamo.clone(),
                &config.tables.subscriptions_table,
                sealer,
            )),
            history: Arc::new(HistoryStore::new(
                dynamo.clone(),
                &config.tables.history_table,
                config.tables.history_retention,
            )),
            apps: Arc::new(AppStore::new(dynamo.clone(), &config.apps_table)),
            idempotency: Arc::new(IdempotencyStore::new(dynamo, &config.idempotency_table)),
            publisher,
            redriver: Some(herald_redriver::Redriver::new(
                sqs.clone(),
                &config.queues.dlq_url,
                &config.queues.events_queue_url,
            )),
            outbox: Arc::new(
                SqsOutbox::new(
                    sqs.clone(),
                    &config.queues.events_queue_url,
                    &config.queues.dlq_url,
                    herald_queue::MAX_DELAY,
                )
                .with_ordered_queue(config.queues.ordered_queue_url.clone()),
            ),
            events_queue: Arc::new(SqsSource::new(sqs.clone(), &config.queues.events_queue_url)),
            dlq: Arc::new(SqsSource::new(sqs, &config.queues.dlq_url)),
        };
        Self::with_backends(config, backends)
    }

    /// The inbound sources' store: a 503 in memory mode, which keeps no sources.
    pub fn sources(&self) -> crate::error::ApiResult<&SourceStore> {
        self.sources.as_ref().ok_or_else(|| {
            crate::error::ApiError::Unavailable(
                "inbound sources are not available in memory mode (herald dev --in-memory); \
                 run herald dev for them"
                    .into(),
            )
        })
    }

    /// State on the given stores and queues.
    pub fn with_backends(config: ApiConfig, backends: Backends) -> anyhow::Result<Self> {
        let limiter = NonZeroU32::new(config.rate_limit).map(|per_sec| {
            let burst = NonZeroU32::new(config.rate_limit.saturating_mul(2)).unwrap_or(per_sec);
            Arc::new(governor::RateLimiter::keyed(
                Quota::per_second(per_sec).allow_burst(burst),
            ))
        });
        let Backends {
            subscriptions,
            history,
            apps,
            idempotency,
            sources,
            publisher,
            outbox,
            events_queue,
            dlq,
            redriver,
        } = backends;
        Ok(Self {
            subscriptions,
            sources,
            history,
            apps,
            idempotency,
            publisher,
            outbox,
            deliverer: Arc::new(HttpDeliverer::new(&config.http)?),
            limiter,
            events_queue,
            dlq,
            redriver,
            schemas: crate::schemas::SchemaCache::default(),
            console_key: Arc::new(SessionKey::from_config(
                config.console_session_key.as_deref(),
            )),
            config: Arc::new(config),
        })
    }
}

/// The admin key kept in the SSM `SecureString` parameter `name` (decrypted), held to
/// the same rule as `HERALD_ADMIN_KEY`.
async fn admin_key_from_ssm(aws: &aws_config::SdkConfig, name: &str) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let out = aws_sdk_ssm::Client::new(aws)
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(aws_sdk_ssm::error::DisplayErrorContext(e).to_string()))
        .with_context(|| format!("reading the admin key from SSM parameter {name}"))?;
    let key = out
        .parameter
        .and_then(|p| p.value)
        .with_context(|| format!("SSM parameter {name} has no value"))?;
    if key.len() < 16 {
        anyhow::bail!("the admin key in SSM parameter {name} must be at least 16 characters");
    }
    Ok(key)
}
