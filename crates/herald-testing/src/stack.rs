//! One deployed copy of the data plane per test, and the templates of infra/, both
//! through `localstack/herald_local.py` in the project venv.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context, Result};

use crate::root;

/// One deployed copy of the data plane, with resource names unique to the test.
pub struct Stack {
    /// The stage the stack was deployed under (`<test>-<pid>-<n>`).
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
        let mut args = vec![
            "up".to_owned(),
            "--stage".into(),
            stage.clone(),
            "--json".into(),
        ];
        for (k, v) in params {
            args.push("--param".into());
            args.push(format!("{k}={v}"));
        }
        let parsed = herald_local(&args)
            .with_context(|| format!("deploying stack {stage} (make venv installs the venv)"))?;
        Ok(Self {
            stage,
            env: string_map(&parsed["env"]).context("no env in the stack outputs")?,
        })
    }

    /// One of the stack's settings, or `""`.
    pub fn var(&self, name: &str) -> &str {
        self.env.get(name).map(String::as_str).unwrap_or_default()
    }

    /// The events queue's URL.
    pub fn events_queue(&self) -> &str {
        self.var("HERALD_EVENTS_QUEUE_URL")
    }

    /// The dead-letter queue's URL.
    pub fn dlq(&self) -> &str {
        self.var("HERALD_DLQ_URL")
    }

    /// The subscriptions table's name.
    pub fn subscriptions_table(&self) -> &str {
        self.var("HERALD_SUBSCRIPTIONS_TABLE")
    }

    /// The sealer of the stack's webhook secrets (its local key file,
    /// `HERALD_SEAL_KEY_FILE`), for tests that read or write the subscriptions table
    /// themselves.
    pub fn sealer(&self) -> Result<herald_seal::Sealer> {
        let path = self.var("HERALD_SEAL_KEY_FILE");
        let keys = herald_seal::LocalKeys::from_file(path)
            .with_context(|| format!("the key file of stack {}", self.stage))?;
        Ok(herald_seal::Sealer::new(keys))
    }

    /// The stack's subscriptions table through `aws`, sealed as the stack's functions
    /// seal ([`Stack::sealer`]), for tests that set up or read webhooks directly.
    pub fn subscription_store(
        &self,
        aws: &aws_config::SdkConfig,
    ) -> Result<herald_store::SubscriptionStore> {
        Ok(herald_store::SubscriptionStore::new(
            aws_sdk_dynamodb::Client::new(aws),
            self.subscriptions_table(),
            self.sealer()?,
        ))
    }

    /// The stack's CloudFormation outputs (`herald_local.py up` on the existing stack
    /// only reads them).
    pub fn outputs(&self) -> Result<HashMap<String, String>> {
        let parsed = herald_local(&["up", "--stage", &self.stage, "--json"])
            .with_context(|| format!("reading the outputs of {}", self.stage))?;
        string_map(&parsed["outputs"]).context("no outputs")
    }
}

/// A template of `infra/` as JSON, with short-form intrinsics expanded (`!Ref X` is
/// `{"Ref": "X"}`, `!GetAtt A.B` is `{"Fn::GetAtt": ["A", "B"]}`), read through
/// `localstack/herald_local.py template-json`.
pub fn template(name: &str) -> Result<serde_json::Value> {
    let path = root().join("infra").join(name);
    herald_local(&["template-json", &path.to_string_lossy()])
        .with_context(|| format!("reading infra/{name}"))
}

/// Runs `localstack/herald_local.py` with the venv's Python; returns what it printed,
/// as JSON.
fn herald_local(args: &[impl AsRef<std::ffi::OsStr>]) -> Result<serde_json::Value> {
    let python = root().join(".venv/bin/python");
    let out = Command::new(&python)
        .arg(root().join("localstack/herald_local.py"))
        .args(args)
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).context("herald_local.py printed no JSON")
}

/// A JSON object of strings as a map.
fn string_map(v: &serde_json::Value) -> Option<HashMap<String, String>> {
    Some(
        v.as_object()?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect(),
    )
}
