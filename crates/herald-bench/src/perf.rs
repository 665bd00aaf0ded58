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
const FREQUENCY: &str = "499";

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
            .args(["--call-graph", "dwarf,16384", "-p", &pid.to_string(), "-o"])
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

/// The functions with the most self time (samples whose innermost frame they are), from
/// folded stacks (`frame;frame;...;leaf count` per line), the most first; and the total.
pub fn top_self(folded: &str, n: usize) -> (Vec<Frame>, u64) {
    let mut by_leaf: HashMap<&str, u64> = HashMap::new();
    let mut total = 0;
    for line in folded.lines() {
        let Some((stack, count)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(count) = count.parse::<u64>() else {
            continue;
        };
        let leaf = stack.rsplit(';').next().unwrap_or(stack);
        *by_leaf.entry(leaf).or_default() += count;
        total += count;
    }
    let mut frames: Vec<Frame> = by_leaf
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
    (frames, total)
}

/// The top frames as a Markdown table.
pub fn top_table(frames: &[Frame], total: u64) -> String {
    let mut s = format!("{total} samples; the functions with the most self time:\n\n");
    s.push_str("| # | function | self samples | self % |\n| ---: | --- | ---: | ---: |\n");
    for (i, f) in frames.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {:.1} % |",
            i + 1,
            f.function.replace('|', "\\|"),
            f.samples,
            f.percent
        );
    }
    s
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
    Ok(top_table(&frames, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_time_is_counted_at_the_innermost_frame() {
        let folded = "main;a;b 30\nmain;a 10\nmain;c;b 20\nbad line\nmain;d x\n";
        let (frames, total) = top_self(folded, 2);
        assert_eq!(total, 60);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].function, "b");
        assert_eq!(frames[0].samples, 50);
        assert!((frames[0].percent - 83.333).abs() < 0.01);
        assert_eq!(frames[1].function, "a");
        let table = top_table(&frames, total);
        assert!(table.contains("| 1 | `b` | 50 | 83.3 % |"), "{table}");
    }
}
