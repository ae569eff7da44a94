//! Installs what the services need, once, into the project-local `.harness/`.
//!
//! - kinesalite: the npm package, pinned, into `.harness/node`;
//! - moto (Firehose, S3, CloudWatch) and the AWS Kinesis aggregation library
//!   (a reference deaggregator for the producer's tests): PyPI packages,
//!   pinned, into the virtual environment `.harness/venv`;
//! - PostgreSQL 15 with wal2json, and Mosquitto: Debian packages, installed
//!   with `apt-get` when missing (the machine's own services are not touched:
//!   the harness starts throwaway instances of its own).
//!
//! Every step is idempotent and guarded by a file lock, so concurrent test
//! binaries can call it; `cargo xtask test` calls [`ensure_all`] first so the
//! tests themselves find everything in place.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// The kinesalite release the harness runs (npm). Measured on this machine
/// kind: starts in < 0.3 s, ~20k records/s, enforces 500 records per request
/// and 1 MiB per record, but not 5 MiB per request.
pub const KINESALITE_VERSION: &str = "3.3.3";
/// The moto release (PyPI) that serves Firehose, S3 and CloudWatch.
pub const MOTO_VERSION: &str = "5.2.5";
/// The AWS Kinesis aggregation library (PyPI `aws-kinesis-agg`): AWS's own
/// deaggregator, used as the reference for shardline's KPL aggregation.
pub const KINESIS_AGG_VERSION: &str = "1.2.3";
/// The PostgreSQL major version whose binaries the harness runs.
pub const POSTGRES_MAJOR: u32 = 15;

/// The directory all harness installs and run state live in.
///
/// `SHARDLINE_HARNESS_DIR` overrides it; by default it is `.harness/` at the
/// workspace root (git-ignored).
pub fn harness_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SHARDLINE_HARNESS_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // crates/harness → the workspace root.
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .join(".harness")
}

/// Installs everything the harness can start.
pub fn ensure_all() -> Result<(), Error> {
    ensure_kinesalite()?;
    ensure_python()?;
    ensure_postgres()?;
    ensure_mosquitto()?;
    Ok(())
}

/// Makes sure kinesalite is installed; returns the directory whose
/// `node_modules` holds it.
pub fn ensure_kinesalite() -> Result<PathBuf, Error> {
    let dir = harness_dir().join("node");
    let marker = dir.join("node_modules/kinesalite/package.json");
    if installed_version(&marker).as_deref() == Some(KINESALITE_VERSION) {
        return Ok(dir);
    }
    which("node", "Node.js (`node`)")?;
    let _lock = lock("node")?;
    if installed_version(&marker).as_deref() == Some(KINESALITE_VERSION) {
        return Ok(dir);
    }
    create_dir(&dir)?;
    // A package.json of our own makes npm install here, not in a parent.
    let manifest = dir.join("package.json");
    if !manifest.exists() {
        write(
            &manifest,
            "{\"name\": \"shardline-harness-node\", \"private\": true}\n",
        )?;
    }
    run(
        "kinesalite",
        Command::new("npm")
            .arg("install")
            .arg("--no-audit")
            .arg("--no-fund")
            .arg("--loglevel=error")
            .arg(format!("kinesalite@{KINESALITE_VERSION}"))
            .current_dir(&dir),
    )?;
    Ok(dir)
}

/// Makes sure the virtual environment with moto and aws-kinesis-agg exists;
/// returns its Python interpreter.
pub fn ensure_python() -> Result<PathBuf, Error> {
    let venv = harness_dir().join("venv");
    let python = venv.join("bin/python");
    let marker = venv.join("shardline-requirements.txt");
    let wanted = format!("moto[server]=={MOTO_VERSION}\naws-kinesis-agg=={KINESIS_AGG_VERSION}\n");
    let ready = || python.exists() && fs::read_to_string(&marker).ok().as_deref() == Some(&wanted);
    if ready() {
        return Ok(python);
    }
    let _lock = lock("venv")?;
    if ready() {
        return Ok(python);
    }
    if !python.exists() {
        let system_python = which("python3", "Python 3 (`python3`)")?;
        run(
            "a Python virtual environment",
            Command::new(system_python).args(["-m", "venv"]).arg(&venv),
        )?;
    }
    let requirements = venv.join("requirements.txt");
    write(&requirements, &wanted)?;
    run(
        "moto and aws-kinesis-agg",
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("-r")
            .arg(&requirements),
    )?;
    write(&marker, &wanted)?;
    Ok(python)
}

