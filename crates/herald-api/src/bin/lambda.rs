//! The management API on AWS Lambda (function URL or API Gateway), through
//! `lambda_http`: the same router `herald serve` runs.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    herald_api::run_lambda(herald_api::router).await
}
