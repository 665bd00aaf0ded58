//! What the bench reads from the operating system: CPU time, resident memory, and
//! the description of the machine and tool versions that heads the report.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

/// CPU time (user + system) of this whole process, every thread included, from
/// `getrusage(RUSAGE_SELF)` (microsecond resolution).
pub fn process_cpu() -> Duration {
    rusage_cpu(libc::RUSAGE_SELF)
}

/// CPU time (user + system) of the calling thread, from `getrusage(RUSAGE_THREAD)`.
fn thread_cpu() -> Duration {
    rusage_cpu(libc::RUSAGE_THREAD)
}

fn rusage_cpu(who: libc::c_int) -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a complete `rusage` into the pointer it is given;
    // RUSAGE_SELF and RUSAGE_THREAD are always valid, so it cannot fail.
    let usage = unsafe {
        libc::getrusage(who, usage.as_mut_ptr());
        usage.assume_init()
    };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// Bytes [`host_speed`] hashes.
pub const HOST_SPEED_BYTES: usize = 256 << 20;

/// How fast the host runs this machine just now: the CPU time, in seconds, one thread
/// takes to SHA-256 [`HOST_SPEED_BYTES`] (the same work every time, no memory beyond a
/// 1 MiB buffer, no I/O). On a host that shares its cores with other machines the
/// figure grows while they are busy, though nothing on this machine is; the runs
/// measured meanwhile cost more CPU alike.
pub fn host_speed() -> f64 {
    use sha2::Digest;
    let block = vec![0x5a_u8; 1 << 20];
    let started = thread_cpu();
    let mut hasher = sha2::Sha256::new();
    for _ in 0..HOST_SPEED_BYTES / block.len() {
        hasher.update(&block);
    }
    std::hint::black_box(hasher.finalize());
    (thread_cpu() - started).as_secs_f64()
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

/// CPU time (user + system, every thread) another process has used so far, from
/// `/proc/<pid>/stat` (`utime` + `stime`, in clock ticks, usually 10 ms each).
pub fn pid_cpu(pid: u32) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text =
        std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {path}: {e}"))?;
    stat_cpu(&text).ok_or_else(|| anyhow::anyhow!("{path} has no utime and stime"))
}

/// `utime` + `stime` of a `/proc/<pid>/stat` line. The command name (field 2) may hold
/// spaces and parentheses, so the fields are counted from its closing parenthesis.
fn stat_cpu(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state (3), ppid, pgrp, session, tty_nr, tpgid, flags, minflt,
    // cminflt, majflt, cmajflt, utime (14), stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(clock_ticks(utime + stime))
}

/// `ticks` of the kernel's clock (`_SC_CLK_TCK`, usually 100 a second) as a duration.
fn clock_ticks(ticks: u64) -> Duration {
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = if per_second > 0 {
        per_second as u64
    } else {
        100
    };
    Duration::from_micros(ticks * 1_000_000 / per_second)
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

/// CPU time every CPU of the machine has spent busy so far (`/proc/stat`: all but
/// idle and iowait), every process together.
pub fn machine_busy() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    busy_of_stat(text.lines().next()?)
}

/// The busy time of `/proc/stat`'s `cpu` line: user, nice, system, irq, softirq and
/// steal ticks (guest time is inside user already).
fn busy_of_stat(line: &str) -> Option<Duration> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let ticks: Vec<u64> = fields.map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let [user, nice, system, _idle, _iowait, irq, softirq, steal, ..] = ticks[..] else {
        return None;
    };
    Some(clock_ticks(user + nice + system + irq + softirq + steal))
}

/// What the rest of the machine did while the bench measured: the machine's busy CPU
/// time less this process's and the processes it runs itself (`own`), as cores.
/// Unlike the load average, it leaves the bench's own work out.
#[derive(Debug, Clone, Copy)]
pub struct OtherWork {
    started: Instant,
    machine: Option<Duration>,
    own: Duration,
}

impl OtherWork {
    /// Starts counting; `own` is the CPU time the bench's processes have used so far.
    pub fn start(own: Duration) -> Self {
        Self {
            started: Instant::now(),
            machine: machine_busy(),
            own,
        }
    }

