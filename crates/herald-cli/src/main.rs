//! `herald`: Herald's command line.
//!
//! - the local stack: `up`, `down`, `status`; the API and the worker: `serve`, `worker`;
//!   all of them at once, for development: `dev`;
//! - clients of the management API: `apps`, `keys`, `webhooks`, `publish`, `events`,
//!   `deliveries`, `tail`;
//! - straight to SQS: `inject` (raw test messages) and `redrive` (the DLQ re-driver);
//! - receiving: `listen` (a verifying receiver) and `verify` (a saved delivery).
//!
//! Settings come from flags, then `HERALD_*` variables, then the profile file (see
//! [`config`]). Exit codes are in [`failure`] and `herald --help`.

mod api;
mod config;
mod dev;
mod event_types;
mod events;
mod failure;
mod health;
mod local;
mod manage;
mod memory;
mod output;
mod queue;
mod receiver;
mod sources;
mod stack;

use std::process::ExitCode;

/// mimalloc, as the consumer's Lambda has (`herald worker` and `herald serve` run the
/// same delivery path; see `herald-consumer`'s `bin/lambda.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

use config::{GlobalArgs, Settings};
use failure::{exit_code, Failure};

const AFTER_HELP: &str = "\
Settings come from flags, then HERALD_* environment variables, then the profile file
(~/.config/herald/config.toml or --profile-file: a [default] section and [profiles.NAME]
sections chosen with --profile, keys such as api_url, api_key, admin_key,
events_queue_url), then defaults. AWS access uses the standard AWS_* variables.

Exit codes:
  0  success
  1  the operation failed (the API refused it, a signature did not verify, a timeout)
  2  usage error (bad flags, a missing setting such as the API key)
  3  could not reach the Herald API or AWS (connection refused, DNS, timeout)
  4  authentication or authorization failed (HTTP 401/403, AWS credentials)

Examples:
  herald dev                                             # everything, in one terminal
  herald up && set -a && . .run/local.env && set +a      # local AWS stack
  HERALD_ADMIN_KEY=... HERALD_API_ALLOW_HTTP=true herald serve   # the API
  HERALD_ALLOW_PRIVATE_NETWORKS=127.0.0.1/32 herald worker      # deliveries
  herald apps create --id shop && herald keys create --app shop
  herald webhooks add --url http://127.0.0.1:9000/hook --events update
  herald publish --type update --object-type user --data '{\"id\":\"42\"}'
  herald tail";

