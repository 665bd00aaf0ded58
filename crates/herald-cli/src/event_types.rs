//! `herald event-types`: the app's event-type catalog, through the management API.

use anyhow::Result;
use clap::Subcommand;
use herald_api::event_types::{EventTypeIn, EventTypeOut, EventTypePatch};
use serde_json::{json, Value};

use crate::api::ApiClient;
use crate::config::Settings;
use crate::failure::usage;
use crate::manage::{more_hint, PageArgs};
use crate::output::{self, time};

#[derive(Subcommand, Debug)]
pub enum EventTypesCommand {
    /// Add a type to the catalog, with a description and a JSON Schema of its `data`.
    #[command(after_help = "Examples:\n  \
        herald event-types add invoice.paid --description \"An invoice was paid\"\n  \
        herald event-types add invoice.paid --schema '{\"type\": \"object\", \"required\": [\"id\"]}'\n  \
        herald event-types add order.created --schema @order.schema.json\n\n\
        Once the app has a catalog, webhooks may only list types in it (or \"*\"), and\n\
        events of a type with a schema are refused (422) unless their data matches it.")]
    Add {
        /// The event type, as events carry it (`invoice.paid`).
        name: String,
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
        /// A JSON Schema of the events' `data`, or @FILE to read it from a file.
        #[arg(long, value_name = "JSON|@FILE")]
        schema: Option<String>,
    },
    /// List the app's catalog: each type, whether it has a schema, its description.
    #[command(
        after_help = "Examples:\n  herald event-types list\n  herald --json event-types list --all"
    )]
    List(PageArgs),
    /// Show one type with its schema.
    #[command(after_help = "Example:\n  herald event-types get invoice.paid")]
    Get {
        /// The event type.
        name: String,
    },
    /// Change a type's description or schema: only what is given changes.
    #[command(after_help = "Examples:\n  \
        herald event-types update invoice.paid --description \"Paid in full\"\n  \
        herald event-types update invoice.paid --schema @invoice.schema.json\n  \
        herald event-types update invoice.paid --no-schema")]
    Update {
        /// The event type.
        name: String,
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// A new JSON Schema, or @FILE.
        #[arg(long, value_name = "JSON|@FILE", conflicts_with = "no_schema")]
        schema: Option<String>,
        /// Remove the schema: any data goes.
        #[arg(long)]
        no_schema: bool,
    },
    /// Remove a type from the catalog (webhooks listing it keep it).
    #[command(
        visible_alias = "delete",
        after_help = "Example:\n  herald event-types rm invoice.paid"
    )]
    Rm {
        /// The event type.
        name: String,
    },
}

/// A JSON flag's value: the JSON itself, or `@FILE` for a file's content. `flag` names
/// it in errors.
pub fn json_arg(flag: &str, value: &str) -> Result<Value> {
    let text = match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| usage(format!("--{flag} @{path}: cannot read the file: {e}")))?,
        None => value.to_owned(),
    };
    serde_json::from_str(&text).map_err(|e| usage(format!("--{flag} is not valid JSON: {e}")))
}

fn print_event_type(t: &EventTypeOut) {
    println!("event type {}", t.name);
    if !t.description.is_empty() {
        println!("  description: {}", t.description);
    }
    match &t.schema {
        Some(schema) => println!(
            "  schema:      {}",
            serde_json::to_string_pretty(schema)
                .unwrap_or_default()
                .replace('\n', "\n               ")
        ),
        None => println!("  schema:      none (any data)"),
    }
    println!("  created:     {}", time(&t.created_at));
    println!("  updated:     {}", time(&t.updated_at));
}

/// Runs `herald event-types`.
pub async fn event_types(cmd: EventTypesCommand, settings: &Settings) -> Result<()> {
    let api = ApiClient::app(settings)?;
    let json = settings.json;
    match cmd {
        EventTypesCommand::Add {
            name,
            description,
            schema,
        } => {
            let input = EventTypeIn {
                name,
                description,
                schema: schema.map(|s| json_arg("schema", &s)).transpose()?,
            };
            let t = api.create_event_type(&input).await?;
            if json {
                output::json(&t);
            } else {
                println!("added:");
                print_event_type(&t);
            }
        }
        EventTypesCommand::List(page) => {
            let types = api.list_event_types(&page.paging()).await?;
            if json {
                output::json(&types);
            } else {
                if types.data.is_empty() {
                    println!(
                        "no event types: webhooks may list any type \
                         (herald event-types add NAME starts a catalog)"
                    );
                }
                let width = types.data.iter().map(|t| t.name.len()).max().unwrap_or(0);
                for t in &types.data {
                    println!(
                        "{:<width$}  {:<9}  {}",
                        t.name,
                        if t.schema.is_some() {
                            "schema"
                        } else {
                            "no schema"
                        },
                        t.description
                    );
                }
                more_hint(&types);
            }
        }
        EventTypesCommand::Get { name } => {
            let t = api.get_event_type(&name).await?;
            if json {
                output::json(&t);
            } else {
                print_event_type(&t);
            }
        }
        EventTypesCommand::Update {
            name,
            description,
            schema,
            no_schema,
        } => {
            let schema = match (schema, no_schema) {
                (Some(s), _) => Some(json_arg("schema", &s)?),
                (None, true) => Some(Value::Null),
                (None, false) => None,
            };
            if description.is_none() && schema.is_none() {
                return Err(usage(
                    "nothing to change: give --description, --schema or --no-schema",
                ));
            }
            let t = api
                .update_event_type(
                    &name,
                    &EventTypePatch {
                        description,
                        schema,
                    },
                )
                .await?;
            if json {
                output::json(&t);
            } else {
                println!("updated:");
                print_event_type(&t);
            }
        }
        EventTypesCommand::Rm { name } => {
            api.delete_event_type(&name).await?;
            if json {
                output::json(&json!({"deleted": name}));
            } else {
                println!("removed event type {name} from the catalog");
            }
        }
    }
    Ok(())
}
