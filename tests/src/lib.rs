//! Harness for Herald's end-to-end tests: an isolated stack per test (deployed from
//! infra/ into the running emulator), real HTTP receivers on 127.0.0.1, and the real
//! worker binary as a child process.
//!
//! The emulator itself is started by `make test` (see localstack/with-emulator), which
//! exports `AWS_ENDPOINT_URL`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// One deployed copy of the data plane, with resource names unique to the test.
pub struct Stack {
    pub stage: String,
    /// The `HERALD_*` settings the stack's outputs map to.
    pub env: HashMap<String, String>,
}

impl Stack {
    /// Deploys infra/data-plane.yaml under a fresh stage named after `test`.
    pub fn deploy(test: &str) -> Result<Self> {
        Self::deploy_with(test, &[])
    }

    /// Deploys with template parameters (`("VisibilityTimeoutSeconds", "20")`, say).
    pub fn deploy_with(test: &str, params: &[(&str, &str)]) -> Result<Self> {
        if std::env::var("AWS_ENDPOINT_URL").is_err() {
            bail!("AWS_ENDPOINT_URL is not set: run the suite with `make test`, which starts the emulator");
        }
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let stage = format!(
            "{}-{}-{}",
            test.replace('_', "-"),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let python = root().join(".venv/bin/python");
        let out = Command::new(&python)
            .arg(root().join("localstack/herald_local.py"))
            .args(["up", "--stage", &stage, "--json"])
            .args(
                params
                    .iter()
                    .flat_map(|(k, v)| ["--param".to_owned(), format!("{k}={v}")]),
            )
            .output()
            .with_context(|| format!("running {}", python.display()))?;
        if !out.status.success() {
            bail!(
                "deploying stack {stage} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let parsed: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let env = parsed["env"]
            .as_object()
            .context("no env in the stack outputs")?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        Ok(Self { stage, env })
    }

    pub fn var(&self, name: &str) -> &str {
        self.env.get(name).map(String::as_str).unwrap_or_default()
    }

    pub fn events_queue(&self) -> &str {
        self.var("HERALD_EVENTS_QUEUE_URL")
    }

    pub fn dlq(&self) -> &str {
        self.var("HERALD_DLQ_URL")
    }

    pub fn subscriptions_table(&self) -> &str {
        self.var("HERALD_SUBSCRIPTIONS_TABLE")
    }
}

/// AWS configuration from the environment `make test` sets.
pub async fn aws() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// Messages in a queue: visible, in flight and delayed.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<u64> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await?;
    let attrs = out.attributes.unwrap_or_default();
    Ok(attrs.values().map(|v| v.parse::<u64>().unwrap_or(0)).sum())
}

/// Receives (and deletes) everything currently on a queue.
pub async fn drain(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Result<Vec<aws_sdk_sqs::types::Message>> {
    let mut all = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await?;
        let msgs = out.messages.unwrap_or_default();
        if msgs.is_empty() {
            return Ok(all);
        }
        for m in &msgs {
            if let Some(h) = &m.receipt_handle {
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(h)
                    .send()
                    .await?;
            }
        }
        all.extend(msgs);
    }
}

/// Polls `check` every 100 ms until it holds or `timeout` passes; returns whether it held.
pub async fn wait_until<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Bytes,
    pub at: Instant,
    /// The status the receiver chose (it may have answered too late to count).
    pub replied: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// How a receiver answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    /// Wait this long before answering (a hanging endpoint).
    pub delay: Duration,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn status(code: u16) -> Self {
        Self {
            status: StatusCode::from_u16(code).expect("valid status"),
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// What a receiver knows when deciding its reply.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    /// Requests received so far, this one included.
    pub total: usize,
    /// Requests with this request's `webhook-id`, this one included (the attempt
    /// number as the receiver sees it).
    pub for_id: usize,
}

/// How a receiver answers each request.
pub type Behaviour = Arc<dyn Fn(Seen) -> Reply + Send + Sync>;

#[derive(Default)]
struct Log {
    received: Vec<Received>,
    per_id: HashMap<String, usize>,
    in_flight: HashMap<String, usize>,
    max_in_flight: usize,
}

struct ReceiverState {
    log: Mutex<Log>,
    behaviour: Behaviour,
}

/// A real HTTP receiver on 127.0.0.1 that records every request and answers as its
/// behaviour says.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// A receiver that answers 200 to everything.
    pub async fn ok() -> Self {
        Self::start(Arc::new(|_| Reply::status(200))).await
    }

    pub async fn start(behaviour: Behaviour) -> Self {
        let state = Arc::new(ReceiverState {
            log: Mutex::new(Log::default()),
            behaviour,
        });
        let app = axum::Router::new()
            .fallback(axum::routing::any(record))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a receiver");
        let addr = listener.local_addr().expect("receiver address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.log.lock().expect("lock").received.clone()
    }

    pub fn count(&self) -> usize {
        self.state.log.lock().expect("lock").received.len()
    }

    /// Distinct `webhook-id`s received.
    pub fn distinct(&self) -> usize {
        self.state.log.lock().expect("lock").per_id.len()
    }

    /// The most requests with one `webhook-id` that were ever in flight at once.
    pub fn max_in_flight_per_delivery(&self) -> usize {
        self.state.log.lock().expect("lock").max_in_flight
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Decrements the in-flight count when the request ends, even if the client gave up
/// and the handler was dropped.
struct InFlight {
    state: Arc<ReceiverState>,
    id: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut log) = self.state.log.lock() {
            if let Some(n) = log.in_flight.get_mut(&self.id) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

async fn record(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let id = headers.get("webhook-id").cloned().unwrap_or_default();
    let seen = {
        let mut log = state.log.lock().expect("lock");
        log.received.push(Received {
            headers,
            body,
            at: Instant::now(),
            replied: 0,
        });
        let for_id = {
            let n = log.per_id.entry(id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let in_flight = {
            let n = log.in_flight.entry(id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        log.max_in_flight = log.max_in_flight.max(in_flight);
        Seen {
            total: log.received.len(),
            for_id,
        }
    };
    let _guard = InFlight {
        state: Arc::clone(&state),
        id,
    };
    let reply = (state.behaviour)(seen);
    if let Some(r) = state
        .log
        .lock()
        .expect("lock")
        .received
        .get_mut(seen.total - 1)
    {
        r.replied = reply.status.as_u16();
    }
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = reply.status.into_response();
    for (k, v) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(k),
            axum::http::HeaderValue::try_from(v),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// What a fault test accounts for, printed at its end.
#[derive(Debug, Default)]
pub struct Accounting {
    /// Deliveries that should succeed.
    pub expected: usize,
    /// Distinct deliveries that were answered 2xx.
    pub delivered: usize,
    /// Extra requests for a delivery already answered 2xx.
    pub duplicates: usize,
    /// Deliveries parked on the DLQ.
    pub parked: usize,
    /// Expected deliveries neither delivered nor parked.
    pub lost: usize,
}

impl Accounting {
    pub fn print(&self, test: &str) {
        println!(
            "[{test}] accounting: expected={} delivered={} duplicates={} parked={} lost={}",
            self.expected, self.delivered, self.duplicates, self.parked, self.lost
        );
    }
}

/// A built binary of this workspace (run `cargo build --workspace --bins` first;
/// `make test` does).
pub fn binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("locating the target directory")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} is missing: build it with `cargo build --workspace --bins` (make test does)",
            path.display()
        );
    }
    Ok(path)
}

/// The local worker binary running against a stack; killed when dropped.
pub struct Worker {
    child: Child,
}

impl Worker {
    pub fn spawn(stack: &Stack, extra_env: &[(&str, &str)]) -> Result<Self> {
        let mut cmd = Command::new(binary("herald-worker")?);
        cmd.envs(&stack.env)
            .env("HERALD_WORKER_WAIT_SECONDS", "1")
            .env("HERALD_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null());
        Ok(Self {
            child: cmd.spawn().context("starting herald-worker")?,
        })
    }

    /// SIGKILL: the process dies at once, mid-batch if it is in one.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The admin key the test API servers use.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// The management API served in-process on 127.0.0.1 over real HTTP, against a stack.
pub struct ApiServer {
    pub base: String,
    pub client: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl ApiServer {
    /// Starts the API with the stack's settings plus `overrides` (`HERALD_*` names).
    pub async fn start(stack: &Stack, overrides: &[(&str, &str)]) -> Result<Self> {
        let mut vars: HashMap<String, String> = stack.env.clone();
        vars.insert("HERALD_ADMIN_KEY".into(), ADMIN_KEY.into());
        vars.insert("HERALD_API_ALLOW_HTTP".into(), "true".into());
        vars.insert(
            "HERALD_ALLOW_PRIVATE_NETWORKS".into(),
            "127.0.0.1/32".into(),
        );
        for (k, v) in overrides {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = herald_api::ApiConfig::from_lookup(|k| vars.get(k).cloned())?;
        let state = herald_api::AppState::connect(config, &aws().await).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, herald_api::router(state)).await;
        });
        Ok(Self {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            task,
        })
    }

    /// Sends a request; returns the status and the JSON body (`Null` when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
            format!("{}{path}", self.base),
        );
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("API request");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap_or_default();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    /// Creates an app and a key for it; returns the key.
    pub async fn app_with_key(&self, id: &str) -> String {
        let (s, _) = self
            .call(
                "POST",
                "/v1/apps",
                Some(ADMIN_KEY),
                Some(serde_json::json!({"id": id, "name": id})),
            )
            .await;
        assert_eq!(s, 201, "create app {id}");
        let (s, key) = self
            .call(
                "POST",
                &format!("/v1/apps/{id}/keys"),
                Some(ADMIN_KEY),
                None,
            )
            .await;
        assert_eq!(s, 201, "create key for {id}");
        key["key"].as_str().expect("key shown once").to_owned()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ------------------------------------------------------------------ templates and Lambda

impl Stack {
    /// The stack's CloudFormation outputs (`herald_local.py up` on the existing stack
    /// only reads them).
    pub fn outputs(&self) -> Result<HashMap<String, String>> {
        let out = Command::new(root().join(".venv/bin/python"))
            .arg(root().join("localstack/herald_local.py"))
            .args(["up", "--stage", &self.stage, "--json"])
            .output()?;
        if !out.status.success() {
            bail!(
                "reading the outputs of {} failed: {}",
                self.stage,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let parsed: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        Ok(parsed["outputs"]
            .as_object()
            .context("no outputs")?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect())
    }
}

/// A template of `infra/` as JSON, with short-form intrinsics expanded (`!Ref X` is
/// `{"Ref": "X"}`, `!GetAtt A.B` is `{"Fn::GetAtt": ["A", "B"]}`), read through
/// `localstack/herald_local.py template-json`.
pub fn template(name: &str) -> Result<serde_json::Value> {
    let python = root().join(".venv/bin/python");
    let out = Command::new(&python)
        .arg(root().join("localstack/herald_local.py"))
        .arg("template-json")
        .arg(root().join("infra").join(name))
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "reading infra/{name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// cargo-lambda, installed into the project venv from PyPI (`make cargo-lambda`;
/// `make test` does it).
pub fn cargo_lambda() -> Result<PathBuf> {
    let path = root().join(".venv/bin/cargo-lambda");
    if !path.exists() {
        bail!(
            "{} is missing: run `make cargo-lambda` (make test does)",
            path.display()
        );
    }
    Ok(path)
}

/// The `bootstrap` of a Lambda function: taken out of
/// `$HERALD_LAMBDA_DIR/<name>/bootstrap.zip` when that variable is set (`make test` sets
/// it to the debug zips cargo-lambda built in `target/lambda-debug`), otherwise the
/// workspace's own build of the binary, `target/<profile>/<name>`.
pub fn lambda_bootstrap(name: &str) -> Result<PathBuf> {
    let Some(dir) = std::env::var_os("HERALD_LAMBDA_DIR").filter(|d| !d.is_empty()) else {
        let path = binary(name)?;
        println!(
            "[{name}] bootstrap: {} (HERALD_LAMBDA_DIR not set)",
            path.display()
        );
        return Ok(path);
    };
    let zip = PathBuf::from(dir).join(name).join("bootstrap.zip");
    if !zip.exists() {
        bail!(
            "{} is missing: build it with `make lambda-check` (or unset HERALD_LAMBDA_DIR)",
            zip.display()
        );
    }
    // Unpacked once per zip into target/tmp/lambda-bootstrap/<name>/bootstrap; the stamp
    // names the zip it came from (path, size, time).
    let dest_dir = root().join("target/tmp/lambda-bootstrap").join(name);
    let bootstrap = dest_dir.join("bootstrap");
    let stamp_file = dest_dir.join("source");
    let meta = std::fs::metadata(&zip)?;
    let stamp = format!(
        "{} {} {:?}",
        zip.canonicalize()?.display(),
        meta.len(),
        meta.modified()?
    );
    let current = std::fs::read_to_string(&stamp_file).unwrap_or_default();
    if current != stamp || !bootstrap.exists() {
        let unpacked = scratch_dir(&format!("unzip-{name}"))?;
        let status = Command::new(root().join(".venv/bin/python"))
            .args(["-m", "zipfile", "-e"])
            .arg(&zip)
            .arg(&unpacked)
            .status()
            .context("unzipping the bootstrap")?;
        if !status.success() {
            bail!("could not unzip {}", zip.display());
        }
        // zipfile does not restore the mode bits.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            unpacked.join("bootstrap"),
            std::fs::Permissions::from_mode(0o755),
        )?;
        std::fs::create_dir_all(&dest_dir)?;
        std::fs::rename(unpacked.join("bootstrap"), &bootstrap)?;
        std::fs::write(&stamp_file, stamp)?;
        let _ = std::fs::remove_dir_all(&unpacked);
    }
    println!(
        "[{name}] bootstrap: {} (from {})",
        bootstrap.display(),
        zip.display()
    );
    Ok(bootstrap)
}

/// A fresh directory under `target/tmp` for one test's files.
pub fn scratch_dir(label: &str) -> Result<PathBuf> {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let dir = root().join("target/tmp").join(format!(
        "{label}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A Lambda function run as AWS runs it: `cargo lambda watch --only-lambda-apis`
/// emulates the Lambda Runtime API on 127.0.0.1, and the function's `bootstrap` runs as
/// its own process against that API (`AWS_LAMBDA_RUNTIME_API`), with only the
/// environment given plus the standard `AWS_*` settings. Invoked with
/// `cargo lambda invoke`. Both processes are killed when dropped.
pub struct LambdaFunction {
    pub name: String,
    port: u16,
    emulator: Child,
    function: Child,
    dir: PathBuf,
}

impl LambdaFunction {
    /// Starts the runtime API emulator and the function `name` (a binary of this
    /// workspace, see [`lambda_bootstrap`]) with `env`.
    pub async fn start(name: &str, env: &HashMap<String, String>) -> Result<Self> {
        let cargo_lambda = cargo_lambda()?;
        let bootstrap = lambda_bootstrap(name)?;
        let dir = scratch_dir(&format!("lambda-{name}"))?;
        let port = free_port()?;
        let emulator = Command::new(&cargo_lambda)
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
            ])
            .arg(port.to_string())
            .current_dir(root())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("runtime-api.log"))?)
            .stderr(std::fs::File::create(dir.join("runtime-api.err.log"))?)
            .spawn()
            .context("starting cargo lambda watch")?;
        let mut emulator = KillOnDrop(Some(emulator));
        let ready = wait_until(Duration::from_secs(30), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        if !ready {
            bail!(
                "the Lambda runtime API emulator did not listen on 127.0.0.1:{port}: {}",
                std::fs::read_to_string(dir.join("runtime-api.err.log")).unwrap_or_default()
            );
        }
        let log = std::fs::File::create(dir.join("function.log"))?;
        let function = Command::new(&bootstrap)
            .envs(env)
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt/{name}"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bootstrap.display()))?;
        Ok(Self {
            name: name.to_owned(),
            port,
            emulator: emulator.0.take().expect("the emulator is running"),
            function,
            dir,
        })
    }

    /// Invokes the function with `payload` through `cargo lambda invoke`; returns what
    /// the function answered. Fails if the function process dies first.
    pub async fn invoke(&mut self, payload: &serde_json::Value) -> Result<serde_json::Value> {
        let file = self.dir.join(format!(
            "payload-{}.json",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos()
        ));
        std::fs::write(&file, serde_json::to_vec(payload)?)?;
        let mut invoke = tokio::process::Command::new(cargo_lambda()?)
            .args(["lambda", "invoke", "-A", "127.0.0.1", "-P"])
            .arg(self.port.to_string())
            .arg(&self.name)
            .arg("--data-file")
            .arg(&file)
            .args(["--output-format", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting cargo lambda invoke")?;
        let mut stdout = invoke.stdout.take().context("invoke stdout")?;
        let mut stderr = invoke.stderr.take().context("invoke stderr")?;
        let output = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let _ = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
            (out, err)
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = invoke.try_wait()? {
                break status;
            }
            if let Some(exit) = self.function.try_wait()? {
                bail!(
                    "{} exited ({exit}) during the invocation; its log:\n{}",
                    self.name,
                    self.log()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer within 120 s; its log:\n{}",
                    self.name,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (out, err) = output.await?;
        if !status.success() {
            bail!(
                "cargo lambda invoke {} failed ({status}): {}{}\nfunction log:\n{}",
                self.name,
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err),
                self.log()
            );
        }
        serde_json::from_slice(&out).with_context(|| {
            format!(
                "the answer of {} is not JSON: {}",
                self.name,
                String::from_utf8_lossy(&out)
            )
        })
    }

    /// What the function wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        self.read_log("function.log")
    }

    fn read_log(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }
}

/// Kills a child process when dropped, unless taken out.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for LambdaFunction {
    fn drop(&mut self) {
        for child in [&mut self.function, &mut self.emulator] {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Logs and payloads stay behind only for a failed test.
        if std::thread::panicking() {
            eprintln!("[{}] logs kept in {}", self.name, self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// An SQS event as the event source mapping delivers it to the consumer function:
/// one record per `(message id, body)`, from the queue `queue_arn`.
pub fn sqs_event(queue_arn: &str, records: &[(&str, &str)]) -> serde_json::Value {
    let now_ms = chrono::Utc::now().timestamp_millis().to_string();
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(id, body)| {
            serde_json::json!({
                "messageId": id,
                "receiptHandle": format!("handle-{id}"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now_ms,
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": now_ms,
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

/// An HTTP request as a Lambda function URL (payload format 2.0, the same as an API
/// Gateway HTTP API) delivers it to a function.
pub fn http_event(
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&serde_json::Value>,
) -> serde_json::Value {
    let now = chrono::Utc::now();
    let domain = "herald-test.lambda-url.us-east-1.on.aws";
    let (path_only, query) = path.split_once('?').unwrap_or((path, ""));
    let mut headers = serde_json::json!({
        "host": domain,
        "user-agent": "herald-e2e",
        "accept": "application/json",
        "x-forwarded-proto": "https",
        "x-forwarded-for": "127.0.0.1",
    });
    if let Some(key) = bearer {
        headers["authorization"] = format!("Bearer {key}").into();
    }
    if body.is_some() {
        headers["content-type"] = "application/json".into();
    }
    serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path_only,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "herald-test",
            "domainName": domain,
            "domainPrefix": "herald-test",
            "http": {
                "method": method,
                "path": path_only,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "herald-e2e",
            },
            "requestId": format!("req-{}", now.timestamp_nanos_opt().unwrap_or_default()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false,
    })
}
