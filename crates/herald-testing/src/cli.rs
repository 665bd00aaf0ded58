//! The `herald` command run as a child process with a controlled environment.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::stack::Stack;

/// How long one CLI invocation may take before the test gives up on it.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// Settings of the developer's own Herald setup that never reach a test's `herald`.
const CLEARED: [&str; 6] = [
    "HERALD_API_URL",
    "HERALD_API_KEY",
    "HERALD_ADMIN_KEY",
    "HERALD_PROFILE",
    "HERALD_PROFILE_FILE",
    "HERALD_HOME",
];

/// The `herald` binary with a controlled environment: the stack's settings, the
/// emulator's AWS variables (inherited), nothing from the developer's own Herald setup.
#[derive(Clone)]
pub struct Herald {
    bin: PathBuf,
    /// The variables set for every run, in order (later ones win).
    pub env: Vec<(String, String)>,
}

/// What one run printed and how it exited.
#[derive(Debug)]
pub struct Out {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Out {
    /// Asserts exit code 0 and returns self.
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    /// Standard output as one JSON document.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:#?}"))
    }
}

impl Herald {
    /// The binary at `bin` (`env!("CARGO_BIN_EXE_herald")`) with no settings of its own.
    pub fn bare(bin: impl AsRef<Path>) -> Self {
        Self {
            bin: bin.as_ref().to_path_buf(),
            env: Vec::new(),
        }
    }

    /// The binary at `bin` with the stack's settings, its profile directory
    /// (`XDG_CONFIG_HOME`) at `config_home`, and `RUST_LOG` (default `warn`).
    pub fn new(bin: impl AsRef<Path>, stack: &Stack, config_home: &Path) -> Self {
        let mut env: Vec<(String, String)> = stack
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.push((
            "XDG_CONFIG_HOME".into(),
            config_home.to_string_lossy().into_owned(),
        ));
        env.push((
            "RUST_LOG".into(),
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        ));
        Self {
            bin: bin.as_ref().to_path_buf(),
            env,
        }
    }

    /// The same with `k` set to `v`.
    pub fn with(&self, k: &str, v: &str) -> Self {
        let mut next = self.clone();
        next.env.retain(|(key, _)| key != k);
        next.env.push((k.to_owned(), v.to_owned()));
        next
    }

    /// A command running `herald args...` with this environment.
    pub fn std_command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.bin);
        for var in CLEARED {
            cmd.env_remove(var);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args);
        cmd
    }

    /// The same as a tokio command, killed when dropped.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::from(self.std_command(args));
        cmd.kill_on_drop(true);
        cmd
    }

    /// Runs `herald args...` to the end (within [`RUN_TIMEOUT`]).
    pub async fn run(&self, args: &[&str]) -> Out {
        self.run_with_stdin(args, None).await
    }

    /// Runs `herald args...` with `stdin` as its standard input.
    pub async fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut cmd = self.command(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn herald");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input.as_bytes()).await.expect("write stdin");
            drop(pipe);
        }
        let out = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("herald {args:?} did not finish within {RUN_TIMEOUT:?}"))
            .expect("herald ran");
        let out = Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        println!("$ herald {} -> {}", args.join(" "), out.code);
        out
    }

    /// Starts a long-running command with piped output.
    pub fn spawn(&self, args: &[&str]) -> tokio::process::Child {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn herald")
    }
}
