//! What a run did, and how the CLIs show it: a summary, one line per message, and
//! the messages left behind.

use serde::Serialize;

use crate::Kind;

/// What happened to a matching message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Sent to the target queue and deleted from the DLQ.
    Moved,
    /// Dry run: it would have been moved.
    WouldMove,
    /// It cannot be moved; it stays on the DLQ.
    Unmovable,
    /// The send failed; it stays on the DLQ.
    SendFailed,
}

impl Outcome {
    /// The outcome in words, for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WouldMove => "would move",
            Self::Unmovable => "unmovable",
            Self::Moved => "moved",
            Self::SendFailed => "send failed",
        }
    }
}

/// One matching message of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportItem {
    /// Its SQS message id on the DLQ.
    pub message_id: String,
    /// What it is.
    pub kind: Kind,
    /// What happened to it.
    pub outcome: Outcome,
    /// The event's app, when known.
    pub app_id: Option<String>,
    /// The delivery's subscription, when known.
    pub subscription_id: Option<String>,
    /// The event's type, when known.
    pub event_type: Option<String>,
    /// The event's id, when known.
    pub event_id: Option<String>,
    /// When it was parked (else when it was sent to the DLQ), when known.
    pub parked_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why it was parked, when known.
    pub reason: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RedriveReport {
    /// Messages received from the DLQ and looked at.
    pub examined: usize,
    /// Of those, messages the filter matched.
    pub matched: usize,
    /// Messages sent to the target queue (and deleted from the DLQ, except those in
    /// `delete_failed`). Always 0 in a dry run.
    pub moved: usize,
    /// Matching messages that cannot be moved, left on the DLQ: (message id, why).
    pub skipped_unmovable: Vec<(String, String)>,
    /// Matching messages whose send failed, left on the DLQ: (message id, why).
    pub send_failed: Vec<(String, String)>,
    /// Moved messages whose delete from the DLQ failed, so they are on both queues and
    /// will show up on the DLQ again: (message id, why).
    pub delete_failed: Vec<(String, String)>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Every matching message, with what happened to it.
    pub items: Vec<ReportItem>,
}

impl RedriveReport {
    /// Whether every matching message that could move did (or, in a dry run, would).
    pub fn is_complete(&self) -> bool {
        self.send_failed.is_empty() && self.delete_failed.is_empty()
    }

    /// The summary: whether it was a dry run, and the counts.
    pub fn summary(&self) -> String {
        let unmovable = self.skipped_unmovable.len();
        if self.dry_run {
            let would = self
                .items
                .iter()
                .filter(|i| i.outcome == Outcome::WouldMove)
                .count();
            format!(
                "Dry run: nothing was moved or deleted.\nexamined {}, matched {}: would move {would}, unmovable {unmovable}\n",
                self.examined, self.matched
            )
        } else {
            format!(
                "examined {}, matched {}: moved {}, unmovable {unmovable}, send failed {}, delete failed {}\n",
                self.examined,
                self.matched,
                self.moved,
                self.send_failed.len(),
                self.delete_failed.len()
            )
        }
    }

    /// One line per matching message (at most `max`), and a note of how many more.
    pub fn item_lines(&self, max: usize) -> String {
        let mut out = String::new();
        for item in self.items.iter().take(max) {
            let kind = serde_json::to_value(item.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {:<11}  {}  {kind:<13}  app={}  webhook={}  type={}",
                item.outcome.as_str(),
                item.message_id,
                item.app_id.as_deref().unwrap_or("?"),
                item.subscription_id.as_deref().unwrap_or("?"),
                item.event_type.as_deref().unwrap_or("?"),
            ));
            if let Some(reason) = &item.reason {
                out.push_str(&format!("  parked because: {reason}"));
            }
            out.push('\n');
        }
        if self.items.len() > max {
            out.push_str(&format!(
                "  … and {} more (--json lists them all)\n",
                self.items.len() - max
            ));
        }
        out
    }

    /// The messages left behind and why, one line each under a heading per cause
    /// (empty when nothing was left behind).
    pub fn leftovers(&self) -> String {
        let mut out = String::new();
        for (title, list) in [
            ("left on the DLQ, cannot be moved", &self.skipped_unmovable),
            ("left on the DLQ, send failed", &self.send_failed),
            (
                "sent but not deleted from the DLQ (will show up there again)",
                &self.delete_failed,
            ),
        ] {
            if !list.is_empty() {
                out.push_str(&format!("{title}:\n"));
                for (id, why) in list {
                    out.push_str(&format!("  {id}: {why}\n"));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_serialize_for_the_json_output() {
        let report = RedriveReport {
            examined: 2,
            matched: 1,
            skipped_unmovable: vec![("m1".into(), "cut".into())],
            items: vec![ReportItem {
                message_id: "m1".into(),
                kind: Kind::Undecodable,
                outcome: Outcome::Unmovable,
                app_id: None,
                subscription_id: None,
                event_type: None,
                event_id: None,
                parked_at: None,
                reason: Some("too big".into()),
            }],
            ..RedriveReport::default()
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["skipped_unmovable"][0][1], "cut");
        assert_eq!(json["items"][0]["kind"], "undecodable");
        assert_eq!(json["items"][0]["outcome"], "unmovable");
        assert!(report.is_complete());
    }
}
