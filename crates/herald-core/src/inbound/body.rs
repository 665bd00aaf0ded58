//! Inbound bodies as event data. The mapping, by `Content-Type`:
//!
//! - JSON (`application/json`, `*/*+json`): the value as sent.
//! - XML (`application/xml`, `text/xml`, `*/*+xml`): `{"<root>": element}`, where an
//!   element with neither attributes nor child elements is its text (trimmed; `""`
//!   when empty), and any other element is an object holding its attributes as
//!   `"@name"`, its child elements by name (a name repeated becomes an array, in
//!   document order) and its non-blank text as `"#text"`. Names keep their namespace
//!   prefix (`ns:item`); comments, processing instructions and the DOCTYPE are
//!   dropped; entities other than XML's five and character references are refused.
//! - Forms (`application/x-www-form-urlencoded`): an object of the properties, a
//!   repeated name becoming an array of its values.
//! - Multipart (`multipart/form-data`): `{"fields": {name: text}, "files": [file]}`.
//! - Anything else: `{"file": file}`.
//!
//! A `file` is `{"content_type", "file_name" (or null), "size" (bytes), "base64"}`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use quick_xml::events::Event as XmlEvent;
use serde_json::{Map, Value};

/// Deepest element nesting accepted in an XML body (each level may add an object and
/// an array to the data, which must stay within [`crate::MAX_DATA_DEPTH`]).
pub const MAX_XML_DEPTH: usize = 30;
/// Most parts of a multipart body.
pub const MAX_PARTS: usize = 100;

/// The kinds of body, by content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyKind {
    /// JSON, as is.
    Json,
    /// XML, mapped to JSON.
    Xml,
    /// A URL-encoded form.
    Form,
    /// A multipart form, its files as base64.
    Multipart,
    /// Any other content, as base64.
    File,
}

/// A body as event data.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// What it was.
    pub kind: BodyKind,
    /// The event data.
    pub data: Value,
}

/// Why a body could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// No usable `Content-Type` (415).
    #[error("unsupported content type: {0}")]
    Unsupported(String),
    /// The body is not what its content type says (400).
    #[error("malformed {kind:?} body: {reason}")]
    Malformed {
        /// The content type's kind.
        kind: BodyKind,
        /// What is wrong.
        reason: String,
    },
}

/// Converts `body`, sent with `content_type` (and, for single files, the file name of
/// its `Content-Disposition`), to event data.
pub fn convert_body(
    content_type: Option<&str>,
    file_name: Option<&str>,
    body: &[u8],
) -> Result<Converted, BodyError> {
    let content_type = content_type
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| BodyError::Unsupported("a Content-Type header is required".into()))?;
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some((top, sub)) = essence.split_once('/') else {
        return Err(BodyError::Unsupported(format!(
            "{content_type:?} is not a media type"
        )));
    };
    if top.is_empty() || sub.is_empty() {
        return Err(BodyError::Unsupported(format!(
            "{content_type:?} is not a media type"
        )));
    }
    let malformed = |kind, reason: String| BodyError::Malformed { kind, reason };
    let (kind, data) = if essence == "application/json" || sub.ends_with("+json") {
        let v =
            serde_json::from_slice(body).map_err(|e| malformed(BodyKind::Json, e.to_string()))?;
        (BodyKind::Json, v)
    } else if matches!(essence.as_str(), "application/xml" | "text/xml") || sub.ends_with("+xml") {
        (
            BodyKind::Xml,
            xml_to_json(body).map_err(|r| malformed(BodyKind::Xml, r))?,
        )
    } else if essence == "application/x-www-form-urlencoded" {
        (BodyKind::Form, form_to_json(body))
    } else if essence == "multipart/form-data" {
        (BodyKind::Multipart, multipart_to_json(content_type, body)?)
    } else {
        let file = file(content_type, file_name, body);
        (
            BodyKind::File,
            Value::Object(Map::from_iter([("file".to_owned(), file)])),
        )
    };
    Ok(Converted { kind, data })
}

/// A file as `{"content_type", "file_name", "size", "base64"}`.
fn file(content_type: &str, file_name: Option<&str>, bytes: &[u8]) -> Value {
    serde_json::json!({
        "content_type": content_type,
        "file_name": file_name,
        "size": bytes.len(),
        "base64": BASE64.encode(bytes),
    })
}

