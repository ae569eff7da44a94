//! The scale-out bench at its smoke size, with this build's binaries:
//! instances sharing a stream behind the shard-limit proxy, and a reshard
//! under aggregating instances, lose no line. Here rather than as a step of
//! its own so that `cargo test --workspace` builds the bench with the
//! features the rest of the workspace is built with.

use std::process::Command;

#[test]
fn the_scale_out_bench_at_smoke_size_loses_no_line() -> Result<(), Box<dyn std::error::Error>> {
    let status = Command::new(env!("CARGO_BIN_EXE_scale-out"))
        .arg("--smoke")
        .status()?;
    assert!(status.success(), "scale-out --smoke: {status}");
    Ok(())
}
