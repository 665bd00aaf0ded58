//! `herald`: register webhooks, publish events, and listen for signed deliveries.
//!
//! Exit codes: 0 success, 1 failure (an AWS call, a bad argument, a listener that
//! timed out before receiving what it expected), 2 usage error (from clap).

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clap::{Args, Parser, Subcommand};
use herald_core::signing::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use herald_core::{
    AppId, Event, EventFilter, EventType, ObjectType, ObjectTypeFilter, Secret, Subscription,
    Verifier,
};
use herald_publisher::Publisher;
use herald_store::SubscriptionStore;

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald webhooks: register, publish, listen."
)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage webhooks (subscriptions) in the store.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Publish events onto the events queue.
    #[command(
        after_help = "Examples:\n  herald publish --app shop --type update --object-type user --data '{\"id\":\"42\"}'\n  echo '{\"id\":\"7\"}' | herald publish --app shop --type invoice.paid --object-type invoice"
    )]
    Publish(PublishArgs),
    /// Run a local receiver that verifies each delivery's signature and prints it.
    #[command(after_help = "Example:\n  herald listen --port 9000 --secret whsec_... --count 3")]
    Listen(ListenArgs),
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// Register a webhook; prints its id and its secret (shown only here).
    #[command(
        after_help = "Example:\n  herald webhooks add --app shop --url http://127.0.0.1:9000/hook --events update --object-types user"
    )]
    Add(AddArgs),
    /// List an app's webhooks.
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        app: String,
    },
}

#[derive(Args)]
struct StoreArgs {
    /// DynamoDB table holding subscriptions.
    #[arg(long, env = "HERALD_SUBSCRIPTIONS_TABLE")]
    table: String,
}

#[derive(Args)]
struct AddArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[arg(long)]
    app: String,
    #[arg(long)]
    url: String,
    /// Event types, comma-separated, or `*` for all.
    #[arg(long, default_value = "*", value_delimiter = ',')]
    events: Vec<String>,
    /// Object types, comma-separated; `*` or nothing for all.
    #[arg(long, default_value = "*", value_delimiter = ',')]
    object_types: Vec<String>,
    #[arg(long, default_value = "")]
    description: String,
    /// Extra header sent with each delivery, as NAME=VALUE (repeatable).
    #[arg(long = "header", value_parser = parse_header)]
    headers: Vec<(String, String)>,
}

#[derive(Args)]
struct PublishArgs {
    /// URL of the SQS events queue.
    #[arg(long, env = "HERALD_EVENTS_QUEUE_URL")]
    queue_url: String,
    #[arg(long)]
    app: String,
    #[arg(long = "type")]
    event_type: String,
    #[arg(long)]
    object_type: String,
    /// Event data as JSON; read from --data-file or stdin when absent.
    #[arg(long)]
    data: Option<String>,
    #[arg(long, conflicts_with = "data")]
    data_file: Option<std::path::PathBuf>,
}

#[derive(Args)]
struct ListenArgs {
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// Secret(s) to verify with (repeatable; any may match).
    #[arg(long = "secret", required = true)]
    secrets: Vec<String>,
    /// Status to answer with.
    #[arg(long, default_value_t = 204)]
    status: u16,
    /// Exit after this many verified deliveries.
    #[arg(long)]
    count: Option<usize>,
    /// With --count: give up (exit 1) after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
    /// Name printed in front of each delivery.
    #[arg(long, default_value = "listener")]
    name: String,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| "expected NAME=VALUE".to_owned())?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Webhooks(WebhooksCommand::Add(args)) => add_webhook(args, cli.json).await,
        Command::Webhooks(WebhooksCommand::List { store, app }) => {
            list_webhooks(store, &app, cli.json).await
        }
        Command::Publish(args) => publish(args, cli.json).await,
        Command::Listen(args) => listen(args, cli.json).await,
    }
}

async fn aws() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

async fn add_webhook(args: AddArgs, json: bool) -> Result<()> {
    let app = AppId::parse(&args.app).context("--app")?;
    let events = EventFilter::parse(&args.events).context("--events")?;
    let object_types = ObjectTypeFilter::parse(&args.object_types).context("--object-types")?;
    let mut sub = Subscription::new(app, args.url, events, object_types);
    sub.description = args.description;
    sub.headers = args.headers.into_iter().collect::<BTreeMap<_, _>>();
    let store = SubscriptionStore::new(
        aws_sdk_dynamodb::Client::new(&aws().await),
        args.store.table,
    );
    store.create(&sub).await?;
    let secret = sub.secrets[0].expose();
    if json {
        println!(
            "{}",
            serde_json::json!({"id": sub.id, "app_id": sub.app_id, "url": sub.url,
                "events": sub.events, "object_types": sub.object_types, "secret": secret})
        );
    } else {
        println!("registered webhook {}", sub.id);
        println!("  url:          {}", sub.url);
        println!("  events:       {}", sub.events.to_strings().join(", "));
        println!(
            "  object types: {}",
            sub.object_types.to_strings().join(", ")
        );
        println!("  secret:       {secret}   (shown once; keep it to verify deliveries)");
    }
    Ok(())
}

