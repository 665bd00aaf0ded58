//! The management API on AWS Lambda (function URL or API Gateway), through
//! `lambda_http`: the same router `herald serve` runs.

use anyhow::Context;
use herald_api::{router, ApiConfig, AppState};
use herald_runtime::Load;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    herald_runtime::init_tracing(true);
    let config = ApiConfig::from_env().context("invalid configuration")?;
    let aws = herald_runtime::aws_config().await;
    let state = AppState::connect(config, &aws).await?;
    lambda_http::run(router(state)).await
}
