//! `herald apps`, `herald keys` and `herald webhooks`: clients of the management API.

use std::collections::BTreeMap;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::api::{seg, Api};
use crate::config::Settings;
use crate::failure::{usage, Failure, EXIT_FAILED};
use crate::output::{self, list, parse_kv, s, time};

/// Paging of list commands.
#[derive(Args, Debug, Clone, Default)]
pub struct PageArgs {
    /// Items per page, 1-250 [default: 50].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=250))]
    pub limit: Option<u32>,
    /// Start at this page (the `next_cursor` of the previous one).
    #[arg(long, value_name = "CURSOR", conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Fetch every page.
    #[arg(long)]
    pub all: bool,
}

impl PageArgs {
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(l) = self.limit {
            q.push(("limit", l.to_string()));
        }
        if let Some(c) = &self.cursor {
            q.push(("cursor", c.clone()));
        }
        q
    }

    /// One page, or every page with `--all` (as one page without a cursor).
    pub async fn fetch(&self, api: &Api, path: &str) -> Result<Value> {
        if self.all {
            let data = api.all_pages(path, self.query()).await?;
            Ok(json!({"data": data, "next_cursor": null}))
        } else {
            api.get(path, &self.query()).await
        }
    }
}

/// Tells a reader of text output how to get the next page.
pub fn more_hint(page: &Value) {
    if let Some(c) = page["next_cursor"].as_str() {
        eprintln!("(more: add --cursor {c}, or --all)");
    }
}

#[derive(Subcommand, Debug)]
pub enum AppsCommand {
    /// Create an app (a tenant); needs the admin key.
    #[command(after_help = "Examples:\n  \
        herald apps create --id shop --name \"The shop\"\n  \
        herald --json apps create --name \"Generated id\" | jq -r .id")]
    Create {
        /// Its id, `[a-zA-Z0-9_-]`, at most 64 characters [default: generated].
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// A display name [default: the id].
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// List apps.
    #[command(after_help = "Examples:\n  herald apps list\n  herald --json apps list --all")]
    List(PageArgs),
    /// Show one app.
    #[command(after_help = "Example:\n  herald apps get shop")]
    Get {
        /// The app's id.
        id: String,
    },
    /// Delete an app and its webhooks.
    #[command(
        visible_alias = "delete",
        after_help = "Example:\n  herald apps rm shop"
    )]
    Rm {
        /// The app's id.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create an API key for an app; the key is shown only here.
    #[command(after_help = "Examples:\n  \
        herald keys create --app shop\n  \
        export HERALD_API_KEY=$(herald --json keys create --app shop | jq -r .key)")]
    Create {
        /// The app the key belongs to.
        #[arg(long, value_name = "APP_ID")]
        app: String,
    },
    /// List an app's keys (their prefixes; keys are stored hashed).
    #[command(after_help = "Example:\n  herald keys list --app shop")]
    List {
        #[arg(long, value_name = "APP_ID")]
        app: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Revoke a key.
    #[command(
        visible_alias = "delete",
        after_help = "Example:\n  herald keys rm --app shop key_0190ab..."
    )]
    Rm {
        #[arg(long, value_name = "APP_ID")]
        app: String,
        /// The key's id (from `herald keys list`).
        key_id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// Register a webhook; prints its id and its secret (shown only here).
    #[command(after_help = "Examples:\n  \
        herald webhooks add --url https://example.com/hooks --events update --object-types user\n  \
        herald webhooks add --url https://example.com/all --events '*' --header 'X-Team=billing'\n  \
        herald --json webhooks add --url http://127.0.0.1:9000/hook | jq -r .secret")]
    Add(AddArgs),
    /// List the app's webhooks.
    #[command(
        after_help = "Examples:\n  herald webhooks list\n  herald --json webhooks list --all"
    )]
    List(PageArgs),
    /// Show one webhook.
    #[command(after_help = "Example:\n  herald webhooks get sub_0190ab...")]
    Get {
        /// The webhook's id.
        id: String,
    },
    /// Change a webhook: only the fields given change.
    #[command(after_help = "Examples:\n  \
        herald webhooks update sub_0190ab... --events update,delete\n  \
        herald webhooks update sub_0190ab... --url https://example.com/v2 --description \"v2 endpoint\"\n  \
        herald webhooks update sub_0190ab... --clear-headers")]
    Update(UpdateArgs),
    /// Delete a webhook.
    #[command(
        visible_alias = "delete",
        after_help = "Example:\n  herald webhooks rm sub_0190ab..."
    )]
    Rm {
        /// The webhook's id.
        id: String,
    },
    /// Enable a webhook (also after Herald disabled it); new events are delivered again.
    #[command(after_help = "Example:\n  herald webhooks enable sub_0190ab...\n\n\
        Deliveries parked on the DLQ while it was disabled come back with `herald redrive`.")]
    Enable {
        /// The webhook's id.
        id: String,
    },
    /// Disable a webhook; its events are recorded as not sent.
    #[command(after_help = "Example:\n  herald webhooks disable sub_0190ab...")]
    Disable {
        /// The webhook's id.
        id: String,
    },
    /// Rotate a webhook's secret; the previous one keeps signing for a while.
    #[command(after_help = "Example:\n  herald webhooks rotate sub_0190ab...\n\n\
        During the rotation window every delivery carries a signature by each secret,\n\
        so receivers can switch to the new one at their pace.")]
    Rotate {
        /// The webhook's id.
        id: String,
    },
    /// Send a signed test delivery (type `webhook.test`) now; exits 1 when it fails.
    #[command(after_help = "Examples:\n  \
        herald webhooks test sub_0190ab...\n  \
        herald --json webhooks test sub_0190ab... | jq .status_code")]
    Test {
        /// The webhook's id.
        id: String,
    },
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// Where to POST deliveries (https; http only when the API runs with HERALD_API_ALLOW_HTTP).
    #[arg(long, value_name = "URL")]
    url: String,
    /// Event types, comma-separated, or `*` for all.
    #[arg(long, value_name = "TYPES", value_delimiter = ',', default_value = "*")]
    events: Vec<String>,
    /// Object types, comma-separated; all when absent or `*`.
    #[arg(long, value_name = "TYPES", value_delimiter = ',')]
    object_types: Vec<String>,
    #[arg(long, value_name = "TEXT", default_value = "")]
    description: String,
    /// Extra header sent with each delivery, NAME=VALUE (repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_kv)]
    headers: Vec<(String, String)>,
    /// Register it disabled.
    #[arg(long)]
    disabled: bool,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// The webhook's id.
    id: String,
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Event types, comma-separated, or `*`.
    #[arg(long, value_name = "TYPES", value_delimiter = ',')]
    events: Option<Vec<String>>,
    /// Object types, comma-separated, or `*`.
    #[arg(long, value_name = "TYPES", value_delimiter = ',')]
    object_types: Option<Vec<String>>,
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    /// Replace the extra headers with these, NAME=VALUE (repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_kv, conflicts_with = "clear_headers")]
    headers: Vec<(String, String)>,
    /// Remove every extra header.
    #[arg(long)]
    clear_headers: bool,
}

