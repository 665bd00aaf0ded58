//! Keeping sends under the rate a run was given.

use std::time::Duration as StdDuration;

use tokio::time::Instant;

use herald_queue::sqs::MAX_BATCH_ENTRIES;

/// Sends at most `rate` messages per second, in batches of at most
/// [`Pacer::batch_size`] entries.
#[derive(Debug)]
pub(super) struct Pacer {
    per_message: StdDuration,
    batch_size: usize,
    next: Option<Instant>,
}

impl Pacer {
    /// A pacer for `rate_per_sec` messages per second (a positive, finite number).
    pub(super) fn new(rate_per_sec: f64) -> Self {
        Self {
            per_message: StdDuration::from_secs_f64(1.0 / rate_per_sec),
            batch_size: batch_size(rate_per_sec),
            next: None,
        }
    }

    /// Most entries to put in one send at this rate.
    pub(super) fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Waits until `n` messages may be sent.
    pub(super) async fn wait(&mut self, n: usize) {
        let now = Instant::now();
        let start = match self.next {
            Some(next) if next > now => {
                tokio::time::sleep_until(next).await;
                next
            }
            _ => now,
        };
        self.next = Some(start + self.per_message * u32::try_from(n).unwrap_or(u32::MAX));
    }
}

/// Entries per send at a given rate: never more than one second's worth, so no second
/// sees more than the rate; at least one.
fn batch_size(rate_per_sec: f64) -> usize {
    (rate_per_sec.floor() as usize).clamp(1, MAX_BATCH_ENTRIES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_never_hold_more_than_a_second_of_sends() {
        assert_eq!(batch_size(50.0), 10);
        assert_eq!(batch_size(10.0), 10);
        assert_eq!(batch_size(3.7), 3);
        assert_eq!(batch_size(0.2), 1);
    }

    #[tokio::test]
    async fn the_pacer_keeps_sends_under_the_rate() {
        let mut pacer = Pacer::new(20.0);
        let start = Instant::now();
        for _ in 0..3 {
            pacer.wait(5).await;
        }
        // 15 messages at 20/s: the 3rd batch of 5 may go after 0.5 s, not before.
        let elapsed = Instant::now() - start;
        assert!(elapsed >= StdDuration::from_millis(500), "{elapsed:?}");
        assert!(elapsed < StdDuration::from_millis(900), "{elapsed:?}");
    }
}
