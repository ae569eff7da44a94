//! The tail checkpoint: per watched path, the files seen and how far their
//! lines are settled.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use shardline_core::{CheckpointError, CheckpointFile};

use crate::identity::{Fingerprint, Inode};

/// The `kind` of a tail checkpoint file.
pub const CHECKPOINT_KIND: &str = "tail";

/// One file's settled position.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileCheckpoint {
    /// Where the file was last seen.
    pub path: PathBuf,
    /// Its device and inode when last seen.
    #[serde(flatten)]
    pub inode: Inode,
    /// The hash of its first bytes, to know it again after a rename.
    pub fingerprint: Fingerprint,
    /// Every byte before this offset is settled (whole lines only).
    pub offset: u64,
    /// Lines before `offset`.
    pub line: u64,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct State {
    /// By watched path (as configured, glob or not).
    watched: BTreeMap<String, Vec<FileCheckpoint>>,
}

/// One checkpoint file shared by every [`crate::TailSource`] of a process:
/// each owns the section of its watched path.
#[derive(Debug)]
pub struct TailCheckpoints {
    file: CheckpointFile,
    state: Mutex<State>,
}

impl TailCheckpoints {
    /// Reads `file` (an absent file is an empty checkpoint).
    pub fn open(file: CheckpointFile) -> Result<Self, CheckpointError> {
        let state = file.load::<State>()?.unwrap_or_default();
        Ok(TailCheckpoints {
            file,
            state: Mutex::new(state),
        })
    }

    /// The same file with its contents ignored (a run without
    /// `--resume-from-checkpoint`); it is overwritten as the run settles.
    pub fn fresh(file: CheckpointFile) -> Self {
        TailCheckpoints {
            file,
            state: Mutex::new(State::default()),
        }
    }

    /// The checkpoint file.
    pub fn path(&self) -> &std::path::Path {
        self.file.path()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The files saved for `watched`, or `None` if it has no section.
    pub fn section(&self, watched: &str) -> Option<Vec<FileCheckpoint>> {
        self.lock().watched.get(watched).cloned()
    }

    /// Replaces the section of `watched` and writes the whole file.
    pub fn save(&self, watched: &str, files: Vec<FileCheckpoint>) -> Result<(), CheckpointError> {
        let mut state = self.lock();
        let changed = state.watched.get(watched) != Some(&files);
        if changed {
            state.watched.insert(watched.to_owned(), files);
            self.file.save(&*state)?;
        }
        Ok(())
    }
}
