//! The JSON log line, written straight to the line.
//!
//! [`JsonLines`] writes the object tracing-subscriber's JSON format writes with the
//! current span on and the span list off (`timestamp`, `level`, `fields`, `target`,
//! and `span`: the fields of the span the event was written in, with its `name`), so
//! CloudWatch queries and log parsers see the same keys and values. It writes each
//! field as it is visited, escaping in place: tracing-subscriber's formatter goes
//! through serde's map serializer, formats the timestamp into a `String` of its own,
//! re-checks every write as UTF-8 and parses a span's stored fields back into a JSON
//! map for each line, which took about 1 µs per line, as much as signing a delivery,
//! when the consumer logs a line per batch (docs/perf/README.md). Hand-written rather
//! than through a crate: none writes this shape without those steps.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// One JSON object per event, on its own line ([module docs](self)).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut line: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        line.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut line)?;
        line.write_str("\",\"level\":\"")?;
        line.write_str(meta.level().as_str())?;
        line.write_str("\",\"fields\":{")?;
        let mut fields = Fields {
            line: &mut line,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        line.write_str("},\"target\":")?;
        string(&mut line, meta.target())?;
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            line.write_str(",\"span\":{")?;
            let extensions = span.extensions();
            // The span's fields as its field formatter stored them: a JSON object
            // (`JsonFields`), whose members go in as they are.
            let members = extensions
                .get::<FormattedFields<N>>()
                .and_then(|f| f.fields.trim().strip_prefix('{')?.strip_suffix('}'))
                .map(str::trim)
                .unwrap_or_default();
            if !members.is_empty() {
                line.write_str(members)?;
                line.write_char(',')?;
            }
            line.write_str("\"name\":")?;
            string(&mut line, span.name())?;
            line.write_char('}')?;
        }
        line.write_str("}\n")
    }
}

/// Writes an event's fields as the members of a JSON object.
struct Fields<'a, 'w> {
    line: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    /// Writes `"name":` and then the value with `value`, unless a write failed before.
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            if !std::mem::take(&mut self.first) {
                self.line.write_char(',')?;
            }
            string(self.line, field.name())?;
            self.line.write_char(':')?;
            value(self.line)
        })();
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |line| string(line, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |line| {
            line.write_char('"')?;
            write!(Escaped(line), "{value:?}")?;
            line.write_char('"')
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.member(field, |line| {
            line.write_char('"')?;
            write!(Escaped(line), "{value}")?;
            line.write_char('"')
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |line| write!(line, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |line| write!(line, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |line| {
            line.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: serde_json writes them as null too.
        self.member(field, |line| {
            if value.is_finite() {
                write!(line, "{value}")
            } else {
                line.write_str("null")
            }
        });
    }
}

/// Writes `text` as a JSON string.
fn string(line: &mut Writer<'_>, text: &str) -> fmt::Result {
    line.write_char('"')?;
    Escaped(line).write_str(text)?;
    line.write_char('"')
}

/// Escapes what is written through it for the inside of a JSON string.
struct Escaped<'a, 'w>(&'a mut Writer<'w>);

impl Write for Escaped<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x00..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&text[plain..i])?;
            plain = i + 1;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
        }
        self.0.write_str(&text[plain..])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::{json, Value};
    use tracing_subscriber::layer::SubscriberExt;

    /// Collects what the layers write.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn lines(&self) -> Vec<Value> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            assert!(text.ends_with('\n'), "{text}");
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect()
        }
    }

    /// Logs a few events, some in spans, through `layer`; what it wrote.
    fn logged<L>(layer: impl FnOnce(Sink) -> L) -> Vec<Value>
    where
        L: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync,
    {
        let sink = Sink::default();
        let subscriber = tracing_subscriber::registry().with(layer(sink.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let error = std::io::Error::other("disk \"full\"\n\tretry");
            tracing::info!(
                records = 10_u64,
                delta = -3_i64,
                big = 7_u128,
                ratio = 0.5,
                nan = f64::NAN,
                ok = true,
                name = "quote \" backslash \\ bell \u{7} é ✓",
                error = &error as &(dyn std::error::Error + 'static),
                shown = %"display\nline",
                "batch handled"
            );
            let span = tracing::info_span!("Lambda runtime invoke", requestId = "req-1", n = 2);
            let _entered = span.enter();
            tracing::warn!(attempt = 3, "in a span");
            let inner = tracing::info_span!("empty");
            let _inner = inner.enter();
            tracing::error!("in an empty span");
        });
        sink.lines()
    }

    #[test]
    fn lines_match_tracing_subscribers_json_format() {
        let ours = logged(|sink| crate::json_log_layer(move || sink.clone()));
        let theirs = logged(|sink| {
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(move || sink.clone())
        });
        assert_eq!(ours.len(), 3);
        for (mut a, mut b) in ours.into_iter().zip(theirs) {
            let (ta, tb) = (a["timestamp"].take(), b["timestamp"].take());
            let ta = chrono::DateTime::parse_from_rfc3339(ta.as_str().unwrap()).unwrap();
            let tb = chrono::DateTime::parse_from_rfc3339(tb.as_str().unwrap()).unwrap();
            assert!((tb - ta).num_seconds().abs() < 5, "{ta} / {tb}");
            assert_eq!(a, b);
        }
    }

    #[test]
    fn fields_and_spans_come_out_as_written() {
        let lines = logged(|sink| crate::json_log_layer(move || sink.clone()));
        let first = &lines[0];
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["target"], module_path!());
        let fields = &first["fields"];
        assert_eq!(fields["message"], "batch handled");
        assert_eq!(fields["records"], 10);
        assert_eq!(fields["delta"], -3);
        assert_eq!(
            fields["big"], "7",
            "128-bit integers as text, as tracing-serde writes them"
        );
        assert_eq!(fields["ratio"], 0.5);
        assert_eq!(fields["nan"], Value::Null);
        assert_eq!(fields["ok"], true);
        assert_eq!(fields["name"], "quote \" backslash \\ bell \u{7} é ✓");
        assert_eq!(fields["error"], "disk \"full\"\n\tretry");
        assert_eq!(fields["shown"], "display\nline");
        assert!(first.get("span").is_none());
        assert_eq!(
            lines[1]["span"],
            json!({"requestId": "req-1", "n": 2, "name": "Lambda runtime invoke"})
        );
        assert_eq!(lines[2]["span"], json!({"name": "empty"}));
    }
}
