//! `herald-redrive`: moves messages from Herald's dead-letter queue back onto the
//! events queue, filtered and rate-limited, with a dry run.
//!
//! Exit codes: 0 success; 1 failure (an AWS call failed, or some matching messages
//! could not be sent or deleted: see the report); 2 usage error (from clap).

use std::process::ExitCode;

use clap::Parser;
use herald_redriver::{RedriveOptions, RedriveReport, Redriver};

const AFTER_HELP: &str = "\
Without filters every message on the DLQ is moved, except undecodable messages whose
body was cut when they were parked (those stay, and are reported). A failed delivery
goes back as a fresh first attempt; anything else goes back as it was. Messages are
sent before they are deleted, so a crash can duplicate one (receivers dedupe on the
webhook-id header) but never lose one.

Examples:
  herald-redrive --dry-run --app shop --older-than 1h
  herald-redrive --subscription sub_0190... --max 500 --rate 20
  herald-redrive --event-type invoice.paid --newer-than 30m --json";

#[derive(Parser, Debug)]
#[command(
    name = "herald-redrive",
    version,
    about = "Move messages from Herald's dead-letter queue back onto the events queue.",
    after_help = AFTER_HELP
)]
struct Cli {
    /// URL of the dead-letter queue to move messages from.
    #[arg(long, env = "HERALD_DLQ_URL", value_name = "URL")]
    dlq_url: String,
    /// URL of the queue to move them to (the events queue).
    #[arg(long, env = "HERALD_EVENTS_QUEUE_URL", value_name = "URL")]
    queue_url: String,
    #[command(flatten)]
    flags: herald_redriver::RedriveFlags,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

impl Cli {
    fn options(&self) -> RedriveOptions {
        self.flags.options()
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let redriver = Redriver::new(aws_sdk_sqs::Client::new(&aws), &cli.dlq_url, &cli.queue_url);
    match redriver.run(&cli.options()).await {
        Err(e) => {
            eprintln!("herald-redrive: {e}");
            ExitCode::FAILURE
        }
        Ok(report) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("reports serialize")
                );
            } else {
                print!("{}", human(&report));
            }
            if report.is_complete() {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "herald-redrive: {} sends and {} deletes failed; see the report",
                    report.send_failed.len(),
                    report.delete_failed.len()
                );
                ExitCode::FAILURE
            }
        }
    }
}

/// The report as text: a summary line, every item in a dry run, and whatever did not
/// go to plan.
fn human(report: &RedriveReport) -> String {
    let items = if report.dry_run {
        report.item_lines(usize::MAX)
    } else {
        String::new()
    };
    format!("{}{items}{}", report.summary(), report.leftovers())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(
            [
                "herald-redrive",
                "--dlq-url",
                "http://dlq",
                "--queue-url",
                "http://q",
            ]
            .iter()
            .chain(args),
        )
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_become_options() {
        let cli = parse(&[
            "--dry-run",
            "--app",
            "shop",
            "--subscription",
            "sub_1",
            "--event-type",
            "invoice.paid",
            "--older-than",
            "1h",
            "--newer-than",
            "30m",
            "--max",
            "7",
            "--rate",
            "2.5",
        ])
        .unwrap();
        let opts = cli.options();
        assert!(opts.dry_run);
        assert_eq!(opts.filter.app_id.as_deref(), Some("shop"));
        assert_eq!(opts.filter.subscription_id.as_deref(), Some("sub_1"));
        assert_eq!(opts.filter.event_type.as_deref(), Some("invoice.paid"));
        assert_eq!(opts.filter.older_than, Some(chrono::Duration::hours(1)));
        assert_eq!(opts.filter.newer_than, Some(chrono::Duration::minutes(30)));
        assert_eq!(opts.max_messages, Some(7));
        assert_eq!(opts.rate_per_sec, 2.5);
        assert!(!cli.json);
    }

    #[test]
    fn defaults_and_bad_durations() {
        let opts = parse(&[]).unwrap().options();
        assert_eq!(opts, RedriveOptions::default());
        assert!(opts.filter.is_empty());
        for bad in ["1w", "soon", "-5m"] {
            assert!(parse(&["--older-than", bad]).is_err(), "{bad}");
        }
        assert_eq!(
            parse(&["--newer-than", "2d"]).unwrap().flags.newer_than,
            Some(chrono::Duration::days(2))
        );
    }
}
