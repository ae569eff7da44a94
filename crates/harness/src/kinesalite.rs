//! kinesalite: a Kinesis Data Streams emulator (Node.js) on 127.0.0.1.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::Error;
use crate::aws::{AwsEndpoints, sdk_config};
use crate::install;
use crate::process::{ServiceProcess, run_dir};

/// How long kinesalite may take to print its port (it takes < 0.3 s here).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Streams may have up to this many shards (kinesalite's `--shardLimit`).
pub(crate) const SHARD_LIMIT: u32 = 50;
/// How long kinesalite keeps a stream CREATING/DELETING/UPDATING, in ms.
pub(crate) const STATE_CHANGE_MS: u32 = 50;

/// The launcher. kinesalite's own CLI binds every interface; through the
/// library it listens on 127.0.0.1 only, on the port asked for (0: any free
/// one), and prints the port it got as one JSON line.
const LAUNCHER: &str = r#"
const kinesalite = require('kinesalite');
const [port, shardLimit, stateMs, path] = process.argv.slice(1);
const opts = { shardLimit: +shardLimit, createStreamMs: +stateMs,
               deleteStreamMs: +stateMs, updateStreamMs: +stateMs };
if (path) opts.path = path;
const server = kinesalite(opts);
server.on('error', (e) => { console.error(String(e)); process.exit(1); });
server.listen(+port, '127.0.0.1', () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
"#;

/// A running kinesalite.
///
/// Started in memory ([`Kinesalite::start`]) or on disk
/// ([`Kinesalite::start_persistent`]), in which case [`Kinesalite::restart`]
/// brings it back on the same port with the same streams and records — for
/// tests that kill the emulator mid-run.
#[derive(Debug)]
pub struct Kinesalite {
    process: Mutex<Option<ServiceProcess>>,
    port: u16,
    data_dir: Option<PathBuf>,
    _run_dir: tempfile::TempDir,
}

impl Kinesalite {
    /// One kinesalite for the whole test process, started on first use.
    /// Tests share it through stream names of their own
    /// ([`crate::unique_name`]).
    pub fn shared() -> Result<&'static Kinesalite, Error> {
        static SHARED: OnceLock<Kinesalite> = OnceLock::new();
        static STARTING: Mutex<()> = Mutex::new(());
        if let Some(k) = SHARED.get() {
            return Ok(k);
        }
        let _guard = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = SHARED.get() {
            return Ok(k);
        }
        let started = Kinesalite::start()?;
        Ok(SHARED.get_or_init(|| started))
    }

    /// Starts a kinesalite of its own, keeping streams in memory.
    pub fn start() -> Result<Kinesalite, Error> {
        Self::launch(false)
    }

    /// Starts a kinesalite of its own that keeps streams on disk, so it can
    /// be killed and [restarted](Kinesalite::restart) without losing them.
    pub fn start_persistent() -> Result<Kinesalite, Error> {
        Self::launch(true)
    }

    fn launch(persistent: bool) -> Result<Kinesalite, Error> {
        let node_dir = install::ensure_kinesalite()?;
        let run_dir = run_dir("kinesalite")?;
        let data_dir = persistent.then(|| run_dir.path().join("data"));
        let (process, port) = spawn(&node_dir, &run_dir, 0, data_dir.as_ref())?;
        Ok(Kinesalite {
            process: Mutex::new(Some(process)),
            port,
            data_dir,
            _run_dir: run_dir,
        })
    }

    /// The endpoint URL, e.g. `http://127.0.0.1:41235`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port kinesalite listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The AWS endpoints of this instance (Kinesis only).
    pub fn endpoints(&self) -> AwsEndpoints {
        AwsEndpoints {
            kinesis: Some(self.endpoint()),
            ..AwsEndpoints::default()
        }
    }

    /// A Kinesis client for this instance.
    pub fn kinesis_client(&self) -> aws_sdk_kinesis::Client {
        aws_sdk_kinesis::Client::new(&sdk_config(&self.endpoint()))
    }

    /// Kills the emulator at once (SIGKILL), as a crash would.
    pub fn kill(&self) {
        let mut guard = self.process.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut process) = guard.take() {
            process.kill();
        }
    }

    /// Kills the emulator if it runs and starts it again on the same port.
    /// With [`Kinesalite::start_persistent`] the streams and records survive.
    pub fn restart(&self) -> Result<(), Error> {
        self.kill();
        let node_dir = install::ensure_kinesalite()?;
        let (process, _) = spawn(&node_dir, &self._run_dir, self.port, self.data_dir.as_ref())?;
        let mut guard = self.process.lock().unwrap_or_else(|e| e.into_inner());
        *guard = Some(process);
        Ok(())
    }
}

fn spawn(
    node_dir: &std::path::Path,
    run_dir: &tempfile::TempDir,
    port: u16,
    data_dir: Option<&PathBuf>,
) -> Result<(ServiceProcess, u16), Error> {
    let mut command = Command::new("node");
    command
        .arg("-e")
        .arg(LAUNCHER)
        .arg(port.to_string())
        .arg(SHARD_LIMIT.to_string())
        .arg(STATE_CHANGE_MS.to_string())
        .env("NODE_PATH", node_dir.join("node_modules"))
        .current_dir(node_dir);
    if let Some(dir) = data_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        command.arg(dir);
    }
    let log = run_dir.path().join("kinesalite.log");
    let mut process = ServiceProcess::spawn("kinesalite", command, &log, true, libc::SIGTERM)?;
    let line = process.read_ready_line(START_TIMEOUT)?;
    let port = serde_json::from_str::<serde_json::Value>(&line)
        .ok()
        .and_then(|v| v.get("port")?.as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| process.not_ready(START_TIMEOUT))?;
    Ok((process, port))
}
