//! Service processes that cannot outlive the test process.
//!
//! Every service is a child process started with `PR_SET_PDEATHSIG`, so the
//! kernel signals it when the test process ends — normally, by a panic, by
//! `kill -9` or by Ctrl-C — and no emulator is left behind. The death signal
//! fires when the *thread* that forked the child ends, and test threads end
//! after every test, so all children are forked by one spawner thread that
//! lives as long as the process. A process that changes its own
//! credentials (setuid) loses the signal, so services that would drop
//! privileges are started as their account instead (`Command::uid`, which
//! applies before the signal is set).

#![expect(
    unsafe_code,
    reason = "fork-time prctl and kill(2) have no safe std equivalent"
)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::Error;

/// How long a service may take to exit after its stop signal before it is
/// killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

struct SpawnRequest {
    command: Command,
    death_signal: i32,
    reply: mpsc::Sender<std::io::Result<Child>>,
}

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("harness-spawner".into())
            .spawn(move || {
                for mut request in rx {
                    let parent = std::process::id();
                    let signal = request.death_signal;
                    // SAFETY: the closure runs in the forked child before exec
                    // and only calls async-signal-safe functions.
                    unsafe {
                        request.command.pre_exec(move || {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) != 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                            // The parent may have died before prctl took effect.
                            if libc::getppid() as u32 != parent {
                                libc::_exit(1);
                            }
                            Ok(())
                        });
                    }
                    let _ = request.reply.send(request.command.spawn());
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot start the harness spawner thread: {e}"));
        Mutex::new(tx)
    })
}

/// A running service: its child process and the log file of its output.
#[derive(Debug)]
pub(crate) struct ServiceProcess {
    service: &'static str,
    child: Child,
    log: PathBuf,
    stop_signal: i32,
}

impl ServiceProcess {
    /// Starts `command` with stderr (and stdout unless `pipe_stdout`) going
    /// to `log`. The process gets `death_signal` when the test process ends,
    /// and `stop_signal` when the handle is stopped or dropped.
    pub(crate) fn spawn(
        service: &'static str,
        mut command: Command,
        log: &Path,
        pipe_stdout: bool,
        stop_signal: i32,
    ) -> Result<Self, Error> {
        let program = format!("{command:?}");
        let log_file =
            File::create(log).map_err(|e| Error::io(format!("creating {}", log.display()), e))?;
        let err_file = log_file
            .try_clone()
            .map_err(|e| Error::io(format!("opening {}", log.display()), e))?;
        command.stdin(Stdio::null()).stderr(err_file);
        if pipe_stdout {
            command.stdout(Stdio::piped());
        } else {
            command.stdout(log_file);
        }
        let (reply, answer) = mpsc::channel();
        let request = SpawnRequest {
            command,
            death_signal: stop_signal,
            reply,
        };
        let sent = spawner()
            .lock()
            .map_err(|_| "the spawner lock is poisoned".to_string())
            .and_then(|tx| tx.send(request).map_err(|e| e.to_string()));
        let spawned = sent.map_err(std::io::Error::other).and_then(|()| {
            answer
                .recv()
                .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
        });
        let child = spawned.map_err(|source| Error::Spawn { program, source })?;
        Ok(Self {
            service,
            child,
            log: log.to_path_buf(),
            stop_signal,
        })
    }

    /// Reads the first line the service prints on stdout (its "ready" line).
    pub(crate) fn read_ready_line(&mut self, timeout: Duration) -> Result<String, Error> {
        let stdout: Option<ChildStdout> = self.child.stdout.take();
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = stdout {
            std::thread::spawn(move || {
                let mut line = String::new();
                let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
                let _ = tx.send(read);
            });
        }
        match rx.recv_timeout(timeout) {
            Ok(Ok(line)) if !line.trim().is_empty() => Ok(line.trim().to_owned()),
            _ => Err(self.not_ready(timeout)),
        }
    }

    /// The error for a service that did not come up, with its log's tail.
    pub(crate) fn not_ready(&self, waited: Duration) -> Error {
        Error::NotReady {
            service: self.service,
            waited,
            log: self.log.clone(),
            tail: log_tail(&self.log),
        }
    }

    /// Whether the process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` to the process.
    pub(crate) fn signal(&self, signal: i32) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid; it has not been reaped
            // while `self.child` is alive and un-waited.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    /// Sends the stop signal and waits for the process to exit, killing it
    /// after a grace period.
    pub(crate) fn stop(&mut self) {
        if !self.is_running() {
            return;
        }
        self.signal(self.stop_signal);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// Kills the process at once (SIGKILL) and reaps it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last lines of a service's log, for error messages.
pub(crate) fn log_tail(path: &Path) -> String {
    const TAIL_BYTES: u64 = 2048;
    let Ok(mut file) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

/// Polls `ready` every 20 ms until it returns true or `timeout` passes.
pub(crate) fn poll_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free TCP port on 127.0.0.1, for servers that cannot bind port 0 and
/// report it. Another process may take it before the server binds it, so
/// callers retry a failed start with a new port.
pub(crate) fn free_port() -> Result<u16, Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::io("binding 127.0.0.1:0", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("reading a bound address", e))
}

/// A fresh directory for one service instance's data and logs, under the
/// system temporary directory, removed when the returned guard drops.
pub(crate) fn run_dir(service: &str) -> Result<tempfile::TempDir, Error> {
    tempfile::Builder::new()
        .prefix(&format!("shardline-{service}-"))
        .tempdir()
        .map_err(|e| Error::io(format!("creating a temporary directory for {service}"), e))
}

/// The uid and gid of a system account, from /etc/passwd.
pub(crate) fn system_account(name: &str) -> Result<(u32, u32), Error> {
    let passwd =
        std::fs::read_to_string("/etc/passwd").map_err(|e| Error::io("reading /etc/passwd", e))?;
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            if fields.next()? != name {
                return None;
            }
            let uid = fields.nth(1)?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some((uid, gid))
        })
        .ok_or_else(|| Error::Install {
            what: "a service account",
            detail: format!(
                "running as root, but there is no `{name}` account to run the service as \
                 (is its Debian package installed?)"
            ),
        })
}
