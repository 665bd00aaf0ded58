//! `herald serve` (the management API) and `herald worker` (the local consumer), run
//! in this process with settings from the environment and the profile.

use anyhow::Result;
use clap::Args;
use herald_runtime::ConfigError;

use crate::config::Settings;
use crate::failure::{usage, Failure};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on [env: HERALD_API_ADDR] [default: 127.0.0.1:8080].
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) addr: Option<String>,
}

pub const SERVE_HELP: &str = "\
The same router as the Lambda function herald-api-lambda. Reads the resource settings
(HERALD_EVENTS_QUEUE_URL, HERALD_DLQ_URL and the four tables, as `herald up` writes
them), HERALD_ADMIN_KEY (at least 16 characters; without it the admin routes answer
401), HERALD_API_ALLOW_HTTP=true to accept http:// webhook URLs, and
HERALD_ALLOW_PRIVATE_NETWORKS (see docs/configuration.md). Stops on Ctrl-C or SIGTERM.

Examples:
  set -a; . .run/local.env; set +a
  HERALD_ADMIN_KEY=$(openssl rand -hex 16) HERALD_API_ALLOW_HTTP=true herald serve
  herald serve --addr 127.0.0.1:9090";

#[derive(Args, Debug)]
pub struct WorkerArgs {}

pub const WORKER_HELP: &str = "\
Long-polls the events queue and runs each batch through the same handler as the Lambda
function: matches webhooks, signs, delivers, retries, parks
on the DLQ and records the history. Checks the visibility-timeout rule at start-up.
Stops on Ctrl-C or SIGTERM after finishing the batches in hand. Settings are listed in
docs/configuration.md.

Examples:
  set -a; . .run/local.env; set +a
  HERALD_ALLOW_PRIVATE_NETWORKS=127.0.0.1/32 herald worker
  HERALD_RETRY_SCHEDULE=0s,2s,10s HERALD_WORKER_WAIT=1s herald worker";

fn config_error(e: ConfigError) -> anyhow::Error {
    usage(format!(
        "{e}\n(`herald up` writes the local stack's settings to .run/local.env: \
         set -a; . .run/local.env; set +a)"
    ))
}

/// Start-up failures that come from not reaching AWS exit with 3.
fn startup_error(e: anyhow::Error) -> anyhow::Error {
    if e.downcast_ref::<herald_consumer::VisibilityTooShort>()
        .is_some()
    {
        return usage(e.to_string());
    }
    let text = format!("{e:#}");
    let lower = text.to_ascii_lowercase();
    if lower.contains("dispatch failure")
        || lower.contains("connection refused")
        || lower.contains("timed out")
        || lower.contains("timeout")
    {
        return Failure::Unreachable(format!(
            "could not reach AWS: {text}\n(is the emulator running? `herald up` starts it)"
        ))
        .into();
    }
    e
}

/// `herald serve` until `shutdown` completes (Ctrl-C or SIGTERM, for the command).
pub async fn serve(
    args: ServeArgs,
    settings: &Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    herald_runtime::init_tracing(settings.lookup("HERALD_LOG_FORMAT").as_deref() == Some("json"));
    let mut config: herald_api::ApiConfig = settings.sources().load().map_err(config_error)?;
    if let Some(addr) = args.addr {
        config.addr = addr;
    }
    let addr = config.addr.clone();
    let admin = config.admin_key.is_some();
    let aws = herald_runtime::aws_config().await;
    let state = herald_api::AppState::connect(config, &aws)
        .await
        .map_err(startup_error)?;
    eprintln!(
        "Herald API on http://{addr}  (admin routes {}; Ctrl-C stops)",
        if admin {
            "enabled"
        } else {
            "DISABLED: set HERALD_ADMIN_KEY"
        }
    );
    herald_api::serve(state, &addr, shutdown)
        .await
        .map_err(|e| Failure::Failed(format!("{e:#}")).into())
}

/// `herald worker` until `shutdown` completes (Ctrl-C or SIGTERM, for the command).
pub async fn worker(
    _args: WorkerArgs,
    settings: &Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    herald_runtime::init_tracing(settings.lookup("HERALD_LOG_FORMAT").as_deref() == Some("json"));
    let config = herald_consumer::ConsumerConfig::load(settings.sources()).map_err(config_error)?;
    eprintln!(
        "Herald worker polling {}  (Ctrl-C stops after the batches in hand)",
        config.events_queue_url
    );
    herald_consumer::run_worker_until(config, shutdown)
        .await
        .map_err(startup_error)
}
