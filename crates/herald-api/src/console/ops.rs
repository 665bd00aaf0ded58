//! The operator's system status: the depths of the events queue and of the
//! dead-letter queue, by state (SQS `GetQueueAttributes`, or the in-memory queues').

use axum::extract::State;
use axum::http::StatusCode;
use herald_queue::sqs::QueueCounts;
use maud::{html, Markup};

use super::auth::Signed;
use super::page::{page, respond, ConsoleResult, Nav};
use crate::state::AppState;

/// `GET /console/ops`: the operator's first page.
pub async fn status(State(state): State<AppState>, s: Signed) -> ConsoleResult {
    s.operator()?;
    let (events, dlq) = tokio::join!(state.events_queue.counts(), state.dlq.counts());
    let body = html! {
        h1 { "System status" }
        p.muted { "Approximate counts, as SQS reports them (GetQueueAttributes)." }
        div.table-wrap { table #queues {
            thead { tr { th { "Queue" } th.num { "Visible" } th.num { "In flight" } th.num { "Delayed" } th.num { "Total" } } }
            tbody {
                (row("events", "Events queue", &events))
                (row("dlq", "Dead-letter queue", &dlq))
            }
        } }
        @if dlq.as_ref().is_ok_and(|c| c.total() > 0) {
            p { a href="/console/ops/dlq" { "See the parked deliveries" } }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page("System status", Some(&s), Nav::Status, body),
    ))
}

fn row(id: &str, name: &str, counts: &Result<QueueCounts, herald_queue::QueueError>) -> Markup {
    html! {
        tr #(format!("queue-{id}")) {
            th scope="row" { (name) }
            @match counts {
                Ok(c) => {
                    td.num.visible { (c.visible) }
                    td.num { (c.in_flight) }
                    td.num { (c.delayed) }
                    td.num { (c.total()) }
                }
                Err(e) => { td.error colspan="4" { "could not read: " (e) } }
            }
        }
    }
}
