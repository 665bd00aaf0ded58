//! The consumer's calls to its adapters, bounded by the batch's deadlines.

use std::time::{Duration, Instant};

/// Sends to the outbox, trying again (after 100 ms, then 400 ms) while `by` allows. A
/// send that fails for good makes its whole record come back, and an `Event` record
/// that comes back is fanned out again to every webhook of the event, so a passing SQS
/// error is worth a retry here.
pub(super) async fn send_durably<F, Fut, E>(by: Instant, mut send: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        let error = match within(by, send()).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() + backoff >= by || backoff > Duration::from_millis(400) {
            return Err(error);
        }
        tracing::warn!(error = %error, "an outbox send failed; trying again");
        tokio::time::sleep(backoff).await;
        backoff *= 4;
    }
}

/// Awaits `call` unless `by` comes first; either way an error is its text.
pub(super) async fn within<T, E: std::fmt::Display>(
    by: Instant,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout_at(tokio::time::Instant::from_std(by), call).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("abandoned: the batch's deadline came first".to_owned()),
    }
}
