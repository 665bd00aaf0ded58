//! The `herald` command line, the binary Cargo built for this run, against the emulator: the real
//! `herald serve` and `herald worker` as child processes, the management commands
//! through the API (text and `--json`), publishing from arguments, a file and stdin,
//! the delivery history and `tail`, raw injection, a re-drive dry run, the listen and
//! verify round trip, the local-stack commands, and the documented exit codes.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use herald_testing::{
    aws, queue_depth, wait_for, wait_until, Herald, Receiver, Stack, WorkerProcess, ADMIN_KEY,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use crate::HERALD;

fn free_port() -> u16 {
    herald_testing::free_port().expect("a free port")
}

/// A scratch directory, removed when dropped.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("herald-cli-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write scratch file");
        p.to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `herald serve` as a child process on a free port, killed when dropped.
pub(crate) struct Serve {
    _child: Child,
    pub(crate) url: String,
}

impl Serve {
    async fn start(herald: &Herald) -> Result<Self> {
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let mut child = herald
                .with("HERALD_ADMIN_KEY", ADMIN_KEY)
                .with("HERALD_API_ALLOW_HTTP", "true")
                .with("HERALD_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32")
                .command(&["serve", "--addr", &addr])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("spawning herald serve")?;
            let url = format!("http://{addr}");
            let client = reqwest::Client::new();
            // Until it answers on /healthz, or exits (the port was taken: try another).
            let up = wait_until(Duration::from_secs(30), || {
                let exited = !matches!(child.try_wait(), Ok(None));
                let health = client.get(format!("{url}/healthz")).send();
                async move { exited || health.await.is_ok_and(|r| r.status().is_success()) }
            })
            .await;
            match child.try_wait()? {
                None if up => return Ok(Self { _child: child, url }),
                None => last = "no answer on /healthz within 30 s".into(),
                Some(status) => {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        use tokio::io::AsyncReadExt;
                        let _ = e.read_to_string(&mut err).await;
                    }
                    last = format!("herald serve exited with {status}: {err}");
                }
            }
        }
        bail!("herald serve did not come up: {last}")
    }
}

/// `herald worker` as a child process, killed when dropped.
fn worker(herald: &Herald) -> WorkerProcess {
    WorkerProcess::spawn(herald, &[]).expect("spawn herald worker")
}

/// Reads lines from a child's pipe until one contains `needle`.
pub(crate) async fn wait_for_line<R: tokio::io::AsyncRead + Unpin>(
    lines: &mut tokio::io::Lines<BufReader<R>>,
    needle: &str,
    timeout: Duration,
) -> Result<String> {
    let found = tokio::time::timeout(timeout, async {
        while let Some(line) = lines.next_line().await? {
            println!("  | {line}");
            if line.contains(needle) {
                return Ok::<_, anyhow::Error>(Some(line));
            }
        }
        Ok(None)
    })
    .await
    .with_context(|| format!("no line with {needle:?} within {timeout:?}"))??;
    found.with_context(|| format!("output ended without a line with {needle:?}"))
}

