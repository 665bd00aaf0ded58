//! Herald's integration tests: one binary, a module per area
//! (`cargo test -p herald-cli --test it`). Each test deploys its own stack into the
//! local AWS emulator that `make test` starts (localstack/with-emulator), with real
//! HTTP receivers on 127.0.0.1; the harness is the crate herald-testing. The `herald`
//! binary they run is the one Cargo builds for this test run, never an older build.

mod api;
mod api_fuzz;
mod callbacks;
mod catalog;
mod cli;
mod console;
mod console_ops;
mod deliveries;
mod dev;
mod dev_memory;
mod e2e;
mod faults;
mod formats;
mod health;
mod history;
mod inbound;
mod infra;
mod lambda;
mod operating;
mod operational;
mod ordered;
mod partial_publish;
mod payload_filters;
mod publisher;
mod rate_limit;
mod redrive;
mod routing;
mod secrets;
mod soak;
mod worker;

/// The `herald` binary Cargo built for this run of the tests.
const HERALD: &str = env!("CARGO_BIN_EXE_herald");

/// Verifies a delivery the way a receiver using the reference Standard Webhooks library
/// (the `standardwebhooks` crate) does, with `secret`.
fn reference_verify(
    secret: &herald_core::Secret,
    r: &herald_testing::Received,
) -> Result<(), standardwebhooks::WebhookError> {
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, r.header(name).parse().expect("a header value"));
    }
    standardwebhooks::Webhook::new(&secret.expose())?.verify(&r.body, &headers)
}

/// Checks that `herald webhooks get ID` shows `in_get` and that the line of webhook `id`
/// in `herald webhooks list` shows `in_list`.
async fn assert_webhook_shows(
    herald: &herald_testing::Herald,
    id: &str,
    in_get: &str,
    in_list: &str,
) {
    let shown = herald.run(&["webhooks", "get", id]).await.ok();
    assert!(shown.stdout.contains(in_get), "{}", shown.stdout);
    let listed = herald.run(&["webhooks", "list"]).await.ok();
    assert!(
        listed
            .stdout
            .lines()
            .any(|l| l.starts_with(id) && l.contains(in_list)),
        "{}",
        listed.stdout
    );
}
