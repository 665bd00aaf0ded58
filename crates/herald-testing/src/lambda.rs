//! The Lambda functions run as AWS runs them: each `bootstrap` as its own process
//! against the Lambda Runtime API that cargo-lambda emulates.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::process::{free_port, KillOnDrop};
use crate::wait::wait_until;
use crate::{root, scratch_dir};

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

/// The `bootstrap` of a Lambda function, taken out of
/// `$HERALD_LAMBDA_DIR/<name>/bootstrap.zip`: the zips cargo-lambda built
/// (`make lambda-check` builds them in `target/lambda-debug`, and `make test` builds
/// them and sets the variable), never whatever build of the binary `target/` holds.
pub fn lambda_bootstrap(name: &str) -> Result<PathBuf> {
    let dir = std::env::var_os("HERALD_LAMBDA_DIR")
        .filter(|d| !d.is_empty())
        .context(
            "HERALD_LAMBDA_DIR is not set: build the Lambda zips with `make lambda-check` and set \
             HERALD_LAMBDA_DIR=$PWD/target/lambda-debug (make test does both)",
        )?;
    let zip = PathBuf::from(dir).join(name).join("bootstrap.zip");
    if !zip.exists() {
        bail!(
            "{} is missing: build it with `make lambda-check`",
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

/// A Lambda function run as AWS runs it: `cargo lambda watch --only-lambda-apis`
/// emulates the Lambda Runtime API on 127.0.0.1, and the function's `bootstrap` runs as
/// its own process against that API (`AWS_LAMBDA_RUNTIME_API`), with only the
/// environment given plus the standard `AWS_*` settings. Invoked with
/// `cargo lambda invoke`. Both processes are killed when dropped.
pub struct LambdaFunction {
    /// The function's name (the binary's).
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
