//! Checkpoint files: a source's positions, written atomically in a
//! versioned envelope.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The version of the checkpoint envelope this build writes and reads.
/// A file of another version is an error, never silently ignored: starting
/// over would re-send or skip input.
pub const CHECKPOINT_VERSION: u32 = 1;

/// The file mode of a checkpoint file (positions and paths only; still
/// nobody else's business).
pub const CHECKPOINT_FILE_MODE: u32 = 0o600;

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The file could not be read, written or synced.
    #[error("checkpoint file {path}: {source}")]
    Io {
        /// The checkpoint file.
        path: PathBuf,
        #[source]
        /// What failed underneath.
        source: std::io::Error,
    },
    /// The file is not a checkpoint (not JSON, or not of this shape).
    #[error("checkpoint file {path} is not a shardline checkpoint: {message}")]
    Corrupt {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    #[error(
        "checkpoint file {path} has version {found}; this build reads version {CHECKPOINT_VERSION}"
    )]
    /// The file was written by a newer or older format.
    Version {
        /// The checkpoint file.
        path: PathBuf,
        /// What the file holds.
        found: u32,
    },
    /// The file belongs to another kind of source.
    #[error("checkpoint file {path} belongs to a {found} source, not {expected}")]
    Kind {
        /// The checkpoint file.
        path: PathBuf,
        /// What the file holds.
        found: String,
        /// What this source writes.
        expected: String,
    },
    /// Another process (or another part of this one) holds the file's
    /// lock: two writers would overwrite each other's positions.
    #[error(
        "checkpoint file {path} is in use by another process (it holds {lock}); stop it, or give this run a checkpoint file of its own"
    )]
    InUse {
        /// The checkpoint file.
        path: PathBuf,
        /// The lock file held.
        lock: PathBuf,
    },
}

/// Held while a process owns a checkpoint file ([`CheckpointFile::lock`]):
/// an exclusive lock on `<path>.lock`, released when this is dropped or
/// the process ends, however it ends.
#[derive(Debug)]
pub struct CheckpointLock {
    _file: File,
}

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    version: u32,
    kind: &'a str,
    state: &'a T,
}

#[derive(serde::Deserialize)]
struct EnvelopeIn {
    version: u32,
    kind: String,
    state: serde_json::Value,
}

/// One source's checkpoint file. `kind` names the source type (`tail`,
/// `postgres`, …) so one cannot read another's positions.
///
/// Writes go to `<path>.tmp`, are synced, renamed over `path`, and the
/// directory is synced: after a crash the file holds either the old or the
/// new positions, never a torn mix.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// use shardline_core::CheckpointFile;
///
/// let file = CheckpointFile::new(dir.path().join("positions.json"), "example");
/// assert_eq!(file.load::<Vec<u64>>()?, None);
/// file.save(&vec![1_u64, 2, 3])?;
/// assert_eq!(file.load::<Vec<u64>>()?, Some(vec![1, 2, 3]));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CheckpointFile {
    path: PathBuf,
    kind: String,
}

impl CheckpointFile {
    /// The checkpoint at `path` of a source of `kind` (`tail`, `postgres`, …); the
    /// kind is written into the file and checked when it is read.
    pub fn new(path: impl Into<PathBuf>, kind: &str) -> Self {
        CheckpointFile {
            path: path.into(),
            kind: kind.to_owned(),
        }
    }

    /// The checkpoint file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory the file is in (`.` for a bare file name).
    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// `<path><suffix>`: the temporary file and the lock file beside it.
    fn beside(&self, suffix: &str) -> PathBuf {
        let mut path = self.path.clone().into_os_string();
        path.push(suffix);
        PathBuf::from(path)
    }