/// Adds `value` under `key`, turning a repeated key into an array.
fn insert_repeated(map: &mut Map<String, Value>, key: String, value: Value) {
    match map.get_mut(&key) {
        None => {
            map.insert(key, value);
        }
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
    }
}

fn form_to_json(body: &[u8]) -> Value {
    let mut map = Map::new();
    for (k, v) in form_urlencoded::parse(body) {
        insert_repeated(&mut map, k.into_owned(), Value::String(v.into_owned()));
    }
    Value::Object(map)
}

/// One open element while parsing XML.
struct Element {
    name: String,
    fields: Map<String, Value>,
    has_structure: bool,
    text: String,
}

impl Element {
    fn open(e: &quick_xml::events::BytesStart<'_>) -> Result<Self, String> {
        let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
        let mut fields = Map::new();
        for attr in e.attributes() {
            let attr = attr.map_err(|e| e.to_string())?;
            let key = format!("@{}", String::from_utf8_lossy(attr.key.as_ref()));
            let value = attr
                .unescape_value()
                .map_err(|e| e.to_string())?
                .into_owned();
            fields.insert(key, Value::String(value));
        }
        Ok(Self {
            name,
            has_structure: !fields.is_empty(),
            fields,
            text: String::new(),
        })
    }

    fn close(self) -> (String, Value) {
        let text = self.text.trim();
        if !self.has_structure {
            return (self.name, Value::String(text.to_owned()));
        }
        let mut fields = self.fields;
        if !text.is_empty() {
            fields.insert("#text".to_owned(), Value::String(text.to_owned()));
        }
        (self.name, Value::Object(fields))
    }
}

fn xml_to_json(body: &[u8]) -> Result<Value, String> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<(String, Value)> = None;
    let attach = |stack: &mut Vec<Element>,
                  root: &mut Option<(String, Value)>,
                  (name, value): (String, Value)| {
        match stack.last_mut() {
            Some(parent) => {
                parent.has_structure = true;
                insert_repeated(&mut parent.fields, name, value);
                Ok(())
            }
            None if root.is_none() => {
                *root = Some((name, value));
                Ok(())
            }
            None => Err("more than one root element".to_owned()),
        }
    };
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            XmlEvent::Start(e) => {
                if stack.len() >= MAX_XML_DEPTH {
                    return Err(format!("elements nest deeper than {MAX_XML_DEPTH} levels"));
                }
                if root.is_some() && stack.is_empty() {
                    return Err("more than one root element".into());
                }
                stack.push(Element::open(&e)?);
            }
            XmlEvent::Empty(e) => {
                let element = Element::open(&e)?;
                attach(&mut stack, &mut root, element.close())?;
            }
            XmlEvent::End(_) => {
                let element = stack.pop().ok_or("an end tag without its start")?;
                attach(&mut stack, &mut root, element.close())?;
            }
            XmlEvent::Text(t) => {
                let text = t.unescape().map_err(|e| e.to_string())?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err("text outside the root element".into()),
                }
            }
            XmlEvent::CData(c) => {
                let text = String::from_utf8_lossy(&c.into_inner()).into_owned();
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&text),
                    None => return Err("CDATA outside the root element".into()),
                }
            }
            XmlEvent::Eof => break,
            XmlEvent::Decl(_) | XmlEvent::PI(_) | XmlEvent::Comment(_) | XmlEvent::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    let (name, value) = root.ok_or("no root element")?;
    Ok(Value::Object(Map::from_iter([(name, value)])))
}

