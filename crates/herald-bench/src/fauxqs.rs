//! fauxqs, a fast local SQS (npm, pinned in `crates/herald-bench/fauxqs/`, installed
//! by `make fauxqs`), as a child process of the bench on 127.0.0.1: the SQS of
//! section 6, where moto's SQS would be the limit. Its start script keeps it on the
//! loopback address (see `fauxqs/start.mjs`); `make fauxqs` patches it to return
//! message attributes only when a receive names them, as SQS does (`fauxqs/patch.mjs`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

/// The fauxqs process; stopped when dropped.
pub struct Fauxqs {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

/// What `fauxqs/patch.mjs` leaves in fauxqs's `ReceiveMessage`: message attributes
/// only when a receive names them, as SQS answers.
const PATCH_MARK: &str = "herald-bench: as SQS, none unless named";

/// Where the bench's fauxqs package lives.
pub fn package_dir(root: &Path) -> PathBuf {
    root.join("crates/herald-bench/fauxqs")
}

impl Fauxqs {
    /// Starts fauxqs on a free port of 127.0.0.1 and waits until it listens.
    pub fn start(root: &Path) -> Result<Self> {
        let dir = package_dir(root);
        if !dir.join("node_modules/fauxqs").is_dir() {
            bail!(
                "fauxqs is not installed in {}: run `make fauxqs` (make bench does)",
                dir.display()
            );
        }
        let receive = dir.join("node_modules/fauxqs/dist/sqs/actions/receiveMessage.js");
        if !std::fs::read_to_string(&receive).is_ok_and(|code| code.contains(PATCH_MARK)) {
            bail!(
                "fauxqs in {} is not patched to answer ReceiveMessage as SQS does \
                 (fauxqs/patch.mjs): run `make fauxqs` (make bench does)",
                dir.display()
            );
        }
        let mut child = Command::new("node")
            .arg("start.mjs")
            .arg("0")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting fauxqs (node start.mjs): is Node.js installed?")?;
        let stdout = child.stdout.take().context("fauxqs stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading fauxqs's port")?;
        let parsed: serde_json::Value = serde_json::from_str(line.trim())
            .with_context(|| format!("fauxqs printed {line:?}, not its port"))?;
        let port = parsed["port"].as_u64().context("no port from fauxqs")?;
        Ok(Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// The Node process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Fauxqs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