fn admin_api(settings: &Settings) -> Result<Api> {
    Api::new(&settings.api_url(), settings.admin_key()?)
}

pub fn app_api(settings: &Settings) -> Result<Api> {
    Api::new(&settings.api_url(), settings.app_key()?)
}

pub async fn apps(cmd: AppsCommand, settings: &Settings) -> Result<()> {
    let api = admin_api(settings)?;
    let json = settings.json;
    match cmd {
        AppsCommand::Create { id, name } => {
            let name = name
                .or_else(|| id.clone())
                .ok_or_else(|| usage("give the app an --id or a --name (or both)"))?;
            let mut body = json!({"name": name});
            if let Some(id) = id {
                body["id"] = id.into();
            }
            let app = api.post("/v1/apps", Some(&body)).await?;
            if json {
                output::json(&app);
            } else {
                println!("created app {}  ({})", s(&app, "id"), s(&app, "name"));
                println!(
                    "  next: herald keys create --app {}   (an API key for its webhooks and events)",
                    s(&app, "id")
                );
            }
        }
        AppsCommand::List(page) => {
            let apps = page.fetch(&api, "/v1/apps").await?;
            if json {
                output::json(&apps);
            } else {
                let items = apps["data"].as_array().cloned().unwrap_or_default();
                if items.is_empty() {
                    println!("no apps");
                }
                for a in &items {
                    println!(
                        "{}  {}  created {}",
                        s(a, "id"),
                        s(a, "name"),
                        time(&a["created_at"])
                    );
                }
                more_hint(&apps);
            }
        }
        AppsCommand::Get { id } => {
            let app = api.get(&format!("/v1/apps/{}", seg(&id)), &[]).await?;
            if json {
                output::json(&app);
            } else {
                println!("app {}", s(&app, "id"));
                println!("  name:    {}", s(&app, "name"));
                println!("  created: {}", time(&app["created_at"]));
            }
        }
        AppsCommand::Rm { id } => {
            api.delete(&format!("/v1/apps/{}", seg(&id))).await?;
            if json {
                output::json(&json!({"deleted": id}));
            } else {
                println!("deleted app {id} and its webhooks");
            }
        }
    }
    Ok(())
}

