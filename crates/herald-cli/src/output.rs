//! Printing: readable text by default, JSON with `--json`.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use crate::failure::usage;

/// Prints one JSON document (pretty, for people and `jq` alike).
pub fn json(v: &impl Serialize) {
    let text = serde_json::to_string_pretty(v).expect("values serialize");
    println!("{text}");
}

/// Prints one JSON line (streaming commands), flushed at once.
pub fn json_line(v: &impl Serialize) {
    let text = serde_json::to_string(v).expect("values serialize");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Prints a line and flushes (so piped output keeps up with the events).
pub fn line(s: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", s.as_ref());
    let _ = out.flush();
}

pub fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// A string field, or `-`.
pub fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or("-")
}

/// A list field joined with `, `; `all` when empty.
pub fn list(v: &Value, field: &str) -> String {
    let items: Vec<&str> = v[field]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if items.is_empty() {
        "all".to_owned()
    } else {
        items.join(", ")
    }
}

/// An RFC 3339 time as `2025-01-31 12:00:03.123` (UTC), or as it came.
pub fn time(v: &Value) -> String {
    let Some(raw) = v.as_str() else {
        return "-".to_owned();
    };
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S%.3f")
                .to_string()
        })
        .unwrap_or_else(|_| raw.to_owned())
}

/// Reads a file, or standard input for `-`.
pub fn read_input(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        return read_stdin();
    }
    std::fs::read(path).map_err(|e| usage(format!("reading {}: {e}", path.display())))
}

/// Reads all of standard input; a usage error when it is a terminal (nothing piped).
pub fn read_stdin() -> Result<Vec<u8>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(usage(
            "nothing on standard input: pipe the input in, or pass it with a flag (see --help)",
        ));
    }
    let mut buf = Vec::new();
    stdin
        .lock()
        .read_to_end(&mut buf)
        .map_err(|e| usage(format!("reading standard input: {e}")))?;
    Ok(buf)
}

/// `NAME=VALUE` (or `NAME: VALUE`), split at the first `=` or `:`.
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    let at = s
        .find(['=', ':'])
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    let (name, value) = (s[..at].trim(), s[at + 1..].trim());
    if name.is_empty() {
        return Err(format!("expected NAME=VALUE, got {s:?}"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_split_at_the_first_separator() {
        assert_eq!(
            parse_kv("webhook-signature=v1,abc=").unwrap(),
            ("webhook-signature".into(), "v1,abc=".into())
        );
        assert_eq!(
            parse_kv("webhook-id: msg_1").unwrap(),
            ("webhook-id".into(), "msg_1".into())
        );
        assert_eq!(parse_kv("a=").unwrap(), ("a".into(), String::new()));
        assert!(parse_kv("novalue").is_err());
        assert!(parse_kv("=x").is_err());
    }

    #[test]
    fn times_are_shortened() {
        assert_eq!(
            time(&Value::from("2025-01-31T12:00:03.123456Z")),
            "2025-01-31 12:00:03.123"
        );
        assert_eq!(time(&Value::from("soon")), "soon");
        assert_eq!(time(&Value::Null), "-");
    }
}
