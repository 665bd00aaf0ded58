//! The ingest of inbound webhooks (`POST /in/{source_id}`) on AWS Lambda, behind its
//! own public function URL, apart from the management API: the same handler `herald
//! serve` runs.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    herald_api::run_lambda(herald_api::ingest_router).await
}
