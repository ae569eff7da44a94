//! `cargo xtask library [--verify] [--bless]`: the checks that the crates
//! work as a library for other Rust services.
//!
//! 1. The front door built for parsing only (`logs`, `cdc`, `iot`, no
//!    `kinesis` or `firehose`) compiles no AWS crate.
//!    Each feature set of the producer (none, `kinesis`, `firehose`) and
//!    the parsing-only front door is clippy-clean on its own.
//! 2. `cargo package` for every publishable crate (`--verify` also builds
//!    each from its package, in a target directory of its own: about ten
//!    minutes on 2 cores, so not in `cargo xtask test`), and `cargo publish --dry-run` for the crates
//!    that depend on none of the others.
//! 3. The public API of the front door and of the crates it re-exports,
//!    listed from rustdoc's JSON (`bins/public-api`), against the snapshot
//!    committed beside each crate (`public-api.txt`); `--bless` rewrites
//!    the snapshots.
//! 4. A crate outside the workspace, made in `target/scratch`, depending on
//!    `shardline` by path and on the newest `aws-sdk-kinesis` 1.x — newer
//!    than the workspace's lock — resolves to one copy of the SDK, builds,
//!    and runs the README's embedding example against kinesalite.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{cargo, step, target_dir, workspace_root};

/// The crates that are never published.
const UNPUBLISHED: &[&str] = &[
    "shardline-harness",
    "shardline-chaos",
    "shardline-demo",
    "shardline-benches",
    "shardline-public-api",
    "xtask",
];

/// The publishable crates that depend on no other crate of the workspace:
/// the only ones `cargo publish --dry-run` can check before any is on
/// crates.io (`docs/publishing.md`).
const LEAVES: &[&str] = &["shardline-partition-key", "shardline-validate"];

/// The packages of the workspace's own crates that an earlier `cargo
/// package` unpacked. Cargo verifies a crate against the packages of the
/// crates it depends on, served from a temporary registry under
/// `target/package`, and unpacks each into `$CARGO_HOME/registry/src/`
/// by name and version; an unpacked crate is never unpacked again. While
/// the version stays 0.1.0, a second run would build the first run's
/// sources.
fn forget_unpacked_packages() -> Result<(), String> {
    let remove = |path: &Path| {
        std::fs::remove_dir_all(path).map_err(|e| format!("removing {}: {e}", path.display()))
    };
    let package_dir = target_dir().join("package");
    if package_dir.exists() {
        remove(&package_dir)?;
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let Ok(registries) = std::fs::read_dir(cargo_home.join("registry/src")) else {
        return Ok(());
    };
    // Local registries' directories are named `-<hash>`; crates.io's is not.
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(crates) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for unpacked in crates.flatten() {
            let name = unpacked.file_name().to_string_lossy().into_owned();
            let ours = [
                "shardline",
                "log-streamer",
                "cdc-forwarder",
                "sensor-forwarder",
                "multi-source",
            ]
            .iter()
            .any(|prefix| name.starts_with(prefix));
            if ours {
                remove(&unpacked.path())?;
            }
        }
    }
    Ok(())
}

/// The crates whose public API is snapshotted: the front door and what it
/// re-exports for sending records. (directory, package)
const API_CRATES: &[(&str, &str)] = &[
    ("crates/shardline", "shardline"),
    ("crates/producer", "shardline-producer"),
    ("crates/core", "shardline-core"),
    ("crates/partition-key", "shardline-partition-key"),
];

pub(crate) fn library(args: &[String]) -> Result<(), String> {
    let mut verify = false;
    let mut bless = false;
    for arg in args {
        match arg.as_str() {
            "--verify" => verify = true,
            "--bless" => bless = true,
            other => return Err(format!("unknown flag `{other}` for `cargo xtask library`")),
        }
    }
    no_aws_for_parsing()?;
    features()?;
    package(verify)?;
    public_api(bless)?;
    scratch()
}

