//! `herald up | down | status`: the local AWS stack, through
//! `localstack/herald_local.py` run by the project's venv Python.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use crate::config::Settings;
use crate::failure::{failed, usage, Failure, EXIT_FAILED, EXIT_UNREACHABLE};
use crate::output;

/// Where the local stack runs.
#[derive(Args, Debug, Clone)]
pub struct StackArgs {
    /// Port of the local emulator on 127.0.0.1.
    #[arg(long, default_value_t = 4566, env = "HERALD_EMULATOR_PORT")]
    port: u16,
    /// Stage: the stack is `herald-<stage>`, its resources are named after it.
    #[arg(long, default_value = "local")]
    stage: String,
    /// Use the endpoint in AWS_ENDPOINT_URL (LocalStack, an emulator started
    /// elsewhere, or AWS itself) instead of the emulator on --port.
    #[arg(long)]
    no_emulator: bool,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Where to write the settings [default: .run/<stage>.env in the repository].
    #[arg(long, value_name = "PATH")]
    env_file: Option<PathBuf>,
}

pub const UP_HELP: &str = "\
Starts the moto emulator on 127.0.0.1:<port> (installing the project venv with
`make venv` if it is missing), deploys infra/data-plane.yaml as stack herald-<stage>,
and writes the HERALD_* settings plus AWS_ENDPOINT_URL and dummy credentials to
.run/<stage>.env. Running it again is harmless. The repository is found from the
current directory or HERALD_HOME.

Examples:
  herald up
  set -a; . .run/local.env; set +a     # then: herald serve, herald worker, ...
  herald up --port 4600 --stage dev
  AWS_ENDPOINT_URL=http://127.0.0.1:4566 herald up --no-emulator   # LocalStack";

#[derive(Args, Debug)]
pub struct DownArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Delete the stack but leave the emulator running.
    #[arg(long)]
    stack_only: bool,
}

pub const DOWN_HELP: &str = "\
Stops the emulator `herald up` started on --port; its state (queues, tables, history)
goes with it.

Examples:
  herald down
  herald down --stack-only --stage dev     # delete one stack, keep the emulator";

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    stack: StackArgs,
}

pub const STATUS_HELP: &str = "\
Shows whether the emulator answers, the stack and its outputs, and whether the API
(--api-url) answers. Exits 0 when the stack is deployed, 3 when the emulator does not
answer, 1 when the stack is missing.

Examples:
  herald status
  herald --json status | jq .stack.status";

/// The repository root: `HERALD_HOME`, else the nearest ancestor of the current
/// directory (or of this executable) holding localstack/herald_local.py.
pub fn repo_root(settings: &Settings) -> Result<PathBuf> {
    let marker = |p: &Path| p.join("localstack").join("herald_local.py").is_file();
    if let Some(home) = settings.lookup("HERALD_HOME") {
        let home = PathBuf::from(home);
        if marker(&home) {
            return Ok(home);
        }
        return Err(usage(format!(
            "HERALD_HOME={} is not a Herald repository (no localstack/herald_local.py)",
            home.display()
        )));
    }
    let starts = [std::env::current_dir().ok(), std::env::current_exe().ok()];
    for start in starts.into_iter().flatten() {
        if let Some(root) = start.ancestors().find(|p| marker(p)) {
            return Ok(root.to_path_buf());
        }
    }
    Err(usage(
        "cannot find the Herald repository (localstack/herald_local.py): run this inside it, \
         or set HERALD_HOME to it",
    ))
}

/// The project's venv Python, installed with `make venv` when missing.
fn python(root: &Path, quiet: bool) -> Result<PathBuf> {
    let py = root.join(".venv").join("bin").join("python");
    if py.exists() && root.join(".venv").join(".installed").exists() {
        return Ok(py);
    }
    if !quiet {
        eprintln!("no project venv yet: running `make venv` (installs the moto emulator)…");
    }
    let status = Command::new("make")
        .arg("-C")
        .arg(root)
        .arg("venv")
        .stdout(if quiet {
            Stdio::null()
        } else {
            Stdio::inherit()
        })
        .status()
        .map_err(|e| failed(format!("running `make venv`: {e} (is make installed?)")))?;
    if !status.success() || !py.exists() {
        return Err(failed(
            "`make venv` failed; it needs python3 with venv and pip (see the README)",
        ));
    }
    Ok(py)
}

/// What the emulator-backed stack runs against.
struct Target {
    endpoint: Option<String>,
    /// Variables for the Python script and the settings file.
    aws_env: BTreeMap<String, String>,
}

