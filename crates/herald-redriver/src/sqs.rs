//! SQS plumbing: the service's limits, string attributes, message sizes, the results
//! of batch calls and the reasons of failed calls.
//!
//! Nothing here knows about re-driving; the shared `herald-queue` crate is to take
//! this module's place.

use std::collections::HashMap;

use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{BatchResultErrorEntry, MessageAttributeValue};

/// Most entries SQS takes in one batch call, and most messages one receive returns.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Most bytes (bodies and attributes) put in one `SendMessageBatch` call: the classic
/// SQS limit, which every queue accepts.
pub(crate) const MAX_BATCH_BYTES: usize = 262_144;
/// Most message attributes SQS accepts on one message.
pub(crate) const MAX_MESSAGE_ATTRIBUTES: usize = 10;

/// A `String` message attribute.
pub(crate) fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

/// The string value of the attribute `name`, if there is one.
pub(crate) fn string_attribute_value<'a>(
    attributes: &'a HashMap<String, MessageAttributeValue>,
    name: &str,
) -> Option<&'a str> {
    attributes.get(name).and_then(|v| v.string_value())
}

/// Bytes SQS counts for a message: body, attribute names, types and values.
pub(crate) fn message_size(
    body: &str,
    attributes: &HashMap<String, MessageAttributeValue>,
) -> usize {
    body.len()
        + attributes
            .iter()
            .map(|(name, v)| {
                name.len()
                    + v.data_type().len()
                    + v.string_value().map_or(0, str::len)
                    + v.binary_value().map_or(0, |b| b.as_ref().len())
            })
            .sum::<usize>()
}

/// What SQS answered for each entry of a batch call whose entry ids are the entries'
/// indexes (`0`, `1`, ...): `Ok` for an entry among `successful_ids`, `Err` with the
/// service's code and message for one among `failed`, and `Err(unreported)` for one
/// it did not mention.
pub(crate) fn entry_results<'a>(
    len: usize,
    successful_ids: impl IntoIterator<Item = &'a str>,
    failed: &[BatchResultErrorEntry],
    unreported: &str,
) -> Vec<Result<(), String>> {
    let mut results = vec![Err(unreported.to_owned()); len];
    for bad in failed {
        if let Some(result) = entry(&mut results, bad.id()) {
            *result = Err(format!(
                "{}: {}",
                bad.code(),
                bad.message().unwrap_or("no message")
            ));
        }
    }
    for id in successful_ids {
        if let Some(result) = entry(&mut results, id) {
            *result = Ok(());
        }
    }
    results
}

/// The result of the entry with this id, if the id is one of the batch's indexes.
fn entry<'r>(
    results: &'r mut [Result<(), String>],
    id: &str,
) -> Option<&'r mut Result<(), String>> {
    id.parse::<usize>().ok().and_then(|i| results.get_mut(i))
}

/// A short reason for a failed SQS call: the service's error code and message when it
/// answered, the whole error chain otherwise (timeouts, connection failures).
pub(crate) fn sdk_reason<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(e).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(id: &str, code: &str, message: Option<&str>) -> BatchResultErrorEntry {
        BatchResultErrorEntry::builder()
            .id(id)
            .code(code)
            .set_message(message.map(str::to_owned))
            .sender_fault(false)
            .build()
            .unwrap()
    }

    #[test]
    fn entry_results_match_ids_to_indexes_and_name_what_was_not_reported() {
        let failed = [
            failure("1", "Throttled", Some("slow down")),
            failure("3", "Internal", None),
            failure("7", "OutOfRange", None),
            failure("x", "NotAnIndex", None),
        ];
        let results = entry_results(4, ["0", "9", "y"], &failed, "not reported");
        assert_eq!(
            results,
            [
                Ok(()),
                Err("Throttled: slow down".to_owned()),
                Err("not reported".to_owned()),
                Err("Internal: no message".to_owned()),
            ]
        );
    }
}
