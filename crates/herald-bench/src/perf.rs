//! CPU profiles for `make flamegraph`: `perf record` attached to a process for the
//! span of a run, and the rendering of what it recorded into a flame graph SVG (with
//! inferno's `inferno-collapse-perf` and `inferno-flamegraph`, which the Makefile
//! installs into the project) and a table of the functions with the most self time.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Samples per second and thread: often enough for a few thousand samples a run,
/// rarely enough that perf's own work does not slow the process much.
const FREQUENCY: &str = "999";

/// The `perf` program: `$PERF`, or `perf` on the PATH.
fn perf_program() -> String {
    std::env::var("PERF").unwrap_or_else(|_| "perf".into())
}

/// `perf record` attached to one process; stopped (and its data file written) by
/// [`PerfRecording::stop`], killed if dropped.
pub struct PerfRecording {
    child: Option<Child>,
    data: PathBuf,
}

impl PerfRecording {
    /// Starts sampling `pid` (every thread, CPU time only: an idle thread is not
    /// sampled) with call stacks unwound from DWARF, into `data`. Returns once perf has
    /// had a moment to attach.
    pub fn attach(pid: u32, data: &Path) -> Result<Self> {
        if let Some(dir) = data.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let child = Command::new(perf_program())
            .args(["record", "-e", "cpu-clock", "-F", FREQUENCY])
            .args(["--call-graph", "dwarf,65528", "-p", &pid.to_string(), "-o"])
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting perf record (make flamegraph installs perf)")?;
        // perf prints nothing when it is ready; this is time enough to attach.
        std::thread::sleep(Duration::from_millis(500));
        Ok(Self {
            child: Some(child),
            data: data.to_path_buf(),
        })
    }

    /// Stops the recording (SIGINT, as Ctrl-C would) and waits for the data file.
    pub fn stop(mut self) -> Result<PathBuf> {
        let mut child = self.child.take().context("perf already stopped")?;
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: signalling our own child process by its id.
            unsafe {
                libc::kill(pid, libc::SIGINT);
            }
        }
        let status = child.wait().context("waiting for perf record")?;
        if !status.success() && !self.data.exists() {
            bail!(
                "perf record failed ({status}) and wrote no {}",
                self.data.display()
            );
        }
        eprintln!("[bench] perf data in {}", self.data.display());
        Ok(self.data.clone())
    }
}

impl Drop for PerfRecording {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A function and its share of the samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub function: String,
    pub samples: u64,
    pub percent: f64,
}

/// The samples of folded stacks (`frame;frame;...;leaf count` per line): each stack
/// and its count; lines that are not of that form are skipped.
fn folded_samples(folded: &str) -> impl Iterator<Item = (&str, u64)> {
    folded.lines().filter_map(|line| {
        let (stack, count) = line.rsplit_once(' ')?;
        Some((stack, count.parse().ok()?))
    })
}

/// The `n` functions with the most samples, the most first, as shares of `total`.
fn ranked(counts: HashMap<&str, u64>, total: u64, n: usize) -> Vec<Frame> {
    let mut frames: Vec<Frame> = counts
        .into_iter()
        .map(|(function, samples)| Frame {
            function: function.to_owned(),
            samples,
            percent: samples as f64 * 100.0 / total.max(1) as f64,
        })
        .collect();
    frames.sort_by(|a, b| {
        b.samples
            .cmp(&a.samples)
            .then_with(|| a.function.cmp(&b.function))
    });
    frames.truncate(n);
    frames
}

/// The functions with the most self time (samples whose innermost frame they are), from
/// folded stacks, the most first; and the total of samples.
pub fn top_self(folded: &str, n: usize) -> (Vec<Frame>, u64) {
    let mut by_leaf: HashMap<&str, u64> = HashMap::new();
    let mut total = 0;
    for (stack, count) in folded_samples(folded) {
        let leaf = stack.rsplit(';').next().unwrap_or(stack);
        *by_leaf.entry(leaf).or_default() += count;
        total += count;
    }
    (ranked(by_leaf, total, n), total)
}

/// Herald's own functions (its library crates, `herald_…`; not the bench's).
pub fn is_herald(frame: &str) -> bool {
    frame.contains("herald_") && !frame.contains("herald_bench")
}

/// The functions `wanted` that are on the stack of the most samples (each sample
/// counted once per function, callees included), the most first.
pub fn top_inclusive(folded: &str, wanted: impl Fn(&str) -> bool, n: usize) -> Vec<Frame> {
    let mut on_stack: HashMap<&str, u64> = HashMap::new();
    let mut total = 0;
    for (stack, count) in folded_samples(folded) {
        total += count;
        let mut seen: Vec<&str> = stack.split(';').filter(|f| wanted(f)).collect();
        seen.sort_unstable();
        seen.dedup();
        for frame in seen {
            *on_stack.entry(frame).or_default() += count;
        }
    }
    ranked(on_stack, total, n)
}

