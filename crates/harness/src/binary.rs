//! Driving the project's own binaries from end-to-end tests: the exit
//! summary, SIGTERM, a bounded wait, and the line a binary prints once it
//! is ready.

use std::io::BufRead;
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use crate::Error;

/// The statistics JSON a binary printed on stdout when it ended, after
/// checking it exited with success (the error carries its stderr).
pub fn summary(name: &str, output: &Output) -> Result<serde_json::Value, Error> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(Error::Binary(format!(
            "{name} failed ({}): {stderr}",
            output.status
        )));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| Error::Binary(format!("{name}'s summary is not JSON ({e}): {stderr}")))
}

/// Sends SIGTERM (the binaries' graceful shutdown).
pub fn terminate(child: &Child) -> Result<(), Error> {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .map_err(|e| Error::io("kill -TERM", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Binary(format!("kill -TERM {} failed", child.id())))
    }
}

/// Waits for the child to exit; kills it and fails after `timeout`.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Result<ExitStatus, Error> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| Error::io("waiting", e))? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return Err(Error::Binary(format!(
                "process {} did not exit within {timeout:?}",
                child.id()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads the child's piped stderr until a line contains `marker`; returns
/// that line, and keeps the rest of stderr drained on a thread (into the
/// returned handle's result) so the child never blocks writing to it.
pub fn wait_for_stderr(
    child: &mut Child,
    marker: &str,
) -> Result<(String, std::thread::JoinHandle<String>), Error> {
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| Error::Binary("stderr is not piped".into()))?;
    let mut lines = std::io::BufReader::new(stderr).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.map_err(|e| Error::io("reading stderr", e))?;
        if line.contains(marker) {
            let rest = std::thread::spawn(move || {
                lines.map_while(Result::ok).collect::<Vec<_>>().join("\n")
            });
            return Ok((line, rest));
        }
        seen.push_str(&line);
        seen.push('\n');
    }
    Err(Error::Binary(format!(
        "the process ended without printing {marker:?}: {seen}"
    )))
}

/// One run of a project binary against a stream of its own in the shared
/// kinesalite: the stream, a temporary directory for the run's state, and
/// a [`Command`] with the endpoints and the state flags every binary takes.
#[derive(Debug)]
pub struct StreamRun {
    pub dir: tempfile::TempDir,
    pub stream: String,
    pub client: aws_sdk_kinesis::Client,
    pub endpoints: crate::AwsEndpoints,
}

impl StreamRun {
    /// Creates a stream named after `prefix` with `shards` shards.
    pub async fn new(prefix: &str, shards: i32) -> Result<StreamRun, Error> {
        let kinesalite = crate::Kinesalite::shared()?;
        let client = kinesalite.kinesis_client();
        let stream = crate::unique_name(prefix);
        crate::streams::create_stream(&client, &stream, shards).await?;
        Ok(StreamRun {
            dir: tempfile::tempdir().map_err(|e| Error::io("creating a temporary directory", e))?,
            stream,
            client,
            endpoints: kinesalite.endpoints(),
        })
    }

    /// Where the run keeps its checkpoint.
    pub fn checkpoint_file(&self) -> std::path::PathBuf {
        self.dir.path().join("checkpoint.json")
    }

    /// Where the run writes its dead letters.
    pub fn dead_letter_file(&self) -> std::path::PathBuf {
        self.dir.path().join("dead-letters.ndjson")
    }

    /// Writes `text` as the run's `config.toml` and returns its path.
    pub fn write_config(&self, text: &str) -> Result<std::path::PathBuf, Error> {
        let path = self.dir.path().join("config.toml");
        std::fs::write(&path, text).map_err(|e| Error::io("writing config.toml", e))?;
        Ok(path)
    }

    /// `exe` with the endpoints in its environment, warnings only in its
    /// log, and `--stream-name`, `--checkpoint-file`, `--dead-letter-file`
    /// and `--stats-interval 0` (statistics only at exit) set.
    pub fn command(&self, exe: &str) -> Command {
        let mut command = Command::new(exe);
        command
            .envs(self.endpoints.env())
            .env("RUST_LOG", "warn")
            .arg("--stream-name")
            .arg(&self.stream)
            .arg("--checkpoint-file")
            .arg(self.checkpoint_file())
            .arg("--dead-letter-file")
            .arg(self.dead_letter_file())
            .arg("--stats-interval")
            .arg("0");
        command
    }
}
