//! The webhook form (create and edit): its fields, read from a post or from a webhook,
//! turned into the API's `WebhookIn` or `WebhookPatch`, and rendered.

use std::collections::BTreeMap;

use maud::{html, Markup};

use super::auth::{FormData, Signed};
use super::page::csrf_field;
use crate::webhooks::{WebhookIn, WebhookOut, WebhookPatch};

/// Para's six built-in kinds, offered as checkboxes.
const KINDS: [&str; 6] = herald_core::EventType::BUILT_IN;

/// What the form holds.
#[derive(Debug, Clone)]
pub struct Draft {
    url: String,
    all_events: bool,
    kinds: Vec<String>,
    custom: String,
    object_types: String,
    description: String,
    headers: String,
    /// Deliveries per second, as typed; empty for no limit.
    rate_limit: String,
    /// The payload format (`standard` or `para`) and content type (`json` or `form`).
    format: String,
    content_type: String,
    active: bool,
}

impl Default for Draft {
    fn default() -> Self {
        Self {
            url: String::new(),
            all_events: false,
            kinds: Vec::new(),
            custom: String::new(),
            object_types: String::new(),
            description: String::new(),
            headers: String::new(),
            rate_limit: String::new(),
            format: "standard".to_owned(),
            content_type: "json".to_owned(),
            active: true,
        }
    }
}