fn no_aws_for_parsing() -> Result<(), String> {
    eprintln!("==> the front door for parsing only compiles no AWS crate");
    let output = cargo()
        .args([
            "tree",
            "--quiet",
            "--package",
            "shardline",
            "--no-default-features",
            "--features",
            "logs,cdc,iot",
            "--edges",
            "normal",
            "--prefix",
            "none",
        ])
        .output()
        .map_err(|e| format!("running cargo tree: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    // `name vX.Y.Z`, once per place it is depended on.
    let crates: std::collections::BTreeSet<&str> =
        tree.lines().filter_map(|l| l.split(' ').next()).collect();
    let aws: Vec<&str> = crates
        .iter()
        .copied()
        .filter(|name| name.starts_with("aws-"))
        .collect();
    if !aws.is_empty() {
        return Err(format!(
            "`shardline` with logs, cdc and iot only pulls in AWS crates: {aws:?}"
        ));
    }
    eprintln!("    {} crates, none of them AWS", crates.len());
    Ok(())
}

/// The producer with one service, or none, and the front door for
/// parsing only: each compiles and is clippy-clean on its own (the
/// workspace build has every feature on).
fn features() -> Result<(), String> {
    for (package, features) in [
        ("shardline-producer", ""),
        ("shardline-producer", "kinesis"),
        ("shardline-producer", "firehose"),
        ("shardline", "logs,cdc,iot"),
    ] {
        let shown = if features.is_empty() {
            "none"
        } else {
            features
        };
        step(
            &format!("clippy {package} with features: {shown}"),
            cargo().args([
                "clippy",
                "--quiet",
                "--lib",
                "--package",
                package,
                "--no-default-features",
                "--features",
                features,
                "--",
                "-D",
                "warnings",
            ]),
        )?;
    }
    Ok(())
}

fn package(verify: bool) -> Result<(), String> {
    let mut command = cargo();
    command.args(["package", "--workspace", "--allow-dirty", "--quiet"]);
    for crate_ in UNPUBLISHED {
        command.args(["--exclude", crate_]);
    }
    if verify {
        forget_unpacked_packages()?;
        // A registry crate's build is never redone for a changed source
        // either: the verifying builds get a target directory of their own,
        // made anew.
        let verify_target = target_dir().join("package-verify");
        if verify_target.exists() {
            std::fs::remove_dir_all(&verify_target)
                .map_err(|e| format!("removing {}: {e}", verify_target.display()))?;
        }
        command.env("CARGO_TARGET_DIR", &verify_target);
    } else {
        command.arg("--no-verify");
    }
    step("cargo package (every publishable crate)", &mut command)?;
    let mut command = cargo();
    command.args(["publish", "--dry-run", "--allow-dirty", "--quiet"]);
    for crate_ in LEAVES {
        command.args(["--package", crate_]);
    }
    step("cargo publish --dry-run (the leaf crates)", &mut command)
}

fn public_api(bless: bool) -> Result<(), String> {
    step(
        "build the API lister",
        cargo().args(["build", "--quiet", "--package", "shardline-public-api"]),
    )?;
    let lister = target_dir().join("debug/public-api");
    let mut changed = Vec::new();
    for (dir, package) in API_CRATES {
        step(
            &format!("rustdoc JSON of {package}"),
            cargo()
                // rustdoc's JSON output is unstable; the stable toolchain
                // writes it when told this is a bootstrap build.
                .env("RUSTC_BOOTSTRAP", "1")
                .args([
                    "rustdoc",
                    "--quiet",
                    "--lib",
                    "--all-features",
                    "--package",
                    package,
                    "--",
                    "-Zunstable-options",
                    "--output-format",
                    "json",
                ]),
        )?;
        let json = target_dir()
            .join("doc")
            .join(format!("{}.json", package.replace('-', "_")));
        let output = Command::new(&lister)
            .arg(&json)
            .output()
            .map_err(|e| format!("running {}: {e}", lister.display()))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        let now = String::from_utf8_lossy(&output.stdout).into_owned();
        let snapshot = workspace_root().join(dir).join("public-api.txt");
        if bless {
            std::fs::write(&snapshot, &now)
                .map_err(|e| format!("writing {}: {e}", snapshot.display()))?;
            continue;
        }
        let committed = std::fs::read_to_string(&snapshot).unwrap_or_default();
        if committed != now {
            let old: std::collections::BTreeSet<&str> = committed.lines().collect();
            let new: std::collections::BTreeSet<&str> = now.lines().collect();
            eprintln!(
                "    {package}'s public API differs from {}:",
                snapshot.display()
            );
            for line in old.difference(&new) {
                eprintln!("    - {line}");
            }
            for line in new.difference(&old) {
                eprintln!("    + {line}");
            }
            changed.push(*package);
        }
    }
    if bless {
        eprintln!("    wrote the snapshots (public-api.txt beside each crate)");
        Ok(())
    } else if changed.is_empty() {
        eprintln!("    the public API matches the snapshots");
        Ok(())
    } else {
        Err(format!(
            "the public API of {changed:?} changed: if that is meant (a new minor \
             version when something was removed or changed), run `cargo xtask library --bless` \
             and commit the snapshots"
        ))
    }
}

/// More than the workspace's lock holds (1.126.0, the libraries' minimum):
/// the scratch crate takes the newest 1.x release at or above it.
const SCRATCH_KINESIS: &str = "1.127";

fn scratch() -> Result<(), String> {
    let root = workspace_root();
    let dir = target_dir().join("scratch/front-door");
    std::fs::create_dir_all(dir.join("src")).map_err(|e| format!("creating {dir:?}: {e}"))?;
    let front_door = root.join("crates/shardline");
    let front_door = front_door
        .canonicalize()
        .map_err(|e| format!("{}: {e}", front_door.display()))?;
    let manifest = format!(
        r#"[package]
name = "front-door-scratch"
version = "0.0.0"
edition = "2024"
publish = false

# Not a member of the shardline workspace.
[workspace]

[dependencies]
shardline = {{ path = "{front_door}" }}
aws-sdk-kinesis = {{ version = "{SCRATCH_KINESIS}", default-features = false, features = ["default-https-client", "rt-tokio"] }}
aws-config = {{ version = "1.13", default-features = false, features = ["default-https-client", "rt-tokio"] }}
tokio = {{ version = "1", features = ["full"] }}

# As the workspace builds its dependencies, so they are reused.
[profile.dev.package."*"]
opt-level = 1
debug = false
"#,
        front_door = front_door.display()
    );
    write(&dir.join("Cargo.toml"), &manifest)?;
    write(&dir.join("src/main.rs"), &readme_example(&root)?)?;
    // Start from the workspace's lock, so only what the newer SDK needs
    // moves; then take the newest aws-sdk-kinesis.
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))
        .map_err(|e| format!("copying Cargo.lock: {e}"))?;
    let scratch_cargo = || {
        let mut command = cargo();
        command
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", target_dir());
        command
    };
    step(
        "scratch crate: resolve the newest aws-sdk-kinesis",
        scratch_cargo().args(["update", "--quiet", "--package", "aws-sdk-kinesis"]),
    )?;
    let ours = locked_versions(&root.join("Cargo.lock"), "aws-sdk-kinesis")?;
    let theirs = locked_versions(&dir.join("Cargo.lock"), "aws-sdk-kinesis")?;
    eprintln!("    aws-sdk-kinesis: the workspace's lock {ours:?}, the scratch crate's {theirs:?}");
    match (ours.as_slice(), theirs.as_slice()) {
        ([ours], [theirs]) if newer(theirs, ours) => {}
        (_, [_]) => {
            return Err(format!(
                "the scratch crate resolved aws-sdk-kinesis {theirs:?}, not newer than the \
                 workspace's {ours:?}"
            ));
        }
        _ => {
            return Err(format!(
                "the scratch crate has {theirs:?} copies of the SDK, not one"
            ));
        }
    }
    step(
        "scratch crate: build",
        scratch_cargo().args(["build", "--quiet"]),
    )?;
    run_scratch(&target_dir().join("debug/front-door-scratch"))
}