fn multipart_to_json(content_type: &str, body: &[u8]) -> Result<Value, BodyError> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| BodyError::Unsupported(format!("multipart/form-data: {e}")))?;
    let malformed = |e: multer::Error| BodyError::Malformed {
        kind: BodyKind::Multipart,
        reason: e.to_string(),
    };
    let stream = futures::stream::once(futures::future::ready(Ok::<_, std::convert::Infallible>(
        bytes::Bytes::copy_from_slice(body),
    )));
    let mut multipart = multer::Multipart::new(stream, boundary);
    futures::executor::block_on(async {
        let mut fields = Map::new();
        let mut files = Vec::new();
        let mut parts = 0;
        while let Some(field) = multipart.next_field().await.map_err(malformed)? {
            parts += 1;
            if parts > MAX_PARTS {
                return Err(BodyError::Malformed {
                    kind: BodyKind::Multipart,
                    reason: format!("more than {MAX_PARTS} parts"),
                });
            }
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let part_type = field.content_type().map(ToString::to_string);
            let bytes = field.bytes().await.map_err(malformed)?;
            match (&file_name, std::str::from_utf8(&bytes)) {
                (None, Ok(text))
                    if part_type
                        .as_deref()
                        .is_none_or(|t| t.starts_with("text/plain")) =>
                {
                    insert_repeated(&mut fields, name, Value::String(text.to_owned()));
                }
                _ => {
                    let content_type = part_type.as_deref().unwrap_or("application/octet-stream");
                    let mut f = file(content_type, file_name.as_deref(), &bytes);
                    f["field"] = Value::String(name);
                    files.push(f);
                }
            }
        }
        Ok(serde_json::json!({"fields": fields, "files": files}))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(ct: &str, body: &[u8]) -> Value {
        convert_body(Some(ct), None, body).unwrap().data
    }

    #[test]
    fn json_is_kept_and_must_parse() {
        assert_eq!(
            data("application/json; charset=utf-8", br#"{"a":[1]}"#),
            json!({"a": [1]})
        );
        assert_eq!(data("application/vnd.x+json", b"3"), json!(3));
        assert!(matches!(
            convert_body(Some("application/json"), None, b"{"),
            Err(BodyError::Malformed { .. })
        ));
    }

    #[test]
    fn xml_maps_attributes_repeats_and_text() {
        let xml = br#"<?xml version="1.0"?>
            <!-- an order -->
            <order id="7" xmlns:x="urn:x">
              <item sku="a">First &amp; best</item>
              <item>Second</item>
              <x:note><![CDATA[<raw>]]></x:note>
              <empty/>
            </order>"#;
        assert_eq!(
            data("text/xml", xml),
            json!({"order": {
                "@id": "7", "@xmlns:x": "urn:x",
                "item": [{"@sku": "a", "#text": "First & best"}, "Second"],
                "x:note": "<raw>",
                "empty": ""
            }})
        );
        for bad in [
            &b"<a>"[..],
            b"<a></b>",
            b"<a/><b/>",
            b"text",
            b"<a>&custom;</a>",
            b"",
        ] {
            assert!(
                convert_body(Some("application/xml"), None, bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("{}{}", "<a>".repeat(40), "</a>".repeat(40));
        assert!(convert_body(Some("application/xml"), None, deep.as_bytes()).is_err());
    }

    #[test]
    fn forms_become_objects_with_repeated_names_as_arrays() {
        assert_eq!(
            data(
                "application/x-www-form-urlencoded",
                b"a=1&b=x+y&a=2&c=%E2%9C%93"
            ),
            json!({"a": ["1", "2"], "b": "x y", "c": "✓"})
        );
    }

    #[test]
    fn files_and_multipart_files_are_base64_with_their_metadata() {
        let c = convert_body(Some("application/pdf"), Some("a.pdf"), b"%PDF").unwrap();
        assert_eq!(c.kind, BodyKind::File);
        assert_eq!(
            c.data,
            json!({"file": {"content_type": "application/pdf", "file_name": "a.pdf", "size": 4, "base64": "JVBERg=="}})
        );
        let body = "--XX\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XX\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"r.csv\"\r\nContent-Type: text/csv\r\n\r\na,b\r\n--XX--\r\n";
        let c = convert_body(
            Some("multipart/form-data; boundary=XX"),
            None,
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(
            c.data,
            json!({"fields": {"note": "hello"}, "files": [{"field": "doc", "file_name": "r.csv", "content_type": "text/csv", "size": 3, "base64": "YSxi"}]})
        );
        assert!(matches!(
            convert_body(Some("multipart/form-data"), None, b""),
            Err(BodyError::Unsupported(_))
        ));
    }

    #[test]
    fn a_missing_or_bad_content_type_is_unsupported() {
        for ct in [None, Some(""), Some("json"), Some("/x")] {
            assert!(
                matches!(
                    convert_body(ct, None, b"{}"),
                    Err(BodyError::Unsupported(_))
                ),
                "{ct:?}"
            );
        }
    }
}
