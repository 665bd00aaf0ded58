//! Herald's domain model.
//!
//! Everything here is pure: no AWS SDK types, no I/O. The adapters (SQS publisher,
//! DynamoDB store, HTTP deliverer) live in their own crates and speak these types.

pub mod actor;
pub mod address;
pub mod attempt;
pub mod callback;
pub mod credential_headers;
pub mod delivery;
pub mod endpoint;
pub mod envelope;
pub mod event;
pub mod format;
pub mod health;
pub mod id;
pub mod inbound;
pub mod message;
pub mod operational;
pub mod ordering;
pub mod para;
pub mod payload_filter;
pub mod rate;
pub mod retry;
pub mod settings;
pub mod signing;
pub mod subscription;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use actor::{Actor, Changes};
pub use address::{AddressPolicy, PortPolicy};
pub use attempt::{Attempt, AttemptOutcome};
pub use callback::{is_callback, CallbackSecrets, CALLBACK_ID};
pub use credential_headers::{is_credential_header, masked_headers};
pub use delivery::{
    is_reserved_header, reserved_header_reason, DeliveryError, DeliveryOutcome, DeliveryResult,
};
pub use envelope::{webhook_id, Envelope, WebhookId};
pub use event::{
    check_data, check_json, is_queue_safe_char, AppId, DataError, Event, EventData, EventId,
    EventType, ObjectType, ValidationError, MAX_DATA_DEPTH,
};
pub use format::{Bodies, Body, ContentType, PayloadFormat};
pub use health::{HealthWindow, HourCounts, HourTally, LatencyHistogram, WebhookHealth};
pub use id::new_id;
pub use message::{DeadLetter, DecodeError, DeliveryTask, QueueMessage};
pub use ordering::OrderingKey;
pub use payload_filter::{EventView, FilterError, PayloadFilter};
pub use rate::{RateLimit, SlotStep, MAX_RATE_LIMIT};
pub use retry::{AttemptFailure, NextStep, RetrySchedule};
pub use signing::{Secret, SignatureError, SignedHeaders, Signer, SigningKey, Verifier};
pub use subscription::{
    EventFilter, ObjectTypeFilter, Route, SigningKeys, Subscription, SubscriptionId,
    MAX_EVENT_TYPES,
};