pub async fn keys(cmd: KeysCommand, settings: &Settings) -> Result<()> {
    let api = admin_api(settings)?;
    let json = settings.json;
    match cmd {
        KeysCommand::Create { app } => {
            let key = api
                .post(&format!("/v1/apps/{}/keys", seg(&app)), None)
                .await?;
            if json {
                output::json(&key);
            } else {
                println!(
                    "created key {} for app {}",
                    s(&key, "id"),
                    s(&key, "app_id")
                );
                println!("  key: {}   (shown once; keep it)", s(&key, "key"));
                println!("  use it: export HERALD_API_KEY={}", s(&key, "key"));
            }
        }
        KeysCommand::List { app, page } => {
            let keys = page
                .fetch(&api, &format!("/v1/apps/{}/keys", seg(&app)))
                .await?;
            if json {
                output::json(&keys);
            } else {
                let items = keys["data"].as_array().cloned().unwrap_or_default();
                if items.is_empty() {
                    println!("no keys for app {app}");
                }
                for k in &items {
                    println!(
                        "{}  {}…  created {}",
                        s(k, "id"),
                        s(k, "prefix"),
                        time(&k["created_at"])
                    );
                }
                more_hint(&keys);
            }
        }
        KeysCommand::Rm { app, key_id } => {
            api.delete(&format!("/v1/apps/{}/keys/{}", seg(&app), seg(&key_id)))
                .await?;
            if json {
                output::json(&json!({"deleted": key_id, "app_id": app}));
            } else {
                println!("revoked key {key_id} of app {app}");
            }
        }
    }
    Ok(())
}

fn headers_map(headers: Vec<(String, String)>) -> Map<String, Value> {
    headers
        .into_iter()
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

/// The text form of a webhook.
fn print_webhook(w: &Value) {
    let state = if w["active"].as_bool() == Some(true) {
        "active".to_owned()
    } else {
        match w["disabled_reason"].as_str() {
            Some(r) => format!("disabled: {r}"),
            None => "disabled".to_owned(),
        }
    };
    println!("webhook {}  ({state})", s(w, "id"));
    println!("  url:          {}", s(w, "url"));
    println!("  events:       {}", list(w, "events"));
    println!("  object types: {}", list(w, "object_types"));
    if let Some(d) = w["description"].as_str().filter(|d| !d.is_empty()) {
        println!("  description:  {d}");
    }
    if let Some(h) = w["headers"].as_object().filter(|h| !h.is_empty()) {
        let shown: Vec<String> = h
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default()))
            .collect();
        println!("  headers:      {}", shown.join("; "));
    }
    println!("  created:      {}", time(&w["created_at"]));
    println!("  updated:      {}", time(&w["updated_at"]));
    if let Some(secret) = w["secret"].as_str() {
        println!("  secret:       {secret}   (shown once; receivers verify signatures with it)");
    }
}

fn webhook_line(w: &Value) -> String {
    format!(
        "{}  {:<8}  {}  events={}  object_types={}{}",
        s(w, "id"),
        if w["active"].as_bool() == Some(true) {
            "active"
        } else {
            "disabled"
        },
        s(w, "url"),
        list(w, "events"),
        list(w, "object_types"),
        w["description"]
            .as_str()
            .filter(|d| !d.is_empty())
            .map(|d| format!("  \"{d}\""))
            .unwrap_or_default()
    )
}

