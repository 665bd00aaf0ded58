//! Reading settings: serde helpers for configuration structs whose values arrive as
//! text (environment variables, profile files, flags). One spelling for durations
//! everywhere: `500ms`, `15s`, `5m`, `24h`, `30d` (a bare number is seconds).

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

pub use crate::retry::parse_duration;

/// The text of a scalar setting, whatever type its source gave it (`"64"` or `64`).
struct Scalar;

impl Visitor<'_> for Scalar {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string, number or boolean")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(Scalar)
}

/// Any [`FromStr`] value, from its text: numbers, address lists, schedules.
pub fn parsed<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    let text = scalar(d)?;
    text.trim().parse().map_err(de::Error::custom)
}

/// `true`/`false` (also `1`/`0`).
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match scalar(d)?.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(de::Error::custom(format!("{other:?} is not true or false"))),
    }
}

/// A duration such as `15s` or `24h`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse_duration(&scalar(d)?).map_err(de::Error::custom)
}

/// A string that must not be empty (blank counts as unset).
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = scalar(d)?;
    if text.trim().is_empty() {
        return Err(de::Error::custom("must not be empty"));
    }
    Ok(text)
}

/// An optional string: blank counts as unset.
pub fn optional_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = scalar(d)?;
    Ok((!text.trim().is_empty()).then_some(text))
}

/// Writes a duration in the spelling [`duration`] reads (for `serialize_with`).
pub fn write_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// Writes a value as its text (for `serialize_with`), as [`parsed`] reads it back.
pub fn write_display<S: serde::Serializer, T: Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Formats a duration in the spelling [`duration`] reads (`15s`, `500ms`, `24h`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    match s {
        0 => "0s".to_owned(),
        _ if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        _ if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct S {
        #[serde(deserialize_with = "parsed")]
        n: usize,
        #[serde(deserialize_with = "flag")]
        on: bool,
        #[serde(deserialize_with = "duration")]
        wait: Duration,
    }

    #[test]
    fn text_and_typed_values_read_the_same() {
        let from_text: S = serde_json::from_str(r#"{"n":"64","on":"true","wait":"15s"}"#).unwrap();
        let typed: S = serde_json::from_str(r#"{"n":64,"on":true,"wait":"15s"}"#).unwrap();
        assert_eq!(from_text.n, 64);
        assert_eq!(typed.n, 64);
        assert!(from_text.on && typed.on);
        assert_eq!(from_text.wait, Duration::from_secs(15));
        assert!(serde_json::from_str::<S>(r#"{"n":"lots","on":"true","wait":"1s"}"#).is_err());
        assert!(serde_json::from_str::<S>(r#"{"n":1,"on":"yes","wait":"1s"}"#).is_err());
        assert!(serde_json::from_str::<S>(r#"{"n":1,"on":"true","wait":"soon"}"#).is_err());
    }

    #[test]
    fn durations_format_as_they_parse() {
        for d in [0, 500, 15_000, 300_000, 7_200_000, 86_400_000 * 30] {
            let d = Duration::from_millis(d);
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        assert_eq!(format_duration(Duration::from_secs(86_400)), "1d");
    }
}