    /// Cores the other processes kept busy on average since [`OtherWork::start`];
    /// `own` as there. None where `/proc/stat` cannot be read.
    pub fn cores(&self, own: Duration) -> Option<f64> {
        let machine = machine_busy()?.checked_sub(self.machine?)?;
        let others = machine.saturating_sub(own.saturating_sub(self.own));
        Some(others.as_secs_f64() / self.started.elapsed().as_secs_f64().max(1e-3))
    }
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
///
/// Counting is switchable at run time ([`set_counting`]): it does contended atomic
/// operations on every allocation, which inflate the CPU figures of whatever runs while
/// it is on. Off, the allocator checks one flag and forwards to mimalloc.
/// Memory allocated while counting was off and freed while it is on makes the live
/// count lower than the truth, so the counter is signed and peaks are only read as
/// differences within one run that counts throughout.
pub mod heap {
    use std::alloc::{GlobalAlloc, Layout};
    use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

    /// The allocator Herald's delivery binaries use (the consumer's Lambda, `herald`),
    /// so both sides of section 1 run on what production runs on.
    use mimalloc::MiMalloc as Inner;

    static COUNTING: AtomicBool = AtomicBool::new(true);
    static CURRENT: AtomicIsize = AtomicIsize::new(0);
    static PEAK: AtomicIsize = AtomicIsize::new(0);

    /// mimalloc, counting live bytes and their peak while counting is on.
    pub struct Counting;

    /// Turns the counting on or off (on at start).
    pub fn set_counting(on: bool) {
        COUNTING.store(on, Ordering::SeqCst);
    }

    /// Whether allocations are being counted.
    pub fn counting() -> bool {
        COUNTING.load(Ordering::Relaxed)
    }

    fn grew(by: usize) {
        let by = by as isize;
        let now = CURRENT.fetch_add(by, Ordering::Relaxed) + by;
        if now > PEAK.load(Ordering::Relaxed) {
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
    }

    fn shrank(by: usize) {
        CURRENT.fetch_sub(by as isize, Ordering::Relaxed);
    }

    // SAFETY: every call is forwarded to mimalloc unchanged; the counters are only
    // bookkeeping.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { Inner.alloc(layout) };
            if COUNTING.load(Ordering::Relaxed) && !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { Inner.alloc_zeroed(layout) };
            if COUNTING.load(Ordering::Relaxed) && !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { Inner.dealloc(ptr, layout) };
            if COUNTING.load(Ordering::Relaxed) {
                shrank(layout.size());
            }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let p = unsafe { Inner.realloc(ptr, layout, new_size) };
            if COUNTING.load(Ordering::Relaxed) && !p.is_null() {
                if new_size >= layout.size() {
                    grew(new_size - layout.size());
                } else {
                    shrank(layout.size() - new_size);
                }
            }
            p
        }
    }

    /// Live heap bytes now (as counted; see the module's note on switching).
    pub fn current() -> isize {
        CURRENT.load(Ordering::Relaxed)
    }

    /// Restarts the peak from the current value; returns that value.
    pub fn reset_peak() -> isize {
        let now = current();
        PEAK.store(now, Ordering::Relaxed);
        now
    }

    /// The highest live heap since the last reset.
    pub fn peak() -> isize {
        PEAK.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_counts_from_the_name_s_closing_parenthesis() {
        // utime 250 and stime 50 ticks, a name with a space and a parenthesis.
        let line = "4242 (herald (x) y) S 1 2 3 0 -1 4194560 10 0 0 0 250 50 0 0 20 0 3 0";
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        assert_eq!(
            stat_cpu(line),
            Some(Duration::from_micros(300 * 1_000_000 / ticks))
        );
        assert_eq!(stat_cpu("garbage"), None);
    }

    #[test]
    fn the_machine_s_busy_time_leaves_idle_and_iowait_out() {
        // user 100, nice 10, system 50, idle 9000, iowait 40, irq 5, softirq 3, steal 2.
        let line = "cpu  100 10 50 9000 40 5 3 2 0 0";
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        assert_eq!(
            busy_of_stat(line),
            Some(Duration::from_micros(170 * 1_000_000 / ticks))
        );
        assert_eq!(busy_of_stat("cpu0 1 2 3 4 5 6 7 8"), None);
        assert_eq!(busy_of_stat("cpu 1 2"), None);
        assert!(machine_busy().is_some());
    }

    #[test]
    fn this_process_s_cpu_is_readable_from_proc() {
        assert!(pid_cpu(std::process::id()).is_ok());
    }

    #[test]
    fn counting_can_be_switched_off_and_on() {
        heap::set_counting(false);
        assert!(!heap::counting());
        let v = vec![0u8; 1 << 20];
        std::hint::black_box(&v);
        drop(v);
        heap::set_counting(true);
        assert!(heap::counting());
    }
}