async fn list_webhooks(store: StoreArgs, app: &str, json: bool) -> Result<()> {
    let app = AppId::parse(app).context("--app")?;
    let store = SubscriptionStore::new(aws_sdk_dynamodb::Client::new(&aws().await), store.table);
    let subs = store.for_app(&app).await?;
    for s in &subs {
        if json {
            println!(
                "{}",
                serde_json::json!({"id": s.id, "url": s.url, "events": s.events,
                    "object_types": s.object_types, "active": s.active})
            );
        } else {
            println!(
                "{}  {}  events={}  object_types={}  {}",
                s.id,
                s.url,
                s.events.to_strings().join(","),
                s.object_types.to_strings().join(","),
                if s.active { "active" } else { "disabled" }
            );
        }
    }
    Ok(())
}

async fn publish(args: PublishArgs, json: bool) -> Result<()> {
    let data = match (args.data, args.data_file) {
        (Some(d), _) => d,
        (None, Some(path)) => {
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
        }
        (None, None) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading stdin")?;
            s
        }
    };
    let data: serde_json::Value = serde_json::from_str(&data).context("event data is not JSON")?;
    let event = Event::new(
        AppId::parse(&args.app).context("--app")?,
        EventType::parse(&args.event_type).context("--type")?,
        ObjectType::parse(&args.object_type).context("--object-type")?,
        data,
    );
    let publisher =
        Publisher::connect(aws_sdk_sqs::Client::new(&aws().await), args.queue_url).await?;
    let id = publisher.publish(&event).await?;
    if json {
        println!("{}", serde_json::json!({"id": id}));
    } else {
        println!(
            "published {id}  {} on {}",
            event.event_type, event.object_type
        );
    }
    Ok(())
}

struct Listener {
    verifier: Verifier,
    status: StatusCode,
    name: String,
    json: bool,
    seen: Mutex<HashSet<String>>,
    verified: tokio::sync::mpsc::UnboundedSender<()>,
}

async fn listen(args: ListenArgs, json: bool) -> Result<()> {
    let secrets = args
        .secrets
        .iter()
        .map(|s| Secret::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .context("--secret")?;
    let status = StatusCode::from_u16(args.status).context("--status")?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let state = Arc::new(Listener {
        verifier: Verifier::new(secrets),
        status,
        name: args.name,
        json,
        seen: Mutex::new(HashSet::new()),
        verified: tx,
    });
    let app = axum::Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(state);
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    if !json {
        eprintln!("listening on http://{addr}/ (answering {status})");
    }
    let server = axum::serve(listener, app);
    match args.count {
        None => server.await.context("serving")?,
        Some(count) => {
            let wait = async {
                for _ in 0..count {
                    if rx.recv().await.is_none() {
                        break;
                    }
                }
            };
            tokio::select! {
                r = server => r.context("serving")?,
                _ = wait => {},
                _ = tokio::time::sleep(Duration::from_secs(args.timeout_secs)) => {
                    bail!("timed out after {} s before receiving {count} verified deliveries", args.timeout_secs)
                }
            }
        }
    }
    Ok(())
}

async fn receive(State(l): State<Arc<Listener>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, ts, sig) = (
        header(HEADER_ID),
        header(HEADER_TIMESTAMP),
        header(HEADER_SIGNATURE),
    );
    let result = l.verifier.verify(&id, &ts, &sig, &body);
    let duplicate = !l.seen.lock().expect("lock").insert(id.clone());
    let payload: serde_json::Value =
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    if l.json {
        println!(
            "{}",
            serde_json::json!({"listener": l.name, "webhook_id": id, "verified": result.is_ok(),
                "error": result.as_ref().err().map(|e| e.to_string()), "duplicate": duplicate, "payload": payload})
        );
    } else {
        let mark = match &result {
            Ok(()) => "✔ signature verified".to_owned(),
            Err(e) => format!("✘ signature REJECTED ({e})"),
        };
        println!(
            "[{}] {mark}  {}  {} on {}  data={}{}",
            l.name,
            id,
            payload["type"].as_str().unwrap_or("?"),
            payload["object_type"].as_str().unwrap_or("?"),
            payload["data"],
            if duplicate {
                "  (duplicate webhook-id)"
            } else {
                ""
            }
        );
    }
    match result {
        Ok(()) => {
            if !duplicate {
                let _ = l.verified.send(());
            }
            l.status
        }
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}
