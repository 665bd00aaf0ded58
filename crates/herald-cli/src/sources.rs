//! `herald sources`: inbound sources, clients of `/v1/sources`.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use herald_api::sources::{SourceIn, SourceOut, SourcePatch, SourceRequestOut};
use herald_core::inbound::{
    ApiKeyLocation, EventTypeRule, HmacAlgorithm, HmacEncoding, SourceAuth, DEFAULT_TOLERANCE_SECS,
};
use herald_core::EventType;
use serde_json::json;

use crate::api::ApiClient;
use crate::config::Settings;
use crate::failure::usage;
use crate::manage::{more_hint, PageArgs};
use crate::output::{self, time};

/// `herald sources …`.
#[derive(Subcommand, Debug)]
pub enum SourcesCommand {
    /// Create a source; prints its id and its ingest URL.
    #[command(after_help = "Examples:\n  \
        herald sources add --name github --auth github --secret \"$GH_SECRET\"\n  \
        herald sources add --name stripe --auth stripe --secret whsec_...\n  \
        herald sources add --name erp --auth basic --username erp --password \"$PW\" --event-type order.created\n  \
        herald sources add --name legacy --auth hmac --header X-Signature --algorithm sha1 --encoding base64 --secret s --event-type-pointer /event\n  \
        herald sources add --name ci --auth api-key --key-in query --key-name token --key \"$KEY\" --event-type-header X-Event")]
    Add(AddArgs),
    /// List the app's sources (credentials masked).
    #[command(after_help = "Examples:\n  herald sources list\n  herald --json sources list --all")]
    List(PageArgs),
    /// Show one source (credentials masked).
    #[command(after_help = "Example:\n  herald sources get src_3f2a...")]
    Get {
        /// The source's id.
        id: String,
    },
    /// Change a source: only what is given changes (auth flags replace the auth).
    #[command(after_help = "Examples:\n  \
        herald sources update src_3f2a... --name github-prod\n  \
        herald sources update src_3f2a... --auth github --secret \"$NEW_SECRET\"")]
    Update(UpdateArgs),
    /// Delete a source: its URL answers 404 from then on.
    #[command(
        visible_alias = "delete",
        after_help = "Example:\n  herald sources rm src_3f2a..."
    )]
    Rm {
        /// The source's id.
        id: String,
    },
    /// The requests a source received, newest first: verified or rejected and why.
    #[command(after_help = "Examples:\n  herald sources requests src_3f2a...\n  \
        herald --json sources requests src_3f2a... --limit 5")]
    Requests {
        /// The source's id.
        id: String,
        #[command(flatten)]
        page: PageArgs,
    },
}

/// Auth modes, as `--auth` names them.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum Mode {
    /// Anyone with the URL.
    None,
    /// HTTP Basic: --username, --password.
    Basic,
    /// A key in a header or query parameter: --key-in, --key-name, --key.
    ApiKey,
    /// An HMAC of the body in a header: --header, --algorithm, --encoding, --prefix, --secret.
    Hmac,
    /// Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature): --secret whsec_...
    StandardWebhooks,
    /// GitHub (X-Hub-Signature-256): --secret.
    Github,
    /// Stripe (Stripe-Signature): --secret whsec_...
    Stripe,
    /// Shopify (X-Shopify-Hmac-Sha256): --secret.
    Shopify,
}

/// The auth settings of `add` and `update`.
#[derive(Args, Debug, Default)]
pub struct AuthArgs {
    /// The auth mode (a preset or a generic one).
    #[arg(long, value_enum)]
    pub auth: Option<Mode>,
    /// The secret of hmac and the presets (or HERALD_SOURCE_SECRET).
    #[arg(long, env = "HERALD_SOURCE_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// basic: the user name.
    #[arg(long)]
    pub username: Option<String>,
    /// basic: the password (or HERALD_SOURCE_PASSWORD).
    #[arg(long, env = "HERALD_SOURCE_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// api-key: where the key is presented.
    #[arg(long, value_parser = ["header", "query"], default_value = "header")]
    pub key_in: String,
    /// api-key: the header's or query parameter's name.
    #[arg(long)]
    pub key_name: Option<String>,
    /// api-key: the key (or HERALD_SOURCE_KEY).
    #[arg(long, env = "HERALD_SOURCE_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// hmac: the header carrying the signature.
    #[arg(long)]
    pub header: Option<String>,
    /// hmac: the hash.
    #[arg(long, value_parser = ["sha256", "sha1"], default_value = "sha256")]
    pub algorithm: String,
    /// hmac: how the signature is written.
    #[arg(long, value_parser = ["hex", "base64"], default_value = "hex")]
    pub encoding: String,
    /// hmac: text before the signature, such as `sha256=`.
    #[arg(long)]
    pub prefix: Option<String>,
    /// standard-webhooks and stripe: seconds a timestamp may be off [default: 300].
    #[arg(long, value_name = "SECS")]
    pub tolerance: Option<u32>,
}

