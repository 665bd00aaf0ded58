//! Waiting on conditions with deadlines, never for a fixed time.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often the conditions are checked.
const POLL: Duration = Duration::from_millis(100);

/// Polls `check` every 100 ms until it holds or `timeout` passes; returns whether it held.
pub async fn wait_until<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(timeout, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
    .is_some()
}

/// Polls `probe` every 100 ms until it returns a value or `timeout` passes; returns
/// the value, or `None` at the deadline.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn waits_until_the_condition_holds_and_gives_up_at_the_deadline() {
        let calls = AtomicUsize::new(0);
        let value = wait_for(Duration::from_secs(5), || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            (n == 3).then_some(n)
        })
        .await;
        assert_eq!(value, Some(3));
        let started = Instant::now();
        assert!(!wait_until(Duration::from_millis(300), || async { false }).await);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
}