pub async fn webhooks(cmd: WebhooksCommand, settings: &Settings) -> Result<()> {
    let api = app_api(settings)?;
    let json = settings.json;
    let path = |id: &str| format!("/v1/webhooks/{}", seg(id));
    match cmd {
        WebhooksCommand::Add(a) => {
            let body = json!({
                "url": a.url,
                "events": a.events,
                "object_types": a.object_types,
                "description": a.description,
                "headers": headers_map(a.headers),
                "active": !a.disabled,
            });
            let w = api.post("/v1/webhooks", Some(&body)).await?;
            if json {
                output::json(&w);
            } else {
                println!("registered:");
                print_webhook(&w);
            }
        }
        WebhooksCommand::List(page) => {
            let ws = page.fetch(&api, "/v1/webhooks").await?;
            if json {
                output::json(&ws);
            } else {
                let items = ws["data"].as_array().cloned().unwrap_or_default();
                if items.is_empty() {
                    println!("no webhooks (herald webhooks add --url ... registers one)");
                }
                for w in &items {
                    println!("{}", webhook_line(w));
                }
                more_hint(&ws);
            }
        }
        WebhooksCommand::Get { id } => {
            let w = api.get(&path(&id), &[]).await?;
            if json {
                output::json(&w);
            } else {
                print_webhook(&w);
            }
        }
        WebhooksCommand::Update(u) => {
            let mut patch = Map::new();
            if let Some(url) = u.url {
                patch.insert("url".into(), url.into());
            }
            if let Some(events) = u.events {
                patch.insert("events".into(), events.into());
            }
            if let Some(types) = u.object_types {
                patch.insert("object_types".into(), types.into());
            }
            if let Some(d) = u.description {
                patch.insert("description".into(), d.into());
            }
            if u.clear_headers {
                patch.insert("headers".into(), json!({}));
            } else if !u.headers.is_empty() {
                patch.insert("headers".into(), Value::Object(headers_map(u.headers)));
            }
            if patch.is_empty() {
                return Err(usage(
                    "nothing to change: give at least one of --url, --events, --object-types, \
                     --description, --header, --clear-headers",
                ));
            }
            let w = api.patch(&path(&u.id), &Value::Object(patch)).await?;
            if json {
                output::json(&w);
            } else {
                println!("updated:");
                print_webhook(&w);
            }
        }
        WebhooksCommand::Rm { id } => {
            api.delete(&path(&id)).await?;
            if json {
                output::json(&json!({"deleted": id}));
            } else {
                println!("deleted webhook {id}");
            }
        }
        WebhooksCommand::Enable { id } => {
            let w = api.post(&format!("{}/enable", path(&id)), None).await?;
            if json {
                output::json(&w);
            } else {
                println!(
                    "enabled webhook {}: new events are delivered to it",
                    s(&w, "id")
                );
            }
        }
        WebhooksCommand::Disable { id } => {
            let w = api.post(&format!("{}/disable", path(&id)), None).await?;
            if json {
                output::json(&w);
            } else {
                println!(
                    "disabled webhook {}: its events are recorded as not sent until `herald webhooks enable {}`",
                    s(&w, "id"),
                    s(&w, "id")
                );
            }
        }
        WebhooksCommand::Rotate { id } => {
            let r = api
                .post(&format!("{}/secret/rotate", path(&id)), None)
                .await?;
            if json {
                output::json(&r);
            } else {
                println!("rotated the secret of webhook {id}");
                println!("  new secret: {}   (shown once)", s(&r, "secret"));
                println!(
                    "  the previous secret also signs until {}",
                    time(&r["previous_secret_expires_at"])
                );
            }
        }
        WebhooksCommand::Test { id } => {
            let r = api.post(&format!("{}/test", path(&id)), None).await?;
            let ok = r["success"].as_bool() == Some(true);
            if json {
                output::json(&r);
            } else {
                let status = r["status_code"]
                    .as_u64()
                    .map(|c| format!("HTTP {c}"))
                    .unwrap_or_else(|| "no response".into());
                let mark = if ok {
                    "✔ test delivery succeeded"
                } else {
                    "✘ test delivery FAILED"
                };
                println!(
                    "{mark}: {status} in {} ms  (webhook-id {})",
                    r["latency_ms"].as_u64().unwrap_or(0),
                    s(&r, "webhook_id")
                );
                if let Some(e) = r["error"].as_str() {
                    println!("  error: {e}");
                }
                if let Some(b) = r["response_body"].as_str().filter(|b| !b.is_empty()) {
                    println!("  response: {}", b.chars().take(300).collect::<String>());
                }
            }
            if !ok {
                return Err(Failure::Reported(EXIT_FAILED).into());
            }
        }
    }
    Ok(())
}
