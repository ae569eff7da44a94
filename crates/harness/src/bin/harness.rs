//! `harness install`: install every test service into `.harness/`.
//! `harness kinesalite [STREAM...]`: start kinesalite on 127.0.0.1 with
//! these one-shard streams, print `AWS_ENDPOINT_URL=<url>`, and stop when
//! standard input closes (`cargo xtask library` runs a program against it).
//! `harness wire-speed [SHARDS]`: serve the wire-speed Kinesis endpoint on
//! 127.0.0.1 until interrupted, for profiling a binary by hand; it prints
//! the endpoint, and what it was given when it stops.
//!
//! `cargo xtask test` runs it; it is a binary of the harness crate so that
//! it is built with the same dependency features as the test suite and
//! nothing is compiled twice.

use std::process::ExitCode;
use std::time::Instant;

use shardline_harness::{Error, Kinesalite, WireSpeedKinesis, install, streams};

const USAGE: &str =
    "usage: harness install | harness kinesalite [STREAM...] | harness wire-speed [SHARDS]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("install") => install_all(),
        Some("kinesalite") => kinesalite(args.get(1..).unwrap_or_default()),
        Some("wire-speed") => match args.get(1).map(|n| n.parse::<u32>()) {
            None => wire_speed(4),
            Some(Ok(shards)) if shards > 0 => wire_speed(shards),
            Some(_) => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        },
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

fn kinesalite(streams: &[String]) -> Result<(), Error> {
    let kinesalite = Kinesalite::start()?;
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| Error::io("starting the Tokio runtime", e))?;
    runtime.block_on(async {
        let client = kinesalite.kinesis_client();
        for stream in streams {
            streams::create_stream(&client, stream, 1).await?;
        }
        Ok::<(), Error>(())
    })?;
    println!("AWS_ENDPOINT_URL={}", kinesalite.endpoint());
    // Kinesalite stops when it is dropped: once whoever started this is
    // done and closes our standard input.
    std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())
        .map_err(|e| Error::io("waiting for standard input to close", e))?;
    Ok(())
}

fn wire_speed(shards: u32) -> Result<(), Error> {
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| Error::io("starting the Tokio runtime", e))?;
    runtime.block_on(async {
        let endpoint = WireSpeedKinesis::start(shards).await?;
        println!("AWS_ENDPOINT_URL_KINESIS={}", endpoint.endpoint());
        eprintln!(
            "    a wire-speed Kinesis endpoint with {shards} shards; Ctrl-C stops it \
             (any AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY will do)"
        );
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| Error::io("waiting for Ctrl-C", e))?;
        eprintln!("{:?}", endpoint.counts());
        Ok(())
    })
}
