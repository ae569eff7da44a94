//! moto: Firehose (delivering to S3), S3 and CloudWatch on 127.0.0.1.

use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::Error;
use crate::aws::{AwsEndpoints, s3_client, sdk_config};
use crate::install;
use crate::process::{ServiceProcess, run_dir};

/// How long moto may take to print its port (about 1 s here).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The launcher: moto's threaded server on 127.0.0.1, on any free port,
/// printing the port as one JSON line and serving until it is signalled.
const LAUNCHER: &str = r#"
import json, signal, sys, threading
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(json.dumps({"port": port}), flush=True)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
done.wait()
server.stop()
"#;

/// A running moto server: Firehose, S3 and CloudWatch on one port.
///
/// Measured quirks: create delivery streams with
/// `CompressionFormat::Uncompressed` and `NoEncryptionConfig::NoEncryption`
/// or the Rust SDK cannot parse `DescribeDeliveryStream`; use path-style S3;
/// `aws-sdk-cloudwatch` 1.100 and later speak rpc-v2-cbor, which moto does
/// not (1.99.0 still speaks awsQuery); moto's Kinesis slows sharply past
/// ~100k records, so Kinesis tests use [`crate::Kinesalite`].
#[derive(Debug)]
pub struct Moto {
    _process: ServiceProcess,
    port: u16,
    _run_dir: tempfile::TempDir,
}

impl Moto {
    /// One moto for the whole test process, started on first use. Tests
    /// share it through names of their own ([`crate::unique_name`]).
    pub fn shared() -> Result<&'static Moto, Error> {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        static STARTING: Mutex<()> = Mutex::new(());
        if let Some(m) = SHARED.get() {
            return Ok(m);
        }
        let _guard = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = SHARED.get() {
            return Ok(m);
        }
        let started = Moto::start()?;
        Ok(SHARED.get_or_init(|| started))
    }

    /// Starts a moto server of its own.
    pub fn start() -> Result<Moto, Error> {
        let python = install::ensure_python()?;
        let run_dir = run_dir("moto")?;
        let mut command = Command::new(python);
        command.arg("-c").arg(LAUNCHER);
        let log = run_dir.path().join("moto.log");
        let mut process = ServiceProcess::spawn("moto", command, &log, true, libc::SIGTERM)?;
        let line = process.read_ready_line(START_TIMEOUT)?;
        let port = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("port")?.as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| process.not_ready(START_TIMEOUT))?;
        Ok(Moto {
            _process: process,
            port,
            _run_dir: run_dir,
        })
    }

    /// The endpoint URL, e.g. `http://127.0.0.1:41235`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The AWS endpoints moto serves: Firehose, S3 and CloudWatch.
    pub fn endpoints(&self) -> AwsEndpoints {
        AwsEndpoints {
            firehose: Some(self.endpoint()),
            s3: Some(self.endpoint()),
            cloudwatch: Some(self.endpoint()),
            ..AwsEndpoints::default()
        }
    }

    /// A Firehose client for this server.
    pub fn firehose_client(&self) -> aws_sdk_firehose::Client {
        aws_sdk_firehose::Client::new(&sdk_config(&self.endpoint()))
    }

    /// A path-style S3 client for this server.
    pub fn s3_client(&self) -> aws_sdk_s3::Client {
        s3_client(&self.endpoint())
    }
}
