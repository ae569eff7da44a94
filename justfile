# Mirrors the README's two commands for people who have `just`;
# neither needs it: they are cargo aliases to the xtask crate.

# Stream the sample logs into a local Kinesis endpoint and read them back.
demo *ARGS:
    cargo xtask demo {{ARGS}}

# Install what the tests need, then run fmt, clippy and every test.
test *ARGS:
    cargo xtask test {{ARGS}}

# Tests only, without fmt and clippy.
test-quick *ARGS:
    cargo xtask test --no-lint {{ARGS}}

# Crashes, faults, an outage, garbage and a full disk through the release
# binaries; prints what was lost and repeated (docs/reliability.md).
chaos *ARGS:
    cargo xtask chaos {{ARGS}}

# Build the release binaries and measure the whole path (docs/benchmarks.md).
bench:
    cargo xtask bench

# 1 to 8 log-streamers sharing a stream whose shards enforce Kinesis's
# limits, and a reshard (docs/benchmarks.md, docs/deployment.md).
scale-out:
    cargo xtask scale-out
