//! The dead-letter sink: where every record that cannot be delivered goes,
//! with its reason — and the way back in ([`replay`]).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine;
use bytes::Bytes;
use shardline_partition_key::{ExplicitHashKey, PartitionKey};

use crate::outcome::DeadLetterReason;
use crate::record::{Record, SourceName};

/// The file mode of a dead-letter file: it holds record data, so only its
/// owner may read it.
pub const DEAD_LETTER_FILE_MODE: u32 = 0o600;

/// How a dead letter's `data` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataEncoding {
    /// The data was UTF-8 and is written as text.
    Utf8,
    /// The data was not UTF-8 and is written as standard base64.
    Base64,
}

/// One line of a dead-letter file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    /// The original record data.
    pub data: String,
    pub data_encoding: DataEncoding,
    pub partition_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit_hash_key: Option<String>,
    pub source: String,
    /// Where it was going, e.g. `kinesis:orders`.
    pub destination: String,
    pub reason: DeadLetterReason,
    /// The service's error code of the last failure, if any.
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// Attempts made to deliver it.
    pub attempts: u32,
    /// RFC 3339 times of the first and last attempt, if any was made.
    pub first_attempt: Option<String>,
    pub last_attempt: Option<String>,
    /// When it was dead-lettered (RFC 3339).
    pub dead_lettered_at: String,
    /// What the source knows of it, e.g. `file` and `line` for a log line
    /// that did not parse.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
}

/// Formats a time as RFC 3339 UTC, e.g. `2026-11-22T00:30:00.123Z`.
fn rfc3339(time: SystemTime) -> String {
    let time: time::OffsetDateTime = time.into();
    time.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl DeadLetter {
    /// A time as dead letters write it: RFC 3339 in UTC, e.g.
    /// `2026-11-22T00:30:00.123Z`.
    pub fn format_time(time: SystemTime) -> String {
        rfc3339(time)
    }

    /// Encodes `data` as text when it is UTF-8, as base64 otherwise.
    pub fn encode_data(data: &[u8]) -> (String, DataEncoding) {
        match std::str::from_utf8(data) {
            Ok(text) => (text.to_owned(), DataEncoding::Utf8),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(data),
                DataEncoding::Base64,
            ),
        }
    }

    /// A record a source rejects before sending (a line that does not
    /// parse, a reading that fails validation), with the reason and what
    /// the source knows of where it came from.
    pub fn rejected(
        data: &[u8],
        source: &SourceName,
        message: impl Into<String>,
        context: BTreeMap<String, String>,
    ) -> Self {
        let (data, data_encoding) = Self::encode_data(data);
        DeadLetter {
            data,
            data_encoding,
            partition_key: String::new(),
            explicit_hash_key: None,
            source: source.as_str().to_owned(),
            destination: String::new(),
            reason: DeadLetterReason::Rejected,
            error_code: None,
            error_message: Some(message.into()),
            attempts: 0,
            first_attempt: None,
            last_attempt: None,
            dead_lettered_at: rfc3339(SystemTime::now()),
            context,
        }
    }

    /// The original data bytes.
    pub fn data_bytes(&self) -> Result<Vec<u8>, ReplayError> {
        match self.data_encoding {
            DataEncoding::Utf8 => Ok(self.data.clone().into_bytes()),
            DataEncoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(&self.data)
                .map_err(|e| ReplayError::Data(e.to_string())),
        }
    }

    /// The record to send again. A rejected record without a partition key
    /// gets `-`.
    pub fn to_record(&self) -> Result<Record, ReplayError> {
        let partition_key = PartitionKey::new_or_hashed(&self.partition_key);
        let explicit_hash_key = self
            .explicit_hash_key
            .as_deref()
            .map(ExplicitHashKey::parse)
            .transpose()
            .map_err(|e| ReplayError::Data(e.to_string()))?;
        Ok(Record {
            data: Bytes::from(self.data_bytes()?),
            partition_key,
            explicit_hash_key,
            source: SourceName::new(&self.source),
        })
    }
}

/// Where dead letters are written. `write` must return only once the
/// letters are durable: a record counts as settled — and a source may move
/// its checkpoint past it — as soon as it returns `Ok`.
pub trait DeadLetterSink: Send + 'static {
    fn write(&mut self, letters: &[DeadLetter]) -> std::io::Result<()>;
}

/// An NDJSON dead-letter file: one [`DeadLetter`] per line, appended,
/// created with mode 0600, synced to disk after every write.
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    file: File,
}

impl DeadLetterFile {
    /// Opens (creating if needed) `path` for appending. Its directory is
    /// created too.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(DEAD_LETTER_FILE_MODE)
            .open(path)?;
        Ok(DeadLetterFile {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl DeadLetterSink for DeadLetterFile {
    fn write(&mut self, letters: &[DeadLetter]) -> std::io::Result<()> {
        let mut out = BufWriter::new(&self.file);
        for letter in letters {
            serde_json::to_writer(&mut out, letter)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        drop(out);
        self.file.sync_data()
    }
}

/// A dead-letter line that cannot be replayed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    #[error("reading the dead-letter file: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: not a dead letter: {message}")]
    Line { line: usize, message: String },
    #[error("the dead letter's data or key cannot be decoded: {0}")]
    Data(String),
}

/// Reads a dead-letter file back, one [`DeadLetter`] per line, to replay
/// them into a sink (`to_record`, then send).
pub fn replay(path: &Path) -> Result<Vec<DeadLetter>, ReplayError> {
    let reader = BufReader::new(File::open(path)?);
    let mut letters = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let letter = serde_json::from_str(&line).map_err(|e| ReplayError::Line {
            line: index + 1,
            message: e.to_string(),
        })?;
        letters.push(letter);
    }
    Ok(letters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn file_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dlq/dead.ndjson");
        let mut sink = DeadLetterFile::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, DEAD_LETTER_FILE_MODE);

        let source = SourceName::new("web_logs");
        let mut context = BTreeMap::new();
        context.insert("file".to_owned(), "/var/log/access.log".to_owned());
        let text = DeadLetter::rejected(b"not a log line", &source, "at byte 3", context);
        let binary = DeadLetter::rejected(&[0xff, 0x00, 0xfe], &source, "binary", BTreeMap::new());
        assert_eq!(binary.data_encoding, DataEncoding::Base64);
        sink.write(&[text.clone(), binary.clone()]).unwrap();

        let read = replay(&path).unwrap();
        assert_eq!(read, [text, binary.clone()]);
        assert_eq!(binary.data_bytes().unwrap(), [0xff, 0x00, 0xfe]);
        let record = read[1].to_record().unwrap();
        assert_eq!(&record.data[..], [0xff, 0x00, 0xfe]);
        assert_eq!(record.source.as_str(), "web_logs");
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.ndjson");
        std::fs::write(&path, "\n{\"not\": \"a letter\"}\n").unwrap();
        match replay(&path) {
            Err(ReplayError::Line { line, .. }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
    }
}
