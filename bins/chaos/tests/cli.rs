//! The runner's command line: its scenarios, and refusals that say why.
//! (The scenarios themselves run in `cargo xtask test`, as `chaos --smoke`,
//! once every binary is built.)

// Test code: a failed expect is the test failing.
#![allow(clippy::expect_used)]

use std::process::Command;

fn chaos(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(args)
        .output()
        .expect("the chaos binary runs")
}

#[test]
fn help_names_every_scenario() {
    let output = chaos(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for scenario in [
        "kills",
        "faults",
        "garbage",
        "disk-full",
        "cdc",
        "cdc-8",
        "mqtt",
    ] {
        assert!(help.contains(scenario), "{scenario}: {help}");
    }
}

#[test]
fn an_unknown_scenario_or_a_missing_binary_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let output = chaos(&["--bin-dir", &dir.path().to_string_lossy()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("log-streamer is missing"), "{stderr}");
    let output = chaos(&["--only", "nothing"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no scenario \"nothing\""));
}
