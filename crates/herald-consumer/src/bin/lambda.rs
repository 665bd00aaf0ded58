//! The consumer on AWS Lambda, behind an SQS event source mapping with
//! `ReportBatchItemFailures`. A batch the handler cannot answer record by record
//! (`BatchError`) fails the invocation, and SQS retries the whole batch.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_lambda_events::event::sqs::SqsEvent;
use herald_consumer::{build, check_events_queue, ConsumerConfig};
use lambda_runtime::{service_fn, LambdaEvent};

/// mimalloc rather than glibc's allocator: the delivery path allocates per delivery
/// (requests, headers, records), and in `make bench` section 1 glibc's `malloc` and
/// `free` took about a third of the CPU, most of it on contended arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    herald_runtime::init_tracing(true);
    let config = ConsumerConfig::from_env().context("invalid configuration")?;
    let aws = herald_runtime::aws_config().await;
    let queue = check_events_queue(&aws_sdk_sqs::Client::new(&aws), &config).await?;
    let consumer = Arc::new(build(&config, &aws)?.with_max_message_bytes(queue.max_message_bytes));
    // The runtime's loop, and so every batch, runs in a task on the runtime's worker
    // threads rather than on the main thread (`block_on`): from a worker, the wakes
    // between a batch and hyper's connection tasks stay on that worker's queue, where
    // from the main thread each one crosses to another thread (Herald's in-process rate
    // in `make bench` rose by about 15 % at one endpoint; docs/perf/README.md, "Where
    // the handler runs").
    let runtime = lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let consumer = Arc::clone(&consumer);
        // The batch answers before the invocation's own deadline (less a margin for
        // the answer itself) or the worst-case batch time, whichever comes first.
        let worst_case = Instant::now() + consumer.policy().worst_case_batch_time();
        let answer_by = invocation_deadline(event.context.deadline)
            .map_or(worst_case, |deadline| deadline.min(worst_case));
        // A batch error fails the invocation, so SQS brings the whole batch back.
        async move {
            consumer
                .handle_until(event.payload, answer_by)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }));
    tokio::spawn(runtime).await?
}

/// Time kept between the batch's answer and the invocation's deadline.
const ANSWER_MARGIN: Duration = Duration::from_millis(500);

/// The instant `deadline_ms` (Unix milliseconds, as Lambda gives it) falls at, less
/// [`ANSWER_MARGIN`]; `None` for a deadline that has passed already, which Lambda never
/// sends but an emulator may (cargo-lambda's sends the function's timeout, a duration):
/// then the batch keeps its worst-case bound alone.
fn invocation_deadline(deadline_ms: u64) -> Option<Instant> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let left = Duration::from_millis(deadline_ms.checked_sub(now_ms).filter(|ms| *ms > 0)?);
    Some(Instant::now() + left.saturating_sub(ANSWER_MARGIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_in_the_future_bounds_the_batch_and_one_in_the_past_does_not() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let at = invocation_deadline(now_ms + 60_000).expect("a future deadline");
        let left = at.duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(58) && left < Duration::from_secs(60),
            "{left:?}"
        );
        assert_eq!(invocation_deadline(600_000), None, "a duration, not a time");
        assert_eq!(invocation_deadline(now_ms - 1), None);
    }
}
