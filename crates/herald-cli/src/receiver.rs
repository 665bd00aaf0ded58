//! `herald listen` (a local receiver that verifies every delivery) and `herald verify`
//! (checks a saved delivery), in either signing scheme a webhook's format uses: the
//! Standard Webhooks headers, or Para's `X-Webhook-Signature` ([`herald_core::para`]).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use clap::Args;
use herald_core::signing::{
    SignatureError, DEFAULT_TOLERANCE, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use herald_core::{para, Secret, Verifier};
use serde_json::{json, Value};

use crate::failure::{failed, usage, Failure, EXIT_FAILED};
use crate::output::{self, parse_kv};

#[derive(Args, Debug)]
pub struct ListenArgs {
    /// Port on 127.0.0.1 (0: any free port, printed at start).
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// Secret(s) to verify with (repeatable; any may match, as during a rotation).
    #[arg(long = "secret", value_name = "WHSEC", required = true)]
    secrets: Vec<String>,
    /// Status to answer verified deliveries with (unverified ones get 401).
    #[arg(long, default_value_t = 204, value_parser = clap::value_parser!(u16).range(100..=599))]
    status: u16,
    /// Exit after this many distinct verified deliveries.
    #[arg(long, value_name = "N")]
    count: Option<usize>,
    /// With --count: give up (exit 1) after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout_secs: u64,
    /// Name printed in front of each delivery.
    #[arg(long, default_value = "listener")]
    name: String,
    /// Save each delivery as DIR/<webhook-id>.json ({"headers", "body"}) for `herald verify`.
    #[arg(long, value_name = "DIR")]
    save_dir: Option<PathBuf>,
}

pub const LISTEN_HELP: &str = "\
Answers every POST: verified deliveries get --status (204 by default; try 500 or 410 to
watch retries and disabling), unverified ones 401. Receivers should deduplicate on
webhook-id; repeats are marked. With --json, one JSON object per delivery. Para-format
deliveries (X-Webhook-Signature) are verified as Para's receivers verify them.

Examples:
  herald listen --port 9000 --secret whsec_...
  herald listen --port 9000 --secret whsec_new... --secret whsec_old... --status 500
  herald listen --port 9000 --secret whsec_... --count 3 --timeout-secs 30 --save-dir captures/";

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Secret(s) to verify with (repeatable; any may match).
    #[arg(long = "secret", value_name = "WHSEC", required = true)]
    secrets: Vec<String>,
    /// A saved delivery: {"headers": {...}, "body": "..."}, as `herald listen --save-dir`
    /// writes (`-`: standard input).
    #[arg(long, short = 'f', value_name = "PATH", required_unless_present = "body_file", conflicts_with_all = ["body_file", "headers"])]
    file: Option<PathBuf>,
    /// The raw body, exactly as received (`-`: standard input).
    #[arg(long, value_name = "PATH")]
    body_file: Option<PathBuf>,
    /// A header of the delivery, NAME=VALUE or "NAME: VALUE" (repeatable; the
    /// webhook-id, webhook-timestamp and webhook-signature headers are needed, or for
    /// Para's format X-Webhook-Signature and Content-Type).
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_kv, requires = "body_file")]
    headers: Vec<(String, String)>,
    /// Accept timestamps at most this far from now, in seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 300,
        conflicts_with = "no_tolerance"
    )]
    tolerance_secs: u64,
    /// Accept any timestamp (to check old captures).
    #[arg(long)]
    no_tolerance: bool,
}

