//! The consumer on AWS Lambda, behind an SQS event source mapping with
//! `ReportBatchItemFailures`. A batch the handler cannot answer record by record
//! (`BatchError`) fails the invocation, and SQS retries the whole batch.

use std::sync::Arc;

use anyhow::Context;
use aws_lambda_events::event::sqs::SqsEvent;
use herald_consumer::{build, check_visibility_timeout, ConsumerConfig};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    herald_runtime::init_tracing(true);
    let config = ConsumerConfig::from_env().context("invalid configuration")?;
    let aws = herald_runtime::aws_config().await;
    check_visibility_timeout(&aws_sdk_sqs::Client::new(&aws), &config).await?;
    let consumer = Arc::new(build(&config, &aws)?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let consumer = Arc::clone(&consumer);
        // A batch error fails the invocation, so SQS brings the whole batch back.
        async move {
            consumer
                .handle(event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
