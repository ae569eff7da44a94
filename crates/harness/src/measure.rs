//! Whole runs of a program, measured the way `/usr/bin/time` does: wall
//! time and the CPU time of the process and every thread it ran (user and
//! system), from `wait4(2)`'s resource usage; and its peak resident memory,
//! sampled from `/proc`.

#![expect(
    unsafe_code,
    reason = "wait4(2) is the only way to read a child's own resource usage; std has no safe wrapper"
)]

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::Error;

/// What one run of a program cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    /// How it ended.
    pub status: ExitStatus,
    /// From spawn to exit.
    pub wall: Duration,
    /// CPU time in user mode, all threads.
    pub user: Duration,
    /// CPU time in the kernel, all threads.
    pub system: Duration,
    /// Peak resident set size, KiB: the highest `VmHWM` seen in
    /// `/proc/PID/status`, read every [`RSS_SAMPLE_INTERVAL`]. (`wait4`'s
    /// own figure is no use here: a child started with `vfork`, as
    /// `Command` does, inherits its parent's peak.)
    pub peak_rss_kib: u64,
}

impl Measured {
    /// User plus system CPU time.
    pub fn cpu(&self) -> Duration {
        self.user + self.system
    }
}

/// How often a running program's peak memory is read.
pub const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(5);

/// The peak resident memory so far of a running process, KiB (`VmHWM` in
/// `/proc/PID/status`); `None` once it has ended.
pub fn high_water_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn timeval(tv: libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(u64::from(micros))
}

/// Runs `command` to its end and measures it. Its standard streams are as
/// the command sets them.
///
/// ```
/// use std::process::Command;
/// let run = shardline_harness::measure::run(&mut Command::new("true")).unwrap();
/// assert!(run.status.success());
/// assert!(run.wall > std::time::Duration::ZERO);
/// ```
pub fn run(command: &mut Command) -> Result<Measured, Error> {
    let started = Instant::now();
    let child = command
        .spawn()
        .map_err(|e| Error::io(format!("starting {:?}", command.get_program()), e))?;
    let pid = libc::pid_t::try_from(child.id())
        .map_err(|_| Error::Binary(format!("process id {} out of range", child.id())))?;
    // The sampler stops before the child is reaped, so it never reads a
    // reused pid.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        let id = child.id();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                if let Some(kib) = high_water_kib(id) {
                    peak = peak.max(kib);
                }
                std::thread::sleep(RSS_SAMPLE_INTERVAL);
            }
            peak
        })
    };
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // Waits for the child to end without reaping it (WNOWAIT), so the
    // sampler can stop while the pid is still the child's.
    // SAFETY: an all-zero siginfo_t is a valid value of this plain C struct.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child, not yet reaped; `info` is valid
        // for writes for the duration of the call.
        let waited = unsafe {
            libc::waitid(
                libc::P_PID,
                child.id(),
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if waited == 0 {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(Error::io(format!("waiting for process {pid}"), error));
        }
    }
    let wall = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Release);
    let peak_rss_kib = sampler.join().unwrap_or(0);
    loop {
        // SAFETY: `pid` is our own child, ended but not yet reaped (std's
        // `Child` is never waited on: it is dropped below without `wait`);
        // `status` and `usage` are valid for writes for the duration of the
        // call.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(Error::io(format!("waiting for process {pid}"), error));
        }
    }
    drop(child);
    Ok(Measured {
        status: ExitStatus::from_raw(status),
        wall,
        user: timeval(usage.ru_utime),
        system: timeval(usage.ru_stime),
        peak_rss_kib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_child_is_charged_its_cpu_time() {
        // A shell loop that spins for a while.
        let run =
            run(Command::new("sh")
                .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"]))
            .unwrap();
        assert!(run.status.success());
        assert!(run.cpu() > Duration::from_millis(10), "{run:?}");
        assert!(run.cpu() <= run.wall + Duration::from_millis(20), "{run:?}");
        assert!(run.peak_rss_kib > 0);
    }

    #[test]
    fn the_peak_memory_is_the_childs_own() {
        // Holds 30 MB in a shell variable for a moment.
        let run = run(Command::new("sh").args([
            "-c",
            "x=$(head -c 30000000 /dev/zero | tr '\\0' a); sleep 0.1; echo ${#x} > /dev/null",
        ]))
        .unwrap();
        assert!(run.status.success());
        assert!(run.peak_rss_kib > 29_000, "{run:?}");
        assert!(run.peak_rss_kib < 200_000, "{run:?}");
    }

    #[test]
    fn the_exit_status_is_the_childs() {
        let run = run(Command::new("sh").args(["-c", "exit 3"])).unwrap();
        assert_eq!(run.status.code(), Some(3));
    }
}