fn target(args: &StackArgs) -> Target {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut aws_env = BTreeMap::new();
    let endpoint = if args.no_emulator {
        env("AWS_ENDPOINT_URL")
    } else {
        Some(format!("http://127.0.0.1:{}", args.port))
    };
    if let Some(e) = &endpoint {
        aws_env.insert("AWS_ENDPOINT_URL".to_owned(), e.clone());
    }
    let region = env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".into());
    aws_env.insert("AWS_REGION".into(), region.clone());
    aws_env.insert("AWS_DEFAULT_REGION".into(), region);
    if !args.no_emulator {
        // The emulator takes any credentials; keep real ones out of its settings file.
        aws_env.insert("AWS_ACCESS_KEY_ID".into(), "test".into());
        aws_env.insert("AWS_SECRET_ACCESS_KEY".into(), "test".into());
    }
    Target { endpoint, aws_env }
}

fn script(root: &Path, py: &Path, target: &Target) -> Command {
    let mut cmd = Command::new(py);
    cmd.arg(root.join("localstack").join("herald_local.py"))
        .current_dir(root)
        .envs(&target.aws_env)
        .stdin(Stdio::null());
    cmd
}

fn run_script(mut cmd: Command, what: &str) -> Result<std::process::Output> {
    cmd.stderr(Stdio::inherit());
    let out = cmd
        .output()
        .map_err(|e| failed(format!("{what}: could not run the venv Python: {e}")))?;
    Ok(out)
}

impl StackArgs {
    /// The emulator on 127.0.0.1:`port`, stage `stage`.
    pub fn local(port: u16, stage: &str) -> Self {
        Self {
            port,
            stage: stage.to_owned(),
            no_emulator: false,
        }
    }
}

/// A deployed stack: its name, where it runs and its settings (written to `env_file`).
pub struct Deployed {
    /// The stack's name.
    pub stack: String,
    /// The endpoint it runs at (none: AWS).
    pub endpoint: Option<String>,
    /// Where its settings were written.
    pub env_file: PathBuf,
    /// Its settings: `HERALD_*`, `AWS_ENDPOINT_URL` and credentials for the emulator.
    pub vars: BTreeMap<String, String>,
}

/// Starts the emulator (unless `--no-emulator`), deploys the data plane and writes its
/// settings to `env_file` (default `.run/<stage>.env`): what `herald up` and
/// `herald dev` do.
pub fn deploy(
    stack: &StackArgs,
    env_file: Option<PathBuf>,
    settings: &Settings,
) -> Result<Deployed> {
    let root = repo_root(settings)?;
    let py = python(&root, settings.json)?;
    let target = target(stack);
    if !stack.no_emulator {
        let mut cmd = script(&root, &py, &target);
        cmd.args(["emulator-start", "--port", &stack.port.to_string()]);
        let out = run_script(cmd, "starting the emulator")?;
        if !out.status.success() {
            return Err(failed(format!(
                "the emulator did not start on 127.0.0.1:{} (see .run/moto-{}.log)",
                stack.port, stack.port
            )));
        }
    }
    let mut cmd = script(&root, &py, &target);
    cmd.args(["up", "--stage", &stack.stage, "--json"]);
    let out = run_script(cmd, "deploying the stack")?;
    if !out.status.success() {
        return Err(failed(format!(
            "deploying stack herald-{} failed (see above)",
            stack.stage
        )));
    }
    let doc: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| failed(format!("herald_local.py up printed no JSON: {e}")))?;
    let mut vars: BTreeMap<String, String> = doc["env"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    vars.extend(target.aws_env.clone());
    vars.remove("AWS_DEFAULT_REGION");
    let env_file =
        env_file.unwrap_or_else(|| root.join(".run").join(format!("{}.env", stack.stage)));
    if let Some(dir) = env_file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| failed(format!("creating {}: {e}", dir.display())))?;
    }
    let text: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(&env_file, text)
        .map_err(|e| failed(format!("writing {}: {e}", env_file.display())))?;
    Ok(Deployed {
        stack: doc["stack"].as_str().unwrap_or_default().to_owned(),
        endpoint: target.endpoint,
        env_file,
        vars,
    })
}

pub fn up(args: UpArgs, settings: &Settings) -> Result<()> {
    let Deployed {
        stack,
        endpoint,
        env_file,
        vars,
    } = deploy(&args.stack, args.env_file, settings)?;
    if settings.json {
        output::json(&json!({
            "stack": stack,
            "endpoint": endpoint,
            "env_file": env_file,
            "env": vars,
        }));
    } else {
        let shown = env_file
            .strip_prefix(std::env::current_dir().unwrap_or_default())
            .unwrap_or(&env_file)
            .display()
            .to_string();
        println!(
            "stack {stack} is up at {}",
            endpoint.as_deref().unwrap_or("AWS")
        );
        println!("settings (written to {shown}):");
        for (k, v) in &vars {
            println!("  {k}={v}");
        }
        println!("load them with:  set -a; . {shown}; set +a");
        println!(
            "then run:        herald serve   and   herald worker   (each in its own terminal)"
        );
    }
    Ok(())
}