/// Items separated by commas or white space.
fn items(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Draft {
    /// The fields of a posted form.
    pub fn from_form(f: &FormData) -> Self {
        let text = |name: &str| f.get(name).unwrap_or_default().to_owned();
        Self {
            url: text("url"),
            all_events: f.get("all_events").is_some(),
            kinds: f
                .all("events")
                .into_iter()
                .filter(|k| KINDS.contains(k))
                .map(str::to_owned)
                .collect(),
            custom: text("custom_events"),
            object_types: text("object_types"),
            description: text("description"),
            headers: text("headers"),
            rate_limit: text("rate_limit").trim().to_owned(),
            format: text("format"),
            content_type: text("content_type"),
            active: f.get("active").is_some(),
        }
    }

    /// The fields of an existing webhook (credential header values come masked, and a
    /// masked value sent back keeps the stored one).
    pub fn from_webhook(w: &WebhookOut) -> Self {
        let all_events = w.events.iter().any(|e| e == "*");
        let (kinds, custom): (Vec<String>, Vec<String>) = w
            .events
            .iter()
            .filter(|e| *e != "*")
            .cloned()
            .partition(|e| KINDS.contains(&e.as_str()));
        Self {
            url: w.url.clone(),
            all_events,
            kinds,
            custom: custom.join(", "),
            object_types: w
                .object_types
                .iter()
                .filter(|o| *o != "*")
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            description: w.description.clone(),
            headers: w
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            rate_limit: w.rate_limit.map(|n| n.to_string()).unwrap_or_default(),
            format: w.format.clone(),
            content_type: w.content_type.clone(),
            active: w.active,
        }
    }

    fn events(&self) -> Vec<String> {
        if self.all_events {
            return vec!["*".to_owned()];
        }
        let mut events = self.kinds.clone();
        events.extend(items(&self.custom));
        events
    }

    fn headers(&self) -> Result<BTreeMap<String, String>, String> {
        self.headers
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|line| {
                line.split_once(':')
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .ok_or_else(|| format!("header line {line:?} is not `Name: value`"))
            })
            .collect()
    }

    /// The API's body for creating the webhook.
    pub fn to_input(&self) -> Result<WebhookIn, String> {
        Ok(WebhookIn {
            url: self.url.clone(),
            events: self.events(),
            object_types: items(&self.object_types),
            description: self.description.clone(),
            headers: self.headers()?,
            active: Some(self.active),
            rate_limit: self.rate_limit_value(),
            format: Some(self.format.clone()).filter(|f| !f.is_empty()),
            content_type: Some(self.content_type.clone()).filter(|c| !c.is_empty()),
            // The console does not edit payload filters (the API and the CLI do).
            filter: None,
            // Not on the form: set through the API or the CLI, kept by the form's edits.
            ordered: None,
        })
    }

    /// The rate limit as the API reads it: none when empty, a number when it is one,
    /// else the text (which the API refuses with its message).
    fn rate_limit_value(&self) -> Option<serde_json::Value> {
        if self.rate_limit.is_empty() {
            return None;
        }
        Some(match self.rate_limit.parse::<u64>() {
            Ok(n) => serde_json::Value::from(n),
            Err(_) => serde_json::Value::from(self.rate_limit.clone()),
        })
    }

    /// The API's body for changing the webhook: every field of the form.
    pub fn to_patch(&self) -> Result<WebhookPatch, String> {
        let input = self.to_input()?;
        Ok(WebhookPatch {
            url: Some(input.url),
            events: Some(input.events),
            object_types: Some(input.object_types),
            description: Some(input.description),
            headers: Some(input.headers),
            active: input.active,
            // Emptied: the limit is removed.
            rate_limit: Some(input.rate_limit.unwrap_or(serde_json::Value::Null)),
            format: input.format,
            content_type: input.content_type,
            filter: None,
            ordered: None,
        })
    }

    /// The form, posting to `action`, with `error` above it.
    pub fn render(&self, s: &Signed, action: &str, submit: &str, error: Option<&str>) -> Markup {
        html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action=(action) {
                (csrf_field(s))
                label for="url" { "URL" }
                input #url type="url" name="url" value=(self.url) required placeholder="https://example.com/webhooks";
                fieldset {
                    legend { "Events" }
                    label { input type="checkbox" name="all_events" value="1" checked[self.all_events]; "every event (*)" }
                    br;
                    @for kind in KINDS {
                        label { input type="checkbox" name="events" value=(kind) checked[self.kinds.iter().any(|k| k == kind)]; (kind) }
                    }
                }
                label for="custom_events" { "Custom event types " span.muted { "(comma separated, e.g. invoice.paid)" } }
                input #custom_events type="text" name="custom_events" value=(self.custom);
                label for="object_types" { "Object types " span.muted { "(comma separated; empty for all)" } }
                input #object_types type="text" name="object_types" value=(self.object_types);
                label for="description" { "Description" }
                textarea #description name="description" { (self.description) }
                label for="headers" { "Headers " span.muted { "(one `Name: value` a line; masked values are kept)" } }
                textarea #headers name="headers" { (self.headers) }
                label for="rate_limit" { "Rate limit " span.muted { "(deliveries per second, 1–10000; empty for no limit)" } }
                input #rate_limit type="number" name="rate_limit" min="1" max="10000" value=(self.rate_limit);
                label for="format" { "Payload format" }
                select #format name="format" {
                    option value="standard" selected[self.format == "standard"] { "Standard Webhooks" }
                    option value="para" selected[self.format == "para"] { "Para (X-Webhook-Signature)" }
                }
                label for="content_type" { "Body" }
                select #content_type name="content_type" {
                    option value="json" selected[self.content_type == "json"] { "JSON" }
                    option value="form" selected[self.content_type == "form"] { "form-encoded payload=…" }
                }
                fieldset {
                    legend { "State" }
                    label { input type="checkbox" name="active" value="1" checked[self.active]; "active" }
                }
                button type="submit" { (submit) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_posted_form_becomes_the_api_body() {
        let f = FormData::parse(
            b"url=https%3A%2F%2Fa.example%2Fh&events=create&events=deleteAll&events=bogus\
              &custom_events=invoice.paid%2C+x.y&object_types=user+team\
              &headers=X-Team%3A+a%0D%0AAuthorization%3A+Bearer+t&active=1",
        );
        let input = Draft::from_form(&f).to_input().unwrap();
        assert_eq!(input.events, ["create", "deleteAll", "invoice.paid", "x.y"]);
        assert_eq!(input.object_types, ["user", "team"]);
        assert_eq!(input.headers["X-Team"], "a");
        assert_eq!(input.headers["Authorization"], "Bearer t");
        assert_eq!(input.active, Some(true));
        assert_eq!(input.rate_limit, None);
        let limited = Draft::from_form(&FormData::parse(b"url=u&rate_limit=+25+"));
        assert_eq!(limited.to_input().unwrap().rate_limit, Some(25.into()));
        assert_eq!(
            Draft::from_form(&FormData::parse(b"url=u&rate_limit="))
                .to_patch()
                .unwrap()
                .rate_limit,
            Some(serde_json::Value::Null),
            "emptied: removed"
        );
        let all = Draft::from_form(&FormData::parse(b"url=u&all_events=1&events=create"));
        assert_eq!(all.to_input().unwrap().events, ["*"]);
        assert_eq!(all.to_input().unwrap().active, Some(false));
        assert!(Draft::from_form(&FormData::parse(b"headers=nocolon"))
            .to_input()
            .is_err());
    }
}