/// How the event type is chosen (at most one).
#[derive(Args, Debug, Default)]
pub struct TypeArgs {
    /// Every event gets this type.
    #[arg(long, conflicts_with_all = ["event_type_header", "event_type_pointer"])]
    pub event_type: Option<String>,
    /// The type is this header's value (such as X-GitHub-Event).
    #[arg(long, value_name = "HEADER", conflicts_with = "event_type_pointer")]
    pub event_type_header: Option<String>,
    /// The type is the string at this JSON pointer into the body (such as /type).
    #[arg(long, value_name = "POINTER")]
    pub event_type_pointer: Option<String>,
}

/// `herald sources add`.
#[derive(Args, Debug)]
pub struct AddArgs {
    /// A name for people.
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub event_type: TypeArgs,
    /// The object type of its events [default: inbound].
    #[arg(long)]
    pub object_type: Option<String>,
}

/// `herald sources update`.
#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// The source's id.
    pub id: String,
    /// A new name.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub event_type: TypeArgs,
    /// A new object type.
    #[arg(long)]
    pub object_type: Option<String>,
}

fn need(value: Option<String>, flag: &str, mode: &str) -> Result<String> {
    value.ok_or_else(|| usage(format!("--auth {mode} needs {flag}")))
}

impl AuthArgs {
    /// The auth the flags describe, or `None` without `--auth`.
    fn build(self) -> Result<Option<SourceAuth>> {
        let Some(mode) = self.auth else {
            let stray = self.username.is_some()
                || self.key_name.is_some()
                || self.header.is_some()
                || self.prefix.is_some()
                || self.tolerance.is_some();
            if stray {
                return Err(usage(
                    "auth settings need --auth MODE (the whole auth is replaced)",
                ));
            }
            return Ok(None);
        };
        let tolerance = self.tolerance.unwrap_or(DEFAULT_TOLERANCE_SECS);
        let secret = |m: &str| need(self.secret.clone(), "--secret", m);
        Ok(Some(match mode {
            Mode::None => SourceAuth::None,
            Mode::Basic => SourceAuth::Basic {
                username: need(self.username, "--username", "basic")?,
                password: need(self.password, "--password", "basic")?,
            },
            Mode::ApiKey => SourceAuth::ApiKey {
                location: if self.key_in == "query" {
                    ApiKeyLocation::Query
                } else {
                    ApiKeyLocation::Header
                },
                name: need(self.key_name, "--key-name", "api-key")?,
                key: need(self.key, "--key", "api-key")?,
            },
            Mode::Hmac => SourceAuth::Hmac {
                header: need(self.header, "--header", "hmac")?,
                algorithm: if self.algorithm == "sha1" {
                    HmacAlgorithm::Sha1
                } else {
                    HmacAlgorithm::Sha256
                },
                encoding: if self.encoding == "base64" {
                    HmacEncoding::Base64
                } else {
                    HmacEncoding::Hex
                },
                prefix: self.prefix,
                secret: secret("hmac")?,
            },
            Mode::StandardWebhooks => SourceAuth::StandardWebhooks {
                secret: secret("standard-webhooks")?,
                tolerance_secs: tolerance,
            },
            Mode::Github => SourceAuth::Github {
                secret: secret("github")?,
            },
            Mode::Stripe => SourceAuth::Stripe {
                secret: secret("stripe")?,
                tolerance_secs: tolerance,
            },
            Mode::Shopify => SourceAuth::Shopify {
                secret: secret("shopify")?,
            },
        }))
    }
}

