//! How a file is recognised: device + inode, and a fingerprint of its
//! first bytes so a recycled inode is not taken for the old file.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

use md5::{Digest, Md5};

/// Bytes at the start of a file that make its fingerprint. Vector checks
/// the first line; a fixed byte count is as good for log files (each line
/// starts with a timestamp or an address) and independent of line length.
pub const FINGERPRINT_BYTES: u64 = 256;

/// The hash of a file's first `len` bytes (`len` < [`FINGERPRINT_BYTES`]
/// while the file is shorter; it grows with the file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    /// How many bytes were hashed.
    pub len: u64,
    /// Their MD5, in hex.
    pub md5: String,
}

impl Fingerprint {
    /// The fingerprint of `file` as it is now.
    pub fn of(file: &File) -> io::Result<Fingerprint> {
        let size = file.metadata()?.len();
        Self::prefix(file, size.min(FINGERPRINT_BYTES))
    }

    /// The hash of exactly the first `len` bytes, or `None`-like mismatch
    /// if the file is shorter now (an error of kind `UnexpectedEof`).
    pub fn prefix(file: &File, len: u64) -> io::Result<Fingerprint> {
        let mut bytes = vec![0; usize::try_from(len).unwrap_or(0)];
        file.read_exact_at(&mut bytes, 0)?;
        let digest = Md5::digest(&bytes);
        let md5 = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        Ok(Fingerprint { len, md5 })
    }

    /// Whether `file` still starts with the bytes this fingerprint was
    /// taken of.
    pub fn matches(&self, file: &File) -> bool {
        Self::prefix(file, self.len).is_ok_and(|now| now == *self)
    }
}

/// Device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Inode {
    /// The device.
    pub dev: u64,
    /// The inode number.
    pub ino: u64,
}

impl Inode {
    /// The device and inode of an open or stat-ed file.
    pub fn of(metadata: &std::fs::Metadata) -> Inode {
        Inode {
            dev: metadata.dev(),
            ino: metadata.ino(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn fingerprint_grows_with_the_file_and_survives_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"first line\n").unwrap();
        let reader = File::open(&path).unwrap();
        let short = Fingerprint::of(&reader).unwrap();
        assert_eq!(short.len, 11);
        file.write_all(&[b'x'; 400]).unwrap();
        assert!(short.matches(&reader), "appends keep the prefix");
        let full = Fingerprint::of(&reader).unwrap();
        assert_eq!(full.len, FINGERPRINT_BYTES);
        // copytruncate: the same inode now holds other bytes.
        file.set_len(0).unwrap();
        assert!(!full.matches(&reader));
    }
}
