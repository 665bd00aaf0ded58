//! `herald dev`: one command starts the emulator, deploys the data plane, runs the API
//! with the console and the worker, and prints the console's URL and an admin key; the
//! key signs in to the console and calls the API; SIGINT stops everything, the
//! emulator it started included, and the command exits 0.

use std::process::Stdio;
use std::time::Duration;

use herald_testing::{console_session, free_port};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::HERALD;

/// The value after `label` on a line of the banner `herald dev` prints.
pub(crate) fn field(line: &str, label: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix(label)?;
    rest.split_whitespace().next().map(str::to_owned)
}

/// Sends SIGINT to `child` and waits up to `within` for it to exit; its status.
pub(crate) async fn interrupt(
    child: &mut tokio::process::Child,
    within: Duration,
) -> std::process::ExitStatus {
    let pid = child.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    tokio::time::timeout(within, child.wait())
        .await
        .expect("the process stopped in time")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_dev_runs_everything_and_stops_on_ctrl_c() {
    let port = free_port().unwrap();
    let mut child = tokio::process::Command::new(HERALD)
        .args([
            "dev",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--stage",
            "devtest",
        ])
        .env_remove("AWS_ENDPOINT_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = tokio::time::timeout(Duration::from_secs(180), async {
        let (mut console, mut key, mut emulator) = (None, None, None);
        while let Some(line) = lines.next_line().await.unwrap() {
            console = console.or_else(|| field(&line, "console"));
            key = key.or_else(|| field(&line, "admin key"));
            emulator = emulator.or_else(|| field(&line, "emulator"));
            if line.starts_with("Ctrl-C stops everything") {
                break;
            }
        }
        (console, key, emulator)
    })
    .await
    .expect("herald dev printed its banner within 3 minutes");
    let (console, key, emulator) = (
        banner.0.expect("the console's URL"),
        banner.1.expect("the admin key"),
        banner.2.expect("the emulator"),
    );
    assert_eq!(console, format!("http://127.0.0.1:{port}/console"));
    assert!(key.starts_with("dev-admin-"), "{key}");

    // The key signs in to the console (as the operator) and calls the API.
    let session = console_session(&console, &key).await.unwrap();
    assert!(
        !session.set_cookie.contains("Secure"),
        "http://127.0.0.1: no Secure flag: {}",
        session.set_cookie
    );
    let cookie = session.cookie;
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{console}/ops"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("System status"));
    let r = http
        .get(format!("http://127.0.0.1:{port}/v1/apps"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // SIGINT: everything stops, and the command exits 0.
    let status = interrupt(&mut child, Duration::from_secs(60)).await;
    assert!(status.success(), "{status}");
    let emulator_addr = emulator.trim_start_matches("http://");
    assert!(
        std::net::TcpStream::connect(emulator_addr).is_err(),
        "the emulator on {emulator_addr} is gone"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the API is gone"
    );
}
