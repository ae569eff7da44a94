//! Real services on loopback for shardline's tests and demo.
//!
//! shardline's tests never talk to a mock: they talk to a Kinesis-compatible
//! emulator ([kinesalite]), Firehose → S3 and CloudWatch ([moto]), PostgreSQL
//! with the wal2json logical-decoding plugin, and the Mosquitto MQTT broker,
//! each started by this crate on `127.0.0.1` and stopped when its handle is
//! dropped or the test process exits (also on a crash or Ctrl-C). What no
//! emulator can do — throttle, fail chosen entries, answer 5xx, reset a
//! connection, stall — the [`FaultProxy`] does, speaking the real AWS JSON 1.1
//! protocol between the SDK and the emulator. For benchmarks, the
//! [`WireSpeedKinesis`] endpoint accepts every put as fast as the client can
//! send it, where kinesalite would be the limit.
//!
//! Everything a service needs is installed into the project-local, git-ignored
//! `.harness/` directory the first time it is asked for ([`install`]): nothing
//! depends on something installed by hand.
//!
//! Clients reach the services through the standard AWS settings: in-process
//! through [`Kinesalite::kinesis_client`] and friends, child processes through
//! the environment from [`AwsEndpoints::env`], so product code has no
//! test-only path.
//!
//! [kinesalite]: https://github.com/mhart/kinesalite
//! [moto]: https://github.com/getmoto/moto
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), shardline_harness::Error> {
//! use shardline_harness::{Kinesalite, unique_name};
//!
//! let kinesalite = Kinesalite::shared()?;
//! let client = kinesalite.kinesis_client();
//! let stream = unique_name("doc");
//! shardline_harness::streams::create_stream(&client, &stream, 2).await?;
//! let records = shardline_harness::streams::read_all(&client, &stream).await?;
//! assert!(records.is_empty());
//! # Ok(()) }
//! ```
//!
//! (The example is `no_run` because it installs and starts a Node.js server;
//! `tests/services.rs` runs the same steps for real.)

mod aws;
mod aws_json;
pub mod binary;
mod error;
pub mod fault_proxy;
pub mod install;
mod kinesalite;
pub mod measure;
mod mosquitto;
mod moto;
mod postgres;
mod process;
pub mod shard_limit;
pub mod streams;
pub mod tcp_proxy;
pub mod wire_speed;

pub use aws::{AwsEndpoints, DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, REGION, sdk_config};
pub use error::Error;
pub use fault_proxy::{
    EntryFault, FaultCode, FaultProxy, ProxyAction, ProxyEvent, RequestFault, Selection,
};
pub use kinesalite::Kinesalite;
pub use mosquitto::{Mosquitto, TlsTestFiles};
pub use moto::Moto;
pub use postgres::Postgres;
pub use shard_limit::{ShardLimitProxy, ShardLimits};
pub use wire_speed::{WireCounts, WireSpeedKinesis};

use std::sync::atomic::{AtomicU32, Ordering};

/// A name no other test in this run (or a concurrent run) uses: for streams,
/// buckets, delivery streams, databases and replication slots.
///
/// Lower-case ASCII letters, digits and `_`, at most 48 characters, starting
/// with a letter — valid for every service above (PostgreSQL slot names
/// allow nothing else).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(24)
        .collect();
    let salt: u16 = rand::random();
    format!("t{clean}_{}_{n}_{salt:04x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_are_valid_slot_names() {
        let a = unique_name("Round-Trip test");
        let b = unique_name("Round-Trip test");
        assert_ne!(a, b);
        for name in [&a, &b] {
            assert!(name.len() <= 48, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
        }
    }
}
