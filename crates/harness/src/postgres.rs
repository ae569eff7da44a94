//! A throwaway PostgreSQL 15 cluster with logical decoding and wal2json.
//!
//! The machine's own PostgreSQL service is never touched: each instance is a
//! fresh `initdb` in a temporary directory, started as a child process on a
//! free 127.0.0.1 port with `wal_level = logical`, trust authentication and
//! its Unix socket in its own directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::Error;
use crate::install;
use crate::process::{ServiceProcess, free_port, poll_until, run_dir, system_account};

/// How long a fresh cluster may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Ports tried before giving up (another process may take a free port first).
const PORT_ATTEMPTS: usize = 3;
/// Some PostgreSQL builds (Debian's 15.19 here) only let slots use the
/// output plugins this setting lists, and wal2json is not among the
/// defaults; builds without the setting allow every plugin.
const OUTPUT_PLUGIN_ALLOWLIST: &str = "output_plugin_libraries";
/// The superuser `initdb` creates.
pub(crate) const SUPERUSER: &str = "postgres";

/// A running throwaway PostgreSQL cluster.
#[derive(Debug)]
pub struct Postgres {
    process: Mutex<Option<ServiceProcess>>,
    port: u16,
    bin: PathBuf,
    data: PathBuf,
    run_dir: tempfile::TempDir,
    user: Option<(u32, u32)>,
}

impl Postgres {
    /// One cluster for the whole test process, started on first use. Tests
    /// share it through databases and slots of their own
    /// ([`crate::unique_name`]).
    pub fn shared() -> Result<&'static Postgres, Error> {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        static STARTING: Mutex<()> = Mutex::new(());
        if let Some(p) = SHARED.get() {
            return Ok(p);
        }
        let _guard = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = SHARED.get() {
            return Ok(p);
        }
        let started = Postgres::start()?;
        Ok(SHARED.get_or_init(|| started))
    }

    /// Initialises and starts a cluster of its own.
    pub fn start() -> Result<Postgres, Error> {
        let bin = install::ensure_postgres()?;
        let run_dir = run_dir("postgres")?;
        // initdb refuses to run as root: run the cluster as `postgres`.
        let user = if install::is_root() {
            Some(system_account(SUPERUSER)?)
        } else {
            None
        };
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(run_dir.path(), Some(uid), Some(gid))
                .map_err(|e| Error::io(format!("chown {}", run_dir.path().display()), e))?;
        }
        let data = run_dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        initdb.current_dir(run_dir.path());
        as_user(&mut initdb, user);
        let output = initdb.output().map_err(|source| Error::Spawn {
            program: "initdb".into(),
            source,
        })?;
        if !output.status.success() {
            return Err(Error::Install {
                what: "a PostgreSQL cluster (initdb)",
                detail: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            match launch(&bin, &data, run_dir.path(), port, user) {
                Ok(process) => {
                    return Ok(Postgres {
                        process: Mutex::new(Some(process)),
                        port,
                        bin,
                        data,
                        run_dir,
                        user,
                    });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            Error::io(
                "starting PostgreSQL",
                std::io::Error::other("no attempt made"),
            )
        }))
    }

    /// The port the cluster listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `database` as the superuser, e.g.
    /// `postgres://postgres@127.0.0.1:5433/db`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database of that name.
    pub fn create_database(&self, name: &str) -> Result<(), Error> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))
            .map(|_| ())
    }

    /// Runs SQL through `psql` and returns its unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, Error> {
        self.psql_raw(database, sql)
            .map_err(|message| Error::call("PostgreSQL", sql.to_owned(), message))
    }

    fn psql_raw(&self, database: &str, sql: &str) -> Result<String, String> {
        psql(&self.bin, self.port, database, sql)
    }

    /// Stops the server with an immediate shutdown (SIGQUIT: no checkpoint,
    /// crash recovery on the next start) and starts it again on the same
    /// port — what a crash of the database looks like to a CDC reader.
    pub fn restart_immediate(&self) -> Result<(), Error> {
        {
            let mut guard = self.process.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(mut process) = guard.take() {
                process.signal(libc::SIGQUIT);
                if !poll_until(START_TIMEOUT, || !process.is_running()) {
                    process.kill();
                }
            }
        }
        let process = launch(
            &self.bin,
            &self.data,
            self.run_dir.path(),
            self.port,
            self.user,
        )?;
        *self.process.lock().unwrap_or_else(|e| e.into_inner()) = Some(process);
        Ok(())
    }

    /// The directory holding the cluster's data, socket and logs.
    pub fn run_dir(&self) -> &Path {
        self.run_dir.path()
    }
}

fn as_user(command: &mut Command, user: Option<(u32, u32)>) {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
}

/// Starts the postmaster on `port` and waits until it answers a query.
fn launch(
    bin: &Path,
    data: &Path,
    run_dir: &Path,
    port: u16,
    user: Option<(u32, u32)>,
) -> Result<ServiceProcess, Error> {
    let mut command = Command::new(bin.join("postgres"));
    command
        .arg("-D")
        .arg(data)
        .arg("-p")
        .arg(port.to_string())
        .args(["-c", "listen_addresses=127.0.0.1"])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", run_dir.display()))
        .args(["-c", "wal_level=logical"])
        .args(["-c", "max_replication_slots=64"])
        .args(["-c", "max_wal_senders=64"])
        .args(["-c", "max_connections=200"])
        // fsync only guards against an OS crash, which tests do not
        // simulate; an immediate shutdown of the server keeps all WAL.
        .args(["-c", "fsync=off"]);
    if knows_setting(bin, OUTPUT_PLUGIN_ALLOWLIST) {
        command.arg("-c").arg(format!(
            "{OUTPUT_PLUGIN_ALLOWLIST}=pgoutput,test_decoding,wal2json"
        ));
    }
    command.current_dir(run_dir);
    as_user(&mut command, user);
    let log = run_dir.join(format!("postgres-{port}.log"));
    // SIGINT is PostgreSQL's "fast shutdown".
    let mut process = ServiceProcess::spawn("PostgreSQL", command, &log, false, libc::SIGINT)?;
    let ready = poll_until(START_TIMEOUT, || {
        process.is_running() && psql(bin, port, "postgres", "SELECT 1").is_ok()
    });
    if !ready {
        return Err(process.not_ready(START_TIMEOUT));
    }
    Ok(process)
}

/// Runs SQL through `psql` as the superuser; stdout on success, stderr on
/// failure.
fn psql(bin: &Path, port: u16, database: &str, sql: &str) -> Result<String, String> {
    let output = Command::new(bin.join("psql"))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", "127.0.0.1", "-U", SUPERUSER])
        .arg("-p")
        .arg(port.to_string())
        .arg("-d")
        .arg(database)
        .arg("-c")
        .arg(sql)
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// Whether this build of the server has a configuration setting `name`.
fn knows_setting(bin: &Path, name: &str) -> bool {
    Command::new(bin.join("postgres"))
        .arg("--describe-config")
        .output()
        .is_ok_and(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|line| line.split('\t').next() == Some(name))
        })
}
