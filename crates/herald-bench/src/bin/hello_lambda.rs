//! The smallest useful Rust Lambda function on the runtime crate the consumer uses:
//! it answers an SQS batch with an empty partial-batch response. `herald-bench`
//! reports its package size as the baseline for the consumer's.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<SqsEvent>| async {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(SqsBatchResponse::default())
    }))
    .await
}