/// The README's embedding example: the first `rust,no_run` block under
/// "Using shardline from your own service".
fn readme_example(root: &Path) -> Result<String, String> {
    let readme = std::fs::read_to_string(root.join("README.md"))
        .map_err(|e| format!("reading README.md: {e}"))?;
    let section = readme
        .split_once("## Using shardline from your own service")
        .map(|(_, rest)| rest)
        .ok_or("README.md has no \"Using shardline from your own service\" section")?;
    let block = section
        .split_once("```rust,no_run\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .map(|(code, _)| code)
        .ok_or("the README's section has no rust,no_run block")?;
    Ok(format!("{block}\n"))
}

fn run_scratch(binary: &Path) -> Result<(), String> {
    eprintln!("==> scratch crate: the README's example against kinesalite");
    let mut kinesalite = Command::new(target_dir().join("debug/harness"))
        .args(["kinesalite", "orders"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting kinesalite: {e}"))?;
    let endpoint = kinesalite
        .stdout
        .take()
        .and_then(|out| BufReader::new(out).lines().next())
        .and_then(Result::ok)
        .and_then(|line| line.strip_prefix("AWS_ENDPOINT_URL=").map(str::to_owned));
    let result = match endpoint {
        None => Err("kinesalite did not start".to_owned()),
        Some(endpoint) => Command::new(binary)
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "shardline")
            .env("AWS_SECRET_ACCESS_KEY", "shardline")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .map_err(|e| format!("running the scratch crate: {e}"))
            .and_then(|output| {
                let stdout = String::from_utf8_lossy(&output.stdout);
                eprintln!("    it printed: {}", stdout.trim_end());
                if output.status.success() && stdout.starts_with("stored in Some(\"shardId-") {
                    Ok(())
                } else {
                    Err(format!(
                        "the README's example did not store its record ({}): {}{}",
                        output.status,
                        stdout,
                        String::from_utf8_lossy(&output.stderr)
                    ))
                }
            }),
    };
    // Closing its standard input stops kinesalite.
    drop(kinesalite.stdin.take());
    let _ = kinesalite.wait();
    result
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// The versions of `name` a lock file holds.
fn locked_versions(lock: &Path, name: &str) -> Result<Vec<String>, String> {
    let text =
        std::fs::read_to_string(lock).map_err(|e| format!("reading {}: {e}", lock.display()))?;
    let mut versions = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{name}\"")
            && let Some(version) = lines
                .next()
                .and_then(|v| v.strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
        {
            versions.push(version.to_owned());
        }
    }
    Ok(versions)
}

/// Whether version `a` is newer than `b` (dotted numbers).
fn newer(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parts(a) > parts(b)
}
