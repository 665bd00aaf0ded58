//! `herald apps`, `herald keys` and `herald webhooks`: clients of the management API.

use anyhow::Result;
use clap::{Args, Subcommand};
use herald_api::apps::{AppIn, Page, PageParams};
use herald_api::recover::{RecoverIn, RecoverOut};
use herald_api::webhooks::{RotatedSecret, WebhookIn, WebhookOut, WebhookPatch};
use serde_json::{json, Value};

use crate::api::{ApiClient, Paging};
use crate::config::Settings;
use crate::event_types::json_arg;
use crate::events::flag_time;
use crate::failure::{usage, Failure, EXIT_FAILED};
use crate::health;
use crate::output::{self, list, parse_kv, time};

/// Paging of list commands.
#[derive(Args, Debug, Clone, Default)]
pub struct PageArgs {
    /// Items per page, 1-250 [default: 50].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=250))]
    pub limit: Option<i32>,
    /// Start at this page (the `next_cursor` of the previous one).
    #[arg(long, value_name = "CURSOR", conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Fetch every page.
    #[arg(long)]
    pub all: bool,
}

impl PageArgs {
    /// One page, or every page with `--all` (as one page without a cursor).
    pub fn paging(&self) -> Paging {
        Paging {
            params: PageParams {
                limit: self.limit,
                cursor: self.cursor.clone(),
            },
            all: self.all,
        }
    }
}

/// Tells a reader of text output how to get the next page.
pub fn more_hint<T>(page: &Page<T>) {
    if let Some(c) = &page.next_cursor {
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

/// Prints a rotated secret (shown once) of `what`, as JSON or text.
fn print_rotated(r: &RotatedSecret, what: &str, json: bool) {
    if json {
        output::json(r);
    } else {
        println!("rotated {what}");
        println!("  new secret: {}   (shown once)", r.secret);
        println!(
            "  the previous secret also signs until {}",
            time(&r.previous_secret_expires_at)
        );
    }
}

/// `herald callback-secret`: the app's secret for callback URLs.
#[derive(Subcommand, Debug)]
pub enum CallbackSecretCommand {
    /// Create or rotate the secret that signs deliveries to events' callback URLs
    /// (shown once; the previous one also signs for the rotation window).
    #[command(
        after_help = "Examples:\n  herald callback-secret rotate\n  herald --json callback-secret rotate"
    )]
    Rotate,
}