impl TypeArgs {
    fn build(self) -> Result<Option<EventTypeRule>> {
        Ok(
            match (
                self.event_type,
                self.event_type_header,
                self.event_type_pointer,
            ) {
                (Some(t), _, _) => Some(EventTypeRule::Fixed {
                    value: EventType::parse(&t).map_err(|e| usage(format!("--event-type: {e}")))?,
                }),
                (_, Some(name), _) => Some(EventTypeRule::Header { name }),
                (_, _, Some(pointer)) => Some(EventTypeRule::JsonPointer { pointer }),
                _ => None,
            },
        )
    }
}

/// Runs a `herald sources` command.
pub async fn sources(cmd: SourcesCommand, settings: &Settings) -> Result<()> {
    let api = ApiClient::app(settings)?;
    let json = settings.json;
    let ingest_url = |s: &SourceOut| {
        format!(
            "{}{}",
            settings.api_url().trim_end_matches('/'),
            s.ingest_path
        )
    };
    match cmd {
        SourcesCommand::Add(a) => {
            let auth = a.auth.build()?.ok_or_else(|| usage("--auth is required"))?;
            let s = api
                .create_source(&SourceIn {
                    name: a.name,
                    auth,
                    event_type: a.event_type.build()?,
                    object_type: a.object_type,
                })
                .await?;
            if json {
                output::json(&s);
            } else {
                println!("created source {} ({})", s.id, s.name);
                println!("  ingest URL: {}", ingest_url(&s));
                print_source(&s);
            }
        }
        SourcesCommand::List(page) => {
            let list = api.list_sources(&page.paging()).await?;
            if json {
                output::json(&list);
            } else {
                if list.data.is_empty() {
                    println!("no sources (herald sources add --name ... --auth ... creates one)");
                }
                for s in &list.data {
                    println!("{}  {:<18} {}", s.id, s.auth.mode(), s.name);
                }
                more_hint(&list);
            }
        }
        SourcesCommand::Get { id } => {
            let s = api.get_source(&id).await?;
            if json {
                output::json(&s);
            } else {
                println!("source {} ({})", s.id, s.name);
                println!("  ingest URL: {}", ingest_url(&s));
                print_source(&s);
            }
        }
        SourcesCommand::Update(u) => {
            let patch = SourcePatch {
                name: u.name,
                auth: u.auth.build()?,
                event_type: u.event_type.build()?,
                object_type: u.object_type,
            };
            if patch.name.is_none()
                && patch.auth.is_none()
                && patch.event_type.is_none()
                && patch.object_type.is_none()
            {
                return Err(usage(
                    "nothing to change: give --name, --auth (with its flags), an event type flag or --object-type",
                ));
            }
            let s = api.update_source(&u.id, &patch).await?;
            if json {
                output::json(&s);
            } else {
                println!("updated source {} ({})", s.id, s.name);
                print_source(&s);
            }
        }
        SourcesCommand::Rm { id } => {
            api.delete_source(&id).await?;
            if json {
                output::json(&json!({"deleted": id}));
            } else {
                println!("deleted source {id}");
            }
        }
        SourcesCommand::Requests { id, page } => {
            let list = api.source_requests(&id, &page.paging()).await?;
            if json {
                output::json(&list);
            } else {
                if list.data.is_empty() {
                    println!("no requests received (in the history retention)");
                }
                for r in &list.data {
                    println!("{}", request_line(r));
                }
                more_hint(&list);
            }
        }
    }
    Ok(())
}

fn print_source(s: &SourceOut) {
    println!(
        "  auth: {}",
        serde_json::to_string(&s.auth).unwrap_or_default()
    );
    println!(
        "  event type: {}",
        serde_json::to_string(&s.event_type).unwrap_or_default()
    );
    println!("  object type: {}", s.object_type);
}

fn request_line(r: &SourceRequestOut) -> String {
    let mut line = format!(
        "{}  {} {:<9} {:>7} B  {}",
        time(&r.received_at),
        r.status,
        r.outcome,
        r.size,
        r.content_type.as_deref().unwrap_or("-")
    );
    if let Some(e) = &r.event_id {
        line.push_str(&format!("  {e}"));
    }
    if let Some(why) = &r.reason {
        line.push_str(&format!("  ({why})"));
    }
    line
}
