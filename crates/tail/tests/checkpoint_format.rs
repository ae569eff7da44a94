//! The tail checkpoint file's format, pinned by a golden file
//! (`fixtures/checkpoints/tail-v1.json`): an old checkpoint is read back,
//! and the same state is written byte for byte.

// Test code: a failed unwrap is the test failing.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use shardline_core::CheckpointFile;
use shardline_tail::{CHECKPOINT_KIND, FileCheckpoint, Fingerprint, Inode, TailCheckpoints};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/checkpoints/tail-v1.json")
}

const WATCHED: &str = "/var/log/nginx/*.log";

/// The state the golden file holds.
fn state() -> Vec<FileCheckpoint> {
    let file = |path: &str, ino, md5: &str, offset, line| FileCheckpoint {
        path: path.into(),
        inode: Inode { dev: 2049, ino },
        fingerprint: Fingerprint {
            len: 256,
            md5: md5.to_owned(),
        },
        offset,
        line,
    };
    vec![
        file(
            "/var/log/nginx/access.log",
            1_835_021,
            "9e107d9d372bb6826bd81d3542a419d6",
            104_857,
            512,
        ),
        file(
            "/var/log/nginx/access.log.1",
            1_835_007,
            "e4d909c290d0fb1ca068ffaddf22cbd0",
            2_097_152,
            10_240,
        ),
    ]
}

#[test]
fn a_version_1_checkpoint_is_read_back() {
    let checkpoints =
        TailCheckpoints::open(CheckpointFile::new(golden(), CHECKPOINT_KIND)).unwrap();
    assert_eq!(checkpoints.section(WATCHED), Some(state()));
}

#[test]
fn the_same_state_is_written_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.json");
    let checkpoints = TailCheckpoints::fresh(CheckpointFile::new(&path, CHECKPOINT_KIND));
    checkpoints.save(WATCHED, state()).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        std::fs::read_to_string(golden()).unwrap()
    );
}
