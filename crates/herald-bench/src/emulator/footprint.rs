//! Section 4: footprint. The worker's memory idle and after the load, its start to
//! ready beside spawning `/bin/true`, and the consumer Lambda's package beside the
//! smallest Rust Lambda's.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::shared::Bench;
use super::EmulatorSettings;
use crate::sys::Rss;

#[derive(Debug, Clone, Serialize)]
pub struct Footprint {
    pub worker_idle: Rss,
    pub worker_after_load: Rss,
    pub start_to_ready_ms: Vec<f64>,
    pub spawn_true_ms: Vec<f64>,
    pub package: Package,
    pub package_baseline: Package,
}

#[derive(Debug, Clone, Serialize)]
pub struct Package {
    pub what: String,
    pub binary_bytes: Option<u64>,
    pub zip_bytes: Option<u64>,
    pub cargo_lambda_zip_bytes: Option<u64>,
    pub source: String,
}

/// The footprint, given the worker's first start to ready and its memory idle and
/// after the load; times further starts (the worker of the runs must be stopped).
pub(super) async fn measure(
    bench: &Bench,
    settings: &EmulatorSettings,
    first_ready: Duration,
    worker_idle: Rss,
    worker_after_load: Rss,
) -> Result<Footprint> {
    let (bin_dir, out_dir) = (&bench.bin_dir, &bench.out_dir);
    // Start to ready, beside spawning /bin/true.
    let mut start_to_ready_ms = vec![first_ready.as_secs_f64() * 1e3];
    for _ in 0..settings.starts {
        let mut w = bench.spawn_worker(super::Batching::LATENCY_FIRST)?;
        start_to_ready_ms.push(w.wait_ready(Duration::from_secs(60)).await?.as_secs_f64() * 1e3);
        w.stop();
    }
    let mut spawn_true_ms = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let status = Command::new("/bin/true")
            .status()
            .context("running /bin/true")?;
        if !status.success() {
            bail!("/bin/true failed");
        }
        spawn_true_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let lambda_zip = bench
        .root
        .join("target/lambda/herald-consumer-lambda/bootstrap.zip");
    Ok(Footprint {
        worker_idle,
        worker_after_load,
        start_to_ready_ms,
        spawn_true_ms,
        package: package(
            "herald-consumer-lambda",
            &bin_dir.join("herald-consumer-lambda"),
            Some(&lambda_zip),
            out_dir,
        ),
        package_baseline: package(
            "herald-bench-hello-lambda",
            &bin_dir.join("herald-bench-hello-lambda"),
            None,
            out_dir,
        ),
    })
}

fn zip_size(binary: &Path, zip: &Path) -> Option<u64> {
    let script = "import sys, zipfile\n\
                  with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED, compresslevel=9) as z:\n\
                  \x20   z.write(sys.argv[1], 'bootstrap')\n";
    let ok = Command::new("python3")
        .args(["-c", script])
        .arg(binary)
        .arg(zip)
        .status()
        .ok()?
        .success();
    ok.then(|| std::fs::metadata(zip).ok().map(|m| m.len()))
        .flatten()
}

/// The binary's size and the size of a Lambda zip of it (`bootstrap`, deflate level
/// 9), built the same way for Herald and the baseline so the two compare; plus the
/// size of `cargo lambda`'s zip when `make lambda` has left one.
fn package(what: &str, binary: &Path, cargo_lambda_zip: Option<&Path>, out_dir: &Path) -> Package {
    let binary_bytes = std::fs::metadata(binary).ok().map(|m| m.len());
    let zip = out_dir.join(format!("{what}.zip"));
    let zip_bytes = binary_bytes.and_then(|_| zip_size(binary, &zip));
    let cargo_lambda = cargo_lambda_zip.filter(|z| z.exists());
    let cargo_lambda_zip_bytes =
        cargo_lambda.and_then(|z| std::fs::metadata(z).ok().map(|m| m.len()));
    let mut source = format!(
        "{} zipped as `bootstrap` (deflate, level 9)",
        binary
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    if let (Some(z), Some(bytes)) = (cargo_lambda, cargo_lambda_zip_bytes) {
        source.push_str(&format!(
            "; `make lambda` had also left {} ({:.2} MiB, built by cargo lambda)",
            z.display(),
            bytes as f64 / 1048576.0
        ));
    }
    Package {
        what: what.to_owned(),
        binary_bytes,
        zip_bytes,
        cargo_lambda_zip_bytes,
        source,
    }
}
