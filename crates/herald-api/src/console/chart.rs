//! A bar chart of attempts and failures per hour, drawn on the server as inline SVG:
//! no chart library, nothing to run in the browser.

use maud::{html, Markup};

use crate::health::HourOut;

const WIDTH: u64 = 720;
const HEIGHT: u64 = 160;
const AXIS: u64 = 16;

/// One bar per hour (oldest first): successes stacked on failures, with the hour (UTC)
/// under every sixth bar and a text summary for screen readers.
pub fn hourly(hours: &[HourOut]) -> Markup {
    let most = hours.iter().map(|h| h.attempts).max().unwrap_or(0).max(1);
    let slot = WIDTH / (hours.len().max(1) as u64);
    let bar = slot.saturating_sub(4).max(1);
    let plot = HEIGHT - AXIS;
    let scale = |n: u64| n * plot / most;
    let total: u64 = hours.iter().map(|h| h.attempts).sum();
    let failed: u64 = hours.iter().map(|h| h.failures).sum();
    html! {
        svg.chart #chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img"
            aria-label=(format!("Attempts per hour over the last 24 hours: {total} attempts, {failed} failed; the busiest hour had {most}")) {
            @for (i, h) in hours.iter().enumerate() {
                @let x = i as u64 * slot + 2;
                @let ok = h.attempts.saturating_sub(h.failures);
                @let bad_height = scale(h.failures);
                @let ok_height = scale(ok);
                rect.bad x=(x) y=(plot - bad_height) width=(bar) height=(bad_height) {
                    title { (h.hour.format("%H:00")) ": " (h.failures) " failed" }
                }
                rect.ok x=(x) y=(plot - bad_height - ok_height) width=(bar) height=(ok_height) {
                    title { (h.hour.format("%H:00")) ": " (ok) " succeeded" }
                }
                @if i % 6 == 0 {
                    text x=(x) y=(HEIGHT - 3) { (h.hour.format("%H:00")) }
                }
            }
        }
        p.legend { span.ok { "succeeded" } span.bad { "failed" } span.muted { "per UTC hour; the tallest bar is " (most) " attempts" } }
    }
}