/// Runs `herald callback-secret`.
pub async fn callback_secret(cmd: CallbackSecretCommand, settings: &Settings) -> Result<()> {
    let api = ApiClient::app(settings)?;
    match cmd {
        CallbackSecretCommand::Rotate => {
            let r = api.rotate_callback_secret().await?;
            print_rotated(&r, "the app's callback secret", settings.json);
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// Register a webhook; prints its id and its secret (shown only here).
    #[command(after_help = "Examples:\n  \
        herald webhooks add --url https://example.com/hooks --events update --object-types user\n  \
        herald webhooks add --url https://example.com/all --events '*' --header 'X-Team=billing'\n  \
        herald webhooks add --url https://example.com/slow --events update --rate-limit 10\n  \
        herald webhooks add --url https://example.com/para --events update --format para\n  \
        herald webhooks add --url https://example.com/gh --format standard --content-type form\n  \
        herald webhooks add --url https://example.com/eu --events invoice.paid --filter '{\"path\": \"/data/region\", \"eq\": \"eu\"}'\n  \
        herald --json webhooks add --url http://127.0.0.1:9000/hook | jq -r .secret")]
    Add(AddArgs),
    /// List the app's webhooks with their endpoint health (last 24 h: success rate of
    /// the attempts, p95 latency; failed attempts since the last success).
    #[command(
        after_help = "Examples:\n  herald webhooks list\n  herald --json webhooks list --all"
    )]
    List(PageArgs),
    /// Show one webhook and its endpoint health.
    #[command(after_help = "Examples:\n  herald webhooks get sub_0190ab...\n  \
        herald --json webhooks get sub_0190ab... | jq .health")]
    Get {
        /// The webhook's id.
        id: String,
    },
    /// Change a webhook: only the fields given change.
    #[command(after_help = "Examples:\n  \
        herald webhooks update sub_0190ab... --events update,delete\n  \
        herald webhooks update sub_0190ab... --url https://example.com/v2 --description \"v2 endpoint\"\n  \
        herald webhooks update sub_0190ab... --clear-headers\n  \
        herald webhooks update sub_0190ab... --rate-limit 50\n  \
        herald webhooks update sub_0190ab... --format para --content-type json\n  \
        herald webhooks update sub_0190ab... --filter @filter.json\n  \
        herald webhooks update sub_0190ab... --no-filter\n  \
        herald webhooks update sub_0190ab... --no-rate-limit")]
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
    /// Send again every delivery to a webhook that failed for good or was not sent in
    /// a time window and has not succeeded since (once each, however often it runs).
    #[command(after_help = "Examples:\n  \
        herald webhooks recover sub_0190ab... --since 2h\n  \
        herald webhooks recover sub_0190ab... --since 2026-12-01T10:00:00Z --until 2026-12-01T11:00:00Z\n\n\
        Deliveries still being retried are left to their retry. The webhook must be enabled.\n\
        Dead letters of the recovered deliveries stay on the dead-letter queue: do not\n\
        re-drive them afterwards (see docs/delivery.md).")]
    Recover {
        /// The webhook's id.
        id: String,
        /// Failures since this time: RFC 3339 or a duration ago (90m, 2h, 7d).
        #[arg(long, value_name = "TIME")]
        since: String,
        /// … and before this time (same forms) [default: now].
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
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
    /// At most N deliveries start per second (1 to 10000); the excess waits on the
    /// queue. No limit when absent.
    #[arg(long, value_name = "N")]
    rate_limit: Option<u64>,
    /// Deliver the events of one --ordering-key in publish order, one at a time,
    /// retries included (docs/delivery.md, "Ordered delivery").
    #[arg(long)]
    ordered: bool,
    #[command(flatten)]
    shape: ShapeArgs,
    /// A payload filter (JSON, or @FILE): conditions on JSON pointers into the event,
    /// such as {"path": "/data/region", "eq": "eu"}, combined with all/any
    /// (docs/delivery.md, "Payload filters").
    #[arg(long, value_name = "JSON|@FILE")]
    filter: Option<String>,
}

/// The payload format and content type flags of `webhooks add` and `update`.
#[derive(Args, Debug, Default)]
pub struct ShapeArgs {
    /// The payload format: `standard` (Standard Webhooks) or `para` (what Para's
    /// dispatcher sends, signed in X-Webhook-Signature) [default: standard].
    #[arg(long, value_name = "FORMAT", value_parser = herald_core::PayloadFormat::NAMES)]
    format: Option<String>,
    /// `json` (the payload is the body) or `form` (`payload=` and the payload
    /// URL-encoded; Para's urlEncoded) [default: the format's: json for standard, form
    /// for para].
    #[arg(long, value_name = "TYPE", value_parser = herald_core::ContentType::NAMES)]
    content_type: Option<String>,
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
    /// At most N deliveries start per second (1 to 10000); the excess waits on the queue.
    #[arg(long, value_name = "N", conflicts_with = "no_rate_limit")]
    rate_limit: Option<u64>,
    /// Remove the rate limit.
    #[arg(long)]
    no_rate_limit: bool,
    /// Turn ordered delivery per --ordering-key on (true) or off (false).
    #[arg(long, value_name = "BOOL")]
    ordered: Option<bool>,
    #[command(flatten)]
    shape: ShapeArgs,
    /// A new payload filter (JSON, or @FILE).
    #[arg(long, value_name = "JSON|@FILE", conflicts_with = "no_filter")]
    filter: Option<String>,
    /// Remove the payload filter.
    #[arg(long)]
    no_filter: bool,
}

/// Runs `herald apps`.
pub async fn apps(cmd: AppsCommand, settings: &Settings) -> Result<()> {
    let api = ApiClient::admin(settings)?;
    let json = settings.json;
    match cmd {
        AppsCommand::Create { id, name } => {
            let name = name
                .or_else(|| id.clone())
                .ok_or_else(|| usage("give the app an --id or a --name (or both)"))?;
            let app = api.create_app(&AppIn { id, name }).await?;
            if json {
                output::json(&app);
            } else {
                println!("created app {}  ({})", app.id, app.name);
                println!(
                    "  next: herald keys create --app {}   (an API key for its webhooks and events)",
                    app.id
                );
            }
        }
        AppsCommand::List(page) => {
            let apps = api.list_apps(&page.paging()).await?;
            if json {
                output::json(&apps);
            } else {
                if apps.data.is_empty() {
                    println!("no apps");
                }
                for a in &apps.data {
                    println!("{}  {}  created {}", a.id, a.name, time(&a.created_at));
                }
                more_hint(&apps);
            }
        }
        AppsCommand::Get { id } => {
            let app = api.get_app(&id).await?;
            if json {
                output::json(&app);
            } else {
                println!("app {}", app.id);
                println!("  name:    {}", app.name);
                println!("  created: {}", time(&app.created_at));
            }
        }
        AppsCommand::Rm { id } => {
            api.delete_app(&id).await?;
            if json {
                output::json(&json!({"deleted": id}));
            } else {
                println!("deleted app {id} and its webhooks");
            }
        }
    }
    Ok(())
}

/// Runs `herald keys`.
pub async fn keys(cmd: KeysCommand, settings: &Settings) -> Result<()> {
    let api = ApiClient::admin(settings)?;
    let json = settings.json;
    match cmd {
        KeysCommand::Create { app } => {
            let key = api.create_key(&app).await?;
            if json {
                output::json(&key);
            } else {
                let secret = key.key.as_deref().unwrap_or("-");
                println!("created key {} for app {}", key.id, key.app_id);
                println!("  key: {secret}   (shown once; keep it)");
                println!("  use it: export HERALD_API_KEY={secret}");
            }
        }
        KeysCommand::List { app, page } => {
            let keys = api.list_keys(&app, &page.paging()).await?;
            if json {
                output::json(&keys);
            } else {
                if keys.data.is_empty() {
                    println!("no keys for app {app}");
                }
                for k in &keys.data {
                    println!("{}  {}…  created {}", k.id, k.prefix, time(&k.created_at));
                }
                more_hint(&keys);
            }
        }
        KeysCommand::Rm { app, key_id } => {
            api.delete_key(&app, &key_id).await?;
            if json {
                output::json(&json!({"deleted": key_id, "app_id": app}));
            } else {
                println!("revoked key {key_id} of app {app}");
            }
        }
    }
    Ok(())
}

/// The text form of a webhook.
fn print_webhook(w: &WebhookOut) {
    let state = match (w.active, &w.disabled_reason) {
        (true, _) => "active".to_owned(),
        (false, Some(r)) => format!("disabled: {r}"),
        (false, None) => "disabled".to_owned(),
    };
    println!("webhook {}  ({state})", w.id);
    println!("  url:          {}", w.url);
    println!("  events:       {}", list(&w.events));
    println!("  object types: {}", list(&w.object_types));
    if let Some(limit) = w.rate_limit {
        println!("  rate limit:   {limit} deliveries/s");
    }
    println!("  format:       {}, {}", w.format, w.content_type);
    if let Some(filter) = &w.filter {
        println!("  filter:       {filter}");
    }
    if w.ordered {
        println!("  ordered:      per ordering key");
    }
    if !w.description.is_empty() {
        println!("  description:  {}", w.description);
    }
    if !w.headers.is_empty() {
        let shown: Vec<String> = w.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!("  headers:      {}", shown.join("; "));
    }
    println!("  created:      {}", time(&w.created_at));
    println!("  updated:      {}", time(&w.updated_at));
    if let Some(secret) = &w.secret {
        println!("  secret:       {secret}   (shown once; receivers verify signatures with it)");
    }
    for line in w.health.iter().flat_map(health::lines) {
        println!("{line}");
    }
}

fn webhook_line(w: &WebhookOut) -> String {
    format!(
        "{}  {:<8}  {}  events={}  object_types={}{}{}{}{}{}{}",
        w.id,
        if w.active { "active" } else { "disabled" },
        w.url,
        list(&w.events),
        list(&w.object_types),
        if (w.format.as_str(), w.content_type.as_str()) == ("standard", "json") {
            String::new()
        } else {
            format!("  format={}/{}", w.format, w.content_type)
        },
        w.rate_limit
            .map(|n| format!("  rate_limit={n}/s"))
            .unwrap_or_default(),
        w.filter
            .as_ref()
            .map(|f| format!("  filter={f}"))
            .unwrap_or_default(),
        if w.ordered { "  ordered" } else { "" },
        w.health
            .as_ref()
            .map_or_else(String::new, |h| format!("  {}", health::columns(h))),
        if w.description.is_empty() {
            String::new()
        } else {
            format!("  \"{}\"", w.description)
        }
    )
}

/// Runs `herald webhooks`.
pub async fn webhooks(cmd: WebhooksCommand, settings: &Settings) -> Result<()> {
    let api = ApiClient::app(settings)?;
    let json = settings.json;
    match cmd {
        WebhooksCommand::Add(a) => {
            let w = api
                .create_webhook(&WebhookIn {
                    url: a.url,
                    events: a.events,
                    object_types: a.object_types,
                    description: a.description,
                    headers: a.headers.into_iter().collect(),
                    active: Some(!a.disabled),
                    rate_limit: a.rate_limit.map(Value::from),
                    format: a.shape.format,
                    content_type: a.shape.content_type,
                    filter: a.filter.map(|f| json_arg("filter", &f)).transpose()?,
                    ordered: a.ordered.then_some(true),
                })
                .await?;
            if json {
                output::json(&w);
            } else {
                println!("registered:");
                print_webhook(&w);
            }
        }
        WebhooksCommand::List(page) => {
            let ws = api.list_webhooks(&page.paging()).await?;
            if json {
                output::json(&ws);
            } else {
                if ws.data.is_empty() {
                    println!("no webhooks (herald webhooks add --url ... registers one)");
                }
                for w in &ws.data {
                    println!("{}", webhook_line(w));
                }
                more_hint(&ws);
            }
        }
        WebhooksCommand::Get { id } => {
            let w = api.get_webhook(&id).await?;
            if json {
                output::json(&w);
            } else {
                print_webhook(&w);
            }
        }
        WebhooksCommand::Update(u) => {
            let headers = if u.clear_headers {
                Some(Default::default())
            } else if u.headers.is_empty() {
                None
            } else {
                Some(u.headers.into_iter().collect())
            };
            let patch = WebhookPatch {
                url: u.url,
                events: u.events,
                object_types: u.object_types,
                description: u.description,
                headers,
                active: None,
                rate_limit: match (u.rate_limit, u.no_rate_limit) {
                    (Some(n), _) => Some(Value::from(n)),
                    (None, true) => Some(Value::Null),
                    (None, false) => None,
                },
                format: u.shape.format,
                content_type: u.shape.content_type,
                filter: match (u.filter, u.no_filter) {
                    (Some(f), _) => Some(json_arg("filter", &f)?),
                    (None, true) => Some(Value::Null),
                    (None, false) => None,
                },
                ordered: u.ordered,
            };
            if patch.url.is_none()
                && patch.events.is_none()
                && patch.object_types.is_none()
                && patch.description.is_none()
                && patch.headers.is_none()
                && patch.rate_limit.is_none()
                && patch.format.is_none()
                && patch.content_type.is_none()
                && patch.filter.is_none()
                && patch.ordered.is_none()
            {
                return Err(usage(
                    "nothing to change: give at least one of --url, --events, --object-types, \
                     --description, --header, --clear-headers, --rate-limit, --no-rate-limit, \
                     --format, --content-type, --filter, --no-filter, --ordered",
                ));
            }
            let w = api.update_webhook(&u.id, &patch).await?;
            if json {
                output::json(&w);
            } else {
                println!("updated:");
                print_webhook(&w);
            }
        }
        WebhooksCommand::Rm { id } => {
            api.delete_webhook(&id).await?;
            if json {
                output::json(&json!({"deleted": id}));
            } else {
                println!("deleted webhook {id}");
            }
        }
        WebhooksCommand::Enable { id } => {
            let w = api.enable_webhook(&id).await?;
            if json {
                output::json(&w);
            } else {
                println!("enabled webhook {}: new events are delivered to it", w.id);
            }
        }
        WebhooksCommand::Disable { id } => {
            let w = api.disable_webhook(&id).await?;
            if json {
                output::json(&w);
            } else {
                println!(
                    "disabled webhook {}: its events are recorded as not sent until `herald webhooks enable {}`",
                    w.id, w.id
                );
            }
        }
        WebhooksCommand::Rotate { id } => {
            let r = api.rotate_secret(&id).await?;
            print_rotated(&r, &format!("the secret of webhook {id}"), json);
        }
        WebhooksCommand::Recover { id, since, until } => {
            let now = chrono::Utc::now();
            let mut input = RecoverIn {
                since: flag_time("since", &Some(since), now)?.unwrap_or_default(),
                until: flag_time("until", &until, now)?,
                cursor: None,
            };
            let mut total = RecoverOut::default();
            loop {
                let out = api.recover(&id, &input).await?;
                total.queued += out.queued;
                total.already_queued += out.already_queued;
                total.retrying += out.retrying;
                total.succeeded_since += out.succeeded_since;
                total.expired += out.expired;
                total.event_ids.extend(out.event_ids);
                match out.next_cursor {
                    Some(c) => input.cursor = Some(c),
                    None => break,
                }
            }
            if json {
                output::json(&total);
            } else {
                println!(
                    "webhook {id}: {} deliveries queued again; {} queued already by an earlier recovery, \
                     {} still being retried, {} succeeded since, {} past the history retention",
                    total.queued,
                    total.already_queued,
                    total.retrying,
                    total.succeeded_since,
                    total.expired
                );
            }
        }
        WebhooksCommand::Test { id } => {
            let r = api.test_webhook(&id).await?;
            if json {
                output::json(&r);
            } else {
                let status = r
                    .status_code
                    .map(|c| format!("HTTP {c}"))
                    .unwrap_or_else(|| "no response".into());
                let mark = if r.success {
                    "✔ test delivery succeeded"
                } else {
                    "✘ test delivery FAILED"
                };
                println!(
                    "{mark}: {status} in {} ms  (webhook-id {})",
                    r.latency_ms, r.webhook_id
                );
                if let Some(e) = &r.error {
                    println!("  error: {e}");
                }
                if !r.response_body.is_empty() {
                    let shown: String = r.response_body.chars().take(300).collect();
                    println!("  response: {shown}");
                }
            }
            if !r.success {
                return Err(Failure::Reported(EXIT_FAILED).into());
            }
        }
    }
    Ok(())
}