pub const VERIFY_HELP: &str = "\
Exits 0 when the signature verifies and 1 when it does not, saying why. A delivery
with X-Webhook-Signature and no webhook-signature (a Para-format webhook's) is checked
as Para's receivers check it: Base64(HmacSHA256(payload, secret)), the payload being
the form's payload field or the JSON body; Para's format signs no timestamp.

Examples:
  herald verify --secret whsec_... --file captures/msg_0190ab....json
  herald verify --secret whsec_... --file old.json --no-tolerance
  herald verify --secret whsec_... --body-file body.json \\
      --header 'webhook-id: msg_...' --header 'webhook-timestamp: 1735689600' \\
      --header 'webhook-signature: v1,...'
  herald verify --secret whsec_... --body-file body.txt \\
      --header 'content-type: application/x-www-form-urlencoded' \\
      --header 'x-webhook-signature: ...'";

fn parse_secrets(raw: &[String]) -> Result<Vec<Secret>> {
    raw.iter()
        .enumerate()
        .map(|(i, s)| {
            Secret::parse(s.trim()).map_err(|e| usage(format!("--secret #{}: {e}", i + 1)))
        })
        .collect()
}

/// What checking a delivery found: which secret signed it (1-based) or why none did,
/// and its payload (Para's: the form's `payload` field; the body otherwise).
struct Checked {
    signed_by: Result<usize, SignatureError>,
    payload: Vec<u8>,
}

/// Checks a delivery's signature with each of `secrets` in turn, in the scheme its
/// headers (`header`, by lower-case name) say: Para's when it carries
/// `X-Webhook-Signature` and no `webhook-signature`, the Standard Webhooks one (with
/// its timestamp `tolerance`) otherwise.
fn check(
    secrets: &[Secret],
    header: &dyn Fn(&str) -> String,
    body: &[u8],
    tolerance: Duration,
) -> Checked {
    let para_signature = header(para::HEADER_SIGNATURE);
    if header(HEADER_SIGNATURE).is_empty() && !para_signature.is_empty() {
        return match para::verify(secrets, &header("content-type"), &para_signature, body) {
            Ok((index, payload)) => Checked {
                signed_by: Ok(index + 1),
                payload,
            },
            Err(e) => Checked {
                signed_by: Err(e),
                payload: body.to_vec(),
            },
        };
    }
    let (id, ts, sig) = (
        header(HEADER_ID),
        header(HEADER_TIMESTAMP),
        header(HEADER_SIGNATURE),
    );
    let mut signed_by = Err(SignatureError::NoMatchingSignature);
    for (i, secret) in secrets.iter().enumerate() {
        match Verifier::new(vec![secret.clone()])
            .with_tolerance(tolerance)
            .verify(&id, &ts, &sig, body)
        {
            Ok(()) => {
                signed_by = Ok(i + 1);
                break;
            }
            Err(e) => signed_by = Err(e),
        }
    }
    Checked {
        signed_by,
        payload: body.to_vec(),
    }
}

struct Listener {
    secrets: Vec<Secret>,
    status: StatusCode,
    name: String,
    json: bool,
    save_dir: Option<PathBuf>,
    unsigned: AtomicUsize,
    seen: Mutex<HashSet<String>>,
    verified: tokio::sync::mpsc::UnboundedSender<()>,
}

pub async fn listen(args: ListenArgs, json: bool) -> Result<()> {
    let secrets = parse_secrets(&args.secrets)?;
    let status = StatusCode::from_u16(args.status)
        .map_err(|e| usage(format!("--status {}: {e}", args.status)))?;
    if let Some(dir) = &args.save_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| failed(format!("creating {}: {e}", dir.display())))?;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let state = Arc::new(Listener {
        secrets,
        status,
        name: args.name,
        json,
        save_dir: args.save_dir,
        unsigned: AtomicUsize::new(0),
        seen: Mutex::new(HashSet::new()),
        verified: tx,
    });
    let app = axum::Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(state);
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| failed(format!("listening on {addr}: {e}")))?;
    let bound = listener.local_addr()?;
    eprintln!("listening on http://{bound}/ (answering {status} to verified deliveries)");
    let server = axum::serve(listener, app);
    match args.count {
        None => {
            tokio::select! {
                r = server => r.map_err(|e| failed(format!("serving: {e}")))?,
                _ = tokio::signal::ctrl_c() => {},
            }
        }
        Some(count) => {
            let wait = async {
                for _ in 0..count {
                    if rx.recv().await.is_none() {
                        break;
                    }
                }
            };
            tokio::select! {
                r = server => r.map_err(|e| failed(format!("serving: {e}")))?,
                _ = wait => {},
                _ = tokio::time::sleep(Duration::from_secs(args.timeout_secs)) => {
                    return Err(failed(format!(
                        "timed out after {} s before receiving {count} verified deliveries",
                        args.timeout_secs
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A file name from a webhook-id: only `[A-Za-z0-9_-]` kept.
fn file_name(id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{clean}.json")
}

/// The saved form of a delivery.
pub fn saved(headers: &HeaderMap, body: &[u8]) -> Value {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    match std::str::from_utf8(body) {
        Ok(text) => json!({"headers": headers, "body": text}),
        Err(_) => json!({"headers": headers,
            "body_base64": base64::engine::general_purpose::STANDARD.encode(body)}),
    }
}

async fn receive(State(l): State<Arc<Listener>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let id = header(HEADER_ID);
    let checked = check(&l.secrets, &header, &body, DEFAULT_TOLERANCE);
    let result = checked.signed_by.map(|_| ());
    let duplicate = !id.is_empty() && !l.seen.lock().expect("lock").insert(id.clone());
    let payload: Value = serde_json::from_slice(&checked.payload).unwrap_or(Value::Null);
    let mut saved_to = None;
    if let Some(dir) = &l.save_dir {
        let name = if id.is_empty() {
            format!(
                "unsigned-{}.json",
                l.unsigned.fetch_add(1, Ordering::Relaxed) + 1
            )
        } else {
            file_name(&id)
        };
        let path = dir.join(name);
        let doc = serde_json::to_string_pretty(&saved(&headers, &body)).expect("serializes");
        match std::fs::write(&path, doc) {
            Ok(()) => saved_to = Some(path),
            Err(e) => eprintln!("[{}] could not save {}: {e}", l.name, path.display()),
        }
    }
    if l.json {
        output::json_line(
            &json!({"listener": l.name, "webhook_id": id, "verified": result.is_ok(),
            "error": result.as_ref().err().map(|e| e.to_string()), "duplicate": duplicate,
            "saved_to": saved_to, "payload": payload}),
        );
    } else {
        let mark = match &result {
            Ok(()) => "✔ signature verified".to_owned(),
            Err(e) => format!("✘ signature REJECTED ({e})"),
        };
        output::line(format!(
            "[{}] {mark}  {}  {} on {}  data={}{}",
            l.name,
            id,
            // Para's payload names the event `event` and carries `items`.
            payload["type"]
                .as_str()
                .or(payload["event"].as_str())
                .unwrap_or("?"),
            payload["object_type"].as_str().unwrap_or("?"),
            if payload.get("items").is_some() {
                &payload["items"]
            } else {
                &payload["data"]
            },
            if duplicate {
                "  (duplicate webhook-id)"
            } else {
                ""
            }
        ));
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

/// A delivery to check: its headers (names in lower case) and body.
struct Capture {
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    output::read_input(path)
}

fn load_capture(args: &VerifyArgs) -> Result<Capture> {
    if let Some(path) = &args.file {
        let doc: Value = serde_json::from_slice(&read(path)?).map_err(|e| {
            usage(format!(
                "{} is not a saved delivery (JSON {{\"headers\", \"body\"}}): {e}",
                path.display()
            ))
        })?;
        let headers = doc["headers"]
            .as_object()
            .ok_or_else(|| usage(format!("{}: no \"headers\" object", path.display())))?
            .iter()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect();
        let body = match (&doc["body"], &doc["body_base64"]) {
            (Value::String(b), _) => b.clone().into_bytes(),
            (_, Value::String(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| usage(format!("{}: body_base64: {e}", path.display())))?,
            _ => {
                return Err(usage(format!(
                    "{}: no \"body\" string (or \"body_base64\")",
                    path.display()
                )))
            }
        };
        return Ok(Capture { headers, body });
    }
    let path = args
        .body_file
        .as_ref()
        .ok_or_else(|| usage("give --file, or --body-file with --header"))?;
    Ok(Capture {
        headers: args
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
        body: read(path)?,
    })
}

pub fn verify(args: VerifyArgs, json: bool) -> Result<()> {
    let secrets = parse_secrets(&args.secrets)?;
    let capture = load_capture(&args)?;
    let get = |name: &str| capture.headers.get(name).cloned().unwrap_or_default();
    let (id, ts) = (get(HEADER_ID), get(HEADER_TIMESTAMP));
    let tolerance = if args.no_tolerance {
        Duration::from_secs(u64::MAX)
    } else {
        Duration::from_secs(args.tolerance_secs)
    };
    let (matched, error) = match check(&secrets, &get, &capture.body, tolerance).signed_by {
        Ok(n) => (Some(n), None),
        Err(e) => (None, Some(e)),
    };
    let signed_at = ts
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0));
    let why = error.as_ref().map(|e| match e {
        SignatureError::NoMatchingSignature => format!(
            "no v1 signature in webhook-signature matches the secret{} given (wrong secret, or the body or webhook-id changed)",
            if args.secrets.len() == 1 { "" } else { "s" }
        ),
        SignatureError::TimestampOutOfTolerance { .. } => {
            format!("{e} (--no-tolerance checks old captures)")
        }
        other => other.to_string(),
    });
    if json {
        output::json(&json!({
            "verified": matched.is_some(),
            "secret": matched,
            "webhook_id": id,
            "timestamp": signed_at.map(|t| t.to_rfc3339()),
            "error": if matched.is_some() { None } else { why.clone() },
        }));
    } else if let Some(n) = matched {
        let age = signed_at
            .map(|t| {
                let secs = (chrono::Utc::now() - t).num_seconds();
                format!(
                    ", signed at {} ({secs} s ago)",
                    t.format("%Y-%m-%d %H:%M:%S UTC")
                )
            })
            .unwrap_or_default();
        println!("✔ signature verified: webhook-id {id}{age}, by secret #{n}");
    } else {
        println!(
            "✘ signature does NOT verify: {}",
            why.unwrap_or_else(|| "no secret given".into())
        );
    }
    if matched.is_some() {
        Ok(())
    } else {
        Err(Failure::Reported(EXIT_FAILED).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::Signer;

    #[test]
    fn saved_deliveries_verify_and_tampered_ones_do_not() {
        let secret = Secret::generate();
        let body = br#"{"id":"evt_1","type":"update","data":{"name":"Ada"}}"#;
        let ts = chrono::Utc::now().timestamp();
        let signed = Signer::headers(std::slice::from_ref(&secret), "msg_1", ts, body);
        let mut headers = HeaderMap::new();
        for (k, v) in signed.pairs() {
            headers.insert(k, v.parse().unwrap());
        }
        let doc = saved(&headers, body);
        let dir = std::env::temp_dir().join(format!("herald-verify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file_name("msg_1"));
        std::fs::write(&path, doc.to_string()).unwrap();
        let args = |secret: &Secret, no_tolerance: bool| VerifyArgs {
            secrets: vec![secret.expose()],
            file: Some(path.clone()),
            body_file: None,
            headers: vec![],
            tolerance_secs: 300,
            no_tolerance,
        };
        assert!(verify(args(&secret, false), true).is_ok());
        let err = verify(args(&Secret::generate(), false), true).unwrap_err();
        assert_eq!(crate::failure::exit_code(&err), EXIT_FAILED);
        let mut tampered = doc.clone();
        tampered["body"] = Value::from(r#"{"id":"evt_1","type":"update","data":{"name":"Eve"}}"#);
        std::fs::write(&path, tampered.to_string()).unwrap();
        assert!(verify(args(&secret, true), true).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(file_name("msg_0190ab"), "msg_0190ab.json");
        assert_eq!(file_name("../etc/passwd"), "___etc_passwd.json");
    }
}
