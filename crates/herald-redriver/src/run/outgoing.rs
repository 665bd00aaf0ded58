//! What a moved message is sent with: its body and its message attributes.

use std::collections::HashMap;

use aws_sdk_sqs::types::MessageAttributeValue;

use crate::{Facts, ReportItem};
use herald_queue::sqs::{string_attribute, MAX_MESSAGE_ATTRIBUTES};

/// A matching message waiting to be sent.
pub(super) struct Pending {
    /// Its SQS message id on the DLQ.
    pub(super) message_id: String,
    /// The receipt handle to delete it from the DLQ with.
    pub(super) receipt_handle: String,
    /// The body to send.
    pub(super) body: String,
    /// The message attributes to send it with.
    pub(super) attributes: HashMap<String, MessageAttributeValue>,
    /// Its line in the report, to complete with what happened.
    pub(super) item: ReportItem,
}

/// The message attributes a moved message is sent with: `app_id`, `event_type`,
/// `event_id` and `subscription_id` when known, then (for messages that go back as
/// they are) the DLQ message's own attributes, up to the SQS limit of ten.
pub fn outgoing_attributes(
    facts: &Facts,
    copied: Option<&HashMap<String, MessageAttributeValue>>,
) -> HashMap<String, MessageAttributeValue> {
    let mut out: HashMap<String, MessageAttributeValue> = [
        ("app_id", &facts.app_id),
        ("event_type", &facts.event_type),
        ("event_id", &facts.event_id),
        ("subscription_id", &facts.subscription_id),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_deref().map(|v| (k.to_owned(), string_attribute(v))))
    .collect();
    if let Some(copied) = copied {
        let mut names: Vec<&String> = copied.keys().collect();
        names.sort();
        for name in names {
            if out.len() >= MAX_MESSAGE_ATTRIBUTES {
                break;
            }
            out.entry(name.clone())
                .or_insert_with(|| copied[name].clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::tests::facts;

    #[test]
    fn outgoing_attributes_put_the_known_facts_first_and_stay_within_ten() {
        let known = Facts {
            event_id: Some("evt_1".into()),
            ..facts(Some("a"), Some("sub_1"), Some("update"))
        };
        let out = outgoing_attributes(&known, None);
        assert_eq!(out.len(), 4);
        assert_eq!(out["app_id"].string_value(), Some("a"));
        assert_eq!(out["subscription_id"].string_value(), Some("sub_1"));
        assert_eq!(out["event_type"].string_value(), Some("update"));
        assert_eq!(out["event_id"].string_value(), Some("evt_1"));
        assert_eq!(out["app_id"].data_type(), "String");

        let copied: HashMap<String, MessageAttributeValue> = (0..10)
            .map(|i| (format!("custom_{i}"), string_attribute("v")))
            .chain([("app_id".to_owned(), string_attribute("stale"))])
            .collect();
        let out = outgoing_attributes(&known, Some(&copied));
        assert_eq!(out.len(), 10);
        assert_eq!(out["app_id"].string_value(), Some("a"), "known facts win");
        assert!(out.contains_key("custom_0"));

        let out = outgoing_attributes(&Facts::default(), Some(&copied));
        assert_eq!(out.len(), 10);
        assert_eq!(outgoing_attributes(&Facts::default(), None).len(), 0);
    }
}
