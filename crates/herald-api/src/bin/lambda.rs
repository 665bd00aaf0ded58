//! The management API on AWS Lambda (function URL or API Gateway), through
//! `lambda_http`: the router `herald serve` runs, without the ingest of inbound
//! webhooks (its own function, `herald-ingest-lambda`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    herald_api::run_lambda(herald_api::management_router).await
}