/// Stops the emulator started on 127.0.0.1:`port` (its state goes with it).
pub fn stop_emulator(port: u16, settings: &Settings) -> Result<()> {
    let root = repo_root(settings)?;
    let py = python(&root, true)?;
    let target = target(&StackArgs::local(port, "local"));
    let mut cmd = script(&root, &py, &target);
    cmd.args(["emulator-stop", "--port", &port.to_string()]);
    let out = run_script(cmd, "stopping the emulator")?;
    if !out.status.success() {
        return Err(failed("herald_local.py failed (see above)"));
    }
    Ok(())
}

pub fn down(args: DownArgs, settings: &Settings) -> Result<()> {
    if args.stack_only {
        let root = repo_root(settings)?;
        let py = python(&root, true)?;
        let mut cmd = script(&root, &py, &target(&args.stack));
        cmd.args(["down", "--stage", &args.stack.stage]);
        let out = run_script(cmd, "stopping")?;
        if !out.status.success() {
            return Err(failed("herald_local.py failed (see above)"));
        }
    } else if args.stack.no_emulator {
        return Err(usage(
            "--no-emulator with down: there is no emulator of ours to stop; add --stack-only",
        ));
    } else {
        stop_emulator(args.stack.port, settings)?;
    }
    if settings.json {
        output::json(&json!({
            "stopped": if args.stack_only { "stack" } else { "emulator" },
            "stack": format!("herald-{}", args.stack.stage),
            "port": args.stack.port,
        }));
    } else if args.stack_only {
        println!("deleted stack herald-{}", args.stack.stage);
    } else {
        println!(
            "stopped the emulator on 127.0.0.1:{} (its queues and tables went with it)",
            args.stack.port
        );
    }
    Ok(())
}

async fn answers(url: &str) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    else {
        return false;
    };
    client
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

pub async fn status(args: StatusArgs, settings: &Settings) -> Result<()> {
    let root = repo_root(settings)?;
    let target = target(&args.stack);
    let emulator_up = match (&target.endpoint, args.stack.no_emulator) {
        (Some(e), false) => Some(answers(&format!("{e}/moto-api/")).await),
        _ => None,
    };
    let api_url = settings.api_url();
    let api_up = answers(&format!("{}/healthz", api_url.trim_end_matches('/'))).await;

    let mut stack =
        json!({"name": format!("herald-{}", args.stack.stage), "status": null, "outputs": {}});
    if emulator_up != Some(false) {
        let py = python(&root, true)?;
        let mut cmd = script(&root, &py, &target);
        cmd.args(["status", "--stage", &args.stack.stage]);
        cmd.stderr(Stdio::null());
        let out = cmd
            .output()
            .map_err(|e| failed(format!("could not run the venv Python: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        if out.status.success() {
            if let Some(first) = lines.next() {
                stack["status"] = first.rsplit(": ").next().unwrap_or_default().into();
            }
            let outputs: serde_json::Map<String, Value> = lines
                .filter_map(|l| l.trim().split_once(": "))
                .map(|(k, v)| (k.to_owned(), Value::from(v)))
                .collect();
            stack["outputs"] = Value::Object(outputs);
        }
    }
    let deployed = stack["status"].is_string();
    if settings.json {
        output::json(&json!({
            "emulator": {"endpoint": target.endpoint, "up": emulator_up},
            "stack": stack,
            "api": {"url": api_url, "up": api_up},
        }));
    } else {
        match (emulator_up, &target.endpoint) {
            (Some(true), Some(e)) => println!("emulator  up            {e}"),
            (Some(false), Some(e)) => {
                println!("emulator  NOT answering  {e}   (`herald up` starts it)")
            }
            (_, e) => println!(
                "endpoint  {}",
                e.as_deref().unwrap_or("AWS (no AWS_ENDPOINT_URL)")
            ),
        }
        if deployed {
            println!(
                "stack     {}  {}",
                stack["name"].as_str().unwrap_or_default(),
                stack["status"].as_str().unwrap_or_default()
            );
            if let Some(o) = stack["outputs"].as_object() {
                for (k, v) in o {
                    println!("            {k}: {}", v.as_str().unwrap_or_default());
                }
            }
        } else {
            println!(
                "stack     {}  not deployed   (`herald up` deploys it)",
                stack["name"].as_str().unwrap_or_default()
            );
        }
        if api_up {
            println!("api       up            {api_url}");
        } else {
            println!("api       not answering  {api_url}   (`herald serve` starts it)");
        }
    }
    if emulator_up == Some(false) {
        return Err(Failure::Reported(EXIT_UNREACHABLE).into());
    }
    if !deployed {
        return Err(Failure::Reported(EXIT_FAILED).into());
    }
    Ok(())
}
