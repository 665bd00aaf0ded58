//! What the bench reads from the operating system: CPU time, resident memory, and
//! the description of the machine and tool versions that heads the report.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

/// CPU time (user + system) of this whole process, every thread included, from
/// `getrusage(RUSAGE_SELF)` (microsecond resolution).
pub fn process_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a complete `rusage` into the pointer it is given;
    // RUSAGE_SELF is always valid, so it cannot fail.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

/// Resident memory of a process, in KiB: current (`VmRSS`) and peak (`VmHWM`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Rss {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

/// Reads `/proc/<pid>/status` (`self` for this process).
pub fn rss(pid: &str) -> anyhow::Result<Rss> {
    let path = format!("/proc/{pid}/status");
    let text =
        std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {path}: {e}"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(Rss {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    })
}

/// Resets this process's peak RSS (`VmHWM`) to its current RSS, so the next peak
/// belongs to the next measurement (Linux: `echo 5 > /proc/self/clear_refs`).
/// Returns false where the kernel does not allow it; peaks are then process-wide.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The 1-minute load average (`/proc/loadavg`): how busy the machine was.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The machine and versions the report names.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub rustc: String,
    pub moto: String,
    pub herald_version: String,
    pub git_commit: String,
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Machine {
    pub fn describe(root: &Path) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0);
        let python = root.join(".venv/bin/python");
        let moto = python
            .to_str()
            .and_then(|p| command_output(p, &["-c", "import moto; print(moto.__version__)"]))
            .unwrap_or_else(|| "unknown".into());
        let root_str = root.to_string_lossy();
        let commit = command_output("git", &["-C", &root_str, "rev-parse", "--short", "HEAD"])
            .unwrap_or_else(|| "unknown".into());
        let dirty = command_output("git", &["-C", &root_str, "status", "--porcelain"])
            .is_some_and(|s| !s.is_empty());
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_gib: mem_kib / (1024.0 * 1024.0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
            rustc: command_output("rustc", &["--version"]).unwrap_or_else(|| "unknown".into()),
            moto,
            herald_version: env!("CARGO_PKG_VERSION").to_owned(),
            git_commit: if dirty {
                format!("{commit} (with uncommitted changes)")
            } else {
                commit
            },
        }
    }
}

/// Live heap bytes of this process, counted by the global allocator (see `main.rs`):
/// unlike RSS, it is not hidden by memory the allocator keeps from earlier runs.
pub mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CURRENT: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);

    /// The system allocator, counting live bytes and their peak.
    pub struct Counting;

    fn grew(by: usize) {
        let now = CURRENT.fetch_add(by, Ordering::Relaxed) + by;
        if now > PEAK.load(Ordering::Relaxed) {
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
    }

    // SAFETY: every call is forwarded to the system allocator unchanged; the
    // counters are only bookkeeping.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) };
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                if new_size >= layout.size() {
                    grew(new_size - layout.size());
                } else {
                    CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
                }
            }
            p
        }
    }

    /// Live heap bytes now.
    pub fn current() -> usize {
        CURRENT.load(Ordering::Relaxed)
    }

    /// Restarts the peak from the current value; returns that value.
    pub fn reset_peak() -> usize {
        let now = current();
        PEAK.store(now, Ordering::Relaxed);
        now
    }

    /// The highest live heap since the last reset.
    pub fn peak() -> usize {
        PEAK.load(Ordering::Relaxed)
    }
}