/// A stack, `herald serve` on it, an app `shop` and its key, made with the CLI.
pub(crate) async fn api_setup(test: &str) -> Result<(Stack, Scratch, Serve, Herald)> {
    let stack = Stack::deploy(test)?;
    let scratch = Scratch::new(test);
    let base = Herald::new(HERALD, &stack, &scratch.path("xdg"));
    let serve = Serve::start(&base).await?;
    let admin = base
        .with("HERALD_API_URL", &serve.url)
        .with("HERALD_ADMIN_KEY", ADMIN_KEY);
    let created = admin
        .run(&[
            "--json", "apps", "create", "--id", "shop", "--name", "The shop",
        ])
        .await
        .ok();
    assert_eq!(created.json()["id"], "shop");
    let key = admin
        .run(&["--json", "keys", "create", "--app", "shop"])
        .await
        .ok()
        .json();
    let key = key["key"].as_str().expect("the key, shown once").to_owned();
    let app = base
        .with("HERALD_API_URL", &serve.url)
        .with("HERALD_API_KEY", &key);
    Ok((stack, scratch, serve, app))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn help_and_usage_errors() {
    let scratch = Scratch::new("help");
    let herald =
        Herald::bare(HERALD).with("XDG_CONFIG_HOME", &scratch.path("xdg").to_string_lossy());
    let help = herald.run(&["--help"]).await.ok();
    for word in [
        "Exit codes",
        "webhooks",
        "sources",
        "redrive",
        "verify",
        "Examples",
    ] {
        assert!(
            help.stdout.contains(word),
            "--help lacks {word}: {}",
            help.stdout
        );
    }
    for cmd in [
        &["webhooks", "add", "--help"][..],
        &["sources", "add", "--help"],
        &["inject", "--help"],
        &["redrive", "--help"],
        &["tail", "--help"],
        &["verify", "--help"],
    ] {
        let out = herald.run(cmd).await.ok();
        assert!(out.stdout.contains("Example"), "{cmd:?}: {}", out.stdout);
    }
    // Usage errors exit with 2: clap's, and a missing setting.
    assert_eq!(herald.run(&["webhooks", "add"]).await.code, 2);
    assert_eq!(herald.run(&["webhooks", "list", "--bogus"]).await.code, 2);
    assert_eq!(herald.run(&["frobnicate"]).await.code, 2);
    let no_key = herald.run(&["webhooks", "list"]).await;
    assert_eq!(no_key.code, 2, "{no_key:#?}");
    assert!(no_key.stderr.contains("HERALD_API_KEY"), "{no_key:#?}");
    let no_queue = herald.run(&["inject", "--body", "x"]).await;
    assert_eq!(no_queue.code, 2, "{no_queue:#?}");
    assert!(no_queue.stderr.contains("HERALD_EVENTS_QUEUE_URL"));
    let missing_profile = herald.run(&["--profile", "nope", "webhooks", "list"]).await;
    assert_eq!(missing_profile.code, 2, "{missing_profile:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_management_through_the_api_and_exit_codes() -> Result<()> {
    let (stack, scratch, serve, herald) = api_setup("cli-webhooks").await?;
    let receiver = Receiver::ok().await;

    // add: JSON carries the secret once; text names what was registered.
    let added = herald
        .run(&[
            "--json",
            "webhooks",
            "add",
            "--url",
            &receiver.url(),
            "--events",
            "update,delete",
            "--object-types",
            "user",
            "--description",
            "user changes",
            "--header",
            "X-Team=billing",
        ])
        .await
        .ok()
        .json();
    let id = added["id"].as_str().context("webhook id")?.to_owned();
    assert!(added["secret"]
        .as_str()
        .unwrap_or_default()
        .starts_with("whsec_"));
    assert_eq!(added["events"], serde_json::json!(["delete", "update"]));
    assert_eq!(added["headers"]["X-Team"], "billing");
    let text = herald
        .run(&["webhooks", "add", "--url", &receiver.url(), "--events", "*"])
        .await
        .ok();
    for word in ["registered", "secret:", "whsec_", "events:       *"] {
        assert!(
            text.stdout.contains(word),
            "add lacks {word}: {}",
            text.stdout
        );
    }

    // list and get.
    let listed = herald
        .run(&["--json", "webhooks", "list"])
        .await
        .ok()
        .json();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2));
    let listed_text = herald.run(&["webhooks", "list"]).await.ok();
    assert!(listed_text.stdout.contains(&id) && listed_text.stdout.contains("active"));
    let got = herald
        .run(&["--json", "webhooks", "get", &id])
        .await
        .ok()
        .json();
    assert_eq!(got["description"], "user changes");
    assert!(got.get("secret").is_none(), "the secret is shown only once");

    // update, disable, enable.
    let updated = herald
        .run(&[
            "--json",
            "webhooks",
            "update",
            &id,
            "--events",
            "create",
            "--description",
            "creations",
        ])
        .await
        .ok()
        .json();
    assert_eq!(updated["events"], serde_json::json!(["create"]));
    assert_eq!(updated["description"], "creations");
    assert_eq!(updated["object_types"], serde_json::json!(["user"]));
    let disabled = herald
        .run(&["--json", "webhooks", "disable", &id])
        .await
        .ok()
        .json();
    assert_eq!(disabled["active"], false);
    let text = herald.run(&["webhooks", "get", &id]).await.ok();
    assert!(text.stdout.contains("disabled"), "{}", text.stdout);
    let enabled = herald.run(&["webhooks", "enable", &id]).await.ok();
    assert!(enabled.stdout.contains("enabled"), "{}", enabled.stdout);
    assert_eq!(
        herald
            .run(&["--json", "webhooks", "get", &id])
            .await
            .ok()
            .json()["active"],
        true
    );

    // rotate: a new secret; the old one keeps signing for the window.
    let rotated = herald
        .run(&["--json", "webhooks", "rotate", &id])
        .await
        .ok()
        .json();
    assert_ne!(rotated["secret"], added["secret"]);
    assert!(rotated["previous_secret_expires_at"].is_string());

    // test: a real signed ping to the receiver; exit 1 when the endpoint fails.
    let pinged = herald.run(&["webhooks", "test", &id]).await.ok();
    assert!(pinged.stdout.contains("succeeded"), "{}", pinged.stdout);
    assert_eq!(receiver.count(), 1);
    let dead = herald
        .run(&[
            "--json",
            "webhooks",
            "add",
            "--url",
            &format!("http://127.0.0.1:{}/gone", free_port()),
        ])
        .await
        .ok()
        .json();
    let dead_id = dead["id"].as_str().context("id")?;
    let failed = herald.run(&["--json", "webhooks", "test", dead_id]).await;
    assert_eq!(failed.code, 1, "{failed:#?}");
    assert_eq!(failed.json()["success"], false);

    // rm, then the webhook is unknown: exit 1 with the API's message.
    let removed = herald.run(&["webhooks", "rm", &id]).await.ok();
    assert!(removed.stdout.contains("deleted"));
    let unknown = herald.run(&["webhooks", "get", &id]).await;
    assert_eq!(unknown.code, 1, "{unknown:#?}");
    assert!(
        unknown.stderr.contains("404") && unknown.stderr.contains("not found"),
        "{unknown:#?}"
    );

    // Exit codes: unreachable API 3, bad key 4, app key on an admin route 4, bad flags 2.
    let port = free_port();
    let unreachable = herald
        .with("HERALD_API_URL", &format!("http://127.0.0.1:{port}"))
        .run(&["webhooks", "list"])
        .await;
    assert_eq!(unreachable.code, 3, "{unreachable:#?}");
    assert!(
        unreachable.stderr.contains("could not reach"),
        "{unreachable:#?}"
    );
    let bad_key = herald
        .run(&["--api-key", "hk_not_a_key", "webhooks", "list"])
        .await;
    assert_eq!(bad_key.code, 4, "{bad_key:#?}");
    assert!(bad_key.stderr.contains("401"), "{bad_key:#?}");
    let forbidden = herald.run(&["apps", "list"]).await;
    assert_eq!(forbidden.code, 4, "{forbidden:#?}");
    assert_eq!(herald.run(&["webhooks", "update", dead_id]).await.code, 2);
    assert_eq!(herald.run(&["webhooks", "add", "--url"]).await.code, 2);
    let invalid = herald
        .run(&["webhooks", "add", "--url", "ftp://example.com"])
        .await;
    assert_eq!(invalid.code, 1, "{invalid:#?}");
    assert!(invalid.stderr.contains("422"), "{invalid:#?}");

    // apps and keys, admin side, text output.
    let admin = herald.with("HERALD_ADMIN_KEY", ADMIN_KEY);
    let apps = admin.run(&["apps", "list"]).await.ok();
    assert!(apps.stdout.contains("shop"), "{}", apps.stdout);
    let keys = admin
        .run(&["--json", "keys", "list", "--app", "shop"])
        .await
        .ok()
        .json();
    assert_eq!(keys["data"].as_array().map(Vec::len), Some(1));
    assert!(keys["data"][0].get("key").is_none());

    // A profile file: flag > env > profile > default.
    let key = herald
        .env
        .iter()
        .find(|(k, _)| k == "HERALD_API_KEY")
        .map(|(_, v)| v.clone())
        .context("key")?;
    let profile = scratch.write(
        "profiles.toml",
        &format!(
            "[default]\napi_url = \"http://127.0.0.1:{port}\"\napi_key = \"hk_wrong\"\n\n\
             [profiles.local]\napi_url = \"{}\"\napi_key = \"{key}\"\n",
            serve.url
        ),
    );
    let bare =
        Herald::new(HERALD, &stack, &scratch.path("xdg")).with("HERALD_PROFILE_FILE", &profile);
    let via_profile = bare
        .run(&["--profile", "local", "--json", "webhooks", "list"])
        .await
        .ok();
    assert_eq!(via_profile.json()["data"].as_array().map(Vec::len), Some(2));
    // The default section points at nothing: 3; the env overrides it: fine.
    assert_eq!(bare.run(&["webhooks", "list"]).await.code, 3);
    bare.with("HERALD_API_URL", &serve.url)
        .with("HERALD_API_KEY", &key)
        .run(&["webhooks", "list"])
        .await
        .ok();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publish_from_args_file_and_stdin_then_deliveries_and_tail() -> Result<()> {
    let (_stack, scratch, _serve, herald) = api_setup("cli-publish").await?;
    let receiver = Receiver::ok().await;
    let hook = herald
        .run(&[
            "--json",
            "webhooks",
            "add",
            "--url",
            &receiver.url(),
            "--events",
            "*",
        ])
        .await
        .ok()
        .json();
    let hook_id = hook["id"].as_str().context("id")?.to_owned();
    let _worker = worker(&herald);

    // tail first, so it sees the attempts that follow.
    let mut tail = herald.spawn(&["tail", "--interval", "0.5", "--for", "60"]);
    let mut tail_err = BufReader::new(tail.stderr.take().context("stderr")?).lines();
    let mut tail_out = BufReader::new(tail.stdout.take().context("stdout")?).lines();
    wait_for_line(&mut tail_err, "following", Duration::from_secs(30)).await?;

    // From arguments.
    let one = herald
        .run(&[
            "--json",
            "publish",
            "--type",
            "update",
            "--object-type",
            "user",
            "--data",
            r#"{"id":"u1","name":"Ada"}"#,
        ])
        .await
        .ok()
        .json();
    let first = one["ids"][0].as_str().context("an event id")?.to_owned();
    assert!(first.starts_with("evt_"));
    // From a file: a list of events, text output.
    let file = scratch.write(
        "events.json",
        r#"[{"type":"create","object_type":"user","data":{"id":"u2"}},
            {"type":"invoice.paid","object_type":"invoice","data":{"id":"i9","total":120}}]"#,
    );
    let from_file = herald.run(&["publish", "--file", &file]).await.ok();
    assert_eq!(
        from_file.stdout.matches("published evt_").count(),
        2,
        "{}",
        from_file.stdout
    );
    assert!(from_file.stdout.contains("invoice.paid on invoice"));
    // From stdin: JSON lines.
    let from_stdin = herald
        .run_with_stdin(
            &["--json", "publish"],
            Some("{\"type\":\"delete\",\"object_type\":\"user\",\"data\":{\"id\":\"u2\"}}\n"),
        )
        .await
        .ok()
        .json();
    assert_eq!(from_stdin["ids"].as_array().map(Vec::len), Some(1));
    // Data from stdin with --data-file -.
    herald
        .run_with_stdin(
            &[
                "publish",
                "--type",
                "updateAll",
                "--object-type",
                "user",
                "--data-file",
                "-",
            ],
            Some(r#"[{"id":"u1"},{"id":"u3"}]"#),
        )
        .await
        .ok();
    // An idempotent publish returns the same ids.
    let args = [
        "--json",
        "publish",
        "--type",
        "update",
        "--object-type",
        "user",
        "--idempotency-key",
        "k-1",
    ];
    let a = herald.run(&args).await.ok().json();
    let b = herald.run(&args).await.ok().json();
    assert_eq!(a["ids"], b["ids"]);
    // A bad event: the API's 422, exit 1; bad JSON data: usage, exit 2.
    let bad = herald
        .run(&["publish", "--type", "no spaces", "--object-type", "user"])
        .await;
    assert_eq!(bad.code, 1, "{bad:#?}");
    assert!(bad.stderr.contains("422"), "{bad:#?}");
    let bad_data = herald
        .run(&[
            "publish",
            "--type",
            "update",
            "--object-type",
            "user",
            "--data",
            "{nope",
        ])
        .await;
    assert_eq!(bad_data.code, 2, "{bad_data:#?}");

    // Six events, all delivered to the catch-all webhook.
    assert!(
        wait_until(Duration::from_secs(60), || async {
            receiver.distinct() >= 6
        })
        .await,
        "deliveries: {}",
        receiver.distinct()
    );

    // tail printed the first event's attempt.
    let line = wait_for_line(&mut tail_out, &first, Duration::from_secs(30)).await?;
    assert!(line.contains("succeeded"), "{line}");
    drop(tail);

    // deliveries per event (history is written at the end of the batch).
    let last = std::cell::RefCell::new(Value::Null);
    let history = wait_for(Duration::from_secs(20), || async {
        let h = herald
            .run(&["--json", "deliveries", "--event", &first])
            .await
            .ok()
            .json();
        let found = h["data"].as_array().is_some_and(|d| !d.is_empty());
        last.replace(h.clone());
        found.then_some(h)
    })
    .await
    .unwrap_or_else(|| panic!("no history for {first}: {}", last.borrow()));
    assert_eq!(history["data"][0]["outcome"], "succeeded");
    assert_eq!(history["data"][0]["subscription_id"], hook_id.as_str());
    let per_hook = herald
        .run(&["deliveries", "--webhook", &hook_id, "--all"])
        .await
        .ok();
    assert!(
        per_hook.stdout.contains("succeeded") && per_hook.stdout.contains(&first),
        "{}",
        per_hook.stdout
    );
    let paged = herald
        .run(&[
            "--json",
            "deliveries",
            "--webhook",
            &hook_id,
            "--limit",
            "1",
        ])
        .await
        .ok()
        .json();
    assert_eq!(paged["data"].as_array().map(Vec::len), Some(1));
    assert!(paged["next_cursor"].is_string());
    // Without --webhook or --event: every webhook of the app.
    let app_wide = herald.run(&["deliveries", "--all"]).await.ok();
    assert!(app_wide.stdout.contains(&first), "{}", app_wide.stdout);
    let both = herald
        .run(&["deliveries", "--webhook", &hook_id, "--event", &first])
        .await;
    assert_eq!(both.code, 2, "{both:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listen_saves_deliveries_and_verify_checks_them() -> Result<()> {
    let (_stack, scratch, _serve, herald) = api_setup("cli-listen").await?;
    let port = free_port();
    let hook = herald
        .run(&[
            "--json",
            "webhooks",
            "add",
            "--url",
            &format!("http://127.0.0.1:{port}/hook"),
            "--events",
            "update",
        ])
        .await
        .ok()
        .json();
    let secret = hook["secret"].as_str().context("secret")?.to_owned();
    let _worker = worker(&herald);
    let saves = scratch.path("captures");
    let mut listen = herald.spawn(&[
        "--json",
        "listen",
        "--port",
        &port.to_string(),
        "--secret",
        &secret,
        "--count",
        "1",
        "--timeout-secs",
        "60",
        "--name",
        "test",
        "--save-dir",
        &saves.to_string_lossy(),
    ]);
    let mut err = BufReader::new(listen.stderr.take().context("stderr")?).lines();
    wait_for_line(&mut err, "listening on", Duration::from_secs(30)).await?;

    herald
        .run(&[
            "publish",
            "--type",
            "update",
            "--object-type",
            "user",
            "--data",
            r#"{"id":"42"}"#,
        ])
        .await
        .ok();
    let status = tokio::time::timeout(Duration::from_secs(60), listen.wait())
        .await
        .context("listen did not finish")??;
    assert!(status.success(), "listen exited with {status}");
    let mut stdout = String::new();
    {
        use tokio::io::AsyncReadExt;
        listen
            .stdout
            .take()
            .context("stdout")?
            .read_to_string(&mut stdout)
            .await?;
    }
    let record: Value = serde_json::from_str(stdout.lines().next().context("a JSON line")?)?;
    assert_eq!(record["verified"], true, "{record}");
    assert_eq!(record["payload"]["data"]["id"], "42");
    let webhook_id = record["webhook_id"].as_str().context("webhook id")?;

    // The saved delivery verifies with the right secret (exit 0), not with another (1).
    let saved = saves.join(format!("{webhook_id}.json"));
    let saved_text = std::fs::read_to_string(&saved).context("the saved delivery")?;
    let doc: Value = serde_json::from_str(&saved_text)?;
    assert!(doc["headers"]["webhook-signature"]
        .as_str()
        .is_some_and(|s| s.starts_with("v1,")));
    let file = saved.to_string_lossy().into_owned();
    let good = herald
        .run(&["verify", "--secret", &secret, "--file", &file])
        .await;
    assert_eq!(good.code, 0, "{good:#?}");
    assert!(good.stdout.contains("verified"), "{good:#?}");
    let other = herald
        .run(&["--json", "webhooks", "add", "--url", "http://127.0.0.1:1/x"])
        .await
        .ok()
        .json();
    let wrong_secret = other["secret"].as_str().context("secret")?;
    let wrong = herald
        .run(&["verify", "--secret", wrong_secret, "--file", &file])
        .await;
    assert_eq!(wrong.code, 1, "{wrong:#?}");
    assert!(wrong.stdout.contains("does NOT verify"), "{wrong:#?}");
    // Any of several secrets may match (a rotation), and JSON says which.
    let either = herald
        .run(&[
            "--json",
            "verify",
            "--secret",
            wrong_secret,
            "--secret",
            &secret,
            "--file",
            &file,
        ])
        .await
        .ok()
        .json();
    assert_eq!(either["verified"], true);
    assert_eq!(either["secret"], 2);
    // A tampered body fails.
    let mut tampered = doc.clone();
    tampered["body"] = Value::from(doc["body"].as_str().unwrap_or_default().replace("42", "43"));
    let tampered_file = scratch.write("tampered.json", &tampered.to_string());
    assert_eq!(
        herald
            .run(&["verify", "--secret", &secret, "--file", &tampered_file])
            .await
            .code,
        1
    );
    // The body and headers given separately.
    let body_file = scratch.write("body.json", doc["body"].as_str().unwrap_or_default());
    let header = |name: &str| {
        format!(
            "{name}: {}",
            doc["headers"][name].as_str().unwrap_or_default()
        )
    };
    herald
        .run(&[
            "verify",
            "--secret",
            &secret,
            "--body-file",
            &body_file,
            "--header",
            &header("webhook-id"),
            "--header",
            &header("webhook-timestamp"),
            "--header",
            &header("webhook-signature"),
        ])
        .await
        .ok();
    // An old capture: out of tolerance unless --no-tolerance.
    let mut old = doc.clone();
    let ts: i64 = doc["headers"]["webhook-timestamp"]
        .as_str()
        .unwrap_or("0")
        .parse()?;
    old["headers"]["webhook-timestamp"] = Value::from((ts - 3600).to_string());
    let old_file = scratch.write("old.json", &old.to_string());
    let stale = herald
        .run(&["verify", "--secret", &secret, "--file", &old_file])
        .await;
    assert_eq!(stale.code, 1);
    assert!(stale.stdout.contains("tolerance"), "{stale:#?}");
    // (The timestamp is signed too, so the shifted one fails on the signature.)
    let shifted = herald
        .run(&[
            "verify",
            "--secret",
            &secret,
            "--file",
            &old_file,
            "--no-tolerance",
        ])
        .await;
    assert_eq!(shifted.code, 1, "{shifted:#?}");
    // A missing file is a usage error.
    assert_eq!(
        herald
            .run(&["verify", "--secret", &secret, "--file", "/nonexistent.json"])
            .await
            .code,
        2
    );
    Ok(())
}

fn dead_letter(app: &str) -> String {
    herald_core::testing::parked(
        herald_core::testing::event(app, "update"),
        "sub_parked",
        503,
        None,
    )
    .encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inject_with_count_and_attributes_then_redrive_dry_run() -> Result<()> {
    let stack = Stack::deploy("cli-inject")?;
    let scratch = Scratch::new("cli-inject");
    let herald = Herald::new(HERALD, &stack, &scratch.path("xdg"));
    let sqs = aws_sdk_sqs::Client::new(&aws().await);

    // 25 raw messages, in batches of 10, with attributes.
    let injected = herald
        .run(&[
            "--json",
            "inject",
            "--body",
            r#"{"kind":"nonsense"}"#,
            "--count",
            "25",
            "--attribute",
            "source=cli-test",
            "--attribute",
            "n:Number=3",
        ])
        .await
        .ok()
        .json();
    assert_eq!(injected["sent"], 25);
    assert_eq!(injected["failed"], 0);
    assert_eq!(queue_depth(&sqs, stack.events_queue()).await?, 25);
    let got = sqs
        .receive_message()
        .queue_url(stack.events_queue())
        .message_attribute_names("All")
        .send()
        .await?;
    let m = &got.messages()[0];
    assert_eq!(m.body(), Some(r#"{"kind":"nonsense"}"#));
    let attrs = m.message_attributes().context("attributes")?;
    assert_eq!(attrs["source"].string_value(), Some("cli-test"));
    assert_eq!(attrs["n"].data_type(), "Number");
    // From stdin, text output, with a delay.
    let text = herald
        .run_with_stdin(&["inject", "--delay", "5"], Some("from stdin"))
        .await
        .ok();
    assert!(
        text.stdout.contains("injected 1 message") && text.stdout.contains("delayed 5 s"),
        "{}",
        text.stdout
    );

    // Park three failed deliveries of `shop` and one of `other` on the DLQ (inject
    // to the DLQ's URL), then look at them with a dry run.
    let letter = scratch.write("letter.json", &dead_letter("shop"));
    herald
        .run(&[
            "inject",
            "--queue-url",
            stack.dlq(),
            "--file",
            &letter,
            "--count",
            "3",
            "--attribute",
            "herald_reason=parked",
        ])
        .await
        .ok();
    herald
        .run(&[
            "inject",
            "--queue-url",
            stack.dlq(),
            "--body",
            &dead_letter("other"),
        ])
        .await
        .ok();
    let dry = herald
        .run(&["redrive", "--dry-run", "--app", "shop"])
        .await
        .ok();
    assert!(dry.stdout.contains("Dry run"), "{}", dry.stdout);
    assert!(dry.stdout.contains("would move 3"), "{}", dry.stdout);
    assert!(
        dry.stdout.contains("all 8 attempts failed"),
        "{}",
        dry.stdout
    );
    let report = herald
        .run(&["--json", "redrive", "--dry-run"])
        .await
        .ok()
        .json();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["matched"], 4);
    assert_eq!(report["moved"], 0);
    // Nothing moved: all four are still on the DLQ.
    assert_eq!(queue_depth(&sqs, stack.dlq()).await?, 4);
    let before = queue_depth(&sqs, stack.events_queue()).await?;
    // A real run with a filter moves exactly the matching three.
    let moved = herald
        .run(&["--json", "redrive", "--app", "shop"])
        .await
        .ok()
        .json();
    assert_eq!(moved["moved"], 3);
    assert_eq!(queue_depth(&sqs, stack.dlq()).await?, 1);
    assert_eq!(queue_depth(&sqs, stack.events_queue()).await?, before + 3);

    // SQS unreachable: exit 3.
    let port = free_port();
    let down = herald
        .with("AWS_ENDPOINT_URL", &format!("http://127.0.0.1:{port}"))
        .run(&["inject", "--body", "x"])
        .await;
    assert_eq!(down.code, 3, "{down:#?}");
    let down = herald
        .with("AWS_ENDPOINT_URL", &format!("http://127.0.0.1:{port}"))
        .run(&["redrive", "--dry-run"])
        .await;
    assert_eq!(down.code, 3, "{down:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn up_status_and_down_of_a_local_stack() -> Result<()> {
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        bail!("AWS_ENDPOINT_URL is not set: run the suite with `make test`");
    }
    let scratch = Scratch::new("cli-stack");
    let herald = Herald::bare(HERALD)
        .with("XDG_CONFIG_HOME", &scratch.path("xdg").to_string_lossy())
        .with("HERALD_HOME", &herald_testing::root().to_string_lossy());
    let stage = format!("cli-up-{}", std::process::id());
    let env_file = scratch.path("stack.env").to_string_lossy().into_owned();

    // Against the emulator the suite runs (AWS_ENDPOINT_URL), as `make demo` does.
    let up = herald
        .run(&[
            "--json",
            "up",
            "--no-emulator",
            "--stage",
            &stage,
            "--env-file",
            &env_file,
        ])
        .await
        .ok()
        .json();
    assert_eq!(up["stack"], format!("herald-{stage}"));
    let written = std::fs::read_to_string(&env_file)?;
    for var in [
        "HERALD_EVENTS_QUEUE_URL=",
        "HERALD_DLQ_URL=",
        "HERALD_APPS_TABLE=",
        "AWS_ENDPOINT_URL=",
    ] {
        assert!(written.contains(var), "{var} missing from {written}");
    }
    let status = herald
        .run(&["status", "--no-emulator", "--stage", &stage])
        .await
        .ok();
    assert!(
        status.stdout.contains("CREATE_COMPLETE"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("api"), "{}", status.stdout);
    let missing = herald
        .run(&["status", "--no-emulator", "--stage", "never-deployed"])
        .await;
    assert_eq!(missing.code, 1, "{missing:#?}");
    // No emulator on this port: 3.
    let port = free_port().to_string();
    let absent = herald.run(&["--json", "status", "--port", &port]).await;
    assert_eq!(absent.code, 3, "{absent:#?}");
    assert_eq!(absent.json()["emulator"]["up"], false);
    herald
        .run(&["down", "--stack-only", "--no-emulator", "--stage", &stage])
        .await
        .ok();
    Ok(())
}