#[derive(Parser, Debug)]
#[command(
    name = "herald",
    version,
    about = "Herald webhooks: the local stack, the API and worker, webhooks, events, deliveries, re-drive and a verifying receiver.",
    after_help = AFTER_HELP,
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the local emulator and deploy the data plane; print the settings.
    #[command(after_help = stack::UP_HELP)]
    Up(stack::UpArgs),
    /// Stop the local emulator (or delete a stack).
    #[command(after_help = stack::DOWN_HELP)]
    Down(stack::DownArgs),
    /// Show the local emulator, the stack and the API.
    #[command(after_help = stack::STATUS_HELP)]
    Status(stack::StatusArgs),
    /// Run everything locally: emulator, data plane, API with console, worker.
    #[command(after_help = dev::DEV_HELP)]
    Dev(dev::DevArgs),
    /// Run the management API on this machine.
    #[command(after_help = local::SERVE_HELP)]
    Serve(local::ServeArgs),
    /// Run the local worker (the consumer) on this machine.
    #[command(after_help = local::WORKER_HELP)]
    Worker(local::WorkerArgs),
    /// Manage apps (tenants); needs the admin key.
    #[command(
        subcommand,
        after_help = "Examples:\n  herald apps create --id shop --name Shop\n  herald apps list"
    )]
    Apps(manage::AppsCommand),
    /// Manage an app's API keys; needs the admin key.
    #[command(
        subcommand,
        after_help = "Examples:\n  herald keys create --app shop\n  herald keys list --app shop"
    )]
    Keys(manage::KeysCommand),
    /// Manage the app's webhooks (endpoints and their filters).
    #[command(
        subcommand,
        after_help = "Examples:\n  herald webhooks add --url https://example.com/hooks --events update --object-types user\n  herald webhooks list\n  herald webhooks test sub_0190ab..."
    )]
    Webhooks(manage::WebhooksCommand),
    /// Manage the app's event-type catalog (descriptions and JSON Schemas of `data`).
    #[command(
        subcommand,
        after_help = "Examples:\n  herald event-types add invoice.paid --schema @invoice.schema.json\n  herald event-types list"
    )]
    EventTypes(event_types::EventTypesCommand),
    /// Create or rotate the app's secret for events' callback URLs.
    #[command(
        subcommand,
        name = "callback-secret",
        after_help = "Example:\n  herald callback-secret rotate\n  herald publish --type update --object-type order --callback-url https://example.com/cb"
    )]
    CallbackSecret(manage::CallbackSecretCommand),
    /// Manage the app's inbound sources: verified URLs that take other services'
    /// webhooks in (docs/inbound.md).
    #[command(
        subcommand,
        after_help = "Examples:\n  herald sources add --name github --auth github --secret \"$GH_SECRET\"\n  herald sources list\n  herald sources requests src_3f2a..."
    )]
    Sources(sources::SourcesCommand),
    /// Publish events through the API: from arguments, a JSON file or stdin.
    #[command(after_help = events::PUBLISH_HELP)]
    Publish(events::PublishArgs),
    /// Put raw messages on the events queue, for testing.
    #[command(after_help = queue::INJECT_HELP)]
    Inject(queue::InjectArgs),
    /// Show one event as published and where its delivery stands at each webhook.
    #[command(subcommand, after_help = events::EVENTS_HELP)]
    Events(events::EventsCommand),
    /// Show the delivery history of a webhook or of an event.
    #[command(after_help = events::DELIVERIES_HELP)]
    Deliveries(events::DeliveriesArgs),
    /// Follow new delivery attempts as they happen.
    #[command(after_help = events::TAIL_HELP)]
    Tail(events::TailArgs),
    /// Move parked deliveries from the dead-letter queue back for delivery.
    #[command(after_help = queue::REDRIVE_HELP)]
    Redrive(queue::RedriveArgs),
    /// Run a local receiver that verifies each delivery's signature and prints it.
    #[command(after_help = receiver::LISTEN_HELP)]
    Listen(receiver::ListenArgs),
    /// Check the signature of a saved delivery.
    #[command(after_help = receiver::VERIFY_HELP)]
    Verify(receiver::VerifyArgs),
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.global)?;
    for w in &settings.warnings {
        eprintln!("herald: warning: {w}");
    }
    let json = settings.json;
    match cli.command {
        Command::Up(a) => stack::up(a, &settings),
        Command::Down(a) => stack::down(a, &settings),
        Command::Status(a) => stack::status(a, &settings).await,
        Command::Dev(a) => dev::dev(a, &settings).await,
        Command::Serve(a) => local::serve(a, &settings, herald_runtime::shutdown_signal()).await,
        Command::Worker(a) => local::worker(a, &settings, herald_runtime::shutdown_signal()).await,
        Command::Apps(c) => manage::apps(c, &settings).await,
        Command::Keys(c) => manage::keys(c, &settings).await,
        Command::Webhooks(c) => manage::webhooks(c, &settings).await,
        Command::EventTypes(c) => event_types::event_types(c, &settings).await,
        Command::Sources(c) => sources::sources(c, &settings).await,
        Command::Publish(a) => events::publish(a, &settings).await,
        Command::CallbackSecret(c) => manage::callback_secret(c, &settings).await,
        Command::Inject(a) => queue::inject(a, &settings).await,
        Command::Events(c) => events::events(c, &settings).await,
        Command::Deliveries(a) => events::deliveries(a, &settings).await,
        Command::Tail(a) => events::tail(a, &settings).await,
        Command::Redrive(a) => queue::redrive(a, &settings).await,
        Command::Listen(a) => receiver::listen(a, json).await,
        Command::Verify(a) => receiver::verify(a, json),
    }
}

/// The error's chain as one message, without repeats.
fn message(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || parts.last() == Some(&text) {
            continue;
        }
        if parts.iter().any(|p| p.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::from(failure::EXIT_OK),
        Err(e) => {
            let reported = e
                .chain()
                .any(|c| matches!(c.downcast_ref::<Failure>(), Some(Failure::Reported(_))));
            if !reported {
                eprintln!("herald: {}", message(&e));
            }
            ExitCode::from(exit_code(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Every command and subcommand shows at least one example in its --help.
    #[test]
    fn every_command_has_examples() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let here = format!("{path} {}", cmd.get_name());
            let has = cmd
                .get_after_help()
                .map(|h| h.to_string().contains("Example"))
                .unwrap_or(false);
            if !has {
                missing.push(here.clone());
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" {
                    walk(sub, &here, missing);
                }
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "no examples in --help of: {missing:?}");
    }

    #[test]
    fn the_exit_codes_in_help_are_the_documented_ones() {
        use failure::*;
        for code in [
            EXIT_OK,
            EXIT_FAILED,
            EXIT_USAGE,
            EXIT_UNREACHABLE,
            EXIT_AUTH,
        ] {
            assert!(AFTER_HELP.contains(&format!("\n  {code}  ")), "{code}");
        }
    }

    #[test]
    fn messages_do_not_repeat() {
        let e: anyhow::Error = Failure::Failed("the API refused it".into()).into();
        let e = e.context("publishing");
        assert_eq!(message(&e), "publishing: the API refused it");
    }
}
