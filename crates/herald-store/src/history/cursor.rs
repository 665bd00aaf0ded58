//! The history's cursors: opaque to callers, bound to the listing they came from.
//!
//! A cursor is base64url of a small JSON object whose `s` names its listing's scope
//! (`{app}#{webhook}` or `{app}#{event}`). One that is oversized, does not decode, names
//! another scope or carries a position that is not one this store hands out is
//! [`StoreError::BadCursor`] (a 400), never a request DynamoDB would refuse.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::keys::{floor_millis, is_record_sort_key};
use crate::StoreError;

/// Longest cursor accepted.
pub(super) const MAX_CURSOR_LEN: usize = 512;
/// Largest offset into one record or one event's attempts.
const MAX_OFFSET: usize = 1_000_000;

/// Where a webhook's listing stopped: in record `k`, after `o` of its entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecordCursor {
    pub(super) s: String,
    pub(super) k: String,
    pub(super) o: usize,
}

/// Where an event's listing stopped: after `o` attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OffsetCursor {
    pub(super) s: String,
    pub(super) o: usize,
}

/// Where an event listing stopped: it goes on with the ids below `k` (an event id or
/// the start of a minute, `evt_` and hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BoundCursor {
    pub(super) s: String,
    pub(super) k: String,
}

/// The cursor string of `value`.
pub(super) fn encode<T: Serialize>(value: &T) -> String {
    BASE64.encode(serde_json::to_vec(value).unwrap_or_default())
}

fn decode<T: DeserializeOwned>(cursor: &str) -> Result<T, StoreError> {
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(StoreError::BadCursor);
    }
    let bytes = BASE64.decode(cursor).map_err(|_| StoreError::BadCursor)?;
    serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)
}

impl RecordCursor {
    /// The position a cursor of the listing `scope` carries.
    pub(super) fn decode(cursor: &str, scope: &str) -> Result<Self, StoreError> {
        let c: Self = decode(cursor)?;
        if c.s != scope || !is_record_sort_key(&c.k) || c.o > MAX_OFFSET {
            return Err(StoreError::BadCursor);
        }
        Ok(c)
    }
}

impl BoundCursor {
    /// The bound a cursor of the listing `scope` carries, and its Unix millisecond.
    pub(super) fn decode(cursor: &str, scope: &str) -> Result<(Self, i64), StoreError> {
        let c: Self = decode(cursor)?;
        match floor_millis(&c.k) {
            Some(ms) if c.s == scope => Ok((c, ms)),
            _ => Err(StoreError::BadCursor),
        }
    }
}

impl OffsetCursor {
    /// The offset a cursor of the listing `scope` carries.
    pub(super) fn decode(cursor: &str, scope: &str) -> Result<Self, StoreError> {
        let c: Self = decode(cursor)?;
        if c.s != scope || c.o == 0 || c.o > MAX_OFFSET {
            return Err(StoreError::BadCursor);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "2026-03-04T05:06:07.123456Z#b_0abc";

    fn bad<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
        matches!(r, Err(StoreError::BadCursor))
    }

    #[test]
    fn cursors_round_trip_within_their_scope() {
        let c = RecordCursor {
            s: "shop#sub_1".into(),
            k: KEY.into(),
            o: 3,
        };
        let text = encode(&c);
        assert!(text.len() < MAX_CURSOR_LEN);
        assert_eq!(RecordCursor::decode(&text, "shop#sub_1").unwrap(), c);
        let c = OffsetCursor {
            s: "shop#evt_1".into(),
            o: 50,
        };
        assert_eq!(OffsetCursor::decode(&encode(&c), "shop#evt_1").unwrap(), c);
    }

    #[test]
    fn foreign_cursors_are_refused() {
        let mine = encode(&RecordCursor {
            s: "shop#sub_1".into(),
            k: KEY.into(),
            o: 0,
        });
        assert!(
            bad(RecordCursor::decode(&mine, "shop#sub_2")),
            "another webhook's"
        );
        assert!(
            bad(RecordCursor::decode(&mine, "other#sub_1")),
            "another app's"
        );
        assert!(
            bad(OffsetCursor::decode(&mine, "shop#sub_1")),
            "a webhook cursor on an event"
        );
        let event = encode(&OffsetCursor {
            s: "shop#evt_1".into(),
            o: 5,
        });
        assert!(
            bad(OffsetCursor::decode(&event, "shop#evt_2")),
            "another event's"
        );
        assert!(
            bad(RecordCursor::decode(&event, "shop#evt_1")),
            "an event cursor on a webhook"
        );
    }

    #[test]
    fn tampered_and_oversized_cursors_are_refused() {
        let scope = "shop#sub_1";
        let record = |k: &str, o: usize| {
            encode(&RecordCursor {
                s: scope.into(),
                k: k.into(),
                o,
            })
        };
        assert!(bad(RecordCursor::decode("%%", scope)), "not base64");
        assert!(
            bad(RecordCursor::decode(&BASE64.encode(b"[1]"), scope)),
            "not an object"
        );
        assert!(bad(RecordCursor::decode(
            &BASE64.encode(b"{\"s\":\"shop#sub_1\"}"),
            scope
        )));
        let extra = BASE64.encode(format!(r#"{{"s":"{scope}","k":"{KEY}","o":0,"x":1}}"#));
        assert!(bad(RecordCursor::decode(&extra, scope)), "unknown fields");
        assert!(
            bad(RecordCursor::decode(&record("~", 0), scope)),
            "not a record key"
        );
        assert!(bad(RecordCursor::decode(
            &record("W#shop#sub_1#0", 0),
            scope
        )));
        assert!(bad(RecordCursor::decode(
            &record(KEY, MAX_OFFSET + 1),
            scope
        )));
        let negative = BASE64.encode(format!(r#"{{"s":"{scope}","k":"{KEY}","o":-1}}"#));
        assert!(bad(RecordCursor::decode(&negative, scope)));
        let long = record(&format!("{KEY}{}", "0".repeat(400)), 0);
        assert!(bad(RecordCursor::decode(&long, scope)), "oversized");
        assert!(bad(RecordCursor::decode(
            &"A".repeat(MAX_CURSOR_LEN + 1),
            scope
        )));
        let zero = encode(&OffsetCursor {
            s: scope.into(),
            o: 0,
        });
        assert!(bad(OffsetCursor::decode(&zero, scope)), "never handed out");
        let bound = |k: &str| {
            encode(&BoundCursor {
                s: scope.into(),
                k: k.into(),
            })
        };
        assert!(BoundCursor::decode(&bound("evt_0190a1b2c3d4"), scope).is_ok());
        assert!(BoundCursor::decode(&bound("evt_0190a1b2c3d47abc8def0123456789ab"), scope).is_ok());
        for k in [
            "evt_0190",
            "evt_0190A1B2C3D4",
            "sub_0190a1b2c3d4",
            "evt_0190a1b2c3d4#x",
            "~",
        ] {
            assert!(bad(BoundCursor::decode(&bound(k), scope)), "{k}");
        }
        assert!(bad(BoundCursor::decode(
            &bound("evt_0190a1b2c3d4"),
            "other"
        )));
    }
}
