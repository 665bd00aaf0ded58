//! `herald dev`: the whole system on this machine in one command: the emulator and
//! the data plane (as `herald up` makes them), the API with the web console (as
//! `herald serve` runs it) and the worker (as `herald worker` runs it), in this process,
//! with a development admin key made for the run. Ctrl-C or SIGTERM stops the API and
//! the worker, then the emulator (whose state goes with it). With `--in-memory`, no
//! emulator: the queues and stores are in this process ([`crate::memory`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use rand::RngCore;

use crate::config::Settings;
use crate::failure::{failed, Failure};
use crate::local::{self, ServeArgs, WorkerArgs};
use crate::memory;
use crate::stack::{self, StackArgs};

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Address of the API and console [default: 127.0.0.1:8080].
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    addr: String,
    /// Port of the emulator on 127.0.0.1 [default: a free port].
    #[arg(long, value_name = "PORT")]
    emulator_port: Option<u16>,
    /// Stage: the stack is `herald-<stage>`; its settings go to .run/<stage>.env.
    #[arg(long, default_value = "dev")]
    stage: String,
    /// No emulator: queues and stores in this process. Everything is lost on exit.
    #[arg(long, conflicts_with_all = ["emulator_port", "stage"])]
    in_memory: bool,
}

pub const DEV_HELP: &str = "\
Starts the emulator on a free port, deploys the data plane (stack herald-dev), and runs
the API with the web console and the worker in this process, in development mode:
http:// webhook URLs and deliveries to 127.0.0.1 allowed, the console's cookie without
`Secure` (it is served over http://127.0.0.1). Prints the console's URL and an admin key
made for this run (shown once). Ctrl-C or SIGTERM stops everything, the emulator and
its state included. RUST_LOG=info shows the API's and the worker's logs.

--in-memory runs the same API, console and worker with no emulator and no Python: the
queues (with SQS's visibility timeout, delays, receive counts and redrive to a DLQ) and
the stores live in this process, and EVERYTHING IS LOST WHEN IT EXITS. For trying
Herald and for tests only; AWS deployments never use it. The console's DLQ page is not
available in memory (it reads SQS).

Examples:
  herald dev                       # then open the printed URL and sign in with the key
  herald dev --addr 127.0.0.1:9090
  herald dev --in-memory           # no emulator; nothing survives Ctrl-C
  make dev";

/// The development settings the API and the worker run with, unless already set.
const DEV_DEFAULTS: [(&str, &str); 3] = [
    ("HERALD_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32"),
    ("HERALD_WORKER_WAIT", "1s"),
    ("RUST_LOG", "warn"),
];

pub async fn dev(args: DevArgs, settings: &Settings) -> Result<()> {
    // Listening from the start: a Ctrl-C during the deployment still stops the emulator.
    // The flag is set before anything that stops on the same signal can be seen to
    // have stopped, so a stop is never taken for a failure.
    let (stop, signal) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        herald_runtime::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let signal = Signal(signal);
    if args.in_memory {
        run(&args, Backend::Memory, settings, &signal).await?;
        eprintln!("stopped the API and the worker; the in-memory data is gone");
        return Ok(());
    }
    let port = match args.emulator_port {
        Some(p) => p,
        None => free_port()?,
    };
    eprintln!(
        "starting the emulator on 127.0.0.1:{port} and deploying stack herald-{}…",
        args.stage
    );
    let result = match stack::deploy(&StackArgs::local(port, &args.stage), None, settings) {
        Ok(deployed) if !signal.received() => {
            run(&args, Backend::Emulator(deployed), settings, &signal).await
        }
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    };
    let stopped = stack::stop_emulator(port, settings);
    result?;
    stopped?;
    eprintln!("stopped the API, the worker and the emulator");
    Ok(())
}

/// Where the API and the worker keep their data.
enum Backend {
    /// The emulator's stack.
    Emulator(stack::Deployed),
    /// This process's memory.
    Memory,
}

/// Runs the API and the worker until the signal, or until one of them fails.
async fn run(args: &DevArgs, backend: Backend, settings: &Settings, signal: &Signal) -> Result<()> {
    let admin_key = admin_key();
    // The children's configuration comes from the environment, as for `herald serve`.
    match &backend {
        Backend::Emulator(deployed) => {
            for (k, v) in &deployed.vars {
                std::env::set_var(k, v);
            }
        }
        Backend::Memory => {
            for (k, v) in memory::RESOURCE_NAMES {
                std::env::set_var(k, v);
            }
            if std::env::var_os("HERALD_KMS_KEY_ID").is_none()
                && std::env::var_os("HERALD_SEAL_KEY_FILE").is_none()
            {
                std::env::set_var(memory::NO_SEAL_KEY.0, memory::NO_SEAL_KEY.1);
            }
        }
    }
    for (k, v) in DEV_DEFAULTS {
        if std::env::var_os(k).is_none() {
            std::env::set_var(k, v);
        }
    }
    if std::env::var_os("HERALD_CONSOLE_SESSION_KEY").is_none() {
        // One process: a key of the run's, set so the API does not warn of its absence.
        std::env::set_var("HERALD_CONSOLE_SESSION_KEY", random_hex(32));
    }
    std::env::set_var("HERALD_ADMIN_KEY", &admin_key);
    std::env::set_var("HERALD_API_ALLOW_HTTP", "true");
    std::env::set_var("HERALD_CONSOLE_INSECURE_COOKIE", "true");
    std::env::set_var("HERALD_API_URL", format!("http://{}", args.addr));

    let serve_settings = Settings::load(settings.flags.clone())?;
    let worker_settings = Settings::load(settings.flags.clone())?;
    let addr = args.addr.clone();
    let (api_stop, worker_stop) = (signal.clone(), signal.clone());
    let (mut serve, mut worker) = match &backend {
        Backend::Emulator(_) => (
            tokio::spawn(async move {
                let args = ServeArgs { addr: Some(addr) };
                local::serve(args, &serve_settings, api_stop.wait()).await
            }),
            tokio::spawn(async move {
                local::worker(WorkerArgs {}, &worker_settings, worker_stop.wait()).await
            }),
        ),
        Backend::Memory => {
            herald_runtime::init_tracing(
                settings.lookup("HERALD_LOG_FORMAT").as_deref() == Some("json"),
            );
            let system = Arc::new(memory::InMemory::new(&worker_settings)?);
            let api = Arc::clone(&system);
            (
                tokio::spawn(
                    async move { api.serve(&serve_settings, &addr, api_stop.wait()).await },
                ),
                tokio::spawn(async move { system.worker(worker_stop.wait()).await }),
            )
        }
    };

    let base = format!("http://{}", args.addr);
    tokio::select! {
        up = wait_for_api(&base) => up?,
        r = &mut serve => {
            worker.abort();
            flatten(r)?;
            return if signal.received() { Ok(()) } else { Err(failed("the API stopped")) };
        }
    }
    println!("Herald is running (development mode):");
    println!("  console    {base}/console");
    println!("  admin key  {admin_key}   (made for this run, shown once: sign in with it)");
    println!("  API        {base}");
    match &backend {
        Backend::Emulator(deployed) => println!(
            "  emulator   {}   (stack {}, settings in {})",
            deployed.endpoint.as_deref().unwrap_or_default(),
            deployed.stack,
            deployed.env_file.display()
        ),
        Backend::Memory => {
            println!("  storage    in memory, no emulator: everything is lost when Herald stops")
        }
    }
    println!("Ctrl-C stops everything.");

    let (first, other) = tokio::select! {
        r = &mut serve => (r, worker),
        r = &mut worker => (r, serve),
    };
    if signal.received() {
        // Both were asked to stop: let the other finish what it has in hand.
        let second = other.await;
        flatten(first)?;
        flatten(second)
    } else {
        other.abort();
        flatten(first)?;
        Err(failed("the API or the worker stopped on its own"))
    }
}

/// Whether SIGINT or SIGTERM came, and a future that completes when it does.
#[derive(Clone)]
struct Signal(tokio::sync::watch::Receiver<bool>);

impl Signal {
    fn received(&self) -> bool {
        *self.0.borrow()
    }

    async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

fn flatten(r: Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    r.map_err(|e| failed(format!("{e}")))?
}

/// Waits up to a minute for the API's health check.
async fn wait_for_api(base: &str) -> Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        let ok = client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(Failure::Unreachable(format!("the API did not answer on {base} within a minute")).into())
}

/// A fresh admin key: `dev-admin-` and 24 random hex digits.
fn admin_key() -> String {
    format!("dev-admin-{}", random_hex(12))
}

/// `bytes` random bytes in hex.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A port on 127.0.0.1 free now.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| failed(format!("finding a free port: {e}")))?;
    Ok(listener.local_addr()?.port())
}
