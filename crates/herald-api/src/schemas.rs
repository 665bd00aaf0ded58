//! JSON Schemas of event types: checked as schemas when a catalog entry is written,
//! and compiled once per (app, type) and kept for a few seconds for publishing, so a
//! busy publisher reads and compiles a type's schema once per [`SCHEMA_CACHE_TTL`], not
//! once per request.
//!
//! Schemas are compiled with `jsonschema` without any way to fetch what a `$ref`
//! points to outside the schema (no network, no files: such a schema is refused), and
//! with the linear-time `regex` engine for `pattern`, so neither writing nor checking
//! an event can be made to run long.

use std::sync::Arc;
use std::time::Duration;

use herald_core::{AppId, EventType};

use jsonschema::{PatternOptions, Validator};
use moka::future::Cache;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// Largest schema, as compact JSON.
pub const MAX_SCHEMA_BYTES: usize = 65_536;
/// How long an API instance keeps what it read of a type's schema (and that a type has
/// none): a change reaches every instance within this time.
pub const SCHEMA_CACHE_TTL: Duration = Duration::from_secs(10);
/// Most bytes of schema JSON the cache holds (each entry weighs its schema's size).
const CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// A schema compiled for checking events.
pub struct Compiled {
    validator: Validator,
    weight: u32,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}

/// Compiles `schema`, checking it against its meta-schema (the draft its `$schema`
/// names; 2020-12 without one). The error says where in the schema it is wrong.
pub fn compile(schema: &Value) -> Result<Compiled, String> {
    let size = serde_json::to_string(schema).map_or(usize::MAX, |s| s.len());
    if size > MAX_SCHEMA_BYTES {
        return Err(format!(
            "schema is {size} bytes as compact JSON, over the limit of {MAX_SCHEMA_BYTES}"
        ));
    }
    if !schema.is_object() && !schema.is_boolean() {
        return Err("schema must be a JSON Schema: an object (or true/false)".into());
    }
    let validator = jsonschema::options()
        .with_pattern_options(PatternOptions::regex())
        .build(schema)
        .map_err(|e| {
            let at = e.instance_path().as_str();
            let at = if at.is_empty() { "" } else { at };
            format!("schema{at} is not a valid JSON Schema: {e}")
        })?;
    Ok(Compiled {
        validator,
        weight: u32::try_from(size).unwrap_or(u32::MAX).saturating_add(64),
    })
}

impl Compiled {
    /// Checks `data` of an event of type `event_type`; `at` names the event's `data` in
    /// the request (`data`, `events[2].data`). The error (422) gives the first failure's
    /// place in the data (a JSON pointer), what failed and the schema keyword that
    /// failed.
    pub fn check(&self, data: &Value, event_type: &EventType, at: &str) -> ApiResult<()> {
        let Some(error) = self.validator.iter_errors(data).next() else {
            return Ok(());
        };
        let place = error.instance_path().as_str();
        let place = if place.is_empty() { "/" } else { place };
        Err(ApiError::Validation(format!(
            "{at} does not match the schema of event type {event_type}: at {place}: {error} \
             (schema keyword at {})",
            error.schema_path().as_str()
        )))
    }
}

/// The compiled schemas of event types, per (app, type), each kept for
/// [`SCHEMA_CACHE_TTL`]; a type without a schema (or not in the catalog) is kept as
/// `None`, so publishing it costs no read either.
#[derive(Clone)]
pub struct SchemaCache {
    cache: Cache<(AppId, EventType), Option<Arc<Compiled>>>,
}

impl Default for SchemaCache {
    fn default() -> Self {
        Self {
            cache: Cache::builder()
                .time_to_live(SCHEMA_CACHE_TTL)
                .max_capacity(CACHE_BYTES)
                .weigher(|_, v: &Option<Arc<Compiled>>| v.as_ref().map_or(64, |c| c.weight))
                .build(),
        }
    }
}