/// The directory of the PostgreSQL server binaries (`initdb`, `postgres`).
pub fn postgres_bin_dir() -> PathBuf {
    PathBuf::from(format!("/usr/lib/postgresql/{POSTGRES_MAJOR}/bin"))
}

/// Makes sure PostgreSQL 15 and the wal2json plugin are installed.
pub fn ensure_postgres() -> Result<PathBuf, Error> {
    let bin = postgres_bin_dir();
    let plugin = PathBuf::from(format!(
        "/usr/lib/postgresql/{POSTGRES_MAJOR}/lib/wal2json.so"
    ));
    if bin.join("initdb").exists() && plugin.exists() {
        return Ok(bin);
    }
    let _lock = lock("apt")?;
    if !(bin.join("initdb").exists() && plugin.exists()) {
        apt_install(&[
            &format!("postgresql-{POSTGRES_MAJOR}"),
            &format!("postgresql-{POSTGRES_MAJOR}-wal2json"),
        ])?;
    }
    Ok(bin)
}

/// Makes sure the Mosquitto broker binary is installed; returns its path.
pub fn ensure_mosquitto() -> Result<PathBuf, Error> {
    let found = || {
        ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    };
    if let Some(path) = found() {
        return Ok(path);
    }
    let _lock = lock("apt")?;
    if found().is_none() {
        apt_install(&["mosquitto"])?;
    }
    found().ok_or(Error::Install {
        what: "mosquitto",
        detail: "apt-get reported success but no mosquitto binary is in /usr/sbin or /usr/bin"
            .into(),
    })
}

fn apt_install(packages: &[&str]) -> Result<(), Error> {
    let what = "Debian packages";
    if !is_root() {
        return Err(Error::Install {
            what,
            detail: format!(
                "{} missing and this is not root; run `sudo apt-get install {}`",
                packages.join(", "),
                packages.join(" ")
            ),
        });
    }
    let install = |quiet_update: bool| -> Result<(), Error> {
        if quiet_update {
            run(what, Command::new("apt-get").args(["update", "-qq"]))?;
        }
        run(
            what,
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(packages)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    // The package lists may be missing or stale on a fresh machine.
    install(false).or_else(|_| install(true))
}

/// Whether this process runs as root (only root may run `apt-get`, and
/// PostgreSQL and Mosquitto refuse to or should not run as root).
pub(crate) fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective user.
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn installed_version(package_json: &Path) -> Option<String> {
    let text = fs::read_to_string(package_json).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("version")?.as_str().map(str::to_owned)
}

/// Finds `program` on `PATH`.
pub(crate) fn which(program: &str, what: &'static str) -> Result<PathBuf, Error> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or(Error::Install {
            what,
            detail: format!("`{program}` is not on PATH"),
        })
}

/// Holds an exclusive lock on `.harness/<name>.lock` until dropped.
fn lock(name: &str) -> Result<File, Error> {
    let dir = harness_dir();
    create_dir(&dir)?;
    let path = dir.join(format!("{name}.lock"));
    let file =
        File::create(&path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    file.lock()
        .map_err(|e| Error::io(format!("locking {}", path.display()), e))?;
    Ok(file)
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Runs an install command, keeping its output for the error.
fn run(what: &'static str, command: &mut Command) -> Result<(), Error> {
    let shown = format!("{command:?}");
    let output = command.output().map_err(|source| Error::Spawn {
        program: shown.clone(),
        source,
    })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
    Err(Error::Install {
        what,
        detail: format!(
            "{shown} exited with {}:\n{}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ),
    })
}
