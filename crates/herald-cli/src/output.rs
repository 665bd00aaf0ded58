//! Printing: readable text by default, JSON with `--json`.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

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

/// Whether standard error is a terminal (progress bars only then).
pub fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// A list joined with `, `; `all` when empty.
pub fn list(items: &[String]) -> String {
    if items.is_empty() {
        "all".to_owned()
    } else {
        items.join(", ")
    }
}

/// A time as `2025-01-31 12:00:03.123` (UTC).
pub fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
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
        let t: DateTime<Utc> = "2025-01-31T12:00:03.123456Z".parse().unwrap();
        assert_eq!(time(&t), "2025-01-31 12:00:03.123");
        let t: DateTime<Utc> = "2025-01-31T14:00:03+02:00".parse().unwrap();
        assert_eq!(time(&t), "2025-01-31 12:00:03.000");
    }

    #[test]
    fn empty_lists_mean_all() {
        assert_eq!(list(&[]), "all");
        assert_eq!(list(&["update".into(), "delete".into()]), "update, delete");
    }
}