impl SchemaCache {
    /// The compiled schema of `app`'s type `event_type`, or `None` when it has none:
    /// from the cache, else read (one eventually consistent `GetItem`; concurrent
    /// requests for the same type share it) and compiled.
    pub async fn get(
        &self,
        store: &dyn herald_store::SubscriptionStorage,
        app: &AppId,
        event_type: &EventType,
    ) -> ApiResult<Option<Arc<Compiled>>> {
        let key = (app.clone(), event_type.clone());
        self.cache
            .try_get_with(key, async {
                let entry = store.get_event_type(app, event_type, false).await?;
                Ok::<_, ApiError>(entry.and_then(|e| e.schema).and_then(|text| {
                    // Stored schemas were compiled when written; one that no longer
                    // compiles (a newer library) checks nothing rather than refusing
                    // every event.
                    let value: Value = serde_json::from_str(&text).ok()?;
                    match compile(&value) {
                        Ok(c) => Some(Arc::new(c)),
                        Err(e) => {
                            tracing::warn!(%event_type, error = %e, "a stored schema does not compile; not checked");
                            None
                        }
                    }
                }))
            })
            .await
            .map_err(|e: Arc<ApiError>| ApiError::Unavailable(e.to_string()))
    }

    /// Forgets what this instance holds of `app`'s type `event_type` (after it changed
    /// here; other instances see the change within [`SCHEMA_CACHE_TTL`]).
    pub async fn forget(&self, app: &AppId, event_type: &EventType) {
        self.cache
            .invalidate(&(app.clone(), event_type.clone()))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order() -> EventType {
        EventType::parse("order.created").unwrap()
    }

    #[test]
    fn a_schema_checks_data_and_names_the_failing_place() {
        let schema = json!({
            "type": "object",
            "required": ["id", "items"],
            "properties": {
                "id": {"type": "string"},
                "items": {"type": "array", "items": {"type": "object", "properties": {"price": {"type": "number"}}}}
            }
        });
        let c = compile(&schema).unwrap();
        assert!(c
            .check(
                &json!({"id": "o1", "items": [{"price": 3}]}),
                &order(),
                "data"
            )
            .is_ok());
        let err = c
            .check(
                &json!({"id": "o1", "items": [{"price": "3"}]}),
                &order(),
                "events[1].data",
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("events[1].data does not match the schema of event type order.created"),
            "{err}"
        );
        assert!(err.contains("at /items/0/price"), "{err}");
        assert!(err.contains("number"), "{err}");
        let err = c
            .check(&json!({"id": "o1"}), &order(), "data")
            .unwrap_err()
            .to_string();
        assert!(err.contains("at /:") && err.contains("items"), "{err}");
    }

    #[test]
    fn bad_schemas_and_outside_references_are_refused() {
        for (schema, says) in [
            (json!({"type": "objec"}), "/type"),
            (json!({"minLength": -1}), "/minLength"),
            (json!({"$ref": "https://example.com/schema.json"}), "valid"),
            (json!({"$ref": "file:///etc/passwd"}), "valid"),
            (json!({"pattern": "("}), "valid"),
            (json!("a string"), "object"),
        ] {
            let err = compile(&schema)
                .err()
                .unwrap_or_else(|| panic!("{schema} compiled"));
            assert!(err.contains(says), "{schema}: {err}");
        }
        let big = json!({"description": "x".repeat(MAX_SCHEMA_BYTES)});
        assert!(compile(&big).unwrap_err().contains("over the limit"));
        // References inside the schema work.
        let local = json!({"$defs": {"id": {"type": "string"}}, "properties": {"id": {"$ref": "#/$defs/id"}}});
        assert!(compile(&local)
            .unwrap()
            .check(&json!({"id": 1}), &order(), "data")
            .is_err());
    }

    #[test]
    fn compiling_a_schema_is_cheap_next_to_a_read() {
        // Measured for the docs: a schema of a few properties compiles in tens of
        // microseconds (debug build: well under a millisecond), a DynamoDB read takes
        // milliseconds; the cache saves the read above all.
        let schema = json!({
            "type": "object",
            "required": ["id", "amount", "currency"],
            "properties": {
                "id": {"type": "string", "pattern": "^inv_[a-z0-9]+$"},
                "amount": {"type": "integer", "minimum": 0},
                "currency": {"enum": ["EUR", "USD", "GBP"]},
                "lines": {"type": "array", "maxItems": 100, "items": {"type": "object"}}
            }
        });
        let start = std::time::Instant::now();
        for _ in 0..100 {
            compile(&schema).unwrap();
        }
        let per_compile = start.elapsed() / 100;
        let c = compile(&schema).unwrap();
        let data = json!({"id": "inv_1", "amount": 5, "currency": "EUR", "lines": [{}, {}]});
        let start = std::time::Instant::now();
        for _ in 0..1000 {
            c.check(&data, &order(), "data").unwrap();
        }
        let per_check = start.elapsed() / 1000;
        println!("compile: {per_compile:?}, check: {per_check:?}");
        assert!(per_compile < Duration::from_millis(20), "{per_compile:?}");
    }
}