    fn io(&self, source: std::io::Error) -> CheckpointError {
        CheckpointError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Takes the file for this process until the returned lock is
    /// dropped: a second process (or a second lock in this one) gets
    /// [`CheckpointError::InUse`]. Reading and writing do not take the
    /// lock; a source's owner takes it once, before it starts.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// use shardline_core::{CheckpointError, CheckpointFile};
    ///
    /// let file = CheckpointFile::new(dir.path().join("positions.json"), "example");
    /// let held = file.lock()?;
    /// assert!(matches!(file.lock(), Err(CheckpointError::InUse { .. })));
    /// drop(held);
    /// assert!(file.lock().is_ok());
    /// # Ok(()) }
    /// ```
    pub fn lock(&self) -> Result<CheckpointLock, CheckpointError> {
        std::fs::create_dir_all(self.dir()).map_err(|e| self.io(e))?;
        let lock = self.beside(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(CHECKPOINT_FILE_MODE)
            .open(&lock)
            .map_err(|e| self.io(e))?;
        match file.try_lock() {
            Ok(()) => Ok(CheckpointLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(CheckpointError::InUse {
                path: self.path.clone(),
                lock,
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(self.io(e)),
        }
    }

    /// The saved state, or `None` if there is no checkpoint file yet.
    pub fn load<T: DeserializeOwned>(&self) -> Result<Option<T>, CheckpointError> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        let corrupt = |message: String| CheckpointError::Corrupt {
            path: self.path.clone(),
            message,
        };
        let envelope: EnvelopeIn =
            serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        if envelope.version != CHECKPOINT_VERSION {
            return Err(CheckpointError::Version {
                path: self.path.clone(),
                found: envelope.version,
            });
        }
        if envelope.kind != self.kind {
            return Err(CheckpointError::Kind {
                path: self.path.clone(),
                found: envelope.kind,
                expected: self.kind.clone(),
            });
        }
        serde_json::from_value(envelope.state)
            .map(Some)
            .map_err(|e| corrupt(e.to_string()))
    }

    /// Replaces the saved state atomically and durably.
    pub fn save<T: Serialize>(&self, state: &T) -> Result<(), CheckpointError> {
        let envelope = EnvelopeOut {
            version: CHECKPOINT_VERSION,
            kind: &self.kind,
            state,
        };
        let mut bytes =
            serde_json::to_vec_pretty(&envelope).map_err(|e| self.io(std::io::Error::other(e)))?;
        bytes.push(b'\n');
        let dir = self.dir();
        std::fs::create_dir_all(&dir).map_err(|e| self.io(e))?;
        let tmp = self.beside(".tmp");
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(CHECKPOINT_FILE_MODE)
            .open(&tmp)
            .map_err(|e| self.io(e))?;
        file.write_all(&bytes).map_err(|e| self.io(e))?;
        file.sync_all().map_err(|e| self.io(e))?;
        drop(file);
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io(e))
    }
}

/// Where shardline keeps state by default: `$XDG_STATE_HOME/shardline`, or
/// `~/.local/state/shardline` — a directory that survives reboots, unlike
/// `/tmp` or `/var/run` (where Kinesis Agent's checkpoints were lost,
/// awslabs/amazon-kinesis-agent#129). `None` if neither variable is set.
pub fn default_state_dir() -> Option<PathBuf> {
    let from = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    from("XDG_STATE_HOME")
        .or_else(|| from("HOME").map(|home| home.join(".local/state")))
        .map(|dir| dir.join("shardline"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_version_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cp.json");
        let file = CheckpointFile::new(&path, "tail");
        file.save(&serde_json::json!({"offset": 7})).unwrap();
        let back: serde_json::Value = file.load().unwrap().unwrap();
        assert_eq!(back["offset"], 7);
        assert!(!path.with_extension("json.tmp").exists());

        let other = CheckpointFile::new(&path, "postgres");
        assert!(matches!(
            other.load::<serde_json::Value>(),
            Err(CheckpointError::Kind { .. })
        ));

        std::fs::write(&path, r#"{"version": 99, "kind": "tail", "state": {}}"#).unwrap();
        assert!(matches!(
            file.load::<serde_json::Value>(),
            Err(CheckpointError::Version { found: 99, .. })
        ));
        std::fs::write(&path, "{\"version\": 1, \"kind\": \"tail\", \"sta").unwrap();
        assert!(matches!(
            file.load::<serde_json::Value>(),
            Err(CheckpointError::Corrupt { .. })
        ));
    }
}
