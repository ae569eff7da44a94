//! `cargo xtask deb [--smoke]`: log-streamer as a Debian package.
//!
//! 1. cargo-deb, at a pinned release, is installed into `.harness/cargo-deb`
//!    on first use (nothing installed by hand);
//! 2. it builds `shardline-log-streamer_*.deb` from the metadata in
//!    `bins/log-streamer/Cargo.toml` — the release build, or with `--smoke`
//!    the debug build the tests already made (what `cargo xtask test`
//!    runs);
//! 3. the package must hold the binary, the systemd unit and the default
//!    config (a conffile);
//! 4. as root it is installed with `dpkg -i`, the installed binary and unit
//!    are checked (`log-streamer --version`, `systemd-analyze verify`,
//!    `systemctl status` where systemd runs the machine), and it is purged;
//!    the binary must be gone after.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, step, target_dir, workspace_root};

/// The cargo-deb release the package is built with.
const CARGO_DEB_VERSION: &str = "3.8.0";
/// The package's name (`[package.metadata.deb]`).
const PACKAGE: &str = "shardline-log-streamer";
/// What the package must install.
const FILES: &[&str] = &[
    "./usr/bin/log-streamer",
    "./lib/systemd/system/shardline-log-streamer.service",
    "./etc/shardline/log-streamer.toml",
];
const UNIT: &str = "/lib/systemd/system/shardline-log-streamer.service";

fn cargo_deb() -> Result<PathBuf, String> {
    let root = workspace_root().join(".harness/cargo-deb");
    let binary = root.join("bin/cargo-deb");
    if !binary.exists() {
        step(
            &format!("install cargo-deb {CARGO_DEB_VERSION}"),
            cargo()
                .args(["install", "--locked", "--quiet", "cargo-deb", "--version"])
                .arg(CARGO_DEB_VERSION)
                .arg("--root")
                .arg(&root),
        )?;
    }
    Ok(binary)
}

fn output(command: &mut Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("running {command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub(crate) fn deb(args: &[String]) -> Result<(), String> {
    let smoke = match args {
        [] => false,
        [flag] if flag == "--smoke" => true,
        _ => return Err("usage: cargo xtask deb [--smoke]".into()),
    };
    let cargo_deb = cargo_deb()?;
    let out_dir = target_dir().join("debian");
    let mut build = Command::new(&cargo_deb);
    build
        .current_dir(workspace_root())
        .args(["--package", "log-streamer", "--output"])
        .arg(&out_dir);
    if smoke {
        // The debug binary `cargo test --workspace` built, as it is: the
        // package's shape is what is checked, not the optimised build.
        // (Building log-streamer alone would build its dependencies again
        // with its own features: minutes.) Stripped and with fast
        // compression, it packs in seconds.
        build.args(["--profile", "dev", "--no-build", "--strip", "--fast"]);
    }
    step("cargo deb -p log-streamer", &mut build)?;
    let deb = newest_deb(&out_dir)?;
    let contents = output(Command::new("dpkg-deb").arg("--contents").arg(&deb))?;
    for file in FILES {
        if !contents.lines().any(|line| line.ends_with(file)) {
            return Err(format!("{} lacks {file}:\n{contents}", deb.display()));
        }
    }
    let conffiles = output(
        Command::new("dpkg-deb")
            .args(["--info"])
            .arg(&deb)
            .arg("conffiles"),
    )?;
    if !conffiles.contains("/etc/shardline/log-streamer.toml") {
        return Err(format!("the config is not a conffile: {conffiles}"));
    }
    eprintln!("    {} holds {}", deb.display(), FILES.join(", "));
    if !is_root() {
        eprintln!("    not root: the package is built and inspected, not installed");
        return Ok(());
    }
    step("dpkg -i", Command::new("dpkg").arg("-i").arg(&deb))?;
    let installed = check_installed();
    let purged = step(
        "dpkg --purge",
        Command::new("dpkg").args(["--purge", PACKAGE]),
    );
    installed?;
    purged?;
    if Path::new("/usr/bin/log-streamer").exists() {
        return Err("/usr/bin/log-streamer is still there after dpkg --purge".into());
    }
    Ok(())
}

fn check_installed() -> Result<(), String> {
    let version = output(Command::new("/usr/bin/log-streamer").arg("--version"))?;
    eprintln!("    installed: {}", version.trim());
    step(
        "systemd-analyze verify (installed unit)",
        Command::new("systemd-analyze").args(["verify", UNIT]),
    )?;
    if Path::new("/run/systemd/system").exists() {
        // The config names a stream that may not exist: the unit is
        // known to systemd and can be asked about, whatever its state.
        let status = Command::new("systemctl")
            .args(["status", "--no-pager", PACKAGE])
            .status()
            .map_err(|e| format!("systemctl status: {e}"))?;
        // 0 running, 3 not running: both mean systemd knows the unit;
        // 4 means it does not.
        if status.code() == Some(4) {
            return Err("systemctl does not know shardline-log-streamer".into());
        }
    } else {
        eprintln!("    systemd is not running this machine: the unit is verified, not started");
    }
    Ok(())
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0")
}

/// The newest `.deb` in `dir`.
fn newest_deb(dir: &Path) -> Result<PathBuf, String> {
    std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|e| e == "deb"))
        .max_by_key(|entry| entry.metadata().and_then(|m| m.modified()).ok())
        .map(|entry| entry.path())
        .ok_or_else(|| format!("no .deb in {}", dir.display()))
}
