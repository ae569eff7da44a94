//! `harness install`: install every test service into `.harness/`.
//!
//! `cargo xtask test` runs it; it is a binary of the harness crate so that
//! it is built with the same dependency features as the test suite and
//! nothing is compiled twice.

use std::process::ExitCode;
use std::time::Instant;

use shardline_harness::{Error, install};

const USAGE: &str = "usage: harness install";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("install") => install_all(),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn install_all() -> Result<(), Error> {
    eprintln!(
        "==> installing the test services (kinesalite, moto, PostgreSQL + wal2json, Mosquitto)"
    );
    let started = Instant::now();
    install::ensure_all()?;
    eprintln!(
        "    installed into {} in {:.1?}",
        install::harness_dir().display(),
        started.elapsed()
    );
    Ok(())
}