/// Frames as a Markdown table under `intro`, their weight (CPU nanoseconds: perf's
/// `cpu-clock` period, which inferno sums per stack) in ms in a column headed `what`.
fn frames_table(intro: &str, what: &str, frames: &[Frame]) -> String {
    let mut s = format!("{intro}\n\n| # | function | {what} | % |\n| ---: | --- | ---: | ---: |\n");
    for (i, f) in frames.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {} | `{}` | {:.0} | {:.1} % |",
            i + 1,
            f.function.replace('|', "\\|"),
            f.samples as f64 / 1e6,
            f.percent
        );
    }
    s
}

/// The top self-time frames as a Markdown table.
pub fn top_table(frames: &[Frame], total: u64) -> String {
    frames_table(
        &format!(
            "{:.0} ms of CPU sampled; the functions with the most self time:",
            total as f64 / 1e6
        ),
        "self CPU, ms",
        frames,
    )
}

/// Herald's functions with the share of the CPU under them, as a Markdown table.
pub fn inclusive_table(frames: &[Frame]) -> String {
    frames_table(
        "Herald's functions (`herald_…` crates) with the most CPU under them (callees included):",
        "CPU, ms",
        frames,
    )
}

/// Renders `data` (from `perf record`) into `svg` through `perf script`,
/// `inferno-collapse-perf` and `inferno-flamegraph` (from `inferno_bin`, or the PATH);
/// keeps the folded stacks beside the data file; returns the top-`n` self-time table.
pub fn render(
    data: &Path,
    svg: &Path,
    title: &str,
    inferno_bin: Option<&Path>,
    n: usize,
) -> Result<String> {
    let tool = |name: &str| inferno_bin.map_or_else(|| PathBuf::from(name), |d| d.join(name));
    let script = Command::new(perf_program())
        .args(["script", "--no-inline", "-i"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting perf script")?;
    let collapse = Command::new(tool("inferno-collapse-perf"))
        .arg("--all")
        .stdin(script.stdout.context("perf script's output")?)
        .output()
        .context("running inferno-collapse-perf (make flamegraph installs it)")?;
    if !collapse.status.success() {
        bail!(
            "inferno-collapse-perf failed: {}",
            String::from_utf8_lossy(&collapse.stderr)
        );
    }
    let folded = data.with_extension("folded");
    std::fs::write(&folded, &collapse.stdout)
        .with_context(|| format!("writing {}", folded.display()))?;
    if let Some(dir) = svg.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let out = std::fs::File::create(svg).with_context(|| format!("creating {}", svg.display()))?;
    let status = Command::new(tool("inferno-flamegraph"))
        .args(["--title", title, "--width", "1600"])
        .arg(&folded)
        .stdout(out)
        .status()
        .context("running inferno-flamegraph")?;
    if !status.success() {
        bail!("inferno-flamegraph failed ({status})");
    }
    let text = String::from_utf8_lossy(&collapse.stdout);
    let (frames, total) = top_self(&text, n);
    let herald = top_inclusive(&text, is_herald, 2 * n);
    Ok(format!(
        "{}\n{}",
        top_table(&frames, total),
        inclusive_table(&herald)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_time_is_counted_at_the_innermost_frame() {
        let folded = "main;a;b 30000000\nmain;a 10000000\nmain;c;b 20000000\nbad line\nmain;d x\n";
        let (frames, total) = top_self(folded, 2);
        assert_eq!(total, 60_000_000);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].function, "b");
        assert_eq!(frames[0].samples, 50_000_000);
        assert!((frames[0].percent - 83.333).abs() < 0.01);
        assert_eq!(frames[1].function, "a");
        let table = top_table(&frames, total);
        assert!(table.contains("| 1 | `b` | 50 | 83.3 % |"), "{table}");
        assert!(table.starts_with("60 ms of CPU sampled"), "{table}");
    }

    #[test]
    fn inclusive_time_counts_each_sample_once_per_function() {
        let folded = "herald_bench::main;herald_x::a;herald_x::b;herald_x::a 30000000\n\
                      herald_bench::main;herald_x::b 10000000\n\
                      herald_bench::main;c 20000000\n";
        let frames = top_inclusive(folded, is_herald, 5);
        assert_eq!(frames[0].function, "herald_x::b");
        assert_eq!(frames[0].samples, 40_000_000);
        assert_eq!(frames[1].function, "herald_x::a");
        assert_eq!(
            frames[1].samples, 30_000_000,
            "once per sample, though twice on its stack"
        );
        assert!((frames[1].percent - 50.0).abs() < 1e-9);
        assert_eq!(frames.len(), 2, "the bench's own frames are left out");
        let table = inclusive_table(&frames);
        assert!(
            table.contains("| 2 | `herald_x::a` | 30 | 50.0 % |"),
            "{table}"
        );
    }
}
